//! SASL authentication of client connections (ZooKeeper's `sasl` request, opcode 102) and
//! the authentication settings around it.
//!
//! Facts from Apache ZooKeeper 3.8: `ZooKeeperServer.processSasl` (the reply, AuthFailed or
//! SessionClosedRequireSaslAuth and closing on failure, `zookeeper.allowSaslFailedClients`,
//! `zookeeper.superUser[.*]`), `SaslServerCallbackHandler` (the `Server` JAAS section's
//! `user_<name>="<password>"` options, `zookeeper.SASLAuthenticationProvider.superPassword`),
//! `AuthenticationHelper` (`enforce.auth.enabled`, `enforce.auth.schemes`,
//! `sessionRequireClientSASLAuth`), `SASLAuthenticationProvider` (the `sasl` ACL scheme).
//!
//! Only DIGEST-MD5 is served ([`digest_md5`]). A `Server` section whose login module is
//! Kerberos's (`Krb5LoginModule`) makes every SASL request fail with AuthFailed and a log
//! line saying GSSAPI is not supported.

pub mod digest_md5;
pub mod jaas;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use digest_md5::{DigestMd5Server, Step};

pub const SCHEME_SASL: &str = "sasl";
/// The class that registers the `sasl` ACL scheme (`authProvider.N=` this).
pub const SASL_PROVIDER_CLASS: &str = "org.apache.zookeeper.server.auth.SASLAuthenticationProvider";
pub const DIGEST_LOGIN_MODULE: &str = "org.apache.zookeeper.server.auth.DigestLoginModule";

/// The authentication settings of a server (zoo.cfg keys, or `-D` flags in
/// `SERVER_JVMFLAGS`/`JVMFLAGS`; see `config.rs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    /// `java.security.auth.login.config`.
    pub login_config: Option<PathBuf>,
    /// `zookeeper.sasl.serverconfig`: the JAAS section (default `Server`).
    pub server_section: String,
    /// `zookeeper.superUser` and `zookeeper.superUser.*`: SASL ids granted `super`.
    pub super_users: Vec<String>,
    /// `zookeeper.SASLAuthenticationProvider.superPassword`: the password of user `super`.
    pub super_password: Option<String>,
    /// `zookeeper.allowSaslFailedClients`.
    pub allow_failed_clients: bool,
    /// Some `authProvider.N` names SASLAuthenticationProvider: `sasl` ACLs are valid.
    pub sasl_acl_scheme: bool,
    /// The schemes a session must hold one of (empty: no enforcement). From
    /// `enforce.auth.enabled` + `enforce.auth.schemes`, or `sessionRequireClientSASLAuth`
    /// (or `requireClientAuthScheme=sasl`), which mean `[sasl]`.
    pub enforce_schemes: Vec<String>,
    /// The server's SASL mechanism, from the JAAS file (None: no SASL configured).
    pub server: Option<Arc<SaslServerConfig>>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            login_config: None,
            server_section: "Server".to_string(),
            super_users: Vec::new(),
            super_password: None,
            allow_failed_clients: false,
            sasl_acl_scheme: false,
            enforce_schemes: Vec::new(),
            server: None,
        }
    }
}

impl AuthConfig {
    /// `AuthenticationHelper.isSaslAuthRequired`.
    pub fn sasl_required(&self) -> bool {
        self.enforce_schemes.iter().any(|s| s == SCHEME_SASL)
    }

    /// `isSaslSuperUser`.
    pub fn is_super_user(&self, id: &str) -> bool {
        !id.is_empty() && self.super_users.iter().any(|u| u == id)
    }

