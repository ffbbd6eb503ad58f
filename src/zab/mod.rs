//! Zab: fast leader election and the atomic broadcast, as Apache ZooKeeper 3.8 speaks them
//! on its election port (3888) and quorum port (2888). `../shared/ZAB-WIRE.md` collects the
//! protocol facts; everything here is byte-compatible with ZooKeeper 3.8 so that zkrs and
//! Java servers can form one ensemble.
//!
//! Architecture invariant: this module is pure. It never touches a socket, a file, a clock
//! or a thread: the election and replica cores are `step(input) -> actions` state machines,
//! and the codecs turn bytes into records and back (malformed input is an `Err`, never a
//! panic).

pub mod broadcast;
pub mod election;
pub mod replica;
pub mod snap;
pub mod txn;
pub mod wire;

/// A server id (`server.N`, the `myid` file). ZooKeeper sends it as a jute `long`.
pub type ServerId = u64;

/// The epoch of a zxid (high 32 bits).
pub fn epoch_of(zxid: i64) -> u32 {
    ((zxid as u64) >> 32) as u32
}

/// The counter of a zxid (low 32 bits).
pub fn counter_of(zxid: i64) -> u32 {
    zxid as u64 as u32
}

/// `epoch << 32 | counter`.
pub fn make_zxid(epoch: u32, counter: u32) -> i64 {
    (((epoch as u64) << 32) | counter as u64) as i64
}

/// Counters left before a leader must give up its epoch: one round of the ordering core
/// makes at most this many txns.
pub const COUNTER_MARGIN: u32 = 1 << 16;

/// Whether a leader whose last zxid is `zxid` must end its term so that the next leader
/// starts a new epoch (ZOOKEEPER-1277): the counter must never wrap into the epoch bits.
pub fn counter_exhausted(zxid: i64) -> bool {
    counter_of(zxid) >= u32::MAX - COUNTER_MARGIN
}

/// A server's role, as sent in election notifications (ZooKeeper's `ServerState` ordinal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerState {
    Looking = 0,
    Following = 1,
    Leading = 2,
    Observing = 3,
}

impl PeerState {
    pub fn from_i32(v: i32) -> Option<PeerState> {
        match v {
            0 => Some(PeerState::Looking),
            1 => Some(PeerState::Following),
            2 => Some(PeerState::Leading),
            3 => Some(PeerState::Observing),
            _ => None,
        }
    }

    /// How `zkServer.sh status` / `srvr` name it (`Mode: leader`).
    pub fn mode_name(self) -> &'static str {
        match self {
            PeerState::Looking => "looking",
            PeerState::Following => "follower",
            PeerState::Leading => "leader",
            PeerState::Observing => "observer",
        }
    }
}

/// A vote: who should lead, and the facts it is ranked by (peer epoch, then zxid, then id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Vote {
    /// The proposed leader's server id (`Long.MIN_VALUE` as u64 for "no one", as an observer's
    /// initial vote).
    pub leader: ServerId,
    /// The proposed leader's last logged zxid.
    pub zxid: i64,
    /// The round (`logicalclock`) the vote was cast in.
    pub election_epoch: i64,
    /// The proposed leader's current epoch.
    pub peer_epoch: i64,
}

/// One election notification (ZooKeeper's FLE `Notification`, message version 2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub state: PeerState,
    pub vote: Vote,
    /// The message version: 2 from 3.5+ servers; 0 for the 40-byte pre-version layout.
    pub version: i32,
    /// The sender's committed quorum config (`QuorumVerifier.toString()`), version >= 2 only.
    pub config: Option<String>,
}

/// One member of the ensemble, as a `server.N` line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub id: ServerId,
    pub host: String,
    pub quorum_port: u16,
    pub election_port: u16,
    pub observer: bool,
    /// `;[host:]port` of the line, when it had one (the dynamic-config syntax).
    pub client: Option<(Option<String>, u16)>,
}

/// The ensemble's static membership (ZooKeeper's `QuorumMaj`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumConfig {
    /// Sorted by id.
    pub members: Vec<Member>,
    /// The config version (0 for a static zoo.cfg).
    pub version: i64,
}

impl QuorumConfig {
    pub fn new(mut members: Vec<Member>, version: i64) -> QuorumConfig {
        members.sort_by_key(|m| m.id);
        QuorumConfig { members, version }
    }

    pub fn member(&self, id: ServerId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// Whether `id` votes (a participant of this config).
    pub fn is_voter(&self, id: ServerId) -> bool {
        self.member(id).is_some_and(|m| !m.observer)
    }

    pub fn voters(&self) -> impl Iterator<Item = ServerId> + '_ {
        self.members.iter().filter(|m| !m.observer).map(|m| m.id)
    }

    /// `QuorumMaj.containsQuorum`: more than half of the voters are in `ids` (ids that are
    /// not voters do not count; duplicates count once).
    pub fn is_quorum<I: IntoIterator<Item = ServerId>>(&self, ids: I) -> bool {
        let mut seen: Vec<ServerId> = ids.into_iter().filter(|id| self.is_voter(*id)).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len() * 2 > self.voters().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: ServerId, observer: bool) -> Member {
        Member {
            id,
            host: "127.0.0.1".into(),
            quorum_port: 2888 + id as u16,
            election_port: 3888 + id as u16,
            observer,
            client: None,
        }
    }

    #[test]
    fn zxid_parts() {
        let z = make_zxid(7, 42);
        assert_eq!(z, 0x7_0000_002a);
        assert_eq!(epoch_of(z), 7);
        assert_eq!(counter_of(z), 42);
        assert_eq!(epoch_of(-1), u32::MAX);
    }

    /// ZOOKEEPER-1277: a leader steps down well before the zxid counter wraps.
    #[test]
    fn the_counter_never_reaches_the_epoch_bits() {
        assert!(!counter_exhausted(make_zxid(5, 1)));
        assert!(!counter_exhausted(make_zxid(
            5,
            u32::MAX - COUNTER_MARGIN - 1
        )));
        assert!(counter_exhausted(make_zxid(5, u32::MAX - COUNTER_MARGIN)));
        assert!(counter_exhausted(make_zxid(5, u32::MAX)));
    }

    #[test]
    fn majority_of_voters_only() {
        let q = QuorumConfig::new(
            vec![
                member(3, false),
                member(1, false),
                member(2, false),
                member(4, true),
            ],
            0,
        );
        assert_eq!(q.voters().collect::<Vec<_>>(), vec![1, 2, 3]);
        assert!(!q.is_quorum([1]));
        assert!(!q.is_quorum([1, 1, 4]));
        assert!(q.is_quorum([1, 3]));
        assert!(q.is_quorum([1, 2, 3]));
        assert!(!q.is_quorum([4, 9]));
    }
}
