//! Snapshot of a tree with 100 000 znodes (~30-byte paths, 100-byte values): encode + CRC
//! into memory, and the restart path (verify, decode, rebuild the tree).

use std::cell::RefCell;
use std::io;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use zkrs::tree::{DataTree, Znode};
use zkrs::wal::snapshot::{load_snapshot, save_snapshot};
use zkrs::wal::{SnapshotSink, SnapshotSource, Storage};

mod common;
use common::*;

const NODES: usize = 100_000;

/// A storage that keeps the one file being written in memory (no I/O, no sync cost).
#[derive(Default)]
struct MemStorage {
    bytes: RefCell<Vec<u8>>,
}

impl Storage for MemStorage {
    type File = ();
    fn create_dir_all(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
    fn list(&self, _: &Path) -> io::Result<Vec<String>> {
        Ok(Vec::new())
    }
    fn create(&self, _: &Path) -> io::Result<()> {
        self.bytes.borrow_mut().clear();
        Ok(())
    }
    fn open(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
    fn write_at(&self, _: &mut (), offset: u64, data: &[u8]) -> io::Result<()> {
        let mut bytes = self.bytes.borrow_mut();
        let offset = offset as usize;
        if bytes.len() < offset + data.len() {
            bytes.resize(offset + data.len(), 0);
        }
        bytes[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }
    fn allocate(&self, _: &mut (), _: u64) -> io::Result<()> {
        Ok(())
    }
    fn truncate(&self, _: &mut (), len: u64) -> io::Result<()> {
        self.bytes.borrow_mut().resize(len as usize, 0);
        Ok(())
    }
    fn sync(&self, _: &mut ()) -> io::Result<()> {
        Ok(())
    }
    fn read_all(&self, _: &Path) -> io::Result<Vec<u8>> {
        Ok(self.bytes.borrow().clone())
    }
    fn rename(&self, _: &Path, _: &Path) -> io::Result<()> {
        Ok(())
    }
    fn remove(&self, _: &Path) -> io::Result<()> {
        Err(io::Error::from(io::ErrorKind::NotFound))
    }
    fn sync_dir(&self, _: &Path) -> io::Result<()> {
        Ok(())
    }
}

/// The tree in parent-before-child order, as the server's snapshot view gives it.
struct View(DataTree);

impl SnapshotSource for View {
    fn for_each_node(&self, f: &mut dyn FnMut(&str, &Znode)) {
        let mut nodes: Vec<(&str, &Znode)> = self.0.iter().collect();
        nodes.sort_unstable_by(|a, b| a.0.cmp(b.0));
        for (path, node) in nodes {
            f(path, node);
        }
    }
    fn for_each_session(&self, _: &mut dyn FnMut(i64, i32)) {}
    fn last_zxid(&self) -> i64 {
        self.0.last_zxid()
    }
}

#[derive(Default)]
struct Rebuild {
    nodes: Vec<(String, Znode)>,
    last_zxid: i64,
}

impl SnapshotSink for Rebuild {
    fn insert_node(&mut self, path: &str, node: Znode) {
        self.nodes.push((path.to_string(), node));
    }
    fn insert_session(&mut self, _: i64, _: i32) {}
    fn set_last_zxid(&mut self, zxid: i64) {
        self.last_zxid = zxid;
    }
}

fn bench_snapshot(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot");
    group.sample_size(10);
    group.throughput(Throughput::Elements(NODES as u64));
    let (tree, _) = tree_with_keys(NODES, 100);
    let view = View(tree);
    let storage = MemStorage::default();
    let dir = Path::new("/nonexistent-bench-dir");
    group.bench_function("save_100k_nodes", |b| {
        b.iter(|| save_snapshot(&storage, dir, 0, &view).expect("saves"))
    });
    let bytes = storage.bytes.borrow().clone();
    group.bench_function("load_and_rebuild_100k_nodes", |b| {
        b.iter(|| {
            let mut sink = Rebuild::default();
            load_snapshot(&bytes, &mut sink).expect("loads");
            DataTree::from_nodes(sink.nodes, sink.last_zxid).expect("rebuilds")
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = quick();
    targets = bench_snapshot
}
criterion_main!(benches);
