//! A deterministic simulation of Zab ensembles: the real election core
//! (`zab::election::Election`) and the real replica core (`zab::replica::Replica`) of every
//! server, on a simulated clock, network and disk, with simulated clients. Everything
//! random comes from one seed, so a seed replays a run exactly.
//!
//! - Clock: one event queue ordered by (time, sequence).
//! - Network: per pair of servers one quorum-port connection at a time, FIFO per direction
//!   with random delays; connections break (both ends told), and partitions block
//!   directions (one-way ones too). A message into a blocked direction stalls that
//!   direction for the rest of the connection, as TCP would (no gap, no reordering): the
//!   ends find out by their timeouts. Election notifications travel separately (FIFO per
//!   pair, lost across a partition, as a dead election connection loses them).
//! - Disk: per server a log (what the replica logged) and its durable part. Appends,
//!   truncations and snapshot installs complete in order, later; a crash keeps a random
//!   prefix of the pending operations and loses the rest. Epoch files are written
//!   synchronously (as the server writes them), so they are durable at once.
//! - Servers crash (process or machine) and restart from their durable log and epoch files.
//! - Clients connect to any serving server (refused by one behind what they have seen, as
//!   ZooKeeper refuses), pipeline writes, read, and sync then read.
//!
//! The checks (each a panic naming the broken property, caught by the runner):
//! at most one leader per epoch; every txn a replica applies is at the same position of
//! one global committed chain (committed prefixes identical everywhere) and durable on a
//! quorum when applied; every established leader's history extends the whole chain (no
//! acknowledged write is ever lost); no replica ACKs a proposal its durable log lacks, nor
//! NEWLEADER before its history and currentEpoch are durable; currentEpoch is written only
//! over a durable history; zxids strictly increase in every log and in the chain; client
//! history: writes in one total order (the chain), per-session FIFO, monotonic reads per
//! session, and a read after a sync sees every write acknowledged before the sync. In
//! liveness mode, after the faults heal a write must be acknowledged within
//! `Options::liveness_bound_ms`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::{BufMut, Bytes, BytesMut};

pub use crate::wal::sim::SimRng;
use crate::zab::broadcast::CommittedTxn;
use crate::zab::election::{self, Election};
use crate::zab::replica::{Action, Input, Msg, Params, Recovered, Replica};
use crate::zab::{counter_of, epoch_of, make_zxid, Member, PeerState, QuorumConfig, ServerId};

#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;

/// How a simulation runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Voters (ids 1..=servers).
    pub servers: usize,
    /// Observers (the ids after the voters).
    pub observers: usize,
    pub clients: usize,
    /// Whether the clients run a random workload (scenarios drive them by hand).
    pub client_load: bool,
    pub tick_ms: u64,
    pub init_limit: u64,
    pub sync_limit: u64,
    pub committed_log_capacity: usize,
    pub counter_limit: u32,
    pub net_delay_ms: (u64, u64),
    pub disk_delay_ms: (u64, u64),
    /// Per message, the chance (per mille) that its connection breaks.
    pub break_permille: u64,
    /// Random faults until here (0: none).
    pub faults_end_ms: u64,
    /// After the faults heal, a write must be acknowledged within this (0: no liveness
    /// check).
    pub liveness_bound_ms: u64,
    /// Print every event to stderr.
    pub trace: bool,
}

impl Options {
    pub fn new(servers: usize) -> Options {
        Options {
            servers,
            observers: 0,
            clients: 3,
            client_load: true,
            tick_ms: 100,
            init_limit: 10,
            sync_limit: 5,
            committed_log_capacity: 16,
            counter_limit: u32::MAX - crate::zab::COUNTER_MARGIN,
            net_delay_ms: (1, 8),
            disk_delay_ms: (1, 15),
            break_permille: 2,
            faults_end_ms: 0,
            liveness_bound_ms: 0,
            trace: std::env::var_os("ZKRS_SIM_TRACE").is_some(),
        }
    }
}

#[derive(Debug)]
enum Event {
    Tick(ServerId, u64),
    Deliver {
        pair: (ServerId, ServerId),
        generation: u64,
        from: ServerId,
        to: ServerId,
        msg: Msg,
    },
    Notify {
        from: ServerId,
        to: ServerId,
        incarnation: u64,
        notification: crate::zab::Notification,
    },
    ConnectDone {
        from: ServerId,
        to: ServerId,
        incarnation: u64,
    },
    ConnectFailed {
        from: ServerId,
        to: ServerId,
        incarnation: u64,
    },
    PeerClosed {
        at: ServerId,
        peer: ServerId,
        generation: u64,
        incarnation: u64,
    },
    DiskDone(ServerId, u64),
    ClientWake(usize),
    Restart(ServerId),
    Fault,
    Unblock(ServerId, ServerId),
    ReleaseDisk(ServerId, u64),
    Heal,
}

#[derive(Debug)]
enum DiskOp {
    Append(Vec<CommittedTxn>),
    Truncate(i64),
    Snapshot(i64, Vec<CommittedTxn>),
}

#[derive(Debug, Default)]
struct Conn {
    generation: u64,
    up: bool,
    /// Per direction (0: low id -> high id): stalled by a partition.
    stalled: [bool; 2],
    last_delivery_ms: [u64; 2],
}

struct Server {
    incarnation: u64,
    up: bool,
    replica: Option<Replica>,
    election: Option<Election>,
    /// The log as the replica sees it (written, maybe not durable), a full history.
    mem: Vec<CommittedTxn>,
    durable: Vec<CommittedTxn>,
    accepted_epoch: i64,
    current_epoch: i64,
    disk: VecDeque<DiskOp>,
    disk_held: bool,
    disk_scheduled: usize,
    disk_next_ms: u64,
    /// How many txns of `mem` are applied (served): always a prefix of the chain.
    applied: usize,
    sync_queue: VecDeque<(usize, u64)>,
}

impl Server {
    fn applied_zxid(&self) -> i64 {
        if self.applied == 0 {
            0
        } else {
            self.mem[self.applied - 1].zxid
        }
    }
}

