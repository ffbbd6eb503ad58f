//! Short real runs of the `zkrs-loadgen` binary against a server.
//!
//! The server: `ZKRS_LOADGEN_TARGET=host:port` if set (e.g. an Apache ZooKeeper 3.8 started
//! with `java-zk.sh`), otherwise a zkrs server this test starts from the `zkrs` binary in
//! the target directory (`cargo build -p zkrs --bin zkrs` first, a no-op when up to date).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use zkrs::proto::{ErrorCode, PathWatchRequest, Request};
use zkrs_loadgen::client::{Conn, ConnectOptions};

const LOADGEN: &str = env!("CARGO_BIN_EXE_zkrs-loadgen");
const RUN_TIMEOUT: Duration = Duration::from_secs(90);
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(30);

/// A server this test started; killed when dropped.
struct Server {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("loadgen sits in the workspace")
        .to_path_buf()
}

/// Where `cargo build -p zkrs --bin zkrs` puts the server binary.
fn zkrs_binary_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        let dir = PathBuf::from(dir);
        let dir = if dir.is_absolute() {
            dir
        } else {
            workspace_root().join(dir)
        };
        candidates.push(dir.join("debug").join("zkrs"));
    }
    // This test runs from <target>/debug/deps/.
    if let Ok(exe) = std::env::current_exe() {
        if let Some(debug) = exe.parent().and_then(Path::parent) {
            candidates.push(debug.join("zkrs"));
        }
    }
    candidates.push(workspace_root().join("target").join("debug").join("zkrs"));
    candidates
}

/// Builds the server (a no-op when it is up to date, so the test never runs a stale
/// binary) and returns its path.
fn build_zkrs() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let status = Command::new(cargo)
        .args(["build", "--quiet", "-p", "zkrs", "--bin", "zkrs"])
        .current_dir(workspace_root())
        .status()
        .expect("running cargo build for the zkrs server");
    assert!(
        status.success(),
        "building the zkrs server failed; set ZKRS_LOADGEN_TARGET=host:port to test against another server"
    );
    zkrs_binary_candidates()
        .into_iter()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no zkrs binary at any of {:?} after building it",
                zkrs_binary_candidates()
            )
        })
}

/// True when the server answers the four-letter word `ruok` with `imok`.
fn answers_ruok(addr: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"ruok").is_err() {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply == "imok"
}

fn start_zkrs() -> (Server, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    start_zkrs_in(dir, free_port())
}

/// Starts zkrs on `port` with its data in `dir` (kept from an earlier start, if any).
fn start_zkrs_in(dir: tempfile::TempDir, port: u16) -> (Server, String) {
    let binary = build_zkrs();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("data directory");
    let cfg = dir.path().join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "clientPort={port}\ndataDir={}\n4lw.commands.whitelist=*\nadmin.enableServer=false\n",
            data.display()
        ),
    )
    .expect("writing the config");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.path().join("server.log"))
        .expect("log file");
    let child = Command::new(&binary)
        .arg("start-foreground")
        .arg(&cfg)
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
    let mut server = Server { child, _dir: dir };
    let addr = format!("127.0.0.1:{port}");
    let deadline = Instant::now() + SERVER_START_TIMEOUT;
    while !answers_ruok(&addr) {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log =
                std::fs::read_to_string(server._dir.path().join("server.log")).unwrap_or_default();
            panic!("zkrs exited with {status} before serving; its log:\n{log}");
        }
        assert!(
            Instant::now() < deadline,
            "zkrs did not answer ruok on {addr} within {SERVER_START_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, addr)
}

