//! TLS on `secureClientPort` and `client.portUnification`, with ZooKeeper's `ssl.*` keys and
//! the `x509` auth scheme, driven by real TLS clients: a Rust client (rustls over a socket,
//! speaking the ZooKeeper protocol), kazoo with `use_ssl=True`, and Apache ZooKeeper's
//! zkCli.sh with its Netty TLS client. Certificates are made per test run with the
//! `openssl` CLI (and Java's `keytool` for a PKCS12 trust store as Java writes it).
//! One test runs the same scenario against Apache ZooKeeper 3.8 and compares.
//!
//! Needs `openssl`, `keytool`/`java` and Debian's zookeeper package (CI installs them), and
//! kazoo for the kazoo test; each test FAILS when its tool is missing unless
//! ZKRS_SKIP_DIFFERENTIAL=1 / ZKRS_SKIP_KAZOO=1 say to skip the Java / kazoo parts.
//! Against an external server (ZKRS_TEST_TARGET) these tests return at once: they start
//! servers with TLS settings of their own.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::javazk::JavaZk;
use common::raw::{self, ConnectReq, Dec, Enc, Raw};
use common::{free_port, TestServer};

const CLIENT_DN: &str = "CN=client,O=zkrs";
const OTHER_DN: &str = "CN=other,O=zkrs";
const ADMIN_DN: &str = "CN=admin,O=zkrs";
const PASSWORD: &str = "s3cret";

const ZNONODE: i32 = -101;
const ZNOAUTH: i32 = -102;

/// Runs a command; panics with its output unless it succeeds.
fn run(cmd: &mut Command) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test PKI in a temporary directory: a CA, a server certificate for 127.0.0.1 and
/// localhost, client certificates (client, other, admin; an expired one; one from an
/// untrusted CA), as PEM files and PKCS12 stores.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("zkrs-tls-")
            .tempdir()
            .unwrap();
        let pki = Pki { dir };
        let d = pki.dir.path();
        let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(d));
        for ca in ["ca", "rogue"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
                "-days",
                "30",
                "-subj",
                &format!("/CN=zkrs {ca} CA"),
            ]);
        }
        std::fs::write(
            d.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(d.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
        let leaf = |name: &str, subject: &str, ca: &str, ext: &str| {
            openssl(&[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                subject,
            ]);
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                &format!("{ca}.pem"),
                "-CAkey",
                &format!("{ca}.key"),
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "30",
                "-extfile",
                ext,
            ]);
        };
        leaf("server", "/CN=localhost", "ca", "server.ext");
        leaf("client", "/O=zkrs/CN=client", "ca", "client.ext");
        leaf("other", "/O=zkrs/CN=other", "ca", "client.ext");
        leaf("admin", "/O=zkrs/CN=admin", "ca", "client.ext");
        leaf("untrusted", "/O=zkrs/CN=client", "rogue", "client.ext");
        // A subject with escaping, a multi-valued RDN and an attribute without a keyword.
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "fancy.key",
            "-out",
            "fancy.csr",
            "-multivalue-rdn",
            "-subj",
            "/C=US/O=zkrs\\, Inc./CN=fancy+UID=u1/emailAddress=m@example.com",
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            "fancy.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "fancy.crt",
            "-days",
            "30",
            "-extfile",
            "client.ext",
        ]);
        // An expired client certificate: `openssl ca` can set the dates.
        std::fs::write(d.join("index.txt"), "").unwrap();
        std::fs::write(d.join("serial"), "1000\n").unwrap();
        std::fs::write(
            d.join("ca.cnf"),
            "[ca]\ndefault_ca=d\n[d]\ndatabase=index.txt\nnew_certs_dir=.\nserial=serial\n\
             default_md=sha256\npolicy=p\nunique_subject=no\n[p]\ncommonName=supplied\n\
             organizationName=optional\n",
        )
        .unwrap();
        openssl(&[
            "ca",
            "-batch",
            "-config",
            "ca.cnf",
            "-cert",
            "ca.pem",
            "-keyfile",
            "ca.key",
            "-in",
            "client.csr",
            "-out",
            "expired.crt",
            "-startdate",
            "20200101000000Z",
            "-enddate",
            "20200102000000Z",
            "-extfile",
            "client.ext",
            "-notext",
        ]);
        std::fs::copy(d.join("client.key"), d.join("expired.key")).unwrap();
        // The server's PEM key store: key and chain in one file, as ZooKeeper's PEM loader.
        let mut server_pem = std::fs::read_to_string(d.join("server.key")).unwrap();
        server_pem += &std::fs::read_to_string(d.join("server.crt")).unwrap();
        std::fs::write(d.join("server.pem"), server_pem).unwrap();
        for name in ["server", "client", "other", "admin"] {
            let mut pem = std::fs::read_to_string(d.join(format!("{name}.key"))).unwrap();
            pem += &std::fs::read_to_string(d.join(format!("{name}.crt"))).unwrap();
            std::fs::write(d.join(format!("{name}-keystore.pem")), pem).unwrap();
            openssl(&[
                "pkcs12",
                "-export",
                "-in",
                &format!("{name}.crt"),
                "-inkey",
                &format!("{name}.key"),
                "-certfile",
                "ca.pem",
                "-name",
                name,
                "-out",
                &format!("{name}.p12"),
                "-passout",
                &format!("pass:{PASSWORD}"),
            ]);
        }
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// A PKCS12 trust store with the CA, written by Java's keytool (as a ZooKeeper user
    /// makes one).
    fn keytool_trust_store(&self) -> Option<String> {
        let out = self.p("trust.p12");
        if !Path::new(&out).exists() {
            if !java_available() {
                return None;
            }
            run(Command::new("keytool").args([
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-file",
                &self.p("ca.pem"),
                "-keystore",
                &out,
                "-storetype",
                "PKCS12",
                "-storepass",
                PASSWORD,
            ]));
        }
        Some(out)
    }

    /// The server's `ssl.*` lines with PEM stores.
    fn pem_server_lines(&self, extra: &[&str]) -> Vec<String> {
        let mut lines = vec![
            format!("ssl.keyStore.location={}", self.p("server.pem")),
            format!("ssl.trustStore.location={}", self.p("ca.pem")),
        ];
        lines.extend(extra.iter().map(|s| s.to_string()));
        lines
    }
}

