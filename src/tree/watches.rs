//! Watch registrations of one shard's connections, and their firing, as data.
//!
//! Architecture Invariant: pure data. No sockets, no clocks, no ACLs: [`WatchTable::trigger`]
//! says which connection gets which event; delivering it is the caller's business.
//!
//! # Model (Apache ZooKeeper 3.8, `DataTree` + `server/watch/WatchManager`)
//!
//! ZooKeeper keeps two watch managers, `dataWatches` and `childWatches`. In each, a
//! (connection, path) pair has exactly ONE mode: standard (one-time), persistent or
//! persistent-recursive. We keep the same two managers:
//!
//! | registration                          | data manager | child manager |
//! |---------------------------------------|--------------|---------------|
//! | getData / exists with watch=true      | standard     | -             |
//! | getChildren / getChildren2 watch=true | -            | standard      |
//! | addWatch mode 0 (persistent)          | persistent   | persistent    |
//! | addWatch mode 1 (persistent recursive)| recursive    | recursive     |
//!
//! A registration REPLACES the mode that pair had in that manager, as in 3.8 (fixed only in
//! 3.9 by ZOOKEEPER-4466): `getData(watch)` after `addWatch(persistent)` on the same path
//! turns the data side back into a one-time watch, while the child side stays persistent.
//!
//! # Firing contract (what the tree module emits, what `trigger` does)
//!
//! The tree module emits [`WatchTrigger`]s in ZooKeeper's order:
//! - create P:  `(P, NodeCreated)`, then `(parent(P), NodeChildrenChanged)`;
//! - delete P:  `(P, NodeDeleted)`, then `(parent(P), NodeChildrenChanged)`;
//! - setData P: `(P, NodeDataChanged)`.
//!
//! `trigger` maps each to ZooKeeper's `triggerWatch` calls:
//! - `NodeCreated` / `NodeDataChanged` at P: the data manager.
//! - `NodeDeleted` at P: the data manager, then the child manager (3.8's `deleteNode` calls
//!   both, the second one suppressing the watchers the first one already notified). The two
//!   are merged here, so a connection holding both a data and a child watch on P gets ONE
//!   event; both watches are consumed.
//! - `NodeChildrenChanged` at P: the child manager.
//!
//! Within one manager, at P itself: standard watches fire and are consumed; persistent
//! watches fire and stay; recursive watches fire and stay, except for
//! `NodeChildrenChanged`, which a recursive watch never gets. At every ancestor of P (up to
//! and including `/`): only recursive watches fire (never for `NodeChildrenChanged`).
//!
//! A connection gets at most one event per trigger. Every event carries state
//! SyncConnected and the trigger's path (P, never the ancestor that held the watch). The
//! returned events are sorted by ascending [`ConnId`] (ZooKeeper's order is a HashSet's; a
//! client sees at most one event per trigger, so no client can tell the difference).
//!
//! Since ZooKeeper 3.8.4 (ZOOKEEPER-4799) every event is also filtered by READ permission:
//! the connection gets it only if its auth ids pass `acl::check(acl, READ, ..)` against the
//! ACL of the node P (for `NodeChildrenChanged`: of the node P, i.e. the parent of the
//! created/deleted child), and the watch is consumed even when the event is dropped. That
//! filter needs the session's ids and the node's ACL, so it is the caller's: `retain` on the
//! returned events.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use super::WatchTrigger;
use crate::proto::{keeper_state, watcher_type, EventType, WatcherEvent};

/// A connection, unique within one shard.
pub type ConnId = u64;

/// The mode of one (connection, path) registration in one manager (`WatcherMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Fires once, then is removed.
    Standard,
    /// Fires on P itself, stays.
    Persistent,
    /// Fires on P and on every descendant of P (never for NodeChildrenChanged), stays.
    Recursive,
}

/// One of ZooKeeper's two watch managers.
#[derive(Debug, Default)]
struct Manager {
    /// path -> connection -> mode.
    /// Invariant: no inner map is empty; mirrors `paths_of` exactly.
    watchers: HashMap<Arc<str>, HashMap<ConnId, Mode>>,
    /// connection -> the paths it has a registration on.
    /// Invariant: no set is empty; mirrors `watchers` exactly.
    paths_of: HashMap<ConnId, HashSet<Arc<str>>>,
    /// Number of registrations. Invariant: the sum of the inner maps' sizes.
    count: usize,
    /// Number of `Mode::Recursive` registrations: when 0, a trigger never walks ancestors.
    recursive_count: usize,
}