#[derive(Debug, Default)]
struct Client {
    server: Option<ServerId>,
    next_seq: u32,
    /// Writes sent on this connection, not answered: (seq, issued at).
    outstanding: VecDeque<(u32, u64)>,
    /// A sync sent: the highest zxid acknowledged to anyone before it.
    sync_need: Option<i64>,
    /// Numbers this client's syncs (the server's queue may hold abandoned ones).
    sync_token: u64,
    last_seen: i64,
    /// The last seq of this client in the chain.
    chain_seq: Option<u32>,
}

/// What a run did, for the runner's totals.
#[derive(Debug, Default, Clone)]
pub struct Stats {
    pub events: u64,
    pub acked_writes: u64,
    pub reads: u64,
    pub syncs: u64,
    pub crashes: u64,
    pub partitions: u64,
    pub elections: u64,
    pub snaps: u64,
    pub truncs: u64,
    pub diffs: u64,
    pub informs: u64,
    pub chain_len: u64,
    pub writable_after_heal_ms: Option<u64>,
}

/// One simulated ensemble.
pub struct Sim {
    pub opts: Options,
    rng: SimRng,
    now_ms: u64,
    sequence: u64,
    events: BTreeMap<(u64, u64), Event>,
    config: QuorumConfig,
    params: Params,
    ids: Vec<ServerId>,
    servers: BTreeMap<ServerId, Server>,
    conns: BTreeMap<(ServerId, ServerId), Conn>,
    next_generation: u64,
    election_last_ms: BTreeMap<(ServerId, ServerId), u64>,
    /// Blocked directions (from, to).
    blocked: BTreeSet<(ServerId, ServerId)>,
    clients: Vec<Client>,
    /// The committed chain: every txn any replica applied, in order.
    chain: Vec<CommittedTxn>,
    /// The leader of each epoch.
    leaders: BTreeMap<i64, ServerId>,
    acked_max: i64,
    healed_at: Option<u64>,
    faults_on: bool,
    pub stats: Stats,
}

fn encode_write(client: usize, seq: u32) -> Bytes {
    let mut b = BytesMut::with_capacity(8);
    b.put_u32(client as u32);
    b.put_u32(seq);
    b.freeze()
}

fn decode_write(data: &[u8]) -> Option<(usize, u32)> {
    if data.len() != 8 {
        return None;
    }
    let client = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let seq = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    Some((client, seq))
}

/// A snapshot in the simulation: the whole history (zxid, len, data)*.
fn encode_state(txns: &[CommittedTxn]) -> Bytes {
    let mut b = BytesMut::new();
    for t in txns {
        b.put_i64(t.zxid);
        b.put_u32(t.data.len() as u32);
        b.put_slice(&t.data);
    }
    b.freeze()
}

fn decode_state(mut state: &[u8]) -> Vec<CommittedTxn> {
    let mut out = Vec::new();
    while !state.is_empty() {
        let zxid = i64::from_be_bytes(state[..8].try_into().expect("8 bytes"));
        let len = u32::from_be_bytes(state[8..12].try_into().expect("4 bytes")) as usize;
        out.push(CommittedTxn {
            zxid,
            data: Bytes::copy_from_slice(&state[12..12 + len]),
        });
        state = &state[12 + len..];
    }
    out
}

fn last_zxid(txns: &[CommittedTxn]) -> i64 {
    txns.last().map_or(0, |t| t.zxid)
}

pub(crate) fn member(id: ServerId) -> Member {
    Member {
        id,
        host: "sim".into(),
        quorum_port: 2888,
        election_port: 3888,
        observer: false,
        client: None,
    }
}

impl Sim {
    pub fn new(opts: Options, seed: u64) -> Sim {
        let ids: Vec<ServerId> = (1..=(opts.servers + opts.observers) as u64).collect();
        let voters = opts.servers as u64;
        let config = QuorumConfig::new(
            ids.iter()
                .map(|id| Member {
                    observer: *id > voters,
                    ..member(*id)
                })
                .collect(),
            0,
        );
        let mut params = Params::new(opts.tick_ms, opts.init_limit, opts.sync_limit);
        params.committed_log_capacity = opts.committed_log_capacity;
        params.counter_limit = opts.counter_limit;
        let mut servers = BTreeMap::new();
        for id in &ids {
            servers.insert(
                *id,
                Server {
                    incarnation: 0,
                    up: false,
                    replica: None,
                    election: None,
                    mem: Vec::new(),
                    durable: Vec::new(),
                    accepted_epoch: 0,
                    current_epoch: 0,
                    disk: VecDeque::new(),
                    disk_held: false,
                    disk_scheduled: 0,
                    disk_next_ms: 0,
                    applied: 0,
                    sync_queue: VecDeque::new(),
                },
            );
        }
        let clients = (0..opts.clients).map(|_| Client::default()).collect();
        Sim {
            rng: SimRng::new(seed ^ 0x005e_ed0f_2ab5),
            now_ms: 0,
            sequence: 0,
            events: BTreeMap::new(),
            config,
            params,
            ids,
            servers,
            conns: BTreeMap::new(),
            next_generation: 1,
            election_last_ms: BTreeMap::new(),
            blocked: BTreeSet::new(),
            clients,
            chain: Vec::new(),
            leaders: BTreeMap::new(),
            acked_max: 0,
            healed_at: None,
            faults_on: false,
            stats: Stats::default(),
            opts,
        }
    }

    fn note(&self, line: impl FnOnce() -> String) {
        if self.opts.trace {
            eprintln!("{:>8} {}", self.now_ms, line());
        }
    }

    fn push(&mut self, at_ms: u64, event: Event) {
        self.sequence += 1;
        self.events
            .insert((at_ms.max(self.now_ms), self.sequence), event);
    }

