//! The operation generator: a seeded, deterministic stream of requests over a small path space
//! (`<root>/{a,b,c}` up to depth 3, plus sequential names seen in replies), so that requests
//! collide: creates on existing nodes, deletes of non-empty ones, stale versions, watches that
//! fire, ACLs that lock sessions out.
//!
//! The generator only sees what both servers answered identically (the driver stops at the
//! first difference), so feeding it one side's results keeps both runs on the same sequence.

use crate::common::raw::{
    OP_CHECK, OP_CREATE, OP_CREATE2, OP_CREATE_CONTAINER, OP_CREATE_TTL, OP_DELETE,
    OP_GET_CHILDREN, OP_GET_DATA, OP_SET_DATA,
};

/// Sessions per seed ("slots"); a closed session is replaced by a new one in its slot.
pub const SLOTS: usize = 3;
/// The slot whose sessions authenticate as digest `u1:p1`.
pub const AUTH_SLOT: usize = 2;
/// The slot whose sessions ask for a short timeout, so that one can expire during a run.
pub const SHORT_SLOT: usize = 1;
pub const U1: &str = "u1:p1";
pub const U2: &str = "u2:p2";
/// Session expiries per seed at most (each costs the short timeout plus a margin).
const MAX_EXPIRES: usize = 1;
/// A TTL at most this long (ms) expires during the run; the driver waits for it to go.
pub const SHORT_TTL_MS: i64 = 1000;
const LONG_TTL_MS: i64 = 3_600_000;

// Op shapes left out of the generator because zkrs answers them differently from ZooKeeper
// (known differences D1..D8, see each constant) or because ZooKeeper itself breaks on them.
// Flip one to true to exercise the shape again (e.g. after fixing zkrs).

/// Null data (buffer length -1) in create/setData. Was zkrs difference D1 (a null buffer
/// read as empty, so getData answered length 0 where ZooKeeper answers -1); fixed: zkrs
/// keeps null data null.
pub const GEN_NULL_DATA: bool = true;
/// A top-level `check` (opcode 13; no 3.8 client API sends it). ZooKeeper 3.8 runs it as a
/// write: a failing check is an error txn (BadVersion/NoNode..., a zxid consumed, connection
/// kept); zkrs does the same (D2, fixed). Only failing checks are generated (see the next
/// constant).
pub const GEN_TOP_LEVEL_CHECK: bool = true;
/// A top-level check that succeeds: ZooKeeper 3.8 applies the txn, then fails serialising
/// `SetDataResponse(null stat)`, drops the connection and the session is gone (closed).
pub const GEN_TOP_LEVEL_CHECK_OK: bool = false;
/// Inside a multi, a create opcode that does not match the create mode (create/create2/
/// createContainer with a TTL mode, so without a ttl; or a TTL/container opcode with another
/// mode). zkrs difference D3: for a TTL mode without createTTL, ZooKeeper (3.8.0 and 3.8.2+)
/// rejects the whole multi: MarshallingError (-5) in the header, no body, a zxid consumed;
/// zkrs answers a result list with BadArguments (-8). The other mismatches are D5.
pub const GEN_MULTI_OPCODE_MISMATCH: bool = false;
/// checkWatches at all. zkrs difference D4: ZooKeeper 3.8 answers OK when ANY session has a
/// watch of that type on the path (WatchManager.containsWatcher quirk); zkrs emulates the
/// quirk per shard only (each shard's WatchTable), so the answer depends on which shard the
/// watching and the asking sessions landed on (NoWatcher -121 when they differ). Generated
/// anyway when zkrs runs one shard (ZKRS_TEST_SHARDS=1), where the quirk is reproduced.
pub const GEN_CHECK_WATCHES: bool = false;
/// create2 (opcode 15) inside a multi. Version-dependent difference D5: Debian's ZooKeeper
/// 3.8.0 takes a multi create's type from its flags, so create2 decays to create (result
/// without a stat) and createContainer with a plain mode makes a plain node; 3.8.2+
/// (ZOOKEEPER-4026) keeps the opcode (create2 -> path + stat). zkrs answers like 3.8.2+.
pub const GEN_MULTI_CREATE2: bool = false;
/// createTTL (opcode 21) with a non-TTL mode and a negative ttl. zkrs difference D6:
/// ZooKeeper accepts the shape (validateTTL only rejects ttl >= 0 for non-TTL modes) and
/// goes on to its other checks (NodeExists, NoNode, ...); zkrs answers BadArguments first.
/// When every check passes, ZooKeeper applies a CreateTTLTxn whose ttl its DataTree rejects
/// with an exception, so the shape cannot be run to success against it anyway.
pub const GEN_TTL_OPCODE_NEGATIVE_TTL_NON_TTL_MODE: bool = false;
/// An `auth` ACL from a session with two or more authenticated ids. zkrs difference D7:
/// ZooKeeper keeps a connection's auth ids in a ConcurrentHashMap-backed set, so it expands
/// the ACL in Java hash order (digest:u2 before digest:u1); zkrs in the order the ids were
/// added. (whoAmI has the same difference; the normaliser sorts it, see side.rs.)
pub const GEN_AUTH_ACL_MULTI_IDS: bool = false;
/// An unknown create flag (7, -1, 100) inside a multi. Version-dependent difference D8:
/// Debian's ZooKeeper 3.8.0 reads it as persistent while decoding the multi, then fails that
/// op with BadArguments (-8) in a normal per-op result list; 3.8.2+ rejects the whole multi
/// while decoding: MarshallingError (-5) in the header, no body, a zxid consumed. zkrs
/// answers like 3.8.2+.
pub const GEN_MULTI_BAD_FLAGS: bool = false;

