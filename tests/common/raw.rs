//! A deliberately small ZooKeeper wire client over `std::net::TcpStream`, written from the jute
//! definitions (zookeeper.jute) with manual big-endian encoding. It exists to test protocol
//! details that a full client library hides: handshake fields, reply headers (xid, zxid, err),
//! exact event frames, reconnecting a session by id and password, setWatches, and what happens
//! to a connection after malformed input.
//!
//! Every read has a deadline, so a misbehaving server makes a test fail, never hang.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

// Opcodes (ZooDefs.OpCode).
pub const OP_NOTIFICATION: i32 = 0;
pub const OP_CREATE: i32 = 1;
pub const OP_DELETE: i32 = 2;
pub const OP_EXISTS: i32 = 3;
pub const OP_GET_DATA: i32 = 4;
pub const OP_SET_DATA: i32 = 5;
pub const OP_GET_ACL: i32 = 6;
pub const OP_SET_ACL: i32 = 7;
pub const OP_GET_CHILDREN: i32 = 8;
pub const OP_SYNC: i32 = 9;
pub const OP_PING: i32 = 11;
pub const OP_GET_CHILDREN2: i32 = 12;
pub const OP_CHECK: i32 = 13;
pub const OP_MULTI: i32 = 14;
pub const OP_CREATE2: i32 = 15;
pub const OP_CHECK_WATCHES: i32 = 17;
pub const OP_REMOVE_WATCHES: i32 = 18;
pub const OP_CREATE_CONTAINER: i32 = 19;
pub const OP_CREATE_TTL: i32 = 21;
pub const OP_MULTI_READ: i32 = 22;
pub const OP_AUTH: i32 = 100;
pub const OP_SET_WATCHES: i32 = 101;
pub const OP_GET_EPHEMERALS: i32 = 103;
pub const OP_GET_ALL_CHILDREN_NUMBER: i32 = 104;
pub const OP_SET_WATCHES2: i32 = 105;
pub const OP_ADD_WATCH: i32 = 106;
pub const OP_WHO_AM_I: i32 = 107;
pub const OP_CLOSE_SESSION: i32 = -11;
pub const OP_ERROR: i32 = -1;

// Reserved xids.
pub const XID_NOTIFICATION: i32 = -1;
pub const XID_PING: i32 = -2;
pub const XID_AUTH: i32 = -4;
pub const XID_SET_WATCHES: i32 = -8;

// Error codes (KeeperException.Code).
pub const OK: i32 = 0;
pub const ERR_RUNTIME_INCONSISTENCY: i32 = -2;
pub const ERR_MARSHALLING: i32 = -5;
pub const ERR_UNIMPLEMENTED: i32 = -6;
pub const ERR_BAD_ARGUMENTS: i32 = -8;
pub const ERR_NO_NODE: i32 = -101;
pub const ERR_NO_AUTH: i32 = -102;
pub const ERR_BAD_VERSION: i32 = -103;
pub const ERR_NO_CHILDREN_FOR_EPHEMERALS: i32 = -108;
pub const ERR_NODE_EXISTS: i32 = -110;
pub const ERR_NOT_EMPTY: i32 = -111;
pub const ERR_SESSION_EXPIRED: i32 = -112;
pub const ERR_INVALID_ACL: i32 = -114;
pub const ERR_AUTH_FAILED: i32 = -115;
pub const ERR_NO_WATCHER: i32 = -121;

// Watch event types.
pub const EV_NODE_CREATED: i32 = 1;
pub const EV_NODE_DELETED: i32 = 2;
pub const EV_NODE_DATA_CHANGED: i32 = 3;
pub const EV_NODE_CHILDREN_CHANGED: i32 = 4;

// Watcher types for checkWatches / removeWatches.
pub const WATCHER_CHILDREN: i32 = 1;
pub const WATCHER_DATA: i32 = 2;
pub const WATCHER_ANY: i32 = 3;
pub const WATCHER_PERSISTENT: i32 = 4;
pub const WATCHER_PERSISTENT_RECURSIVE: i32 = 5;

// Create flags.
pub const CREATE_PERSISTENT: i32 = 0;
pub const CREATE_EPHEMERAL: i32 = 1;
pub const CREATE_SEQUENTIAL: i32 = 2;
pub const CREATE_EPHEMERAL_SEQUENTIAL: i32 = 3;
pub const CREATE_CONTAINER: i32 = 4;
pub const CREATE_TTL: i32 = 5;

