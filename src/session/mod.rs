//! The session table and its expiry buckets, as data.
//!
//! Architecture Invariant: pure. Time comes in as milliseconds of a monotonic clock; the
//! caller turns expired sessions into closeSession transactions.
//!
//! Expiry works like ZooKeeper's ExpiryQueue: deadlines are rounded up to the next multiple
//! of the tick, so one check per tick finds every expired session, and a touch moves a
//! session to a later bucket.

pub mod java;

use std::collections::{BTreeMap, HashMap, HashSet};

/// Where a session's live connection is: (shard, connection id on that shard).
pub type Owner = (usize, u64);

#[derive(Debug, Clone)]
pub struct Session {
    pub id: i64,
    pub timeout_ms: i32,
    /// Invariant: a multiple of the table's tick, and a key of `buckets` holding `id`.
    deadline_ms: u64,
    /// None while the client is disconnected (the session lives on until it expires).
    pub owner: Option<Owner>,
    /// Set once a closeSession txn was issued, so it is issued only once.
    pub closing: bool,
}

#[derive(Debug)]
pub struct SessionTable {
    tick_ms: u64,
    sessions: HashMap<i64, Session>,
    buckets: BTreeMap<u64, HashSet<i64>>,
    next_session_id: i64,
}

impl SessionTable {
    /// `server_id` goes into the top byte of session ids (as ZooKeeper does), and
    /// `now_wall_ms` (wall clock) seeds the counter so ids differ across restarts.
    pub fn new(tick_ms: u64, server_id: u64, now_wall_ms: u64) -> SessionTable {
        let tick_ms = tick_ms.max(1);
        // ZooKeeper's layout: myid in the top 8 bits, then wall-clock millis shifted in.
        let counter = ((now_wall_ms << 24) >> 8) as i64;
        let next_session_id = ((server_id as i64) << 56) | (counter & 0x00ff_ffff_ffff_ffff);
        SessionTable {
            tick_ms,
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
            next_session_id,
        }
    }

    fn bucket_for(&self, now_ms: u64, timeout_ms: i32) -> u64 {
        let t = now_ms + timeout_ms.max(0) as u64;
        t.div_ceil(self.tick_ms) * self.tick_ms
    }

