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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use crate::proto::Acl;
use crate::tree::{Txn, Znode};

use super::format::{SegmentHeader, SEGMENT_HEADER_LEN, SEGMENT_VERSION};
use super::purge::{plan_purge, PurgePlan};
use super::recovery::{scan_segment, truncate_log_at, ScanEnd, SegmentScan, WalDirs};
use super::snapshot::{
    load_snapshot, verify_snapshot, SnapshotError, SnapshotSink, SNAPSHOT_VERSION,
};
use super::storage::{RealStorage, Storage};
use super::{parse_name, zxid_follows, SEGMENT_PREFIX, SNAPSHOT_PREFIX};

/// Bytes of data shown in a dump.
pub const DATA_PREVIEW_BYTES: usize = 32;

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

/// How a scanned log segment ends, as recovery would judge it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogVerdict {
    /// Every record is valid; only zeros or the end of the file follow.
    Clean,
    /// A torn write of the last batch at the end of the newest segment: the server cuts it
    /// off at start-up (it was never acknowledged).
    TornTail,
    /// Damage the server refuses to start with.
    Corrupt,
    /// The file has no valid segment header (not a log segment, or one whose header never
    /// reached the disk).
    BadHeader,
}

impl LogVerdict {
    /// Whether the server would start with this segment (possibly after cutting a torn tail).
    pub fn server_would_start(self) -> bool {
        matches!(self, LogVerdict::Clean | LogVerdict::TornTail)
    }

