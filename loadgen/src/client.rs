//! One ZooKeeper client connection (one session), speaking the wire protocol through the
//! server crate's codec.
//!
//! After the handshake the socket is non-blocking: the owner queues requests with
//! [`Conn::send`], writes them with [`Conn::flush`], and, when [`wait`] says the socket is
//! readable, collects replies and watch notifications with [`Conn::read_events`]. ZooKeeper
//! answers the requests of one session in the order they were sent, so the requests in
//! flight are a FIFO queue; a reply that does not match the oldest one breaks the
//! connection (that would be a server bug worth seeing). [`Conn::call`] and
//! [`Conn::pipeline`] are blocking helpers for setup, cleanup and the special workloads.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use zkrs::proto::codec::{
    decode_connect_response, decode_notification, decode_reply, decode_reply_header,
    encode_connect_request, encode_request,
};
use zkrs::proto::frame::{FrameDecoder, FrameError};
use zkrs::proto::{
    xid, Acl, ConnectRequest, DecodeError, Id, OpCode, ReplyHeader, Request, RequestHeader,
    Response, WatcherEvent,
};

/// Largest reply frame we accept. Bigger than ZooKeeper's 1 MB `jute.maxbuffer` because
/// cleanup lists directories that may hold many nodes.
pub const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;
/// Reads per [`Conn::read_events`] call, so one busy connection cannot starve the others.
const READS_PER_CALL: usize = 16;
const WRITES_PER_CALL: usize = 16;
const READ_CHUNK: usize = 16 * 1024;

/// `ZooDefs.Ids.OPEN_ACL_UNSAFE`: world:anyone with every permission.
pub fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: zkrs::proto::perms::ALL,
        id: Id {
            scheme: "world".to_string(),
            id: "anyone".to_string(),
        },
    }]
}

