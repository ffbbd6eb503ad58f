//! The nodes of [`super::PMapCap`]: their allocation, layout, reference counts and slot
//! moves. All of the map's unsafe code is here (`pmap.rs` denies `unsafe_code`); the
//! map's algorithms use the safe API below, and no call of it, however wrong, can break
//! memory safety: a call that would (an entry put in an inner node, more slots than a
//! node can hold, appending a node of another height) aborts the process instead.
//!
//! Layout. A node is one allocation of `Node::size(height, cap)` bytes, aligned to
//! `Node::ALIGN`: a [`Head`] (count, `len`, `cap`, `height`), then
//! - a leaf (height 0): `[K; cap]` at `LEAF_KEYS`, `[V; cap]` at `vals_offset(cap)`;
//! - an inner node: the subtree's entry count (`usize`) at `HEAD`, `[K; cap - 1]` at
//!   `INNER_KEYS`, `[Node; cap]` at `kids_offset(cap)`.
//!
//! Invariants (each unsafe block below relies on them and keeps them):
//! 1. `Node::ptr` points to a live allocation made by `Node::alloc` (or moved by
//!    `Mut::resize`) with `Node::layout(height, cap)` of the `Head` it starts with; `cap`
//!    and `height` change only together with the allocation (`resize` keeps `height`).
//! 2. `1 <= cap <= u16::MAX` and `len <= cap`. Exactly the first `len` values or children
//!    and the first `key_count()` keys (`len` in a leaf, `len - 1` in an inner node) are
//!    initialized; an inner node's entry count is always initialized. Slots past them
//!    are uninitialized and never read or dropped.
//! 3. `Head::rc` counts the `Node`s pointing at the allocation (as an `Arc`'s strong
//!    count, with the same atomic orderings: Relaxed increment, Release decrement, an
//!    Acquire fence before freeing, Acquire load to see uniqueness). The `Node` that
//!    takes it to zero drops the initialized slots once and frees the allocation with its
//!    layout.
//! 4. A node is written only through a [`Mut`], which only [`Node::make_mut`] creates,
//!    after it made the node unique (count 1, copied first if shared) and while it
//!    borrows the only `Node` mutably: no other reference can see the write. (Hence the
//!    map's Architecture Invariant: a version once published never changes.) A shared
//!    node is only read, so `Node` is `Send`/`Sync` as an `Arc<(K, V)>` is.
//! 5. A slot moved out by a raw copy (`split_off`, `append`, `leaf_remove`,
//!    `inner_remove`, `resize`) is forgotten where it was (`len` lowered, or the old
//!    block freed without dropping), so every value is dropped exactly once. Clones of
//!    `K`, `V` (which may panic) raise `len` one slot at a time, so a panic leaves the
//!    node consistent.
//!
//! What the safe API does not promise: the order of keys, the separators and the
//! subtree counts are the map's business (`pmap.rs`, checked by its tests); getting them
//! wrong gives wrong answers, never undefined behaviour.

#![allow(unsafe_code)]

use std::alloc::{self, Layout};
use std::marker::PhantomData;
use std::mem::{self, align_of, size_of};
use std::ops::Deref;
use std::ptr::{self, NonNull};
use std::slice;
use std::sync::atomic::{fence, AtomicUsize, Ordering};

use super::CAP_LIMIT;

/// A caller broke a precondition that memory safety rests on: stop rather than go on.
#[cold]
fn broken() -> ! {
    std::process::abort()
}

/// The start of every node.
#[repr(C)]
struct Head {
    /// References to this node (as an `Arc`'s strong count; there are no weak ones).
    rc: AtomicUsize,
    /// Entries (leaf) or children (inner node). Keys: `len` in a leaf, `len - 1` in an
    /// inner node.
    len: u16,
    /// Slots allocated. Invariant: `len <= cap`.
    cap: u16,
    /// 0 for a leaf. Invariant: an inner node's children have its height - 1.
    height: u16,
}

pub(super) const HEAD: usize = size_of::<Head>();

const fn round_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

const fn max_of(a: usize, b: usize) -> usize {
    if a > b {
        a
    } else {
        b
    }
}