    fn name(self) -> &'static str {
        match self {
            LogVerdict::Clean => "clean",
            LogVerdict::TornTail => "torn_tail",
            LogVerdict::Corrupt => "corrupt",
            LogVerdict::BadHeader => "bad_header",
        }
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

/// Prints every record of a log segment and how its records end; see the module docs for
/// the formats. Returns the verdict (the caller turns it into an exit code).
pub fn dump_log(path: &Path, format: Format, out: &mut dyn Write) -> Result<LogVerdict, ToolError> {
    let bytes = read_regular_file(path)?;
    let name_zxid = parse_name(&file_name(path), SEGMENT_PREFIX);
    // A file renamed by hand still dumps: trust its header for the zxid then.
    let header_zxid = SegmentHeader::decode(&bytes).ok().map(|h| h.first_zxid);
    let scan = scan_segment(&bytes, name_zxid.or(header_zxid).unwrap_or(0));
    let file_len = bytes.len() as u64;
    drop(bytes);

    match &scan.header {
        Some(header) => match format {
            Format::Text => {
                writeln!(
                    out,
                    "txn log segment {}: {file_len} bytes, format version {SEGMENT_VERSION}, db id {}, first zxid {:#x}, first batch {}",
                    path.display(),
                    header.db_id,
                    header.first_zxid,
                    header.first_batch_seq
                )?;
                writeln!(
                    out,
                    "{:>10}  {:<12}  {:<18}  {:<24}  {:>7}  txn",
                    "offset", "zxid", "session", "time", "batch"
                )?;
            }
            Format::Json => {
                let mut o = JsonObject::new("header");
                o.str("file", &path.display().to_string());
                o.num("file_len", file_len);
                o.num("version", SEGMENT_VERSION);
                o.num("db_id", header.db_id);
                o.hex("first_zxid", header.first_zxid);
                o.num("first_batch_seq", header.first_batch_seq);
                writeln!(out, "{}", o.finish())?;
            }
        },
        None => {
            if format == Format::Text {
                writeln!(out, "txn log segment {}: {file_len} bytes", path.display())?;
            }
        }
    }

    // Checks the scan of one file cannot make but recovery does.
    let mut problem: Option<(u64, String)> = None;
    if let (Some(header), Some(name_zxid)) = (&scan.header, name_zxid) {
        if header.first_zxid != name_zxid {
            problem = Some((
                0,
                format!(
                    "the file name says first zxid {name_zxid:#x} but the header says {:#x}",
                    header.first_zxid
                ),
            ));
        }
    }
    let mut previous: Option<i64> = None;
    for (offset, record) in &scan.records {
        if let Some(previous) = previous {
            if problem.is_none() && !zxid_follows(previous, record.header.zxid) {
                problem = Some((
                    *offset,
                    format!(
                        "zxid {:#x} right after zxid {previous:#x}: txns are missing",
                        record.header.zxid
                    ),
                ));
            }
        }
        previous = Some(record.header.zxid);
        match format {
            Format::Text => {
                let batch = format!(
                    "{}{}",
                    record.batch.seq,
                    if record.batch.last_in_batch { "*" } else { " " }
                );
                let mut line = format!(
                    "{offset:>10}  {:<12}  {:<18}  {:<24}  {batch:>7}  ",
                    format!("{:#x}", record.header.zxid),
                    format!("{:#x}", record.header.session_id),
                    iso_time(record.header.time_ms),
                );
                txn_text(&record.txn, 0, &mut line);
                writeln!(out, "{line}")?;
            }
            Format::Json => {
                let mut o = JsonObject::new("record");
                o.num("offset", *offset);
                o.hex("zxid", record.header.zxid);
                o.hex("session_id", record.header.session_id);
                o.str("time", &iso_time(record.header.time_ms));
                o.num("time_ms", record.header.time_ms);
                o.num("batch_seq", record.batch.seq);
                o.bool("last_in_batch", record.batch.last_in_batch);
                o.raw("txn", &txn_json(&record.txn));
                writeln!(out, "{}", o.finish())?;
            }
        }
    }

    let records = scan.records.len();
    let (verdict, offset, message) = judge_scan(path, &scan, name_zxid, problem);
    match format {
        Format::Text => writeln!(
            out,
            "end: {} after {records} record(s), at offset {offset}: {message}",
            match verdict {
                LogVerdict::Clean => "clean end",
                LogVerdict::TornTail => "torn tail",
                LogVerdict::Corrupt => "corruption",
                LogVerdict::BadHeader => "bad header",
            }
        )?,
        Format::Json => {
            let mut o = JsonObject::new("end");
            o.str("outcome", verdict.name());
            o.num("offset", offset);
            o.num("records", records as u64);
            o.bool("server_would_start", verdict.server_would_start());
            o.str("message", &message);
            writeln!(out, "{}", o.finish())?;
        }
    }
    Ok(verdict)
}

/// The verdict on a scanned segment, the offset it is about and a sentence saying why.
fn judge_scan(
    path: &Path,
    scan: &SegmentScan,
    name_zxid: Option<i64>,
    problem: Option<(u64, String)>,
) -> (LogVerdict, u64, String) {
    let later = || later_files(path, SEGMENT_PREFIX, name_zxid.unwrap_or(i64::MAX));
    if scan.header.is_none() {
        let (offset, damage, later_record) = match &scan.end {
            ScanEnd::Torn { offset, damage } => (*offset, damage.to_string(), None),
            ScanEnd::Corrupt {
                offset,
                damage,
                later_record_offset,
            } => (*offset, damage.to_string(), *later_record_offset),
            ScanEnd::Clean { offset } => (*offset, String::new(), None),
        };
        let message = match later_record {
            Some(later) => format!(
                "{damage}, yet a valid record follows at offset {later}: not a zkrs txn log segment, or one whose header was damaged after it was written"
            ),
            None => format!(
                "{damage}: not a zkrs txn log segment (if this is the newest segment and holds nothing, zkrs removes it at start-up: a crash while it was being started)"
            ),
        };
        return (LogVerdict::BadHeader, offset, message);
    }
    if let Some((offset, message)) = problem {
        return (
            LogVerdict::Corrupt,
            offset,
            format!("{message}; zkrs refuses to start with this file"),
        );
    }
    match &scan.end {
        ScanEnd::Clean { offset } => (
            LogVerdict::Clean,
            *offset,
            "only zeros (preallocated space) or the end of the file follow".to_string(),
        ),
        ScanEnd::Torn { offset, damage } => {
            let later = later();
            if let Some(next) = later.first() {
                (
                    LogVerdict::Corrupt,
                    *offset,
                    format!(
                        "{damage}; this would be a torn write, but a later segment {next} exists, so it is damage to synced data and zkrs refuses to start; `zkrs log truncate {} {offset} --yes` drops everything from here on (and every later segment)",
                        path.display()
                    ),
                )
            } else {
                (
                    LogVerdict::TornTail,
                    *offset,
                    format!(
                        "{damage}; a torn write of the last batch (never acknowledged): zkrs cuts the file here at start-up"
                    ),
                )
            }
        }
        ScanEnd::Corrupt {
            offset,
            damage,
            later_record_offset,
        } => {
            let evidence = match later_record_offset {
                Some(later) => {
                    format!("a valid record of a later batch follows at offset {later}")
                }
                None => "the record passes its checksum".to_string(),
            };
            (
                LogVerdict::Corrupt,
                *offset,
                format!(
                    "{damage}; {evidence}, so this is damage to synced data and zkrs refuses to start; `zkrs log truncate {} {offset} --yes` drops everything from here on (and every later segment)",
                    path.display()
                ),
            )
        }
    }
}

/// What a snapshot dump found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotVerdict {
    /// Header, entries, counts and CRC all check.
    Valid,
    /// The file fails a check; recovery passes it over.
    Damaged,
}