/// True (and says so) when the tests run against an external server.
fn external() -> bool {
    let external = std::env::var_os("ZKRS_TEST_TARGET").is_some();
    if external {
        eprintln!("ZKRS_TEST_TARGET is set: the TLS tests start their own servers; skipped");
    }
    external
}

fn java_available() -> bool {
    let ok = Command::new("keytool")
        .arg("-help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
        && JavaZk::check_available().is_ok();
    if !ok {
        if std::env::var("ZKRS_SKIP_DIFFERENTIAL").as_deref() == Ok("1") {
            eprintln!(
                "java/keytool or Debian's zookeeper is missing; skipped (ZKRS_SKIP_DIFFERENTIAL=1)"
            );
            return false;
        }
        panic!(
            "java, keytool and Debian's zookeeper package are needed (or ZKRS_SKIP_DIFFERENTIAL=1)"
        );
    }
    true
}

/// A zkrs server with a secureClientPort and the given extra lines.
struct TlsServer {
    server: TestServer,
    secure: String,
}

fn start(lines: &[String]) -> TlsServer {
    let port = free_port();
    let mut all = vec![
        format!("secureClientPort={port}"),
        "secureClientPortAddress=127.0.0.1".to_string(),
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory".to_string(),
        "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider".to_string(),
    ];
    all.extend(lines.iter().cloned());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let server = TestServer::start_with(&refs);
    TlsServer {
        server,
        secure: format!("127.0.0.1:{port}"),
    }
}

/// The client side of TLS.
fn client_config(pki: &Pki, identity: Option<&str>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(pki.path("ca.pem")).unwrap();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some(name) => {
            let crt = std::fs::read(pki.path(&format!("{name}.crt"))).unwrap();
            let key = std::fs::read(pki.path(&format!("{name}.key"))).unwrap();
            let chain = rustls_pki_types::CertificateDer::pem_slice_iter(&crt)
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A ZooKeeper session over TLS (the Rust client).
struct TlsSession {
    stream: Tls,
    xid: i32,
    events: Vec<(i32, String)>,
}

/// Connects, completes the TLS handshake and creates a session. Err: why not (the
/// handshake failed, or the server closed the connection).
fn tls_session(addr: &str, config: Arc<rustls::ClientConfig>) -> Result<TlsSession, String> {
    let tcp = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config, name).map_err(|e| e.to_string())?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    let mut s = TlsSession {
        stream,
        xid: 0,
        events: Vec::new(),
    };
    s.write_frame(&ConnectReq::new_session(10_000).encode())
        .map_err(|e| format!("write: {e}"))?;
    let resp = s
        .read_frame()
        .map_err(|e| format!("connect response: {e}"))?;
    let mut d = Dec::new(&resp);
    let _protocol = d.int();
    let timeout = d.int();
    let session = d.long();
    if timeout <= 0 || session == 0 {
        return Err("session refused".into());
    }
    Ok(s)
}

impl TlsSession {
    fn write_frame(&mut self, payload: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(&raw::frame(payload))?;
        self.stream.flush()
    }

    fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len)?;
        let len = i32::from_be_bytes(len);
        if !(0..=16 * 1024 * 1024).contains(&len) {
            return Err(std::io::Error::new(
                ErrorKind::InvalidData,
                "bad frame length",
            ));
        }
        let mut body = vec![0u8; len as usize];
        self.stream.read_exact(&mut body)?;
        Ok(body)
    }

    /// Sends a request and returns (err, body) of its reply; notifications that come
    /// first are kept in `events`.
    fn call(&mut self, op: i32, body: &[u8]) -> (i32, Vec<u8>) {
        self.xid += 1;
        let xid = self.xid;
        let payload = Enc::new().int(xid).int(op).bytes(body).finish();
        self.write_frame(&payload).expect("write request");
        loop {
            let frame = self.read_frame().expect("read reply");
            let mut d = Dec::new(&frame);
            let rxid = d.int();
            let _zxid = d.long();
            let err = d.int();
            if rxid == raw::XID_NOTIFICATION {
                let kind = d.int();
                let _state = d.int();
                let path = d.string();
                self.events.push((kind, path));
                continue;
            }
            assert_eq!(rxid, xid, "reply out of order");
            return (err, frame[16..].to_vec());
        }
    }

    /// Waits (bounded) for the next notification.
    fn next_event(&mut self) -> (i32, String) {
        if !self.events.is_empty() {
            return self.events.remove(0);
        }
        let frame = self.read_frame().expect("read notification");
        let mut d = Dec::new(&frame);
        assert_eq!(d.int(), raw::XID_NOTIFICATION);
        let _ = (d.long(), d.int());
        let kind = d.int();
        let _state = d.int();
        (kind, d.string())
    }

    fn create(&mut self, path: &str, data: &[u8], acl: &[(i32, &str, &str)]) -> i32 {
        let body = Enc::new()
            .string(path)
            .buffer(data)
            .acls(acl)
            .int(0)
            .finish();
        self.call(raw::OP_CREATE, &body).0
    }

    fn get(&mut self, path: &str, watch: bool) -> Result<Vec<u8>, i32> {
        let (err, body) = self.call(
            raw::OP_GET_DATA,
            &Enc::new().string(path).bool(watch).finish(),
        );
        if err != 0 {
            return Err(err);
        }
        Ok(Dec::new(&body).buffer().unwrap_or_default())
    }

    /// whoAmI: the (scheme, id) pairs of the connection's auth info.
    fn who_am_i(&mut self) -> Vec<(String, String)> {
        let (err, body) = self.call(raw::OP_WHO_AM_I, &[]);
        assert_eq!(err, 0, "whoAmI");
        let mut d = Dec::new(&body);
        let n = d.int();
        (0..n).map(|_| (d.string(), d.string())).collect()
    }
}

