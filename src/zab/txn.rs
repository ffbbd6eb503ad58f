//! ZooKeeper 3.8's transaction encoding (`zookeeper.jute`, module `org.apache.zookeeper.txn`),
//! to and from our [`Txn`]: what PROPOSAL and INFORM packets carry, what the leader's
//! committed log sends in DIFF syncs, and what a ZooKeeper txn log record holds.
//!
//! ```text
//! entry     := TxnHeader record? TxnDigest?
//! TxnHeader := long clientId; int cxid; long zxid; long time; int type    (32 bytes)
//! TxnDigest := int version (2); long treeDigest                           (12 bytes)
//! record, by header type:
//!   create 1 / create2 15  CreateTxn { ustring path; buffer data; vector<ACL> acl;
//!                                      boolean ephemeral; int parentCVersion }
//!                          (type 1 only: CreateTxnV0, the same without parentCVersion)
//!   createContainer 19     CreateContainerTxn { path; data; acl; int parentCVersion }
//!   createTTL 21           CreateTTLTxn { path; data; acl; int parentCVersion; long ttl }
//!   delete 2 / deleteContainer 20   DeleteTxn { ustring path }
//!   setData 5 / reconfig 16         SetDataTxn { ustring path; buffer data; int version }
//!   setACL 7               SetACLTxn { ustring path; vector<ACL> acl; int version }
//!   check 13 (multi only)  CheckVersionTxn { ustring path; int version }
//!   error -1               ErrorTxn { int err }
//!   multi 14               MultiTxn { vector<Txn { int type; buffer data }> }
//!   createSession -10      CreateSessionTxn { int timeOut }
//!   closeSession -11       CloseSessionTxn { vector<ustring> paths2Delete } (or no body)
//! ```
//!
//! How our [`Txn`] maps (facts from branch-3.8's `SerializeUtils.deserializeTxn` and
//! `DataTree.processTxn`):
//! * A create's ephemeral owner is implied: `ephemeral` means "owned by the header's
//!   clientId", a container has its own type (owner `Long.MIN_VALUE`), a TTL node carries its
//!   TTL (owner `0xFF << 56 | ttl`). So a create owned by a session other than the header's
//!   client has no ZooKeeper encoding.
//! * `parentCVersion` is our `parent_cversion` (the parent's stored cversion after the
//!   create). -1 means "the parent's current cversion plus one"; our tree's `apply_txn`
//!   reads -1 the same way, so a legacy `CreateTxnV0` decodes to `parent_cversion: -1`.
//! * Our `Txn` does not say create (1) or create2 (15), delete (2) or deleteContainer (20),
//!   setData (5) or reconfig (16): [`OpHint`] says which, [`zk_op_for`] picks the type, and
//!   decoding reports the types it saw ([`DecodedTxn::sub_ops`] for multi ops).
//! * A failed multi: ZooKeeper's leader logs the ops before the failing one with their real
//!   records, the failing op as ErrorTxn(code), the rest as ErrorTxn(RUNTIMEINCONSISTENCY);
//!   `processTxn` turns every non-error op of a multi holding an error into ErrorTxn(0)
//!   before it and ErrorTxn(-2) after it. Decoding does that conversion, which gives our
//!   form (`Error(Ok)`.., the code, `Error(RuntimeInconsistency)`..); we encode that form
//!   as it is (all ErrorTxn), which ZooKeeper applies the same way.
//! * A closeSession without body (written with `zookeeper.closeSessionTxn.enabled=false`)
//!   decodes to `CloseSession { ephemerals: [] }`: both ZooKeeper and our tree then delete
//!   every ephemeral the session owns. We always encode the body.
//! * Strings: we write UTF-8. ZooKeeper writes each UTF-16 unit as 1 to 3 bytes (CESU-8 for
//!   characters outside the BMP) and reads with Java's UTF-8 decoder, which turns each such
//!   3-byte surrogate into U+FFFD. [`decode_java_string`] decodes exactly as Java does, so a
//!   zkrs follower builds the same paths as a Java follower of the same leader.
//! * A null data buffer stays null (the jute reader's null buffer, kept apart from an empty
//!   one by the tree); null string vectors read as empty; a null ACL vector reads as
//!   OPEN_ACL_UNSAFE (what `ReferenceCountedACLCache.convertAcls(null)` gives).
//!
//! We are stricter than ZooKeeper's reader in one way: bytes after the record that are not
//! exactly one 12-byte digest are an error (Java ignores them).
//!
//! Architecture Invariant: pure, and decoding never panics: malformed input is an `Err`.

use std::fmt;

use bytes::BytesMut;

use crate::proto::{perms, Acl, DecodeError, ErrorCode, Id, JuteReader, JuteWriter, OpCode};
use crate::tree::{ttl_owner, EphemeralKind, Txn, TxnHeader};

/// Encoded size of a [`ZkTxnHeader`].
pub const TXN_HEADER_LEN: usize = 32;
/// Encoded size of an `ErrorTxn` (one int).
const ERROR_TXN_LEN: usize = 4;
/// Encoded size of a [`TxnDigest`].
pub const TXN_DIGEST_LEN: usize = 12;
/// The digest version ZooKeeper 3.8 and 3.9 write (`DigestCalculator.DIGEST_VERSION`).
pub const DIGEST_VERSION: i32 = 2;

/// Smallest encoded ACL: perms and two empty ustrings.
const MIN_ACL_LEN: usize = 12;
/// Smallest encoded `Txn { int type; buffer data }` of a multi.
const MIN_SUB_TXN_LEN: usize = 8;
/// Smallest encoded ustring.
const MIN_USTRING_LEN: usize = 4;

const OP_CREATE: i32 = OpCode::Create as i32;
const OP_CREATE2: i32 = OpCode::Create2 as i32;
const OP_CREATE_CONTAINER: i32 = OpCode::CreateContainer as i32;
const OP_CREATE_TTL: i32 = OpCode::CreateTtl as i32;
const OP_DELETE: i32 = OpCode::Delete as i32;
const OP_DELETE_CONTAINER: i32 = OpCode::DeleteContainer as i32;
const OP_SET_DATA: i32 = OpCode::SetData as i32;
const OP_RECONFIG: i32 = OpCode::Reconfig as i32;
const OP_SET_ACL: i32 = OpCode::SetAcl as i32;
const OP_CHECK: i32 = OpCode::Check as i32;
const OP_MULTI: i32 = OpCode::Multi as i32;
const OP_ERROR: i32 = OpCode::Error as i32;
const OP_CREATE_SESSION: i32 = OpCode::CreateSession as i32;
const OP_CLOSE_SESSION: i32 = OpCode::CloseSession as i32;

/// ZooKeeper's `TxnHeader`: who sent the request, its xid, the zxid, the leader's wall
/// clock, and the op type, which selects the record that follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZkTxnHeader {
    /// The session the txn belongs to (0 for the leader's own, such as deleteContainer).
    pub client_id: i64,
    pub cxid: i32,
    pub zxid: i64,
    /// Milliseconds since the epoch on the leader (ctime/mtime of what the txn creates).
    pub time_ms: i64,
    /// `ZooDefs.OpCode` of the record.
    pub op: i32,
}

impl ZkTxnHeader {
    /// The header for `txn`, with the op type [`zk_op_for`] picks.
    pub fn for_txn(
        client_id: i64,
        cxid: i32,
        zxid: i64,
        time_ms: i64,
        txn: &Txn,
        hint: OpHint,
    ) -> Result<ZkTxnHeader, TxnEncodeError> {
        Ok(ZkTxnHeader {
            client_id,
            cxid,
            zxid,
            time_ms,
            op: zk_op_for(txn, client_id, hint)?,
        })
    }