    /// Whether a session holding ids of `schemes` passes the enforcement.
    pub fn enforcement_passes<'a>(&self, mut schemes: impl Iterator<Item = &'a str>) -> bool {
        self.enforce_schemes.is_empty()
            || schemes.any(|s| self.enforce_schemes.iter().any(|e| e == s))
    }

    /// The password of `user` for DIGEST-MD5 (SaslServerCallbackHandler's lookups).
    pub fn password(&self, user: &str) -> Option<String> {
        let server = self.server.as_deref()?;
        if user == "super" {
            if let Some(pw) = &self.super_password {
                return Some(pw.clone());
            }
        }
        match &server.mechanism {
            Mechanism::DigestMd5 { users } => users.get(user).cloned(),
            Mechanism::Unsupported { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    /// `user_<name>="<password>"` options of the section.
    DigestMd5 { users: HashMap<String, String> },
    /// A section whose login module zkrs cannot serve (Kerberos): every SASL request fails.
    Unsupported { module: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslServerConfig {
    pub mechanism: Mechanism,
}

/// Reads the JAAS file and builds the server mechanism from `section`; None when the file
/// has no such section (ZooKeeper's ServerCnxnFactory.configureSaslLogin then serves without
/// SASL: it refuses to start only when the file cannot be read or parsed). An error carries
/// the line it is about, when there is one.
pub fn load_server_config(
    path: &Path,
    section: &str,
) -> Result<Option<SaslServerConfig>, (Option<usize>, String)> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| (None, format!("cannot read the JAAS file: {e}")))?;
    let file = jaas::parse(&text).map_err(|e| (Some(e.line), e.message))?;
    if !file.sections.contains_key(section) {
        return Ok(None);
    }
    server_config_from(&file, section)
        .map(Some)
        .map_err(|e| (None, e))
}

/// The mechanism `section` of a parsed JAAS file configures.
pub fn server_config_from(
    file: &jaas::JaasFile,
    section: &str,
) -> Result<SaslServerConfig, String> {
    let Some(entries) = file.sections.get(section) else {
        return Err(format!(
            "no JAAS configuration section named '{section}' (zookeeper.sasl.serverconfig)"
        ));
    };
    // SaslServerCallbackHandler collects user_ options of every entry of the section.
    let mut users = HashMap::new();
    let mut kerberos = None;
    for entry in entries {
        if entry.module.contains("Krb5LoginModule") {
            kerberos = Some(entry.module.clone());
        }
        for (key, value) in &entry.options {
            if let Some(user) = key.strip_prefix("user_") {
                users.insert(user.to_string(), value.clone());
            }
        }
    }
    if let Some(module) = kerberos {
        return Ok(SaslServerConfig {
            mechanism: Mechanism::Unsupported { module },
        });
    }
    Ok(SaslServerConfig {
        mechanism: Mechanism::DigestMd5 { users },
    })
}

/// `KerberosName`'s validity, which `SASLAuthenticationProvider.isValid` uses for ACL ids:
/// an id containing `@` must be `name[/host]@realm` (no further `/` or `@`).
pub fn is_valid_sasl_id(id: &str) -> bool {
    if !id.contains('@') {
        return true;
    }
    let Some((principal, realm)) = id.split_once('@') else {
        return true;
    };
    let ok_part = |s: &str| !s.is_empty() && !s.contains('/') && !s.contains('@');
    let principal_ok = match principal.split_once('/') {
        Some((name, host)) => ok_part(name) && ok_part(host),
        None => ok_part(principal),
    };
    principal_ok && ok_part(realm)
}

/// A fresh DIGEST-MD5 nonce: 24 random bytes, base64 (no quotes or commas).
pub fn new_nonce() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 24];
    if getrandom::getrandom(&mut bytes).is_err() {
        // No system randomness: fall back to hashing the time and a per-process counter.
        use std::hash::{BuildHasher, Hasher};
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos()),
            );
            let v = h.finish().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_section_users_and_kerberos() {
        let f = jaas::parse(
            "Server { org.apache.zookeeper.server.auth.DigestLoginModule required user_bob=\"pw\" user_super=admin; };\n\
             Krb { com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true; };",
        )
        .unwrap();
        let c = server_config_from(&f, "Server").unwrap();
        let Mechanism::DigestMd5 { users } = &c.mechanism else {
            panic!()
        };
        assert_eq!(users["bob"], "pw");
        assert_eq!(users["super"], "admin");
        assert!(matches!(
            server_config_from(&f, "Krb").unwrap().mechanism,
            Mechanism::Unsupported { .. }
        ));
        assert!(server_config_from(&f, "Other")
            .unwrap_err()
            .contains("'Other'"));
        let auth = AuthConfig {
            server: Some(Arc::new(c)),
            super_password: Some("sp".into()),
            ..AuthConfig::default()
        };
        assert_eq!(auth.password("bob").as_deref(), Some("pw"));
        assert_eq!(auth.password("super").as_deref(), Some("sp"));
        assert_eq!(auth.password("eve"), None);
    }

    #[test]
    fn sasl_id_validity() {
        for ok in ["bob", "a/b/c", "zk/host@REALM", "bob@REALM", ""] {
            assert!(is_valid_sasl_id(ok), "{ok}");
        }
        for bad in ["a@b@c", "@REALM", "bob@", "a/b/c@R"] {
            assert!(!is_valid_sasl_id(bad), "{bad}");
        }
    }

    #[test]
    fn nonces_differ() {
        let a = new_nonce();
        assert_ne!(a, new_nonce());
        assert!(!a.contains('"') && !a.contains(','));
    }

    #[test]
    fn enforcement() {
        let mut auth = AuthConfig::default();
        assert!(auth.enforcement_passes(["ip"].into_iter()));
        auth.enforce_schemes = vec!["sasl".into(), "digest".into()];
        assert!(!auth.enforcement_passes(["ip"].into_iter()));
        assert!(auth.enforcement_passes(["ip", "digest"].into_iter()));
        assert!(auth.sasl_required());
    }
}
