//! The operation-mix run: worker threads, each owning a share of the sessions and driving
//! them from one event loop (non-blocking sockets, ppoll).
//!
//! Closed loop (no rate): every session keeps `outstanding` requests in flight; a reply
//! makes room for the next request. Open loop (`rate`): each thread takes its share of the
//! intended send times ([`OpenLoopSchedule`]), queues due requests in a bounded backlog,
//! and hands them to sessions with fewer than `max_in_flight` requests in flight; latency
//! is measured from the intended time, so a slow server shows up as latency, not as a
//! lower offered rate.
//!
//! Every loop is bounded: issuing stops at the end of the measured window (or after
//! `max_ops`), replies are awaited until the drain deadline, and the loop never sleeps
//! past the next thing it has to do.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use zkrs::proto::{
    CreateRequest, DeleteRequest, MultiOp, OpCode, PathWatchRequest, Request, Response,
    SetDataRequest,
};

use crate::client::{self, open_acl, ClientError, Conn, ConnectOptions, Event};
use crate::keygen::{KeyChooser, Layout, ValueGen};
use crate::progress::{Progress, TICK};
use crate::stats::{
    error_name, local_error, CpuTime, LiveCounters, RunStats, TimelineEvent, TIMELINE_MAX,
};
use crate::timing::{latency_us, OpenLoopSchedule, Phase, Window};
use crate::workload::{OpKind, Settings};

/// Nodes a session remembers having created, for delete operations to remove.
const CREATED_REMEMBERED_MAX: usize = 100_000;
/// The longest a worker sleeps before looking at the abort flag again.
const WAKE_MAX: Duration = Duration::from_millis(50);
/// How long closing all sessions at the end may take.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Open loop: the backlog holds at most this many seconds' worth of a thread's rate.
const BACKLOG_SECONDS: f64 = 1.0;
const BACKLOG_MIN: usize = 1_000;
const BACKLOG_MAX: usize = 1_000_000;
/// Reconnect: how long one connection attempt (TCP connect + session handshake) may take.
const RECONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
/// Reconnect: the pause after a failed attempt before trying the next host.
const RECONNECT_PAUSE: Duration = Duration::from_millis(20);
/// Reconnect: the longest a worker sleeps while a new session may be waiting for it.
const RECONNECT_POLL: Duration = Duration::from_millis(1);

/// What a run produced.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub stats: RunStats,
    /// Length of the measured window actually covered (shorter than the duration when
    /// `max_ops` ended the run early).
    pub measured: Duration,
    /// The loadgen's CPU time from the start of the warm-up to the end.
    pub cpu: CpuTime,
    /// Wall time the CPU time was spent in.
    pub wall: Duration,
    pub threads: usize,
    pub sessions: usize,
    /// Open loop: the offered rate.
    pub offered_rate: Option<f64>,
}

