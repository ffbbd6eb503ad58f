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
                    "{:>10}  {:<12}  {:<18}  {:<24}  {:>7}  txn   (batch*: the last record of a write+sync)",
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
                data_text(node.data(), &mut line);
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
                data_json(node.data(), &mut o);
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::proto::{ErrorCode, Id};
    use crate::tree::TxnHeader;
    use crate::wal::format::{encode_record, BatchMark, RECORD_PREFIX_LEN};
    use crate::wal::snapshot::save_snapshot;
    use crate::wal::snapshot::tests::MapState;
    use crate::wal::{segment_name, snapshot_name};

    fn open_acl() -> Vec<Acl> {
        vec![Acl {
            perms: 31,
            id: Id {
                scheme: "world".into(),
                id: "anyone".into(),
            },
        }]
    }

    /// One txn of every kind, a nested multi with a check and errors included.
    fn txns() -> Vec<Txn> {
        vec![
            Txn::CreateSession { timeout_ms: 4000 },
            Txn::Create {
                path: "/a".into(),
                data: Bytes::from_static(b"\x00\x01hi\"\\"),
                acl: open_acl(),
                ephemeral_owner: 0,
                parent_cversion: 1,
            },
            Txn::SetData {
                path: "/a".into(),
                data: Bytes::from(vec![b'z'; 100]),
                version: 1,
            },
            Txn::SetAcl {
                path: "/a".into(),
                acl: open_acl(),
                version: 1,
            },
            Txn::Multi(vec![
                Txn::Check {
                    path: "/a".into(),
                    version: 2,
                },
                Txn::Error(ErrorCode::NoNode),
            ]),
            Txn::Delete { path: "/a".into() },
            Txn::CloseSession {
                ephemerals: vec!["/e\n".into()],
            },
        ]
    }

    /// A segment with one batch per txn, zxids `first..`, preallocated with zeros.
    fn segment(first: i64, txns: &[Txn]) -> (Vec<u8>, Vec<u64>) {
        let mut bytes = SegmentHeader {
            db_id: 0,
            first_zxid: first,
            first_batch_seq: 0,
        }
        .encode()
        .to_vec();
        let mut offsets = Vec::new();
        for (i, txn) in txns.iter().enumerate() {
            offsets.push(bytes.len() as u64);
            let header = TxnHeader {
                session_id: 0x77,
                zxid: first + i as i64,
                time_ms: 1_700_000_000_123,
            };
            let batch = BatchMark {
                seq: i as u64,
                last_in_batch: true,
            };
            encode_record(&header, txn, batch, &mut bytes).unwrap();
        }
        offsets.push(bytes.len() as u64);
        bytes.resize(bytes.len() + 512, 0);
        (bytes, offsets)
    }

    fn dump(path: &Path, format: Format) -> (LogVerdict, String) {
        let mut out = Vec::new();
        let verdict = dump_log(path, format, &mut out).unwrap();
        (verdict, String::from_utf8(out).unwrap())
    }

    /// Every line is one `{...}` object with a `kind` first (a full parse is in the
    /// integration tests).
    fn assert_json_lines(text: &str) {
        for line in text.lines() {
            assert!(
                line.starts_with("{\"kind\":\"") && line.ends_with('}'),
                "{line}"
            );
        }
    }

    #[test]
    fn iso_times_are_utc_with_milliseconds() {
        assert_eq!(iso_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(iso_time(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(iso_time(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(iso_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(iso_time(951_868_800_000), "2000-03-01T00:00:00.000Z");
        // Garbage times print, whatever they are, without overflow.
        assert!(iso_time(i64::MAX).ends_with('Z'));
        assert!(iso_time(i64::MIN).ends_with('Z'));
    }

    #[test]
    fn previews_escape_and_shorten() {
        assert_eq!(data_preview(b"plain text"), "plain text");
        assert_eq!(data_preview(b"\x00\xff\"\\\n"), "\\x00\\xff\\\"\\\\\\x0a");
        let long = vec![b'a'; DATA_PREVIEW_BYTES + 1];
        assert_eq!(
            data_preview(&long),
            format!("{}...", "a".repeat(DATA_PREVIEW_BYTES))
        );
        assert_eq!(json_string("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
        assert_eq!(perms_text(31), "cdrwa");
        assert_eq!(perms_text(1 | 64), "r+0x40");
    }

    #[test]
    fn a_clean_segment_dumps_every_record_in_text_and_json() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(5));
        let (bytes, offsets) = segment(5, &txns());
        std::fs::write(&path, bytes).unwrap();

        let (verdict, text) = dump(&path, Format::Text);
        assert_eq!(verdict, LogVerdict::Clean);
        for name in [
            "createSession timeout=4000",
            "create path=\"/a\" data=6B \"\\x00\\x01hi\\\"\\\\\" acl=[world:anyone:cdrwa]",
            "setData path=\"/a\" data=100B",
            "setACL path=\"/a\" acl=[world:anyone:cdrwa] aversion=1",
            "multi ops=2",
            "[0] check path=\"/a\" version=2",
            "[1] error code=-101 (NoNode)",
            "delete path=\"/a\"",
            "closeSession ephemerals=[\"/e\\n\"]",
            "2023-11-14T22:13:20.123Z",
            "0x77",
        ] {
            assert!(text.contains(name), "no {name:?} in:\n{text}");
        }
        let end = text.lines().last().unwrap();
        assert_eq!(
            end,
            format!(
                "end: clean end after 7 record(s), at offset {}: only zeros (preallocated space) or the end of the file follow",
                offsets[7]
            )
        );

        let (verdict, json) = dump(&path, Format::Json);
        assert_eq!(verdict, LogVerdict::Clean);
        assert_json_lines(&json);
        let lines: Vec<&str> = json.lines().collect();
        assert_eq!(lines.len(), 1 + 7 + 1);
        assert!(lines[0].contains("\"first_zxid\":\"0x5\""));
        assert!(lines[1].contains("\"offset\":40,\"zxid\":\"0x5\""));
        assert!(lines[2]
            .contains("\"data_length\":6,\"data_preview\":\"\\\\x00\\\\x01hi\\\\\\\"\\\\\\\\\""));
        assert!(lines[5].contains(
            "\"ops\":[{\"type\":\"check\",\"path\":\"/a\",\"version\":2},{\"type\":\"error\",\"code\":-101,\"name\":\"NoNode\"}]"
        ));
        assert!(lines[8].contains("\"outcome\":\"clean\""));
        assert!(lines[8].contains("\"records\":7"));
    }

    #[test]
    fn torn_corrupt_and_garbage_segments_are_judged_as_recovery_would() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(segment_name(1));
        let (bytes, offsets) = segment(1, &txns());

        // The last record cut short: a torn tail, while this is the newest segment.
        std::fs::write(&path, &bytes[..offsets[7] as usize - 3]).unwrap();
        let (verdict, text) = dump(&path, Format::Text);
        assert_eq!(verdict, LogVerdict::TornTail);
        assert!(
            text.lines().last().unwrap().starts_with(&format!(
                "end: torn tail after 6 record(s), at offset {}",
                offsets[6]
            )),
            "{text}"
        );
        // ... but corruption once a later segment exists.
        std::fs::write(dir.path().join(segment_name(100)), b"").unwrap();
        let (verdict, text) = dump(&path, Format::Text);
        assert_eq!(verdict, LogVerdict::Corrupt);
        assert!(text.contains("a later segment log.64 exists"), "{text}");
        std::fs::remove_file(dir.path().join(segment_name(100))).unwrap();

        // A damaged record with later batches after it: corruption at its offset.
        let mut bad = bytes.clone();
        bad[offsets[3] as usize + RECORD_PREFIX_LEN + 2] ^= 0x40;
        std::fs::write(&path, &bad).unwrap();
        let (verdict, json) = dump(&path, Format::Json);
        assert_eq!(verdict, LogVerdict::Corrupt);
        assert_json_lines(&json);
        let end = json.lines().last().unwrap();
        assert!(end.contains("\"outcome\":\"corrupt\""), "{end}");
        assert!(end.contains(&format!("\"offset\":{}", offsets[3])), "{end}");
        assert!(end.contains("\"records\":3"), "{end}");
        assert!(end.contains("\"server_would_start\":false"), "{end}");

        // A file name that disagrees with the header.
        let renamed = dir.path().join(segment_name(2));
        std::fs::write(&renamed, &bytes).unwrap();
        assert_eq!(dump(&renamed, Format::Text).0, LogVerdict::Corrupt);
        std::fs::remove_file(&renamed).unwrap();

        // Garbage, an empty file, a file renamed by hand: no panic, a verdict.
        for garbage in [
            vec![],
            vec![0u8; 10],
            b"ZKRSLOG1 but not really a header at all".to_vec(),
            (0..3000u32).map(|i| (i * 7919 % 251) as u8).collect(),
        ] {
            std::fs::write(&path, &garbage).unwrap();
            assert_eq!(dump(&path, Format::Text).0, LogVerdict::BadHeader);
            let (_, json) = dump(&path, Format::Json);
            assert_json_lines(&json);
        }
        let odd = dir.path().join("copy-of-a-segment");
        std::fs::write(&odd, &bytes).unwrap();
        assert_eq!(dump(&odd, Format::Text).0, LogVerdict::Clean);

        // Not a regular file, not there.
        for bad_path in [dir.path().to_path_buf(), dir.path().join("missing")] {
            let mut out = Vec::new();
            assert!(matches!(
                dump_log(&bad_path, Format::Text, &mut out),
                Err(ToolError::Input(_))
            ));
        }
    }

    fn map_state() -> MapState {
        let mut state = MapState::default();
        state
            .nodes
            .insert("/".into(), (Bytes::new(), open_acl(), 0, 0));
        state
            .nodes
            .insert("/a".into(), (Bytes::from_static(b"x"), open_acl(), 3, 1));
        state
            .nodes
            .insert("/a/b".into(), (Bytes::from_static(b"yy"), vec![], 5, 0));
        state.sessions.insert(15, 30_000);
        state.last_zxid = 9;
        state
    }

    #[test]
    fn snapshots_dump_nodes_sessions_and_the_trailer_check() {
        let dir = tempfile::tempdir().unwrap();
        let info = save_snapshot(&RealStorage, dir.path(), 0, &map_state()).unwrap();
        assert_eq!(info.path, dir.path().join(snapshot_name(9)));

        let mut out = Vec::new();
        let verdict = dump_snapshot(&info.path, Format::Text, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(verdict, SnapshotVerdict::Valid, "{text}");
        // MapState's znode(): mzxid = czxid + 1, ephemeral owner = czxid * 3 (15 for /a/b).
        assert!(
            text.contains("/a  czxid=0x3 mzxid=0x4 pzxid=0x5 ctime=1970-01-01T00:00:01.003Z"),
            "{text}"
        );
        assert!(text.contains("numChildren=1 data=1B \"x\" acl=[world:anyone:cdrwa]"));
        assert!(text.contains("/a/b  czxid=0x5"));
        assert!(text.contains("ephemeralOwner=0xf numChildren=0 data=2B \"yy\" acl=[]"));
        assert!(text.contains("0xf  30000  1"), "{text}");
        assert!(text
            .lines()
            .last()
            .unwrap()
            .starts_with("trailer: 3 node(s), 1 session(s): valid"));

        let mut out = Vec::new();
        dump_snapshot(&info.path, Format::Json, &mut out).unwrap();
        let json = String::from_utf8(out).unwrap();
        assert_json_lines(&json);
        assert!(json
            .contains("\"kind\":\"session\",\"id\":\"0xf\",\"timeout_ms\":30000,\"ephemerals\":1"));
        assert!(json.lines().last().unwrap().contains("\"valid\":true"));

        // A flipped byte in the entries: damaged, decoded anyway with a warning.
        let bytes = std::fs::read(&info.path).unwrap();
        let mut bad = bytes.clone();
        let data_at = bad.windows(2).position(|w| w == b"yy").unwrap();
        bad[data_at] = b'Y';
        std::fs::write(&info.path, &bad).unwrap();
        let mut out = Vec::new();
        let verdict = dump_snapshot(&info.path, Format::Text, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(verdict, SnapshotVerdict::Damaged);
        assert!(text.contains("WARNING: CRC32C mismatch"), "{text}");
        assert!(text.contains("data=2B \"Yy\""), "{text}");
        assert!(text.lines().last().unwrap().contains("DAMAGED"));

        // Cut anywhere, or garbage: damaged, never a panic.
        for cut in 0..bytes.len() {
            std::fs::write(&info.path, &bytes[..cut]).unwrap();
            for format in [Format::Text, Format::Json] {
                let mut out = Vec::new();
                assert_eq!(
                    dump_snapshot(&info.path, format, &mut out).unwrap(),
                    SnapshotVerdict::Damaged,
                    "cut at {cut}"
                );
            }
        }
        // The name must match the header.
        let renamed = dir.path().join(snapshot_name(8));
        std::fs::write(&renamed, &bytes).unwrap();
        let mut out = Vec::new();
        assert_eq!(
            dump_snapshot(&renamed, Format::Text, &mut out).unwrap(),
            SnapshotVerdict::Damaged
        );
        assert!(String::from_utf8(out)
            .unwrap()
            .contains("file name says zxid 0x8"));
    }

    #[test]
    fn purge_removes_what_the_plan_says_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let dirs = WalDirs {
            log_dir: dir.path().join("log"),
            snapshot_dir: dir.path().join("snap"),
        };
        std::fs::create_dir_all(&dirs.log_dir).unwrap();
        std::fs::create_dir_all(&dirs.snapshot_dir).unwrap();
        for zxid in [0x0, 0x64, 0xc8, 0x12c, 0x190] {
            std::fs::write(dirs.snapshot_dir.join(snapshot_name(zxid)), b"s").unwrap();
        }
        std::fs::write(dirs.snapshot_dir.join("snapshot.1f4.tmp"), b"t").unwrap();
        for zxid in [0x1, 0x65, 0xc9, 0x12d, 0x191] {
            std::fs::write(dirs.log_dir.join(segment_name(zxid)), b"l").unwrap();
        }
        let mut out = Vec::new();
        let plan = purge(&dirs, NonZeroUsize::new(3).unwrap(), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(plan.snapshots, ["snapshot.0", "snapshot.64"]);
        // snapshot.c8 needs log.65 (0x65..=0xc8).
        assert_eq!(plan.segments, ["log.1"]);
        let mut left: Vec<String> = std::fs::read_dir(&dirs.snapshot_dir)
            .unwrap()
            .chain(std::fs::read_dir(&dirs.log_dir).unwrap())
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "log.12d",
                "log.191",
                "log.65",
                "log.c9",
                "snapshot.12c",
                "snapshot.190",
                "snapshot.1f4.tmp",
                "snapshot.c8"
            ]
        );
        assert_eq!(text.matches("Removing file: ").count(), 3, "{text}");
        let summary = format!(
            "kept 3 snapshot(s) in {} and 4 log segment(s) in {}; removed 2 snapshot(s) and 1 log segment(s)\n",
            dirs.snapshot_dir.display(),
            dirs.log_dir.display()
        );
        assert!(text.ends_with(&summary), "{text}");

        let missing = WalDirs {
            log_dir: dir.path().join("nope"),
            snapshot_dir: dir.path().join("nope"),
        };
        assert!(matches!(
            purge(&missing, NonZeroUsize::new(3).unwrap(), &mut Vec::new()),
            Err(ToolError::Input(_))
        ));
    }

    #[test]
    fn truncate_plans_count_the_loss_and_cut_durably() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join(segment_name(1));
        let (bytes, offsets) = segment(1, &txns());
        std::fs::write(&first, &bytes).unwrap();
        let later = dir.path().join(segment_name(8));
        let (later_bytes, _) = segment(8, &txns()[..2]);
        std::fs::write(&later, &later_bytes).unwrap();

        // At a record boundary: that record, the rest of the file and the later segment.
        let plan = plan_truncate(&first, offsets[4]).unwrap();
        assert!(plan.at_record_boundary && !plan.removes_file);
        assert_eq!(plan.lost_records, 3 + 2);
        assert_eq!(plan.lost_zxids, Some((5, 9)));
        assert_eq!(plan.later_segments, [later.canonicalize().unwrap()]);
        let mut out = Vec::new();
        describe_truncate(&plan, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("5 valid txn record(s) would be lost: zxids 0x5 to 0x9"),
            "{text}"
        );
        assert!(!text.contains("warning"));

        // Inside a record: that record is lost too, with a warning.
        let plan = plan_truncate(&first, offsets[4] + 5).unwrap();
        assert!(!plan.at_record_boundary);
        assert_eq!(plan.lost_zxids, Some((5, 9)));
        // Within the header: the whole file.
        let plan = plan_truncate(&first, 10).unwrap();
        assert!(plan.removes_file);
        assert_eq!(plan.lost_records, 7 + 2);
        // Past the end, or not a segment: refused.
        assert!(plan_truncate(&first, bytes.len() as u64 + 1).is_err());
        let other = dir.path().join("notes");
        std::fs::write(&other, b"x").unwrap();
        assert!(plan_truncate(&other, 0).is_err());

        let plan = plan_truncate(&first, offsets[4]).unwrap();
        let later_canonical = later.canonicalize().unwrap();
        let removed = truncate(&plan).unwrap();
        assert_eq!(removed, [later_canonical]);
        assert!(!later.exists());
        assert_eq!(std::fs::metadata(&first).unwrap().len(), offsets[4]);
        let (verdict, _) = dump(&first, Format::Text);
        assert_eq!(verdict, LogVerdict::Clean);
    }
}
