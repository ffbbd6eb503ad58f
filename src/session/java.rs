//! Apache ZooKeeper's session ids and passwords, reproduced bit for bit, so a client can fail
//! over between zkrs and Java servers of one ensemble: every server must derive the same
//! password from a session id, and ids chosen by different servers must not collide.
//!
//! Facts (branch-3.8):
//! * `ZooKeeperServer.generatePasswd(id)`: 16 bytes of `new java.util.Random(id ^ 0xB3415C00L)
//!   .nextBytes`. Only the low 48 bits of the seed count (Random's state is 48 bits), so ids
//!   that differ only in their top 16 bits share a password.
//! * `SessionTrackerImpl.initializeNextSessionId(sid)`: `((Time.currentElapsedTime() << 24)
//!   >>> 8) | (sid << 56)`, plus one if that equals `Long.MIN_VALUE` (the container owner
//!   marker); then `nextSessionId.getAndIncrement()` per session (no further skipping). The
//!   leader's and the learners' trackers (`LearnerSessionTracker`) all initialize this way;
//!   a standalone server uses sid 1. `currentElapsedTime()` is `System.nanoTime() / 1e6`, a
//!   monotonic clock (`CLOCK_MONOTONIC` on Linux), not the wall clock.
//! * `java.util.Random` itself is specified by its javadoc: a 48-bit linear congruential
//!   generator (multiplier 0x5DEECE66D, addend 0xB), seeded with `seed ^ 0x5DEECE66D`.
//!
//! Architecture Invariant: pure arithmetic; the caller reads the clock.

/// The multiplier of `java.util.Random`'s LCG (also XORed into the seed).
const MULTIPLIER: u64 = 0x5_DEEC_E66D;
/// The addend of `java.util.Random`'s LCG.
const ADDEND: u64 = 0xB;
/// The state is 48 bits wide.
const STATE_MASK: u64 = (1 << 48) - 1;
/// `ZooKeeperServer.superSecret`, XORed into the session id to seed the password generator.
pub const PASSWORD_SECRET: i64 = 0xB341_5C00;
/// Length of a session password.
pub const PASSWORD_LEN: usize = 16;
/// The id ZooKeeper never starts a tracker at (`EphemeralType.CONTAINER_EPHEMERAL_OWNER`).
const CONTAINER_OWNER: i64 = i64::MIN;

/// `java.util.Random`: the same sequence as Java's for the same seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaRandom {
    /// Invariant: `state <= STATE_MASK` (48 bits).
    state: u64,
}

impl JavaRandom {
    /// `new Random(seed)`: the seed scrambled with the multiplier, cut to 48 bits.
    pub fn new(seed: i64) -> JavaRandom {
        JavaRandom {
            state: (seed as u64 ^ MULTIPLIER) & STATE_MASK,
        }
    }

    /// `Random.next(bits)`: advances the state and returns its top `bits` bits (1..=32),
    /// as Java's `int` (so `next(32)` may be negative).
    pub fn next(&mut self, bits: u32) -> i32 {
        debug_assert!((1..=32).contains(&bits), "next({bits})");
        self.state = (self.state.wrapping_mul(MULTIPLIER).wrapping_add(ADDEND)) & STATE_MASK;
        (self.state >> (48 - bits.clamp(1, 32))) as u32 as i32
    }

    /// `Random.nextInt()`.
    pub fn next_int(&mut self) -> i32 {
        self.next(32)
    }

    /// `Random.nextInt(bound)`, uniform in `0..bound`; None for a bound that is not positive
    /// (Java throws IllegalArgumentException).
    pub fn next_int_below(&mut self, bound: i32) -> Option<i32> {
        if bound <= 0 {
            return None;
        }
        let mut r = self.next(31);
        let m = bound - 1;
        if bound & m == 0 {
            // A power of two: the high bits are the better ones.
            return Some(((bound as i64 * r as i64) >> 31) as i32);
        }
        // Rejects the values of the last, partial run of `bound` (Java detects it by the
        // int overflow of `u - r + m`).
        let mut u = r;
        loop {
            r = u % bound;
            if u.wrapping_sub(r).wrapping_add(m) >= 0 {
                return Some(r);
            }
            u = self.next(31);
        }
    }

    /// `Random.nextLong()`: two `next(32)`, the first as the high half (added, as Java adds
    /// a sign-extended low half).
    pub fn next_long(&mut self) -> i64 {
        let high = (self.next(32) as i64) << 32;
        high.wrapping_add(self.next(32) as i64)
    }

