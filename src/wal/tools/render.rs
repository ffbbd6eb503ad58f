//! What the dumps share: times, data previews, ACLs and permissions, in text and in the
//! JSON records' field types.

use std::fmt::Write as _;
use std::io::{self, Write};

use serde::{Serialize, Serializer};

use crate::proto::Acl;

/// Bytes of data shown in a dump.
pub const DATA_PREVIEW_BYTES: usize = 32;

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
pub(super) fn perms_text(perms: i32) -> String {
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

pub(super) fn data_text(data: &[u8], line: &mut String) {
    let _ = write!(line, "data={}B \"{}\"", data.len(), data_preview(data));
}

pub(super) fn acl_text(acl: &[Acl], line: &mut String) {
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

/// Writes `value` as one line of JSON.
pub(super) fn json_line(out: &mut dyn Write, value: &impl Serialize) -> io::Result<()> {
    serde_json::to_writer(&mut *out, value)?;
    writeln!(out)
}

/// A zxid or session id, as ZooKeeper prints them: the string `"0x1f4"`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hex(pub i64);

impl Serialize for Hex {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{:#x}", self.0))
    }
}

/// Data as its length and a preview (the `data_length` and `data_preview` fields, flattened
/// into the record).
#[derive(Serialize)]
pub(super) struct DataJson {
    data_length: usize,
    data_preview: String,
}

impl DataJson {
    pub(super) fn of(data: &[u8]) -> DataJson {
        DataJson {
            data_length: data.len(),
            data_preview: data_preview(data),
        }
    }
}

/// One ACL entry.
#[derive(Serialize)]
pub(super) struct AclJson<'a> {
    perms: i32,
    scheme: &'a str,
    id: &'a str,
}

pub(super) fn acl_json(acl: &[Acl]) -> Vec<AclJson<'_>> {
    acl.iter()
        .map(|entry| AclJson {
            perms: entry.perms,
            scheme: &entry.id.scheme,
            id: &entry.id.id,
        })
        .collect()
}