/// A read (getData/getChildren) inside a write multi, or a check inside a multiRead: both
/// servers refuse to decode the mix (MarshallingError -5; for a multi a zxid is consumed).
pub const GEN_MULTI_READ_IN_WRITE: bool = true;

fn gen_check_watches() -> bool {
    GEN_CHECK_WATCHES || std::env::var("ZKRS_TEST_SHARDS").as_deref() == Ok("1")
}

/// splitmix64: small, fast and the same on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, pct: usize) -> bool {
        self.below(100) < pct
    }
    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    /// Index into `weights`, drawn with those relative weights.
    pub fn weighted(&mut self, weights: &[usize]) -> usize {
        let total: usize = weights.iter().sum();
        let mut r = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            if r < *w {
                return i;
            }
            r -= w;
        }
        weights.len() - 1
    }
}

/// An ACL list to send, by intent; `entries` gives the wire form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acl {
    /// world:anyone with all permissions.
    Open,
    /// world:anyone with the given permissions.
    World(i32),
    /// digest u1 (the auth slot's identity) with the given permissions.
    DigestU1(i32),
    /// digest u1 all + world:anyone read.
    DigestU1WorldRead,
    /// `auth` scheme: the creator's authenticated ids (InvalidACL without any).
    Auth(i32),
    /// The super user only.
    SuperOnly,
    /// ip ACL for loopback (everyone here) or for another network (nobody here).
    Ip(&'static str, i32),
    /// The same entry twice.
    Duplicate,
    // Invalid lists.
    Empty,
    BadScheme,
    WorldNotAnyone,
    BadIp,
    DigestNoColon,
}

impl Acl {
    pub fn entries(&self) -> Vec<(i32, String, String)> {
        let e = |p: i32, s: &str, i: &str| (p, s.to_string(), i.to_string());
        match self {
            Acl::Open => vec![e(31, "world", "anyone")],
            Acl::World(p) => vec![e(*p, "world", "anyone")],
            Acl::DigestU1(p) => vec![e(*p, "digest", &crate::common::digest(U1))],
            Acl::DigestU1WorldRead => vec![
                e(31, "digest", &crate::common::digest(U1)),
                e(1, "world", "anyone"),
            ],
            Acl::Auth(p) => vec![e(*p, "auth", "")],
            Acl::SuperOnly => vec![e(31, "digest", &crate::common::digest("super:superpw"))],
            Acl::Ip(net, p) => vec![e(*p, "ip", net)],
            Acl::Duplicate => vec![e(31, "world", "anyone"), e(31, "world", "anyone")],
            Acl::Empty => vec![],
            Acl::BadScheme => vec![e(31, "nosuchscheme", "x")],
            Acl::WorldNotAnyone => vec![e(31, "world", "someone")],
            Acl::BadIp => vec![e(31, "ip", "not-an-ip")],
            Acl::DigestNoColon => vec![e(31, "digest", "nocolon")],
        }
    }
}

