//! A container's cgroup limits and their rules: [`Resources::validate`]
//! refuses what the kernel or libcrun would refuse half-way through a
//! create (after its cgroups exist) or accept with a surprising meaning,
//! and [`Resources::check_host`] what this machine cannot give.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Cgroup resource limits; `None` means unlimited (in an update: unchanged).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// Memory limit in bytes.
    pub memory_limit_bytes: Option<u64>,
    /// Soft memory limit in bytes.
    pub memory_reservation_bytes: Option<u64>,
    /// Memory plus swap limit in bytes; -1 for unlimited.
    pub memory_swap_limit_bytes: Option<i64>,
    /// Relative CPU weight (v1 shares).
    pub cpu_shares: Option<u64>,
    /// CPU quota per period in microseconds; -1 for none.
    pub cpu_quota_us: Option<i64>,
    /// CPU period in microseconds.
    pub cpu_period_us: Option<u64>,
    /// Allowed CPUs as a cpuset list.
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes; -1 for none.
    pub pids_limit: Option<i64>,
}

impl Resources {
    /// Applies the limits set in `update` over these.
    pub fn merge(&mut self, update: &Resources) {
        fn set<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
            if let Some(v) = src {
                *dst = Some(v.clone());
            }
        }
        set(&mut self.memory_limit_bytes, &update.memory_limit_bytes);
        set(
            &mut self.memory_reservation_bytes,
            &update.memory_reservation_bytes,
        );
        set(
            &mut self.memory_swap_limit_bytes,
            &update.memory_swap_limit_bytes,
        );
        set(&mut self.cpu_shares, &update.cpu_shares);
        set(&mut self.cpu_quota_us, &update.cpu_quota_us);
        set(&mut self.cpu_period_us, &update.cpu_period_us);
        set(&mut self.cpuset_cpus, &update.cpuset_cpus);
        set(&mut self.pids_limit, &update.pids_limit);
    }
}

/// The smallest memory limit (Docker's): below it a container cannot even
/// start its first process.
pub const MIN_MEMORY_BYTES: u64 = 6 << 20;
/// The range of CPU shares (cgroup v1's `cpu.shares`; libcrun converts them
/// to a v2 weight).
pub const CPU_SHARES: std::ops::RangeInclusive<u64> = 2..=262_144;
/// The range of the CPU period in microseconds (the kernel's: 1 ms to 1 s).
pub const CPU_PERIOD_US: std::ops::RangeInclusive<u64> = 1_000..=1_000_000;
/// The smallest CPU quota in microseconds (the kernel's: 1 ms).
pub const MIN_CPU_QUOTA_US: i64 = 1_000;
/// The CPU period the kernel uses when none is set.
pub const DEFAULT_CPU_PERIOD_US: u64 = 100_000;
/// The highest CPU number a cpuset may name.
pub const MAX_CPU: u32 = 8191;