impl RunOutcome {
    pub fn throughput(&self) -> f64 {
        let seconds = self.measured.as_secs_f64();
        if seconds > 0.0 {
            self.stats.ok_total() as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Why a run could not be carried out at all.
#[derive(Debug)]
pub struct RunError(pub String);

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RunError {}

/// Set by the first Ctrl-C: runs stop issuing, drain, report and clean up.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

extern "C" fn on_interrupt(_signal: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Makes the first SIGINT end the run early but cleanly (report, cleanup); a second one
/// kills the process as usual (SA_RESETHAND).
pub fn install_interrupt_handler() {
    // SAFETY: the handler only stores to an atomic; the sigaction struct is fully
    // initialized (zeroed, then the fields we use).
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_interrupt as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
    }
}

/// A short random id, so that nodes of concurrent or earlier runs do not collide.
pub fn new_run_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

pub fn connect_options(settings: &Settings) -> ConnectOptions {
    ConnectOptions {
        session_timeout: settings.session_timeout,
        connect_timeout: Duration::from_secs(5),
    }
}

/// Everything the workers share and never change.
struct Plan<'a> {
    settings: &'a Settings,
    layout: Layout,
    keys: KeyChooser,
    values: ValueGen,
    rate: Option<f64>,
    threads: usize,
    run_id: String,
}

/// When things happen, fixed once every session is connected.
#[derive(Clone, Copy)]
struct Timing {
    window: Window,
    drain_deadline: Instant,
    /// The system clock at `window.start`, in microseconds since the Unix epoch.
    start_unix_us: u64,
}

impl Timing {
    fn unix_us(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.window.start).as_micros() as u64;
        let before = self.window.start.saturating_duration_since(at).as_micros() as u64;
        (self.start_unix_us + since).saturating_sub(before)
    }
}

/// What a reconnect thread hands back: the session index, and the new connection with the
/// host it went to (or why none could be opened before the deadline).
type Reconnected = (usize, Result<(Conn<Tag>, usize), String>);

/// The per-request data a session gets back with the reply.
#[derive(Debug, Clone, Copy)]
struct Tag {
    kind: OpKind,
    intended: Instant,
}

struct Session {
    conn: Conn<Tag>,
    /// Paths this session created, oldest first, for delete operations.
    created: VecDeque<String>,
    /// Names the next node this session creates.
    create_counter: u64,
    /// Index over all sessions of the run (names its nodes).
    index: usize,
    alive: bool,
    /// Index into `hosts` of the server this session is connected to.
    host: usize,
    /// The last time bytes arrived from the server (reconnect: silence detection).
    last_heard: Instant,
    /// Reconnect: when the connection broke, while a new one is being opened.
    reconnecting_since: Option<Instant>,
}

impl Session {
    fn remember(&mut self, path: String) {
        if self.created.len() >= CREATED_REMEMBERED_MAX {
            // Forgotten nodes stay in the tree until the cleanup removes them.
            self.created.pop_front();
        }
        self.created.push_back(path);
    }
}

/// Runs the operation mix as `settings` say; `rate` overrides the open-loop rate (the
/// sweep uses it). The key space must already exist (see `setup`).
pub fn run_mix(
    settings: &Settings,
    rate: Option<f64>,
    show_progress: bool,
    label: &str,
) -> Result<RunOutcome, RunError> {
    let sessions = settings.connections;
    let threads = settings.thread_count(sessions);
    let mut seed_rng = match settings.seed {
        Some(seed) => SmallRng::seed_from_u64(seed),
        None => SmallRng::from_entropy(),
    };
    let plan = Plan {
        settings,
        layout: Layout::new(&settings.prefix),
        keys: KeyChooser::new(settings.key_distribution, settings.keys),
        values: ValueGen::new(settings.value_size, &mut seed_rng),
        rate,
        threads,
        run_id: new_run_id(),
    };
    let thread_seeds: Vec<u64> = (0..threads).map(|_| seed_rng.gen()).collect();
    let counters: Vec<LiveCounters> = (0..threads).map(|_| LiveCounters::default()).collect();
    let abort = AtomicBool::new(false);
    let failures: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let start_cell: OnceLock<(Instant, u64)> = OnceLock::new();
    // Workers and this thread meet twice: once all sessions are connected, and once the
    // start time is published.
    let barrier = Barrier::new(threads + 1);

    let (results, cpu, wall, start, finished) = std::thread::scope(|scope| {
        let mut handles = Vec::with_capacity(threads);
        for thread in 0..threads {
            let plan = &plan;
            let counters = &counters;
            let abort = &abort;
            let failures = &failures;
            let start_cell = &start_cell;
            let barrier = &barrier;
            let seed = thread_seeds[thread];
            let spawned = std::thread::Builder::new()
                .name(format!("loadgen-{thread}"))
                .spawn_scoped(scope, move || {
                    client::tighten_timer_slack();
                    let sessions = connect_share(plan, thread, abort, failures);
                    barrier.wait();
                    barrier.wait();
                    let Some((start, start_unix_us)) = start_cell.get().copied() else {
                        return RunStats::default();
                    };
                    if abort.load(Ordering::Relaxed) {
                        client_close_all(sessions);
                        return RunStats::default();
                    }
                    let settings = plan.settings;
                    let window = Window::new(start, settings.warmup, settings.duration);
                    let timing = Timing {
                        window,
                        drain_deadline: window.measure_end + settings.drain_timeout,
                        start_unix_us,
                    };
                    let worker =
                        Worker::new(plan, thread, sessions, timing, seed, &counters[thread]);
                    worker.run(abort)
                });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    // The threads already spawned wait at the barrier for `threads + 1`
                    // parties; without this thread they never would be released, so give
                    // up on the whole process rather than hang.
                    log::error!("cannot start worker thread: {e}");
                    std::process::exit(2);
                }
            }
        }
        barrier.wait();
        let cpu_before = CpuTime::now();
        let start = Instant::now() + Duration::from_millis(5);
        let unix_now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let _ = start_cell.set((start, unix_now + 5_000));
        barrier.wait();

        let mut progress = Progress::new(
            show_progress,
            label,
            start,
            settings.warmup,
            settings.duration,
        );
        let give_up_at = start
            + settings.warmup
            + settings.duration
            + settings.drain_timeout
            + CLOSE_TIMEOUT * 2;
        wait_for_workers(&handles, give_up_at, |_| progress.tick(&counters));
        let finished = Instant::now();
        progress.finish();
        let results: Vec<RunStats> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        let cpu = CpuTime::now().since(cpu_before);
        (
            results,
            cpu,
            finished.saturating_duration_since(start),
            start,
            finished,
        )
    });

    let failures = failures.into_inner().unwrap_or_default();
    if !failures.is_empty() {
        return Err(RunError(format!(
            "could not connect all {sessions} sessions: {}",
            failures.join("; ")
        )));
    }
    let mut stats = RunStats::default();
    for r in &results {
        stats.merge(r);
    }
    let window = Window::new(start, settings.warmup, settings.duration);
    let measured_end = finished.min(window.measure_end);
    Ok(RunOutcome {
        stats,
        measured: measured_end.saturating_duration_since(window.measure_start),
        cpu,
        wall,
        threads,
        sessions,
        offered_rate: rate,
    })
}