fn tls(addr: &str, pki: &Pki, identity: Option<&str>) -> Result<TlsSession, String> {
    tls_session(addr, client_config(pki, identity))
}

fn must_tls(addr: &str, pki: &Pki, identity: Option<&str>) -> TlsSession {
    tls(addr, pki, identity).unwrap_or_else(|e| panic!("TLS session to {addr}: {e}"))
}

fn x509_ids(who: &[(String, String)]) -> Vec<String> {
    who.iter()
        .filter(|(scheme, _)| scheme == "x509")
        .map(|(_, id)| id.clone())
        .collect()
}

/// A plaintext session still works (create, get).
fn plaintext_works(addr: &str, path: &str) {
    let mut raw = Raw::connect(addr, 10_000);
    raw.create(path, b"plain", 0).ok();
    let reply = raw.call(
        raw::OP_GET_DATA,
        &Enc::new().string(path).bool(false).finish(),
    );
    assert_eq!(reply.ok().dec().buffer().as_deref(), Some(&b"plain"[..]));
}

#[test]
fn rust_client_create_get_watch_with_pem_stores() {
    if external() {
        return;
    }
    let pki = Pki::new();
    let s = start(&pki.pem_server_lines(&[]));
    let mut c = must_tls(&s.secure, &pki, Some("client"));
    assert_eq!(
        c.create("/tls-pem", b"hello", &[(31, "world", "anyone")]),
        0
    );
    assert_eq!(c.get("/tls-pem", true).unwrap(), b"hello");
    // A plaintext client changes the node: the TLS client gets the watch event.
    let mut plain = Raw::connect(&s.server.addr, 10_000);
    plain
        .call(
            raw::OP_SET_DATA,
            &Enc::new()
                .string("/tls-pem")
                .buffer(b"changed")
                .int(-1)
                .finish(),
        )
        .ok();
    assert_eq!(
        c.next_event(),
        (3, "/tls-pem".to_string()),
        "NodeDataChanged"
    );
    assert_eq!(c.get("/tls-pem", false).unwrap(), b"changed");
    // The certificate's subject DN is the connection's x509 id (RFC 2253, as Java writes it).
    assert_eq!(x509_ids(&c.who_am_i()), vec![CLIENT_DN.to_string()]);
    // cons and mntr see the connection; no handshake is outstanding.
    let mntr = s.server.four_letter("mntr");
    assert!(
        mntr.lines().any(|l| l == "zk_outstanding_tls_handshake\t0"),
        "{mntr}"
    );
}

