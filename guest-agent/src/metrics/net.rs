//! Network counters of a process's network namespace.

use std::io;
use std::path::Path;

use super::files::{Reader, Text};
use crate::model::InterfaceMetrics;

/// Every interface listed in `path` (a `/proc/<pid>/net/dev`), sorted by
/// name; none when the file does not exist (the process is gone).
pub(super) fn interfaces(files: &mut Reader, path: &Path) -> io::Result<Vec<InterfaceMetrics>> {
    let Some(text) = files.read(path)? else {
        return Ok(Vec::new());
    };
    // Two header lines, then one line per interface.
    let mut interfaces = text
        .lines()
        .skip(2)
        .map(|line| interface(text, line))
        .collect::<io::Result<Vec<_>>>()?;
    interfaces.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    Ok(interfaces)
}

/// One line: `name: ` then 8 receive counters (bytes packets errs drop
/// fifo frame compressed multicast) and 8 transmit counters (bytes packets
/// errs drop fifo colls carrier compressed).
fn interface(text: Text, line: &str) -> io::Result<InterfaceMetrics> {
    let (name, counters) = line
        .split_once(':')
        .ok_or_else(|| text.malformed(format_args!("unexpected line {line:?}")))?;
    let mut fields = counters.split_ascii_whitespace();
    let mut values = [0; 12];
    for value in &mut values {
        let field = fields
            .next()
            .ok_or_else(|| text.malformed(format_args!("too few counters in {line:?}")))?;
        *value = text.parse(field)?;
    }
    let [
        rx_bytes,
        rx_packets,
        rx_errors,
        rx_dropped,
        _,
        _,
        _,
        _,
        tx_bytes,
        tx_packets,
        tx_errors,
        tx_dropped,
    ] = values;
    Ok(InterfaceMetrics {
        name: name.trim().to_string(),
        rx_bytes,
        rx_packets,
        rx_errors,
        rx_dropped,
        tx_bytes,
        tx_packets,
        tx_errors,
        tx_dropped,
    })
}
