//! Samples and their summaries.

use std::time::Duration;

use serde::Serialize;

/// Which way a figure is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Better {
    /// Latency, memory.
    Lower,
    /// Throughput.
    Higher,
}

/// One subject's figure in a scenario: a median over `runs`, and the
/// 99th percentile where the samples allow it.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// What was measured: "crun run", "libcrun-shim SDK", "podman", ...
    pub subject: String,
    /// The median.
    pub median: f64,
    /// The 99th percentile (nearest rank), when there are samples.
    pub p99: Option<f64>,
    /// How many samples.
    pub runs: usize,
}

impl Figure {
    /// A figure from samples.
    pub fn of(subject: &str, samples: &[f64]) -> Figure {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let rank =
            |p: f64| sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1];
        Figure {
            subject: subject.to_string(),
            median: if sorted.is_empty() {
                f64::NAN
            } else {
                rank(0.5)
            },
            p99: (sorted.len() >= 10).then(|| rank(0.99)),
            runs: sorted.len(),
        }
    }

    /// A single measured value (a rate over a whole run).
    pub fn single(subject: &str, value: f64) -> Figure {
        Figure {
            subject: subject.to_string(),
            median: value,
            p99: None,
            runs: 1,
        }
    }
}

/// Durations as milliseconds.
pub fn millis(samples: &[Duration]) -> Vec<f64> {
    samples.iter().map(|d| d.as_secs_f64() * 1e3).collect()
}