/// Large replies to a client that sends many requests before reading: the socket fills,
/// TLS records wait in the server's TLS buffer, and every reply still arrives whole.
#[test]
fn large_pipelined_replies_over_tls() {
    if external() {
        return;
    }
    let pki = Pki::new();
    let s = start(&pki.pem_server_lines(&[]));
    let mut c = must_tls(&s.secure, &pki, Some("client"));
    let data = vec![b'x'; 900 * 1024];
    assert_eq!(c.create("/big", &data, &[(31, "world", "anyone")]), 0);
    const N: i32 = 24;
    for i in 0..N {
        let payload = Enc::new()
            .int(1000 + i)
            .int(raw::OP_GET_DATA)
            .string("/big")
            .bool(false)
            .finish();
        c.write_frame(&payload).unwrap();
    }
    // Let the server fill the socket before reading anything.
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..N {
        let frame = c.read_frame().expect("reply");
        let mut d = Dec::new(&frame);
        assert_eq!(d.int(), 1000 + i);
        let _zxid = d.long();
        assert_eq!(d.int(), 0);
        assert_eq!(d.buffer().map(|b| b.len()), Some(data.len()));
    }
    plaintext_works(&s.server.addr, "/after-big");
}

#[test]
fn pkcs12_stores_and_java_trust_store() {
    if external() {
        return;
    }
    let pki = Pki::new();
    let Some(trust) = pki.keytool_trust_store() else {
        return;
    };
    let s = start(&[
        format!("ssl.keyStore.location={}", pki.p("server.p12")),
        format!("ssl.keyStore.password={PASSWORD}"),
        format!("ssl.trustStore.location={trust}"),
        format!("ssl.trustStore.password={PASSWORD}"),
        "ssl.trustStore.type=PKCS12".into(),
    ]);
    let mut c = must_tls(&s.secure, &pki, Some("client"));
    assert_eq!(c.create("/tls-p12", b"x", &[(31, "world", "anyone")]), 0);
    assert_eq!(x509_ids(&c.who_am_i()), vec![CLIENT_DN.to_string()]);
}

#[test]
fn x509_acl_only_the_certificate_dn_reads() {
    if external() {
        return;
    }
    let pki = Pki::new();
    let s = start(
        &pki.pem_server_lines(&[&format!("X509AuthenticationProvider.superUser={ADMIN_DN}")]),
    );
    let mut owner = must_tls(&s.secure, &pki, Some("client"));
    assert_eq!(
        owner.create("/x509-only", b"secret", &[(31, "x509", CLIENT_DN)]),
        0
    );
    assert_eq!(owner.get("/x509-only", false).unwrap(), b"secret");
    // An `auth` entry expands to the connection's x509 id.
    assert_eq!(owner.create("/x509-auth", b"a", &[(1, "auth", "")]), 0);
    let (err, body) = owner.call(raw::OP_GET_ACL, &Enc::new().string("/x509-auth").finish());
    assert_eq!(err, 0);
    let acl = Dec::new(&body).acls();
    assert_eq!(acl.len(), 1, "{acl:?}");
    assert!(format!("{acl:?}").contains(CLIENT_DN), "{acl:?}");

    let mut other = must_tls(&s.secure, &pki, Some("other"));
    assert_eq!(x509_ids(&other.who_am_i()), vec![OTHER_DN.to_string()]);
    assert_eq!(other.get("/x509-only", false), Err(ZNOAUTH));
    let mut plain = Raw::connect(&s.server.addr, 10_000);
    let reply = plain.call(
        raw::OP_GET_DATA,
        &Enc::new().string("/x509-only").bool(false).finish(),
    );
    assert_eq!(reply.err, ZNOAUTH);
    // The super user's certificate passes every ACL.
    let mut admin = must_tls(&s.secure, &pki, Some("admin"));
    let who = admin.who_am_i();
    assert!(who.iter().any(|(scheme, _)| scheme == "super"), "{who:?}");
    assert_eq!(admin.get("/x509-only", false).unwrap(), b"secret");
    // addauth x509 cannot grant an id.
    assert_eq!(
        plain
            .call(
                raw::OP_AUTH,
                &Enc::new()
                    .int(0)
                    .string("x509")
                    .buffer(CLIENT_DN.as_bytes())
                    .finish()
            )
            .err,
        -115,
        "AuthFailed"
    );
}

