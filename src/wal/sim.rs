//! A simulated file system that keeps written and durable state apart, for crash tests.
//!
//! Modeled on redb's crash_consistency test and TigerBeetle's simulator: every fault comes
//! from one seed. Per file, [`SimStorage`] keeps the bytes reads see (`live`), the bytes that
//! survive a crash (`durable`) and the changes in between. Per directory, it keeps the live
//! and the durable name -> file maps: a create, rename or remove is lost in a crash unless the
//! directory was synced after it, even if the file's data was synced.
//!
//! Crash injection: [`SimStorage::crash_after`] arms a countdown over mutating operations
//! (create, write_at, allocate, truncate, sync, rename, remove, sync_dir). The operation that
//! hits zero fails with an error and every operation after it fails too, as if the machine
//! had stopped there; a write at the crash point reaches the page cache before the stop, a
//! sync at the crash point does not happen. [`SimStorage::crash`] then computes what the disk
//! holds after the restart, according to a [`CrashMode`].
//!
//! Directories are created durable at once (a simplification: zkrs creates its directories
//! at start-up, before it writes anything that must survive).

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::storage::Storage;

/// The sector size for [`CrashMode::ScrambledSectors`].
pub const SIM_SECTOR_LEN: usize = 512;

/// SplitMix64: a small, seedable generator for simulations (not for anything secret).
#[derive(Debug, Clone)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (`bound` > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        assert!(bound > 0);
        self.next_u64() % bound
    }

    /// Uniform in `low..=high`.
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.below(high - low + 1)
    }

    pub fn chance(&mut self, numerator: u64, denominator: u64) -> bool {
        self.below(denominator) < numerator
    }
}

/// What reaches the disk of the changes that were not synced when the machine stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Nothing: only synced data survives.
    DropUnsynced,
    /// The unsynced changes of each file reach the disk in order up to a random one, which
    /// is torn at a random byte (a write) or lost (a length change).
    TornPrefix,
    /// Out-of-order writeback: every 512-byte sector an unsynced change touched keeps either
    /// its old or its new content, independently, and the length is the old or the new one.
    ScrambledSectors,
}

impl CrashMode {
    pub const ALL: [CrashMode; 3] = [
        CrashMode::DropUnsynced,
        CrashMode::TornPrefix,
        CrashMode::ScrambledSectors,
    ];
}

/// A handle on a simulated file. Handles opened before a crash are dead after it.
#[derive(Debug)]
pub struct SimFile {
    inode: u64,
    generation: u64,
}

#[derive(Debug, Clone)]
enum Change {
    Write { offset: usize, data: Vec<u8> },
    SetLen(usize),
}

#[derive(Debug, Clone, Default)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Changes since the last sync, in order. Invariant: applying them to `durable` gives
    /// `live`.
    unsynced: Vec<Change>,
}

impl Inode {
    fn apply(content: &mut Vec<u8>, change: &Change) {
        match change {
            Change::Write { offset, data } => {
                let end = offset + data.len();
                if content.len() < end {
                    content.resize(end, 0);
                }
                content[*offset..end].copy_from_slice(data);
            }
            Change::SetLen(len) => content.resize(*len, 0),
        }
    }

    fn change(&mut self, change: Change) {
        Inode::apply(&mut self.live, &change);
        self.unsynced.push(change);
    }

    fn sync(&mut self) {
        self.durable.clone_from(&self.live);
        self.unsynced.clear();
    }