#[derive(Default)]
struct Collect {
    nodes: Vec<(String, Znode)>,
    sessions: Vec<(i64, i32)>,
}

impl SnapshotSink for Collect {
    fn insert_node(&mut self, path: &str, node: Znode) {
        self.nodes.push((path.to_string(), node));
    }

    fn insert_session(&mut self, session_id: i64, timeout_ms: i32) {
        self.sessions.push((session_id, timeout_ms));
    }

    fn set_last_zxid(&mut self, _zxid: i64) {}
}

/// Prints a snapshot's header, every node with its stat, every session and the result of
/// the trailer check (counts and CRC). A snapshot that fails its CRC is still decoded as far
/// as it goes, with a warning that what follows may be wrong.
pub fn dump_snapshot(
    path: &Path,
    format: Format,
    out: &mut dyn Write,
) -> Result<SnapshotVerdict, ToolError> {
    let mut bytes = read_regular_file(path)?;
    let file_len = bytes.len() as u64;
    let name_zxid = parse_name(&file_name(path), SNAPSHOT_PREFIX);
    let mut problems: Vec<String> = Vec::new();
    let verified = verify_snapshot(&bytes);
    if let Err(SnapshotError::BadChecksum { .. }) = &verified {
        // Decode anyway, for the operator: give the copy a matching CRC.
        if let Some(split) = bytes.len().checked_sub(4) {
            let crc = crc32c::crc32c(&bytes[..split]);
            bytes[split..].copy_from_slice(&crc.to_le_bytes());
        }
    }
    let header = match &verified {
        Ok(header) => Some(*header),
        Err(SnapshotError::BadChecksum { .. }) => verify_snapshot(&bytes).ok(),
        Err(_) => None,
    };
    if let Err(e) = &verified {
        problems.push(e.to_string());
    }
    if let (Some(header), Some(name_zxid)) = (header, name_zxid) {
        if header.last_zxid != name_zxid {
            problems.push(
                SnapshotError::NameMismatch {
                    name_zxid,
                    header_zxid: header.last_zxid,
                }
                .to_string(),
            );
        }
    }

    match (format, header) {
        (Format::Text, Some(header)) => writeln!(
            out,
            "snapshot {}: {file_len} bytes, format version {SNAPSHOT_VERSION}, db id {}, last zxid {:#x}",
            path.display(),
            header.db_id,
            header.last_zxid
        )?,
        (Format::Text, None) => writeln!(out, "snapshot {}: {file_len} bytes", path.display())?,
        (Format::Json, Some(header)) => {
            let mut o = JsonObject::new("header");
            o.str("file", &path.display().to_string());
            o.num("file_len", file_len);
            o.num("version", SNAPSHOT_VERSION);
            o.num("db_id", header.db_id);
            o.hex("last_zxid", header.last_zxid);
            writeln!(out, "{}", o.finish())?;
        }
        (Format::Json, None) => {}
    }
    if format == Format::Text && matches!(verified, Err(SnapshotError::BadChecksum { .. })) {
        writeln!(
            out,
            "WARNING: {}; decoding anyway, the entries below may be wrong",
            problems.first().map(String::as_str).unwrap_or("damaged")
        )?;
    }

    let mut collect = Collect::default();
    let summary = if header.is_some() {
        match load_snapshot(&bytes, &mut collect) {
            Ok(summary) => Some(summary),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        }
    } else {
        None
    };
    drop(bytes);

    // Counts the snapshot does not store: children and ephemerals.
    let mut children: HashMap<&str, u32> = HashMap::new();
    let mut ephemerals: HashMap<i64, u32> = HashMap::new();
    for (path, node) in &collect.nodes {
        if let Some(parent) = parent_of(path) {
            *children.entry(parent).or_default() += 1;
        }
        if let crate::tree::EphemeralKind::Session(owner) = node.kind() {
            *ephemerals.entry(owner).or_default() += 1;
        }
    }

    if format == Format::Text && !collect.nodes.is_empty() {
        writeln!(out, "nodes ({}):", collect.nodes.len())?;
    }
    for (path, node) in &collect.nodes {
        let num_children = children.get(path.as_str()).copied().unwrap_or(0);
        match format {
            Format::Text => {
                let mut line = format!(
                    "{path}  czxid={:#x} mzxid={:#x} pzxid={:#x} ctime={} mtime={} version={} cversion={} aversion={} ephemeralOwner={:#x} numChildren={num_children} ",
                    node.czxid,
                    node.mzxid,
                    node.pzxid,
                    iso_time(node.ctime),
                    iso_time(node.mtime),
                    node.version,
                    node.cversion,
                    node.aversion,
                    node.ephemeral_owner,
                );
                data_text(&node.data, &mut line);
                line.push(' ');
                acl_text(&node.acl, &mut line);
                writeln!(out, "{line}")?;
            }
            Format::Json => {
                let mut o = JsonObject::new("node");
                o.str("path", path);
                o.hex("czxid", node.czxid);
                o.hex("mzxid", node.mzxid);
                o.hex("pzxid", node.pzxid);
                o.str("ctime", &iso_time(node.ctime));
                o.num("ctime_ms", node.ctime);
                o.str("mtime", &iso_time(node.mtime));
                o.num("mtime_ms", node.mtime);
                o.num("version", node.version);
                o.num("cversion", node.cversion);
                o.num("aversion", node.aversion);
                o.hex("ephemeral_owner", node.ephemeral_owner);
                o.num("num_children", num_children);
                data_json(&node.data, &mut o);
                o.raw("acl", &acl_json(&node.acl));
                writeln!(out, "{}", o.finish())?;
            }
        }
    }
    if format == Format::Text && !collect.sessions.is_empty() {
        writeln!(
            out,
            "sessions ({}): id, timeout ms, ephemerals",
            collect.sessions.len()
        )?;
    }
    for (id, timeout_ms) in &collect.sessions {
        let count = ephemerals.get(id).copied().unwrap_or(0);
        match format {
            Format::Text => writeln!(out, "{id:#x}  {timeout_ms}  {count}")?,
            Format::Json => {
                let mut o = JsonObject::new("session");
                o.hex("id", *id);
                o.num("timeout_ms", *timeout_ms);
                o.num("ephemerals", count);
                writeln!(out, "{}", o.finish())?;
            }
        }
    }

    let verdict = if problems.is_empty() && summary.is_some() {
        SnapshotVerdict::Valid
    } else {
        SnapshotVerdict::Damaged
    };
    let message = if problems.is_empty() {
        "counts and CRC32C check".to_string()
    } else {
        let mut message = problems.join("; ");
        message.push_str("; zkrs passes this snapshot over at start-up (and refuses to start if no older snapshot with the txn log covers it)");
        message
    };
    match format {
        Format::Text => writeln!(
            out,
            "trailer: {} node(s), {} session(s): {}: {message}",
            collect.nodes.len(),
            collect.sessions.len(),
            if verdict == SnapshotVerdict::Valid {
                "valid"
            } else {
                "DAMAGED"
            }
        )?,
        Format::Json => {
            let mut o = JsonObject::new("trailer");
            o.bool("valid", verdict == SnapshotVerdict::Valid);
            o.num("nodes", collect.nodes.len() as u64);
            o.num("sessions", collect.sessions.len() as u64);
            o.str("message", &message);
            writeln!(out, "{}", o.finish())?;
        }
    }
    Ok(verdict)
}

