//! Shared harness for the integration tests.
//!
//! Every test drives a real server over TCP, either the `zkrs` binary of this package (started
//! per test on a free loopback port) or, when `ZKRS_TEST_TARGET=host:port` is set, an external
//! server that all tests share. The external mode is how the expectations are validated against
//! Apache ZooKeeper 3.8; such a server must be configured like [`TestServer::start`] does
//! (tickTime small, `4lw.commands.whitelist=*`, `extendedTypesEnabled=true`, container check
//! interval 100 ms, super digest for [`SUPER_AUTH`]). Tests never assume a clean tree: each one
//! works under its own [`unique_prefix`].
//!
//! Nothing here uses the server crate's own code: the raw protocol client in [`raw`] is written
//! independently from the jute definitions, so a bug in the server's codec cannot hide itself.

#![allow(dead_code)]

pub mod javazk;
pub mod raw;

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use zookeeper_client::{Acls, Client, CreateMode, CreateOptions};

/// Upper bound for any single awaited operation in a test.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);

/// tickTime of a server started by the harness (min/max session timeout are 2 and 20 ticks).
pub const TICK_MS: u64 = 200;

/// `user:password` that the harness configures as the super user
/// (`DigestAuthenticationProvider.superDigest=super:<SUPER_DIGEST>`).
pub const SUPER_AUTH: &str = "super:superpw";
/// base64(sha1("super:superpw")).
pub const SUPER_DIGEST: &str = "g9oN2HttPfn8MMWJZ2r45Np/LIA=";

/// Awaits a future with [`OP_TIMEOUT`], panicking with the expression and location on timeout.
macro_rules! t {
    ($e:expr) => {
        match ::tokio::time::timeout($crate::common::OP_TIMEOUT, $e).await {
            Ok(v) => v,
            Err(_) => panic!("timed out at {}:{}: {}", file!(), line!(), stringify!($e)),
        }
    };
}

/// How long a started server may take to serve its first session.
const START_LIMIT: Duration = Duration::from_secs(10);

enum StartError {
    /// Worth another try on a fresh port (the server exited, e.g. the port was taken).
    Retry(String),
    Fatal(String),
}

/// A server under test: either a child process started here or an external one.
pub struct TestServer {
    /// `host:port` of the client port.
    pub addr: String,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
}

impl TestServer {
    /// Starts (or attaches to) a server; see the module docs.
    pub fn start() -> TestServer {
        Self::start_with(&[])
    }

