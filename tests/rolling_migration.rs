//! The rolling migration end to end, under load: three Apache ZooKeeper 3.8 servers (Debian's
//! `zookeeper` package) serve an ensemble; one server at a time is stopped and zkrs started
//! on the SAME zoo.cfg, myid and dataDir (zkrs imports `version-2` and rejoins), until three
//! zkrs servers serve; then back the same way (stop zkrs, `zkrs export-zk` on that server's
//! config, start Java on it), until three Java servers serve again. Each direction replaces
//! the leader last, and the election that follows must pick the survivor ZooKeeper's rules
//! pick (highest peer epoch, then last logged zxid, then myid).
//!
//! The zoo.cfg is one file per server in the form `java-zk.sh` writes (tickTime 2000,
//! dataLogDir apart from dataDir, `admin.enableServer=false`), read by both implementations.
//!
//! All along, clients of the `zookeeper-client` crate with all three servers in their connect
//! strings write (one create at a time each), hold an ephemeral and keep a data watch armed.
//! At the end: every acknowledged create is on every server, the trees of the three servers
//! are identical (data and stat of every znode), every client kept its session (never
//! Expired) and its ephemeral, every watch fired for every change, and the only errors the
//! clients saw were ConnectionLoss, all while a server was being replaced.
//!
//! Between the steps the test checks what the README's migration guide tells an operator to
//! check: `zkrs status <cfg>` (Mode), `mntr` zk_peer_state on every server and
//! zk_synced_followers on the leader, and a write through every server.
//!
//! Needs `java` and Debian's `zookeeper` package; without them the test fails and says so.

mod common;
#[path = "common/durable.rs"]
mod durable;
#[path = "common/mixed.rs"]
mod mixed;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::four_letter_opt;
use common::raw::{self, Enc, CREATE_PERSISTENT, OK};
use durable::Conn;
use mixed::{Kind, Mixed, ZKRS};
use zookeeper_client as zk;

/// tickTime of the servers (java-zk.sh's, ZooKeeper's sample zoo.cfg's).
const TICK_MS: u64 = 2000;
/// The clients' session timeout (the servers grant 2 to 20 ticks).
const SESSION: Duration = Duration::from_secs(20);
/// How long a server may take to start and rejoin (a JVM on a loaded 2-core machine).
const REJOIN_LIMIT: Duration = Duration::from_secs(60);
/// How long a stopped server may take to exit on SIGTERM.
const STOP_LIMIT: Duration = Duration::from_secs(30);
/// Pause between two creates of one load client.
const LOAD_PAUSE: Duration = Duration::from_millis(15);
const CLIENTS: usize = 6;

/// What one client saw.
#[derive(Default)]
struct Seen {
    acked: Vec<String>,
    /// Errors of requests, by kind, with when they came back.
    errors: Vec<(Instant, String)>,
    /// Session states the state watcher reported.
    states: Vec<(Instant, String)>,
    /// The data of the watched znode as last read after a watch fired.
    watched: Vec<u8>,
    /// NodeDataChanged events of the data watch.
    watch_events: u64,
    /// Watch events of any other kind.
    odd_events: Vec<String>,
}

struct Client {
    index: usize,
    client: zk::Client,
    session: i64,
    seen: Arc<Mutex<Seen>>,
}

fn record_error(seen: &Mutex<Seen>, what: &str, e: &zk::Error) {
    seen.lock()
        .unwrap()
        .errors
        .push((Instant::now(), format!("{what}: {}", classify(e))));
}

/// ConnectionLoss; a connection the server closed or reset under a request (the
/// `zookeeper-client` crate passes the socket error on where the Java client says
/// ConnectionLoss), as "disconnect (<io kind>)"; anything else as its Debug text.
fn classify(e: &zk::Error) -> String {
    let text = format!("{e:?}");
    if matches!(e, zk::Error::ConnectionLoss) {
        return "ConnectionLoss".into();
    }
    if let zk::Error::Custom(_) = e {
        for kind in [
            "ConnectionReset",
            "ConnectionAborted",
            "BrokenPipe",
            "UnexpectedEof",
        ] {
            if text.contains(&format!("kind: {kind}")) {
                return format!("disconnect ({kind})");
            }
        }
    }
    text
}