    /// The content after a crash.
    fn crash(&mut self, mode: CrashMode, rng: &mut SimRng) {
        if self.unsynced.is_empty() {
            return;
        }
        let mut content = self.durable.clone();
        match mode {
            CrashMode::DropUnsynced => {}
            CrashMode::TornPrefix => {
                let reached = rng.below(self.unsynced.len() as u64 + 1) as usize;
                for change in &self.unsynced[..reached] {
                    Inode::apply(&mut content, change);
                }
                if let Some(Change::Write { offset, data }) = self.unsynced.get(reached) {
                    let torn_len = rng.below(data.len() as u64 + 1) as usize;
                    let torn = Change::Write {
                        offset: *offset,
                        data: data[..torn_len].to_vec(),
                    };
                    Inode::apply(&mut content, &torn);
                }
            }
            CrashMode::ScrambledSectors => {
                let mut dirty = BTreeSet::new();
                let old_len = content.len();
                for change in &self.unsynced {
                    let (start, end) = match change {
                        Change::Write { offset, data } => (*offset, offset + data.len()),
                        Change::SetLen(len) => (old_len.min(*len), old_len.max(*len)),
                    };
                    if end > start {
                        dirty.extend(start / SIM_SECTOR_LEN..=(end - 1) / SIM_SECTOR_LEN);
                    }
                }
                let new_len = if rng.chance(1, 2) {
                    self.live.len()
                } else {
                    old_len
                };
                content.resize(new_len, 0);
                for sector in dirty {
                    let start = sector * SIM_SECTOR_LEN;
                    let end = ((sector + 1) * SIM_SECTOR_LEN).min(new_len);
                    if start >= end || !rng.chance(1, 2) {
                        continue;
                    }
                    for (i, byte) in content[start..end].iter_mut().enumerate() {
                        *byte = self.live.get(start + i).copied().unwrap_or(0);
                    }
                }
            }
        }
        self.durable.clone_from(&content);
        self.live = content;
        self.unsynced.clear();
    }
}

type Directory = BTreeMap<String, u64>;

#[derive(Debug)]
struct SimState {
    inodes: HashMap<u64, Inode>,
    dirs_live: BTreeMap<PathBuf, Directory>,
    dirs_durable: BTreeMap<PathBuf, Directory>,
    next_inode: u64,
    /// Bumped by every crash; handles from older generations are dead.
    generation: u64,
    /// Mutating operations left before the crash point, if one is armed.
    crash_countdown: Option<u64>,
    /// The machine has stopped: every operation fails until `crash()`.
    stopped: bool,
    mutating_ops: u64,
    rng: SimRng,
}

fn stopped_error() -> io::Error {
    io::Error::other("simulated crash: the machine has stopped")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path.parent().unwrap_or(Path::new(""));
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad file name"))?;
    Ok((parent.to_path_buf(), name.to_string()))
}

impl SimState {
    fn check_running(&self) -> io::Result<()> {
        if self.stopped {
            Err(stopped_error())
        } else {
            Ok(())
        }
    }

