//! zkrs: a ZooKeeper-compatible coordination server on a thread-per-core core.

pub mod admin;
pub mod config;
pub mod proto;
pub mod server;
pub mod tree;
