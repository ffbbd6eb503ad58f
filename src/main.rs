//! The `zkrs` command: zkServer.sh's verbs (start, start-foreground, stop, restart, status,
//! version) over `Config` and `zkrs::server::run`.
//!
//! Exit codes: 0 success; 1 the verb failed (not running, failed to start or stop);
//! 2 invalid config (as ZooKeeper's `ExitCode.INVALID_CONFIG`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use zkrs::admin;
use zkrs::config::{Config, ConfigError};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    let (config, warnings) = match load_or_exit(path) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
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
        let answered = srvr(address).is_ok_and(|reply| reply.starts_with("Zookeeper version:"));
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
