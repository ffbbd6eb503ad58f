//! The live progress bar: elapsed time, phase, throughput and errors while a run goes on.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use crate::stats::{live_totals, LiveCounters};

/// How often the bar is redrawn and the throughput sampled.
pub const TICK: Duration = Duration::from_millis(250);

pub struct Progress {
    bar: ProgressBar,
    start: Instant,
    warmup: Duration,
    /// The previous sample: (when, ok operations so far).
    previous: (Instant, u64),
}

impl Progress {
    /// A hidden bar when `enabled` is false (quiet, or stdout is not a terminal).
    pub fn new(
        enabled: bool,
        label: &str,
        start: Instant,
        warmup: Duration,
        duration: Duration,
    ) -> Progress {
        let total_ms = (warmup + duration).as_millis() as u64;
        let bar = if enabled {
            ProgressBar::new(total_ms.max(1))
        } else {
            ProgressBar::hidden()
        };
        let style =
            ProgressStyle::with_template("{prefix} {elapsed:>4} [{bar:20.cyan/blue}] {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_prefix(label.to_string());
        Progress {
            bar,
            start,
            warmup,
            previous: (start, 0),
        }
    }

    /// Redraws from the threads' live counters.
    pub fn tick(&mut self, counters: &[LiveCounters]) {
        let now = Instant::now();
        let (ok, errors) = live_totals(counters);
        let (then, ok_then) = self.previous;
        let seconds = now.saturating_duration_since(then).as_secs_f64();
        let rate = if seconds > 0.0 {
            ok.saturating_sub(ok_then) as f64 / seconds
        } else {
            0.0
        };
        self.previous = (now, ok);
        let elapsed = now.saturating_duration_since(self.start);
        let phase = if now < self.start {
            "connecting"
        } else if elapsed < self.warmup {
            "warm-up"
        } else {
            "measuring"
        };
        self.bar.set_position(elapsed.as_millis() as u64);
        self.bar
            .set_message(format!("{phase:<10} {rate:>9.0} ops/s {errors} errors"));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
