//! Runs tests/zkcli.sh (Apache ZooKeeper's own zkCli.sh doing create/get/set/ls/stat,
//! watches, delete and deleteall) against the server under test.
//!
//! zkCli.sh comes from Debian's `zookeeper` package, which CI installs; without it this test
//! FAILS unless ZKRS_SKIP_ZKCLI=1 is set.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::TestServer;

const SCRIPT_LIMIT: Duration = Duration::from_secs(300);

#[test]
fn zkcli_script_passes() {
    let zkcli =
        std::env::var("ZKCLI").unwrap_or_else(|_| "/usr/share/zookeeper/bin/zkCli.sh".to_string());
    if !std::path::Path::new(&zkcli).exists() {
        if std::env::var("ZKRS_SKIP_ZKCLI").as_deref() == Ok("1") {
            eprintln!("zkCli.sh not found at {zkcli}; skipped because ZKRS_SKIP_ZKCLI=1");
            return;
        }
        panic!(
            "zkCli.sh not found at {zkcli}: install Debian's `zookeeper` package \
             (apt-get install zookeeper), set ZKCLI to its path, or set ZKRS_SKIP_ZKCLI=1"
        );
    }
    let server = TestServer::start();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/zkcli.sh");
    let mut child = Command::new("bash")
        .arg(script)
        .arg(&server.addr)
        .env("ZKCLI", &zkcli)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn bash tests/zkcli.sh");
    // Drain both pipes on threads so a chatty script cannot block on a full pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + SCRIPT_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for zkcli.sh") {
            break Some(status);
        }
        if Instant::now() > deadline {
            // The whole group: zkCli JVMs hold the output pipes open.
            let _ = Command::new("kill")
                .arg("--")
                .arg(format!("-{}", child.id()))
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => {
            assert!(
                stdout.contains("all checks passed"),
                "stdout:\n{stdout}\nstderr:\n{stderr}"
            )
        }
        Some(s) => panic!("tests/zkcli.sh failed with {s}\nstdout:\n{stdout}\nstderr:\n{stderr}"),
        None => {
            panic!("tests/zkcli.sh ran past {SCRIPT_LIMIT:?}\nstdout:\n{stdout}\nstderr:\n{stderr}")
        }
    }
}
