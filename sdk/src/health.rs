//! Health checks: how one is configured, and what the agent saw.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// A command run inside the container on a schedule; the container is
/// healthy while it exits 0 within the timeout. What is `None` (or zero)
/// takes the agent's default, Docker's: every 30 s, a 30 s timeout, 3
/// retries, no start period; [`ContainerRuntime::inspect`](crate::ContainerRuntime::inspect)
/// shows the values in force.
///
/// ```
/// use std::time::Duration;
/// use libcrun_shim::HealthCheck;
///
/// let check = HealthCheck {
///     command: vec!["sh".into(), "-c".into(), "test -e /tmp/ready".into()],
///     interval: Some(Duration::from_secs(5)),
///     ..Default::default()
/// };
/// assert_eq!(check.timeout, None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthCheck {
    /// The command and its arguments (argv form; use `sh -c` for a shell).
    pub command: Vec<String>,
    /// Time between the end of one check and the start of the next.
    #[serde(with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// How long one check may run before it counts as failed.
    #[serde(with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Consecutive failures that make the container unhealthy.
    pub retries: Option<u32>,
    /// Grace period after start during which failures do not count.
    #[serde(with = "humantime_serde")]
    pub start_period: Option<Duration>,
}

/// The health of a container as its health check decides it.
///
/// ```
/// assert_eq!(libcrun_shim::HealthStatus::Healthy.to_string(), "healthy");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// No health check.
    #[default]
    None,
    /// In the start period, no check has passed yet.
    Starting,
    /// The last check passed.
    Healthy,
    /// The check failed `retries` times in a row.
    Unhealthy,
}

impl std::fmt::Display for HealthStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HealthStatus::None => "none",
            HealthStatus::Starting => "starting",
            HealthStatus::Healthy => "healthy",
            HealthStatus::Unhealthy => "unhealthy",
        })
    }
}

/// A container's health, as returned by
/// [`ContainerRuntime::health`](crate::ContainerRuntime::health).
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// let health = runtime.health("web").await?;
/// println!("Health status: {:?}", health.status);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerHealth {
    /// The container's id.
    pub container_id: String,
    /// The current status.
    pub status: HealthStatus,
    /// Consecutive failed checks.
    pub failing_streak: u32,
    /// The latest results, oldest first (at most 5).
    pub recent_results: Vec<HealthCheckResult>,
    /// The agent holding the container (set by `crun-shimd`).
    pub agent: String,
}

/// The outcome of one run of a health check.
///
/// ```
/// let result = libcrun_shim::HealthCheckResult::default();
/// assert_eq!(result.exit_code, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthCheckResult {
    /// When the check started.
    #[serde(with = "humantime_serde")]
    pub started_at: Option<SystemTime>,
    /// When it ended.
    #[serde(with = "humantime_serde")]
    pub finished_at: Option<SystemTime>,
    /// Its exit code.
    pub exit_code: i32,
    /// The start of its output (at most 4 KiB), decoded lossily as UTF-8.
    pub output: String,
    /// It ran past its timeout and was killed.
    pub timed_out: bool,
}
