//! ACL checks and authentication schemes (world, auth, digest, ip, super).
//!
//! Architecture Invariant: pure functions of their arguments; no configuration is read here
//! (the super digest comes in as an argument).
//!
//! Facts from Apache ZooKeeper 3.8: `ZooKeeperServer.checkACL`, `processPacket` (auth),
//! `PrepRequestProcessor.fixupACL`, `auth/DigestAuthenticationProvider`,
//! `auth/IPAuthenticationProvider`, `auth/ProviderRegistry`. The providers registered by
//! default are `ip` and `digest`; `world` is handled inline by `checkACL` and `fixupACL`,
//! `auth` by `fixupACL`, and `super` ids (granted by a super digest) bypass every check.
//! `x509` ids come from a TLS client certificate (`crate::tls`): as with 3.8's
//! `authProvider.x509=...X509AuthenticationProvider` (always on here), `x509` ACL entries
//! are valid and match the connection's certificate subject DN exactly. There is no
//! provider for `super`, `auth` or `sasl` unless configured; `sasl`
//! (`SASLAuthenticationProvider`, registered by `authProvider.N`) comes in as a flag to
//! [`expand_and_validate_acl`]; [`check`] matches `sasl` entries against the `sasl` ids a
//! connection gains from SASL (which it can only hold when SASL is configured).

use std::collections::HashSet;
use std::net::IpAddr;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use sha1::{Digest, Sha1};

use crate::proto::{Acl, ErrorCode, Id};

pub const SCHEME_WORLD: &str = "world";
pub const SCHEME_AUTH: &str = "auth";
pub const SCHEME_DIGEST: &str = "digest";
pub const SCHEME_IP: &str = "ip";
pub const SCHEME_SUPER: &str = "super";
pub const SCHEME_SASL: &str = "sasl";
/// A TLS client certificate's subject DN (ZooKeeper's X509AuthenticationProvider); the id
/// is granted by the handshake (`crate::tls`), never by `addauth`.
pub const SCHEME_X509: &str = "x509";
/// The only id of the `world` scheme.
pub const WORLD_ANYONE: &str = "anyone";

/// `user:base64(sha1("user:password"))` for a `user:password` string.
///
/// As 3.8's `DigestAuthenticationProvider.generateDigest`: the user is the text before the
/// first `:`, or the whole string when it has none; the hash covers the whole string.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password
        .split_once(':')
        .map_or(user_password, |(user, _)| user);
    let hash = Sha1::digest(user_password.as_bytes());
    format!("{user}:{}", BASE64.encode(hash))
}

/// The `ip` id ZooKeeper gives a connection from `addr` (every connection holds one from
/// its start, as 3.8's `NIOServerCnxn`/`NettyServerCnxn` constructors add it).
///
/// The id text is Java's `InetAddress.getHostAddress()`: dotted decimal for IPv4 and for
/// IPv4-mapped IPv6 addresses (Java turns those into `Inet4Address`), and eight
/// uncompressed lowercase hex groups for other IPv6 addresses (`0:0:0:0:0:0:0:1`, not `::1`).
/// Java would append a `%scope` to a scoped link-local address; an `IpAddr` carries none.
pub fn ip_id(addr: &IpAddr) -> Id {
    let id = match addr.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let groups: Vec<String> = v6.segments().iter().map(|g| format!("{g:x}")).collect();
            groups.join(":")
        }
    };
    Id {
        scheme: SCHEME_IP.to_owned(),
        id,
    }
}

/// An `addauth` request: scheme and auth bytes to the ids the session gains.
/// `super_digest` is the configured `user:base64sha1` super digest, if any; a match yields
/// `super:`-scheme id as well. Unknown schemes give AuthFailed.
///
/// Without the connection's address the `ip` scheme cannot be served and gives AuthFailed;
/// use [`authenticate_from`] to match ZooKeeper there. Details on [`authenticate_from`].
pub fn authenticate(
    scheme: &str,
    auth: &[u8],
    super_digest: Option<&str>,
) -> Result<Vec<Id>, ErrorCode> {
    authenticate_from(None, scheme, auth, super_digest)
}

