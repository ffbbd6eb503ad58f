//! TLS on the client ports: `secureClientPort`, and the plain client port with
//! `client.portUnification=true`.
//!
//! Facts from Apache ZooKeeper 3.8 (read for behaviour, not copied): `common/X509Util`,
//! `ClientX509Util`, `KeyStoreFileType`, `SSLContextAndOptions`, `NettyServerCnxnFactory`
//! (its `CertificateVerifier` and `DualModeSslHandler`), `auth/X509AuthenticationProvider`.
//!
//! The stores are read once at start-up into one rustls `ServerConfig`; every shard accepts
//! with it. A connection's TLS runs inside its own I/O (`futures-rustls` over glommio's
//! `TcpStream`), so the shard code above it (framing, bounded output, turns, permits) is the
//! same for TLS and plaintext connections.

use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, ServerConnection, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::config::{ClientAuth, StoreConfig, TlsConfig};
use crate::proto::Id;
use crate::tree::acl;

/// The first byte of a TLS record that carries a handshake message (a ClientHello).
pub const TLS_HANDSHAKE_RECORD_TYPE: u8 = 0x16;

/// TLS handshakes under way over all shards (mntr's `zk_outstanding_tls_handshake`).
static OUTSTANDING_HANDSHAKES: AtomicI64 = AtomicI64::new(0);

pub fn outstanding_handshakes() -> i64 {
    OUTSTANDING_HANDSHAKES.load(Ordering::Relaxed)
}

/// Counts one handshake as outstanding while it lives.
pub struct HandshakeGuard(());

impl HandshakeGuard {
    pub fn start() -> HandshakeGuard {
        OUTSTANDING_HANDSHAKES.fetch_add(1, Ordering::Relaxed);
        HandshakeGuard(())
    }
}