#[test]
fn client_auth_need_want_none() {
    if external() {
        return;
    }
    let pki = Pki::new();
    // need (the default): no certificate, an expired one, or one from an unknown CA: refused.
    let s = start(&pki.pem_server_lines(&[]));
    for identity in [None, Some("expired"), Some("untrusted")] {
        assert!(
            tls(&s.secure, &pki, identity).is_err(),
            "{identity:?} must be refused with ssl.clientAuth=need"
        );
    }
    must_tls(&s.secure, &pki, Some("client"));
    let log = std::fs::read_to_string(s.server.log_path().unwrap()).unwrap();
    assert!(log.contains("Unsuccessful TLS handshake"), "{log}");
    drop(s);

    // want: a client without a certificate gets a session and no x509 id.
    let s = start(&pki.pem_server_lines(&["ssl.clientAuth=want"]));
    let mut anonymous = must_tls(&s.secure, &pki, None);
    assert!(x509_ids(&anonymous.who_am_i()).is_empty());
    let mut c = must_tls(&s.secure, &pki, Some("client"));
    assert_eq!(x509_ids(&c.who_am_i()), vec![CLIENT_DN.to_string()]);
    assert!(tls(&s.secure, &pki, Some("expired")).is_err());
    drop(s);

    // none: no certificate asked for, no trust store needed, no x509 id.
    let s = start(&[
        format!("ssl.keyStore.location={}", pki.p("server.pem")),
        "ssl.clientAuth=none".into(),
    ]);
    let mut c = must_tls(&s.secure, &pki, None);
    assert!(x509_ids(&c.who_am_i()).is_empty());
}

