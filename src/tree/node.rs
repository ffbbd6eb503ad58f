//! The shape of the tree: every znode holds its children in a persistent ordered map
//! name -> node, so that the tree needs no index by full path and a version clone stays
//! O(1).
//!
//! A lookup descends name by name from the root. A write path-copies: the changed node
//! and its ancestors (and the map nodes leading to them) are copied where an older version
//! still shares them (`Arc::make_mut`); everything else stays shared. Paths are not stored:
//! a walk builds them as it goes.
//!
//! A name is stored once, as the key in its parent's map: inline when it is short (the
//! common case: no allocation, and copying a map node copies it without touching a
//! reference count), else behind one shared pointer.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::sync::Arc;

use super::Znode;

/// Names up to this many bytes are stored inline.
const INLINE: usize = 14;

/// A child's name (a path component), 16 bytes. Compared as bytes, which is `str` order.
#[derive(Clone)]
pub(super) enum Name {
    Inline { len: u8, bytes: [u8; INLINE] },
    Heap(Arc<Box<str>>),
}

impl Name {
    pub(super) fn new(name: &str) -> Name {
        let src = name.as_bytes();
        let n = src.len();
        if n <= INLINE {
            // Two overlapping fixed-size copies instead of a variable-length one: this runs
            // once per level of every lookup.
            let mut bytes = [0; INLINE];
            if n >= 8 {
                bytes[..8].copy_from_slice(&src[..8]);
                bytes[n - 8..n].copy_from_slice(&src[n - 8..]);
            } else if n >= 4 {
                bytes[..4].copy_from_slice(&src[..4]);
                bytes[n - 4..n].copy_from_slice(&src[n - 4..]);
            } else {
                for (dst, byte) in bytes.iter_mut().zip(src) {
                    *dst = *byte;
                }
            }
            Name::Inline {
                len: n as u8,
                bytes,
            }
        } else {
            Name::Heap(Arc::new(Box::from(name)))
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Name::Inline { len, bytes } => &bytes[..(*len as usize).min(INLINE)],
            Name::Heap(name) => name.as_bytes(),
        }
    }

    /// The name as text (names come from valid paths, so always UTF-8; "" otherwise).
    pub(super) fn as_str(&self) -> &str {
        match self {
            Name::Heap(name) => name,
            Name::Inline { .. } => std::str::from_utf8(self.as_bytes()).unwrap_or_default(),
        }
    }
}

impl Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Name) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Name {}

impl PartialOrd for Name {
    fn partial_cmp(&self, other: &Name) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Name {
    fn cmp(&self, other: &Name) -> Ordering {
        match (self, other) {
            // Names have no NUL bytes (paths cannot), so comparing the zero-padded bytes
            // as one big-endian number is comparing the strings.
            (Name::Inline { bytes: a, .. }, Name::Inline { bytes: b, .. }) => {
                padded(a).cmp(&padded(b))
            }
            _ => self.as_bytes().cmp(other.as_bytes()),
        }
    }
}

fn padded(bytes: &[u8; INLINE]) -> u128 {
    let mut all = [0; 16];
    all[..INLINE].copy_from_slice(bytes);
    u128::from_be_bytes(all)
}

/// Looks `name` up in a child map: short names as a `Name` (compared as numbers), others
/// as bytes (no allocation either way).
macro_rules! by_name {
    ($map:expr, $method:ident, $name:expr) => {{
        let name: &str = $name;
        if name.len() <= INLINE {
            $map.$method(&Name::new(name))
        } else {
            $map.$method(name.as_bytes())
        }
    }};
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

type ChildMap = super::pmap::PMap<Name, Znode>;

/// The children of a znode, sorted by name. An empty map (a leaf, most znodes) allocates
/// nothing.
#[derive(Clone, Default)]
pub struct Children(ChildMap);

impl Children {
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Child names (not paths), sorted.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &str> + '_ {
        self.map_iter().map(|(name, _)| name.as_str())
    }

    /// The children's (name, node), sorted by name.
    pub fn nodes(&self) -> impl DoubleEndedIterator<Item = (&str, &Znode)> + '_ {
        self.map_iter().map(|(name, node)| (name.as_str(), node))
    }

