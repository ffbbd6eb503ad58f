//! Latency histograms for the Prometheus summaries (`readlatency`, `updatelatency`,
//! `fsynctime`): fixed log-linear buckets of milliseconds, so that recording is a few
//! plain additions and summaries of several shards add up bucket by bucket.
//!
//! A shard records into its own [`LocalHistogram`] (plain `Cell`s: only its executor
//! touches it); the log task records into the process-wide [`FSYNC_TIME`] (relaxed
//! atomics, one writer). Readers take a [`HistogramSnapshot`] through the admin query path
//! and compute quantiles from the merged buckets. Values 0..128 ms are exact; above, a
//! bucket spans 1/64 of its power of two (quantiles within ~1.6%). Values past 2^40 ms
//! count in the last bucket.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Values below this have a bucket each.
const EXACT: u64 = 128;
/// log2(EXACT).
const EXACT_BITS: u32 = 7;
/// Sub-buckets per power of two above `EXACT` (2^6).
const SUB_BITS: u32 = 6;
/// The largest power of two with buckets of its own: 2^40 ms (~35 years).
const TOP_BITS: u32 = 40;
/// Number of buckets.
pub const BUCKETS: usize = EXACT as usize + ((TOP_BITS - EXACT_BITS) as usize) * (1 << SUB_BITS);

/// The bucket of `value` (ms).
pub fn bucket_of(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros(); // >= EXACT_BITS
    if exponent >= TOP_BITS {
        return BUCKETS - 1;
    }
    let sub = (value >> (exponent - SUB_BITS)) & ((1 << SUB_BITS) - 1);
    EXACT as usize + ((exponent - EXACT_BITS) as usize) * (1 << SUB_BITS) + sub as usize
}

/// The smallest and the largest value of bucket `index`.
pub fn bucket_range(index: usize) -> (u64, u64) {
    if index < EXACT as usize {
        return (index as u64, index as u64);
    }
    let above = index - EXACT as usize;
    let exponent = EXACT_BITS + (above >> SUB_BITS) as u32;
    let sub = (above & ((1 << SUB_BITS) - 1)) as u64;
    let width = 1u64 << (exponent - SUB_BITS);
    let low = (1u64 << exponent) + sub * width;
    (low, low + width - 1)
}

/// A shard's histogram: only its executor's thread records and reads it.
pub struct LocalHistogram {
    counts: Box<[Cell<u64>]>,
    sum: Cell<u64>,
    count: Cell<u64>,
}

impl Default for LocalHistogram {
    fn default() -> LocalHistogram {
        LocalHistogram {
            counts: (0..BUCKETS).map(|_| Cell::new(0)).collect(),
            sum: Cell::new(0),
            count: Cell::new(0),
        }
    }
}

impl LocalHistogram {
    pub fn record(&self, value: u64) {
        let cell = &self.counts[bucket_of(value)];
        cell.set(cell.get() + 1);
        self.sum.set(self.sum.get().saturating_add(value));
        self.count.set(self.count.get() + 1);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self.counts.iter().map(Cell::get).collect(),
            sum: self.sum.get(),
            count: self.count.get(),
        }
    }
}

