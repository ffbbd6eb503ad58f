//! The `zkrs-loadgen` command line.
//!
//! Exit status: 0 when the run completed without errors, 1 when operations failed
//! (errors are in the report), 2 when the run could not be carried out (bad settings,
//! server unreachable, setup failed).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};
use zkrs_loadgen::report::{self, RunReport};
use zkrs_loadgen::runner::{self, RunError, RunOutcome};
use zkrs_loadgen::sweep::{self, Step, SweepOptions};
use zkrs_loadgen::workload::{parse_duration, parse_rate, Kind, SettingError, Settings};
use zkrs_loadgen::{churn, fanout, setup};

#[derive(Parser)]
#[command(
    name = "zkrs-loadgen",
    version,
    about = "Load generator for ZooKeeper-compatible servers (zkrs, Apache ZooKeeper 3.8)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workload; print throughput and latency percentiles per operation.
    Run {
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Raise the offered (open-loop) rate until p99 breaks the SLO or errors appear.
    Sweep {
        #[command(flatten)]
        workload: WorkloadArgs,
        #[command(flatten)]
        output: OutputArgs,
        #[command(flatten)]
        sweep: SweepArgs,
    },
    /// Delete everything under the prefix (after --keep or an interrupted run).
    Cleanup {
        #[command(flatten)]
        workload: WorkloadArgs,
    },
    /// Print the effective settings as a workload file.
    ShowWorkload {
        #[command(flatten)]
        workload: WorkloadArgs,
    },
}

