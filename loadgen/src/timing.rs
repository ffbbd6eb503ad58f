//! Open-loop timing: when each request is meant to be sent, and latency measured from then.
//!
//! In an open loop the k-th request has an intended send time fixed in advance by the
//! rate. Latency is measured from that intended time, not from when the loadgen got
//! around to sending it: if the server stalls for a second, the requests that should have
//! gone out during the stall count the stall in their latency instead of silently waiting
//! ("coordinated omission"). With several threads, thread `t` of `T` takes the global
//! indexes `t, t+T, t+2T, ...`, so together they offer exactly the configured rate, evenly
//! interleaved.

use std::time::{Duration, Instant};

/// The intended send times of one thread's share of an open-loop run.
#[derive(Debug, Clone)]
pub struct OpenLoopSchedule {
    start: Instant,
    /// Operations per second over all threads; invariant: > 0.
    rate: f64,
    stride: u64,
    offset: u64,
    /// The next index of this thread's share (0, 1, 2, ...).
    next: u64,
    /// Intended times at or after this are not produced.
    end: Instant,
}

impl OpenLoopSchedule {
    /// `rate` is the total over all `threads` (> 0); `thread` is in `0..threads`.
    pub fn new(start: Instant, end: Instant, rate: f64, threads: usize, thread: usize) -> Self {
        let threads = threads.max(1) as u64;
        OpenLoopSchedule {
            start,
            rate: rate.max(1e-9),
            stride: threads,
            offset: (thread as u64) % threads,
            next: 0,
            end,
        }
    }

    /// Intended send time of this thread's `k`-th request.
    pub fn intended(&self, k: u64) -> Instant {
        let global_index = k.saturating_mul(self.stride).saturating_add(self.offset);
        // index * 1e9 / rate rather than index * period: exact for whole rates, no drift.
        let offset_ns = (global_index as f64 * 1e9 / self.rate).min(u64::MAX as f64 / 2.0);
        self.start + Duration::from_nanos(offset_ns as u64)
    }

    /// The next intended time, or `None` once the schedule has reached its end.
    pub fn next_due(&self) -> Option<Instant> {
        let t = self.intended(self.next);
        (t < self.end).then_some(t)
    }

    /// Takes the next intended time if it is at or before `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Instant> {
        let t = self.next_due()?;
        if t <= now {
            self.next += 1;
            Some(t)
        } else {
            None
        }
    }

    /// How many intended times this thread has produced.
    pub fn produced(&self) -> u64 {
        self.next
    }
}

/// Latency in microseconds from the intended send time to completion (0 if completion is
/// somehow earlier, which a monotonic clock does not allow).
pub fn latency_us(intended: Instant, completed: Instant) -> u64 {
    let micros = completed.saturating_duration_since(intended).as_micros();
    u64::try_from(micros).unwrap_or(u64::MAX)
}

/// Which part of a run an operation belongs to, by its intended send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Warmup,
    Measure,
    /// After the measured window: not issued (closed loop) or not recorded.
    After,
}

/// The time windows of a run: warm-up from `start`, then the measured window.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Instant,
    pub measure_start: Instant,
    pub measure_end: Instant,
}

impl Window {
    pub fn new(start: Instant, warmup: Duration, duration: Duration) -> Window {
        let measure_start = start + warmup;
        Window {
            start,
            measure_start,
            measure_end: measure_start + duration,
        }
    }

    pub fn phase(&self, intended: Instant) -> Phase {
        if intended < self.measure_start {
            Phase::Warmup
        } else if intended < self.measure_end {
            Phase::Measure
        } else {
            Phase::After
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_follow_the_rate() {
        let start = Instant::now();
        let end = start + Duration::from_secs(1);
        // 1000/s: one request per millisecond.
        let s = OpenLoopSchedule::new(start, end, 1000.0, 1, 0);
        assert_eq!(s.intended(0), start);
        assert_eq!(s.intended(1), start + Duration::from_millis(1));
        assert_eq!(s.intended(999), start + Duration::from_millis(999));
        // No drift after many periods: k * period, not a running sum.
        let s = OpenLoopSchedule::new(start, start + Duration::from_secs(3600), 3.0, 1, 0);
        assert_eq!(s.intended(3 * 3000), start + Duration::from_secs(3000));
    }

    #[test]
    fn threads_interleave_and_together_offer_the_rate() {
        let start = Instant::now();
        let end = start + Duration::from_millis(100);
        let threads = 4;
        let mut all: Vec<Instant> = Vec::new();
        for t in 0..threads {
            let mut s = OpenLoopSchedule::new(start, end, 10_000.0, threads, t);
            // Thread t's first request is t periods (100 us each) after the start.
            assert_eq!(
                s.next_due(),
                Some(start + Duration::from_micros(100 * t as u64))
            );
            let mut n = 0;
            while let Some(when) = s.pop_due(end + Duration::from_secs(1)) {
                all.push(when);
                n += 1;
                assert!(n <= 1_000, "schedule did not stop at its end");
            }
            assert_eq!(s.produced(), 250);
        }
        // 100 ms at 10k/s = 1000 requests, 100 us apart, none at or after the end.
        all.sort();
        assert_eq!(all.len(), 1000);
        for pair in all.windows(2) {
            assert_eq!(pair[1] - pair[0], Duration::from_micros(100));
        }
        assert!(*all.last().unwrap() < end);
    }

    #[test]
    fn pop_due_only_releases_past_times() {
        let start = Instant::now();
        let mut s = OpenLoopSchedule::new(start, start + Duration::from_secs(1), 100.0, 1, 0);
        // At start + 25ms, requests 0, 1, 2 (0, 10, 20 ms) are due, request 3 is not.
        let now = start + Duration::from_millis(25);
        assert_eq!(s.pop_due(now), Some(start));
        assert_eq!(s.pop_due(now), Some(start + Duration::from_millis(10)));
        assert_eq!(s.pop_due(now), Some(start + Duration::from_millis(20)));
        assert_eq!(s.pop_due(now), None);
        assert_eq!(s.next_due(), Some(start + Duration::from_millis(30)));
    }

    #[test]
    fn latency_is_measured_from_the_intended_time() {
        let start = Instant::now();
        let mut s = OpenLoopSchedule::new(start, start + Duration::from_secs(1), 1000.0, 1, 0);
        // The loadgen stalls 50 ms and only then sends request 0; its reply takes 1 ms.
        let late_now = start + Duration::from_millis(50);
        let intended = s.pop_due(late_now).unwrap();
        let completed = late_now + Duration::from_millis(1);
        assert_eq!(latency_us(intended, completed), 51_000);
        // Request 10 (intended 10 ms) was also due during the stall: 41 ms, not 1 ms.
        for _ in 1..10 {
            s.pop_due(late_now).unwrap();
        }
        let tenth = s.pop_due(late_now).unwrap();
        assert_eq!(latency_us(tenth, completed), 41_000);
        assert_eq!(latency_us(completed, intended), 0);
    }

    #[test]
    fn phases_by_intended_time() {
        let start = Instant::now();
        let w = Window::new(start, Duration::from_secs(2), Duration::from_secs(10));
        assert_eq!(w.phase(start), Phase::Warmup);
        assert_eq!(w.phase(start + Duration::from_millis(1999)), Phase::Warmup);
        assert_eq!(w.phase(start + Duration::from_secs(2)), Phase::Measure);
        assert_eq!(
            w.phase(start + Duration::from_millis(11_999)),
            Phase::Measure
        );
        assert_eq!(w.phase(start + Duration::from_secs(12)), Phase::After);
    }
}
