//! Byte codecs for ZooKeeper 3.8's peer ports: the quorum port's `QuorumPacket` stream and
//! its typed payloads, the election port's connection initiation message, framing and
//! notifications, and the `QuorumMaj.toString()` config text that both ports carry.
//! `../shared/ZAB-WIRE.md` sections 0-3 and 7 hold the facts these follow.
//!
//! Architecture invariant: pure. Nothing here touches a socket, file, clock or thread. Every
//! decoder treats its input as hostile: a malformed record is a [`WireError`] naming what was
//! wrong, never a panic, and no length or count read off the wire is allocated before it is
//! checked against a limit (incremental decoders) or the bytes present (payload decoders).
//!
//! Incremental decoders ([`QuorumDecoder::decode`], [`decode_election_frame`],
//! [`decode_initiation`]) take a `&mut BytesMut`: they consume exactly one complete record, or
//! return `Ok(None)` and leave the buffer untouched when it does not hold one yet. They never
//! read past the record, so a caller can take the raw snapshot stream that follows a `SNAP`
//! packet from the same buffer.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::{epoch_of, Member, Notification, PeerState, QuorumConfig, ServerId, Vote};
use crate::proto::jute::{JuteWriter, DEFAULT_MAX_FIELD_LEN};
use crate::proto::types::Id;

/// Zab protocol version: `LearnerInfo.protocolVersion` and the LEADERINFO payload (Zab 1.0).
pub const ZAB_PROTOCOL_VERSION: i32 = 0x10000;

/// `QuorumPacket.type` values, named as in ZooKeeper's `Leader.java`.
pub mod packet {
    /// Learner -> leader: a client request to run on the leader.
    pub const REQUEST: i32 = 1;
    /// Leader -> followers: a txn to log and ACK.
    pub const PROPOSAL: i32 = 2;
    /// Follower -> leader: the proposal (or NEWLEADER / UPTODATE epoch zxid) is logged.
    pub const ACK: i32 = 3;
    /// Leader -> followers: the proposal with this zxid is committed.
    pub const COMMIT: i32 = 4;
    /// Both ways: liveness, and (learner -> leader) session touches.
    pub const PING: i32 = 5;
    /// Both ways: session revalidation on reconnect to a learner.
    pub const REVALIDATE: i32 = 6;
    /// Leader -> learner: a client's `sync` is done.
    pub const SYNC: i32 = 7;
    /// Leader -> observers: a committed txn.
    pub const INFORM: i32 = 8;
    /// Leader -> followers: commit a reconfig and activate it.
    pub const COMMITANDACTIVATE: i32 = 9;
    /// Leader -> learner: end of sync; carries the leader's config.
    pub const NEWLEADER: i32 = 10;
    /// Follower -> leader: first packet, a LearnerInfo.
    pub const FOLLOWERINFO: i32 = 11;
    /// Leader -> learner: start serving.
    pub const UPTODATE: i32 = 12;
    /// Leader -> learner: sync by the proposals that follow.
    pub const DIFF: i32 = 13;
    /// Leader -> learner: truncate the log to this zxid.
    pub const TRUNC: i32 = 14;
    /// Leader -> learner: a snapshot stream follows this packet.
    pub const SNAP: i32 = 15;
    /// Observer -> leader: first packet, a LearnerInfo.
    pub const OBSERVERINFO: i32 = 16;
    /// Leader -> learner: the new epoch.
    pub const LEADERINFO: i32 = 17;
    /// Learner -> leader: the new epoch is accepted.
    pub const ACKEPOCH: i32 = 18;
    /// Leader -> observers: a committed reconfig to activate.
    pub const INFORMANDACTIVATE: i32 = 19;
}

/// The name `Leader.getPacketType` gives a packet type, for messages and logs.
pub fn packet_name(kind: i32) -> &'static str {
    match kind {
        packet::REQUEST => "REQUEST",
        packet::PROPOSAL => "PROPOSAL",
        packet::ACK => "ACK",
        packet::COMMIT => "COMMIT",
        packet::PING => "PING",
        packet::REVALIDATE => "REVALIDATE",
        packet::SYNC => "SYNC",
        packet::INFORM => "INFORM",
        packet::COMMITANDACTIVATE => "COMMITANDACTIVATE",
        packet::NEWLEADER => "NEWLEADER",
        packet::FOLLOWERINFO => "FOLLOWERINFO",
        packet::UPTODATE => "UPTODATE",
        packet::DIFF => "DIFF",
        packet::TRUNC => "TRUNC",
        packet::SNAP => "SNAP",
        packet::OBSERVERINFO => "OBSERVERINFO",
        packet::LEADERINFO => "LEADERINFO",
        packet::ACKEPOCH => "ACKEPOCH",
        packet::INFORMANDACTIVATE => "INFORMANDACTIVATE",
        _ => "UNKNOWN",
    }
}

/// Why bytes from a peer could not be decoded (or a record could not be encoded). Every
/// variant names the record or field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A record ended before all of its fields: it needs `needed` bytes, `available` are there.
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    /// A length or count outside `min..=max`.
    BadLength {
        what: &'static str,
        len: i64,
        min: i64,
        max: usize,
    },
    /// Any other malformed field.
    Malformed { what: &'static str, detail: String },
}