    fn net_delay(&mut self) -> u64 {
        let (lo, hi) = self.opts.net_delay_ms;
        self.rng.range(lo, hi)
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Starts every server (at random times within the first 100 ms) and the clients.
    pub fn start(&mut self) {
        for id in self.ids.clone() {
            let at = self.rng.below(100);
            self.push(at, Event::Restart(id));
        }
        if self.opts.client_load {
            for c in 0..self.clients.len() {
                let at = 50 + self.rng.below(200);
                self.push(at, Event::ClientWake(c));
            }
        }
        if self.opts.faults_end_ms > 0 {
            self.faults_on = true;
            let at = 300 + self.rng.below(700);
            self.push(at, Event::Fault);
            self.push(self.opts.faults_end_ms, Event::Heal);
        }
    }

    /// Runs events up to `until_ms`.
    pub fn run_until(&mut self, until_ms: u64) {
        while let Some(entry) = self.events.first_entry() {
            if entry.key().0 > until_ms {
                break;
            }
            let ((at, _), event) = entry.remove_entry();
            self.now_ms = at;
            self.stats.events += 1;
            self.handle(event);
        }
        self.now_ms = self.now_ms.max(until_ms);
    }

    /// Runs until `done` holds (checked after every event) or `until_ms`; returns whether
    /// it held.
    pub fn run_while_not(&mut self, until_ms: u64, mut done: impl FnMut(&Sim) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            let Some(entry) = self.events.first_entry() else {
                break;
            };
            if entry.key().0 > until_ms {
                break;
            }
            let ((at, _), event) = entry.remove_entry();
            self.now_ms = at;
            self.stats.events += 1;
            self.handle(event);
        }
        done(self)
    }

    /// The random run: faults until `faults_end_ms`, heal, then (liveness mode) a write
    /// must be acknowledged within the bound; then everything settles for a while.
    pub fn run_random(&mut self) -> Stats {
        self.start();
        let end = self.opts.faults_end_ms;
        self.run_until(end);
        if self.opts.liveness_bound_ms > 0 {
            let bound = self.opts.liveness_bound_ms;
            let writable = self.run_while_not(end + bound, |sim| {
                sim.stats.writable_after_heal_ms.is_some()
            });
            assert!(
                writable,
                "liveness: no write acknowledged within {bound} ms after the faults healed at {end} \
                 ms; {}",
                self.describe()
            );
        }
        let settle = self.now_ms + 2000;
        self.run_until(settle);
        self.stats.chain_len = self.chain.len() as u64;
        self.stats.clone()
    }

    /// One line per server: role, epoch, logged/durable/applied.
    pub fn describe(&self) -> String {
        let mut out = String::new();
        for (id, s) in &self.servers {
            match &s.replica {
                Some(r) => out.push_str(&format!(
                    "[{id}: {:?} epoch {:?} leader {:?} logged 0x{:x} durable 0x{:x} applied 0x{:x} \
                     acc {} cur {}] ",
                    r.state(),
                    r.epoch(),
                    r.leader(),
                    r.logged(),
                    last_zxid(&s.durable),
                    s.applied_zxid(),
                    s.accepted_epoch,
                    s.current_epoch
                )),
                None => out.push_str(&format!("[{id}: down] ")),
            }
        }
        out
    }

    // ---- accessors for scenarios ----

    pub fn ids(&self) -> Vec<ServerId> {
        self.ids.clone()
    }

    /// The established leader everyone up agrees on, if any.
    pub fn leader(&self) -> Option<ServerId> {
        self.servers.iter().find_map(|(id, s)| {
            let r = s.replica.as_ref()?;
            (r.state() == PeerState::Leading && r.serving()).then_some(*id)
        })
    }

    pub fn replica(&self, id: ServerId) -> Option<&Replica> {
        self.servers[&id].replica.as_ref()
    }

    pub fn serving(&self, id: ServerId) -> bool {
        self.replica(id).is_some_and(|r| r.serving())
    }

    pub fn durable_log(&self, id: ServerId) -> &[CommittedTxn] {
        &self.servers[&id].durable
    }

    pub fn log(&self, id: ServerId) -> &[CommittedTxn] {
        &self.servers[&id].mem
    }

    pub fn epochs(&self, id: ServerId) -> (i64, i64) {
        let s = &self.servers[&id];
        (s.accepted_epoch, s.current_epoch)
    }

    pub fn chain(&self) -> &[CommittedTxn] {
        &self.chain
    }

    /// The leader of each epoch that had one.
    pub fn leaders(&self) -> &BTreeMap<i64, ServerId> {
        &self.leaders
    }

    pub fn acked_max(&self) -> i64 {
        self.acked_max
    }

    /// Writes of client `c` not answered yet.
    pub fn client_outstanding(&self, c: usize) -> usize {
        self.clients[c].outstanding.len()
    }

    pub fn client_server(&self, c: usize) -> Option<ServerId> {
        self.clients[c].server
    }

    pub fn is_up(&self, id: ServerId) -> bool {
        self.servers[&id].up
    }

    // ---- faults (also used by scenarios) ----

    /// Crashes a server: pending disk operations keep a random prefix, the rest is lost;
    /// its connections die (peers are told if `tell_peers`: a killed process; not for a
    /// machine that stopped).
    pub fn crash(&mut self, id: ServerId, tell_peers: bool) {
        let mut keep = true;
        let mut ops = std::mem::take(&mut self.servers.get_mut(&id).expect("server").disk);
        while let Some(op) = ops.pop_front() {
            keep = keep && self.rng.chance(1, 2);
            if keep {
                Self::complete_op(&mut self.servers.get_mut(&id).expect("server").durable, op);
            }
        }
        self.crash_keeping_disk(id, tell_peers);
    }

    /// Crashes a server losing every pending disk operation.
    pub fn crash_losing_pending(&mut self, id: ServerId, tell_peers: bool) {
        self.servers.get_mut(&id).expect("server").disk.clear();
        self.crash_keeping_disk(id, tell_peers);
    }

    fn crash_keeping_disk(&mut self, id: ServerId, tell_peers: bool) {
        self.note(|| format!("CRASH server {id} (peers told: {tell_peers})"));
        self.stats.crashes += 1;
        let s = self.servers.get_mut(&id).expect("server");
        s.incarnation += 1;
        s.up = false;
        s.replica = None;
        s.election = None;
        s.disk.clear();
        s.disk_scheduled = 0;
        s.disk_held = false;
        s.mem = s.durable.clone();
        s.applied = 0;
        s.sync_queue.clear();
        for peer in self.ids.clone() {
            if peer != id {
                self.close_conn(id, peer, tell_peers);
            }
        }
        self.disconnect_clients(id);
    }

