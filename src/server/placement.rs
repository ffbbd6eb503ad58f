//! Where the executors run: which CPUs this process may use (its affinity mask), how much
//! CPU time its cgroup grants (`cpu.max` / `cpu.cfs_quota_us`), and `zkrs.cpuPinning`.
//!
//! Pinning a shard to a core pays off only when that core is the shard's: with CPUs to
//! spare for the ordering core, and no quota or neighbour taking them. A pinned thread
//! whose core is busy with another process waits for it even when another core is idle
//! (measured: see perf/README.md), so `auto` pins only when every shard and the ordering
//! core get a CPU of their own and no cgroup quota caps the process below its CPUs.

use glommio::{CpuSet, Placement, PoolPlacement};

/// `zkrs.cpuPinning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pinning {
    /// Pin when each executor gets a CPU of its own and no quota caps the process.
    Auto,
    /// Pin the shards (and the ordering core when a CPU is left for it).
    Yes,
    /// Let the kernel place every thread.
    No,
}

impl Pinning {
    pub fn parse(text: &str) -> Option<Pinning> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Some(Pinning::Auto),
            "yes" | "true" | "on" => Some(Pinning::Yes),
            "no" | "false" | "off" => Some(Pinning::No),
            _ => None,
        }
    }
}

/// The executors' placement, and a line for the log saying why.
#[derive(Debug)]
pub struct CpuPlan {
    pub ordering: Option<usize>,
    pub shards: Vec<Option<usize>>,
    pub summary: String,
}

impl CpuPlan {
    pub fn ordering_placement(&self) -> Placement {
        self.ordering.map_or(Placement::Unbound, Placement::Fixed)
    }

    /// The ordering executor's blocking threads: the txn log's writes and syncs (one at a
    /// time), and beside them the reads that may run while it writes (a leader reading
    /// old txns back for a learner's DIFF, a term's recovery). On the ordering core's CPU
    /// when that is pinned (the executor sleeps while its log write runs).
    pub fn ordering_pool_placement(&self) -> PoolPlacement {
        const THREADS: usize = 3;
        match self.ordering {
            Some(cpu) => match CpuSet::online() {
                Ok(online) => {
                    let set = online.filter(|location| location.cpu == cpu);
                    PoolPlacement::Custom(vec![set; THREADS])
                }
                Err(_) => PoolPlacement::Unbound(THREADS),
            },
            None => PoolPlacement::Unbound(THREADS),
        }
    }

    pub fn shard_placement(&self, index: usize) -> Placement {
        self.shards
            .get(index)
            .copied()
            .flatten()
            .map_or(Placement::Unbound, Placement::Fixed)
    }
}

/// The CPUs in this process's affinity mask, ascending (empty if it cannot be read).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: sched_getaffinity fills the zeroed cpu_set_t passed with its size; pid 0 is
    // the calling thread (the main thread, before any executor starts, has the process's
    // mask).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&cpu| libc::CPU_ISSET(cpu, &set))
            .collect()
    }
}

/// The CPU time the process's cgroup grants, in cores (None: no quota, or unreadable).
pub fn cgroup_quota_cores() -> Option<f64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        if controllers.is_empty() {
            // cgroup v2: "0::/path", limits in <mount>/<path>/cpu.max as "quota period".
            let text = std::fs::read_to_string(format!("/sys/fs/cgroup{path}/cpu.max")).ok()?;
            return parse_cpu_max(&text);
        }
        if controllers.split(',').any(|c| c == "cpu") {
            let dir = format!("/sys/fs/cgroup/cpu,cpuacct{path}");
            let quota = std::fs::read_to_string(format!("{dir}/cpu.cfs_quota_us")).ok()?;
            let period = std::fs::read_to_string(format!("{dir}/cpu.cfs_period_us")).ok()?;
            return parse_cfs(&quota, &period);
        }
    }
    None
}

fn parse_cpu_max(text: &str) -> Option<f64> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period: f64 = fields.next()?.parse().ok()?;
    if quota == "max" || period <= 0.0 {
        return None;
    }
    Some(quota.parse::<f64>().ok()? / period)
}

fn parse_cfs(quota: &str, period: &str) -> Option<f64> {
    let quota: f64 = quota.trim().parse().ok()?;
    let period: f64 = period.trim().parse().ok()?;
    (quota > 0.0 && period > 0.0).then(|| quota / period)
}

