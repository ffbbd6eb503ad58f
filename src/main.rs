//! The `zkrs` command: zkServer.sh's verbs (start, start-foreground, stop, restart, status,
//! version) over `Config` and `zkrs::server::run`, the offline file tools (log dump,
//! log truncate, snapshot dump, purge) over `zkrs::wal::tools`, and `export-zk` over
//! `zkrs::zkdata::migrate`.
//!
//! Exit codes: 0 success; 1 the verb failed (not running, failed to start or stop; for the
//! tools: the file is damaged or unreadable, or `log truncate` ran without `--yes`);
//! 2 invalid config (as ZooKeeper's `ExitCode.INVALID_CONFIG`) or invalid arguments;
//! 3 the server cannot write its txn log; 4 the server panicked (a bug: the log says where).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::num::NonZeroUsize;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use zkrs::admin;
use zkrs::config::{Config, ConfigError};
use zkrs::wal::tools::{self, Format, LogVerdict, SnapshotVerdict, ToolError};

#[global_allocator]
static GLOBAL: zkrs::alloc::Allocator = zkrs::alloc::Allocator;

/// How long `start` waits for the server to answer `srvr` before it gives up waiting.
const START_WAIT: Duration = Duration::from_secs(30);
/// How long `stop` waits for the process to exit after SIGTERM.
const STOP_WAIT: Duration = Duration::from_secs(30);
/// Connect and read limits of the `srvr` probe.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The most bytes read back from `srvr`.
const PROBE_REPLY_MAX_BYTES: u64 = 64 * 1024;

const EXIT_FAILED: u8 = 1;
const EXIT_INVALID_CONFIG: u8 = 2;
/// A panic anywhere in the server ends the process with this status.
const EXIT_PANIC: i32 = 4;
/// ZooKeeper's PurgeTxnLog refuses to keep fewer snapshots.
const PURGE_RETAIN_MIN: usize = 3;