impl WireError {
    fn malformed(what: &'static str, detail: impl Into<String>) -> WireError {
        WireError::Malformed {
            what,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated {
                what,
                needed,
                available,
            } => write!(
                f,
                "{what}: truncated, needs {needed} bytes, {available} present"
            ),
            WireError::BadLength {
                what,
                len,
                min,
                max,
            } => write!(f, "{what}: length {len} outside {min}..={max}"),
            WireError::Malformed { what, detail } => write!(f, "{what}: {detail}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Reads big-endian fields off a slice; running out is [`WireError::Truncated`].
struct Cursor<'a> {
    buf: &'a [u8],
    /// Invariant: `pos <= buf.len()`.
    pos: usize,
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Cursor<'a> {
        Cursor { buf, pos: 0, what }
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.remaining() {
            return Err(WireError::Truncated {
                what: self.what,
                needed: self.pos.saturating_add(n),
                available: self.buf.len(),
            });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    fn i32(&mut self) -> Result<i32, WireError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, WireError> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    /// Fails unless every byte was read (fixed-size payloads: Java peers send them exactly).
    fn end(&self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::malformed(
                self.what,
                format!("{n} trailing bytes after {} bytes", self.pos),
            )),
        }
    }
}

/// Turns "ran out of bytes" into "not complete yet" for the incremental decoders. Only valid
/// where every read comes straight off the stream, so truncation can only mean "wait".
fn incomplete_as_none<T>(r: Result<T, WireError>) -> Result<Option<T>, WireError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(WireError::Truncated { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

fn utf8(what: &'static str, bytes: &[u8]) -> Result<String, WireError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|e| WireError::malformed(what, format!("not UTF-8 ({e})")))
}

// ---------------------------------------------------------------------------------------
// Quorum port
// ---------------------------------------------------------------------------------------

/// One jute `QuorumPacket { int type; long zxid; buffer data; vector<Id> authinfo }`.
/// `None` is jute's null (length / count -1), which Java peers send for most packets and
/// which is distinct from an empty buffer (a learner's PING reply sends empty data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumPacket {
    /// One of [`packet`].
    pub kind: i32,
    pub zxid: i64,
    pub data: Option<Bytes>,
    /// The client's identities, on REQUEST packets only.
    pub authinfo: Option<Vec<Id>>,
}

impl QuorumPacket {
    /// A packet without data or authinfo (both null).
    pub fn new(kind: i32, zxid: i64) -> QuorumPacket {
        QuorumPacket {
            kind,
            zxid,
            data: None,
            authinfo: None,
        }
    }

    /// A packet with `data` and null authinfo.
    pub fn with_data(kind: i32, zxid: i64, data: Bytes) -> QuorumPacket {
        QuorumPacket {
            kind,
            zxid,
            data: Some(data),
            authinfo: None,
        }
    }

    /// The data, null read as empty.
    pub fn data_bytes(&self) -> &[u8] {
        self.data.as_deref().unwrap_or(&[])
    }

    /// Appends the jute encoding (no length prefix: the quorum socket has none).
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_i32(self.kind);
        out.put_i64(self.zxid);
        let mut w = JuteWriter::new(out);
        match &self.data {
            None => w.write_i32(-1),
            Some(data) => w.write_buffer(data),
        }
        match &self.authinfo {
            None => w.write_i32(-1),
            Some(ids) => {
                w.write_i32(i32::try_from(ids.len()).unwrap_or(i32::MAX));
                for id in ids {
                    w.write_id(id);
                }
            }
        }
    }

    /// The encoding as one buffer.
    pub fn to_bytes(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(24 + self.data_bytes().len());
        self.encode(&mut out);
        out.freeze()
    }
}

/// Largest QuorumPacket data a [`QuorumDecoder`] accepts by default: ZooKeeper's reader
/// limit (`jute.maxbuffer` + `zookeeper.jute.maxbuffer.extrasize`, about 2 MiB).
pub const DEFAULT_MAX_QUORUM_DATA_LEN: usize = DEFAULT_MAX_FIELD_LEN;

/// Most Ids a packet's authinfo may carry. Java does not bound it; a client holds a handful
/// (its `ip` id plus one per addAuth), so this only stops a count from making us wait for
/// gigabytes.
pub const MAX_AUTHINFO_IDS: usize = 1024;

/// Decodes the quorum port's back-to-back QuorumPackets, one at a time.
#[derive(Debug, Clone)]
pub struct QuorumDecoder {
    /// Bound on `data`'s length, and separately on the total bytes of `authinfo`'s strings.
    max_data_len: usize,
}

/// Where a decoded packet's fields lie in the buffer.
struct PacketLayout {
    kind: i32,
    zxid: i64,
    data: Option<(usize, usize)>,
    authinfo: Option<Vec<Id>>,
    len: usize,
}

impl QuorumDecoder {
    /// A decoder refusing data longer than `max_data_len` bytes (and authinfo strings longer
    /// than that in total).
    pub fn new(max_data_len: usize) -> QuorumDecoder {
        QuorumDecoder { max_data_len }
    }

    /// Consumes one complete packet off the front of `buf`; `Ok(None)` (buf untouched) when it
    /// does not hold a whole one yet. Bytes after the packet stay in `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<QuorumPacket>, WireError> {
        let Some(layout) = incomplete_as_none(self.layout(buf))? else {
            return Ok(None);
        };
        let frame = buf.split_to(layout.len).freeze();
        Ok(Some(QuorumPacket {
            kind: layout.kind,
            zxid: layout.zxid,
            data: layout.data.map(|(start, end)| frame.slice(start..end)),
            authinfo: layout.authinfo,
        }))
    }

    fn layout(&self, buf: &[u8]) -> Result<PacketLayout, WireError> {
        let mut c = Cursor::new(buf, "QuorumPacket");
        let kind = c.i32()?;
        let zxid = c.i64()?;
        let data_len = c.i32()?;
        let data = match data_len {
            -1 => None,
            len if len < 0 || len as usize > self.max_data_len => {
                return Err(WireError::BadLength {
                    what: "QuorumPacket data",
                    len: len.into(),
                    min: -1,
                    max: self.max_data_len,
                })
            }
            len => {
                let start = c.pos;
                c.take(len as usize)?;
                Some((start, c.pos))
            }
        };
        let count = c.i32()?;
        let authinfo = match count {
            -1 => None,
            n if n < 0 || n as usize > MAX_AUTHINFO_IDS => {
                return Err(WireError::BadLength {
                    what: "QuorumPacket authinfo count",
                    len: n.into(),
                    min: -1,
                    max: MAX_AUTHINFO_IDS,
                })
            }
            n => {
                // Checked above: n <= MAX_AUTHINFO_IDS, so this allocation is bounded.
                let mut ids = Vec::with_capacity(n as usize);
                let mut budget = self.max_data_len;
                for _ in 0..n {
                    let scheme = Self::id_string(&mut c, &mut budget, "authinfo Id scheme")?;
                    let id = Self::id_string(&mut c, &mut budget, "authinfo Id id")?;
                    ids.push(Id { scheme, id });
                }
                Some(ids)
            }
        };
        Ok(PacketLayout {
            kind,
            zxid,
            data,
            authinfo,
            len: c.pos,
        })
    }

    /// A ustring of an authinfo Id (null read as empty), charged against `budget`.
    fn id_string(
        c: &mut Cursor<'_>,
        budget: &mut usize,
        what: &'static str,
    ) -> Result<String, WireError> {
        let len = c.i32()?;
        if len == -1 {
            return Ok(String::new());
        }
        if len < 0 || len as usize > *budget {
            return Err(WireError::BadLength {
                what,
                len: len.into(),
                min: -1,
                max: *budget,
            });
        }
        *budget -= len as usize;
        utf8(what, c.take(len as usize)?)
    }
}

impl Default for QuorumDecoder {
    fn default() -> Self {
        QuorumDecoder::new(DEFAULT_MAX_QUORUM_DATA_LEN)
    }
}

/// FOLLOWERINFO / OBSERVERINFO data: jute `LearnerInfo { long serverid; int protocolVersion;
/// long configVersion }`, 20 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LearnerInfo {
    pub server_id: ServerId,
    /// [`ZAB_PROTOCOL_VERSION`] from every 3.4+ learner.
    pub protocol_version: i32,
    /// The learner's quorum config version; the leader drops a learner whose version is
    /// above its own.
    pub config_version: i64,
}

impl LearnerInfo {
    /// Encoded size.
    pub const LEN: usize = 20;

    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(Self::LEN);
        out.put_i64(self.server_id as i64);
        out.put_i32(self.protocol_version);
        out.put_i64(self.config_version);
        out.freeze()
    }

    /// Exactly 20 bytes (what 3.5+ learners send).
    pub fn decode(data: &[u8]) -> Result<LearnerInfo, WireError> {
        let mut c = Cursor::new(data, "LearnerInfo");
        let info = LearnerInfo {
            server_id: c.i64()? as ServerId,
            protocol_version: c.i32()?,
            config_version: c.i64()?,
        };
        c.end()?;
        Ok(info)
    }
}

/// LEADERINFO data: `int protocolVersion` ([`ZAB_PROTOCOL_VERSION`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaderInfo {
    pub protocol_version: i32,
}

impl LeaderInfo {
    pub fn encode(&self) -> Bytes {
        Bytes::copy_from_slice(&self.protocol_version.to_be_bytes())
    }

    pub fn decode(data: &[u8]) -> Result<LeaderInfo, WireError> {
        let mut c = Cursor::new(data, "LEADERINFO data");
        let protocol_version = c.i32()?;
        c.end()?;
        Ok(LeaderInfo { protocol_version })
    }
}

/// ACKEPOCH data: `int currentEpoch`, or [`AckEpoch::SAME_EPOCH`] when the learner had
/// already accepted the proposed epoch (such an ACKEPOCH does not count towards the quorum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckEpoch {
    /// The learner's current epoch as Java's `(int)` cast of it, or -1.
    pub current_epoch: i32,
}

impl AckEpoch {
    /// "I had accepted this epoch already."
    pub const SAME_EPOCH: i32 = -1;

    pub fn encode(&self) -> Bytes {
        Bytes::copy_from_slice(&self.current_epoch.to_be_bytes())
    }

    pub fn decode(data: &[u8]) -> Result<AckEpoch, WireError> {
        let mut c = Cursor::new(data, "ACKEPOCH data");
        let current_epoch = c.i32()?;
        c.end()?;
        Ok(AckEpoch { current_epoch })
    }
}

/// REQUEST data: `long sessionId, int cxid, int type`, then the request body as the client
/// sent it (raw, no length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LearnerRequest {
    pub session_id: i64,
    pub cxid: i32,
    /// The opcode.
    pub op: i32,
    pub body: Bytes,
}

impl LearnerRequest {
    /// Header size before the body.
    pub const HEADER_LEN: usize = 16;

    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(Self::HEADER_LEN + self.body.len());
        out.put_i64(self.session_id);
        out.put_i32(self.cxid);
        out.put_i32(self.op);
        out.put_slice(&self.body);
        out.freeze()
    }

    /// The body is a slice of `data` (no copy).
    pub fn decode(data: &Bytes) -> Result<LearnerRequest, WireError> {
        let mut c = Cursor::new(data, "REQUEST data");
        let session_id = c.i64()?;
        let cxid = c.i32()?;
        let op = c.i32()?;
        Ok(LearnerRequest {
            session_id,
            cxid,
            op,
            body: data.slice(c.pos..),
        })
    }
}

/// One entry of a learner's PING data: a session it saw activity on, and its timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTouch {
    pub session_id: i64,
    pub timeout_ms: i32,
}