    /// The header our tree applies txns with.
    pub fn tree_header(&self) -> TxnHeader {
        TxnHeader {
            session_id: self.client_id,
            zxid: self.zxid,
            time_ms: self.time_ms,
            cxid: self.cxid,
            op: self.op,
        }
    }
}

/// ZooKeeper's `TxnDigest`: the leader's digest of the whole tree after this txn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnDigest {
    /// [`DIGEST_VERSION`] from 3.8 and 3.9.
    pub version: i32,
    pub tree_digest: i64,
}

/// What ZooKeeper's op type records and our [`Txn`] does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OpHint {
    /// Creates of persistent and ephemeral nodes become create2 (15), deletes delete (2),
    /// setData setData (5).
    #[default]
    None,
    /// The request was a create (1), not a create2 (15). Ignored for container and TTL
    /// creates, whose records have their own types.
    Create,
    /// The delete is ContainerManager's deleteContainer (20).
    DeleteContainer,
    /// The setData is a reconfig (16) of `/zookeeper/config`.
    Reconfig,
}

impl OpHint {
    /// The hint that makes [`zk_op_for`] give `op` back (for re-encoding what was decoded).
    pub fn from_op(op: i32) -> OpHint {
        match op {
            OP_CREATE => OpHint::Create,
            OP_DELETE_CONTAINER => OpHint::DeleteContainer,
            OP_RECONFIG => OpHint::Reconfig,
            _ => OpHint::None,
        }
    }
}

/// Why a [`Txn`] has no ZooKeeper encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnEncodeError(pub String);

impl fmt::Display for TxnEncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "txn has no ZooKeeper encoding: {}", self.0)
    }
}

impl std::error::Error for TxnEncodeError {}

/// Why bytes are not a ZooKeeper txn. Every variant means "the peer sent garbage".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnDecodeError {
    /// A jute field did not decode; `what` names the record being read.
    Jute {
        what: &'static str,
        error: DecodeError,
    },
    /// A header type ZooKeeper's reader does not accept ("Unsupported Txn").
    UnsupportedType(i32),
    /// A multi op type ZooKeeper's `processTxn` does not accept.
    BadMultiOpType(i32),
    /// An ErrorTxn code we do not know.
    UnknownErrorCode(i32),
    /// A CreateTTLTxn whose TTL is not in 1..=MAX_TTL_MS.
    BadTtl(i64),
    /// Bytes after the record that are not one [`TxnDigest`].
    TrailingBytes { what: &'static str, len: usize },
}

impl fmt::Display for TxnDecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxnDecodeError::Jute { what, error } => write!(f, "bad {what}: {error}"),
            TxnDecodeError::UnsupportedType(op) => write!(f, "unsupported txn type {op}"),
            TxnDecodeError::BadMultiOpType(op) => write!(f, "op type {op} not allowed in multi"),
            TxnDecodeError::UnknownErrorCode(code) => write!(f, "unknown error code {code}"),
            TxnDecodeError::BadTtl(ttl) => write!(f, "TTL {ttl} out of range"),
            TxnDecodeError::TrailingBytes { what, len } => {
                write!(
                    f,
                    "{len} bytes after the {what} record (not a 12-byte digest)"
                )
            }
        }
    }
}

impl std::error::Error for TxnDecodeError {}

/// The ZooKeeper op type of `txn` (its header type, or its type inside a multi) for a txn of
/// session `client_id`, `hint` saying what `txn` cannot. Err for a txn ZooKeeper cannot
/// express: a create owned by another session, a TTL out of range, a check outside a multi.
pub fn zk_op_for(txn: &Txn, client_id: i64, hint: OpHint) -> Result<i32, TxnEncodeError> {
    Ok(match txn {
        Txn::CreateSession { .. } => OP_CREATE_SESSION,
        Txn::CloseSession { .. } => OP_CLOSE_SESSION,
        Txn::Create {
            ephemeral_owner, ..
        } => match create_kind(*ephemeral_owner, client_id)? {
            CreateKind::Plain { .. } if hint == OpHint::Create => OP_CREATE,
            CreateKind::Plain { .. } => OP_CREATE2,
            CreateKind::Container => OP_CREATE_CONTAINER,
            CreateKind::Ttl(_) => OP_CREATE_TTL,
        },
        Txn::Delete { .. } if hint == OpHint::DeleteContainer => OP_DELETE_CONTAINER,
        Txn::Delete { .. } => OP_DELETE,
        Txn::SetData { .. } if hint == OpHint::Reconfig => OP_RECONFIG,
        Txn::SetData { .. } => OP_SET_DATA,
        Txn::SetAcl { .. } => OP_SET_ACL,
        Txn::Check { .. } => OP_CHECK,
        Txn::Multi(_) => OP_MULTI,
        Txn::Error(_) => OP_ERROR,
    })
}

/// Which create record a create needs.
enum CreateKind {
    Plain { ephemeral: bool },
    Container,
    Ttl(i64),
}

fn create_kind(owner: i64, client_id: i64) -> Result<CreateKind, TxnEncodeError> {
    match EphemeralKind::of_owner(owner) {
        EphemeralKind::Persistent => Ok(CreateKind::Plain { ephemeral: false }),
        EphemeralKind::Session(id) if id == client_id => Ok(CreateKind::Plain { ephemeral: true }),
        EphemeralKind::Session(id) => Err(TxnEncodeError(format!(
            "ephemeral owned by session {id:#x} in a txn of session {client_id:#x}"
        ))),
        EphemeralKind::Container => Ok(CreateKind::Container),
        EphemeralKind::Ttl(ttl) => match ttl_owner(ttl) {
            Some(_) => Ok(CreateKind::Ttl(ttl)),
            None => Err(TxnEncodeError(format!("TTL {ttl} out of range"))),
        },
    }
}