/// The parent of an absolute path; None for `/` (and for anything not absolute).
fn parent_of(path: &str) -> Option<&str> {
    if path == "/" || !path.starts_with('/') {
        return None;
    }
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}

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

/// What `zkrs log truncate FILE OFFSET` would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruncatePlan {
    /// The segment, absolute.
    pub file: PathBuf,
    pub log_dir: PathBuf,
    pub offset: u64,
    pub file_len: u64,
    /// The offset is at most the header's length: the whole file goes.
    pub removes_file: bool,
    /// The offset is where a valid record starts or where the valid records end; otherwise
    /// the cut leaves part of a record, which the next start-up cuts again as a torn tail.
    pub at_record_boundary: bool,
    /// Later segments, removed too.
    pub later_segments: Vec<PathBuf>,
    /// Valid records lost (in this file from the offset on, and in the later segments).
    pub lost_records: u64,
    /// The first and last zxid among them.
    pub lost_zxids: Option<(i64, i64)>,
}

/// Works out what truncating `file` at `offset` discards, without changing anything.
pub fn plan_truncate(file: &Path, offset: u64) -> Result<TruncatePlan, ToolError> {
    let input = |message: String| ToolError::Input(message);
    let file =
        std::fs::canonicalize(file).map_err(|e| input(format!("{}: {e}", file.display())))?;
    let name = file_name(&file);
    let Some(name_zxid) = parse_name(&name, SEGMENT_PREFIX) else {
        return Err(input(format!(
            "{}: not a txn log segment name (log.<zxid hex>)",
            file.display()
        )));
    };
    let Some(log_dir) = file.parent().map(Path::to_path_buf) else {
        return Err(input(format!("{}: no parent directory", file.display())));
    };
    let bytes = read_regular_file(&file)?;
    let file_len = bytes.len() as u64;
    if offset > file_len {
        return Err(input(format!(
            "offset {offset} is past the end of {} ({file_len} bytes)",
            file.display()
        )));
    }
    let scan = scan_segment(&bytes, name_zxid);
    drop(bytes);
    let mut lost_records = 0u64;
    let mut lost_zxids: Option<(i64, i64)> = None;
    let mut lose = |zxid: i64| {
        lost_records += 1;
        lost_zxids = Some(match lost_zxids {
            None => (zxid, zxid),
            Some((first, last)) => (first.min(zxid), last.max(zxid)),
        });
    };
    let removes_file = offset <= SEGMENT_HEADER_LEN as u64;
    let end_offset = match &scan.end {
        ScanEnd::Clean { offset }
        | ScanEnd::Torn { offset, .. }
        | ScanEnd::Corrupt { offset, .. } => *offset,
    };
    let mut at_record_boundary = removes_file || offset >= end_offset;
    // Records are contiguous: each ends where the next starts, the last where the scan ended.
    let ends = scan
        .records
        .iter()
        .skip(1)
        .map(|(o, _)| *o)
        .chain(std::iter::once(end_offset));
    for ((record_offset, record), record_end) in scan.records.iter().zip(ends) {
        at_record_boundary |= *record_offset == offset;
        // A record that starts before the cut but ends after it is lost too.
        if removes_file || record_end > offset {
            lose(record.header.zxid);
        }
    }
    let later_segments: Vec<PathBuf> = later_files(&file, SEGMENT_PREFIX, name_zxid)
        .into_iter()
        .map(|name| log_dir.join(name))
        .collect();
    for later in &later_segments {
        if let Ok(bytes) = read_regular_file(later) {
            let zxid = parse_name(&file_name(later), SEGMENT_PREFIX).unwrap_or(0);
            for (_, record) in scan_segment(&bytes, zxid).records {
                lose(record.header.zxid);
            }
        }
    }
    Ok(TruncatePlan {
        file,
        log_dir,
        offset,
        file_len,
        removes_file,
        at_record_boundary,
        later_segments,
        lost_records,
        lost_zxids,
    })
}

