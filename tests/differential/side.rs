//! One server under comparison ("side"): its sessions, the execution of generated operations
//! over the raw client, and the normalisation of every reply and event into text that must be
//! identical on both sides.
//!
//! Normalisation (everything else is compared exactly):
//! - zxids (reply headers, czxid/mzxid/pzxid) relative to the zxid that created this seed's
//!   root on this server (`+N`); zero and negative values literally (`=0`, `=-1`);
//! - session ids (in ephemeralOwner and connect answers) by creation order in the seed
//!   (`S0`, `S1`, ...); container and TTL owners decoded (`C`, `T<ms>`);
//! - ctime/mtime only checked: both 0 (`t0`), plausible with mtime == ctime while
//!   version == 0 (`t=`), plausible otherwise (`t~`), or `tBAD(..)`;
//! - children lists and getEphemerals lists as sets (sorted): ZooKeeper returns them in hash
//!   order;
//! - events in a step where a session was closed, or where a container or TTL node vanished
//!   (the container manager deletes in hash order and on its own clock), as sorted lists
//!   without the position of the reply.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::ErrorKind;
use std::time::{Duration, Instant};

use crate::common::raw::{
    frame, ConnectReq, Enc, Frame, Raw, RawReply, RawStat, OK, OP_ADD_WATCH, OP_AUTH, OP_CHECK,
    OP_CHECK_WATCHES, OP_CLOSE_SESSION, OP_CREATE, OP_CREATE2, OP_CREATE_CONTAINER, OP_CREATE_TTL,
    OP_DELETE, OP_EXISTS, OP_GET_ACL, OP_GET_ALL_CHILDREN_NUMBER, OP_GET_CHILDREN,
    OP_GET_CHILDREN2, OP_GET_DATA, OP_GET_EPHEMERALS, OP_MULTI, OP_MULTI_READ, OP_REMOVE_WATCHES,
    OP_SET_ACL, OP_SET_DATA, OP_SET_WATCHES, OP_SET_WATCHES2, OP_SYNC, OP_WHO_AM_I, XID_AUTH,
    XID_SET_WATCHES,
};
use crate::common::raw::{handshake, wait_closed, ConnectResp, XID_PING};
use crate::gen::{
    read_opcode, sub_opcode, Acl, CreateSpec, Op, SetW, SubOp, AUTH_SLOT, SHORT_SLOT, SHORT_TTL_MS,
    SLOTS, U1,
};

/// Compare whoAmI lists as sets. zkrs difference D7: ZooKeeper keeps a connection's auth ids
/// in a ConcurrentHashMap-backed set, so whoAmI (and the expansion of an `auth` ACL) comes in
/// Java hash order (e.g. digest:u2 before ip:127.0.0.1); zkrs answers in insertion order.
const SORT_WHO_AM_I: bool = true;
/// Rename the zxids of deletions the container manager does in one pass into a canonical
/// order (see `Side::canonicalise_async_deletions`); zkrs difference D9 otherwise.
const NORM_CONTAINER_DELETION_ORDER: bool = true;
const OP_DELETE_CONTAINER: i32 = 20;
const OP_ERROR: i32 = -1;
const SESSION_TIMEOUT_MS: i32 = 30_000;
/// The probe session's: it idles while the other sides run their seed (the servers'
/// maxSessionTimeout caps it).
const PROBE_SESSION_TIMEOUT_MS: i32 = 60_000;
/// Requested by the sessions of [`SHORT_SLOT`] (above the servers' minimum of 2 ticks);
/// [`Side::with_short_timeout`] takes another.
const SHORT_TIMEOUT_MS: i32 = 1_500;
/// Every session is pinged (not recorded) before a step when this long passed since the last
/// pings: a third of the shortest session timeout.
const KEEPALIVE_EVERY: Duration = Duration::from_millis(500);
/// How long an abandoned short session takes to expire for sure: its timeout, rounded up to
/// the next tick by the expiry buckets, plus a margin.
fn expire_wait(short_timeout_ms: i32) -> Duration {
    Duration::from_millis(short_timeout_ms as u64 + 200 + 500)
}
const OP_PING: i32 = 11;
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closed connection (after closeSession or a failed auth) may take to close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// A reply this late gets a ping on the probe session (see `Raw::nudge_after`).
const NUDGE_AFTER: Duration = Duration::from_millis(300);
/// How long the container manager may take to remove a node that qualifies.
const SETTLE_LIMIT: Duration = Duration::from_secs(5);
const CONTAINER_OWNER: i64 = i64::MIN;

/// How the container manager treats a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Deleted once it had a child (cversion > 0) and has none.
    Container,
    /// Deleted once childless and unmodified for the TTL (ms).
    Ttl(i64),
    /// Neither (a tracked path recreated as something else).
    Plain,
}

/// What a successful create made. Top-level, ZooKeeper 3.8 picks the txn by the opcode
/// (createContainer makes a container whatever the flags; create with the container flag
/// makes a plain node); inside a multi, by the flags.
fn kind_of(spec: &CreateSpec, in_multi: bool) -> Kind {
    let ttl = || Kind::Ttl(spec.ttl.unwrap_or(-1));
    if in_multi {
        match spec.flags {
            4 => Kind::Container,
            5 | 6 => ttl(),
            _ => Kind::Plain,
        }
    } else {
        match spec.opcode {
            OP_CREATE_CONTAINER => Kind::Container,
            OP_CREATE_TTL => ttl(),
            _ => Kind::Plain,
        }
    }
}

/// How a reconnect goes.
#[derive(Clone, Copy, Debug, Default)]
struct Resume {
    /// First try a wrong password (refused).
    bad_password: bool,
    /// Keep the old connection open while resuming on the new one.
    keep_old: bool,
}

/// What one step produced on one side, normalised.
#[derive(Clone, Debug, Default)]
pub struct Outcome {
    /// Replies (one per request the step sent) and notes, in order.
    pub lines: Vec<String>,
    /// Per slot: watch events and, for the acting session, `<reply>` markers, in arrival order.
    pub frames: Vec<Vec<String>>,
    /// Paths created by the step (not compared; feeds the generator).
    pub created: Vec<String>,
}

