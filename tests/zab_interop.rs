//! zkrs's Zab codecs (`zkrs::zab::wire`) against a real Apache ZooKeeper 3.8 quorum peer.
//!
//! The ensemble is three servers: server.1 is this test, server.2 is absent (its ports are
//! free and nobody listens), server.3 is a Java `QuorumPeerMain` with myid 3. The test
//! speaks only through `zkrs::zab::wire` over std TcpStreams:
//! 1. Election: it dials Java's election port (Java, the bigger sid, drops that connection
//!    and dials back), accepts Java's connections, checks its initiation message and
//!    notifications, and votes for server 3, which with Java's own vote is a quorum: Java
//!    decides LEADING.
//! 2. Zab: it joins as follower 1 (FOLLOWERINFO, LEADERINFO, ACKEPOCH, DIFF, NEWLEADER, ACK,
//!    UPTODATE, ACK) and answers PINGs.
//! 3. Broadcast: a client creates a znode on Java; the createSession and create txns are
//!    proposed to us, and they can only commit with our ACK (the quorum is {1, 3}).
//!
//! Needs `java` and Debian's `zookeeper` package; without them the test fails and says so.

mod common;
#[path = "common/javapeer.rs"]
mod javapeer;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use zkrs::zab::wire::{
    self, decode_election_frame, decode_initiation, packet, AckEpoch, Initiation, LeaderInfo,
    LearnerInfo, QuorumDecoder, QuorumPacket, ZAB_PROTOCOL_VERSION,
};
use zkrs::zab::{make_zxid, Member, Notification, PeerState, QuorumConfig, Vote};

use common::raw::{self, Enc, Raw};
use javapeer::JavaPeer;

const TICK_MS: u64 = 200;
/// Bound on the whole test; each wait below has its own, smaller bound too.
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// How long one expected message may take.
const STEP_LIMIT: Duration = Duration::from_secs(10);
/// Socket read timeout: reads loop on it, checking their deadline.
const POLL: Duration = Duration::from_millis(50);

const OP_CREATE_SESSION: i32 = -10;
const OP_CREATE: i32 = 1;

/// Prints the Java peer's log if the test panics (declared after the peer, so it is dropped
/// while unwinding before the peer is killed and its directory removed).
struct LogOnPanic(std::path::PathBuf);

impl Drop for LogOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.0).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            eprintln!(
                "---- Java peer log ({}) ----\n{}\n---- end of Java peer log ----",
                self.0.display(),
                lines[lines.len().saturating_sub(200)..].join("\n")
            );
        }
    }
}

fn free_port() -> u16 {
    common::free_port()
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn member(id: u64, quorum_port: u16, election_port: u16) -> Member {
    Member {
        id,
        host: "127.0.0.1".into(),
        quorum_port,
        election_port,
        observer: false,
        client: None,
    }
}

/// Reads into `buf` until `decode` yields a record or `deadline` passes.
fn read_until<T>(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    deadline: Instant,
    what: &str,
    mut decode: impl FnMut(&mut BytesMut) -> Result<Option<T>, wire::WireError>,
) -> Result<T, String> {
    let mut chunk = [0u8; 8192];
    loop {
        match decode(buf) {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => return Err(format!("{what}: malformed: {e}")),
        }
        if Instant::now() > deadline {
            return Err(format!("{what}: timed out ({} bytes buffered)", buf.len()));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("{what}: connection closed")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("{what}: {e}")),
        }
    }
}

// ---- election side -----------------------------------------------------------------------

/// What the election thread saw on the connections Java made to us.
#[derive(Debug)]
enum ElectionEvent {
    Accepted { init: Initiation },
    Notification { conn: usize, n: Notification },
    Closed { conn: usize, why: String },
}

/// Accepts Java's connections to our election port; one reader thread per connection
/// forwards its initiation message and notifications. Writers are kept for the main thread.
/// Once `vote` is set, every reader answers each LOOKING notification with that vote in the
/// sender's round, so the vote survives Java replacing its connection (it resends its last
/// notification on a new one). No ping-pong: Java answers a LOOKING vote only when it is not
/// looking itself or our round is behind, and we answer only LOOKING ones.
struct ElectionSide {
    events: Receiver<ElectionEvent>,
    writers: Arc<Mutex<Vec<TcpStream>>>,
    vote: Arc<Mutex<Option<Notification>>>,
    stop: Arc<AtomicBool>,
}

