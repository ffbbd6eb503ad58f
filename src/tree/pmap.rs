//! A persistent ordered map: a copy-on-write B+tree whose nodes are shared between
//! versions. It holds every znode's children (name -> node).
//!
//! `clone()` is O(1) (one reference count); a write copies the nodes on its path that an
//! older version still shares and changes the copies, so a version being read elsewhere
//! never sees it. Values sit in the leaves only; an inner node holds separator keys and
//! child pointers (child `i` holds the keys from separator `i - 1` up to, not including,
//! separator `i`).
//!
//! Memory follows the content, which is the point of this map (rather than `imbl`'s, whose
//! fixed 16-entry nodes split at the median take ~63 bytes per 24-byte entry added in
//! ascending order, and ~450 bytes for a map of one):
//! - A node is one allocation with its own reference count (as an `Arc`'s, but the node's
//!   size varies): a 16-byte header (count, length, capacity, height), then the keys,
//!   then the values (leaf) or the children (inner node, which also keeps its subtree's
//!   entry count, so that `len()` is O(1)).
//! - A node is allocated with all the capacity its allocator size class holds
//!   (mimalloc's classes: 8-byte steps up to 64 bytes, then four per power of two). It
//!   grows by a quarter when full, unless shared: the copy it then gets anyway is sized to
//!   fit. It shrinks when less than half used. A map of one entry takes 40 bytes, of ten
//!   256.
//! - The largest node is 1536 bytes, a size class: 63 entries of 24 bytes (a 16-byte name
//!   and an 8-byte pointer) after the header.
//! - An insert past the end of a full node leaves it full and starts a new node, one
//!   before its start likewise (a full leaf's neighbour with room takes the key instead);
//!   only an insert in the middle splits at the median. Children created in ascending
//!   (or descending) order, as sequential nodes and generated keys are, fill every node:
//!   ~24.8 bytes per 24-byte entry, inner nodes included; ~29 in random order.
//! - A remove that leaves a node under a quarter full merges it with a neighbour or
//!   evens the two out; an empty node goes away, a root with one child is replaced by it,
//!   and an empty map allocates nothing.
//!
//! Architecture Invariant: the map never changes a node another reference can reach: a
//! node is written only through a `Mut`, which `Node::make_mut` hands out after it made
//! the node unique (reference count 1).
//!
//! This file has no unsafe code (denied): the nodes' allocation, layout, reference
//! counts and slot moves are in [`raw`], whose module docs state the safety invariants;
//! its API is safe to call in any way.

#![deny(unsafe_code)]

use std::borrow::Borrow;
use std::fmt;
use std::iter::FusedIterator;
use std::mem;

mod raw;

use raw::{Mut, Node};

/// The map, with node capacities derived from the entry sizes (full nodes of
/// [`NODE_BYTES`]).
pub(crate) type PMap<K, V> = PMapCap<K, V, 0>;

/// What a full node takes, header included: a mimalloc size class.
const NODE_BYTES: usize = 1536;

/// The most entries (leaf) or children (inner node) one node may hold.
const CAP_LIMIT: usize = 4096;

/// A persistent ordered map whose nodes hold at most `MAX` entries (leaves) or children
/// (inner nodes); 0 picks, per node kind, the most that fit [`NODE_BYTES`]. Small
/// capacities are for tests.
pub(crate) struct PMapCap<K, V, const MAX: usize> {
    /// None when empty. Invariant: a root leaf is not empty; a root inner node has at
    /// least two children.
    root: Option<Node<K, V>>,
}

// ----------------------------------------------------------------------------------------
// The map.

enum Inserted<K, V> {
    Replaced(V),
    Added,
    /// Added, and the node split in two: the separator and the right one.
    Split(K, Node<K, V>, Grew),
}

/// Which of the two nodes after a split is the new one (for the parent, which splits the
/// same way when it is full at that end).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Grew {
    /// The right one: the left one is the node that was full, unchanged.
    Right,
    /// The left one (in the full node's place): the right one is the node that was full.
    Left,
    /// Both halves of a median split.
    Middle,
}

#[inline]
fn search<K: Borrow<Q>, Q: ?Sized + Ord>(keys: &[K], key: &Q) -> Result<usize, usize> {
    keys.binary_search_by(|probe| probe.borrow().cmp(key))
}

/// The child of an inner node whose range holds `key`.
#[inline]
fn child_index<K: Borrow<Q>, Q: ?Sized + Ord>(keys: &[K], key: &Q) -> usize {
    match search(keys, key) {
        Ok(i) => i + 1,
        Err(i) => i,
    }
}