/// Appends ZooKeeper's bytes for `txn` under `hdr` (and the digest trailer when given).
/// `hdr.op` must be a type [`zk_op_for`] can give `txn`; `sub_hints[i]` is the hint for the
/// i-th op of a multi (missing ones are [`OpHint::None`]). On Err nothing is appended.
pub fn encode_txn(
    hdr: &ZkTxnHeader,
    txn: &Txn,
    sub_hints: &[OpHint],
    digest: Option<&TxnDigest>,
    out: &mut BytesMut,
) -> Result<(), TxnEncodeError> {
    let start = out.len();
    let result = encode_entry(hdr, txn, sub_hints, digest, out);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_entry(
    hdr: &ZkTxnHeader,
    txn: &Txn,
    sub_hints: &[OpHint],
    digest: Option<&TxnDigest>,
    out: &mut BytesMut,
) -> Result<(), TxnEncodeError> {
    if let Txn::Check { .. } = txn {
        return Err(TxnEncodeError(
            "a check is only logged inside a multi".to_string(),
        ));
    }
    let expected = zk_op_for(txn, hdr.client_id, OpHint::from_op(hdr.op))?;
    if hdr.op != expected {
        return Err(TxnEncodeError(format!(
            "header type {} does not fit {}",
            hdr.op,
            txn_name(txn)
        )));
    }
    let mut w = JuteWriter::new(out);
    w.write_i64(hdr.client_id);
    w.write_i32(hdr.cxid);
    w.write_i64(hdr.zxid);
    w.write_i64(hdr.time_ms);
    w.write_i32(hdr.op);
    match txn {
        Txn::Multi(subs) => {
            w.write_i32(len_i32(subs.len())?);
            let mut record = BytesMut::new();
            for (i, sub) in subs.iter().enumerate() {
                let hint = sub_hints.get(i).copied().unwrap_or_default();
                let op = multi_op_for(sub, hdr.client_id, hint)?;
                record.clear();
                encode_record(sub, hdr.client_id, &mut JuteWriter::new(&mut record))?;
                w.write_i32(op);
                w.write_buffer(&record);
            }
        }
        _ => encode_record(txn, hdr.client_id, &mut w)?,
    }
    if let Some(digest) = digest {
        w.write_i32(digest.version);
        w.write_i64(digest.tree_digest);
    }
    Ok(())
}

/// The type of an op inside a multi: what `processTxn` accepts there. A plain create is
/// always create (1): ZooKeeper 3.8.0-3.8.1's `DataTree.processTxn` knows no create2 (15)
/// inside a multi (it throws "Invalid type of op", logged at debug, and skips the rest of
/// the multi, so a follower's tree silently diverges); 3.8.2+ applies both alike.
fn multi_op_for(sub: &Txn, client_id: i64, hint: OpHint) -> Result<i32, TxnEncodeError> {
    let op = match zk_op_for(sub, client_id, hint)? {
        OP_CREATE2 => OP_CREATE,
        op => op,
    };
    match op {
        OP_CREATE | OP_CREATE2 | OP_CREATE_CONTAINER | OP_CREATE_TTL | OP_DELETE
        | OP_DELETE_CONTAINER | OP_SET_DATA | OP_CHECK | OP_ERROR => Ok(op),
        _ => Err(TxnEncodeError(format!(
            "{} (type {op}) inside a multi",
            txn_name(sub)
        ))),
    }
}

/// The name ZooKeeper gives a txn type (`Request.op2String`).
pub fn txn_name(txn: &Txn) -> &'static str {
    match txn {
        Txn::CreateSession { .. } => "createSession",
        Txn::CloseSession { .. } => "closeSession",
        Txn::Create { .. } => "create",
        Txn::Delete { .. } => "delete",
        Txn::SetData { .. } => "setData",
        Txn::SetAcl { .. } => "setACL",
        Txn::Check { .. } => "check",
        Txn::Multi(_) => "multi",
        Txn::Error(_) => "error",
    }
}

fn len_i32(len: usize) -> Result<i32, TxnEncodeError> {
    i32::try_from(len).map_err(|_| TxnEncodeError(format!("length {len} over a jute int")))
}

/// The record of a non-multi txn.
fn encode_record(txn: &Txn, client_id: i64, w: &mut JuteWriter) -> Result<(), TxnEncodeError> {
    match txn {
        Txn::CreateSession { timeout_ms } => w.write_i32(*timeout_ms),
        Txn::CloseSession { ephemerals } => {
            len_i32(ephemerals.len())?;
            w.write_string_vec(ephemerals);
        }
        Txn::Create {
            path,
            data,
            acl,
            ephemeral_owner,
            parent_cversion,
        } => {
            w.write_ustring(path);
            w.write_buffer(data);
            len_i32(acl.len())?;
            w.write_acl_vec(acl);
            match create_kind(*ephemeral_owner, client_id)? {
                CreateKind::Plain { ephemeral } => {
                    w.write_bool(ephemeral);
                    w.write_i32(*parent_cversion);
                }
                CreateKind::Container => w.write_i32(*parent_cversion),
                CreateKind::Ttl(ttl) => {
                    w.write_i32(*parent_cversion);
                    w.write_i64(ttl);
                }
            }
        }
        Txn::Delete { path } => w.write_ustring(path),
        Txn::SetData {
            path,
            data,
            version,
        } => {
            w.write_ustring(path);
            w.write_buffer(data);
            w.write_i32(*version);
        }
        Txn::SetAcl { path, acl, version } => {
            w.write_ustring(path);
            len_i32(acl.len())?;
            w.write_acl_vec(acl);
            w.write_i32(*version);
        }
        Txn::Check { path, version } => {
            w.write_ustring(path);
            w.write_i32(*version);
        }
        Txn::Error(code) => w.write_i32(code.code()),
        Txn::Multi(_) => return Err(TxnEncodeError("a multi inside a multi".to_string())),
    }
    Ok(())
}

/// A decoded txn entry, with the op types our [`Txn`] does not keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedTxn {
    pub header: ZkTxnHeader,
    pub txn: Txn,
    pub digest: Option<TxnDigest>,
    /// For a multi, each op's type as `processTxn` applies it (-1 for the ops a failed multi
    /// turns into errors); empty otherwise.
    pub sub_ops: Vec<i32>,
}

impl DecodedTxn {
    /// The hints that make [`encode_txn`] write the same op types back.
    pub fn sub_hints(&self) -> Vec<OpHint> {
        self.sub_ops.iter().map(|op| OpHint::from_op(*op)).collect()
    }
}

/// Decodes one txn entry (header, record, optional digest) as ZooKeeper 3.8 writes it.
pub fn decode_txn(bytes: &[u8]) -> Result<(ZkTxnHeader, Txn, Option<TxnDigest>), TxnDecodeError> {
    let decoded = decode_txn_full(bytes)?;
    Ok((decoded.header, decoded.txn, decoded.digest))
}

/// As [`decode_txn`], also giving the op types of a multi's ops.
pub fn decode_txn_full(bytes: &[u8]) -> Result<DecodedTxn, TxnDecodeError> {
    let mut r = JuteReader::new(bytes);
    let header = read_header(&mut r).map_err(jute("txn header"))?;
    let client_id = header.client_id;
    let mut sub_ops = Vec::new();
    let (txn, what) = match header.op {
        OP_CREATE if is_create_v0(&r) => {
            let create = read_create_v0(&mut r, client_id).map_err(jute("CreateTxnV0"))?;
            (create, "CreateTxnV0")
        }
        OP_CLOSE_SESSION if r.is_empty() => (
            Txn::CloseSession {
                ephemerals: Vec::new(),
            },
            "closeSession",
        ),
        OP_MULTI => {
            let (txn, ops) = read_multi(&mut r, client_id)?;
            sub_ops = ops;
            (txn, "MultiTxn")
        }
        op => read_record(&mut r, op, client_id, false)?,
    };
    let digest = match r.remaining() {
        0 => None,
        TXN_DIGEST_LEN => Some(TxnDigest {
            version: r.read_i32().map_err(jute("TxnDigest"))?,
            tree_digest: r.read_i64().map_err(jute("TxnDigest"))?,
        }),
        len => return Err(TxnDecodeError::TrailingBytes { what, len }),
    };
    Ok(DecodedTxn {
        header,
        txn,
        digest,
        sub_ops,
    })
}

fn jute(what: &'static str) -> impl Fn(DecodeError) -> TxnDecodeError {
    move |error| TxnDecodeError::Jute { what, error }
}

fn read_header(r: &mut JuteReader) -> Result<ZkTxnHeader, DecodeError> {
    let available = r.remaining();
    if available < TXN_HEADER_LEN {
        return Err(DecodeError::Truncated {
            needed: TXN_HEADER_LEN,
            available,
        });
    }
    Ok(ZkTxnHeader {
        client_id: r.read_i64()?,
        cxid: r.read_i32()?,
        zxid: r.read_i64()?,
        time_ms: r.read_i64()?,
        op: r.read_i32()?,
    })
}

/// Whether a type-1 record ends right after `ephemeral` (a CreateTxnV0): Java's reader
/// falls back to V0 exactly when CreateTxn hits EOF at parentCVersion.
fn is_create_v0(r: &JuteReader) -> bool {
    let mut probe = r.clone();
    let prefix = (|| -> Result<(), DecodeError> {
        probe.read_buffer_slice()?;
        probe.read_buffer_slice()?;
        read_acls(&mut probe)?;
        probe.read_bool()?;
        Ok(())
    })();
    prefix.is_ok() && probe.is_empty()
}