/// Size of one [`SessionTouch`] on the wire.
const SESSION_TOUCH_LEN: usize = 12;

/// A learner's PING reply data: the touches back to back (empty when there are none; the
/// leader reads it as a stream, so it must not be null).
pub fn encode_ping_touches(touches: &[SessionTouch]) -> Bytes {
    let mut out = BytesMut::with_capacity(touches.len() * SESSION_TOUCH_LEN);
    for t in touches {
        out.put_i64(t.session_id);
        out.put_i32(t.timeout_ms);
    }
    out.freeze()
}

/// Reads a learner's PING data; a partial trailing entry is an error (Java's leader hits EOF
/// there and drops the learner).
pub fn decode_ping_touches(data: &[u8]) -> Result<Vec<SessionTouch>, WireError> {
    if !data.len().is_multiple_of(SESSION_TOUCH_LEN) {
        return Err(WireError::malformed(
            "PING touches",
            format!(
                "{} bytes is not a whole number of {SESSION_TOUCH_LEN}-byte entries",
                data.len()
            ),
        ));
    }
    let mut c = Cursor::new(data, "PING touches");
    // The count is bounded by the bytes present.
    let mut out = Vec::with_capacity(data.len() / SESSION_TOUCH_LEN);
    while c.remaining() > 0 {
        out.push(SessionTouch {
            session_id: c.i64()?,
            timeout_ms: c.i32()?,
        });
    }
    Ok(out)
}

/// REVALIDATE data from a learner: `long sessionId, int timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevalidateRequest {
    pub session_id: i64,
    pub timeout_ms: i32,
}

impl RevalidateRequest {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(12);
        out.put_i64(self.session_id);
        out.put_i32(self.timeout_ms);
        out.freeze()
    }

    pub fn decode(data: &[u8]) -> Result<RevalidateRequest, WireError> {
        let mut c = Cursor::new(data, "REVALIDATE request");
        let r = RevalidateRequest {
            session_id: c.i64()?,
            timeout_ms: c.i32()?,
        };
        c.end()?;
        Ok(r)
    }
}

/// REVALIDATE data from the leader: `long sessionId, boolean valid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevalidateReply {
    pub session_id: i64,
    pub valid: bool,
}

impl RevalidateReply {
    pub fn encode(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(9);
        out.put_i64(self.session_id);
        out.put_u8(u8::from(self.valid));
        out.freeze()
    }

    /// Any non-zero byte is true (Java's `readBoolean`).
    pub fn decode(data: &[u8]) -> Result<RevalidateReply, WireError> {
        let mut c = Cursor::new(data, "REVALIDATE reply");
        let r = RevalidateReply {
            session_id: c.i64()?,
            valid: c.u8()? != 0,
        };
        c.end()?;
        Ok(r)
    }
}

/// NEWLEADER data: the leader's last-seen config as [`config_to_zk_string`] text.
pub fn encode_new_leader_config(config: &str) -> Bytes {
    Bytes::copy_from_slice(config.as_bytes())
}

/// The config text of a NEWLEADER packet (parse it with [`parse_zk_config`]).
pub fn decode_new_leader_config(data: &[u8]) -> Result<String, WireError> {
    utf8("NEWLEADER config", data)
}

// ---------------------------------------------------------------------------------------
// Election port
// ---------------------------------------------------------------------------------------

/// Initiation protocol version sent by default (3.5+).
pub const PROTOCOL_VERSION_V1: i64 = -65536;
/// Initiation protocol version with several `|`-separated addresses (`multiAddress.enabled`).
pub const PROTOCOL_VERSION_V2: i64 = -65535;
/// Longest election address string an acceptor reads (`QuorumCnxManager.maxBuffer`).
pub const MAX_INITIATION_ADDRESS_LEN: usize = 2048;
/// Longest election message (`QuorumCnxManager.PACKETMAXSIZE`).
pub const MAX_ELECTION_MESSAGE_LEN: usize = 512 * 1024;
/// The notification format version 3.5+ servers send (`Notification.CURRENTVERSION`).
pub const NOTIFICATION_VERSION: i32 = 2;

/// The message a connecting peer sends first on the election port, once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Initiation {
    /// Pre-3.5 peers: one non-negative `long`, the sid, and nothing else.
    Legacy { sid: ServerId },
    /// `long protocolVersion, long sid, int len, len bytes of host:port` (V2: `h:p|h:p|...`).
    Versioned {
        /// [`PROTOCOL_VERSION_V1`] or [`PROTOCOL_VERSION_V2`].
        protocol_version: i64,
        sid: ServerId,
        /// The initiator's election address(es), 1..=2048 bytes of UTF-8.
        address: String,
    },
}

impl Initiation {
    /// The message 3.8 sends by default: V1 with one election address.
    pub fn v1(sid: ServerId, address: impl Into<String>) -> Initiation {
        Initiation::Versioned {
            protocol_version: PROTOCOL_VERSION_V1,
            sid,
            address: address.into(),
        }
    }

    pub fn sid(&self) -> ServerId {
        match self {
            Initiation::Legacy { sid } | Initiation::Versioned { sid, .. } => *sid,
        }
    }

    /// Appends the message; an address outside 1..=2048 bytes (which the acceptor would
    /// refuse) or a legacy sid that would read as negative is an error and writes nothing.
    /// Write the result in one `write`: the Java acceptor reads the address with a single
    /// `read`.
    pub fn encode(&self, out: &mut BytesMut) -> Result<(), WireError> {
        match self {
            Initiation::Legacy { sid } => {
                let sid = i64::try_from(*sid).map_err(|_| {
                    WireError::malformed("initiation", format!("legacy sid {sid} is negative"))
                })?;
                out.put_i64(sid);
            }
            Initiation::Versioned {
                protocol_version,
                sid,
                address,
            } => {
                check_initiation_address_len(address.len() as i64)?;
                out.put_i64(*protocol_version);
                out.put_i64(*sid as i64);
                out.put_i32(address.len() as i32);
                out.put_slice(address.as_bytes());
            }
        }
        Ok(())
    }

    /// The election addresses of a versioned message as (host, port), IPv6 without brackets
    /// (empty for a legacy message).
    pub fn addresses(&self) -> Result<Vec<(String, u16)>, WireError> {
        match self {
            Initiation::Legacy { .. } => Ok(Vec::new()),
            Initiation::Versioned { address, .. } => address
                .split('|')
                .map(|a| split_host_port("initiation address", a))
                .collect(),
        }
    }
}

fn check_initiation_address_len(len: i64) -> Result<(), WireError> {
    if len < 1 || len > MAX_INITIATION_ADDRESS_LEN as i64 {
        return Err(WireError::BadLength {
            what: "initiation address",
            len,
            min: 1,
            max: MAX_INITIATION_ADDRESS_LEN,
        });
    }
    Ok(())
}

/// Consumes the initiation message off the front of `buf` (`Ok(None)`, untouched, until it
/// is complete). As the Java acceptor: a first `long` >= 0 is a legacy sid and ends the
/// message; a negative one other than V1/V2, an address length outside 1..=2048, or an
/// address that is not UTF-8 `host:port` entries is an error.
pub fn decode_initiation(buf: &mut BytesMut) -> Result<Option<Initiation>, WireError> {
    let Some((msg, len)) = incomplete_as_none(initiation_layout(buf))? else {
        return Ok(None);
    };
    buf.advance(len);
    Ok(Some(msg))
}

fn initiation_layout(buf: &[u8]) -> Result<(Initiation, usize), WireError> {
    let mut c = Cursor::new(buf, "initiation");
    let first = c.i64()?;
    if first >= 0 {
        return Ok((Initiation::Legacy { sid: first as u64 }, c.pos));
    }
    if first != PROTOCOL_VERSION_V1 && first != PROTOCOL_VERSION_V2 {
        return Err(WireError::malformed(
            "initiation",
            format!("unknown protocol version {first}"),
        ));
    }
    let sid = c.i64()? as ServerId;
    let len = c.i32()?;
    check_initiation_address_len(len.into())?;
    let address = utf8("initiation address", c.take(len as usize)?)?;
    let msg = Initiation::Versioned {
        protocol_version: first,
        sid,
        address,
    };
    // Java closes the connection on an entry that is not host:port.
    msg.addresses()?;
    Ok((msg, c.pos))
}

/// Appends one election message: `int length` then the payload.
pub fn encode_election_frame(payload: &[u8], out: &mut BytesMut) -> Result<(), WireError> {
    check_election_len(payload.len() as i64)?;
    out.put_i32(payload.len() as i32);
    out.put_slice(payload);
    Ok(())
}