impl Manager {
    fn add(&mut self, path: &str, conn: ConnId, mode: Mode) {
        let key: Arc<str> = match self.watchers.get_key_value(path) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(path),
        };
        let previous = self
            .watchers
            .entry(Arc::clone(&key))
            .or_default()
            .insert(conn, mode);
        match previous {
            None => {
                self.count += 1;
                self.paths_of.entry(conn).or_default().insert(key);
            }
            Some(Mode::Recursive) => self.recursive_count -= 1,
            Some(_) => {}
        }
        if mode == Mode::Recursive {
            self.recursive_count += 1;
        }
    }

    /// Removes the registration of `conn` on `path`, whatever its mode.
    fn remove(&mut self, path: &str, conn: ConnId) -> bool {
        let Some(conns) = self.watchers.get_mut(path) else {
            return false;
        };
        let Some(mode) = conns.remove(&conn) else {
            return false;
        };
        if conns.is_empty() {
            self.watchers.remove(path);
        }
        self.forget(conn, path, mode);
        true
    }

    fn remove_conn(&mut self, conn: ConnId) {
        let Some(paths) = self.paths_of.remove(&conn) else {
            return;
        };
        for path in paths {
            // Always occupied: `paths_of` mirrors `watchers`.
            let Entry::Occupied(mut conns) = self.watchers.entry(path) else {
                continue;
            };
            if let Some(mode) = conns.get_mut().remove(&conn) {
                self.count -= 1;
                if mode == Mode::Recursive {
                    self.recursive_count -= 1;
                }
            }
            if conns.get().is_empty() {
                conns.remove();
            }
        }
    }

    /// Bookkeeping after `conn`'s registration (of `mode`) on `path` left `watchers`.
    fn forget(&mut self, conn: ConnId, path: &str, mode: Mode) {
        self.count -= 1;
        if mode == Mode::Recursive {
            self.recursive_count -= 1;
        }
        if let Some(paths) = self.paths_of.get_mut(&conn) {
            paths.remove(path);
            if paths.is_empty() {
                self.paths_of.remove(&conn);
            }
        }
    }

    /// ZooKeeper 3.8's `WatchManager.triggerWatch` without the delivery: pushes every
    /// connection it fires for onto `fired` (possibly twice) and consumes standard watches.
    fn trigger(&mut self, path: &str, event: EventType, fired: &mut Vec<ConnId>) {
        if self.count == 0 {
            return;
        }
        let children_changed = event == EventType::NodeChildrenChanged;
        let mut consumed: Vec<ConnId> = Vec::new();
        let mut now_empty = false;
        if let Some(conns) = self.watchers.get_mut(path) {
            conns.retain(|&conn, mode| match mode {
                Mode::Recursive => {
                    if !children_changed {
                        fired.push(conn);
                    }
                    true
                }
                Mode::Persistent => {
                    fired.push(conn);
                    true
                }
                Mode::Standard => {
                    fired.push(conn);
                    consumed.push(conn);
                    false
                }
            });
            now_empty = conns.is_empty();
        }
        if now_empty {
            self.watchers.remove(path);
        }
        for conn in consumed {
            self.forget(conn, path, Mode::Standard);
        }
        // At ancestors only recursive watches fire, and never for NodeChildrenChanged.
        if self.recursive_count == 0 || children_changed {
            return;
        }
        let mut ancestor = parent_path(path);
        while let Some(at) = ancestor {
            if let Some(conns) = self.watchers.get(at) {
                fired.extend(
                    conns
                        .iter()
                        .filter(|(_, mode)| **mode == Mode::Recursive)
                        .map(|(conn, _)| *conn),
                );
            }
            ancestor = parent_path(at);
        }
    }

    /// 3.8's `WatchManager.containsWatcher`: true when ANY connection has a registration on
    /// `path` (see [`WatchTable::check_watches`]).
    fn has_any_on(&self, path: &str) -> bool {
        self.watchers.contains_key(path)
    }

    #[cfg(test)]
    fn check_invariants(&self) {
        let mut count = 0;
        let mut recursive_count = 0;
        for (path, conns) in &self.watchers {
            assert!(!conns.is_empty(), "empty watcher set on {path}");
            for (conn, mode) in conns {
                count += 1;
                if *mode == Mode::Recursive {
                    recursive_count += 1;
                }
                assert!(
                    self.paths_of.get(conn).is_some_and(|p| p.contains(path)),
                    "paths_of misses {conn} on {path}"
                );
            }
        }
        let indexed: usize = self.paths_of.values().map(HashSet::len).sum();
        assert_eq!(indexed, count, "paths_of has extra entries");
        assert!(self.paths_of.values().all(|p| !p.is_empty()));
        assert_eq!(self.count, count);
        assert_eq!(self.recursive_count, recursive_count);
    }
}

