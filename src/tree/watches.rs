//! Watch registrations of one shard's connections, and their firing, as data.

use std::collections::BTreeMap;

use super::WatchTrigger;
use crate::proto::WatcherEvent;

/// A connection, unique within one shard.
pub type ConnId = u64;

#[derive(Debug, Default)]
pub struct WatchTable {}

impl WatchTable {
    pub fn new() -> WatchTable {
        WatchTable::default()
    }

    /// Fires `trigger`: consumes the one-time watches it matches and returns the events to
    /// send, in ZooKeeper's order; a connection gets at most one event per trigger.
    pub fn trigger(&mut self, trigger: &WatchTrigger) -> Vec<(ConnId, WatcherEvent)> {
        todo!()
    }

    /// Drops every watch of a closed connection.
    pub fn remove_conn(&mut self, conn: ConnId) {
        todo!()
    }

    /// Number of (path, connection, kind) registrations.
    pub fn len(&self) -> usize {
        todo!()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// path -> connections watching it (for the wchp four-letter word).
    pub fn by_path(&self) -> BTreeMap<String, Vec<ConnId>> {
        todo!()
    }

    /// connection -> paths it watches (for wchc).
    pub fn by_conn(&self) -> BTreeMap<ConnId, Vec<String>> {
        todo!()
    }
}
