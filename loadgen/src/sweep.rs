//! Capacity sweep: run the mix open loop at rising offered rates until p99 breaks the SLO,
//! errors appear, or the server falls behind; then narrow the limit down by bisection.
//! The highest passing rate is the sustainable rate. Latency against throughput goes to an
//! SVG chart.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::report::Latency;
use crate::runner::{run_mix, RunError, RunOutcome};
use crate::workload::{parse_rate, SettingError, Settings};

/// A step that achieves less than this share of the offered rate did not keep up.
pub const ACHIEVED_SHARE_MIN: f64 = 0.95;
pub const STEPS_MAX: usize = 200;

/// How the offered rate rises from one step to the next.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    /// Add this many operations per second.
    Add(f64),
    /// Multiply by this factor (> 1).
    Multiply(f64),
}

impl Step {
    /// `1000` / `2k` adds, `x1.5` multiplies.
    pub fn parse(text: &str) -> Result<Step, SettingError> {
        let text = text.trim();
        if let Some(factor) = text.strip_prefix(['x', '*']) {
            return match factor.parse::<f64>() {
                Ok(f) if f.is_finite() && f > 1.0 && f <= 100.0 => Ok(Step::Multiply(f)),
                _ => Err(SettingError(format!(
                    "step factor must be above 1 and at most 100, like x1.5, not `{text}`"
                ))),
            };
        }
        parse_rate(text)
            .map(Step::Add)
            .map_err(|e| SettingError(format!("step: {e} (or a factor like x1.5)")))
    }

    pub fn next(self, rate: f64) -> f64 {
        match self {
            Step::Add(d) => rate + d,
            Step::Multiply(f) => rate * f,
        }
    }
}

