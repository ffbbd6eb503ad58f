//! Session churn: at `rate` sessions per second (open loop), connect a new session, create
//! an ephemeral node, close the session. `connections` loops run side by side, each on its
//! own thread with blocking calls, each taking its share of the intended start times.
//!
//! Recorded: `session-connect` (TCP + handshake), `session-create` (the ephemeral create),
//! `session-close` (closeSession acknowledged), and `session-cycle` (intended start to
//! close, so a server that slows down connects shows up here). After the run the churn
//! directory must be empty: a closed session's ephemeral nodes are gone.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use zkrs::proto::{CreateRequest, OpCode, PathWatchRequest, Request, Response};

use crate::client::{open_acl, Conn};
use crate::keygen::{Layout, ValueGen};
use crate::progress::Progress;
use crate::runner::{
    connect_options, new_run_id, wait_for_workers, RunError, RunOutcome, CLOSE_TIMEOUT,
};
use crate::stats::{error_name, local_error, CpuTime, LiveCounters, RunStats};
use crate::timing::{latency_us, OpenLoopSchedule, Phase, Window};
use crate::workload::Settings;

pub const OP_CONNECT: &str = "session-connect";
pub const OP_CREATE: &str = "session-create";
pub const OP_CLOSE: &str = "session-close";
pub const OP_CYCLE: &str = "session-cycle";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub fn run_churn(
    settings: &Settings,
    show_progress: bool,
    label: &str,
) -> Result<RunOutcome, RunError> {
    let Some(rate) = settings.rate else {
        return Err(RunError("churn needs a rate (sessions per second)".into()));
    };
    let loops = settings
        .connections
        .min(crate::workload::limits::THREADS_MAX);
    let layout = Layout::new(&settings.prefix);
    let run_id = new_run_id();
    let counters: Vec<LiveCounters> = (0..loops).map(|_| LiveCounters::default()).collect();
    let barrier = Barrier::new(loops + 1);

    let (results, cpu, start, end) = std::thread::scope(|scope| {
        let start = Instant::now() + Duration::from_millis(20);
        let window = Window::new(start, settings.warmup, settings.duration);
        let mut handles = Vec::with_capacity(loops);
        for thread in 0..loops {
            let (layout, run_id, counters, barrier) = (&layout, &run_id, &counters, &barrier);
            handles.push(scope.spawn(move || {
                crate::client::tighten_timer_slack();
                barrier.wait();
                churn_loop(
                    settings,
                    layout,
                    run_id,
                    window,
                    rate,
                    loops,
                    thread,
                    &counters[thread],
                )
            }));
        }
        barrier.wait();
        let cpu_before = CpuTime::now();
        let mut progress = Progress::new(
            show_progress,
            label,
            start,
            settings.warmup,
            settings.duration,
        );
        let give_up_at = window.measure_end + CALL_TIMEOUT * 3 + CLOSE_TIMEOUT;
        wait_for_workers(&handles, give_up_at, |_| progress.tick(&counters));
        let end = Instant::now();
        progress.finish();
        let results: Vec<RunStats> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect();
        (results, CpuTime::now().since(cpu_before), start, end)
    });

    let mut stats = RunStats::default();
    for r in &results {
        stats.merge(r);
    }
    // Every session was closed, so no ephemeral node may be left.
    let left = ephemerals_left(settings, &layout.churn_dir())?;
    if left > 0 {
        stats
            .op(OP_CYCLE)
            .record_errors(local_error::EPHEMERAL_LEFT, left);
    }
    let window = Window::new(start, settings.warmup, settings.duration);
    Ok(RunOutcome {
        stats,
        measured: end
            .min(window.measure_end)
            .saturating_duration_since(window.measure_start),
        cpu,
        wall: end.saturating_duration_since(start),
        threads: loops,
        sessions: loops,
        offered_rate: Some(rate),
    })
}