#[derive(Debug)]
pub enum ClientError {
    Io(io::Error),
    Frame(FrameError),
    Decode(DecodeError),
    /// The server broke the protocol (e.g. a reply out of order).
    Protocol(String),
    /// The server answered the handshake with session id 0 (no session).
    SessionRefused,
    /// A blocking helper ran out of time; says what it was waiting for.
    Timeout(String),
    /// The server closed the connection.
    Closed,
    /// The name did not resolve to an address.
    BadAddress(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "i/o error: {e}"),
            ClientError::Frame(e) => write!(f, "bad frame: {e}"),
            ClientError::Decode(e) => write!(f, "undecodable reply: {e:?}"),
            ClientError::Protocol(m) => write!(f, "protocol error: {m}"),
            ClientError::SessionRefused => write!(f, "the server refused the session"),
            ClientError::Timeout(what) => write!(f, "timed out waiting for {what}"),
            ClientError::Closed => write!(f, "the server closed the connection"),
            ClientError::BadAddress(a) => write!(f, "cannot resolve `{a}`"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}
impl From<FrameError> for ClientError {
    fn from(e: FrameError) -> Self {
        ClientError::Frame(e)
    }
}
impl From<DecodeError> for ClientError {
    fn from(e: DecodeError) -> Self {
        ClientError::Decode(e)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    pub session_timeout: Duration,
    pub connect_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            session_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// What a connection hands back from [`Conn::read_events`].
#[derive(Debug)]
pub enum Event<T> {
    /// The reply to the request sent with `tag`.
    Reply {
        tag: T,
        header: ReplyHeader,
        response: Response,
    },
    /// A reply that did not decode as the answer to its request (the connection stays
    /// usable: framing was intact).
    BadReply {
        tag: T,
        error: DecodeError,
    },
    Notification(WatcherEvent),
}

struct InFlight<T> {
    xid: i32,
    op: OpCode,
    tag: T,
}

/// One session. `T` is whatever the owner wants back with each reply.
pub struct Conn<T> {
    stream: TcpStream,
    session_id: i64,
    negotiated_timeout: Duration,
    frames: FrameDecoder,
    read_buf: BytesMut,
    write_buf: BytesMut,
    /// Requests sent (or queued in `write_buf`) and not yet answered, oldest first.
    in_flight: VecDeque<InFlight<T>>,
    /// Invariant: > 0; wraps back to 1 (xids <= 0 are reserved).
    next_xid: i32,
    last_send: Instant,
    /// The xid of our closeSession request, once sent.
    closing_xid: Option<i32>,
    /// The server answered our closeSession.
    close_acknowledged: bool,
}

impl<T> Conn<T> {
    /// Opens a TCP connection to `addr` (host:port) and creates a session.
    pub fn connect(addr: &str, options: &ConnectOptions) -> Result<Conn<T>, ClientError> {
        let socket_addr = addr
            .to_socket_addrs()
            .map_err(|_| ClientError::BadAddress(addr.to_string()))?
            .next()
            .ok_or_else(|| ClientError::BadAddress(addr.to_string()))?;
        let stream = TcpStream::connect_timeout(&socket_addr, options.connect_timeout)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(options.connect_timeout))?;
        stream.set_write_timeout(Some(options.connect_timeout))?;
        let mut conn = Conn {
            stream,
            session_id: 0,
            negotiated_timeout: options.session_timeout,
            frames: FrameDecoder::new(MAX_FRAME_LEN),
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            write_buf: BytesMut::with_capacity(READ_CHUNK),
            in_flight: VecDeque::new(),
            next_xid: 1,
            last_send: Instant::now(),
            closing_xid: None,
            close_acknowledged: false,
        };
        conn.handshake(options)?;
        conn.stream.set_read_timeout(None)?;
        conn.stream.set_write_timeout(None)?;
        conn.stream.set_nonblocking(true)?;
        Ok(conn)
    }

    fn handshake(&mut self, options: &ConnectOptions) -> Result<(), ClientError> {
        let timeout_ms = i32::try_from(options.session_timeout.as_millis()).unwrap_or(i32::MAX);
        let request = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            timeout: timeout_ms,
            session_id: 0,
            passwd: Bytes::from_static(&[0u8; 16]),
            read_only: Some(false),
        };
        let mut out = BytesMut::new();
        encode_connect_request(&mut out, &request);
        self.stream.write_all(&out)?;
        let deadline = Instant::now() + options.connect_timeout;
        let body = loop {
            if let Some(body) = self.frames.decode(&mut self.read_buf)? {
                break body;
            }
            if Instant::now() >= deadline {
                return Err(ClientError::Timeout("the connect response".into()));
            }
            let mut chunk = [0u8; READ_CHUNK];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.read_buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ClientError::Timeout("the connect response".into()))
                }
                Err(e) => return Err(e.into()),
            }
        };
        let response = decode_connect_response(&body)?;
        if response.session_id == 0 || response.timeout <= 0 {
            return Err(ClientError::SessionRefused);
        }
        self.session_id = response.session_id;
        self.negotiated_timeout = Duration::from_millis(response.timeout as u64);
        Ok(())
    }

    pub fn session_id(&self) -> i64 {
        self.session_id
    }

    pub fn negotiated_timeout(&self) -> Duration {
        self.negotiated_timeout
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn wants_write(&self) -> bool {
        !self.write_buf.is_empty()
    }

    fn take_xid(&mut self) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if self.next_xid == i32::MAX {
            1
        } else {
            self.next_xid + 1
        };
        xid
    }

    /// Queues a request; [`Conn::flush`] writes it. Returns its xid.
    pub fn send(&mut self, request: &Request, tag: T) -> i32 {
        let xid = self.take_xid();
        let op = request.op_code();
        let header = RequestHeader { xid, op: op as i32 };
        encode_request(&mut self.write_buf, &header, request);
        self.in_flight.push_back(InFlight { xid, op, tag });
        self.last_send = Instant::now();
        xid
    }

    /// When a ping is due: a third of the session timeout after the last send, as the
    /// Java client does, so an idle session does not expire.
    pub fn ping_due(&self) -> Instant {
        self.last_send + self.negotiated_timeout / 3
    }

    pub fn ping_if_due(&mut self, now: Instant) {
        if now >= self.ping_due() {
            let header = RequestHeader {
                xid: xid::PING,
                op: OpCode::Ping as i32,
            };
            encode_request(&mut self.write_buf, &header, &Request::Ping);
            self.last_send = now;
        }
    }

    /// Writes as much of the queued bytes as the socket takes without blocking.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        for _ in 0..WRITES_PER_CALL {
            if self.write_buf.is_empty() {
                break;
            }
            match self.stream.write(&self.write_buf) {
                Ok(0) => return Err(ClientError::Closed),
                Ok(n) => self.write_buf.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Reads what the socket has (a bounded amount) and appends the complete replies and
    /// notifications to `events`. An error means the connection is unusable.
    pub fn read_events(&mut self, events: &mut Vec<Event<T>>) -> Result<(), ClientError> {
        let mut chunk = [0u8; READ_CHUNK];
        for _ in 0..READS_PER_CALL {
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    self.decode_frames(events)?;
                    return Err(ClientError::Closed);
                }
                Ok(n) => {
                    self.read_buf.extend_from_slice(&chunk[..n]);
                    self.decode_frames(events)?;
                    if n < chunk.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    fn decode_frames(&mut self, events: &mut Vec<Event<T>>) -> Result<(), ClientError> {
        while let Some(body) = self.frames.decode(&mut self.read_buf)? {
            let header = decode_reply_header(&body)?;
            match header.xid {
                xid::NOTIFICATION => events.push(Event::Notification(decode_notification(&body)?)),
                // Pings are not in `in_flight`; auth and setWatches are never sent.
                xid::PING | xid::AUTH | xid::SET_WATCHES => {}
                reply_xid if Some(reply_xid) == self.closing_xid => self.close_acknowledged = true,
                reply_xid => {
                    let Some(oldest) = self.in_flight.pop_front() else {
                        return Err(ClientError::Protocol(format!(
                            "reply with xid {reply_xid} while no request is in flight"
                        )));
                    };
                    if oldest.xid != reply_xid {
                        let expected = oldest.xid;
                        self.in_flight.push_front(oldest);
                        return Err(ClientError::Protocol(format!(
                            "reply with xid {reply_xid} but the oldest request in flight has xid {expected}"
                        )));
                    }
                    events.push(match decode_reply(&body, oldest.op) {
                        Ok((header, response)) => Event::Reply {
                            tag: oldest.tag,
                            header,
                            response,
                        },
                        Err(error) => Event::BadReply {
                            tag: oldest.tag,
                            error,
                        },
                    });
                }
            }
        }
        Ok(())
    }

    /// The tags of every request still unanswered (after a failure), oldest first.
    pub fn take_in_flight(&mut self) -> Vec<T> {
        self.in_flight.drain(..).map(|f| f.tag).collect()
    }

    /// Waits (bounded by `deadline`) until the socket is readable or writable as needed,
    /// then flushes and reads.
    fn turn(
        &mut self,
        deadline: Instant,
        events: &mut Vec<Event<T>>,
        what: &str,
    ) -> Result<(), ClientError> {
        self.flush()?;
        let now = Instant::now();
        if now >= deadline {
            return Err(ClientError::Timeout(what.to_string()));
        }
        let mut fds = [poll_fd(self.fd(), self.wants_write())];
        wait(&mut fds, deadline - now)?;
        if fds[0].revents & libc::POLLOUT != 0 {
            self.flush()?;
        }
        if fds[0].revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
            self.read_events(events)?;
        }
        Ok(())
    }

    /// Sends requests from `requests`, keeping at most `window` in flight, and hands each
    /// reply to `on_reply` (notifications are dropped). Bounded by `deadline`.
    pub fn pipeline<I, F>(
        &mut self,
        mut requests: I,
        window: usize,
        deadline: Instant,
        mut on_reply: F,
    ) -> Result<(), ClientError>
    where
        I: Iterator<Item = (Request, T)>,
        F: FnMut(T, ReplyHeader, Response) -> Result<(), ClientError>,
    {
        let window = window.max(1);
        let mut events = Vec::new();
        let mut exhausted = false;
        loop {
            while !exhausted && self.in_flight.len() < window {
                match requests.next() {
                    Some((request, tag)) => {
                        self.send(&request, tag);
                    }
                    None => exhausted = true,
                }
            }
            if exhausted && self.in_flight.is_empty() {
                return Ok(());
            }
            self.turn(deadline, &mut events, "pipelined replies")?;
            for event in events.drain(..) {
                match event {
                    Event::Reply {
                        tag,
                        header,
                        response,
                    } => on_reply(tag, header, response)?,
                    Event::BadReply { error, .. } => return Err(ClientError::Decode(error)),
                    Event::Notification(_) => {}
                }
            }
        }
    }

    /// Sends one request and waits for its reply. Earlier requests must all be answered.
    /// Notifications that arrive meanwhile go to `notifications`.
    pub fn call_collecting(
        &mut self,
        request: &Request,
        tag: T,
        timeout: Duration,
        notifications: &mut Vec<WatcherEvent>,
    ) -> Result<(ReplyHeader, Response), ClientError> {
        if !self.in_flight.is_empty() {
            return Err(ClientError::Protocol(
                "call() with other requests in flight".into(),
            ));
        }
        let deadline = Instant::now() + timeout;
        self.send(request, tag);
        let mut events = Vec::new();
        loop {
            self.turn(deadline, &mut events, "a reply")?;
            let mut answer = None;
            for event in events.drain(..) {
                match event {
                    Event::Reply {
                        header, response, ..
                    } => answer = Some((header, response)),
                    Event::BadReply { error, .. } => return Err(ClientError::Decode(error)),
                    Event::Notification(n) => notifications.push(n),
                }
            }
            if let Some(answer) = answer {
                return Ok(answer);
            }
        }
    }

    /// Blocks until the socket delivers events or `deadline` passes; returns how many.
    pub fn poll_events(
        &mut self,
        deadline: Instant,
        events: &mut Vec<Event<T>>,
    ) -> Result<usize, ClientError> {
        let before = events.len();
        match self.turn(deadline, events, "events") {
            Ok(()) | Err(ClientError::Timeout(_)) => Ok(events.len() - before),
            Err(e) => Err(e),
        }
    }
}

impl<T: Default> Conn<T> {
    pub fn call(
        &mut self,
        request: &Request,
        timeout: Duration,
    ) -> Result<(ReplyHeader, Response), ClientError> {
        let mut ignored = Vec::new();
        self.call_collecting(request, T::default(), timeout, &mut ignored)
    }
}

impl<T> Conn<T> {
    /// Closes the session (see [`close_all`]); true if the server acknowledged.
    pub fn close(self, timeout: Duration) -> bool {
        close_all(vec![self], timeout) == 1
    }

    /// Queues a closeSession request; requests still in flight are forgotten.
    fn start_close(&mut self) {
        self.in_flight.clear();
        let xid = self.take_xid();
        let header = RequestHeader {
            xid,
            op: OpCode::CloseSession as i32,
        };
        encode_request(&mut self.write_buf, &header, &Request::CloseSession);
        self.closing_xid = Some(xid);
    }
}

/// Closes sessions with a closeSession request each (so their ephemeral nodes go at once,
/// not at session expiry), waits at most `timeout` for the answers, then closes the
/// sockets. Returns how many sessions the server acknowledged closing.
pub fn close_all<T>(mut conns: Vec<Conn<T>>, timeout: Duration) -> usize {
    let deadline = Instant::now() + timeout;
    for conn in conns.iter_mut() {
        conn.start_close();
        let _ = conn.flush();
    }
    let mut open: Vec<usize> = (0..conns.len()).collect();
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(conns.len());
    let mut events: Vec<Event<T>> = Vec::new();
    while !open.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        fds.clear();
        fds.extend(
            open.iter()
                .map(|&i| poll_fd(conns[i].fd(), conns[i].wants_write())),
        );
        if wait(&mut fds, deadline - now).is_err() {
            break;
        }
        let mut done = vec![false; open.len()];
        for (k, fd) in fds.iter().enumerate() {
            if fd.revents == 0 {
                continue;
            }
            let conn = &mut conns[open[k]];
            let broken = conn.flush().is_err() || conn.read_events(&mut events).is_err();
            events.clear();
            done[k] = broken || conn.close_acknowledged;
        }
        let mut k = 0;
        open.retain(|_| {
            let keep = !done[k];
            k += 1;
            keep
        });
    }
    let acknowledged = conns.iter().filter(|c| c.close_acknowledged).count();
    for conn in &conns {
        let _ = conn.stream.shutdown(std::net::Shutdown::Both);
    }
    acknowledged
}