/// The bytes mimalloc hands out for a request of `bytes` (its size classes).
pub(super) fn size_class(bytes: usize) -> usize {
    if bytes <= 64 {
        return round_up(bytes.max(8), 8);
    }
    // Four classes per power of two: the largest power below `bytes`, in quarters.
    let below = 1usize << (usize::BITS - 1 - (bytes - 1).leading_zeros());
    round_up(bytes, below / 4)
}

/// An owning, counted reference to a node (as an `Arc`).
///
/// Layout of a leaf: `Head`, `[K; cap]`, `[V; cap]`. Of an inner node: `Head`, the
/// subtree's entry count (`usize`), `[K; cap - 1]`, `[Node; cap]`. Only the first `len`
/// (`len - 1` keys in an inner node) slots are initialized.
pub(super) struct Node<K, V> {
    ptr: NonNull<Head>,
    _owns: PhantomData<(K, V)>,
}

// SAFETY: a node is shared between threads the way an `Arc<(K, V)>` is: its count is
// atomic and it is written only while uniquely held.
unsafe impl<K: Send + Sync, V: Send + Sync> Send for Node<K, V> {}
// SAFETY: as for Send: shared nodes are only read.
unsafe impl<K: Send + Sync, V: Send + Sync> Sync for Node<K, V> {}

impl<K, V> Node<K, V> {
    const ALIGN: usize = max_of(
        align_of::<Head>(),
        max_of(
            align_of::<K>(),
            max_of(align_of::<V>(), align_of::<usize>()),
        ),
    );
    const LEAF_KEYS: usize = round_up(HEAD, align_of::<K>());
    const INNER_KEYS: usize = round_up(HEAD + size_of::<usize>(), align_of::<K>());

    const fn vals_offset(cap: usize) -> usize {
        round_up(Self::LEAF_KEYS + cap * size_of::<K>(), align_of::<V>())
    }

    const fn kids_offset(cap: usize) -> usize {
        round_up(
            Self::INNER_KEYS + cap.saturating_sub(1) * size_of::<K>(),
            align_of::<Node<K, V>>(),
        )
    }

    pub(super) const fn size(height: u16, cap: usize) -> usize {
        if height == 0 {
            Self::vals_offset(cap) + cap * size_of::<V>()
        } else {
            Self::kids_offset(cap) + cap * size_of::<Node<K, V>>()
        }
    }

    /// The most slots of a node of `height` that fit `bytes` (at least 3, at most
    /// [`CAP_LIMIT`]).
    pub(super) const fn fitting(height: u16, bytes: usize) -> usize {
        let mut cap = 3;
        while cap < CAP_LIMIT && Self::size(height, cap + 1) <= bytes {
            cap += 1;
        }
        cap
    }

    fn layout(height: u16, cap: usize) -> Layout {
        match Layout::from_size_align(Self::size(height, cap), Self::ALIGN) {
            Ok(layout) => layout,
            // Only a key or value type of absurd size gets here.
            Err(_) => std::process::abort(),
        }
    }

    /// The capacity to allocate for `n` slots: all its size class holds, up to `max`
    /// (exactly `n` when that is more than `max`).
    pub(super) fn capacity_for(height: u16, n: usize, max: usize) -> usize {
        let n = n.max(1);
        if n >= max {
            return n;
        }
        let size = Self::size(height, n);
        let class = size_class(size);
        let per = size_of::<K>()
            + if height == 0 {
                size_of::<V>()
            } else {
                size_of::<Node<K, V>>()
            };
        if per == 0 {
            return max;
        }
        // Padding between the arrays can only make it smaller than this estimate.
        let mut cap = (n + (class - size) / per).min(max);
        while cap > n && Self::size(height, cap) > class {
            cap -= 1;
        }
        cap
    }

    /// A new, empty node (reference count 1).
    pub(super) fn alloc(height: u16, cap: usize) -> Self {
        let cap = cap.clamp(1, u16::MAX as usize);
        let layout = Self::layout(height, cap);
        // SAFETY: the layout has a non-zero size (the header).
        let raw = unsafe { alloc::alloc(layout) }.cast::<Head>();
        let Some(ptr) = NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        // SAFETY: freshly allocated for this layout, which starts with a `Head` (and, in
        // an inner node, the entry count).
        unsafe {
            raw.write(Head {
                rc: AtomicUsize::new(1),
                len: 0,
                cap: cap as u16,
                height,
            });
            if height > 0 {
                raw.cast::<u8>().add(HEAD).cast::<usize>().write(0);
            }
        }
        Node {
            ptr,
            _owns: PhantomData,
        }
    }

