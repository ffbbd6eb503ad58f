//! Starts Apache ZooKeeper 3.8 (Debian's `zookeeper` package) as one quorum peer of an
//! ensemble whose other members the test plays itself (tests/zab_interop.rs). Same class path
//! and JVM flags as [`crate::common::javazk`]; the JVM runs in its own process group and the
//! whole group is killed on Drop. Unlike a standalone server, a lone peer serves nothing until
//! it has a quorum, so start-up only checks that the JVM did not exit at once.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::javazk::{JavaZk, CLASS_PATH};

/// A running Apache ZooKeeper quorum peer.
pub struct JavaPeer {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl JavaPeer {
    /// Why a Java peer cannot be started here (`java` or the jar missing), or Ok.
    pub fn check_available() -> Result<(), String> {
        JavaZk::check_available()
    }

    /// Starts `QuorumPeerMain` with `myid` and a zoo.cfg made of `config_lines` plus its own
    /// `dataDir`. `jvm_props` are extra `-D` options (`key=value`).
    pub fn start(
        myid: u64,
        config_lines: &[String],
        jvm_props: &[&str],
    ) -> Result<JavaPeer, String> {
        Self::check_available()?;
        let dir = tempfile::Builder::new()
            .prefix("zkrs-javapeer-")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).map_err(|e| format!("mkdir: {e}"))?;
        std::fs::write(data.join("myid"), format!("{myid}\n")).map_err(|e| format!("myid: {e}"))?;
        let mut cfg = format!("dataDir={}\n", data.display());
        for line in config_lines {
            cfg.push_str(line);
            cfg.push('\n');
        }
        let cfg_path = dir.path().join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).map_err(|e| format!("write zoo.cfg: {e}"))?;
        let log = std::fs::File::create(dir.path().join("server.log"))
            .map_err(|e| format!("log: {e}"))?;
        let log_err = log.try_clone().map_err(|e| format!("log: {e}"))?;
        let mut cmd = Command::new("java");
        cmd.args([
            "-Xmx512m",
            "-XX:+UseSerialGC",
            "-XX:TieredStopAtLevel=1",
            "-Dzookeeper.admin.enableServer=false",
        ]);
        for prop in jvm_props {
            cmd.arg(format!("-D{prop}"));
        }
        let child = cmd
            .args([
                "-cp",
                CLASS_PATH,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            ])
            .arg(&cfg_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .spawn()
            .map_err(|e| format!("spawn java: {e}"))?;
        let mut peer = JavaPeer {
            child: Some(child),
            dir,
        };
        // A bad config makes the JVM exit within a second or so; catch that here rather
        // than as a confusing timeout later.
        let settle = Instant::now() + Duration::from_millis(300);
        while Instant::now() < settle {
            if let Some(status) = peer.exited() {
                return Err(format!(
                    "ZooKeeper peer exited at once with {status}; log:\n{}",
                    peer.log_tail(60)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(peer)
    }

    /// The exit status, if the JVM is gone.
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => Some(status.to_string()),
            _ => None,
        }
    }

    /// The peer's log (the JVM's stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    /// The last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path(), lines)
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let log = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

impl Drop for JavaPeer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: killpg only sends a signal; the group is the JVM we started with
                // process_group(0), which leads it.
                unsafe {
                    libc::killpg(pid, libc::SIGKILL);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