fn check_election_len(len: i64) -> Result<(), WireError> {
    if len < 1 || len > MAX_ELECTION_MESSAGE_LEN as i64 {
        return Err(WireError::BadLength {
            what: "election message",
            len,
            min: 1,
            max: MAX_ELECTION_MESSAGE_LEN,
        });
    }
    Ok(())
}

/// Consumes one election message off the front of `buf` and returns its payload
/// (`Ok(None)`, untouched, until it is complete). A length outside 1..=524288 is an error
/// (the Java receiver drops the connection).
pub fn decode_election_frame(buf: &mut BytesMut) -> Result<Option<Bytes>, WireError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
    check_election_len(len.into())?;
    let len = len as usize;
    if buf.len() < 4 + len {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Size of the pre-3.4 notification (no peer epoch, no version).
const NOTIFICATION_LEN_PRE_34: usize = 28;
/// Size of a notification without config; receivers read no version from it.
const NOTIFICATION_LEN_NO_CONFIG: usize = 40;
/// Size of a version 2 notification's fixed part.
const NOTIFICATION_LEN_FIXED: usize = 44;

/// Appends a notification payload (frame it with [`encode_election_frame`]). Version 2 and
/// above: `44 + config` bytes, with an empty config when `config` is None. Versions 1 and
/// below: the 40-byte layout with `version` at offset 36, which any receiver reads as
/// version 0.
/// Errors (writing nothing) if the config would make the message too long.
pub fn encode_notification(n: &Notification, out: &mut BytesMut) -> Result<(), WireError> {
    let config = n.config.as_deref().unwrap_or("").as_bytes();
    let with_config = n.version > 1;
    if with_config {
        check_election_len((NOTIFICATION_LEN_FIXED + config.len()) as i64)?;
    }
    out.put_i32(n.state as i32);
    out.put_i64(n.vote.leader as i64);
    out.put_i64(n.vote.zxid);
    out.put_i64(n.vote.election_epoch);
    out.put_i64(n.vote.peer_epoch);
    out.put_i32(n.version);
    if with_config {
        out.put_i32(config.len() as i32);
        out.put_slice(config);
    }
    Ok(())
}

/// A framed notification, ready to write.
pub fn notification_frame(n: &Notification) -> Result<Bytes, WireError> {
    let mut payload = BytesMut::new();
    encode_notification(n, &mut payload)?;
    let mut out = BytesMut::with_capacity(4 + payload.len());
    encode_election_frame(&payload, &mut out)?;
    Ok(out.freeze())
}

/// Reads a notification payload with every compatibility rule of ZooKeeper 3.8's receiver:
/// under 28 bytes is an error; exactly 28 is pre-3.4 (version 0, peer epoch = epoch of the
/// zxid); exactly 40 is version 0 without config (the int at 36 is not read); otherwise the
/// version is read, and above 1 a config of `0..=` the bytes left follows. Bytes after what
/// the version defines are ignored, as Java does. An unknown state is an error. The config
/// is decoded as Java does (invalid UTF-8 replaced, not refused: Java only logs a config it
/// cannot parse and still counts the vote).
pub fn decode_notification(payload: &[u8]) -> Result<Notification, WireError> {
    let len = payload.len();
    if len < NOTIFICATION_LEN_PRE_34 {
        return Err(WireError::Truncated {
            what: "notification",
            needed: NOTIFICATION_LEN_PRE_34,
            available: len,
        });
    }
    let mut c = Cursor::new(payload, "notification");
    let state_value = c.i32()?;
    let leader = c.i64()? as ServerId;
    let zxid = c.i64()?;
    let election_epoch = c.i64()?;
    let (peer_epoch, version, config) = if len == NOTIFICATION_LEN_PRE_34 {
        (i64::from(epoch_of(zxid)), 0, None)
    } else {
        let peer_epoch = c.i64()?;
        if len == NOTIFICATION_LEN_NO_CONFIG {
            (peer_epoch, 0, None)
        } else {
            let version = c.i32()?;
            let config = if version > 1 {
                let config_len = c.i32()?;
                if config_len < 0 || config_len as usize > c.remaining() {
                    return Err(WireError::BadLength {
                        what: "notification config",
                        len: config_len.into(),
                        min: 0,
                        max: c.remaining(),
                    });
                }
                let raw = c.take(config_len as usize)?;
                Some(String::from_utf8_lossy(raw).into_owned())
            } else {
                None
            };
            (peer_epoch, version, config)
        }
    };
    let state = PeerState::from_i32(state_value).ok_or_else(|| {
        WireError::malformed("notification", format!("unknown state {state_value}"))
    })?;
    Ok(Notification {
        state,
        vote: Vote {
            leader,
            zxid,
            election_epoch,
            peer_epoch,
        },
        version,
        config,
    })
}

// ---------------------------------------------------------------------------------------
// Config text (QuorumMaj.toString / QuorumPeerConfig.parseDynamicConfig)
// ---------------------------------------------------------------------------------------

/// A host as `QuorumServer.delimitedHostString` writes it: IPv6 literals in brackets.
fn delimited_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// `QuorumServer.toString()`: `host:quorumPort:electionPort:participant|observer`, then
/// `;clientHost:clientPort` when the member has a client address from the dynamic syntax (a
/// bare `;port` is `0.0.0.0`, as Java resolves it).
pub fn member_to_zk_string(m: &Member) -> String {
    let mut s = format!(
        "{}:{}:{}:{}",
        delimited_host(&m.host),
        m.quorum_port,
        m.election_port,
        if m.observer {
            "observer"
        } else {
            "participant"
        }
    );
    if let Some((host, port)) = &m.client {
        let host = host.as_deref().unwrap_or("0.0.0.0");
        s.push_str(&format!(";{}:{port}", delimited_host(host)));
    }
    s
}

/// `QuorumMaj.toString()`: one `server.<id>=<member>\n` line per member (ours in id order;
/// Java's in HashMap order, which is id order for small ids), then `version=<hex>` without
/// a trailing newline. The version is written as Java's `Long.toHexString` (two's
/// complement for a negative one, which Java itself cannot parse back; [`parse_zk_config`]
/// can).
pub fn config_to_zk_string(q: &QuorumConfig) -> String {
    let mut s = String::new();
    for m in &q.members {
        s.push_str(&format!("server.{}={}\n", m.id, member_to_zk_string(m)));
    }
    s.push_str(&format!("version={:x}", q.version as u64));
    s
}

/// Splits `host:port` or `[v6]:port` (`ConfigUtils.getHostAndPort` with two parts).
fn split_host_port(what: &'static str, s: &str) -> Result<(String, u16), WireError> {
    let parts = host_and_port_parts(what, s)?;
    match parts.as_slice() {
        [host, port] if !host.is_empty() => Ok((host.clone(), parse_port(what, port)?)),
        _ => Err(WireError::malformed(
            what,
            format!("{s:?} is not host:port"),
        )),
    }
}

/// `ConfigUtils.getHostAndPort`: a leading `[...]` is one part (the brackets dropped), the
/// rest splits on `:`.
fn host_and_port_parts(what: &'static str, s: &str) -> Result<Vec<String>, WireError> {
    if let Some(rest) = s.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err(WireError::malformed(
                what,
                format!("{s:?} starts with '[' but has no ']'"),
            ));
        };
        let host = &rest[..close];
        let after = &rest[close + 1..];
        let Some(ports) = after.strip_prefix(':').filter(|p| !p.is_empty()) else {
            return Err(WireError::malformed(
                what,
                format!("{s:?} has no port after ']:'"),
            ));
        };
        let mut parts = vec![host.to_owned()];
        parts.extend(ports.split(':').map(str::to_owned));
        Ok(parts)
    } else {
        Ok(s.split(':').map(str::to_owned).collect())
    }
}

fn parse_port(what: &'static str, s: &str) -> Result<u16, WireError> {
    s.trim()
        .parse::<u16>()
        .map_err(|_| WireError::malformed(what, format!("bad port {s:?}")))
}

