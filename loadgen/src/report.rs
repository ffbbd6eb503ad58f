//! Presenting a run: the table on stdout, the `--json` file, the `--hgrm` files, the
//! `--timeline` file.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::runner::RunOutcome;
use crate::stats::{OpStats, TimelineEvent, HISTOGRAM_SIGNIFICANT_DIGITS};
use crate::workload::{Kind, Settings};

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub p99_99: f64,
    pub max: f64,
    pub mean: f64,
}

impl Latency {
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        if h.is_empty() {
            return Latency {
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p99_9: 0.0,
                p99_99: 0.0,
                max: 0.0,
                mean: 0.0,
            };
        }
        Latency {
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            p99_99: ms(h.value_at_quantile(0.9999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct OpReport {
    pub ok: u64,
    pub errors: BTreeMap<String, u64>,
    /// Successful operations per second over the measured window.
    pub throughput: f64,
    pub latency_ms: Latency,
}

impl OpReport {
    fn of(stats: &OpStats, seconds: f64) -> OpReport {
        OpReport {
            ok: stats.ok,
            errors: stats.errors.clone(),
            throughput: if seconds > 0.0 {
                stats.ok as f64 / seconds
            } else {
                0.0
            },
            latency_ms: Latency::of(&stats.latency_us),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CpuReport {
    pub user_s: f64,
    pub system_s: f64,
    pub wall_s: f64,
    pub cores: usize,
    /// CPU time over (wall time x cores), in percent.
    pub utilization_percent: f64,
}

/// The whole result of one run, as written to `--json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub tool: &'static str,
    pub kind: &'static str,
    pub settings: BTreeMap<String, String>,
    pub threads: usize,
    pub sessions: usize,
    pub offered_rate: Option<f64>,
    pub measured_s: f64,
    pub throughput: f64,
    pub ok: u64,
    pub errors: u64,
    pub ops: BTreeMap<String, OpReport>,
    pub total: OpReport,
    /// Open loop: how late requests left the loadgen compared to their intended time.
    pub send_lag_ms: Option<Latency>,
    pub cpu: CpuReport,
}

impl RunReport {
    pub fn new(settings: &Settings, outcome: &RunOutcome) -> RunReport {
        let seconds = outcome.measured.as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let wall_s = outcome.wall.as_secs_f64();
        RunReport {
            tool: "zkrs-loadgen",
            kind: settings.kind.name(),
            settings: settings
                .to_pairs()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
            threads: outcome.threads,
            sessions: outcome.sessions,
            offered_rate: outcome.offered_rate,
            measured_s: seconds,
            throughput: outcome.throughput(),
            ok: outcome.stats.ok_total(),
            errors: outcome.stats.error_total(),
            ops: outcome
                .stats
                .ops
                .iter()
                .map(|(name, s)| (name.to_string(), OpReport::of(s, seconds)))
                .collect(),
            total: OpReport::of(&outcome.stats.total(), seconds),
            send_lag_ms: outcome.stats.send_lag_us.as_ref().map(Latency::of),
            cpu: CpuReport {
                user_s: outcome.cpu.user.as_secs_f64(),
                system_s: outcome.cpu.system.as_secs_f64(),
                wall_s,
                cores,
                utilization_percent: cpu_percent(outcome),
            },
        }
    }
}

/// The loadgen's CPU time over (wall time x cores), in percent.
pub fn cpu_percent(outcome: &RunOutcome) -> f64 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let wall_s = outcome.wall.as_secs_f64();
    if wall_s > 0.0 {
        100.0 * outcome.cpu.total().as_secs_f64() / (wall_s * cores as f64)
    } else {
        0.0
    }
}

/// One line saying what ran.
pub fn describe(settings: &Settings, outcome: &RunOutcome) -> String {
    let load = match (settings.kind, outcome.offered_rate) {
        (Kind::Mix, None) => format!(
            "closed loop, {} outstanding per session",
            settings.outstanding
        ),
        (Kind::Mix, Some(rate)) => format!("open loop at {rate:.0} ops/s"),
        (Kind::Fanout, None) => format!("{} watchers, rounds back to back", settings.watchers),
        (Kind::Fanout, Some(rate)) => format!("{} watchers, {rate} rounds/s", settings.watchers),
        (Kind::Churn, rate) => format!("{} sessions/s", rate.unwrap_or(0.0)),
    };
    let what = match settings.kind {
        Kind::Mix => format!(
            "mix {} over {} keys ({}), values {} B",
            settings.mix, settings.keys, settings.key_distribution, settings.value_size
        ),
        Kind::Fanout => "watch fan-out".to_string(),
        Kind::Churn => "session churn".to_string(),
    };
    format!(
        "{what}; {load}; {} sessions on {} threads to {}; {:.1}s measured after {:.1}s warm-up{}",
        outcome.sessions,
        outcome.threads,
        settings.hosts.join(","),
        outcome.measured.as_secs_f64(),
        settings.warmup.as_secs_f64(),
        if crate::runner::interrupted() {
            " (interrupted)"
        } else {
            ""
        }
    )
}

/// The table of one run: one row per operation, then the total, errors, lag, CPU.
pub fn print_table(
    out: &mut dyn Write,
    settings: &Settings,
    outcome: &RunOutcome,
) -> io::Result<()> {
    let report = RunReport::new(settings, outcome);
    writeln!(out, "{}", describe(settings, outcome))?;
    writeln!(out)?;
    writeln!(
        out,
        "{:<18} {:>10} {:>7} {:>11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "operation",
        "ok",
        "errors",
        "ops/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "p99.99 ms",
        "max ms"
    )?;
    let row = |out: &mut dyn Write, name: &str, r: &OpReport| -> io::Result<()> {
        let l = &r.latency_ms;
        writeln!(
            out,
            "{:<18} {:>10} {:>7} {:>11.1} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            name,
            r.ok,
            r.errors.values().sum::<u64>(),
            r.throughput,
            l.p50,
            l.p90,
            l.p99,
            l.p99_9,
            l.p99_99,
            l.max
        )
    };
    for (name, r) in &report.ops {
        row(out, name, r)?;
    }
    // Fan-out and churn record different stages of one action: a sum means nothing there.
    if report.ops.len() > 1 && settings.kind == Kind::Mix {
        row(out, "all", &report.total)?;
    }
    for (name, r) in &report.ops {
        if !r.errors.is_empty() {
            let list: Vec<String> = r.errors.iter().map(|(e, n)| format!("{e}={n}")).collect();
            writeln!(out, "errors in {name}: {}", list.join(", "))?;
        }
    }
    writeln!(out)?;
    if let Some(lag) = &report.send_lag_ms {
        writeln!(
            out,
            "send lag behind intended time: p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            lag.p50, lag.p99, lag.max
        )?;
    }
    let cpu = &report.cpu;
    writeln!(
        out,
        "loadgen CPU: {:.2}s user + {:.2}s system in {:.2}s wall = {:.1}% of {} cores",
        cpu.user_s, cpu.system_s, cpu.wall_s, cpu.utilization_percent, cpu.cores
    )?;
    if cpu.utilization_percent > 80.0 {
        writeln!(
            out,
            "warning: the loadgen used over 80% of this machine's CPU; it may be the bottleneck"
        )?;
    }
    Ok(())
}

pub fn write_json(path: &Path, value: &impl Serialize) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    std::fs::write(path, text + "\n")
}

/// Writes one `<op>.hgrm` per operation into `dir` (created if missing).
/// The `--timeline` output: a CSV header, then one line per event in time order.
pub fn write_timeline(path: &Path, events: &[TimelineEvent]) -> io::Result<()> {
    let mut out = io::BufWriter::new(std::fs::File::create(path)?);
    writeln!(out, "unix_us,what,outcome,latency_us,session")?;
    for e in events {
        writeln!(
            out,
            "{},{},{},{},{}",
            e.at_unix_us,
            e.what,
            e.outcome.replace(',', ";"),
            e.latency_us,
            e.session
        )?;
    }
    out.flush()
}

/// The longest time between two consecutive successful operations of a time-ordered
/// timeline, as (completion of the one before, completion of the one after), Unix
/// microseconds; None with fewer than two successes.
pub fn longest_ok_gap(events: &[TimelineEvent]) -> Option<(u64, u64)> {
    let mut oks = events
        .iter()
        .filter(|e| e.what != "reconnect" && e.outcome == "ok")
        .map(|e| e.at_unix_us);
    let mut previous = oks.next()?;
    let mut best: Option<(u64, u64)> = None;
    for at in oks {
        if best.is_none_or(|(a, b)| at - previous > b - a) {
            best = Some((previous, at));
        }
        previous = at;
    }
    best
}

pub fn write_hgrm_dir(dir: &Path, outcome: &RunOutcome) -> io::Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    let mut all: Vec<(String, Histogram<u64>)> = outcome
        .stats
        .ops
        .iter()
        .map(|(name, s)| (name.to_string(), s.latency_us.clone()))
        .collect();
    if outcome.stats.ops.len() > 1 {
        all.push(("all".to_string(), outcome.stats.total().latency_us));
    }
    for (name, histogram) in all {
        let path = dir.join(format!("{}.hgrm", sanitize(&name)));
        let mut text = Vec::new();
        write_hgrm(&mut text, &histogram)?;
        std::fs::write(&path, text)?;
        written.push(path);
    }
    Ok(written)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The percentile distribution in the text format of HdrHistogram's
/// `outputPercentileDistribution` (milliseconds, 5 ticks per half distance), which the
/// HdrHistogram plotter reads.
pub fn write_hgrm(out: &mut dyn Write, h: &Histogram<u64>) -> io::Result<()> {
    const SCALE: f64 = 1000.0; // microseconds -> milliseconds
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = h.highest_equivalent(v.value_iterated_to()) as f64 / SCALE;
            if q < 1.0 {
                writeln!(
                    out,
                    "{:>12.3} {:>2.12} {:>10} {:>14.2}",
                    value,
                    q,
                    total,
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(out, "{:>12.3} {:>2.12} {:>10}", value, q, total)?;
            }
        }
    }
    let sub_buckets = (2.0 * 10f64.powi(i32::from(HISTOGRAM_SIGNIFICANT_DIGITS)))
        .log2()
        .ceil()
        .exp2() as u64;
    writeln!(
        out,
        "#[Mean    = {:>12.3}, StdDeviation   = {:>12.3}]",
        h.mean() / SCALE,
        h.stdev() / SCALE
    )?;
    writeln!(
        out,
        "#[Max     = {:>12.3}, Total count    = {:>12}]",
        h.max() as f64 / SCALE,
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::new_histogram;

    #[test]
    fn hgrm_has_the_plotter_format() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v).unwrap();
        }
        let mut text = Vec::new();
        write_hgrm(&mut text, &h).unwrap();
        let text = String::from_utf8(text).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].trim_start().starts_with("Value"));
        assert_eq!(lines[1], "");
        // First data line: the minimum (0.001 ms) at percentile 0.
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first[0], "0.001");
        assert_eq!(first[1], "0.000000000000");
        // The last data line reaches 100% with every count, and has no 1/(1-p) column.
        let last_data = lines.iter().rev().find(|l| !l.starts_with('#')).unwrap();
        let cols: Vec<&str> = last_data.split_whitespace().collect();
        assert_eq!(cols.len(), 3, "{last_data}");
        assert_eq!(cols[0], "1.000");
        assert_eq!(cols[1], "1.000000000000");
        assert_eq!(cols[2], "1000");
        assert!(
            text.contains("#[Max     =        1.000, Total count    =         1000]"),
            "{text}"
        );
    }

    #[test]
    fn latency_summary_in_milliseconds() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v).unwrap();
        }
        let l = Latency::of(&h);
        assert!((l.p50 - 5.0).abs() < 0.01, "{l:?}");
        assert!((l.p99 - 9.9).abs() < 0.01, "{l:?}");
        assert!((l.max - 10.0).abs() < 0.01, "{l:?}");
        assert_eq!(Latency::of(&new_histogram()).max, 0.0);
    }

    #[test]
    fn longest_gap_between_successes() {
        let event = |at: u64, what: &'static str, outcome: &str| TimelineEvent {
            at_unix_us: at,
            what,
            outcome: outcome.to_string(),
            latency_us: 0,
            session: 0,
        };
        let events = vec![
            event(100, "set", "ok"),
            event(200, "set", "ok"),
            event(300, "set", "ConnectionLost"),
            event(900, "reconnect", "127.0.0.1:2181"),
            event(1200, "set", "ok"),
            event(1300, "set", "ok"),
        ];
        assert_eq!(longest_ok_gap(&events), Some((200, 1200)));
        assert_eq!(longest_ok_gap(&events[..1]), None);

        let path = std::env::temp_dir().join(format!("timeline-{}.csv", std::process::id()));
        write_timeline(&path, &events).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "unix_us,what,outcome,latency_us,session");
        assert_eq!(lines[4], "900,reconnect,127.0.0.1:2181,0,0");
        assert_eq!(lines.len(), 7);
    }
}