/// The parent of a path as ZooKeeper's `PathParentIterator` walks it: `/a/b` -> `/a` -> `/`
/// -> none. A path with no `/` (never valid, never produced by the tree) has no parent.
fn parent_path(path: &str) -> Option<&str> {
    if path == "/" {
        return None;
    }
    match path.rfind('/') {
        Some(0) => Some("/"),
        Some(slash) => path.get(..slash),
        None => None,
    }
}

/// What the `wchs` four-letter word prints (3.8 reports the data manager only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WatchSummary {
    /// Connections with at least one registration.
    pub connections: usize,
    /// Paths with at least one registration.
    pub paths: usize,
    /// (path, connection) registrations.
    pub watches: usize,
}

/// Whether ZooKeeper 3.8 knows a checkWatches / removeWatches `type`: only CHILDREN (1),
/// DATA (2) and ANY (3). 3.8's `WatcherType.fromInt` throws on anything else, which
/// FinalRequestProcessor answers with MarshallingError; PERSISTENT (4) and
/// PERSISTENT_RECURSIVE (5) exist only from 3.9 on.
pub fn is_known_watcher_type(watcher_type: i32) -> bool {
    matches!(
        watcher_type,
        watcher_type::CHILDREN | watcher_type::DATA | watcher_type::ANY
    )
}

#[derive(Debug, Default)]
pub struct WatchTable {
    /// ZooKeeper's `dataWatches`.
    data: Manager,
    /// ZooKeeper's `childWatches`.
    child: Manager,
}

impl WatchTable {
    pub fn new() -> WatchTable {
        WatchTable::default()
    }

    /// getData or exists with watch=true (whether or not the node exists).
    pub fn add_data_watch(&mut self, path: &str, conn: ConnId) {
        self.data.add(path, conn, Mode::Standard);
    }

    /// getChildren or getChildren2 with watch=true.
    pub fn add_child_watch(&mut self, path: &str, conn: ConnId) {
        self.child.add(path, conn, Mode::Standard);
    }

    /// addWatch mode PERSISTENT (0), or a persistent watch re-set by setWatches2.
    pub fn add_persistent_watch(&mut self, path: &str, conn: ConnId) {
        self.data.add(path, conn, Mode::Persistent);
        self.child.add(path, conn, Mode::Persistent);
    }

    /// addWatch mode PERSISTENT_RECURSIVE (1), or one re-set by setWatches2.
    pub fn add_persistent_recursive_watch(&mut self, path: &str, conn: ConnId) {
        self.data.add(path, conn, Mode::Recursive);
        self.child.add(path, conn, Mode::Recursive);
    }

    /// checkWatches (17), with 3.8's `DataTree.containsWatcher` semantics: CHILDREN asks the
    /// child manager, DATA the data manager, ANY either. Any mode counts (one-time,
    /// persistent, recursive).
    ///
    /// 3.8 quirk, kept on purpose: `WatchManager.containsWatcher` answers whether ANY
    /// connection has a registration on `path` in that manager, not whether `conn` has one
    /// (fixed in 3.9 by ZOOKEEPER-4471), so `conn` does not change the answer. Types other
    /// than 1..=3 answer false; see [`is_known_watcher_type`] for the reply 3.8 gives them.
    /// checkWatches removes nothing on the server (the Java client sends it when removing
    /// one of several local watchers; the server-side watch stays until it fires).
    pub fn check_watches(&self, path: &str, watcher_type: i32, conn: ConnId) -> bool {
        let _ = conn;
        match watcher_type {
            watcher_type::CHILDREN => self.child.has_any_on(path),
            watcher_type::DATA => self.data.has_any_on(path),
            watcher_type::ANY => self.child.has_any_on(path) || self.data.has_any_on(path),
            _ => false,
        }
    }

    /// removeWatches (18), with 3.8's `DataTree.removeWatch` semantics: CHILDREN removes `conn`'s registration (of any mode)
    /// on `path` from the child manager, DATA from the data manager, ANY from both. Returns
    /// whether anything was removed (the caller answers NoWatcher when not). A persistent
    /// watch removed with DATA keeps its child side (it still gets NodeChildrenChanged and
    /// NodeDeleted), as in 3.8. Types other than 1..=3 remove nothing and answer false.
    pub fn remove_watches(&mut self, path: &str, watcher_type: i32, conn: ConnId) -> bool {
        match watcher_type {
            watcher_type::CHILDREN => self.child.remove(path, conn),
            watcher_type::DATA => self.data.remove(path, conn),
            watcher_type::ANY => {
                let child = self.child.remove(path, conn);
                let data = self.data.remove(path, conn);
                child || data
            }
            _ => false,
        }
    }

