//! Client shards: one glommio executor per core, each accepting on the client port with
//! SO_REUSEPORT and owning its connections, their sessions' watch tables and a read-only
//! tree version.
//!
//! Architecture Invariant: a shard never blocks and never takes a lock on the request path;
//! it talks to the ordering core only through its channels.

pub mod notify;
pub mod shard;
