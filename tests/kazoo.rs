//! Runs tests/kazoo_smoke.py: the Python client kazoo (recipes, watches, transactions, ACLs,
//! session close) against the server under test.
//!
//! kazoo comes from PyPI, which CI installs (`pip install kazoo`); without it this test
//! FAILS unless ZKRS_SKIP_KAZOO=1 is set.

mod common;
#[path = "common/ensemble.rs"]
mod ensemble;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;

const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

/// Whether kazoo can be used; panics with the install hint unless ZKRS_SKIP_KAZOO=1.
fn kazoo_available(python: &str) -> bool {
    let has_kazoo = Command::new(python)
        .args(["-c", "import kazoo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_kazoo {
        if std::env::var("ZKRS_SKIP_KAZOO").as_deref() == Ok("1") {
            eprintln!("kazoo is not installed; skipped because ZKRS_SKIP_KAZOO=1");
            return false;
        }
        panic!("the Python package kazoo is missing: pip install kazoo, or set ZKRS_SKIP_KAZOO=1");
    }
    true
}

/// Runs kazoo_smoke.py against `hosts` (a connect string) and asserts it passed.
fn run_smoke(python: &str, hosts: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kazoo_smoke.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(hosts)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3 tests/kazoo_smoke.py");
    let deadline = Instant::now() + SCRIPT_LIMIT;
    loop {
        if child.try_wait().expect("wait for kazoo_smoke.py").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kazoo_smoke.py ran past {SCRIPT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().expect("kazoo_smoke.py output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("all checks passed"),
        "kazoo_smoke.py failed against {hosts} ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[test]
fn kazoo_smoke_passes() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    if !kazoo_available(&python) {
        return;
    }
    let server = TestServer::start();
    run_smoke(&python, &server.addr);
}

/// The same script with kazoo connected to a 3-server zkrs ensemble (its clients land on
/// any of the servers: recipes and watches work across them).
#[test]
fn kazoo_smoke_passes_against_an_ensemble() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    if !kazoo_available(&python) {
        return;
    }
    let e = ensemble::Ensemble::start(3, "");
    run_smoke(&python, &e.addrs().join(","));
}