/// The default read deadline for a reply.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Jute encoder: big-endian ints, length-prefixed buffers and strings.
#[derive(Default)]
pub struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn new() -> Enc {
        Enc::default()
    }
    pub fn int(mut self, v: i32) -> Enc {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn long(mut self, v: i64) -> Enc {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    pub fn bool(mut self, v: bool) -> Enc {
        self.buf.push(u8::from(v));
        self
    }
    pub fn buffer(self, v: &[u8]) -> Enc {
        let len = i32::try_from(v.len()).expect("buffer too long");
        let mut s = self.int(len);
        s.buf.extend_from_slice(v);
        s
    }
    pub fn null_buffer(self) -> Enc {
        self.int(-1)
    }
    pub fn string(self, v: &str) -> Enc {
        self.buffer(v.as_bytes())
    }
    pub fn strings(self, v: &[&str]) -> Enc {
        let len = i32::try_from(v.len()).expect("too many strings");
        v.iter().fold(self.int(len), |e, s| e.string(s))
    }
    /// vector<ACL>: each (perms, scheme, id).
    pub fn acls(self, v: &[(i32, &str, &str)]) -> Enc {
        let len = i32::try_from(v.len()).expect("too many acls");
        v.iter().fold(self.int(len), |e, (perms, scheme, id)| {
            e.int(*perms).string(scheme).string(id)
        })
    }
    /// The open ACL world:anyone with all permissions.
    pub fn open_acl(self) -> Enc {
        self.acls(&[(31, "world", "anyone")])
    }
    pub fn bytes(mut self, v: &[u8]) -> Enc {
        self.buf.extend_from_slice(v);
        self
    }
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Jute decoder over a reply body; panics with a clear message on short input (test code).
pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        assert!(
            self.pos + n <= self.buf.len(),
            "short body: need {n} bytes at {} of {}",
            self.pos,
            self.buf.len()
        );
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
    pub fn int(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    pub fn long(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    pub fn bool(&mut self) -> bool {
        self.take(1)[0] != 0
    }
    /// None for a null (-1 length) buffer.
    pub fn buffer(&mut self) -> Option<Vec<u8>> {
        let len = self.int();
        if len < 0 {
            return None;
        }
        Some(self.take(len as usize).to_vec())
    }
    pub fn string(&mut self) -> String {
        String::from_utf8(self.buffer().unwrap_or_default()).expect("utf-8 string")
    }
    pub fn strings(&mut self) -> Vec<String> {
        let n = self.int();
        (0..n.max(0)).map(|_| self.string()).collect()
    }
    pub fn acls(&mut self) -> Vec<RawAcl> {
        let n = self.int();
        (0..n.max(0))
            .map(|_| {
                let perms = self.int();
                let scheme = self.string();
                let id = self.string();
                (perms, scheme, id)
            })
            .collect()
    }
    pub fn stat(&mut self) -> RawStat {
        RawStat {
            czxid: self.long(),
            mzxid: self.long(),
            ctime: self.long(),
            mtime: self.long(),
            version: self.int(),
            cversion: self.int(),
            aversion: self.int(),
            ephemeral_owner: self.long(),
            data_length: self.int(),
            num_children: self.int(),
            pzxid: self.long(),
        }
    }
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
}

/// One ACL entry: (perms, scheme, id).
pub type RawAcl = (i32, String, String);

/// org.apache.zookeeper.data.Stat, in wire order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawStat {
    pub czxid: i64,
    pub mzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
    pub ephemeral_owner: i64,
    pub data_length: i32,
    pub num_children: i32,
    pub pzxid: i64,
}

/// A reply to a request: the ReplyHeader and the undecoded body.
#[derive(Clone, Debug)]
pub struct RawReply {
    pub xid: i32,
    pub zxid: i64,
    pub err: i32,
    pub body: Vec<u8>,
}

impl RawReply {
    pub fn dec(&self) -> Dec<'_> {
        Dec::new(&self.body)
    }
    /// Panics unless err == 0.
    pub fn ok(self) -> RawReply {
        assert_eq!(self.err, OK, "unexpected error reply {self:?}");
        self
    }
}

/// A watch notification (xid -1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEvent {
    pub event_type: i32,
    pub state: i32,
    pub path: String,
    /// zxid field of the notification's ReplyHeader.
    pub zxid: i64,
}