    /// Starts a server that is down from its durable state.
    pub fn restart(&mut self, id: ServerId) {
        if self.servers[&id].up {
            return;
        }
        let cap = self.params.committed_log_capacity;
        let s = self.servers.get_mut(&id).expect("server");
        s.up = true;
        s.incarnation += 1;
        s.mem = s.durable.clone();
        s.applied = 0;
        s.disk_next_ms = self.now_ms;
        let start = s.durable.len().saturating_sub(cap);
        let base = if start == 0 {
            0
        } else {
            s.durable[start - 1].zxid
        };
        let recovered = Recovered {
            accepted_epoch: s.accepted_epoch,
            current_epoch: s.current_epoch,
            base,
            tail: s.durable[start..].to_vec(),
        };
        let last = last_zxid(&s.durable);
        let current = s.current_epoch;
        s.replica = Some(Replica::new(
            id,
            self.config.clone(),
            self.params.clone(),
            recovered,
        ));
        s.election = Some(Election::new(id, self.config.clone(), last, current));
        let incarnation = s.incarnation;
        self.note(|| format!("START server {id}: last 0x{last:x} currentEpoch {current}"));
        self.push(self.now_ms + 1, Event::Tick(id, incarnation));
        let now_ms = self.now_ms;
        self.replica_step(id, Input::Start { now_ms });
    }

    /// Blocks the direction `from -> to` (quorum and election traffic).
    pub fn block(&mut self, from: ServerId, to: ServerId) {
        self.note(|| format!("BLOCK {from} -> {to}"));
        self.blocked.insert((from, to));
    }

    pub fn unblock(&mut self, from: ServerId, to: ServerId) {
        self.note(|| format!("UNBLOCK {from} -> {to}"));
        self.blocked.remove(&(from, to));
    }

    /// Cuts `group` off from the others, both ways.
    pub fn isolate(&mut self, group: &[ServerId]) {
        for a in self.ids.clone() {
            for b in self.ids.clone() {
                if group.contains(&a) != group.contains(&b) {
                    self.block(a, b);
                }
            }
        }
    }

    pub fn heal_network(&mut self) {
        self.note(|| "HEAL network".to_string());
        self.blocked.clear();
    }

    /// Holds a server's disk: its writes do not complete until released.
    pub fn hold_disk(&mut self, id: ServerId) {
        self.note(|| format!("HOLD disk of {id}"));
        self.servers.get_mut(&id).expect("server").disk_held = true;
    }

    pub fn release_disk(&mut self, id: ServerId) {
        self.note(|| format!("RELEASE disk of {id}"));
        let s = self.servers.get_mut(&id).expect("server");
        s.disk_held = false;
        self.schedule_disk(id);
    }

    // ---- clients (also used by scenarios) ----

    /// Connects client `c` to `server` if it serves and is not behind what the client saw.
    pub fn connect_client(&mut self, c: usize, server: ServerId) -> bool {
        let ok = {
            let s = &self.servers[&server];
            s.up && s.replica.as_ref().is_some_and(|r| r.serving())
                && s.applied_zxid() >= self.clients[c].last_seen
        };
        if ok {
            self.disconnect_client(c);
            self.clients[c].server = Some(server);
            self.note(|| format!("client {c} connects to {server}"));
        }
        ok
    }

    fn disconnect_client(&mut self, c: usize) {
        let client = &mut self.clients[c];
        if client.server.take().is_some() {
            client.outstanding.clear();
            client.sync_need = None;
        }
    }

    fn disconnect_clients(&mut self, id: ServerId) {
        for c in 0..self.clients.len() {
            if self.clients[c].server == Some(id) {
                self.note(|| format!("client {c} disconnected from {id}"));
                self.disconnect_client(c);
            }
        }
        self.servers
            .get_mut(&id)
            .expect("server")
            .sync_queue
            .clear();
    }

    /// Client `c` writes through its server.
    pub fn client_write(&mut self, c: usize) {
        let Some(server) = self.clients[c].server else {
            return;
        };
        let seq = self.clients[c].next_seq;
        self.clients[c].next_seq += 1;
        self.clients[c].outstanding.push_back((seq, self.now_ms));
        let data = encode_write(c, seq);
        self.note(|| format!("client {c} writes seq {seq} via {server}"));
        let now_ms = self.now_ms;
        let r = self.servers[&server].replica.as_ref().expect("serving");
        if r.state() == PeerState::Leading {
            let zxid = r.next_zxid().expect("an established leader");
            self.replica_step(
                server,
                Input::Propose {
                    now_ms,
                    txns: vec![CommittedTxn { zxid, data }],
                },
            );
        } else {
            self.replica_step(server, Input::Forward { now_ms, data });
        }
    }

    /// Client `c` reads at its server.
    pub fn client_read(&mut self, c: usize) {
        let Some(server) = self.clients[c].server else {
            return;
        };
        let seen = self.servers[&server].applied_zxid();
        let client = &mut self.clients[c];
        assert!(
            seen >= client.last_seen,
            "monotonic reads: client {c} read 0x{seen:x} at server {server} after seeing 0x{:x}",
            client.last_seen
        );
        if let Some(need) = client.sync_need.take() {
            assert!(
                seen >= need,
                "sync then read: client {c} read 0x{seen:x} at server {server}, but 0x{need:x} \
                 was acknowledged before its sync"
            );
        }
        client.last_seen = seen;
        self.stats.reads += 1;
        self.note(|| format!("client {c} reads 0x{seen:x} at {server}"));
    }

    /// Client `c` syncs at its server (then reads, when the sync is answered).
    pub fn client_sync(&mut self, c: usize) {
        let Some(server) = self.clients[c].server else {
            return;
        };
        self.clients[c].sync_need = Some(self.acked_max);
        self.clients[c].sync_token += 1;
        let token = self.clients[c].sync_token;
        self.servers
            .get_mut(&server)
            .expect("server")
            .sync_queue
            .push_back((c, token));
        self.note(|| format!("client {c} syncs at {server}"));
        let now_ms = self.now_ms;
        self.replica_step(server, Input::Sync { now_ms });
    }

    fn client_wake(&mut self, c: usize) {
        let next = self.now_ms + self.rng.range(5, 60);
        self.push(next, Event::ClientWake(c));
        match self.clients[c].server {
            None => {
                let target = self.ids[self.rng.below(self.ids.len() as u64) as usize];
                self.connect_client(c, target);
            }
            Some(server) => {
                if !self.serving(server) {
                    self.disconnect_client(c);
                    return;
                }
                if self.rng.chance(1, 50) {
                    self.disconnect_client(c);
                    return;
                }
                let idle =
                    self.clients[c].outstanding.is_empty() && self.clients[c].sync_need.is_none();
                let roll = self.rng.below(100);
                if roll < 60 {
                    if self.clients[c].outstanding.len() < 3 && self.clients[c].sync_need.is_none()
                    {
                        self.client_write(c);
                    }
                } else if roll < 85 {
                    if idle {
                        self.client_read(c);
                    }
                } else if idle {
                    self.stats.syncs += 1;
                    self.client_sync(c);
                }
            }
        }
    }

