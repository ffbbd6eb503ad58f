//! Peer links on the quorum port (2888): the thin I/O under the leader's and the
//! follower's protocol code. Each link is a glommio TCP stream on the ordering executor
//! with an output buffer drained by a writer task, and a reader task that decodes jute
//! `QuorumPacket`s (back to back, no framing) and hands them to the ordering core's inbox.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::net::notify::Notify;
use crate::zab::wire::{QuorumDecoder, QuorumPacket};

/// Unsent bytes past which a peer counts as too slow and is dropped (a learner that
/// cannot keep up with the broadcast would otherwise grow the leader without bound).
pub const PEER_OUTPUT_MAX_BYTES: usize = 256 * 1024 * 1024;

/// Bytes made elsewhere (a SNAP stream serialized on a blocking thread), sent in their
/// place in the link's order once ready.
pub type LaterBytes = Pin<Box<dyn Future<Output = Bytes>>>;

/// The sending half of a peer link.
pub struct PeerOut {
    /// The next bytes to write.
    buf: RefCell<BytesMut>,
    /// After `buf`, in order: bytes still being made (taken out while the writer waits for
    /// them), each with what was queued behind it meanwhile.
    later: RefCell<VecDeque<(Option<LaterBytes>, BytesMut)>>,
    wake: Notify,
    closed: Cell<bool>,
    fd: i32,
}

impl PeerOut {
    /// Queues a packet. Returns false when the link is closed or its queued packets are over
    /// [`PEER_OUTPUT_MAX_BYTES`] (the link is then closed).
    pub fn send(&self, packet: &QuorumPacket) -> bool {
        if self.closed.get() {
            return false;
        }
        let mut later = self.later.borrow_mut();
        let queued = match later.back_mut() {
            Some((_, behind)) => {
                packet.encode(behind);
                self.buf.borrow().len() + later.iter().map(|(_, b)| b.len()).sum::<usize>()
            }
            None => {
                let mut buf = self.buf.borrow_mut();
                packet.encode(&mut buf);
                buf.len()
            }
        };
        drop(later);
        let over = queued > PEER_OUTPUT_MAX_BYTES;
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

    /// Queues raw bytes that another thread is making (the SNAP stream between two
    /// packets): what is sent afterwards waits behind them. Not counted against
    /// [`PEER_OUTPUT_MAX_BYTES`] (a snapshot is as large as the tree).
    pub fn send_later(&self, bytes: LaterBytes) {
        if !self.closed.get() {
            self.later
                .borrow_mut()
                .push_back((Some(bytes), BytesMut::new()));
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
        later: RefCell::new(VecDeque::new()),
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
        // Bytes being made: sends meanwhile queue behind them (the entry stays until they
        // are written), and go out after them.
        let making = out.later.borrow_mut().front_mut().map(|(f, _)| f.take());
        if let Some(making) = making {
            if let Some(making) = making {
                let bytes = making.await;
                if !out.closed.get() {
                    if let Err(e) = writer.write_all(&bytes).await {
                        log::info!("peer link write failed: {e}");
                        out.closed.set(true);
                    }
                }
            }
            if let Some((_, behind)) = out.later.borrow_mut().pop_front() {
                // `buf` stayed empty: every send went behind a `later` entry.
                *out.buf.borrow_mut() = behind;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zab::wire::packet;
    use std::time::Duration;

    #[test]
    fn bytes_made_elsewhere_go_out_in_their_place_and_hold_what_follows() {
        let got = glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let listener = glommio::net::TcpListener::bind("127.0.0.1:0").unwrap();
                let addr = listener.local_addr().unwrap();
                let (client, server) =
                    futures_lite::future::zip(TcpStream::connect(addr), listener.accept()).await;
                let (out, _reader) = split(client.unwrap());
                out.send(&QuorumPacket::new(packet::SNAP, 7));
                // Ready only after the packets below were queued.
                out.send_later(Box::pin(async {
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                    Bytes::from_static(b"STREAM")
                }));
                out.send(&QuorumPacket::new(packet::NEWLEADER, 8));
                out.send_later(Box::pin(async { Bytes::from_static(b"MORE") }));
                out.send(&QuorumPacket::new(packet::UPTODATE, 9));
                let mut server = server.unwrap();
                let mut expected = BytesMut::new();
                QuorumPacket::new(packet::SNAP, 7).encode(&mut expected);
                expected.extend_from_slice(b"STREAM");
                QuorumPacket::new(packet::NEWLEADER, 8).encode(&mut expected);
                expected.extend_from_slice(b"MORE");
                QuorumPacket::new(packet::UPTODATE, 9).encode(&mut expected);
                let mut got = vec![0u8; expected.len()];
                server.read_exact(&mut got).await.unwrap();
                out.close();
                (got, expected.to_vec())
            })
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(got.0, got.1);
    }
}
