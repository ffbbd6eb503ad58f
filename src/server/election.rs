//! The election port (3888): ZooKeeper's QuorumCnxManager connection rules and framing
//! around the pure fast-leader-election core (`zab::election`).
//!
//! Plain threads with blocking sockets, as ZooKeeper runs it: election traffic is a few
//! small messages per round, far from any hot path, and it must keep answering LOOKING peers
//! while this server follows or leads. One thread runs the election core; one accepts;
//! each peer connection has a reader and a writer thread. Only a connection initiated by
//! the larger server id towards the smaller one is kept (ZAB-WIRE.md 1.3); each peer's send
//! queue holds only the latest notification (capacity 1, as ZooKeeper's).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use crossbeam_channel::{Receiver, Sender};

use crate::zab::election::{Action, Election, Input};
use crate::zab::wire;
use crate::zab::{Notification, PeerState, QuorumConfig, ServerId, Vote};

/// ZooKeeper's `cnxTO` (zookeeper.cnxTimeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What the ordering core tells the election.
#[derive(Debug)]
pub enum Command {
    /// Look for a leader (again): our log ends at `last_zxid`, our current epoch is `epoch`.
    Look { last_zxid: i64, epoch: i64 },
    /// We synced with (or became) the leader of `epoch` (ZooKeeper's updateElectionVote).
    Settled { epoch: i64 },
}

/// The ordering core's end of the election.
pub struct ElectionHandle {
    commands: Sender<Event>,
    decisions: Receiver<(PeerState, Vote)>,
}

impl ElectionHandle {
    pub fn command(&self, command: Command) {
        let _ = self.commands.send(Event::Command(command));
    }

    /// A decision, if one has been made since the last call.
    pub fn try_decision(&self) -> Option<(PeerState, Vote)> {
        self.decisions.try_recv().ok()
    }
}

enum Event {
    Received(ServerId, Notification),
    Command(Command),
}

/// One peer's outgoing side: the latest notification not yet written, and whether a
/// connection is up.
#[derive(Default)]
struct Slot {
    pending: Option<Bytes>,
    /// The stream the writer thread writes to, while connected.
    stream: Option<TcpStream>,
    /// A connection attempt is in flight (one at a time per peer).
    connecting: bool,
    /// Bumped per connection, so a dying writer does not clear a newer stream.
    generation: u64,
}

struct Peers {
    me: ServerId,
    my_address: String,
    config: QuorumConfig,
    slots: Mutex<HashMap<ServerId, Slot>>,
    wake: Condvar,
    events: Sender<Event>,
}

impl Peers {
    fn address_of(&self, sid: ServerId) -> Option<SocketAddr> {
        let member = self.config.member(sid)?;
        (member.host.as_str(), member.election_port)
            .to_socket_addrs()
            .ok()?
            .next()
    }

    /// Queues `frame` for `sid` (replacing what is still unsent) and makes sure a
    /// connection is being set up.
    fn send(self: &Arc<Self>, sid: ServerId, frame: Bytes) {
        {
            let Ok(mut slots) = self.slots.lock() else {
                return;
            };
            slots.entry(sid).or_default().pending = Some(frame);
        }
        self.wake.notify_all();
        self.connect_one(sid);
    }

    /// Whether some peer's send queue is empty (ZooKeeper's haveDelivered).
    fn have_delivered(&self) -> bool {
        let Ok(slots) = self.slots.lock() else {
            return true;
        };
        self.config
            .members
            .iter()
            .filter(|m| m.id != self.me)
            .any(|m| slots.get(&m.id).is_none_or(|s| s.pending.is_none()))
    }

    fn connect_all(self: &Arc<Self>) {
        for member in &self.config.members {
            if member.id != self.me {
                self.connect_one(member.id);
            }
        }
    }

