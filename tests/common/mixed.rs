//! A 3-server ensemble on loopback in which each member is either Apache ZooKeeper 3.8
//! (`QuorumPeerMain`, Debian's `zookeeper` package) or the zkrs binary, each with its own
//! zoo.cfg and myid and the same `server.N=127.0.0.1:quorum:election` lines (ports chosen
//! free per run). Data directories outlive the processes, so a member can be killed with
//! SIGKILL and started again on its files. Every process is killed on Drop (a JVM with its
//! whole process group); when the test is panicking (or ZKRS_MIXED_LOGS is set), Drop first
//! prints every member's logs.
//! Included with `#[path]` by tests/mixed_ensemble.rs, next to `mod common;`.

#![allow(dead_code)]

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::four_letter_opt;
use crate::common::javazk::{JavaZk, CLASS_PATH};

pub const ZKRS: &str = env!("CARGO_BIN_EXE_zkrs");
pub const TICK_MS: u64 = 200;
/// Lines of each log printed when a test fails.
const LOG_LINES_ON_FAILURE: usize = 200;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Java,
    Zkrs,
}

/// Ports for `n` servers: (client, quorum, election) each, all free when chosen.
fn free_ports(n: usize) -> Vec<(u16, u16, u16)> {
    let ports = crate::common::distinct_free_ports(n * 3);
    (0..n)
        .map(|i| (ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]))
        .collect()
}

pub struct Member {
    pub id: u64,
    pub kind: Kind,
    pub dir: PathBuf,
    pub client_port: u16,
    /// Extra `-D` options of a Java member (`key=value`).
    pub java_props: Vec<String>,
    child: Option<Child>,
    starts: u32,
}

impl Member {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn name(&self) -> String {
        format!("server.{} ({:?})", self.id, self.kind)
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.join(format!("server-{start}.log"))
    }

    /// The last `lines` lines of every log this member wrote (one per start).
    pub fn logs(&self, lines: usize) -> String {
        let mut all = String::new();
        for start in 0..self.starts {
            let text = std::fs::read_to_string(self.log_path(start)).unwrap_or_default();
            let kept: Vec<&str> = text.lines().collect();
            let from = kept.len().saturating_sub(lines);
            all.push_str(&format!(
                "----- {} start {start} (last {} of {} lines) -----\n{}\n",
                self.name(),
                kept.len() - from,
                kept.len(),
                kept[from..].join("\n")
            ));
        }
        all
    }

