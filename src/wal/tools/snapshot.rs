//! `zkrs snapshot dump`: a snapshot's header, nodes, sessions and trailer check.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

use crate::tree::Znode;
use crate::wal::snapshot::{
    load_snapshot, verify_snapshot, SnapshotError, SnapshotSink, SNAPSHOT_VERSION,
};
use crate::wal::{parse_name, SNAPSHOT_PREFIX};

use super::render::{acl_json, acl_text, data_text, iso_time, json_line, AclJson, DataJson, Hex};
use super::{file_name, read_regular_file, Format, ToolError};

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
        (Format::Json, Some(header)) => json_line(
            out,
            &SnapshotLine::Header {
                file: path.display().to_string(),
                file_len,
                version: SNAPSHOT_VERSION,
                db_id: header.db_id,
                last_zxid: Hex(header.last_zxid),
            },
        )?,
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
            Format::Json => json_line(
                out,
                &SnapshotLine::Node {
                    path,
                    czxid: Hex(node.czxid),
                    mzxid: Hex(node.mzxid),
                    pzxid: Hex(node.pzxid),
                    ctime: iso_time(node.ctime),
                    ctime_ms: node.ctime,
                    mtime: iso_time(node.mtime),
                    mtime_ms: node.mtime,
                    version: node.version,
                    cversion: node.cversion,
                    aversion: node.aversion,
                    ephemeral_owner: Hex(node.ephemeral_owner),
                    num_children,
                    data: DataJson::of(node.data()),
                    acl: acl_json(&node.acl),
                },
            )?,
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
            Format::Json => json_line(
                out,
                &SnapshotLine::Session {
                    id: Hex(*id),
                    timeout_ms: *timeout_ms,
                    ephemerals: count,
                },
            )?,
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
        Format::Json => json_line(
            out,
            &SnapshotLine::Trailer {
                valid: verdict == SnapshotVerdict::Valid,
                nodes: collect.nodes.len(),
                sessions: collect.sessions.len(),
                message: &message,
            },
        )?,
    }
    Ok(verdict)
}

/// One line of `--json` output.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum SnapshotLine<'a> {
    Header {
        file: String,
        file_len: u64,
        version: u32,
        db_id: i64,
        last_zxid: Hex,
    },
    Node {
        path: &'a str,
        czxid: Hex,
        mzxid: Hex,
        pzxid: Hex,
        ctime: String,
        ctime_ms: i64,
        mtime: String,
        mtime_ms: i64,
        version: i32,
        cversion: i32,
        aversion: i32,
        ephemeral_owner: Hex,
        num_children: u32,
        #[serde(flatten)]
        data: DataJson,
        acl: Vec<AclJson<'a>>,
    },
    Session {
        id: Hex,
        timeout_ms: i32,
        ephemerals: u32,
    },
    Trailer {
        valid: bool,
        nodes: usize,
        sessions: usize,
        message: &'a str,
    },
}

/// The parent of an absolute path; None for `/` (and for anything not absolute).
fn parent_of(path: &str) -> Option<&str> {
    if path == "/" || !path.starts_with('/') {
        return None;
    }
    let cut = path.rfind('/')?;
    Some(if cut == 0 { "/" } else { &path[..cut] })
}