pub fn poll_fd(fd: RawFd, want_write: bool) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN | if want_write { libc::POLLOUT } else { 0 },
        revents: 0,
    }
}

/// Waits until one of `fds` is ready or `timeout` passes, with nanosecond resolution
/// (ppoll), so open-loop requests go out close to their intended time. Returns the number
/// of ready descriptors (0 on timeout or signal).
pub fn wait(fds: &mut [libc::pollfd], timeout: Duration) -> io::Result<usize> {
    let timeout = timeout.min(Duration::from_secs(3600));
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: fds is a valid slice of pollfd for its whole length; ts lives across the
    // call; a null sigmask leaves the signal mask alone.
    let rc = unsafe {
        libc::ppoll(
            fds.as_mut_ptr(),
            fds.len() as libc::nfds_t,
            &ts,
            std::ptr::null(),
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(rc as usize)
}

/// Asks the kernel to wake this thread's timers within 1 us instead of the default 50 us
/// slack, so open-loop send times are kept precisely. Harmless if refused.
pub fn tighten_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes an integer argument and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use zkrs::proto::codec::encode_connect_response;
    use zkrs::proto::frame::write_frame;
    use zkrs::proto::ConnectResponse;

    /// A fake server that answers the handshake, then replies to two getData requests in
    /// the wrong order.
    #[test]
    fn out_of_order_reply_is_a_protocol_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).unwrap();
            let mut out = BytesMut::new();
            encode_connect_response(
                &mut out,
                &ConnectResponse {
                    protocol_version: 0,
                    timeout: 4000,
                    session_id: 77,
                    passwd: Bytes::from_static(&[0u8; 16]),
                    read_only: false,
                },
            );
            s.write_all(&out).unwrap();
            // Wait for both exists requests (19 bytes each framed), then answer xid 2
            // first, as an error reply (header only).
            let mut total = 0;
            while total < 38 {
                let n = s.read(&mut buf[total..]).unwrap();
                assert!(n > 0, "client hung up");
                total += n;
            }
            let mut out = BytesMut::new();
            write_frame(&mut out, |w| {
                w.write_i32(2);
                w.write_i64(5);
                w.write_i32(-101);
            });
            s.write_all(&out).unwrap();
            std::thread::sleep(Duration::from_millis(200));
        });
        let mut conn: Conn<u32> = Conn::connect(&addr, &ConnectOptions::default()).unwrap();
        assert_eq!(conn.session_id(), 77);
        assert_eq!(conn.negotiated_timeout(), Duration::from_millis(4000));
        let get = |p: &str| {
            Request::Exists(zkrs::proto::PathWatchRequest {
                path: p.to_string(),
                watch: false,
            })
        };
        conn.send(&get("/a"), 10);
        conn.send(&get("/b"), 11);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut events = Vec::new();
        let outcome = loop {
            match conn.poll_events(deadline, &mut events) {
                Ok(_) if Instant::now() < deadline => continue,
                other => break other,
            }
        };
        let message = match outcome {
            Err(ClientError::Protocol(m)) => m,
            other => panic!("expected a protocol error, got {other:?}"),
        };
        assert!(
            message.contains("xid 2") && message.contains("xid 1"),
            "{message}"
        );
        assert_eq!(conn.take_in_flight(), vec![10, 11]);
        server.join().unwrap();
    }
}