    /// Dials `sid` unless connected or already dialing. A larger sid keeps the connection;
    /// towards a larger sid we only announce ourselves (it then dials us).
    fn connect_one(self: &Arc<Self>, sid: ServerId) {
        {
            let Ok(mut slots) = self.slots.lock() else {
                return;
            };
            let slot = slots.entry(sid).or_default();
            if slot.stream.is_some() || slot.connecting {
                return;
            }
            slot.connecting = true;
        }
        let peers = self.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("zkrs-elect-dial-{sid}"))
            .spawn(move || {
                let result = peers.dial(sid);
                if let Ok(mut slots) = peers.slots.lock() {
                    slots.entry(sid).or_default().connecting = false;
                }
                if let Err(e) = result {
                    log::debug!("election: cannot connect to server {sid}: {e}");
                }
            });
        if spawned.is_err() {
            if let Ok(mut slots) = self.slots.lock() {
                slots.entry(sid).or_default().connecting = false;
            }
        }
    }

    fn dial(self: &Arc<Self>, sid: ServerId) -> std::io::Result<()> {
        let address = self.address_of(sid).ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no election address")
        })?;
        let mut stream = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
        let _ = stream.set_nodelay(true);
        let mut header = BytesMut::new();
        wire::Initiation::v1(self.me, self.my_address.clone())
            .encode(&mut header)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        // The acceptor reads the header with one read(): send it in one write.
        stream.write_all(&header)?;
        if sid > self.me {
            // Only the larger id keeps a connection: it dials us back.
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
        self.adopt(sid, stream);
        Ok(())
    }

    /// Runs a reader and a writer thread over `stream` to `sid`, replacing any older
    /// connection to it.
    fn adopt(self: &Arc<Self>, sid: ServerId, stream: TcpStream) {
        let (Ok(reader), Ok(writer)) = (stream.try_clone(), stream.try_clone()) else {
            return;
        };
        let generation = {
            let Ok(mut slots) = self.slots.lock() else {
                return;
            };
            let slot = slots.entry(sid).or_default();
            if let Some(old) = slot.stream.take() {
                let _ = old.shutdown(Shutdown::Both);
            }
            slot.generation += 1;
            slot.stream = Some(stream);
            slot.generation
        };
        self.wake.notify_all();
        let peers = self.clone();
        let _ = std::thread::Builder::new()
            .name(format!("zkrs-elect-send-{sid}"))
            .spawn(move || peers.write_loop(sid, generation, writer));
        let peers = self.clone();
        let _ = std::thread::Builder::new()
            .name(format!("zkrs-elect-recv-{sid}"))
            .spawn(move || {
                peers.clone().read_loop(sid, reader);
                peers.drop_connection(sid, generation);
            });
    }

    fn write_loop(self: Arc<Self>, sid: ServerId, generation: u64, mut stream: TcpStream) {
        loop {
            let frame = {
                let Ok(mut slots) = self.slots.lock() else {
                    return;
                };
                loop {
                    let slot = slots.entry(sid).or_default();
                    if slot.generation != generation || slot.stream.is_none() {
                        return;
                    }
                    if let Some(frame) = slot.pending.take() {
                        break frame;
                    }
                    slots = match self.wake.wait_timeout(slots, Duration::from_secs(1)) {
                        Ok((guard, _)) => guard,
                        Err(_) => return,
                    };
                }
            };
            if let Err(e) = stream.write_all(&frame) {
                log::debug!("election: write to server {sid} failed: {e}");
                self.drop_connection(sid, generation);
                return;
            }
        }
    }

    fn drop_connection(&self, sid: ServerId, generation: u64) {
        if let Ok(mut slots) = self.slots.lock() {
            let slot = slots.entry(sid).or_default();
            if slot.generation == generation {
                if let Some(stream) = slot.stream.take() {
                    let _ = stream.shutdown(Shutdown::Both);
                }
            }
        }
        self.wake.notify_all();
    }

    fn read_loop(self: Arc<Self>, sid: ServerId, mut stream: TcpStream) {
        let mut buf = BytesMut::new();
        let mut scratch = [0u8; 4096];
        loop {
            loop {
                match wire::decode_election_frame(&mut buf) {
                    Ok(Some(payload)) => match wire::decode_notification(&payload) {
                        Ok(n) => {
                            let _ = self.events.send(Event::Received(sid, n));
                        }
                        Err(e) => log::warn!("election: bad notification from {sid}: {e}"),
                    },
                    Ok(None) => break,
                    Err(e) => {
                        log::warn!("election: bad message from server {sid}: {e}");
                        let _ = stream.shutdown(Shutdown::Both);
                        return;
                    }
                }
            }
            match stream.read(&mut scratch) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&scratch[..n]),
            }
        }
    }

    fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        for stream in listener.incoming() {
            let Ok(stream) = stream else {
                continue;
            };
            let peers = self.clone();
            let _ = std::thread::Builder::new()
                .name("zkrs-elect-accept".into())
                .spawn(move || peers.handle_incoming(stream));
        }
    }

    fn handle_incoming(self: Arc<Self>, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_read_timeout(Some(CONNECT_TIMEOUT));
        let mut buf = BytesMut::new();
        let mut scratch = [0u8; 2100];
        let initiation = loop {
            match wire::decode_initiation(&mut buf) {
                Ok(Some(initiation)) => break initiation,
                Ok(None) => {}
                Err(e) => {
                    log::warn!("election: bad connection header: {e}");
                    return;
                }
            }
            match stream.read(&mut scratch) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&scratch[..n]),
            }
        };
        let _ = stream.set_read_timeout(None);
        let sid = initiation.sid();
        if self.config.member(sid).is_none() {
            log::warn!("election: connection from unknown server id {sid}, closing");
            return;
        }
        if sid < self.me {
            // The smaller id never keeps a connection it did not receive: drop whatever we
            // had to it (it may be a dead one the peer just restarted from) and dial it.
            drop(stream);
            if let Ok(mut slots) = self.slots.lock() {
                let slot = slots.entry(sid).or_default();
                if let Some(old) = slot.stream.take() {
                    let _ = old.shutdown(Shutdown::Both);
                }
                slot.generation += 1;
            }
            self.wake.notify_all();
            self.connect_one(sid);
            return;
        }
        if sid == self.me {
            log::warn!("election: a connection claims our own id {sid}; ignored");
            return;
        }
        // Bytes already read past the header are the first frames.
        if !buf.is_empty() {
            let mut rest = buf;
            while let Ok(Some(payload)) = wire::decode_election_frame(&mut rest) {
                if let Ok(n) = wire::decode_notification(&payload) {
                    let _ = self.events.send(Event::Received(sid, n));
                }
            }
        }
        self.adopt(sid, stream);
    }
}

