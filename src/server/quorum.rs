//! Peer links on the quorum port (2888): the thin I/O under the leader's and the
//! follower's protocol code. Each link is a glommio TCP stream on the ordering executor
//! with an output buffer drained by a writer task, and a reader task that decodes jute
//! `QuorumPacket`s (back to back, no framing) and hands them to the ordering core's inbox.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::net::notify::Notify;
use crate::zab::wire::{QuorumDecoder, QuorumPacket};

/// Unsent bytes past which a peer counts as too slow and is dropped (a learner that
/// cannot keep up with the broadcast would otherwise grow the leader without bound).
pub const PEER_OUTPUT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// The sending half of a peer link.
pub struct PeerOut {
    buf: RefCell<BytesMut>,
    wake: Notify,
    closed: Cell<bool>,
    fd: i32,
}

impl PeerOut {
    /// Queues a packet. Returns false when the link is closed or its buffer is over
    /// [`PEER_OUTPUT_MAX_BYTES`] (the link is then closed).
    pub fn send(&self, packet: &QuorumPacket) -> bool {
        if self.closed.get() {
            return false;
        }
        let mut buf = self.buf.borrow_mut();
        packet.encode(&mut buf);
        let over = buf.len() > PEER_OUTPUT_MAX_BYTES;
        drop(buf);
        if over {
            log::warn!(
                "a peer is too slow (over {PEER_OUTPUT_MAX_BYTES} bytes unsent): dropping it"
            );
            self.close();
            return false;
        }
        self.wake.notify();
        true
    }

    /// Queues raw bytes (the SNAP stream between two packets).
    pub fn send_raw(&self, bytes: &[u8]) {
        if !self.closed.get() {
            self.buf.borrow_mut().extend_from_slice(bytes);
            self.wake.notify();
        }
    }

    pub fn close(&self) {
        if !self.closed.replace(true) {
            self.wake.notify();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.closed.get()
    }
}

/// Splits `stream` into a [`PeerOut`] (with its writer task spawned on this executor) and
/// the read half.
pub fn split(stream: TcpStream) -> (Rc<PeerOut>, futures_lite::io::ReadHalf<TcpStream>) {
    use std::os::fd::AsRawFd;
    let _ = stream.set_nodelay(true);
    let fd = stream.as_raw_fd();
    let (reader, writer) = futures_lite::io::split(stream);
    let out = Rc::new(PeerOut {
        buf: RefCell::new(BytesMut::with_capacity(64 * 1024)),
        wake: Notify::new(),
        closed: Cell::new(false),
        fd,
    });
    glommio::spawn_local(write_loop(out.clone(), writer)).detach();
    (out, reader)
}

async fn write_loop(out: Rc<PeerOut>, mut writer: futures_lite::io::WriteHalf<TcpStream>) {
    loop {
        let chunk = out.buf.borrow_mut().split().freeze();
        if !chunk.is_empty() {
            if let Err(e) = writer.write_all(&chunk).await {
                log::info!("peer link write failed: {e}");
                out.closed.set(true);
            }
            continue;
        }
        if out.closed.get() {
            let _ = writer.flush().await;
            // Wakes the reader's pending read too.
            // SAFETY: the fd belongs to the stream whose halves are alive in this task and
            // in the reader; shutdown does not close the descriptor.
            unsafe {
                libc::shutdown(out.fd, libc::SHUT_RDWR);
            }
            return;
        }
        out.wake.wait().await;
    }
}

/// Reads packets from a peer until the link fails or `out` is closed, calling `on_packet`
/// for each; returns why it ended.
pub async fn read_packets(
    reader: &mut futures_lite::io::ReadHalf<TcpStream>,
    buf: &mut BytesMut,
    out: &PeerOut,
    max_data_len: usize,
    mut on_packet: impl FnMut(QuorumPacket) -> bool,
) -> String {
    let mut decoder = QuorumDecoder::new(max_data_len);
    let mut scratch = vec![0u8; 64 * 1024];
    loop {
        loop {
            match decoder.decode(buf) {
                Ok(Some(packet)) => {
                    if !on_packet(packet) {
                        return "closed by us".into();
                    }
                }
                Ok(None) => break,
                Err(e) => return format!("bad packet: {e}"),
            }
        }
        if out.is_closed() {
            return "closed".into();
        }
        match reader.read(&mut scratch).await {
            Ok(0) => return "connection closed by the peer".into(),
            Ok(n) => buf.extend_from_slice(&scratch[..n]),
            Err(e) => return format!("read error: {e}"),
        }
    }
}

/// Reads exactly one packet (the handshake steps), within `timeout`.
pub async fn read_one(
    reader: &mut futures_lite::io::ReadHalf<TcpStream>,
    buf: &mut BytesMut,
    max_data_len: usize,
    timeout: std::time::Duration,
) -> Result<QuorumPacket, String> {
    let mut decoder = QuorumDecoder::new(max_data_len);
    let mut scratch = vec![0u8; 64 * 1024];
    let deadline = std::time::Instant::now() + timeout;
    loop {
        match decoder.decode(buf) {
            Ok(Some(packet)) => return Ok(packet),
            Ok(None) => {}
            Err(e) => return Err(format!("bad packet: {e}")),
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(format!("no packet within {timeout:?}"));
        }
        let read = glommio::timer::timeout(left, async {
            reader
                .read(&mut scratch)
                .await
                .map_err(glommio::GlommioError::from)
        })
        .await;
        match read {
            Ok(0) => return Err("connection closed by the peer".into()),
            Ok(n) => buf.extend_from_slice(&scratch[..n]),
            Err(e) => return Err(format!("read failed: {e}")),
        }
    }
}