    /// As `start`, with extra zoo.cfg lines (later keys win) for a locally started server.
    pub fn start_with(extra: &[&str]) -> TestServer {
        if let Ok(target) = std::env::var("ZKRS_TEST_TARGET") {
            let target = target.trim().to_string();
            assert!(!target.is_empty(), "ZKRS_TEST_TARGET is set but empty");
            let server = TestServer {
                addr: target,
                child: None,
                dir: None,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while four_letter_opt(&server.addr, "ruok").as_deref() != Some("imok")
                || !raw::try_session(&server.addr)
            {
                assert!(
                    Instant::now() < deadline,
                    "external server ZKRS_TEST_TARGET={} does not answer ruok or grant a session",
                    server.addr
                );
                std::thread::sleep(Duration::from_millis(100));
            }
            return server;
        }
        let mut last_error = String::new();
        // A free port is found by binding port 0 and releasing it; another process may grab it
        // in between, so a start that fails early is retried on a fresh port.
        for _ in 0..3 {
            match Self::spawn_local(extra) {
                Ok(server) => return server,
                Err(StartError::Retry(e)) => last_error = e,
                Err(StartError::Fatal(e)) => panic!("could not start zkrs: {e}"),
            }
        }
        panic!("could not start zkrs: {last_error}");
    }

    fn spawn_local(extra: &[&str]) -> Result<TestServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("zkrs-test-")
            .tempdir()
            .map_err(|e| StartError::Fatal(format!("tempdir: {e}")))?;
        let port = free_port();
        let data_dir = dir.path().join("data");
        std::fs::create_dir_all(&data_dir).map_err(|e| StartError::Fatal(format!("mkdir: {e}")))?;
        let shards = std::env::var("ZKRS_TEST_SHARDS").unwrap_or_else(|_| "2".to_string());
        let cfg = format!(
            "tickTime={TICK_MS}\n\
             initLimit=10\n\
             syncLimit=5\n\
             dataDir={}\n\
             clientPort={port}\n\
             maxClientCnxns=0\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=*\n\
             extendedTypesEnabled=true\n\
             znode.container.checkIntervalMs=100\n\
             DigestAuthenticationProvider.superDigest=super:{SUPER_DIGEST}\n\
             preAllocSize=1024\n\
             zkrs.shards={shards}\n{}",
            data_dir.display(),
            extra
                .iter()
                .map(|line| format!("{line}\n"))
                .collect::<String>()
        );
        let cfg_path = dir.path().join("zoo.cfg");
        std::fs::write(&cfg_path, cfg)
            .map_err(|e| StartError::Fatal(format!("write zoo.cfg: {e}")))?;
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| StartError::Fatal(format!("log file: {e}")))?;
        let log_err = log
            .try_clone()
            .map_err(|e| StartError::Fatal(format!("log file: {e}")))?;
        // ZKRS_TEST_SERVER_BIN swaps in another server started the same way, e.g. Apache
        // ZooKeeper's `zkServer.sh` (start-foreground <cfg>), to check the harness itself.
        let bin = std::env::var("ZKRS_TEST_SERVER_BIN")
            .unwrap_or_else(|_| env!("CARGO_BIN_EXE_zkrs").to_string());
        let child = Command::new(&bin)
            .arg("start-foreground")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .spawn()
            .map_err(|e| StartError::Fatal(format!("spawn {bin}: {e}")))?;
        let mut server = TestServer {
            addr: format!("127.0.0.1:{port}"),
            child: Some(child),
            dir: Some(dir),
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(child) = server.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    server.child = None;
                    return Err(StartError::Retry(format!(
                        "{bin} exited early with {status}; log:\n{log}"
                    )));
                }
            }
            if four_letter_opt(&server.addr, "ruok").as_deref() == Some("imok")
                && raw::try_session(&server.addr)
            {
                return Ok(server);
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                // Dropping `server` kills the child.
                return Err(StartError::Fatal(format!(
                    "{bin} on {} did not answer ruok and grant a session within {START_LIMIT:?}; \
                     log:\n{log}",
                    server.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// True when the tests run against an external server (ZKRS_TEST_TARGET).
    pub fn is_external(&self) -> bool {
        self.child.is_none()
    }

    /// Process id of a started server (None for an external one).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Path of the server's log file, for a started server.
    pub fn log_path(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.path().join("server.log"))
    }

    /// Connects a `zookeeper-client` session with the crate's default requested timeout.
    pub async fn client(&self) -> Client {
        self.client_with(Client::connector()).await
    }

    /// Connects a `zookeeper-client` session with the given connector.
    pub async fn client_with(&self, connector: zookeeper_client::Connector) -> Client {
        match tokio::time::timeout(OP_TIMEOUT, connector.connect(&self.addr)).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => panic!("connect to {}: {e}", self.addr),
            Err(_) => panic!("connect to {} timed out", self.addr),
        }
    }

    /// Opens a raw protocol session (see [`raw::Raw`]).
    pub fn raw(&self, timeout_ms: i32) -> raw::Raw {
        raw::Raw::connect(&self.addr, timeout_ms)
    }

    /// Sends a four-letter word and returns the whole answer.
    pub fn four_letter(&self, cmd: &str) -> String {
        four_letter_opt(&self.addr, cmd)
            .unwrap_or_else(|| panic!("four-letter word {cmd} to {} failed", self.addr))
    }

    /// Value of `key=value` in the `conf` four-letter answer.
    pub fn conf_value(&self, key: &str) -> Option<String> {
        let conf = self.four_letter("conf");
        conf.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k.trim() == key).then(|| v.trim().to_string())
        })
    }

    /// (minSessionTimeout, maxSessionTimeout) in ms, from `conf`, else 2 and 20 ticks.
    pub fn session_bounds_ms(&self) -> (i32, i32) {
        let tick: i32 = self
            .conf_value("tickTime")
            .and_then(|v| v.parse().ok())
            .unwrap_or(TICK_MS as i32);
        let min = self
            .conf_value("minSessionTimeout")
            .and_then(|v| v.parse().ok())
            .unwrap_or(2 * tick);
        let max = self
            .conf_value("maxSessionTimeout")
            .and_then(|v| v.parse().ok())
            .unwrap_or(20 * tick);
        (min, max)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // A failing test shows what the server said (the directory goes with `dir`).
        if std::thread::panicking() {
            if let Some(log) = self
                .log_path()
                .and_then(|p| std::fs::read_to_string(p).ok())
            {
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- last lines of the server log ---");
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

/// `n` different free TCP ports on loopback: all bound at once, then let go (one free port
/// after another can repeat one).
pub fn distinct_free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("addr").port())
        .collect()
}

/// Finds a free TCP port on loopback.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Sends a four-letter word; None when the server cannot be reached.
pub fn four_letter_opt(addr: &str, cmd: &str) -> Option<String> {
    let sock = addr.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .ok()?;
    stream.write_all(cmd.as_bytes()).ok()?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// A path prefix unique to this test run, e.g. `/t-create-3f2a9c...`; not created.
pub fn unique_prefix(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("/t-{name}-{:016x}", hasher.finish())
}

/// Persistent, open ACL.
pub fn persistent() -> CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

/// Creates `path` as an empty persistent node with an open ACL.
pub async fn mk(client: &Client, path: &str) {
    match t!(client.create(path, b"", &persistent())) {
        Ok(_) => {}
        Err(e) => panic!("create {path}: {e}"),
    }
}

/// Creates a fresh unique test root with an open ACL and returns its path.
pub async fn test_root(client: &Client, name: &str) -> String {
    let root = unique_prefix(name);
    mk(client, &root).await;
    root
}

/// Polls `check` every 20 ms until it returns true or `limit` passes; returns the final answer.
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// base64(sha1(user:password)) as used by the digest ACL scheme.
pub fn digest(user_password: &str) -> String {
    let (user, _) = user_password.split_once(':').expect("user:password");
    format!("{user}:{}", base64(&sha1(user_password.as_bytes())))
}

// Small self-contained SHA-1 and base64 so the tests compute digests without trusting the
// server's own helpers.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0];
    let mut msg = data.to_vec();
    let bit_len = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for chunk in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in chunk.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(ALPHABET[(n >> 18) as usize & 63] as char);
        out.push(ALPHABET[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            ALPHABET[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            ALPHABET[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}