    /// Every log line of every start that contains `needle`.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        (0..self.starts)
            .flat_map(|start| {
                std::fs::read_to_string(self.log_path(start))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| l.contains(needle))
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} already runs", self.name());
        let log = std::fs::File::create(self.log_path(self.starts)).expect("server log");
        self.starts += 1;
        let log_err = log.try_clone().expect("log");
        let cfg = self.dir.join("zoo.cfg");
        let mut cmd = match self.kind {
            Kind::Zkrs => {
                let mut cmd = Command::new(ZKRS);
                cmd.arg("start-foreground")
                    .arg(&cfg)
                    .env("RUST_LOG", "info");
                cmd
            }
            Kind::Java => {
                let mut cmd = Command::new("java");
                cmd.args([
                    "-Xmx256m",
                    "-XX:+UseSerialGC",
                    "-XX:TieredStopAtLevel=1",
                    "-Dzookeeper.admin.enableServer=false",
                ]);
                for prop in &self.java_props {
                    cmd.arg(format!("-D{prop}"));
                }
                cmd.args([
                    "-cp",
                    CLASS_PATH,
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                ])
                .arg(&cfg);
                cmd
            }
        };
        let child = cmd
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err))
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.name()));
        self.child = Some(child);
    }

    /// SIGKILL to the process (and, for Java, its whole process group).
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = libc::pid_t::try_from(child.id()) {
                // SAFETY: killpg only sends a signal; the group is the child we started with
                // process_group(0), which leads it.
                unsafe {
                    libc::killpg(pid, libc::SIGKILL);
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A clean stop, as an operator stops a server (`zkServer.sh stop`, `zkrs stop`): SIGTERM
    /// to the process (and, for Java, its process group), waiting up to `limit` for it to
    /// exit; then SIGKILL. Returns whether it exited on SIGTERM.
    pub fn stop(&mut self, limit: Duration) -> bool {
        let Some(mut child) = self.child.take() else {
            return true;
        };
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        // SAFETY: killpg only sends a signal; the group is the child we started with
        // process_group(0), which leads it.
        unsafe {
            libc::killpg(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe {
            libc::killpg(pid, libc::SIGKILL);
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) to the member's process group: a server that
    /// stops answering without closing its sockets.
    pub fn pause(&mut self, stop: bool) {
        let child = self.child.as_ref().expect("a running member");
        let pid = libc::pid_t::try_from(child.id()).expect("pid");
        let signal = if stop { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: killpg only sends a signal to the group of the child we started.
        let rc = unsafe { libc::killpg(pid, signal) };
        assert_eq!(rc, 0, "killpg {signal} to {}", self.name());
    }

    /// Removes everything in the (stopped) member's data directory but its myid: a server
    /// whose disk was replaced.
    pub fn wipe_data(&mut self) {
        assert!(self.child.is_none(), "wipe {} while it runs", self.name());
        let data = self.dir.join("data");
        for entry in std::fs::read_dir(&data).expect("read data dir") {
            let path = entry.expect("entry").path();
            if path.file_name().is_some_and(|n| n == "myid") {
                continue;
            }
            if path.is_dir() {
                std::fs::remove_dir_all(&path).expect("remove");
            } else {
                std::fs::remove_file(&path).expect("remove");
            }
        }
    }

    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The `Mode:` of srvr ("leader", "follower"), or None while not serving.
    pub fn mode(&self) -> Option<String> {
        self.child.as_ref()?;
        let reply = four_letter_opt(&self.addr(), "srvr")?;
        reply
            .lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_string)
    }

    /// The `Zxid:` of srvr, or None.
    pub fn srvr_zxid(&self) -> Option<i64> {
        let reply = four_letter_opt(&self.addr(), "srvr")?;
        let hex = reply.lines().find_map(|l| l.strip_prefix("Zxid: 0x"))?;
        i64::from_str_radix(hex.trim(), 16).ok()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Mixed {
    pub members: Vec<Member>,
    _root: tempfile::TempDir,
}

impl Mixed {
    /// A 3-server (or n-server) ensemble; `kinds[i]` is server.(i+1). None started yet.
    pub fn new(kinds: &[Kind]) -> Mixed {
        JavaZk::check_available().unwrap_or_else(|e| panic!("mixed ensembles need Java: {e}"));
        let root = tempfile::Builder::new()
            .prefix("zkrs-mixed-")
            .tempdir()
            .expect("tempdir");
        let ports = free_ports(kinds.len());
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, (_, q, e))| format!("server.{}=127.0.0.1:{q}:{e}\n", i + 1))
            .collect();
        let members = kinds
            .iter()
            .zip(&ports)
            .enumerate()
            .map(|(i, (kind, (client, _, _)))| {
                let id = i as u64 + 1;
                let dir = root.path().join(format!("s{id}"));
                let data = dir.join("data");
                std::fs::create_dir_all(&data).expect("mkdir");
                std::fs::write(data.join("myid"), format!("{id}\n")).expect("myid");
                let own = match kind {
                    Kind::Zkrs => "preAllocSize=64\nzkrs.shards=1\nadmin.enableServer=false\n",
                    Kind::Java => "admin.enableServer=false\n",
                };
                let cfg = format!(
                    "tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\n\
                     clientPort={client}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n\
                     4lw.commands.whitelist=*\n{own}{servers}",
                    data.display()
                );
                std::fs::write(dir.join("zoo.cfg"), cfg).expect("zoo.cfg");
                Member {
                    id,
                    kind: *kind,
                    dir,
                    client_port: *client,
                    java_props: Vec::new(),
                    child: None,
                    starts: 0,
                }
            })
            .collect();
        Mixed {
            members,
            _root: root,
        }
    }

    /// Starts every member (zkrs first: it is up at once, while each JVM takes a second or
    /// more, so a zkrs server with the highest myid is in the first election and wins it; a
    /// Java member that comes up late may miss it) and waits until one leads
    /// and all others follow; returns the leader's index.
    pub fn start(kinds: &[Kind], limit: Duration) -> (Mixed, usize) {
        Self::start_with(kinds, &[], limit)
    }

    /// As `start`, with `-D` options for every Java member.
    pub fn start_with(kinds: &[Kind], java_props: &[&str], limit: Duration) -> (Mixed, usize) {
        let mut e = Mixed::new(kinds);
        for m in &mut e.members {
            m.java_props = java_props.iter().map(|p| p.to_string()).collect();
        }
        e.start_members();
        let leader = e.wait_serving(kinds.len(), limit);
        (e, leader)
    }

    /// Starts every member, zkrs first (see `start`), without waiting.
    pub fn start_members(&mut self) {
        for kind in [Kind::Zkrs, Kind::Java] {
            for m in self.members.iter_mut().filter(|m| m.kind == kind) {
                m.start();
            }
        }
    }

    pub fn addrs(&self) -> Vec<String> {
        self.members.iter().map(Member::addr).collect()
    }

    /// All logs (the tail of each), for failure messages.
    pub fn logs(&self) -> String {
        self.members
            .iter()
            .map(|m| m.logs(LOG_LINES_ON_FAILURE))
            .collect()
    }

    pub fn modes(&self) -> Vec<Option<String>> {
        self.members.iter().map(Member::mode).collect()
    }

    /// Waits until `count` running members serve (one leader, the rest followers); returns
    /// the leader's index. Panics (with the modes seen) after `limit`.
    pub fn wait_serving(&mut self, count: usize, limit: Duration) -> usize {
        match self.try_wait_serving(count, limit) {
            Ok(leader) => leader,
            Err(modes) => panic!(
                "no ensemble of {count} serving within {limit:?} (modes {modes:?}, running {:?})",
                self.members
                    .iter_mut()
                    .map(|m| m.running())
                    .collect::<Vec<_>>()
            ),
        }
    }

    /// As `wait_serving`, but returns the last modes seen instead of panicking.
    pub fn try_wait_serving(
        &mut self,
        count: usize,
        limit: Duration,
    ) -> Result<usize, Vec<Option<String>>> {
        let deadline = Instant::now() + limit;
        loop {
            let modes = self.modes();
            let leaders: Vec<usize> = modes
                .iter()
                .enumerate()
                .filter(|(_, m)| m.as_deref() == Some("leader"))
                .map(|(i, _)| i)
                .collect();
            let followers = modes
                .iter()
                .filter(|m| m.as_deref() == Some("follower"))
                .count();
            if leaders.len() == 1 && 1 + followers >= count {
                return Ok(leaders[0]);
            }
            if Instant::now() >= deadline {
                return Err(modes);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Mixed {
    fn drop(&mut self) {
        // ZKRS_MIXED_LOGS=1 prints them after a passing test too.
        if std::thread::panicking() || std::env::var_os("ZKRS_MIXED_LOGS").is_some() {
            eprintln!(
                "===== logs of the mixed ensemble =====\n{}===== end of logs =====",
                self.logs()
            );
        }
        for m in &mut self.members {
            m.kill9();
        }
    }
}