/// A create request (any of the four create opcodes).
#[derive(Clone, Debug)]
pub struct CreateSpec {
    pub opcode: i32,
    pub path: String,
    pub data: Option<Vec<u8>>,
    pub acl: Acl,
    pub flags: i32,
    /// Present exactly when the opcode is createTTL (the body is CreateTTLRequest).
    pub ttl: Option<i64>,
}

/// One operation of a multi.
#[derive(Clone, Debug)]
pub enum SubOp {
    Create(CreateSpec),
    Delete {
        path: String,
        version: i32,
    },
    SetData {
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Check {
        path: String,
        version: i32,
    },
    /// getChildren (true) or getData, which a write multi does not allow.
    Read {
        children: bool,
        path: String,
    },
}

/// setWatches / setWatches2 sent right after a reconnect.
#[derive(Clone, Debug)]
pub struct SetW {
    pub v2: bool,
    /// relativeZxid = the session's last seen zxid minus this.
    pub back: i64,
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub recursive: Vec<String>,
}

/// One step of a run. `slot` names the session that sends it.
#[derive(Clone, Debug)]
pub enum Op {
    Create {
        slot: usize,
        spec: CreateSpec,
    },
    Delete {
        slot: usize,
        path: String,
        version: i32,
    },
    SetData {
        slot: usize,
        path: String,
        data: Option<Vec<u8>>,
        version: i32,
    },
    Exists {
        slot: usize,
        path: String,
        watch: bool,
    },
    GetData {
        slot: usize,
        path: String,
        watch: bool,
    },
    GetChildren {
        slot: usize,
        path: String,
        watch: bool,
    },
    GetChildren2 {
        slot: usize,
        path: String,
        watch: bool,
    },
    GetAcl {
        slot: usize,
        path: String,
    },
    SetAcl {
        slot: usize,
        path: String,
        acl: Acl,
        version: i32,
    },
    GetAllChildrenNumber {
        slot: usize,
        path: String,
    },
    GetEphemerals {
        slot: usize,
        prefix: String,
    },
    Sync {
        slot: usize,
        path: String,
    },
    WhoAmI {
        slot: usize,
    },
    /// Top-level check (opcode 13).
    Check {
        slot: usize,
        path: String,
        version: i32,
    },
    Multi {
        slot: usize,
        ops: Vec<SubOp>,
    },
    /// (is getChildren, path, watch flag sent); the flag is ignored inside multiRead.
    /// `check_version`: a check op (a write kind, not allowed) appended with that version.
    MultiRead {
        slot: usize,
        ops: Vec<(bool, String, bool)>,
        check_version: Option<i32>,
    },
    AddWatch {
        slot: usize,
        path: String,
        mode: i32,
    },
    CheckWatches {
        slot: usize,
        path: String,
        wtype: i32,
    },
    RemoveWatches {
        slot: usize,
        path: String,
        wtype: i32,
    },
    /// Drop the TCP connection, reattach the session on a new one, then optionally
    /// setWatches and addauth again (the auth slot's identity).
    /// `bad_password`: first try to resume with a wrong password (refused). `keep_old`: the
    /// old connection stays open during the resume (the server should close it).
    Reconnect {
        slot: usize,
        bad_password: bool,
        keep_old: bool,
        set_watches: Option<SetW>,
        reauth: bool,
    },
    /// closeSession, then a new session takes the slot.
    CloseSession {
        slot: usize,
    },
    /// Drop the connection and let the session expire (the driver waits), check that it
    /// cannot be resumed, then a new session takes the slot.
    Expire {
        slot: usize,
    },
    Ping {
        slot: usize,
    },
    AddAuth {
        slot: usize,
        scheme: String,
        auth: String,
    },
}

impl Op {
    pub fn slot(&self) -> usize {
        match self {
            Op::Create { slot, .. }
            | Op::Delete { slot, .. }
            | Op::SetData { slot, .. }
            | Op::Exists { slot, .. }
            | Op::GetData { slot, .. }
            | Op::GetChildren { slot, .. }
            | Op::GetChildren2 { slot, .. }
            | Op::GetAcl { slot, .. }
            | Op::SetAcl { slot, .. }
            | Op::GetAllChildrenNumber { slot, .. }
            | Op::GetEphemerals { slot, .. }
            | Op::Sync { slot, .. }
            | Op::WhoAmI { slot }
            | Op::Check { slot, .. }
            | Op::Multi { slot, .. }
            | Op::MultiRead { slot, .. }
            | Op::AddWatch { slot, .. }
            | Op::CheckWatches { slot, .. }
            | Op::RemoveWatches { slot, .. }
            | Op::Reconnect { slot, .. }
            | Op::CloseSession { slot }
            | Op::Expire { slot }
            | Op::Ping { slot }
            | Op::AddAuth { slot, .. } => *slot,
        }
    }
}

/// Deterministic op stream for one seed.
pub struct Gen {
    rng: Rng,
    root: String,
    /// Paths seen created in replies, newest last (sequential names are unguessable, and
    /// picking existing nodes makes deletes and updates succeed more often).
    known: Vec<String>,
    /// Per slot: paths this slot recently asked to watch (removeWatches picks from them).
    watched: Vec<Vec<String>>,
    /// Per slot: the digest identities its connection is authenticated with.
    auth_ids: Vec<Vec<&'static str>>,
    expires: usize,
    /// The tree is shared with other runs (sides of one ensemble, one after the other):
    /// the odd paths outside the root (`/`, `/zookeeper/...`) are taken inside it instead,
    /// as their state there would carry the other runs' history.
    shared_tree: bool,
}

const NAMES: [&str; 3] = ["a", "b", "c"];
const MAX_KNOWN: usize = 40;
const MAX_WATCHED: usize = 8;

impl Gen {
    pub fn new(seed: u64, root: &str) -> Gen {
        Gen {
            rng: Rng::new(seed),
            root: root.to_string(),
            known: Vec::new(),
            watched: vec![Vec::new(); SLOTS],
            auth_ids: (0..SLOTS).map(Self::initial_auth).collect(),
            expires: 0,
            shared_tree: false,
        }
    }

