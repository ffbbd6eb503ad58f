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
    pub kind: Kind,
    pub samples: Vec<Sample>,
}

impl Family {
    /// A gauge (or counter) with one unlabelled sample.
    pub fn single(name: &str, kind: Kind, value: f64) -> Family {
        Family {
            name: name.to_string(),
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
            escape_help(&family.name),
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
        assert_eq!(go_double(f64::INFINITY), "+Inf");
    }
}
