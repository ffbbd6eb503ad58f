//! The DIGEST-MD5 SASL server mechanism (RFC 2831), as ZooKeeper's server runs it (the
//! JDK's `DigestMD5Server` created with protocol `zookeeper` and server name `zk-sasl-md5`):
//! one realm, `zk-sasl-md5`; qop `auth` only (no integrity or confidentiality layer);
//! `algorithm=md5-sess`; `charset=utf-8`.
//!
//! Steps: the client's first token is ignored (a DIGEST-MD5 client sends none); the server answers the challenge (realm,
//! a fresh nonce, qop, charset, algorithm). The client's digest-response is checked (the
//! nonce, `nc=00000001`, the digest-uri `zookeeper/zk-sasl-md5`, the realm, the response
//! value computed from the user's password) and answered with `rspauth=...`; the exchange is
//! then complete and the authorization id is the user name.
//!
//! Pure but for the nonce, which the caller passes in.

use md5::{Digest, Md5};

/// The realm and server name ZooKeeper uses for DIGEST-MD5 (`SecurityUtils`).
pub const REALM: &str = "zk-sasl-md5";
/// The digest-uri a ZooKeeper client sends: `<protocol>/<server name>`.
pub const DIGEST_URI: &str = "zookeeper/zk-sasl-md5";
/// The JDK refuses longer digest-responses ("Invalid digest response length").
pub const MAX_RESPONSE_LEN: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Nothing received yet.
    Start,
    /// The challenge with this nonce was sent.
    Challenged { nonce: String },
    /// Authenticated as this user.
    Complete,
    /// A step failed: every further token fails.
    Failed,
}

/// One connection's DIGEST-MD5 exchange.
#[derive(Debug, Clone)]
pub struct DigestMd5Server {
    state: State,
}

/// What a step gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send this challenge; more is expected.
    Continue(Vec<u8>),
    /// Send this (rspauth); the client is authenticated as `user`.
    Complete { response: Vec<u8>, user: String },
}

impl Default for DigestMd5Server {
    fn default() -> Self {
        Self::new()
    }
}

impl DigestMd5Server {
    pub fn new() -> Self {
        DigestMd5Server {
            state: State::Start,
        }
    }

    pub fn is_complete(&self) -> bool {
        self.state == State::Complete
    }

    /// Evaluates the client's token. `nonce` is used when a challenge is made (random,
    /// without quotes or commas); `password` looks a user's password up. An `Err` is the
    /// reason the exchange failed (the connection's SASL then fails, as a SaslException).
    pub fn step(
        &mut self,
        token: &[u8],
        nonce: impl FnOnce() -> String,
        password: impl FnOnce(&str) -> Option<String>,
    ) -> Result<Step, String> {
        let state = std::mem::replace(&mut self.state, State::Failed);
        match state {
            State::Start => {
                // As the JDK's DigestMD5Server (checked against ZooKeeper 3.8): an initial
                // response is not refused; the challenge is sent all the same.
                if !token.is_empty() {
                    log::info!(
                        "DIGEST-MD5: ignoring a {}-byte initial token (a GSSAPI client? only \
                         DIGEST-MD5 is served)",
                        token.len()
                    );
                }
                let nonce = nonce();
                let challenge = format!(
                    "realm=\"{REALM}\",nonce=\"{nonce}\",qop=\"auth\",charset=utf-8,algorithm=md5-sess"
                );
                self.state = State::Challenged { nonce };
                Ok(Step::Continue(challenge.into_bytes()))
            }
            State::Challenged { nonce } => {
                let (response, user) = check_response(token, &nonce, password)?;
                self.state = State::Complete;
                Ok(Step::Complete { response, user })
            }
            State::Complete => Err("DIGEST-MD5 authentication already completed".into()),
            State::Failed => Err("DIGEST-MD5 authentication failed earlier".into()),
        }
    }
}

/// Splits `k=v,k="v",...` (RFC 2831's `#` lists: empty elements and spaces allowed).
fn parse_directives(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| c.is_ascii_whitespace() || *c == ',')
        {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_ascii_whitespace() {
                break;
            }
            if c == ',' || c == '"' {
                return Err(format!("malformed directive near {key:?}"));
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            return Err(format!("directive {key:?} has no value"));
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '"' => {
                        closed = true;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some(c) => value.push(c),
                        None => break,
                    },
                    c => value.push(c),
                }
            }
            if !closed {
                return Err(format!("unterminated quoted value of {key:?}"));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim_end().to_string();
        }
        while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None | Some(',') => {}
            Some(_) => return Err(format!("garbage after the value of {key:?}")),
        }
        out.push((key.to_ascii_lowercase(), value));
    }
}

