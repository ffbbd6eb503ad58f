//! The ZooKeeper wire protocol: jute codec, frames, records.
//!
//! Architecture Invariant: pure. Never touches a socket; never trusts a length or a count
//! from the wire (every allocation is bounded by the bytes actually present).

pub mod codec;
pub mod frame;
pub mod jute;
pub mod types;

pub use codec::*;
pub use frame::{write_frame, FrameDecoder, FrameError, FRAME_HEADER_LEN};
pub use jute::{
    is_null_buffer, null_buffer, null_slice, DecodeError, JuteReader, JuteWriter,
    DEFAULT_MAX_FIELD_LEN, JUTE_MAX_BUFFER,
};
pub use types::*;
