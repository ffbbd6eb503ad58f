//! Encoding and decoding of whole ZooKeeper packets: connect handshake, requests, replies,
//! watch notifications.
//!
//! Every `encode_*` appends one complete frame (length prefix included) to `out`. Every
//! `decode_*` takes a frame body without the prefix, as [`FrameDecoder`] yields it.
//!
//! Leniency follows the peer we stand in for. Server side (requests, connect request):
//! bytes after the record are ignored, as ZooKeeper's `ByteBufferInputStream` ignores them.
//! Client side (replies, connect response, notifications): trailing bytes are an error, so
//! tests and the load generator notice any reply that is not exactly what it should be.
//!
//! What the server does with a [`DecodeError`] from [`decode_request`], to match ZooKeeper
//! 3.8: `UnknownOpcode` -> reply `Unimplemented` with that xid, then close the connection
//! (`UnimplementedRequestProcessor`); any other error after a readable header -> reply
//! `MarshallingError` with the xid from [`decode_request_header`] (ZooKeeper's processors
//! catch the `IOException` of a failed deserialize); a header that cannot be read -> close.
//!
//! [`FrameDecoder`]: super::frame::FrameDecoder

use bytes::BytesMut;

use super::frame::write_frame;
use super::jute::{DecodeError, JuteReader, JuteWriter};
use super::types::*;

/// MultiHeader `type` of an error result and of the terminator.
const MULTI_ERROR_TYPE: i32 = OpCode::Error as i32;

// ---------------------------------------------------------------------------------------
// Connect handshake
// ---------------------------------------------------------------------------------------

/// `ConnectRequest{protocolVersion, lastZxidSeen, timeOut, sessionId, passwd}` then an
/// optional `readOnly` boolean, which clients older than 3.4 omit.
pub fn decode_connect_request(body: &[u8]) -> Result<ConnectRequest, DecodeError> {
    let mut r = JuteReader::new(body);
    let protocol_version = r.read_i32()?;
    let last_zxid_seen = r.read_i64()?;
    let timeout = r.read_i32()?;
    let session_id = r.read_i64()?;
    let passwd = r.read_buffer()?;
    let read_only = if r.is_empty() {
        None
    } else {
        Some(r.read_bool()?)
    };
    Ok(ConnectRequest {
        protocol_version,
        last_zxid_seen,
        timeout,
        session_id,
        passwd,
        read_only,
    })
}

/// Writes `readOnly` only when `r.read_only` is `Some`, so old clients can be imitated.
pub fn encode_connect_request(out: &mut BytesMut, r: &ConnectRequest) {
    write_frame(out, |w| {
        w.write_i32(r.protocol_version);
        w.write_i64(r.last_zxid_seen);
        w.write_i32(r.timeout);
        w.write_i64(r.session_id);
        w.write_buffer(&r.passwd);
        if let Some(read_only) = r.read_only {
            w.write_bool(read_only);
        }
    });
}

fn write_connect_response_fields(w: &mut JuteWriter, r: &ConnectResponse) {
    w.write_i32(r.protocol_version);
    w.write_i32(r.timeout);
    w.write_i64(r.session_id);
    w.write_buffer(&r.passwd);
}

/// `ConnectResponse{protocolVersion, timeOut, sessionId, passwd}` then `readOnly`. This is
/// the answer to a client that sent `readOnly` (every client since 3.4).
pub fn encode_connect_response(out: &mut BytesMut, r: &ConnectResponse) {
    write_frame(out, |w| {
        write_connect_response_fields(w, r);
        w.write_bool(r.read_only);
    });
}

/// The answer to an old client whose connect request had no `readOnly` byte
/// (`read_only == None`): ZooKeeper then omits `readOnly` from the response too
/// (`ZooKeeperServer.finishSessionInit`, `cnxn.isOldClient`).
pub fn encode_connect_response_without_read_only(out: &mut BytesMut, r: &ConnectResponse) {
    write_frame(out, |w| write_connect_response_fields(w, r));
}

/// `readOnly` is optional (old servers omit it) and reads as false when absent.
pub fn decode_connect_response(body: &[u8]) -> Result<ConnectResponse, DecodeError> {
    let mut r = JuteReader::new(body);
    let protocol_version = r.read_i32()?;
    let timeout = r.read_i32()?;
    let session_id = r.read_i64()?;
    let passwd = r.read_buffer()?;
    let read_only = if r.is_empty() { false } else { r.read_bool()? };
    r.expect_end()?;
    Ok(ConnectResponse {
        protocol_version,
        timeout,
        session_id,
        passwd,
        read_only,
    })
}

// ---------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------

fn read_request_header(r: &mut JuteReader) -> Result<RequestHeader, DecodeError> {
    Ok(RequestHeader {
        xid: r.read_i32()?,
        op: r.read_i32()?,
    })
}

/// Only the `RequestHeader{xid, type}` of a request frame: lets the server answer a request
/// whose body failed to decode with that request's xid.
pub fn decode_request_header(body: &[u8]) -> Result<RequestHeader, DecodeError> {
    read_request_header(&mut JuteReader::new(body))
}

/// A request frame body: header, then the record its opcode calls for. Opcodes a client may
/// not send (notification 0, createSession -10, error -1) and unknown ones are
/// [`DecodeError::UnknownOpcode`] carrying the xid. Bytes after the record are ignored.
pub fn decode_request(body: &[u8]) -> Result<(RequestHeader, Request), DecodeError> {
    let mut r = JuteReader::new(body);
    let hdr = read_request_header(&mut r)?;
    let request = read_request_body(&mut r, hdr)?;
    Ok((hdr, request))
}

/// As [`decode_request`], for a received frame: data fields are slices of it (no copy;
/// the ordering core's clone of a setData's data for its txn is then a reference count).
///
/// A string or buffer may be as long as the frame that carries it. That is ZooKeeper's
/// limit in effect: its server refuses frames over `jute.maxbuffer` (our `FrameDecoder`,
/// sized from the config, does the same) and its reader allows fields up to
/// `jute.maxbuffer + zookeeper.jute.maxbuffer.extrasize` (at least 1024 more), so no field
/// of an accepted frame is ever over the field limit; a fixed field limit here would refuse
/// large znodes that a raised `jute.maxbuffer` allows.
pub fn decode_request_frame(frame: &bytes::Bytes) -> Result<(RequestHeader, Request), DecodeError> {
    let mut r = JuteReader::over(frame).with_field_limit(frame.len());
    let hdr = read_request_header(&mut r)?;
    let request = read_request_body(&mut r, hdr)?;
    Ok((hdr, request))
}

fn read_request_body(r: &mut JuteReader, hdr: RequestHeader) -> Result<Request, DecodeError> {
    let unknown = DecodeError::UnknownOpcode {
        xid: hdr.xid,
        op: hdr.op,
    };
    let Some(op) = OpCode::from_i32(hdr.op) else {
        return Err(unknown);
    };
    Ok(match op {
        OpCode::Ping => Request::Ping,
        OpCode::CloseSession => Request::CloseSession,
        OpCode::WhoAmI => Request::WhoAmI,
        OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            Request::Create(op, read_create(r, op)?)
        }
        OpCode::Delete => Request::Delete(read_delete(r)?),
        OpCode::DeleteContainer => Request::DeleteContainer(r.read_ustring()?),
        OpCode::SetData => Request::SetData(read_set_data(r)?),
        OpCode::SetAcl => Request::SetAcl(SetAclRequest {
            path: r.read_ustring()?,
            acl: r.read_acl_vec()?,
            version: r.read_i32()?,
        }),
        OpCode::Check => Request::Check(read_check(r)?),
        OpCode::Multi => Request::Multi(read_multi_ops(r, OpCode::Multi)?),
        OpCode::MultiRead => Request::MultiRead(read_multi_ops(r, OpCode::MultiRead)?),
        OpCode::Exists => Request::Exists(read_path_watch(r)?),
        OpCode::GetData => Request::GetData(read_path_watch(r)?),
        OpCode::GetChildren => Request::GetChildren(read_path_watch(r)?),
        OpCode::GetChildren2 => Request::GetChildren2(read_path_watch(r)?),
        OpCode::GetAcl => Request::GetAcl(r.read_ustring()?),
        OpCode::GetAllChildrenNumber => Request::GetAllChildrenNumber(r.read_ustring()?),
        OpCode::GetEphemerals => Request::GetEphemerals(r.read_ustring()?),
        OpCode::Sync => Request::Sync(r.read_ustring()?),
        OpCode::Auth => Request::Auth(AuthPacket {
            auth_type: r.read_i32()?,
            scheme: r.read_ustring()?,
            auth: r.read_buffer()?,
        }),
        OpCode::SetWatches => Request::SetWatches(read_set_watches(r, false)?),
        OpCode::SetWatches2 => Request::SetWatches2(read_set_watches(r, true)?),
        OpCode::AddWatch => Request::AddWatch(AddWatchRequest {
            path: r.read_ustring()?,
            mode: r.read_i32()?,
        }),
        OpCode::CheckWatches => Request::CheckWatches(read_watches_request(r)?),
        OpCode::RemoveWatches => Request::RemoveWatches(read_watches_request(r)?),
        OpCode::Reconfig => Request::Reconfig(ReconfigRequest {
            joining_servers: r.read_ustring()?,
            leaving_servers: r.read_ustring()?,
            new_members: r.read_ustring()?,
            cur_config_id: r.read_i64()?,
        }),
        OpCode::Sasl => Request::Sasl(r.read_buffer()?),
        OpCode::Notification | OpCode::CreateSession | OpCode::Error => return Err(unknown),
    })
}