/// Prints what [`truncate`] with this plan discards.
pub fn describe_truncate(plan: &TruncatePlan, out: &mut dyn Write) -> io::Result<()> {
    if plan.removes_file {
        writeln!(
            out,
            "{} would be removed (offset {} is within its {SEGMENT_HEADER_LEN}-byte header)",
            plan.file.display(),
            plan.offset
        )?;
    } else {
        writeln!(
            out,
            "{} would be cut from {} to {} bytes",
            plan.file.display(),
            plan.file_len,
            plan.offset
        )?;
    }
    for later in &plan.later_segments {
        writeln!(
            out,
            "{} would be removed (a later segment)",
            later.display()
        )?;
    }
    match plan.lost_zxids {
        Some((first, last)) => writeln!(
            out,
            "{} valid txn record(s) would be lost: zxids {first:#x} to {last:#x}",
            plan.lost_records
        )?,
        None => writeln!(out, "no valid txn record would be lost")?,
    }
    if !plan.at_record_boundary {
        writeln!(
            out,
            "warning: offset {} is not where a record starts; the part of the record left before it is cut again as a torn tail at the next start-up",
            plan.offset
        )?;
    }
    Ok(())
}

/// Cuts the segment at the plan's offset (removing it when the offset is within its header)
/// and removes every later segment, durably. The server must not be running.
pub fn truncate(plan: &TruncatePlan) -> Result<Vec<PathBuf>, ToolError> {
    truncate_log_at(&RealStorage, &plan.log_dir, &plan.file, plan.offset)
        .map_err(|e| ToolError::Input(e.to_string()))
}