#[test]
fn protocols_and_cipher_suites() {
    if external() {
        return;
    }
    let pki = Pki::new();
    let s = start(&pki.pem_server_lines(&[
        "ssl.protocol=TLSv1.3",
        "ssl.ciphersuites=TLS_AES_256_GCM_SHA384,TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ]));
    let c = must_tls(&s.secure, &pki, Some("client"));
    assert_eq!(
        c.stream.conn.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    assert_eq!(
        c.stream.conn.negotiated_cipher_suite().map(|s| s.suite()),
        Some(rustls::CipherSuite::TLS13_AES_256_GCM_SHA384)
    );
    // A TLS 1.2-only client cannot connect to a TLSv1.3 server.
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    let ca = std::fs::read(pki.path("ca.pem")).unwrap();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let old = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    assert!(tls_session(&s.secure, Arc::new(old)).is_err());
}

/// Waits until the server closes `stream` (bounded); true if it did.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    raw::wait_closed(stream, limit)
}

#[test]
fn failed_and_stalled_handshakes_are_closed_while_plaintext_works() {
    if external() {
        return;
    }
    let pki = Pki::new();
    let s = start(&pki.pem_server_lines(&["ssl.handshakeDetectionTimeoutMillis=4000"]));
    // Stalled: connect and send nothing.
    let mut stalled = TcpStream::connect(&s.secure).unwrap();
    // Midway: a ClientHello record header that promises more than is sent.
    let mut midway = TcpStream::connect(&s.secure).unwrap();
    midway
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .unwrap();
    // Garbage: not TLS at all.
    let mut garbage = TcpStream::connect(&s.secure).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    // While they hang, mntr counts them, and plaintext and TLS clients are served.
    let outstanding = |server: &TestServer| -> i64 {
        let mntr = server.four_letter("mntr");
        mntr.lines()
            .find_map(|l| l.strip_prefix("zk_outstanding_tls_handshake\t"))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no zk_outstanding_tls_handshake in {mntr}"))
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut seen = outstanding(&s.server);
    while seen < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        seen = outstanding(&s.server);
    }
    assert!(
        seen >= 2,
        "the stalled and midway handshakes are outstanding: {seen}"
    );
    plaintext_works(&s.server.addr, "/plain-during-handshakes");
    must_tls(&s.secure, &pki, Some("client"));
    for (name, stream) in [
        ("garbage", &mut garbage),
        ("midway", &mut midway),
        ("stalled", &mut stalled),
    ] {
        assert!(
            closed_within(stream, Duration::from_secs(30)),
            "{name} handshake not closed"
        );
    }
    // Once closed, none is outstanding.
    assert_eq!(outstanding(&s.server), 0);
    plaintext_works(&s.server.addr, "/plain-after-handshakes");
    let log = std::fs::read_to_string(s.server.log_path().unwrap()).unwrap();
    assert!(log.contains("not completed in"), "{log}");
}

#[test]
fn port_unification_serves_tls_and_plaintext_on_the_client_port() {
    if external() {
        return;
    }
    let pki = Pki::new();
    let mut lines = pki.pem_server_lines(&["client.portUnification=true"]);
    lines.push("ssl.clientAuth=want".into());
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let server = TestServer::start_with(&refs);
    let mut c = must_tls(&server.addr, &pki, Some("client"));
    assert_eq!(c.create("/unified", b"tls", &[(31, "world", "anyone")]), 0);
    assert_eq!(x509_ids(&c.who_am_i()), vec![CLIENT_DN.to_string()]);
    plaintext_works(&server.addr, "/unified-plain");
    assert_eq!(server.four_letter("ruok"), "imok");
    let mut none = Raw::connect(&server.addr, 10_000);
    let reply = none.call(
        raw::OP_GET_DATA,
        &Enc::new().string("/nope").bool(false).finish(),
    );
    assert_eq!(reply.err, ZNONODE);
}

/// Starts zkrs with `lines` and expects it to refuse to start with `expect` in its output.
fn refuses_to_start(lines: &[String], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let cfg = format!(
        "tickTime=2000\ndataDir={}\nclientPort={}\nsecureClientPort={}\n\
         admin.enableServer=false\n{}\n",
        data.display(),
        free_port(),
        free_port(),
        lines.join("\n")
    );
    let path = dir.path().join("zoo.cfg");
    std::fs::write(&path, cfg).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_zkrs"))
        .arg("start-foreground")
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("zkrs started with a broken TLS config ({expect})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(text.contains(expect), "expected {expect:?} in:\n{text}");
}

#[test]
fn broken_tls_config_refuses_to_start_naming_the_key() {
    if external() {
        return;
    }
    let pki = Pki::new();
    let key = |v: &str| format!("ssl.keyStore.location={v}");
    let trust = format!("ssl.trustStore.location={}", pki.p("ca.pem"));
    refuses_to_start(
        std::slice::from_ref(&trust),
        "ssl.keyStore.location: not set",
    );
    refuses_to_start(
        &[key("/nonexistent/server.pem"), trust.clone()],
        "ssl.keyStore.location: cannot read /nonexistent/server.pem",
    );
    refuses_to_start(
        &[
            key(&pki.p("server.p12")),
            "ssl.keyStore.password=wrong".into(),
            trust.clone(),
        ],
        "wrong ssl.keyStore.password",
    );
    refuses_to_start(
        &[
            key(&pki.p("server.pem")),
            "ssl.keyStore.type=XYZ".into(),
            trust.clone(),
        ],
        "ssl.keyStore.type: unknown store type \"XYZ\"",
    );
    refuses_to_start(
        &[
            key(&pki.p("server.pem")),
            "ssl.clientAuth=sometimes".into(),
            trust.clone(),
        ],
        "ssl.clientAuth: expected none, want or need",
    );
    refuses_to_start(
        &[key(&pki.p("server.pem"))],
        "ssl.trustStore.location: not set",
    );
    refuses_to_start(
        &[
            key(&pki.p("server.pem")),
            trust.clone(),
            "ssl.protocol=TLSv9".into(),
        ],
        "ssl.protocol: unknown protocol",
    );
    // An X.509 version 1 certificate (`openssl x509 -req` without extensions; ZooKeeper
    // takes it, the TLS library does not): refused, saying to reissue it as version 3.
    let dir = std::path::Path::new(&pki.p("server.pem"))
        .parent()
        .expect("the PKI dir")
        .to_path_buf();
    let openssl = |args: &[&str]| run(Command::new("openssl").args(args).current_dir(&dir));
    openssl(&[
        "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "v1.key", "-subj", "/CN=v1",
        "-out", "v1.csr",
    ]);
    openssl(&[
        "x509", "-req", "-in", "v1.csr", "-signkey", "v1.key", "-days", "2", "-out", "v1.crt",
    ]);
    let v1 = dir.join("v1.pem");
    let mut pem = std::fs::read(dir.join("v1.key")).unwrap();
    pem.extend(std::fs::read(dir.join("v1.crt")).unwrap());
    std::fs::write(&v1, pem).unwrap();
    refuses_to_start(
        &[key(v1.to_str().unwrap()), trust.clone()],
        "the certificate is X.509 version 1",
    );
    if java_available() {
        let jks = pki.p("server.jks");
        run(Command::new("keytool").args([
            "-importcert",
            "-noprompt",
            "-alias",
            "ca",
            "-file",
            &pki.p("ca.pem"),
            "-keystore",
            &jks,
            "-storetype",
            "JKS",
            "-storepass",
            PASSWORD,
        ]));
        refuses_to_start(
            &[
                key(&jks),
                format!("ssl.keyStore.password={PASSWORD}"),
                trust,
            ],
            "convert it to PKCS12 with `keytool -importkeystore",
        );
    }
}

fn kazoo_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import kazoo"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("ZKRS_SKIP_KAZOO").as_deref() == Ok("1") {
            eprintln!("kazoo missing; skipped (ZKRS_SKIP_KAZOO=1)");
            return false;
        }
        panic!("the Python package kazoo is missing: pip install kazoo, or ZKRS_SKIP_KAZOO=1");
    }
    true
}

const KAZOO_SCRIPT: &str = r#"
import sys, threading
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_acl
hosts, ca, cert, key, other_cert, other_key, dn = sys.argv[1:8]
def client(c, k):
    zk = KazooClient(hosts=hosts, use_ssl=True, ca=ca, certfile=c, keyfile=k,
                     verify_certs=True, check_hostname=True, timeout=10)
    zk.start(timeout=15)
    return zk
zk = client(cert, key)
zk.create("/kazoo-tls", b"v1")
data, _ = zk.get("/kazoo-tls")
assert data == b"v1", data
fired = threading.Event()
def watcher(event):
    if event.type == "CHANGED":
        fired.set()
zk.get("/kazoo-tls", watch=watcher)
zk.set("/kazoo-tls", b"v2")
assert fired.wait(15), "no watch event"
zk.create("/kazoo-x509", b"mine", acl=[make_acl("x509", dn, all=True)])
assert zk.get("/kazoo-x509")[0] == b"mine"
other = client(other_cert, other_key)
try:
    other.get("/kazoo-x509")
    raise SystemExit("other certificate read an x509-only node")
except NoAuthError:
    pass
other.stop()
zk.stop()
print("all checks passed")
"#;

#[test]
fn kazoo_with_use_ssl() {
    if external() {
        return;
    }
    if !kazoo_available() {
        return;
    }
    let pki = Pki::new();
    let s = start(&pki.pem_server_lines(&[]));
    let out = Command::new("timeout")
        .arg("120")
        .arg("python3")
        .args(["-c", KAZOO_SCRIPT, &s.secure])
        .args([
            pki.p("ca.pem"),
            pki.p("client.crt"),
            pki.p("client.key"),
            pki.p("other.crt"),
            pki.p("other.key"),
            CLIENT_DN.to_string(),
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "kazoo over TLS failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The JVM flags of ZooKeeper's Java client with TLS (Netty) and `name`'s PKCS12 store,
/// with the class path (netty-codec and netty-resolver are not in zookeeper.jar's manifest).
fn java_client_flags(pki: &Pki, name: &str, trust: &str) -> String {
    format!(
        "-cp /usr/share/java/zookeeper.jar:/usr/share/java/netty-codec.jar:\
         /usr/share/java/netty-resolver.jar:/usr/share/java/slf4j-simple.jar \
         -Dzookeeper.client.secure=true \
         -Dzookeeper.clientCnxnSocket=org.apache.zookeeper.ClientCnxnSocketNetty \
         -Dzookeeper.ssl.keyStore.location={} -Dzookeeper.ssl.keyStore.password={PASSWORD} \
         -Dzookeeper.ssl.trustStore.location={trust} \
         -Dzookeeper.ssl.trustStore.password={PASSWORD}",
        pki.p(&format!("{name}.p12"))
    )
}

const ZKCLI: &str = "/usr/share/zookeeper/bin/zkCli.sh";

/// Runs one zkCli.sh command against `server` with TLS; its output.
fn zkcli(flags: &str, server: &str, args: &[&str]) -> String {
    let out = Command::new("timeout")
        .arg("60")
        .arg(ZKCLI)
        .args(["-server", server])
        .args(args)
        .env("CLIENT_JVMFLAGS", flags)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn java_zkcli_over_tls() {
    if external() {
        return;
    }
    if !java_available() {
        return;
    }
    let pki = Pki::new();
    let trust = pki.keytool_trust_store().unwrap();
    let s = start(&pki.pem_server_lines(&[]));
    let flags = java_client_flags(&pki, "client", &trust);
    let out = zkcli(&flags, &s.secure, &["create", "/java-tls", "from-java"]);
    assert!(out.contains("Created /java-tls"), "{out}");
    let out = zkcli(&flags, &s.secure, &["get", "/java-tls"]);
    assert!(out.lines().any(|l| l == "from-java"), "{out}");
    // zkCli splits an ACL at commas, so a DN cannot be typed there: the Rust client makes
    // the x509-only node.
    let mut owner = must_tls(&s.secure, &pki, Some("client"));
    assert_eq!(
        owner.create("/java-x509", b"only-me", &[(31, "x509", CLIENT_DN)]),
        0
    );
    let out = zkcli(&flags, &s.secure, &["get", "/java-x509"]);
    assert!(out.lines().any(|l| l == "only-me"), "{out}");
    let other = java_client_flags(&pki, "other", &trust);
    let out = zkcli(&other, &s.secure, &["get", "/java-x509"]);
    assert!(out.contains("Insufficient permission"), "{out}");

    // A watch: an interactive zkCli sets it, a plaintext client fires it.
    let mut child = Command::new("timeout")
        .arg("90")
        .arg(ZKCLI)
        .args(["-server", &s.secure])
        .env("CLIENT_JVMFLAGS", &flags)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"get -w /java-tls\n").unwrap();
    stdin.flush().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0
                || tx
                    .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                    .is_err()
            {
                break;
            }
        }
    });
    let mut seen = String::new();
    let wait_for = |seen: &mut String, text: &str| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !seen.contains(text) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(chunk) => seen.push_str(&chunk),
                Err(_) => return false,
            }
        }
        true
    };
    assert!(wait_for(&mut seen, "from-java"), "{seen}");
    let mut plain = Raw::connect(&s.server.addr, 10_000);
    plain
        .call(
            raw::OP_SET_DATA,
            &Enc::new()
                .string("/java-tls")
                .buffer(b"v2")
                .int(-1)
                .finish(),
        )
        .ok();
    assert!(
        wait_for(&mut seen, "type:NodeDataChanged path:/java-tls"),
        "{seen}"
    );
    let _ = stdin.write_all(b"quit\n");
    drop(stdin);
    let _ = child.wait();
}