/// The leaf entry of `key` in the subtree of `node`.
fn find<'a, K, V, Q>(mut node: &'a Node<K, V>, key: &Q) -> Option<(&'a Node<K, V>, usize)>
where
    K: Borrow<Q>,
    Q: ?Sized + Ord,
{
    loop {
        let keys = node.keys();
        if node.is_leaf() {
            return search(keys, key).ok().map(|i| (node, i));
        }
        node = node.children().get(child_index(keys, key))?;
    }
}

impl<K, V, const MAX: usize> Default for PMapCap<K, V, MAX> {
    fn default() -> Self {
        PMapCap { root: None }
    }
}

impl<K, V, const MAX: usize> Clone for PMapCap<K, V, MAX> {
    /// O(1): the versions share every node until one of them writes.
    fn clone(&self) -> Self {
        PMapCap {
            root: self.root.clone(),
        }
    }
}

impl<K: Ord + Clone, V: Clone, const MAX: usize> PMapCap<K, V, MAX> {
    const LEAF_MAX: usize = {
        assert!(MAX == 0 || (MAX >= 3 && MAX <= CAP_LIMIT));
        if MAX > 0 {
            MAX
        } else {
            Node::<K, V>::fitting(0, NODE_BYTES)
        }
    };
    const INNER_MAX: usize = if MAX > 0 {
        MAX
    } else {
        Node::<K, V>::fitting(1, NODE_BYTES)
    };

    fn max_for(height: u16) -> usize {
        if height == 0 {
            Self::LEAF_MAX
        } else {
            Self::INNER_MAX
        }
    }

    /// Below this a node merges with or borrows from a neighbour.
    fn min_for(height: u16) -> usize {
        (Self::max_for(height) / 4).max(1)
    }

    pub(crate) fn new() -> Self {
        PMapCap { root: None }
    }

    /// The value of `key`, to change in place. The nodes on its path are copied where an
    /// older version shares them, and only when the key is there.
    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: ?Sized + Ord,
    {
        let mut node = self.root.as_mut()?;
        let mut found = false;
        loop {
            if !found && !node.is_unique() {
                find(node, key)?;
                found = true;
            }
            if node.is_leaf() {
                let i = search(node.keys(), key).ok()?;
                return node.make_mut(0, Self::LEAF_MAX).into_vals_mut().get_mut(i);
            }
            let i = child_index(node.keys(), key);
            node = node
                .make_mut(0, Self::INNER_MAX)
                .into_children_mut()
                .get_mut(i)?;
        }
    }

    /// Adds or replaces; returns the value replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let Some(root) = self.root.as_mut() else {
            let mut leaf = Node::alloc(0, Node::<K, V>::capacity_for(0, 1, Self::LEAF_MAX));
            leaf.make_mut(0, Self::LEAF_MAX).leaf_insert(0, key, value);
            self.root = Some(leaf);
            return None;
        };
        match Self::insert_into(root, key, value) {
            Inserted::Replaced(old) => Some(old),
            Inserted::Added => None,
            Inserted::Split(separator, right, _) => {
                let height = root.height().saturating_add(1);
                let total = root.total() + right.total();
                let mut top = Node::alloc(
                    height,
                    Node::<K, V>::capacity_for(height, 2, Self::INNER_MAX),
                );
                let old = self.root.take();
                {
                    let mut top = top.make_mut(0, Self::INNER_MAX);
                    if let Some(old) = old {
                        top.inner_start(old);
                    }
                    top.inner_insert(1, separator, right);
                    top.set_total(total);
                }
                self.root = Some(top);
                None
            }
        }
    }

    fn insert_into(node: &mut Node<K, V>, key: K, value: V) -> Inserted<K, V> {
        let len = node.len();
        if node.is_leaf() {
            let max = Self::LEAF_MAX;
            return match search(node.keys(), &key) {
                Ok(i) => match node.make_mut(0, max).into_vals_mut().get_mut(i) {
                    Some(slot) => Inserted::Replaced(mem::replace(slot, value)),
                    None => Inserted::Added,
                },
                Err(i) if len < max => {
                    node.make_mut(1, max).leaf_insert(i, key, value);
                    Inserted::Added
                }
                Err(i) if i == len => {
                    // Past the end of a full leaf: it stays full, the key starts a new one.
                    let separator = key.clone();
                    let mut right = Node::alloc(0, Node::<K, V>::capacity_for(0, 1, max));
                    right.make_mut(0, max).leaf_insert(0, key, value);
                    Inserted::Split(separator, right, Grew::Right)
                }
                Err(0) => {
                    // Before the start of a full leaf: it stays full (and moves right
                    // as it is, shared or not), the key starts a new leaf in its place.
                    let Some(separator) = node.keys().first().cloned() else {
                        return Inserted::Added;
                    };
                    let mut left = Node::alloc(0, Node::<K, V>::capacity_for(0, 1, max));
                    left.make_mut(0, max).leaf_insert(0, key, value);
                    let full = mem::replace(node, left);
                    Inserted::Split(separator, full, Grew::Left)
                }
                Err(i) => {
                    // In the middle: split at the median, `left` entries stay.
                    let left = max.div_ceil(2);
                    let mut node = node.make_mut(0, max);
                    let split = if i < left {
                        let split = node.split_off(left - 1, 0, max);
                        node.leaf_insert(i, key, value);
                        split
                    } else {
                        let mut split = node.split_off(left, 1, max);
                        if let Some((separator, right)) = split.as_mut() {
                            right.make_mut(1, max).leaf_insert(i - left, key, value);
                            if i == left {
                                if let Some(first) = right.keys().first() {
                                    *separator = first.clone();
                                }
                            }
                        }
                        split
                    };
                    // Both halves sized to fit (random inserts leave leaves ~70% full).
                    let fitting = Node::<K, V>::capacity_for(0, node.len(), max);
                    if fitting < node.cap() {
                        node.resize(fitting);
                    }
                    match split {
                        Some((separator, right)) => Inserted::Split(separator, right, Grew::Middle),
                        None => Inserted::Added,
                    }
                }
            };
        }
        let max = Self::INNER_MAX;
        let height = node.height();
        let c = child_index(node.keys(), &key);
        let mut node = node.make_mut(0, max);
        if Self::fits_next_leaf(&node, c, &key) {
            // Past the end of a full leaf whose right neighbour has room: the key goes
            // first there (rather than into a leaf of its own).
            let separator = key.clone();
            if let Some(next) = node.children_mut().get_mut(c + 1) {
                next.make_mut(1, Self::LEAF_MAX).leaf_insert(0, key, value);
            }
            if let Some(slot) = node.keys_mut().get_mut(c) {
                *slot = separator;
            }
            node.add_total(1);
            return Inserted::Added;
        }
        if Self::fits_previous_leaf(&node, c, &key) {
            // Before the start of a full leaf whose left neighbour has room: the key goes
            // last there, the full leaf's range starts at its first key.
            let separator = node
                .children()
                .get(c)
                .and_then(|child| child.keys().first().cloned());
            if let (Some(separator), Some(previous)) =
                (separator, node.children_mut().get_mut(c - 1))
            {
                let mut previous = previous.make_mut(1, Self::LEAF_MAX);
                let end = previous.len();
                previous.leaf_insert(end, key, value);
                if let Some(slot) = node.keys_mut().get_mut(c - 1) {
                    *slot = separator;
                }
                node.add_total(1);
            }
            return Inserted::Added;
        }
        let Some(child) = node.children_mut().get_mut(c) else {
            return Inserted::Added;
        };
        let (separator, right, grew) = match Self::insert_into(child, key, value) {
            Inserted::Replaced(old) => return Inserted::Replaced(old),
            Inserted::Added => {
                node.add_total(1);
                return Inserted::Added;
            }
            Inserted::Split(separator, right, grew) => (separator, right, grew),
        };
        // The new entry is below this node (in `child` or `right`).
        node.add_total(1);
        if len < max {
            node.reserve(1, max);
            node.inner_insert(c + 1, separator, right);
            return Inserted::Added;
        }
        if c == 0 && grew == Grew::Left {
            // A new first child: this node stays full (the full child back in its place)
            // and moves right, the new child starts a new node in its place.
            let Some(first) = node.children_mut().first_mut() else {
                return Inserted::Added;
            };
            let new = mem::replace(first, right);
            let moved = new.total();
            node.sub_total(moved);
            let mut left = Node::alloc(height, Node::<K, V>::capacity_for(height, 1, max));
            {
                let mut left = left.make_mut(0, max);
                left.inner_start(new);
                left.set_total(moved);
            }
            let full = node.replace(left);
            return Inserted::Split(separator, full, Grew::Left);
        }
        if c + 1 == len && grew != Grew::Left {
            // A new last child: this node stays full, the new child starts a new one.
            let moved = right.total();
            let mut next = Node::alloc(height, Node::<K, V>::capacity_for(height, 1, max));
            {
                let mut next = next.make_mut(0, max);
                next.inner_start(right);
                next.set_total(moved);
            }
            node.sub_total(moved);
            return Inserted::Split(separator, next, Grew::Right);
        }
        // In the middle: one over for a moment, then split at the median.
        node.reserve(1, max + 1);
        node.inner_insert(c + 1, separator, right);
        let split = node.split_off(max.div_ceil(2), 0, max);
        node.shrink(max);
        match split {
            Some((separator, right)) => Inserted::Split(separator, right, Grew::Middle),
            None => Inserted::Added,
        }
    }

    /// Whether `key` goes past the end of child `c`, a full leaf, and its right
    /// neighbour has room.
    fn fits_next_leaf(node: &Node<K, V>, c: usize, key: &K) -> bool {
        let children = node.children();
        let (Some(child), Some(next)) = (children.get(c), children.get(c + 1)) else {
            return false;
        };
        child.is_leaf()
            && child.len() >= Self::LEAF_MAX
            && next.len() < Self::LEAF_MAX
            && child.keys().last().is_some_and(|last| last < key)
    }

    /// Whether `key` goes before the start of child `c`, a full leaf, and its left
    /// neighbour has room.
    fn fits_previous_leaf(node: &Node<K, V>, c: usize, key: &K) -> bool {
        let children = node.children();
        let Some(previous) = c.checked_sub(1).and_then(|p| children.get(p)) else {
            return false;
        };
        let Some(child) = children.get(c) else {
            return false;
        };
        child.is_leaf()
            && child.len() >= Self::LEAF_MAX
            && previous.len() < Self::LEAF_MAX
            && child.keys().first().is_some_and(|first| key < first)
    }

    /// Removes `key`; returns its value.
    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: ?Sized + Ord,
    {
        let root = self.root.as_mut()?;
        let value = Self::remove_from(root, key, false)?;
        // The root shrinks: an empty map allocates nothing, a root with one child is
        // replaced by it.
        while let Some(root) = self.root.as_mut() {
            match (root.is_leaf(), root.len()) {
                (_, 0) => self.root = None,
                (false, 1) => {
                    let child = root.children().first().cloned();
                    self.root = child;
                }
                _ => break,
            }
        }
        Some(value)
    }

    /// `found`: the key is known to be there (so copying shared nodes is not wasted).
    fn remove_from<Q>(node: &mut Node<K, V>, key: &Q, found: bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: ?Sized + Ord,
    {
        let mut found = found;
        if !found && !node.is_unique() {
            find(node, key)?;
            found = true;
        }
        if node.is_leaf() {
            let i = search(node.keys(), key).ok()?;
            let mut node = node.make_mut(0, Self::LEAF_MAX);
            let (_, value) = node.leaf_remove(i)?;
            node.shrink(Self::LEAF_MAX);
            return Some(value);
        }
        let c = child_index(node.keys(), key);
        let mut node = node.make_mut(0, Self::INNER_MAX);
        let child = node.children_mut().get_mut(c)?;
        let value = Self::remove_from(child, key, found)?;
        node.sub_total(1);
        Self::rebalance(&mut node, c);
        Some(value)
    }

    /// After a remove below child `c`: drops it when empty, merges it with a neighbour or
    /// evens the two out when under a quarter full.
    fn rebalance(node: &mut Mut<'_, K, V>, c: usize) {
        let Some(child) = node.children().get(c) else {
            return;
        };
        let (height, count) = (child.height(), child.len());
        if count == 0 {
            node.inner_remove(c);
            node.shrink(Self::INNER_MAX);
            return;
        }
        if count >= Self::min_for(height) || node.len() < 2 {
            return;
        }
        let max = Self::max_for(height);
        let left_at = c.saturating_sub(1);
        let Some((Some(separator), right)) = node.inner_remove(left_at + 1) else {
            return;
        };
        let Some(left) = node.children_mut().get_mut(left_at) else {
            return;
        };
        let right_count = right.len();
        let together = left.len() + right_count;
        let mut left = left.make_mut(right_count, max);
        left.append(separator, right);
        if together <= max {
            node.shrink(Self::INNER_MAX);
            return;
        }
        let split = left.split_off(together / 2, 0, max);
        left.shrink(max);
        if let Some((separator, right)) = split {
            node.inner_insert(left_at + 1, separator, right);
        }
    }

    /// The map of `entries`, sorted by key and distinct, with full leaves and inner
    /// nodes (the last of each level takes the rest). Entries out of order are inserted
    /// one by one instead (a later duplicate replacing the earlier).
    pub(crate) fn from_sorted(entries: Vec<(K, V)>) -> Self {
        if entries.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
            return entries.into_iter().collect();
        }
        let mut remaining = entries.len();
        let mut entries = entries.into_iter();
        // Each node of the level being built, with its first key.
        let mut level: Vec<(K, Node<K, V>)> = Vec::with_capacity(remaining / Self::LEAF_MAX + 1);
        while remaining > 0 {
            let count = remaining.min(Self::LEAF_MAX);
            let mut leaf = Node::alloc(0, Node::<K, V>::capacity_for(0, count, Self::LEAF_MAX));
            {
                let mut leaf = leaf.make_mut(0, Self::LEAF_MAX);
                for (at, (key, value)) in entries.by_ref().take(count).enumerate() {
                    leaf.leaf_insert(at, key, value);
                }
            }
            remaining -= count;
            let Some(first) = leaf.keys().first().cloned() else {
                break;
            };
            level.push((first, leaf));
        }
        let mut height = 0u16;
        while level.len() > 1 {
            height = height.saturating_add(1);
            let mut upper = Vec::with_capacity(level.len() / Self::INNER_MAX + 1);
            let mut nodes = level.into_iter();
            while let Some((first, child)) = nodes.next() {
                let count = (nodes.len() + 1).min(Self::INNER_MAX);
                let mut inner = Node::alloc(
                    height,
                    Node::<K, V>::capacity_for(height, count, Self::INNER_MAX),
                );
                {
                    let mut inner = inner.make_mut(0, Self::INNER_MAX);
                    let mut total = child.total();
                    inner.inner_start(child);
                    for at in 1..count {
                        let Some((separator, child)) = nodes.next() else {
                            break;
                        };
                        total += child.total();
                        inner.inner_insert(at, separator, child);
                    }
                    inner.set_total(total);
                }
                upper.push((first, inner));
            }
            level = upper;
        }
        PMapCap {
            root: level.pop().map(|(_, node)| node),
        }
    }
}