/// CreateRequest, or CreateTTLRequest when `op` is createTTL.
fn read_create(r: &mut JuteReader, op: OpCode) -> Result<CreateRequest, DecodeError> {
    Ok(CreateRequest {
        path: r.read_ustring()?,
        data: r.read_buffer()?,
        acl: r.read_acl_vec()?,
        flags: r.read_i32()?,
        ttl: if op == OpCode::CreateTtl {
            r.read_i64()?
        } else {
            -1
        },
    })
}

fn read_delete(r: &mut JuteReader) -> Result<DeleteRequest, DecodeError> {
    Ok(DeleteRequest {
        path: r.read_ustring()?,
        version: r.read_i32()?,
    })
}

fn read_set_data(r: &mut JuteReader) -> Result<SetDataRequest, DecodeError> {
    Ok(SetDataRequest {
        path: r.read_ustring()?,
        data: r.read_buffer()?,
        version: r.read_i32()?,
    })
}

fn read_check(r: &mut JuteReader) -> Result<CheckVersionRequest, DecodeError> {
    Ok(CheckVersionRequest {
        path: r.read_ustring()?,
        version: r.read_i32()?,
    })
}

fn read_path_watch(r: &mut JuteReader) -> Result<PathWatchRequest, DecodeError> {
    Ok(PathWatchRequest {
        path: r.read_ustring()?,
        watch: r.read_bool()?,
    })
}

fn read_watches_request(r: &mut JuteReader) -> Result<WatchesRequest, DecodeError> {
    Ok(WatchesRequest {
        path: r.read_ustring()?,
        watcher_type: r.read_i32()?,
    })
}