    /// Fires `trigger`: consumes the one-time watches it matches and returns the events to
    /// send, sorted by ascending connection; a connection gets at most one event per
    /// trigger. See the module documentation for the rules.
    pub fn trigger(&mut self, trigger: &WatchTrigger) -> Vec<(ConnId, WatcherEvent)> {
        let path: &str = &trigger.path;
        let mut fired: Vec<ConnId> = Vec::new();
        match trigger.event {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                self.data.trigger(path, trigger.event, &mut fired);
            }
            EventType::NodeDeleted => {
                self.data.trigger(path, trigger.event, &mut fired);
                self.child.trigger(path, trigger.event, &mut fired);
            }
            EventType::NodeChildrenChanged => {
                self.child.trigger(path, trigger.event, &mut fired);
            }
            // Never fired by a change to the tree (session events and the client's own
            // watch-removal notifications).
            EventType::None
            | EventType::DataWatchRemoved
            | EventType::ChildWatchRemoved
            | EventType::PersistentWatchRemoved => {}
        }
        if fired.is_empty() {
            return Vec::new();
        }
        fired.sort_unstable();
        fired.dedup();
        fired
            .into_iter()
            .map(|conn| {
                let event = WatcherEvent {
                    event_type: trigger.event,
                    state: keeper_state::SYNC_CONNECTED,
                    path: path.to_owned(),
                };
                (conn, event)
            })
            .collect()
    }

    /// Drops every watch of a closed connection.
    pub fn remove_conn(&mut self, conn: ConnId) {
        self.data.remove_conn(conn);
        self.child.remove_conn(conn);
    }

    /// Number of (path, connection, kind) registrations, kind being the data or the child
    /// manager: ZooKeeper's `DataTree.getWatchCount` (mntr's `zk_watch_count`). A persistent
    /// or recursive watch counts twice, as in 3.8.
    pub fn len(&self) -> usize {
        self.data.count + self.child.count
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// path -> connections watching it (for the wchp four-letter word). Like 3.8, which
    /// dumps `dataWatches` only, this lists the data manager: data/exists watches,
    /// persistent and recursive ones, but not getChildren watches. Connections ascending.
    pub fn by_path(&self) -> BTreeMap<String, Vec<ConnId>> {
        self.data
            .watchers
            .iter()
            .map(|(path, conns)| {
                let mut conns: Vec<ConnId> = conns.keys().copied().collect();
                conns.sort_unstable();
                (path.to_string(), conns)
            })
            .collect()
    }

    /// connection -> paths it watches (for wchc). The data manager only, as
    /// [`WatchTable::by_path`]. Paths ascending.
    pub fn by_conn(&self) -> BTreeMap<ConnId, Vec<String>> {
        self.data
            .paths_of
            .iter()
            .map(|(conn, paths)| {
                let mut paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
                paths.sort_unstable();
                (*conn, paths)
            })
            .collect()
    }

    /// For wchs: "{connections} connections watching {paths} paths\nTotal watches:{watches}".
    /// The data manager only, as 3.8's `dumpWatchesSummary`.
    pub fn summary(&self) -> WatchSummary {
        WatchSummary {
            connections: self.data.paths_of.len(),
            paths: self.data.watchers.len(),
            watches: self.data.count,
        }
    }

    /// Panics when the internal indexes disagree.
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        self.data.check_invariants();
        self.child.check_invariants();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::watcher_type::{ANY, CHILDREN, DATA, PERSISTENT, PERSISTENT_RECURSIVE};

    fn fire(table: &mut WatchTable, path: &str, event: EventType) -> Vec<ConnId> {
        let trigger = WatchTrigger {
            path: Arc::from(path),
            event,
        };
        let events = table.trigger(&trigger);
        table.check_invariants();
        for (_, e) in &events {
            assert_eq!(e.event_type, event);
            assert_eq!(e.state, keeper_state::SYNC_CONNECTED);
            assert_eq!(e.path, path);
        }
        events.into_iter().map(|(conn, _)| conn).collect()
    }

    use EventType::{NodeChildrenChanged, NodeCreated, NodeDataChanged, NodeDeleted};

    #[test]
    fn parent_path_walks_to_root() {
        assert_eq!(parent_path("/a/b/c"), Some("/a/b"));
        assert_eq!(parent_path("/a/b"), Some("/a"));
        assert_eq!(parent_path("/a"), Some("/"));
        assert_eq!(parent_path("/"), None);
        assert_eq!(parent_path(""), None);
        assert_eq!(parent_path("nonsense"), None);
    }

    #[test]
    fn data_watch_fires_once_on_data_events() {
        for event in [NodeCreated, NodeDataChanged, NodeDeleted] {
            let mut t = WatchTable::new();
            t.add_data_watch("/a", 1);
            assert_eq!(t.len(), 1);
            assert_eq!(fire(&mut t, "/a", event), vec![1]);
            assert!(t.is_empty());
            assert_eq!(fire(&mut t, "/a", event), Vec::<ConnId>::new());
        }
    }

    #[test]
    fn data_watch_ignores_children_changed_and_other_paths() {
        let mut t = WatchTable::new();
        t.add_data_watch("/a", 1);
        assert!(fire(&mut t, "/a", NodeChildrenChanged).is_empty());
        assert!(fire(&mut t, "/a/b", NodeCreated).is_empty());
        assert!(fire(&mut t, "/", NodeDataChanged).is_empty());
        assert!(fire(&mut t, "/ab", NodeDataChanged).is_empty());
        assert_eq!(t.len(), 1);
        assert_eq!(fire(&mut t, "/a", NodeDataChanged), vec![1]);
    }

    #[test]
    fn child_watch_fires_once_on_children_changed_and_deleted() {
        for event in [NodeChildrenChanged, NodeDeleted] {
            let mut t = WatchTable::new();
            t.add_child_watch("/a", 1);
            assert_eq!(fire(&mut t, "/a", event), vec![1]);
            assert!(t.is_empty());
        }
        let mut t = WatchTable::new();
        t.add_child_watch("/a", 1);
        assert!(fire(&mut t, "/a", NodeCreated).is_empty());
        assert!(fire(&mut t, "/a", NodeDataChanged).is_empty());
        assert!(fire(&mut t, "/a/b", NodeDeleted).is_empty());
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn delete_gives_one_event_to_a_conn_with_data_and_child_watches() {
        let mut t = WatchTable::new();
        t.add_data_watch("/a", 1);
        t.add_child_watch("/a", 1);
        t.add_child_watch("/a", 2);
        t.add_data_watch("/a", 3);
        assert_eq!(t.len(), 4);
        assert_eq!(fire(&mut t, "/a", NodeDeleted), vec![1, 2, 3]);
        // Both of conn 1's watches were consumed.
        assert!(t.is_empty());
    }

    #[test]
    fn exists_and_get_data_share_one_registration() {
        let mut t = WatchTable::new();
        t.add_data_watch("/a", 1);
        t.add_data_watch("/a", 1);
        assert_eq!(t.len(), 1);
        assert_eq!(fire(&mut t, "/a", NodeCreated), vec![1]);
        assert!(t.is_empty());
    }

    #[test]
    fn events_are_sorted_by_conn() {
        let mut t = WatchTable::new();
        for conn in [9, 3, 7, 1, 5] {
            t.add_data_watch("/x", conn);
        }
        assert_eq!(fire(&mut t, "/x", NodeDataChanged), vec![1, 3, 5, 7, 9]);
    }

    #[test]
    fn persistent_watch_fires_on_every_event_at_its_path_and_stays() {
        let mut t = WatchTable::new();
        t.add_persistent_watch("/a", 1);
        assert_eq!(t.len(), 2); // data + child side, as 3.8 counts it
        for event in [
            NodeCreated,
            NodeDataChanged,
            NodeChildrenChanged,
            NodeDeleted,
            NodeCreated,
        ] {
            assert_eq!(fire(&mut t, "/a", event), vec![1], "{event:?}");
        }
        assert_eq!(t.len(), 2);
        // Not on descendants or ancestors.
        assert!(fire(&mut t, "/a/b", NodeCreated).is_empty());
        assert!(fire(&mut t, "/a/b", NodeDeleted).is_empty());
        assert!(fire(&mut t, "/", NodeChildrenChanged).is_empty());
    }

    #[test]
    fn recursive_watch_fires_on_path_and_descendants_but_not_children_changed() {
        let mut t = WatchTable::new();
        t.add_persistent_recursive_watch("/a", 1);
        for event in [NodeCreated, NodeDataChanged, NodeDeleted] {
            assert_eq!(fire(&mut t, "/a", event), vec![1], "{event:?}");
            assert_eq!(fire(&mut t, "/a/b", event), vec![1], "{event:?}");
            assert_eq!(fire(&mut t, "/a/b/c/d", event), vec![1], "{event:?}");
        }
        assert!(fire(&mut t, "/a", NodeChildrenChanged).is_empty());
        assert!(fire(&mut t, "/a/b", NodeChildrenChanged).is_empty());
        // Not siblings with a common prefix, not ancestors.
        assert!(fire(&mut t, "/ab", NodeCreated).is_empty());
        assert!(fire(&mut t, "/", NodeDataChanged).is_empty());
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn recursive_watch_on_root_sees_everything() {
        let mut t = WatchTable::new();
        t.add_persistent_recursive_watch("/", 4);
        assert_eq!(fire(&mut t, "/", NodeDataChanged), vec![4]);
        assert_eq!(fire(&mut t, "/x", NodeCreated), vec![4]);
        assert_eq!(fire(&mut t, "/x/y/z", NodeDeleted), vec![4]);
        assert!(fire(&mut t, "/", NodeChildrenChanged).is_empty());
        assert!(fire(&mut t, "/x", NodeChildrenChanged).is_empty());
    }

    #[test]
    fn event_path_is_the_trigger_path_not_the_watched_ancestor() {
        let mut t = WatchTable::new();
        t.add_persistent_recursive_watch("/a", 1);
        let trigger = WatchTrigger {
            path: Arc::from("/a/b/c"),
            event: NodeCreated,
        };
        let events = t.trigger(&trigger);
        assert_eq!(
            events,
            vec![(
                1,
                WatcherEvent {
                    event_type: NodeCreated,
                    state: 3,
                    path: "/a/b/c".to_owned()
                }
            )]
        );
    }

    #[test]
    fn one_event_per_conn_when_several_watches_match() {
        let mut t = WatchTable::new();
        t.add_persistent_recursive_watch("/", 1);
        t.add_persistent_recursive_watch("/a", 1);
        t.add_persistent_recursive_watch("/a/b", 1);
        t.add_data_watch("/a/b/c", 1);
        t.add_child_watch("/a/b/c", 1);
        t.add_data_watch("/a/b/c", 2);
        t.add_persistent_recursive_watch("/a", 2);
        assert_eq!(fire(&mut t, "/a/b/c", NodeDeleted), vec![1, 2]);
        // The one-time watches were consumed, the recursive ones stay.
        assert_eq!(fire(&mut t, "/a/b/c", NodeCreated), vec![1, 2]);
        assert!(fire(&mut t, "/a/b/c", NodeChildrenChanged).is_empty());
    }

    #[test]
    fn create_sequence_fires_child_and_parent_watches() {
        // The tree emits (P, NodeCreated) then (parent, NodeChildrenChanged).
        let mut t = WatchTable::new();
        t.add_data_watch("/p/c", 1); // exists watch on the node to be
        t.add_child_watch("/p", 2);
        t.add_persistent_watch("/p", 3);
        t.add_persistent_recursive_watch("/p", 4);
        assert_eq!(fire(&mut t, "/p/c", NodeCreated), vec![1, 4]);
        assert_eq!(fire(&mut t, "/p", NodeChildrenChanged), vec![2, 3]);
    }

    #[test]
    fn delete_sequence_fires_like_delete_node() {
        let mut t = WatchTable::new();
        t.add_data_watch("/p/c", 1);
        t.add_child_watch("/p/c", 2);
        t.add_child_watch("/p", 3);
        t.add_data_watch("/p", 5); // setData watch on the parent: untouched
        t.add_persistent_watch("/p", 4);
        t.add_persistent_watch("/p/c", 6);
        assert_eq!(fire(&mut t, "/p/c", NodeDeleted), vec![1, 2, 6]);
        assert_eq!(fire(&mut t, "/p", NodeChildrenChanged), vec![3, 4]);
        assert!(t.check_watches("/p", DATA, 5));
        assert_eq!(fire(&mut t, "/p", NodeDataChanged), vec![4, 5]);
    }

    #[test]
    fn trigger_on_unwatched_path_is_empty_and_leaves_watches() {
        let mut t = WatchTable::new();
        assert!(fire(&mut t, "/a", NodeCreated).is_empty());
        t.add_data_watch("/a", 1);
        t.add_child_watch("/b", 1);
        t.add_persistent_watch("/c", 1);
        assert!(fire(&mut t, "/d", NodeDeleted).is_empty());
        assert!(fire(&mut t, "/d", NodeChildrenChanged).is_empty());
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn non_tree_events_fire_nothing() {
        let mut t = WatchTable::new();
        t.add_persistent_recursive_watch("/", 1);
        t.add_data_watch("/a", 1);
        for event in [
            EventType::None,
            EventType::DataWatchRemoved,
            EventType::ChildWatchRemoved,
            EventType::PersistentWatchRemoved,
        ] {
            assert!(fire(&mut t, "/a", event).is_empty());
        }
        assert_eq!(t.len(), 3);
    }

    #[test]
    fn standard_registration_replaces_persistent_mode_as_in_3_8() {
        // addWatch(persistent) then getData(watch): the data side becomes one-time, the
        // child side stays persistent.
        let mut t = WatchTable::new();
        t.add_persistent_watch("/a", 1);
        t.add_data_watch("/a", 1);
        assert_eq!(t.len(), 2);
        assert_eq!(fire(&mut t, "/a", NodeDataChanged), vec![1]);
        assert!(fire(&mut t, "/a", NodeDataChanged).is_empty());
        assert_eq!(fire(&mut t, "/a", NodeChildrenChanged), vec![1]);
        assert_eq!(fire(&mut t, "/a", NodeChildrenChanged), vec![1]);

        // getData(watch) then addWatch(persistent): the data side becomes persistent.
        let mut t = WatchTable::new();
        t.add_data_watch("/a", 1);
        t.add_persistent_watch("/a", 1);
        assert_eq!(t.len(), 2);
        assert_eq!(fire(&mut t, "/a", NodeDataChanged), vec![1]);
        assert_eq!(fire(&mut t, "/a", NodeDataChanged), vec![1]);
    }

    #[test]
    fn persistent_registration_replaces_recursive_mode() {
        let mut t = WatchTable::new();
        t.add_persistent_recursive_watch("/a", 1);
        t.add_persistent_watch("/a", 1);
        t.check_invariants();
        assert_eq!(t.data.recursive_count, 0);
        assert!(fire(&mut t, "/a/b", NodeCreated).is_empty());
        assert_eq!(fire(&mut t, "/a", NodeChildrenChanged), vec![1]);
        t.add_persistent_recursive_watch("/a", 1);
        assert_eq!(t.data.recursive_count, 1);
        assert_eq!(fire(&mut t, "/a/b", NodeCreated), vec![1]);
        assert!(fire(&mut t, "/a", NodeChildrenChanged).is_empty());
    }

    #[test]
    fn child_watch_after_recursive_makes_child_side_one_time() {
        let mut t = WatchTable::new();
        t.add_persistent_recursive_watch("/a", 1);
        t.add_child_watch("/a", 1);
        assert_eq!(fire(&mut t, "/a", NodeChildrenChanged), vec![1]);
        assert!(fire(&mut t, "/a", NodeChildrenChanged).is_empty());
        // The data side is still recursive.
        assert_eq!(fire(&mut t, "/a/b", NodeCreated), vec![1]);
    }

    #[test]
    fn check_watches_semantics() {
        let mut t = WatchTable::new();
        assert!(!t.check_watches("/a", DATA, 1));
        assert!(!t.check_watches("/a", ANY, 1));
        t.add_data_watch("/a", 1);
        assert!(t.check_watches("/a", DATA, 1));
        assert!(!t.check_watches("/a", CHILDREN, 1));
        assert!(t.check_watches("/a", ANY, 1));
        t.add_child_watch("/b", 1);
        assert!(t.check_watches("/b", CHILDREN, 1));
        assert!(!t.check_watches("/b", DATA, 1));
        assert!(t.check_watches("/b", ANY, 1));
        // Persistent and recursive watches live on both sides.
        t.add_persistent_watch("/c", 1);
        t.add_persistent_recursive_watch("/d", 1);
        for path in ["/c", "/d"] {
            for ty in [CHILDREN, DATA, ANY] {
                assert!(t.check_watches(path, ty, 1), "{path} {ty}");
            }
        }
        // A recursive watch on /d does not make /d/e watched.
        assert!(!t.check_watches("/d/e", ANY, 1));
        // 3.9-only types are unknown to 3.8.
        assert!(!t.check_watches("/c", PERSISTENT, 1));
        assert!(!t.check_watches("/d", PERSISTENT_RECURSIVE, 1));
        assert!(!t.check_watches("/c", 0, 1));
    }

    #[test]
    fn check_watches_answers_for_any_conn_as_3_8() {
        let mut t = WatchTable::new();
        t.add_data_watch("/a", 1);
        assert!(t.check_watches("/a", DATA, 2));
        assert!(!t.check_watches("/a", CHILDREN, 2));
    }

    #[test]
    fn known_watcher_types() {
        assert!(is_known_watcher_type(CHILDREN));
        assert!(is_known_watcher_type(DATA));
        assert!(is_known_watcher_type(ANY));
        assert!(!is_known_watcher_type(PERSISTENT));
        assert!(!is_known_watcher_type(PERSISTENT_RECURSIVE));
        assert!(!is_known_watcher_type(0));
        assert!(!is_known_watcher_type(-1));
    }

    #[test]
    fn remove_watches_by_type() {
        let mut t = WatchTable::new();
        t.add_data_watch("/a", 1);
        t.add_child_watch("/a", 1);
        assert!(!t.remove_watches("/a", DATA, 2));
        assert!(!t.remove_watches("/b", DATA, 1));
        assert!(t.remove_watches("/a", DATA, 1));
        assert!(!t.remove_watches("/a", DATA, 1));
        assert_eq!(t.len(), 1);
        t.check_invariants();
        assert!(fire(&mut t, "/a", NodeDataChanged).is_empty());
        assert!(t.remove_watches("/a", CHILDREN, 1));
        assert!(t.is_empty());

        t.add_data_watch("/a", 1);
        t.add_child_watch("/a", 1);
        assert!(t.remove_watches("/a", ANY, 1));
        assert!(t.is_empty());
        assert!(!t.remove_watches("/a", ANY, 1));

        t.add_child_watch("/a", 1);
        assert!(t.remove_watches("/a", ANY, 1));
        assert!(t.is_empty());
        t.check_invariants();
    }

    #[test]
    fn remove_watches_of_one_conn_leaves_others() {
        let mut t = WatchTable::new();
        t.add_data_watch("/a", 1);
        t.add_data_watch("/a", 2);
        assert!(t.remove_watches("/a", DATA, 1));
        assert_eq!(fire(&mut t, "/a", NodeDataChanged), vec![2]);
    }

    #[test]
    fn remove_persistent_watches() {
        // DATA removes only the data side; the child side still fires.
        let mut t = WatchTable::new();
        t.add_persistent_watch("/a", 1);
        assert!(t.remove_watches("/a", DATA, 1));
        assert!(fire(&mut t, "/a", NodeDataChanged).is_empty());
        assert_eq!(fire(&mut t, "/a", NodeChildrenChanged), vec![1]);
        assert_eq!(fire(&mut t, "/a", NodeDeleted), vec![1]);
        assert!(t.remove_watches("/a", ANY, 1));
        assert!(t.is_empty());

        // ANY removes a recursive watch entirely, and the ancestor walk stops.
        t.add_persistent_recursive_watch("/a", 1);
        assert!(t.remove_watches("/a", ANY, 1));
        t.check_invariants();
        assert_eq!(t.data.recursive_count + t.child.recursive_count, 0);
        assert!(fire(&mut t, "/a/b", NodeCreated).is_empty());

        // Unknown types remove nothing.
        t.add_persistent_watch("/a", 1);
        assert!(!t.remove_watches("/a", PERSISTENT, 1));
        assert!(!t.remove_watches("/a", PERSISTENT_RECURSIVE, 1));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn remove_conn_drops_everything_of_that_conn_only() {
        let mut t = WatchTable::new();
        t.add_data_watch("/a", 1);
        t.add_child_watch("/a", 1);
        t.add_persistent_watch("/b", 1);
        t.add_persistent_recursive_watch("/", 1);
        t.add_data_watch("/a", 2);
        t.add_persistent_recursive_watch("/c", 2);
        t.remove_conn(1);
        t.check_invariants();
        assert_eq!(t.len(), 3);
        assert_eq!(t.data.recursive_count, 1);
        assert_eq!(fire(&mut t, "/a", NodeDeleted), vec![2]);
        assert!(fire(&mut t, "/b", NodeDataChanged).is_empty());
        assert!(fire(&mut t, "/x", NodeCreated).is_empty());
        assert_eq!(fire(&mut t, "/c/d", NodeCreated), vec![2]);
        t.remove_conn(2);
        t.remove_conn(2);
        t.remove_conn(99);
        assert!(t.is_empty());
        t.check_invariants();
    }

    #[test]
    fn dumps_list_the_data_manager() {
        let mut t = WatchTable::new();
        t.add_data_watch("/a", 2);
        t.add_data_watch("/a", 1);
        t.add_data_watch("/b", 1);
        t.add_child_watch("/c", 3); // not in 3.8's wchp/wchc/wchs
        t.add_persistent_watch("/d", 3);
        let by_path = t.by_path();
        assert_eq!(
            by_path.into_iter().collect::<Vec<_>>(),
            vec![
                ("/a".to_owned(), vec![1, 2]),
                ("/b".to_owned(), vec![1]),
                ("/d".to_owned(), vec![3]),
            ]
        );
        let by_conn = t.by_conn();
        assert_eq!(
            by_conn.into_iter().collect::<Vec<_>>(),
            vec![
                (1, vec!["/a".to_owned(), "/b".to_owned()]),
                (2, vec!["/a".to_owned()]),
                (3, vec!["/d".to_owned()]),
            ]
        );
        assert_eq!(
            t.summary(),
            WatchSummary {
                connections: 3,
                paths: 3,
                watches: 4
            }
        );
        assert_eq!(t.len(), 6);
    }

    #[test]
    fn many_conns_on_one_path_then_fire_and_disconnect() {
        let mut t = WatchTable::new();
        for conn in 0..1000 {
            t.add_data_watch("/lock", conn);
            t.add_child_watch("/lock", conn);
        }
        assert_eq!(t.len(), 2000);
        let fired = fire(&mut t, "/lock", NodeDeleted);
        assert_eq!(fired, (0..1000).collect::<Vec<_>>());
        assert!(t.is_empty());
        for conn in 0..1000 {
            t.add_persistent_recursive_watch("/", conn);
        }
        for conn in 0..1000 {
            t.remove_conn(conn);
        }
        t.check_invariants();
        assert!(t.is_empty());
    }
}