impl<K, V, const MAX: usize> PMapCap<K, V, MAX> {
    /// Entries in the map, O(1).
    pub(crate) fn len(&self) -> usize {
        self.root.as_ref().map_or(0, Node::total)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.root.is_none()
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: ?Sized + Ord,
    {
        let (leaf, i) = find(self.root.as_ref()?, key)?;
        leaf.vals().get(i)
    }

    /// The entries in key order (and, from the back, in reverse).
    pub(crate) fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            root: self.root.as_ref(),
            front: Cursor::new(),
            back: Cursor::new(),
            remaining: self.len(),
        }
    }

    /// Whether both are the same version (or both empty).
    pub(crate) fn ptr_eq(&self, other: &Self) -> bool {
        match (&self.root, &other.root) {
            (None, None) => true,
            (Some(a), Some(b)) => a.ptr_eq(b),
            _ => false,
        }
    }
}

impl<K: Ord + Clone, V: Clone, const MAX: usize> FromIterator<(K, V)> for PMapCap<K, V, MAX> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(entries: I) -> Self {
        let mut map = PMapCap::new();
        map.extend(entries);
        map
    }
}

impl<K: Ord + Clone, V: Clone, const MAX: usize> Extend<(K, V)> for PMapCap<K, V, MAX> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, entries: I) {
        for (key, value) in entries {
            self.insert(key, value);
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug, const MAX: usize> fmt::Debug for PMapCap<K, V, MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a, K, V, const MAX: usize> IntoIterator for &'a PMapCap<K, V, MAX> {
    type Item = (&'a K, &'a V);
    type IntoIter = Iter<'a, K, V>;

    fn into_iter(self) -> Iter<'a, K, V> {
        self.iter()
    }
}