    // ---- the network ----

    fn pair(a: ServerId, b: ServerId) -> ((ServerId, ServerId), usize) {
        if a < b {
            ((a, b), 0)
        } else {
            ((b, a), 1)
        }
    }

    fn reachable(&self, from: ServerId, to: ServerId) -> bool {
        self.servers[&from].up && self.servers[&to].up && !self.blocked.contains(&(from, to))
    }

    /// Closes the connection between `a` and `b` (if up); `b` is told if `tell`.
    fn close_conn(&mut self, a: ServerId, b: ServerId, tell: bool) {
        let (key, _) = Self::pair(a, b);
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        if !conn.up {
            return;
        }
        conn.up = false;
        let generation = conn.generation;
        if tell && self.reachable(a, b) {
            let at = self.now_ms + self.net_delay();
            let incarnation = self.servers[&b].incarnation;
            self.push(
                at,
                Event::PeerClosed {
                    at: b,
                    peer: a,
                    generation,
                    incarnation,
                },
            );
        }
    }

    fn send(&mut self, from: ServerId, to: ServerId, msg: Msg) {
        let (key, dir) = Self::pair(from, to);
        let blocked = !self.reachable(from, to);
        let breaks = self.faults_on && self.rng.below(1000) < self.opts.break_permille;
        let delay = self.net_delay();
        let Some(conn) = self.conns.get_mut(&key) else {
            return;
        };
        if !conn.up {
            return;
        }
        if blocked {
            conn.stalled[dir] = true;
        }
        if conn.stalled[dir] {
            return;
        }
        if breaks {
            self.note(|| format!("connection {from}-{to} breaks"));
            self.close_conn(from, to, true);
            let now = self.now_ms;
            let incarnation = self.servers[&from].incarnation;
            let generation = self.conns[&key].generation;
            self.push(
                now + 1,
                Event::PeerClosed {
                    at: from,
                    peer: to,
                    generation,
                    incarnation,
                },
            );
            return;
        }
        let at = (self.now_ms + delay).max(conn.last_delivery_ms[dir]);
        conn.last_delivery_ms[dir] = at;
        let generation = conn.generation;
        self.push(
            at,
            Event::Deliver {
                pair: key,
                generation,
                from,
                to,
                msg,
            },
        );
    }

    fn notify(&mut self, from: ServerId, to: ServerId, notification: crate::zab::Notification) {
        if from != to && (!self.reachable(from, to) || self.rng.chance(1, 200)) {
            return;
        }
        if !self.servers[&to].up {
            return;
        }
        let delay = if from == to { 0 } else { self.net_delay() };
        let last = self.election_last_ms.entry((from, to)).or_insert(0);
        let at = (self.now_ms + delay).max(*last);
        *last = at;
        let incarnation = self.servers[&to].incarnation;
        self.push(
            at,
            Event::Notify {
                from,
                to,
                incarnation,
                notification,
            },
        );
    }

    // ---- the disk ----

    /// Carries out a disk operation on the durable state; returns where the log ends (a
    /// truncation to a zxid the history lacks removes the history; a truncation point or
    /// snapshot zxid may be an epoch start, `epoch << 32`, which is no txn).
    fn complete_op(durable: &mut Vec<CommittedTxn>, op: DiskOp) -> i64 {
        match op {
            DiskOp::Append(txns) => {
                durable.extend(txns);
                last_zxid(durable)
            }
            DiskOp::Truncate(to) => {
                if counter_of(to) == 0 || durable.iter().any(|t| t.zxid == to) {
                    durable.retain(|t| t.zxid <= to);
                    to
                } else {
                    durable.clear();
                    0
                }
            }
            DiskOp::Snapshot(zxid, state) => {
                *durable = state;
                zxid
            }
        }
    }

    fn schedule_disk(&mut self, id: ServerId) {
        let (lo, hi) = self.opts.disk_delay_ms;
        loop {
            let s = &self.servers[&id];
            if s.disk_held || s.disk_scheduled >= s.disk.len() {
                return;
            }
            let delay = self.rng.range(lo, hi);
            let s = self.servers.get_mut(&id).expect("server");
            let at = s.disk_next_ms.max(self.now_ms) + delay;
            s.disk_next_ms = at;
            s.disk_scheduled += 1;
            let incarnation = s.incarnation;
            self.push(at, Event::DiskDone(id, incarnation));
        }
    }

    fn disk_done(&mut self, id: ServerId) {
        let s = self.servers.get_mut(&id).expect("server");
        let Some(op) = s.disk.pop_front() else {
            return;
        };
        s.disk_scheduled -= 1;
        let kind = match &op {
            DiskOp::Append(_) => 0,
            DiskOp::Truncate(_) => 1,
            DiskOp::Snapshot(..) => 2,
        };
        let end = Self::complete_op(&mut s.durable, op);
        if kind != 0 {
            s.mem = s.durable.clone();
        }
        let input = match kind {
            0 => Input::Persisted { upto: end },
            1 => Input::Truncated { last_zxid: end },
            _ => Input::SnapshotApplied { zxid: end },
        };
        self.replica_step(id, input);
    }

    // ---- events ----