/// Errors a client may see while its server restarts or the leader changes.
fn allowed_error(kind: &str) -> bool {
    kind == "ConnectionLoss" || kind.starts_with("disconnect (")
}

/// The kind of an error as `record_error` wrote it.
fn error_kind(text: &str) -> &str {
    text.split_once(": ").map_or(text, |(_, kind)| kind)
}

async fn connect(hosts: &str) -> zk::Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match zk::Client::connector()
            .with_session_timeout(SESSION)
            .connect(hosts)
            .await
        {
            Ok(client) => return client,
            Err(e) if Instant::now() >= deadline => panic!("no session on {hosts}: {e:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Starts a client: its ephemeral `/roll/e<i>`, a data watch on `/roll/w<i>` kept armed, a
/// state watcher, and the write load `/roll/load/c<i>-<n>`, until `stop` turns true.
async fn start_client(
    index: usize,
    hosts: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Client {
    let client = connect(&hosts).await;
    let session = client.session_id().0;
    let eph = zk::CreateMode::Ephemeral.with_acls(zk::Acls::anyone_all());
    client
        .create(&format!("/roll/e{index}"), b"held", &eph)
        .await
        .unwrap_or_else(|e| panic!("client {index}: ephemeral: {e:?}"));
    let seen = Arc::new(Mutex::new(Seen::default()));

    // The session states.
    let mut states = client.state_watcher();
    let (s, mut halt) = (seen.clone(), stop.clone());
    tokio::spawn(async move {
        loop {
            tokio::select! {
                state = states.changed() => {
                    s.lock().unwrap().states.push((Instant::now(), format!("{state:?}")));
                    if state.is_terminated() {
                        return;
                    }
                }
                _ = halt.changed() => return,
            }
        }
    });

    // The data watch, re-armed after each event.
    let (c, s, mut halt) = (client.clone(), seen.clone(), stop.clone());
    let watched = format!("/roll/w{index}");
    tokio::spawn(async move {
        loop {
            if *halt.borrow() {
                return;
            }
            let (data, _, watcher) = match bounded(c.get_and_watch_data(&watched)).await {
                Ok(Ok(armed)) => armed,
                Ok(Err(e)) => {
                    record_error(&s, "getData+watch", &e);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(_) => {
                    s.lock()
                        .unwrap()
                        .errors
                        .push((Instant::now(), "getData+watch: no reply in 30 s".into()));
                    continue;
                }
            };
            s.lock().unwrap().watched = data;
            tokio::select! {
                event = watcher.changed() => {
                    let mut seen = s.lock().unwrap();
                    if event.event_type == zk::EventType::NodeDataChanged {
                        seen.watch_events += 1;
                    } else {
                        seen.odd_events.push(format!("{event:?}"));
                    }
                }
                _ = halt.changed() => return,
            }
        }
    });

    // The write load.
    let (c, s, halt) = (client.clone(), seen.clone(), stop);
    tokio::spawn(async move {
        let persistent = zk::CreateMode::Persistent.with_acls(zk::Acls::anyone_all());
        let mut n = 0u64;
        while !*halt.borrow() {
            let path = format!("/roll/load/c{index}-{n:06}");
            n += 1;
            match bounded(c.create(&path, b"v", &persistent)).await {
                Ok(Ok(_)) => s.lock().unwrap().acked.push(path),
                Ok(Err(e)) => {
                    record_error(&s, "create", &e);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(_) => s
                    .lock()
                    .unwrap()
                    .errors
                    .push((Instant::now(), "create: no reply in 30 s".into())),
            }
            tokio::time::sleep(LOAD_PAUSE).await;
        }
    });
    Client {
        index,
        client,
        session,
        seen,
    }
}

/// A request bounded at 30 s (longer than a session timeout: a request that takes that long
/// is a failure of its own kind).
async fn bounded<T>(
    f: impl std::future::Future<Output = T>,
) -> Result<T, tokio::time::error::Elapsed> {
    tokio::time::timeout(Duration::from_secs(30), f).await
}

/// Rewrites a member's zoo.cfg in the form java-zk.sh writes (tickTime 2000, dataLogDir
/// apart), keeping its ports and the server lines of the harness.
fn write_shared_cfg(dir: &Path, client_port: u16) {
    let cfg_path = dir.join("zoo.cfg");
    let old = std::fs::read_to_string(&cfg_path).expect("zoo.cfg");
    let servers: String = old
        .lines()
        .filter(|l| l.starts_with("server."))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::create_dir_all(dir.join("log")).expect("mkdir log");
    let cfg = format!(
        "tickTime={TICK_MS}\ninitLimit=10\nsyncLimit=5\ndataDir={}\ndataLogDir={}\n\
         clientPort={client_port}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n\
         admin.enableServer=false\n4lw.commands.whitelist=*\n{servers}",
        dir.join("data").display(),
        dir.join("log").display()
    );
    std::fs::write(cfg_path, cfg).expect("write zoo.cfg");
}

fn cfg_of(e: &Mixed, i: usize) -> std::path::PathBuf {
    e.members[i].dir.join("zoo.cfg")
}

/// `zkrs <args> <cfg>`: exit success and stdout+stderr.
fn zkrs_tool(args: &[&str], cfg: &Path) -> (bool, String) {
    let out = std::process::Command::new(ZKRS)
        .args(args)
        .arg(cfg)
        .output()
        .expect("run zkrs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn mntr(addr: &str) -> BTreeMap<String, String> {
    four_letter_opt(addr, "mntr")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

/// A raw session on `addr`, retried (a server that just began to serve may refuse one for a
/// moment).
fn raw_conn(addr: &str) -> Conn {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match Conn::try_connect(addr, 10_000) {
            Ok(conn) => return conn,
            Err(e) if Instant::now() >= deadline => panic!("no session on {addr}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The checks of the migration guide, between two steps, with a bounded wait: all three
/// serve, one leads; `zkrs status` prints each Mode; mntr shows each follower
/// "following - broadcast" and the leader "leading - broadcast" with 2 synced followers; a
/// write through every server is seen on every server. Returns the leader's index.
fn wait_healthy(e: &mut Mixed, step: &str) -> usize {
    let leader = e.wait_serving(3, REJOIN_LIMIT);
    let deadline = Instant::now() + REJOIN_LIMIT;
    loop {
        let mut problems = Vec::new();
        let leader_now = e.try_wait_serving(3, Duration::ZERO);
        if leader_now != Ok(leader) {
            problems.push(format!("modes {:?}", e.modes()));
        }
        for (i, m) in e.members.iter().enumerate() {
            let (ok, out) = zkrs_tool(&["status"], &cfg_of(e, i));
            let want = if i == leader {
                "Mode: leader"
            } else {
                "Mode: follower"
            };
            if !ok || !out.contains(want) {
                problems.push(format!("zkrs status of {}: {out}", m.name()));
            }
            let metrics = mntr(&m.addr());
            let state = if i == leader {
                "leading - broadcast"
            } else {
                "following - broadcast"
            };
            if metrics.get("zk_peer_state").map(String::as_str) != Some(state) {
                problems.push(format!(
                    "{} zk_peer_state {:?}",
                    m.name(),
                    metrics.get("zk_peer_state")
                ));
            }
            if i == leader && metrics.get("zk_synced_followers").map(String::as_str) != Some("2") {
                problems.push(format!(
                    "{} zk_synced_followers {:?}",
                    m.name(),
                    metrics.get("zk_synced_followers")
                ));
            }
        }
        if problems.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{step}: the ensemble is not healthy within {REJOIN_LIMIT:?}: {problems:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // A write through every server, read back on every server after sync.
    let addrs = e.addrs();
    for (i, addr) in addrs.iter().enumerate() {
        let path = format!("/roll/steps/{step}-via-{}", i + 1);
        let mut conn = raw_conn(addr);
        let reply = conn
            .create(&path, step.as_bytes(), CREATE_PERSISTENT)
            .unwrap_or_else(|err| panic!("{step}: create through {addr}: {err}"));
        assert_eq!(reply.err, OK, "{step}: create {path} through {addr}");
        conn.close();
    }
    for addr in &addrs {
        let mut conn = raw_conn(addr);
        let reply = conn
            .call(raw::OP_SYNC, &Enc::new().string("/").finish())
            .unwrap_or_else(|err| panic!("{step}: sync on {addr}: {err}"));
        assert_eq!(reply.err, OK, "sync on {addr}");
        let paths: Vec<String> = (1..=3)
            .map(|i| format!("/roll/steps/{step}-via-{i}"))
            .collect();
        let got = conn
            .get_many(&paths)
            .unwrap_or_else(|err| panic!("{step}: getData after sync on {addr}: {err}"));
        for (path, got) in paths.iter().zip(got) {
            assert!(got.is_ok(), "{step}: {path} missing on {addr}");
        }
        conn.close();
    }
    leader
}

/// A survivor's proposal in the election after a leader left: (peer epoch, zxid, myid), from
/// the last proposal in its log (zkrs: "starts round .. proposing Candidate {..}"; Java: its
/// own "Notification:" with n.sid and n.leader its id).
fn last_proposal(e: &Mixed, i: usize) -> (i64, i64, u64) {
    let m = &e.members[i];
    match m.kind {
        Kind::Zkrs => {
            let line = m
                .log_lines_with("proposing Candidate")
                .pop()
                .unwrap_or_else(|| panic!("{} logged no election proposal", m.name()));
            let field = |name: &str| -> i64 {
                let rest = line
                    .split_once(&format!("{name}: "))
                    .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                    .1;
                let digits: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || *c == '-')
                    .collect();
                digits
                    .parse()
                    .unwrap_or_else(|_| panic!("{name} in {line:?}"))
            };
            assert_eq!(field("leader"), m.id as i64, "own proposal in {line:?}");
            (field("peer_epoch"), field("zxid"), m.id)
        }
        Kind::Java => {
            let own = format!("n.sid:{}, n.state:LOOKING, n.leader:{},", m.id, m.id);
            // Java hears its own notification too; the last one is its latest proposal.
            let line = m
                .log_lines_with(&own)
                .into_iter()
                .rfind(|l| l.contains("my state:LOOKING"))
                .unwrap_or_else(|| panic!("no notification of {}'s own vote", m.name()));
            let hex = |name: &str| -> i64 {
                let rest = line
                    .split_once(&format!("{name}:0x"))
                    .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                    .1;
                let digits: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
                i64::from_str_radix(&digits, 16).unwrap_or_else(|_| panic!("{name} in {line:?}"))
            };
            (hex("n.peerEpoch"), hex("n.zxid"), m.id)
        }
    }
}

/// Every znode but /zookeeper's on `addr` after sync: path -> (data, stat fields that all
/// servers must agree on).
type Tree = BTreeMap<String, (Vec<u8>, [i64; 8])>;

fn tree_of(addr: &str) -> Tree {
    let mut conn = raw_conn(addr);
    let reply = conn
        .call(raw::OP_SYNC, &Enc::new().string("/").finish())
        .expect("sync");
    assert_eq!(reply.err, OK, "sync on {addr}");
    let mut tree = Tree::new();
    let mut pending = vec!["/".to_string()];
    while let Some(parent) = pending.pop() {
        let children = conn
            .children(&parent)
            .unwrap_or_else(|e| panic!("children of {parent} on {addr}: {e}"));
        let paths: Vec<String> = children
            .iter()
            .map(|c| {
                if parent == "/" {
                    format!("/{c}")
                } else {
                    format!("{parent}/{c}")
                }
            })
            .filter(|p| p != "/zookeeper")
            .collect();
        let got = conn
            .get_many(&paths)
            .unwrap_or_else(|e| panic!("getData under {parent} on {addr}: {e}"));
        for (path, result) in paths.into_iter().zip(got) {
            let Ok((data, st)) = result else {
                panic!("{path} listed but not readable on {addr}: {result:?}");
            };
            let stat = [
                st.czxid,
                st.mzxid,
                st.pzxid,
                st.ephemeral_owner,
                i64::from(st.version),
                i64::from(st.cversion),
                i64::from(st.num_children),
                st.ctime,
            ];
            if st.num_children > 0 {
                pending.push(path.clone());
            }
            tree.insert(path, (data, stat));
        }
    }
    conn.close();
    tree
}

/// Sets `/roll/w<i>` of every client to `value` and waits until every client's watch fired
/// and it read the value back.
fn bump_watches(e: &Mixed, clients: &[Client], value: &str) {
    let addrs = e.addrs();
    let mut conn = raw_conn(&addrs[0]);
    for c in clients {
        let reply = conn
            .set_data(&format!("/roll/w{}", c.index), value.as_bytes())
            .expect("setData");
        assert_eq!(reply.err, OK, "setData /roll/w{}", c.index);
    }
    conn.close();
    let deadline = Instant::now() + REJOIN_LIMIT;
    for c in clients {
        while c.seen.lock().unwrap().watched != value.as_bytes() {
            assert!(
                Instant::now() < deadline,
                "client {}: its watch on /roll/w{} did not deliver {value:?} (it holds {:?})",
                c.index,
                c.index,
                String::from_utf8_lossy(&c.seen.lock().unwrap().watched)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The session ids `cons` lists on `addr`.
fn sessions_on(addr: &str) -> Vec<i64> {
    four_letter_opt(addr, "cons")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once("sid=0x"))
        .filter_map(|(_, rest)| {
            let hex: String = rest.chars().take_while(|c| c.is_ascii_hexdigit()).collect();
            u64::from_str_radix(&hex, 16).ok().map(|id| id as i64)
        })
        .collect()
}

/// One replacement: when it ran, and the clients that were connected to another server
/// when it began (for a follower's replacement: those must not notice it).
struct Window {
    from: Instant,
    to: Instant,
    step: String,
    bystanders: Vec<usize>,
}

fn total_acked(clients: &[Client]) -> usize {
    clients
        .iter()
        .map(|c| c.seen.lock().unwrap().acked.len())
        .sum()
}

/// Waits until the clients got `more` creates acknowledged beyond `from`.
fn wait_load(clients: &[Client], from: usize, more: usize, step: &str) {
    let deadline = Instant::now() + REJOIN_LIMIT;
    while total_acked(clients) < from + more {
        assert!(
            Instant::now() < deadline,
            "{step}: the load made no progress ({} acknowledged, {from} before)",
            total_acked(clients)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Replaces member `i` by `to`: stops it (SIGTERM), for zkrs -> Java runs `zkrs export-zk`
/// on its config, starts the other implementation on the same config and waits until the
/// ensemble is healthy. When the member led, checks that the survivors elected the one
/// ZooKeeper's rules pick. Returns the leader afterwards.
fn replace(e: &mut Mixed, i: usize, leader: usize, to: Kind, step: &str) -> usize {
    let name = e.members[i].name();
    eprintln!("{step}: replacing {name} (leader: {})", i == leader);
    assert!(
        e.members[i].stop(STOP_LIMIT),
        "{name} did not exit on SIGTERM within {STOP_LIMIT:?}"
    );
    if i == leader {
        let new_leader = e.wait_serving(2, REJOIN_LIMIT);
        let survivors: Vec<usize> = (0..3).filter(|&j| j != i).collect();
        let proposals: Vec<(i64, i64, u64)> =
            survivors.iter().map(|&j| last_proposal(e, j)).collect();
        let best = proposals.iter().max().expect("two survivors");
        eprintln!(
            "{step}: survivors proposed {proposals:?}; {} leads",
            e.members[new_leader].name()
        );
        assert_eq!(
            e.members[new_leader].id, best.2,
            "{step}: ZooKeeper's rules pick server {} from {proposals:?}",
            best.2
        );
    }
    let mut exported = None;
    if to == Kind::Java {
        let (ok, out) = zkrs_tool(&["export-zk"], &cfg_of(e, i));
        assert!(ok, "{step}: zkrs export-zk of {name} failed: {out}");
        eprintln!("{step}: export-zk: {}", out.trim());
        let zxid = out
            .split_once("(last zxid 0x")
            .and_then(|(_, rest)| rest.split(',').next())
            .unwrap_or_else(|| panic!("{step}: no last zxid in {out:?}"))
            .to_string();
        exported = Some(zxid);
    }
    e.members[i].kind = to;
    e.members[i].start();
    let leader = wait_healthy(e, step);
    if let Some(zxid) = exported {
        // Java started from the exported snapshot (ZKDatabase logs what it loaded).
        let loaded = format!("highest zxid is 0x{zxid},");
        assert!(
            !e.members[i].log_lines_with(&loaded).is_empty(),
            "{step}: Java did not load the exported state ({loaded:?}): {:?}",
            e.members[i].log_lines_with("highest zxid")
        );
    }
    if to == Kind::Zkrs {
        assert!(
            !e.members[i]
                .log_lines_with("imported Apache ZooKeeper's data")
                .is_empty(),
            "{step}: zkrs did not import the Java server's dataDir"
        );
    }
    leader
}

#[test]
fn rolling_migration_java_to_zkrs_and_back_under_load() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut e = Mixed::new(&[Kind::Java, Kind::Java, Kind::Java]);
    for m in &e.members {
        write_shared_cfg(&m.dir, m.client_port);
    }
    for m in &mut e.members {
        m.start();
    }
    let leader = wait_healthy_after_start(&mut e);
    eprintln!("Java ensemble serves; {} leads", e.members[leader].name());

    // The clients: each lists the three servers (in another order).
    let addrs = e.addrs();
    let mut setup = raw_conn(&addrs[0]);
    for path in ["/roll", "/roll/load", "/roll/steps"] {
        assert_eq!(
            setup
                .create(path, b"", CREATE_PERSISTENT)
                .expect("create")
                .err,
            OK
        );
    }
    for i in 0..CLIENTS {
        let path = format!("/roll/w{i}");
        assert_eq!(
            setup
                .create(&path, b"", CREATE_PERSISTENT)
                .expect("create")
                .err,
            OK
        );
    }
    setup.close();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let clients: Vec<Client> = (0..CLIENTS)
        .map(|i| {
            let hosts: Vec<String> = (0..3).map(|k| addrs[(i + k) % 3].clone()).collect();
            rt.block_on(start_client(i, hosts.join(","), stop_rx.clone()))
        })
        .collect();
    wait_load(&clients, 0, 50, "java");
    bump_watches(&e, &clients, "java");

    // Forward and back: followers first, the leader last; record each step's window.
    let mut windows: Vec<Window> = Vec::new();
    let mut leader = leader;
    let mut on_replaced_follower = 0;
    for (direction, to) in [("to-zkrs", Kind::Zkrs), ("to-java", Kind::Java)] {
        let mut order: Vec<usize> = (0..3).filter(|&i| i != leader).collect();
        order.push(leader);
        for i in order {
            let step = format!("{direction}-s{}", i + 1);
            let began = Instant::now();
            // Who is connected where (a client between two servers is in neither list).
            let mut bystanders = Vec::new();
            if i != leader {
                let elsewhere: Vec<i64> = (0..3)
                    .filter(|&j| j != i)
                    .flat_map(|j| sessions_on(&e.members[j].addr()))
                    .collect();
                let here = sessions_on(&e.members[i].addr());
                for c in &clients {
                    if elsewhere.contains(&c.session) {
                        bystanders.push(c.index);
                    } else if here.contains(&c.session) {
                        on_replaced_follower += 1;
                    }
                }
            }
            let before = total_acked(&clients);
            leader = replace(&mut e, i, leader, to, &step);
            wait_load(&clients, before, 50, &step);
            bump_watches(&e, &clients, &step);
            eprintln!("{step}: clients on other servers {bystanders:?}");
            windows.push(Window {
                from: began,
                to: Instant::now(),
                step,
                bystanders,
            });
        }
        assert!(
            e.members.iter().all(|m| m.kind == to),
            "{direction}: {:?}",
            e.members.iter().map(|m| m.name()).collect::<Vec<_>>()
        );
        eprintln!(
            "{direction} done: {} leads, {} creates acknowledged",
            e.members[leader].name(),
            total_acked(&clients)
        );
    }

    // A stretch of load on the all-Java ensemble with no restart: no errors then.
    let quiet_from = Instant::now();
    let before = total_acked(&clients);
    wait_load(&clients, before, 100, "java-again");
    bump_watches(&e, &clients, "end");
    // "java", one per replacement, "end".
    let bumps = 2 + windows.len() as u64;
    stop_tx.send(true).expect("stop the load");
    std::thread::sleep(Duration::from_millis(500));
    let quiet_to = Instant::now();

    // Sessions: never expired, same id, ephemeral still there (checked in the trees below).
    for c in &clients {
        let seen = c.seen.lock().unwrap();
        assert_eq!(
            c.client.session_id().0,
            c.session,
            "client {}: session changed",
            c.index
        );
        let bad_states: Vec<&(Instant, String)> = seen
            .states
            .iter()
            .filter(|(_, s)| s != "Disconnected" && s != "SyncConnected")
            .collect();
        assert!(
            bad_states.is_empty(),
            "client {}: session states {:?}",
            c.index,
            seen.states.iter().map(|(_, s)| s).collect::<Vec<_>>()
        );
        assert!(
            seen.odd_events.is_empty(),
            "client {}: watch events {:?}",
            c.index,
            seen.odd_events
        );
        // Each of the `bumps` changes fired the armed watch (also across a reconnect, by
        // setWatches), except where re-arming it failed and the new value was read then.
        let rearm_errors = seen
            .errors
            .iter()
            .filter(|(_, text)| text.starts_with("getData+watch"))
            .count() as u64;
        assert!(
            seen.watch_events + rearm_errors >= bumps,
            "client {}: {} NodeDataChanged events and {rearm_errors} failed re-arms for \
             {bumps} changes",
            c.index,
            seen.watch_events
        );
    }

    // Errors: ConnectionLoss only, and only while a server was being replaced.
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut outside = Vec::new();
    let mut per_step: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for c in &clients {
        for (at, text) in &c.seen.lock().unwrap().errors {
            *kinds.entry(error_kind(text).to_string()).or_default() += 1;
            match windows.iter().find(|w| w.from <= *at && *at <= w.to) {
                Some(w) if w.bystanders.contains(&c.index) => outside.push(format!(
                    "client {} (on another server) during {}: {text}",
                    c.index, w.step
                )),
                Some(w) => {
                    *per_step
                        .entry(w.step.clone())
                        .or_default()
                        .entry(error_kind(text).to_string())
                        .or_default() += 1
                }
                None => outside.push(format!("client {}: {text}", c.index)),
            }
        }
    }
    // Nor a disconnect for a client whose server stayed up while a follower was replaced.
    for c in &clients {
        for (at, state) in &c.seen.lock().unwrap().states {
            if let Some(w) = windows
                .iter()
                .find(|w| w.from <= *at && *at <= w.to && w.bystanders.contains(&c.index))
            {
                outside.push(format!(
                    "client {} (on another server) went {state} during {}",
                    c.index, w.step
                ));
            }
        }
    }
    eprintln!(
        "client errors by kind {kinds:?}, by step {per_step:?}; {on_replaced_follower} \
         times a client was on a follower being replaced"
    );
    assert!(
        kinds.keys().all(|k| allowed_error(k)),
        "errors other than ConnectionLoss or a disconnect: {kinds:?}"
    );
    assert!(
        outside.is_empty(),
        "errors or disconnects of clients whose server was not replaced at the time (quiet \
         stretch at the end {:?}): {outside:?}",
        quiet_to - quiet_from
    );

    // Two of the Java servers followed the zkrs leader for a while and kept running since.
    for m in &e.members {
        assert_eq!(
            mntr(&m.addr())
                .get("zk_digest_mismatches_count")
                .map(String::as_str),
            Some("0"),
            "{}: mntr zk_digest_mismatches_count",
            m.name()
        );
    }
    // Every acknowledged create on every server; identical trees; the ephemerals held.
    let trees: Vec<Tree> = e.addrs().iter().map(|a| tree_of(a)).collect();
    for (i, tree) in trees.iter().enumerate() {
        let name = e.members[i].name();
        for c in &clients {
            let seen = c.seen.lock().unwrap();
            let lost: Vec<&String> = seen
                .acked
                .iter()
                .filter(|p| !tree.contains_key(*p))
                .collect();
            assert!(
                lost.is_empty(),
                "{name} lost {} acknowledged creates of client {}, e.g. {:?}",
                lost.len(),
                c.index,
                &lost[..lost.len().min(5)]
            );
            let eph = format!("/roll/e{}", c.index);
            let owner = tree.get(&eph).map(|(_, st)| st[3]);
            assert_eq!(owner, Some(c.session), "{name}: {eph} and its owner");
        }
    }
    for i in 1..3 {
        if trees[i] != trees[0] {
            let differ: Vec<&String> = trees[0]
                .keys()
                .chain(trees[i].keys())
                .filter(|k| trees[0].get(*k) != trees[i].get(*k))
                .take(5)
                .collect();
            panic!(
                "{} and {} differ ({} vs {} znodes), e.g. at {differ:?}",
                e.members[0].name(),
                e.members[i].name(),
                trees[0].len(),
                trees[i].len()
            );
        }
    }
    eprintln!(
        "{} znodes identical on all three servers; {} creates acknowledged",
        trees[0].len(),
        total_acked(&clients)
    );

    // Closing the sessions (the client closes its session when its last handle goes)
    // removes their ephemerals everywhere.
    drop(clients);
    let deadline = Instant::now() + REJOIN_LIMIT;
    let ephemerals: Vec<String> = (0..CLIENTS).map(|i| format!("/roll/e{i}")).collect();
    for addr in e.addrs() {
        loop {
            let mut conn = raw_conn(&addr);
            let reply = conn
                .call(raw::OP_SYNC, &Enc::new().string("/").finish())
                .unwrap_or_else(|err| panic!("sync on {addr}: {err}"));
            assert_eq!(reply.err, OK, "sync on {addr}");
            let got = conn
                .get_many(&ephemerals)
                .unwrap_or_else(|err| panic!("getData of the ephemerals on {addr}: {err}"));
            conn.close();
            if got.iter().all(|r| *r == Err(raw::ERR_NO_NODE)) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ephemerals of closed sessions stay on {addr}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    rt.shutdown_timeout(Duration::from_secs(5));
}

/// The first start of three JVMs can take a while on a small machine.
fn wait_healthy_after_start(e: &mut Mixed) -> usize {
    e.wait_serving(3, Duration::from_secs(90));
    // /roll/steps does not exist yet: only the serving and mntr part of the checks here.
    let deadline = Instant::now() + REJOIN_LIMIT;
    loop {
        let leader = e.wait_serving(3, REJOIN_LIMIT);
        let synced = mntr(&e.members[leader].addr())
            .get("zk_synced_followers")
            .cloned();
        if synced.as_deref() == Some("2") {
            return leader;
        }
        assert!(
            Instant::now() < deadline,
            "the Java leader reports zk_synced_followers {synced:?}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}