/// Starts the election threads for server `me`, listening on `listen`.
pub fn start(
    me: ServerId,
    config: QuorumConfig,
    listen: SocketAddr,
) -> std::io::Result<ElectionHandle> {
    let listener = bind_retrying(listen)?;
    let (events_tx, events_rx) = crossbeam_channel::unbounded();
    let (decisions_tx, decisions_rx) = crossbeam_channel::unbounded();
    let my_address = config
        .member(me)
        .map(|m| format!("{}:{}", m.host, m.election_port))
        .unwrap_or_else(|| listen.to_string());
    let peers = Arc::new(Peers {
        me,
        my_address,
        config: config.clone(),
        slots: Mutex::new(HashMap::new()),
        wake: Condvar::new(),
        events: events_tx.clone(),
    });
    {
        let peers = peers.clone();
        std::thread::Builder::new()
            .name("zkrs-elect-listen".into())
            .spawn(move || peers.accept_loop(listener))?;
    }
    std::thread::Builder::new()
        .name("zkrs-election".into())
        .spawn(move || election_loop(me, config, peers, events_rx, decisions_tx))?;
    log::info!("election port {listen} open for server {me}");
    Ok(ElectionHandle {
        commands: events_tx,
        decisions: decisions_rx,
    })
}

/// ZooKeeper retries binding the election port (electionPortBindRetry); a restart may find
/// it in TIME_WAIT for a moment.
fn bind_retrying(listen: SocketAddr) -> std::io::Result<TcpListener> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(listen),
            socket2::Type::STREAM,
            None,
        )?;
        socket.set_reuse_address(true)?;
        match socket.bind(&listen.into()).and_then(|_| socket.listen(64)) {
            Ok(()) => return Ok(socket.into()),
            Err(e) if Instant::now() < deadline => {
                log::warn!("cannot bind the election port {listen} ({e}); retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("cannot bind the election port {listen}: {e}"),
                ))
            }
        }
    }
}

fn election_loop(
    me: ServerId,
    config: QuorumConfig,
    peers: Arc<Peers>,
    events: Receiver<Event>,
    decisions: Sender<(PeerState, Vote)>,
) {
    let started = Instant::now();
    let now_ms = || started.elapsed().as_millis() as u64;
    let config_text = wire::config_to_zk_string(&config);
    let mut election = Election::new(me, config, -1, -1);
    let mut looking = false;
    loop {
        let wait = match election.next_deadline_ms() {
            Some(deadline) => Duration::from_millis(deadline.saturating_sub(now_ms())),
            None => Duration::from_millis(500),
        };
        let input = match events.recv_timeout(wait) {
            Ok(Event::Received(from, notification)) => Input::Received {
                now_ms: now_ms(),
                from,
                notification,
            },
            Ok(Event::Command(Command::Look { last_zxid, epoch })) => {
                election.set_log_position(last_zxid, epoch);
                looking = true;
                Input::StartElection { now_ms: now_ms() }
            }
            Ok(Event::Command(Command::Settled { epoch })) => {
                election.update_peer_epoch(epoch);
                continue;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Input::Tick {
                now_ms: now_ms(),
                have_delivered: peers.have_delivered(),
            },
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        };
        let mut queue = std::collections::VecDeque::from([input]);
        while let Some(input) = queue.pop_front() {
            if !looking && matches!(input, Input::Tick { .. }) {
                continue;
            }
            for action in election.step(input) {
                match action {
                    Action::Send {
                        to,
                        mut notification,
                    } => {
                        notification.config = Some(config_text.clone());
                        if to == me {
                            queue.push_back(Input::Received {
                                now_ms: now_ms(),
                                from: me,
                                notification,
                            });
                            continue;
                        }
                        match wire::notification_frame(&notification) {
                            Ok(frame) => peers.send(to, frame),
                            Err(e) => log::error!("election: cannot encode a notification: {e}"),
                        }
                    }
                    Action::Decided { state, vote, .. } => {
                        log::info!(
                            "election decided: {} (leader {}, zxid 0x{:x}, peer epoch {}, round {})",
                            state.mode_name(),
                            vote.leader,
                            vote.zxid,
                            vote.peer_epoch,
                            vote.election_epoch
                        );
                        looking = false;
                        let _ = decisions.send((state, vote));
                    }
                    Action::ReconnectAll => peers.connect_all(),
                }
            }
        }
    }
}
