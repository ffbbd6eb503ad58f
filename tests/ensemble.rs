//! Ensemble configurations (`server.N` lines) started as real processes.

mod common;
#[allow(dead_code)]
#[path = "common/durable.rs"]
mod durable;

use durable::ServerDir;

/// Until zkrs serves ensembles, a zoo.cfg naming one must not start three separate
/// standalone databases behind one connect string: the server refuses, says why, and
/// serves nothing (exit code 1, no panic).
#[test]
fn ensemble_config_is_refused_until_ensembles_are_served() {
    let dir = ServerDir::new(
        "server.1=127.0.0.1:2888:3888\n\
         server.2=127.0.0.1:2889:3889\n\
         server.3=127.0.0.1:2890:3890\n",
    );
    std::fs::write(dir.data_dir().join("myid"), "2\n").expect("write myid");
    let (status, log) = dir.start_refused();
    assert_eq!(status.code(), Some(1), "exit status; log:\n{log}");
    assert!(
        log.contains("does not serve ensembles yet")
            && log.contains("server.1, server.2, server.3"),
        "no clear refusal in:\n{log}"
    );
    assert!(!log.contains("panicked"), "panic:\n{log}");
    assert!(
        !dir.files_dir().join("log.1").exists(),
        "the refused server wrote a txn log"
    );
}

/// One `server.N` line is not an ensemble (ZooKeeper runs standalone then, with a warning).
#[test]
fn single_server_line_still_runs_standalone() {
    let dir = ServerDir::new("server.1=127.0.0.1:2888:3888\n");
    std::fs::write(dir.data_dir().join("myid"), "1\n").expect("write myid");
    let server = dir.start();
    assert!(server.last_zxid() >= 0);
    server.stop();
}