    /// As `new`, for a tree other runs share: the same sequence of operations, with the
    /// odd paths outside the root moved inside it (the random choices are the same).
    pub fn new_in_shared_tree(seed: u64, root: &str) -> Gen {
        Gen {
            shared_tree: true,
            ..Gen::new(seed, root)
        }
    }

    /// Remembers a path a create returned.
    pub fn observe_created(&mut self, path: &str) {
        if path.starts_with(&self.root) && !self.known.iter().any(|p| p == path) {
            self.known.push(path.to_string());
            if self.known.len() > MAX_KNOWN {
                self.known.remove(0);
            }
        }
    }

    fn initial_auth(slot: usize) -> Vec<&'static str> {
        if slot == AUTH_SLOT {
            vec![U1]
        } else {
            Vec::new()
        }
    }

    fn note_watch(&mut self, slot: usize, path: &str) {
        let w = &mut self.watched[slot];
        w.retain(|p| p != path);
        w.push(path.to_string());
        if w.len() > MAX_WATCHED {
            w.remove(0);
        }
    }

    /// A path for a watch request, remembered for removeWatches.
    fn watch_path(&mut self, slot: usize, watch: bool) -> String {
        let p = if self.rng.chance(12) {
            self.root.clone()
        } else {
            self.path()
        };
        if watch {
            self.note_watch(slot, &p);
        }
        p
    }

    fn slot(&mut self) -> usize {
        self.rng.below(SLOTS)
    }

    /// A path in the small space, occasionally the root, a sequential name or an invalid one.
    pub fn path(&mut self) -> String {
        let r = self.rng.below(100);
        if r < 4 {
            return self.odd_path();
        }
        if r < 8 {
            return self.root.clone();
        }
        if r < 34 && !self.known.is_empty() {
            let p = self.rng.pick(&self.known);
            // Sometimes a child of it (NoChildrenForEphemerals, deeper trees).
            if self.rng.chance(20) {
                return format!("{p}/{}", self.rng.pick(&NAMES));
            }
            return p;
        }
        self.regular_path()
    }

    fn regular_path(&mut self) -> String {
        let depth = 1 + self.rng.weighted(&[45, 35, 20]);
        let mut p = self.root.clone();
        for _ in 0..depth {
            p.push('/');
            p.push_str(NAMES[self.rng.below(NAMES.len())]);
        }
        p
    }

