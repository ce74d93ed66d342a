//! Resource usage of containers, read from their cgroups and network
//! namespaces. Counters are cumulative since the container started.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// A snapshot of one container's resource usage.
///
/// ```no_run
/// # async fn demo(runtime: libcrun_shim::ContainerRuntime) -> libcrun_shim::Result<()> {
/// let metrics = runtime.metrics("my-container").await?;
/// println!("CPU: {} ns total", metrics.cpu.usage_total);
/// println!("Memory: {} / {} bytes", metrics.memory.usage, metrics.memory.limit);
/// println!("Network: RX {} TX {} bytes", metrics.network.rx_bytes, metrics.network.tx_bytes);
/// println!("Block I/O: Read {} Write {} bytes", metrics.blkio.read_bytes, metrics.blkio.write_bytes);
/// println!("PIDs: {}", metrics.pids.current);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ContainerMetrics {
    /// The container's id.
    pub container_id: String,
    /// The agent holding it (set by `crun-shimd`).
    pub agent: String,
    /// When the snapshot was taken.
    #[serde(with = "humantime_serde")]
    pub time: Option<SystemTime>,
    /// CPU.
    pub cpu: CpuMetrics,
    /// Memory.
    pub memory: MemoryMetrics,
    /// Network, all interfaces.
    pub network: NetworkMetrics,
    /// Block I/O, all devices.
    pub blkio: BlkioMetrics,
    /// Processes.
    pub pids: PidsMetrics,
}

/// CPU usage, in nanoseconds.
///
/// ```
/// let cpu = libcrun_shim::CpuMetrics { usage_total: 2_000_000, ..Default::default() };
/// assert_eq!(cpu.usage_total / 1_000_000, 2); // ms
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuMetrics {
    /// Total CPU time.
    pub usage_total: u64,
    /// CPU time in user mode.
    pub usage_user: u64,
    /// CPU time in kernel mode.
    pub usage_system: u64,
    /// Enforcement periods elapsed under a quota.
    pub periods: u64,
    /// Periods in which the container was throttled.
    pub throttled_periods: u64,
    /// Time throttled.
    pub throttled_time: u64,
}

/// Memory usage, in bytes.
///
/// ```
/// let memory = libcrun_shim::MemoryMetrics { usage: 50, limit: 200, ..Default::default() };
/// assert_eq!(memory.percent(), Some(25.0));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryMetrics {
    /// In use (page cache included).
    pub usage: u64,
    /// The limit; 0 when there is none.
    pub limit: u64,
    /// Page cache.
    pub cache: u64,
    /// Anonymous memory.
    pub rss: u64,
    /// The highest usage seen.
    pub max_usage: u64,
    /// Times the OOM killer struck.
    pub oom_kill_count: u64,
    /// Swap in use.
    pub swap: u64,
}

impl MemoryMetrics {
    /// Usage as a percentage of the limit; `None` without a limit.
    ///
    /// ```
    /// assert_eq!(libcrun_shim::MemoryMetrics::default().percent(), None);
    /// ```
    pub fn percent(&self) -> Option<f64> {
        (self.limit > 0).then(|| self.usage as f64 * 100.0 / self.limit as f64)
    }
}

/// Network traffic, all interfaces of the container's network namespace.
///
/// ```
/// let network = libcrun_shim::NetworkMetrics::default();
/// assert!(network.interfaces.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct NetworkMetrics {
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Per interface.
    pub interfaces: Vec<InterfaceMetrics>,
}

/// Traffic of one network interface.
///
/// ```
/// let lo = libcrun_shim::InterfaceMetrics { name: "lo".into(), ..Default::default() };
/// assert_eq!(lo.rx_packets, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct InterfaceMetrics {
    /// Its name in the container (`lo`, `eth0`).
    pub name: String,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Received packets dropped.
    pub rx_dropped: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Send errors.
    pub tx_errors: u64,
    /// Sent packets dropped.
    pub tx_dropped: u64,
}

/// Block device I/O, all devices.
///
/// ```
/// let io = libcrun_shim::BlkioMetrics { read_bytes: 4096, ..Default::default() };
/// assert_eq!(io.write_bytes, 0);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct BlkioMetrics {
    /// Bytes read.
    pub read_bytes: u64,
    /// Bytes written.
    pub write_bytes: u64,
    /// Read operations.
    pub read_ops: u64,
    /// Write operations.
    pub write_ops: u64,
}

/// Process counts.
///
/// ```
/// let pids = libcrun_shim::PidsMetrics { current: 3, limit: 0 };
/// assert_eq!(pids.current, 3);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct PidsMetrics {
    /// Processes and threads now.
    pub current: u64,
    /// The limit; 0 when there is none.
    pub limit: u64,
}