impl Resources {
    /// Checks the limits that are set: memory at least
    /// [`MIN_MEMORY_BYTES`], a reservation within the limit, swap -1 or at
    /// least the memory limit (which it needs), shares in [`CPU_SHARES`],
    /// a period in [`CPU_PERIOD_US`], a quota -1 or at least
    /// [`MIN_CPU_QUOTA_US`], a well-formed cpuset, pids -1 or positive.
    /// `InvalidArgument` naming the field otherwise.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::InvalidArgument(what));
        if let Some(limit) = self.memory_limit_bytes
            && limit < MIN_MEMORY_BYTES
        {
            return bad(format!(
                "memory limit {limit} bytes: at least {MIN_MEMORY_BYTES} (6 MiB)"
            ));
        }
        if let (Some(reservation), Some(limit)) =
            (self.memory_reservation_bytes, self.memory_limit_bytes)
            && reservation > limit
        {
            return bad(format!(
                "memory reservation {reservation} is above the memory limit {limit}"
            ));
        }
        match (self.memory_swap_limit_bytes, self.memory_limit_bytes) {
            (Some(-1) | None, _) => {}
            (Some(swap), _) if swap < 0 => {
                return bad(format!(
                    "memory+swap limit {swap}: -1 (unlimited) or a size in bytes"
                ));
            }
            (Some(_), None) => {
                return bad("a memory+swap limit needs a memory limit".into());
            }
            (Some(swap), Some(limit)) if (swap as u64) < limit => {
                return bad(format!(
                    "memory+swap limit {swap} is below the memory limit {limit}"
                ));
            }
            _ => {}
        }
        if let Some(shares) = self.cpu_shares
            && !CPU_SHARES.contains(&shares)
        {
            return bad(format!(
                "cpu shares {shares}: {} to {}",
                CPU_SHARES.start(),
                CPU_SHARES.end()
            ));
        }
        if let Some(period) = self.cpu_period_us
            && !CPU_PERIOD_US.contains(&period)
        {
            return bad(format!(
                "cpu period {period} µs: {} to {}",
                CPU_PERIOD_US.start(),
                CPU_PERIOD_US.end()
            ));
        }
        if let Some(quota) = self.cpu_quota_us
            && quota != -1
            && quota < MIN_CPU_QUOTA_US
        {
            return bad(format!(
                "cpu quota {quota} µs: -1 (none) or at least {MIN_CPU_QUOTA_US}"
            ));
        }
        if let Some(cpus) = &self.cpuset_cpus {
            parse_cpuset(cpus)?;
        }
        if let Some(pids) = self.pids_limit
            && pids != -1
            && pids < 1
        {
            return bad(format!("pids limit {pids}: -1 (none) or at least 1"));
        }
        Ok(())
    }

    /// Checks the limits against this machine, whose online CPUs are
    /// `online` (a cpuset list, as in `/sys/devices/system/cpu/online`):
    /// the cpuset names online CPUs only, and the quota asks for at most
    /// all of them. `InvalidArgument` otherwise.
    pub fn check_host(&self, online: &str) -> Result<()> {
        let online = parse_cpuset(online.trim())?;
        let count: u64 = online.iter().map(|(a, b)| u64::from(b - a + 1)).sum();
        if let Some(cpus) = &self.cpuset_cpus {
            for (first, last) in parse_cpuset(cpus)? {
                if let Some(cpu) =
                    (first..=last).find(|c| !online.iter().any(|(a, b)| (a..=b).contains(&c)))
                {
                    return Err(Error::InvalidArgument(format!(
                        "cpuset {cpus:?}: CPU {cpu} is not online (online: {})",
                        format_cpuset(&online)
                    )));
                }
            }
        }
        if let Some(quota) = self.cpu_quota_us.filter(|q| *q > 0) {
            let period = self.cpu_period_us.unwrap_or(DEFAULT_CPU_PERIOD_US);
            if quota as u64 > period.saturating_mul(count) {
                return Err(Error::InvalidArgument(format!(
                    "cpu quota {quota} µs per {period} µs asks for more than the {count} CPUs there are"
                )));
            }
        }
        Ok(())
    }
}

/// Parses a cpuset list ("0-3,5"): its ranges, each first ≤ last ≤
/// [`MAX_CPU`].
pub fn parse_cpuset(list: &str) -> Result<Vec<(u32, u32)>> {
    let bad = || {
        let shown: String = list.chars().take(64).collect();
        Error::InvalidArgument(format!(
            "cpuset {shown:?}: a list of CPU numbers and ranges (\"0-3,5\") up to {MAX_CPU}"
        ))
    };
    let number = |s: &str| {
        s.parse::<u32>()
            .ok()
            .filter(|n| *n <= MAX_CPU && s.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(bad)
    };
    if list.is_empty() {
        return Err(bad());
    }
    list.split(',')
        .map(|part| {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => (number(part)?, number(part)?),
            };
            if first > last {
                return Err(bad());
            }
            Ok((first, last))
        })
        .collect()
}