    /// Counts a mutating operation. Ok(true): this operation is the crash point.
    fn begin_mutation(&mut self) -> io::Result<bool> {
        self.check_running()?;
        self.mutating_ops += 1;
        if let Some(left) = self.crash_countdown.as_mut() {
            *left -= 1;
            if *left == 0 {
                self.crash_countdown = None;
                self.stopped = true;
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        self.dirs_live
            .get(&dir)
            .and_then(|d| d.get(&name))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn inode_mut(&mut self, file: &SimFile) -> io::Result<&mut Inode> {
        if file.generation != self.generation {
            return Err(io::Error::other("file handle from before a crash"));
        }
        self.inodes
            .get_mut(&file.inode)
            .ok_or_else(|| io::Error::other("file handle of a removed file"))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Directory> {
        self.dirs_live.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    /// Applies a data change; at the crash point the change reaches the page cache, then
    /// the machine stops.
    fn data_change(&mut self, file: &SimFile, change: Change) -> io::Result<()> {
        self.check_running()?;
        self.inode_mut(file)?;
        let crash_point = self.begin_mutation()?;
        self.inode_mut(file)?.change(change);
        if crash_point {
            return Err(stopped_error());
        }
        Ok(())
    }
}

/// The simulated file system. Clones share the same state (the test keeps one to crash and
/// inspect it while the log owns another).
#[derive(Debug, Clone)]
pub struct SimStorage {
    state: Rc<RefCell<SimState>>,
}

impl SimStorage {
    pub fn new(seed: u64) -> SimStorage {
        SimStorage {
            state: Rc::new(RefCell::new(SimState {
                inodes: HashMap::new(),
                dirs_live: BTreeMap::new(),
                dirs_durable: BTreeMap::new(),
                next_inode: 1,
                generation: 0,
                crash_countdown: None,
                stopped: false,
                mutating_ops: 0,
                rng: SimRng::new(seed),
            })),
        }
    }

    /// The `ops`-th mutating operation from now (1 = the next one) is the crash point.
    pub fn crash_after(&self, ops: u64) {
        assert!(ops > 0);
        self.state.borrow_mut().crash_countdown = Some(ops);
    }

    /// Mutating operations performed so far (crash points passed).
    pub fn mutating_ops(&self) -> u64 {
        self.state.borrow().mutating_ops
    }

    /// True once an armed crash point was reached, until `crash()`.
    pub fn is_stopped(&self) -> bool {
        self.state.borrow().stopped
    }

    /// Restarts the machine: keeps what is durable, plus what `mode` lets through of what
    /// was not; forgets directory changes not synced; kills every open handle.
    pub fn crash(&self, mode: CrashMode) {
        let mut state = self.state.borrow_mut();
        let state = &mut *state;
        state.dirs_live = state.dirs_durable.clone();
        let referenced: BTreeSet<u64> = state
            .dirs_durable
            .values()
            .flat_map(|dir| dir.values().copied())
            .collect();
        state.inodes.retain(|inode, _| referenced.contains(inode));
        let mut inode_ids: Vec<u64> = state.inodes.keys().copied().collect();
        inode_ids.sort_unstable(); // HashMap order must not leak into the seeded run
        for id in inode_ids {
            if let Some(inode) = state.inodes.get_mut(&id) {
                inode.crash(mode, &mut state.rng);
            }
        }
        state.generation += 1;
        state.stopped = false;
        state.crash_countdown = None;
    }

    /// A crash with a mode drawn from the seed.
    pub fn crash_random(&self) -> CrashMode {
        let mode = {
            let mut state = self.state.borrow_mut();
            CrashMode::ALL[state.rng.below(CrashMode::ALL.len() as u64) as usize]
        };
        self.crash(mode);
        mode
    }

    /// The durable content of a file (what a crash now would keep), if the file's name is
    /// durable.
    pub fn durable_content(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.borrow();
        let (dir, name) = split(path).ok()?;
        let inode = state.dirs_durable.get(&dir)?.get(&name)?;
        state.inodes.get(inode).map(|i| i.durable.clone())
    }

    /// Replaces a file's content, live and durable (a test's disk fault). The file must
    /// exist.
    pub fn set_content(&self, path: &Path, content: Vec<u8>) {
        let mut state = self.state.borrow_mut();
        let inode = state.lookup(path).expect("set_content of a missing file");
        let inode = state.inodes.get_mut(&inode).expect("live inode");
        inode.durable.clone_from(&content);
        inode.live = content;
        inode.unsynced.clear();
    }

    /// Flips bits of one byte, live and durable (a test's disk fault).
    pub fn corrupt_byte(&self, path: &Path, offset: usize, xor: u8) {
        let mut content = self
            .state
            .borrow()
            .lookup(path)
            .ok()
            .and_then(|inode| {
                self.state
                    .borrow()
                    .inodes
                    .get(&inode)
                    .map(|i| i.live.clone())
            })
            .expect("corrupt_byte of a missing file");
        content[offset] ^= xor;
        self.set_content(path, content);
    }
}

impl Storage for SimStorage {
    type File = SimFile;

    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.check_running()?;
        state.dirs_live.entry(dir.to_path_buf()).or_default();
        state.dirs_durable.entry(dir.to_path_buf()).or_default();
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let state = self.state.borrow();
        state.check_running()?;
        let directory = state.dirs_live.get(dir).ok_or_else(|| not_found(dir))?;
        Ok(directory.keys().cloned().collect())
    }

    fn create(&self, path: &Path) -> io::Result<SimFile> {
        let mut state = self.state.borrow_mut();
        state.check_running()?;
        let (dir, name) = split(path)?;
        if state.dir_mut(&dir)?.contains_key(&name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists", path.display()),
            ));
        }
        let crash_point = state.begin_mutation()?;
        let inode = state.next_inode;
        state.next_inode += 1;
        state.inodes.insert(inode, Inode::default());
        state.dir_mut(&dir)?.insert(name, inode);
        if crash_point {
            return Err(stopped_error());
        }
        Ok(SimFile {
            inode,
            generation: state.generation,
        })
    }

    fn open(&self, path: &Path) -> io::Result<SimFile> {
        let state = self.state.borrow();
        state.check_running()?;
        Ok(SimFile {
            inode: state.lookup(path)?,
            generation: state.generation,
        })
    }

    fn write_at(&self, file: &mut SimFile, offset: u64, data: &[u8]) -> io::Result<()> {
        let offset = usize::try_from(offset).map_err(io::Error::other)?;
        self.state.borrow_mut().data_change(
            file,
            Change::Write {
                offset,
                data: data.to_vec(),
            },
        )
    }

    fn allocate(&self, file: &mut SimFile, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        let mut state = self.state.borrow_mut();
        state.check_running()?;
        if state.inode_mut(file)?.live.len() >= len {
            return Ok(());
        }
        state.data_change(file, Change::SetLen(len))
    }

    fn truncate(&self, file: &mut SimFile, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).map_err(io::Error::other)?;
        self.state
            .borrow_mut()
            .data_change(file, Change::SetLen(len))
    }

    fn sync(&self, file: &mut SimFile) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.check_running()?;
        state.inode_mut(file)?;
        if state.begin_mutation()? {
            return Err(stopped_error());
        }
        state.inode_mut(file)?.sync();
        Ok(())
    }