fn read_create_v0(r: &mut JuteReader, client_id: i64) -> Result<Txn, DecodeError> {
    let path = read_string(r)?;
    let data = r.read_buffer()?;
    let acl = read_acls(r)?;
    let ephemeral = r.read_bool()?;
    Ok(Txn::Create {
        path,
        data,
        acl,
        ephemeral_owner: if ephemeral { client_id } else { 0 },
        // "Compute it": the parent's cversion plus one.
        parent_cversion: -1,
    })
}

/// The record of type `op` (not a multi). `in_multi` selects the types `processTxn` accepts
/// inside a multi instead of those `deserializeTxn` accepts at the top.
fn read_record(
    r: &mut JuteReader,
    op: i32,
    client_id: i64,
    in_multi: bool,
) -> Result<(Txn, &'static str), TxnDecodeError> {
    let unsupported = || {
        if in_multi {
            TxnDecodeError::BadMultiOpType(op)
        } else {
            TxnDecodeError::UnsupportedType(op)
        }
    };
    let top_only = matches!(
        op,
        OP_CREATE_SESSION | OP_CLOSE_SESSION | OP_RECONFIG | OP_SET_ACL
    );
    if (in_multi && top_only) || (!in_multi && op == OP_CHECK) {
        return Err(unsupported());
    }
    let what = match op {
        OP_CREATE | OP_CREATE2 => "CreateTxn",
        OP_CREATE_CONTAINER => "CreateContainerTxn",
        OP_CREATE_TTL => "CreateTTLTxn",
        OP_DELETE | OP_DELETE_CONTAINER => "DeleteTxn",
        OP_SET_DATA | OP_RECONFIG => "SetDataTxn",
        OP_SET_ACL => "SetACLTxn",
        OP_CHECK => "CheckVersionTxn",
        OP_ERROR => "ErrorTxn",
        OP_CREATE_SESSION => "CreateSessionTxn",
        OP_CLOSE_SESSION => "CloseSessionTxn",
        _ => return Err(unsupported()),
    };
    let txn = match op {
        OP_CREATE | OP_CREATE2 => {
            let path = read_string(r).map_err(jute(what))?;
            let data = r.read_buffer().map_err(jute(what))?;
            let acl = read_acls(r).map_err(jute(what))?;
            let ephemeral = r.read_bool().map_err(jute(what))?;
            let parent_cversion = r.read_i32().map_err(jute(what))?;
            Txn::Create {
                path,
                data,
                acl,
                ephemeral_owner: if ephemeral { client_id } else { 0 },
                parent_cversion,
            }
        }
        OP_CREATE_CONTAINER | OP_CREATE_TTL => {
            let path = read_string(r).map_err(jute(what))?;
            let data = r.read_buffer().map_err(jute(what))?;
            let acl = read_acls(r).map_err(jute(what))?;
            let parent_cversion = r.read_i32().map_err(jute(what))?;
            let ephemeral_owner = if op == OP_CREATE_TTL {
                let ttl = r.read_i64().map_err(jute(what))?;
                ttl_owner(ttl).ok_or(TxnDecodeError::BadTtl(ttl))?
            } else {
                crate::proto::CONTAINER_EPHEMERAL_OWNER
            };
            Txn::Create {
                path,
                data,
                acl,
                ephemeral_owner,
                parent_cversion,
            }
        }
        OP_DELETE | OP_DELETE_CONTAINER => Txn::Delete {
            path: read_string(r).map_err(jute(what))?,
        },
        OP_SET_DATA | OP_RECONFIG => Txn::SetData {
            path: read_string(r).map_err(jute(what))?,
            data: r.read_buffer().map_err(jute(what))?,
            version: r.read_i32().map_err(jute(what))?,
        },
        OP_SET_ACL => Txn::SetAcl {
            path: read_string(r).map_err(jute(what))?,
            acl: read_acls(r).map_err(jute(what))?,
            version: r.read_i32().map_err(jute(what))?,
        },
        OP_CHECK => Txn::Check {
            path: read_string(r).map_err(jute(what))?,
            version: r.read_i32().map_err(jute(what))?,
        },
        OP_ERROR => {
            let code = r.read_i32().map_err(jute(what))?;
            Txn::Error(ErrorCode::from_i32(code).ok_or(TxnDecodeError::UnknownErrorCode(code))?)
        }
        OP_CREATE_SESSION => Txn::CreateSession {
            timeout_ms: r.read_i32().map_err(jute(what))?,
        },
        _ => {
            let count = r.read_vec_count(MIN_USTRING_LEN).map_err(jute(what))?;
            let mut ephemerals = Vec::with_capacity(count);
            for _ in 0..count {
                ephemerals.push(read_string(r).map_err(jute(what))?);
            }
            Txn::CloseSession { ephemerals }
        }
    };
    Ok((txn, what))
}

/// A MultiTxn, its failed-multi layout converted to ours; also each op's applied type.
fn read_multi(r: &mut JuteReader, client_id: i64) -> Result<(Txn, Vec<i32>), TxnDecodeError> {
    let count = r
        .read_vec_count(MIN_SUB_TXN_LEN)
        .map_err(jute("MultiTxn"))?;
    // None: an op of a failed multi that a Java leader retyped as an error (see below).
    let mut subs: Vec<Option<Txn>> = Vec::with_capacity(count);
    let mut ops = Vec::with_capacity(count);
    for _ in 0..count {
        let op = r.read_i32().map_err(jute("MultiTxn"))?;
        let data = r.read_buffer_slice().map_err(jute("MultiTxn"))?;
        if op == OP_ERROR && data.len() != ERROR_TXN_LEN {
            // A Java leader's DataTree.processTxn retypes the other ops of a failed multi
            // as errors in place, keeping their records (a CreateTxn, a SetDataTxn, ...):
            // the copy in its committedLog, which DIFF sends, has such ops, and Java reads
            // their first int as the error code. An ErrorTxn is exactly one int; any
            // other record is longer.
            subs.push(None);
            ops.push(op);
            continue;
        }
        let mut sub = JuteReader::new(data);
        let (txn, what) = read_record(&mut sub, op, client_id, true)?;
        if !sub.is_empty() {
            return Err(TxnDecodeError::TrailingBytes {
                what,
                len: sub.remaining(),
            });
        }
        subs.push(Some(txn));
        ops.push(op);
    }
    // DataTree.processTxn: in a multi holding an error, every other op becomes
    // ErrorTxn(OK) before the first error and ErrorTxn(RUNTIMEINCONSISTENCY) after it.
    let failed = subs
        .iter()
        .any(|sub| matches!(sub, Some(Txn::Error(_)) | None));
    let mut after_error = false;
    let subs = subs
        .into_iter()
        .zip(ops.iter_mut())
        .map(|(sub, op)| match sub {
            Some(Txn::Error(code)) => {
                after_error = true;
                Txn::Error(code)
            }
            Some(txn) if !failed => txn,
            _ => {
                *op = OP_ERROR;
                Txn::Error(if after_error {
                    ErrorCode::RuntimeInconsistency
                } else {
                    ErrorCode::Ok
                })
            }
        })
        .collect();
    Ok((Txn::Multi(subs), ops))
}

/// A `ustring` decoded as Java's `new String(bytes, UTF_8)` (see [`decode_java_string`]);
/// null reads as empty.
pub(crate) fn read_string(r: &mut JuteReader) -> Result<String, DecodeError> {
    Ok(decode_java_string(r.read_buffer_slice()?))
}

