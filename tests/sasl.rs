//! SASL (DIGEST-MD5 from a JAAS file), the `sasl` ACL scheme and enforced authentication,
//! with real clients: kazoo (`sasl_options`, needs PyPI's `pure-sasl`), the Java client
//! (Debian's zkCli.sh with `CLIENT_JVMFLAGS=-Djava.security.auth.login.config=...`) and raw
//! sockets for malformed tokens and enforcement. Where Java and Debian's ZooKeeper jar are
//! present, the kazoo and raw scenarios also run against Apache ZooKeeper 3.8 started with
//! the same JAAS file and settings, and their answers must be equal.
//!
//! Missing kazoo/pure-sasl, zkCli.sh or Java fail the test unless ZKRS_SKIP_KAZOO=1,
//! ZKRS_SKIP_ZKCLI=1 or ZKRS_SKIP_DIFFERENTIAL=1 is set (as tests/kazoo.rs, zkcli.rs,
//! differential.rs). Against an external server (ZKRS_TEST_TARGET) every test returns early:
//! each needs a server started with its own JAAS file and settings.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::javazk::JavaZk;
use common::raw::{self, Enc, Frame, Raw};
use common::{unique_prefix, TestServer};

const OP_SASL: i32 = 102;
const ERR_AUTH_FAILED: i32 = -115;
const ERR_SESSION_CLOSED_REQUIRE_SASL_AUTH: i32 = -124;
const LIMIT: Duration = Duration::from_secs(120);

const SERVER_JAAS: &str = "/* the server's credentials */\n\
Server {\n\
    org.apache.zookeeper.server.auth.DigestLoginModule required\n\
    user_bob=\"bob-secret\"\n\
    // a comment between options\n\
    user_alice=\"alice pw\"\n\
    user_admin=adminpw;\n\
};\n\
Client {\n\
    org.apache.zookeeper.server.auth.DigestLoginModule required\n\
    username=\"bob\"\n\
    password=\"bob-secret\";\n\
};\n";

const PROVIDER: &str = "authProvider.1=org.apache.zookeeper.server.auth.SASLAuthenticationProvider";

/// A temporary directory holding the JAAS file.
struct Jaas {
    dir: tempfile::TempDir,
}

impl Jaas {
    fn new(text: &str) -> Jaas {
        let dir = tempfile::Builder::new()
            .prefix("zkrs-sasl-")
            .tempdir()
            .unwrap();
        std::fs::write(dir.path().join("jaas.conf"), text).unwrap();
        Jaas { dir }
    }
    fn path(&self) -> PathBuf {
        self.dir.path().join("jaas.conf")
    }
    fn cfg_line(&self) -> String {
        format!("java.security.auth.login.config={}", self.path().display())
    }
    fn jvm_flag(&self) -> String {
        format!(
            "-Djava.security.auth.login.config={}",
            self.path().display()
        )
    }
    /// A client JAAS file for the Java client.
    fn client_file(&self, name: &str, user: &str, password: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(
            &path,
            format!(
                "Client {{ org.apache.zookeeper.server.auth.DigestLoginModule required \
                 username=\"{user}\" password=\"{password}\"; }};\n"
            ),
        )
        .unwrap();
        path
    }
}

/// True (with a message) when the tests run against an external server, which these tests
/// cannot configure.
fn external() -> bool {
    let external = std::env::var("ZKRS_TEST_TARGET").is_ok();
    if external {
        eprintln!("ZKRS_TEST_TARGET is set: the SASL tests need servers of their own; skipped");
    }
    external
}

/// A zkrs server with the JAAS file as a zoo.cfg key, plus `extra` lines.
fn zkrs(jaas: &Jaas, extra: &[&str]) -> TestServer {
    let line = jaas.cfg_line();
    let mut lines = vec![line.as_str()];
    lines.extend_from_slice(extra);
    TestServer::start_with(&lines)
}

