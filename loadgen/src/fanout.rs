//! Watch fan-out: `watchers` sessions each hold a data watch on one node; a writer session
//! changes the node; we measure the time from sending the write to the last watcher's
//! notification.
//!
//! Each round: the coordinator (this thread) bumps the round number; the worker threads
//! (each owning a share of the watcher sessions) send getData with watch=true on their
//! sessions and report when every reply is in; the coordinator records the send time of
//! the setData and sends it; workers timestamp each notification as it arrives. Recorded:
//! `fanout` (write sent to last notification), `notify` (write sent to each notification)
//! and `fanout-write` (the setData itself). Rounds run back to back, or at `rate` per second.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use zkrs::proto::{EventType, PathWatchRequest, Request, SetDataRequest};

use crate::client::{self, ClientError, Conn, Event};
use crate::keygen::Layout;
use crate::progress::{Progress, TICK};
use crate::runner::{connect_options, RunError, RunOutcome, CLOSE_TIMEOUT};
use crate::stats::{error_name, local_error, CpuTime, LiveCounters, RunStats};
use crate::timing::{latency_us, Phase, Window};
use crate::workload::Settings;

/// How long arming the watches, or collecting the notifications, of one round may take.
const ROUND_STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a worker sleeps before looking at the round number again.
const WORKER_WAKE: Duration = Duration::from_millis(1);

pub const OP_FANOUT: &str = "fanout";
pub const OP_NOTIFY: &str = "notify";
pub const OP_WRITE: &str = "fanout-write";

/// What the coordinator and the workers share.
struct Shared {
    /// Time zero for the nanosecond timestamps below.
    base: Instant,
    /// The round the watchers should arm for (0: none yet).
    arm_round: AtomicU64,
    /// Watchers whose getData-with-watch reply has arrived this round.
    armed: AtomicUsize,
    /// Watchers notified this round.
    notified: AtomicUsize,
    /// When this round's write was sent, ns since `base`. Stored before the write goes
    /// out, so every notification of the round sees it.
    write_sent_ns: AtomicU64,
    /// The latest notification of this round, ns since `base`.
    last_notify_ns: AtomicU64,
    /// Whether this round is in the measured window.
    measuring: AtomicBool,
    stop: AtomicBool,
    /// A watcher session failed or got an error reply.
    failed: AtomicBool,
}

impl Shared {
    fn ns_since_base(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX)
    }
}

pub fn run_fanout(
    settings: &Settings,
    show_progress: bool,
    label: &str,
) -> Result<RunOutcome, RunError> {
    let watchers = settings.watchers;
    let threads = settings.thread_count(watchers);
    let layout = Layout::new(&settings.prefix);
    let node = layout.fanout_node();
    let options = connect_options(settings);
    let mut writer: Conn<()> = Conn::connect(&settings.hosts[0], &options)
        .map_err(|e| RunError(format!("writer session to {}: {e}", settings.hosts[0])))?;
    let shared = Shared {
        base: Instant::now(),
        arm_round: AtomicU64::new(0),
        armed: AtomicUsize::new(0),
        notified: AtomicUsize::new(0),
        write_sent_ns: AtomicU64::new(0),
        last_notify_ns: AtomicU64::new(0),
        measuring: AtomicBool::new(false),
        stop: AtomicBool::new(false),
        failed: AtomicBool::new(false),
    };
    let counters: Vec<LiveCounters> = (0..threads).map(|_| LiveCounters::default()).collect();
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let barrier = Barrier::new(threads + 1);
    let value = Bytes::from(vec![b'x'; settings.value_size.max]);

    let (mut stats, worker_stats, cpu, start, end) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        for thread in 0..threads {
            let (shared, failures, barrier, counters, node) =
                (&shared, &failures, &barrier, &counters, &node);
            let handle = scope.spawn(move || {
                let mut conns: Vec<Conn<()>> = Vec::new();
                for index in (thread..watchers).step_by(threads) {
                    if shared.failed.load(Ordering::Relaxed) {
                        break;
                    }
                    let host = &settings.hosts[index % settings.hosts.len()];
                    match Conn::connect(host, &options) {
                        Ok(c) => conns.push(c),
                        Err(e) => {
                            shared.failed.store(true, Ordering::Relaxed);
                            if let Ok(mut f) = failures.lock() {
                                f.push(format!("watcher {index} to {host}: {e}"));
                            }
                        }
                    }
                }
                barrier.wait();
                let stats = watch_loop(shared, &mut conns, node, &counters[thread]);
                client::close_all(conns, CLOSE_TIMEOUT);
                stats
            });
            handles.push(handle);
        }
        barrier.wait();
        let cpu_before = CpuTime::now();
        let start = Instant::now();
        let mut progress = Progress::new(
            show_progress,
            label,
            start,
            settings.warmup,
            settings.duration,
        );
        let stats = coordinate(
            settings,
            &shared,
            &mut writer,
            &node,
            &value,
            start,
            &mut |_| progress.tick(&counters),
        );
        shared.stop.store(true, Ordering::Relaxed);
        let end = Instant::now();
        progress.finish();
        let worker_stats: Vec<RunStats> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        (
            stats,
            worker_stats,
            CpuTime::now().since(cpu_before),
            start,
            end,
        )
    });
    writer.close(CLOSE_TIMEOUT);

    let failures = failures.into_inner().unwrap_or_default();
    if !failures.is_empty() {
        return Err(RunError(format!(
            "could not connect all {watchers} watchers: {}",
            failures.join("; ")
        )));
    }
    for w in &worker_stats {
        stats.merge(w);
    }
    let window = Window::new(start, settings.warmup, settings.duration);
    Ok(RunOutcome {
        stats,
        measured: end
            .min(window.measure_end)
            .saturating_duration_since(window.measure_start),
        cpu,
        wall: end.saturating_duration_since(start),
        threads,
        sessions: watchers + 1,
        offered_rate: settings.rate,
    })
}