#[derive(Parser)]
#[command(
    name = "zkrs",
    version = admin::VERSION_REVISION,
    about = "A ZooKeeper-compatible coordination server",
    long_about = "A ZooKeeper-compatible coordination server.\n\n\
        CFG is a zoo.cfg file; without one zkrs uses its embedded default \
        (client port 2181, data under ./data, every four-letter word enabled).\n\
        The pid file is <dataDir>/zookeeper_server.pid (or $ZOOPIDFILE); `start` sends the \
        server's output to <dataDir>/zookeeper.out (or $ZOO_LOG_DIR/zookeeper.out). \
        Logging: RUST_LOG (default info)."
)]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Run the server in this process, logging to stderr, until SIGTERM/SIGINT.
    #[command(name = "start-foreground")]
    StartForeground { config: Option<PathBuf> },
    /// Start the server in the background and wait until it answers.
    Start { config: Option<PathBuf> },
    /// Stop the background server (SIGTERM to the pid in the pid file) and wait for it.
    Stop { config: Option<PathBuf> },
    /// Stop, then start.
    Restart { config: Option<PathBuf> },
    /// Ask the server its mode (`srvr`), as zkServer.sh status.
    Status { config: Option<PathBuf> },
    /// Print the version, as zkServer.sh version.
    Version,
    /// Inspect or repair a txn log segment (as ZooKeeper's TxnLogToolkit).
    Log {
        #[command(subcommand)]
        action: LogAction,
    },
    /// Inspect a snapshot (as ZooKeeper's zkSnapShotToolkit).
    Snapshot {
        #[command(subcommand)]
        action: SnapshotAction,
    },
    /// Delete all but the COUNT newest snapshots and the log segments they need (as
    /// ZooKeeper's PurgeTxnLog / zkCleanup.sh). Safe while the server runs: files it adds
    /// meanwhile are kept, and the newest segment always stays.
    Purge {
        config: Option<PathBuf>,
        /// Snapshots to keep (at least 3).
        #[arg(short = 'n', long = "count", default_value = "3", value_parser = parse_retain_count)]
        count: NonZeroUsize,
    },
    /// Write zkrs's state (dataDir/zkrs-1) as an Apache ZooKeeper 3.8 data directory:
    /// snapshot.<last zxid> and the epoch files in <dataDir>/version-2 (or --to DIR), which
    /// ZooKeeper starts from. Stop the server first. Refused when the target holds a file
    /// of a later zxid.
    #[command(name = "export-zk")]
    ExportZk {
        config: Option<PathBuf>,
        /// The version-2 directory to write (default: <dataDir>/version-2).
        #[arg(long = "to")]
        to: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum LogAction {
    /// Print every record of a segment (log.<zxid hex>) and how its records end: clean end,
    /// torn tail (cut at start-up) or corruption (the server refuses to start). Exit code 1
    /// when the server would refuse the file.
    Dump {
        file: PathBuf,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Cut a segment at a byte offset and remove every later segment, as the server's
    /// refusal message for a corrupt log suggests. Discards data: stop the server first,
    /// and pass --yes (without it, only shows what would be lost).
    Truncate {
        file: PathBuf,
        offset: u64,
        /// Really discard the data.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Subcommand)]
enum SnapshotAction {
    /// Print a snapshot (snapshot.<zxid hex>): header, every node with its stat, sessions
    /// and the trailer check. Exit code 1 when the snapshot is damaged.
    Dump {
        file: PathBuf,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn parse_retain_count(text: &str) -> Result<NonZeroUsize, String> {
    let count: usize = text.parse().map_err(|_| format!("not a number: {text}"))?;
    if count < PURGE_RETAIN_MIN {
        return Err(format!(
            "count should be greater than or equal to {PURGE_RETAIN_MIN}"
        ));
    }
    NonZeroUsize::new(count).ok_or_else(|| "count must be positive".to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.verb {
        Verb::StartForeground { config } => start_foreground(config.as_deref()),
        Verb::Start { config } => start(config.as_deref()),
        Verb::Stop { config } => stop(config.as_deref()),
        Verb::Restart { config } => {
            let stopped = stop(config.as_deref());
            if stopped != ExitCode::SUCCESS {
                return stopped;
            }
            start(config.as_deref())
        }
        Verb::Status { config } => status(config.as_deref()),
        Verb::Version => {
            println!("{}", admin::version_line());
            ExitCode::SUCCESS
        }
        Verb::Log {
            action: LogAction::Dump { file, json },
        } => log_dump(&file, json),
        Verb::Log {
            action: LogAction::Truncate { file, offset, yes },
        } => log_truncate(&file, offset, yes),
        Verb::Snapshot {
            action: SnapshotAction::Dump { file, json },
        } => snapshot_dump(&file, json),
        Verb::Purge { config, count } => purge(config.as_deref(), count),
        Verb::ExportZk { config, to } => export_zk(config.as_deref(), to.as_deref()),
    }
}

fn format_of(json: bool) -> Format {
    if json {
        Format::Json
    } else {
        Format::Text
    }
}

/// Exit code 1 for a tool's error; an output error to a closed pipe is not worth a message.
fn tool_failed(error: &ToolError) -> ExitCode {
    match error {
        ToolError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        _ => eprintln!("{error}"),
    }
    ExitCode::from(EXIT_FAILED)
}

fn log_dump(file: &Path, json: bool) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = tools::dump_log(file, format_of(json), &mut out);
    let flushed = out.flush();
    match (result, flushed) {
        (Err(e), _) => tool_failed(&e),
        (Ok(_), Err(e)) => tool_failed(&ToolError::Output(e)),
        (Ok(verdict), Ok(())) if verdict.server_would_start() => ExitCode::SUCCESS,
        (Ok(LogVerdict::BadHeader), Ok(())) => {
            eprintln!("{}: not a valid zkrs txn log segment", file.display());
            ExitCode::from(EXIT_FAILED)
        }
        (Ok(_), Ok(())) => {
            eprintln!("{}: the txn log is corrupt", file.display());
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn snapshot_dump(file: &Path, json: bool) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let result = tools::dump_snapshot(file, format_of(json), &mut out);
    let flushed = out.flush();
    match (result, flushed) {
        (Err(e), _) => tool_failed(&e),
        (Ok(_), Err(e)) => tool_failed(&ToolError::Output(e)),
        (Ok(SnapshotVerdict::Valid), Ok(())) => ExitCode::SUCCESS,
        (Ok(SnapshotVerdict::Damaged), Ok(())) => {
            eprintln!("{}: the snapshot is damaged", file.display());
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn log_truncate(file: &Path, offset: u64, yes: bool) -> ExitCode {
    let plan = match tools::plan_truncate(file, offset) {
        Ok(plan) => plan,
        Err(e) => return tool_failed(&e),
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = tools::describe_truncate(&plan, &mut out) {
        return tool_failed(&ToolError::Output(e));
    }
    if !yes {
        eprintln!(
            "refusing to discard data without --yes; stop the server, then run: zkrs log truncate {} {offset} --yes",
            plan.file.display()
        );
        return ExitCode::from(EXIT_FAILED);
    }
    match tools::truncate(&plan) {
        Ok(removed) => {
            let _ = writeln!(
                out,
                "truncated {} at offset {offset}{}",
                plan.file.display(),
                if removed.is_empty() {
                    String::new()
                } else {
                    format!("; removed {} later segment(s)", removed.len())
                }
            );
            ExitCode::SUCCESS
        }
        Err(e) => tool_failed(&e),
    }
}

fn export_zk(path: Option<&Path>, to: Option<&Path>) -> ExitCode {
    eprintln!("Using config: {}", describe(path));
    let (config, _) = match load_or_exit(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    // The files must not change under the export (recovery may cut a live log's tail).
    let address = config.client_connect_address();
    // A server that has just exited can leave its listening socket for a few milliseconds
    // (io_uring tears it down after the process is gone): only a port that keeps
    // accepting for a second is a running server.
    let listening = (0..5).all(|attempt| {
        if attempt > 0 {
            std::thread::sleep(Duration::from_millis(250));
        }
        TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
    });
    if listening {
        eprintln!(
            "export-zk: a server is listening on {address} (this config's client port): stop \
             it first (zkrs stop, or zkServer.sh stop for Apache ZooKeeper)"
        );
        return ExitCode::from(EXIT_FAILED);
    }
    if let Some(pid) = read_pid(&pid_file(&config)).filter(|pid| process_alive(*pid)) {
        eprintln!(
            "export-zk: the server of {} is running (pid {pid}): stop it first",
            pid_file(&config).display()
        );
        return ExitCode::from(EXIT_FAILED);
    }
    match zkrs::zkdata::migrate::export(&config, to) {
        Ok(done) => {
            println!(
                "wrote {} (last zxid 0x{:x}, {} znodes, {} sessions; acceptedEpoch {}, \
                 currentEpoch {})",
                done.snapshot.display(),
                done.last_zxid,
                done.znodes,
                done.sessions,
                done.accepted_epoch,
                done.current_epoch
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("export-zk: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

fn purge(path: Option<&Path>, count: NonZeroUsize) -> ExitCode {
    eprintln!("Using config: {}", describe(path));
    let (config, _) = match load_or_exit(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let dirs = zkrs::server::persistence::wal_dirs(&config);
    let mut out = std::io::stdout().lock();
    match tools::purge(&dirs, count, &mut out) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => tool_failed(&e),
    }
}

/// The config file's settings, or the embedded default when no file is named.
fn load_config(path: Option<&Path>) -> Result<(Config, Vec<String>), ConfigError> {
    match path {
        Some(path) => Config::load(path),
        None => Ok((Config::default(), Vec::new())),
    }
}

/// Loads the config for a verb, printing the error and giving exit code 2 when invalid.
fn load_or_exit(path: Option<&Path>) -> Result<(Config, Vec<String>), ExitCode> {
    load_config(path).map_err(|e| {
        eprintln!("Invalid config, exiting abnormally: {e}");
        ExitCode::from(EXIT_INVALID_CONFIG)
    })
}

fn describe(path: Option<&Path>) -> String {
    match path {
        Some(path) => path.display().to_string(),
        None => "(embedded default)".to_string(),
    }
}

fn start_foreground(path: Option<&Path>) -> ExitCode {
    zkrs::server::disable_transparent_huge_pages();
    let (config, warnings) = match load_or_exit(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    install_panic_hook();
    log::info!("{}", admin::version_line());
    log::info!("Reading configuration from: {}", describe(path));
    for warning in &warnings {
        log::warn!("{warning}");
    }
    match zkrs::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("server failed: {e}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Ends the process on any panic, on any thread, after logging it. The executors' threads are
/// never joined: without this, a panicked ordering core would leave shards that answer reads
/// and never a write, and a panicked shard would drop its clients silently.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let location = info.location().map(|l| l.to_string());
        log::error!(
            "{}; stopping",
            describe_panic(thread.name(), location.as_deref(), info.payload())
        );
        log::logger().flush();
        // SAFETY: _exit takes no pointers; it ends the process at once, without running
        // exit handlers while the other threads still run.
        unsafe { libc::_exit(EXIT_PANIC) };
    }));
}

/// The log line of a panic: thread, location and message (a `&str` or `String` payload).
fn describe_panic(
    thread: Option<&str>,
    location: Option<&str>,
    payload: &(dyn std::any::Any + Send),
) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    format!(
        "thread '{}' panicked at {}: {message}",
        thread.unwrap_or("<unnamed>"),
        location.unwrap_or("<unknown location>")
    )
}

/// `<dataDir>/zookeeper_server.pid`, or `$ZOOPIDFILE` as zkServer.sh.
fn pid_file(config: &Config) -> PathBuf {
    match std::env::var_os("ZOOPIDFILE") {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => config.data_dir.join("zookeeper_server.pid"),
    }
}

/// Where `start` sends the server's stdout and stderr.
fn out_file(config: &Config) -> PathBuf {
    match std::env::var_os("ZOO_LOG_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("zookeeper.out"),
        _ => config.data_dir.join("zookeeper.out"),
    }
}

/// The pid in a pid file; None when missing or not a plausible pid.
fn read_pid(path: &Path) -> Option<libc::pid_t> {
    let text = std::fs::read_to_string(path).ok()?;
    let pid = text.trim().parse::<libc::pid_t>().ok()?;
    // Never signal process groups (0, negative) or init.
    (pid > 1).then_some(pid)
}

fn process_alive(pid: libc::pid_t) -> bool {
    // SAFETY: kill with signal 0 only checks that `pid` (> 1) exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn flush_stdout() {
    let _ = std::io::stdout().flush();
}

fn start(path: Option<&Path>) -> ExitCode {
    eprintln!("Using config: {}", describe(path));
    let (config, _) = match load_or_exit(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let pid_path = pid_file(&config);
    let out_path = out_file(&config);
    print!("Starting zookeeper ... ");
    flush_stdout();
    if let Some(pid) = read_pid(&pid_path) {
        if process_alive(pid) {
            println!("already running as process {pid}.");
            return ExitCode::from(EXIT_FAILED);
        }
    }
    for dir in [
        pid_path.parent(),
        out_path.parent(),
        Some(config.data_dir.as_path()),
    ]
    .into_iter()
    .flatten()
    .filter(|d| !d.as_os_str().is_empty())
    {
        if let Err(e) = std::fs::create_dir_all(dir) {
            println!("FAILED TO START");
            eprintln!("cannot create {}: {e}", dir.display());
            return ExitCode::from(EXIT_FAILED);
        }
    }
    let child = spawn_daemon(path, &out_path);
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            println!("SERVER DID NOT START");
            eprintln!("{e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    // zkServer.sh writes the pid without a newline.
    if let Err(e) = std::fs::write(&pid_path, child.id().to_string()) {
        println!("FAILED TO WRITE PID");
        eprintln!("{}: {e}", pid_path.display());
        return ExitCode::from(EXIT_FAILED);
    }
    let address = config.client_connect_address();
    let deadline = Instant::now() + START_WAIT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            println!("FAILED TO START");
            eprintln!("the server exited ({status}); see {}", out_path.display());
            let _ = std::fs::remove_file(&pid_path);
            return ExitCode::from(EXIT_FAILED);
        }
        // An ensemble member answers srvr before it serves (until a quorum is up).
        let answered = srvr(address).is_ok_and(|reply| {
            reply.starts_with("Zookeeper version:") || reply.starts_with(admin::NOT_SERVING)
        });
        if answered && matches!(child.try_wait(), Ok(None)) {
            println!("STARTED");
            return ExitCode::SUCCESS;
        }
        if Instant::now() >= deadline {
            // Running but silent: report as zkServer.sh does (it only checks the process).
            println!("STARTED");
            eprintln!(
                "warning: not answering on {address} after {} s; see {}",
                START_WAIT.as_secs(),
                out_path.display()
            );
            return ExitCode::SUCCESS;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Re-runs this executable as `start-foreground` in a new session, detached from the
/// terminal, output to `out_path`.
fn spawn_daemon(config: Option<&Path>, out_path: &Path) -> std::io::Result<std::process::Child> {
    let exe = std::env::current_exe()?;
    let out = std::fs::File::create(out_path)?;
    let err = out.try_clone()?;
    let mut command = Command::new(exe);
    command
        .arg("start-foreground")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    if let Some(config) = config {
        command.arg(std::path::absolute(config)?);
    }
    // SAFETY: setsid is async-signal-safe; the closure allocates nothing.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    command.spawn()
}

fn stop(path: Option<&Path>) -> ExitCode {
    eprintln!("Using config: {}", describe(path));
    let (config, _) = match load_or_exit(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let pid_path = pid_file(&config);
    print!("Stopping zookeeper ... ");
    flush_stdout();
    if !pid_path.is_file() {
        println!(
            "no zookeeper to stop (could not find file {})",
            pid_path.display()
        );
        return ExitCode::SUCCESS;
    }
    let Some(pid) = read_pid(&pid_path) else {
        println!("FAILED TO STOP (no valid pid in {})", pid_path.display());
        return ExitCode::from(EXIT_FAILED);
    };
    // SAFETY: pid > 1 (read_pid), so this signals one process.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ESRCH) {
            println!("FAILED TO STOP ({error})");
            return ExitCode::from(EXIT_FAILED);
        }
    }
    let deadline = Instant::now() + STOP_WAIT;
    while process_alive(pid) {
        if Instant::now() >= deadline {
            println!("FAILED TO STOP (process {pid} still running)");
            return ExitCode::from(EXIT_FAILED);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = std::fs::remove_file(&pid_path);
    println!("STOPPED");
    ExitCode::SUCCESS
}

fn status(path: Option<&Path>) -> ExitCode {
    eprintln!("Using config: {}", describe(path));
    let (config, _) = match load_or_exit(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let shown_address = match config.client_port_address {
        Some(ip) => ip.to_string(),
        None => "localhost".to_string(),
    };
    println!(
        "Client port found: {}. Client address: {}. Client SSL: false.",
        config.client_port, shown_address
    );
    let mode = srvr(config.client_connect_address())
        .ok()
        .and_then(|reply| {
            reply
                .lines()
                .find(|l| l.starts_with("Mode:"))
                .map(str::to_string)
        });
    match mode {
        Some(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        None => {
            println!("Error contacting service. It is probably not running.");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

/// Sends `srvr` and reads the reply until the server closes the connection.
fn srvr(address: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, PROBE_TIMEOUT)?;
    stream.set_read_timeout(Some(PROBE_TIMEOUT))?;
    stream.set_write_timeout(Some(PROBE_TIMEOUT))?;
    stream.write_all(b"srvr")?;
    let mut reply = Vec::new();
    stream.take(PROBE_REPLY_MAX_BYTES).read_to_end(&mut reply)?;
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

#[cfg(test)]
mod tests {
    use super::describe_panic;

    #[test]
    fn a_panic_is_described_with_thread_location_and_message() {
        let text = describe_panic(
            Some("zkrs-ordering"),
            Some("src/server/ordering.rs:10:5"),
            &"boom",
        );
        assert_eq!(
            text,
            "thread 'zkrs-ordering' panicked at src/server/ordering.rs:10:5: boom"
        );
        let owned = String::from("index 3 out of range");
        assert_eq!(
            describe_panic(None, None, &owned),
            "thread '<unnamed>' panicked at <unknown location>: index 3 out of range"
        );
        assert_eq!(
            describe_panic(Some("zkrs-shard-1"), Some("a.rs:1:1"), &42u32),
            "thread 'zkrs-shard-1' panicked at a.rs:1:1: (no message)"
        );
    }

    #[test]
    fn the_payload_of_a_real_panic_is_described() {
        let caught = std::panic::catch_unwind(|| {
            let n = std::hint::black_box(7);
            panic!("bad zxid {n}")
        })
        .expect_err("it panicked");
        assert_eq!(
            describe_panic(Some("t"), Some("x.rs:2:3"), caught.as_ref()),
            "thread 't' panicked at x.rs:2:3: bad zxid 7"
        );
    }
}