    fn read_all(&self, path: &Path) -> io::Result<Vec<u8>> {
        let state = self.state.borrow();
        state.check_running()?;
        let inode = state.lookup(path)?;
        Ok(state
            .inodes
            .get(&inode)
            .map(|i| i.live.clone())
            .unwrap_or_default())
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.check_running()?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        if from_dir != to_dir {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "rename across directories",
            ));
        }
        let inode = state.lookup(from)?;
        let crash_point = state.begin_mutation()?;
        let directory = state.dir_mut(&from_dir)?;
        directory.remove(&from_name);
        directory.insert(to_name, inode);
        // An inode that lost its last name lingers until a crash; harmless here.
        if crash_point {
            return Err(stopped_error());
        }
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.check_running()?;
        let (dir, name) = split(path)?;
        state.lookup(path)?;
        let crash_point = state.begin_mutation()?;
        state.dir_mut(&dir)?.remove(&name);
        if crash_point {
            return Err(stopped_error());
        }
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut state = self.state.borrow_mut();
        state.check_running()?;
        let directory = state
            .dirs_live
            .get(dir)
            .cloned()
            .ok_or_else(|| not_found(dir))?;
        if state.begin_mutation()? {
            return Err(stopped_error());
        }
        state.dirs_durable.insert(dir.to_path_buf(), directory);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> PathBuf {
        PathBuf::from("/data")
    }

    #[test]
    fn unsynced_data_and_names_are_lost_in_a_crash() {
        let storage = SimStorage::new(1);
        storage.create_dir_all(&dir()).unwrap();
        let path = dir().join("f");
        let mut file = storage.create(&path).unwrap();
        storage.write_at(&mut file, 0, b"synced").unwrap();
        storage.sync(&mut file).unwrap();
        storage.write_at(&mut file, 6, b"-not").unwrap();
        assert_eq!(storage.read_all(&path).unwrap(), b"synced-not");
        // The data is synced, the name is not.
        storage.crash(CrashMode::DropUnsynced);
        assert!(storage.read_all(&path).is_err());

        let mut file = storage.create(&path).unwrap();
        storage.write_at(&mut file, 0, b"synced").unwrap();
        storage.sync(&mut file).unwrap();
        storage.sync_dir(&dir()).unwrap();
        storage.write_at(&mut file, 6, b"-not").unwrap();
        storage.crash(CrashMode::DropUnsynced);
        assert_eq!(storage.read_all(&path).unwrap(), b"synced");
        assert!(storage.write_at(&mut file, 0, b"x").is_err(), "dead handle");
    }

    #[test]
    fn renames_and_removes_need_a_directory_sync() {
        let storage = SimStorage::new(2);
        storage.create_dir_all(&dir()).unwrap();
        let a = dir().join("a");
        let b = dir().join("b");
        let mut file = storage.create(&a).unwrap();
        storage.write_at(&mut file, 0, b"1").unwrap();
        storage.sync(&mut file).unwrap();
        storage.sync_dir(&dir()).unwrap();
        storage.rename(&a, &b).unwrap();
        storage.crash(CrashMode::DropUnsynced);
        assert_eq!(storage.list(&dir()).unwrap(), vec!["a".to_string()]);
        storage.rename(&a, &b).unwrap();
        storage.sync_dir(&dir()).unwrap();
        storage.remove(&b).unwrap();
        storage.crash(CrashMode::DropUnsynced);
        assert_eq!(storage.list(&dir()).unwrap(), vec!["b".to_string()]);
        assert_eq!(storage.read_all(&b).unwrap(), b"1");
    }

    #[test]
    fn crash_point_stops_everything_and_counts_operations() {
        let storage = SimStorage::new(3);
        storage.create_dir_all(&dir()).unwrap();
        let path = dir().join("f");
        let mut file = storage.create(&path).unwrap();
        storage.sync_dir(&dir()).unwrap();
        assert_eq!(storage.mutating_ops(), 2);
        storage.crash_after(2);
        storage.write_at(&mut file, 0, b"abc").unwrap();
        assert!(
            storage.sync(&mut file).is_err(),
            "the sync is the crash point"
        );
        assert!(storage.is_stopped());
        assert!(storage.read_all(&path).is_err());
        storage.crash(CrashMode::DropUnsynced);
        assert_eq!(storage.read_all(&path).unwrap(), b"");
    }

    #[test]
    fn torn_prefix_keeps_a_prefix_of_the_unsynced_writes() {
        for seed in 0..50 {
            let storage = SimStorage::new(seed);
            storage.create_dir_all(&dir()).unwrap();
            let path = dir().join("f");
            let mut file = storage.create(&path).unwrap();
            storage.sync_dir(&dir()).unwrap();
            storage.write_at(&mut file, 0, b"0123").unwrap();
            storage.sync(&mut file).unwrap();
            storage.write_at(&mut file, 4, b"4567").unwrap();
            storage.write_at(&mut file, 8, b"89").unwrap();
            storage.crash(CrashMode::TornPrefix);
            let content = storage.read_all(&path).unwrap();
            assert!(
                b"0123456789".starts_with(&content),
                "seed {seed}: {content:?}"
            );
            assert!(content.len() >= 4);
        }
    }

    #[test]
    fn scrambled_sectors_mix_old_and_new_sectors_only() {
        let mut saw_hole = false;
        for seed in 0..50 {
            let storage = SimStorage::new(seed);
            storage.create_dir_all(&dir()).unwrap();
            let path = dir().join("f");
            let mut file = storage.create(&path).unwrap();
            storage.sync_dir(&dir()).unwrap();
            storage.allocate(&mut file, 4 * 512).unwrap();
            storage.sync(&mut file).unwrap();
            storage.write_at(&mut file, 0, &[7u8; 4 * 512]).unwrap();
            storage.crash(CrashMode::ScrambledSectors);
            let content = storage.read_all(&path).unwrap();
            assert_eq!(content.len(), 4 * 512);
            let sectors: Vec<bool> = content.chunks(512).map(|s| s[0] == 7).collect();
            for (sector, chunk) in sectors.iter().zip(content.chunks(512)) {
                assert!(chunk.iter().all(|&b| b == if *sector { 7 } else { 0 }));
            }
            saw_hole |= sectors.windows(2).any(|w| !w[0] && w[1]);
        }
        assert!(
            saw_hole,
            "out-of-order writeback must sometimes leave a hole"
        );
    }
}