/// Waits (bounded) until `done()`; false on timeout or failure.
fn wait_until(deadline: Instant, shared: &Shared, done: impl Fn() -> bool) -> bool {
    while !done() {
        if Instant::now() >= deadline || shared.failed.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_micros(50));
    }
    true
}

/// The coordinator's rounds. Returns the fan-out and write statistics.
#[allow(clippy::too_many_arguments)]
fn coordinate(
    settings: &Settings,
    shared: &Shared,
    writer: &mut Conn<()>,
    node: &str,
    value: &Bytes,
    start: Instant,
    tick: &mut dyn FnMut(Instant),
) -> RunStats {
    let mut stats = RunStats::default();
    if shared.failed.load(Ordering::Relaxed) {
        return stats;
    }
    let window = Window::new(start, settings.warmup, settings.duration);
    let watchers = settings.watchers;
    let mut next_tick = start;
    for round in 1..=settings.rounds {
        let round_start = Instant::now();
        if round_start >= window.measure_end
            || shared.failed.load(Ordering::Relaxed)
            || crate::runner::interrupted()
        {
            break;
        }
        if round_start >= next_tick {
            tick(round_start);
            next_tick = round_start + TICK;
        }
        let measuring = window.phase(round_start) == Phase::Measure;
        shared.armed.store(0, Ordering::SeqCst);
        shared.notified.store(0, Ordering::SeqCst);
        shared.last_notify_ns.store(0, Ordering::SeqCst);
        shared.measuring.store(measuring, Ordering::SeqCst);
        shared.arm_round.store(round, Ordering::SeqCst);
        if !wait_until(round_start + ROUND_STEP_TIMEOUT, shared, || {
            shared.armed.load(Ordering::SeqCst) >= watchers
        }) {
            log::warn!("round {round}: watchers did not all arm their watches");
            stats.op(OP_FANOUT).record_error(local_error::TIMEOUT);
            shared.failed.store(true, Ordering::SeqCst);
            break;
        }
        let sent = Instant::now();
        shared
            .write_sent_ns
            .store(shared.ns_since_base(sent), Ordering::SeqCst);
        let request = Request::SetData(SetDataRequest {
            path: node.to_string(),
            data: value.clone(),
            version: -1,
        });
        match writer.call(&request, ROUND_STEP_TIMEOUT) {
            Ok((header, _)) if header.err == 0 => {
                if measuring {
                    stats
                        .op(OP_WRITE)
                        .record_ok(latency_us(sent, Instant::now()));
                }
            }
            Ok((header, _)) => {
                stats.op(OP_WRITE).record_error(&error_name(header.err));
                shared.failed.store(true, Ordering::SeqCst);
                break;
            }
            Err(e) => {
                log::warn!("round {round}: the write failed: {e}");
                stats
                    .op(OP_WRITE)
                    .record_error(local_error::CONNECTION_LOST);
                shared.failed.store(true, Ordering::SeqCst);
                break;
            }
        }
        if !wait_until(sent + ROUND_STEP_TIMEOUT, shared, || {
            shared.notified.load(Ordering::SeqCst) >= watchers
        }) {
            let missing = watchers.saturating_sub(shared.notified.load(Ordering::SeqCst));
            log::warn!("round {round}: {missing} watchers got no notification");
            stats
                .op(OP_NOTIFY)
                .record_errors(local_error::MISSING_NOTIFICATION, missing as u64);
            shared.failed.store(true, Ordering::SeqCst);
            break;
        }
        if measuring {
            let last_ns = shared.last_notify_ns.load(Ordering::SeqCst);
            let sent_ns = shared.write_sent_ns.load(Ordering::SeqCst);
            stats
                .op(OP_FANOUT)
                .record_ok(last_ns.saturating_sub(sent_ns) / 1_000);
        }
        if let Some(rate) = settings.rate {
            let next_round = start + Duration::from_secs_f64(round as f64 / rate);
            let now = Instant::now();
            if next_round > now {
                std::thread::sleep(
                    (next_round - now).min(window.measure_end.saturating_duration_since(now)),
                );
            }
        }
    }
    stats
}