    fn map_iter(&self) -> MapIter<'_> {
        self.0.iter()
    }

    pub(super) fn get(&self, name: &str) -> Option<&Znode> {
        by_name!(self.0, get, name)
    }

    /// The child named `name`, to change (the map nodes on the way copied if shared).
    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut Znode> {
        by_name!(self.0, get_mut, name)
    }

    /// Adds (or replaces) the child `name`.
    pub(super) fn insert(&mut self, name: &str, node: Znode) {
        self.0.insert(Name::new(name), node);
    }

    pub(super) fn remove(&mut self, name: &str) -> Option<Znode> {
        by_name!(self.0, remove, name)
    }

    /// Builds the map of already sorted, distinct children.
    pub(super) fn from_sorted(children: Vec<(Name, Znode)>) -> Children {
        Children(ChildMap::from_sorted(children))
    }
}

type MapIter<'a> = super::pmap::Iter<'a, Name, Znode>;

impl PartialEq for Children {
    /// Same children with the same content, subtrees compared deeply (shared ones by
    /// pointer). Iterative: a deep tree cannot overflow the stack.
    fn eq(&self, other: &Children) -> bool {
        let mut pending: Vec<(&Children, &Children)> = vec![(self, other)];
        while let Some((a, b)) = pending.pop() {
            let (x, y) = (&a.0, &b.0);
            if x.ptr_eq(y) {
                continue;
            }
            if x.len() != y.len() {
                return false;
            }
            for ((name_x, node_x), (name_y, node_y)) in x.iter().zip(y.iter()) {
                if name_x != name_y {
                    return false;
                }
                if Znode::ptr_eq(node_x, node_y) {
                    continue;
                }
                if !node_x.same_fields(node_y) {
                    return false;
                }
                pending.push((&node_x.children, &node_y.children));
            }
        }
        true
    }
}

impl Eq for Children {}

impl fmt::Debug for Children {
    /// The names only (the subtrees would print the whole tree).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

thread_local! {
    /// Children maps whose drop an outer [`Children`] drop on this thread will finish.
    static DEFERRED: std::cell::RefCell<Option<Vec<ChildMap>>> =
        const { std::cell::RefCell::new(None) };
}

impl Drop for Children {
    /// Drops the children without recursion: dropping a chain of nodes only this version
    /// holds (a deep path copied by a write) would otherwise take stack frames per level.
    /// The outermost drop on a thread drains the maps the nested ones hand it.
    fn drop(&mut self) {
        if self.0.is_empty() {
            return;
        }
        let map = std::mem::take(&mut self.0);
        let handed = DEFERRED.try_with(|deferred| match deferred.borrow_mut().as_mut() {
            Some(queue) => {
                queue.push(map);
                None
            }
            None => Some(map),
        });
        let map = match handed {
            Ok(None) => return,
            Ok(Some(map)) => map,
            // The thread is going away: drop as usual.
            Err(_) => return,
        };
        if DEFERRED
            .try_with(|deferred| *deferred.borrow_mut() = Some(Vec::new()))
            .is_err()
        {
            return;
        }
        let mut next = Some(map);
        while let Some(map) = next.take() {
            drop(map);
            next = DEFERRED
                .try_with(|deferred| deferred.borrow_mut().as_mut().and_then(Vec::pop))
                .ok()
                .flatten();
        }
        let _ = DEFERRED.try_with(|deferred| *deferred.borrow_mut() = None);
    }
}

/// The names of a path below the root (`/a/b` -> `a`, `b`); None for a path that does not
/// start with a slash. `/` itself gives one empty name, which no node has.
fn names(path: &str) -> Option<std::str::Split<'_, char>> {
    Some(path.strip_prefix('/')?.split('/'))
}

/// The node at `path` (canonical: `/` is the root) under `root`.
pub(super) fn lookup<'a>(root: &'a Znode, path: &str) -> Option<&'a Znode> {
    if path == "/" {
        return Some(root);
    }
    let mut node = root;
    for name in names(path)? {
        node = node.children.get(name)?;
    }
    Some(node)
}

/// Runs `f` on the node at `path` (canonical, not the root) below `root`, copying its
/// ancestors where an older version shares them; the node itself is copied only when `f`
/// changes it (`Znode`'s copy-on-write), so a check that fails copies nothing of it and
/// `set_data` on a shared node does not copy the old data first. None (and `f` not run)
/// when there is no such node; ancestors may have been copied then (same content).
pub(super) fn update_below<R>(
    root: &mut Znode,
    path: &str,
    f: impl FnOnce(&mut Znode) -> R,
) -> Option<R> {
    let mut node = root;
    for name in names(path)? {
        node = node.make_mut().children.get_mut(name)?;
    }
    Some(f(node))
}

