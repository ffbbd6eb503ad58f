//! A znode in one allocation: a reference count, the data length, the stat fields, ACL and
//! children ([`Meta`]), then the data bytes. A [`Znode`] is an 8-byte shared pointer to it.
//!
//! One allocation per znode instead of two (node + data), no weak count and no separate
//! length: with 100-byte values a znode takes one 192-byte allocation where `Arc<node>` +
//! `Arc<[u8]>` took two of 128. Memory per znode is what the `tree_memory` bench and the
//! 1M-znode RSS comparison with Apache ZooKeeper measure.
//!
//! Sharing works as `Arc`: clones share, [`Znode::make_mut`] (and `DerefMut`) copies a
//! node an older tree version still holds before changing it, so a version never sees a
//! later write. Changing the data of a node no one else holds reuses its allocation.
//!
//! Null data (a client's `create(path, null, ...)`, jute length -1, as ZooKeeper keeps it)
//! is `data_len == NULL_DATA_LEN` with no data bytes: no extra field, the znode does not
//! grow. [`Znode::data`] then lends [`crate::proto::null_slice`] (empty, and
//! [`crate::proto::is_null_buffer`]), so encoders write -1; the stat's dataLength is 0.
//!
//! Safety (the tree's other unsafe code is the child map's nodes, `pmap/raw.rs`). Invariants: `ptr` points to a live allocation
//! of `layout(stored_len(data_len))` bytes holding an initialised `Inner` followed by
//! `stored_len(data_len)` initialised bytes; `count` is the number of `Znode`s pointing to it; the last one to
//! drop it drops the `Meta` and frees the allocation. `&mut Meta` is only handed out
//! while `count == 1` (observed with Acquire, so earlier drops on other threads are
//! visible), i.e. no other `Znode` can read it.