impl ElectionSide {
    fn start(listener: TcpListener) -> ElectionSide {
        let (tx, events) = channel();
        let writers = Arc::new(Mutex::new(Vec::new()));
        let vote = Arc::new(Mutex::new(None));
        let stop = Arc::new(AtomicBool::new(false));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let (w, v, s) = (writers.clone(), vote.clone(), stop.clone());
        std::thread::spawn(move || accept_loop(listener, tx, w, v, s));
        ElectionSide {
            events,
            writers,
            vote,
            stop,
        }
    }

    /// Sends one framed notification on connection `conn`.
    fn send(&self, conn: usize, n: &Notification) -> std::io::Result<()> {
        let frame = wire::notification_frame(n).expect("encode notification");
        let mut writers = self.writers.lock().unwrap();
        writers[conn].write_all(&frame)
    }

    /// How many connections Java has made to us so far.
    fn accepted(&self) -> usize {
        self.writers.lock().unwrap().len()
    }

    fn next(&self, deadline: Instant) -> ElectionEvent {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.events.recv_timeout(left) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => panic!("no election event in time"),
            Err(RecvTimeoutError::Disconnected) => panic!("election thread ended"),
        }
    }
}

impl Drop for ElectionSide {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(
    listener: TcpListener,
    tx: Sender<ElectionEvent>,
    writers: Arc<Mutex<Vec<TcpStream>>>,
    vote: Arc<Mutex<Option<Notification>>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).ok();
                stream.set_nodelay(true).ok();
                stream.set_read_timeout(Some(POLL)).ok();
                let conn = {
                    let mut w = writers.lock().unwrap();
                    w.push(stream.try_clone().expect("clone election stream"));
                    w.len() - 1
                };
                let (tx, vote, stop) = (tx.clone(), vote.clone(), stop.clone());
                std::thread::spawn(move || read_election_conn(conn, stream, tx, vote, stop));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

fn read_election_conn(
    conn: usize,
    mut stream: TcpStream,
    tx: Sender<ElectionEvent>,
    vote: Arc<Mutex<Option<Notification>>>,
    stop: Arc<AtomicBool>,
) {
    let mut buf = BytesMut::new();
    let far = Instant::now() + TEST_LIMIT;
    let init = match read_until(&mut stream, &mut buf, far, "initiation", decode_initiation) {
        Ok(init) => init,
        Err(why) => {
            let _ = tx.send(ElectionEvent::Closed { conn, why });
            return;
        }
    };
    let _ = tx.send(ElectionEvent::Accepted { init });
    while !stop.load(Ordering::SeqCst) {
        let deadline = Instant::now() + Duration::from_millis(500);
        match read_until(
            &mut stream,
            &mut buf,
            deadline,
            "election frame",
            decode_election_frame,
        ) {
            Ok(payload) => {
                let ev = match wire::decode_notification(&payload) {
                    Ok(n) => {
                        let ours = vote.lock().unwrap().clone();
                        if let (Some(mut ours), PeerState::Looking) = (ours, n.state) {
                            ours.vote.election_epoch = n.vote.election_epoch;
                            let frame = wire::notification_frame(&ours).expect("encode vote");
                            // A failed write shows up as Closed on the next read.
                            let _ = stream.write_all(&frame);
                        }
                        ElectionEvent::Notification { conn, n }
                    }
                    Err(e) => ElectionEvent::Closed {
                        conn,
                        why: format!("bad notification: {e}"),
                    },
                };
                if tx.send(ev).is_err() {
                    return;
                }
            }
            Err(why) if why.contains("timed out") => {}
            Err(why) => {
                let _ = tx.send(ElectionEvent::Closed { conn, why });
                return;
            }
        }
    }
}

// ---- quorum side ---------------------------------------------------------------------------

struct Quorum {
    stream: TcpStream,
    buf: BytesMut,
    decoder: QuorumDecoder,
}

impl Quorum {
    fn send(&mut self, p: &QuorumPacket) {
        self.stream
            .write_all(&p.to_bytes())
            .unwrap_or_else(|e| panic!("send {}: {e}", wire::packet_name(p.kind)));
    }