    /// Allocates a new session id (not yet in the table).
    pub fn next_id(&mut self) -> i64 {
        loop {
            let id = self.next_session_id;
            self.next_session_id = self.next_session_id.wrapping_add(1);
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// The 16-byte password of a session, derived from its id exactly as ZooKeeper derives
    /// it (`java.util.Random(id ^ 0xB3415C00)`), so that every server of an ensemble, Java
    /// ones included, checks a reconnecting client alike, and a restart keeps it valid.
    /// server holding the secret can check it without storing it.
    pub fn password(&self, session_id: i64) -> [u8; 16] {
        java::session_password(session_id)
    }

    /// Adds (or re-adds, on log replay) a session.
    pub fn add(&mut self, id: i64, timeout_ms: i32, owner: Option<Owner>, now_ms: u64) {
        self.remove(id);
        let deadline_ms = self.bucket_for(now_ms, timeout_ms);
        self.buckets.entry(deadline_ms).or_default().insert(id);
        self.sessions.insert(
            id,
            Session {
                id,
                timeout_ms,
                deadline_ms,
                owner,
                closing: false,
            },
        );
    }

    pub fn get(&self, id: i64) -> Option<&Session> {
        self.sessions.get(&id)
    }

    /// True when the session exists and is not being closed.
    pub fn is_live(&self, id: i64) -> bool {
        self.sessions.get(&id).is_some_and(|s| !s.closing)
    }

    /// Pushes the session's deadline to now + timeout. False if it is unknown or closing.
    pub fn touch(&mut self, id: i64, now_ms: u64) -> bool {
        let Some(s) = self.sessions.get(&id) else {
            return false;
        };
        if s.closing {
            return false;
        }
        let new_deadline = self.bucket_for(now_ms, s.timeout_ms);
        let old_deadline = s.deadline_ms;
        if new_deadline <= old_deadline {
            return true;
        }
        if let Some(b) = self.buckets.get_mut(&old_deadline) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&old_deadline);
            }
        }
        self.buckets.entry(new_deadline).or_default().insert(id);
        if let Some(s) = self.sessions.get_mut(&id) {
            s.deadline_ms = new_deadline;
        }
        true
    }

    /// Sets the connection a session lives on; returns the previous owner.
    pub fn set_owner(&mut self, id: i64, owner: Option<Owner>) -> Option<Owner> {
        match self.sessions.get_mut(&id) {
            Some(s) => std::mem::replace(&mut s.owner, owner),
            None => None,
        }
    }

    /// Marks a session as closing (a closeSession txn is under way). False if unknown or
    /// already closing.
    pub fn mark_closing(&mut self, id: i64) -> bool {
        match self.sessions.get_mut(&id) {
            Some(s) if !s.closing => {
                s.closing = true;
                true
            }
            _ => false,
        }
    }

    pub fn remove(&mut self, id: i64) -> Option<Session> {
        let s = self.sessions.remove(&id)?;
        if let Some(b) = self.buckets.get_mut(&s.deadline_ms) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&s.deadline_ms);
            }
        }
        Some(s)
    }

    /// Sessions whose deadline has passed and that are not closing yet, marked closing.
    pub fn take_expired(&mut self, now_ms: u64) -> Vec<i64> {
        let mut out = Vec::new();
        let due: Vec<u64> = self.buckets.range(..=now_ms).map(|(k, _)| *k).collect();
        for k in due {
            if let Some(ids) = self.buckets.remove(&k) {
                let mut ids: Vec<i64> = ids.into_iter().collect();
                ids.sort_unstable();
                for id in ids {
                    if let Some(s) = self.sessions.get_mut(&id) {
                        if !s.closing {
                            s.closing = true;
                            out.push(id);
                        }
                    }
                }
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.sessions.values()
    }
}

/// When the expiry check runs next after `now_ms`: at every multiple of `tick_ms` (when
/// buckets fall due, so a session expires within its timeout plus a tick of its last
/// touch) and every `step_ms` in between (the leader pings its learners on those).
pub fn next_check_ms(now_ms: u64, tick_ms: u64, step_ms: u64) -> u64 {
    let tick = tick_ms.max(1);
    let step = step_ms.clamp(1, tick);
    let base = now_ms / tick * tick;
    let next = ((now_ms - base) / step + 1) * step;
    base + next.min(tick)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_after_timeout_rounded_to_tick() {
        let mut t = SessionTable::new(100, 1, 1_700_000_000_000);
        let id = t.next_id();
        assert_eq!((id >> 56) & 0xff, 1);
        t.add(id, 250, None, 1_000);
        // deadline = ceil((1000 + 250) / 100) * 100 = 1300
        assert!(t.take_expired(1_299).is_empty());
        assert_eq!(t.take_expired(1_300), vec![id]);
        // Only once.
        assert!(t.take_expired(5_000).is_empty());
        assert!(!t.is_live(id));
        assert!(t.get(id).is_some());
    }

    #[test]
    fn touch_moves_deadline() {
        let mut t = SessionTable::new(100, 0, 0);
        let id = t.next_id();
        t.add(id, 1_000, Some((0, 1)), 0);
        assert!(t.touch(id, 900));
        assert!(t.take_expired(1_000).is_empty());
        assert_eq!(t.take_expired(1_900), vec![id]);
        assert!(
            !t.touch(id, 2_000),
            "a closing session cannot be touched back to life"
        );
    }

    #[test]
    fn checks_fall_on_tick_boundaries() {
        // Every tick boundary is met, with steps in between, from any starting point.
        assert_eq!(next_check_ms(0, 500, 250), 250);
        assert_eq!(next_check_ms(250, 500, 250), 500);
        assert_eq!(next_check_ms(499, 500, 250), 500);
        assert_eq!(next_check_ms(500, 500, 250), 750);
        // A tick the step does not divide: the boundary still comes first.
        assert_eq!(next_check_ms(2_000, 2_001, 1_000), 2_001);
        assert_eq!(next_check_ms(2_001, 2_001, 1_000), 3_001);
        assert_eq!(next_check_ms(7, 1, 1), 8);
        let mut t = 0;
        let mut seen = Vec::new();
        while t < 10_000 {
            t = next_check_ms(t, 3_000, 1_000);
            seen.push(t);
        }
        assert_eq!(seen, (1..=10).map(|k| k * 1_000).collect::<Vec<u64>>());
    }

    #[test]
    fn a_touch_at_its_request_time_bounds_expiry() {
        // Deadline within [touch + timeout, touch + timeout + tick), whatever the phase.
        for at in 0..1_000u64 {
            let mut t = SessionTable::new(200, 0, 0);
            let id = t.next_id();
            t.add(id, 400, None, 0);
            assert!(t.touch(id, at));
            let deadline = t.get(id).unwrap().deadline_ms;
            assert!(
                deadline >= at + 400 && deadline < at + 400 + 200,
                "{at}: {deadline}"
            );
            assert!(t.take_expired(at + 399).is_empty());
            assert_eq!(t.take_expired(deadline), vec![id]);
        }
    }

    #[test]
    fn owner_and_removal() {
        let mut t = SessionTable::new(10, 0, 0);
        let id = t.next_id();
        t.add(id, 100, Some((1, 5)), 0);
        assert_eq!(t.set_owner(id, Some((0, 9))), Some((1, 5)));
        assert_eq!(t.get(id).unwrap().owner, Some((0, 9)));
        assert!(t.remove(id).is_some());
        assert!(t.take_expired(u64::MAX).is_empty());
        assert!(!t.touch(id, 0));
    }

    #[test]
    fn passwords_are_zookeepers() {
        let t = SessionTable::new(10, 0, 0);
        assert_eq!(t.password(5), t.password(5));
        assert_ne!(t.password(5), t.password(6));
        assert_eq!(t.password(0x1234), java::session_password(0x1234));
    }

    #[test]
    fn ids_are_unique_and_nonzero() {
        let mut t = SessionTable::new(10, 0, 0);
        let a = t.next_id();
        t.add(a, 10, None, 0);
        let b = t.next_id();
        assert_ne!(a, b);
        assert_ne!(a, 0);
    }
}