    fn handle(&mut self, event: Event) {
        match event {
            Event::Tick(id, incarnation) => {
                if self.servers[&id].incarnation != incarnation || !self.servers[&id].up {
                    return;
                }
                let now_ms = self.now_ms;
                self.push(now_ms + self.opts.tick_ms / 2, Event::Tick(id, incarnation));
                self.replica_step(id, Input::Tick { now_ms });
                let due = self.servers[&id]
                    .election
                    .as_ref()
                    .and_then(|e| e.next_deadline_ms())
                    .is_some_and(|d| d <= now_ms);
                if due {
                    self.election_step(
                        id,
                        election::Input::Tick {
                            now_ms,
                            have_delivered: true,
                        },
                    );
                }
            }
            Event::Deliver {
                pair,
                generation,
                from,
                to,
                msg,
            } => {
                let live = self
                    .conns
                    .get(&pair)
                    .is_some_and(|c| c.up && c.generation == generation);
                if live && self.servers[&to].up {
                    let now_ms = self.now_ms;
                    self.replica_step(to, Input::Received { now_ms, from, msg });
                }
            }
            Event::Notify {
                from,
                to,
                incarnation,
                notification,
            } => {
                if self.servers[&to].incarnation == incarnation && self.servers[&to].up {
                    let now_ms = self.now_ms;
                    self.election_step(
                        to,
                        election::Input::Received {
                            now_ms,
                            from,
                            notification,
                        },
                    );
                }
            }
            Event::ConnectDone {
                from,
                to,
                incarnation,
            } => {
                if self.servers[&from].incarnation != incarnation || !self.servers[&from].up {
                    return;
                }
                let leading = self.servers[&to]
                    .replica
                    .as_ref()
                    .is_some_and(|r| r.state() == PeerState::Leading);
                let wants = self.servers[&from]
                    .replica
                    .as_ref()
                    .is_some_and(|r| r.leader() == Some(to));
                let now_ms = self.now_ms;
                if !wants {
                    return;
                }
                if !leading || !self.reachable(from, to) || !self.reachable(to, from) {
                    self.replica_step(from, Input::Disconnected { now_ms, peer: to });
                    return;
                }
                let (key, _) = Self::pair(from, to);
                let generation = self.next_generation;
                self.next_generation += 1;
                self.conns.insert(
                    key,
                    Conn {
                        generation,
                        up: true,
                        ..Conn::default()
                    },
                );
                self.note(|| format!("connected {from} -> {to}"));
                self.replica_step(to, Input::Connected { now_ms, peer: from });
                self.replica_step(from, Input::Connected { now_ms, peer: to });
            }
            Event::ConnectFailed {
                from,
                to,
                incarnation,
            } => {
                if self.servers[&from].incarnation == incarnation && self.servers[&from].up {
                    let now_ms = self.now_ms;
                    self.replica_step(from, Input::Disconnected { now_ms, peer: to });
                }
            }
            Event::PeerClosed {
                at,
                peer,
                generation,
                incarnation,
            } => {
                let (key, _) = Self::pair(at, peer);
                let current = self.conns.get(&key).map(|c| c.generation);
                if current == Some(generation)
                    && self.servers[&at].incarnation == incarnation
                    && self.servers[&at].up
                {
                    let now_ms = self.now_ms;
                    self.replica_step(at, Input::Disconnected { now_ms, peer });
                }
            }
            Event::DiskDone(id, incarnation) => {
                if self.servers[&id].incarnation == incarnation {
                    self.disk_done(id);
                }
            }
            Event::ClientWake(c) => self.client_wake(c),
            Event::Restart(id) => self.restart(id),
            Event::Fault => self.random_fault(),
            Event::Unblock(a, b) => {
                if self.faults_on {
                    self.unblock(a, b)
                }
            }
            Event::ReleaseDisk(id, incarnation) => {
                if self.servers[&id].incarnation == incarnation {
                    self.release_disk(id)
                }
            }
            Event::Heal => {
                self.faults_on = false;
                self.heal_network();
                for id in self.ids.clone() {
                    if self.servers[&id].up {
                        if self.servers[&id].disk_held {
                            self.release_disk(id);
                        }
                    } else {
                        self.restart(id);
                    }
                }
                self.healed_at = Some(self.now_ms);
                self.note(|| "HEALED".to_string());
            }
        }
    }

    fn random_fault(&mut self) {
        if !self.faults_on {
            return;
        }
        let next = self.now_ms + self.rng.range(200, 1200);
        self.push(next, Event::Fault);
        let n = self.ids.len() as u64;
        let pick = |sim: &mut Sim| sim.ids[sim.rng.below(n) as usize];
        match self.rng.below(10) {
            0..=2 => {
                let id = pick(self);
                if self.servers[&id].up {
                    let tell = self.rng.chance(1, 2);
                    self.crash(id, tell);
                    let at = self.now_ms + self.rng.range(50, 2000);
                    self.push(at, Event::Restart(id));
                }
            }
            3..=4 => {
                // A partition: a random group cut off, both ways.
                self.stats.partitions += 1;
                let mut group = Vec::new();
                for id in self.ids.clone() {
                    if self.rng.chance(1, 2) {
                        group.push(id);
                    }
                }
                let len = self.rng.range(200, 3000);
                for a in self.ids.clone() {
                    for b in self.ids.clone() {
                        if group.contains(&a) != group.contains(&b) {
                            self.block(a, b);
                            self.push(self.now_ms + len, Event::Unblock(a, b));
                        }
                    }
                }
            }
            5..=6 => {
                // One-way: a cannot reach b.
                self.stats.partitions += 1;
                let a = pick(self);
                let b = pick(self);
                if a != b {
                    let len = self.rng.range(200, 3000);
                    self.block(a, b);
                    self.push(self.now_ms + len, Event::Unblock(a, b));
                }
            }
            7 => {
                let id = pick(self);
                if self.servers[&id].up && !self.servers[&id].disk_held {
                    self.hold_disk(id);
                    let len = self.rng.range(20, 800);
                    let incarnation = self.servers[&id].incarnation;
                    self.push(self.now_ms + len, Event::ReleaseDisk(id, incarnation));
                }
            }
            _ => {
                // Break a random connection.
                let a = pick(self);
                let b = pick(self);
                if a != b {
                    let (key, _) = Self::pair(a, b);
                    if self.conns.get(&key).is_some_and(|c| c.up) {
                        self.note(|| format!("connection {a}-{b} breaks"));
                        let generation = self.conns[&key].generation;
                        self.close_conn(a, b, true);
                        let incarnation = self.servers[&a].incarnation;
                        self.push(
                            self.now_ms + 1,
                            Event::PeerClosed {
                                at: a,
                                peer: b,
                                generation,
                                incarnation,
                            },
                        );
                    }
                }
            }
        }
    }

    // ---- driving the cores ----