/// A `vector<ACL>`; null (-1) is OPEN_ACL_UNSAFE, as ZooKeeper's ACL cache maps it.
pub(crate) fn read_acls(r: &mut JuteReader) -> Result<Vec<Acl>, DecodeError> {
    let mut probe = r.clone();
    if probe.read_i32()? == -1 {
        *r = probe;
        return Ok(open_acl_unsafe());
    }
    r.read_vec(MIN_ACL_LEN, |r| {
        Ok(Acl {
            perms: r.read_i32()?,
            id: Id {
                scheme: read_string(r)?,
                id: read_string(r)?,
            },
        })
    })
}

/// ZooKeeper's `Ids.OPEN_ACL_UNSAFE`: world:anyone with every permission.
pub fn open_acl_unsafe() -> Vec<Acl> {
    vec![Acl {
        perms: perms::ALL,
        id: Id {
            scheme: "world".to_string(),
            id: "anyone".to_string(),
        },
    }]
}

/// Decodes bytes as Java's `new String(bytes, StandardCharsets.UTF_8)` does (OpenJDK 17):
/// valid UTF-8 as it is; each malformed sequence becomes one U+FFFD, where a sequence is
/// what Rust's decoder reports as malformed, except that Java takes an encoded surrogate
/// (`ED A0..BF` and a continuation byte, what ZooKeeper's writer emits for characters
/// outside the BMP) as one malformed sequence of up to 3 bytes.
pub fn decode_java_string(mut bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                out.push_str(valid);
                return out;
            }
            Err(error) => {
                let (valid, rest) = bytes.split_at(error.valid_up_to());
                // `valid` is UTF-8 up to here, by from_utf8's report.
                out.push_str(std::str::from_utf8(valid).unwrap_or_default());
                out.push(char::REPLACEMENT_CHARACTER);
                let skip = match rest {
                    [0xED, second, third, ..] if (0xA0..=0xBF).contains(second) => {
                        2 + usize::from((0x80..=0xBF).contains(third))
                    }
                    [0xED, second] if (0xA0..=0xBF).contains(second) => 2,
                    _ => error.error_len().unwrap_or(rest.len()),
                };
                bytes = rest.get(skip.max(1)..).unwrap_or_default();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{CONTAINER_EPHEMERAL_OWNER, MAX_TTL_MS};
    use crate::session::java::JavaRandom;
    use bytes::Bytes;

    const SESSION: i64 = 0x0100_0000_0000_0001;

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl {
            perms,
            id: Id {
                scheme: scheme.to_string(),
                id: id.to_string(),
            },
        }
    }

    fn header(op: i32) -> ZkTxnHeader {
        ZkTxnHeader {
            client_id: SESSION,
            cxid: 7,
            zxid: 0x3_0000_0005,
            time_ms: 1_700_000_000_000,
            op,
        }
    }

    fn encode(hdr: &ZkTxnHeader, txn: &Txn, digest: Option<&TxnDigest>) -> Vec<u8> {
        let mut out = BytesMut::new();
        encode_txn(hdr, txn, &[], digest, &mut out).unwrap();
        out.to_vec()
    }

    /// The 32 header bytes of `header(op)`, written out by hand.
    fn header_bytes(op: i32) -> Vec<u8> {
        let mut b = vec![0x01, 0, 0, 0, 0, 0, 0, 0x01]; // clientId
        b.extend([0, 0, 0, 7]); // cxid
        b.extend([0, 0, 0, 3, 0, 0, 0, 5]); // zxid
        b.extend(1_700_000_000_000i64.to_be_bytes()); // time
        b.extend(op.to_be_bytes()); // type
        b
    }

    fn ustring(s: &str) -> Vec<u8> {
        let mut b = (s.len() as i32).to_be_bytes().to_vec();
        b.extend(s.as_bytes());
        b
    }

    fn open_acl_bytes() -> Vec<u8> {
        let mut b = vec![0, 0, 0, 1, 0, 0, 0, 31];
        b.extend(ustring("world"));
        b.extend(ustring("anyone"));
        b
    }

    fn create(path: &str, owner: i64, parent_cversion: i32) -> Txn {
        Txn::Create {
            path: path.to_string(),
            data: Bytes::from_static(b"v1"),
            acl: open_acl_unsafe(),
            ephemeral_owner: owner,
            parent_cversion,
        }
    }

    #[test]
    fn a_failed_multi_as_a_java_leaders_committed_log_holds_it() {
        // [create /m2, setData /m, delete /none] failing at the delete: the DIFF copy has
        // the first two retyped as errors (-1) around their own records.
        let create_record = {
            let mut out = BytesMut::new();
            encode_txn(
                &header(OP_CREATE),
                &create("/dg1/m2", 0, 3),
                &[],
                None,
                &mut out,
            )
            .unwrap();
            out[32..].to_vec()
        };
        let set_data_record = {
            let mut w = BytesMut::new();
            let mut j = JuteWriter::new(&mut w);
            j.write_buffer(b"/dg1/m");
            j.write_buffer(b"never");
            j.write_i32(1);
            w.to_vec()
        };
        let mut bytes = header_bytes(OP_MULTI);
        bytes.extend(3i32.to_be_bytes());
        for (op, record) in [
            (OP_ERROR, create_record),
            (OP_ERROR, set_data_record),
            (OP_ERROR, (-101i32).to_be_bytes().to_vec()),
        ] {
            bytes.extend(op.to_be_bytes());
            bytes.extend((record.len() as i32).to_be_bytes());
            bytes.extend(record);
        }
        let (_, txn, _) = decode_txn(&bytes).unwrap();
        assert_eq!(
            txn,
            Txn::Multi(vec![
                Txn::Error(ErrorCode::Ok),
                Txn::Error(ErrorCode::Ok),
                Txn::Error(ErrorCode::NoNode),
            ])
        );
    }

    #[test]
    fn a_plain_create_inside_a_multi_is_type_create_for_zookeeper_3_8_0() {
        // 3.8.0's DataTree skips the rest of a multi at a create2 (15) op.
        let txn = Txn::Multi(vec![create("/m", 0, 1), create("/m/e", SESSION, 1)]);
        for hints in [vec![], vec![OpHint::None, OpHint::None]] {
            let mut out = BytesMut::new();
            encode_txn(&header(OP_MULTI), &txn, &hints, None, &mut out).unwrap();
            assert_eq!(
                &out[32..40],
                &[0, 0, 0, 2, 0, 0, 0, 1],
                "count 2, first op create"
            );
            let (_, decoded, _) = decode_txn(&out).unwrap();
            assert_eq!(decoded, txn);
        }
    }

    #[test]
    fn create_bytes_by_hand() {
        let txn = create("/a", SESSION, 3);
        let hdr = ZkTxnHeader::for_txn(
            SESSION,
            7,
            0x3_0000_0005,
            1_700_000_000_000,
            &txn,
            OpHint::Create,
        )
        .unwrap();
        assert_eq!(hdr.op, 1);
        let mut expected = header_bytes(1);
        expected.extend(ustring("/a"));
        expected.extend([0, 0, 0, 2, b'v', b'1']);
        expected.extend(open_acl_bytes());
        expected.push(1); // ephemeral
        expected.extend([0, 0, 0, 3]); // parentCVersion
        let digest = TxnDigest {
            version: 2,
            tree_digest: 0x0102_0304_0506_0708,
        };
        let mut with_digest = expected.clone();
        with_digest.extend([0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(encode(&hdr, &txn, None), expected);
        assert_eq!(encode(&hdr, &txn, Some(&digest)), with_digest);
        assert_eq!(decode_txn(&expected).unwrap(), (hdr, txn.clone(), None));
        assert_eq!(decode_txn(&with_digest).unwrap(), (hdr, txn, Some(digest)));
    }

    #[test]
    fn container_ttl_and_persistent_creates_by_hand() {
        // Container: no ephemeral flag, type 19.
        let txn = create("/c", CONTAINER_EPHEMERAL_OWNER, 1);
        let hdr = ZkTxnHeader::for_txn(
            SESSION,
            7,
            0x3_0000_0005,
            1_700_000_000_000,
            &txn,
            OpHint::Create,
        )
        .unwrap();
        assert_eq!(hdr, header(19));
        let mut expected = header_bytes(19);
        expected.extend(ustring("/c"));
        expected.extend([0, 0, 0, 2, b'v', b'1']);
        expected.extend(open_acl_bytes());
        expected.extend([0, 0, 0, 1]);
        assert_eq!(encode(&hdr, &txn, None), expected);
        assert_eq!(decode_txn(&expected).unwrap().1, txn);

        // TTL: parentCVersion then the TTL, type 21.
        let txn = create("/t", ttl_owner(5000).unwrap(), 2);
        let hdr = header(21);
        let mut expected = header_bytes(21);
        expected.extend(ustring("/t"));
        expected.extend([0, 0, 0, 2, b'v', b'1']);
        expected.extend(open_acl_bytes());
        expected.extend([0, 0, 0, 2]);
        expected.extend(5000i64.to_be_bytes());
        assert_eq!(encode(&hdr, &txn, None), expected);
        assert_eq!(decode_txn(&expected).unwrap().1, txn);

        // Persistent create2: ephemeral false.
        let txn = create("/p", 0, 9);
        let hdr = header(15);
        assert_eq!(zk_op_for(&txn, SESSION, OpHint::None), Ok(15));
        let bytes = encode(&hdr, &txn, None);
        assert_eq!(bytes[bytes.len() - 5], 0);
        assert_eq!(decode_txn(&bytes).unwrap().1, txn);
    }

    #[test]
    fn legacy_create_v0_decodes_with_parent_cversion_minus_one() {
        let mut v0 = header_bytes(1);
        v0.extend(ustring("/old"));
        v0.extend([0xff, 0xff, 0xff, 0xff]); // null data
        v0.extend([0xff, 0xff, 0xff, 0xff]); // null acl: OPEN_ACL_UNSAFE
        v0.push(0);
        let (_, txn, digest) = decode_txn(&v0).unwrap();
        assert_eq!(digest, None);
        assert_eq!(
            txn,
            Txn::Create {
                path: "/old".to_string(),
                data: Bytes::new(),
                acl: open_acl_unsafe(),
                ephemeral_owner: 0,
                parent_cversion: -1,
            }
        );
        // Only type 1 falls back to V0 (Java's reader), a create2 must have the field.
        let mut v0_create2 = v0.clone();
        v0_create2[28..32].copy_from_slice(&15i32.to_be_bytes());
        assert!(matches!(
            decode_txn(&v0_create2),
            Err(TxnDecodeError::Jute { .. })
        ));
        // Re-encoding writes the -1 (ZooKeeper's followers read it as "compute it").
        let again = encode(&header(1), &txn, None);
        assert_eq!(again[again.len() - 4..], [0xff; 4]);
    }

    #[test]
    fn delete_set_data_set_acl_session_and_error_by_hand() {
        let cases: Vec<(i32, Txn, Vec<u8>)> = vec![
            (2, Txn::Delete { path: "/d".into() }, ustring("/d")),
            (20, Txn::Delete { path: "/d".into() }, ustring("/d")),
            (
                5,
                Txn::SetData {
                    path: "/s".into(),
                    data: Bytes::from_static(b"xyz"),
                    version: 4,
                },
                [
                    ustring("/s"),
                    vec![0, 0, 0, 3, b'x', b'y', b'z', 0, 0, 0, 4],
                ]
                .concat(),
            ),
            (
                16,
                Txn::SetData {
                    path: "/zookeeper/config".into(),
                    data: Bytes::new(),
                    version: 1,
                },
                [ustring("/zookeeper/config"), vec![0, 0, 0, 0, 0, 0, 0, 1]].concat(),
            ),
            (
                7,
                Txn::SetAcl {
                    path: "/s".into(),
                    acl: vec![acl(1, "digest", "u:h"), acl(31, "ip", "10.0.0.1")],
                    version: 2,
                },
                [
                    ustring("/s"),
                    vec![0, 0, 0, 2, 0, 0, 0, 1],
                    ustring("digest"),
                    ustring("u:h"),
                    vec![0, 0, 0, 31],
                    ustring("ip"),
                    ustring("10.0.0.1"),
                    vec![0, 0, 0, 2],
                ]
                .concat(),
            ),
            (
                -10,
                Txn::CreateSession { timeout_ms: 30_000 },
                30_000i32.to_be_bytes().to_vec(),
            ),
            (
                -11,
                Txn::CloseSession {
                    ephemerals: vec!["/e1".into(), "/e2".into()],
                },
                [vec![0, 0, 0, 2], ustring("/e1"), ustring("/e2")].concat(),
            ),
            (
                -1,
                Txn::Error(ErrorCode::NodeExists),
                (-110i32).to_be_bytes().to_vec(),
            ),
        ];
        for (op, txn, record) in cases {
            let hdr = header(op);
            assert_eq!(zk_op_for(&txn, SESSION, OpHint::from_op(op)), Ok(op));
            let expected = [header_bytes(op), record].concat();
            assert_eq!(encode(&hdr, &txn, None), expected, "{txn:?}");
            let decoded = decode_txn_full(&expected).unwrap();
            assert_eq!((decoded.header, &decoded.txn), (hdr, &txn));
        }
    }

    #[test]
    fn close_session_without_body_and_with_digest() {
        let bare = header_bytes(-11);
        assert_eq!(
            decode_txn(&bare).unwrap().1,
            Txn::CloseSession { ephemerals: vec![] }
        );
        let txn = Txn::CloseSession { ephemerals: vec![] };
        let digest = TxnDigest {
            version: 2,
            tree_digest: -5,
        };
        let with_body = encode(&header(-11), &txn, Some(&digest));
        assert_eq!(with_body.len(), 32 + 4 + 12, "always with paths2Delete");
        assert_eq!(
            decode_txn(&with_body).unwrap(),
            (header(-11), txn, Some(digest))
        );
    }

    #[test]
    fn multi_bytes_by_hand() {
        let subs = vec![
            create("/m", 0, 1),
            Txn::Check {
                path: "/m".into(),
                version: 1,
            },
            Txn::Delete { path: "/x".into() },
            Txn::SetData {
                path: "/m".into(),
                data: Bytes::new(),
                version: 1,
            },
        ];
        let txn = Txn::Multi(subs);
        let mut out = BytesMut::new();
        let hints = [OpHint::Create];
        encode_txn(&header(14), &txn, &hints, None, &mut out).unwrap();
        let create_record = [
            ustring("/m"),
            vec![0, 0, 0, 2, b'v', b'1'],
            open_acl_bytes(),
            vec![0, 0, 0, 0, 1],
        ]
        .concat();
        let check_record = [ustring("/m"), vec![0, 0, 0, 1]].concat();
        let delete_record = ustring("/x");
        let set_record = [ustring("/m"), vec![0, 0, 0, 0, 0, 0, 0, 1]].concat();
        let mut expected = header_bytes(14);
        expected.extend([0, 0, 0, 4]);
        for (op, record) in [
            (1i32, create_record),
            (13, check_record),
            (2, delete_record),
            (5, set_record),
        ] {
            expected.extend(op.to_be_bytes());
            expected.extend((record.len() as i32).to_be_bytes());
            expected.extend(record);
        }
        assert_eq!(out.to_vec(), expected);
        let decoded = decode_txn_full(&expected).unwrap();
        assert_eq!(decoded.txn, txn);
        assert_eq!(decoded.sub_ops, vec![1, 13, 2, 5]);
        let mut again = BytesMut::new();
        encode_txn(
            &decoded.header,
            &decoded.txn,
            &decoded.sub_hints(),
            None,
            &mut again,
        )
        .unwrap();
        assert_eq!(again.to_vec(), expected);
    }

    #[test]
    fn failed_multi_keeps_zookeepers_meaning() {
        // What a ZooKeeper leader logs: real records before the failing op, its error,
        // RUNTIMEINCONSISTENCY after it.
        let sub = |op: i32, record: Vec<u8>| {
            let mut b = op.to_be_bytes().to_vec();
            b.extend((record.len() as i32).to_be_bytes());
            b.extend(record);
            b
        };
        let mut bytes = header_bytes(14);
        bytes.extend([0, 0, 0, 4]);
        bytes.extend(sub(2, ustring("/a")));
        bytes.extend(sub(13, [ustring("/b"), vec![0, 0, 0, 3]].concat()));
        bytes.extend(sub(-1, (-103i32).to_be_bytes().to_vec()));
        bytes.extend(sub(-1, (-2i32).to_be_bytes().to_vec()));
        let decoded = decode_txn_full(&bytes).unwrap();
        assert_eq!(
            decoded.txn,
            Txn::Multi(vec![
                Txn::Error(ErrorCode::Ok),
                Txn::Error(ErrorCode::Ok),
                Txn::Error(ErrorCode::BadVersion),
                Txn::Error(ErrorCode::RuntimeInconsistency),
            ])
        );
        assert_eq!(decoded.sub_ops, vec![-1, -1, -1, -1]);
        // A non-error op after the error becomes RUNTIMEINCONSISTENCY.
        let mut odd = header_bytes(14);
        odd.extend([0, 0, 0, 2]);
        odd.extend(sub(-1, (-101i32).to_be_bytes().to_vec()));
        odd.extend(sub(2, ustring("/a")));
        assert_eq!(
            decode_txn(&odd).unwrap().1,
            Txn::Multi(vec![
                Txn::Error(ErrorCode::NoNode),
                Txn::Error(ErrorCode::RuntimeInconsistency),
            ])
        );
        // Our form encodes as all-ErrorTxn and decodes to itself.
        let ours = Txn::Multi(vec![
            Txn::Error(ErrorCode::Ok),
            Txn::Error(ErrorCode::NoNode),
            Txn::Error(ErrorCode::RuntimeInconsistency),
        ]);
        let bytes = encode(&header(14), &ours, None);
        assert_eq!(decode_txn(&bytes).unwrap().1, ours);
    }

    #[test]
    fn txns_without_a_zookeeper_encoding_are_errors() {
        let mut out = BytesMut::from(&b"keep"[..]);
        let other_session = create("/e", 0x0200_0000_0000_0009, 1);
        let bad = [
            (header(1), other_session),
            (
                header(13),
                Txn::Check {
                    path: "/a".into(),
                    version: 1,
                },
            ),
            (header(15), create("/t", ttl_owner(5).unwrap(), 1)),
            (header(5), Txn::Delete { path: "/a".into() }),
            (
                header(14),
                Txn::Multi(vec![Txn::SetAcl {
                    path: "/a".into(),
                    acl: vec![],
                    version: 1,
                }]),
            ),
            (header(14), Txn::Multi(vec![Txn::Multi(vec![])])),
            (
                header(14),
                Txn::Multi(vec![
                    Txn::Delete { path: "/a".into() },
                    Txn::CreateSession { timeout_ms: 1 },
                ]),
            ),
            (header(21), create("/t", 0xffi64 << 56, 1)),
        ];
        for (hdr, txn) in bad {
            assert!(
                encode_txn(&hdr, &txn, &[], None, &mut out).is_err(),
                "{hdr:?} {txn:?}"
            );
            assert_eq!(&out[..], b"keep", "nothing appended on error");
        }
        // TTL 0 is not a TTL node; the largest TTL is.
        assert!(zk_op_for(&create("/t", 0xffi64 << 56, 1), SESSION, OpHint::None).is_err());
        let max_ttl = create("/t", (0xffi64 << 56) | MAX_TTL_MS, 1);
        assert_eq!(zk_op_for(&max_ttl, SESSION, OpHint::None), Ok(21));
    }

    fn samples() -> Vec<(ZkTxnHeader, Txn, Vec<OpHint>)> {
        let unicode = "/ünï/código/日本/🦀";
        let big_acl = vec![acl(31, "world", "anyone"), acl(5, "sasl", "ñame")];
        let txns: Vec<(Txn, OpHint, Vec<OpHint>)> = vec![
            (
                Txn::CreateSession { timeout_ms: 4000 },
                OpHint::None,
                vec![],
            ),
            (
                Txn::CloseSession {
                    ephemerals: vec![unicode.to_string(), "/e".into()],
                },
                OpHint::None,
                vec![],
            ),
            (create(unicode, SESSION, 0), OpHint::Create, vec![]),
            (create("/x", SESSION, i32::MAX), OpHint::None, vec![]),
            (
                create("/c", CONTAINER_EPHEMERAL_OWNER, 2),
                OpHint::None,
                vec![],
            ),
            (
                create("/t", ttl_owner(MAX_TTL_MS).unwrap(), -1),
                OpHint::None,
                vec![],
            ),
            (
                Txn::Delete {
                    path: unicode.into(),
                },
                OpHint::DeleteContainer,
                vec![],
            ),
            (
                Txn::SetData {
                    path: "/s".into(),
                    data: Bytes::from(vec![0u8, 255, 7]),
                    version: -1,
                },
                OpHint::None,
                vec![],
            ),
            (
                Txn::SetAcl {
                    path: "/s".into(),
                    acl: big_acl.clone(),
                    version: 3,
                },
                OpHint::None,
                vec![],
            ),
            (Txn::Error(ErrorCode::NoAuth), OpHint::None, vec![]),
            (
                Txn::Multi(vec![
                    create("/m", 0, 1),
                    create("/m/e", SESSION, 1),
                    create("/m/c", CONTAINER_EPHEMERAL_OWNER, 2),
                    create("/m/t", ttl_owner(10).unwrap(), 3),
                    Txn::Check {
                        path: "/m".into(),
                        version: 2,
                    },
                    Txn::Delete {
                        path: "/m/t".into(),
                    },
                    Txn::SetData {
                        path: unicode.into(),
                        data: Bytes::from_static(b"d"),
                        version: 1,
                    },
                ]),
                OpHint::None,
                vec![
                    OpHint::Create,
                    OpHint::None,
                    OpHint::None,
                    OpHint::None,
                    OpHint::None,
                    OpHint::DeleteContainer,
                ],
            ),
            (Txn::Multi(vec![]), OpHint::None, vec![]),
            (
                Txn::Multi(vec![
                    Txn::Error(ErrorCode::Ok),
                    Txn::Error(ErrorCode::NotEmpty),
                    Txn::Error(ErrorCode::RuntimeInconsistency),
                ]),
                OpHint::None,
                vec![],
            ),
        ];
        txns.into_iter()
            .map(|(txn, hint, subs)| {
                let hdr = ZkTxnHeader::for_txn(SESSION, -3, 0x5_0000_0001, 42, &txn, hint).unwrap();
                (hdr, txn, subs)
            })
            .collect()
    }

    #[test]
    fn every_shape_round_trips_with_and_without_digest() {
        let digest = TxnDigest {
            version: DIGEST_VERSION,
            tree_digest: 0x7777_0000_1234,
        };
        for (hdr, txn, hints) in samples() {
            for digest in [None, Some(&digest)] {
                let mut out = BytesMut::new();
                encode_txn(&hdr, &txn, &hints, digest, &mut out).unwrap();
                let decoded = decode_txn_full(&out).unwrap();
                assert_eq!(decoded.header, hdr);
                assert_eq!(decoded.txn, txn);
                assert_eq!(decoded.digest.as_ref(), digest);
                let mut again = BytesMut::new();
                encode_txn(
                    &decoded.header,
                    &decoded.txn,
                    &decoded.sub_hints(),
                    digest,
                    &mut again,
                )
                .unwrap();
                assert_eq!(again, out, "{txn:?}");
            }
        }
    }

    #[test]
    fn truncation_at_every_offset_is_an_error() {
        let digest = TxnDigest {
            version: 2,
            tree_digest: 1,
        };
        for (hdr, txn, hints) in samples() {
            let mut out = BytesMut::new();
            encode_txn(&hdr, &txn, &hints, Some(&digest), &mut out).unwrap();
            // Cutting the digest off leaves a valid txn without one; every other cut fails.
            let without_digest = out.len() - TXN_DIGEST_LEN;
            for cut in 0..out.len() {
                let result = decode_txn(&out[..cut]);
                if cut == without_digest {
                    assert_eq!(result.unwrap().2, None);
                } else if hdr.op == OP_CLOSE_SESSION && cut == TXN_HEADER_LEN {
                    // A header alone is a legacy body-less closeSession.
                    assert!(result.is_ok());
                } else if hdr.op == OP_CREATE
                    && cut >= TXN_HEADER_LEN
                    && is_create_v0(&JuteReader::new(&out[32..cut]))
                {
                    assert_eq!(result.unwrap().1.clone(), {
                        let Txn::Create {
                            path,
                            data,
                            acl,
                            ephemeral_owner,
                            ..
                        } = txn.clone()
                        else {
                            unreachable!()
                        };
                        Txn::Create {
                            path,
                            data,
                            acl,
                            ephemeral_owner,
                            parent_cversion: -1,
                        }
                    });
                } else {
                    assert!(result.is_err(), "cut at {cut} of {txn:?} decoded");
                }
            }
        }
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let mut h = header_bytes(99);
        assert_eq!(decode_txn(&h), Err(TxnDecodeError::UnsupportedType(99)));
        h = header_bytes(13);
        h.extend(ustring("/a"));
        h.extend([0, 0, 0, 1]);
        assert_eq!(decode_txn(&h), Err(TxnDecodeError::UnsupportedType(13)));
        // A setACL inside a multi.
        let mut m = header_bytes(14);
        m.extend([0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 0]);
        assert_eq!(decode_txn(&m), Err(TxnDecodeError::BadMultiOpType(7)));
        // A huge vector count.
        let mut v = header_bytes(-11);
        v.extend([0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(decode_txn(&v), Err(TxnDecodeError::Jute { .. })));
        // An unknown error code, a bad TTL, trailing bytes.
        let mut e = header_bytes(-1);
        e.extend(12345i32.to_be_bytes());
        assert_eq!(decode_txn(&e), Err(TxnDecodeError::UnknownErrorCode(12345)));
        let mut t = encode(&header(21), &create("/t", ttl_owner(1).unwrap(), 1), None);
        let n = t.len();
        t[n - 8..].copy_from_slice(&0i64.to_be_bytes());
        assert_eq!(decode_txn(&t), Err(TxnDecodeError::BadTtl(0)));
        let mut tail = encode(&header(2), &Txn::Delete { path: "/a".into() }, None);
        tail.push(0);
        assert!(matches!(
            decode_txn(&tail),
            Err(TxnDecodeError::TrailingBytes { len: 1, .. })
        ));
    }

    #[test]
    fn fuzz_with_a_fixed_seed() {
        let mut rng = JavaRandom::new(0x5eed);
        let encoded: Vec<Vec<u8>> = samples()
            .iter()
            .map(|(hdr, txn, hints)| {
                let mut out = BytesMut::new();
                encode_txn(hdr, txn, hints, None, &mut out).unwrap();
                out.to_vec()
            })
            .collect();
        let mut decoded_some = 0;
        for round in 0..20_000 {
            let base = &encoded[round % encoded.len()];
            let mut bytes = base.clone();
            let flips = 1 + rng.next_int_below(4).unwrap_or(0);
            for _ in 0..flips {
                let at = rng.next_int_below(bytes.len() as i32).unwrap_or(0) as usize;
                bytes[at] = rng.next_int() as u8;
            }
            if rng.next_int_below(4) == Some(0) {
                let cut = rng.next_int_below(bytes.len() as i32).unwrap_or(0) as usize;
                bytes.truncate(cut);
            }
            // Never panics; whatever decodes re-encodes to something that decodes the same.
            if let Ok(d) = decode_txn_full(&bytes) {
                decoded_some += 1;
                let mut again = BytesMut::new();
                if encode_txn(
                    &d.header,
                    &d.txn,
                    &d.sub_hints(),
                    d.digest.as_ref(),
                    &mut again,
                )
                .is_ok()
                {
                    let d2 = decode_txn_full(&again).unwrap();
                    assert_eq!(d2.txn, d.txn);
                    assert_eq!(d2.header, d.header);
                }
            }
        }
        assert!(
            decoded_some > 100,
            "the mutations should keep some inputs valid"
        );
        // Pure noise.
        for _ in 0..5_000 {
            let len = rng.next_int_below(80).unwrap_or(0) as usize;
            let mut noise = vec![0u8; len];
            rng.next_bytes(&mut noise);
            let _ = decode_txn(&noise);
        }
    }

    #[test]
    fn strings_decode_as_java_does() {
        // Expected code points printed by OpenJDK 17's new String(bytes, UTF_8).
        let cases: [(&[u8], &str); 10] = [
            (&[0xed, 0xa0, 0xbd], "\u{fffd}"),
            (&[0xed, 0xa0], "\u{fffd}"),
            (&[0xed, 0xa0, 0xbd, 0xed, 0xb8, 0x80], "\u{fffd}\u{fffd}"),
            (&[0xf0, 0x9f, 0x98], "\u{fffd}"),
            (&[0xc0, 0x80], "\u{fffd}\u{fffd}"),
            (
                &[0xf4, 0x90, 0x80, 0x80],
                "\u{fffd}\u{fffd}\u{fffd}\u{fffd}",
            ),
            (&[0xed, 0xa0, 0x41], "\u{fffd}A"),
            (&[0xe0, 0x80, 0x9f], "\u{fffd}\u{fffd}\u{fffd}"),
            (&[0x61, 0xed, 0xa0, 0xbd, 0x62], "a\u{fffd}b"),
            ("/🦀ü".as_bytes(), "/🦀ü"),
        ];
        for (bytes, expected) in cases {
            assert_eq!(decode_java_string(bytes), expected, "{bytes:02x?}");
        }
        let mut path = header_bytes(2);
        path.extend([0, 0, 0, 4, b'/', 0xed, 0xa0, 0xbd]);
        assert_eq!(
            decode_txn(&path).unwrap().1,
            Txn::Delete {
                path: "/\u{fffd}".into()
            }
        );
    }
}