/// A process-wide histogram with one writer (relaxed atomics).
pub struct AtomicHistogram {
    counts: [AtomicU64; BUCKETS],
    sum: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    pub const fn new() -> AtomicHistogram {
        AtomicHistogram {
            counts: [const { AtomicU64::new(0) }; BUCKETS],
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    pub fn record(&self, value: u64) {
        self.counts[bucket_of(value)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: self
                .counts
                .iter()
                .map(|c| c.load(Ordering::Relaxed))
                .collect(),
            sum: self.sum.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

impl Default for AtomicHistogram {
    fn default() -> AtomicHistogram {
        AtomicHistogram::new()
    }
}

/// Milliseconds the log task spent writing and syncing each group (ZooKeeper's
/// `fsynctime`: there the fsync of the log, here the one O_DIRECT write + fdatasync of a
/// group commit).
pub static FSYNC_TIME: AtomicHistogram = AtomicHistogram::new();
/// Group commits that took longer than `fsync.warningthresholdms` (1000 ms by default):
/// ZooKeeper's `fsync_threshold_exceed_count`.
pub static FSYNC_THRESHOLD_EXCEEDED: AtomicU64 = AtomicU64::new(0);
/// ZooKeeper's default `fsync.warningthresholdms`.
pub const FSYNC_WARNING_THRESHOLD_MS: u64 = 1000;

/// Records one group commit's write + sync time.
pub fn record_fsync(ms: u64) {
    FSYNC_TIME.record(ms);
    if ms > FSYNC_WARNING_THRESHOLD_MS {
        FSYNC_THRESHOLD_EXCEEDED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Ensemble metrics, with the names of ZooKeeper 3.8's ServerMetrics, process-wide. Only
/// the ordering executor writes them (election decisions, the leader's proposals, commits
/// and learner syncs, a learner's received packets), so a count is a relaxed load and store,
/// no read-modify-write; readers (the metrics endpoint) load them.
pub mod quorum {
    use super::AtomicHistogram;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// `election_time` (ms): from entering LOOKING to the decision, per decision
    /// (Leader.lead / Follower.followLeader).
    pub static ELECTION_TIME: AtomicHistogram = AtomicHistogram::new();
    /// `looking_count`: times this server entered LOOKING (QuorumPeer.run).
    pub static LOOKING_COUNT: AtomicU64 = AtomicU64::new(0);
    /// `proposal_count`: PROPOSALs this server made as leader (Leader.propose).
    pub static PROPOSAL_COUNT: AtomicU64 = AtomicU64::new(0);
    /// `commit_count`: COMMITs this server sent as leader (Leader.commit).
    pub static COMMIT_COUNT: AtomicU64 = AtomicU64::new(0);
    /// `diff_count`: learner syncs by DIFF or TRUNC (LearnerHandler).
    pub static DIFF_COUNT: AtomicU64 = AtomicU64::new(0);
    /// `snap_count`: learner syncs by SNAP (LearnerHandler).
    pub static SNAP_COUNT: AtomicU64 = AtomicU64::new(0);
    /// `learner_proposal_received_count`: PROPOSALs a follower received in the broadcast.
    pub static LEARNER_PROPOSAL_RECEIVED_COUNT: AtomicU64 = AtomicU64::new(0);
    /// `learner_commit_received_count`: COMMITs (observer: INFORMs) a learner received in
    /// the broadcast.
    pub static LEARNER_COMMIT_RECEIVED_COUNT: AtomicU64 = AtomicU64::new(0);

    /// Adds `n` to a count of the ordering executor's (its only writer).
    pub fn add(count: &AtomicU64, n: u64) {
        count.store(count.load(Ordering::Relaxed) + n, Ordering::Relaxed);
    }

    /// Every counter with its ZooKeeper name, for the metrics endpoint.
    pub fn counters() -> [(&'static str, u64); 7] {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("looking_count", get(&LOOKING_COUNT)),
            ("proposal_count", get(&PROPOSAL_COUNT)),
            ("commit_count", get(&COMMIT_COUNT)),
            ("diff_count", get(&DIFF_COUNT)),
            ("snap_count", get(&SNAP_COUNT)),
            (
                "learner_proposal_received_count",
                get(&LEARNER_PROPOSAL_RECEIVED_COUNT),
            ),
            (
                "learner_commit_received_count",
                get(&LEARNER_COMMIT_RECEIVED_COUNT),
            ),
        ]
    }
}

/// A shard's server-wide packet counts (ZooKeeper's `ServerStats` packets_received /
/// packets_sent: cumulative, reset only by `srst`). Connections count their own packets
/// (`cons`, reset by `crst`); what a connection counted is folded in here when it closes
/// or when `crst` resets it, so the shard's total is `folded + live connections' counts`,
/// and `srst` moves the base to the total of that moment.
#[derive(Debug, Default)]
pub struct PacketTotals {
    folded_received: Cell<u64>,
    folded_sent: Cell<u64>,
    base_received: Cell<u64>,
    base_sent: Cell<u64>,
}

impl PacketTotals {
    /// A connection's counts, before they go away (it closed, or `crst` resets them).
    pub fn fold(&self, received: u64, sent: u64) {
        self.folded_received
            .set(self.folded_received.get().saturating_add(received));
        self.folded_sent
            .set(self.folded_sent.get().saturating_add(sent));
    }

    /// (received, sent) since the start or the last [`PacketTotals::reset`], given the live
    /// connections' counts.
    pub fn totals(&self, live_received: u64, live_sent: u64) -> (u64, u64) {
        (
            (self.folded_received.get() + live_received).saturating_sub(self.base_received.get()),
            (self.folded_sent.get() + live_sent).saturating_sub(self.base_sent.get()),
        )
    }

    /// `srst`: the totals start again from 0.
    pub fn reset(&self, live_received: u64, live_sent: u64) {
        self.base_received
            .set(self.folded_received.get() + live_received);
        self.base_sent.set(self.folded_sent.get() + live_sent);
    }
}

/// Counts per bucket at one moment (empty `counts` = nothing recorded).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub counts: Vec<u64>,
    pub sum: u64,
    pub count: u64,
}

impl HistogramSnapshot {
    /// Adds `other`'s counts (another shard's) to these.
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.sum = self.sum.saturating_add(other.sum);
        self.count += other.count;
    }

    /// What was recorded after `older` (an earlier snapshot of the same histograms); a
    /// bucket that shrank (a shard's histogram restarted) counts as 0.
    pub fn since(&self, older: &HistogramSnapshot) -> HistogramSnapshot {
        let counts = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, now)| now.saturating_sub(older.counts.get(i).copied().unwrap_or(0)))
            .collect::<Vec<u64>>();
        HistogramSnapshot {
            count: counts.iter().sum(),
            counts,
            sum: self.sum.saturating_sub(older.sum),
        }
    }

    /// The `q` quantile (0..=1) in ms: the middle of the bucket that holds the value of rank
    /// ceil(q * count); NaN when nothing was recorded (as Prometheus' client reports an
    /// empty summary).
    pub fn quantile(&self, q: f64) -> f64 {
        if self.count == 0 {
            return f64::NAN;
        }
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        let mut seen = 0;
        for (index, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = bucket_range(index);
                return ((low + high) / 2) as f64;
            }
        }
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_value_in_order() {
        let mut previous_high = None;
        for index in 0..BUCKETS {
            let (low, high) = bucket_range(index);
            assert!(low <= high);
            if let Some(p) = previous_high {
                assert_eq!(
                    low,
                    p + 1,
                    "bucket {index} does not follow the previous one"
                );
            }
            assert_eq!(bucket_of(low), index);
            assert_eq!(bucket_of(high), index);
            previous_high = Some(high);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        // Relative width above the exact range: at most 1/64.
        for value in [128u64, 1000, 65_537, 10_000_000] {
            let (low, high) = bucket_range(bucket_of(value));
            assert!((high - low) as f64 / low as f64 <= 1.0 / 64.0, "{value}");
        }
    }

    #[test]
    fn quantiles_of_known_values() {
        let h = LocalHistogram::default();
        for v in 1..=100u64 {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.count, 100);
        assert_eq!(s.sum, 5050);
        assert_eq!(s.quantile(0.5), 50.0);
        assert_eq!(s.quantile(0.9), 90.0);
        assert_eq!(s.quantile(0.99), 99.0);
        assert!(HistogramSnapshot::default().quantile(0.5).is_nan());
        // A large value lands within its bucket's 1/64.
        let big = LocalHistogram::default();
        big.record(5000);
        let q = big.snapshot().quantile(0.5);
        assert!((q - 5000.0).abs() / 5000.0 < 1.0 / 64.0, "{q}");
    }

    #[test]
    fn packet_totals_survive_closes_and_crst_and_restart_at_srst() {
        let p = PacketTotals::default();
        assert_eq!(p.totals(5, 4), (5, 4));
        p.fold(5, 4); // that connection closed
        assert_eq!(p.totals(2, 1), (7, 5));
        p.reset(2, 1); // srst
        assert_eq!(p.totals(2, 1), (0, 0));
        assert_eq!(p.totals(3, 1), (1, 0));
        p.fold(3, 1); // crst reset that connection
        assert_eq!(p.totals(0, 0), (1, 0));
    }

    #[test]
    fn merge_and_since() {
        let a = LocalHistogram::default();
        let b = AtomicHistogram::new();
        a.record(3);
        b.record(7);
        let mut merged = a.snapshot();
        merged.merge(&b.snapshot());
        assert_eq!((merged.count, merged.sum), (2, 10));
        let before = merged.clone();
        a.record(200);
        let mut after = a.snapshot();
        after.merge(&b.snapshot());
        let window = after.since(&before);
        assert_eq!((window.count, window.sum), (1, 200));
        assert_eq!(window.quantile(1.0), {
            let (l, h) = bucket_range(bucket_of(200));
            ((l + h) / 2) as f64
        });
    }
}
