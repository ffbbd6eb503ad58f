//! zkrs: a ZooKeeper-compatible coordination server on a thread-per-core core.

pub mod admin;
pub mod admin_glue;
pub mod admin_http;
pub mod alloc;
pub mod config;
pub mod http;
pub mod metrics;
pub mod net;
pub mod proto;
pub mod sasl;
pub mod server;
pub mod session;
/// The deterministic ensemble simulation (tests only).
#[cfg(test)]
pub mod sim;
pub mod tls;
pub mod tree;
pub mod wal;
pub mod zab;
pub mod zkdata;
