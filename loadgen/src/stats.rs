//! Measurements: per-thread latency histograms and error counts, merged at the end; live
//! counters for the progress bar; the loadgen's own CPU time.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use zkrs::proto::ErrorCode;

/// Histograms hold microseconds from 1 us to 100 s at 3 significant digits; larger values
/// are clamped to the top (the drain timeout keeps real values far below it).
pub const HISTOGRAM_MAX_US: u64 = 100_000_000;
pub const HISTOGRAM_SIGNIFICANT_DIGITS: u8 = 3;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, HISTOGRAM_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Errors that are not ZooKeeper error codes.
pub mod local_error {
    /// No reply before the drain deadline.
    pub const TIMEOUT: &str = "Timeout";
    /// The connection broke (or could not be read) while the request was in flight.
    pub const CONNECTION_LOST: &str = "ConnectionLost";
    /// Open loop: the loadgen's queue of due requests was full, the request was not sent.
    pub const BACKLOG_FULL: &str = "BacklogFull";
    /// Open loop: still queued in the loadgen when the drain deadline passed.
    pub const NOT_SENT: &str = "NotSent";
    /// A reply that did not decode or did not match the request.
    pub const BAD_REPLY: &str = "BadReply";
    /// Fan-out: a watcher did not get its notification in time.
    pub const MISSING_NOTIFICATION: &str = "MissingNotification";
    /// Churn: an ephemeral node still there after its session closed.
    pub const EPHEMERAL_LEFT: &str = "EphemeralLeftBehind";
}

/// The name of a ZooKeeper error code in reports: `NoNode(-101)`.
pub fn error_name(code: i32) -> String {
    match ErrorCode::from_i32(code) {
        Some(known) => format!("{known:?}({code})"),
        None => format!("Unknown({code})"),
    }
}

/// Results of one kind of operation.
#[derive(Debug, Clone)]
pub struct OpStats {
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Latency of successful operations, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            ok: 0,
            errors: BTreeMap::new(),
            latency_us: new_histogram(),
        }
    }
}

impl OpStats {
    pub fn record_ok(&mut self, latency_us: u64) {
        self.ok += 1;
        self.latency_us.saturating_record(latency_us.max(1));
    }

    pub fn record_error(&mut self, name: &str) {
        self.record_errors(name, 1);
    }

    pub fn record_errors(&mut self, name: &str, count: u64) {
        if count == 0 {
            return;
        }
        match self.errors.get_mut(name) {
            Some(n) => *n += count,
            None => {
                self.errors.insert(name.to_string(), count);
            }
        }
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn merge(&mut self, other: &OpStats) {
        self.ok += other.ok;
        for (name, count) in &other.errors {
            self.record_errors(name, *count);
        }
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }
}

/// One line of the `--timeline` output: something that completed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEvent {
    /// Completion time, microseconds since the Unix epoch (the system clock at the start
    /// of the run plus the monotonic time since, so that steps of the clock do not show).
    pub at_unix_us: u64,
    /// Operation name, or `reconnect` (a session replaced after its connection broke).
    pub what: &'static str,
    /// `ok`, an error name, or for `reconnect` the host the new session went to.
    pub outcome: String,
    /// Operations: from the intended send time to the reply; reconnects: from the failure
    /// to the new session.
    pub latency_us: u64,
    /// Index of the session over all sessions of the run.
    pub session: usize,
}

/// The most timeline events one run keeps (~50 bytes each); later ones are dropped.
pub const TIMELINE_MAX: usize = 10_000_000;

/// Everything one thread (or, once merged, the whole run) measured.
#[derive(Debug, Clone, Default)]
pub struct RunStats {
    /// By operation name (`get`, `set`, ..., or `fanout`, `notify`, `connect`, ...).
    pub ops: BTreeMap<&'static str, OpStats>,
    /// Open loop: how late requests went out compared to their intended time, in
    /// microseconds. A large lag means the loadgen itself could not keep up.
    pub send_lag_us: Option<Histogram<u64>>,
    /// Mix with `timeline` on: every completion, in this thread's order (sorted by time
    /// once merged, see [`RunStats::sorted_timeline`]).
    pub timeline: Vec<TimelineEvent>,
}

impl RunStats {
    pub fn op(&mut self, name: &'static str) -> &mut OpStats {
        self.ops.entry(name).or_default()
    }

    pub fn record_send_lag(&mut self, lag_us: u64) {
        self.send_lag_us
            .get_or_insert_with(new_histogram)
            .saturating_record(lag_us);
    }

    pub fn merge(&mut self, other: &RunStats) {
        for (name, stats) in &other.ops {
            self.op(name).merge(stats);
        }
        if let Some(other_lag) = &other.send_lag_us {
            let _ = self
                .send_lag_us
                .get_or_insert_with(new_histogram)
                .add(other_lag);
        }
        let room = TIMELINE_MAX.saturating_sub(self.timeline.len());
        self.timeline
            .extend(other.timeline.iter().take(room).cloned());
    }

