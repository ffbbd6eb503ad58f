//! The tools on files made here: every txn type, damage of each kind, purge and truncate
//! plans. (tests/durability_tools.rs runs them on files a real server wrote.)

use std::num::NonZeroUsize;
use std::path::Path;

use bytes::Bytes;
use serde_json::Value;

use super::log::{txn_type, TxnJson};
use super::render::perms_text;
use super::*;
use crate::proto::{Acl, ErrorCode, Id};
use crate::tree::{Txn, TxnHeader};
use crate::wal::format::SegmentHeader;
use crate::wal::format::{encode_record, BatchMark, RECORD_PREFIX_LEN};
use crate::wal::recovery::WalDirs;
use crate::wal::snapshot::save_snapshot;
use crate::wal::snapshot::tests::MapState;
use crate::wal::storage::RealStorage;
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
            ..Default::default()
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

/// Every line is one JSON object with a string `kind`, written first.
fn assert_json_lines(text: &str) {
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(value["kind"].is_string(), "{line}");
        assert!(line.starts_with("{\"kind\":\""), "{line}");
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
    assert_eq!(perms_text(31), "cdrwa");
    assert_eq!(perms_text(1 | 64), "r+0x40");
}

#[test]
fn txns_in_json_are_named_as_in_text_and_strings_round_trip() {
    for txn in txns() {
        let value = serde_json::to_value(TxnJson::of(&txn)).unwrap();
        assert_eq!(value["type"], txn_type(&txn), "{value}");
        if let Txn::Multi(ops) = &txn {
            for (op, json) in ops.iter().zip(value["ops"].as_array().unwrap()) {
                assert_eq!(json["type"], txn_type(op), "{value}");
            }
        }
    }
    let close = Txn::CloseSession {
        ephemerals: vec!["/e\n\"\\\u{1}é".into()],
    };
    let text = serde_json::to_string(&TxnJson::of(&close)).unwrap();
    assert_eq!(
        text,
        "{\"type\":\"closeSession\",\"ephemerals\":[\"/e\\n\\\"\\\\\\u0001é\"]}"
    );
    let back: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(back["ephemerals"][0], "/e\n\"\\\u{1}é");
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
    assert!(
        json.contains("\"kind\":\"session\",\"id\":\"0xf\",\"timeout_ms\":30000,\"ephemerals\":1")
    );
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
