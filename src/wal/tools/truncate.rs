//! `zkrs log truncate`: what cutting a segment at an offset discards, and the cut.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::wal::format::SEGMENT_HEADER_LEN;
use crate::wal::recovery::{scan_segment, truncate_log_at, ScanEnd};
use crate::wal::storage::RealStorage;
use crate::wal::{parse_name, SEGMENT_PREFIX};

use super::{file_name, later_files, read_regular_file, ToolError};

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
