//! Runs tests/kazoo_smoke.py: the Python client kazoo (recipes, watches, transactions, ACLs,
//! session close) against the server under test.
//!
//! kazoo comes from PyPI, which CI installs (`pip install kazoo`); without it this test
//! FAILS unless ZKRS_SKIP_KAZOO=1 is set.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;

const SCRIPT_LIMIT: Duration = Duration::from_secs(120);

#[test]
fn kazoo_smoke_passes() {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string());
    let has_kazoo = Command::new(&python)
        .args(["-c", "import kazoo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_kazoo {
        if std::env::var("ZKRS_SKIP_KAZOO").as_deref() == Ok("1") {
            eprintln!("kazoo is not installed; skipped because ZKRS_SKIP_KAZOO=1");
            return;
        }
        panic!("the Python package kazoo is missing: pip install kazoo, or set ZKRS_SKIP_KAZOO=1");
    }
    let server = TestServer::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/kazoo_smoke.py");
    let mut child = Command::new(&python)
        .arg(script)
        .arg(&server.addr)
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
        "kazoo_smoke.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}