impl Drop for HandshakeGuard {
    fn drop(&mut self) {
        OUTSTANDING_HANDSHAKES.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every shard accepts TLS connections with.
pub struct TlsServer {
    pub acceptor: futures_rustls::TlsAcceptor,
    pub client_auth: ClientAuth,
    pub super_user: Option<String>,
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// The formats of ZooKeeper's `KeyStoreFileType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoreType {
    Jks,
    Pem,
    Pkcs12,
    Bcfks,
}

/// `KeyStoreFileType.fromPropertyValueOrFileName`: the `.type` key (case-insensitive), or
/// else the file name's extension.
fn store_type(prefix: &str, store: &StoreConfig, location: &Path) -> Result<StoreType, String> {
    if let Some(t) = &store.store_type {
        return match t.to_ascii_uppercase().as_str() {
            "JKS" => Ok(StoreType::Jks),
            "PEM" => Ok(StoreType::Pem),
            "PKCS12" => Ok(StoreType::Pkcs12),
            "BCFKS" => Ok(StoreType::Bcfks),
            _ => Err(format!(
                "{prefix}.type: unknown store type \"{t}\" (expected JKS, PEM, PKCS12 or BCFKS)"
            )),
        };
    }
    let name = location.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".jks") {
        Ok(StoreType::Jks)
    } else if name.ends_with(".pem") {
        Ok(StoreType::Pem)
    } else if name.ends_with(".p12") || name.ends_with(".pfx") {
        Ok(StoreType::Pkcs12)
    } else if name.ends_with(".bcfks") {
        Ok(StoreType::Bcfks)
    } else {
        Err(format!(
            "{prefix}.type: not set, and cannot be told from the file name {} (expected .jks, \
             .pem, .p12, .pfx or .bcfks)",
            location.display()
        ))
    }
}

/// The store's password: `.passwordPath`'s file (less one trailing newline, as ZooKeeper's
/// SecretUtils) wins over `.password`.
fn store_password(prefix: &str, store: &StoreConfig) -> Result<String, String> {
    if let Some(path) = &store.password_path {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{prefix}.passwordPath: cannot read {}: {e}", path.display()))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        return Ok(text.to_string());
    }
    Ok(store.password.clone().unwrap_or_default())
}

/// A store file's bytes and its format. A file named (or typed) JKS that is in fact PKCS12
/// is read as PKCS12, as Java's JKS KeyStore does (keytool writes PKCS12 since Java 9).
fn read_store(prefix: &str, store: &StoreConfig) -> Result<(Vec<u8>, StoreType), String> {
    let Some(location) = &store.location else {
        return Err(format!("{prefix}.location: not set"));
    };
    let kind = store_type(prefix, store, location)?;
    let bytes = std::fs::read(location)
        .map_err(|e| format!("{prefix}.location: cannot read {}: {e}", location.display()))?;
    let is_jks = bytes.starts_with(&[0xfe, 0xed, 0xfe, 0xed]);
    match kind {
        StoreType::Jks | StoreType::Pkcs12 if is_jks => Err(format!(
            "{prefix}.location: {} is a JKS key store, which zkrs cannot read: convert it to \
             PKCS12 with `keytool -importkeystore -srckeystore {0} -destkeystore store.p12 \
             -deststoretype PKCS12` and set {prefix}.type=PKCS12",
            location.display()
        )),
        StoreType::Jks => Ok((bytes, StoreType::Pkcs12)),
        StoreType::Bcfks => Err(format!(
            "{prefix}.type: BCFKS stores are not supported: convert {} to PKCS12 or PEM",
            location.display()
        )),
        kind => Ok((bytes, kind)),
    }
}

fn open_pkcs12(
    prefix: &str,
    bytes: &[u8],
    password: &str,
) -> Result<p12_keystore::KeyStore, String> {
    p12_keystore::KeyStore::from_pkcs12(bytes, password, p12_keystore::Pkcs12ImportPolicy::Relaxed)
        .map_err(|e| {
            format!(
                "{prefix}.location: cannot open the PKCS12 store (wrong {prefix}.password?): {e}"
            )
        })
}

/// The server's certificate chain and private key.
fn load_key_store(
    store: &StoreConfig,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), String> {
    let prefix = "ssl.keyStore";
    let (bytes, kind) = read_store(prefix, store)?;
    let password = store_password(prefix, store)?;
    match kind {
        StoreType::Pem => {
            if bytes
                .windows(b"ENCRYPTED PRIVATE KEY".len())
                .any(|w| w == b"ENCRYPTED PRIVATE KEY")
            {
                return Err(format!(
                    "{prefix}.location: encrypted PEM private keys are not supported: decrypt \
                     it (`openssl pkcs8 -topk8 -nocrypt`) or use a PKCS12 store"
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(&bytes)
                .map_err(|e| format!("{prefix}.location: no private key in the PEM file: {e}"))?;
            let certs = CertificateDer::pem_slice_iter(&bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("{prefix}.location: bad certificate in the PEM file: {e}"))?;
            if certs.is_empty() {
                return Err(format!("{prefix}.location: no certificate in the PEM file"));
            }
            Ok((certs, key))
        }
        _ => {
            let ks = open_pkcs12(prefix, &bytes, &password)?;
            let Some((_, chain)) = ks.private_key_chain() else {
                return Err(format!(
                    "{prefix}.location: the PKCS12 store holds no private key with its \
                     certificate"
                ));
            };
            let certs: Vec<CertificateDer<'static>> = chain
                .certs()
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect();
            if certs.is_empty() {
                return Err(format!(
                    "{prefix}.location: the private key has no certificate"
                ));
            }
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()));
            Ok((certs, key))
        }
    }
}

/// The certificates a client's chain may end in.
fn load_trust_store(store: &StoreConfig) -> Result<RootCertStore, String> {
    let prefix = "ssl.trustStore";
    let (bytes, kind) = read_store(prefix, store)?;
    let password = store_password(prefix, store)?;
    let certs: Vec<CertificateDer<'static>> = match kind {
        StoreType::Pem => CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{prefix}.location: bad certificate in the PEM file: {e}"))?,
        _ => {
            let ks = open_pkcs12(prefix, &bytes, &password)?;
            let mut certs = Vec::new();
            for (_, entry) in ks.entries() {
                match entry {
                    p12_keystore::KeyStoreEntry::Certificate(c) => {
                        certs.push(CertificateDer::from(c.as_der().to_vec()))
                    }
                    p12_keystore::KeyStoreEntry::PrivateKeyChain(chain) => certs.extend(
                        chain
                            .certs()
                            .iter()
                            .map(|c| CertificateDer::from(c.as_der().to_vec())),
                    ),
                    p12_keystore::KeyStoreEntry::Secret(_) => {}
                }
            }
            certs
        }
    };
    let mut roots = RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(certs);
    if ignored > 0 {
        log::warn!(
            "{prefix}.location: {ignored} certificate(s) could not be used as trust anchors"
        );
    }
    if added == 0 {
        return Err(format!(
            "{prefix}.location: no usable certificate in the store"
        ));
    }
    Ok(roots)
}

/// `ssl.protocol` and `ssl.enabledProtocols` to rustls' versions. As ZooKeeper, the enabled
/// protocols default to `ssl.protocol` alone. Versions rustls does not have (TLSv1, TLSv1.1,
/// SSLv3) are skipped with a warning.
fn protocol_versions(tls: &TlsConfig) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    fn version(name: &str) -> Option<Vec<&'static SupportedProtocolVersion>> {
        match name {
            "TLSv1.3" => Some(vec![&rustls::version::TLS13]),
            "TLSv1.2" => Some(vec![&rustls::version::TLS12]),
            "TLS" => Some(vec![&rustls::version::TLS13, &rustls::version::TLS12]),
            _ => None,
        }
    }
    const OLD: &[&str] = &["TLSv1", "TLSv1.1", "SSLv3", "SSL", "SSLv2Hello"];
    if version(&tls.protocol).is_none() && !OLD.contains(&tls.protocol.as_str()) {
        return Err(format!(
            "ssl.protocol: unknown protocol \"{}\" (expected TLSv1.2, TLSv1.3 or TLS)",
            tls.protocol
        ));
    }
    let (key, names) = match &tls.enabled_protocols {
        Some(list) => ("ssl.enabledProtocols", list.clone()),
        None => ("ssl.protocol", vec![tls.protocol.clone()]),
    };
    let mut out: Vec<&'static SupportedProtocolVersion> = Vec::new();
    for name in &names {
        match version(name) {
            Some(vs) => {
                for v in vs {
                    if !out.iter().any(|o| o.version == v.version) {
                        out.push(v);
                    }
                }
            }
            None if OLD.contains(&name.as_str()) => {
                log::warn!("{key}: {name} is not supported (TLS 1.2 and 1.3 are); skipped")
            }
            None => return Err(format!("{key}: unknown protocol \"{name}\"")),
        }
    }
    if out.is_empty() {
        return Err(format!(
            "{key}: none of {names:?} is supported (zkrs serves TLSv1.2 and TLSv1.3)"
        ));
    }
    Ok(out)
}