// ----------------------------------------------------------------------------------------
// Iteration.

/// A position in the leaves: the inner nodes above with the child taken in each, the
/// leaf, and the next entry (front: the next to yield; back: one past it).
struct Cursor<'a, K, V> {
    path: Vec<(&'a Node<K, V>, usize)>,
    leaf: Option<&'a Node<K, V>>,
    at: usize,
}

impl<'a, K, V> Cursor<'a, K, V> {
    fn new() -> Self {
        Cursor {
            path: Vec::new(),
            leaf: None,
            at: 0,
        }
    }

    /// Descends from `node` to its first (`last` false) or last leaf.
    fn descend(&mut self, mut node: &'a Node<K, V>, last: bool) -> Option<()> {
        while !node.is_leaf() {
            let i = if last { node.len().checked_sub(1)? } else { 0 };
            self.path.push((node, i));
            node = node.children().get(i)?;
        }
        self.leaf = Some(node);
        self.at = if last { node.len() } else { 0 };
        Some(())
    }

    /// Moves to the next leaf (`back` false) or the previous one.
    fn step(&mut self, back: bool) -> Option<()> {
        loop {
            let (node, i) = self.path.pop()?;
            let next = if back { i.checked_sub(1) } else { Some(i + 1) };
            if let Some(next) = next.filter(|&next| next < node.len()) {
                self.path.push((node, next));
                let child = node.children().get(next)?;
                return self.descend(child, back);
            }
        }
    }
}