    fn election_step(&mut self, id: ServerId, input: election::Input) {
        let Some(election) = self.servers.get_mut(&id).and_then(|s| s.election.as_mut()) else {
            return;
        };
        let actions = election.step(input);
        for action in actions {
            match action {
                election::Action::Send { to, notification } => self.notify(id, to, notification),
                election::Action::Decided { state, vote, .. } => {
                    self.stats.elections += 1;
                    self.note(|| format!("server {id} decided {state:?} leader {}", vote.leader));
                    let now_ms = self.now_ms;
                    self.replica_step(
                        id,
                        Input::Elected {
                            now_ms,
                            state,
                            leader: vote.leader,
                        },
                    );
                }
                election::Action::ReconnectAll => {}
            }
        }
    }

    /// Steps a replica and carries out its actions (checking them).
    pub fn replica_step(&mut self, id: ServerId, input: Input) {
        let Some(replica) = self.servers.get_mut(&id).and_then(|s| s.replica.as_mut()) else {
            return;
        };
        let trace = self.opts.trace;
        let shown = if trace {
            Some(format!("{input:?}"))
        } else {
            None
        };
        let actions = replica.step(input);
        if let Some(shown) = shown {
            let mut line = format!("server {id} <- {}", short(&shown));
            for a in &actions {
                line.push_str(&format!("\n{:>8}   -> {}", "", short(&format!("{a:?}"))));
            }
            eprintln!("{:>8} {line}", self.now_ms);
        }
        for action in actions {
            if !self.servers[&id].up {
                return;
            }
            self.act(id, action);
        }
    }

    fn act(&mut self, id: ServerId, action: Action) {
        let now_ms = self.now_ms;
        match action {
            Action::Looking {
                last_zxid,
                current_epoch,
                ..
            } => {
                self.disconnect_clients(id);
                let s = self.servers.get_mut(&id).expect("server");
                if let Some(election) = s.election.as_mut() {
                    election.set_log_position(last_zxid, current_epoch);
                }
                self.election_step(id, election::Input::StartElection { now_ms });
            }
            Action::Connect { to } => {
                let incarnation = self.servers[&id].incarnation;
                let (key, _) = Self::pair(id, to);
                if self.conns.get(&key).is_some_and(|c| c.up) {
                    self.close_conn(id, to, true);
                }
                let delay = self.net_delay() * 2;
                let event = if self.reachable(id, to) && self.reachable(to, id) {
                    Event::ConnectDone {
                        from: id,
                        to,
                        incarnation,
                    }
                } else {
                    Event::ConnectFailed {
                        from: id,
                        to,
                        incarnation,
                    }
                };
                self.push(now_ms + delay, event);
            }
            Action::Disconnect { peer } => self.close_conn(id, peer, true),
            Action::Send { to, msg } => {
                self.check_send(id, &msg);
                match &msg {
                    Msg::Diff { .. } => self.stats.diffs += 1,
                    Msg::Trunc { .. } => self.stats.truncs += 1,
                    Msg::Inform { .. } => self.stats.informs += 1,
                    _ => {}
                }
                self.send(id, to, msg);
            }
            Action::SendSnapshot { to, zxid } => {
                self.stats.snaps += 1;
                let s = &self.servers[&id];
                let upto = s.mem.partition_point(|t| t.zxid <= zxid);
                assert!(
                    zxid <= last_zxid(&s.mem) || counter_of(zxid) == 0,
                    "server {id}: a snapshot of 0x{zxid:x}, beyond its log"
                );
                let state = encode_state(&s.mem[..upto]);
                self.send(id, to, Msg::Snap { zxid, state });
            }
            Action::Persist { txns } => {
                let s = self.servers.get_mut(&id).expect("server");
                assert!(
                    !s.disk.iter().any(|op| !matches!(op, DiskOp::Append(_))),
                    "server {id}: appends queued behind a truncation or snapshot"
                );
                for t in &txns {
                    let last = last_zxid(&s.mem);
                    assert!(
                        t.zxid > last,
                        "server {id}: zxids must increase in the log: 0x{:x} after 0x{last:x}",
                        t.zxid
                    );
                    s.mem.push(t.clone());
                }
                s.disk.push_back(DiskOp::Append(txns));
                self.schedule_disk(id);
            }
            Action::Truncate { to } => {
                let s = self.servers.get_mut(&id).expect("server");
                let applied = s.applied_zxid();
                assert!(
                    to >= applied,
                    "server {id}: TRUNC to 0x{to:x} below its applied 0x{applied:x}"
                );
                s.disk.push_back(DiskOp::Truncate(to));
                self.schedule_disk(id);
            }
            Action::ApplySnapshot { zxid, state } => {
                let txns = decode_state(&state);
                let s = self.servers.get_mut(&id).expect("server");
                assert!(
                    last_zxid(&txns) <= zxid,
                    "a snapshot holds txns past its zxid"
                );
                assert!(
                    txns.len() >= s.applied && txns[..s.applied] == s.mem[..s.applied],
                    "server {id}: a snapshot that does not extend what it served"
                );
                s.disk.push_back(DiskOp::Snapshot(zxid, txns));
                self.schedule_disk(id);
            }
            Action::WriteAcceptedEpoch(epoch) => {
                let s = self.servers.get_mut(&id).expect("server");
                assert!(
                    epoch >= s.accepted_epoch,
                    "server {id}: acceptedEpoch goes back from {} to {epoch}",
                    s.accepted_epoch
                );
                s.accepted_epoch = epoch;
            }
            Action::WriteCurrentEpoch(epoch) => {
                let s = self.servers.get_mut(&id).expect("server");
                assert!(
                    epoch >= s.current_epoch && epoch <= s.accepted_epoch,
                    "server {id}: currentEpoch {epoch} (was {}, accepted {})",
                    s.current_epoch,
                    s.accepted_epoch
                );
                // ZOOKEEPER-4643: the history before the epoch must be durable first.
                let z0 = make_zxid(epoch as u32, 0);
                let before = s.mem.partition_point(|t| t.zxid < z0);
                assert!(
                    s.durable.len() >= before && s.durable[..before] == s.mem[..before],
                    "server {id}: currentEpoch {epoch} written over a history that is not durable \
                     (logged 0x{:x}, durable 0x{:x})",
                    last_zxid(&s.mem),
                    last_zxid(&s.durable)
                );
                s.current_epoch = epoch;
            }
            Action::Commit { upto } => self.apply(id, upto),
            Action::Serving { state, epoch } => {
                if let Some(e) = self.servers.get_mut(&id).and_then(|s| s.election.as_mut()) {
                    e.update_peer_epoch(epoch);
                }
                match state {
                    PeerState::Leading => {
                        if let Some(other) = self.leaders.insert(epoch, id) {
                            assert_eq!(other, id, "two leaders of epoch {epoch}: {other} and {id}");
                        }
                        // Every committed txn is in the new leader's history.
                        let mem = &self.servers[&id].mem;
                        assert!(
                            mem.len() >= self.chain.len()
                                && mem[..self.chain.len()] == self.chain[..],
                            "server {id} leads epoch {epoch} without the whole committed chain \
                             (chain ends 0x{:x}, its log 0x{:x}): an acknowledged write is lost",
                            last_zxid(&self.chain),
                            last_zxid(mem)
                        );
                        self.note(|| format!("server {id} LEADS epoch {epoch}"));
                    }
                    _ => {
                        let leader = self.servers[&id].replica.as_ref().and_then(|r| r.leader());
                        if let (Some(known), Some(leader)) = (self.leaders.get(&epoch), leader) {
                            assert_eq!(
                                *known, leader,
                                "server {id} follows {leader} in epoch {epoch}, led by {known}"
                            );
                        }
                        self.note(|| format!("server {id} SERVES as {state:?} in epoch {epoch}"));
                    }
                }
            }
            Action::LearnerRequest { data, .. } => {
                let next = self.servers[&id]
                    .replica
                    .as_ref()
                    .and_then(|r| r.next_zxid());
                if let Some(zxid) = next {
                    self.replica_step(
                        id,
                        Input::Propose {
                            now_ms,
                            txns: vec![CommittedTxn { zxid, data }],
                        },
                    );
                }
            }
            Action::PingTouches { .. } => {}
            Action::SyncDone => {
                let c = self
                    .servers
                    .get_mut(&id)
                    .expect("server")
                    .sync_queue
                    .pop_front();
                if let Some((c, token)) = c {
                    let client = &self.clients[c];
                    if client.server == Some(id)
                        && client.sync_need.is_some()
                        && client.sync_token == token
                    {
                        self.client_read(c);
                    }
                }
            }
        }
    }

