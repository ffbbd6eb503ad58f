//! Crash consistency and corruption tests of the whole log over [`SimStorage`].
//!
//! The crash test runs a seeded workload (batches, snapshots, rolls, purges), counts its
//! mutating storage operations, then for every one of them reruns the workload with a crash
//! at that operation, restarts the simulated disk in one of the crash modes, recovers, and
//! checks: every acknowledged txn is back, in order, with no gap, plus at most a prefix of
//! the batch in flight; the state equals the model's at that zxid. Then it keeps writing
//! and crashes once more, to check that the log recovery left behind is sound. A failure
//! prints the seed and the crash point.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::format::{SegmentHeader, SEGMENT_HEADER_LEN};
use super::recovery::{scan_segment, Damage, ScanEnd};
use super::sim::{SimRng, SIM_SECTOR_LEN};
use super::snapshot::tests::MapState;
use super::*;
use crate::proto::{Acl, ErrorCode, Id};
use crate::tree::{Txn, TxnHeader};

fn dirs() -> WalDirs {
    WalDirs {
        log_dir: PathBuf::from("/data/log"),
        snapshot_dir: PathBuf::from("/data/snap"),
    }
}

thread_local! {
    /// The write alignment of [`small_config`] in this test's thread (1: unaligned).
    static ALIGNMENT: std::cell::Cell<u64> = const { std::cell::Cell::new(1) };
}

fn small_config() -> WalConfig {
    WalConfig {
        force_sync: true,
        pre_alloc_size_bytes: 1024,
        segment_len_max_bytes: 2048,
        db_id: 0,
        alignment: ALIGNMENT.with(std::cell::Cell::get),
    }
}