/// Settings; each flag overrides the workload file. Values take the same forms as in
/// the file (durations with a unit: 10s, 500ms; rates: 5000, 20k).
#[derive(Args)]
struct WorkloadArgs {
    /// Workload file: `key = value` lines (a TOML subset), `#` comments
    #[arg(long, short = 'w', value_name = "FILE")]
    workload: Option<PathBuf>,
    /// Servers, as in a connect string: host:port[,host:port...] [default: 127.0.0.1:2181]
    #[arg(long)]
    hosts: Option<String>,
    /// mix | fanout (watch fan-out) | churn (session churn) [default: mix]
    #[arg(long)]
    kind: Option<String>,
    /// Weighted operations: get, set, create, create-ephemeral, create-sequential, delete,
    /// exists, children, multi [default: get=90,set=10]
    #[arg(long)]
    mix: Option<String>,
    /// Keys pre-created under <prefix>/keys [default: 1000]
    #[arg(long)]
    keys: Option<String>,
    /// uniform | zipfian | zipfian:S [default: uniform]
    #[arg(long)]
    key_distribution: Option<String>,
    /// Bytes per value: N or MIN..MAX [default: 100]
    #[arg(long)]
    value_size: Option<String>,
    /// Sessions (churn: concurrent churn loops) [default: 8]
    #[arg(long, short = 'c')]
    connections: Option<String>,
    /// Worker threads, 0 = one per core [default: 0]
    #[arg(long)]
    threads: Option<String>,
    /// Closed loop: requests in flight per session [default: 1]
    #[arg(long)]
    outstanding: Option<String>,
    /// Open loop: operations per second in total (churn: sessions/s, fanout: rounds/s)
    #[arg(long)]
    rate: Option<String>,
    /// Open loop: in-flight cap per session before requests queue [default: 1024]
    #[arg(long)]
    max_in_flight: Option<String>,
    /// Measured time [default: 10s]
    #[arg(long, short = 'd')]
    duration: Option<String>,
    /// Unmeasured time before it [default: 2s]
    #[arg(long)]
    warmup: Option<String>,
    /// Stop after this many operations in total, 0 = no limit [default: 0]
    #[arg(long)]
    max_ops: Option<String>,
    /// setData operations per multi [default: 2]
    #[arg(long)]
    multi_size: Option<String>,
    /// Root of everything the loadgen creates [default: /zkrs-loadgen]
    #[arg(long)]
    prefix: Option<String>,
    /// Keep the key space after the run
    #[arg(long)]
    keep: bool,
    /// Mix: replace a broken (or silent) session with a new one on the next host
    #[arg(long)]
    reconnect: bool,
    /// Session timeout asked for [default: 30s]
    #[arg(long)]
    session_timeout: Option<String>,
    /// How long to wait for replies after the duration [default: 5s]
    #[arg(long)]
    drain_timeout: Option<String>,
    /// Fan-out: watching sessions [default: 100]
    #[arg(long)]
    watchers: Option<String>,
    /// Fan-out: most rounds [default: 1000000]
    #[arg(long)]
    rounds: Option<String>,
    /// Seed for the random choices
    #[arg(long)]
    seed: Option<String>,
    /// Any setting as KEY=VALUE (repeatable)
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl WorkloadArgs {
    fn settings(&self) -> Result<Settings, SettingError> {
        let mut settings = Settings::default();
        if let Some(path) = &self.workload {
            let text = std::fs::read_to_string(path).map_err(|e| {
                SettingError(format!("cannot read workload file {}: {e}", path.display()))
            })?;
            settings.apply_file(&text, &path.display().to_string())?;
        }
        let flags: [(&str, &Option<String>); 21] = [
            ("hosts", &self.hosts),
            ("kind", &self.kind),
            ("mix", &self.mix),
            ("keys", &self.keys),
            ("key_distribution", &self.key_distribution),
            ("value_size", &self.value_size),
            ("connections", &self.connections),
            ("threads", &self.threads),
            ("outstanding", &self.outstanding),
            ("rate", &self.rate),
            ("max_in_flight", &self.max_in_flight),
            ("duration", &self.duration),
            ("warmup", &self.warmup),
            ("max_ops", &self.max_ops),
            ("multi_size", &self.multi_size),
            ("prefix", &self.prefix),
            ("session_timeout", &self.session_timeout),
            ("drain_timeout", &self.drain_timeout),
            ("watchers", &self.watchers),
            ("rounds", &self.rounds),
            ("seed", &self.seed),
        ];
        for (key, value) in flags {
            if let Some(value) = value {
                settings.apply(key, value).map_err(|e| {
                    // "keys: ..." from the parser becomes "--keys: ...".
                    let message =
                        e.0.strip_prefix(&format!("{key}: "))
                            .unwrap_or(&e.0)
                            .to_string();
                    SettingError(format!("--{}: {message}", key.replace('_', "-")))
                })?;
            }
        }
        if self.keep {
            settings.keep = true;
        }
        if self.reconnect {
            settings.reconnect = true;
        }
        for pair in &self.set {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(SettingError(format!("--set `{pair}`: expected KEY=VALUE")));
            };
            settings
                .apply(key, value)
                .map_err(|e| SettingError(format!("--set {key}: {e}")))?;
        }
        settings.validate()?;
        Ok(settings)
    }
}

#[derive(Args)]
struct OutputArgs {
    /// Write the results as JSON
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write one HdrHistogram .hgrm percentile file per operation into DIR
    #[arg(long, value_name = "DIR")]
    hgrm: Option<PathBuf>,
    /// No progress bar (it is also off when stdout is not a terminal)
    #[arg(long, short = 'q')]
    quiet: bool,
    /// Use the key space as it is: no setup before the run
    #[arg(long)]
    no_setup: bool,
    /// Mix: write every completion (and reconnect) as CSV lines
    /// `unix_us,what,outcome,latency_us,session` into FILE
    #[arg(long, value_name = "FILE")]
    timeline: Option<PathBuf>,
}

impl OutputArgs {
    fn show_progress(&self) -> bool {
        !self.quiet && std::io::stdout().is_terminal()
    }
}

#[derive(Args)]
struct SweepArgs {
    /// The p99 latency a rate must stay within
    #[arg(long, default_value = "10ms")]
    slo_p99: String,
    /// First offered rate (ops/s)
    #[arg(long, default_value = "1000")]
    start_rate: String,
    /// Rate increase per step: ops/s to add (2000) or a factor (x1.5)
    #[arg(long, default_value = "x1.5")]
    step: String,
    /// Highest offered rate to try
    #[arg(long, default_value = "1m")]
    max_rate: String,
    /// Most rising steps
    #[arg(long, default_value_t = 30)]
    max_steps: usize,
    /// Bisection steps between the last passing and the first failing rate
    #[arg(long, default_value_t = 3)]
    refine: usize,
    /// Latency-vs-throughput chart
    #[arg(long, value_name = "FILE", default_value = "sweep.svg")]
    svg: PathBuf,
}