#[derive(Debug, Clone)]
pub struct SweepOptions {
    pub slo_p99: Duration,
    pub start_rate: f64,
    pub step: Step,
    pub max_rate: f64,
    pub max_steps: usize,
    /// Bisection runs between the last passing and the first failing rate.
    pub refine: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepPoint {
    pub offered: f64,
    pub achieved: f64,
    pub ok: u64,
    pub errors: u64,
    pub latency_ms: Latency,
    pub loadgen_cpu_percent: f64,
    pub passed: bool,
    /// Why the step failed.
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepResult {
    pub slo_p99_ms: f64,
    /// The highest offered rate that passed; `None` if even the first step failed.
    pub sustainable_rate: Option<f64>,
    /// The achieved throughput at that rate.
    pub sustainable_throughput: Option<f64>,
    pub points: Vec<SweepPoint>,
}

/// Whether a step passed: no errors, p99 within the SLO, and the offered rate achieved.
pub fn judge(
    offered: f64,
    achieved: f64,
    errors: u64,
    p99_ms: f64,
    slo_p99: Duration,
) -> Result<(), String> {
    let slo_ms = slo_p99.as_secs_f64() * 1000.0;
    if errors > 0 {
        return Err(format!("{errors} errors"));
    }
    if p99_ms > slo_ms {
        return Err(format!(
            "p99 {p99_ms:.3} ms above the SLO of {slo_ms:.3} ms"
        ));
    }
    if achieved < ACHIEVED_SHARE_MIN * offered {
        return Err(format!(
            "achieved {achieved:.0} of {offered:.0} ops/s offered"
        ));
    }
    Ok(())
}

fn point(offered: f64, outcome: &RunOutcome, slo_p99: Duration) -> SweepPoint {
    let latency_ms = Latency::of(&outcome.stats.total().latency_us);
    let achieved = outcome.throughput();
    let errors = outcome.stats.error_total();
    let verdict = judge(offered, achieved, errors, latency_ms.p99, slo_p99);
    SweepPoint {
        offered,
        achieved,
        ok: outcome.stats.ok_total(),
        errors,
        latency_ms,
        loadgen_cpu_percent: crate::report::cpu_percent(outcome),
        passed: verdict.is_ok(),
        verdict: verdict.err().unwrap_or_else(|| "ok".to_string()),
    }
}

/// Runs the sweep. `on_point` sees every step as it completes.
pub fn run_sweep(
    settings: &Settings,
    options: &SweepOptions,
    show_progress: bool,
    on_point: &mut dyn FnMut(&SweepPoint),
) -> Result<SweepResult, RunError> {
    let mut points: Vec<SweepPoint> = Vec::new();
    let mut best: Option<(f64, f64)> = None;
    let mut first_failure: Option<f64> = None;
    let mut rate = options.start_rate;
    let mut run_step = |rate: f64, points: &mut Vec<SweepPoint>| -> Result<bool, RunError> {
        let outcome = run_mix(settings, Some(rate), show_progress, &format!("{rate:.0}/s"))?;
        let p = point(rate, &outcome, options.slo_p99);
        on_point(&p);
        let passed = p.passed;
        points.push(p);
        Ok(passed)
    };
    for _ in 0..options.max_steps.min(STEPS_MAX) {
        if rate > options.max_rate || crate::runner::interrupted() {
            break;
        }
        if run_step(rate, &mut points)? {
            best = Some((rate, points.last().map_or(0.0, |p| p.achieved)));
            rate = options.step.next(rate);
        } else {
            first_failure = Some(rate);
            break;
        }
    }
    if let Some(high) = first_failure {
        let mut low = best.map_or(0.0, |(r, _)| r);
        let mut high = high;
        for _ in 0..options.refine {
            let mid = (low + high) / 2.0;
            if mid < 1.0 || high - low < 0.01 * high || crate::runner::interrupted() {
                break;
            }
            if run_step(mid, &mut points)? {
                best = Some((mid, points.last().map_or(0.0, |p| p.achieved)));
                low = mid;
            } else {
                high = mid;
            }
        }
    }
    Ok(SweepResult {
        slo_p99_ms: options.slo_p99.as_secs_f64() * 1000.0,
        sustainable_rate: best.map(|(r, _)| r),
        sustainable_throughput: best.map(|(_, a)| a),
        points,
    })
}

/// A latency line of the chart: name, colour, which percentile.
type Series = (&'static str, &'static str, fn(&Latency) -> f64);

/// "Nice" tick positions covering `0..=max`.
fn ticks(max: f64) -> Vec<f64> {
    if max.is_nan() || max <= 0.0 {
        return vec![0.0];
    }
    let raw = max / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    (0..=((max / step).ceil() as usize).min(20))
        .map(|i| i as f64 * step)
        .collect()
}

fn format_rate(r: f64) -> String {
    // Up to one decimal, without a trailing ".0": 1.5k, 2k, 2.5M.
    let short = |v: f64, unit: &str| {
        let text = format!("{v:.1}");
        format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
    };
    if r >= 1e6 {
        short(r / 1e6, "M")
    } else if r >= 1e3 {
        short(r / 1e3, "k")
    } else {
        format!("{r:.0}")
    }
}

/// Latency (log scale, ms) against achieved throughput: p50, p99 and p99.9 lines, the SLO
/// as a dashed line, failed steps as hollow markers.
pub fn svg_chart(result: &SweepResult, title: &str) -> String {
    const W: f64 = 860.0;
    const H: f64 = 520.0;
    const LEFT: f64 = 80.0;
    const RIGHT: f64 = 150.0;
    const TOP: f64 = 50.0;
    const BOTTOM: f64 = 60.0;
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let mut points: Vec<&SweepPoint> = result.points.iter().collect();
    points.sort_by(|a, b| a.offered.total_cmp(&b.offered));

    let x_max = points
        .iter()
        .map(|p| p.achieved.max(p.offered))
        .fold(0.0, f64::max)
        .max(1.0);
    let x_ticks = ticks(x_max);
    let x_top = x_ticks.last().copied().unwrap_or(x_max).max(x_max);
    let latencies = points
        .iter()
        .flat_map(|p| [p.latency_ms.p50, p.latency_ms.p99, p.latency_ms.p99_9])
        .chain([result.slo_p99_ms])
        .filter(|v| *v > 0.0);
    let (lo, hi) = latencies.fold((f64::MAX, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = if hi > 0.0 { (lo, hi) } else { (0.01, 1.0) };
    let decade_lo = lo.log10().floor() as i32;
    let decade_hi = (hi.log10().ceil() as i32).max(decade_lo + 1);
    let x = |v: f64| LEFT + plot_w * v / x_top;
    let y = |ms: f64| {
        let v = ms.max(10f64.powi(decade_lo)).log10();
        TOP + plot_h * (1.0 - (v - decade_lo as f64) / (decade_hi - decade_lo) as f64)
    };

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
        LEFT + plot_w / 2.0,
        escape(title)
    );
    // Grid and axes.
    for t in &x_ticks {
        let px = x(*t);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#e5e5e5"/><text x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            TOP + plot_h,
            TOP + plot_h + 18.0,
            format_rate(*t)
        );
    }
    for d in decade_lo..=decade_hi {
        let py = y(10f64.powi(d));
        let label = if d >= 0 {
            format!("{}", 10f64.powi(d))
        } else {
            format!("{:.*}", (-d) as usize, 10f64.powi(d))
        };
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}" stroke="#e5e5e5"/><text x="{:.1}" y="{:.1}" text-anchor="end">{label}</text>"##,
            LEFT + plot_w,
            LEFT - 8.0,
            py + 4.0
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">achieved throughput (ops/s)</text>"#,
        LEFT + plot_w / 2.0,
        H - 18.0
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">latency (ms, log scale)</text>"#,
        TOP + plot_h / 2.0
    );
    // SLO.
    let slo_y = y(result.slo_p99_ms);
    let _ = writeln!(
        s,
        r##"<line x1="{LEFT}" y1="{slo_y:.1}" x2="{:.1}" y2="{slo_y:.1}" stroke="#d62728" stroke-dasharray="6 4"/><text x="{:.1}" y="{:.1}" fill="#d62728">p99 SLO {:.3} ms</text>"##,
        LEFT + plot_w,
        LEFT + 6.0,
        slo_y - 6.0,
        result.slo_p99_ms
    );
    // Series.
    let series: [Series; 3] = [
        ("p50", "#2ca02c", |l| l.p50),
        ("p99", "#1f77b4", |l| l.p99),
        ("p99.9", "#9467bd", |l| l.p99_9),
    ];
    for (i, (name, color, pick)) in series.iter().enumerate() {
        let path: Vec<String> = points
            .iter()
            .map(|p| format!("{:.1},{:.1}", x(p.achieved), y(pick(&p.latency_ms))))
            .collect();
        if !path.is_empty() {
            let _ = writeln!(
                s,
                r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
                path.join(" ")
            );
        }
        for p in &points {
            let fill = if p.passed { *color } else { "white" };
            let _ = writeln!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="4" fill="{fill}" stroke="{color}" stroke-width="1.5"><title>{name} {:.3} ms at {:.0} ops/s (offered {:.0}): {}</title></circle>"#,
                x(p.achieved),
                y(pick(&p.latency_ms)),
                pick(&p.latency_ms),
                p.achieved,
                p.offered,
                escape(&p.verdict)
            );
        }
        let ly = TOP + 20.0 + 20.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{name}</text>"#,
            LEFT + plot_w + 8.0,
            LEFT + plot_w + 30.0,
            LEFT + plot_w + 36.0,
            ly + 4.0
        );
    }
    if let (Some(rate), Some(achieved)) = (result.sustainable_rate, result.sustainable_throughput) {
        let px = x(achieved);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{TOP}" x2="{px:.1}" y2="{:.1}" stroke="#555" stroke-dasharray="2 3"/><text x="{:.1}" y="{:.1}">sustainable:</text><text x="{:.1}" y="{:.1}">{} ops/s offered</text>"##,
            TOP + plot_h,
            LEFT + plot_w + 8.0,
            TOP + 100.0,
            LEFT + plot_w + 8.0,
            TOP + 116.0,
            format_rate(rate)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lat(p99: f64) -> Latency {
        Latency {
            p50: p99 / 4.0,
            p90: p99 / 2.0,
            p99,
            p99_9: p99 * 2.0,
            p99_99: p99 * 3.0,
            max: p99 * 4.0,
            mean: p99 / 3.0,
        }
    }

    #[test]
    fn steps_parse_and_advance() {
        assert_eq!(Step::parse("1000"), Ok(Step::Add(1000.0)));
        assert_eq!(Step::parse("2k"), Ok(Step::Add(2000.0)));
        assert_eq!(Step::parse("x1.5"), Ok(Step::Multiply(1.5)));
        assert!(Step::parse("x1").unwrap_err().0.contains("above 1"));
        assert!(Step::parse("lots")
            .unwrap_err()
            .0
            .contains("factor like x1.5"));
        assert_eq!(Step::Add(500.0).next(1000.0), 1500.0);
        assert_eq!(Step::Multiply(2.0).next(1000.0), 2000.0);
    }

    #[test]
    fn judging_steps() {
        let slo = Duration::from_millis(10);
        assert_eq!(judge(1000.0, 998.0, 0, 9.9, slo), Ok(()));
        assert!(judge(1000.0, 998.0, 3, 1.0, slo)
            .unwrap_err()
            .contains("3 errors"));
        assert!(judge(1000.0, 998.0, 0, 10.5, slo)
            .unwrap_err()
            .contains("above the SLO"));
        assert!(judge(1000.0, 800.0, 0, 1.0, slo)
            .unwrap_err()
            .contains("achieved 800 of 1000"));
    }

    #[test]
    fn chart_is_well_formed_svg() {
        let mk = |offered: f64, p99: f64, passed: bool| SweepPoint {
            offered,
            achieved: offered * 0.99,
            ok: 100,
            errors: 0,
            latency_ms: lat(p99),
            loadgen_cpu_percent: 10.0,
            passed,
            verdict: if passed {
                "ok".into()
            } else {
                "p99 <too> high".into()
            },
        };
        let result = SweepResult {
            slo_p99_ms: 5.0,
            sustainable_rate: Some(2000.0),
            sustainable_throughput: Some(1980.0),
            points: vec![
                mk(1000.0, 0.4, true),
                mk(3000.0, 9.0, false),
                mk(2000.0, 1.0, true),
            ],
        };
        let svg = svg_chart(&result, "sweep & test");
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches("<circle").count(), 9);
        assert!(svg.contains("sweep &amp; test"));
        assert!(svg.contains("p99 &lt;too&gt; high"));
        assert!(
            svg.contains("<text x=\"718.0\" y=\"166.0\">2k ops/s offered</text>"),
            "{svg}"
        );
        assert_eq!(format_rate(1500.0), "1.5k");
        assert_eq!(format_rate(2_500_000.0), "2.5M");
        assert_eq!(format_rate(250.0), "250");
        assert!(svg.contains("p99 SLO 5.000 ms"));
        // Hollow markers for the failed step only (one per series).
        assert_eq!(svg.matches(r#"fill="white" stroke"#).count(), 3);
    }

    #[test]
    fn nice_ticks() {
        assert_eq!(
            ticks(10_000.0),
            vec![0.0, 2000.0, 4000.0, 6000.0, 8000.0, 10000.0]
        );
        assert_eq!(ticks(7.0).last().copied(), Some(8.0));
        assert_eq!(ticks(0.0), vec![0.0]);
    }
}
