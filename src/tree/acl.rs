//! ACL checks and authentication schemes (world, auth, digest, ip, super).

use crate::proto::{Acl, ErrorCode, Id};

/// `user:base64(sha1("user:password"))` for a `user:password` string.
pub fn digest_id(user_password: &str) -> String {
    todo!()
}

/// An `addauth` request: scheme and auth bytes to the id the session gains.
/// `super_digest` is the configured `user:base64sha1` super digest, if any; a match yields
/// `super:`-scheme id as well. Unknown schemes and malformed auth give AuthFailed.
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    super_digest: Option<&str>,
) -> Result<Vec<Id>, ErrorCode> {
    todo!()
}

/// Ok when some entry of `acl` grants `perm` to one of `auth` (or `auth` holds super).
pub fn check(acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), ErrorCode> {
    todo!()
}
