//! A znode's data in 16 bytes (a `Bytes` takes 32): empty without allocation, else one
//! shared allocation of exactly its bytes.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use bytes::Bytes;

/// A znode's data. Cloning shares it; [`Data::to_bytes`] lends it to a reply without
/// copying.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Data(Option<Arc<[u8]>>);

impl Data {
    /// The data as `Bytes` for a reply: shares this allocation (no copy).
    pub fn to_bytes(&self) -> Bytes {
        match &self.0 {
            Some(shared) => Bytes::from_owner(shared.clone()),
            None => Bytes::new(),
        }
    }
}

impl Deref for Data {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl AsRef<[u8]> for Data {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl From<&[u8]> for Data {
    fn from(bytes: &[u8]) -> Data {
        if bytes.is_empty() {
            Data(None)
        } else {
            Data(Some(Arc::from(bytes)))
        }
    }
}

impl From<&Bytes> for Data {
    fn from(bytes: &Bytes) -> Data {
        Data::from(&bytes[..])
    }
}

impl From<Bytes> for Data {
    fn from(bytes: Bytes) -> Data {
        Data::from(&bytes[..])
    }
}

impl From<&str> for Data {
    fn from(text: &str) -> Data {
        Data::from(text.as_bytes())
    }
}

impl PartialEq<[u8]> for Data {
    fn eq(&self, other: &[u8]) -> bool {
        **self == *other
    }
}

impl PartialEq<Bytes> for Data {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Data {
    /// As `Bytes` prints: `b"..."` with escapes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixteen_bytes_shared_without_copies() {
        assert_eq!(std::mem::size_of::<Data>(), 16);
        let empty = Data::from(&b""[..]);
        assert!(empty.0.is_none() && empty.is_empty());
        assert_eq!(empty.to_bytes(), Bytes::new());
        let data = Data::from(&Bytes::from_static(b"abc"));
        assert_eq!(&data[..], b"abc");
        let reply = data.to_bytes();
        assert_eq!(reply, Bytes::from_static(b"abc"));
        assert_eq!(
            reply.as_ptr(),
            data.as_ptr(),
            "the reply shares the node's bytes"
        );
        assert_eq!(data, Bytes::from_static(b"abc"));
        assert_eq!(format!("{data:?}"), "b\"abc\"");
    }
}