/// Apache ZooKeeper with the JAAS file as a JVM flag, or None (with the reason printed)
/// when it cannot run here and ZKRS_SKIP_DIFFERENTIAL=1.
fn java_zk(jaas: &Jaas, extra: &[&str]) -> Option<JavaZk> {
    if let Err(why) = JavaZk::check_available() {
        if std::env::var("ZKRS_SKIP_DIFFERENTIAL").as_deref() == Ok("1") {
            eprintln!("Apache ZooKeeper cannot run ({why}); comparison skipped (ZKRS_SKIP_DIFFERENTIAL=1)");
            return None;
        }
        panic!("Apache ZooKeeper cannot run: {why} (set ZKRS_SKIP_DIFFERENTIAL=1 to skip)");
    }
    let flag = jaas.jvm_flag();
    let java =
        JavaZk::start_with_jvm_flags(extra, &[flag.as_str()]).expect("start Apache ZooKeeper");
    eprintln!("comparing with Apache ZooKeeper on {}", java.addr);
    Some(java)
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn kazoo_available() -> bool {
    let ok = Command::new(python())
        .args(["-c", "import kazoo, puresasl"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        if std::env::var("ZKRS_SKIP_KAZOO").as_deref() == Ok("1") {
            eprintln!("kazoo or pure-sasl missing; skipped because ZKRS_SKIP_KAZOO=1");
            return false;
        }
        panic!("kazoo with SASL needs: pip install kazoo pure-sasl (or set ZKRS_SKIP_KAZOO=1)");
    }
    true
}

/// Runs a command with a time limit (the whole process group is killed past it); returns
/// (success, stdout, stderr).
fn run_limited(mut cmd: Command) -> (bool, String, String) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .arg("--")
                .arg(format!("-{}", child.id()))
                .status();
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    let status = status.unwrap_or_else(|| panic!("ran past {LIMIT:?}:\n{stdout}\n{stderr}"));
    (status.success(), stdout, stderr)
}

/// tests/sasl_kazoo.py's JSON line for one action.
fn kazoo(addr: &str, user: &str, password: &str, action: &str, path: &str) -> serde_json::Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sasl_kazoo.py");
    let mut cmd = Command::new(python());
    cmd.args([script, addr, user, password, action, path]);
    let (ok, stdout, stderr) = run_limited(cmd);
    assert!(ok, "sasl_kazoo.py failed:\n{stdout}\n{stderr}");
    let line = stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

/// The kazoo scenario: DIGEST-MD5 logins, `sasl` ACLs, wrong passwords. Returns every
/// answer, to compare between servers (and checks the ones whose value is known).
fn kazoo_scenario(addr: &str, prefix: &str) -> Vec<serde_json::Value> {
    let node = format!("{prefix}-bob");
    let auth_node = format!("{prefix}-auth");
    let answers = vec![
        kazoo(addr, "bob", "bob-secret", "create", &node),
        kazoo(addr, "bob", "bob-secret", "get", &node),
        kazoo(addr, "alice", "alice pw", "get", &node),
        kazoo(addr, "admin", "adminpw", "get", &node),
        kazoo(addr, "-", "-", "get", &node),
        kazoo(addr, "bob", "wrong", "get", &node),
        kazoo(addr, "mallory", "x", "get", &node),
        kazoo(addr, "bob", "bob-secret", "setacl-auth", &auth_node),
    ];
    let result = |i: usize| {
        answers[i]["result"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(result(0), "ok", "{:?}", answers[0]);
    assert_eq!(answers[0]["data"], "secret");
    assert_eq!(answers[0]["acl"], serde_json::json!([[31, "sasl", "bob"]]));
    assert_eq!(result(1), "ok");
    assert_eq!(result(2), "NoAuthError", "alice may not read bob's node");
    assert_eq!(result(3), "ok", "admin is zookeeper.superUser");
    assert_eq!(result(4), "NoAuthError");
    assert_eq!(result(5), "AuthFailedError", "wrong password");
    assert_eq!(result(6), "AuthFailedError", "unknown user");
    assert_eq!(answers[7]["acl"], serde_json::json!([[31, "sasl", "bob"]]));
    answers
}

#[test]
fn kazoo_digest_md5_and_sasl_acls_match_zookeeper() {
    if external() {
        return;
    }
    if !kazoo_available() {
        return;
    }
    let jaas = Jaas::new(SERVER_JAAS);
    let extra = [PROVIDER, "superUser=admin"];
    let server = zkrs(&jaas, &extra);
    let ours = kazoo_scenario(&server.addr, &unique_prefix("sasl"));
    let log = std::fs::read_to_string(server.log_path().unwrap()).unwrap();
    assert!(
        log.contains("adding SASL authorization for authorizationID: bob"),
        "{log}"
    );
    assert!(log.contains("failed to SASL authenticate"), "{log}");
    if let Some(java) = java_zk(&jaas, &extra) {
        let theirs = kazoo_scenario(&java.addr, &unique_prefix("sasl"));
        assert_eq!(
            ours, theirs,
            "zkrs and Apache ZooKeeper answered kazoo differently"
        );
    }
}

/// The Java client (zkCli.sh) logs in with DIGEST-MD5 and reads a node only `sasl:bob` may
/// read; with a wrong password it cannot.
#[test]
fn java_client_authenticates_with_digest_md5() {
    if external() {
        return;
    }
    let zkcli =
        std::env::var("ZKCLI").unwrap_or_else(|_| "/usr/share/zookeeper/bin/zkCli.sh".to_string());
    if !Path::new(&zkcli).exists() {
        if std::env::var("ZKRS_SKIP_ZKCLI").as_deref() == Ok("1") {
            eprintln!("zkCli.sh not found at {zkcli}; skipped because ZKRS_SKIP_ZKCLI=1");
            return;
        }
        panic!("zkCli.sh not found at {zkcli}: apt-get install zookeeper, or ZKRS_SKIP_ZKCLI=1");
    }
    let jaas = Jaas::new(SERVER_JAAS);
    let server = zkrs(&jaas, &[PROVIDER]);
    let ours = java_client_scenario(&zkcli, &server.addr, &jaas);
    assert!(ours.iter().all(|(_, ok)| *ok), "{ours:?}");
    if let Some(java) = java_zk(&jaas, &[PROVIDER]) {
        assert_eq!(
            ours,
            java_client_scenario(&zkcli, &java.addr, &jaas),
            "vs Java"
        );
    }
}

/// zkCli.sh runs against `addr`; each check's name and whether it held.
fn java_client_scenario(zkcli: &str, addr: &str, jaas: &Jaas) -> Vec<(&'static str, bool)> {
    let node = unique_prefix("java-sasl");
    let good = jaas.client_file("good.jaas", "bob", "bob-secret");
    let bad = jaas.client_file("bad.jaas", "bob", "not-it");
    let cli = |client_jaas: Option<&Path>, args: &[&str]| {
        let mut cmd = Command::new(zkcli);
        cmd.arg("-server").arg(addr).args(args);
        match client_jaas {
            Some(path) => cmd.env(
                "CLIENT_JVMFLAGS",
                format!("-Djava.security.auth.login.config={}", path.display()),
            ),
            None => cmd.env("CLIENT_JVMFLAGS", "-Dzookeeper.sasl.client=false"),
        };
        let (_, stdout, stderr) = run_limited(cmd);
        format!("{stdout}\n{stderr}")
    };
    let mut checks = Vec::new();
    let out = cli(
        Some(&good),
        &["create", &node, "javasecret", "sasl:bob:cdrwa"],
    );
    checks.push((
        "create: SaslAuthenticated",
        out.contains("SaslAuthenticated"),
    ));
    checks.push(("create: Created", out.contains(&format!("Created {node}"))));
    let out = cli(Some(&good), &["get", &node]);
    checks.push(("get as bob", out.contains("javasecret")));
    let out = cli(Some(&good), &["getAcl", &node]);
    checks.push(("getAcl sasl:bob", out.contains("'sasl,'bob")));
    let out = cli(None, &["get", &node]);
    checks.push((
        "anonymous: Insufficient permission",
        out.contains("Insufficient permission"),
    ));
    checks.push(("anonymous: no data", !out.contains("javasecret")));
    let out = cli(Some(&bad), &["get", &node]);
    checks.push(("wrong password: no data", !out.contains("javasecret")));
    checks.push((
        "wrong password: not authenticated",
        !out.contains("SaslAuthenticated"),
    ));
    checks
}

/// What a raw connection saw after a sasl request: the reply's error and whether the server
/// closed the connection afterwards.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    err: i32,
    closed: bool,
}

fn sasl_step(raw: &mut Raw, token: &[u8]) -> Option<(i32, Option<Vec<u8>>)> {
    let xid = raw.send(OP_SASL, &Enc::new().buffer(token).finish());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match raw.read_frame(deadline) {
            Ok(Frame::Reply(r)) if r.xid == xid => {
                let token = if r.err == 0 { r.dec().buffer() } else { None };
                return Some((r.err, token));
            }
            Ok(_) => continue,
            Err(_) => return None,
        }
    }
}

fn outcome_of(raw: &mut Raw, err: i32) -> Outcome {
    let closed = raw::wait_closed(&mut raw.stream, Duration::from_secs(3));
    Outcome { err, closed }
}

/// Malformed tokens, answered and closed without touching other clients. Returns the
/// outcomes, to compare with Apache ZooKeeper.
fn malformed_scenario(addr: &str) -> Vec<Outcome> {
    let mut bystander = Raw::connect(addr, 10_000);
    let mut out = Vec::new();
    // A first token (DIGEST-MD5 has none): e.g. a GSSAPI client. ZooKeeper ignores it and
    // sends its challenge; the exchange goes on.
    let mut raw = Raw::connect(addr, 10_000);
    let (err, challenge) =
        sasl_step(&mut raw, b"\x60\x82\x02\x00 kerberos ap-req").expect("a reply");
    let challenge = String::from_utf8(challenge.expect("a challenge")).unwrap();
    assert!(challenge.contains("nonce=\""), "{challenge}");
    out.push(outcome_of(&mut raw, err));
    // Garbage as the digest-response.
    let mut raw = Raw::connect(addr, 10_000);
    let (err, challenge) = sasl_step(&mut raw, b"").expect("the challenge");
    assert_eq!(err, 0);
    let challenge = String::from_utf8(challenge.expect("a challenge token")).unwrap();
    assert!(challenge.contains("realm=\"zk-sasl-md5\""), "{challenge}");
    assert!(challenge.contains("nonce=\""), "{challenge}");
    let (err, _) = sasl_step(&mut raw, b"username=\"bob\",\x00\xff,,=garbage\"").expect("a reply");
    out.push(outcome_of(&mut raw, err));
    // A digest-response with the wrong nonce.
    let mut raw = Raw::connect(addr, 10_000);
    sasl_step(&mut raw, b"").expect("the challenge");
    let response = "username=\"bob\",realm=\"zk-sasl-md5\",nonce=\"not-the-nonce\",\
                    cnonce=\"abc\",nc=00000001,qop=auth,digest-uri=\"zookeeper/zk-sasl-md5\",\
                    response=0123456789abcdef0123456789abcdef";
    let (err, _) = sasl_step(&mut raw, response.as_bytes()).expect("a reply");
    out.push(outcome_of(&mut raw, err));
    // A sasl body that is not a GetSASLRequest (a buffer length past the frame): closed.
    let mut raw = Raw::connect(addr, 10_000);
    raw.send(OP_SASL, &Enc::new().int(1000).finish());
    out.push(Outcome {
        err: 0,
        closed: raw::wait_closed(&mut raw.stream, Duration::from_secs(5)),
    });
    // The bystander's session is unaffected.
    bystander.ping().ok();
    bystander.create(&unique_prefix("bystander"), b"x", 0).ok();
    out
}

#[test]
fn malformed_tokens_are_refused_and_closed_like_zookeeper() {
    if external() {
        return;
    }
    let jaas = Jaas::new(SERVER_JAAS);
    let server = zkrs(&jaas, &[PROVIDER]);
    let ours = malformed_scenario(&server.addr);
    assert_eq!(
        ours[0],
        Outcome {
            err: 0,
            closed: false
        }
    );
    for outcome in &ours[1..3] {
        assert_eq!(
            outcome,
            &Outcome {
                err: ERR_AUTH_FAILED,
                closed: true
            }
        );
    }
    assert!(ours[3].closed);
    if let Some(java) = java_zk(&jaas, &[PROVIDER]) {
        let theirs = malformed_scenario(&java.addr);
        assert_eq!(ours, theirs, "zkrs vs Apache ZooKeeper");
    }
}

/// `allowSaslFailedClients=true`: a failed step is answered OK without a token and the
/// connection stays (its requests are served, without the sasl id).
fn allow_failed_scenario(addr: &str) -> (i32, Option<Vec<u8>>, i32) {
    let mut raw = Raw::connect(addr, 10_000);
    assert_eq!(sasl_step(&mut raw, b"").expect("the challenge").0, 0);
    let (err, token) = sasl_step(&mut raw, b"username=\"bob\",nonce=\"x\"").expect("a reply");
    let reply = raw.call(
        raw::OP_GET_DATA,
        &Enc::new().string("/zookeeper").bool(false).finish(),
    );
    (err, token, reply.err)
}

#[test]
fn allow_sasl_failed_clients_keeps_the_connection() {
    if external() {
        return;
    }
    let jaas = Jaas::new(SERVER_JAAS);
    let extra = [PROVIDER, "allowSaslFailedClients=true"];
    let server = zkrs(&jaas, &extra);
    let ours = allow_failed_scenario(&server.addr);
    assert_eq!(ours, (0, None, 0));
    if let Some(java) = java_zk(&jaas, &extra) {
        assert_eq!(ours, allow_failed_scenario(&java.addr), "vs Java");
    }
}

/// Enforcement: an unauthenticated session's request is answered
/// SessionClosedRequireSaslAuth (-124) and its connection closed; a SASL session works.
fn enforcement_scenario(addr: &str) -> Vec<Outcome> {
    let mut out = Vec::new();
    for (op, body) in [
        (
            raw::OP_GET_DATA,
            Enc::new().string("/zookeeper").bool(false).finish(),
        ),
        (raw::OP_PING, Vec::new()),
        (
            raw::OP_CREATE,
            Enc::new()
                .string(&unique_prefix("enforced"))
                .buffer(b"x")
                .open_acl()
                .int(0)
                .finish(),
        ),
    ] {
        let mut raw = Raw::connect(addr, 10_000);
        let xid = if op == raw::OP_PING { -2 } else { 1 };
        raw.send_with_xid(xid, op, &body);
        let deadline = Instant::now() + Duration::from_secs(10);
        let err = loop {
            match raw.read_frame(deadline) {
                Ok(Frame::Reply(r)) if r.xid == xid => break r.err,
                Ok(_) => continue,
                Err(e) => panic!("no reply to op {op}: {e}"),
            }
        };
        out.push(outcome_of(&mut raw, err));
    }
    // A failed SASL step when SASL is required: SessionClosedRequireSaslAuth too.
    let mut raw = Raw::connect(addr, 10_000);
    assert_eq!(sasl_step(&mut raw, b"").expect("the challenge").0, 0);
    let (err, _) = sasl_step(&mut raw, b"junk").expect("a reply");
    out.push(outcome_of(&mut raw, err));
    out
}

#[test]
fn enforced_authentication_refuses_unauthenticated_sessions() {
    if external() {
        return;
    }
    let jaas = Jaas::new(SERVER_JAAS);
    for extra in [
        vec![PROVIDER, "sessionRequireClientSASLAuth=true"],
        vec![
            PROVIDER,
            "enforce.auth.enabled=true",
            "enforce.auth.schemes=sasl",
        ],
    ] {
        let server = zkrs(&jaas, &extra);
        let ours = enforcement_scenario(&server.addr);
        for outcome in &ours {
            assert_eq!(
                outcome,
                &Outcome {
                    err: ERR_SESSION_CLOSED_REQUIRE_SASL_AUTH,
                    closed: true
                },
                "{extra:?}: {ours:?}"
            );
        }
        if kazoo_available() {
            let node = unique_prefix("enforced-kazoo");
            let answer = kazoo(&server.addr, "bob", "bob-secret", "create", &node);
            assert_eq!(answer["result"], "ok", "{answer}");
        }
        if let Some(java) = java_zk(&jaas, &extra) {
            assert_eq!(ours, enforcement_scenario(&java.addr), "{extra:?}: vs Java");
        }
    }
    // enforce.auth.schemes=digest: a digest addauth is enough, sasl is not required.
    let server = zkrs(
        &jaas,
        &[
            PROVIDER,
            "enforce.auth.enabled=true",
            "enforce.auth.schemes=digest",
        ],
    );
    let mut raw = Raw::connect(&server.addr, 10_000);
    raw.send_with_xid(
        -4,
        100,
        &Enc::new().int(0).string("digest").buffer(b"u:p").finish(),
    );
    let reply = raw.wait_reply(-4);
    assert_eq!(reply.err, 0);
    let reply = raw.call(
        raw::OP_GET_DATA,
        &Enc::new().string("/zookeeper").bool(false).finish(),
    );
    assert_eq!(reply.err, 0);
    let mut unauthenticated = Raw::connect(&server.addr, 10_000);
    let xid = unauthenticated.send(
        raw::OP_GET_DATA,
        &Enc::new().string("/zookeeper").bool(false).finish(),
    );
    assert_eq!(
        unauthenticated.wait_reply(xid).err,
        ERR_SESSION_CLOSED_REQUIRE_SASL_AUTH
    );
}

/// Start-up refusals: a malformed JAAS file (naming its line), enforcement of a scheme
/// without its provider.
#[test]
fn bad_settings_refuse_to_start() {
    if external() {
        return;
    }
    let bin = env!("CARGO_BIN_EXE_zkrs");
    // `via_env`: the JAAS file is named only by SERVER_JVMFLAGS, as zkServer.sh passes it.
    let run = |jaas_text: &str, extra: &str, via_env: bool, expect: &[&str]| {
        let jaas = Jaas::new(jaas_text);
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("zoo.cfg");
        let jaas_line = if via_env {
            String::new()
        } else {
            jaas.cfg_line()
        };
        std::fs::write(
            &cfg,
            format!(
                "tickTime=200\ndataDir={}\nclientPort={}\nadmin.enableServer=false\n{jaas_line}\n{extra}\n",
                dir.path().join("data").display(),
                common::free_port(),
            ),
        )
        .unwrap();
        let mut cmd = Command::new(bin);
        cmd.arg("start-foreground").arg(&cfg);
        cmd.env_remove("JVMFLAGS");
        if via_env {
            cmd.env("SERVER_JVMFLAGS", format!("-Xmx1g {}", jaas.jvm_flag()));
        } else {
            cmd.env_remove("SERVER_JVMFLAGS");
        }
        let (ok, stdout, stderr) = run_limited(cmd);
        assert!(!ok, "started with {jaas_text:?} / {extra:?}");
        let text = format!("{stdout}{stderr}");
        for e in expect {
            assert!(text.contains(e), "expected {e:?} in:\n{text}");
        }
    };
    let check =
        |jaas_text: &str, extra: &str, expect: &[&str]| run(jaas_text, extra, false, expect);
    run(
        "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_bob=\"x\" !\n};\n",
        "",
        true,
        &["jaas.conf:3:", "unexpected character '!'"],
    );
    check(
        "Server {\n  org.apache.zookeeper.server.auth.DigestLoginModule required\n  user_bob=\"x\"\n};\n",
        "",
        &["jaas.conf:4:", "';' ending the entry"],
    );
    check(
        SERVER_JAAS,
        "sessionRequireClientSASLAuth=true",
        &["Authentication scheme sasl is not available"],
    );
}

/// A JAAS file that parses but has no Server section (e.g. a client-only file, as kazoo's
/// test harness writes for its clusters): the server starts without SASL, as ZooKeeper's
/// configureSaslLogin does (it refuses only a file it cannot read or parse), says so, and
/// a SASL request gets ZooKeeper's answer without a SASL server (OK, no token).
#[test]
fn a_jaas_file_without_a_server_section_leaves_sasl_off() {
    if external() {
        return;
    }
    let jaas = Jaas::new(
        "Client { org.apache.zookeeper.server.auth.DigestLoginModule required username=\"a\"; };",
    );
    let server = zkrs(&jaas, &[PROVIDER]);
    let log = std::fs::read_to_string(server.log_path().unwrap()).unwrap();
    assert!(
        log.contains("has no JAAS configuration section named 'Server'")
            && log.contains("serving without SASL"),
        "{log}"
    );
    let mut c = Raw::connect(&server.addr, 10_000);
    let body = Enc::new().buffer(b"").finish();
    let reply = c.call(OP_SASL, &body);
    assert_eq!(reply.err, 0, "a SASL request without a SASL server");
    assert_eq!(c.exists("/", false).err, 0, "the session goes on");
}

/// A Kerberos Server section: every SASL request fails with AuthFailed, and the log says
/// GSSAPI is not supported. Without any JAAS file a sasl request is answered OK with no token
/// (ZooKeeper's null SASL server).
#[test]
fn kerberos_is_refused_and_no_jaas_answers_empty() {
    if external() {
        return;
    }
    let jaas = Jaas::new(
        "Server {\n  com.sun.security.auth.module.Krb5LoginModule required\n  useKeyTab=true\n  \
         keyTab=\"/etc/zk.keytab\"\n  principal=\"zookeeper/host@EXAMPLE.COM\";\n};\n",
    );
    let server = zkrs(&jaas, &[PROVIDER]);
    let mut raw = Raw::connect(&server.addr, 10_000);
    let (err, _) = sasl_step(&mut raw, b"\x60\x82 gssapi token").expect("a reply");
    assert_eq!(
        outcome_of(&mut raw, err),
        Outcome {
            err: ERR_AUTH_FAILED,
            closed: true
        }
    );
    let log = std::fs::read_to_string(server.log_path().unwrap()).unwrap();
    assert!(log.contains("Kerberos (GSSAPI) is not supported"), "{log}");

    let no_jaas = |addr: &str| {
        let mut raw = Raw::connect(addr, 10_000);
        let step = sasl_step(&mut raw, b"");
        let reply = raw.call(
            raw::OP_GET_DATA,
            &Enc::new().string("/zookeeper").bool(false).finish(),
        );
        (step, reply.err)
    };
    let plain = TestServer::start();
    let ours = no_jaas(&plain.addr);
    assert_eq!(ours, (Some((0, None)), 0));
    if JavaZk::check_available().is_ok() {
        let java = JavaZk::start(&[]).expect("start Apache ZooKeeper");
        assert_eq!(ours, no_jaas(&java.addr), "no JAAS file: vs Java");
    }
}