/// An `addauth` request from a connection at `remote`, as 3.8's `processPacket` and auth
/// providers handle it:
///
/// - `digest`: the auth bytes are decoded as text (malformed UTF-8 becomes U+FFFD, as Java's
///   `new String(bytes)`), and the session gains `digest:<digest_id(text)>`. It never fails:
///   text without a `:` is accepted too (the whole text is the user), as in 3.8. When the
///   id equals `super_digest` the session also gains `super:` (empty id). Returned in the
///   order `[digest, super]`.
/// - `ip`: the auth bytes are ignored; the session gains [`ip_id`] of `remote` (which it
///   already holds from its connection, so nothing changes: ids are a set). AuthFailed when
///   `remote` is `None`.
/// - any other scheme (`world`, `auth`, `super`, `sasl`, unknown): AuthFailed, as 3.8 has no
///   provider for them. (3.8 then also closes the connection after the reply.)
///
/// The session must keep its ids as a set: adding an id it already holds changes nothing.
pub fn authenticate_from(
    remote: Option<&IpAddr>,
    scheme: &str,
    auth: &[u8],
    super_digest: Option<&str>,
) -> Result<Vec<Id>, ErrorCode> {
    match scheme {
        SCHEME_DIGEST => {
            let text = String::from_utf8_lossy(auth);
            let digest = digest_id(&text);
            let is_super = super_digest == Some(digest.as_str());
            let mut ids = vec![Id {
                scheme: SCHEME_DIGEST.to_owned(),
                id: digest,
            }];
            if is_super {
                ids.push(super_id());
            }
            Ok(ids)
        }
        SCHEME_IP => match remote {
            Some(addr) => Ok(vec![ip_id(addr)]),
            None => Err(ErrorCode::AuthFailed),
        },
        _ => Err(ErrorCode::AuthFailed),
    }
}

/// The id that lets a session past every ACL.
pub fn super_id() -> Id {
    Id {
        scheme: SCHEME_SUPER.to_owned(),
        id: String::new(),
    }
}

/// Ok when some entry of `acl` grants `perm` to one of `auth` (or `auth` holds super).
///
/// As 3.8's `ZooKeeperServer.checkACL`: an empty ACL allows everything; a `super` id in
/// `auth` allows everything; an entry counts when `entry.perms & perm != 0` and it is
/// `world:anyone`, or a `digest` entry equal to a `digest` id of `auth`, or an `ip` entry
/// (`a.b.c.d` or `a.b.c.d/bits`, IPv4 only as in 3.8) matching an `ip` id of `auth` by
/// prefix. Entries of other schemes (`auth`, `super`, `world` other than anyone, unknown)
/// never match. Denied: NoAuth.
pub fn check(acl: &[Acl], perm: i32, auth: &[Id]) -> Result<(), ErrorCode> {
    if acl.is_empty() || auth.iter().any(|id| id.scheme == SCHEME_SUPER) {
        return Ok(());
    }
    let granted = acl
        .iter()
        .filter(|entry| entry.perms & perm != 0)
        .any(|entry| entry_matches(&entry.id, auth));
    if granted {
        Ok(())
    } else {
        Err(ErrorCode::NoAuth)
    }
}

fn entry_matches(entry: &Id, auth: &[Id]) -> bool {
    match entry.scheme.as_str() {
        SCHEME_WORLD => entry.id == WORLD_ANYONE,
        SCHEME_DIGEST => auth
            .iter()
            .any(|id| id.scheme == SCHEME_DIGEST && id.id == entry.id),
        SCHEME_IP => auth
            .iter()
            .any(|id| id.scheme == SCHEME_IP && ip_matches(&id.id, &entry.id)),
        // SASLAuthenticationProvider.matches: the same id, or the SASL user "super".
        SCHEME_SASL => auth
            .iter()
            .any(|id| id.scheme == SCHEME_SASL && (id.id == entry.id || id.id == "super")),
        SCHEME_X509 => auth
            .iter()
            .any(|id| id.scheme == SCHEME_X509 && id.id == entry.id),
        _ => false,
    }
}