use std::alloc::{self, Layout};
use std::fmt;
use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::ptr::{self, NonNull};
use std::sync::atomic::{self, AtomicU32, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::node::Children;
use super::EphemeralKind;
use crate::proto::{is_null_buffer, null_buffer, null_slice, Acl, Stat};

/// Everything of a znode but its data.
#[derive(Debug, Clone)]
pub struct Meta {
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    /// As stored: 0, a session id, CONTAINER_EPHEMERAL_OWNER or a TTL owner.
    pub ephemeral_owner: i64,
    pub acl: Arc<Vec<Acl>>,
    /// Child nodes, sorted by name. Set by the tree: `DataTree::from_nodes` ignores it.
    pub children: Children,
    pub version: i32,
    /// The cversion ZooKeeper stores (and snapshots): the number of children ever created
    /// under this node. Sequence suffixes are taken from it. The cversion clients see is
    /// `2 * cversion - numChildren` (creates plus deletes), see [`Meta::stat`].
    pub cversion: i32,
    pub aversion: i32,
}

impl Meta {
    /// A new node's fields: created and modified at `zxid`, `time_ms`, no children.
    pub fn new(acl: Arc<Vec<Acl>>, zxid: i64, time_ms: i64, owner: i64) -> Meta {
        Meta {
            czxid: zxid,
            mzxid: zxid,
            pzxid: zxid,
            ctime: time_ms,
            mtime: time_ms,
            ephemeral_owner: owner,
            acl,
            children: Children::default(),
            version: 0,
            cversion: 0,
            aversion: 0,
        }
    }

    pub fn kind(&self) -> EphemeralKind {
        EphemeralKind::of_owner(self.ephemeral_owner)
    }

    /// Equal but for the children.
    fn same_fields(&self, other: &Meta) -> bool {
        self.acl == other.acl
            && self.czxid == other.czxid
            && self.mzxid == other.mzxid
            && self.pzxid == other.pzxid
            && self.ctime == other.ctime
            && self.mtime == other.mtime
            && self.version == other.version
            && self.cversion == other.cversion
            && self.aversion == other.aversion
            && self.ephemeral_owner == other.ephemeral_owner
    }
}

#[repr(C)]
struct Inner {
    count: AtomicU32,
    /// The data's length, or NULL_DATA_LEN for null data (no bytes).
    data_len: u32,
    meta: Meta,
    // `data_len` bytes of data follow.
}

/// Where the data starts: right after `Inner` (whose size is a multiple of its alignment).
const DATA_OFFSET: usize = std::mem::size_of::<Inner>();

/// `data_len` of a node whose data is null. Data lengths are bounded far below it (frames
/// and log records are at most 64 MiB).
const NULL_DATA_LEN: u32 = u32::MAX;

/// `data_len` for `data`: its length, or NULL_DATA_LEN when it is the null buffer.
fn data_len_of(data: &[u8]) -> u32 {
    if is_null_buffer(data) {
        return NULL_DATA_LEN;
    }
    // Data lengths come from frames and log/snapshot records, all bounded far below 4 GiB.
    match u32::try_from(data.len()) {
        Ok(len) if len != NULL_DATA_LEN => len,
        _ => std::process::abort(),
    }
}

/// Data bytes stored for a `data_len`.
fn stored_len(data_len: u32) -> usize {
    if data_len == NULL_DATA_LEN {
        0
    } else {
        data_len as usize
    }
}

/// More references than this to one node means a leak: abort as `Arc` does.
const MAX_REFS: u32 = u32::MAX / 2;

fn layout(data_len: usize) -> Layout {
    match Layout::from_size_align(DATA_OFFSET + data_len, std::mem::align_of::<Inner>()) {
        Ok(layout) => layout,
        // Data is bounded by the frame size (< 2 GiB): unreachable, but never UB.
        Err(_) => std::process::abort(),
    }
}

/// A shared znode (see the module docs). Reads go through `Deref` to [`Meta`] and
/// [`Znode::data`].
pub struct Znode {
    ptr: NonNull<Inner>,
    _owns: PhantomData<Inner>,
}

// SAFETY: a Znode is a shared pointer to an `Inner` that is only mutated while uniquely
// held (count == 1) and whose count is atomic; Meta is Send + Sync, the data is bytes.
unsafe impl Send for Znode {}
// SAFETY: as for Send: a shared Znode is only read.
unsafe impl Sync for Znode {}

impl Znode {
    /// A node with `meta` and a copy of `data`.
    /// Null data ([`crate::proto::is_null_buffer`]) makes a node whose data is null.
    pub fn new(meta: Meta, data: &[u8]) -> Znode {
        let data_len = data_len_of(data);
        let layout = layout(data.len());
        // SAFETY: the layout has a non-zero size (Inner is not empty). The allocation is
        // initialised before the Znode exists: Inner written, then the data copied right
        // after it, inside the allocation.
        unsafe {
            let raw = alloc::alloc(layout).cast::<Inner>();
            let Some(ptr) = NonNull::new(raw) else {
                alloc::handle_alloc_error(layout)
            };
            ptr.as_ptr().write(Inner {
                count: AtomicU32::new(1),
                data_len,
                meta,
            });
            ptr::copy_nonoverlapping(
                data.as_ptr(),
                ptr.as_ptr().cast::<u8>().add(DATA_OFFSET),
                data.len(),
            );
            Znode {
                ptr,
                _owns: PhantomData,
            }
        }
    }

    fn inner(&self) -> &Inner {
        // SAFETY: ptr is live while self exists (see the invariants).
        unsafe { self.ptr.as_ref() }
    }

    /// The node's data; null data is [`crate::proto::null_slice`] (empty).
    pub fn data(&self) -> &[u8] {
        let data_len = self.inner().data_len;
        if data_len == NULL_DATA_LEN {
            return null_slice();
        }
        let len = data_len as usize;
        // SAFETY: data_len initialised bytes follow Inner in the allocation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().cast::<u8>().add(DATA_OFFSET), len) }
    }

    /// The data for a reply, sharing this node (no copy).
    pub fn data_bytes(&self) -> Bytes {
        match self.inner().data_len {
            0 => return Bytes::new(),
            NULL_DATA_LEN => return null_buffer(),
            _ => {}
        }
        Bytes::from_owner(DataOf(self.clone()))
    }

    /// Whether the data is null (not merely empty).
    pub fn data_is_null(&self) -> bool {
        self.inner().data_len == NULL_DATA_LEN
    }

    /// Whether `a` and `b` are the same allocation.
    pub fn ptr_eq(a: &Znode, b: &Znode) -> bool {
        a.ptr == b.ptr
    }

    fn is_unique(&self) -> bool {
        self.inner().count.load(Ordering::Acquire) == 1
    }

    /// The fields to change, copying the node first if another `Znode` (an older tree
    /// version) shares it, as `Arc::make_mut`.
    pub fn make_mut(&mut self) -> &mut Meta {
        if !self.is_unique() {
            *self = Znode::new(self.inner().meta.clone(), self.data());
        }
        // SAFETY: count == 1: this is the only Znode pointing here, and `&mut self` is
        // the only access to it.
        unsafe { &mut self.ptr.as_mut().meta }
    }

    /// Replaces the data: in place when the node is not shared (resizing its allocation if
    /// the length changes), else in a new node with the same fields. Null data
    /// ([`crate::proto::is_null_buffer`]) makes the data null.
    pub fn set_data(&mut self, data: &[u8]) {
        if !self.is_unique() {
            *self = Znode::new(self.inner().meta.clone(), data);
            return;
        }
        let data_len = data_len_of(data);
        let old_len = stored_len(self.inner().data_len);
        if data.len() != old_len {
            let new = layout(data.len());
            // SAFETY: unique, so no one else reads the allocation while it moves; realloc
            // keeps Inner's bytes (a prefix of both sizes), and the layout's alignment is
            // the one it was allocated with.
            unsafe {
                let raw =
                    alloc::realloc(self.ptr.as_ptr().cast::<u8>(), layout(old_len), new.size())
                        .cast::<Inner>();
                let Some(ptr) = NonNull::new(raw) else {
                    alloc::handle_alloc_error(new)
                };
                self.ptr = ptr;
            }
        }
        // SAFETY: unique (see above).
        unsafe { self.ptr.as_mut().data_len = data_len };
        // SAFETY: unique; the allocation holds DATA_OFFSET + data.len() bytes.
        unsafe {
            ptr::copy_nonoverlapping(
                data.as_ptr(),
                self.ptr.as_ptr().cast::<u8>().add(DATA_OFFSET),
                data.len(),
            );
        }
    }

    /// The stat a client sees, as ZooKeeper's `DataNode.copyStat`: cversion counts creates
    /// and deletes (`2 * stored - numChildren`), and ephemeralOwner is 0 for containers and
    /// TTL nodes (only session ephemerals show their owner).
    pub fn stat(&self) -> Stat {
        let meta = &self.inner().meta;
        let num_children = meta.children.len() as i32;
        Stat {
            czxid: meta.czxid,
            mzxid: meta.mzxid,
            ctime: meta.ctime,
            mtime: meta.mtime,
            version: meta.version,
            cversion: meta.cversion.wrapping_mul(2).wrapping_sub(num_children),
            aversion: meta.aversion,
            ephemeral_owner: match EphemeralKind::of_owner(meta.ephemeral_owner) {
                EphemeralKind::Session(id) => id,
                _ => 0,
            },
            // ZooKeeper's copyStat: 0 for null data.
            data_length: stored_len(self.inner().data_len) as i32,
            num_children,
            pzxid: meta.pzxid,
        }
    }

    /// Equal but for the children.
    pub(super) fn same_fields(&self, other: &Znode) -> bool {
        self.inner().data_len == other.inner().data_len
            && self.data() == other.data()
            && self.inner().meta.same_fields(&other.inner().meta)
    }
}

impl Clone for Znode {
    fn clone(&self) -> Znode {
        let old = self.inner().count.fetch_add(1, Ordering::Relaxed);
        if old > MAX_REFS {
            std::process::abort();
        }
        Znode {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl Drop for Znode {
    fn drop(&mut self) {
        if self.inner().count.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // Every other Znode's use of the node happened before their decrements.
        atomic::fence(Ordering::Acquire);
        let len = stored_len(self.inner().data_len);
        // SAFETY: the count reached 0: this was the last Znode; Meta is dropped once and
        // the allocation freed with the layout it has.
        unsafe {
            ptr::drop_in_place(&mut (*self.ptr.as_ptr()).meta);
            alloc::dealloc(self.ptr.as_ptr().cast::<u8>(), layout(len));
        }
    }
}

impl Deref for Znode {
    type Target = Meta;

    fn deref(&self) -> &Meta {
        &self.inner().meta
    }
}

impl DerefMut for Znode {
    /// Copy-on-write, as [`Znode::make_mut`].
    fn deref_mut(&mut self) -> &mut Meta {
        self.make_mut()
    }
}

impl PartialEq for Znode {
    /// Same content: fields, data and children (deeply).
    fn eq(&self, other: &Znode) -> bool {
        Znode::ptr_eq(self, other) || (self.same_fields(other) && self.children == other.children)
    }
}

impl Eq for Znode {}

impl fmt::Debug for Znode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Znode")
            .field("data_is_null", &self.data_is_null())
            .field("data", &Bytes::copy_from_slice(self.data()))
            .field("meta", &self.inner().meta)
            .finish()
    }
}

/// A node lent to a reply as its data.
struct DataOf(Znode);

impl AsRef<[u8]> for DataOf {
    fn as_ref(&self) -> &[u8] {
        self.0.data()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(zxid: i64) -> Meta {
        Meta::new(Arc::new(Vec::new()), zxid, 1000 + zxid, 0)
    }

    #[test]
    fn one_allocation_of_header_and_data() {
        assert_eq!(std::mem::size_of::<Znode>(), 8);
        let node = Znode::new(meta(1), b"hello");
        assert_eq!(node.data(), b"hello");
        assert_eq!(node.czxid, 1);
        assert_eq!(node.stat().data_length, 5);
        let empty = Znode::new(meta(2), b"");
        assert!(empty.data().is_empty());
        assert!(empty.data_bytes().is_empty());
    }

    #[test]
    fn writes_to_a_shared_node_copy_it() {
        let old = Znode::new(meta(1), b"abc");
        let mut new = old.clone();
        assert!(Znode::ptr_eq(&old, &new));
        new.mzxid = 9;
        assert!(!Znode::ptr_eq(&old, &new));
        assert_eq!((old.mzxid, new.mzxid), (1, 9));
        assert_eq!(new.data(), b"abc");
        let before = new.ptr;
        new.version = 3; // unique now: changed in place
        assert_eq!(new.ptr, before);

        let mut shared = new.clone();
        shared.set_data(b"longer data");
        assert_eq!(new.data(), b"abc");
        assert_eq!(shared.data(), b"longer data");
        assert_eq!(shared.version, 3);
        assert_eq!(shared.stat().data_length, 11);
    }

    #[test]
    fn unique_nodes_change_data_in_place_and_resize() {
        let mut node = Znode::new(meta(1), b"0123456789");
        node.set_data(b"abcdefghij");
        assert_eq!(node.data(), b"abcdefghij");
        for len in [0, 1, 300, 7, 10_000, 2] {
            let data: Vec<u8> = (0..len).map(|i| i as u8).collect();
            node.set_data(&data);
            assert_eq!(node.data(), &data[..]);
            assert_eq!(node.czxid, 1);
        }
    }

    #[test]
    fn null_data_is_not_empty_data() {
        let mut node = Znode::new(meta(1), null_slice());
        assert!(node.data_is_null() && node.data().is_empty());
        assert!(is_null_buffer(node.data()) && is_null_buffer(&node.data_bytes()));
        assert_eq!(node.stat().data_length, 0);
        let empty = Znode::new(meta(1), b"");
        assert!(!empty.data_is_null() && !is_null_buffer(empty.data()));
        assert!(!is_null_buffer(&empty.data_bytes()));
        assert_ne!(node, empty);
        // In place: null -> data -> null -> empty, and on a shared node.
        node.set_data(b"abc");
        assert!(!node.data_is_null());
        assert_eq!((node.data(), node.stat().data_length), (&b"abc"[..], 3));
        node.set_data(&null_buffer());
        assert!(node.data_is_null() && node.stat().data_length == 0);
        let shared = node.clone();
        node.set_data(b"");
        assert!(!node.data_is_null() && node.data().is_empty());
        assert!(shared.data_is_null());
        let mut copy = shared.clone();
        copy.version = 4; // make_mut copies a null node as null
        assert!(copy.data_is_null() && !Znode::ptr_eq(&copy, &shared));
    }

    #[test]
    fn data_lent_to_a_reply_outlives_the_node() {
        let node = Znode::new(meta(1), b"payload");
        let bytes = node.data_bytes();
        drop(node);
        assert_eq!(&bytes[..], b"payload");
    }

    #[test]
    fn shared_across_threads() {
        let node = Znode::new(meta(1), b"x");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let node = node.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        let copy = node.clone();
                        assert_eq!(copy.data(), b"x");
                    }
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap();
        }
        assert!(node.is_unique());
    }
}