/// Visits every node under `node` (itself included, at `path`) with its path: parents
/// before children, siblings by name. Iterative, so a deep tree cannot overflow the stack.
pub(super) fn walk(path: &str, node: &Znode, f: &mut dyn FnMut(&str, &Znode)) {
    let mut buf = String::from(path);
    f(&buf, node);
    // Each open level: its children still to visit, and the length of its path in `buf`
    // (0 for the root, so that its children read `/name`).
    let base = if path == "/" { 0 } else { buf.len() };
    let mut stack: Vec<(MapIter<'_>, usize)> = vec![(node.children.map_iter(), base)];
    while let Some((children, base)) = stack.last_mut() {
        let base = *base;
        let Some((name, child)) = children.next() else {
            stack.pop();
            continue;
        };
        buf.truncate(base);
        buf.push('/');
        buf.push_str(name.as_str());
        f(&buf, child);
        if !child.children.is_empty() {
            stack.push((child.children.map_iter(), buf.len()));
        }
    }
}

/// Every node under a node (itself included) in [`walk`]'s order, with the length of its
/// path (no path is built).
pub(super) struct Walk<'a> {
    first: Option<(usize, &'a Znode)>,
    stack: Vec<(MapIter<'a>, usize)>,
}

impl<'a> Walk<'a> {
    pub(super) fn new(path: &str, node: &'a Znode) -> Walk<'a> {
        Walk {
            first: Some((path.len(), node)),
            stack: Vec::new(),
        }
    }
}

impl<'a> Iterator for Walk<'a> {
    type Item = (usize, &'a Znode);

    fn next(&mut self) -> Option<(usize, &'a Znode)> {
        if let Some((len, first)) = self.first.take() {
            // The root's children read `/name`, not `//name`.
            let base = if len == 1 { 0 } else { len };
            self.stack.push((first.children.map_iter(), base));
            return Some((len, first));
        }
        loop {
            let (children, base) = self.stack.last_mut()?;
            let base = *base;
            match children.next() {
                Some((name, node)) => {
                    let len = base + 1 + name.as_bytes().len();
                    if !node.children.is_empty() {
                        self.stack.push((node.children.map_iter(), len));
                    }
                    return Some((len, node));
                }
                None => {
                    self.stack.pop();
                }
            }
        }
    }
}

/// Orders paths as a walk visits them: component by component (a slash sorts before
/// every other character), so `/a/b` comes before `/a-b`.
pub(super) fn walk_order(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_16_bytes_inline_up_to_14() {
        assert_eq!(std::mem::size_of::<Name>(), 16);
        assert!(matches!(Name::new("k0000000000"), Name::Inline { .. }));
        assert!(matches!(Name::new("abcdefghijklmn"), Name::Inline { .. }));
        assert!(matches!(Name::new("abcdefghijklmno"), Name::Heap(_)));
        for len in 0..=INLINE {
            let text: String = "abcdefghijklmnopq"[..len].to_string();
            assert_eq!(Name::new(&text).as_str(), text);
        }
        let mut all = ["b", "a", "abcdefghijklmnopq", "ab", "é", "abcdefghijklmno"]
            .map(Name::new)
            .to_vec();
        all.sort();
        let text: Vec<&str> = all.iter().map(Name::as_str).collect();
        assert_eq!(
            text,
            ["a", "ab", "abcdefghijklmno", "abcdefghijklmnopq", "b", "é"]
        );
        assert_eq!(Name::new("x"), Name::new("x"));
        assert_eq!(Name::new("ab").cmp(&Name::new("abc")), Ordering::Less);
        assert_eq!(Name::new("b").cmp(&Name::new("abc")), Ordering::Greater);
        assert_eq!(
            Name::new("abcdefghijklmn").cmp(&Name::new("abcdefghijklmno")),
            Ordering::Less
        );
        assert_ne!(
            Name::new("abcdefghijklmnopq"),
            Name::new("abcdefghijklmnopz")
        );
    }

    #[test]
    fn walk_order_visits_parents_before_children() {
        let mut paths = vec!["/a-b", "/a/b", "/", "/a", "/b", "/a/b/c", "/ab"];
        paths.sort_by(|a, b| walk_order(a, b));
        assert_eq!(paths, ["/", "/a", "/a/b", "/a/b/c", "/a-b", "/ab", "/b"]);
        assert_eq!(names("/a/b").unwrap().collect::<Vec<_>>(), ["a", "b"]);
        assert!(names("a").is_none());
    }
}
