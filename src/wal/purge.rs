//! Which old snapshots and log segments may be deleted, as ZooKeeper's PurgeTxnLog decides.
//!
//! Keep the `retain_count` newest snapshots. Let Z be the zxid of the oldest one kept. Keep
//! every segment whose first zxid is above Z, and the one segment with the largest first zxid
//! at or below Z (it holds the txns right after Z: the segment that straddles the snapshot).
//! Everything older goes. Temp files and unknown names are never touched.
//!
//! Like ZooKeeper this counts snapshots by name; recovery copes with a damaged kept snapshot
//! by falling back to an older kept one, which the retained segments cover. Pure.

use std::num::NonZeroUsize;

use super::{parse_name, SEGMENT_PREFIX, SNAPSHOT_PREFIX};

/// File names to delete.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgePlan {
    pub snapshots: Vec<String>,
    pub segments: Vec<String>,
}

pub fn plan_purge(
    snapshot_names: &[String],
    segment_names: &[String],
    retain_count: NonZeroUsize,
) -> PurgePlan {
    let mut snapshots: Vec<(i64, &String)> = snapshot_names
        .iter()
        .filter_map(|name| parse_name(name, SNAPSHOT_PREFIX).map(|zxid| (zxid, name)))
        .collect();
    snapshots.sort();
    // With fewer snapshots than `retain_count`, all are kept and the oldest still bounds
    // the logs, as in ZooKeeper.
    let first_kept = snapshots.len().saturating_sub(retain_count.get());
    let Some(&(oldest_kept_zxid, _)) = snapshots.get(first_kept) else {
        return PurgePlan::default(); // no snapshot at all: nothing may go
    };
    let mut segments: Vec<(i64, &String)> = segment_names
        .iter()
        .filter_map(|name| parse_name(name, SEGMENT_PREFIX).map(|zxid| (zxid, name)))
        .collect();
    segments.sort();
    let straddling = segments
        .iter()
        .rposition(|(zxid, _)| *zxid <= oldest_kept_zxid);
    let segments_to_delete = match straddling {
        Some(index) => segments[..index]
            .iter()
            .map(|(_, n)| (*n).clone())
            .collect(),
        None => Vec::new(),
    };
    PurgePlan {
        snapshots: snapshots[..first_kept]
            .iter()
            .map(|(_, n)| (*n).clone())
            .collect(),
        segments: segments_to_delete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn retain(n: usize) -> NonZeroUsize {
        NonZeroUsize::new(n).unwrap()
    }

    #[test]
    fn keeps_newest_snapshots_and_the_segments_they_need() {
        let snapshots = names(&["snapshot.0", "snapshot.64", "snapshot.c8", "snapshot.12c"]);
        let segments = names(&["log.1", "log.32", "log.5a", "log.96", "log.fa", "log.140"]);
        // Keep 0xc8 and 0x12c: 0xc8 = 200 lies in log.96 (150..250).
        let plan = plan_purge(&snapshots, &segments, retain(2));
        assert_eq!(plan.snapshots, names(&["snapshot.0", "snapshot.64"]));
        assert_eq!(plan.segments, names(&["log.1", "log.32", "log.5a"]));
    }

    #[test]
    fn a_segment_starting_exactly_at_the_snapshot_zxid_is_the_straddling_one() {
        let snapshots = names(&["snapshot.10", "snapshot.20"]);
        let segments = names(&["log.1", "log.10", "log.11", "log.21"]);
        let plan = plan_purge(&snapshots, &segments, retain(1));
        assert_eq!(plan.snapshots, names(&["snapshot.10"]));
        // 0x20 lies in log.11 (0x11..0x20); log.1 and log.10 go.
        assert_eq!(plan.segments, names(&["log.1", "log.10"]));
    }

    #[test]
    fn fewer_snapshots_than_retained_still_drops_logs_before_the_oldest() {
        let snapshots = names(&["snapshot.50"]);
        let segments = names(&["log.1", "log.40", "log.60"]);
        let plan = plan_purge(&snapshots, &segments, retain(3));
        assert!(plan.snapshots.is_empty());
        assert_eq!(plan.segments, names(&["log.1"]));
    }

    #[test]
    fn nothing_goes_without_snapshots_and_other_names_are_ignored() {
        let segments = names(&["log.1", "log.40"]);
        assert_eq!(plan_purge(&[], &segments, retain(3)), PurgePlan::default());
        let snapshots = names(&["snapshot.5.tmp", "snapshot.50", "notes.txt", "snapshot.zz"]);
        let segments = names(&["log.1", "log.40", "log.60", "log.60.bak"]);
        let plan = plan_purge(&snapshots, &segments, retain(1));
        assert!(plan.snapshots.is_empty());
        assert_eq!(plan.segments, names(&["log.1"]));
    }

    #[test]
    fn all_segments_after_the_snapshot_are_kept() {
        let snapshots = names(&["snapshot.5", "snapshot.6"]);
        let segments = names(&["log.7", "log.9"]);
        let plan = plan_purge(&snapshots, &segments, retain(1));
        assert_eq!(plan.snapshots, names(&["snapshot.5"]));
        assert!(plan.segments.is_empty());
    }
}
