//! `zkrs purge`: ZooKeeper's PurgeTxnLog (zkCleanup) for zkrs's files.

use std::io::Write;
use std::num::NonZeroUsize;
use std::path::Path;

use crate::wal::purge::{plan_purge, PurgePlan};
use crate::wal::recovery::WalDirs;
use crate::wal::storage::{RealStorage, Storage};
use crate::wal::{parse_name, SEGMENT_PREFIX, SNAPSHOT_PREFIX};

use super::ToolError;

/// Deletes all but the `retain` newest snapshots and the log segments only they need, as
/// ZooKeeper's PurgeTxnLog: segments first, then snapshots, each directory synced. Prints a
/// `Removing file:` line per file. Never touches temp files, unknown names or the newest
/// segment.
///
/// Safe while a server runs on these directories, as ZooKeeper's zkCleanup.sh is: files it
/// adds meanwhile (a new snapshot, a new segment) were not listed and stay, and a plan made
/// from fewer snapshots keeps more, never less.
pub fn purge(
    dirs: &WalDirs,
    retain: NonZeroUsize,
    out: &mut dyn Write,
) -> Result<PurgePlan, ToolError> {
    let storage = RealStorage;
    let list = |dir: &Path| {
        storage
            .list(dir)
            .map_err(|e| ToolError::Input(format!("cannot list {}: {e}", dir.display())))
    };
    let snapshots = list(&dirs.snapshot_dir)?;
    let segments = list(&dirs.log_dir)?;
    let plan = plan_purge(&snapshots, &segments, retain);
    for (dir, names) in [
        (&dirs.log_dir, &plan.segments),
        (&dirs.snapshot_dir, &plan.snapshots),
    ] {
        for name in names {
            let path = dir.join(name);
            writeln!(out, "Removing file: {}", path.display())?;
            storage
                .remove(&path)
                .map_err(|e| ToolError::Input(format!("cannot remove {}: {e}", path.display())))?;
        }
        if !names.is_empty() {
            storage
                .sync_dir(dir)
                .map_err(|e| ToolError::Input(format!("cannot sync {}: {e}", dir.display())))?;
        }
    }
    let count = |names: &[String], prefix: &str| {
        names
            .iter()
            .filter(|n| parse_name(n, prefix).is_some())
            .count()
    };
    writeln!(
        out,
        "kept {} snapshot(s) in {} and {} log segment(s) in {}; removed {} snapshot(s) and {} log segment(s)",
        count(&snapshots, SNAPSHOT_PREFIX) - plan.snapshots.len(),
        dirs.snapshot_dir.display(),
        count(&segments, SEGMENT_PREFIX) - plan.segments.len(),
        dirs.log_dir.display(),
        plan.snapshots.len(),
        plan.segments.len()
    )?;
    Ok(plan)
}