/// Connects this thread's sessions: session `i` belongs to thread `i % threads` and goes to
/// host `i % hosts`.
fn connect_share(
    plan: &Plan,
    thread: usize,
    abort: &AtomicBool,
    failures: &Mutex<Vec<String>>,
) -> Vec<Session> {
    let settings = plan.settings;
    let options = connect_options(settings);
    let mut sessions = Vec::new();
    for index in (thread..settings.connections).step_by(plan.threads) {
        if abort.load(Ordering::Relaxed) {
            break;
        }
        let host_index = index % settings.hosts.len();
        let host = &settings.hosts[host_index];
        match Conn::connect(host, &options) {
            Ok(conn) => sessions.push(Session {
                conn,
                created: VecDeque::new(),
                create_counter: 0,
                index,
                alive: true,
                host: host_index,
                last_heard: Instant::now(),
                reconnecting_since: None,
            }),
            Err(e) => {
                abort.store(true, Ordering::Relaxed);
                if let Ok(mut f) = failures.lock() {
                    f.push(format!("session {index} to {host}: {e}"));
                }
                break;
            }
        }
    }
    sessions
}

fn client_close_all(sessions: Vec<Session>) {
    let conns: Vec<Conn<Tag>> = sessions
        .into_iter()
        .filter(|s| s.alive)
        .map(|s| s.conn)
        .collect();
    client::close_all(conns, CLOSE_TIMEOUT);
}

struct Worker<'a> {
    plan: &'a Plan<'a>,
    thread: usize,
    sessions: Vec<Session>,
    timing: Timing,
    rng: SmallRng,
    stats: RunStats,
    live: &'a LiveCounters,
    /// Open loop only.
    schedule: Option<OpenLoopSchedule>,
    /// Open loop: intended times that are due but not yet sent. Bounded by `backlog_max`.
    backlog: VecDeque<Instant>,
    backlog_max: usize,
    /// Round-robin position for open-loop dispatch.
    next_session: usize,
    /// Operations issued so far, and this thread's share of `max_ops` (0: no limit).
    issued: u64,
    issue_limit: u64,
    /// Reconnect: new sessions come back from their threads here.
    reconnected_tx: mpsc::Sender<Reconnected>,
    reconnected_rx: mpsc::Receiver<Reconnected>,
}