fn world() -> Vec<Acl> {
    vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

fn initial_state() -> MapState {
    let mut state = MapState::default();
    state
        .nodes
        .insert("/".into(), (Bytes::new(), world(), 0, 0));
    state
}

/// The model's apply: what a tree would do with these txns, on the stand-in state.
fn apply(state: &mut MapState, header: &TxnHeader, txn: &Txn) {
    match txn {
        Txn::CreateSession { timeout_ms } => {
            state.sessions.insert(header.session_id, *timeout_ms);
        }
        Txn::CloseSession { ephemerals } => {
            state.sessions.remove(&header.session_id);
            for path in ephemerals {
                state.nodes.remove(path);
            }
        }
        Txn::Create {
            path, data, acl, ..
        } => {
            state
                .nodes
                .insert(path.clone(), (data.clone(), acl.clone(), header.zxid, 0));
        }
        Txn::Delete { path } => {
            state.nodes.remove(path);
        }
        Txn::SetData { path, data, .. } => {
            if let Some(node) = state.nodes.get_mut(path) {
                node.0 = data.clone();
                node.3 += 1;
            }
        }
        Txn::SetAcl { path, acl, .. } => {
            if let Some(node) = state.nodes.get_mut(path) {
                node.1 = acl.clone();
            }
        }
        Txn::Check { .. } | Txn::Error(_) => {}
        Txn::Multi(txns) => {
            for sub in txns {
                apply(state, header, sub);
            }
        }
    }
    state.last_zxid = header.zxid;
}

/// Generates txns from a seed against a model of the state.
struct Workload {
    rng: SimRng,
    model: MapState,
    history: Vec<(TxnHeader, Txn)>,
    next_node: u64,
}

impl Workload {
    fn new(seed: u64, model: MapState, history: Vec<(TxnHeader, Txn)>) -> Workload {
        Workload {
            rng: SimRng::new(seed),
            next_node: seed % 1000 * 1_000_000 + history.len() as u64,
            model,
            history,
        }
    }

    fn existing_path(&mut self) -> Option<String> {
        let candidates: Vec<&String> = self.model.nodes.keys().filter(|p| *p != "/").collect();
        if candidates.is_empty() {
            return None;
        }
        let index = self.rng.below(candidates.len() as u64) as usize;
        Some(candidates[index].clone())
    }

    fn data(&mut self) -> Bytes {
        let len = self.rng.below(300) as usize;
        let byte = self.rng.below(256) as u8;
        Bytes::from(vec![byte; len])
    }

    fn txn(&mut self, depth: usize) -> Txn {
        match self.rng.below(if depth == 0 { 10 } else { 8 }) {
            0..=2 => {
                self.next_node += 1;
                Txn::Create {
                    path: format!("/n{}", self.next_node),
                    data: self.data(),
                    acl: world(),
                    ephemeral_owner: 0,
                    parent_cversion: 1,
                }
            }
            3 | 4 => match self.existing_path() {
                Some(path) => Txn::SetData {
                    path,
                    data: self.data(),
                    version: -1,
                },
                None => Txn::Error(ErrorCode::NoNode),
            },
            5 => match self.existing_path() {
                Some(path) => Txn::Delete { path },
                None => Txn::Error(ErrorCode::NoNode),
            },
            6 => Txn::CreateSession {
                timeout_ms: self.rng.range(2000, 40_000) as i32,
            },
            7 => Txn::Error(ErrorCode::BadVersion),
            8 => {
                let ephemerals = self.existing_path().into_iter().collect();
                Txn::CloseSession { ephemerals }
            }
            _ => {
                let count = self.rng.range(0, 3) as usize;
                Txn::Multi((0..count).map(|_| self.txn(depth + 1)).collect())
            }
        }
    }

    /// A batch of 1..=5 new txns, applied to the model and recorded in the history.
    fn batch(&mut self) -> Vec<(TxnHeader, Txn)> {
        let count = self.rng.range(1, 5) as usize;
        let mut batch = Vec::new();
        for _ in 0..count {
            let header = TxnHeader {
                session_id: self.rng.range(1, 4) as i64,
                zxid: self.history.len() as i64 + 1,
                time_ms: 1_700_000_000_000 + self.history.len() as i64,
                ..Default::default()
            };
            let txn = self.txn(0);
            apply(&mut self.model, &header, &txn);
            self.history.push((header, txn.clone()));
            batch.push((header, txn));
        }
        batch
    }
}

/// What a workload run got to before it stopped.
struct Run {
    history: Vec<(TxnHeader, Txn)>,
    /// The last zxid of a batch whose append_batch returned Ok.
    acked_zxid: i64,
    stopped: bool,
}

/// Runs `steps` workload steps on a fresh log; stops at the first storage error.
fn run_workload(storage: &SimStorage, seed: u64, steps: usize) -> Run {
    let mut workload = Workload::new(seed, initial_state(), Vec::new());
    let mut run = Run {
        history: Vec::new(),
        acked_zxid: 0,
        stopped: false,
    };
    let mut sink = MapState::default();
    let Ok((mut wal, recovered)) = Wal::open(storage.clone(), dirs(), small_config(), &mut sink)
    else {
        assert!(storage.is_stopped());
        run.stopped = true;
        return run;
    };
    assert!(recovered.snapshot.is_none(), "fresh start");
    let retain = NonZeroUsize::new(2).unwrap();
    let mut ok = wal.save_snapshot(&workload.model).is_ok();
    let mut step = 0;
    while ok && step < steps {
        step += 1;
        let action = workload.rng.below(100);
        ok = match action {
            0..=79 => {
                let batch = workload.batch();
                let result = wal.append_batch(&batch);
                if result.is_ok() {
                    run.acked_zxid = batch.last().unwrap().0.zxid;
                }
                result.is_ok()
            }
            80..=87 => wal.save_snapshot(&workload.model).is_ok(),
            88..=93 => wal.roll().is_ok(),
            _ => wal.purge(retain).is_ok(),
        };
    }
    run.stopped = !ok;
    assert_eq!(
        run.stopped,
        storage.is_stopped(),
        "only the simulated crash may fail"
    );
    run.history = workload.history;
    run
}

fn state_at(history: &[(TxnHeader, Txn)], zxid: i64) -> MapState {
    let mut state = initial_state();
    for (header, txn) in &history[..zxid as usize] {
        apply(&mut state, header, txn);
    }
    state
}

/// How often each recovery path was taken, to prove the crash test reaches them all.
#[derive(Debug, Default)]
struct Outcomes {
    recoveries: usize,
    fresh: usize,
    torn_tails: usize,
    removed_segments: usize,
    in_flight_batch_survived: usize,
    in_flight_batch_lost: usize,
}

/// Recovers and checks the result against the history. Returns the open Wal and the
/// recovered state.
fn recover_and_check(
    storage: &SimStorage,
    history: &[(TxnHeader, Txn)],
    acked_zxid: i64,
    context: &str,
) -> (Wal<SimStorage>, MapState) {
    recover_and_count(
        storage,
        history,
        acked_zxid,
        context,
        &mut Outcomes::default(),
    )
}

fn recover_and_count(
    storage: &SimStorage,
    history: &[(TxnHeader, Txn)],
    acked_zxid: i64,
    context: &str,
    outcomes: &mut Outcomes,
) -> (Wal<SimStorage>, MapState) {
    outcomes.recoveries += 1;
    let mut state = MapState::default();
    let (wal, recovered) = match Wal::open(storage.clone(), dirs(), small_config(), &mut state) {
        Ok(opened) => opened,
        Err(e) => panic!("{context}: recovery failed: {e}"),
    };
    outcomes.torn_tails += usize::from(recovered.torn_tail.is_some());
    outcomes.removed_segments += usize::from(!recovered.removed_segments.is_empty());
    if recovered.snapshot.is_none() {
        outcomes.fresh += 1;
        assert_eq!(
            acked_zxid, 0,
            "{context}: acknowledged txns but a fresh start"
        );
        return (wal, initial_state());
    }
    let (_, snapshot_zxid) = recovered.snapshot.clone().unwrap();
    assert!(
        snapshot_zxid <= acked_zxid,
        "{context}: snapshot ahead of acks"
    );
    assert_eq!(state.last_zxid, snapshot_zxid, "{context}");
    let mut expected_zxid = snapshot_zxid + 1;
    for (header, txn) in &recovered.txns {
        assert_eq!(header.zxid, expected_zxid, "{context}: gap or reorder");
        let logged = &history[(header.zxid - 1) as usize];
        assert_eq!(
            (header, txn),
            (&logged.0, &logged.1),
            "{context}: txn differs"
        );
        apply(&mut state, header, txn);
        expected_zxid += 1;
    }
    let last = expected_zxid - 1;
    assert_eq!(recovered.last_zxid, last, "{context}");
    assert!(
        last >= acked_zxid,
        "{context}: lost acknowledged txns: recovered up to {last}, acked {acked_zxid}"
    );
    assert!(
        last as usize <= history.len(),
        "{context}: txns from nowhere"
    );
    if last > acked_zxid {
        outcomes.in_flight_batch_survived += 1;
    } else if (history.len() as i64) > acked_zxid {
        outcomes.in_flight_batch_lost += 1;
    }
    assert_eq!(state, state_at(history, last), "{context}: state differs");
    (wal, state)
}

/// After recovery: keep writing, crash with nothing armed, recover again.
fn continue_after_recovery(
    storage: &SimStorage,
    mut wal: Wal<SimStorage>,
    state: MapState,
    history: &[(TxnHeader, Txn)],
    seed: u64,
    take_snapshot: bool,
    context: &str,
) {
    let last = state.last_zxid;
    let mut history = history[..last as usize].to_vec();
    if last == 0 && storage.list(&dirs().snapshot_dir).unwrap().is_empty() {
        wal.save_snapshot(&state).unwrap();
    }
    let mut workload = Workload::new(seed ^ 0xABCD, state, std::mem::take(&mut history));
    for round in 0..4 {
        let batch = workload.batch();
        wal.append_batch(&batch)
            .unwrap_or_else(|e| panic!("{context}: append after recovery: {e}"));
        // Without a snapshot the next recovery rescans the segments the last one left.
        if take_snapshot && round == 1 {
            wal.save_snapshot(&workload.model).unwrap();
        }
    }
    let acked = workload.history.len() as i64;
    drop(wal);
    let mode = storage.crash_random();
    let context = format!("{context}, then second crash {mode:?}");
    recover_and_check(storage, &workload.history, acked, &context);
}

fn crash_at_every_point(seed: u64, steps: usize, outcomes: &mut Outcomes) {
    let probe = SimStorage::new(seed);
    let full = run_workload(&probe, seed, steps);
    assert!(!full.stopped);
    let ops = probe.mutating_ops();
    assert!(ops > 50, "workload too small: {ops} ops");
    for crash_point in 1..=ops {
        let storage = SimStorage::new(seed.wrapping_mul(31).wrapping_add(crash_point));
        storage.crash_after(crash_point);
        let run = run_workload(&storage, seed, steps);
        assert!(run.stopped, "seed {seed}: no crash at op {crash_point}");
        let mode = CrashMode::ALL[(crash_point % 3) as usize];
        storage.crash(mode);
        let context = format!("seed {seed}, crash at op {crash_point} of {ops}, {mode:?}");
        let (wal, state) =
            recover_and_count(&storage, &run.history, run.acked_zxid, &context, outcomes);
        let take_snapshot = crash_point % 2 == 0;
        continue_after_recovery(
            &storage,
            wal,
            state,
            &run.history,
            seed,
            take_snapshot,
            &context,
        );
    }
}

#[test]
fn crash_at_every_write_and_sync_loses_no_acknowledged_txn() {
    let mut outcomes = Outcomes::default();
    for seed in [1, 2, 3, 4] {
        crash_at_every_point(seed, 80, &mut outcomes);
    }
    // Every path of recovery was exercised, not just the easy one.
    assert!(outcomes.recoveries > 800, "{outcomes:?}");
    assert!(outcomes.fresh > 0, "{outcomes:?}");
    assert!(outcomes.torn_tails > 20, "{outcomes:?}");
    assert!(outcomes.removed_segments > 5, "{outcomes:?}");
    assert!(outcomes.in_flight_batch_survived > 20, "{outcomes:?}");
    assert!(outcomes.in_flight_batch_lost > 20, "{outcomes:?}");
    eprintln!("{outcomes:?}");
}

#[test]
fn crash_at_every_point_with_sector_aligned_writes_loses_no_acknowledged_txn() {
    // The O_DIRECT layout: every write rewrites the partial tail block and pads to the
    // alignment (the simulated sector), so a crash tears whole rewritten sectors.
    ALIGNMENT.with(|a| a.set(SIM_SECTOR_LEN as u64));
    let mut outcomes = Outcomes::default();
    for seed in [5, 6] {
        crash_at_every_point(seed, 80, &mut outcomes);
    }
    assert!(outcomes.recoveries > 400, "{outcomes:?}");
    assert!(outcomes.torn_tails > 10, "{outcomes:?}");
    assert!(outcomes.in_flight_batch_survived > 10, "{outcomes:?}");
    assert!(outcomes.in_flight_batch_lost > 10, "{outcomes:?}");
    eprintln!("{outcomes:?}");
}

#[test]
fn crash_at_every_point_with_every_mode_on_one_seed() {
    let seed = 99;
    let probe = SimStorage::new(seed);
    run_workload(&probe, seed, 40);
    for crash_point in 1..=probe.mutating_ops() {
        for mode in CrashMode::ALL {
            let storage = SimStorage::new(crash_point);
            storage.crash_after(crash_point);
            let run = run_workload(&storage, seed, 40);
            storage.crash(mode);
            let context = format!("seed {seed}, crash at op {crash_point}, {mode:?}");
            recover_and_check(&storage, &run.history, run.acked_zxid, &context);
        }
    }
}

// ---- corruption ----

/// A log built without faults: snapshot at 0, then `batches` batches of `per_batch` txns;
/// a snapshot (after a roll) before each batch index in `snapshots_before`.
fn build_log(
    config: WalConfig,
    batches: usize,
    per_batch: usize,
    snapshots_before: &[usize],
) -> (SimStorage, Vec<(TxnHeader, Txn)>) {
    let storage = SimStorage::new(5);
    let mut sink = MapState::default();
    let (mut wal, _) = Wal::open(storage.clone(), dirs(), config, &mut sink).unwrap();
    let mut workload = Workload::new(5, initial_state(), Vec::new());
    wal.save_snapshot(&workload.model).unwrap();
    for index in 0..batches {
        if snapshots_before.contains(&index) {
            wal.roll().unwrap();
            wal.save_snapshot(&workload.model).unwrap();
        }
        let mut batch = Vec::new();
        for _ in 0..per_batch {
            let header = TxnHeader {
                session_id: 1,
                zxid: workload.history.len() as i64 + 1,
                time_ms: 7,
                ..Default::default()
            };
            let txn = Txn::Create {
                path: format!("/p{}", header.zxid),
                data: Bytes::from(vec![header.zxid as u8; 40]),
                acl: world(),
                ephemeral_owner: 0,
                parent_cversion: header.zxid as i32,
            };
            apply(&mut workload.model, &header, &txn);
            workload.history.push((header, txn.clone()));
            batch.push((header, txn));
        }
        wal.append_batch(&batch).unwrap();
    }
    (storage, workload.history)
}

fn big_segments() -> WalConfig {
    WalConfig {
        segment_len_max_bytes: 1 << 20,
        pre_alloc_size_bytes: 4096,
        ..small_config()
    }
}

fn segments(storage: &SimStorage) -> Vec<PathBuf> {
    let mut named: Vec<(i64, PathBuf)> = storage
        .list(&dirs().log_dir)
        .unwrap()
        .into_iter()
        .filter_map(|n| parse_name(&n, SEGMENT_PREFIX).map(|z| (z, dirs().log_dir.join(n))))
        .collect();
    named.sort();
    named.into_iter().map(|(_, p)| p).collect()
}

fn record_offsets(storage: &SimStorage, segment: &Path) -> Vec<(u64, i64)> {
    let bytes = storage.read_all(segment).unwrap();
    let name_zxid = parse_name(
        segment.file_name().unwrap().to_str().unwrap(),
        SEGMENT_PREFIX,
    );
    let scan = scan_segment(&bytes, name_zxid.unwrap());
    assert!(matches!(scan.end, ScanEnd::Clean { .. }));
    scan.records
        .iter()
        .map(|(offset, r)| (*offset, r.header.zxid))
        .collect()
}

fn open(storage: &SimStorage) -> Result<(Recovered, MapState), RecoveryError> {
    let mut state = MapState::default();
    let (_, recovered) = Wal::open(storage.clone(), dirs(), big_segments(), &mut state)?;
    for (header, txn) in &recovered.txns {
        apply(&mut state, header, txn);
    }
    Ok((recovered, state))
}

#[test]
fn a_flipped_byte_mid_segment_is_refused_with_file_and_offset() {
    let (storage, _) = build_log(big_segments(), 10, 2, &[]);
    let segment = segments(&storage).remove(0);
    let offsets = record_offsets(&storage, &segment);
    let (bad_offset, _) = offsets[7];
    for (delta, xor) in [(20, 0x01), (1, 0x80), (8, 0xFF)] {
        let original = storage.read_all(&segment).unwrap();
        storage.corrupt_byte(&segment, bad_offset as usize + delta, xor);
        let error = open(&storage).unwrap_err();
        match &error {
            RecoveryError::CorruptLog { file, offset, .. } => {
                assert_eq!(file, &segment);
                assert_eq!(*offset, bad_offset);
            }
            other => panic!("{other:?}"),
        }
        let message = error.to_string();
        assert!(message.starts_with("zkrs refuses to start"), "{message}");
        assert!(
            message.contains(&segment.display().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&format!("byte offset {bad_offset}")),
            "{message}"
        );
        assert!(message.contains("zkrs log truncate"), "{message}");
        // Nothing was cut: the refusal leaves the disk as it was.
        let mut damaged = original.clone();
        damaged[bad_offset as usize + delta] ^= xor;
        assert_eq!(storage.read_all(&segment).unwrap(), damaged);
        storage.set_content(&segment, original);
    }
}

#[test]
fn a_zeroed_length_mid_segment_is_refused() {
    let (storage, _) = build_log(big_segments(), 10, 2, &[]);
    let segment = segments(&storage).remove(0);
    let (bad_offset, _) = record_offsets(&storage, &segment)[4];
    let mut bytes = storage.read_all(&segment).unwrap();
    bytes[bad_offset as usize..bad_offset as usize + 4].fill(0);
    storage.set_content(&segment, bytes);
    match open(&storage).unwrap_err() {
        RecoveryError::CorruptLog { offset, damage, .. } => {
            assert_eq!(offset, bad_offset);
            assert_eq!(damage, Damage::DataAfterEndMarker);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn truncation_at_every_offset_of_the_last_record_is_a_torn_tail() {
    let (storage, history) = build_log(big_segments(), 6, 1, &[]);
    let segment = segments(&storage).remove(0);
    let original = storage.read_all(&segment).unwrap();
    let offsets = record_offsets(&storage, &segment);
    let (last_offset, _) = *offsets.last().unwrap();
    let scan = scan_segment(&original, 1);
    let ScanEnd::Clean { offset: end } = scan.end else {
        panic!()
    };
    for cut in last_offset..end {
        for zero_filled in [false, true] {
            let mut bytes = original[..cut as usize].to_vec();
            if zero_filled {
                bytes.resize(original.len(), 0);
            }
            storage.set_content(&segment, bytes);
            let (recovered, state) = open(&storage).unwrap();
            // Cutting trailing zero bytes of the record and zero-filling gives it back whole.
            let whole = zero_filled && original[cut as usize..end as usize].iter().all(|&b| b == 0);
            if whole {
                assert_eq!(recovered.txns.len(), 6, "cut {cut}");
                assert!(recovered.torn_tail.is_none());
                continue;
            }
            assert_eq!(recovered.txns.len(), 5, "cut {cut}");
            assert_eq!(state, state_at(&history, 5));
            if cut > last_offset {
                let torn = recovered.torn_tail.expect("torn tail reported");
                assert_eq!((torn.file, torn.offset), (segment.clone(), last_offset));
                assert_eq!(
                    storage.durable_content(&segment).unwrap(),
                    original[..last_offset as usize].to_vec(),
                    "cut {cut}: the tail is cut durably"
                );
            } else {
                assert!(recovered.torn_tail.is_none());
            }
        }
    }
    storage.set_content(&segment, original);
    assert_eq!(open(&storage).unwrap().0.txns.len(), 6);
}

#[test]
fn a_bad_crc_in_the_last_record_followed_by_zeros_is_a_torn_tail() {
    let (storage, _) = build_log(big_segments(), 6, 1, &[]);
    let segment = segments(&storage).remove(0);
    let (last_offset, _) = *record_offsets(&storage, &segment).last().unwrap();
    storage.corrupt_byte(&segment, last_offset as usize + 30, 0x20);
    let (recovered, _) = open(&storage).unwrap();
    assert_eq!(recovered.txns.len(), 5);
    let torn = recovered.torn_tail.unwrap();
    assert_eq!(torn.offset, last_offset);
    assert!(matches!(
        torn.damage,
        Damage::Record(RecordError::BadChecksum { .. })
    ));
    // Writing goes on in a new segment, and the next recovery sees both.
    let mut state = MapState::default();
    let (mut wal, _) = Wal::open(storage.clone(), dirs(), big_segments(), &mut state).unwrap();
    let header = TxnHeader {
        session_id: 1,
        zxid: 6,
        time_ms: 0,
        ..Default::default()
    };
    wal.append_batch(&[(header, Txn::Delete { path: "/p1".into() })])
        .unwrap();
    assert_eq!(segments(&storage).len(), 2);
    let (recovered, _) = open(&storage).unwrap();
    assert_eq!(recovered.txns.len(), 6);
    assert_eq!(recovered.txns[5].1, Txn::Delete { path: "/p1".into() });
}

#[test]
fn a_hole_inside_the_last_batch_is_torn_but_a_hole_before_a_later_batch_is_corruption() {
    // Batches of 3: zero the middle record of a batch, keeping the batch's third record.
    let (storage, _) = build_log(big_segments(), 4, 3, &[]);
    let segment = segments(&storage).remove(0);
    let original = storage.read_all(&segment).unwrap();
    let offsets = record_offsets(&storage, &segment);
    let hole = |bytes: &mut Vec<u8>, record: usize| {
        let start = offsets[record].0 as usize;
        let end = offsets[record + 1].0 as usize;
        bytes[start..end].fill(0);
    };
    // Last batch: records 9, 10, 11. A hole at 10 with 11 intact: out-of-order writeback of
    // a batch that was never acknowledged.
    let mut bytes = original.clone();
    hole(&mut bytes, 10);
    storage.set_content(&segment, bytes);
    let (recovered, _) = open(&storage).unwrap();
    assert_eq!(recovered.txns.len(), 10);
    assert_eq!(recovered.torn_tail.unwrap().offset, offsets[10].0);
    assert_eq!(
        storage.read_all(&segment).unwrap(),
        original[..offsets[10].0 as usize].to_vec()
    );
    // Third batch (6, 7, 8) with the fourth batch intact after it: the third was synced.
    let mut bytes = original.clone();
    hole(&mut bytes, 7);
    storage.set_content(&segment, bytes);
    match open(&storage).unwrap_err() {
        RecoveryError::CorruptLog {
            offset, evidence, ..
        } => {
            assert_eq!(offset, offsets[7].0);
            assert!(
                evidence.contains(&format!("{}", offsets[9].0)),
                "{evidence}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_torn_tail_in_a_segment_followed_by_another_is_corruption() {
    let config = WalConfig {
        segment_len_max_bytes: 300,
        ..big_segments()
    };
    let (storage, _) = build_log(config, 6, 1, &[]);
    let all = segments(&storage);
    assert!(all.len() >= 3, "{all:?}");
    let first = &all[0];
    let (last_offset, _) = *record_offsets(&storage, first).last().unwrap();
    let bytes = storage.read_all(first).unwrap();
    storage.set_content(first, bytes[..last_offset as usize + 5].to_vec());
    match open(&storage).unwrap_err() {
        RecoveryError::CorruptLog { file, evidence, .. } => {
            assert_eq!(&file, first);
            assert!(evidence.contains("later segment"), "{evidence}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_segment_is_a_zxid_gap() {
    let config = WalConfig {
        segment_len_max_bytes: 300,
        ..big_segments()
    };
    let (storage, _) = build_log(config, 6, 1, &[]);
    let all = segments(&storage);
    storage.remove(&all[1]).unwrap();
    let error = open(&storage).unwrap_err();
    match &error {
        RecoveryError::ZxidGap { file, .. } => assert_eq!(file, &all[2]),
        other => panic!("{other:?}"),
    }
    assert!(error.to_string().contains("txns are missing"));
}

#[test]
fn a_torn_segment_header_is_removed() {
    let (storage, history) = build_log(big_segments(), 3, 2, &[]);
    // A crash while starting the next segment: its header only partly written.
    let path = dirs().log_dir.join(segment_name(7));
    let header = SegmentHeader {
        db_id: 0,
        first_zxid: 7,
        first_batch_seq: 3,
    }
    .encode();
    for len in [0, 10, SEGMENT_HEADER_LEN - 1] {
        let mut file = storage.create(&path).unwrap();
        let mut bytes = header[..len].to_vec();
        bytes.resize(1024, 0);
        storage.write_at(&mut file, 0, &bytes).unwrap();
        storage.sync(&mut file).unwrap();
        storage.sync_dir(&dirs().log_dir).unwrap();
        let (recovered, state) = open(&storage).unwrap();
        assert_eq!(recovered.removed_segments, vec![path.clone()]);
        assert_eq!(state, state_at(&history, 6));
        assert_eq!(segments(&storage).len(), 1);
        storage.crash(CrashMode::DropUnsynced);
        assert_eq!(segments(&storage).len(), 1, "the removal is durable");
    }
}

#[test]
fn a_damaged_header_with_records_after_it_is_corruption() {
    let (storage, _) = build_log(big_segments(), 3, 2, &[]);
    let segment = segments(&storage).remove(0);
    storage.corrupt_byte(&segment, 20, 0x01);
    match open(&storage).unwrap_err() {
        RecoveryError::CorruptLog { offset, damage, .. } => {
            assert_eq!(offset, 0);
            assert!(matches!(damage, Damage::Header(_)));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_damaged_snapshot_falls_back_to_an_older_one_the_log_covers() {
    let (storage, history) = build_log(small_config(), 12, 2, &[4, 8]);
    let snapshot_b = dirs().snapshot_dir.join(snapshot_name(16));
    let snapshot_a = dirs().snapshot_dir.join(snapshot_name(8));
    let len = storage.read_all(&snapshot_b).unwrap().len();
    storage.corrupt_byte(&snapshot_b, len / 2, 0x40);
    let (recovered, state) = open(&storage).unwrap();
    assert_eq!(recovered.snapshot, Some((snapshot_a, 8)));
    assert_eq!(recovered.skipped_snapshots.len(), 1);
    assert_eq!(recovered.skipped_snapshots[0].0, snapshot_b);
    assert!(matches!(
        recovered.skipped_snapshots[0].1,
        SnapshotError::BadChecksum { .. }
    ));
    assert_eq!(recovered.txns.len(), 24 - 8);
    assert_eq!(state, state_at(&history, 24));
}

#[test]
fn a_damaged_snapshot_the_log_does_not_cover_is_refused() {
    // Drop the segments holding txns 9..=16, between the two snapshots (rolled at each):
    // with and without the segment that ends at the older snapshot.
    for dropped in [9..=16, 1..=16] {
        let (storage, _) = build_log(small_config(), 12, 2, &[4, 8]);
        let snapshot_b = dirs().snapshot_dir.join(snapshot_name(16));
        storage.corrupt_byte(&snapshot_b, 40, 0x40);
        for segment in segments(&storage) {
            let name = segment.file_name().unwrap().to_str().unwrap();
            if dropped.contains(&parse_name(name, SEGMENT_PREFIX).unwrap()) {
                storage.remove(&segment).unwrap();
            }
        }
        let error = open(&storage).unwrap_err();
        match &error {
            RecoveryError::SnapshotNotCoveredByLog {
                damaged,
                fallback_zxid,
                ..
            } => {
                assert_eq!(damaged, &snapshot_b);
                assert_eq!(*fallback_zxid, 8);
            }
            other => panic!("{dropped:?}: {other:?}"),
        }
        let message = error.to_string();
        assert!(
            message.contains(&snapshot_b.display().to_string()),
            "{message}"
        );
    }
}

#[test]
fn a_log_that_starts_after_the_snapshot_is_a_gap() {
    let config = WalConfig {
        segment_len_max_bytes: 300,
        ..big_segments()
    };
    let (storage, _) = build_log(config, 12, 2, &[4]);
    // Snapshot at 8; drop every segment up to and including the one holding 9.
    for segment in segments(&storage) {
        let name = segment.file_name().unwrap().to_str().unwrap();
        if parse_name(name, SEGMENT_PREFIX).unwrap() <= 9 {
            storage.remove(&segment).unwrap();
        }
    }
    match open(&storage).unwrap_err() {
        RecoveryError::ZxidGap { previous_zxid, .. } => assert_eq!(previous_zxid, 8),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_damaged_only_snapshot_is_refused() {
    let (storage, _) = build_log(small_config(), 12, 2, &[4, 8]);
    let mut sink = MapState::default();
    let (wal, _) = Wal::open(storage.clone(), dirs(), small_config(), &mut sink).unwrap();
    let plan = wal.purge(NonZeroUsize::new(1).unwrap()).unwrap();
    assert_eq!(plan.snapshots.len(), 2);
    assert!(!plan.segments.is_empty());
    drop(wal);
    // The purge kept everything the newest snapshot needs.
    let (recovered, _) = open(&storage).unwrap();
    assert_eq!(recovered.snapshot.unwrap().1, 16);
    storage.corrupt_byte(&dirs().snapshot_dir.join(snapshot_name(16)), 30, 0x02);
    assert!(matches!(
        open(&storage).unwrap_err(),
        RecoveryError::NoValidSnapshot { .. }
    ));
}

#[test]
fn a_log_without_any_snapshot_is_refused() {
    let (storage, _) = build_log(small_config(), 3, 1, &[]);
    storage
        .remove(&dirs().snapshot_dir.join(snapshot_name(0)))
        .unwrap();
    assert!(matches!(
        open(&storage).unwrap_err(),
        RecoveryError::LogWithoutSnapshot { .. }
    ));
}

#[test]
fn truncate_log_at_cuts_and_removes_later_segments() {
    let config = WalConfig {
        segment_len_max_bytes: 300,
        ..big_segments()
    };
    let (storage, history) = build_log(config, 6, 1, &[]);
    let all = segments(&storage);
    let (cut, zxid) = record_offsets(&storage, &all[1])[0];
    storage.corrupt_byte(&all[1], cut as usize + 12, 0x01);
    assert!(open(&storage).is_err());
    let removed = recovery::truncate_log_at(&storage, &dirs().log_dir, &all[1], cut).unwrap();
    assert_eq!(removed, all[2..].to_vec());
    let (recovered, state) = open(&storage).unwrap();
    assert_eq!(recovered.last_zxid, zxid - 1);
    assert_eq!(state, state_at(&history, zxid - 1));
}

// ---- writer behaviour ----

#[test]
fn segments_roll_by_size_and_grow_in_preallocation_steps() {
    let config = WalConfig {
        pre_alloc_size_bytes: 512,
        segment_len_max_bytes: 1500,
        ..small_config()
    };
    let (storage, history) = build_log(config, 20, 2, &[]);
    let all = segments(&storage);
    assert!(all.len() >= 3, "{all:?}");
    let mut next_zxid = 1;
    for segment in &all {
        let bytes = storage.read_all(segment).unwrap();
        assert_eq!(bytes.len() % 512, 0, "{}", segment.display());
        let records = record_offsets(&storage, segment);
        assert_eq!(records[0].1, next_zxid);
        assert_eq!(
            segment.file_name().unwrap().to_str().unwrap(),
            segment_name(next_zxid)
        );
        next_zxid += records.len() as i64;
    }
    assert_eq!(next_zxid - 1, history.len() as i64);
}

#[test]
fn append_refuses_zxid_gaps_and_stops_after_an_io_error() {
    let storage = SimStorage::new(1);
    let mut sink = MapState::default();
    let (mut wal, _) = Wal::open(storage.clone(), dirs(), small_config(), &mut sink).unwrap();
    wal.save_snapshot(&initial_state()).unwrap();
    let txn = |zxid| {
        (
            TxnHeader {
                session_id: 1,
                zxid,
                time_ms: 0,
                ..Default::default()
            },
            Txn::Delete { path: "/x".into() },
        )
    };
    assert!(matches!(
        wal.append_batch(&[txn(2)]),
        Err(WalError::ZxidOrder { .. })
    ));
    assert!(matches!(
        wal.append_batch(&[txn(1), txn(3)]),
        Err(WalError::ZxidOrder { .. })
    ));
    wal.append_batch(&[txn(1), txn(2)]).unwrap();
    // A new epoch may start anywhere.
    wal.append_batch(&[txn(0x1_0000_0001)]).unwrap();
    let mut too_deep = Txn::Delete { path: "/x".into() };
    for _ in 0..=format::MULTI_DEPTH_MAX {
        too_deep = Txn::Multi(vec![too_deep]);
    }
    let header = txn(0x1_0000_0002).0;
    assert!(matches!(
        wal.append_batch(&[(header, too_deep)]),
        Err(WalError::Encode { .. })
    ));
    // The failed encode wrote nothing and did not stop the log.
    storage.crash_after(2); // write, then the sync fails
    assert!(wal.append_batch(&[txn(0x1_0000_0002)]).is_err());
    storage.crash(CrashMode::DropUnsynced);
    assert!(matches!(
        wal.append_batch(&[txn(0x1_0000_0002)]),
        Err(WalError::Failed)
    ));
    let (recovered, _) = open(&storage).unwrap();
    assert_eq!(recovered.last_zxid, 0x1_0000_0001);
}

#[test]
fn snapshots_cannot_run_ahead_of_the_log() {
    let storage = SimStorage::new(1);
    let mut sink = MapState::default();
    let (wal, _) = Wal::open(storage, dirs(), small_config(), &mut sink).unwrap();
    let mut ahead = initial_state();
    ahead.last_zxid = 5;
    assert!(matches!(
        wal.save_snapshot(&ahead),
        Err(WalError::SnapshotAheadOfLog { .. })
    ));
}

#[test]
fn without_force_sync_batches_are_not_synced_but_rolls_are() {
    let config = WalConfig {
        force_sync: false,
        ..small_config()
    };
    let storage = SimStorage::new(1);
    let mut sink = MapState::default();
    let (mut wal, _) = Wal::open(storage.clone(), dirs(), config, &mut sink).unwrap();
    wal.save_snapshot(&initial_state()).unwrap();
    let txn = |zxid| {
        (
            TxnHeader {
                session_id: 1,
                zxid,
                time_ms: 0,
                ..Default::default()
            },
            Txn::CreateSession { timeout_ms: 1 },
        )
    };
    wal.append_batch(&[txn(1)]).unwrap();
    wal.append_batch(&[txn(2)]).unwrap();
    wal.roll().unwrap();
    wal.append_batch(&[txn(3)]).unwrap();
    drop(wal);
    storage.crash(CrashMode::DropUnsynced);
    let (recovered, _) = open(&storage).unwrap();
    assert_eq!(
        recovered.last_zxid, 2,
        "rolled segment synced, the open one not"
    );
}

#[test]
fn temp_snapshots_are_removed_at_start() {
    let (storage, _) = build_log(small_config(), 2, 1, &[]);
    let temp = dirs().snapshot_dir.join("snapshot.2.tmp");
    let mut file = storage.create(&temp).unwrap();
    storage.write_at(&mut file, 0, b"partial").unwrap();
    storage.sync(&mut file).unwrap();
    storage.sync_dir(&dirs().snapshot_dir).unwrap();
    open(&storage).unwrap();
    assert!(!storage
        .list(&dirs().snapshot_dir)
        .unwrap()
        .contains(&"snapshot.2.tmp".to_string()));
}

#[test]
fn real_storage_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    let dirs = WalDirs {
        log_dir: root.path().join("log"),
        snapshot_dir: root.path().join("snap"),
    };
    let config = WalConfig {
        pre_alloc_size_bytes: 4096,
        segment_len_max_bytes: 1024,
        ..WalConfig::default()
    };
    let mut workload = Workload::new(11, initial_state(), Vec::new());
    {
        let mut sink = MapState::default();
        let (mut wal, recovered) =
            Wal::open(RealStorage, dirs.clone(), config.clone(), &mut sink).unwrap();
        assert!(recovered.snapshot.is_none());
        wal.save_snapshot(&workload.model).unwrap();
        for i in 0..30 {
            let batch = workload.batch();
            wal.append_batch(&batch).unwrap();
            if i == 15 {
                wal.roll().unwrap();
                wal.save_snapshot(&workload.model).unwrap();
            }
        }
    }
    let mut state = MapState::default();
    let (_, recovered) = Wal::open(RealStorage, dirs.clone(), config, &mut state).unwrap();
    for (header, txn) in &recovered.txns {
        apply(&mut state, header, txn);
    }
    assert_eq!(state, workload.model);
    assert!(recovered.snapshot.unwrap().1 > 0);
    let names = RealStorage.list(&dirs.log_dir).unwrap();
    assert!(names.len() > 2, "{names:?}");
}

#[test]
fn model_sanity_history_replays_to_the_model() {
    let mut workload = Workload::new(3, initial_state(), Vec::new());
    for _ in 0..50 {
        workload.batch();
    }
    let len = workload.history.len() as i64;
    assert_eq!(state_at(&workload.history, len), workload.model);
    let kinds: BTreeMap<&str, usize> =
        workload
            .history
            .iter()
            .fold(BTreeMap::new(), |mut kinds, (_, txn)| {
                let kind = match txn {
                    Txn::Create { .. } => "create",
                    Txn::SetData { .. } => "set",
                    Txn::Delete { .. } => "delete",
                    Txn::Multi(_) => "multi",
                    _ => "other",
                };
                *kinds.entry(kind).or_default() += 1;
                kinds
            });
    assert_eq!(
        kinds.len(),
        5,
        "the workload exercises every kind: {kinds:?}"
    );
}