    /// Paths that are invalid, special or at the edge of validity.
    fn odd_path(&mut self) -> String {
        let r = &self.root;
        let choices = [
            String::new(),
            "a".to_string(),
            "/".to_string(),
            format!("{r}/a/"),
            format!("{r}//a"),
            format!("{r}/./a"),
            format!("{r}/../a"),
            format!("{r}/."),
            format!("{r}/a\u{0}b"),
            format!("{r}/\u{e9}t\u{e9}"),
            format!("{r}/a b"),
            "/zookeeper".to_string(),
            "/zookeeper/quota".to_string(),
            "/zookeeper/config".to_string(),
            "/zookeeper/x".to_string(),
            format!("{r}/zookeeper"),
        ];
        let picked = self.rng.pick(&choices);
        if self.shared_tree && (picked == "/" || picked.starts_with("/zookeeper")) {
            return format!("{r}/outside{}", &picked[1..]);
        }
        picked
    }

    fn data(&mut self) -> Option<Vec<u8>> {
        match self.rng.below(10) {
            0 if GEN_NULL_DATA => None,
            0 => Some(b"n".to_vec()),
            1 => Some(Vec::new()),
            2..=4 => Some(b"x".to_vec()),
            5..=7 => Some(b"hello".to_vec()),
            8 => Some(vec![0, 255, 7]),
            _ => Some(vec![b'z'; 40]),
        }
    }

    fn version(&mut self) -> i32 {
        match self.rng.below(20) {
            0..=9 => -1,
            10..=13 => 0,
            14..=16 => 1,
            17 => 2,
            18 => 5,
            _ => -2,
        }
    }

    fn acl(&mut self, slot: usize) -> Acl {
        let acl = self.any_acl();
        if matches!(acl, Acl::Auth(_)) && self.auth_ids[slot].len() > 1 && !GEN_AUTH_ACL_MULTI_IDS {
            return Acl::Open;
        }
        acl
    }

    fn any_acl(&mut self) -> Acl {
        match self.rng.below(100) {
            0..=54 => Acl::Open,
            55..=59 => Acl::World(self.rng.pick(&[1, 3, 5, 7, 15, 17, 23, 27, 29, 0])),
            60..=66 => Acl::DigestU1(self.rng.pick(&[31, 1, 15])),
            67..=70 => Acl::DigestU1WorldRead,
            71..=76 => Acl::Auth(self.rng.pick(&[31, 7])),
            77 => Acl::SuperOnly,
            78..=80 => Acl::Ip("127.0.0.1", 31),
            81 => Acl::Ip("10.0.0.0/8", 31),
            82 => Acl::Ip("127.0.0.0/8", 3),
            83..=85 => Acl::Duplicate,
            86..=88 => Acl::Empty,
            89..=91 => Acl::BadScheme,
            92..=93 => Acl::WorldNotAnyone,
            94..=96 => Acl::BadIp,
            _ => Acl::DigestNoColon,
        }
    }

    fn create_spec(&mut self, slot: usize, in_multi: bool) -> CreateSpec {
        // CreateMode flag: persistent, ephemeral, sequential, ephemeral sequential, container,
        // TTL, TTL sequential; rarely an unknown one (top-level only: inside a multi an
        // unknown flag is a marshalling failure that closes the connection).
        let flags = match self.rng.weighted(&[26, 15, 15, 10, 12, 12, 6, 2]) {
            7 if !in_multi || GEN_MULTI_BAD_FLAGS => self.rng.pick(&[7, -1, 100]),
            7 => 0,
            f => f as i32,
        };
        let opcode = if self.rng.chance(6) && (!in_multi || GEN_MULTI_OPCODE_MISMATCH) {
            // Opcode not matching the mode.
            self.rng
                .pick(&[OP_CREATE, OP_CREATE2, OP_CREATE_CONTAINER, OP_CREATE_TTL])
        } else {
            match flags {
                4 => OP_CREATE_CONTAINER,
                5 | 6 => OP_CREATE_TTL,
                _ if in_multi && !GEN_MULTI_CREATE2 => OP_CREATE,
                _ => self.rng.pick(&[OP_CREATE, OP_CREATE2]),
            }
        };
        let ttl_mode = matches!(flags, 5 | 6);
        let ttl = (opcode == OP_CREATE_TTL).then(|| match self.rng.below(20) {
            0..=14 => LONG_TTL_MS,
            15..=16 => 1,
            17 => 0,
            18 if ttl_mode || GEN_TTL_OPCODE_NEGATIVE_TTL_NON_TTL_MODE => -5,
            18 => 0,
            _ => 1 << 40,
        });
        CreateSpec {
            opcode,
            path: self.path(),
            data: self.data(),
            acl: if self.rng.chance(85) {
                Acl::Open
            } else {
                self.acl(slot)
            },
            flags,
            ttl,
        }
    }