    fn recv(&mut self, deadline: Instant) -> Result<QuorumPacket, String> {
        let decoder = &mut self.decoder;
        read_until(
            &mut self.stream,
            &mut self.buf,
            deadline,
            "quorum packet",
            |b| decoder.decode(b),
        )
    }

    /// The next packet that is not a PING (PINGs during sync are ignored, as Java's learner
    /// does).
    fn recv_skipping_pings(&mut self, deadline: Instant) -> QuorumPacket {
        loop {
            let p = self.recv(deadline).unwrap_or_else(|e| panic!("{e}"));
            if p.kind != packet::PING {
                return p;
            }
        }
    }
}

/// A packet the follower thread saw after UPTODATE (PINGs are answered, not reported).
#[derive(Debug, Clone)]
struct Seen {
    kind: i32,
    zxid: i64,
    data: Bytes,
}

/// Runs the broadcast phase as follower 1: echoes PINGs, ACKs PROPOSALs, reports everything
/// else; ends on `stop` or when the connection fails.
fn follow(mut q: Quorum, tx: Sender<Result<Seen, String>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let p = match q.recv(Instant::now() + Duration::from_millis(500)) {
            Ok(p) => p,
            Err(e) if e.contains("timed out") => continue,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        match p.kind {
            packet::PING => {
                // Echo the zxid; no sessions of ours to touch (empty data, not null: the
                // leader reads it as a stream).
                q.send(&QuorumPacket::with_data(packet::PING, p.zxid, Bytes::new()));
                continue;
            }
            packet::PROPOSAL => q.send(&QuorumPacket::new(packet::ACK, p.zxid)),
            _ => {}
        }
        let seen = Seen {
            kind: p.kind,
            zxid: p.zxid,
            data: p.data.clone().unwrap_or_default(),
        };
        if tx.send(Ok(seen)).is_err() {
            return;
        }
    }
}

/// `TxnHeader { long clientId; int cxid; long zxid; long time; int type; }` decoded by hand.
#[derive(Debug)]
struct TxnHeader {
    client_id: i64,
    cxid: i32,
    zxid: i64,
    time_ms: i64,
    op: i32,
}

fn txn_header(data: &[u8]) -> TxnHeader {
    assert!(
        data.len() >= 32,
        "txn of {} bytes has no TxnHeader",
        data.len()
    );
    let long = |at: usize| i64::from_be_bytes(data[at..at + 8].try_into().unwrap());
    let int = |at: usize| i32::from_be_bytes(data[at..at + 4].try_into().unwrap());
    TxnHeader {
        client_id: long(0),
        cxid: int(8),
        zxid: long(12),
        time_ms: long(20),
        op: int(28),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn dial_until(port: u16, deadline: Instant, what: &str) -> TcpStream {
    loop {
        match TcpStream::connect_timeout(&addr(port), Duration::from_secs(1)) {
            Ok(s) => {
                s.set_nodelay(true).ok();
                s.set_read_timeout(Some(POLL)).ok();
                s.set_write_timeout(Some(STEP_LIMIT)).ok();
                return s;
            }
            Err(e) if Instant::now() > deadline => panic!("{what} on port {port}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

#[test]
fn java_leader_with_zkrs_follower_codecs() {
    if let Err(e) = JavaPeer::check_available() {
        panic!(
            "this test needs Apache ZooKeeper 3.8 and Java: {e}. Install Debian's `zookeeper` \
             package (apt-get install zookeeper), as CI does."
        );
    }
    let test_deadline = Instant::now() + TEST_LIMIT;
    let step = || Instant::now() + STEP_LIMIT;

    let election_listener = TcpListener::bind("127.0.0.1:0").expect("bind election port");
    let e1 = election_listener.local_addr().unwrap().port();
    let (q1, q2, e2, q3, e3, c3) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let config = QuorumConfig::new(
        vec![member(1, q1, e1), member(2, q2, e2), member(3, q3, e3)],
        0,
    );
    let config_text = wire::config_to_zk_string(&config);
    let mut zoo_cfg = vec![
        format!("tickTime={TICK_MS}"),
        "initLimit=10".into(),
        "syncLimit=5".into(),
        format!("clientPort={c3}"),
        "clientPortAddress=127.0.0.1".into(),
        "admin.enableServer=false".into(),
        "4lw.commands.whitelist=*".into(),
    ];
    for m in &config.members {
        zoo_cfg.push(format!(
            "server.{}=127.0.0.1:{}:{}",
            m.id, m.quorum_port, m.election_port
        ));
    }
    let election = ElectionSide::start(election_listener);
    let mut peer = JavaPeer::start(3, &zoo_cfg, &[]).unwrap_or_else(|e| panic!("{e}"));
    let _log = LogOnPanic(peer.log_path());

    // Java prints its config exactly as our encoder does (static config: version 0, no
    // client address since clientPort is the static kind).
    let java_config = format!(
        "server.1=127.0.0.1:{q1}:{e1}:participant\n\
         server.2=127.0.0.1:{q2}:{e2}:participant\n\
         server.3=127.0.0.1:{q3}:{e3}:participant\n\
         version=0"
    );
    assert_eq!(config_text, java_config);

    // -- Election ----------------------------------------------------------------------
    // Dial Java and send our initiation message plus a vote in one write. Java, the bigger
    // sid, reads the header, closes this socket and dials us instead.
    let our_vote = |election_epoch: i64| Notification {
        state: PeerState::Looking,
        vote: Vote {
            leader: 3,
            zxid: 0,
            election_epoch,
            peer_epoch: 0,
        },
        version: wire::NOTIFICATION_VERSION,
        config: Some(config_text.clone()),
    };
    let accepted_before_dial = election.accepted();
    let mut dialed = dial_until(e3, test_deadline, "Java's election port");
    let mut hello = BytesMut::new();
    Initiation::v1(1, format!("127.0.0.1:{e1}"))
        .encode(&mut hello)
        .unwrap();
    hello.extend_from_slice(&wire::notification_frame(&our_vote(1)).unwrap());
    dialed.write_all(&hello).expect("send initiation");
    let closed_by = step();
    let mut scratch = [0u8; 64];
    loop {
        match dialed.read(&mut scratch) {
            Ok(0) => break,
            Ok(n) => panic!("Java answered our initiation with {n} bytes; it never should"),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                assert!(
                    Instant::now() < closed_by,
                    "Java kept our (smaller sid) connection"
                );
            }
            Err(_) => break, // reset: closed as well
        }
    }
    let _ = dialed.shutdown(Shutdown::Both);

    // Java dials us back (it may have dialed before too, from its own first broadcast; it
    // drops those when our dial arrives). Take the first notification on a connection made
    // after our dial.
    let (conn, first) = loop {
        match election.next(step()) {
            ElectionEvent::Accepted { init, .. } => {
                assert_eq!(
                    init,
                    Initiation::v1(3, format!("127.0.0.1:{e3}")),
                    "Java's initiation message"
                );
                assert_eq!(init.addresses().unwrap(), vec![("127.0.0.1".into(), e3)]);
            }
            ElectionEvent::Notification { conn, n } if conn >= accepted_before_dial => {
                break (conn, n)
            }
            _ => {}
        }
    };
    assert_eq!(first.state, PeerState::Looking, "{first:?}");
    assert_eq!(
        (first.vote.leader, first.vote.zxid, first.vote.peer_epoch),
        (3, 0, 0),
        "Java votes for itself: {first:?}"
    );
    assert!(first.vote.election_epoch >= 1, "{first:?}");
    assert_eq!(first.version, 2);
    assert_eq!(first.config.as_deref(), Some(java_config.as_str()));
    let parsed = wire::parse_zk_config(first.config.as_deref().unwrap()).unwrap();
    assert_eq!(parsed, config, "our parser reads Java's config back");

    // Our vote for 3 in Java's round: with Java's own vote that is a quorum of {1, 2, 3}.
    // From now on the election thread repeats it to every LOOKING notification as well.
    *election.vote.lock().unwrap() = Some(our_vote(first.vote.election_epoch));
    if let Err(e) = election.send(conn, &our_vote(first.vote.election_epoch)) {
        eprintln!("vote on election connection {conn} failed ({e}); Java redials");
    }

    // -- Zab handshake as follower 1 -----------------------------------------------------
    // Java opens its quorum port once it decides to lead.
    let stream = dial_until(q3, step(), "Java's quorum port (did it decide to lead?)");
    let mut q = Quorum {
        stream,
        buf: BytesMut::new(),
        decoder: QuorumDecoder::default(),
    };
    let info = LearnerInfo {
        server_id: 1,
        protocol_version: ZAB_PROTOCOL_VERSION,
        config_version: 0,
    };
    q.send(&QuorumPacket::with_data(
        packet::FOLLOWERINFO,
        make_zxid(0, 0),
        info.encode(),
    ));
    let leader_info = q.recv_skipping_pings(step());
    assert_eq!(leader_info.kind, packet::LEADERINFO, "{leader_info:?}");
    let new_epoch = zkrs::zab::epoch_of(leader_info.zxid);
    assert_eq!(new_epoch, 1, "first epoch of a fresh ensemble");
    assert_eq!(zkrs::zab::counter_of(leader_info.zxid), 0);
    assert_eq!(
        LeaderInfo::decode(leader_info.data_bytes()),
        Ok(LeaderInfo {
            protocol_version: ZAB_PROTOCOL_VERSION
        })
    );
    assert_eq!(leader_info.authinfo, None);
    // New epoch > our accepted epoch 0: ACKEPOCH carries our current epoch 0 and our last
    // zxid 0.
    q.send(&QuorumPacket::with_data(
        packet::ACKEPOCH,
        0,
        AckEpoch { current_epoch: 0 }.encode(),
    ));
    let diff = q.recv_skipping_pings(step());
    assert_eq!(
        (diff.kind, diff.zxid),
        (packet::DIFF, 0),
        "both sides are empty: DIFF at zxid 0, got {diff:?}"
    );
    let new_leader = q.recv_skipping_pings(step());
    assert_eq!(new_leader.kind, packet::NEWLEADER, "{new_leader:?}");
    assert_eq!(new_leader.zxid, make_zxid(new_epoch, 0));
    let nl_config = wire::decode_new_leader_config(new_leader.data_bytes()).unwrap();
    let nl_parsed = wire::parse_zk_config(&nl_config).unwrap();
    assert_eq!(
        nl_parsed.members, config.members,
        "NEWLEADER config: {nl_config}"
    );
    // ZOOKEEPER-1783 re-versions a version-0 config with the NEWLEADER zxid only when
    // reconfigEnabled is set (setLastSeenQuorumVerifier is a no-op otherwise): by default
    // NEWLEADER carries the static config as it is, version 0.
    assert_eq!(nl_config, java_config);
    assert_eq!(nl_parsed.version, 0);
    q.send(&QuorumPacket::new(packet::ACK, make_zxid(new_epoch, 0)));
    let up_to_date = q.recv_skipping_pings(step());
    assert_eq!(
        (up_to_date.kind, up_to_date.zxid),
        (packet::UPTODATE, -1),
        "{up_to_date:?}"
    );
    q.send(&QuorumPacket::new(packet::ACK, make_zxid(new_epoch, 0)));

    // -- Broadcast ---------------------------------------------------------------------
    let (seen_tx, seen) = channel();
    let stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let stop = stop.clone();
        std::thread::spawn(move || follow(q, seen_tx, stop))
    };
    let client_addr = format!("127.0.0.1:{c3}");
    let started_ms = now_ms();
    // The session is created by a txn: the handshake answers only after we ACKed it.
    let mut client = Raw::connect(&client_addr, 4000);
    let path = "/zab-interop";
    let body = Enc::new()
        .string(path)
        .buffer(b"hello")
        .open_acl()
        .int(raw::CREATE_PERSISTENT)
        .finish();
    let create_xid = client.send(raw::OP_CREATE, &body);
    let reply = client.wait_reply(create_xid);
    assert_eq!(reply.err, raw::OK, "create {path} on Java: {reply:?}");
    let mut d = reply.dec();
    assert_eq!(d.string(), path);
    let finished_ms = now_ms();

    // Collect what the leader sent us: two proposals, each followed by its commit.
    let mut packets: Vec<Seen> = Vec::new();
    let collect_by = step();
    while packets.iter().filter(|p| p.kind == packet::COMMIT).count() < 2 {
        let left = collect_by.saturating_duration_since(Instant::now());
        match seen.recv_timeout(left) {
            Ok(Ok(p)) => packets.push(p),
            Ok(Err(e)) => panic!("quorum connection failed: {e}; saw {packets:?}"),
            Err(_) => panic!("no two COMMITs in time; saw {packets:?}"),
        }
    }
    let kinds: Vec<(i32, i64)> = packets.iter().map(|p| (p.kind, p.zxid)).collect();
    let z1 = make_zxid(new_epoch, 1);
    let z2 = make_zxid(new_epoch, 2);
    assert_eq!(
        kinds,
        vec![
            (packet::PROPOSAL, z1),
            (packet::COMMIT, z1),
            (packet::PROPOSAL, z2),
            (packet::COMMIT, z2)
        ],
        "proposals in zxid order in the new epoch, each committed after our ACK"
    );
    let session = txn_header(&packets[0].data);
    assert_eq!(session.op, OP_CREATE_SESSION, "{session:?}");
    assert_eq!(session.client_id, client.session_id, "{session:?}");
    assert_eq!(session.cxid, 0);
    assert_eq!(session.zxid, z1);
    assert!(
        (started_ms - 5_000..=finished_ms + 5_000).contains(&session.time_ms),
        "{session:?}"
    );
    // CreateSessionTxn { int timeOut }: the negotiated timeout.
    assert_eq!(
        i32::from_be_bytes(packets[0].data[32..36].try_into().unwrap()),
        client.timeout_ms
    );
    let create = txn_header(&packets[2].data);
    assert_eq!(create.op, OP_CREATE, "{create:?}");
    assert_eq!(create.client_id, client.session_id);
    assert_eq!(create.cxid, create_xid);
    assert_eq!(create.zxid, z2);
    assert!(
        create.time_ms >= session.time_ms,
        "{create:?} after {session:?}"
    );
    // CreateTxn starts with the path.
    let txn = &packets[2].data[32..];
    let path_len = i32::from_be_bytes(txn[..4].try_into().unwrap()) as usize;
    assert_eq!(&txn[4..4 + path_len], path.as_bytes());
    assert_eq!(reply.zxid, z2, "the client saw the create's zxid");

    let srvr = common::four_letter_opt(&client_addr, "srvr").expect("srvr on Java");
    assert!(srvr.contains("Mode: leader"), "{srvr}");

    // -- Election, after the fact --------------------------------------------------------
    // A LOOKING vote now gets Java's decided vote back, in state LEADING, with its peer
    // epoch updated to the new epoch. Java's newest connection to us is the live one.
    let newest = election.accepted() - 1;
    election
        .send(newest, &our_vote(first.vote.election_epoch))
        .unwrap_or_else(|e| panic!("vote on election connection {newest}: {e}"));
    let leading = loop {
        match election.next(step()) {
            ElectionEvent::Notification { n, .. } if n.state != PeerState::Looking => break n,
            ElectionEvent::Closed { conn, why } if conn == newest => {
                panic!("election connection closed: {why}")
            }
            _ => {}
        }
    };
    assert_eq!(leading.state, PeerState::Leading, "{leading:?}");
    assert_eq!(leading.vote.leader, 3);
    assert_eq!(leading.vote.peer_epoch, i64::from(new_epoch));
    assert_eq!(leading.vote.election_epoch, first.vote.election_epoch);
    let leading_config = wire::parse_zk_config(leading.config.as_deref().unwrap()).unwrap();
    assert_eq!(leading_config.members, config.members);

    // The follower connection is still healthy (PINGs answered throughout).
    stop.store(true, Ordering::SeqCst);
    follower.join().expect("follower thread");
    while let Ok(p) = seen.try_recv() {
        if let Err(e) = p {
            panic!("quorum connection failed late: {e}");
        }
    }
    assert_eq!(peer.exited(), None, "Java peer exited");
    // Java parsed everything we sent: our initiation header, our notifications and the
    // config text inside them (it only logs these failures).
    let log = std::fs::read_to_string(peer.log_path()).unwrap_or_default();
    for complaint in [
        "Initial message parsing error",
        "partial / malformed response",
        "Something went wrong while processing config",
        "unexpected quorum packet",
    ] {
        assert!(!log.contains(complaint), "Java logged {complaint:?}");
    }
    assert!(
        log.contains("n.sid:1, n.state:LOOKING, n.leader:3"),
        "Java logged no notification from us"
    );
    assert!(
        Instant::now() < test_deadline,
        "test ran past {TEST_LIMIT:?}"
    );
}