#[derive(Clone, Debug)]
pub enum Frame {
    Reply(RawReply),
    Event(RawEvent),
}

/// Fields of a ConnectRequest.
#[derive(Clone, Debug)]
pub struct ConnectReq {
    pub protocol_version: i32,
    pub last_zxid_seen: i64,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    /// None leaves the trailing readOnly byte out (as pre-3.4 clients do).
    pub read_only: Option<bool>,
}

impl ConnectReq {
    pub fn new_session(timeout_ms: i32) -> ConnectReq {
        ConnectReq {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout_ms,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        }
    }
    pub fn encode(&self) -> Vec<u8> {
        let e = Enc::new()
            .int(self.protocol_version)
            .long(self.last_zxid_seen)
            .int(self.timeout_ms)
            .long(self.session_id)
            .buffer(&self.passwd);
        match self.read_only {
            Some(ro) => e.bool(ro).finish(),
            None => e.finish(),
        }
    }
}

/// Fields of a ConnectResponse plus the frame length it came in.
#[derive(Clone, Debug)]
pub struct ConnectResp {
    pub protocol_version: i32,
    pub timeout_ms: i32,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub read_only: Option<bool>,
    pub frame_len: usize,
}

/// Prefixes a payload with its 4-byte big-endian length.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

fn resolve(addr: &str) -> SocketAddr {
    addr.to_socket_addrs()
        .unwrap_or_else(|e| panic!("resolve {addr}: {e}"))
        .next()
        .unwrap_or_else(|| panic!("resolve {addr}: no address"))
}