/// Checks and expands the ACL of a create or setACL, as 3.8's
/// `PrepRequestProcessor.fixupACL`:
///
/// - exact duplicates in `acl` are dropped first (first occurrence kept, order kept);
/// - an empty list is InvalidACL;
/// - `world:anyone` is kept; `world` with another id is InvalidACL;
/// - an `auth` entry (its id is ignored) becomes one entry with its perms per id of `auth`
///   whose scheme is an authenticated one (`digest`; not `ip`, not `super`), in `auth`'s
///   order; when there is none: InvalidACL;
/// - a `digest` entry is kept when its id is `user:hash` (Java's `id.split(":")` gives two
///   parts), else InvalidACL;
/// - an `ip` entry is kept when its id is `a.b.c.d` or `a.b.c.d/bits` with bits in 0..=32,
///   else InvalidACL (3.8 has no IPv6 ACLs);
/// - an `x509` entry is kept when its id reads as a DN (`k=v,k=v`, or empty), else
///   InvalidACL;
/// - a `sasl` entry, when `sasl_scheme` (SASLAuthenticationProvider registered), is kept
///   when its id is a valid Kerberos name (`sasl::is_valid_sasl_id`), else InvalidACL; and
///   `auth` entries then also expand to the session's `sasl` ids;
/// - any other scheme (`super`, unknown; `sasl` without the provider) is InvalidACL.
///
/// Perms are not checked (3.8 accepts any int). Duplicates made by the expansion stay, as
/// in 3.8.
pub fn expand_and_validate_acl_with(
    acl: &[Acl],
    auth: &[Id],
    sasl_scheme: bool,
) -> Result<Vec<Acl>, ErrorCode> {
    // A set, not 3.8's quadratic list scan: the list comes from the network.
    let mut seen: HashSet<&Acl> = HashSet::with_capacity(acl.len());
    let unique = acl.iter().filter(|entry| seen.insert(*entry));
    let mut expanded = Vec::with_capacity(acl.len());
    for entry in unique {
        let id = &entry.id;
        match id.scheme.as_str() {
            SCHEME_WORLD if id.id == WORLD_ANYONE => expanded.push(entry.clone()),
            SCHEME_AUTH => {
                let before = expanded.len();
                expanded.extend(
                    auth.iter()
                        .filter(|session_id| {
                            is_authenticated_scheme(&session_id.scheme)
                                || (sasl_scheme && session_id.scheme == SCHEME_SASL)
                        })
                        .map(|session_id| Acl {
                            perms: entry.perms,
                            id: session_id.clone(),
                        }),
                );
                if expanded.len() == before {
                    return Err(ErrorCode::InvalidAcl);
                }
            }
            SCHEME_DIGEST if digest_id_is_valid(&id.id) => expanded.push(entry.clone()),
            SCHEME_IP if ip_acl_is_valid(&id.id) => expanded.push(entry.clone()),
            SCHEME_SASL if sasl_scheme && crate::sasl::is_valid_sasl_id(&id.id) => {
                expanded.push(entry.clone())
            }
            SCHEME_X509 if x509_id_is_valid(&id.id) => expanded.push(entry.clone()),
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    if expanded.is_empty() {
        // Only reachable with an empty `acl`: every other path pushes or fails.
        return Err(ErrorCode::InvalidAcl);
    }
    Ok(expanded)
}

/// [`expand_and_validate_acl_with`] without the `sasl` scheme (3.8's default registry).
pub fn expand_and_validate_acl(acl: &[Acl], auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    expand_and_validate_acl_with(acl, auth, false)
}

/// Schemes whose provider answers `isAuthenticated() == true` in 3.8's default registry:
/// the ids an `auth` ACL entry expands to.
fn is_authenticated_scheme(scheme: &str) -> bool {
    scheme == SCHEME_DIGEST || scheme == SCHEME_X509
}

/// An `x509` ACL id must read as a distinguished name (3.8's `isValid` parses it with
/// `X500Principal`, which takes the empty name too): here, empty or comma-separated
/// `attribute=value` parts.
fn x509_id_is_valid(id: &str) -> bool {
    id.is_empty()
        || id.split(',').all(|part| {
            part.split_once('=')
                .is_some_and(|(k, _)| !k.trim().is_empty())
        })
}

/// 3.8's `DigestAuthenticationProvider.isValid`: Java's `id.split(":")` has 2 parts.
/// Java's split drops trailing empty parts, so `user:hash:` is valid and `user:` is not.
fn digest_id_is_valid(id: &str) -> bool {
    let mut parts: Vec<&str> = id.split(':').collect();
    while parts.last().is_some_and(|part| part.is_empty()) {
        parts.pop();
    }
    parts.len() == 2
}

/// 3.8's `IPAuthenticationProvider.isValid`.
fn ip_acl_is_valid(expr: &str) -> bool {
    parse_ip_acl(expr).is_some()
}

/// An ip ACL expression `a.b.c.d[/bits]` as (address, prefix bits).
fn parse_ip_acl(expr: &str) -> Option<(u32, u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((addr, bits)) => (addr, Some(bits)),
        None => (expr, None),
    };
    let addr = parse_ipv4(addr)?;
    let bits = match bits {
        None => 32,
        Some(bits) => {
            let bits = parse_java_int(bits)?;
            u32::try_from(bits).ok().filter(|bits| *bits <= 32)?
        }
    };
    Some((addr, bits))
}

/// 3.8's `IPAuthenticationProvider.matches(clientId, aclExpr)`: both IPv4, equal in the
/// first `bits` bits. An IPv6 client never matches.
fn ip_matches(client: &str, expr: &str) -> bool {
    let Some((acl_addr, bits)) = parse_ip_acl(expr) else {
        return false;
    };
    let Some(client_addr) = parse_ipv4(client) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    acl_addr & mask == client_addr & mask
}

/// 3.8's `v4addr2Bytes`: exactly four `.`-separated parts, each a Java int in 0..=255.
fn parse_ipv4(text: &str) -> Option<u32> {
    let mut octets = [0u8; 4];
    let mut parts = text.split('.');
    for octet in &mut octets {
        let value = parse_java_int(parts.next()?)?;
        *octet = u8::try_from(value).ok()?;
    }
    if parts.next().is_some() {
        return None;
    }
    Some(u32::from_be_bytes(octets))
}

/// Java's `Integer.parseInt(s)` for ASCII input: an optional `+` or `-`, then one or more
/// decimal digits, within i32 range. (Java also takes non-ASCII decimal digits; we do not.)
fn parse_java_int(text: &str) -> Option<i32> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value: i64 = 0;
    for b in digits.bytes() {
        value = value * 10 + i64::from(b - b'0');
        if value > i64::from(i32::MAX) + 1 {
            return None;
        }
    }
    let value = if negative { -value } else { value };
    i32::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::perms::{ADMIN, ALL, CREATE, DELETE, READ, WRITE};
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn id(scheme: &str, id: &str) -> Id {
        Id {
            scheme: scheme.to_owned(),
            id: id.to_owned(),
        }
    }

    fn acl(perms: i32, scheme: &str, ident: &str) -> Acl {
        Acl {
            perms,
            id: id(scheme, ident),
        }
    }

    const SUPER_TEST: &str = "super:D/InIHSb7yEEbrWz8b9l71RjZJU=";

    #[test]
    fn digest_known_values() {
        assert_eq!(digest_id("super:test"), SUPER_TEST);
        assert_eq!(
            digest_id("a:b:c"),
            format!("a:{}", BASE64.encode(Sha1::digest(b"a:b:c")))
        );
        // No ':' at all: the whole string is the user (3.8's split(":", 2)[0]).
        assert_eq!(
            digest_id("lonely"),
            format!("lonely:{}", BASE64.encode(Sha1::digest(b"lonely")))
        );
        assert!(digest_id("").starts_with(':'));
        // A 20-byte SHA-1 is 28 base64 chars with one '=' of padding.
        let hash = digest_id("bob:secret");
        let (user, b64) = hash.split_once(':').unwrap();
        assert_eq!(user, "bob");
        assert_eq!(b64.len(), 28);
        assert!(b64.ends_with('='));
    }

    #[test]
    fn authenticate_digest() {
        let ids = authenticate("digest", b"bob:secret", None).unwrap();
        assert_eq!(ids, vec![id("digest", &digest_id("bob:secret"))]);
        // A configured super digest that does not match changes nothing.
        let ids = authenticate("digest", b"bob:secret", Some(SUPER_TEST)).unwrap();
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn authenticate_super_digest() {
        let ids = authenticate("digest", b"super:test", Some(SUPER_TEST)).unwrap();
        assert_eq!(ids, vec![id("digest", SUPER_TEST), id("super", "")]);
        // Without the configuration, super:test is an ordinary digest user.
        let ids = authenticate("digest", b"super:test", None).unwrap();
        assert_eq!(ids, vec![id("digest", SUPER_TEST)]);
        // Wrong password.
        let ids = authenticate("digest", b"super:nope", Some(SUPER_TEST)).unwrap();
        assert_eq!(ids.len(), 1);
    }

    #[test]
    fn authenticate_digest_accepts_what_3_8_accepts() {
        let ids = authenticate("digest", b"nocolon", None).unwrap();
        assert_eq!(ids, vec![id("digest", &digest_id("nocolon"))]);
        let ids = authenticate("digest", b"u:\xff", None).unwrap();
        assert_eq!(ids, vec![id("digest", &digest_id("u:\u{fffd}"))]);
    }

    #[test]
    fn authenticate_other_schemes_fail() {
        for scheme in ["world", "auth", "super", "sasl", "x509", "", "DIGEST"] {
            assert_eq!(
                authenticate(scheme, b"a:b", Some(SUPER_TEST)),
                Err(ErrorCode::AuthFailed),
                "{scheme}"
            );
        }
        assert_eq!(
            authenticate("ip", b"10.0.0.1", None),
            Err(ErrorCode::AuthFailed)
        );
    }

    #[test]
    fn authenticate_ip_uses_the_connection_address() {
        let remote = IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3));
        let ids = authenticate_from(Some(&remote), "ip", b"192.168.0.1", None).unwrap();
        assert_eq!(ids, vec![id("ip", "10.1.2.3")]);
        // Other schemes behave as without an address.
        let ids = authenticate_from(Some(&remote), "digest", b"a:b", None).unwrap();
        assert_eq!(ids, vec![id("digest", &digest_id("a:b"))]);
        assert_eq!(
            authenticate_from(Some(&remote), "world", b"anyone", None),
            Err(ErrorCode::AuthFailed)
        );
    }

    #[test]
    fn ip_ids_are_javas_host_address() {
        assert_eq!(
            ip_id(&IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))),
            id("ip", "127.0.0.1")
        );
        assert_eq!(
            ip_id(&IpAddr::V6(Ipv6Addr::LOCALHOST)),
            id("ip", "0:0:0:0:0:0:0:1")
        );
        let v6: Ipv6Addr = "fe80::1:ABCD".parse().unwrap();
        assert_eq!(ip_id(&IpAddr::V6(v6)), id("ip", "fe80:0:0:0:0:0:1:abcd"));
        let mapped: Ipv6Addr = "::ffff:192.168.1.7".parse().unwrap();
        assert_eq!(ip_id(&IpAddr::V6(mapped)), id("ip", "192.168.1.7"));
    }

    #[test]
    fn empty_acl_allows_everything() {
        assert_eq!(check(&[], ALL, &[]), Ok(()));
        assert_eq!(check(&[], ADMIN, &[id("ip", "1.2.3.4")]), Ok(()));
    }

    #[test]
    fn world_anyone() {
        let open = [acl(READ | WRITE, "world", "anyone")];
        assert_eq!(check(&open, READ, &[]), Ok(()));
        assert_eq!(check(&open, WRITE, &[]), Ok(()));
        assert_eq!(check(&open, DELETE, &[]), Err(ErrorCode::NoAuth));
        assert_eq!(check(&open, ADMIN, &[]), Err(ErrorCode::NoAuth));
        // Perm sets overlap: any shared bit grants, as checkACL's `perms & perm != 0`.
        assert_eq!(check(&open, READ | ADMIN, &[]), Ok(()));
        // world with another id grants nothing.
        let odd = [acl(ALL, "world", "someone")];
        assert_eq!(check(&odd, READ, &[]), Err(ErrorCode::NoAuth));
    }

    #[test]
    fn super_allows_everything() {
        let closed = [acl(READ, "digest", &digest_id("bob:x"))];
        assert_eq!(check(&closed, ADMIN, &[id("super", "")]), Ok(()));
        assert_eq!(
            check(
                &closed,
                ADMIN,
                &[id("ip", "1.1.1.1"), id("super", "whatever")]
            ),
            Ok(())
        );
        assert_eq!(
            check(&closed, ADMIN, &[id("digest", &digest_id("bob:x"))]),
            Err(ErrorCode::NoAuth)
        );
    }

    #[test]
    fn digest_entries_match_equal_digest_ids() {
        let bob = digest_id("bob:secret");
        let entries = [acl(READ | CREATE, "digest", &bob)];
        assert_eq!(check(&entries, READ, &[id("digest", &bob)]), Ok(()));
        assert_eq!(
            check(&entries, CREATE, &[id("ip", "1.2.3.4"), id("digest", &bob)]),
            Ok(())
        );
        assert_eq!(
            check(&entries, WRITE, &[id("digest", &bob)]),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(
            check(&entries, READ, &[id("digest", &digest_id("bob:other"))]),
            Err(ErrorCode::NoAuth)
        );
        // Same id text under another scheme does not match.
        assert_eq!(
            check(&entries, READ, &[id("sasl", &bob)]),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(check(&entries, READ, &[]), Err(ErrorCode::NoAuth));
    }

    #[test]
    fn ip_entries_match_by_prefix() {
        let client = [id("ip", "10.1.2.3")];
        let yes = [
            "10.1.2.3",
            "10.1.2.3/32",
            "10.1.2.0/24",
            "10.0.0.0/8",
            "10.1.2.2/31",
            "0.0.0.0/0",
            "99.99.99.99/0",
            "+10.1.2.3",
            "010.001.002.003",
            "-0.1.2.3/0",
        ];
        for expr in yes {
            assert_eq!(
                check(&[acl(READ, "ip", expr)], READ, &client),
                Ok(()),
                "{expr}"
            );
        }
        let no = [
            "10.1.2.4",
            "10.1.3.0/24",
            "11.0.0.0/8",
            "10.1.2.4/31",
            "10.1.2.3/33",
            "10.1.2.3/-1",
            "10.1.2.3/",
            "10.1.2.3/8/8",
            "10.1.2",
            "10.1.2.3.4",
            "10.1.2.256",
            "10.1.2.-1",
            "10.1.2.",
            "",
            "::1",
            "host.example",
            "10.1.2.3 ",
        ];
        for expr in no {
            assert_eq!(
                check(&[acl(READ, "ip", expr)], READ, &client),
                Err(ErrorCode::NoAuth),
                "{expr}"
            );
        }
        // An IPv6 client never matches (3.8 parses IPv4 only).
        let v6 = [id("ip", "0:0:0:0:0:0:0:1")];
        assert_eq!(
            check(&[acl(READ, "ip", "0.0.0.0/0")], READ, &v6),
            Err(ErrorCode::NoAuth)
        );
        // The ip entry does not match a digest id with the same text.
        assert_eq!(
            check(
                &[acl(READ, "ip", "10.1.2.3")],
                READ,
                &[id("digest", "10.1.2.3")]
            ),
            Err(ErrorCode::NoAuth)
        );
    }

    #[test]
    fn x509_entries_match_the_certificate_dn() {
        let entries = [acl(READ, "x509", "CN=client,O=zkrs")];
        assert_eq!(
            check(&entries, READ, &[id("x509", "CN=client,O=zkrs")]),
            Ok(())
        );
        assert_eq!(
            check(&entries, READ, &[id("x509", "CN=other,O=zkrs")]),
            Err(ErrorCode::NoAuth)
        );
        let expanded =
            expand_and_validate_acl(&[acl(READ, "auth", "")], &[id("x509", "CN=c")]).unwrap();
        assert_eq!(expanded, vec![acl(READ, "x509", "CN=c")]);
    }

    #[test]
    fn entries_of_other_schemes_never_match() {
        let auth = [id("digest", "bob:x"), id("auth", ""), id("sasl", "bob")];
        for scheme in ["auth", "super", "sasl", "x509", "nonsense"] {
            let entries = [acl(ALL, scheme, "bob:x"), acl(ALL, scheme, "")];
            assert_eq!(
                check(&entries, READ, &auth),
                Err(ErrorCode::NoAuth),
                "{scheme}"
            );
        }
    }

    #[test]
    fn later_entries_can_grant() {
        let entries = [
            acl(READ, "digest", "alice:h"),
            acl(WRITE, "ip", "10.0.0.0/8"),
            acl(DELETE, "world", "anyone"),
        ];
        let auth = [id("ip", "10.9.9.9")];
        assert_eq!(check(&entries, READ, &auth), Err(ErrorCode::NoAuth));
        assert_eq!(check(&entries, WRITE, &auth), Ok(()));
        assert_eq!(check(&entries, DELETE, &auth), Ok(()));
        assert_eq!(check(&entries, ADMIN, &auth), Err(ErrorCode::NoAuth));
    }

    #[test]
    fn expand_keeps_valid_entries_in_order() {
        let input = vec![
            acl(ALL, "world", "anyone"),
            acl(READ, "digest", "bob:abc="),
            acl(READ, "ip", "10.0.0.0/8"),
            acl(WRITE, "ip", "1.2.3.4"),
        ];
        assert_eq!(expand_and_validate_acl(&input, &[]), Ok(input.clone()));
    }

    #[test]
    fn expand_removes_input_duplicates_only() {
        let open = acl(ALL, "world", "anyone");
        let bob = acl(READ, "digest", "bob:abc=");
        let input = vec![
            open.clone(),
            bob.clone(),
            open.clone(),
            acl(WRITE, "world", "anyone"),
            bob.clone(),
        ];
        assert_eq!(
            expand_and_validate_acl(&input, &[]),
            Ok(vec![open, bob, acl(WRITE, "world", "anyone")])
        );
        // Duplicates made by the expansion stay.
        let bob_id = id("digest", "bob:abc=");
        let input = vec![acl(READ, "auth", ""), acl(READ, "digest", "bob:abc=")];
        assert_eq!(
            expand_and_validate_acl(&input, std::slice::from_ref(&bob_id)),
            Ok(vec![
                acl(READ, "digest", "bob:abc="),
                acl(READ, "digest", "bob:abc=")
            ])
        );
    }

    #[test]
    fn expand_auth_to_the_authenticated_ids() {
        let session = [
            id("ip", "10.0.0.1"),
            id("digest", "bob:h1"),
            id("super", ""),
            id("digest", "alice:h2"),
        ];
        let input = vec![acl(ALL, "auth", "ignored"), acl(READ, "world", "anyone")];
        assert_eq!(
            expand_and_validate_acl(&input, &session),
            Ok(vec![
                acl(ALL, "digest", "bob:h1"),
                acl(ALL, "digest", "alice:h2"),
                acl(READ, "world", "anyone"),
            ])
        );
    }

    #[test]
    fn expand_auth_without_authenticated_ids_is_invalid() {
        let input = vec![acl(ALL, "auth", "")];
        assert_eq!(
            expand_and_validate_acl(&input, &[]),
            Err(ErrorCode::InvalidAcl)
        );
        // ip and super ids are not "authenticated" ids.
        let session = [id("ip", "10.0.0.1"), id("super", "")];
        assert_eq!(
            expand_and_validate_acl(&input, &session),
            Err(ErrorCode::InvalidAcl)
        );
        // Even when another entry is fine.
        let input = vec![acl(ALL, "world", "anyone"), acl(ALL, "auth", "")];
        assert_eq!(
            expand_and_validate_acl(&input, &session),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn expand_rejects_invalid_acls() {
        let invalid = [
            acl(ALL, "world", "everyone"),
            acl(ALL, "world", ""),
            acl(ALL, "digest", "bob"),
            acl(ALL, "digest", "bob:"),
            acl(ALL, "digest", "a:b:c"),
            acl(ALL, "digest", ""),
            acl(ALL, "digest", ":"),
            acl(ALL, "ip", "10.0.0"),
            acl(ALL, "ip", "10.0.0.0/33"),
            acl(ALL, "ip", "10.0.0.0/x"),
            acl(ALL, "ip", "::1"),
            acl(ALL, "ip", ""),
            acl(ALL, "super", ""),
            acl(ALL, "sasl", "bob"),
            acl(ALL, "x509", "bob"),
            acl(ALL, "x509", "CN=a,b"),
            acl(ALL, "nonsense", "x"),
            acl(ALL, "", ""),
        ];
        for entry in invalid {
            assert_eq!(
                expand_and_validate_acl(std::slice::from_ref(&entry), &[id("digest", "bob:h")]),
                Err(ErrorCode::InvalidAcl),
                "{entry:?}"
            );
        }
        assert_eq!(
            expand_and_validate_acl(&[], &[]),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn expand_accepts_what_javas_split_accepts() {
        for ident in ["bob:h", ":h", "bob:h:", "bob:h::"] {
            let input = vec![acl(READ, "digest", ident)];
            assert_eq!(
                expand_and_validate_acl(&input, &[]),
                Ok(input.clone()),
                "{ident}"
            );
        }
        // Perms are not validated.
        let input = vec![acl(0, "world", "anyone"), acl(-1, "ip", "1.2.3.4/0")];
        assert_eq!(expand_and_validate_acl(&input, &[]), Ok(input.clone()));
    }

    #[test]
    fn java_int_parsing() {
        assert_eq!(parse_java_int("0"), Some(0));
        assert_eq!(parse_java_int("+7"), Some(7));
        assert_eq!(parse_java_int("-7"), Some(-7));
        assert_eq!(parse_java_int("007"), Some(7));
        assert_eq!(parse_java_int("2147483647"), Some(i32::MAX));
        assert_eq!(parse_java_int("-2147483648"), Some(i32::MIN));
        assert_eq!(parse_java_int("2147483648"), None);
        assert_eq!(parse_java_int("99999999999999999999999"), None);
        for bad in ["", "+", "-", " 1", "1 ", "1a", "0x1", "++1", "١"] {
            assert_eq!(parse_java_int(bad), None, "{bad}");
        }
    }

    #[test]
    fn sasl_entries_with_the_provider() {
        let entry = acl(ALL, "sasl", "bob");
        // Without SASLAuthenticationProvider (3.8's default registry): InvalidACL.
        assert_eq!(
            expand_and_validate_acl(std::slice::from_ref(&entry), &[]),
            Err(ErrorCode::InvalidAcl)
        );
        assert_eq!(
            expand_and_validate_acl_with(std::slice::from_ref(&entry), &[], true),
            Ok(vec![entry.clone()])
        );
        assert_eq!(
            expand_and_validate_acl_with(&[acl(ALL, "sasl", "a@b@c")], &[], true),
            Err(ErrorCode::InvalidAcl)
        );
        // auth entries expand to sasl ids only with the provider.
        let session = [id("ip", "127.0.0.1"), id("sasl", "bob")];
        assert_eq!(
            expand_and_validate_acl_with(&[acl(READ, "auth", "")], &session, true),
            Ok(vec![acl(READ, "sasl", "bob")])
        );
        assert_eq!(
            expand_and_validate_acl_with(&[acl(READ, "auth", "")], &session, false),
            Err(ErrorCode::InvalidAcl)
        );
        // Matching: the same id, or the SASL user "super".
        assert_eq!(
            check(std::slice::from_ref(&entry), READ, &[id("sasl", "bob")]),
            Ok(())
        );
        assert_eq!(
            check(std::slice::from_ref(&entry), READ, &[id("sasl", "super")]),
            Ok(())
        );
        assert_eq!(
            check(std::slice::from_ref(&entry), READ, &[id("sasl", "alice")]),
            Err(ErrorCode::NoAuth)
        );
        assert_eq!(
            check(&[entry], READ, &[id("digest", "bob")]),
            Err(ErrorCode::NoAuth)
        );
    }
}
