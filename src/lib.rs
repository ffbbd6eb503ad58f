//! zkrs: a ZooKeeper-compatible coordination server on a thread-per-core core.

pub mod proto;
pub mod tree;