impl PartialEq for Outcome {
    fn eq(&self, other: &Outcome) -> bool {
        self.lines == other.lines && self.frames == other.frames
    }
}

impl Outcome {
    pub fn render(&self) -> String {
        let mut s = String::new();
        for l in &self.lines {
            let _ = writeln!(s, "      {l}");
        }
        for (i, f) in self.frames.iter().enumerate() {
            if !f.is_empty() {
                let _ = writeln!(s, "      slot{i} frames: {}", f.join(", "));
            }
        }
        s
    }
}

struct Slot {
    raw: Option<Raw>,
    xid: i32,
    /// xids of this step's requests from the op itself (their replies are marked).
    marks: Vec<i32>,
    /// Frames of connections replaced during this step.
    old_frames: Vec<Frame>,
    /// Successful addauth calls on the current connection, replayed by a reconnect.
    auths: Vec<(String, String)>,
}

impl Slot {
    fn empty() -> Slot {
        Slot {
            raw: None,
            xid: 0,
            marks: Vec::new(),
            old_frames: Vec::new(),
            auths: Vec::new(),
        }
    }

    /// Takes the connection out, keeping what it received for this step's record.
    fn take_raw(&mut self) -> Option<Raw> {
        let mut raw = self.raw.take()?;
        self.old_frames.append(&mut raw.log);
        raw.events.clear();
        Some(raw)
    }
}

/// One server and this seed's sessions on it.
pub struct Side {
    pub name: &'static str,
    addr: String,
    /// A super-user session for probing (settling container deletions, the final dump).
    obs: Raw,
    slots: Vec<Slot>,
    base: i64,
    sessions: HashMap<i64, usize>,
    next_session: usize,
    /// Container and TTL nodes this seed created that may still exist. (A stat does not tell:
    /// ZooKeeper reports ephemeralOwner 0 for both.)
    tracked: Vec<(String, Kind)>,
    root: String,
    started_ms: i64,
    /// (session id, password, last zxid) of a session left to expire by `prepare`.
    expiring: Option<(i64, Vec<u8>, i64)>,
    /// zxid renaming, see `canonicalise_async_deletions`.
    alias: HashMap<i64, i64>,
    /// The timeout the sessions of [`SHORT_SLOT`] ask for.
    short_timeout_ms: i32,
    /// When [`Side::keepalive`] last pinged every session.
    last_keepalive: Instant,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn data_str(d: &Option<Vec<u8>>) -> String {
    match d {
        None => "null".to_string(),
        Some(b) => format!("'{}'", b.escape_ascii()),
    }
}

/// Non-panicking jute reader over a reply body.
struct D<'a> {
    b: &'a [u8],
    p: usize,
}

