//! Starts Apache ZooKeeper 3.8 (Debian's `zookeeper` package, run with Java) as a standalone
//! server on a free loopback port, configured like [`super::TestServer`] configures zkrs, so
//! the two can be driven side by side (tests/differential.rs).
//!
//! The server runs in its own process group and is killed (the whole group) on Drop. Start-up
//! waits until `srvr` answers (each probe has a read timeout) and a session can be created.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{free_port, raw, SUPER_DIGEST, TICK_MS};

/// The jar of Debian's zookeeper package; its manifest pulls in zookeeper-jute.
pub const ZOOKEEPER_JAR: &str = "/usr/share/java/zookeeper.jar";
/// Everything the standalone server needs on its class path.
pub const CLASS_PATH: &str = "/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar:\
                              /usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar";
/// The Jetty, servlet and Jackson jars of Debian's packages that ZooKeeper's AdminServer
/// needs besides [`CLASS_PATH`] (the `zookeeper` package does not pull them in: without them
/// Java's AdminServer logs "Unable to load jetty" and does not start).
pub const ADMIN_SERVER_JARS: &[&str] = &[
    "/usr/share/java/jetty9-server.jar",
    "/usr/share/java/jetty9-servlet.jar",
    "/usr/share/java/jetty9-util.jar",
    "/usr/share/java/jetty9-util-ajax.jar",
    "/usr/share/java/jetty9-http.jar",
    "/usr/share/java/jetty9-io.jar",
    "/usr/share/java/jetty9-security.jar",
    "/usr/share/java/servlet-api.jar",
    "/usr/share/java/jackson-core.jar",
    "/usr/share/java/jackson-databind.jar",
    "/usr/share/java/jackson-annotations.jar",
];
/// How long Java gets to come up (it usually needs 2 to 5 s on a small machine).
const START_LIMIT: Duration = Duration::from_secs(40);