fn in_flag(flag: &'static str) -> impl Fn(SettingError) -> SettingError {
    move |e| SettingError(format!("--{flag}: {e}"))
}

impl SweepArgs {
    fn options(&self) -> Result<SweepOptions, SettingError> {
        let slo_p99 = parse_duration(&self.slo_p99).map_err(in_flag("slo-p99"))?;
        if slo_p99.is_zero() {
            return Err(SettingError("--slo-p99 must be above 0".into()));
        }
        Ok(SweepOptions {
            slo_p99,
            start_rate: parse_rate(&self.start_rate).map_err(in_flag("start-rate"))?,
            step: Step::parse(&self.step).map_err(in_flag("step"))?,
            max_rate: parse_rate(&self.max_rate).map_err(in_flag("max-rate"))?,
            max_steps: self.max_steps.clamp(1, sweep::STEPS_MAX),
            refine: self.refine.min(20),
        })
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    runner::install_interrupt_handler();
    let result = match &cli.command {
        Command::Run { workload, output } => with_settings(workload, |s| run(s, output)),
        Command::Sweep {
            workload,
            output,
            sweep,
        } => with_settings(workload, |s| match sweep.options() {
            Ok(options) => run_sweep(s, output, sweep, &options),
            Err(e) => Err(RunError(e.0)),
        }),
        Command::Cleanup { workload } => with_settings(workload, |s| {
            let report = setup::cleanup(s)?;
            println!("deleted {} nodes under {}", report.deleted, s.prefix);
            Ok(ExitCode::SUCCESS)
        }),
        Command::ShowWorkload { workload } => with_settings(workload, |s| {
            for (key, value) in s.to_pairs() {
                println!("{key} = \"{value}\"");
            }
            Ok(ExitCode::SUCCESS)
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("zkrs-loadgen: {e}");
            ExitCode::from(2)
        }
    }
}

fn with_settings(
    args: &WorkloadArgs,
    f: impl FnOnce(&Settings) -> Result<ExitCode, RunError>,
) -> Result<ExitCode, RunError> {
    let settings = args.settings().map_err(|e| RunError(e.0))?;
    f(&settings)
}

fn prepare(settings: &Settings, output: &OutputArgs) -> Result<(), RunError> {
    if output.no_setup {
        return Ok(());
    }
    let began = Instant::now();
    let report = setup::setup(settings)?;
    eprintln!(
        "setup: {} nodes created, {} already there, under {} in {:.2}s",
        report.created,
        report.already_there,
        settings.prefix,
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

fn finish(settings: &Settings) {
    if settings.keep {
        eprintln!(
            "keeping {} (remove it with `zkrs-loadgen cleanup`)",
            settings.prefix
        );
        return;
    }
    let began = Instant::now();
    match setup::cleanup(settings) {
        Ok(report) => eprintln!(
            "cleanup: {} nodes deleted in {:.2}s",
            report.deleted,
            began.elapsed().as_secs_f64()
        ),
        Err(e) => eprintln!("cleanup failed: {e} (run `zkrs-loadgen cleanup` to retry)"),
    }
}

fn run(settings: &Settings, output: &OutputArgs) -> Result<ExitCode, RunError> {
    let mut settings = settings.clone();
    if output.timeline.is_some() {
        if settings.kind != Kind::Mix {
            return Err(RunError(
                "--timeline records the operation mix (kind = mix)".into(),
            ));
        }
        settings.timeline = true;
    }
    let settings = &settings;
    prepare(settings, output)?;
    let show = output.show_progress();
    let outcome = match settings.kind {
        Kind::Mix => runner::run_mix(settings, settings.rate, show, "run"),
        Kind::Fanout => fanout::run_fanout(settings, show, "fanout"),
        Kind::Churn => churn::run_churn(settings, show, "churn"),
    };
    // The report first: cleaning up a large key space can take a while.
    let written = outcome
        .as_ref()
        .map_err(|e| RunError(e.0.clone()))
        .and_then(|outcome| write_outputs(settings, output, outcome));
    finish(settings);
    let outcome = outcome?;
    written?;
    Ok(if outcome.stats.error_total() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn write_outputs(
    settings: &Settings,
    output: &OutputArgs,
    outcome: &RunOutcome,
) -> Result<(), RunError> {
    let io_error = |what: &str, e: std::io::Error| RunError(format!("{what}: {e}"));
    report::print_table(&mut std::io::stdout().lock(), settings, outcome)
        .map_err(|e| io_error("writing the report", e))?;
    if let Some(path) = &output.json {
        report::write_json(path, &RunReport::new(settings, outcome))
            .map_err(|e| io_error(&format!("writing {}", path.display()), e))?;
    }
    if let Some(path) = &output.timeline {
        let events = outcome.stats.sorted_timeline();
        report::write_timeline(path, &events)
            .map_err(|e| io_error(&format!("writing {}", path.display()), e))?;
        match report::longest_ok_gap(&events) {
            Some((from, to)) => eprintln!(
                "timeline: {} events in {}; longest gap between successful operations {:.1} ms",
                events.len(),
                path.display(),
                (to - from) as f64 / 1000.0
            ),
            None => eprintln!("timeline: {} events in {}", events.len(), path.display()),
        }
    }
    if let Some(dir) = &output.hgrm {
        let files = report::write_hgrm_dir(dir, outcome)
            .map_err(|e| io_error(&format!("writing into {}", dir.display()), e))?;
        eprintln!("wrote {} .hgrm files into {}", files.len(), dir.display());
    }
    Ok(())
}

fn run_sweep(
    settings: &Settings,
    output: &OutputArgs,
    args: &SweepArgs,
    options: &SweepOptions,
) -> Result<ExitCode, RunError> {
    if settings.kind != Kind::Mix {
        return Err(RunError("sweep runs the operation mix (kind = mix)".into()));
    }
    prepare(settings, output)?;
    println!(
        "sweep: mix {} on {}, p99 SLO {:.3} ms, {} per step after {} warm-up",
        settings.mix,
        settings.hosts.join(","),
        options.slo_p99.as_secs_f64() * 1000.0,
        zkrs_loadgen::workload::format_duration(settings.duration),
        zkrs_loadgen::workload::format_duration(settings.warmup),
    );
    println!(
        "{:>12} {:>12} {:>9} {:>9} {:>9} {:>9} {:>7} {:>6}  verdict",
        "offered/s", "achieved/s", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "errors", "cpu%"
    );
    let result = sweep::run_sweep(settings, options, output.show_progress(), &mut |p| {
        println!(
            "{:>12.0} {:>12.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7} {:>6.1}  {}",
            p.offered,
            p.achieved,
            p.latency_ms.p50,
            p.latency_ms.p99,
            p.latency_ms.p99_9,
            p.latency_ms.max,
            p.errors,
            p.loadgen_cpu_percent,
            p.verdict
        );
    });
    finish(settings);
    let result = result?;
    match (result.sustainable_rate, result.sustainable_throughput) {
        (Some(rate), Some(achieved)) => println!(
            "highest sustainable rate: {rate:.0} ops/s offered ({achieved:.0} ops/s achieved) with p99 <= {:.3} ms",
            result.slo_p99_ms
        ),
        _ => println!("no tried rate met the SLO; lower --start-rate"),
    }
    let title = format!(
        "zkrs-loadgen sweep: {} on {}",
        settings.mix,
        settings.hosts.join(",")
    );
    std::fs::write(&args.svg, sweep::svg_chart(&result, &title))
        .map_err(|e| RunError(format!("writing {}: {e}", args.svg.display())))?;
    eprintln!("wrote {}", args.svg.display());
    if let Some(path) = &output.json {
        report::write_json(path, &result)
            .map_err(|e| RunError(format!("writing {}: {e}", path.display())))?;
    }
    Ok(ExitCode::SUCCESS)
}
