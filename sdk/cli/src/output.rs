//! How results are printed: aligned tables or JSON, and sizes, durations
//! and times for people.

use std::io::{self, Write};
use std::time::{Duration, SystemTime};

use indicatif::{HumanBytes, HumanDuration};
use serde::Serialize;

/// A table printed with aligned columns.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    /// Adds a row.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text.
    pub fn render(&self) -> String {
        let mut writer = tabwriter::TabWriter::new(Vec::new()).padding(3);
        for row in &self.rows {
            // Tabs and newlines inside cells would break the columns.
            let cells: Vec<String> = row.iter().map(|c| c.replace(['\t', '\n'], " ")).collect();
            let _ = writeln!(writer, "{}", cells.join("\t"));
        }
        let bytes = writer.into_inner().unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Prints the table on stdout.
    pub fn print(&self) -> io::Result<()> {
        io::stdout().lock().write_all(self.render().as_bytes())
    }
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)?;
    writeln!(out)
}

/// Prints `value` as one line of JSON on stdout (for streams).
pub fn print_json_line<T: Serialize + ?Sized>(value: &T) -> io::Result<()> {
    let mut out = io::stdout().lock();
    serde_json::to_writer(&mut out, value)?;
    writeln!(out)?;
    out.flush()
}

/// A size for people: `1.50 MiB`.
pub fn bytes(n: u64) -> String {
    HumanBytes(n).to_string()
}

/// A duration for people: `3 minutes`.
pub fn duration(d: Duration) -> String {
    HumanDuration(d).to_string()
}

/// How long ago `time` was: `5 seconds ago`.
pub fn ago(time: Option<SystemTime>) -> String {
    match time {
        Some(t) => format!(
            "{} ago",
            duration(SystemTime::now().duration_since(t).unwrap_or_default())
        ),
        None => "-".into(),
    }
}

/// A time as RFC 3339 (UTC, nanoseconds).
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

/// The first 12 characters of an id or digest, without its algorithm.
pub fn short_id(id: &str) -> String {
    let id = id.split_once(':').map_or(id, |(_, hex)| hex);
    id.chars().take(12).collect()
}

/// `text` cut to `max` characters with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut table = Table::new(&["ID", "STATUS"]);
        table.row(vec!["a-long-id".into(), "running".into()]);
        table.row(vec!["b".into(), "stopped".into()]);
        assert_eq!(
            table.render(),
            "ID          STATUS\na-long-id   running\nb           stopped\n"
        );
    }

    #[test]
    fn ids_and_text_shorten() {
        assert_eq!(short_id("sha256:0123456789abcdef"), "0123456789ab");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
        assert_eq!(bytes(1536), "1.50 KiB");
    }
}