/// `2024-03-15T10:00:00.123Z` (proleptic Gregorian calendar, UTC) for ms since the epoch.
pub fn iso_time(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let ms_of_day = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        ms_of_day / 3_600_000,
        ms_of_day / 60_000 % 60,
        ms_of_day / 1000 % 60,
        ms_of_day % 1000
    )
}

/// The first [`DATA_PREVIEW_BYTES`] bytes: printable ASCII as is (`"` and `\` escaped),
/// others as `\xNN`; `...` after it when the data is longer.
pub fn data_preview(data: &[u8]) -> String {
    let mut s = String::new();
    for &b in data.iter().take(DATA_PREVIEW_BYTES) {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    if data.len() > DATA_PREVIEW_BYTES {
        s.push_str("...");
    }
    s
}

/// ZooKeeper's permission letters (as zkCli prints them): c d r w a.
fn perms_text(perms: i32) -> String {
    let mut s = String::new();
    for (bit, letter) in [(4, 'c'), (8, 'd'), (1, 'r'), (2, 'w'), (16, 'a')] {
        if perms & bit != 0 {
            s.push(letter);
        }
    }
    let unknown = perms & !31;
    if unknown != 0 {
        let _ = write!(s, "+{unknown:#x}");
    }
    s
}

fn data_text(data: &[u8], line: &mut String) {
    let _ = write!(line, "data={}B \"{}\"", data.len(), data_preview(data));
}

fn acl_text(acl: &[Acl], line: &mut String) {
    line.push_str("acl=[");
    for (i, entry) in acl.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let _ = write!(
            line,
            "{}:{}:{}",
            entry.id.scheme,
            entry.id.id,
            perms_text(entry.perms)
        );
    }
    line.push(']');
}

/// The name ZooKeeper's tools print for a txn type (`Request.op2String`).
fn txn_type(txn: &Txn) -> &'static str {
    match txn {
        Txn::CreateSession { .. } => "createSession",
        Txn::CloseSession { .. } => "closeSession",
        Txn::Create { .. } => "create",
        Txn::Delete { .. } => "delete",
        Txn::SetData { .. } => "setData",
        Txn::SetAcl { .. } => "setACL",
        Txn::Check { .. } => "check",
        Txn::Multi(_) => "multi",
        Txn::Error(_) => "error",
    }
}