impl<'a> Worker<'a> {
    fn new(
        plan: &'a Plan<'a>,
        thread: usize,
        sessions: Vec<Session>,
        timing: Timing,
        seed: u64,
        live: &'a LiveCounters,
    ) -> Worker<'a> {
        let settings = plan.settings;
        let schedule = plan.rate.map(|rate| {
            OpenLoopSchedule::new(
                timing.window.start,
                timing.window.measure_end,
                rate,
                plan.threads,
                thread,
            )
        });
        let backlog_max = plan.rate.map_or(0, |rate| {
            ((rate / plan.threads as f64 * BACKLOG_SECONDS) as usize)
                .clamp(BACKLOG_MIN, BACKLOG_MAX)
        });
        let threads = plan.threads as u64;
        let issue_limit = if settings.max_ops == 0 {
            0
        } else {
            let share = settings.max_ops / threads
                + u64::from((thread as u64) < settings.max_ops % threads);
            share.max(1)
        };
        let (reconnected_tx, reconnected_rx) = mpsc::channel();
        Worker {
            plan,
            thread,
            sessions,
            timing,
            rng: SmallRng::seed_from_u64(seed),
            stats: RunStats::default(),
            live,
            schedule,
            backlog: VecDeque::new(),
            backlog_max,
            next_session: 0,
            issued: 0,
            issue_limit,
            reconnected_tx,
            reconnected_rx,
        }
    }

    fn reconnects_pending(&self) -> bool {
        self.sessions.iter().any(|s| s.reconnecting_since.is_some())
    }

    fn issue_allowed(&self, now: Instant) -> bool {
        now < self.timing.window.measure_end
            && !interrupted()
            && (self.issue_limit == 0 || self.issued < self.issue_limit)
    }

    fn run(mut self, abort: &AtomicBool) -> RunStats {
        let mut events: Vec<Event<Tag>> = Vec::new();
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(self.sessions.len());
        let mut fd_owner: Vec<usize> = Vec::with_capacity(self.sessions.len());
        loop {
            let now = Instant::now();
            if abort.load(Ordering::Relaxed) {
                self.give_up(local_error::CONNECTION_LOST);
                break;
            }
            self.take_reconnected(now);
            self.issue(now);
            for session in self.sessions.iter_mut().filter(|s| s.alive) {
                session.conn.ping_if_due(now);
            }
            if self.plan.settings.reconnect {
                self.fail_silent_sessions(now);
            }
            for i in 0..self.sessions.len() {
                if self.sessions[i].alive {
                    if let Err(e) = self.sessions[i].conn.flush() {
                        self.fail_session(i, &e);
                    }
                }
            }

            let in_flight: usize = self
                .sessions
                .iter()
                .filter(|s| s.alive)
                .map(|s| s.conn.in_flight())
                .sum();
            // Open loop: issue() has already moved every due time (all of them once the
            // window is over) into the backlog, so an empty backlog means nothing is left.
            if !self.issue_allowed(now) && in_flight == 0 && self.backlog.is_empty() {
                break;
            }
            if now >= self.timing.drain_deadline {
                self.give_up(local_error::TIMEOUT);
                break;
            }
            if self.sessions.iter().all(|s| !s.alive) && !self.reconnects_pending() {
                self.give_up(local_error::CONNECTION_LOST);
                break;
            }

            let mut wake_at = self.next_wake(now);
            if self.reconnects_pending() {
                wake_at = wake_at.min(now + RECONNECT_POLL);
            }
            fds.clear();
            fd_owner.clear();
            for (i, s) in self.sessions.iter().enumerate().filter(|(_, s)| s.alive) {
                fds.push(client::poll_fd(s.conn.fd(), s.conn.wants_write()));
                fd_owner.push(i);
            }
            if let Err(e) = client::wait(&mut fds, wake_at.saturating_duration_since(now)) {
                log_thread_error(self.thread, &format!("poll failed: {e}"));
                self.give_up(local_error::CONNECTION_LOST);
                break;
            }
            for (fd, &i) in fds.iter().zip(fd_owner.iter()) {
                if fd.revents == 0 {
                    continue;
                }
                if fd.revents & libc::POLLOUT != 0 {
                    if let Err(e) = self.sessions[i].conn.flush() {
                        self.fail_session(i, &e);
                        continue;
                    }
                }
                if fd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    let result = self.sessions[i].conn.read_events(&mut events);
                    let completed = Instant::now();
                    self.sessions[i].last_heard = completed;
                    for event in events.drain(..) {
                        self.on_event(i, event, completed);
                    }
                    if let Err(e) = result {
                        self.fail_session(i, &e);
                    }
                }
            }
        }
        client_close_all(std::mem::take(&mut self.sessions));
        self.stats
    }

    /// The next moment the loop must act without being woken by a socket.
    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = (now + WAKE_MAX).min(self.timing.drain_deadline);
        if self.issue_allowed(now) {
            wake = wake.min(self.timing.window.measure_end);
            if let Some(due) = self.schedule.as_ref().and_then(|s| s.next_due()) {
                wake = wake.min(due);
            }
        }
        for s in self.sessions.iter().filter(|s| s.alive) {
            wake = wake.min(s.conn.ping_due());
        }
        wake
    }

    fn issue(&mut self, now: Instant) {
        let settings = self.plan.settings;
        match self.schedule.as_mut() {
            None => {
                if !self.issue_allowed(now) {
                    return;
                }
                for i in 0..self.sessions.len() {
                    while self.sessions[i].alive
                        && self.sessions[i].conn.in_flight() < settings.outstanding
                        && self.issue_allowed(now)
                    {
                        self.send_one(i, now, now);
                    }
                }
            }
            Some(schedule) => {
                while (self.issue_limit == 0 || self.issued < self.issue_limit) && !interrupted() {
                    let Some(intended) = schedule.pop_due(now) else {
                        break;
                    };
                    self.issued += 1;
                    if self.backlog.len() >= self.backlog_max {
                        if self.timing.window.phase(intended) == Phase::Measure {
                            self.stats
                                .op("(backlog)")
                                .record_error(local_error::BACKLOG_FULL);
                            self.live.add_error();
                        }
                    } else {
                        self.backlog.push_back(intended);
                    }
                }
                self.dispatch_backlog(now);
            }
        }
    }

    /// Open loop: hands queued requests to sessions with room, round robin.
    fn dispatch_backlog(&mut self, now: Instant) {
        let max_in_flight = self.plan.settings.max_in_flight;
        let count = self.sessions.len();
        let mut full_in_a_row = 0;
        while !self.backlog.is_empty() && full_in_a_row < count {
            let i = self.next_session % count;
            self.next_session = self.next_session.wrapping_add(1);
            let session = &self.sessions[i];
            if !session.alive || session.conn.in_flight() >= max_in_flight {
                full_in_a_row += 1;
                continue;
            }
            full_in_a_row = 0;
            if let Some(intended) = self.backlog.pop_front() {
                if self.timing.window.phase(intended) == Phase::Measure {
                    self.stats.record_send_lag(latency_us(intended, now));
                }
                self.send_one(i, intended, now);
            }
        }
    }

    /// Sends one operation drawn from the mix on session `i`.
    fn send_one(&mut self, i: usize, intended: Instant, _now: Instant) {
        if self.schedule.is_none() {
            // Closed loop counts here; open loop counted when the time became due.
            self.issued += 1;
        }
        let plan = self.plan;
        let mut kind = plan
            .settings
            .mix
            .pick(self.rng.gen_range(0..plan.settings.mix.total_weight()));
        if kind == OpKind::Delete && self.sessions[i].created.is_empty() {
            // Nothing of ours to delete yet: create instead, so deletes never fail.
            kind = OpKind::Create;
        }
        let request = self.build_request(i, kind);
        self.sessions[i].conn.send(&request, Tag { kind, intended });
    }

    fn build_request(&mut self, i: usize, kind: OpKind) -> Request {
        let plan = self.plan;
        let layout = &plan.layout;
        let key_path = |rng: &mut SmallRng| layout.key_path(plan.keys.next(rng));
        match kind {
            OpKind::GetData => Request::GetData(PathWatchRequest {
                path: key_path(&mut self.rng),
                watch: false,
            }),
            OpKind::Exists => Request::Exists(PathWatchRequest {
                path: key_path(&mut self.rng),
                watch: false,
            }),
            OpKind::GetChildren => Request::GetChildren(PathWatchRequest {
                path: key_path(&mut self.rng),
                watch: false,
            }),
            OpKind::SetData => Request::SetData(SetDataRequest {
                path: key_path(&mut self.rng),
                data: plan.values.next(&mut self.rng),
                version: -1,
            }),
            OpKind::Multi => {
                // Consecutive keys from a drawn one: distinct by construction.
                let first = plan.keys.next(&mut self.rng);
                let ops = (0..plan.settings.multi_size as u64)
                    .map(|offset| {
                        MultiOp::SetData(SetDataRequest {
                            path: layout.key_path((first + offset) % plan.settings.keys),
                            data: plan.values.next(&mut self.rng),
                            version: -1,
                        })
                    })
                    .collect();
                Request::Multi(ops)
            }
            OpKind::Create | OpKind::CreateEphemeral | OpKind::CreateSequential => {
                let session = &mut self.sessions[i];
                session.create_counter += 1;
                let base = format!("{}/{}-{}-", layout.nodes_dir(), plan.run_id, session.index);
                let (path, flags) = match kind {
                    OpKind::Create => (format!("{base}p{}", session.create_counter), 0),
                    OpKind::CreateEphemeral => (format!("{base}e{}", session.create_counter), 1),
                    _ => (format!("{base}s"), 2),
                };
                Request::Create(
                    OpCode::Create,
                    CreateRequest {
                        path,
                        data: plan.values.next(&mut self.rng),
                        acl: open_acl(),
                        flags,
                        ttl: -1,
                    },
                )
            }
            OpKind::Delete => {
                let path = self.sessions[i].created.pop_front().unwrap_or_default();
                Request::Delete(DeleteRequest { path, version: -1 })
            }
        }
    }

    fn on_event(&mut self, i: usize, event: Event<Tag>, completed: Instant) {
        let (tag, outcome) = match event {
            Event::Notification(_) => return,
            Event::Reply {
                tag,
                header,
                response,
            } => {
                if header.err == 0 {
                    if let Response::Create(path) = response {
                        self.sessions[i].remember(path);
                    }
                    (tag, Ok(()))
                } else {
                    (tag, Err(error_name(header.err)))
                }
            }
            Event::BadReply { tag, error } => {
                log_thread_error(
                    self.thread,
                    &format!("bad reply to {}: {error:?}", tag.kind.name()),
                );
                (tag, Err(local_error::BAD_REPLY.to_string()))
            }
        };
        let measured = self.timing.window.phase(tag.intended) == Phase::Measure;
        if self.plan.settings.timeline {
            let outcome = match &outcome {
                Ok(()) => "ok".to_string(),
                Err(name) => name.clone(),
            };
            self.record_timeline(
                tag.kind.name(),
                outcome,
                completed,
                latency_us(tag.intended, completed),
                i,
            );
        }
        match outcome {
            Ok(()) => {
                self.live.add_ok();
                if measured {
                    self.stats
                        .op(tag.kind.name())
                        .record_ok(latency_us(tag.intended, completed));
                }
            }
            Err(name) => {
                self.live.add_error();
                if measured {
                    self.stats.op(tag.kind.name()).record_error(&name);
                }
            }
        }
    }

    /// A broken session: its requests in flight count as lost.
    fn fail_session(&mut self, i: usize, error: &ClientError) {
        log_thread_error(
            self.thread,
            &format!("session {} failed: {error}", self.sessions[i].index),
        );
        self.sessions[i].alive = false;
        let lost = self.sessions[i].conn.take_in_flight();
        self.count_unanswered(i, lost, local_error::CONNECTION_LOST);
        if self.plan.settings.reconnect {
            self.start_reconnect(i);
        }
    }

    /// Reconnect: opens a new session for session `i` on a thread of its own (a connect
    /// can take seconds while the ensemble elects a leader; the other sessions of this
    /// worker go on meanwhile), trying the hosts in turn from the one after its last.
    fn start_reconnect(&mut self, i: usize) {
        let now = Instant::now();
        let session = &mut self.sessions[i];
        session.reconnecting_since = Some(now);
        let hosts = self.plan.settings.hosts.clone();
        let first = (session.host + 1) % hosts.len();
        let deadline = self.timing.drain_deadline;
        let options = ConnectOptions {
            connect_timeout: RECONNECT_ATTEMPT_TIMEOUT,
            ..connect_options(self.plan.settings)
        };
        let tx = self.reconnected_tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("loadgen-reconnect-{}", session.index))
            .spawn(move || {
                let mut attempt = 0;
                let mut last_error = String::from("no attempt before the deadline");
                while Instant::now() < deadline && !interrupted() {
                    let host = (first + attempt) % hosts.len();
                    attempt += 1;
                    match Conn::connect(&hosts[host], &options) {
                        Ok(conn) => {
                            let _ = tx.send((i, Ok((conn, host))));
                            return;
                        }
                        Err(e) => last_error = format!("{}: {e}", hosts[host]),
                    }
                    std::thread::sleep(RECONNECT_PAUSE);
                }
                let _ = tx.send((i, Err(last_error)));
            });
        if let Err(e) = spawned {
            log_thread_error(
                self.thread,
                &format!("cannot start a reconnect thread: {e}"),
            );
            self.sessions[i].reconnecting_since = None;
        }
    }

    /// Reconnect: puts the sessions that came back into service.
    fn take_reconnected(&mut self, now: Instant) {
        while let Ok((i, result)) = self.reconnected_rx.try_recv() {
            let Some(since) = self.sessions[i].reconnecting_since.take() else {
                continue;
            };
            match result {
                Ok((conn, host)) => {
                    let session = &mut self.sessions[i];
                    session.conn = conn;
                    session.host = host;
                    session.alive = true;
                    session.last_heard = now;
                    if self.plan.settings.timeline {
                        let name = self.plan.settings.hosts[host].clone();
                        self.record_timeline("reconnect", name, now, latency_us(since, now), i);
                    }
                }
                Err(e) => log_thread_error(
                    self.thread,
                    &format!(
                        "session {} could not reconnect: {e}",
                        self.sessions[i].index
                    ),
                ),
            }
        }
    }

    /// Reconnect: a session waiting for replies that has heard nothing from its server
    /// for two thirds of the session timeout (the Java client's read timeout) is given up
    /// on and replaced.
    fn fail_silent_sessions(&mut self, now: Instant) {
        for i in 0..self.sessions.len() {
            let s = &self.sessions[i];
            let limit = s.conn.negotiated_timeout() * 2 / 3;
            if s.alive
                && s.conn.in_flight() > 0
                && now.saturating_duration_since(s.last_heard) > limit
            {
                let error = ClientError::Timeout(format!("any reply for {limit:?}"));
                self.fail_session(i, &error);
            }
        }
    }

    fn record_timeline(
        &mut self,
        what: &'static str,
        outcome: String,
        at: Instant,
        latency_us: u64,
        i: usize,
    ) {
        if self.stats.timeline.len() < TIMELINE_MAX / self.plan.threads.max(1) {
            self.stats.timeline.push(TimelineEvent {
                at_unix_us: self.timing.unix_us(at),
                what,
                outcome,
                latency_us,
                session: self.sessions[i].index,
            });
        }
    }

    /// Ends the run early or at the drain deadline: what is still in flight or queued
    /// counts as an error.
    fn give_up(&mut self, in_flight_error: &str) {
        for i in 0..self.sessions.len() {
            let lost = self.sessions[i].conn.take_in_flight();
            self.count_unanswered(i, lost, in_flight_error);
        }
        let window = self.timing.window;
        let unsent = self
            .backlog
            .drain(..)
            .filter(|t| window.phase(*t) == Phase::Measure)
            .count() as u64;
        if unsent > 0 {
            self.stats
                .op("(backlog)")
                .record_errors(local_error::NOT_SENT, unsent);
        }
    }

    fn count_unanswered(&mut self, i: usize, tags: Vec<Tag>, error: &str) {
        let now = Instant::now();
        for tag in tags {
            if self.plan.settings.timeline {
                let waited = latency_us(tag.intended, now);
                self.record_timeline(tag.kind.name(), error.to_string(), now, waited, i);
            }
            self.live.add_error();
            if self.timing.window.phase(tag.intended) == Phase::Measure {
                self.stats.op(tag.kind.name()).record_error(error);
            }
        }
    }
}

fn log_thread_error(thread: usize, message: &str) {
    // Worker errors also show up in the error counts; this says why.
    log::warn!("thread {thread}: {message}");
}

/// Waits until every worker has finished (or `give_up_at`), calling `tick` every
/// [`TICK`] for the progress bar. Notices finished workers within 10 ms.
pub fn wait_for_workers<T>(
    handles: &[std::thread::ScopedJoinHandle<'_, T>],
    give_up_at: Instant,
    mut tick: impl FnMut(Instant),
) {
    let mut next_tick = Instant::now();
    while handles.iter().any(|h| !h.is_finished()) {
        let now = Instant::now();
        if now >= give_up_at {
            log::warn!("workers did not finish in time; reporting what they returned so far");
            break;
        }
        if now >= next_tick {
            tick(now);
            next_tick = now + TICK;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