    /// `Random.nextBytes(bytes)`: one `nextInt()` per 4 bytes, low byte first; the last
    /// int's unused bytes are dropped.
    pub fn next_bytes(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(4) {
            let word = self.next_int().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// The password ZooKeeper gives session `session_id` (`ZooKeeperServer.generatePasswd`).
pub fn session_password(session_id: i64) -> [u8; PASSWORD_LEN] {
    let mut password = [0u8; PASSWORD_LEN];
    JavaRandom::new(session_id ^ PASSWORD_SECRET).next_bytes(&mut password);
    password
}

/// The first session id a ZooKeeper session tracker of server `server_id` hands out when
/// started at `elapsed_ms` of the monotonic clock (`initializeNextSessionId`): the low 40
/// bits of `elapsed_ms` in bits 16..56, the low 8 bits of `server_id` in the top byte, the
/// low 16 bits zero (the per-session counter starts there).
pub fn initial_session_id(server_id: u64, elapsed_ms: i64) -> i64 {
    // Java: (t << 24) >>> 8, an unsigned shift, so the top byte is zero before the sid goes in.
    let time_part = (((elapsed_ms as u64) << 24) >> 8) as i64;
    let id = time_part | ((server_id as i64) << 56);
    if id == CONTAINER_OWNER {
        return id + 1;
    }
    id
}

/// Hands out session ids as ZooKeeper's trackers do: from [`initial_session_id`], one more
/// per session (`AtomicLong.getAndIncrement`, wrapping as a Java long does).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JavaSessionIds {
    /// The id the next session gets.
    next: i64,
}

impl JavaSessionIds {
    /// A tracker started at `elapsed_ms` (monotonic milliseconds) on server `server_id`.
    pub fn new(server_id: u64, elapsed_ms: i64) -> JavaSessionIds {
        JavaSessionIds {
            next: initial_session_id(server_id, elapsed_ms),
        }
    }

    /// The id the next [`JavaSessionIds::allocate`] returns.
    pub fn peek(&self) -> i64 {
        self.next
    }

    /// Takes the next id.
    pub fn allocate(&mut self) -> i64 {
        let id = self.next;
        self.next = self.next.wrapping_add(1);
        id
    }
}

/// The server id in a ZooKeeper session id (its top byte).
pub fn server_of_session(session_id: i64) -> u8 {
    (session_id as u64 >> 56) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    // The expected values below were printed by OpenJDK 17's java.util.Random.

    #[test]
    fn random_matches_java() {
        assert_eq!(JavaRandom::new(42).next_int(), -1_170_105_035);
        let mut r = JavaRandom::new(42);
        assert_eq!(r.next_long(), -5_025_562_857_975_149_833);
        assert_eq!(r.next_int_below(10), Some(8));
        assert_eq!(r.next_int_below(1000), Some(884));
        assert_eq!(r.next_int_below(1 << 20), Some(323_715));
        let mut r = JavaRandom::new(-7);
        assert_eq!(r.next_int(), 1_155_869_324);
        assert_eq!(r.next_long(), -1_817_049_056_290_694_612);
        assert_eq!(JavaRandom::new(1).next_int_below(0), None);
        assert_eq!(JavaRandom::new(1).next_int_below(-5), None);
    }

    #[test]
    fn next_bytes_drops_the_unused_end_of_the_last_int() {
        let mut seven = [0u8; 7];
        JavaRandom::new(5).next_bytes(&mut seven);
        assert_eq!(hex(&seven), "bf5903bb58cb35");
        // Low byte first: the first 4 bytes are the first nextInt, little-endian.
        let first = JavaRandom::new(5).next_int();
        assert_eq!(seven[..4], first.to_le_bytes());
        let mut empty = [0u8; 0];
        JavaRandom::new(5).next_bytes(&mut empty);
    }

    #[test]
    fn passwords_match_java() {
        let cases: [(i64, &str); 6] = [
            (0, "f22acd4a97e69d6d20a49bb638eadb38"),
            (1, "054cc74a37327db215e702e20c73f005"),
            (0x0100_0000_0000_0001, "054cc74a37327db215e702e20c73f005"),
            (0x0163_7f1c_2a0b_0000, "f7afa21bb807a6242d65411bc1cadc3c"),
            (-1, "20f62cb5648dc2d771471c8a2486a9ee"),
            (i64::MIN, "f22acd4a97e69d6d20a49bb638eadb38"),
        ];
        for (id, expected) in cases {
            assert_eq!(hex(&session_password(id)), expected, "session {id:#x}");
        }
    }

    #[test]
    fn initial_ids_put_the_server_in_the_top_byte_and_time_below() {
        let id = initial_session_id(1, 0x12_3456_789a);
        assert_eq!(id, 0x0112_3456_789a_0000);
        assert_eq!(server_of_session(id), 1);
        // Bits of the time above 40 are shifted out; the server id keeps its low 8 bits.
        assert_eq!(
            initial_session_id(0x1ff, 0x7fff_ff12_3456_789a),
            0xff12_3456_789a_0000_u64 as i64
        );
        assert_eq!(initial_session_id(0, -1), 0x00ff_ffff_ffff_0000);
        // The container marker is never handed out first.
        assert_eq!(initial_session_id(0x80, 0), i64::MIN + 1);
    }

    #[test]
    fn ids_advance_by_one_and_wrap_like_a_java_long() {
        let mut ids = JavaSessionIds::new(3, 1_000);
        let first = ids.allocate();
        assert_eq!(first, initial_session_id(3, 1_000));
        assert_eq!(ids.allocate(), first + 1);
        assert_eq!(ids.peek(), first + 2);
        let mut top = JavaSessionIds { next: i64::MAX };
        assert_eq!(top.allocate(), i64::MAX);
        assert_eq!(top.allocate(), i64::MIN);
    }
}