    fn head(&self) -> &Head {
        // SAFETY: the node is alive while this reference is; a shared node is never
        // written, and a unique one only through `&mut self`.
        unsafe { self.ptr.as_ref() }
    }

    pub(super) fn len(&self) -> usize {
        self.head().len as usize
    }

    pub(super) fn cap(&self) -> usize {
        self.head().cap as usize
    }

    pub(super) fn height(&self) -> u16 {
        self.head().height
    }

    pub(super) fn is_leaf(&self) -> bool {
        self.head().height == 0
    }

    pub(super) fn is_unique(&self) -> bool {
        // Acquire: another version's writes (before it dropped its reference) happen
        // before ours.
        self.head().rc.load(Ordering::Acquire) == 1
    }

    /// Whether both are the same node.
    pub(super) fn ptr_eq(&self, other: &Self) -> bool {
        self.ptr == other.ptr
    }

    /// References to this node (for tests; racy while other threads hold it).
    #[cfg(test)]
    pub(super) fn ref_count(&self) -> usize {
        self.head().rc.load(Ordering::Relaxed)
    }

    fn raw(&self) -> *mut u8 {
        self.ptr.as_ptr().cast()
    }

    fn key_count(&self) -> usize {
        if self.is_leaf() {
            self.len()
        } else {
            self.len().saturating_sub(1)
        }
    }

    fn keys_ptr(&self) -> *mut K {
        let offset = if self.is_leaf() {
            Self::LEAF_KEYS
        } else {
            Self::INNER_KEYS
        };
        // SAFETY: within the allocation.
        unsafe { self.raw().add(offset).cast() }
    }

    /// A leaf's values.
    fn vals_ptr(&self) -> *mut V {
        // SAFETY: within the allocation.
        unsafe { self.raw().add(Self::vals_offset(self.cap())).cast() }
    }

    /// An inner node's children.
    fn kids_ptr(&self) -> *mut Node<K, V> {
        // SAFETY: within the allocation.
        unsafe { self.raw().add(Self::kids_offset(self.cap())).cast() }
    }

    /// An inner node's entry count.
    fn total_ptr(&self) -> *mut usize {
        // SAFETY: within the allocation.
        unsafe { self.raw().add(HEAD).cast() }
    }

    pub(super) fn keys(&self) -> &[K] {
        // SAFETY: the first `key_count` keys are initialized.
        unsafe { slice::from_raw_parts(self.keys_ptr(), self.key_count()) }
    }

    pub(super) fn vals(&self) -> &[V] {
        if !self.is_leaf() {
            return &[];
        }
        // SAFETY: a leaf's first `len` values are initialized.
        unsafe { slice::from_raw_parts(self.vals_ptr(), self.len()) }
    }

    pub(super) fn children(&self) -> &[Node<K, V>] {
        if self.is_leaf() {
            return &[];
        }
        // SAFETY: an inner node's first `len` children are initialized.
        unsafe { slice::from_raw_parts(self.kids_ptr(), self.len()) }
    }

    /// Entries in this subtree.
    pub(super) fn total(&self) -> usize {
        if self.is_leaf() {
            self.len()
        } else {
            // SAFETY: an inner node's count is initialized at allocation.
            unsafe { *self.total_ptr() }
        }
    }

    /// This node, made unique (copied if shared; the copy's capacity fits `len + extra`
    /// up to `max`) with room for `extra` more slots (grown by at least a quarter if it must).
    pub(super) fn make_mut(&mut self, extra: usize, max: usize) -> Mut<'_, K, V>
    where
        K: Clone,
        V: Clone,
    {
        if !self.is_unique() {
            let cap = Self::capacity_for(self.height(), self.len() + extra, max);
            *self = self.clone_with_capacity(cap);
        }
        let mut unique = Mut { node: self };
        unique.reserve(extra, max);
        unique
    }