/// Parses the value of a `server.<id>=` line (`QuorumServer(sid, addressStr)`):
/// `host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]`.
/// Several `|`-separated addresses (multiAddress) are refused: a [`Member`] holds one.
pub fn parse_zk_member(id: ServerId, value: &str) -> Result<Member, WireError> {
    const WHAT: &str = "server line";
    let bad = |detail: String| WireError::malformed(WHAT, format!("server.{id}: {detail}"));
    let halves: Vec<&str> = value.split(';').collect();
    if halves.len() > 2 {
        return Err(bad(format!("{value:?} has more than one ';'")));
    }
    if halves[0].contains('|') {
        return Err(bad(
            "several addresses (multiAddress) are not supported".into()
        ));
    }
    let parts = host_and_port_parts(WHAT, halves[0].trim())?;
    if !(3..=4).contains(&parts.len()) {
        return Err(bad(format!("{value:?} is not host:port:port[:type]")));
    }
    let host = parts[0].trim().to_owned();
    if host.is_empty() {
        return Err(bad("empty host".into()));
    }
    let quorum_port = parse_port(WHAT, &parts[1])?;
    let election_port = parse_port(WHAT, &parts[2])?;
    if quorum_port == election_port {
        return Err(bad(format!(
            "quorum and election port are both {quorum_port}"
        )));
    }
    let observer = match parts.get(3).map(|t| t.trim().to_ascii_lowercase()) {
        None => false,
        Some(t) if t == "participant" => false,
        Some(t) if t == "observer" => true,
        Some(t) => return Err(bad(format!("unknown peer type {t:?}"))),
    };
    let client = match halves.get(1) {
        None => None,
        Some(client) => {
            let parts = host_and_port_parts(WHAT, client.trim())?;
            match parts.as_slice() {
                [port] => Some((None, parse_port(WHAT, port)?)),
                [host, port] if !host.is_empty() => {
                    Some((Some(host.clone()), parse_port(WHAT, port)?))
                }
                _ => return Err(bad(format!("client address {client:?} is not [host:]port"))),
            }
        }
    };
    Ok(Member {
        id,
        host,
        quorum_port,
        election_port,
        observer,
        client,
    })
}