/// A running Apache ZooKeeper standalone server.
pub struct JavaZk {
    /// `127.0.0.1:port` of the client port.
    pub addr: String,
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl JavaZk {
    /// Why Apache ZooKeeper cannot be started here, or Ok if `java` and the jar are present.
    pub fn check_available() -> Result<(), String> {
        if !Path::new(ZOOKEEPER_JAR).is_file() {
            return Err(format!(
                "{ZOOKEEPER_JAR} is missing (install Debian's `zookeeper` package)"
            ));
        }
        match Command::new("java")
            .arg("-version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
        {
            Ok(status) if status.success() => Ok(()),
            Ok(status) => Err(format!("`java -version` failed with {status}")),
            Err(e) => Err(format!("cannot run `java` ({e}); install a JRE (Java 17)")),
        }
    }

    /// Starts a server with the harness configuration plus `extra` zoo.cfg lines (later keys
    /// win). Retries on a fresh port if the server exits early (e.g. the port was taken).
    pub fn start(extra: &[&str]) -> Result<JavaZk, String> {
        Self::start_on(None, extra)
    }

    /// As [`JavaZk::start`], with dataDir `data` (kept after the server is gone) instead of
    /// one in the server's temporary directory.
    pub fn start_on(data: Option<&Path>, extra: &[&str]) -> Result<JavaZk, String> {
        Self::start_with_class_path(data, extra, CLASS_PATH, &[])
    }

    /// As [`JavaZk::start`] with extra JVM flags (as an operator's SERVER_JVMFLAGS), e.g.
    /// `-Djava.security.auth.login.config=<jaas file>`.
    pub fn start_with_jvm_flags(extra: &[&str], jvm_flags: &[&str]) -> Result<JavaZk, String> {
        Self::start_with_class_path(None, extra, CLASS_PATH, jvm_flags)
    }

    /// As [`JavaZk::start`] with Java's AdminServer on `admin_port` (its jars,
    /// [`ADMIN_SERVER_JARS`], must be installed).
    pub fn start_with_admin_server(extra: &[&str], admin_port: u16) -> Result<JavaZk, String> {
        if let Some(missing) = ADMIN_SERVER_JARS.iter().find(|j| !Path::new(j).is_file()) {
            return Err(format!(
                "{missing} is missing (Debian's libjetty9-java, libjackson2-*)"
            ));
        }
        let class_path = format!("{CLASS_PATH}:{}", ADMIN_SERVER_JARS.join(":"));
        let port_line = format!("admin.serverPort={admin_port}");
        let mut lines: Vec<&str> = extra.to_vec();
        lines.extend([
            "admin.enableServer=true",
            "admin.serverAddress=127.0.0.1",
            port_line.as_str(),
        ]);
        Self::start_with_class_path(None, &lines, &class_path, &[])
    }

    fn start_with_class_path(
        data: Option<&Path>,
        extra: &[&str],
        class_path: &str,
        jvm_flags: &[&str],
    ) -> Result<JavaZk, String> {
        Self::check_available()?;
        let mut last = String::new();
        for _ in 0..3 {
            match Self::spawn(data, extra, class_path, jvm_flags) {
                Ok(zk) => return Ok(zk),
                Err((retry, e)) => {
                    last = e;
                    if !retry {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    fn spawn(
        data: Option<&Path>,
        extra: &[&str],
        class_path: &str,
        jvm_flags: &[&str],
    ) -> Result<JavaZk, (bool, String)> {
        let dir = tempfile::Builder::new()
            .prefix("zkrs-javazk-")
            .tempdir()
            .map_err(|e| (false, format!("tempdir: {e}")))?;
        let port = free_port();
        let data = data.map_or_else(|| dir.path().join("data"), Path::to_path_buf);
        std::fs::create_dir_all(&data).map_err(|e| (false, format!("mkdir: {e}")))?;
        let cfg = format!(
            "tickTime={TICK_MS}\n\
             initLimit=10\n\
             syncLimit=5\n\
             dataDir={}\n\
             clientPort={port}\n\
             clientPortAddress=127.0.0.1\n\
             maxClientCnxns=0\n\
             admin.enableServer=false\n\
             4lw.commands.whitelist=*\n\
             extendedTypesEnabled=true\n\
             DigestAuthenticationProvider.superDigest=super:{SUPER_DIGEST}\n{}",
            data.display(),
            extra.iter().map(|l| format!("{l}\n")).collect::<String>()
        );
        let cfg_path = dir.path().join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).map_err(|e| (false, format!("write zoo.cfg: {e}")))?;
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).map_err(|e| (false, format!("log: {e}")))?;
        let log_err = log.try_clone().map_err(|e| (false, format!("log: {e}")))?;
        let child = Command::new("java")
            // Start-up speed matters more than peak throughput for a test run.
            .args([
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Dznode.container.checkIntervalMs=100",
                "-Dzookeeper.admin.enableServer=false",
            ])
            .args(jvm_flags)
            .args([
                "-cp",
                class_path,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ])
            .arg(&cfg_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .spawn()
            .map_err(|e| (false, format!("spawn java: {e}")))?;
        let mut zk = JavaZk {
            addr: format!("127.0.0.1:{port}"),
            child: Some(child),
            dir,
        };
        let deadline = Instant::now() + START_LIMIT;
        loop {
            if let Some(child) = zk.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    zk.child = None;
                    return Err((
                        true,
                        format!(
                            "ZooKeeper exited early with {status}; log tail:\n{}",
                            log_tail(&log_path)
                        ),
                    ));
                }
            }
            let serving = srvr(&zk.addr).is_some_and(|s| s.contains("Mode: standalone"));
            if serving && raw::try_session(&zk.addr) {
                return Ok(zk);
            }
            if Instant::now() > deadline {
                return Err((
                    false,
                    format!(
                        "ZooKeeper on {} did not answer srvr and grant a session within \
                         {START_LIMIT:?}; log tail:\n{}",
                        zk.addr,
                        log_tail(&log_path)
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The server's log file (stdout and stderr of the JVM).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// kill -9 of the JVM (its whole process group), waiting for it to be gone.
    pub fn kill9(mut self) {
        self.signal_and_wait(libc::SIGKILL);
    }

    /// SIGTERM (as `zkServer.sh stop`): ZooKeeper's shutdown hook runs. Waits up to 30 s,
    /// then kills it.
    pub fn stop(mut self) {
        self.signal_and_wait(libc::SIGTERM);
    }

    fn signal_and_wait(&mut self, signal: libc::c_int) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = libc::pid_t::try_from(child.id()).ok();
        let send = |signal| {
            if let Some(pid) = pid {
                // The JVM leads its own process group (process_group(0) at spawn).
                // SAFETY: killpg only sends a signal; the group is the child we started.
                unsafe {
                    libc::killpg(pid, signal);
                }
            }
        };
        send(signal);
        let deadline = Instant::now() + Duration::from_secs(30);
        while signal != libc::SIGKILL && Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        send(libc::SIGKILL);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for JavaZk {
    fn drop(&mut self) {
        self.signal_and_wait(libc::SIGKILL);
    }
}

/// The `srvr` answer, or None; every read has a timeout (the server closes after answering).
fn srvr(addr: &str) -> Option<String> {
    let sock = addr.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream
        .set_write_timeout(Some(Duration::from_secs(1)))
        .ok()?;
    stream.write_all(b"srvr").ok()?;
    let deadline = Instant::now() + Duration::from_secs(2);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

fn log_tail(path: &Path) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}
