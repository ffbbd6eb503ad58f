//! The shape of the tree: every znode holds its children in a persistent ordered set, so
//! that the tree needs no index by full path and a version clone stays O(1).
//!
//! A node's children map each child's full path to the child. All children of one node
//! share the prefix `parent/`, so path order is the order of their names, and a lookup
//! descends by the prefixes of the path it looks for (`/a`, `/a/b`, `/a/b/c`) without
//! building any string. A node's full path is stored once, as the key in its parent's
//! map, and shared (`Arc<str>`) with the indexes and the watch triggers.
//!
//! A write path-copies: the changed node and its ancestors are copied when an older
//! version still shares them (`Arc::make_mut`), everything else stays shared.

use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use imbl::shared_ptr::DefaultSharedPtr;

use super::Znode;

/// A node's children by full path. All children of one node share the prefix `parent/`,
/// so path order is name order.
type ChildMap = imbl::OrdMap<Arc<str>, Arc<Znode>>;

/// The children of a znode, sorted by name. One pointer: a leaf (most znodes) allocates
/// nothing for it. Invariant: `Some` holds a non-empty map.
#[derive(Clone, Default)]
pub struct Children(Option<Arc<ChildMap>>);

impl Children {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |map| map.len())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Child names (not paths), sorted.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.nodes().map(|(path, _)| path_name(path))
    }

    /// The children's (path, node), sorted by name.
    pub fn nodes(&self) -> impl DoubleEndedIterator<Item = (&str, &Znode)> + '_ {
        self.map_iter().map(|(path, node)| (&**path, &**node))
    }

    fn map_iter(&self) -> MapIter<'_> {
        match &self.0 {
            Some(map) => MapIter::Map(map.iter()),
            None => MapIter::Empty,
        }
    }

    /// The child whose full path is `path`.
    pub(super) fn get(&self, path: &str) -> Option<&Arc<Znode>> {
        self.0.as_ref()?.get(path)
    }

    /// The child whose full path is `path`, to change (its map copied if shared).
    pub(super) fn get_mut(&mut self, path: &str) -> Option<(&Arc<str>, &mut Arc<Znode>)> {
        let map = self.0.as_mut()?;
        Arc::make_mut(map).get_key_value_mut(path)
    }

    /// Adds (or replaces) the child at `path`.
    pub(super) fn insert(&mut self, path: Arc<str>, node: Arc<Znode>) {
        let map = self.0.get_or_insert_with(Default::default);
        Arc::make_mut(map).insert(path, node);
    }

    pub(super) fn remove(&mut self, path: &str) -> Option<(Arc<str>, Arc<Znode>)> {
        let map = self.0.as_mut()?;
        let removed = Arc::make_mut(map).remove_with_key(path);
        if map.is_empty() {
            self.0 = None;
        }
        removed
    }

    /// Builds the map of already sorted, distinct children.
    pub(super) fn from_sorted(children: Vec<(Arc<str>, Arc<Znode>)>) -> Children {
        if children.is_empty() {
            return Children(None);
        }
        Children(Some(Arc::new(children.into_iter().collect())))
    }
}

/// The name of a child from its path (after the last slash).
fn path_name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

enum MapIter<'a> {
    Empty,
    Map(imbl::ordmap::Iter<'a, Arc<str>, Arc<Znode>, DefaultSharedPtr>),
}

impl<'a> Iterator for MapIter<'a> {
    type Item = (&'a Arc<str>, &'a Arc<Znode>);
    fn next(&mut self) -> Option<Self::Item> {
        match self {
            MapIter::Empty => None,
            MapIter::Map(it) => it.next(),
        }
    }
}

impl DoubleEndedIterator for MapIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            MapIter::Empty => None,
            MapIter::Map(it) => it.next_back(),
        }
    }
}

impl PartialEq for Children {
    /// Same children with the same content (subtrees compared deeply, shared ones by
    /// pointer).
    fn eq(&self, other: &Children) -> bool {
        match (&self.0, &other.0) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                Arc::ptr_eq(a, b)
                    || (a.len() == b.len()
                        && a.iter()
                            .zip(b.iter())
                            .all(|(x, y)| x.0 == y.0 && (Arc::ptr_eq(x.1, y.1) || *x.1 == *y.1)))
            }
            _ => false,
        }
    }
}

impl Eq for Children {}

impl fmt::Debug for Children {
    /// The names only (the subtrees would print the whole tree).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// The end of the first name of `path[from..]` (`path[from]` is a slash).
fn next_slash(path: &str, from: usize) -> usize {
    match path.get(from + 1..).and_then(|rest| rest.find('/')) {
        Some(i) => from + 1 + i,
        None => path.len(),
    }
}

/// The node at `path` (canonical: `/` is the root) under `root`.
pub(super) fn lookup<'a>(root: &'a Arc<Znode>, path: &str) -> Option<&'a Arc<Znode>> {
    if path == "/" {
        return Some(root);
    }
    if !path.starts_with('/') {
        return None;
    }
    let mut node = root;
    let mut end = 0;
    loop {
        let next = next_slash(path, end);
        node = node.children.get(&path[..next])?;
        if next == path.len() {
            return Some(node);
        }
        end = next;
    }
}

/// Runs `f` on the node at `path` (canonical, not the root) under `root`, with the node's
/// shared path, copying the node and its ancestors where an older version shares them.
/// None (and `f` not run) when there is no such node.
pub(super) fn update_below<R>(
    node: &mut Znode,
    path: &str,
    end: usize,
    f: impl FnOnce(&Arc<str>, &mut Znode) -> R,
) -> Option<R> {
    let next = next_slash(path, end);
    let (key, child) = node.children.get_mut(&path[..next])?;
    if next == path.len() {
        Some(f(key, Arc::make_mut(child)))
    } else {
        update_below(Arc::make_mut(child), path, next, f)
    }
}

/// Every node under a node (itself included) with its path, parents before children,
/// siblings by name.
pub(super) struct Walk<'a> {
    first: Option<(&'a str, &'a Znode)>,
    stack: Vec<MapIter<'a>>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(path: &'a str, node: &'a Znode) -> Walk<'a> {
        Walk {
            first: Some((path, node)),
            stack: Vec::new(),
        }
    }
}

impl<'a> Iterator for Walk<'a> {
    type Item = (&'a str, &'a Znode);

    fn next(&mut self) -> Option<(&'a str, &'a Znode)> {
        if let Some(first) = self.first.take() {
            self.stack.push(first.1.children.map_iter());
            return Some(first);
        }
        loop {
            let top = self.stack.last_mut()?;
            match top.next() {
                Some((path, node)) => {
                    if !node.children.is_empty() {
                        self.stack.push(node.children.map_iter());
                    }
                    return Some((&**path, &**node));
                }
                None => {
                    self.stack.pop();
                }
            }
        }
    }
}

/// Orders paths as a depth-first walk visits them: component by component (a slash sorts
/// before every other character), so `/a/b` comes before `/a-b`.
pub(super) fn walk_order(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}