/// The same TLS scenario against Apache ZooKeeper 3.8 (Netty, PKCS12 stores, x509
/// provider) and zkrs: the same answers.
#[test]
fn same_answers_as_apache_zookeeper_with_the_same_tls_config() {
    if external() {
        return;
    }
    if !java_available() {
        return;
    }
    let pki = Pki::new();
    let trust = pki.keytool_trust_store().unwrap();
    let secure = free_port();
    let lines = [
        format!("secureClientPort={secure}"),
        "serverCnxnFactory=org.apache.zookeeper.server.NettyServerCnxnFactory".to_string(),
        "authProvider.x509=org.apache.zookeeper.server.auth.X509AuthenticationProvider".to_string(),
        format!("ssl.keyStore.location={}", pki.p("server.p12")),
        format!("ssl.keyStore.password={PASSWORD}"),
        format!("ssl.trustStore.location={trust}"),
        format!("ssl.trustStore.password={PASSWORD}"),
    ];
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let java = JavaZk::start(&refs).expect("start Apache ZooKeeper");
    let java_secure = format!("127.0.0.1:{secure}");
    let java_answers = scenario(&java_secure, &pki);
    drop(java);
    let zkrs_secure = free_port();
    let mut zkrs_lines = lines.to_vec();
    zkrs_lines[0] = format!("secureClientPort={zkrs_secure}");
    let refs: Vec<&str> = zkrs_lines.iter().map(String::as_str).collect();
    let _zkrs = TestServer::start_with(&refs);
    let zkrs_answers = scenario(&format!("127.0.0.1:{zkrs_secure}"), &pki);
    eprintln!("Apache ZooKeeper: {java_answers:?}");
    assert_eq!(zkrs_answers, java_answers);
}