/// The entries of a [`PMapCap`] in key order; from both ends.
pub(crate) struct Iter<'a, K, V> {
    root: Option<&'a Node<K, V>>,
    front: Cursor<'a, K, V>,
    back: Cursor<'a, K, V>,
    /// Entries not yet yielded from either end: the ends never cross.
    remaining: usize,
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<(&'a K, &'a V)> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            match self.front.leaf {
                None => self.front.descend(self.root?, false)?,
                Some(leaf) if self.front.at < leaf.len() => {
                    let at = self.front.at;
                    self.front.at += 1;
                    self.remaining -= 1;
                    return Some((leaf.keys().get(at)?, leaf.vals().get(at)?));
                }
                Some(_) => self.front.step(false)?,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a, K, V> DoubleEndedIterator for Iter<'a, K, V> {
    fn next_back(&mut self) -> Option<(&'a K, &'a V)> {
        if self.remaining == 0 {
            return None;
        }
        loop {
            match self.back.leaf {
                None => self.back.descend(self.root?, true)?,
                Some(leaf) if self.back.at > 0 => {
                    self.back.at -= 1;
                    self.remaining -= 1;
                    let at = self.back.at;
                    return Some((leaf.keys().get(at)?, leaf.vals().get(at)?));
                }
                Some(_) => self.back.step(true)?,
            }
        }
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

impl<K, V> FusedIterator for Iter<'_, K, V> {}

#[cfg(test)]
mod tests {
    use super::raw::{size_class, HEAD};
    use super::*;
    use std::collections::BTreeMap;
    use std::fmt::Debug;
    use std::mem::size_of;
    use std::sync::Arc;

    /// Whether the tests run under valgrind (`ZKRS_UNDER_VALGRIND=1`, as `.ci/run` sets
    /// for its memcheck run), which is some 50 times slower.
    fn under_valgrind() -> bool {
        std::env::var_os("ZKRS_UNDER_VALGRIND").is_some_and(|v| v == "1")
    }

    /// Fewer operations under Miri or valgrind (both slow), still enough to split and
    /// merge.
    fn ops(n: usize) -> usize {
        if cfg!(miri) {
            n / 100
        } else if under_valgrind() {
            n / 10
        } else {
            n
        }
    }

    /// splitmix64: a small deterministic generator (the seed is printed on failure).
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// Checks the structure below `node`: heights, key order, separators, bounds on fill
    /// and capacity, counts. Returns the subtree's entries.
    fn check_node<K: Ord + Debug, V>(
        node: &Node<K, V>,
        lower: Option<&K>,
        upper: Option<&K>,
        is_root: bool,
        max: (usize, usize),
    ) -> usize {
        let len = node.len();
        let max_here = if node.is_leaf() { max.0 } else { max.1 };
        assert!(node.ref_count() >= 1);
        assert!(len <= node.cap(), "len {len} over capacity {}", node.cap());
        assert!(
            node.cap() <= max_here,
            "capacity {} over {max_here}",
            node.cap()
        );
        let least = match (is_root, node.is_leaf()) {
            (true, false) => 2,
            _ => 1,
        };
        assert!(len >= least, "{len} entries in a node (root: {is_root})");
        let keys = node.keys();
        assert!(
            keys.windows(2).all(|pair| pair[0] < pair[1]),
            "keys out of order"
        );
        if node.is_leaf() {
            assert_eq!(keys.len(), len);
            assert_eq!(node.vals().len(), len);
            for key in keys {
                assert!(
                    lower.is_none_or(|lower| lower <= key),
                    "{key:?} under {lower:?}"
                );
                assert!(
                    upper.is_none_or(|upper| key < upper),
                    "{key:?} not under {upper:?}"
                );
            }
            return len;
        }
        assert_eq!(keys.len(), len - 1);
        if let (Some(lower), Some(first)) = (lower, keys.first()) {
            assert!(lower < first);
        }
        if let (Some(upper), Some(last)) = (upper, keys.last()) {
            assert!(last < upper);
        }
        let mut total = 0;
        for (i, child) in node.children().iter().enumerate() {
            assert_eq!(child.height() + 1, node.height(), "uneven heights");
            let child_lower = if i == 0 { lower } else { keys.get(i - 1) };
            let child_upper = if i + 1 == len { upper } else { keys.get(i) };
            total += check_node(child, child_lower, child_upper, false, max);
        }
        assert_eq!(node.total(), total, "count of an inner node");
        total
    }

    fn check<K: Ord + Clone + Debug, V: Clone, const MAX: usize>(map: &PMapCap<K, V, MAX>) {
        let max = (
            PMapCap::<K, V, MAX>::LEAF_MAX,
            PMapCap::<K, V, MAX>::INNER_MAX,
        );
        let total = map
            .root
            .as_ref()
            .map_or(0, |root| check_node(root, None, None, true, max));
        assert_eq!(map.len(), total);
        assert_eq!(map.is_empty(), total == 0);
    }

    /// The map equals the model: contents, both directions, mixed ends, lookups.
    fn same<K, V, W, const MAX: usize>(map: &PMapCap<K, V, MAX>, model: &BTreeMap<K, W>)
    where
        K: Ord + Clone + Debug,
        V: Clone + Debug + PartialEq<W>,
        W: Debug,
    {
        assert_eq!(map.len(), model.len());
        let mut iter = map.iter();
        assert_eq!(iter.len(), model.len());
        for (want_key, want) in model {
            let (key, value) = iter.next().expect("too short");
            assert_eq!(key, want_key);
            assert!(value == want, "{key:?}: {value:?} != {want:?}");
        }
        assert!(iter.next().is_none());
        assert!(iter.next_back().is_none());
        assert!(map.iter().rev().map(|(key, _)| key).eq(model.keys().rev()));
        // Alternating ends meet in the middle without crossing.
        let mut both = map.iter();
        let mut want = model.iter();
        let mut turn = false;
        loop {
            let (got, expected) = if turn {
                (both.next_back(), want.next_back())
            } else {
                (both.next(), want.next())
            };
            assert_eq!(got.map(|(key, _)| key), expected.map(|(key, _)| key));
            if got.is_none() {
                break;
            }
            assert_eq!(both.len(), want.len());
            turn = !turn;
        }
        for key in model.keys() {
            assert!(map.get(key).is_some());
        }
    }

    /// Random operations against a `BTreeMap`, checking the structure and the contents
    /// after every batch; versions taken on the way must not change.
    fn differential<const MAX: usize>(seed: u64, ops: usize, key_space: u64) {
        let mut rng = Rng(seed);
        let mut map: PMapCap<u64, Arc<u64>, MAX> = PMapCap::new();
        let mut model: BTreeMap<u64, Arc<u64>> = BTreeMap::new();
        // Versions taken on the way, with their contents then.
        type Version<const MAX: usize> = (PMapCap<u64, Arc<u64>, MAX>, BTreeMap<u64, u64>);
        let mut versions: Vec<Version<MAX>> = Vec::new();
        let mut next_value = 0u64;
        let mut value = || {
            next_value += 1;
            Arc::new(next_value)
        };
        for op in 0..ops {
            // Phases: mostly growing, then mostly shrinking, so that nodes split, merge
            // and the tree empties out.
            let growing = (op / 2000) % 2 == 0;
            let insert_share = if growing { 60 } else { 25 };
            let roll = rng.below(100);
            match roll {
                r if r < insert_share => {
                    let key = rng.below(key_space);
                    let v = value();
                    let old = map.insert(key, v.clone());
                    let want = model.insert(key, v);
                    assert_eq!(old, want, "seed {seed} op {op}: insert {key}");
                }
                r if r < 75 => {
                    let key = rng.below(key_space);
                    assert_eq!(map.remove(&key), model.remove(&key), "seed {seed} op {op}");
                }
                r if r < 85 => {
                    let key = rng.below(key_space);
                    assert_eq!(map.get(&key), model.get(&key), "seed {seed} op {op}");
                }
                r if r < 93 => {
                    let key = rng.below(key_space);
                    let v = value();
                    match (map.get_mut(&key), model.get_mut(&key)) {
                        (Some(slot), Some(want)) => {
                            assert_eq!(slot, want);
                            *slot = v.clone();
                            *want = v;
                        }
                        (None, None) => {}
                        (got, want) => panic!("seed {seed} op {op}: {got:?} != {want:?}"),
                    }
                }
                r if r < 95 => {
                    let snapshot = model.iter().map(|(k, v)| (*k, **v)).collect();
                    versions.push((map.clone(), snapshot));
                    assert!(map.ptr_eq(&versions[versions.len() - 1].0));
                    if versions.len() > 8 {
                        let (old, snapshot) = versions.remove(rng.below(8) as usize);
                        check(&old);
                        assert!(old.iter().map(|(k, v)| (*k, **v)).eq(snapshot));
                    }
                }
                r if r < 98 => {
                    // A run of ascending (or descending) keys.
                    let start = rng.below(key_space);
                    let count = rng.below(3 * MAX.max(8) as u64);
                    let down = rng.below(2) == 0;
                    for i in 0..count {
                        let key = if down {
                            start.wrapping_sub(i) % key_space
                        } else {
                            (start + i) % key_space
                        };
                        let v = value();
                        assert_eq!(map.insert(key, v.clone()), model.insert(key, v));
                    }
                }
                _ => {
                    // A run of removes.
                    let start = rng.below(key_space);
                    for key in start..start + rng.below(3 * MAX.max(8) as u64) {
                        assert_eq!(map.remove(&key), model.remove(&key));
                    }
                }
            }
            if op % 97 == 0 {
                check(&map);
                same(&map, &model);
            }
        }
        check(&map);
        same(&map, &model);
        // Drain in random order: merges all the way up, the root collapses, nothing
        // stays allocated.
        let drained = map.clone();
        let mut keys: Vec<u64> = model.keys().copied().collect();
        for i in (1..keys.len()).rev() {
            keys.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for (i, key) in keys.iter().enumerate() {
            assert!(map.remove(key).is_some());
            if i % 61 == 0 {
                check(&map);
            }
        }
        assert!(map.is_empty() && map.root.is_none());
        map = drained;
        for (old, snapshot) in &versions {
            check(old);
            assert!(old
                .iter()
                .map(|(k, v)| (*k, **v))
                .eq(snapshot.iter().map(|(k, v)| (*k, *v))));
        }
        // Nothing leaked or freed twice: the model holds the last reference to each value.
        drop(versions);
        drop(map);
        for value in model.values() {
            assert_eq!(Arc::strong_count(value), 1);
        }
    }

    #[test]
    fn one_pointer_and_thread_safe() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<PMap<String, Arc<u64>>>();
        assert_eq!(size_of::<PMap<[u64; 2], u64>>(), 8);
        assert_eq!(size_of::<PMap<String, Arc<String>>>(), 8);
        assert_eq!(HEAD, 16);
    }

    #[test]
    fn full_nodes_fill_a_size_class() {
        type Leaf = Node<[u64; 2], u64>;
        assert_eq!(PMap::<[u64; 2], u64>::LEAF_MAX, 63);
        assert_eq!(PMap::<[u64; 2], u64>::INNER_MAX, 63);
        assert_eq!(Leaf::size(0, 63), 1528);
        assert_eq!(size_class(Leaf::size(0, 63)), 1536);
        assert!(Leaf::size(1, 63) <= 1536);
        // Growing capacities fill their class.
        assert_eq!(Leaf::capacity_for(0, 1, 63), 1); // 40 bytes
        assert_eq!(Leaf::capacity_for(0, 2, 63), 2); // 64
        assert_eq!(Leaf::capacity_for(0, 3, 63), 3); // 96
        assert_eq!(Leaf::capacity_for(0, 10, 63), 10); // 256
        assert_eq!(Leaf::capacity_for(0, 41, 63), 42); // 1024
        assert_eq!(Leaf::capacity_for(0, 60, 63), 63);
        assert_eq!(Leaf::capacity_for(0, 70, 63), 70);
        for (bytes, class) in [
            (1, 8),
            (40, 40),
            (65, 80),
            (128, 128),
            (129, 160),
            (1537, 1792),
        ] {
            assert_eq!(size_class(bytes), class);
        }
    }

    #[test]
    fn differential_small_nodes() {
        differential::<3>(1, ops(30_000), 600);
        differential::<4>(2, ops(30_000), 2_000);
        differential::<5>(3, ops(30_000), 300);
        differential::<8>(4, ops(30_000), 5_000);
        differential::<13>(5, ops(30_000), 1_000);
    }

    #[test]
    fn differential_real_nodes() {
        // Under Miri a few hundred ops (full-size nodes make each op slow there); under
        // valgrind enough to grow and shrink once (phases of 2000 ops).
        let n = if cfg!(miri) {
            300
        } else if under_valgrind() {
            4_000
        } else {
            40_000
        };
        differential::<0>(6, n, 20_000);
        differential::<0>(7, n, 400);
        differential::<0>(8, n, 1_000_000);
    }

    #[test]
    fn clones_do_not_see_writes() {
        let mut rng = Rng(9);
        let mut map: PMapCap<u64, u64, 4> = PMapCap::new();
        for _ in 0..3_000 {
            let key = rng.below(10_000);
            map.insert(key, key * 2);
        }
        let original = map.clone();
        let snapshot: BTreeMap<u64, u64> = map.iter().map(|(k, v)| (*k, *v)).collect();
        let mut copy = map.clone();
        drop(map);
        for i in 0..20_000 {
            let key = rng.below(10_000);
            match i % 4 {
                0 | 1 => {
                    copy.insert(key, i);
                }
                2 => {
                    copy.remove(&key);
                }
                _ => {
                    if let Some(value) = copy.get_mut(&key) {
                        *value += 1;
                    }
                }
            }
        }
        check(&original);
        check(&copy);
        same(&original, &snapshot);
        assert!(!copy.ptr_eq(&original));
        // Emptying a version leaves the other whole.
        let keys: Vec<u64> = copy.iter().map(|(k, _)| *k).collect();
        for key in keys {
            copy.remove(&key);
        }
        assert!(copy.is_empty() && copy.root.is_none());
        assert!(copy.ptr_eq(&PMapCap::new()));
        same(&original, &snapshot);
    }

    #[test]
    fn misses_copy_nothing() {
        let mut map: PMap<u64, u64> = (0..10_000).map(|k| (k * 2, k)).collect();
        let version = map.clone();
        assert!(map.get_mut(&3).is_none());
        assert_eq!(map.remove(&5), None);
        assert!(map.ptr_eq(&version));
        *map.get_mut(&4).expect("there") = 7;
        assert!(!map.ptr_eq(&version));
        assert_eq!(version.get(&4), Some(&2));
        assert_eq!(map.get(&4), Some(&7));
    }

    #[test]
    fn versions_read_on_other_threads() {
        let mut map: PMap<u64, Arc<u64>> = PMap::new();
        let mut readers = Vec::new();
        let per_round = ops(1000) as u64;
        for round in 0..8u64 {
            for key in round * per_round..(round + 1) * per_round {
                map.insert(key, Arc::new(key));
            }
            for key in (0..round * per_round).step_by(3) {
                map.remove(&key);
            }
            let version = map.clone();
            let expected: Vec<u64> = map.iter().map(|(k, _)| *k).collect();
            readers.push(std::thread::spawn(move || {
                for _ in 0..3 {
                    assert!(version
                        .iter()
                        .map(|(k, v)| (*k, **v))
                        .eq(expected.iter().map(|k| (*k, *k))));
                }
            }));
        }
        for reader in readers {
            reader.join().expect("reader");
        }
        check(&map);
    }

    #[test]
    fn from_sorted_builds_full_nodes() {
        let counts = [
            0,
            1,
            2,
            62,
            63,
            64,
            126,
            127,
            4_000,
            4_000 + 63 * 63,
            100_000,
        ];
        for count in counts.into_iter().filter(|&count| count <= ops(100_000)) {
            let entries: Vec<(u64, u64)> = (0..count as u64).map(|k| (k * 3, k)).collect();
            let bulk: PMap<u64, u64> = PMap::from_sorted(entries.clone());
            let one_by_one: PMap<u64, u64> = entries.iter().copied().collect();
            check(&bulk);
            let model: BTreeMap<u64, u64> = entries.into_iter().collect();
            same(&bulk, &model);
            same(&one_by_one, &model);
            assert!(bulk.iter().eq(one_by_one.iter()));
            assert_full(&bulk, false);
        }
        // Small nodes too.
        let entries: Vec<(u64, u64)> = (0..1_000).map(|k| (k, k)).collect();
        let bulk: PMapCap<u64, u64, 3> = PMapCap::from_sorted(entries.clone());
        check(&bulk);
        same(&bulk, &entries.iter().copied().collect());
        assert_full(&bulk, false);
        // Out of order or duplicated: inserted one by one (the later duplicate wins).
        let messy = vec![(5u64, 1u64), (3, 2), (5, 3), (9, 4)];
        let map: PMap<u64, u64> = PMap::from_sorted(messy);
        check(&map);
        assert!(map
            .iter()
            .map(|(k, v)| (*k, *v))
            .eq([(3, 2), (5, 3), (9, 4)]));
    }

    /// Every node but the first (`first`) or the last of its level is full.
    fn assert_full<K: Ord + Clone, V: Clone, const MAX: usize>(
        map: &PMapCap<K, V, MAX>,
        first: bool,
    ) {
        let mut level: Vec<&Node<K, V>> = map.root.iter().collect();
        while let Some(node) = level.first() {
            let max = PMapCap::<K, V, MAX>::max_for(node.height());
            let full = if first {
                &level[1..]
            } else {
                &level[..level.len() - 1]
            };
            for node in full {
                assert_eq!(node.len(), max, "not full at height {}", node.height());
            }
            level = level.iter().flat_map(|node| node.children()).collect();
        }
    }

    /// The leaves' lengths, in key order.
    fn leaf_lengths<K, V, const MAX: usize>(map: &PMapCap<K, V, MAX>) -> Vec<usize> {
        let mut lengths = Vec::new();
        let mut pending: Vec<&Node<K, V>> = map.root.iter().collect();
        while let Some(node) = pending.pop() {
            if node.is_leaf() {
                lengths.push(node.len());
            }
            pending.extend(node.children().iter().rev());
        }
        lengths
    }

    fn runs<const MAX: usize>(count: u64) {
        let ascending: PMapCap<u64, u64, MAX> = (0..count).map(|k| (k, k)).collect();
        check(&ascending);
        assert_full(&ascending, false);
        let descending: PMapCap<u64, u64, MAX> = (0..count).rev().map(|k| (k, k)).collect();
        check(&descending);
        assert_full(&descending, true);
        assert!(ascending.iter().eq(descending.iter()));
    }

    #[test]
    fn runs_fill_nodes() {
        runs::<0>(ops(50_000) as u64);
        runs::<4>(ops(5_000) as u64);
        runs::<7>(ops(5_000) as u64);
    }

    #[test]
    fn runs_next_to_a_full_leaf_fill_its_neighbour() {
        let max = PMap::<u64, u64>::LEAF_MAX as u64;
        let end = ops(20_000) as u64;
        let full = (end + 1).div_ceil(max) as usize;
        // Descending from `end` down to a full leaf: each key goes past that leaf's end.
        let mut map: PMap<u64, u64> = PMap::from_sorted((0..max).map(|k| (k, k)).collect());
        map.insert(end, end);
        for key in (max..end).rev() {
            map.insert(key, key);
        }
        check(&map);
        assert!(map.iter().map(|(k, _)| *k).eq(0..=end));
        let lengths = leaf_lengths(&map);
        assert_eq!(lengths.len(), full, "{lengths:?}");
        // Ascending from 0 up to a full leaf: each key goes before that leaf's start.
        let top = end - max + 1;
        let mut map: PMap<u64, u64> = PMap::from_sorted((top..=end).map(|k| (k, k)).collect());
        map.insert(0, 0);
        for key in 1..top {
            map.insert(key, key);
        }
        check(&map);
        assert!(map.iter().map(|(k, _)| *k).eq(0..=end));
        let lengths = leaf_lengths(&map);
        assert_eq!(lengths.len(), full, "{lengths:?}");
    }

    #[test]
    fn borrowed_lookups_and_heap_keys() {
        let mut rng = Rng(10);
        let mut map: PMapCap<String, String, 5> = PMapCap::new();
        let mut model = BTreeMap::new();
        for i in 0..5_000 {
            let key = format!("node-{:06}", rng.below(3_000));
            if i % 3 == 2 {
                assert_eq!(map.remove(key.as_str()), model.remove(key.as_str()));
            } else {
                assert_eq!(
                    map.insert(key.clone(), format!("{i}")),
                    model.insert(key, format!("{i}"))
                );
            }
        }
        check(&map);
        same(&map, &model);
        for (key, value) in &model {
            assert_eq!(map.get(key.as_str()), Some(value));
        }
        assert_eq!(map.get("absent"), None);
        let text = format!("{:?}", PMap::<u64, u64>::from_sorted(vec![(1, 2), (3, 4)]));
        assert_eq!(text, "{1: 2, 3: 4}");
    }

    /// Bytes of the map's nodes: as requested, and as mimalloc's size classes round them.
    fn bytes<K, V, const MAX: usize>(map: &PMapCap<K, V, MAX>) -> (usize, usize) {
        let mut pending: Vec<&Node<K, V>> = map.root.iter().collect();
        let (mut requested, mut classed) = (0, 0);
        while let Some(node) = pending.pop() {
            let size = Node::<K, V>::size(node.height(), node.cap());
            requested += size;
            classed += size_class(size);
            pending.extend(node.children());
        }
        (requested, classed)
    }

    fn per_entry<K, V, const MAX: usize>(map: &PMapCap<K, V, MAX>) -> f64 {
        bytes(map).1 as f64 / map.len().max(1) as f64
    }

    #[test]
    fn memory_per_entry() {
        type Key = [u64; 2];
        // Fewer under valgrind: still hundreds of full nodes and a few inner ones.
        let n: u64 = if under_valgrind() { 20_000 } else { 100_000 };
        let key = |k: u64| [k.rotate_left(17), k];

        let ascending: PMap<Key, u64> = (0..n).map(|k| ([0, k], k)).collect();
        let ascending_bytes = per_entry(&ascending);

        let mut rng = Rng(11);
        let random: PMap<Key, u64> = (0..n).map(|_| (key(rng.next()), 0)).collect();
        let random_bytes = per_entry(&random);

        // The ordering core's way: a version per write, kept for a batch.
        let mut versioned: PMap<Key, u64> = PMap::new();
        let mut batch = Vec::new();
        for k in 0..n {
            versioned.insert([0, k], k);
            batch.push(versioned.clone());
            if batch.len() == 1000 {
                batch.clear();
            }
        }
        batch.clear();
        let versioned_bytes = per_entry(&versioned);
        let mut rng = Rng(12);
        let mut versioned_random: PMap<Key, u64> = PMap::new();
        for _ in 0..n {
            versioned_random.insert(key(rng.next()), 0);
            batch.push(versioned_random.clone());
            if batch.len() == 1000 {
                batch.clear();
            }
        }
        batch.clear();
        let versioned_random_bytes = per_entry(&versioned_random);

        let bulk = PMap::from_sorted((0..n).map(|k| ([0, k], k)).collect());
        let bulk_bytes = per_entry(&bulk);

        // Removing every other entry at random, then all but 1 in 10.
        let mut thinned = random.clone();
        let keys: Vec<Key> = random.iter().map(|(k, _)| *k).collect();
        for (i, k) in keys.iter().enumerate() {
            if i % 10 != 0 {
                thinned.remove(k);
            }
        }
        check(&thinned);
        let thinned_bytes = per_entry(&thinned);

        let small: Vec<usize> = [1, 2, 3, 5, 10, 20]
            .iter()
            .map(|&n| bytes(&(0..n).map(|k| ([0, k], k)).collect::<PMap<Key, u64>>()).1)
            .collect();
        eprintln!(
            "bytes per 24-byte entry, {n} entries: ascending {ascending_bytes:.2}, random \
             {random_bytes:.2}, ascending with a version per write {versioned_bytes:.2}, \
             random with a version per write {versioned_random_bytes:.2}, from_sorted \
             {bulk_bytes:.2}, random then 90% removed {thinned_bytes:.2}; maps of 1, 2, 3, \
             5, 10, 20 entries: {small:?} bytes"
        );
        assert!(ascending_bytes <= 25.0, "{ascending_bytes}");
        assert!(bulk_bytes <= 25.0, "{bulk_bytes}");
        assert!(versioned_bytes <= 25.0, "{versioned_bytes}");
        assert!(random_bytes <= 36.0, "{random_bytes}");
        assert!(versioned_random_bytes <= 36.0, "{versioned_random_bytes}");
        assert!(thinned_bytes <= 45.0, "{thinned_bytes}");
        assert_eq!(small[0], 40);
        assert_eq!(small[4], 256);
    }
}