/// Opens a TCP connection with timeouts set.
pub fn dial(addr: &str) -> TcpStream {
    let stream = TcpStream::connect_timeout(&resolve(addr), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.set_nodelay(true).ok();
    stream.set_write_timeout(Some(Duration::from_secs(5))).ok();
    stream
}

fn read_exact_by(stream: &mut TcpStream, buf: &mut [u8], deadline: Instant) -> std::io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let now = Instant::now();
        if now >= deadline {
            return Err(std::io::Error::new(
                ErrorKind::TimedOut,
                "read deadline passed",
            ));
        }
        stream.set_read_timeout(Some(deadline - now))?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "connection closed",
                ))
            }
            Ok(n) => filled += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(std::io::Error::new(ErrorKind::TimedOut, "read timed out"))
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads one length-prefixed frame before `deadline`.
pub fn read_frame_by(stream: &mut TcpStream, deadline: Instant) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    read_exact_by(stream, &mut len, deadline)?;
    let len = i32::from_be_bytes(len);
    if !(0..=16 * 1024 * 1024).contains(&len) {
        return Err(std::io::Error::new(
            ErrorKind::InvalidData,
            format!("bad frame length {len}"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    // Once the length is consumed the frame must be read whole, or the stream's framing is
    // lost for every later read: the body gets time of its own even past `deadline`.
    let body_deadline = deadline.max(Instant::now() + Duration::from_secs(5));
    read_exact_by(stream, &mut body, body_deadline)?;
    Ok(body)
}

/// Waits until the peer closes the connection (EOF or reset). True if it closed before
/// `limit`; any bytes that arrive meanwhile are discarded.
pub fn wait_closed(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if stream.set_read_timeout(Some(deadline - now)).is_err() {
            return true;
        }
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Sends a ConnectRequest on a fresh connection and reads the ConnectResponse.
pub fn handshake(addr: &str, req: &ConnectReq) -> (TcpStream, std::io::Result<ConnectResp>) {
    let mut stream = dial(addr);
    if let Err(e) = stream.write_all(&frame(&req.encode())) {
        return (stream, Err(e));
    }
    let resp = read_frame_by(&mut stream, Instant::now() + READ_TIMEOUT).map(|body| {
        let mut d = Dec::new(&body);
        let protocol_version = d.int();
        let timeout_ms = d.int();
        let session_id = d.long();
        let passwd = d.buffer().unwrap_or_default();
        let read_only = (d.remaining() > 0).then(|| d.bool());
        ConnectResp {
            protocol_version,
            timeout_ms,
            session_id,
            passwd,
            read_only,
            frame_len: body.len(),
        }
    });
    (stream, resp)
}

/// Opens and closes a session without panicking; true if the server granted one. Used to
/// tell that a server is really serving (Apache ZooKeeper answers `ruok` before it is).
pub fn try_session(addr: &str) -> bool {
    let Some(sock) = addr.to_socket_addrs().ok().and_then(|mut a| a.next()) else {
        return false;
    };
    let Ok(mut stream) = TcpStream::connect_timeout(&sock, Duration::from_secs(2)) else {
        return false;
    };
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    if stream
        .write_all(&frame(&ConnectReq::new_session(30_000).encode()))
        .is_err()
    {
        return false;
    }
    let Ok(body) = read_frame_by(&mut stream, Instant::now() + Duration::from_secs(2)) else {
        return false;
    };
    let mut d = Dec::new(&body);
    if body.len() < 16 {
        return false;
    }
    d.int();
    let granted = d.int() > 0;
    if granted {
        let close = Enc::new().int(1).int(OP_CLOSE_SESSION).finish();
        let _ = stream.write_all(&frame(&close));
        let _ = read_frame_by(&mut stream, Instant::now() + Duration::from_secs(2));
    }
    granted
}

/// One raw session on one connection.
pub struct Raw {
    pub addr: String,
    pub stream: TcpStream,
    pub session_id: i64,
    pub passwd: Vec<u8>,
    pub timeout_ms: i32,
    /// Highest zxid seen in a reply header (what a client sends as lastZxidSeen).
    pub last_zxid: i64,
    next_xid: i32,
    /// Notifications read while waiting for replies, in arrival order.
    pub events: VecDeque<RawEvent>,
    /// Every frame in arrival order since the last `take_log` (replies and events).
    pub log: Vec<Frame>,
    /// When set, [`Raw::wait_reply`] pings the server each time a reply is this late. Apache
    /// ZooKeeper 3.8.0 (Debian's package) has ZOOKEEPER-4537, fixed in 3.8.1: its
    /// CommitProcessor can miss the wake-up of a commit that lands between its queue checks
    /// and its wait, then holds the request until another request or commit reaches that
    /// server. A follower's sync answered quickly by its leader (a zkrs leader answers in
    /// microseconds) hits that window often. A ping is a request: it wakes the processor and
    /// changes nothing a test observes.
    pub nudge_after: Option<Duration>,
}

impl Raw {
    /// Creates a new session.
    pub fn connect(addr: &str, timeout_ms: i32) -> Raw {
        let (stream, resp) = handshake(addr, &ConnectReq::new_session(timeout_ms));
        let resp = resp.unwrap_or_else(|e| panic!("handshake with {addr}: {e}"));
        assert_ne!(resp.timeout_ms, 0, "server refused a new session: {resp:?}");
        Raw::from_parts(addr, stream, resp, 0)
    }

    /// Reattaches to an existing session on a new connection. Panics if the server refuses.
    pub fn resume(
        addr: &str,
        session_id: i64,
        passwd: &[u8],
        last_zxid: i64,
        timeout_ms: i32,
    ) -> Raw {
        let req = ConnectReq {
            protocol_version: 0,
            last_zxid_seen: last_zxid,
            timeout_ms,
            session_id,
            passwd: passwd.to_vec(),
            read_only: Some(false),
        };
        let (stream, resp) = handshake(addr, &req);
        let resp = resp.unwrap_or_else(|e| panic!("resume handshake with {addr}: {e}"));
        assert_ne!(
            resp.timeout_ms, 0,
            "server refused to resume session {session_id:#x}"
        );
        assert_eq!(resp.session_id, session_id, "resumed a different session");
        Raw::from_parts(addr, stream, resp, last_zxid)
    }

    /// As [`Raw::connect`] / [`Raw::resume`] without panicking: sends `req` on a fresh
    /// connection; Err describes a failed handshake or a refusal (timeout 0 in the answer).
    /// On success the answer is returned as well, for comparing its fields.
    pub fn try_handshake(addr: &str, req: &ConnectReq) -> Result<(Raw, ConnectResp), String> {
        let (stream, resp) = handshake(addr, req);
        let resp = resp.map_err(|e| format!("handshake: {e}"))?;
        if resp.timeout_ms <= 0 {
            return Err(format!("refused: {resp:?}"));
        }
        let raw = Raw::from_parts(addr, stream, resp.clone(), req.last_zxid_seen);
        Ok((raw, resp))
    }

    /// A session over a connection whose handshake [`handshake`] already did (and that the
    /// server granted).
    pub fn from_handshake(addr: &str, stream: TcpStream, resp: ConnectResp, last_zxid: i64) -> Raw {
        Raw::from_parts(addr, stream, resp, last_zxid)
    }

    fn from_parts(addr: &str, stream: TcpStream, resp: ConnectResp, last_zxid: i64) -> Raw {
        Raw {
            addr: addr.to_string(),
            stream,
            session_id: resp.session_id,
            passwd: resp.passwd,
            timeout_ms: resp.timeout_ms,
            last_zxid,
            next_xid: 1,
            events: VecDeque::new(),
            log: Vec::new(),
            nudge_after: None,
        }
    }

    /// Writes raw bytes to the socket.
    pub fn send_bytes(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Sends a request with an explicit xid.
    pub fn send_with_xid(&mut self, xid: i32, op: i32, body: &[u8]) {
        let payload = Enc::new().int(xid).int(op).bytes(body).finish();
        self.stream
            .write_all(&frame(&payload))
            .unwrap_or_else(|e| panic!("send op {op}: {e}"));
    }

    /// Sends a request with the next xid, without waiting; returns the xid.
    pub fn send(&mut self, op: i32, body: &[u8]) -> i32 {
        let xid = self.next_xid;
        self.next_xid += 1;
        self.send_with_xid(xid, op, body);
        xid
    }

    /// Reads the next frame (reply or event) before `deadline`.
    pub fn read_frame(&mut self, deadline: Instant) -> std::io::Result<Frame> {
        let body = read_frame_by(&mut self.stream, deadline)?;
        let mut d = Dec::new(&body);
        let xid = d.int();
        let zxid = d.long();
        let err = d.int();
        let frame = if xid == XID_NOTIFICATION {
            let event_type = d.int();
            let state = d.int();
            let path = d.string();
            Frame::Event(RawEvent {
                event_type,
                state,
                path,
                zxid,
            })
        } else {
            if zxid > self.last_zxid {
                self.last_zxid = zxid;
            }
            Frame::Reply(RawReply {
                xid,
                zxid,
                err,
                body: body[16..].to_vec(),
            })
        };
        self.log.push(frame.clone());
        Ok(frame)
    }

    /// Reads frames until the reply with `xid`; notifications are queued in `events`. With
    /// [`Raw::nudge_after`], a late reply gets pings, whose replies (after the awaited one, the
    /// server answers a session in order) are read here too.
    pub fn wait_reply(&mut self, xid: i32) -> RawReply {
        let deadline = Instant::now() + READ_TIMEOUT;
        let mut reply = None;
        let mut pings = 0;
        loop {
            if pings == 0 {
                if let Some(r) = reply.take() {
                    return r;
                }
            }
            let until = match self.nudge_after {
                Some(after) => deadline.min(Instant::now() + after),
                None => deadline,
            };
            match self.read_frame(until) {
                Ok(Frame::Event(ev)) => self.events.push_back(ev),
                Ok(Frame::Reply(r)) if r.xid == xid && reply.is_none() => reply = Some(r),
                Ok(Frame::Reply(r)) if r.xid == XID_PING && pings > 0 => pings -= 1,
                Ok(Frame::Reply(r)) => panic!("expected reply to xid {xid}, got {r:?}"),
                Err(e)
                    if e.kind() == ErrorKind::TimedOut
                        && reply.is_none()
                        && Instant::now() < deadline =>
                {
                    self.send_with_xid(XID_PING, OP_PING, &[]);
                    pings += 1;
                }
                Err(e) => panic!("waiting for reply to xid {xid}: {e}"),
            }
        }
    }

    /// Sends a request and waits for its reply.
    pub fn call(&mut self, op: i32, body: &[u8]) -> RawReply {
        let xid = self.send(op, body);
        self.wait_reply(xid)
    }

    /// Next notification, waiting up to `limit`; None if none arrived. Replies read meanwhile
    /// are a protocol error here (nothing is outstanding) and panic.
    pub fn next_event(&mut self, limit: Duration) -> Option<RawEvent> {
        if let Some(ev) = self.events.pop_front() {
            return Some(ev);
        }
        let deadline = Instant::now() + limit;
        match self.read_frame(deadline) {
            Ok(Frame::Event(ev)) => Some(ev),
            Ok(Frame::Reply(r)) => panic!("unexpected reply while waiting for an event: {r:?}"),
            Err(e) if e.kind() == ErrorKind::TimedOut => None,
            Err(e) => panic!("waiting for an event: {e}"),
        }
    }

    /// Collects all notifications that arrive within `limit`.
    pub fn drain_events(&mut self, limit: Duration) -> Vec<RawEvent> {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        while let Some(ev) = self.next_event(deadline.saturating_duration_since(Instant::now())) {
            out.push(ev);
        }
        out
    }

    /// The events of a change that must produce at least one: waits up to 10 s for the
    /// first (a loaded machine can delay it past any short window), then collects more
    /// until `quiet` passes without one.
    pub fn settled_events(&mut self, quiet: Duration) -> Vec<RawEvent> {
        let mut out: Vec<RawEvent> = self
            .next_event(Duration::from_secs(10))
            .into_iter()
            .collect();
        if !out.is_empty() {
            out.extend(self.drain_events(quiet));
        }
        out
    }

    pub fn ping(&mut self) -> RawReply {
        self.send_with_xid(XID_PING, OP_PING, &[]);
        self.wait_reply(XID_PING)
    }

    pub fn create(&mut self, path: &str, data: &[u8], flags: i32) -> RawReply {
        let body = Enc::new()
            .string(path)
            .buffer(data)
            .open_acl()
            .int(flags)
            .finish();
        self.call(OP_CREATE, &body)
    }

    /// create2: the reply body is path + stat.
    pub fn create2(&mut self, path: &str, data: &[u8], flags: i32) -> RawReply {
        let body = Enc::new()
            .string(path)
            .buffer(data)
            .open_acl()
            .int(flags)
            .finish();
        self.call(OP_CREATE2, &body)
    }

    pub fn delete(&mut self, path: &str, version: i32) -> RawReply {
        self.call(OP_DELETE, &Enc::new().string(path).int(version).finish())
    }

    pub fn exists(&mut self, path: &str, watch: bool) -> RawReply {
        self.call(OP_EXISTS, &Enc::new().string(path).bool(watch).finish())
    }

    pub fn get_data(&mut self, path: &str, watch: bool) -> RawReply {
        self.call(OP_GET_DATA, &Enc::new().string(path).bool(watch).finish())
    }

    pub fn set_data(&mut self, path: &str, data: &[u8], version: i32) -> RawReply {
        self.call(
            OP_SET_DATA,
            &Enc::new().string(path).buffer(data).int(version).finish(),
        )
    }

    pub fn get_children(&mut self, path: &str, watch: bool) -> RawReply {
        self.call(
            OP_GET_CHILDREN,
            &Enc::new().string(path).bool(watch).finish(),
        )
    }

    /// sync: after its reply, this session's reads reflect every write committed before it.
    pub fn sync(&mut self, path: &str) -> RawReply {
        self.call(OP_SYNC, &Enc::new().string(path).finish()).ok()
    }

    pub fn add_watch(&mut self, path: &str, mode: i32) -> RawReply {
        self.call(OP_ADD_WATCH, &Enc::new().string(path).int(mode).finish())
    }

    pub fn check_watches(&mut self, path: &str, watcher_type: i32) -> RawReply {
        self.call(
            OP_CHECK_WATCHES,
            &Enc::new().string(path).int(watcher_type).finish(),
        )
    }

    pub fn remove_watches(&mut self, path: &str, watcher_type: i32) -> RawReply {
        self.call(
            OP_REMOVE_WATCHES,
            &Enc::new().string(path).int(watcher_type).finish(),
        )
    }

    /// setWatches (opcode 101, xid -8) with the one-shot watch lists.
    pub fn set_watches(
        &mut self,
        relative_zxid: i64,
        data: &[&str],
        exist: &[&str],
        child: &[&str],
    ) -> RawReply {
        let body = Enc::new()
            .long(relative_zxid)
            .strings(data)
            .strings(exist)
            .strings(child)
            .finish();
        self.send_with_xid(XID_SET_WATCHES, OP_SET_WATCHES, &body);
        self.wait_reply(XID_SET_WATCHES)
    }

    /// setWatches2 (opcode 105, xid -8): one-shot lists plus persistent and recursive paths.
    pub fn set_watches2(
        &mut self,
        relative_zxid: i64,
        one_shot: [&[&str]; 3],
        persistent: &[&str],
        recursive: &[&str],
    ) -> RawReply {
        let body = Enc::new()
            .long(relative_zxid)
            .strings(one_shot[0])
            .strings(one_shot[1])
            .strings(one_shot[2])
            .strings(persistent)
            .strings(recursive)
            .finish();
        self.send_with_xid(XID_SET_WATCHES, OP_SET_WATCHES2, &body);
        self.wait_reply(XID_SET_WATCHES)
    }

    /// addauth (opcode 100, xid -4).
    pub fn auth(&mut self, scheme: &str, auth: &[u8]) -> RawReply {
        let body = Enc::new().int(0).string(scheme).buffer(auth).finish();
        self.send_with_xid(XID_AUTH, OP_AUTH, &body);
        self.wait_reply(XID_AUTH)
    }

    /// closeSession; returns its reply.
    pub fn close_session(&mut self) -> RawReply {
        self.call(OP_CLOSE_SESSION, &[])
    }

    /// Drops the TCP connection without closing the session.
    pub fn disconnect(self) -> (i64, Vec<u8>, i64) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        (self.session_id, self.passwd, self.last_zxid)
    }
}

/// One operation of a multi request.
pub enum MultiOp<'a> {
    Create {
        path: &'a str,
        data: &'a [u8],
        flags: i32,
    },
    Create2 {
        path: &'a str,
        data: &'a [u8],
        flags: i32,
    },
    Delete {
        path: &'a str,
        version: i32,
    },
    SetData {
        path: &'a str,
        data: &'a [u8],
        version: i32,
    },
    Check {
        path: &'a str,
        version: i32,
    },
}

/// Encodes a multi (opcode 14) body.
pub fn encode_multi(ops: &[MultiOp<'_>]) -> Vec<u8> {
    let mut e = Enc::new();
    for op in ops {
        e = match op {
            MultiOp::Create { path, data, flags } => e
                .int(OP_CREATE)
                .bool(false)
                .int(-1)
                .string(path)
                .buffer(data)
                .open_acl()
                .int(*flags),
            MultiOp::Create2 { path, data, flags } => e
                .int(OP_CREATE2)
                .bool(false)
                .int(-1)
                .string(path)
                .buffer(data)
                .open_acl()
                .int(*flags),
            MultiOp::Delete { path, version } => e
                .int(OP_DELETE)
                .bool(false)
                .int(-1)
                .string(path)
                .int(*version),
            MultiOp::SetData {
                path,
                data,
                version,
            } => e
                .int(OP_SET_DATA)
                .bool(false)
                .int(-1)
                .string(path)
                .buffer(data)
                .int(*version),
            MultiOp::Check { path, version } => e
                .int(OP_CHECK)
                .bool(false)
                .int(-1)
                .string(path)
                .int(*version),
        };
    }
    e.int(-1).bool(true).int(-1).finish()
}

/// One result of a multi reply: (MultiHeader.type, MultiHeader.err, decoded detail).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MultiResult {
    Create { path: String, stat: Option<RawStat> },
    Delete,
    SetData { stat: RawStat },
    Check,
    Error { header_err: i32, err: i32 },
}

/// Decodes a multi reply body.
pub fn decode_multi(body: &[u8]) -> Vec<MultiResult> {
    let mut d = Dec::new(body);
    let mut out = Vec::new();
    loop {
        let op = d.int();
        let done = d.bool();
        let header_err = d.int();
        if done {
            assert_eq!(op, -1, "done marker with type {op}");
            break;
        }
        out.push(match op {
            OP_CREATE => MultiResult::Create {
                path: d.string(),
                stat: None,
            },
            OP_CREATE2 => {
                let path = d.string();
                MultiResult::Create {
                    path,
                    stat: Some(d.stat()),
                }
            }
            OP_DELETE => MultiResult::Delete,
            OP_SET_DATA => MultiResult::SetData { stat: d.stat() },
            OP_CHECK => MultiResult::Check,
            OP_ERROR => MultiResult::Error {
                header_err,
                err: d.int(),
            },
            other => panic!("unexpected multi result type {other}"),
        });
        assert!(out.len() < 10_000, "runaway multi reply");
    }
    assert_eq!(d.remaining(), 0, "trailing bytes after multi reply");
    out
}

impl Raw {
    /// getACL: returns (acls, stat) or the error code.
    pub fn get_acl_raw(&mut self, path: &str) -> Result<(Vec<RawAcl>, RawStat), i32> {
        let r = self.call(OP_GET_ACL, &Enc::new().string(path).finish());
        if r.err != OK {
            return Err(r.err);
        }
        let mut d = r.dec();
        let acls = d.acls();
        Ok((acls, d.stat()))
    }
}
