//! The ZooKeeper wire protocol: jute codec, frames, records.
//!
//! Architecture Invariant: pure. Never touches a socket; never trusts a length or a count
//! from the wire (every allocation is bounded by the bytes actually present).

pub mod types;

pub use types::*;