/// A suite's IANA name (what Java and `ssl.ciphersuites` use): rustls names the TLS 1.3
/// suites `TLS13_*` where IANA has `TLS_*`.
fn iana_name(suite: &rustls::SupportedCipherSuite) -> String {
    let name = format!("{:?}", suite.suite());
    match name.strip_prefix("TLS13_") {
        Some(rest) => format!("TLS_{rest}"),
        None => name,
    }
}

fn crypto_provider(tls: &TlsConfig) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(wanted) = &tls.cipher_suites {
        let available = provider.cipher_suites.clone();
        let chosen: Vec<_> = wanted
            .iter()
            .filter_map(|name| {
                let found = available.iter().find(|s| iana_name(s) == *name).copied();
                if found.is_none() {
                    log::warn!("ssl.ciphersuites: {name} is not supported; skipped");
                }
                found
            })
            .collect();
        if chosen.is_empty() {
            let names: Vec<String> = available.iter().map(iana_name).collect();
            return Err(format!(
                "ssl.ciphersuites: none of the listed suites is supported (zkrs has {})",
                names.join(",")
            ));
        }
        provider.cipher_suites = chosen;
    }
    Ok(provider)
}

impl TlsServer {
    /// Reads the stores and builds the server's TLS settings; None when no port serves TLS.
    /// The error names the key at fault.
    pub fn new(tls: &TlsConfig) -> Result<Option<Arc<TlsServer>>, String> {
        if !tls.enabled() {
            return Ok(None);
        }
        let provider = Arc::new(crypto_provider(tls)?);
        let versions = protocol_versions(tls)?;
        let (certs, key) = load_key_store(&tls.key_store)?;
        if let Some(leaf) = certs.first() {
            refuse_version_1(leaf)?;
        }
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| format!("ssl.ciphersuites: no suite for the enabled protocols: {e}"))?;
        let builder = match tls.client_auth {
            ClientAuth::None => builder.with_no_client_auth(),
            ClientAuth::Want | ClientAuth::Need => {
                if tls.trust_store.location.is_none() {
                    return Err(format!(
                        "ssl.trustStore.location: not set, but ssl.clientAuth={} checks client \
                         certificates against it (zkrs has no default trust store: set one, \
                         or ssl.clientAuth=none)",
                        if tls.client_auth == ClientAuth::Want {
                            "want"
                        } else {
                            "need (the default)"
                        }
                    ));
                }
                let roots = Arc::new(load_trust_store(&tls.trust_store)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
                let verifier = if tls.client_auth == ClientAuth::Want {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier
                    .build()
                    .map_err(|e| format!("ssl.trustStore.location: {e}"))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(certs, key).map_err(|e| {
            format!(
                "ssl.keyStore.location: the key does not fit the certificate or is not usable: {e}"
            )
        })?;
        Ok(Some(Arc::new(TlsServer {
            acceptor: futures_rustls::TlsAcceptor::from(Arc::new(config)),
            client_auth: tls.client_auth,
            super_user: tls.x509_super_user.clone(),
            handshake_timeout: Duration::from_millis(tls.handshake_timeout_ms),
        })))
    }

    /// The ids a connection gains from its handshake, as ZooKeeper's CertificateVerifier
    /// and X509AuthenticationProvider: with `ssl.clientAuth=none` none; else the client
    /// certificate's subject DN as an `x509` id, and `super` when it is the configured
    /// super user. A client without a certificate gets none (`want`; `need` refused it in
    /// the handshake). Err: a certificate whose subject cannot be read (the connection is
    /// closed, as ZooKeeper closes it when authentication fails).
    pub fn x509_ids(&self, conn: &ServerConnection) -> Result<Vec<Id>, String> {
        if self.client_auth == ClientAuth::None {
            return Ok(Vec::new());
        }
        let Some(cert) = conn.peer_certificates().and_then(|c| c.first()) else {
            return Ok(Vec::new());
        };
        let dn = subject_dn(cert)?;
        let mut ids = Vec::with_capacity(2);
        if self.super_user.as_deref() == Some(dn.as_str()) {
            log::info!("Authenticated Id '{dn}' as super user");
            ids.push(Id {
                scheme: acl::SCHEME_SUPER.to_owned(),
                id: dn.clone(),
            });
        }
        log::info!("Authenticated Id '{dn}' for Scheme 'x509'");
        ids.push(Id {
            scheme: acl::SCHEME_X509.to_owned(),
            id: dn,
        });
        Ok(ids)
    }
}

/// Java takes X.509 version 1 certificates (pyOpenSSL's default, for one); the TLS library
/// takes version 3 only and would say only "UnsupportedCertVersion".
fn refuse_version_1(cert: &[u8]) -> Result<(), String> {
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert)
        .map_err(|e| format!("ssl.keyStore.location: cannot parse the certificate: {e}"))?;
    if parsed.version() == x509_parser::x509::X509Version::V1 {
        return Err(
            "ssl.keyStore.location: the certificate is X.509 version 1, which zkrs \
                    cannot use: issue it as version 3 (`openssl req -x509` and `keytool \
                    -genkeypair` make v3 certificates)"
                .to_string(),
        );
    }
    Ok(())
}

/// The subject of a DER certificate as Java's `X500Principal.getName()` writes it (RFC 2253:
/// the last RDN first, `,` between RDNs, `+` inside one, the keywords CN, C, L, ST, O, OU,
/// STREET, DC and UID, other attributes as `oid=#hex-of-DER`).
pub fn subject_dn(cert: &[u8]) -> Result<String, String> {
    use x509_parser::prelude::FromDer;
    let (_, parsed) = x509_parser::certificate::X509Certificate::from_der(cert)
        .map_err(|e| format!("cannot parse the client certificate: {e}"))?;
    let mut rdns: Vec<String> = Vec::new();
    for rdn in parsed.subject().iter() {
        let mut parts: Vec<String> = Vec::new();
        for atv in rdn.iter() {
            let oid = atv.attr_type().to_id_string();
            let keyword = match oid.as_str() {
                "2.5.4.3" => Some("CN"),
                "2.5.4.6" => Some("C"),
                "2.5.4.7" => Some("L"),
                "2.5.4.8" => Some("ST"),
                "2.5.4.10" => Some("O"),
                "2.5.4.11" => Some("OU"),
                "2.5.4.9" => Some("STREET"),
                "0.9.2342.19200300.100.1.25" => Some("DC"),
                "0.9.2342.19200300.100.1.1" => Some("UID"),
                _ => None,
            };
            let value = atv.attr_value();
            let text = match value.tag().0 {
                // UTF8String, PrintableString, IA5String, NumericString, TeletexString
                // (read as Latin-1), BMPString (UTF-16BE).
                12 | 19 | 22 | 18 => std::str::from_utf8(value.data).ok().map(str::to_string),
                20 => Some(value.data.iter().map(|&b| char::from(b)).collect()),
                30 => {
                    let units: Vec<u16> = value
                        .data
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16(&units).ok()
                }
                _ => None,
            };
            match (keyword, text) {
                (Some(k), Some(t)) => parts.push(format!("{k}={}", escape_rfc2253(&t))),
                (k, _) => {
                    let mut der = Vec::with_capacity(value.data.len() + 6);
                    der.push(value.tag().0 as u8);
                    let len = value.data.len();
                    if len < 0x80 {
                        der.push(len as u8);
                    } else {
                        let bytes = (len as u64).to_be_bytes();
                        let skip = bytes.iter().take_while(|&&b| b == 0).count();
                        der.push(0x80 | (8 - skip) as u8);
                        der.extend_from_slice(&bytes[skip..]);
                    }
                    der.extend_from_slice(value.data);
                    let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
                    parts.push(format!("{}=#{hex}", k.map_or(oid.clone(), str::to_string)));
                }
            }
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Ok(rdns.join(","))
}

/// RFC 2253 escaping of an attribute value.
fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_rfc2253() {
        assert_eq!(escape_rfc2253("a,b"), "a\\,b");
        assert_eq!(escape_rfc2253(" x "), "\\ x\\ ");
        assert_eq!(escape_rfc2253("#1"), "\\#1");
        assert_eq!(escape_rfc2253("plain"), "plain");
    }

    #[test]
    fn store_type_from_key_or_name() {
        let mut s = StoreConfig::default();
        assert_eq!(
            store_type("p", &s, Path::new("/a/b.P12")),
            Ok(StoreType::Pkcs12)
        );
        assert_eq!(
            store_type("p", &s, Path::new("/a/b.pem")),
            Ok(StoreType::Pem)
        );
        assert_eq!(
            store_type("p", &s, Path::new("/a/b.jks")),
            Ok(StoreType::Jks)
        );
        assert!(store_type("p", &s, Path::new("/a/b.key"))
            .unwrap_err()
            .starts_with("p.type"));
        s.store_type = Some("pem".into());
        assert_eq!(
            store_type("p", &s, Path::new("/a/b.p12")),
            Ok(StoreType::Pem)
        );
        s.store_type = Some("XYZ".into());
        assert!(store_type("p", &s, Path::new("/a/b.p12")).is_err());
    }

    #[test]
    fn protocols_default_to_ssl_protocol() {
        let mut t = TlsConfig::default();
        let v = protocol_versions(&t).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].version, rustls::ProtocolVersion::TLSv1_2);
        t.enabled_protocols = Some(vec!["TLSv1.3".into(), "TLSv1.2".into(), "TLSv1.1".into()]);
        assert_eq!(protocol_versions(&t).unwrap().len(), 2);
        t.enabled_protocols = Some(vec!["TLSv1.1".into()]);
        assert!(protocol_versions(&t).is_err());
        t.enabled_protocols = None;
        t.protocol = "TLSv9".into();
        assert!(protocol_versions(&t)
            .unwrap_err()
            .starts_with("ssl.protocol"));
    }

    #[test]
    fn cipher_suites_by_iana_name() {
        let mut t = TlsConfig {
            cipher_suites: Some(vec![
                "TLS_AES_128_GCM_SHA256".into(),
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".into(),
                "TLS_RSA_WITH_NULL_SHA".into(),
            ]),
            ..TlsConfig::default()
        };
        assert_eq!(crypto_provider(&t).unwrap().cipher_suites.len(), 2);
        t.cipher_suites = Some(vec!["TLS_NOPE".into()]);
        assert!(crypto_provider(&t).is_err());
    }

    #[test]
    fn missing_key_store_names_the_key() {
        let mut t = TlsConfig {
            secure_client_port: Some(1),
            ..TlsConfig::default()
        };
        assert!(TlsServer::new(&t)
            .unwrap_err()
            .starts_with("ssl.keyStore.location: not set"));
        t.key_store.location = Some("/nonexistent/key.pem".into());
        assert!(TlsServer::new(&t)
            .unwrap_err()
            .starts_with("ssl.keyStore.location: cannot read"));
    }
}
