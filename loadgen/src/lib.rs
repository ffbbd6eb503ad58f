//! zkrs-loadgen: a load generator for ZooKeeper-compatible servers (zkrs, Apache ZooKeeper).
//!
//! Code map:
//! - [`workload`]: settings, their text forms (command line and workload files), limits.
//! - [`keygen`]: key space layout, key distributions (uniform, zipfian), values.
//! - [`timing`]: open-loop intended send times; latency from the intended time.
//! - [`client`]: one session over the wire protocol (the server crate's codec), non-blocking.
//! - [`runner`]: the operation mix on worker threads (closed or open loop).
//! - [`fanout`], [`churn`]: the special workloads.
//! - [`setup`]: creating and deleting the key space.
//! - [`stats`], [`report`], [`progress`]: histograms, tables, JSON, .hgrm, the progress bar.
//! - [`sweep`]: the capacity sweep and its SVG chart.
//!
//! Architecture Invariant: every loop that sends requests or waits for replies is bounded
//! in time (a deadline) and in count (the run's window, `max_ops`, or the size of its input).

pub mod churn;
pub mod client;
pub mod fanout;
pub mod keygen;
pub mod progress;
pub mod report;
pub mod runner;
pub mod setup;
pub mod stats;
pub mod sweep;
pub mod timing;
pub mod workload;