    /// A unique copy with capacity `cap` (at least `len`).
    fn clone_with_capacity(&self, cap: usize) -> Self
    where
        K: Clone,
        V: Clone,
    {
        let height = self.height();
        let len = self.len();
        let copy: Node<K, V> = Node::alloc(height, cap.max(len));
        let dst_keys = copy.keys_ptr();
        if height == 0 {
            let dst_vals = copy.vals_ptr();
            for (i, (key, val)) in self.keys().iter().zip(self.vals()).enumerate() {
                let (key, val) = (key.clone(), val.clone());
                // SAFETY: i < len <= the copy's capacity; `len` is raised after each
                // write, so a panicking clone leaves the copy consistent.
                unsafe {
                    dst_keys.add(i).write(key);
                    dst_vals.add(i).write(val);
                    (*copy.ptr.as_ptr()).len = (i + 1) as u16;
                }
            }
        } else {
            let dst_kids = copy.kids_ptr();
            // SAFETY: as above; key i - 1 goes with child i.
            unsafe {
                *copy.total_ptr() = self.total();
                for (i, child) in self.children().iter().enumerate() {
                    if i > 0 {
                        if let Some(key) = self.keys().get(i - 1) {
                            dst_keys.add(i - 1).write(key.clone());
                        }
                    }
                    dst_kids.add(i).write(child.clone());
                    (*copy.ptr.as_ptr()).len = (i + 1) as u16;
                }
            }
        }
        copy
    }
}

impl<K, V> Clone for Node<K, V> {
    /// Another reference to the same node.
    fn clone(&self) -> Self {
        let old = self.head().rc.fetch_add(1, Ordering::Relaxed);
        if old > isize::MAX as usize {
            // As `Arc`: billions of leaked references.
            std::process::abort();
        }
        Node {
            ptr: self.ptr,
            _owns: PhantomData,
        }
    }
}

impl<K, V> Drop for Node<K, V> {
    /// Drops a reference; the last one drops the content (children recursively: the
    /// recursion is as deep as the tree, a handful of levels) and frees the node.
    fn drop(&mut self) {
        if self.head().rc.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // As `Arc`: every other reference's use happens before this drop.
        fence(Ordering::Acquire);
        let layout = Self::layout(self.height(), self.cap());
        // SAFETY: the last reference: the initialized slots are dropped once, then the
        // allocation is freed with the layout it was allocated (or resized) with.
        unsafe {
            ptr::drop_in_place(ptr::slice_from_raw_parts_mut(
                self.keys_ptr(),
                self.key_count(),
            ));
            if self.is_leaf() {
                ptr::drop_in_place(ptr::slice_from_raw_parts_mut(self.vals_ptr(), self.len()));
            } else {
                ptr::drop_in_place(ptr::slice_from_raw_parts_mut(self.kids_ptr(), self.len()));
            }
            alloc::dealloc(self.raw(), layout);
        }
    }
}

/// A node this code holds the only reference to: the only way to write one.
pub(super) struct Mut<'a, K, V> {
    node: &'a mut Node<K, V>,
}

impl<K, V> Deref for Mut<'_, K, V> {
    type Target = Node<K, V>;

    fn deref(&self) -> &Node<K, V> {
        self.node
    }
}

impl<'a, K, V> Mut<'a, K, V> {
    fn head_mut(&mut self) -> &mut Head {
        // SAFETY: unique, and borrowed mutably.
        unsafe { self.node.ptr.as_mut() }
    }

    fn set_len(&mut self, len: usize) {
        self.head_mut().len = len as u16;
    }

    pub(super) fn set_total(&mut self, total: usize) {
        if !self.is_leaf() {
            // SAFETY: an inner node's count, written through the unique reference.
            unsafe { *self.total_ptr() = total }
        }
    }

    pub(super) fn add_total(&mut self, n: usize) {
        let total = self.total();
        self.set_total(total.wrapping_add(n));
    }

    pub(super) fn sub_total(&mut self, n: usize) {
        let total = self.total();
        self.set_total(total.wrapping_sub(n));
    }

    pub(super) fn keys_mut(&mut self) -> &mut [K] {
        // SAFETY: initialized, unique.
        unsafe { slice::from_raw_parts_mut(self.keys_ptr(), self.key_count()) }
    }

