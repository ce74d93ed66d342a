//! `logs`: a container's output, on this process's stdout and stderr.

use futures::StreamExt;
use libcrun_shim::{ContainerRuntime, LogOptions, OutputStream};

use super::Result;
use super::containers::write_all;
use crate::args::LogsArgs;
use crate::output::timestamp;

/// Prints the selected output; with `-f`, until the container exits.
pub async fn logs(rt: &ContainerRuntime, a: LogsArgs) -> Result {
    let options = LogOptions {
        follow: a.follow,
        tail: a.tail,
        since: a.since,
        until: a.until,
        timestamps: a.timestamps,
        stream: None,
    };
    // Without timestamps the lines are only copied: take them as the agent
    // merged them, not one chunk (and one write) per line.
    let mut chunks = if a.timestamps {
        rt.logs_stream(&a.id, options).await?
    } else {
        rt.logs_stream_merged(&a.id, options).await?
    };
    // Whether the next chunk of each stream starts a line.
    let mut line_start = [true, true];
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk?;
        let index = usize::from(chunk.stream == OutputStream::Stderr);
        let mut data = Vec::with_capacity(chunk.data.len() + 32);
        if let (true, true, Some(time)) = (a.timestamps, line_start[index], chunk.time) {
            data.extend_from_slice(timestamp(time).as_bytes());
            data.push(b' ');
        }
        data.extend_from_slice(&chunk.data);
        line_start[index] = !chunk.partial;
        match chunk.stream {
            OutputStream::Stdout => write_all(&mut std::io::stdout(), &data)?,
            OutputStream::Stderr => write_all(&mut std::io::stderr(), &data)?,
        }
    }
    Ok(0)
}