#[allow(clippy::too_many_arguments)]
fn churn_loop(
    settings: &Settings,
    layout: &Layout,
    run_id: &str,
    window: Window,
    rate: f64,
    loops: usize,
    thread: usize,
    live: &LiveCounters,
) -> RunStats {
    let mut stats = RunStats::default();
    let mut schedule = OpenLoopSchedule::new(window.start, window.measure_end, rate, loops, thread);
    let options = connect_options(settings);
    let mut rng = rand::thread_rng();
    let values = ValueGen::new(settings.value_size, &mut rng);
    let churn_dir = layout.churn_dir();
    let mut cycle = 0u64;
    while let Some(due) = schedule.next_due() {
        let now = Instant::now();
        if now >= window.measure_end || crate::runner::interrupted() {
            // Behind schedule at the end: what was not started was not sent.
            break;
        }
        if due > now {
            std::thread::sleep(due - now);
        }
        let Some(intended) = schedule.pop_due(Instant::now()) else {
            continue;
        };
        let measured = window.phase(intended) == Phase::Measure;
        let record =
            |stats: &mut RunStats, op: &'static str, result: Result<u64, String>| match result {
                Ok(us) => {
                    live.add_ok();
                    if measured {
                        stats.op(op).record_ok(us);
                    }
                }
                Err(name) => {
                    live.add_error();
                    if measured {
                        stats.op(op).record_error(&name);
                    }
                }
            };
        cycle += 1;
        let host = &settings.hosts[((cycle as usize) * loops + thread) % settings.hosts.len()];
        let begin = Instant::now();
        let mut conn: Conn<()> = match Conn::connect(host, &options) {
            Ok(c) => c,
            Err(e) => {
                log::warn!("churn connect to {host}: {e}");
                record(
                    &mut stats,
                    OP_CONNECT,
                    Err(local_error::CONNECTION_LOST.to_string()),
                );
                continue;
            }
        };
        let connected = Instant::now();
        record(&mut stats, OP_CONNECT, Ok(latency_us(begin, connected)));
        let request = Request::Create(
            OpCode::Create,
            CreateRequest {
                path: format!("{churn_dir}/{run_id}-{thread}-{cycle}"),
                data: values.next(&mut rng),
                acl: open_acl(),
                flags: 1,
                ttl: -1,
            },
        );
        let create_ok = match conn.call(&request, CALL_TIMEOUT) {
            Ok((header, Response::Create(_))) if header.err == 0 => {
                record(
                    &mut stats,
                    OP_CREATE,
                    Ok(latency_us(connected, Instant::now())),
                );
                true
            }
            Ok((header, _)) => {
                record(&mut stats, OP_CREATE, Err(error_name(header.err)));
                false
            }
            Err(e) => {
                log::warn!("churn create: {e}");
                record(
                    &mut stats,
                    OP_CREATE,
                    Err(local_error::CONNECTION_LOST.to_string()),
                );
                false
            }
        };
        let closing = Instant::now();
        if conn.close(CALL_TIMEOUT) {
            let closed = Instant::now();
            record(&mut stats, OP_CLOSE, Ok(latency_us(closing, closed)));
            if create_ok {
                record(&mut stats, OP_CYCLE, Ok(latency_us(intended, closed)));
            }
        } else {
            record(&mut stats, OP_CLOSE, Err(local_error::TIMEOUT.to_string()));
        }
    }
    stats
}

/// Children left in the churn directory after every churn session closed.
fn ephemerals_left(settings: &Settings, churn_dir: &str) -> Result<u64, RunError> {
    let mut conn: Conn<()> = Conn::connect(&settings.hosts[0], &connect_options(settings))
        .map_err(|e| RunError(format!("checking {churn_dir}: {e}")))?;
    let request = Request::GetChildren(PathWatchRequest {
        path: churn_dir.to_string(),
        watch: false,
    });
    let result = conn.call(&request, CALL_TIMEOUT);
    conn.close(CLOSE_TIMEOUT);
    match result {
        Ok((header, Response::GetChildren(names))) if header.err == 0 => Ok(names.len() as u64),
        Ok((header, _)) => Err(RunError(format!(
            "listing {churn_dir}: {}",
            error_name(header.err)
        ))),
        Err(e) => Err(RunError(format!("listing {churn_dir}: {e}"))),
    }
}