    fn sub_op(&mut self, slot: usize) -> SubOp {
        let reads = if GEN_MULTI_READ_IN_WRITE { 2 } else { 0 };
        match self.rng.weighted(&[40, 20, 20, 20, reads]) {
            0 => SubOp::Create(self.create_spec(slot, true)),
            1 => SubOp::Delete {
                path: self.path(),
                version: self.version(),
            },
            2 => SubOp::SetData {
                path: self.path(),
                data: self.data(),
                version: self.version(),
            },
            3 => SubOp::Check {
                path: self.path(),
                version: self.version(),
            },
            _ => SubOp::Read {
                children: self.rng.chance(50),
                path: self.path(),
            },
        }
    }

    fn paths(&mut self, max: usize) -> Vec<String> {
        let n = self.rng.below(max + 1);
        (0..n).map(|_| self.path()).collect()
    }

    /// The next operation.
    pub fn next_op(&mut self) -> Op {
        let slot = self.slot();
        let weights = [
            24,                                      // 0 create
            10,                                      // 1 delete
            10,                                      // 2 setData
            6,                                       // 3 exists
            6,                                       // 4 getData
            4,                                       // 5 getChildren
            4,                                       // 6 getChildren2
            3,                                       // 7 getACL
            4,                                       // 8 setACL
            2,                                       // 9 getAllChildrenNumber
            2,                                       // 10 getEphemerals
            1,                                       // 11 sync
            1,                                       // 12 whoAmI
            9,                                       // 13 multi
            3,                                       // 14 multiRead
            4,                                       // 15 addWatch
            2 * usize::from(gen_check_watches()),    // 16 checkWatches
            3,                                       // 17 removeWatches
            2,                                       // 18 reconnect
            2,                                       // 19 closeSession
            1,                                       // 20 addauth
            usize::from(GEN_TOP_LEVEL_CHECK),        // 21 top-level check
            1,                                       // 22 ping
            usize::from(self.expires < MAX_EXPIRES), // 23 session expiry
        ];
        match self.rng.weighted(&weights) {
            0 => Op::Create {
                slot,
                spec: self.create_spec(slot, false),
            },
            1 => Op::Delete {
                slot,
                path: self.path(),
                version: self.version(),
            },
            2 => Op::SetData {
                slot,
                path: self.path(),
                data: self.data(),
                version: self.version(),
            },
            3 => {
                let watch = self.rng.chance(70);
                Op::Exists {
                    slot,
                    path: self.watch_path(slot, watch),
                    watch,
                }
            }
            4 => {
                let watch = self.rng.chance(70);
                Op::GetData {
                    slot,
                    path: self.watch_path(slot, watch),
                    watch,
                }
            }
            5 => {
                let watch = self.rng.chance(70);
                Op::GetChildren {
                    slot,
                    path: self.watch_path(slot, watch),
                    watch,
                }
            }
            6 => {
                let watch = self.rng.chance(70);
                Op::GetChildren2 {
                    slot,
                    path: self.watch_path(slot, watch),
                    watch,
                }
            }
            7 => Op::GetAcl {
                slot,
                path: self.path(),
            },
            8 => Op::SetAcl {
                slot,
                path: self.path(),
                acl: self.acl(slot),
                version: self.version(),
            },
            9 => Op::GetAllChildrenNumber {
                slot,
                path: self.path(),
            },
            10 => Op::GetEphemerals {
                slot,
                prefix: match self.rng.below(4) {
                    0 => self.root.clone(),
                    1 => format!("{}/a", self.root),
                    2 => format!("{}/b/", self.root),
                    _ => self.path(),
                },
            },
            11 => Op::Sync {
                slot,
                path: self.path(),
            },
            12 => Op::WhoAmI { slot },
            13 => {
                let n = self.rng.weighted(&[1, 6, 6, 4, 3]);
                Op::Multi {
                    slot,
                    ops: (0..n).map(|_| self.sub_op(slot)).collect(),
                }
            }
            14 => {
                let n = 1 + self.rng.below(3);
                Op::MultiRead {
                    slot,
                    ops: (0..n)
                        .map(|_| (self.rng.chance(50), self.path(), self.rng.chance(30)))
                        .collect(),
                    check_version: (GEN_MULTI_READ_IN_WRITE && self.rng.chance(5)).then_some(-1),
                }
            }
            15 => Op::AddWatch {
                slot,
                path: self.watch_path(slot, true),
                // 2 is no mode (an error).
                mode: self.rng.pick(&[0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2]),
            },
            16 => Op::CheckWatches {
                slot,
                path: self.path(),
                wtype: self.rng.pick(&[1, 2, 3, 3, 4, 5]),
            },
            17 => {
                let path = if self.rng.chance(75) && !self.watched[slot].is_empty() {
                    let p = self.rng.pick(&self.watched[slot]);
                    self.watched[slot].retain(|w| *w != p);
                    p
                } else {
                    self.path()
                };
                // 4 and 5 (persistent kinds) are 3.9 types; 0 is none.
                let wtype = match self.rng.below(20) {
                    0 => self.rng.pick(&[0, 4, 5]),
                    1..=6 => 1,
                    7..=12 => 2,
                    _ => 3,
                };
                Op::RemoveWatches { slot, path, wtype }
            }
            18 => {
                let reauth = self.rng.chance(70);
                if !reauth {
                    self.auth_ids[slot].clear();
                }
                Op::Reconnect {
                    slot,
                    bad_password: self.rng.chance(15),
                    keep_old: self.rng.chance(30),
                    set_watches: self.rng.chance(80).then(|| SetW {
                        v2: self.rng.chance(60),
                        back: self.rng.pick(&[0, 0, 1, 3, 10, 1000]),
                        data: self.paths(2),
                        exist: self.paths(2),
                        child: self.paths(2),
                        persistent: self.paths(1),
                        recursive: self.paths(1),
                    }),
                    reauth,
                }
            }
            19 => {
                self.watched[slot].clear();
                self.auth_ids[slot] = Self::initial_auth(slot);
                Op::CloseSession { slot }
            }
            20 => {
                let (scheme, auth) = match self.rng.below(6) {
                    0..=2 => ("digest", U2),
                    3 => ("digest", U1),
                    4 => ("digest", "super:superpw"),
                    _ => ("nosuchscheme", "x"),
                };
                if scheme == "digest" && !self.auth_ids[slot].contains(&auth) {
                    self.auth_ids[slot].push(auth);
                }
                Op::AddAuth {
                    slot,
                    scheme: scheme.to_string(),
                    auth: auth.to_string(),
                }
            }
            22 => Op::Ping { slot },
            23 => {
                self.expires += 1;
                self.watched[SHORT_SLOT].clear();
                self.auth_ids[SHORT_SLOT] = Self::initial_auth(SHORT_SLOT);
                Op::Expire { slot: SHORT_SLOT }
            }
            _ => {
                let path = self.path();
                // Only versions that cannot match, unless enabled (see the constant).
                let version = if GEN_TOP_LEVEL_CHECK_OK {
                    self.version()
                } else {
                    self.rng.pick(&[-3, -4])
                };
                Op::Check {
                    slot,
                    path,
                    version,
                }
            }
        }
    }
}

/// Wire opcode of a multi sub-operation.
pub fn sub_opcode(op: &SubOp) -> i32 {
    match op {
        SubOp::Create(spec) => spec.opcode,
        SubOp::Delete { .. } => OP_DELETE,
        SubOp::SetData { .. } => OP_SET_DATA,
        SubOp::Check { .. } => OP_CHECK,
        SubOp::Read { children, .. } => read_opcode(*children),
    }
}

/// Wire opcode of a multiRead sub-operation.
pub fn read_opcode(children: bool) -> i32 {
    if children {
        OP_GET_CHILDREN
    } else {
        OP_GET_DATA
    }
}
