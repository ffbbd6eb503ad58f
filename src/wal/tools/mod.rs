//! Offline tools over the files in the data directories, behind the `zkrs log dump`,
//! `zkrs log truncate`, `zkrs snapshot dump` and `zkrs purge` commands: what ZooKeeper's
//! TxnLogToolkit, SnapshotFormatter (zkSnapShotToolkit) and PurgeTxnLog (zkCleanup) do for
//! its files.
//!
//! Every function here reads untrusted files: none panics, none allocates by a length read
//! from the file (the format decoders guarantee that), and every failure is a message for
//! the operator. Output goes to a caller-given writer so that a closed pipe (`| head`) is an
//! error to return, not a panic.
//!
//! Outputs:
//! - text: one header line, one line per record or node (sub-operations of a multi on
//!   indented lines of their own), then one line with the outcome;
//! - JSON lines (`--json`): one object per line, each with a `kind` field: `header`, then
//!   `record` (log) or `node` / `session` (snapshot), then one `end` (log) or `trailer`
//!   (snapshot). zxids and session ids are hex strings (`"0x1f4"`) as ZooKeeper prints
//!   them; times are ISO 8601 UTC with milliseconds, and also given in ms (`time_ms`).
//!   Data is shown as its length and a preview of its first [`DATA_PREVIEW_BYTES`] bytes,
//!   printable ASCII as is and every other byte as `\xNN`.
//!
//! By file: `log.rs` (`log dump`), `snapshot.rs` (`snapshot dump`), `purge.rs`,
//! `truncate.rs` (`log truncate`); `render.rs` holds what the dumps share (times, data
//! previews, ACLs, hex ids). JSON lines are serde_json from typed records (`LogLine`,
//! `SnapshotLine`, `TxnJson`) whose fields serialize in declaration order, `kind` (or a
//! txn's `type`) first: that order, and the field names, are part of the output.

use std::io;
use std::path::Path;

use super::parse_name;
use super::storage::{RealStorage, Storage};

mod log;
mod purge;
mod render;
mod snapshot;
mod truncate;

#[cfg(test)]
mod tests;

pub use self::log::{dump_log, LogVerdict};
pub use self::purge::purge;
pub use self::render::{data_preview, iso_time, DATA_PREVIEW_BYTES};
pub use self::snapshot::{dump_snapshot, SnapshotVerdict};
pub use self::truncate::{describe_truncate, plan_truncate, truncate, TruncatePlan};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

/// Why a tool could not do its job.
#[derive(Debug)]
pub enum ToolError {
    /// The input cannot be used (missing, unreadable, not a regular file, bad arguments).
    Input(String),
    /// Writing the output failed (e.g. the reader of a pipe went away).
    Output(io::Error),
}

impl std::fmt::Display for ToolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolError::Input(message) => write!(f, "{message}"),
            ToolError::Output(e) => write!(f, "cannot write the output: {e}"),
        }
    }
}

impl std::error::Error for ToolError {}

impl From<io::Error> for ToolError {
    fn from(e: io::Error) -> ToolError {
        ToolError::Output(e)
    }
}

/// Reads a whole regular file (never a device or a FIFO, which could be endless).
fn read_regular_file(path: &Path) -> Result<Vec<u8>, ToolError> {
    let metadata = std::fs::metadata(path)
        .map_err(|e| ToolError::Input(format!("{}: {e}", path.display())))?;
    if !metadata.is_file() {
        return Err(ToolError::Input(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    std::fs::read(path).map_err(|e| ToolError::Input(format!("{}: {e}", path.display())))
}

/// The names of the other files in `path`'s directory with `prefix` and a zxid above `zxid`.
fn later_files(path: &Path, prefix: &str, zxid: i64) -> Vec<String> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut later: Vec<(i64, String)> = RealStorage
        .list(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|name| parse_name(&name, prefix).map(|z| (z, name)))
        .filter(|(z, _)| *z > zxid)
        .collect();
    later.sort();
    later.into_iter().map(|(_, name)| name).collect()
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