    /// What a replica may send: an ACK of a proposal only once its durable log holds it;
    /// the NEWLEADER ACK only once the history before the epoch and currentEpoch are
    /// durable.
    fn check_send(&self, id: ServerId, msg: &Msg) {
        let Msg::Ack { zxid } = msg else {
            return;
        };
        let s = &self.servers[&id];
        if counter_of(*zxid) != 0 {
            assert!(
                s.durable.iter().rev().any(|t| t.zxid == *zxid),
                "server {id} ACKs 0x{zxid:x}, which its durable log (up to 0x{:x}) lacks",
                last_zxid(&s.durable)
            );
        } else {
            let epoch = i64::from(epoch_of(*zxid));
            let before = s.mem.partition_point(|t| t.zxid < *zxid);
            assert!(
                s.durable.len() >= before && s.durable[..before] == s.mem[..before],
                "server {id} ACKs NEWLEADER of epoch {epoch} before its history is durable \
                 (logged 0x{:x}, durable 0x{:x})",
                last_zxid(&s.mem),
                last_zxid(&s.durable)
            );
            assert_eq!(
                s.current_epoch, epoch,
                "server {id} ACKs NEWLEADER of epoch {epoch} with currentEpoch {}",
                s.current_epoch
            );
        }
    }

    /// `Commit { upto }`: the server applies (serves) its logged txns up to `upto`.
    fn apply(&mut self, id: ServerId, upto: i64) {
        let quorum = self.config.voters().count() / 2 + 1;
        loop {
            let s = &self.servers[&id];
            let Some(txn) = s.mem.get(s.applied).filter(|t| t.zxid <= upto).cloned() else {
                break;
            };
            let position = s.applied;
            // Durable on a quorum when it is served.
            let holders = self
                .servers
                .iter()
                .filter(|(sid, o)| {
                    self.config.is_voter(**sid) && o.durable.get(position) == Some(&txn)
                })
                .count();
            assert!(
                holders >= quorum,
                "server {id} applies 0x{:x}, durable on only {holders} voters",
                txn.zxid
            );
            match self.chain.get(position) {
                Some(committed) => assert_eq!(
                    committed, &txn,
                    "server {id} applies 0x{:x} at position {position}, where the committed chain \
                     has 0x{:x}: committed histories differ",
                    txn.zxid, committed.zxid
                ),
                None => {
                    let last = last_zxid(&self.chain);
                    assert!(
                        txn.zxid > last,
                        "committed zxids must increase: 0x{:x} after 0x{last:x}",
                        txn.zxid
                    );
                    if let Some((c, seq)) = decode_write(&txn.data) {
                        let client = &mut self.clients[c];
                        assert!(
                            client.chain_seq.is_none_or(|prev| seq > prev),
                            "per-session FIFO: client {c}'s write {seq} committed after its write \
                             {:?}",
                            client.chain_seq
                        );
                        client.chain_seq = Some(seq);
                    }
                    self.chain.push(txn.clone());
                }
            }
            self.servers.get_mut(&id).expect("server").applied += 1;
            // The write's client, if it waits on this server.
            if let Some((c, seq)) = decode_write(&txn.data) {
                let client = &mut self.clients[c];
                if client.server == Some(id) {
                    if let Some(at) = client.outstanding.iter().position(|(s, _)| *s == seq) {
                        assert_eq!(
                            at, 0,
                            "per-session FIFO: client {c}'s write {seq} answered before an earlier one"
                        );
                        let (_, issued) = client.outstanding.pop_front().expect("outstanding");
                        client.last_seen = client.last_seen.max(txn.zxid);
                        self.acked_max = self.acked_max.max(txn.zxid);
                        self.stats.acked_writes += 1;
                        if let Some(healed) = self.healed_at {
                            if issued >= healed && self.stats.writable_after_heal_ms.is_none() {
                                self.stats.writable_after_heal_ms = Some(self.now_ms - healed);
                            }
                        }
                        self.note(|| format!("client {c} write {seq} acked as 0x{:x}", txn.zxid));
                    }
                }
            }
        }
    }
}

fn short(s: &str) -> String {
    if s.chars().count() > 300 {
        format!("{}...", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}