fn format_cpuset(ranges: &[(u32, u32)]) -> String {
    ranges
        .iter()
        .map(|(a, b)| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(r: Resources, naming: &str) {
        match r.validate() {
            Err(Error::InvalidArgument(m)) => assert!(m.contains(naming), "{naming}: {m}"),
            other => panic!("{naming}: expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn limits_the_kernel_would_refuse_or_misread_are_invalid() {
        let none = Resources::default;
        for (r, naming) in [
            (
                Resources {
                    memory_limit_bytes: Some(0),
                    ..none()
                },
                "memory limit 0",
            ),
            (
                Resources {
                    memory_limit_bytes: Some(1),
                    ..none()
                },
                "memory limit 1",
            ),
            (
                Resources {
                    memory_limit_bytes: Some(64 << 20),
                    memory_reservation_bytes: Some(128 << 20),
                    ..none()
                },
                "reservation",
            ),
            (
                Resources {
                    memory_swap_limit_bytes: Some(-2),
                    ..none()
                },
                "swap",
            ),
            (
                Resources {
                    memory_swap_limit_bytes: Some(1 << 30),
                    ..none()
                },
                "needs a memory limit",
            ),
            (
                Resources {
                    memory_limit_bytes: Some(64 << 20),
                    memory_swap_limit_bytes: Some(32 << 20),
                    ..none()
                },
                "below the memory limit",
            ),
            (
                Resources {
                    cpu_shares: Some(0),
                    ..none()
                },
                "cpu shares 0",
            ),
            (
                Resources {
                    cpu_shares: Some(u64::MAX),
                    ..none()
                },
                "cpu shares",
            ),
            (
                Resources {
                    cpu_period_us: Some(0),
                    ..none()
                },
                "cpu period 0",
            ),
            (
                Resources {
                    cpu_quota_us: Some(-2),
                    ..none()
                },
                "cpu quota -2",
            ),
            (
                Resources {
                    cpu_quota_us: Some(-200_000),
                    ..none()
                },
                "cpu quota",
            ),
            (
                Resources {
                    cpuset_cpus: Some("".into()),
                    ..none()
                },
                "cpuset",
            ),
            (
                Resources {
                    cpuset_cpus: Some("1-0".into()),
                    ..none()
                },
                "cpuset",
            ),
            (
                Resources {
                    cpuset_cpus: Some("0-4000000000".into()),
                    ..none()
                },
                "cpuset",
            ),
            (
                Resources {
                    cpuset_cpus: Some("a".into()),
                    ..none()
                },
                "cpuset",
            ),
            (
                Resources {
                    pids_limit: Some(0),
                    ..none()
                },
                "pids limit 0",
            ),
            (
                Resources {
                    pids_limit: Some(-2),
                    ..none()
                },
                "pids limit -2",
            ),
        ] {
            invalid(r, naming);
        }
        Resources {
            memory_limit_bytes: Some(u64::MAX),
            memory_reservation_bytes: Some(1 << 29),
            memory_swap_limit_bytes: Some(-1),
            cpu_shares: Some(1024),
            cpu_quota_us: Some(-1),
            cpu_period_us: Some(100_000),
            cpuset_cpus: Some("0-1,3".into()),
            pids_limit: Some(-1),
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn the_host_bounds_cpus() {
        let cpus = |s: &str| Resources {
            cpuset_cpus: Some(s.into()),
            ..Default::default()
        };
        cpus("0-1").check_host("0-1\n").unwrap();
        let err = cpus("99").check_host("0-1\n").unwrap_err().to_string();
        assert!(err.contains("CPU 99 is not online (online: 0-1)"), "{err}");
        assert!(cpus("2").check_host("0-1,3").is_err());
        let quota = |q: i64| Resources {
            cpu_quota_us: Some(q),
            ..Default::default()
        };
        quota(200_000).check_host("0-1").unwrap();
        quota(-1).check_host("0").unwrap();
        // --cpus 1e9.
        let err = quota(100_000_000_000_000).check_host("0-1").unwrap_err();
        assert!(err.to_string().contains("2 CPUs"), "{err}");
    }
}