fn txn_text(txn: &Txn, depth: usize, line: &mut String) {
    line.push_str(txn_type(txn));
    match txn {
        Txn::CreateSession { timeout_ms } => {
            let _ = write!(line, " timeout={timeout_ms}");
        }
        Txn::CloseSession { ephemerals } => {
            let _ = write!(line, " ephemerals={ephemerals:?}");
        }
        Txn::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => {
            let _ = write!(line, " path={path:?} ");
            data_text(data, line);
            line.push(' ');
            acl_text(acl, line);
            let _ = write!(
                line,
                " ephemeralOwner={ephemeral_owner:#x} parentCversion={parent_cversion}"
            );
        }
        Txn::Delete { path } => {
            let _ = write!(line, " path={path:?}");
        }
        Txn::SetData {
            path,
            data,
            version,
        } => {
            let _ = write!(line, " path={path:?} ");
            data_text(data, line);
            let _ = write!(line, " version={version}");
        }
        Txn::SetAcl { path, acl, version } => {
            let _ = write!(line, " path={path:?} ");
            acl_text(acl, line);
            let _ = write!(line, " aversion={version}");
        }
        Txn::Check { path, version } => {
            let _ = write!(line, " path={path:?} version={version}");
        }
        Txn::Multi(ops) => {
            let _ = write!(line, " ops={}", ops.len());
            for (i, op) in ops.iter().enumerate() {
                let _ = write!(line, "\n{:indent$}[{i}] ", "", indent = 12 + 4 * depth);
                txn_text(op, depth + 1, line);
            }
        }
        Txn::Error(code) => {
            let _ = write!(line, " code={} ({code:?})", code.code());
        }
    }
}

fn data_json(data: &[u8], o: &mut JsonObject) {
    o.num("data_length", data.len() as u64);
    o.str("data_preview", &data_preview(data));
}

fn acl_json(acl: &[Acl]) -> String {
    let entries: Vec<String> = acl
        .iter()
        .map(|entry| {
            let mut o = JsonObject::plain();
            o.num("perms", entry.perms);
            o.str("scheme", &entry.id.scheme);
            o.str("id", &entry.id.id);
            o.finish()
        })
        .collect();
    format!("[{}]", entries.join(","))
}

fn txn_json(txn: &Txn) -> String {
    let mut o = JsonObject::plain();
    o.str("type", txn_type(txn));
    match txn {
        Txn::CreateSession { timeout_ms } => o.num("timeout_ms", *timeout_ms),
        Txn::CloseSession { ephemerals } => {
            let paths: Vec<String> = ephemerals.iter().map(|p| json_string(p)).collect();
            o.raw("ephemerals", &format!("[{}]", paths.join(",")));
        }
        Txn::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => {
            o.str("path", path);
            data_json(data, &mut o);
            o.raw("acl", &acl_json(acl));
            o.hex("ephemeral_owner", *ephemeral_owner);
            o.num("parent_cversion", *parent_cversion);
        }
        Txn::Delete { path } => o.str("path", path),
        Txn::SetData {
            path,
            data,
            version,
        } => {
            o.str("path", path);
            data_json(data, &mut o);
            o.num("version", *version);
        }
        Txn::SetAcl { path, acl, version } => {
            o.str("path", path);
            o.raw("acl", &acl_json(acl));
            o.num("aversion", *version);
        }
        Txn::Check { path, version } => {
            o.str("path", path);
            o.num("version", *version);
        }
        Txn::Multi(ops) => {
            let ops: Vec<String> = ops.iter().map(txn_json).collect();
            o.raw("ops", &format!("[{}]", ops.join(",")));
        }
        Txn::Error(code) => {
            o.num("code", code.code());
            o.str("name", &format!("{code:?}"));
        }
    }
    o.finish()
}

/// A JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds one JSON object, fields in insertion order.
struct JsonObject {
    out: String,
}

impl JsonObject {
    /// An object whose first field is `"kind": kind`.
    fn new(kind: &str) -> JsonObject {
        let mut o = JsonObject::plain();
        o.str("kind", kind);
        o
    }

    fn plain() -> JsonObject {
        JsonObject {
            out: String::from("{"),
        }
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        self.out.push_str(&json_string(key));
        self.out.push(':');
    }

    fn str(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(&json_string(value));
    }

    fn num(&mut self, key: &str, value: impl std::fmt::Display) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    fn hex(&mut self, key: &str, value: i64) {
        self.str(key, &format!("{value:#x}"));
    }

    fn bool(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out.push_str(if value { "true" } else { "false" });
    }

    /// `value` must already be JSON.
    fn raw(&mut self, key: &str, value: &str) {
        self.key(key);
        self.out.push_str(value);
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}
