//! Metrics: snapshots of a container's resource usage.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// CPU usage, cumulative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuMetrics {
    /// Total CPU time in nanoseconds.
    pub usage_total_ns: u64,
    /// User-mode CPU time in nanoseconds.
    pub usage_user_ns: u64,
    /// Kernel-mode CPU time in nanoseconds.
    pub usage_system_ns: u64,
    /// Quota enforcement periods elapsed.
    pub periods: u64,
    /// Periods in which the container was throttled.
    pub throttled_periods: u64,
    /// Time throttled, in nanoseconds.
    pub throttled_time_ns: u64,
}

/// Memory usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemoryMetrics {
    /// Usage in bytes, page cache included.
    pub usage_bytes: u64,
    /// Limit in bytes; 0 when unlimited.
    pub limit_bytes: u64,
    /// Page cache (file-backed) in bytes.
    pub cache_bytes: u64,
    /// Anonymous memory (RSS) in bytes.
    pub rss_bytes: u64,
    /// Highest usage seen, in bytes.
    pub max_usage_bytes: u64,
    /// OOM kills in the cgroup.
    pub oom_kill_count: u64,
    /// Swap in use, in bytes.
    pub swap_bytes: u64,
}

/// Traffic of one network interface inside the container's namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceMetrics {
    /// The interface's name.
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

/// Block I/O, all devices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidsMetrics {
    /// Tasks in the cgroup now.
    pub current: u64,
    /// The limit; 0 when unlimited.
    pub limit: u64,
}

/// A snapshot of a container's resource usage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerMetrics {
    /// The container.
    pub container_id: String,
    /// When it was taken.
    pub time: SystemTime,
    /// CPU.
    pub cpu: CpuMetrics,
    /// Memory.
    pub memory: MemoryMetrics,
    /// Network, per interface.
    pub network: Vec<InterfaceMetrics>,
    /// Block I/O.
    pub blkio: BlkioMetrics,
    /// Processes.
    pub pids: PidsMetrics,
}
