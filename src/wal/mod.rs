//! Durability: the txn log (write-ahead log), snapshots, recovery and purge.
//!
//! Named `wal` rather than `log` so that it never shadows the `log` crate's macros.
//!
//! Architecture Invariant: nothing here touches a file except through the [`Storage`] trait
//! (or [`dma::DmaLog`], which carries out the same [`LogLayout`] plans with direct I/O),
//! and nothing here decides what is committed: the log task hands `DmaLog::append_batch`
//! (tests and tools: [`Wal::append_batch`]) a group of batches and may acknowledge their
//! writes once (and only once) the call returns Ok.
//!
//! Code map:
//! - [`format`]: the log segment header and record encoding (documented there).
//! - [`snapshot`]: snapshot files and the [`SnapshotSource`] / [`SnapshotSink`] traits.
//! - [`recovery`]: the scan that finds the valid records, torn tails and corruption.
//! - [`writer`]: [`LogLayout`] (the writer's decisions: encoding, segments, preallocation,
//!   alignment and padding), [`Wal`], which carries them out over a [`Storage`], and
//!   `Wal::open`, the start-up recovery.
//! - [`dma`]: `DmaLog`, which carries out the same plans with O_DIRECT writes on the
//!   executor's blocking pool (the server's writer); [`aligned`]: its aligned buffers.
//! - [`purge`]: which old snapshots and segments may be deleted (ZooKeeper's PurgeTxnLog).
//! - [`storage`]: the [`Storage`] trait and [`RealStorage`]; [`sim`]: [`SimStorage`].
//! - [`tools`]: the offline dump, purge and truncate commands of the `zkrs` CLI.
//!
//! On disk, as in ZooKeeper: log segments `log.<first zxid hex>` in the log directory,
//! snapshots `snapshot.<last zxid hex>` in the snapshot directory (the two may be the same).

pub mod aligned;
mod codec;
pub mod dma;
pub mod format;
pub mod purge;
pub mod recovery;
pub mod sim;
pub mod snapshot;
pub mod storage;
pub mod tools;
pub mod writer;

#[cfg(test)]
mod crash_tests;

pub use codec::DecodeError;
pub use format::{decode_record, encode_record, BatchMark, LoggedTxn, RecordError};
pub use purge::{plan_purge, PurgePlan};
pub use recovery::{Recovered, RecoveryError, WalDirs};
pub use sim::{CrashMode, SimStorage};
pub use snapshot::{SnapshotError, SnapshotSink, SnapshotSource};
pub use storage::{RealStorage, Storage};
pub use writer::{
    align_down, align_up, AppendPlan, LogLayout, NewSegment, Wal, WalConfig, WalError,
};

pub const SEGMENT_PREFIX: &str = "log.";
pub const SNAPSHOT_PREFIX: &str = "snapshot.";
/// Suffix of a snapshot being written; such files are removed at start-up.
pub const TEMP_SUFFIX: &str = ".tmp";

/// `log.<zxid in lowercase hex>`, as ZooKeeper names its log files.
pub fn segment_name(first_zxid: i64) -> String {
    format!("{SEGMENT_PREFIX}{first_zxid:x}")
}

/// `snapshot.<zxid in lowercase hex>`, as ZooKeeper names its snapshots.
pub fn snapshot_name(last_zxid: i64) -> String {
    format!("{SNAPSHOT_PREFIX}{last_zxid:x}")
}

/// The zxid in a name made by [`segment_name`] or [`snapshot_name`]; None for any other name
/// (temp files included).
pub fn parse_name(name: &str, prefix: &str) -> Option<i64> {
    let hex = name.strip_prefix(prefix)?;
    if hex.is_empty() || hex.len() > 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok().map(|z| z as i64)
}

/// The epoch half of a zxid.
pub fn zxid_epoch(zxid: i64) -> i64 {
    zxid >> 32
}

/// Whether `next` may directly follow `previous` in the log: the next counter of the same
/// epoch, or any zxid of a later epoch (a new leader starts a new epoch; ZooKeeper logs no
/// marker for the switch, so a loss across an epoch change cannot be seen from zxids).
pub fn zxid_follows(previous: i64, next: i64) -> bool {
    next == previous.wrapping_add(1) || zxid_epoch(next) > zxid_epoch(previous)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_zookeeper_and_parse_back() {
        assert_eq!(segment_name(0x1_0000_0001), "log.100000001");
        assert_eq!(snapshot_name(0), "snapshot.0");
        assert_eq!(
            parse_name("log.100000001", SEGMENT_PREFIX),
            Some(0x1_0000_0001)
        );
        assert_eq!(parse_name("snapshot.ff", SNAPSHOT_PREFIX), Some(255));
        for bad in [
            "log.",
            "log.+1",
            "log.1.tmp",
            "log.xyz",
            "snapshot.1",
            "log.11111111111111111",
        ] {
            assert_eq!(parse_name(bad, SEGMENT_PREFIX), None, "{bad}");
        }
        assert_eq!(parse_name("snapshot.5.tmp", SNAPSHOT_PREFIX), None);
    }

    #[test]
    fn zxids_follow_within_an_epoch_or_into_a_later_one() {
        assert!(zxid_follows(5, 6));
        assert!(!zxid_follows(5, 7));
        assert!(!zxid_follows(5, 5));
        assert!(!zxid_follows(6, 5));
        assert!(zxid_follows(0x1_0000_0009, 0x2_0000_0001));
        assert!(!zxid_follows(0x2_0000_0009, 0x1_0000_000a));
    }
}