/// Places `shards` shard executors and the ordering core on `allowed` CPUs under a quota
/// of `quota` cores.
pub fn plan(shards: usize, pinning: Pinning, allowed: &[usize], quota: Option<f64>) -> CpuPlan {
    let capped = quota.is_some_and(|q| q < allowed.len() as f64);
    let own_cpus = allowed.len() > shards;
    let pin = match pinning {
        Pinning::No => false,
        Pinning::Yes => !allowed.is_empty(),
        Pinning::Auto => own_cpus && !capped,
    };
    let quota_text = match quota {
        Some(q) => format!("a cgroup quota of {q:.2} cores"),
        None => "no cgroup CPU quota".to_string(),
    };
    let mask = format!("{} allowed CPU(s) {allowed:?}, {quota_text}", allowed.len());
    if !pin {
        let why = match pinning {
            Pinning::No => "zkrs.cpuPinning=no".to_string(),
            _ if allowed.is_empty() => "the affinity mask is unreadable".to_string(),
            _ if capped => "the quota is below the CPUs".to_string(),
            _ => format!(
                "{shards} shard(s) and the ordering core need {} CPUs",
                shards + 1
            ),
        };
        return CpuPlan {
            ordering: None,
            shards: vec![None; shards],
            summary: format!("{mask}: threads not pinned ({why})"),
        };
    }
    // The ordering core on the first CPU when one is left for it; the shards on the rest.
    let (ordering, shard_cpus) = if own_cpus {
        (Some(allowed[0]), &allowed[1..])
    } else {
        (None, allowed)
    };
    let placed: Vec<Option<usize>> = (0..shards)
        .map(|i| Some(shard_cpus[i % shard_cpus.len()]))
        .collect();
    CpuPlan {
        ordering,
        summary: format!(
            "{mask}: ordering core {}, shards pinned to {:?}",
            ordering.map_or("not pinned".to_string(), |c| format!("on CPU {c}")),
            placed.iter().flatten().collect::<Vec<_>>()
        ),
        shards: placed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_pins_only_with_a_cpu_for_every_executor_and_no_quota() {
        let p = plan(3, Pinning::Auto, &[0, 1, 2, 3], None);
        assert_eq!(p.ordering, Some(0));
        assert_eq!(p.shards, vec![Some(1), Some(2), Some(3)]);
        // As many shards as CPUs: nothing left for the ordering core.
        let p = plan(2, Pinning::Auto, &[0, 1], None);
        assert_eq!((p.ordering, p.shards.clone()), (None, vec![None, None]));
        assert!(p.summary.contains("not pinned"), "{}", p.summary);
        // A quota below the CPUs: the kernel shares them out, pinning would fight it.
        let p = plan(3, Pinning::Auto, &[0, 1, 2, 3], Some(2.0));
        assert_eq!(p.shards, vec![None; 3]);
        // An affinity mask that is not 0..n.
        let p = plan(2, Pinning::Auto, &[4, 6, 9], None);
        assert_eq!((p.ordering, p.shards), (Some(4), vec![Some(6), Some(9)]));
    }

    #[test]
    fn yes_and_no_override_auto() {
        let p = plan(2, Pinning::Yes, &[0, 1], None);
        assert_eq!((p.ordering, p.shards), (None, vec![Some(0), Some(1)]));
        let p = plan(3, Pinning::Yes, &[5, 7], Some(1.0));
        assert_eq!(p.shards, vec![Some(5), Some(7), Some(5)]);
        let p = plan(1, Pinning::No, &[0, 1, 2, 3], None);
        assert_eq!((p.ordering, p.shards), (None, vec![None]));
        assert_eq!(Pinning::parse("AUTO"), Some(Pinning::Auto));
        assert_eq!(Pinning::parse("off"), Some(Pinning::No));
        assert_eq!(Pinning::parse("sometimes"), None);
    }

    #[test]
    fn cgroup_limits_parse() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("150000 100000\n"), Some(1.5));
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(parse_cfs("-1\n", "100000\n"), None);
        assert_eq!(parse_cfs("200000\n", "100000\n"), Some(2.0));
        // This machine's own values, whatever they are, read without a panic.
        let _ = cgroup_quota_cores();
        assert!(!allowed_cpus().is_empty());
    }
}
