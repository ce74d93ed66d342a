//! Health: the status a container's health check decides, and the results
//! it is decided from.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// The health of a container as decided by its health check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    /// No health check.
    #[default]
    None,
    /// Within the start period, no check passed yet.
    Starting,
    /// The last check passed.
    Healthy,
    /// `retries` checks failed in a row.
    Unhealthy,
}

/// The outcome of one health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    /// When it started.
    pub started_at: SystemTime,
    /// When it ended.
    pub finished_at: SystemTime,
    /// Its exit code (128+N when killed by signal N).
    pub exit_code: i32,
    /// The start of its output (stdout then stderr), bounded.
    pub output: Vec<u8>,
    /// Killed at its timeout.
    pub timed_out: bool,
}

/// A container's health-check state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthState {
    /// The current status.
    pub status: HealthStatus,
    /// Consecutive failed checks.
    pub failing_streak: u32,
    /// The most recent results, oldest first.
    pub recent: Vec<HealthResult>,
}
