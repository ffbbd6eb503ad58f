//! Wiring: executors, channels, the ordering-core loop.

use crate::config::Config;

/// Runs the server until it is stopped (SIGTERM/SIGINT). Blocks the calling thread.
pub fn run(config: Config) -> std::io::Result<()> {
    let _ = config;
    todo!()
}