/// Parses config text as ZooKeeper reads a notification's or NEWLEADER's config (Java
/// `Properties` then `parseDynamicConfig`): `key=value` lines (blank lines and `#`/`!`
/// comments skipped, whitespace around keys and values ignored), keys `server.<id>` and
/// `version` (hex, as `Long.parseLong(v, 16)`). Anything else is an error: other keys
/// (Java refuses them too, `group`/`weight` mean hierarchical quorums, which we do not
/// support), a duplicate id, no server line at all, or observers without participants.
pub fn parse_zk_config(text: &str) -> Result<QuorumConfig, WireError> {
    const WHAT: &str = "config";
    let mut members: Vec<Member> = Vec::new();
    let mut version = 0i64;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(WireError::malformed(
                WHAT,
                format!("line {line:?} is not key=value"),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if let Some(id) = key.strip_prefix("server.") {
            let id: ServerId = id
                .parse()
                .map_err(|_| WireError::malformed(WHAT, format!("bad server id in {key:?}")))?;
            if members.iter().any(|m| m.id == id) {
                return Err(WireError::malformed(WHAT, format!("server.{id} twice")));
            }
            members.push(parse_zk_member(id, value)?);
        } else if key == "version" {
            // Java's Long.parseLong(v, 16); also 16 hex digits with the top bit set, which
            // is how Long.toHexString writes a negative version.
            version = i64::from_str_radix(value, 16)
                .or_else(|_| u64::from_str_radix(value, 16).map(|v| v as i64))
                .map_err(|_| WireError::malformed(WHAT, format!("bad hex version {value:?}")))?;
        } else if key.starts_with("group") || key.starts_with("weight") {
            return Err(WireError::malformed(
                WHAT,
                format!("hierarchical quorums ({key}) are not supported"),
            ));
        } else {
            return Err(WireError::malformed(
                WHAT,
                format!("unrecognised parameter {key:?}"),
            ));
        }
    }
    if members.is_empty() {
        return Err(WireError::malformed(WHAT, "no server.N line"));
    }
    if members.iter().all(|m| m.observer) {
        // Java throws IllegalArgumentException here ("Observers w/o participants").
        return Err(WireError::malformed(WHAT, "observers without participants"));
    }
    Ok(QuorumConfig::new(members, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hex to bytes, ignoring spaces and `|` (field separators in the vectors below).
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        assert_eq!(digits.len() % 2, 0, "odd hex vector {s:?}");
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// xorshift64: a fixed-seed source for the fuzz loops (reproducible failures).
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            x
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Bytes biased towards small big-endian ints, so lengths and counts are often
        /// plausible and the decoders get past their first field.
        fn buffer(&mut self, max_len: usize) -> Vec<u8> {
            let len = self.below(max_len + 1);
            let mut out = Vec::with_capacity(len + 4);
            while out.len() < len {
                match self.below(4) {
                    0 => out.extend_from_slice(&(self.below(24) as i32 - 2).to_be_bytes()),
                    1 => out.push(0),
                    2 => out.push(0xff),
                    _ => out.push(self.next() as u8),
                }
            }
            out.truncate(len);
            out
        }
    }

    fn decode_all(bytes: &[u8]) -> Result<Option<QuorumPacket>, WireError> {
        QuorumDecoder::default().decode(&mut BytesMut::from(bytes))
    }

    /// Every strict prefix is incomplete (and leaves the buffer alone); the whole decodes.
    fn assert_prefixes_incomplete(bytes: &[u8]) -> QuorumPacket {
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert_eq!(
                QuorumDecoder::default().decode(&mut buf),
                Ok(None),
                "prefix of {cut} of {} bytes",
                bytes.len()
            );
            assert_eq!(&buf[..], &bytes[..cut], "prefix {cut} was consumed");
        }
        let mut buf = BytesMut::from(bytes);
        let p = QuorumDecoder::default().decode(&mut buf).unwrap().unwrap();
        assert!(buf.is_empty());
        p
    }

    // -- quorum packets ------------------------------------------------------------------

    #[test]
    fn ack_with_null_data_and_authinfo() {
        let p = QuorumPacket::new(packet::ACK, 0x1_0000_0001);
        let want = hex("00000003 | 0000000100000001 | ffffffff | ffffffff");
        assert_eq!(&p.to_bytes()[..], &want[..]);
        assert_eq!(assert_prefixes_incomplete(&want), p);
    }

    #[test]
    fn request_with_data_and_authinfo() {
        let p = QuorumPacket {
            kind: packet::REQUEST,
            zxid: -1,
            data: Some(Bytes::from_static(&[0xaa, 0xbb])),
            authinfo: Some(vec![Id {
                scheme: "ip".into(),
                id: "127.0.0.1".into(),
            }]),
        };
        let want = cat(&[
            &hex("00000001 | ffffffffffffffff | 00000002 aabb | 00000001 | 00000002"),
            b"ip",
            &hex("00000009"),
            b"127.0.0.1",
        ]);
        assert_eq!(&p.to_bytes()[..], &want[..]);
        assert_eq!(assert_prefixes_incomplete(&want), p);
    }

    #[test]
    fn empty_data_is_not_null() {
        let p = QuorumPacket::with_data(packet::PING, 7, Bytes::new());
        let want = hex("00000005 | 0000000000000007 | 00000000 | ffffffff");
        assert_eq!(&p.to_bytes()[..], &want[..]);
        let back = assert_prefixes_incomplete(&want);
        assert_eq!(back.data, Some(Bytes::new()));
        assert_eq!(QuorumPacket::new(packet::PING, 7).data_bytes(), b"");
    }

    #[test]
    fn followerinfo_packet_bytes() {
        let info = LearnerInfo {
            server_id: 1,
            protocol_version: ZAB_PROTOCOL_VERSION,
            config_version: 0,
        };
        let p = QuorumPacket::with_data(packet::FOLLOWERINFO, 0, info.encode());
        let want = hex(
            "0000000b | 0000000000000000 | 00000014 | 0000000000000001 00010000 \
             0000000000000000 | ffffffff",
        );
        assert_eq!(&p.to_bytes()[..], &want[..]);
        let back = assert_prefixes_incomplete(&want);
        assert_eq!(LearnerInfo::decode(back.data_bytes()), Ok(info));
    }

    #[test]
    fn packets_back_to_back_and_raw_bytes_after_snap() {
        let a = QuorumPacket::new(packet::SNAP, 0x5_0000_0003);
        let b = QuorumPacket::with_data(packet::PROPOSAL, 0x5_0000_0004, Bytes::from("txn"));
        let mut buf = BytesMut::new();
        a.encode(&mut buf);
        buf.put_slice(b"RAW-SNAPSHOT");
        let mut dec = QuorumDecoder::default();
        assert_eq!(dec.decode(&mut buf), Ok(Some(a)));
        // The decoder stopped right after SNAP: the caller reads the stream itself.
        assert_eq!(&buf[..], b"RAW-SNAPSHOT");
        buf.advance(12);
        b.encode(&mut buf);
        b.encode(&mut buf);
        assert_eq!(dec.decode(&mut buf), Ok(Some(b.clone())));
        assert_eq!(dec.decode(&mut buf), Ok(Some(b)));
        assert_eq!(dec.decode(&mut buf), Ok(None));
    }

    #[test]
    fn packet_limits() {
        let mut dec = QuorumDecoder::new(16);
        // Data of 17 bytes is refused before the bytes arrive.
        let mut buf = BytesMut::from(&hex("00000002 | 0000000000000001 | 00000011")[..]);
        let err = dec.decode(&mut buf).unwrap_err();
        assert!(
            matches!(
                err,
                WireError::BadLength {
                    what: "QuorumPacket data",
                    len: 17,
                    ..
                }
            ),
            "{err}"
        );
        // 16 bytes is fine (incomplete until they are there).
        let mut buf = BytesMut::from(&hex("00000002 | 0000000000000001 | 00000010")[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        for bad_len in ["fffffffe", "80000000"] {
            let mut buf = BytesMut::from(&hex(&format!("00000002 0000000000000001 {bad_len}"))[..]);
            assert!(dec.decode(&mut buf).is_err(), "data length {bad_len}");
        }
        // Authinfo counts: over the cap, negative other than -1.
        for bad_count in ["00000401", "fffffffe", "7fffffff"] {
            let mut buf = BytesMut::from(
                &hex(&format!("00000001 0000000000000001 ffffffff {bad_count}"))[..],
            );
            let err = dec.decode(&mut buf).unwrap_err();
            assert!(err.to_string().contains("authinfo count"), "{err}");
        }
        let mut buf = BytesMut::from(&hex("00000001 0000000000000001 ffffffff 00000400")[..]);
        assert_eq!(dec.decode(&mut buf), Ok(None));
        // Authinfo strings share a budget of max_data_len bytes.
        let mut buf = BytesMut::from(
            &cat(&[
                &hex("00000001 0000000000000001 ffffffff 00000002 00000008"),
                b"abcdefgh",
                &hex("00000008"),
                b"abcdefgh",
                &hex("00000001"),
            ])[..],
        );
        let err = dec.decode(&mut buf).unwrap_err();
        assert!(err.to_string().contains("authinfo Id scheme"), "{err}");
        // Not UTF-8.
        let mut buf = BytesMut::from(
            &hex("00000001 0000000000000001 ffffffff 00000001 00000001 ff 00000000")[..],
        );
        let err = dec.decode(&mut buf).unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        // A null Id string reads as empty.
        let mut buf = BytesMut::from(
            &hex("00000001 0000000000000001 ffffffff 00000001 ffffffff 00000000")[..],
        );
        let p = dec.decode(&mut buf).unwrap().unwrap();
        assert_eq!(
            p.authinfo,
            Some(vec![Id {
                scheme: String::new(),
                id: String::new()
            }])
        );
    }

    #[test]
    fn packet_fuzz_never_panics_and_reencodes() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let mut decoded = 0;
        for _ in 0..20_000 {
            let bytes = rng.buffer(96);
            let mut buf = BytesMut::from(&bytes[..]);
            match QuorumDecoder::new(64).decode(&mut buf) {
                Ok(Some(p)) => {
                    decoded += 1;
                    let used = bytes.len() - buf.len();
                    assert_eq!(&bytes[used..], &buf[..], "only the packet is consumed");
                    // Re-encoding is canonical: decoding it again gives the same packet.
                    let again = decode_all(&p.to_bytes()).unwrap().unwrap();
                    assert_eq!(again, p);
                    assert!(p.to_bytes().len() <= used);
                }
                Ok(None) => assert_eq!(&buf[..], &bytes[..], "incomplete consumed nothing"),
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
        assert!(
            decoded > 100,
            "fuzz reached too few whole packets ({decoded})"
        );
    }

    // -- typed payloads ------------------------------------------------------------------

    #[test]
    fn fixed_payloads_bytes_and_round_trips() {
        let info = LearnerInfo {
            server_id: 0x0102,
            protocol_version: ZAB_PROTOCOL_VERSION,
            config_version: 0x1_0000_0000,
        };
        let info_bytes = hex("0000000000000102 00010000 0000000100000000");
        assert_eq!(&info.encode()[..], &info_bytes[..]);
        assert_eq!(LearnerInfo::decode(&info_bytes), Ok(info));

        let li = LeaderInfo {
            protocol_version: ZAB_PROTOCOL_VERSION,
        };
        assert_eq!(&li.encode()[..], &hex("00010000")[..]);
        assert_eq!(LeaderInfo::decode(&hex("00010000")), Ok(li));

        let ack = AckEpoch { current_epoch: 3 };
        assert_eq!(&ack.encode()[..], &hex("00000003")[..]);
        assert_eq!(
            AckEpoch::decode(&hex("ffffffff")),
            Ok(AckEpoch {
                current_epoch: AckEpoch::SAME_EPOCH
            })
        );

        let rv = RevalidateRequest {
            session_id: 0x0300_0000_0000_0001,
            timeout_ms: 30_000,
        };
        let rv_bytes = hex("0300000000000001 00007530");
        assert_eq!(&rv.encode()[..], &rv_bytes[..]);
        assert_eq!(RevalidateRequest::decode(&rv_bytes), Ok(rv));

        let reply = RevalidateReply {
            session_id: 5,
            valid: true,
        };
        assert_eq!(&reply.encode()[..], &hex("0000000000000005 01")[..]);
        assert_eq!(
            RevalidateReply::decode(&hex("0000000000000005 02")),
            Ok(reply),
            "any non-zero byte is true"
        );
        assert_eq!(
            RevalidateReply::decode(&hex("0000000000000005 00")).map(|r| r.valid),
            Ok(false)
        );
    }

    #[test]
    fn fixed_payloads_refuse_wrong_lengths() {
        let info = LearnerInfo {
            server_id: 1,
            protocol_version: 1,
            config_version: 1,
        }
        .encode();
        for cut in 0..info.len() {
            let err = LearnerInfo::decode(&info[..cut]).unwrap_err();
            assert!(
                matches!(
                    err,
                    WireError::Truncated {
                        what: "LearnerInfo",
                        ..
                    }
                ),
                "{err}"
            );
        }
        let mut long = info.to_vec();
        long.push(0);
        assert!(LearnerInfo::decode(&long)
            .unwrap_err()
            .to_string()
            .contains("trailing"));
        assert!(LeaderInfo::decode(&[0, 1, 0]).is_err());
        assert!(LeaderInfo::decode(&[0, 1, 0, 0, 0]).is_err());
        assert!(AckEpoch::decode(&[]).is_err());
        assert!(RevalidateRequest::decode(&[0; 11]).is_err());
        assert!(RevalidateRequest::decode(&[0; 13]).is_err());
        assert!(RevalidateReply::decode(&[0; 8]).is_err());
        assert!(RevalidateReply::decode(&[0; 10]).is_err());
    }

    #[test]
    fn learner_request_header_and_body() {
        let r = LearnerRequest {
            session_id: 0x0100_0000_0000_0002,
            cxid: 9,
            op: 1,
            body: Bytes::from_static(b"body"),
        };
        let want = cat(&[&hex("0100000000000002 00000009 00000001"), b"body"]);
        assert_eq!(&r.encode()[..], &want[..]);
        assert_eq!(LearnerRequest::decode(&Bytes::from(want.clone())), Ok(r));
        for cut in 0..LearnerRequest::HEADER_LEN {
            assert!(LearnerRequest::decode(&Bytes::copy_from_slice(&want[..cut])).is_err());
        }
        let empty = LearnerRequest::decode(&Bytes::copy_from_slice(&want[..16])).unwrap();
        assert!(empty.body.is_empty());
    }

    #[test]
    fn ping_touches() {
        let touches = [
            SessionTouch {
                session_id: 1,
                timeout_ms: 4000,
            },
            SessionTouch {
                session_id: -2,
                timeout_ms: 0,
            },
        ];
        let want = hex("0000000000000001 00000fa0 | fffffffffffffffe 00000000");
        assert_eq!(&encode_ping_touches(&touches)[..], &want[..]);
        assert_eq!(decode_ping_touches(&want).unwrap(), touches);
        assert!(encode_ping_touches(&[]).is_empty());
        assert_eq!(decode_ping_touches(&[]).unwrap(), vec![]);
        for cut in 1..want.len() {
            if cut != 12 {
                assert!(decode_ping_touches(&want[..cut]).is_err(), "cut {cut}");
            }
        }
    }

    #[test]
    fn new_leader_config_text() {
        let text = "server.1=127.0.0.1:2888:3888:participant\nversion=100000000";
        assert_eq!(&encode_new_leader_config(text)[..], text.as_bytes());
        assert_eq!(decode_new_leader_config(text.as_bytes()).unwrap(), text);
        assert!(decode_new_leader_config(&[0xc3]).is_err());
    }

    // -- election port -------------------------------------------------------------------

    #[test]
    fn initiation_v1_bytes_and_truncation() {
        let msg = Initiation::v1(1, "127.0.0.1:3888");
        let want = cat(&[
            &hex("ffffffffffff0000 | 0000000000000001 | 0000000e"),
            b"127.0.0.1:3888",
        ]);
        let mut out = BytesMut::new();
        msg.encode(&mut out).unwrap();
        assert_eq!(&out[..], &want[..]);
        for cut in 0..want.len() {
            let mut buf = BytesMut::from(&want[..cut]);
            assert_eq!(decode_initiation(&mut buf), Ok(None), "cut {cut}");
            assert_eq!(buf.len(), cut);
        }
        let mut buf = BytesMut::from(&cat(&[&want, &hex("0000002c")])[..]);
        assert_eq!(decode_initiation(&mut buf), Ok(Some(msg.clone())));
        assert_eq!(&buf[..], &hex("0000002c")[..], "the first frame is left");
        assert_eq!(msg.sid(), 1);
        assert_eq!(msg.addresses().unwrap(), vec![("127.0.0.1".into(), 3888)]);
    }

    #[test]
    fn initiation_legacy_and_v2() {
        // A first long >= 0 is the sid, and nothing more is read.
        let mut buf = BytesMut::from(&hex("0000000000000005 ffffffff")[..]);
        let msg = decode_initiation(&mut buf).unwrap().unwrap();
        assert_eq!(msg, Initiation::Legacy { sid: 5 });
        assert_eq!(buf.len(), 4);
        let mut out = BytesMut::new();
        msg.encode(&mut out).unwrap();
        assert_eq!(&out[..], &hex("0000000000000005")[..]);
        assert!(Initiation::Legacy { sid: u64::MAX }
            .encode(&mut BytesMut::new())
            .is_err());

        let v2 = Initiation::Versioned {
            protocol_version: PROTOCOL_VERSION_V2,
            sid: 7,
            address: "[::1]:3888|10.0.0.7:3889".into(),
        };
        let mut out = BytesMut::new();
        v2.encode(&mut out).unwrap();
        assert_eq!(&out[..8], &hex("ffffffffffff0001")[..]);
        assert_eq!(decode_initiation(&mut out), Ok(Some(v2.clone())));
        assert_eq!(
            v2.addresses().unwrap(),
            vec![("::1".into(), 3888), ("10.0.0.7".into(), 3889)]
        );
    }

    #[test]
    fn initiation_limits_and_garbage() {
        let header = |version: &str, len: i32| {
            cat(&[&hex(version), &hex("0000000000000001"), &len.to_be_bytes()])
        };
        for len in [0, -1, 2049, i32::MAX] {
            let mut buf = BytesMut::from(&header("ffffffffffff0000", len)[..]);
            let err = decode_initiation(&mut buf).unwrap_err();
            assert!(
                matches!(err, WireError::BadLength { .. }),
                "len {len}: {err}"
            );
        }
        // 2048 bytes is the most allowed.
        let address = format!("{}:1", "h".repeat(2046));
        let msg = Initiation::v1(1, address.clone());
        let mut out = BytesMut::new();
        msg.encode(&mut out).unwrap();
        assert_eq!(decode_initiation(&mut out), Ok(Some(msg)));
        assert!(Initiation::v1(1, format!("{address}0"))
            .encode(&mut BytesMut::new())
            .is_err());
        assert!(Initiation::v1(1, "").encode(&mut BytesMut::new()).is_err());
        // Unknown negative version.
        let mut buf = BytesMut::from(&hex("ffffffffffff0002")[..]);
        assert!(decode_initiation(&mut buf)
            .unwrap_err()
            .to_string()
            .contains("unknown protocol version"));
        // Addresses that are not host:port.
        for bad in [
            "nocolon", "h:", ":1", "h:1:2", "h:99999", "[::1", "[::1]", "a:1|b",
        ] {
            let mut bytes = header("ffffffffffff0000", bad.len() as i32);
            bytes.extend_from_slice(bad.as_bytes());
            let mut buf = BytesMut::from(&bytes[..]);
            assert!(decode_initiation(&mut buf).is_err(), "address {bad:?}");
        }
        let mut bytes = header("ffffffffffff0000", 2);
        bytes.extend_from_slice(&[0xff, 0xfe]);
        assert!(decode_initiation(&mut BytesMut::from(&bytes[..])).is_err());
    }

    #[test]
    fn election_frames() {
        let mut out = BytesMut::new();
        encode_election_frame(b"abc", &mut out).unwrap();
        assert_eq!(&out[..], &cat(&[&hex("00000003"), b"abc"])[..]);
        out.put_slice(&hex("00000001 7a 0000"));
        assert_eq!(
            decode_election_frame(&mut out),
            Ok(Some(Bytes::from_static(b"abc")))
        );
        assert_eq!(
            decode_election_frame(&mut out),
            Ok(Some(Bytes::from_static(b"z")))
        );
        assert_eq!(decode_election_frame(&mut out), Ok(None));
        assert_eq!(out.len(), 2);
        for len in [0, -1, 524_289, i32::MIN] {
            let mut buf = BytesMut::from(&len.to_be_bytes()[..]);
            assert!(decode_election_frame(&mut buf).is_err(), "len {len}");
        }
        let mut buf = BytesMut::from(&524_288i32.to_be_bytes()[..]);
        assert_eq!(decode_election_frame(&mut buf), Ok(None));
        assert_eq!(buf.len(), 4);
        assert!(encode_election_frame(b"", &mut BytesMut::new()).is_err());
        assert!(encode_election_frame(&vec![0; 524_289], &mut BytesMut::new()).is_err());
    }

    fn looking_for_3() -> Notification {
        Notification {
            state: PeerState::Looking,
            vote: Vote {
                leader: 3,
                zxid: 0,
                election_epoch: 1,
                peer_epoch: 0,
            },
            version: NOTIFICATION_VERSION,
            config: Some("version=0".into()),
        }
    }

    #[test]
    fn notification_v2_bytes() {
        let n = looking_for_3();
        let want = cat(&[
            &hex(
                "00000000 | 0000000000000003 | 0000000000000000 | 0000000000000001 | \
                 0000000000000000 | 00000002 | 00000009",
            ),
            b"version=0",
        ]);
        let mut out = BytesMut::new();
        encode_notification(&n, &mut out).unwrap();
        assert_eq!(&out[..], &want[..]);
        assert_eq!(decode_notification(&want), Ok(n.clone()));
        let framed = notification_frame(&n).unwrap();
        assert_eq!(&framed[..4], &(want.len() as i32).to_be_bytes());
        assert_eq!(&framed[4..], &want[..]);
        // Every cut below the full message fails or (at 28 and 40) reads an older format.
        for cut in 0..want.len() {
            match cut {
                28 | 40 => assert_eq!(decode_notification(&want[..cut]).unwrap().version, 0),
                _ => assert!(decode_notification(&want[..cut]).is_err(), "cut {cut}"),
            }
        }
    }

    #[test]
    fn notification_compatibility_cases() {
        let base = hex(
            "00000002 | 0000000000000002 | 0000000500000007 | 0000000000000009 | \
             0000000000000006 | 00000002 | 00000000",
        );
        // Exactly 28 bytes: pre-3.4, the peer epoch is the zxid's epoch.
        let n = decode_notification(&base[..28]).unwrap();
        assert_eq!(n.state, PeerState::Leading);
        assert_eq!(n.vote.peer_epoch, 5);
        assert_eq!((n.version, n.config.clone()), (0, None));
        // 29..=39 bytes: error.
        for len in 29..40 {
            assert!(decode_notification(&base[..len]).is_err(), "{len}");
        }
        // Exactly 40: version 0, the version int is not read.
        let n = decode_notification(&base[..40]).unwrap();
        assert_eq!(
            (n.vote.peer_epoch, n.version, n.config.clone()),
            (6, 0, None)
        );
        // Version 1 (41+ bytes): no config read, trailing bytes ignored.
        let mut v1 = base[..36].to_vec();
        v1.extend_from_slice(&hex("00000001 abcd"));
        let n = decode_notification(&v1).unwrap();
        assert_eq!((n.version, n.config), (1, None));
        // Version 2 with an empty config; trailing bytes after the config are ignored.
        let mut v2 = base.clone();
        v2.push(0x77);
        assert_eq!(
            decode_notification(&v2).unwrap().config,
            Some(String::new())
        );
        // Config length beyond the bytes present, or negative.
        let mut long = base[..40].to_vec();
        long.extend_from_slice(&hex("00000005 6162"));
        assert!(decode_notification(&long).is_err());
        let mut negative = base[..40].to_vec();
        negative.extend_from_slice(&hex("ffffffff"));
        assert!(decode_notification(&negative).is_err());
        // Invalid UTF-8 in the config is replaced, as Java's decoder does.
        let mut odd = base[..40].to_vec();
        odd.extend_from_slice(&hex("00000001 ff"));
        assert_eq!(
            decode_notification(&odd).unwrap().config,
            Some("\u{fffd}".into())
        );
        // Unknown state.
        let mut bad = base.clone();
        bad[3] = 4;
        assert!(decode_notification(&bad)
            .unwrap_err()
            .to_string()
            .contains("unknown state 4"));
        // Version 0 encodes the 40-byte layout.
        let mut old = looking_for_3();
        old.version = 0;
        old.config = None;
        let mut out = BytesMut::new();
        encode_notification(&old, &mut out).unwrap();
        assert_eq!(out.len(), 40);
        assert_eq!(decode_notification(&out), Ok(old));
    }

    #[test]
    fn notification_encode_limit() {
        let mut n = looking_for_3();
        n.config = Some("x".repeat(MAX_ELECTION_MESSAGE_LEN - 44));
        let mut out = BytesMut::new();
        encode_notification(&n, &mut out).unwrap();
        assert_eq!(out.len(), MAX_ELECTION_MESSAGE_LEN);
        n.config = Some("x".repeat(MAX_ELECTION_MESSAGE_LEN - 43));
        let mut out = BytesMut::new();
        assert!(encode_notification(&n, &mut out).is_err());
        assert!(out.is_empty(), "nothing written on error");
    }

    #[test]
    fn notification_fuzz() {
        let mut rng = XorShift(0x2545_F491_4F6C_DD1D);
        let mut decoded = 0;
        for _ in 0..5000 {
            let bytes = rng.buffer(64);
            let mut frame_buf = BytesMut::from(&bytes[..]);
            let _ = decode_election_frame(&mut frame_buf);
            let _ = decode_initiation(&mut BytesMut::from(&bytes[..]));
            if let Ok(n) = decode_notification(&bytes) {
                decoded += 1;
                // Versions 1 and below other than 0 re-encode as the 40-byte layout, which
                // reads back as version 0.
                if n.version == 0 || n.version > 1 {
                    let mut out = BytesMut::new();
                    encode_notification(&n, &mut out).unwrap();
                    assert_eq!(decode_notification(&out), Ok(n));
                }
            }
        }
        assert!(
            decoded > 50,
            "fuzz decoded too few notifications ({decoded})"
        );
    }

    // -- config text ---------------------------------------------------------------------

    fn member(id: ServerId, host: &str, q: u16, e: u16) -> Member {
        Member {
            id,
            host: host.into(),
            quorum_port: q,
            election_port: e,
            observer: false,
            client: None,
        }
    }

    #[test]
    fn config_text_as_java_writes_it() {
        let mut observer = member(4, "::1", 2894, 3894);
        observer.observer = true;
        let mut dynamic = member(2, "zk2", 2892, 3892);
        dynamic.client = Some((None, 2182));
        let mut with_host = member(3, "10.0.0.3", 2893, 3893);
        with_host.client = Some((Some("10.0.0.3".into()), 2183));
        let q = QuorumConfig::new(
            vec![
                observer,
                with_host,
                member(1, "127.0.0.1", 2891, 3891),
                dynamic,
            ],
            0x1_0000_0000,
        );
        let text = config_to_zk_string(&q);
        assert_eq!(
            text,
            "server.1=127.0.0.1:2891:3891:participant\n\
             server.2=zk2:2892:3892:participant;0.0.0.0:2182\n\
             server.3=10.0.0.3:2893:3893:participant;10.0.0.3:2183\n\
             server.4=[::1]:2894:3894:observer\n\
             version=100000000"
        );
        let back = parse_zk_config(&text).unwrap();
        assert_eq!(back.version, 0x1_0000_0000);
        assert_eq!(back.members.len(), 4);
        assert_eq!(back.members[0], q.members[0]);
        assert_eq!(back.members[1].client, Some((Some("0.0.0.0".into()), 2182)));
        assert_eq!(back.members[2], q.members[2]);
        assert_eq!(back.members[3], q.members[3]);
        assert_eq!(config_to_zk_string(&back), text);
        assert_eq!(
            config_to_zk_string(&QuorumConfig::new(vec![member(1, "h", 1, 2)], 0)),
            "server.1=h:1:2:participant\nversion=0"
        );
    }

    #[test]
    fn config_text_lenient_forms() {
        let q = parse_zk_config(
            "# comment\n\n  server.2 = h2:2:3 \r\n! other comment\nserver.1=h1:2:3:OBSERVER;2181\n\
             server.3=h3:4:5:participant\nversion=-1",
        )
        .unwrap();
        assert_eq!(q.voters().collect::<Vec<_>>(), vec![2, 3]);
        assert!(q.member(1).unwrap().observer);
        assert_eq!(q.member(1).unwrap().client, Some((None, 2181)));
        assert_eq!(q.version, -1);
        assert!(config_to_zk_string(&q).ends_with("version=ffffffffffffffff"));
        assert_eq!(
            parse_zk_config(&config_to_zk_string(&q)).unwrap().version,
            -1
        );
        // No version line: 0.
        assert_eq!(parse_zk_config("server.1=h:1:2").unwrap().version, 0);
    }

    #[test]
    fn config_text_errors() {
        for bad in [
            "",
            "version=0",
            "server.x=h:1:2",
            "server.-1=h:1:2",
            "server.1=h:1",
            "server.1=h:1:2:3:4",
            "server.1=h:1:1",
            "server.1=:1:2",
            "server.1=h:1:70000",
            "server.1=h:1:2:leader",
            "server.1=a:1:2|b:3:4",
            "server.1=h:1:2;c:1:2",
            "server.1=h:1:2;a;b",
            "server.1=[::1:1:2",
            "server.1=h:1:2\nserver.1=h:3:4",
            "server.1=h:1:2:observer",
            "server.1=h:1:2\nversion=zz",
            "server.1=h:1:2\nweight.1=2",
            "server.1=h:1:2\nclientPort=2181",
            "server.1",
        ] {
            let err = parse_zk_config(bad).unwrap_err();
            assert!(!err.to_string().is_empty(), "{bad:?}");
        }
    }

    #[test]
    fn config_text_fuzz_never_panics_and_reprints() {
        const TOKENS: &[&str] = &[
            "server.",
            "1",
            "2",
            "3",
            "=",
            ":",
            ";",
            "127.0.0.1",
            "participant",
            "observer",
            "\n",
            "version",
            "[",
            "]",
            "|",
            " ",
            "#",
            "2888",
            "3888",
            "65536",
            "ff",
            "::1",
            "h",
            "\r",
            "-",
        ];
        let mut rng = XorShift(0xDEAD_BEEF_CAFE_F00D);
        let mut parsed = 0;
        for i in 0..5000 {
            let mut text = String::new();
            if i % 2 == 0 {
                text.push_str("server.1=h:2888:3888\n");
            }
            for _ in 0..rng.below(24) {
                text.push_str(TOKENS[rng.below(TOKENS.len())]);
            }
            if let Ok(q) = parse_zk_config(&text) {
                parsed += 1;
                let printed = config_to_zk_string(&q);
                let again = parse_zk_config(&printed).unwrap();
                assert_eq!(config_to_zk_string(&again), printed, "from {text:?}");
                assert_eq!(again.version, q.version);
                assert_eq!(again.members.len(), q.members.len());
            }
        }
        assert!(parsed > 100, "fuzz parsed too few configs ({parsed})");
    }
}
