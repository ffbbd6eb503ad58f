//! `zkrs log dump`: every record of a txn log segment, and how its records end.

use std::fmt::Write as _;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::tree::Txn;
use crate::wal::format::{SegmentHeader, SEGMENT_VERSION};
use crate::wal::recovery::{scan_segment, ScanEnd, SegmentScan};
use crate::wal::{parse_name, zxid_follows, SEGMENT_PREFIX};

use super::render::{acl_json, acl_text, data_text, iso_time, json_line, AclJson, DataJson, Hex};
use super::{file_name, later_files, read_regular_file, Format, ToolError};

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
            Format::Json => json_line(
                out,
                &LogLine::Header {
                    file: path.display().to_string(),
                    file_len,
                    version: SEGMENT_VERSION,
                    db_id: header.db_id,
                    first_zxid: Hex(header.first_zxid),
                    first_batch_seq: header.first_batch_seq,
                },
            )?,
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
            Format::Json => json_line(
                out,
                &LogLine::Record {
                    offset: *offset,
                    zxid: Hex(record.header.zxid),
                    session_id: Hex(record.header.session_id),
                    time: iso_time(record.header.time_ms),
                    time_ms: record.header.time_ms,
                    cxid: record.header.cxid,
                    op: record.header.op,
                    batch_seq: record.batch.seq,
                    last_in_batch: record.batch.last_in_batch,
                    txn: TxnJson::of(&record.txn),
                },
            )?,
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
        Format::Json => json_line(
            out,
            &LogLine::End {
                outcome: verdict.name(),
                offset,
                records,
                server_would_start: verdict.server_would_start(),
                message: &message,
            },
        )?,
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
/// One line of `--json` output.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum LogLine<'a> {
    Header {
        file: String,
        file_len: u64,
        version: u32,
        db_id: i64,
        first_zxid: Hex,
        first_batch_seq: u64,
    },
    Record {
        offset: u64,
        zxid: Hex,
        session_id: Hex,
        time: String,
        time_ms: i64,
        /// The request's xid and opcode (0 in records written before version 3).
        cxid: i32,
        op: i32,
        batch_seq: u64,
        last_in_batch: bool,
        txn: TxnJson<'a>,
    },
    End {
        outcome: &'static str,
        offset: u64,
        records: usize,
        server_would_start: bool,
        message: &'a str,
    },
}

/// A txn in JSON: `type` (as [`txn_type`] names it), then its fields.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "camelCase")]
pub(super) enum TxnJson<'a> {
    CreateSession {
        timeout_ms: i32,
    },
    CloseSession {
        ephemerals: &'a [String],
    },
    Create {
        path: &'a str,
        #[serde(flatten)]
        data: DataJson,
        acl: Vec<AclJson<'a>>,
        ephemeral_owner: Hex,
        parent_cversion: i32,
    },
    Delete {
        path: &'a str,
    },
    SetData {
        path: &'a str,
        #[serde(flatten)]
        data: DataJson,
        version: i32,
    },
    #[serde(rename = "setACL")]
    SetAcl {
        path: &'a str,
        acl: Vec<AclJson<'a>>,
        aversion: i32,
    },
    Check {
        path: &'a str,
        version: i32,
    },
    Multi {
        ops: Vec<TxnJson<'a>>,
    },
    Error {
        code: i32,
        name: String,
    },
}

impl<'a> TxnJson<'a> {
    pub(super) fn of(txn: &'a Txn) -> TxnJson<'a> {
        match txn {
            Txn::CreateSession { timeout_ms } => TxnJson::CreateSession {
                timeout_ms: *timeout_ms,
            },
            Txn::CloseSession { ephemerals } => TxnJson::CloseSession { ephemerals },
            Txn::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            } => TxnJson::Create {
                path,
                data: DataJson::of(data),
                acl: acl_json(acl),
                ephemeral_owner: Hex(*ephemeral_owner),
                parent_cversion: *parent_cversion,
            },
            Txn::Delete { path } => TxnJson::Delete { path },
            Txn::SetData {
                path,
                data,
                version,
            } => TxnJson::SetData {
                path,
                data: DataJson::of(data),
                version: *version,
            },
            Txn::SetAcl { path, acl, version } => TxnJson::SetAcl {
                path,
                acl: acl_json(acl),
                aversion: *version,
            },
            Txn::Check { path, version } => TxnJson::Check {
                path,
                version: *version,
            },
            Txn::Multi(ops) => TxnJson::Multi {
                ops: ops.iter().map(TxnJson::of).collect(),
            },
            Txn::Error(code) => TxnJson::Error {
                code: code.code(),
                name: format!("{code:?}"),
            },
        }
    }
}

/// The name ZooKeeper's tools print for a txn type (`Request.op2String`).
pub(super) fn txn_type(txn: &Txn) -> &'static str {
    crate::zab::txn::txn_name(txn)
}

pub(super) fn txn_text(txn: &Txn, depth: usize, line: &mut String) {
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
