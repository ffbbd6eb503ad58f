//! The shape of the tree: every znode holds its children in a persistent ordered set, so
//! that the tree needs no index by full path and a version clone stays O(1).
//!
//! A child is its `Arc<Znode>`, ordered by the child's full path. All children of one
//! node share the prefix `parent/`, so that order is the order of their names, and a
//! lookup descends by the prefixes of the path it looks for (`/a`, `/a/b`, `/a/b/c`)
//! without building any string. A node's full path is stored once, in the node, and
//! shared (`Arc<str>`) with the indexes and the watch triggers.
//!
//! A write path-copies: the changed node and its ancestors are copied when an older
//! version still shares them (`Arc::make_mut`), everything else stays shared.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use imbl::shared_ptr::DefaultSharedPtr;

use super::Znode;

/// One child in its parent's set, compared by its full path.
#[derive(Clone)]
pub(super) struct Child(pub(super) Arc<Znode>);

impl Borrow<str> for Child {
    fn borrow(&self) -> &str {
        &self.0.path
    }
}

impl PartialEq for Child {
    fn eq(&self, other: &Child) -> bool {
        self.0.path == other.0.path
    }
}

impl Eq for Child {}

impl PartialOrd for Child {
    fn partial_cmp(&self, other: &Child) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Child {
    fn cmp(&self, other: &Child) -> Ordering {
        self.0.path.cmp(&other.0.path)
    }
}

type ChildSet = imbl::OrdSet<Child>;

/// The children of a znode, sorted by name. One pointer: a leaf (most znodes) allocates
/// nothing for it. Invariant: `Some` holds a non-empty set.
#[derive(Clone, Default)]
pub struct Children(Option<Arc<ChildSet>>);

impl Children {
    pub fn len(&self) -> usize {
        self.0.as_ref().map_or(0, |set| set.len())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Child names (not paths), sorted.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.nodes().map(|node| path_name(&node.path))
    }

    /// The child nodes, sorted by name.
    pub fn nodes(&self) -> impl DoubleEndedIterator<Item = &Znode> + '_ {
        self.set_iter().map(|child| &*child.0)
    }

    fn set_iter(&self) -> SetIter<'_> {
        match &self.0 {
            Some(set) => SetIter::Set(set.iter()),
            None => SetIter::Empty,
        }
    }

    /// The child whose full path is `path`.
    pub(super) fn get(&self, path: &str) -> Option<&Arc<Znode>> {
        self.0.as_ref()?.get(path).map(|child| &child.0)
    }

    /// Adds (or replaces) the child at `node.path`.
    pub(super) fn insert(&mut self, node: Arc<Znode>) {
        let set = self.0.get_or_insert_with(Default::default);
        Arc::make_mut(set).insert(Child(node));
    }

    pub(super) fn remove(&mut self, path: &str) -> Option<Arc<Znode>> {
        let set = self.0.as_mut()?;
        let removed = Arc::make_mut(set).remove(path).map(|child| child.0);
        if set.is_empty() {
            self.0 = None;
        }
        removed
    }

    /// Builds the set of already sorted, distinct children.
    pub(super) fn from_sorted(nodes: Vec<Arc<Znode>>) -> Children {
        if nodes.is_empty() {
            return Children(None);
        }
        Children(Some(Arc::new(nodes.into_iter().map(Child).collect())))
    }
}

/// The name of a child from its path (after the last slash).
fn path_name(path: &str) -> &str {
    path.rfind('/').map_or(path, |i| &path[i + 1..])
}

enum SetIter<'a> {
    Empty,
    Set(imbl::ordset::Iter<'a, Child, DefaultSharedPtr>),
}

impl<'a> Iterator for SetIter<'a> {
    type Item = &'a Child;
    fn next(&mut self) -> Option<&'a Child> {
        match self {
            SetIter::Empty => None,
            SetIter::Set(it) => it.next(),
        }
    }
}

impl DoubleEndedIterator for SetIter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self {
            SetIter::Empty => None,
            SetIter::Set(it) => it.next_back(),
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
                        && a.iter().zip(b.iter()).all(|(x, y)| {
                            Arc::ptr_eq(&x.0, &y.0) || (x.0.path == y.0.path && *x.0 == *y.0)
                        }))
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

/// Runs `f` on the node at `path` (canonical) under `root`, path-copying it and its
/// ancestors where an older version shares them. None (and `f` not run) when there is no
/// such node.
pub(super) fn update<R>(
    root: &mut Arc<Znode>,
    path: &str,
    f: impl FnOnce(&mut Znode) -> R,
) -> Option<R> {
    if path == "/" {
        return Some(f(Arc::make_mut(root)));
    }
    if !path.starts_with('/') || lookup(root, path).is_none() {
        return None;
    }
    update_below(Arc::make_mut(root), path, 0, f)
}

fn update_below<R>(
    node: &mut Znode,
    path: &str,
    end: usize,
    f: impl FnOnce(&mut Znode) -> R,
) -> Option<R> {
    let next = next_slash(path, end);
    let mut child = node.children.get(&path[..next])?.clone();
    let result = if next == path.len() {
        f(Arc::make_mut(&mut child))
    } else {
        update_below(Arc::make_mut(&mut child), path, next, f)?
    };
    node.children.insert(child);
    Some(result)
}

/// Every node under `root` (itself included), parents before children, siblings by name.
pub(super) struct Walk<'a> {
    first: Option<&'a Znode>,
    stack: Vec<SetIter<'a>>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(root: &'a Znode) -> Walk<'a> {
        Walk {
            first: Some(root),
            stack: Vec::new(),
        }
    }
}

impl<'a> Iterator for Walk<'a> {
    type Item = &'a Znode;

    fn next(&mut self) -> Option<&'a Znode> {
        if let Some(first) = self.first.take() {
            self.stack.push(first.children.set_iter());
            return Some(first);
        }
        loop {
            let top = self.stack.last_mut()?;
            match top.next() {
                Some(child) => {
                    let node = &*child.0;
                    if !node.children.is_empty() {
                        self.stack.push(node.children.set_iter());
                    }
                    return Some(node);
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