/// What a TLS user sees: session with and without a certificate, whoAmI, an x509 ACL.
fn scenario(addr: &str, pki: &Pki) -> Vec<String> {
    let mut out = Vec::new();
    let mut c = must_tls(addr, pki, Some("client"));
    let mut who = c.who_am_i();
    who.sort();
    out.push(format!(
        "whoami {:?}",
        who.iter().filter(|(s, _)| s != "ip").collect::<Vec<_>>()
    ));
    out.push(format!(
        "create {}",
        c.create("/scenario", b"mine", &[(31, "x509", CLIENT_DN)])
    ));
    out.push(format!("get own {:?}", c.get("/scenario", false)));
    let mut other = must_tls(addr, pki, Some("other"));
    out.push(format!("get other {:?}", other.get("/scenario", false)));
    out.push(format!(
        "bad acl {}",
        c.create("/bad", b"", &[(31, "x509", "bob")])
    ));
    let (err, _) = c.call(
        raw::OP_AUTH,
        &Enc::new()
            .int(0)
            .string("x509")
            .buffer(b"anything")
            .finish(),
    );
    out.push(format!("addauth x509 with a certificate {err}"));
    out.push(format!(
        "whoami after addauth {:?}",
        x509_ids(&c.who_am_i())
    ));
    let mut fancy = must_tls(addr, pki, Some("fancy"));
    out.push(format!("fancy {:?}", x509_ids(&fancy.who_am_i())));
    out.push(format!("no cert {}", tls(addr, pki, None).is_ok()));
    out.push(format!(
        "expired {}",
        tls(addr, pki, Some("expired")).is_ok()
    ));
    out.push(format!(
        "untrusted {}",
        tls(addr, pki, Some("untrusted")).is_ok()
    ));
    out
}