    pub(super) fn into_vals_mut(self) -> &'a mut [V] {
        if !self.is_leaf() {
            return &mut [];
        }
        // SAFETY: initialized, unique, borrowed for 'a.
        unsafe { slice::from_raw_parts_mut(self.vals_ptr(), self.len()) }
    }

    pub(super) fn children_mut(&mut self) -> &mut [Node<K, V>] {
        if self.is_leaf() {
            return &mut [];
        }
        // SAFETY: initialized, unique.
        unsafe { slice::from_raw_parts_mut(self.kids_ptr(), self.len()) }
    }

    /// Puts `node` in this one's place; returns this one.
    pub(super) fn replace(self, node: Node<K, V>) -> Node<K, V> {
        mem::replace(self.node, node)
    }

    pub(super) fn into_children_mut(self) -> &'a mut [Node<K, V>] {
        if self.is_leaf() {
            return &mut [];
        }
        // SAFETY: initialized, unique, borrowed for 'a.
        unsafe { slice::from_raw_parts_mut(self.kids_ptr(), self.len()) }
    }

    /// Reallocates to capacity `cap` (at least `len`), moving the second array (values
    /// or children), whose offset depends on the capacity.
    pub(super) fn resize(&mut self, cap: usize) {
        let len = self.len();
        let cap = cap.max(len).clamp(1, u16::MAX as usize);
        let old_cap = self.cap();
        if cap == old_cap {
            return;
        }
        let height = self.height();
        let (old_offset, new_offset, bytes) = if height == 0 {
            (
                Node::<K, V>::vals_offset(old_cap),
                Node::<K, V>::vals_offset(cap),
                len * size_of::<V>(),
            )
        } else {
            (
                Node::<K, V>::kids_offset(old_cap),
                Node::<K, V>::kids_offset(cap),
                len * size_of::<Node<K, V>>(),
            )
        };
        let old_layout = Node::<K, V>::layout(height, old_cap);
        let new_layout = Node::<K, V>::layout(height, cap);
        let raw = self.raw();
        // The header, the count and the keys keep their offsets (`len` keys fit both).
        let prefix = old_offset.min(new_offset);
        // SAFETY: unique. Growing: `realloc` keeps the bytes, then the second array
        // moves up within the new block. Shrinking: a new block (a shrinking `realloc`
        // may keep the old one whole: mimalloc does unless it halves) gets the prefix
        // and the second array, and the old block is freed without dropping anything.
        unsafe {
            let moved = if cap > old_cap {
                let moved = alloc::realloc(raw, old_layout, new_layout.size());
                if moved.is_null() {
                    alloc::handle_alloc_error(new_layout);
                }
                ptr::copy(moved.add(old_offset), moved.add(new_offset), bytes);
                moved
            } else {
                let moved = alloc::alloc(new_layout);
                if moved.is_null() {
                    alloc::handle_alloc_error(new_layout);
                }
                ptr::copy_nonoverlapping(raw, moved, prefix);
                ptr::copy_nonoverlapping(raw.add(old_offset), moved.add(new_offset), bytes);
                alloc::dealloc(raw, old_layout);
                moved
            };
            self.node.ptr = NonNull::new_unchecked(moved.cast());
        }
        self.head_mut().cap = cap as u16;
    }

    /// Room for `extra` more slots (growing by at least a quarter).
    pub(super) fn reserve(&mut self, extra: usize, max: usize) {
        let need = self.len() + extra;
        let cap = self.cap();
        if need > cap {
            let grown = if need > max {
                need
            } else {
                need.max(cap + cap / 4).min(max)
            };
            self.resize(Node::<K, V>::capacity_for(self.height(), grown, max));
        }
    }

    /// Gives back memory when less than half the capacity is used (or it is over `max`
    /// after a merge or an insert that splits next).
    pub(super) fn shrink(&mut self, max: usize) {
        let len = self.len();
        if len > 0 && (len * 2 < self.cap() || self.cap() > max) {
            let cap = Node::<K, V>::capacity_for(self.height(), len, max);
            if cap < self.cap() {
                self.resize(cap);
            }
        }
    }

    /// Inserts an entry at `i` of a leaf.
    pub(super) fn leaf_insert(&mut self, i: usize, key: K, val: V) {
        if !self.is_leaf() {
            broken();
        }
        let len = self.len();
        if len >= self.cap() {
            self.reserve(1, CAP_LIMIT);
            if len >= self.cap() {
                broken();
            }
        }
        let i = i.min(len);
        let (keys, vals) = (self.keys_ptr(), self.vals_ptr());
        // SAFETY: unique, len < cap: the tail moves up one slot within the capacity.
        unsafe {
            ptr::copy(keys.add(i), keys.add(i + 1), len - i);
            keys.add(i).write(key);
            ptr::copy(vals.add(i), vals.add(i + 1), len - i);
            vals.add(i).write(val);
        }
        self.set_len(len + 1);
    }

    /// Removes the entry at `i` of a leaf.
    pub(super) fn leaf_remove(&mut self, i: usize) -> Option<(K, V)> {
        let len = self.len();
        if i >= len || !self.is_leaf() {
            return None;
        }
        let (keys, vals) = (self.keys_ptr(), self.vals_ptr());
        // SAFETY: unique, i < len: slot i is read out and the tail closes the gap.
        let entry = unsafe {
            let key = keys.add(i).read();
            ptr::copy(keys.add(i + 1), keys.add(i), len - i - 1);
            let val = vals.add(i).read();
            ptr::copy(vals.add(i + 1), vals.add(i), len - i - 1);
            (key, val)
        };
        self.set_len(len - 1);
        Some(entry)
    }

    /// The first child of an empty inner node. The count is the caller's.
    pub(super) fn inner_start(&mut self, child: Node<K, V>) {
        if self.len() != 0 || self.is_leaf() {
            return;
        }
        // SAFETY: unique, cap >= 1, empty.
        unsafe { self.kids_ptr().write(child) };
        self.set_len(1);
    }

    /// Inserts `child` at `i` of an inner node, with `key` as the separator between it
    /// and its left neighbour (or, at 0, its right neighbour). The count is the caller's.
    pub(super) fn inner_insert(&mut self, i: usize, key: K, child: Node<K, V>) {
        if self.is_leaf() {
            broken();
        }
        let len = self.len();
        if len >= self.cap() {
            self.reserve(1, CAP_LIMIT);
            if len >= self.cap() {
                broken();
            }
        }
        let (keys, kids) = (self.keys_ptr(), self.kids_ptr());
        if len == 0 {
            // SAFETY: unique, cap >= 1.
            unsafe { kids.write(child) };
            self.set_len(1);
            return;
        }
        let i = i.min(len);
        let key_at = i.saturating_sub(1);
        let key_count = len - 1;
        // SAFETY: unique, len < cap: keys (len - 1 of cap - 1) and children (len of cap)
        // move up one slot.
        unsafe {
            ptr::copy(keys.add(key_at), keys.add(key_at + 1), key_count - key_at);
            keys.add(key_at).write(key);
            ptr::copy(kids.add(i), kids.add(i + 1), len - i);
            kids.add(i).write(child);
        }
        self.set_len(len + 1);
    }

    /// Removes the child at `i` of an inner node with its separator to the left (at 0,
    /// to the right; none when it was the only child). The count is the caller's.
    pub(super) fn inner_remove(&mut self, i: usize) -> Option<(Option<K>, Node<K, V>)> {
        let len = self.len();
        if i >= len || self.is_leaf() {
            return None;
        }
        let (keys, kids) = (self.keys_ptr(), self.kids_ptr());
        let key_count = len - 1;
        // SAFETY: unique, i < len: the child and the key are read out and the tails
        // close the gaps.
        let removed = unsafe {
            let key = if key_count == 0 {
                None
            } else {
                let key_at = i.saturating_sub(1);
                let key = keys.add(key_at).read();
                ptr::copy(
                    keys.add(key_at + 1),
                    keys.add(key_at),
                    key_count - key_at - 1,
                );
                Some(key)
            };
            let child = kids.add(i).read();
            ptr::copy(kids.add(i + 1), kids.add(i), len - i - 1);
            (key, child)
        };
        self.set_len(len - 1);
        Some(removed)
    }

    /// Moves the slots from `at` on into a new node with room for `extra` more, and
    /// returns the separator between the two: the new node's first key (leaf), or the
    /// key that stood between them (inner node, it moves up). None unless
    /// `0 < at < len`.
    pub(super) fn split_off(
        &mut self,
        at: usize,
        extra: usize,
        max: usize,
    ) -> Option<(K, Node<K, V>)>
    where
        K: Clone,
    {
        let len = self.len();
        if at == 0 || at >= len {
            return None;
        }
        let height = self.height();
        let moved = len - at;
        let right: Node<K, V> = Node::alloc(
            height,
            Node::<K, V>::capacity_for(height, moved + extra, max).max(moved),
        );
        let (keys, right_keys) = (self.keys_ptr(), right.keys_ptr());
        if height == 0 {
            // SAFETY: unique; slots at..len move to a new node with room for them.
            unsafe {
                ptr::copy_nonoverlapping(keys.add(at), right_keys, moved);
                ptr::copy_nonoverlapping(self.vals_ptr().add(at), right.vals_ptr(), moved);
                (*right.ptr.as_ptr()).len = moved as u16;
            }
            self.set_len(at);
            let separator = right.keys().first()?.clone();
            return Some((separator, right));
        }
        // SAFETY: unique; children at..len and the keys after them move, key at - 1
        // moves out.
        let separator = unsafe {
            let separator = keys.add(at - 1).read();
            ptr::copy_nonoverlapping(keys.add(at), right_keys, moved - 1);
            ptr::copy_nonoverlapping(self.kids_ptr().add(at), right.kids_ptr(), moved);
            (*right.ptr.as_ptr()).len = moved as u16;
            separator
        };
        self.set_len(at);
        let moved_total: usize = right.children().iter().map(Node::total).sum();
        // SAFETY: the new node is unique.
        unsafe { *right.total_ptr() = moved_total };
        self.sub_total(moved_total);
        Some((separator, right))
    }

    /// Appends the slots of `other` (same height, to the right of this node); for inner
    /// nodes `separator` goes between the two. Moves them if `other` is unique, else
    /// clones them.
    pub(super) fn append(&mut self, separator: K, other: Node<K, V>)
    where
        K: Clone,
        V: Clone,
    {
        if other.height() != self.height() {
            broken();
        }
        let len = self.len();
        let count = other.len();
        if self.cap() < len + count {
            self.reserve(count, CAP_LIMIT);
            if self.cap() < len + count {
                broken();
            }
        }
        let keys = self.keys_ptr();
        let move_out = other.is_unique();
        if self.is_leaf() {
            let vals = self.vals_ptr();
            // SAFETY: unique, room for `count` more. Moved slots are forgotten by `other`
            // (its length set to 0) before it is dropped; clones raise `len` one by one.
            unsafe {
                if move_out {
                    ptr::copy_nonoverlapping(other.keys_ptr(), keys.add(len), count);
                    ptr::copy_nonoverlapping(other.vals_ptr(), vals.add(len), count);
                    (*other.ptr.as_ptr()).len = 0;
                    self.set_len(len + count);
                } else {
                    for (i, (key, val)) in other.keys().iter().zip(other.vals()).enumerate() {
                        let (key, val) = (key.clone(), val.clone());
                        keys.add(len + i).write(key);
                        vals.add(len + i).write(val);
                        self.set_len(len + i + 1);
                    }
                }
            }
            return;
        }
        if len == 0 || count == 0 {
            // Not reached (inner nodes are not empty); keeps the keys consistent.
            for child in other.children() {
                let total = child.total();
                self.inner_insert(usize::MAX, separator.clone(), child.clone());
                self.add_total(total);
            }
            return;
        }
        let kids = self.kids_ptr();
        let other_total = other.total();
        // SAFETY: unique, room for `count` more children (and keys). Key len - 1 is the
        // separator, then the other node's keys.
        unsafe {
            keys.add(len - 1).write(separator);
            if move_out {
                ptr::copy_nonoverlapping(other.keys_ptr(), keys.add(len), count - 1);
                ptr::copy_nonoverlapping(other.kids_ptr(), kids.add(len), count);
                (*other.ptr.as_ptr()).len = 0;
                self.set_len(len + count);
            } else {
                for (i, child) in other.children().iter().enumerate() {
                    if i > 0 {
                        if let Some(key) = other.keys().get(i - 1) {
                            keys.add(len + i - 1).write(key.clone());
                        }
                    }
                    kids.add(len + i).write(child.clone());
                    self.set_len(len + i + 1);
                }
            }
        }
        self.add_total(other_total);
    }
}