/// RFC 2831 2.1.2.1 as the JDK applies it with `charset=utf-8`: a string all of whose
/// characters fit ISO 8859-1 is hashed in ISO 8859-1, any other in UTF-8.
fn to_8859_1_or_utf8(s: &str) -> Vec<u8> {
    if s.chars().all(|c| (c as u32) <= 0xFF) {
        s.chars().map(|c| c as u8).collect()
    } else {
        s.as_bytes().to_vec()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The response value (RFC 2831 2.1.2.1) for `a2_prefix` "AUTHENTICATE" (the client's
/// response) or "" (the server's rspauth).
#[allow(clippy::too_many_arguments)]
pub fn response_value(
    user: &str,
    realm: &str,
    password: &str,
    nonce: &str,
    cnonce: &str,
    authzid: Option<&str>,
    nc: &str,
    qop: &str,
    digest_uri: &str,
    a2_prefix: &str,
) -> String {
    let mut inner = Md5::new();
    inner.update(to_8859_1_or_utf8(user));
    inner.update(b":");
    inner.update(to_8859_1_or_utf8(realm));
    inner.update(b":");
    inner.update(to_8859_1_or_utf8(password));
    let mut a1 = inner.finalize().to_vec();
    a1.extend_from_slice(format!(":{nonce}:{cnonce}").as_bytes());
    if let Some(authzid) = authzid {
        a1.push(b':');
        a1.extend_from_slice(authzid.as_bytes());
    }
    let ha1 = hex(&Md5::digest(&a1));
    let ha2 = hex(&Md5::digest(format!("{a2_prefix}:{digest_uri}").as_bytes()));
    hex(&Md5::digest(
        format!("{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}").as_bytes(),
    ))
}

fn check_response(
    token: &[u8],
    nonce: &str,
    password: impl FnOnce(&str) -> Option<String>,
) -> Result<(Vec<u8>, String), String> {
    if token.len() > MAX_RESPONSE_LEN {
        return Err(format!(
            "digest-response of {} bytes (at most {MAX_RESPONSE_LEN})",
            token.len()
        ));
    }
    let text = std::str::from_utf8(token).map_err(|_| "digest-response is not UTF-8")?;
    let mut fields: std::collections::HashMap<String, String> = Default::default();
    for (key, value) in parse_directives(text)? {
        if fields.insert(key.clone(), value).is_some() {
            return Err(format!("directive {key} given twice"));
        }
    }
    let get = |key: &str| {
        fields
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| format!("digest-response has no {key}"))
    };
    if let Some(charset) = fields.get("charset") {
        if !charset.eq_ignore_ascii_case("utf-8") {
            return Err(format!("unsupported charset {charset:?}"));
        }
    }
    let user = get("username")?;
    let client_nonce = get("nonce")?;
    if client_nonce != nonce {
        return Err("nonce mismatch".into());
    }
    let cnonce = get("cnonce")?;
    let nc = get("nc")?;
    if nc != "00000001" {
        return Err(format!("nonce-count {nc} (expected 00000001)"));
    }
    let qop = fields.get("qop").map_or("auth", String::as_str);
    if qop != "auth" {
        return Err(format!("qop {qop:?} was not offered (only auth)"));
    }
    let digest_uri = get("digest-uri")?;
    if !digest_uri.eq_ignore_ascii_case(DIGEST_URI) {
        return Err(format!(
            "mismatched digest-uri {digest_uri:?} (expected {DIGEST_URI})"
        ));
    }
    let realm = fields.get("realm").map_or("", String::as_str);
    if !realm.is_empty() && realm != REALM {
        return Err(format!("nonexistent realm {realm:?}"));
    }
    let response = get("response")?;
    let authzid = fields.get("authzid").map(String::as_str);
    let Some(password) = password(user) else {
        return Err(format!(
            "cannot acquire password for {user} in realm {REALM}"
        ));
    };
    let expected = response_value(
        user,
        realm,
        &password,
        nonce,
        cnonce,
        authzid,
        nc,
        qop,
        digest_uri,
        "AUTHENTICATE",
    );
    if !expected.eq_ignore_ascii_case(response) {
        return Err(format!("wrong password for {user}"));
    }
    let rspauth = response_value(
        user, realm, &password, nonce, cnonce, authzid, nc, qop, digest_uri, "",
    );
    Ok((format!("rspauth={rspauth}").into_bytes(), user.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2831 section 4's example, for the response value itself.
    #[test]
    fn rfc2831_example() {
        let v = response_value(
            "chris",
            "elwood.innosoft.com",
            "secret",
            "OA6MG9tEQGm2hh",
            "OA6MHXh6VqTrRk",
            None,
            "00000001",
            "auth",
            "imap/elwood.innosoft.com",
            "AUTHENTICATE",
        );
        assert_eq!(v, "d388dad90d4bbd760a152321f2143af7");
        let r = response_value(
            "chris",
            "elwood.innosoft.com",
            "secret",
            "OA6MG9tEQGm2hh",
            "OA6MHXh6VqTrRk",
            None,
            "00000001",
            "auth",
            "imap/elwood.innosoft.com",
            "",
        );
        assert_eq!(r, "ea40f60335c427b5527b84dbabcdfffd");
    }

    fn client_response(user: &str, password: &str, nonce: &str) -> String {
        let v = response_value(
            user,
            REALM,
            password,
            nonce,
            "cn",
            None,
            "00000001",
            "auth",
            DIGEST_URI,
            "AUTHENTICATE",
        );
        format!(
            "charset=utf-8,username=\"{user}\",realm=\"{REALM}\",nonce=\"{nonce}\",nc=00000001,\
             cnonce=\"cn\",digest-uri=\"{DIGEST_URI}\",maxbuf=65536,response={v},qop=auth"
        )
    }

    fn pw(user: &str) -> Option<String> {
        (user == "bob").then(|| "secret".to_string())
    }

    #[test]
    fn full_exchange() {
        let mut s = DigestMd5Server::new();
        let Step::Continue(challenge) = s.step(b"", || "N1".into(), pw).unwrap() else {
            panic!("challenge expected")
        };
        let challenge = String::from_utf8(challenge).unwrap();
        assert!(challenge.contains("nonce=\"N1\""), "{challenge}");
        assert!(challenge.contains("realm=\"zk-sasl-md5\""), "{challenge}");
        let step = s
            .step(
                client_response("bob", "secret", "N1").as_bytes(),
                || unreachable!(),
                pw,
            )
            .unwrap();
        let Step::Complete { response, user } = step else {
            panic!("complete expected")
        };
        assert_eq!(user, "bob");
        assert!(response.starts_with(b"rspauth="));
        assert!(s.is_complete());
        assert!(s.step(b"", || "x".into(), pw).is_err());
    }

    #[test]
    fn failures() {
        let bad = [
            client_response("bob", "wrong", "N1"),
            client_response("eve", "secret", "N1"),
            client_response("bob", "secret", "N2"),
            client_response("bob", "secret", "N1").replace("nc=00000001", "nc=00000002"),
            client_response("bob", "secret", "N1").replace(DIGEST_URI, "ldap/zk-sasl-md5"),
            client_response("bob", "secret", "N1").replace("qop=auth", "qop=auth-conf"),
            "garbage".to_string(),
            "username=\"bob\",username=\"bob\"".to_string(),
            "username=\"unterminated".to_string(),
            String::new(),
        ];
        for token in bad {
            let mut s = DigestMd5Server::new();
            s.step(b"", || "N1".into(), pw).unwrap();
            assert!(
                s.step(token.as_bytes(), || unreachable!(), pw).is_err(),
                "{token}"
            );
            assert!(!s.is_complete());
        }
        // An initial token is ignored (the JDK's server does not refuse it).
        let mut s = DigestMd5Server::new();
        assert!(matches!(
            s.step(b"\x60\x82kerberos", || "N".into(), pw),
            Ok(Step::Continue(_))
        ));
        let mut s = DigestMd5Server::new();
        s.step(b"", || "N1".into(), pw).unwrap();
        assert!(s.step(&[b'a'; 5000], || unreachable!(), pw).is_err());
        assert!(s.step(&[0xff, 0xfe], || unreachable!(), pw).is_err());
    }
}
