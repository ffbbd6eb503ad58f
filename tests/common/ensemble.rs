#![allow(dead_code)]
//! Runs a zkrs ensemble as real processes on loopback, configured as ZooKeeper's
//! pseudo-distributed tutorial sets one up: one zoo.cfg and one myid per server, the same
//! `server.N=127.0.0.1:quorum:election` lines in each (ports chosen free per run).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::four_letter_opt;

pub const ZKRS: &str = env!("CARGO_BIN_EXE_zkrs");
pub const TICK_MS: u64 = 100;

/// Ports for `n` servers: (client, quorum, election) each, all free when chosen.
fn free_ports(n: usize) -> Vec<(u16, u16, u16)> {
    let ports = crate::common::distinct_free_ports(n * 3);
    (0..n)
        .map(|i| (ports[3 * i], ports[3 * i + 1], ports[3 * i + 2]))
        .collect()
}

pub struct Member {
    pub id: u64,
    pub dir: PathBuf,
    pub client_port: u16,
    child: Option<Child>,
    starts: u32,
}

impl Member {
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn cfg(&self) -> PathBuf {
        self.dir.join("zoo.cfg")
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.dir.join(format!("server-{start}.log"))
    }

    /// Every log this member wrote, concatenated (for failure messages).
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for start in 0..self.starts {
            if let Ok(text) = std::fs::read_to_string(self.log_path(start)) {
                all.push_str(&format!("--- server {} start {start} ---\n{text}", self.id));
            }
        }
        all
    }

    fn start(&mut self) {
        let log = std::fs::File::create(self.log_path(self.starts)).expect("server log");
        self.starts += 1;
        let child = Command::new(ZKRS)
            .arg("start-foreground")
            .arg(self.cfg())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn zkrs");
        self.child = Some(child);
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The `Mode:` of srvr: "leader", "follower", or None while not serving.
    pub fn mode(&self) -> Option<String> {
        let reply = four_letter_opt(&self.addr(), "srvr")?;
        reply
            .lines()
            .find_map(|l| l.strip_prefix("Mode: "))
            .map(str::to_string)
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub struct Ensemble {
    pub members: Vec<Member>,
    _root: tempfile::TempDir,
}

impl Ensemble {
    /// `n` servers with `extra` zoo.cfg lines, none started yet.
    pub fn new(n: usize, extra: &str) -> Ensemble {
        Ensemble::with_observers(n, 0, extra)
    }

    /// `voters` participants and then `observers` observers (`:observer` in every
    /// server.N line, `peerType=observer` in their own zoo.cfg), none started yet.
    pub fn with_observers(voters: usize, observers: usize, extra: &str) -> Ensemble {
        let n = voters + observers;
        let root = tempfile::Builder::new()
            .prefix("zkrs-ensemble-")
            .tempdir()
            .expect("tempdir");
        let ports = free_ports(n);
        let servers: String = ports
            .iter()
            .enumerate()
            .map(|(i, (_, q, e))| {
                let kind = if i >= voters { ":observer" } else { "" };
                format!("server.{}=127.0.0.1:{q}:{e}{kind}\n", i + 1)
            })
            .collect();
        let members = ports
            .iter()
            .enumerate()
            .map(|(i, (client, _, _))| {
                let id = i as u64 + 1;
                let dir = root.path().join(format!("s{id}"));
                std::fs::create_dir_all(dir.join("data")).expect("mkdir");
                std::fs::write(dir.join("data").join("myid"), format!("{id}\n")).expect("myid");
                let peer_type = if i >= voters {
                    "peerType=observer\n"
                } else {
                    ""
                };
                let cfg = format!(
                    "tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\n\
                     clientPort={client}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n\
                     4lw.commands.whitelist=*\nadmin.enableServer=false\npreAllocSize=64\n\
                     zkrs.shards=2\n{peer_type}\
                     {servers}{extra}",
                    dir.join("data").display()
                );
                std::fs::write(dir.join("zoo.cfg"), cfg).expect("zoo.cfg");
                Member {
                    id,
                    dir,
                    client_port: *client,
                    child: None,
                    starts: 0,
                }
            })
            .collect();
        Ensemble {
            members,
            _root: root,
        }
    }

    /// Starts every server and waits until one leads and all others follow.
    pub fn start(n: usize, extra: &str) -> Ensemble {
        let mut ensemble = Ensemble::new(n, extra);
        for i in 0..n {
            ensemble.members[i].start();
        }
        ensemble.wait_serving(n, Duration::from_secs(30));
        ensemble
    }

    /// The (quorum, election) ports of server `index` (0-based) as every zoo.cfg names it.
    pub fn peer_ports(&self, index: usize) -> (u16, u16) {
        let text = std::fs::read_to_string(self.members[index].cfg()).expect("zoo.cfg");
        let key = format!("server.{}=127.0.0.1:", index + 1);
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(&key))
            .expect("own server line");
        let mut parts = line.split(':');
        let quorum = parts
            .next()
            .and_then(|p| p.parse().ok())
            .expect("quorum port");
        let election = parts
            .next()
            .and_then(|p| p.parse().ok())
            .expect("election port");
        (quorum, election)
    }

    /// Makes server `index` reach server `peer` at other ports (a proxy's), by rewriting
    /// that one line of its zoo.cfg (before it starts).
    pub fn route(&mut self, index: usize, peer: usize, quorum: u16, election: u16) {
        let path = self.members[index].cfg();
        let text = std::fs::read_to_string(&path).expect("zoo.cfg");
        let key = format!("server.{}=", peer + 1);
        let rewritten: Vec<String> = text
            .lines()
            .map(|l| {
                if l.starts_with(&key) {
                    format!("{key}127.0.0.1:{quorum}:{election}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        std::fs::write(&path, rewritten.join("\n") + "\n").expect("zoo.cfg");
    }

    pub fn start_member(&mut self, index: usize) {
        self.members[index].start();
    }

    /// All logs, for failure messages.
    pub fn logs(&self) -> String {
        self.members.iter().map(Member::logs).collect()
    }

    /// Waits until `count` running members serve (one leader, the rest followers); returns
    /// the leader's index.
    pub fn wait_serving(&mut self, count: usize, limit: Duration) -> usize {
        let deadline = Instant::now() + limit;
        loop {
            let modes: Vec<Option<String>> = self.members.iter().map(|m| m.mode()).collect();
            let leaders: Vec<usize> = modes
                .iter()
                .enumerate()
                .filter(|(_, m)| m.as_deref() == Some("leader"))
                .map(|(i, _)| i)
                .collect();
            let followers = modes
                .iter()
                .filter(|m| matches!(m.as_deref(), Some("follower") | Some("observer")))
                .count();
            if leaders.len() == 1 && 1 + followers >= count {
                return leaders[0];
            }
            assert!(
                Instant::now() < deadline,
                "no ensemble of {count} serving within {limit:?} (modes {modes:?}); logs:\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn leader(&mut self) -> usize {
        self.wait_serving(1, Duration::from_secs(30))
    }

    pub fn addrs(&self) -> Vec<String> {
        self.members.iter().map(Member::addr).collect()
    }
}

/// A TCP proxy on loopback that can cut every connection through it (a partition) and
/// let them through again. Bounded: it forwards only to its one target.
pub struct Proxy {
    pub port: u16,
    blocked: std::sync::Arc<std::sync::atomic::AtomicBool>,
    generation: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Proxy {
    pub fn start(target: u16) -> Proxy {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("proxy bind");
        let port = listener.local_addr().expect("addr").port();
        let blocked = Arc::new(AtomicBool::new(false));
        let generation = Arc::new(AtomicU64::new(0));
        let (b, g) = (blocked.clone(), generation.clone());
        std::thread::spawn(move || {
            for incoming in listener.incoming() {
                let Ok(client) = incoming else { continue };
                if b.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let born = g.load(Ordering::SeqCst);
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    let (b, g) = (b.clone(), g.clone());
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let _ = from.set_read_timeout(Some(Duration::from_millis(50)));
                        let mut buf = [0u8; 16 * 1024];
                        loop {
                            if b.load(Ordering::SeqCst) || g.load(Ordering::SeqCst) != born {
                                break;
                            }
                            match from.read(&mut buf) {
                                Ok(0) => break,
                                Ok(n) => {
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                                Err(e)
                                    if e.kind() == std::io::ErrorKind::WouldBlock
                                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                                Err(_) => break,
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Proxy {
            port,
            blocked,
            generation,
        }
    }

    /// Cuts every connection and refuses new ones.
    pub fn block(&self) {
        use std::sync::atomic::Ordering;
        self.blocked.store(true, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    pub fn heal(&self) {
        self.blocked
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}