impl<'a> D<'a> {
    fn new(b: &'a [u8]) -> D<'a> {
        D { b, p: 0 }
    }
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.p.checked_add(n)?;
        let s = self.b.get(self.p..end)?;
        self.p = end;
        Some(s)
    }
    fn int(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
    fn long(&mut self) -> Option<i64> {
        Some(i64::from_be_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bool(&mut self) -> Option<bool> {
        Some(self.take(1)?[0] != 0)
    }
    fn buffer(&mut self) -> Option<Option<Vec<u8>>> {
        let n = self.int()?;
        if n < 0 {
            return Some(None);
        }
        Some(Some(self.take(n as usize)?.to_vec()))
    }
    fn string(&mut self) -> Option<String> {
        Some(match self.buffer()? {
            None => "<null>".to_string(),
            Some(b) => String::from_utf8_lossy(&b).into_owned(),
        })
    }
    fn strings(&mut self) -> Option<Vec<String>> {
        let n = self.int()?;
        if n < 0 {
            return Some(vec!["<null vector>".to_string()]);
        }
        let mut v = Vec::new();
        for _ in 0..n {
            v.push(self.string()?);
        }
        Some(v)
    }
    fn stat(&mut self) -> Option<RawStat> {
        Some(RawStat {
            czxid: self.long()?,
            mzxid: self.long()?,
            ctime: self.long()?,
            mtime: self.long()?,
            version: self.int()?,
            cversion: self.int()?,
            aversion: self.int()?,
            ephemeral_owner: self.long()?,
            data_length: self.int()?,
            num_children: self.int()?,
            pzxid: self.long()?,
        })
    }
    fn rest(&self) -> &'a [u8] {
        &self.b[self.p.min(self.b.len())..]
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn opname(op: i32) -> &'static str {
    match op {
        OP_CREATE => "create",
        OP_CREATE2 => "create2",
        OP_CREATE_CONTAINER => "createContainer",
        OP_CREATE_TTL => "createTTL",
        OP_DELETE => "delete",
        OP_EXISTS => "exists",
        OP_GET_DATA => "getData",
        OP_SET_DATA => "setData",
        OP_GET_ACL => "getACL",
        OP_SET_ACL => "setACL",
        OP_GET_CHILDREN => "getChildren",
        OP_GET_CHILDREN2 => "getChildren2",
        OP_SYNC => "sync",
        OP_CHECK => "check",
        OP_MULTI => "multi",
        OP_MULTI_READ => "multiRead",
        OP_ADD_WATCH => "addWatch",
        OP_CHECK_WATCHES => "checkWatches",
        OP_REMOVE_WATCHES => "removeWatches",
        OP_GET_ALL_CHILDREN_NUMBER => "getAllChildrenNumber",
        OP_GET_EPHEMERALS => "getEphemerals",
        OP_WHO_AM_I => "whoAmI",
        OP_CLOSE_SESSION => "closeSession",
        OP_AUTH => "auth",
        OP_SET_WATCHES => "setWatches",
        OP_SET_WATCHES2 => "setWatches2",
        OP_ERROR => "error",
        OP_PING => "ping",
        OP_DELETE_CONTAINER => "deleteContainer",
        _ => "?",
    }
}

fn acl_enc(e: Enc, acl: &Acl) -> Enc {
    let entries = acl.entries();
    let refs: Vec<(i32, &str, &str)> = entries
        .iter()
        .map(|(p, s, i)| (*p, s.as_str(), i.as_str()))
        .collect();
    e.acls(&refs)
}

fn data_enc(e: Enc, data: &Option<Vec<u8>>) -> Enc {
    match data {
        None => e.null_buffer(),
        Some(b) => e.buffer(b),
    }
}

fn create_body(e: Enc, spec: &CreateSpec) -> Enc {
    let e = acl_enc(data_enc(e.string(&spec.path), &spec.data), &spec.acl).int(spec.flags);
    match spec.ttl {
        Some(ttl) => e.long(ttl),
        None => e,
    }
}

fn sub_op_body(e: Enc, op: &SubOp) -> Enc {
    match op {
        SubOp::Create(spec) => create_body(e, spec),
        SubOp::Delete { path, version } => e.string(path).int(*version),
        SubOp::SetData {
            path,
            data,
            version,
        } => data_enc(e.string(path), data).int(*version),
        SubOp::Check { path, version } => e.string(path).int(*version),
        SubOp::Read { path, .. } => e.string(path).bool(false),
    }
}

fn multi_body(ops: &[SubOp]) -> Vec<u8> {
    let mut e = Enc::new();
    for op in ops {
        e = sub_op_body(e.int(sub_opcode(op)).bool(false).int(-1), op);
    }
    e.int(-1).bool(true).int(-1).finish()
}

fn multi_read_body(ops: &[(bool, String, bool)], check_version: Option<i32>) -> Vec<u8> {
    let mut e = Enc::new();
    for (children, path, watch) in ops {
        e = e
            .int(read_opcode(*children))
            .bool(false)
            .int(-1)
            .string(path)
            .bool(*watch);
    }
    if let (Some(version), Some((_, path, _))) = (check_version, ops.first()) {
        e = e
            .int(OP_CHECK)
            .bool(false)
            .int(-1)
            .string(path)
            .int(version);
    }
    e.int(-1).bool(true).int(-1).finish()
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

/// Reads frames until the reply to `xid` (events and other frames stay in `raw.log`).
fn wait_reply(raw: &mut Raw, xid: i32, nudge: &mut Raw) -> Result<RawReply, String> {
    let deadline = Instant::now() + REPLY_TIMEOUT;
    loop {
        let now = Instant::now();
        match raw.read_frame(deadline.min(now + NUDGE_AFTER)) {
            Ok(Frame::Reply(r)) if r.xid == xid => return Ok(r),
            Ok(Frame::Reply(r)) => {
                return Err(format!(
                    "reply to xid {} while waiting for {xid} (err {})",
                    r.xid, r.err
                ))
            }
            Ok(Frame::Event(_)) => {}
            // A ping on the probe session wakes the server (see `Raw::nudge_after`).
            Err(e) if e.kind() == ErrorKind::TimedOut && Instant::now() < deadline => {
                nudge.ping();
            }
            Err(e) if e.kind() == ErrorKind::TimedOut => {
                return Err(format!("no reply within {REPLY_TIMEOUT:?}"))
            }
            Err(e) => return Err(format!("connection lost ({:?})", e.kind())),
        }
    }
}

/// Waits until the server closes `raw`'s connection; frames read meanwhile stay in its log.
fn closes(raw: &mut Raw) -> &'static str {
    let deadline = Instant::now() + CLOSE_WAIT;
    loop {
        match raw.read_frame(deadline) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::TimedOut => return "connection stays open",
            Err(_) => return "connection closed",
        }
    }
}

impl Side {
    pub fn new(name: &'static str, addr: &str) -> Side {
        let mut obs = Raw::connect(addr, PROBE_SESSION_TIMEOUT_MS);
        obs.nudge_after = Some(NUDGE_AFTER);
        let r = obs.auth("digest", b"super:superpw");
        assert_eq!(
            r.err, OK,
            "{name}: super auth for the observer session failed"
        );
        Side {
            name,
            addr: addr.to_string(),
            obs,
            slots: (0..SLOTS).map(|_| Slot::empty()).collect(),
            base: 0,
            sessions: HashMap::new(),
            next_session: 0,
            tracked: Vec::new(),
            root: String::new(),
            started_ms: now_ms(),
            expiring: None,
            alias: HashMap::new(),
            short_timeout_ms: SHORT_TIMEOUT_MS,
            last_keepalive: Instant::now(),
        }
    }

    /// As `new`, with the short session's timeout `ms` (the run's one session expiry waits
    /// about that long).
    pub fn with_short_timeout(name: &'static str, addr: &str, ms: i32) -> Side {
        Side {
            short_timeout_ms: ms,
            ..Side::new(name, addr)
        }
    }

    fn timeout_of(&self, slot: usize) -> i32 {
        if slot == SHORT_SLOT {
            self.short_timeout_ms
        } else {
            SESSION_TIMEOUT_MS
        }
    }

    /// Creates `parent` (a persistent node under `/`) unless it exists: the mixed-ensemble
    /// comparison runs each side's seeds under a parent of its own.
    pub fn ensure_parent(&mut self, parent: &str) {
        const NODE_EXISTS: i32 = -110;
        let r = self.obs.create(parent, b"", 0);
        assert!(
            r.err == OK || r.err == NODE_EXISTS,
            "{}: creating {parent} failed: {}",
            self.name,
            r.err
        );
    }

    /// Creates the seed's root (its zxid becomes the base) and opens the seed's sessions.
    pub fn begin_seed(&mut self, root: &str) -> Outcome {
        self.root = root.to_string();
        self.sessions.clear();
        self.alias.clear();
        self.next_session = 0;
        self.tracked.clear();
        let r = self.obs.create(root, b"", 0);
        assert_eq!(
            r.err, OK,
            "{}: creating the seed root {root} failed",
            self.name
        );
        self.base = r.zxid;
        let mut lines = Vec::new();
        for slot in 0..SLOTS {
            lines.extend(self.open_slot(slot));
        }
        self.finish_step(lines, Vec::new(), false)
    }

    /// Closes the seed's sessions, waits for the container manager to remove what their
    /// ephemerals leave behind (so that nothing of this seed writes during the next one),
    /// then dumps the tree again with the zxid reached.
    pub fn end_seed(&mut self) -> Outcome {
        let mut lines = Vec::new();
        for slot in 0..SLOTS {
            if self.slots[slot].raw.is_some() {
                match self.request(slot, OP_CLOSE_SESSION, &[], true) {
                    Ok(r) => lines.push(self.fmt_reply(OP_CLOSE_SESSION, &r)),
                    Err(e) => lines.push(format!("closeSession: {e}")),
                }
            }
            self.slots[slot] = Slot::empty();
            // What this close leaves to the container manager goes before the next close.
            lines.extend(self.settle().0);
        }
        // Two container-manager periods, so that what is due but untracked goes now too.
        std::thread::sleep(Duration::from_millis(300));
        lines.extend(self.settle().0);
        let mut dump = self.dump();
        lines.append(&mut dump.lines);
        let r = self.obs.exists(&self.root.clone(), false);
        lines.push(format!("last zxid {}", self.z(r.zxid)));
        Outcome {
            lines,
            frames: Vec::new(),
            created: Vec::new(),
        }
    }

    /// A pzxid: as [`Side::z`] after the renaming of `canonicalise_async_deletions` (only a
    /// parent's pzxid shows the zxid of a deletion).
    fn zp(&self, v: i64) -> String {
        self.z(self.alias.get(&v).copied().unwrap_or(v))
    }

    fn z(&self, v: i64) -> String {
        if v <= 0 {
            format!("={v}")
        } else {
            format!("{:+}", v - self.base)
        }
    }

    fn session(&self, id: i64) -> String {
        match self.sessions.get(&id) {
            Some(i) => format!("S{i}"),
            None => format!("?{id:x}"),
        }
    }

    fn owner(&self, eo: i64) -> String {
        if eo == 0 {
            "0".to_string()
        } else if eo == CONTAINER_OWNER {
            "C".to_string()
        } else if (eo as u64) >> 56 == 0xff {
            format!("T{}", eo & 0xff_ffff_ffff)
        } else {
            self.session(eo)
        }
    }

    fn times(&self, s: &RawStat) -> String {
        if s.ctime == 0 && s.mtime == 0 {
            return "t0".to_string();
        }
        let now = now_ms();
        let plausible = |t: i64| t >= self.started_ms - 60_000 && t <= now + 60_000;
        if s.ctime == 0 && plausible(s.mtime) {
            // A node from before the server's start ("/", "/zookeeper") changed since.
            return "t0~".to_string();
        }
        if !plausible(s.ctime) || !plausible(s.mtime) || s.mtime < s.ctime {
            return format!("tBAD(c={},m={})", s.ctime, s.mtime);
        }
        if s.version == 0 {
            if s.mtime == s.ctime {
                "t=".to_string()
            } else {
                "t<".to_string()
            }
        } else {
            "t~".to_string()
        }
    }

    fn stat(&self, s: &RawStat) -> String {
        format!(
            "[cz{} mz{} pz{} v{} cv{} av{} eo{} dl{} nc{} {}]",
            self.z(s.czxid),
            self.z(s.mzxid),
            self.zp(s.pzxid),
            s.version,
            s.cversion,
            s.aversion,
            self.owner(s.ephemeral_owner),
            s.data_length,
            s.num_children,
            self.times(s)
        )
    }

    fn acls(&self, d: &mut D) -> Option<String> {
        let n = d.int()?;
        let mut v = Vec::new();
        for _ in 0..n.max(0) {
            let perms = d.int()?;
            let scheme = d.string()?;
            let id = d.string()?;
            v.push(format!("{perms}:{scheme}:{id}"));
        }
        Some(format!("acl[{}]", v.join(",")))
    }

    /// Decodes a reply body by the request's opcode.
    fn body(&self, opcode: i32, d: &mut D) -> Option<String> {
        Some(match opcode {
            OP_CREATE | OP_SYNC => d.string()?,
            OP_CREATE2 | OP_CREATE_CONTAINER | OP_CREATE_TTL => {
                let p = d.string()?;
                format!("{p} {}", self.stat(&d.stat()?))
            }
            OP_EXISTS | OP_SET_DATA | OP_SET_ACL | OP_CHECK => self.stat(&d.stat()?),
            OP_GET_DATA => {
                let data = d.buffer()?;
                format!("{} {}", data_str(&data), self.stat(&d.stat()?))
            }
            OP_GET_ACL => {
                let a = self.acls(d)?;
                format!("{a} {}", self.stat(&d.stat()?))
            }
            OP_GET_CHILDREN | OP_GET_EPHEMERALS => format!("{:?}", sorted(d.strings()?)),
            OP_GET_CHILDREN2 => {
                let c = sorted(d.strings()?);
                format!("{c:?} {}", self.stat(&d.stat()?))
            }
            OP_GET_ALL_CHILDREN_NUMBER | OP_ADD_WATCH => format!("{}", d.int()?),
            OP_WHO_AM_I => {
                let n = d.int()?;
                let mut v = Vec::new();
                for _ in 0..n.max(0) {
                    let scheme = d.string()?;
                    let user = d.string()?;
                    v.push(format!("{scheme}:{user}"));
                }
                if SORT_WHO_AM_I {
                    v.sort();
                }
                format!("{v:?}")
            }
            OP_MULTI | OP_MULTI_READ => {
                let mut parts = Vec::new();
                loop {
                    let t = d.int()?;
                    let done = d.bool()?;
                    let err = d.int()?;
                    if done {
                        parts.push(format!("end(t{t} e{err})"));
                        break;
                    }
                    let detail = match t {
                        OP_CREATE => d.string()?,
                        OP_CREATE2 | OP_CREATE_CONTAINER | OP_CREATE_TTL => {
                            let p = d.string()?;
                            format!("{p} {}", self.stat(&d.stat()?))
                        }
                        OP_DELETE | OP_DELETE_CONTAINER | OP_CHECK => String::new(),
                        OP_SET_DATA => self.stat(&d.stat()?),
                        OP_GET_CHILDREN => format!("{:?}", sorted(d.strings()?)),
                        OP_GET_DATA => {
                            let data = d.buffer()?;
                            format!("{} {}", data_str(&data), self.stat(&d.stat()?))
                        }
                        OP_ERROR => format!("{}", d.int()?),
                        _ => return None,
                    };
                    parts.push(format!("{}(e{err}){detail}", opname(t)));
                    if parts.len() > 1000 {
                        return None;
                    }
                }
                parts.join(" ")
            }
            _ => return None,
        })
    }

    /// `name err=E z=Z body`, the body decoded when it can be.
    fn fmt_reply(&self, opcode: i32, r: &RawReply) -> String {
        let mut s = format!("{} err={} z={}", opname(opcode), r.err, self.z(r.zxid));
        if r.body.is_empty() {
            return s;
        }
        let mut d = D::new(&r.body);
        let decoded = if r.err == OK || opcode == OP_MULTI || opcode == OP_MULTI_READ {
            self.body(opcode, &mut d)
        } else {
            None
        };
        match decoded {
            Some(b) => {
                let _ = write!(s, " {b}");
                if !d.rest().is_empty() {
                    let _ = write!(s, " +trailing:{}", hex(d.rest()));
                }
            }
            None => {
                let _ = write!(s, " body:{}", hex(&r.body));
            }
        }
        s
    }

    /// Paths created by a successful reply (top-level create or multi), with their kinds.
    fn created(opcode: i32, r: &RawReply, flags: &[Kind]) -> Vec<(String, Kind)> {
        let mut out = Vec::new();
        if r.err != OK {
            return out;
        }
        let mut d = D::new(&r.body);
        match opcode {
            OP_CREATE | OP_CREATE2 | OP_CREATE_CONTAINER | OP_CREATE_TTL => {
                if let (Some(p), Some(f)) = (d.string(), flags.first()) {
                    out.push((p, *f));
                }
            }
            OP_MULTI => {
                let mut i = 0;
                while let (Some(t), Some(false), Some(_)) = (d.int(), d.bool(), d.int()) {
                    match t {
                        OP_CREATE | OP_CREATE2 | OP_CREATE_CONTAINER | OP_CREATE_TTL => {
                            let Some(p) = d.string() else { break };
                            if t != OP_CREATE && d.stat().is_none() {
                                break;
                            }
                            out.push((p, flags.get(i).copied().unwrap_or(Kind::Plain)));
                        }
                        OP_SET_DATA if d.stat().is_none() => break,
                        OP_ERROR if d.int().is_none() => break,
                        _ => {}
                    }
                    i += 1;
                }
            }
            _ => {}
        }
        out
    }

    /// Sends a request on a slot's connection and waits for its reply. `mark`: the reply
    /// belongs to the op itself (its position among events is recorded).
    fn request_xid(
        &mut self,
        slot: usize,
        xid: Option<i32>,
        opcode: i32,
        body: &[u8],
        mark: bool,
    ) -> Result<RawReply, String> {
        let obs = &mut self.obs;
        let s = &mut self.slots[slot];
        let raw = s.raw.as_mut().ok_or("no connection")?;
        let xid = xid.unwrap_or_else(|| {
            s.xid += 1;
            s.xid
        });
        if mark {
            s.marks.push(xid);
        }
        let payload = Enc::new().int(xid).int(opcode).bytes(body).finish();
        raw.send_bytes(&frame(&payload))
            .map_err(|e| format!("send failed ({:?})", e.kind()))?;
        wait_reply(raw, xid, obs)
    }

    fn request(
        &mut self,
        slot: usize,
        opcode: i32,
        body: &[u8],
        mark: bool,
    ) -> Result<RawReply, String> {
        self.request_xid(slot, None, opcode, body, mark)
    }

    /// Sends the op's request; the reply line, or the failure plus the recovery lines.
    fn call(
        &mut self,
        slot: usize,
        opcode: i32,
        body: &[u8],
        lines: &mut Vec<String>,
    ) -> Option<RawReply> {
        match self.request(slot, opcode, body, true) {
            Ok(r) => {
                lines.push(self.fmt_reply(opcode, &r));
                Some(r)
            }
            Err(e) => {
                lines.push(format!("{}: {e}", opname(opcode)));
                lines.extend(self.resume(slot, Resume::default(), None, true));
                None
            }
        }
    }

    /// Opens a new session in `slot` (the auth slot authenticates as u1).
    fn open_slot(&mut self, slot: usize) -> Vec<String> {
        if let Some(raw) = self.slots[slot].take_raw() {
            drop(raw);
        }
        self.slots[slot].auths.clear();
        let mut lines = Vec::new();
        match Raw::try_handshake(&self.addr, &ConnectReq::new_session(self.timeout_of(slot))) {
            Ok((raw, resp)) => {
                let idx = self.next_session;
                self.next_session += 1;
                self.sessions.insert(resp.session_id, idx);
                lines.push(format!("slot{slot} new {}", self.connect_line(&resp)));
                self.slots[slot].raw = Some(raw);
                if slot == AUTH_SLOT {
                    lines.push(self.add_auth(slot, "digest", U1));
                }
            }
            Err(e) => lines.push(format!("slot{slot} new session failed: {e}")),
        }
        lines
    }

    fn add_auth(&mut self, slot: usize, scheme: &str, auth: &str) -> String {
        let body = Enc::new()
            .int(0)
            .string(scheme)
            .buffer(auth.as_bytes())
            .finish();
        match self.request_xid(slot, Some(XID_AUTH), OP_AUTH, &body, true) {
            Ok(r) => {
                if r.err == OK {
                    self.slots[slot]
                        .auths
                        .push((scheme.to_string(), auth.to_string()));
                }
                format!("auth {scheme} {auth}: {}", self.fmt_reply(OP_AUTH, &r))
            }
            Err(e) => format!("auth {scheme} {auth}: {e}"),
        }
    }

    fn connect_line(&self, resp: &ConnectResp) -> String {
        let sid = if resp.session_id == 0 {
            "0".to_string()
        } else {
            self.session(resp.session_id)
        };
        format!(
            "session={sid} timeout={} passwd={}B ro={:?} proto={}",
            resp.timeout_ms,
            resp.passwd.len(),
            resp.read_only,
            resp.protocol_version
        )
    }

    /// Tries to reattach session `sid`; the connection when granted, and a line describing
    /// the answer (for a refusal: the answer and whether the server closed the connection).
    fn try_resume(
        &mut self,
        slot: usize,
        sid: i64,
        passwd: Vec<u8>,
        last: i64,
    ) -> (Option<Raw>, String) {
        let req = ConnectReq {
            protocol_version: 0,
            last_zxid_seen: last,
            timeout_ms: self.timeout_of(slot),
            session_id: sid,
            passwd,
            read_only: Some(false),
        };
        let (mut stream, resp) = handshake(&self.addr, &req);
        match resp {
            Err(e) => (None, format!("no answer ({:?})", e.kind())),
            Ok(resp) if resp.timeout_ms <= 0 => {
                let closed = if wait_closed(&mut stream, CLOSE_WAIT) {
                    "connection closed"
                } else {
                    "connection stays open"
                };
                (
                    None,
                    format!("refused: {}; {closed}", self.connect_line(&resp)),
                )
            }
            Ok(resp) => {
                let line = format!("granted: {}", self.connect_line(&resp));
                (
                    Some(Raw::from_handshake(&self.addr, stream, resp, last)),
                    line,
                )
            }
        }
    }

    /// First half of an op that needs the driver to wait (between both sides' halves):
    /// returns how long.
    pub fn prepare(&mut self, op: &Op) -> Duration {
        if let Op::Expire { slot } = op {
            if let Some(raw) = self.slots[*slot].take_raw() {
                self.expiring = Some(raw.disconnect());
            }
            return expire_wait(self.short_timeout_ms);
        }
        Duration::ZERO
    }

    /// Reattaches the slot's session on a new connection (the old one is dropped first),
    /// then sends setWatches and replays the connection's auths when asked.
    fn resume(
        &mut self,
        slot: usize,
        how: Resume,
        set_watches: Option<&SetW>,
        reauth: bool,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        let auths = std::mem::take(&mut self.slots[slot].auths);
        let Some(raw) = self.slots[slot].take_raw() else {
            lines.push(format!("slot{slot}: nothing to resume"));
            return lines;
        };
        let (sid, passwd, last) = (raw.session_id, raw.passwd.clone(), raw.last_zxid);
        // The old connection stays open through the resume when asked (a client that moved
        // before its old connection broke).
        let mut old = if how.keep_old {
            Some(raw)
        } else {
            raw.disconnect();
            None
        };
        let bad_password = how.bad_password;
        if bad_password {
            let mut wrong = passwd.clone();
            for b in wrong.iter_mut() {
                *b ^= 0x5a;
            }
            lines.push(format!(
                "slot{slot} resume with a wrong password: {}",
                self.try_resume(slot, sid, wrong, last).1
            ));
        }
        let (raw, line) = self.try_resume(slot, sid, passwd, last);
        lines.push(format!("slot{slot} resume: {line}"));
        // Whether ZooKeeper closes the old connection is racy: its sessionMap entry can be
        // lost when an earlier connection of the session closes late (removeCnxn removes by
        // session id), so the old connection is closed here without looking.
        drop(old.take());
        match raw {
            Some(raw) => self.slots[slot].raw = Some(raw),
            None => {
                lines.extend(self.open_slot(slot));
                return lines;
            }
        }
        if let Some(sw) = set_watches {
            let rel = last - sw.back;
            let mut e = Enc::new()
                .long(rel)
                .strings(&strs(&sw.data))
                .strings(&strs(&sw.exist))
                .strings(&strs(&sw.child));
            let opcode = if sw.v2 {
                e = e
                    .strings(&strs(&sw.persistent))
                    .strings(&strs(&sw.recursive));
                OP_SET_WATCHES2
            } else {
                OP_SET_WATCHES
            };
            match self.request_xid(slot, Some(XID_SET_WATCHES), opcode, &e.finish(), true) {
                Ok(r) => lines.push(self.fmt_reply(opcode, &r)),
                Err(err) => lines.push(format!("{}: {err}", opname(opcode))),
            }
        }
        if reauth {
            for (scheme, auth) in auths {
                lines.push(self.add_auth(slot, &scheme, &auth));
            }
        }
        lines
    }

    /// Runs one generated operation and returns its normalised outcome.
    pub fn exec(&mut self, op: &Op) -> Outcome {
        // A slot the sequence leaves idle must not expire because the machine is slow (a
        // loaded CI machine with four JVMs took seconds over steps that usually take
        // milliseconds, and the short session expired on one side only).
        if self.last_keepalive.elapsed() >= KEEPALIVE_EVERY {
            self.keepalive();
        }
        let mut lines = Vec::new();
        let mut created: Vec<(String, Kind)> = Vec::new();
        let mut unordered = false;
        let slot = op.slot();
        match op {
            Op::Create { spec, .. } => {
                let body = create_body(Enc::new(), spec).finish();
                if let Some(r) = self.call(slot, spec.opcode, &body, &mut lines) {
                    created = Self::created(spec.opcode, &r, &[kind_of(spec, false)]);
                }
            }
            Op::Delete { path, version, .. } => {
                let body = Enc::new().string(path).int(*version).finish();
                self.call(slot, OP_DELETE, &body, &mut lines);
            }
            Op::SetData {
                path,
                data,
                version,
                ..
            } => {
                let body = data_enc(Enc::new().string(path), data)
                    .int(*version)
                    .finish();
                self.call(slot, OP_SET_DATA, &body, &mut lines);
            }
            Op::Exists { path, watch, .. } => {
                let body = Enc::new().string(path).bool(*watch).finish();
                self.call(slot, OP_EXISTS, &body, &mut lines);
            }
            Op::GetData { path, watch, .. } => {
                let body = Enc::new().string(path).bool(*watch).finish();
                self.call(slot, OP_GET_DATA, &body, &mut lines);
            }
            Op::GetChildren { path, watch, .. } => {
                let body = Enc::new().string(path).bool(*watch).finish();
                self.call(slot, OP_GET_CHILDREN, &body, &mut lines);
            }
            Op::GetChildren2 { path, watch, .. } => {
                let body = Enc::new().string(path).bool(*watch).finish();
                self.call(slot, OP_GET_CHILDREN2, &body, &mut lines);
            }
            Op::GetAcl { path, .. } => {
                let body = Enc::new().string(path).finish();
                self.call(slot, OP_GET_ACL, &body, &mut lines);
            }
            Op::SetAcl {
                path, acl, version, ..
            } => {
                let body = acl_enc(Enc::new().string(path), acl).int(*version).finish();
                self.call(slot, OP_SET_ACL, &body, &mut lines);
            }
            Op::GetAllChildrenNumber { path, .. } => {
                let body = Enc::new().string(path).finish();
                self.call(slot, OP_GET_ALL_CHILDREN_NUMBER, &body, &mut lines);
            }
            Op::GetEphemerals { prefix, .. } => {
                let body = Enc::new().string(prefix).finish();
                self.call(slot, OP_GET_EPHEMERALS, &body, &mut lines);
            }
            Op::Sync { path, .. } => {
                let body = Enc::new().string(path).finish();
                self.call(slot, OP_SYNC, &body, &mut lines);
            }
            Op::WhoAmI { .. } => {
                self.call(slot, OP_WHO_AM_I, &[], &mut lines);
            }
            Op::Check { path, version, .. } => {
                let body = Enc::new().string(path).int(*version).finish();
                self.call(slot, OP_CHECK, &body, &mut lines);
            }
            Op::Multi { ops, .. } => {
                let flags: Vec<Kind> = ops
                    .iter()
                    .map(|o| match o {
                        SubOp::Create(spec) => kind_of(spec, true),
                        _ => Kind::Plain,
                    })
                    .collect();
                if let Some(r) = self.call(slot, OP_MULTI, &multi_body(ops), &mut lines) {
                    created = Self::created(OP_MULTI, &r, &flags);
                }
            }
            Op::MultiRead {
                ops, check_version, ..
            } => {
                let body = multi_read_body(ops, *check_version);
                self.call(slot, OP_MULTI_READ, &body, &mut lines);
            }
            Op::AddWatch { path, mode, .. } => {
                let body = Enc::new().string(path).int(*mode).finish();
                self.call(slot, OP_ADD_WATCH, &body, &mut lines);
            }
            Op::CheckWatches { path, wtype, .. } => {
                let body = Enc::new().string(path).int(*wtype).finish();
                self.call(slot, OP_CHECK_WATCHES, &body, &mut lines);
            }
            Op::RemoveWatches { path, wtype, .. } => {
                let body = Enc::new().string(path).int(*wtype).finish();
                self.call(slot, OP_REMOVE_WATCHES, &body, &mut lines);
            }
            Op::Reconnect {
                bad_password,
                keep_old,
                set_watches,
                reauth,
                ..
            } => {
                let how = Resume {
                    bad_password: *bad_password,
                    keep_old: *keep_old,
                };
                lines.extend(self.resume(slot, how, set_watches.as_ref(), *reauth));
            }
            Op::Ping { .. } => match self.request_xid(slot, Some(XID_PING), OP_PING, &[], true) {
                Ok(r) => lines.push(self.fmt_reply(OP_PING, &r)),
                Err(e) => lines.push(format!("ping: {e}")),
            },
            Op::Expire { .. } => {
                unordered = true;
                match self.expiring.take() {
                    Some((sid, passwd, last)) => {
                        let (raw, line) = self.try_resume(slot, sid, passwd, last);
                        lines.push(format!("resume after the timeout: {line}"));
                        drop(raw);
                    }
                    None => lines.push("nothing was left to expire".to_string()),
                }
                // Let the container manager finish before the new session's txn.
                lines.extend(self.settle().0);
                lines.extend(self.open_slot(slot));
            }
            Op::CloseSession { .. } => {
                unordered = true;
                if self.call(slot, OP_CLOSE_SESSION, &[], &mut lines).is_some() {
                    if let Some(raw) = self.slots[slot].raw.as_mut() {
                        lines.push(closes(raw).to_string());
                    }
                }
                // The closed session's ephemerals may leave containers to remove: let the
                // container manager finish before the new session's txn.
                lines.extend(self.settle().0);
                lines.extend(self.open_slot(slot));
            }
            Op::AddAuth { scheme, auth, .. } => {
                let line = self.add_auth(slot, scheme, auth);
                let failed = !line.contains("err=0 ");
                lines.push(line);
                if failed {
                    if let Some(raw) = self.slots[slot].raw.as_mut() {
                        lines.push(closes(raw).to_string());
                    }
                    lines.extend(self.resume(slot, Resume::default(), None, true));
                }
            }
        }
        for (path, kind) in &created {
            self.tracked.retain(|(p, _)| p != path);
            if *kind != Kind::Plain {
                self.tracked.push((path.clone(), *kind));
            }
        }
        // Events of container/TTL removals come in the container manager's (hash) order.
        let (notes, vanished) = self.settle();
        unordered |= vanished;
        lines.extend(notes);
        let created = created.into_iter().map(|(p, _)| p).collect();
        self.finish_step(lines, created, unordered)
    }

    /// Pings every session (not recorded), so that a long probe does not let the short
    /// sessions expire. Frames read meanwhile stay for the step's record; the ping replies
    /// do not (a Ping step marks the same xid).
    fn keepalive(&mut self) {
        self.last_keepalive = Instant::now();
        for slot in 0..SLOTS {
            // A slot without a connection answers Err("no connection").
            if self
                .request_xid(slot, Some(XID_PING), OP_PING, &[], false)
                .is_ok()
            {
                // The reply is the last frame `wait_reply` read.
                if let Some(raw) = self.slots[slot].raw.as_mut() {
                    raw.log.pop();
                }
            }
        }
    }

    /// Waits until no tracked container (used, empty) or short TTL node (childless) is left,
    /// as the container manager deletes them. Returns notes for nodes that stay, and whether
    /// any tracked node vanished.
    fn settle(&mut self) -> (Vec<String>, bool) {
        let (notes, vanished) = self.settle_paths();
        self.canonicalise_async_deletions(&vanished);
        (notes, !vanished.is_empty())
    }

    /// ZooKeeper's container manager deletes what is due in one pass in Java HashSet order
    /// (zkrs difference D9: zkrs in its own order), so when one step leaves several
    /// containers or TTL nodes due, the zxids of their deletions are a permutation of what
    /// zkrs uses, visible as their parents' pzxid. With [`NORM_CONTAINER_DELETION_ORDER`],
    /// the zxids seen as those parents' pzxid are renamed from then on so that the parents,
    /// sorted by path, get them in ascending order, on both sides.
    fn canonicalise_async_deletions(&mut self, vanished: &[String]) {
        if !NORM_CONTAINER_DELETION_ORDER {
            return;
        }
        let mut parents: BTreeMap<String, i64> = BTreeMap::new();
        for p in vanished {
            let parent = match p.rfind('/') {
                Some(0) => "/".to_string(),
                Some(i) => p[..i].to_string(),
                None => continue,
            };
            if parents.contains_key(&parent) {
                continue;
            }
            let r = self.obs.exists(&parent, false);
            if r.err == OK {
                if let Some(st) = D::new(&r.body).stat() {
                    parents.insert(parent, st.pzxid);
                }
            }
        }
        let mut values: Vec<i64> = parents.values().copied().collect();
        values.sort_unstable();
        values.dedup();
        if parents.len() < 2 || values.len() != parents.len() {
            return;
        }
        for (z, canon) in parents.values().zip(values) {
            if *z != canon {
                self.alias.insert(*z, canon);
            }
        }
    }

    /// The settling loop; returns notes and the tracked paths that vanished.
    fn settle_paths(&mut self) -> (Vec<String>, Vec<String>) {
        let deadline = Instant::now() + SETTLE_LIMIT;
        let mut vanished = Vec::new();
        loop {
            let mut pending = Vec::new();
            let mut keep = Vec::new();
            // zkrs serves reads on the session's shard: sync first to see every write.
            let root = self.root.clone();
            self.obs.sync(&root);
            for (p, kind) in std::mem::take(&mut self.tracked) {
                let r = self.obs.exists(&p, false);
                if r.err != OK {
                    vanished.push(p);
                    continue;
                }
                if let Some(s) = D::new(&r.body).stat() {
                    let due = match kind {
                        Kind::Container => s.cversion > 0 && s.num_children == 0,
                        Kind::Ttl(ttl) => s.num_children == 0 && ttl > 0 && ttl <= SHORT_TTL_MS,
                        Kind::Plain => false,
                    };
                    if due {
                        pending.push(p.clone());
                    }
                }
                keep.push((p, kind));
            }
            self.tracked = keep;
            if pending.is_empty() {
                return (Vec::new(), vanished);
            }
            self.keepalive();
            if Instant::now() > deadline {
                return (
                    vec![format!(
                        "not removed by the container manager within {SETTLE_LIMIT:?}: \
                         {pending:?}"
                    )],
                    vanished,
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Flushes every session (a sync: every event of what came before reaches a session
    /// before its sync reply, on ZooKeeper and on zkrs) and collects each slot's frames.
    fn finish_step(
        &mut self,
        mut lines: Vec<String>,
        created: Vec<String>,
        unordered: bool,
    ) -> Outcome {
        let root = self.root.clone();
        let body = Enc::new().string(&root).finish();
        for slot in 0..SLOTS {
            if self.slots[slot].raw.is_some() {
                if let Err(e) = self.request(slot, OP_SYNC, &body, false) {
                    lines.push(format!("slot{slot} flush sync: {e}"));
                }
            }
        }
        let mut frames = Vec::new();
        for slot in 0..SLOTS {
            let s = &mut self.slots[slot];
            let mut all = std::mem::take(&mut s.old_frames);
            if let Some(raw) = s.raw.as_mut() {
                all.append(&mut raw.log);
                raw.events.clear();
            }
            let marks = std::mem::take(&mut s.marks);
            let mut out = Vec::new();
            for f in all {
                match f {
                    Frame::Event(e) => out.push(format!(
                        "ev(t{} s{} {} z{})",
                        e.event_type,
                        e.state,
                        e.path,
                        self.z(e.zxid)
                    )),
                    Frame::Reply(r) if marks.contains(&r.xid) && !unordered => {
                        out.push("<reply>".to_string())
                    }
                    Frame::Reply(_) => {}
                }
            }
            if unordered {
                out.sort();
            }
            frames.push(out);
        }
        self.obs.log.clear();
        self.obs.events.clear();
        Outcome {
            lines,
            frames,
            created,
        }
    }

    /// Everything under the seed's root, read by the super session: path, data, stat, ACL.
    pub fn dump(&mut self) -> Outcome {
        let mut lines = Vec::new();
        let root = self.root.clone();
        self.obs.sync(&root);
        let mut todo = vec![root];
        while let Some(p) = todo.pop() {
            if lines.len() % 16 == 15 {
                self.keepalive();
            }
            let r = self.obs.get_data(&p, false);
            let mut line = format!("{p}: {}", self.fmt_reply(OP_GET_DATA, &r));
            let a = self.obs.call(OP_GET_ACL, &Enc::new().string(&p).finish());
            let _ = write!(line, " | {}", self.fmt_reply(OP_GET_ACL, &a));
            let c = self
                .obs
                .call(OP_GET_CHILDREN, &Enc::new().string(&p).bool(false).finish());
            if c.err == OK {
                if let Some(children) = D::new(&c.body).strings() {
                    for child in sorted(children).into_iter().rev() {
                        todo.push(format!("{p}/{child}"));
                    }
                }
            }
            lines.push(line);
        }
        lines.sort();
        self.obs.log.clear();
        self.obs.events.clear();
        Outcome {
            lines,
            frames: Vec::new(),
            created: Vec::new(),
        }
    }
}