/// A worker's loop: arm watches when the round changes, timestamp notifications.
fn watch_loop(
    shared: &Shared,
    conns: &mut [Conn<()>],
    node: &str,
    live: &LiveCounters,
) -> RunStats {
    let mut stats = RunStats::default();
    let mut my_round = 0u64;
    let mut pending_arms = 0usize;
    let mut events: Vec<Event<()>> = Vec::new();
    let mut fds: Vec<libc::pollfd> = Vec::with_capacity(conns.len());
    let owned = conns.len();
    let fail = |e: &ClientError| {
        log::warn!("watcher session failed: {e}");
        shared.failed.store(true, Ordering::SeqCst);
    };
    while !shared.stop.load(Ordering::Relaxed) && !shared.failed.load(Ordering::Relaxed) {
        let round = shared.arm_round.load(Ordering::SeqCst);
        if round > my_round {
            my_round = round;
            pending_arms = conns.len();
            for conn in conns.iter_mut() {
                let request = Request::GetData(PathWatchRequest {
                    path: node.to_string(),
                    watch: true,
                });
                conn.send(&request, ());
            }
            if pending_arms == 0 {
                continue;
            }
        }
        let now = Instant::now();
        for conn in conns.iter_mut() {
            conn.ping_if_due(now);
            if let Err(e) = conn.flush() {
                fail(&e);
            }
        }
        fds.clear();
        fds.extend(
            conns
                .iter()
                .map(|c| client::poll_fd(c.fd(), c.wants_write())),
        );
        if client::wait(&mut fds, WORKER_WAKE).is_err() {
            shared.failed.store(true, Ordering::SeqCst);
            break;
        }
        for (conn, fd) in conns.iter_mut().zip(fds.iter()) {
            if fd.revents == 0 {
                continue;
            }
            let result = conn.read_events(&mut events);
            let arrived = Instant::now();
            for event in events.drain(..) {
                match event {
                    Event::Reply { header, .. } => {
                        if header.err != 0 {
                            log::warn!("arming a watch failed: {}", error_name(header.err));
                            shared.failed.store(true, Ordering::SeqCst);
                        }
                        pending_arms = pending_arms.saturating_sub(1);
                        if pending_arms == 0 {
                            shared.armed.fetch_add(owned, Ordering::SeqCst);
                        }
                    }
                    Event::BadReply { error, .. } => {
                        log::warn!("bad reply while arming a watch: {error:?}");
                        shared.failed.store(true, Ordering::SeqCst);
                    }
                    Event::Notification(ev) => {
                        if ev.event_type != EventType::NodeDataChanged || ev.path != node {
                            continue;
                        }
                        let sent_ns = shared.write_sent_ns.load(Ordering::SeqCst);
                        let arrived_ns = shared.ns_since_base(arrived);
                        if shared.measuring.load(Ordering::SeqCst) {
                            stats
                                .op(OP_NOTIFY)
                                .record_ok(arrived_ns.saturating_sub(sent_ns) / 1_000);
                        }
                        shared
                            .last_notify_ns
                            .fetch_max(arrived_ns, Ordering::SeqCst);
                        shared.notified.fetch_add(1, Ordering::SeqCst);
                        live.add_ok();
                    }
                }
            }
            if let Err(e) = result {
                fail(&e);
            }
        }
    }
    stats
}
