//! The Prometheus text exposition format (version 0.0.4) as ZooKeeper 3.8's
//! `PrometheusMetricsProvider` writes it through the Prometheus Java client 0.9
//! (`TextFormat.write004`): per family `# HELP <name> <name>` and `# TYPE <name> <type>`, then
//! its samples, labels each followed by a comma (`readlatency{quantile="0.5",} 1.0`), values
//! as Java's `Double.toString` (`NaN`, `+Inf`, `-Inf` as Go writes them). ZooKeeper names every
//! metric with its help text, counters without a `_total` suffix (client 0.9).

use super::java_double;
use crate::metrics::HistogramSnapshot;

/// The Content-Type of the format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Summary,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Summary => "summary",
        }
    }
}

/// One sample: its full name (the family's, or with `_count` / `_sum`), labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    pub name: String,
    /// The HELP text; None: the name (as ZooKeeper registers its metrics).
    pub help: Option<&'static str>,
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    /// A gauge (or counter) with one unlabelled sample.
    pub fn single(name: &str, kind: Kind, value: f64) -> Family {
        Family {
            name: name.to_string(),
            help: None,
            kind,
            samples: vec![Sample {
                name: name.to_string(),
                labels: Vec::new(),
                value,
            }],
        }
    }

    /// A summary: one sample per quantile (computed over `window`, NaN when it is empty),
    /// then `_count` and `_sum` (over `total`, everything since the start).
    pub fn summary(
        name: &str,
        quantiles: &[f64],
        window: &HistogramSnapshot,
        total: &HistogramSnapshot,
    ) -> Family {
        let mut samples: Vec<Sample> = quantiles
            .iter()
            .map(|&q| Sample {
                name: name.to_string(),
                labels: vec![("quantile".to_string(), go_double(q))],
                value: window.quantile(q),
            })
            .collect();
        samples.push(Sample {
            name: format!("{name}_count"),
            labels: Vec::new(),
            value: total.count as f64,
        });
        samples.push(Sample {
            name: format!("{name}_sum"),
            labels: Vec::new(),
            value: total.sum as f64,
        });
        Family {
            name: name.to_string(),
            help: None,
            kind: Kind::Summary,
            samples,
        }
    }
}

/// `Collector.doubleToGoString`.
pub fn go_double(value: f64) -> String {
    if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        java_double(value)
    }
}

/// The text of `families`, in order.
pub fn render(families: &[Family]) -> String {
    let mut out = String::new();
    for family in families {
        out.push_str(&format!(
            "# HELP {} {}\n# TYPE {} {}\n",
            family.name,
            escape_help(family.help.unwrap_or(&family.name)),
            family.name,
            family.kind.name()
        ));
        for sample in &family.samples {
            out.push_str(&sample.name);
            if !sample.labels.is_empty() {
                out.push('{');
                for (label, value) in &sample.labels {
                    out.push_str(&format!("{label}=\"{}\",", escape_label(value)));
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(&go_double(sample.value));
            out.push('\n');
        }
    }
    out
}

/// The Java client's `StandardExports` (process CPU, start time, file descriptors, memory),
/// which ZooKeeper's provider registers with `exportJvmInfo=true`, from /proc; a figure
/// that cannot be read is left out.
pub fn process_families(open_fds: i64, max_fds: i64, uptime: std::time::Duration) -> Vec<Family> {
    let with_help = |name: &str, help: &'static str, kind: Kind, value: f64| Family {
        help: Some(help),
        ..Family::single(name, kind, value)
    };
    let mut out = Vec::new();
    if let Some(seconds) = process_cpu_seconds() {
        out.push(with_help(
            "process_cpu_seconds_total",
            "Total user and system CPU time spent in seconds.",
            Kind::Counter,
            seconds,
        ));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    out.push(with_help(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        Kind::Gauge,
        (now.saturating_sub(uptime).as_millis() / 1000) as f64,
    ));
    if open_fds >= 0 {
        out.push(with_help(
            "process_open_fds",
            "Number of open file descriptors.",
            Kind::Gauge,
            open_fds as f64,
        ));
    }
    if max_fds >= 0 {
        out.push(with_help(
            "process_max_fds",
            "Maximum number of open file descriptors.",
            Kind::Gauge,
            max_fds as f64,
        ));
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for (key, name, help) in [
        (
            "VmSize:",
            "process_virtual_memory_bytes",
            "Virtual memory size in bytes.",
        ),
        (
            "VmRSS:",
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        ),
    ] {
        let kilobytes = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(kb) = kilobytes {
            out.push(with_help(name, help, Kind::Gauge, (kb * 1024) as f64));
        }
    }
    out
}

/// User + system CPU time of this process (getrusage).
fn process_cpu_seconds() -> Option<f64> {
    // SAFETY: getrusage writes into the zeroed struct we own; no other pointers.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return None;
        }
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Some(seconds(usage.ru_utime) + seconds(usage.ru_stime))
}

fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::LocalHistogram;

    #[test]
    fn the_java_clients_layout() {
        let h = LocalHistogram::default();
        h.record(10);
        h.record(10);
        let snap = h.snapshot();
        let text = render(&[
            Family::single("gg", Kind::Gauge, 78.0),
            Family::single("cc", Kind::Counter, 10.0),
            Family::summary("ss", &[0.5], &snap, &snap),
            Family::summary(
                "empty",
                &[0.5, 0.9],
                &Default::default(),
                &Default::default(),
            ),
        ]);
        assert_eq!(
            text,
            "# HELP gg gg\n# TYPE gg gauge\ngg 78.0\n\
             # HELP cc cc\n# TYPE cc counter\ncc 10.0\n\
             # HELP ss ss\n# TYPE ss summary\nss{quantile=\"0.5\",} 10.0\nss_count 2.0\nss_sum 20.0\n\
             # HELP empty empty\n# TYPE empty summary\nempty{quantile=\"0.5\",} NaN\n\
             empty{quantile=\"0.9\",} NaN\nempty_count 0.0\nempty_sum 0.0\n"
        );
        assert_eq!(go_double(1.2e7), "1.2E7");
        let process = render(&process_families(
            10,
            1024,
            std::time::Duration::from_secs(5),
        ));
        assert!(process.contains(
            "# HELP process_open_fds Number of open file descriptors.\n# TYPE process_open_fds gauge\nprocess_open_fds 10.0\n"
        ));
        assert!(process.contains("# TYPE process_cpu_seconds_total counter\n"));
        assert!(process.contains("process_resident_memory_bytes "));
        assert_eq!(go_double(f64::INFINITY), "+Inf");
    }
}