    /// The timeline ordered by completion time (stable: one thread's events keep their
    /// order).
    pub fn sorted_timeline(&self) -> Vec<TimelineEvent> {
        let mut events = self.timeline.clone();
        events.sort_by_key(|e| e.at_unix_us);
        events
    }

    pub fn ok_total(&self) -> u64 {
        self.ops.values().map(|s| s.ok).sum()
    }

    pub fn error_total(&self) -> u64 {
        self.ops.values().map(|s| s.error_count()).sum()
    }

    /// All operations together.
    pub fn total(&self) -> OpStats {
        let mut total = OpStats::default();
        for stats in self.ops.values() {
            total.merge(stats);
        }
        total
    }
}

/// Counters one worker thread bumps as replies arrive, read by the progress bar.
/// Padded so that threads do not share a cache line.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct LiveCounters {
    pub ok: AtomicU64,
    pub errors: AtomicU64,
}

impl LiveCounters {
    pub fn add_ok(&self) {
        self.ok.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add_error(&self) {
        self.errors.fetch_add(1, Ordering::Relaxed);
    }
}

/// Sums of all threads' live counters.
pub fn live_totals(counters: &[LiveCounters]) -> (u64, u64) {
    counters.iter().fold((0, 0), |(ok, errors), c| {
        (
            ok + c.ok.load(Ordering::Relaxed),
            errors + c.errors.load(Ordering::Relaxed),
        )
    })
}

/// CPU time of this process (all threads), from getrusage.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    pub fn now() -> CpuTime {
        // SAFETY: getrusage only writes into the struct we pass.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        if rc != 0 {
            return CpuTime::default();
        }
        let to_duration = |tv: libc::timeval| {
            Duration::from_secs(tv.tv_sec.max(0) as u64)
                + Duration::from_micros(tv.tv_usec.max(0) as u64)
        };
        CpuTime {
            user: to_duration(usage.ru_utime),
            system: to_duration(usage.ru_stime),
        }
    }

    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_merge_across_threads() {
        // Three threads each record part of 1..=3000 us; the merge equals one histogram
        // that recorded everything.
        let mut per_thread: Vec<RunStats> = (0..3).map(|_| RunStats::default()).collect();
        let mut reference = OpStats::default();
        for v in 1..=3000u64 {
            per_thread[(v % 3) as usize].op("get").record_ok(v);
            reference.record_ok(v);
        }
        per_thread[0].op("set").record_ok(5_000);
        per_thread[1].op("set").record_error(&error_name(-101));
        per_thread[2].op("set").record_error(&error_name(-101));
        per_thread[2].op("set").record_error(local_error::TIMEOUT);
        per_thread[1].record_send_lag(10);
        per_thread[2].record_send_lag(30);

        let mut merged = RunStats::default();
        for t in &per_thread {
            merged.merge(t);
        }
        let get = &merged.ops["get"];
        assert_eq!(get.ok, 3000);
        assert_eq!(get.latency_us.len(), 3000);
        assert_eq!(get.latency_us, reference.latency_us);
        assert_eq!(get.latency_us.max(), reference.latency_us.max());
        let p99 = get.latency_us.value_at_quantile(0.99);
        assert!((2965..=2975).contains(&p99), "p99 {p99}");

        let set = &merged.ops["set"];
        assert_eq!(set.ok, 1);
        assert_eq!(set.errors["NoNode(-101)"], 2);
        assert_eq!(set.errors["Timeout"], 1);
        assert_eq!(merged.error_total(), 3);
        assert_eq!(merged.ok_total(), 3001);
        assert_eq!(merged.total().latency_us.len(), 3001);
        let lag = merged.send_lag_us.as_ref().unwrap();
        assert_eq!(lag.len(), 2);
        assert_eq!(lag.max(), 30);
    }

    #[test]
    fn error_names() {
        assert_eq!(error_name(-101), "NoNode(-101)");
        assert_eq!(error_name(-110), "NodeExists(-110)");
        assert_eq!(error_name(-9999), "Unknown(-9999)");
    }

    #[test]
    fn huge_latencies_are_clamped_not_lost() {
        let mut s = OpStats::default();
        s.record_ok(u64::MAX);
        s.record_ok(0);
        assert_eq!(s.latency_us.len(), 2);
        assert!(s.latency_us.max() >= HISTOGRAM_MAX_US);
        assert_eq!(s.latency_us.min(), 1);
    }

    #[test]
    fn cpu_time_advances() {
        let before = CpuTime::now();
        let mut x = 0u64;
        let spin_until = std::time::Instant::now() + Duration::from_millis(30);
        while std::time::Instant::now() < spin_until {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
        let used = CpuTime::now().since(before);
        assert!(used.total() >= Duration::from_millis(10), "{used:?}");
    }
}