fn read_set_watches(r: &mut JuteReader, with_persistent: bool) -> Result<SetWatches, DecodeError> {
    let relative_zxid = r.read_i64()?;
    let data_watches = r.read_string_vec()?;
    let exist_watches = r.read_string_vec()?;
    let child_watches = r.read_string_vec()?;
    let (persistent_watches, persistent_recursive_watches) = if with_persistent {
        (r.read_string_vec()?, r.read_string_vec()?)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(SetWatches {
        relative_zxid,
        data_watches,
        exist_watches,
        child_watches,
        persistent_watches,
        persistent_recursive_watches,
    })
}

/// `MultiHeader{int type; boolean done; int err}`. ZooKeeper never looks at `err` when
/// reading (requests carry -1, error results repeat the code in their ErrorResponse).
struct MultiHeader {
    op_type: i32,
    done: bool,
}

fn read_multi_header(r: &mut JuteReader) -> Result<MultiHeader, DecodeError> {
    let op_type = r.read_i32()?;
    let done = r.read_bool()?;
    let _err = r.read_i32()?;
    Ok(MultiHeader { op_type, done })
}

fn write_multi_header(w: &mut JuteWriter, op_type: i32, done: bool, err: i32) {
    w.write_i32(op_type);
    w.write_bool(done);
    w.write_i32(err);
}

/// The terminator of both MultiOperationRecord and MultiResponse.
fn write_multi_end(w: &mut JuteWriter) {
    write_multi_header(w, MULTI_ERROR_TYPE, true, -1);
}

/// `MultiOperationRecord`: entries until a header with `done` set (whose type and err are
/// ignored, as in ZooKeeper). multi (14) allows the create family, delete, setData and
/// check; multiRead (22) allows getChildren and getData. Create flags naming no create mode
/// are an error for create/create2/createContainer, as in ZooKeeper (createTTL is not
/// checked there either).
fn read_multi_ops(r: &mut JuteReader, multi: OpCode) -> Result<Vec<MultiOp>, DecodeError> {
    let mut ops = Vec::new();
    loop {
        // Each iteration consumes at least one header, so `ops` is bounded by the input.
        let header = read_multi_header(r)?;
        if header.done {
            return Ok(ops);
        }
        let bad = DecodeError::BadMultiHeader {
            multi_op: multi as i32,
            op_type: header.op_type,
        };
        let Some(op) = OpCode::from_i32(header.op_type) else {
            return Err(bad);
        };
        let entry = match (multi, op) {
            (
                OpCode::Multi,
                OpCode::Create | OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl,
            ) => {
                let create = read_create(r, op)?;
                let mode = CreateMode::from_flags(create.flags);
                if op != OpCode::CreateTtl && mode.is_none() {
                    return Err(DecodeError::BadCreateFlags(create.flags));
                }
                // A TTL mode needs createTTL's record (it carries the ttl): ZooKeeper rejects
                // the whole multi while decoding it.
                if op != OpCode::CreateTtl && mode.is_some_and(CreateMode::is_ttl) {
                    return Err(DecodeError::BadCreateFlags(create.flags));
                }
                MultiOp::Create(op, create)
            }
            (OpCode::Multi, OpCode::Delete) => MultiOp::Delete(read_delete(r)?),
            (OpCode::Multi, OpCode::SetData) => MultiOp::SetData(read_set_data(r)?),
            (OpCode::Multi, OpCode::Check) => MultiOp::Check(read_check(r)?),
            (OpCode::MultiRead, OpCode::GetChildren) => MultiOp::GetChildren(read_path_watch(r)?),
            (OpCode::MultiRead, OpCode::GetData) => MultiOp::GetData(read_path_watch(r)?),
            _ => return Err(bad),
        };
        ops.push(entry);
    }
}

/// A request frame: `hdr` as given, then the body of `req`. `hdr.op` should be
/// `req.op_code()`; the body shape follows `req`.
pub fn encode_request(out: &mut BytesMut, hdr: &RequestHeader, req: &Request) {
    write_frame(out, |w| {
        w.write_i32(hdr.xid);
        w.write_i32(hdr.op);
        write_request_body(w, req);
    });
}

fn write_create(w: &mut JuteWriter, op: OpCode, c: &CreateRequest) {
    w.write_ustring(&c.path);
    w.write_buffer(&c.data);
    w.write_acl_vec(&c.acl);
    w.write_i32(c.flags);
    if op == OpCode::CreateTtl {
        w.write_i64(c.ttl);
    }
}

fn write_path_watch(w: &mut JuteWriter, p: &PathWatchRequest) {
    w.write_ustring(&p.path);
    w.write_bool(p.watch);
}

fn write_path_version(w: &mut JuteWriter, path: &str, version: i32) {
    w.write_ustring(path);
    w.write_i32(version);
}

fn write_set_data(w: &mut JuteWriter, s: &SetDataRequest) {
    w.write_ustring(&s.path);
    w.write_buffer(&s.data);
    w.write_i32(s.version);
}

fn write_set_watches(w: &mut JuteWriter, s: &SetWatches, with_persistent: bool) {
    w.write_i64(s.relative_zxid);
    w.write_string_vec(&s.data_watches);
    w.write_string_vec(&s.exist_watches);
    w.write_string_vec(&s.child_watches);
    if with_persistent {
        w.write_string_vec(&s.persistent_watches);
        w.write_string_vec(&s.persistent_recursive_watches);
    }
}

fn write_multi_ops(w: &mut JuteWriter, ops: &[MultiOp]) {
    for op in ops {
        // The Java client writes err -1 in request headers.
        write_multi_header(w, op.op_code() as i32, false, -1);
        match op {
            MultiOp::Create(code, c) => write_create(w, *code, c),
            MultiOp::Delete(d) => write_path_version(w, &d.path, d.version),
            MultiOp::SetData(s) => write_set_data(w, s),
            MultiOp::Check(c) => write_path_version(w, &c.path, c.version),
            MultiOp::GetChildren(p) | MultiOp::GetData(p) => write_path_watch(w, p),
        }
    }
    write_multi_end(w);
}

fn write_request_body(w: &mut JuteWriter, req: &Request) {
    match req {
        Request::Ping | Request::CloseSession | Request::WhoAmI => {}
        Request::Create(op, c) => write_create(w, *op, c),
        Request::Delete(d) => write_path_version(w, &d.path, d.version),
        Request::DeleteContainer(path)
        | Request::GetAcl(path)
        | Request::GetAllChildrenNumber(path)
        | Request::GetEphemerals(path)
        | Request::Sync(path) => w.write_ustring(path),
        Request::SetData(s) => write_set_data(w, s),
        Request::SetAcl(s) => {
            w.write_ustring(&s.path);
            w.write_acl_vec(&s.acl);
            w.write_i32(s.version);
        }
        Request::Check(c) => write_path_version(w, &c.path, c.version),
        Request::Multi(ops) | Request::MultiRead(ops) => write_multi_ops(w, ops),
        Request::Exists(p)
        | Request::GetData(p)
        | Request::GetChildren(p)
        | Request::GetChildren2(p) => write_path_watch(w, p),
        Request::Auth(a) => {
            w.write_i32(a.auth_type);
            w.write_ustring(&a.scheme);
            w.write_buffer(&a.auth);
        }
        Request::SetWatches(s) => write_set_watches(w, s, false),
        Request::SetWatches2(s) => write_set_watches(w, s, true),
        Request::AddWatch(a) => {
            w.write_ustring(&a.path);
            w.write_i32(a.mode);
        }
        Request::CheckWatches(c) | Request::RemoveWatches(c) => {
            w.write_ustring(&c.path);
            w.write_i32(c.watcher_type);
        }
        Request::Reconfig(c) => {
            w.write_ustring(&c.joining_servers);
            w.write_ustring(&c.leaving_servers);
            w.write_ustring(&c.new_members);
            w.write_i64(c.cur_config_id);
        }
        Request::Sasl(token) => w.write_buffer(token),
    }
}

// ---------------------------------------------------------------------------------------
// Replies
// ---------------------------------------------------------------------------------------

fn write_reply_header(w: &mut JuteWriter, hdr: &ReplyHeader) {
    w.write_i32(hdr.xid);
    w.write_i64(hdr.zxid);
    w.write_i32(hdr.err);
}

fn read_reply_header(r: &mut JuteReader) -> Result<ReplyHeader, DecodeError> {
    Ok(ReplyHeader {
        xid: r.read_i32()?,
        zxid: r.read_i64()?,
        err: r.read_i32()?,
    })
}

/// A reply frame: `ReplyHeader{xid, zxid, err}` then the body. When `hdr.err != 0` only the
/// header is written (ZooKeeper sends no record with an error), except for
/// [`Response::Multi`], whose per-op results are always written.
pub fn encode_reply(out: &mut BytesMut, hdr: &ReplyHeader, body: &Response) {
    write_frame(out, |w| {
        write_reply_header(w, hdr);
        if hdr.err == 0 || matches!(body, Response::Multi(_)) {
            write_response_body(w, body);
        }
    });
}

fn write_response_body(w: &mut JuteWriter, body: &Response) {
    match body {
        Response::Empty => {}
        Response::AddWatch => w.write_i32(0),
        Response::Sasl(Some(token)) => w.write_buffer(token),
        Response::Sasl(None) => w.write_i32(-1),
        Response::Create(path) | Response::Sync(path) => w.write_ustring(path),
        Response::Create2(path, stat) => {
            w.write_ustring(path);
            w.write_stat(stat);
        }
        Response::Stat(stat) => w.write_stat(stat),
        Response::GetData(data, stat) => {
            w.write_buffer(data);
            w.write_stat(stat);
        }
        Response::GetAcl(acl, stat) => {
            w.write_acl_vec(acl);
            w.write_stat(stat);
        }
        Response::GetChildren(children) | Response::GetEphemerals(children) => {
            w.write_string_vec(children);
        }
        Response::GetChildren2(children, stat) => {
            w.write_string_vec(children);
            w.write_stat(stat);
        }
        Response::GetAllChildrenNumber(n) => w.write_i32(*n),
        Response::Multi(results) => write_multi_results(w, results),
        Response::WhoAmI(infos) => w.write_client_info_vec(infos),
    }
}

/// `MultiResponse`, as ZooKeeper 3.8 writes it: each result under
/// `MultiHeader{type, done=false, err}` where `type` is the result's opcode (create2 for
/// every create that returns a stat, whatever its request opcode) and `err` is 0, except
/// errors: `type` -1, `err` the code, then `ErrorResponse{err}`. Ends with `{-1, true, -1}`.
fn write_multi_results(w: &mut JuteWriter, results: &[MultiResult]) {
    for result in results {
        match result {
            MultiResult::Create(path) => {
                write_multi_header(w, OpCode::Create as i32, false, 0);
                w.write_ustring(path);
            }
            MultiResult::Create2(path, stat) => {
                write_multi_header(w, OpCode::Create2 as i32, false, 0);
                w.write_ustring(path);
                w.write_stat(stat);
            }
            MultiResult::Delete => write_multi_header(w, OpCode::Delete as i32, false, 0),
            MultiResult::Check => write_multi_header(w, OpCode::Check as i32, false, 0),
            MultiResult::SetData(stat) => {
                write_multi_header(w, OpCode::SetData as i32, false, 0);
                w.write_stat(stat);
            }
            MultiResult::GetChildren(children) => {
                write_multi_header(w, OpCode::GetChildren as i32, false, 0);
                w.write_string_vec(children);
            }
            MultiResult::GetData(data, stat) => {
                write_multi_header(w, OpCode::GetData as i32, false, 0);
                w.write_buffer(data);
                w.write_stat(stat);
            }
            MultiResult::Error(code) => {
                write_multi_header(w, MULTI_ERROR_TYPE, false, code.code());
                w.write_i32(code.code());
            }
        }
    }
    write_multi_end(w);
}

/// Only the `ReplyHeader` of a reply frame: lets a client route a frame by xid (-1
/// notification, -2 ping, -4 auth, -8 setWatches, else the pending request) before
/// decoding the body with [`decode_reply`] or [`decode_notification`].
pub fn decode_reply_header(body: &[u8]) -> Result<ReplyHeader, DecodeError> {
    read_reply_header(&mut JuteReader::new(body))
}

/// A reply frame body to the request whose opcode was `op`. With `err != 0` the body is
/// [`Response::Empty`], except a multi/multiRead reply that carries results. A sasl reply's
/// token is checked and dropped ([`Response`] has no place for it). Trailing bytes are an
/// error.
pub fn decode_reply(body: &[u8], op: OpCode) -> Result<(ReplyHeader, Response), DecodeError> {
    let mut r = JuteReader::new(body);
    let hdr = read_reply_header(&mut r)?;
    let is_multi = matches!(op, OpCode::Multi | OpCode::MultiRead);
    let has_multi_results = is_multi && !r.is_empty();
    let response = if hdr.err != 0 && !has_multi_results {
        Response::Empty
    } else {
        read_response_body(&mut r, hdr, op)?
    };
    r.expect_end()?;
    Ok((hdr, response))
}

fn read_response_body(
    r: &mut JuteReader,
    hdr: ReplyHeader,
    op: OpCode,
) -> Result<Response, DecodeError> {
    Ok(match op {
        OpCode::Create => Response::Create(r.read_ustring()?),
        OpCode::Create2 | OpCode::CreateContainer | OpCode::CreateTtl => {
            Response::Create2(r.read_ustring()?, r.read_stat()?)
        }
        OpCode::Exists | OpCode::SetData | OpCode::SetAcl => Response::Stat(r.read_stat()?),
        OpCode::GetData | OpCode::Reconfig => Response::GetData(r.read_buffer()?, r.read_stat()?),
        OpCode::GetAcl => Response::GetAcl(r.read_acl_vec()?, r.read_stat()?),
        OpCode::GetChildren => Response::GetChildren(r.read_string_vec()?),
        OpCode::GetChildren2 => Response::GetChildren2(r.read_string_vec()?, r.read_stat()?),
        OpCode::GetAllChildrenNumber => Response::GetAllChildrenNumber(r.read_i32()?),
        OpCode::GetEphemerals => Response::GetEphemerals(r.read_string_vec()?),
        OpCode::Sync => Response::Sync(r.read_ustring()?),
        OpCode::Multi | OpCode::MultiRead => Response::Multi(read_multi_results(r, op)?),
        OpCode::WhoAmI => Response::WhoAmI(r.read_client_info_vec()?),
        OpCode::Sasl => {
            if r.is_empty() {
                Response::Empty
            } else {
                let slice = r.read_buffer_slice()?;
                let null = crate::proto::jute::is_null_buffer(slice);
                Response::Sasl((!null).then(|| bytes::Bytes::copy_from_slice(slice)))
            }
        }
        OpCode::Delete
        | OpCode::DeleteContainer
        | OpCode::Check
        | OpCode::Ping
        | OpCode::CloseSession
        | OpCode::Auth
        | OpCode::SetWatches
        | OpCode::SetWatches2
        | OpCode::CheckWatches
        | OpCode::RemoveWatches => Response::Empty,
        OpCode::AddWatch => {
            r.read_i32()?;
            Response::AddWatch
        }
        OpCode::Notification | OpCode::CreateSession | OpCode::Error => {
            return Err(DecodeError::UnknownOpcode {
                xid: hdr.xid,
                op: op as i32,
            })
        }
    })
}

fn read_multi_results(r: &mut JuteReader, op: OpCode) -> Result<Vec<MultiResult>, DecodeError> {
    let mut results = Vec::new();
    loop {
        // Each iteration consumes at least one header, so `results` is bounded by the input.
        let header = read_multi_header(r)?;
        if header.done {
            return Ok(results);
        }
        let result = match header.op_type {
            t if t == OpCode::Create as i32 => MultiResult::Create(r.read_ustring()?),
            t if t == OpCode::Create2 as i32 => {
                MultiResult::Create2(r.read_ustring()?, r.read_stat()?)
            }
            t if t == OpCode::Delete as i32 => MultiResult::Delete,
            t if t == OpCode::Check as i32 => MultiResult::Check,
            t if t == OpCode::SetData as i32 => MultiResult::SetData(r.read_stat()?),
            t if t == OpCode::GetChildren as i32 => MultiResult::GetChildren(r.read_string_vec()?),
            t if t == OpCode::GetData as i32 => {
                MultiResult::GetData(r.read_buffer()?, r.read_stat()?)
            }
            MULTI_ERROR_TYPE => {
                // ZooKeeper takes the code from the ErrorResponse, not the header.
                let err = r.read_i32()?;
                let code = ErrorCode::from_i32(err).ok_or(DecodeError::UnknownErrorCode(err))?;
                MultiResult::Error(code)
            }
            op_type => {
                return Err(DecodeError::BadMultiHeader {
                    multi_op: op as i32,
                    op_type,
                })
            }
        };
        results.push(result);
    }
}

// ---------------------------------------------------------------------------------------
// Watch notifications
// ---------------------------------------------------------------------------------------

/// A watch notification frame: `ReplyHeader{xid -1, zxid -1, err 0}` then
/// `WatcherEvent{type, state, path}`. ZooKeeper 3.8 (`NIOServerCnxn.process` /
/// `NettyServerCnxn.process`) writes zxid -1, not the zxid of the change.
pub fn encode_notification(out: &mut BytesMut, ev: &WatcherEvent) {
    write_frame(out, |w| {
        write_reply_header(
            w,
            &ReplyHeader {
                xid: xid::NOTIFICATION,
                zxid: -1,
                err: 0,
            },
        );
        w.write_i32(ev.event_type as i32);
        w.write_i32(ev.state);
        w.write_ustring(&ev.path);
    });
}

/// A notification frame body (reply header with xid -1, then the WatcherEvent).
pub fn decode_notification(body: &[u8]) -> Result<WatcherEvent, DecodeError> {
    let mut r = JuteReader::new(body);
    let hdr = read_reply_header(&mut r)?;
    if hdr.xid != xid::NOTIFICATION {
        return Err(DecodeError::UnexpectedXid {
            expected: xid::NOTIFICATION,
            found: hdr.xid,
        });
    }
    let raw_type = r.read_i32()?;
    let event_type =
        EventType::from_i32(raw_type).ok_or(DecodeError::UnknownEventType(raw_type))?;
    let state = r.read_i32()?;
    let path = r.read_ustring()?;
    r.expect_end()?;
    Ok(WatcherEvent {
        event_type,
        state,
        path,
    })
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::proto::frame::FrameDecoder;
    use crate::proto::jute::JUTE_MAX_BUFFER;

    // ---- helpers -------------------------------------------------------------------

    /// Strips the frame prefix, checking that `out` holds exactly one frame.
    fn only_frame(out: &mut BytesMut) -> Bytes {
        let frame = FrameDecoder::new(JUTE_MAX_BUFFER)
            .decode(out)
            .expect("valid frame")
            .expect("complete frame");
        assert!(out.is_empty(), "exactly one frame");
        frame
    }

    fn request_body(req: &Request, xid: i32) -> Bytes {
        let mut out = BytesMut::new();
        let hdr = RequestHeader {
            xid,
            op: req.op_code() as i32,
        };
        encode_request(&mut out, &hdr, req);
        only_frame(&mut out)
    }

    fn reply_body(hdr: &ReplyHeader, resp: &Response) -> Bytes {
        let mut out = BytesMut::new();
        encode_reply(&mut out, hdr, resp);
        only_frame(&mut out)
    }

    fn stat(seed: i64) -> Stat {
        Stat {
            czxid: seed,
            mzxid: seed + 1,
            ctime: 1_700_000_000_000 + seed,
            mtime: 1_700_000_000_500 + seed,
            version: 1,
            cversion: 2,
            aversion: 3,
            ephemeral_owner: 0x1234_5678_9abc_def0,
            data_length: 4,
            num_children: 5,
            pzxid: seed + 2,
        }
    }

    fn acl() -> Vec<Acl> {
        vec![
            Acl {
                perms: perms::ALL,
                id: Id {
                    scheme: "world".into(),
                    id: "anyone".into(),
                },
            },
            Acl {
                perms: perms::READ | perms::ADMIN,
                id: Id {
                    scheme: "digest".into(),
                    id: "bob:L5V/Ivz+TAZEtbWnEDMGNqnFwGE=".into(),
                },
            },
        ]
    }

    fn create(path: &str, flags: i32, ttl: i64) -> CreateRequest {
        CreateRequest {
            path: path.into(),
            data: Bytes::from_static(b"payload"),
            acl: acl(),
            flags,
            ttl,
        }
    }

    fn pw(path: &str, watch: bool) -> PathWatchRequest {
        PathWatchRequest {
            path: path.into(),
            watch,
        }
    }

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// One request of every kind (every opcode a client may send), with non-default values.
    fn all_requests() -> Vec<Request> {
        vec![
            Request::Ping,
            Request::CloseSession,
            Request::WhoAmI,
            Request::Create(OpCode::Create, create("/a", 0, -1)),
            Request::Create(OpCode::Create2, create("/b", 3, -1)),
            Request::Create(OpCode::CreateContainer, create("/c", 4, -1)),
            Request::Create(OpCode::CreateTtl, create("/d", 5, 60_000)),
            Request::Delete(DeleteRequest {
                path: "/a".into(),
                version: -1,
            }),
            Request::DeleteContainer("/c".into()),
            Request::SetData(SetDataRequest {
                path: "/a".into(),
                data: Bytes::from_static(&[0, 1, 2, 255]),
                version: 7,
            }),
            Request::SetAcl(SetAclRequest {
                path: "/a".into(),
                acl: acl(),
                version: 2,
            }),
            Request::Check(CheckVersionRequest {
                path: "/a".into(),
                version: 9,
            }),
            Request::Multi(vec![
                MultiOp::Create(OpCode::Create, create("/m1", 0, -1)),
                MultiOp::Create(OpCode::Create2, create("/m2", 2, -1)),
                MultiOp::Create(OpCode::CreateContainer, create("/m3", 4, -1)),
                MultiOp::Create(OpCode::CreateTtl, create("/m4", 6, 1000)),
                MultiOp::Delete(DeleteRequest {
                    path: "/m0".into(),
                    version: 3,
                }),
                MultiOp::SetData(SetDataRequest {
                    path: "/m1".into(),
                    data: Bytes::from_static(b"x"),
                    version: -1,
                }),
                MultiOp::Check(CheckVersionRequest {
                    path: "/m1".into(),
                    version: 0,
                }),
            ]),
            Request::Multi(vec![]),
            Request::MultiRead(vec![
                MultiOp::GetChildren(pw("/", false)),
                MultiOp::GetData(pw("/a", false)),
            ]),
            Request::Exists(pw("/e", true)),
            Request::GetData(pw("/g", false)),
            Request::GetChildren(pw("/h", true)),
            Request::GetChildren2(pw("/i", false)),
            Request::GetAcl("/j".into()),
            Request::GetAllChildrenNumber("/k".into()),
            Request::GetEphemerals("/l".into()),
            Request::Sync("/n".into()),
            Request::Auth(AuthPacket {
                auth_type: 0,
                scheme: "digest".into(),
                auth: Bytes::from_static(b"bob:secret"),
            }),
            Request::SetWatches(SetWatches {
                relative_zxid: 0x1_0000_0005,
                data_watches: strings(&["/d1", "/d2"]),
                exist_watches: strings(&["/e1"]),
                child_watches: strings(&[]),
                persistent_watches: vec![],
                persistent_recursive_watches: vec![],
            }),
            Request::SetWatches2(SetWatches {
                relative_zxid: 77,
                data_watches: strings(&["/d1"]),
                exist_watches: strings(&[]),
                child_watches: strings(&["/c1", "/c2"]),
                persistent_watches: strings(&["/p"]),
                persistent_recursive_watches: strings(&["/r1", "/r2"]),
            }),
            Request::AddWatch(AddWatchRequest {
                path: "/w".into(),
                mode: add_watch_mode::PERSISTENT_RECURSIVE,
            }),
            Request::CheckWatches(WatchesRequest {
                path: "/w".into(),
                watcher_type: watcher_type::DATA,
            }),
            Request::RemoveWatches(WatchesRequest {
                path: "/w".into(),
                watcher_type: watcher_type::ANY,
            }),
            Request::Reconfig(ReconfigRequest {
                joining_servers: "server.4=h4:2888:3888".into(),
                leaving_servers: "2".into(),
                new_members: String::new(),
                cur_config_id: -1,
            }),
            Request::Sasl(Bytes::from_static(b"token")),
        ]
    }

    /// One reply body of every shape, with the opcode of the request it answers.
    fn all_responses() -> Vec<(OpCode, Response)> {
        vec![
            (OpCode::Create, Response::Create("/a0000000001".into())),
            (OpCode::Create2, Response::Create2("/b".into(), stat(10))),
            (
                OpCode::CreateContainer,
                Response::Create2("/c".into(), stat(11)),
            ),
            (OpCode::CreateTtl, Response::Create2("/d".into(), stat(12))),
            (OpCode::Exists, Response::Stat(stat(13))),
            (OpCode::SetData, Response::Stat(stat(14))),
            (OpCode::SetAcl, Response::Stat(stat(15))),
            (
                OpCode::GetData,
                Response::GetData(Bytes::from_static(b"hello"), stat(16)),
            ),
            (
                OpCode::Reconfig,
                Response::GetData(Bytes::from_static(b"server.1=h1"), stat(17)),
            ),
            (OpCode::GetAcl, Response::GetAcl(acl(), stat(18))),
            (
                OpCode::GetChildren,
                Response::GetChildren(strings(&["x", "y", "z"])),
            ),
            (OpCode::GetChildren, Response::GetChildren(vec![])),
            (
                OpCode::GetChildren2,
                Response::GetChildren2(strings(&["only"]), stat(19)),
            ),
            (
                OpCode::GetAllChildrenNumber,
                Response::GetAllChildrenNumber(12345),
            ),
            (
                OpCode::GetEphemerals,
                Response::GetEphemerals(strings(&["/e1", "/e2/f"])),
            ),
            (OpCode::Sync, Response::Sync("/s".into())),
            (
                OpCode::WhoAmI,
                Response::WhoAmI(vec![
                    ClientInfo {
                        auth_scheme: "ip".into(),
                        user: "127.0.0.1".into(),
                    },
                    ClientInfo {
                        auth_scheme: "digest".into(),
                        user: "bob".into(),
                    },
                ]),
            ),
            (
                OpCode::Multi,
                Response::Multi(vec![
                    MultiResult::Create("/m1".into()),
                    MultiResult::Create2("/m2".into(), stat(20)),
                    MultiResult::Delete,
                    MultiResult::SetData(stat(21)),
                    MultiResult::Check,
                ]),
            ),
            (OpCode::Multi, Response::Multi(vec![])),
            (
                OpCode::MultiRead,
                Response::Multi(vec![
                    MultiResult::GetChildren(strings(&["a", "b"])),
                    MultiResult::GetData(Bytes::from_static(b"d"), stat(22)),
                    MultiResult::Error(ErrorCode::NoNode),
                ]),
            ),
            (OpCode::Delete, Response::Empty),
            (OpCode::DeleteContainer, Response::Empty),
            (OpCode::Check, Response::Empty),
            (OpCode::Ping, Response::Empty),
            (OpCode::CloseSession, Response::Empty),
            (OpCode::Auth, Response::Empty),
            (OpCode::SetWatches, Response::Empty),
            (OpCode::SetWatches2, Response::Empty),
            (OpCode::CheckWatches, Response::Empty),
            (OpCode::RemoveWatches, Response::Empty),
            (OpCode::AddWatch, Response::AddWatch),
        ]
    }

    /// A body with one field replaced: `prefix` bytes of a valid body, then `tail`.
    fn spliced(prefix: &[u8], tail: &[u8]) -> Vec<u8> {
        let mut v = prefix.to_vec();
        v.extend_from_slice(tail);
        v
    }

    /// Request header bytes.
    fn req_hdr(xid: i32, op: i32) -> Vec<u8> {
        spliced(&xid.to_be_bytes(), &op.to_be_bytes())
    }

    // ---- round trips ---------------------------------------------------------------

    #[test]
    fn every_request_round_trips_and_consumes_its_body() {
        for (i, req) in all_requests().into_iter().enumerate() {
            let xid = i as i32 + 1;
            let body = request_body(&req, xid);
            let (hdr, decoded) = decode_request(&body).expect("decodes");
            assert_eq!(
                hdr,
                RequestHeader {
                    xid,
                    op: req.op_code() as i32
                }
            );
            assert_eq!(decoded, req);
            // The decoder reads exactly what the encoder wrote.
            let mut r = JuteReader::new(&body);
            let hdr = read_request_header(&mut r).unwrap();
            read_request_body(&mut r, hdr).unwrap();
            assert_eq!(r.expect_end(), Ok(()), "{req:?}");
        }
    }

    #[test]
    fn every_response_round_trips() {
        for (op, resp) in all_responses() {
            let hdr = ReplyHeader {
                xid: 42,
                zxid: 0x5_0000_0003,
                err: 0,
            };
            let body = reply_body(&hdr, &resp);
            assert_eq!(decode_reply(&body, op), Ok((hdr, resp.clone())), "{op:?}");
            assert_eq!(decode_reply_header(&body), Ok(hdr));
        }
    }

    #[test]
    fn null_data_decodes_null_and_encodes_as_minus_one() {
        use crate::proto::{is_null_buffer, null_buffer};
        // create: path, data -1, acl, flags; setData: path, data -1, version.
        let mut create = req_hdr(1, 1);
        create.extend_from_slice(&[0, 0, 0, 2, b'/', b'n', 0xff, 0xff, 0xff, 0xff]);
        create.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        let mut set = req_hdr(2, 5);
        set.extend_from_slice(&[0, 0, 0, 2, b'/', b'n', 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
        for body in [create, set] {
            let frame = Bytes::from(body);
            let data = match decode_request_frame(&frame).unwrap().1 {
                Request::Create(_, c) => c.data,
                Request::SetData(s) => s.data,
                other => panic!("{other:?}"),
            };
            assert!(is_null_buffer(&data));
        }
        let hdr = ReplyHeader {
            xid: 3,
            zxid: 4,
            err: 0,
        };
        let null = reply_body(&hdr, &Response::GetData(null_buffer(), stat(1)));
        assert_eq!(&null[16..20], &[0xff, 0xff, 0xff, 0xff]);
        let empty = reply_body(&hdr, &Response::GetData(Bytes::new(), stat(1)));
        assert_eq!(&empty[16..20], &[0, 0, 0, 0]);
        match decode_reply(&null, OpCode::GetData).unwrap().1 {
            Response::GetData(data, _) => assert!(is_null_buffer(&data)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn request_frames_take_fields_as_long_as_the_frame() {
        // A 3 MiB setData: over the 2 MiB default field limit, inside a 4 MiB frame (a
        // server with jute.maxbuffer=4194304 accepts the frame).
        let data = vec![7u8; 3 << 20];
        let req = Request::SetData(SetDataRequest {
            path: "/big".into(),
            data: Bytes::from(data.clone()),
            version: -1,
        });
        let mut out = BytesMut::new();
        let hdr = RequestHeader {
            xid: 1,
            op: req.op_code() as i32,
        };
        encode_request(&mut out, &hdr, &req);
        let frame = FrameDecoder::new(4 << 20)
            .decode(&mut out)
            .unwrap()
            .unwrap();
        assert!(
            decode_request(&frame).is_err(),
            "the default limit refuses it"
        );
        match decode_request_frame(&frame).unwrap().1 {
            Request::SetData(set) => assert_eq!(set.data.len(), data.len()),
            other => panic!("{other:?}"),
        }
        // A length past the frame's end is still refused.
        let mut short = frame.to_vec();
        short.truncate(short.len() - 5);
        assert!(decode_request_frame(&Bytes::from(short)).is_err());
    }

    #[test]
    fn non_ttl_creates_decode_ttl_as_minus_one() {
        let mut req = create("/a", 0, 999);
        let body = request_body(&Request::Create(OpCode::Create2, req.clone()), 1);
        req.ttl = -1;
        assert_eq!(
            decode_request(&body).unwrap().1,
            Request::Create(OpCode::Create2, req)
        );
    }

    #[test]
    fn error_replies_carry_no_body() {
        for (op, resp) in all_responses() {
            if matches!(resp, Response::Multi(_)) {
                continue;
            }
            let hdr = ReplyHeader {
                xid: 3,
                zxid: 5,
                err: ErrorCode::NoNode.code(),
            };
            let body = reply_body(&hdr, &resp);
            assert_eq!(body.len(), 16, "header only for {op:?}");
            assert_eq!(decode_reply(&body, op), Ok((hdr, Response::Empty)));
        }
    }

    #[test]
    fn multi_results_are_written_even_with_an_error_in_the_header() {
        // A failed multi as ZooKeeper reports it: ops before the failure OK, the failing op
        // its code, the ones after RuntimeInconsistency.
        let resp = Response::Multi(vec![
            MultiResult::Error(ErrorCode::Ok),
            MultiResult::Error(ErrorCode::NodeExists),
            MultiResult::Error(ErrorCode::RuntimeInconsistency),
        ]);
        let hdr = ReplyHeader {
            xid: 8,
            zxid: 100,
            err: ErrorCode::NodeExists.code(),
        };
        let body = reply_body(&hdr, &resp);
        assert_eq!(decode_reply(&body, OpCode::Multi), Ok((hdr, resp)));
        // With err != 0 and no body at all, a multi reply decodes as Empty.
        let bare = reply_body(&hdr, &Response::Empty);
        assert_eq!(
            decode_reply(&bare, OpCode::Multi),
            Ok((hdr, Response::Empty))
        );
    }

    #[test]
    fn notification_round_trips_with_zxid_minus_one() {
        let ev = WatcherEvent {
            event_type: EventType::NodeChildrenChanged,
            state: keeper_state::SYNC_CONNECTED,
            path: "/parent".into(),
        };
        let mut out = BytesMut::new();
        encode_notification(&mut out, &ev);
        let body = only_frame(&mut out);
        assert_eq!(
            decode_reply_header(&body),
            Ok(ReplyHeader {
                xid: -1,
                zxid: -1,
                err: 0
            })
        );
        assert_eq!(decode_notification(&body), Ok(ev));
    }

    #[test]
    fn every_event_type_round_trips() {
        for t in [-1, 1, 2, 3, 4, 5, 6, 7] {
            let event_type = EventType::from_i32(t).expect("known type");
            assert_eq!(event_type as i32, t);
            let ev = WatcherEvent {
                event_type,
                state: keeper_state::SYNC_CONNECTED,
                path: String::new(),
            };
            let mut out = BytesMut::new();
            encode_notification(&mut out, &ev);
            assert_eq!(decode_notification(&only_frame(&mut out)), Ok(ev));
        }
        assert_eq!(EventType::from_i32(0), None);
        assert_eq!(EventType::from_i32(8), None);
    }

    #[test]
    fn connect_request_with_and_without_read_only() {
        let mut req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0x2_0000_0010,
            timeout: 30_000,
            session_id: 0x1000_0000_0000_0001,
            passwd: Bytes::from(vec![9u8; 16]),
            read_only: Some(true),
        };
        let mut out = BytesMut::new();
        encode_connect_request(&mut out, &req);
        let with = only_frame(&mut out);
        assert_eq!(with.len(), 45);
        assert_eq!(decode_connect_request(&with), Ok(req.clone()));

        req.read_only = None;
        encode_connect_request(&mut out, &req);
        let without = only_frame(&mut out);
        assert_eq!(without.len(), 44);
        assert_eq!(&without[..], &with[..44]);
        assert_eq!(decode_connect_request(&without), Ok(req));
    }

    #[test]
    fn connect_response_round_trips() {
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout: 4000,
            session_id: 0x0100_0000_0000_00ff,
            passwd: Bytes::from(vec![0xab; 16]),
            read_only: false,
        };
        let mut out = BytesMut::new();
        encode_connect_response(&mut out, &resp);
        assert_eq!(
            decode_connect_response(&only_frame(&mut out)),
            Ok(resp.clone())
        );

        encode_connect_response_without_read_only(&mut out, &resp);
        let old = only_frame(&mut out);
        assert_eq!(old.len(), 4 + 4 + 8 + 4 + 16);
        assert_eq!(decode_connect_response(&old), Ok(resp));
    }

    // ---- byte-exact encodings, derived by hand from zookeeper.jute ---------------------

    #[test]
    fn get_data_request_bytes() {
        let mut out = BytesMut::new();
        encode_request(
            &mut out,
            &RequestHeader { xid: 1, op: 4 },
            &Request::GetData(pw("/a", true)),
        );
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 15,             // frame length
            0, 0, 0, 1,              // xid
            0, 0, 0, 4,              // type getData
            0, 0, 0, 2, b'/', b'a',  // path
            1,                       // watch
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn exists_reply_bytes() {
        let st = Stat {
            czxid: 1,
            mzxid: 2,
            ctime: 3,
            mtime: 4,
            version: 5,
            cversion: 6,
            aversion: 7,
            ephemeral_owner: 8,
            data_length: 9,
            num_children: 10,
            pzxid: 11,
        };
        let mut out = BytesMut::new();
        let hdr = ReplyHeader {
            xid: 1,
            zxid: 0x1_0000_0002,
            err: 0,
        };
        encode_reply(&mut out, &hdr, &Response::Stat(st));
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 84,                  // frame length: 16 header + 68 stat
            0, 0, 0, 1,                   // xid
            0, 0, 0, 1, 0, 0, 0, 2,       // zxid
            0, 0, 0, 0,                   // err
            0, 0, 0, 0, 0, 0, 0, 1,       // czxid
            0, 0, 0, 0, 0, 0, 0, 2,       // mzxid
            0, 0, 0, 0, 0, 0, 0, 3,       // ctime
            0, 0, 0, 0, 0, 0, 0, 4,       // mtime
            0, 0, 0, 5,                   // version
            0, 0, 0, 6,                   // cversion
            0, 0, 0, 7,                   // aversion
            0, 0, 0, 0, 0, 0, 0, 8,       // ephemeralOwner
            0, 0, 0, 9,                   // dataLength
            0, 0, 0, 10,                  // numChildren
            0, 0, 0, 0, 0, 0, 0, 11,      // pzxid
        ];
        assert_eq!(&out[..], expected);

        // exists on a missing node: NoNode (-101), header only.
        let mut out = BytesMut::new();
        let hdr = ReplyHeader {
            xid: 2,
            zxid: 5,
            err: -101,
        };
        encode_reply(&mut out, &hdr, &Response::Stat(st));
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 16,
            0, 0, 0, 2,
            0, 0, 0, 0, 0, 0, 0, 5,
            0xff, 0xff, 0xff, 0x9b,
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn notification_bytes() {
        let mut out = BytesMut::new();
        encode_notification(
            &mut out,
            &WatcherEvent {
                event_type: EventType::NodeDataChanged,
                state: keeper_state::SYNC_CONNECTED,
                path: "/a".into(),
            },
        );
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 30,
            0xff, 0xff, 0xff, 0xff,                          // xid -1
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // zxid -1
            0, 0, 0, 0,                                      // err
            0, 0, 0, 3,                                      // NodeDataChanged
            0, 0, 0, 3,                                      // SyncConnected
            0, 0, 0, 2, b'/', b'a',
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn connect_response_bytes() {
        let mut out = BytesMut::new();
        encode_connect_response(
            &mut out,
            &ConnectResponse {
                protocol_version: 0,
                timeout: 30_000,
                session_id: 0x0100_0000_0000_0002,
                passwd: Bytes::from_static(&[0x11; 16]),
                read_only: false,
            },
        );
        let mut expected = vec![
            0, 0, 0, 37, // frame length
            0, 0, 0, 0, // protocolVersion
            0, 0, 0x75, 0x30, // timeOut 30000
            1, 0, 0, 0, 0, 0, 0, 2, // sessionId
            0, 0, 0, 16, // passwd length
        ];
        expected.extend_from_slice(&[0x11; 16]);
        expected.push(0); // readOnly
        assert_eq!(&out[..], &expected[..]);
    }

    #[test]
    fn multi_request_bytes() {
        let mut out = BytesMut::new();
        encode_request(
            &mut out,
            &RequestHeader { xid: 5, op: 14 },
            &Request::Multi(vec![MultiOp::Check(CheckVersionRequest {
                path: "/a".into(),
                version: 3,
            })]),
        );
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 36,
            0, 0, 0, 5, 0, 0, 0, 14,                 // RequestHeader
            0, 0, 0, 13, 0, 0xff, 0xff, 0xff, 0xff,  // MultiHeader{check, false, -1}
            0, 0, 0, 2, b'/', b'a', 0, 0, 0, 3,      // CheckVersionRequest
            0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff, // MultiHeader{-1, true, -1}
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn multi_reply_bytes() {
        let mut out = BytesMut::new();
        let hdr = ReplyHeader {
            xid: 3,
            zxid: 9,
            err: 0,
        };
        encode_reply(
            &mut out,
            &hdr,
            &Response::Multi(vec![MultiResult::Create("/a".into()), MultiResult::Delete]),
        );
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 49,
            0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0,     // ReplyHeader
            0, 0, 0, 1, 0, 0, 0, 0, 0,                          // {create, false, 0}
            0, 0, 0, 2, b'/', b'a',                             // CreateResponse
            0, 0, 0, 2, 0, 0, 0, 0, 0,                          // {delete, false, 0}
            0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff,  // {-1, true, -1}
        ];
        assert_eq!(&out[..], expected);

        // Error results: header {-1, false, err} then ErrorResponse{err}.
        let mut out = BytesMut::new();
        encode_reply(
            &mut out,
            &hdr,
            &Response::Multi(vec![
                MultiResult::Error(ErrorCode::Ok),
                MultiResult::Error(ErrorCode::NoNode),
            ]),
        );
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 51,
            0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0,
            0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0,     0, 0, 0, 0,
            0xff, 0xff, 0xff, 0xff, 0, 0xff, 0xff, 0xff, 0x9b,  0xff, 0xff, 0xff, 0x9b,
            0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff,
        ];
        assert_eq!(&out[..], expected);
    }

    #[test]
    fn multi_create_results_with_stat_are_typed_create2() {
        // ZooKeeper's FinalRequestProcessor turns create2/createContainer/createTTL results
        // into CreateResult(path, stat), whose type is create2 (15).
        let body = reply_body(
            &ReplyHeader {
                xid: 1,
                zxid: 1,
                err: 0,
            },
            &Response::Multi(vec![MultiResult::Create2("/x".into(), stat(1))]),
        );
        assert_eq!(&body[16..25], [0, 0, 0, 15, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn create_ttl_request_bytes_carry_the_ttl() {
        let body = request_body(
            &Request::Create(
                OpCode::CreateTtl,
                CreateRequest {
                    path: "/t".into(),
                    data: Bytes::new(),
                    acl: vec![],
                    flags: 5,
                    ttl: 1000,
                },
            ),
            2,
        );
        #[rustfmt::skip]
        let expected = [
            0, 0, 0, 2, 0, 0, 0, 21,
            0, 0, 0, 2, b'/', b't',   // path
            0, 0, 0, 0,               // data
            0, 0, 0, 0,               // acl
            0, 0, 0, 5,               // flags
            0, 0, 0, 0, 0, 0, 0x03, 0xe8, // ttl
        ];
        assert_eq!(&body[..], expected);
    }

    // ---- malformed input -----------------------------------------------------------

    #[test]
    fn every_truncated_request_is_an_error() {
        for req in all_requests() {
            let body = request_body(&req, 11);
            for cut in 0..body.len() {
                assert!(
                    decode_request(&body[..cut]).is_err(),
                    "{req:?} cut at {cut} of {}",
                    body.len()
                );
            }
        }
    }

    #[test]
    fn every_truncated_reply_is_an_error() {
        let hdr = ReplyHeader {
            xid: 4,
            zxid: 4,
            err: 0,
        };
        for (op, resp) in all_responses() {
            let body = reply_body(&hdr, &resp);
            for cut in 0..body.len() {
                assert!(
                    decode_reply(&body[..cut], op).is_err(),
                    "{op:?} cut at {cut} of {}",
                    body.len()
                );
            }
        }
        let mut out = BytesMut::new();
        encode_notification(
            &mut out,
            &WatcherEvent {
                event_type: EventType::NodeCreated,
                state: 3,
                path: "/n".into(),
            },
        );
        let body = only_frame(&mut out);
        for cut in 0..body.len() {
            assert!(decode_notification(&body[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn every_truncated_connect_is_an_error() {
        let req = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 1,
            timeout: 2,
            session_id: 3,
            passwd: Bytes::from_static(&[4; 16]),
            read_only: Some(false),
        };
        let mut out = BytesMut::new();
        encode_connect_request(&mut out, &req);
        let body = only_frame(&mut out);
        // Every cut but the one dropping only readOnly loses a required field.
        for cut in 0..body.len() - 1 {
            assert!(decode_connect_request(&body[..cut]).is_err(), "cut {cut}");
        }
        let resp = ConnectResponse {
            protocol_version: 0,
            timeout: 2,
            session_id: 3,
            passwd: Bytes::from_static(&[4; 16]),
            read_only: true,
        };
        encode_connect_response(&mut out, &resp);
        let body = only_frame(&mut out);
        for cut in 0..body.len() - 1 {
            assert!(decode_connect_response(&body[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn negative_lengths_in_requests() {
        // getData with path length -2.
        let body = spliced(&req_hdr(1, 4), &[0xff, 0xff, 0xff, 0xfe, 1]);
        assert_eq!(decode_request(&body), Err(DecodeError::NegativeLength(-2)));
        // A null path (-1) is legal jute and reads as "".
        let body = spliced(&req_hdr(1, 4), &[0xff, 0xff, 0xff, 0xff, 1]);
        assert_eq!(
            decode_request(&body).map(|(_, r)| r),
            Ok(Request::GetData(pw("", true)))
        );
        // setData with data length i32::MIN.
        let mut body = req_hdr(1, 5);
        body.extend_from_slice(&[0, 0, 0, 1, b'/']);
        body.extend_from_slice(&i32::MIN.to_be_bytes());
        assert_eq!(
            decode_request(&body),
            Err(DecodeError::NegativeLength(i32::MIN))
        );
        // create with an acl count of -5.
        let mut body = req_hdr(1, 1);
        body.extend_from_slice(&[0, 0, 0, 1, b'/', 0, 0, 0, 0]);
        body.extend_from_slice(&(-5i32).to_be_bytes());
        assert_eq!(decode_request(&body), Err(DecodeError::NegativeLength(-5)));
    }

    #[test]
    fn huge_lengths_in_requests() {
        let mut body = req_hdr(1, 5);
        body.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode_request(&body),
            Err(DecodeError::LengthOverLimit { .. })
        ));
        // Under the limit but past the end of the frame.
        let mut body = req_hdr(1, 4);
        body.extend_from_slice(&[0, 0x0f, 0, 0, b'/']);
        assert_eq!(
            decode_request(&body),
            Err(DecodeError::Truncated {
                needed: 0x0f0000,
                available: 1
            })
        );
        // Connect request with a 2 GiB password.
        let mut body = vec![0u8; 4 + 8 + 4 + 8];
        body.extend_from_slice(&[0x7f, 0xff, 0xff, 0xff]);
        assert!(matches!(
            decode_connect_request(&body),
            Err(DecodeError::LengthOverLimit { .. })
        ));
    }

    #[test]
    fn vector_counts_larger_than_the_bytes_left_in_requests() {
        // setWatches claiming a million data watches in a handful of bytes.
        let mut body = req_hdr(-8, 101);
        body.extend_from_slice(&7i64.to_be_bytes());
        body.extend_from_slice(&1_000_000i32.to_be_bytes());
        body.extend_from_slice(&[0; 12]);
        assert_eq!(
            decode_request(&body),
            Err(DecodeError::CountOverRemaining {
                count: 1_000_000,
                min_element_len: 4,
                remaining: 12
            })
        );
        // setACL with i32::MAX acls.
        let mut body = req_hdr(1, 7);
        body.extend_from_slice(&[0, 0, 0, 1, b'/']);
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        body.extend_from_slice(&[0; 4]);
        assert!(matches!(
            decode_request(&body),
            Err(DecodeError::CountOverRemaining { .. })
        ));
        // A reply too: getChildren claiming more children than bytes.
        let mut body = vec![0u8; 16];
        body.extend_from_slice(&100i32.to_be_bytes());
        body.extend_from_slice(&[0; 8]);
        assert!(matches!(
            decode_reply(&body, OpCode::GetChildren),
            Err(DecodeError::CountOverRemaining { count: 100, .. })
        ));
    }

    #[test]
    fn invalid_utf8_path() {
        let body = spliced(&req_hdr(1, 3), &[0, 0, 0, 3, b'/', 0xff, 0xfe, 0]);
        assert_eq!(decode_request(&body), Err(DecodeError::InvalidUtf8));
        // Overlong encoding of '/' is not valid UTF-8 either.
        let body = spliced(&req_hdr(1, 9), &[0, 0, 0, 2, 0xc0, 0xaf]);
        assert_eq!(decode_request(&body), Err(DecodeError::InvalidUtf8));
    }

    #[test]
    fn unknown_opcodes_carry_the_xid() {
        for op in [999, 10, 23, 108, -2, 0, -10, -1] {
            let body = spliced(&req_hdr(77, op), b"whatever");
            assert_eq!(
                decode_request(&body),
                Err(DecodeError::UnknownOpcode { xid: 77, op }),
                "op {op}"
            );
            assert_eq!(
                decode_request_header(&body),
                Ok(RequestHeader { xid: 77, op })
            );
        }
    }

    /// A multi/multiRead body: request header, one entry of `op_type` with `entry` as its
    /// record, then the terminator.
    fn multi_body(multi: i32, op_type: i32, entry: &[u8]) -> Vec<u8> {
        let mut body = req_hdr(12, multi);
        body.extend_from_slice(&op_type.to_be_bytes());
        body.extend_from_slice(&[0, 0xff, 0xff, 0xff, 0xff]);
        body.extend_from_slice(entry);
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 1, 0xff, 0xff, 0xff, 0xff]);
        body
    }

    #[test]
    fn multi_with_a_bad_op_type() {
        let path_watch = [0, 0, 0, 2, b'/', b'a', 0];
        let cases = [
            (14, 4),   // getData inside multi
            (14, 8),   // getChildren inside multi
            (14, 3),   // exists inside multi
            (14, 14),  // nested multi
            (14, 999), // unknown
            (14, -1),  // error type without done
            (22, 1),   // create inside multiRead
            (22, 13),  // check inside multiRead
            (22, 3),   // exists inside multiRead
            (22, 22),  // nested multiRead
        ];
        for (multi, op_type) in cases {
            let body = multi_body(multi, op_type, &path_watch);
            assert_eq!(
                decode_request(&body),
                Err(DecodeError::BadMultiHeader {
                    multi_op: multi,
                    op_type
                }),
                "multi {multi} op {op_type}"
            );
        }
        // The allowed ones decode.
        assert_eq!(
            decode_request(&multi_body(22, 4, &path_watch)).map(|(_, r)| r),
            Ok(Request::MultiRead(vec![MultiOp::GetData(pw("/a", false))]))
        );
    }

    #[test]
    fn multi_create_with_invalid_flags() {
        let create_entry = |flags: i32| {
            let mut e = vec![0, 0, 0, 2, b'/', b'a', 0, 0, 0, 0, 0, 0, 0, 0];
            e.extend_from_slice(&flags.to_be_bytes());
            e
        };
        for op_type in [1, 15, 19] {
            let body = multi_body(14, op_type, &create_entry(7));
            assert_eq!(decode_request(&body), Err(DecodeError::BadCreateFlags(7)));
            let body = multi_body(14, op_type, &create_entry(1));
            assert!(decode_request(&body).is_ok());
        }
        // createTTL is not checked at decode time (ZooKeeper defaults bad flags to
        // persistent there); the server validates it.
        let mut entry = create_entry(7);
        entry.extend_from_slice(&10i64.to_be_bytes());
        assert!(decode_request(&multi_body(14, 21, &entry)).is_ok());
    }

    #[test]
    fn multi_without_terminator_is_truncated() {
        let mut body = multi_body(14, 13, &[0, 0, 0, 2, b'/', b'a', 0, 0, 0, 1]);
        body.truncate(body.len() - 9);
        assert!(matches!(
            decode_request(&body),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn multi_reply_with_a_bad_result_type() {
        let mut body = vec![0u8; 16];
        body.extend_from_slice(&[0, 0, 0, 19, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode_reply(&body, OpCode::Multi),
            Err(DecodeError::BadMultiHeader {
                multi_op: 14,
                op_type: 19
            })
        );
        let mut body = vec![0u8; 16];
        body.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&(-9999i32).to_be_bytes());
        assert_eq!(
            decode_reply(&body, OpCode::Multi),
            Err(DecodeError::UnknownErrorCode(-9999))
        );
    }

    #[test]
    fn replies_with_trailing_bytes_are_rejected() {
        let hdr = ReplyHeader {
            xid: 1,
            zxid: 1,
            err: 0,
        };
        let mut body = reply_body(&hdr, &Response::Stat(stat(1))).to_vec();
        body.push(0);
        assert_eq!(
            decode_reply(&body, OpCode::Exists),
            Err(DecodeError::TrailingBytes(1))
        );
        let err_hdr = ReplyHeader { err: -101, ..hdr };
        let mut body = reply_body(&err_hdr, &Response::Empty).to_vec();
        body.extend_from_slice(&[1, 2]);
        assert_eq!(
            decode_reply(&body, OpCode::GetData),
            Err(DecodeError::TrailingBytes(2))
        );
    }

    #[test]
    fn requests_with_trailing_bytes_are_accepted_like_zookeeper() {
        let mut body = request_body(&Request::Sync("/s".into()), 3).to_vec();
        body.extend_from_slice(b"junk");
        assert_eq!(
            decode_request(&body).map(|(_, r)| r),
            Ok(Request::Sync("/s".into()))
        );
        // Ping with a stray body.
        let body = spliced(&req_hdr(-2, 11), &[1, 2, 3]);
        assert_eq!(decode_request(&body).map(|(_, r)| r), Ok(Request::Ping));
    }

    #[test]
    fn notification_decoder_checks_xid_and_event_type() {
        let hdr = ReplyHeader {
            xid: 5,
            zxid: -1,
            err: 0,
        };
        let body = reply_body(&hdr, &Response::Empty);
        assert_eq!(
            decode_notification(&body),
            Err(DecodeError::UnexpectedXid {
                expected: -1,
                found: 5
            })
        );
        let mut body = reply_body(&ReplyHeader { xid: -1, ..hdr }, &Response::Empty).to_vec();
        body.extend_from_slice(&[0, 0, 0, 9, 0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(
            decode_notification(&body),
            Err(DecodeError::UnknownEventType(9))
        );
    }

    #[test]
    fn reply_for_an_opcode_without_replies_is_an_error() {
        let body = reply_body(
            &ReplyHeader {
                xid: 6,
                zxid: 0,
                err: 0,
            },
            &Response::Empty,
        );
        assert_eq!(
            decode_reply(&body, OpCode::CreateSession),
            Err(DecodeError::UnknownOpcode { xid: 6, op: -10 })
        );
    }

    /// xorshift64*: deterministic noise for the never-panic checks.
    struct Noise(u64);

    impl Noise {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut noise = Noise(0x9e37_79b9_7f4a_7c15);
        let ops: Vec<OpCode> = all_responses().iter().map(|(op, _)| *op).collect();
        // Pure noise, with a plausible header so the body decoders get exercised.
        for _ in 0..20_000 {
            let len = (noise.next() % 64) as usize;
            let mut body: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
            if body.len() >= 8 {
                let op = ops[(noise.next() as usize) % ops.len()] as i32;
                body[4..8].copy_from_slice(&op.to_be_bytes());
            }
            let _ = decode_request(&body);
            let _ = decode_reply(&body, ops[(noise.next() as usize) % ops.len()]);
            let _ = decode_notification(&body);
            let _ = decode_connect_request(&body);
            let _ = decode_connect_response(&body);
        }
        // Valid frames with one to three bytes overwritten.
        let requests: Vec<Bytes> = all_requests().iter().map(|r| request_body(r, 1)).collect();
        let hdr = ReplyHeader {
            xid: 1,
            zxid: 1,
            err: 0,
        };
        let replies: Vec<(OpCode, Bytes)> = all_responses()
            .iter()
            .map(|(op, r)| (*op, reply_body(&hdr, r)))
            .collect();
        for round in 0..20_000 {
            let mut req = requests[round % requests.len()].to_vec();
            let (op, reply) = &replies[round % replies.len()];
            let mut reply = reply.to_vec();
            for _ in 0..1 + noise.next() % 3 {
                let i = (noise.next() as usize) % req.len();
                req[i] = noise.next() as u8;
                let j = (noise.next() as usize) % reply.len();
                reply[j] = noise.next() as u8;
            }
            let _ = decode_request(&req);
            let _ = decode_reply(&reply, *op);
        }
    }
}