/// Runs the loadgen with `args`, bounded by RUN_TIMEOUT; returns (exit code, stdout, stderr).
fn loadgen(args: &[&str]) -> (i32, String, String) {
    let mut child = Command::new(LOADGEN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting zkrs-loadgen");
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for zkrs-loadgen") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("zkrs-loadgen {args:?} ran over {RUN_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    (status.code().unwrap_or(-1), stdout, stderr)
}

fn run_json(args: &[&str], json_path: &Path) -> Value {
    let mut all: Vec<&str> = args.to_vec();
    let json = json_path.to_str().expect("utf-8 temp path");
    all.extend(["--json", json, "--quiet"]);
    let (code, stdout, stderr) = loadgen(&all);
    assert_eq!(
        code, 0,
        "zkrs-loadgen {all:?} exited {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let text = std::fs::read_to_string(json_path).expect("the --json file");
    serde_json::from_str(&text).expect("valid JSON")
}

fn prefix_exists(addr: &str, prefix: &str) -> bool {
    let mut conn: Conn<()> = Conn::connect(addr, &ConnectOptions::default()).expect("a session");
    let request = Request::Exists(PathWatchRequest {
        path: prefix.to_string(),
        watch: false,
    });
    let (header, _) = conn
        .call(&request, Duration::from_secs(10))
        .expect("exists");
    conn.close(Duration::from_secs(5));
    header.err != ErrorCode::NoNode.code()
}

/// The tests that start servers run one at a time: the reconnect test frees its port while
/// its server is down, and a server another test started meanwhile could take it (the
/// loadgen would then reconnect to the wrong server).
static SERVERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn servers_lock() -> std::sync::MutexGuard<'static, ()> {
    SERVERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn short_real_runs() {
    let _serial = servers_lock();
    let (_server, target) = match std::env::var("ZKRS_LOADGEN_TARGET") {
        Ok(target) if !target.is_empty() => (None, target),
        _ => {
            let (server, addr) = start_zkrs();
            (Some(server), addr)
        }
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let prefix = format!("/zkrs-loadgen-test-{}", std::process::id());

    // 1. A closed-loop mix of every operation, ended by an operation count rather than a
    // clock: on a shared CI machine one slow fsync can hold every session's next write
    // (and the reads queued behind it) for over a second, and a one-second window then
    // measures nothing (CI saw `ok: 0`).
    let mix = "get=40,set=15,create=8,create-ephemeral=5,create-sequential=5,delete=10,exists=7,children=5,multi=5";
    let report = run_json(
        &[
            "run",
            "--hosts",
            &target,
            "--mix",
            mix,
            "--keys",
            "200",
            "--connections",
            "4",
            "--outstanding",
            "2",
            "--max-ops",
            "3000",
            "--duration",
            "60s",
            "--warmup",
            "0s",
            "--prefix",
            &prefix,
        ],
        &dir.path().join("mix.json"),
    );
    assert_eq!(report["errors"], 0, "errors in {report:#}");
    assert!(report["ok"].as_u64().unwrap() > 0, "{report:#}");
    for op in [
        "get",
        "set",
        "create",
        "create-ephemeral",
        "create-sequential",
        "delete",
        "exists",
        "children",
        "multi",
    ] {
        let ok = report["ops"][op]["ok"].as_u64().unwrap_or(0);
        assert!(ok > 0, "no successful {op} in {report:#}");
        let p99 = report["ops"][op]["latency_ms"]["p99"].as_f64().unwrap();
        assert!(p99 > 0.0, "{op} p99 {p99}");
    }
    assert!(report["cpu"]["user_s"].as_f64().unwrap() >= 0.0);
    assert!(
        !prefix_exists(&target, &prefix),
        "{prefix} left behind after the run"
    );

    // 2. Open loop at a fixed rate: the achieved rate is the offered one.
    let report = run_json(
        &[
            "run",
            "--hosts",
            &target,
            "--mix",
            "get=80,set=20",
            "--rate",
            "400",
            "--keys",
            "100",
            "--connections",
            "4",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--prefix",
            &prefix,
        ],
        &dir.path().join("open.json"),
    );
    assert_eq!(report["errors"], 0, "errors in {report:#}");
    let ok = report["ok"].as_u64().unwrap();
    assert!(
        (360..=440).contains(&ok),
        "offered 400 in 1s, completed {ok}: {report:#}"
    );
    assert!(report["send_lag_ms"]["p50"].is_number(), "{report:#}");

    // 3. Watch fan-out: every watcher is notified each round.
    let report = run_json(
        &[
            "run",
            "--hosts",
            &target,
            "--kind",
            "fanout",
            "--watchers",
            "20",
            "--duration",
            "3s",
            "--warmup",
            "200ms",
            "--prefix",
            &prefix,
        ],
        &dir.path().join("fanout.json"),
    );
    assert_eq!(report["errors"], 0, "errors in {report:#}");
    let rounds = report["ops"]["fanout"]["ok"].as_u64().unwrap();
    assert!(rounds > 0, "{report:#}");
    assert_eq!(report["ops"]["notify"]["ok"].as_u64().unwrap(), 20 * rounds);

    // 4. Session churn: every ephemeral node goes with its session.
    let report = run_json(
        &[
            "run",
            "--hosts",
            &target,
            "--kind",
            "churn",
            "--rate",
            "40",
            "--connections",
            "2",
            "--duration",
            "1s",
            "--warmup",
            "200ms",
            "--prefix",
            &prefix,
        ],
        &dir.path().join("churn.json"),
    );
    assert_eq!(report["errors"], 0, "errors in {report:#}");
    assert!(
        report["ops"]["session-cycle"]["ok"].as_u64().unwrap() >= 30,
        "{report:#}"
    );
    assert!(
        !prefix_exists(&target, &prefix),
        "{prefix} left behind after the runs"
    );
}

#[test]
fn bad_settings_exit_2_with_a_clear_message() {
    let (code, _, stderr) = loadgen(&["run", "--mix", "get=90,sett=10"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("unknown operation `sett`"), "{stderr}");
    let (code, _, stderr) = loadgen(&["run", "--duration", "10"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--duration: `10` needs a unit (us, ms, s, m, h)"),
        "{stderr}"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.toml");
    std::fs::write(&file, "keys = 10\nconections = 4\n").unwrap();
    let (code, _, stderr) = loadgen(&["run", "--workload", file.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("line 2: unknown setting `conections`"),
        "{stderr}"
    );
    // Nothing listens on port 1: the connect error names the host.
    let (code, _, stderr) = loadgen(&["run", "--hosts", "127.0.0.1:1", "--duration", "1s"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
}

#[test]
fn show_workload_round_trips_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("w.toml");
    std::fs::write(
        &file,
        "mix = \"get=50,multi=50\"\nkey_distribution = zipfian:1.1\nrate = 2k\n",
    )
    .unwrap();
    let (code, stdout, stderr) = loadgen(&[
        "show-workload",
        "-w",
        file.to_str().unwrap(),
        "--connections",
        "3",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("mix = \"get=50,multi=50\""), "{stdout}");
    assert!(
        stdout.contains("key_distribution = \"zipfian:1.1\""),
        "{stdout}"
    );
    assert!(stdout.contains("connections = \"3\""), "{stdout}");
    assert!(stdout.contains("rate = \"2000\""), "{stdout}");
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &stdout).unwrap();
    let (code, stdout_again, _) = loadgen(&["show-workload", "-w", again.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert_eq!(stdout_again, stdout);
}

/// `--reconnect` and `--timeline`: the server dies (SIGKILL) in the middle of an open-loop
/// run and comes back on the same port with its data; the sessions reconnect and writes go
/// on; the timeline shows the completions, the lost requests and the reconnects.
#[test]
fn reconnect_after_the_server_dies_and_timeline() {
    let _serial = servers_lock();
    let port = free_port();
    let (server, addr) = start_zkrs_in(tempfile::tempdir().expect("a temporary directory"), port);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let prefix = format!("/zkrs-loadgen-reconnect-{}", std::process::id());
    let timeline = dir.path().join("timeline.csv");
    let timeline_arg = timeline.to_str().expect("utf-8 temp path").to_string();
    let args: Vec<String> = [
        "run",
        "--hosts",
        &addr,
        "--mix",
        "set=100",
        "--keys",
        "50",
        "--rate",
        "300",
        "--connections",
        "2",
        "--duration",
        "4s",
        "--warmup",
        "0s",
        "--reconnect",
        "--session-timeout",
        "4s",
        "--prefix",
        &prefix,
        "--quiet",
        "--timeline",
        &timeline_arg,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let runner = std::thread::spawn(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        loadgen(&args)
    });
    // Setup (50 creates) and a second of writes, then the server dies.
    std::thread::sleep(Duration::from_millis(1500));
    let mut server = server;
    let _ = server.child.kill();
    let _ = server.child.wait();
    let data = std::mem::replace(
        &mut server._dir,
        tempfile::tempdir().expect("a temporary directory"),
    );
    drop(server);
    // The dead server's listening socket can outlive it for a moment (io_uring teardown).
    let deadline = Instant::now() + SERVER_START_TIMEOUT;
    while TcpListener::bind(("0.0.0.0", port)).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let (_server, _) = start_zkrs_in(data, port);
    let (code, stdout, stderr) = runner.join().expect("the loadgen thread");
    // Requests in flight when the server died count as ConnectionLost: exit status 1.
    assert!(
        code == 0 || code == 1,
        "exit {code}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let text = std::fs::read_to_string(&timeline).expect("the timeline file");
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("unix_us,what,outcome,latency_us,session")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 5), "{text}");
    let times: Vec<u64> = rows
        .iter()
        .map(|r| r[0].parse().expect("unix_us"))
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "timeline not in time order"
    );
    let reconnects: Vec<&Vec<&str>> = rows.iter().filter(|r| r[1] == "reconnect").collect();
    assert!(
        !reconnects.is_empty() && reconnects.iter().all(|r| r[2] == addr),
        "no reconnect in the timeline\nstderr:\n{stderr}"
    );
    let last_reconnect: u64 = reconnects.last().expect("a reconnect")[0].parse().unwrap();
    let ok_after = rows
        .iter()
        .filter(|r| r[1] == "set" && r[2] == "ok")
        .filter(|r| r[0].parse::<u64>().unwrap() > last_reconnect)
        .count();
    assert!(
        ok_after > 100,
        "only {ok_after} writes after the reconnect\n{stderr}"
    );
    assert!(
        stderr.contains("longest gap between successful operations"),
        "{stderr}"
    );
}
