//! Framing: every ZooKeeper packet is a 4-byte big-endian length, then that many bytes.
//!
//! A ZooKeeper 3.8 server closes the connection on a negative length or one above
//! `jute.maxbuffer` (`NIOServerCnxn.readLength`); a zero length is a legal (empty) frame.
//! Note: on a connection that has not sent its connect request yet, ZooKeeper first checks
//! whether the 4 length bytes are a four-letter word (`ruok`, `stat`, ...); that check, if
//! wanted, belongs to the caller before it calls [`FrameDecoder::decode`].

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::jute::JuteWriter;

/// Size of the length prefix.
pub const FRAME_HEADER_LEN: usize = 4;

/// Why the byte stream cannot be framed; the caller closes the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FrameError {
    NegativeLength(i32),
    TooLong { len: usize, max: usize },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FrameError::NegativeLength(len) => write!(f, "negative frame length {len}"),
            FrameError::TooLong { len, max } => {
                write!(f, "frame length {len} above the maximum {max}")
            }
        }
    }
}

impl std::error::Error for FrameError {}

/// Splits length-prefixed frames off the front of a receive buffer.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    max_frame_len: usize,
}

impl FrameDecoder {
    /// `max_frame_len` bounds the body (without the prefix); ZooKeeper uses `jute.maxbuffer`.
    pub fn new(max_frame_len: usize) -> Self {
        FrameDecoder { max_frame_len }
    }

    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }

    /// Takes one complete frame body off the front of `buf`, or returns `Ok(None)` and leaves
    /// `buf` untouched when the frame is not complete yet. Never reserves memory: the caller's
    /// read loop grows `buf`, and a valid length is at most `max_frame_len`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, FrameError> {
        let Some(prefix) = buf.get(..FRAME_HEADER_LEN) else {
            return Ok(None);
        };
        let mut len_bytes = [0u8; FRAME_HEADER_LEN];
        len_bytes.copy_from_slice(prefix);
        let len = i32::from_be_bytes(len_bytes);
        let len = usize::try_from(len).map_err(|_| FrameError::NegativeLength(len))?;
        if len > self.max_frame_len {
            return Err(FrameError::TooLong {
                len,
                max: self.max_frame_len,
            });
        }
        if buf.len() - FRAME_HEADER_LEN < len {
            return Ok(None);
        }
        buf.advance(FRAME_HEADER_LEN);
        Ok(Some(buf.split_to(len).freeze()))
    }
}

/// Appends one complete frame to `out`: a length placeholder, the body `write_body` writes,
/// then the length patched in.
pub fn write_frame(out: &mut BytesMut, write_body: impl FnOnce(&mut JuteWriter)) {
    let start = out.len();
    out.put_i32(0);
    write_body(&mut JuteWriter::new(out));
    let body_len = out.len() - start - FRAME_HEADER_LEN;
    debug_assert!(
        body_len <= i32::MAX as usize,
        "frame body {body_len} too long"
    );
    let body_len = i32::try_from(body_len).unwrap_or(i32::MAX);
    out[start..start + FRAME_HEADER_LEN].copy_from_slice(&body_len.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut out = BytesMut::new();
        write_frame(&mut out, |w| w.write_raw(body));
        out.to_vec()
    }

    #[test]
    fn write_frame_prefixes_the_length() {
        assert_eq!(framed(b"abc"), [0, 0, 0, 3, b'a', b'b', b'c']);
        assert_eq!(framed(b""), [0, 0, 0, 0]);
        // Appends after existing content.
        let mut out = BytesMut::from(&b"xy"[..]);
        write_frame(&mut out, |w| w.write_i32(7));
        assert_eq!(&out[..], [b'x', b'y', 0, 0, 0, 4, 0, 0, 0, 7]);
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let whole = framed(b"hello");
        let mut dec = FrameDecoder::new(100);
        for cut in 0..whole.len() {
            let mut buf = BytesMut::from(&whole[..cut]);
            assert_eq!(dec.decode(&mut buf), Ok(None), "cut at {cut}");
            assert_eq!(&buf[..], &whole[..cut], "buffer untouched at {cut}");
        }
        let mut buf = BytesMut::from(&whole[..]);
        assert_eq!(dec.decode(&mut buf), Ok(Some(Bytes::from_static(b"hello"))));
        assert!(buf.is_empty());
    }

    #[test]
    fn byte_by_byte_feeding_yields_each_frame_once() {
        let mut stream = framed(b"one");
        stream.extend(framed(b""));
        stream.extend(framed(b"three"));
        let mut dec = FrameDecoder::new(100);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for byte in stream {
            buf.put_u8(byte);
            while let Some(frame) = dec.decode(&mut buf).unwrap() {
                got.push(frame);
            }
        }
        assert_eq!(got, [&b"one"[..], b"", b"three"]);
        assert!(buf.is_empty());
    }

    #[test]
    fn several_frames_in_one_buffer() {
        let mut stream = framed(b"a");
        stream.extend(framed(b"bb"));
        stream.extend(&framed(b"ccc")[..5]); // third frame incomplete
        let mut buf = BytesMut::from(&stream[..]);
        let mut dec = FrameDecoder::new(100);
        assert_eq!(dec.decode(&mut buf), Ok(Some(Bytes::from_static(b"a"))));
        assert_eq!(dec.decode(&mut buf), Ok(Some(Bytes::from_static(b"bb"))));
        assert_eq!(dec.decode(&mut buf), Ok(None));
        assert_eq!(&buf[..], [0, 0, 0, 3, b'c']);
        buf.put_slice(b"cc");
        assert_eq!(dec.decode(&mut buf), Ok(Some(Bytes::from_static(b"ccc"))));
        assert_eq!(dec.decode(&mut buf), Ok(None));
    }

    #[test]
    fn negative_length_is_an_error() {
        let mut dec = FrameDecoder::new(100);
        let mut buf = BytesMut::from(&(-1i32).to_be_bytes()[..]);
        assert_eq!(dec.decode(&mut buf), Err(FrameError::NegativeLength(-1)));
        let mut buf = BytesMut::from(&i32::MIN.to_be_bytes()[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(FrameError::NegativeLength(i32::MIN))
        );
    }

    #[test]
    fn oversized_length_is_an_error_before_the_body_arrives() {
        let mut dec = FrameDecoder::new(16);
        let mut buf = BytesMut::from(&17i32.to_be_bytes()[..]);
        let capacity_before = buf.capacity();
        assert_eq!(
            dec.decode(&mut buf),
            Err(FrameError::TooLong { len: 17, max: 16 })
        );
        assert_eq!(buf.capacity(), capacity_before);
        let mut buf = BytesMut::from(&i32::MAX.to_be_bytes()[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Err(FrameError::TooLong {
                len: i32::MAX as usize,
                max: 16
            })
        );
        // Exactly the maximum is fine.
        let mut buf = BytesMut::from(&framed(&[7; 16])[..]);
        assert_eq!(dec.decode(&mut buf), Ok(Some(Bytes::from(vec![7u8; 16]))));
        assert_eq!(
            FrameError::TooLong { len: 17, max: 16 }.to_string(),
            "frame length 17 above the maximum 16"
        );
    }
}
