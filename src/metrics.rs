//! Runtime metrics (`wdyno labs:enable log-runtime-metrics`): every
//! [`SAMPLE_EVERY`] each dyno of an app with the feature gets a line of
//! its figures in its app's log, in Heroku's format:
//!
//! ```text
//! wdyno[web.1]: source=web.1 dyno=web.1 sample#memory_total=21.30MB sample#memory_quota=512.00MB sample#cpu_ms=412 sample#load_avg_1m=0.02 sample#load_avg_5m=0.01 sample#load_avg_15m=0.00
//! ```
//!
//! The figures come from each dyno's [`crate::dyno::Meter`]; the load
//! averages are the share of one core its guest used, damped over 1, 5 and
//! 15 minutes as a kernel's load average is.

use std::collections::HashMap;
use std::fmt::Write;
use std::time::{Duration, Instant};

use crate::dyno::Usage;

/// How often a dyno's figures are written (Heroku's interval).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(20);

/// The one labs feature: runtime metrics in the log.
pub const RUNTIME_METRICS: &str = "log-runtime-metrics";

/// A dyno's load averages: the share of one core it used.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Load {
    pub m1: f64,
    pub m5: f64,
    pub m15: f64,
}

impl Load {
    /// Folds in `used` (CPU time) over `wall`: each average moves towards
    /// it as an exponential average with its own time constant.
    pub fn add(&mut self, used: Duration, wall: Duration) {
        if wall.is_zero() {
            return;
        }
        let now = used.as_secs_f64() / wall.as_secs_f64();
        let fold = |avg: &mut f64, minutes: f64| {
            let keep = (-wall.as_secs_f64() / (minutes * 60.0)).exp();
            *avg = *avg * keep + now * (1.0 - keep);
        };
        fold(&mut self.m1, 1.0);
        fold(&mut self.m5, 5.0);
        fold(&mut self.m15, 15.0);
    }
}

/// A dyno's figures as one line's worth of `key=value` pairs.
pub fn figures(dyno: &str, usage: &Usage, load: Option<&Load>) -> String {
    let mb = |b: u64| b as f64 / (1u64 << 20) as f64;
    let mut s = format!(
        "source={dyno} dyno={dyno} sample#memory_total={:.2}MB sample#memory_quota={:.2}MB sample#cpu_ms={}",
        mb(usage.memory_bytes),
        mb(usage.quota_bytes),
        usage.cpu.as_millis()
    );
    if let Some(l) = load {
        let _ = write!(
            s,
            " sample#load_avg_1m={:.2} sample#load_avg_5m={:.2} sample#load_avg_15m={:.2}",
            l.m1, l.m5, l.m15
        );
    }
    s
}

/// What the sampler remembers of each dyno between samples: keyed by app,
/// dyno name and start (a restarted dyno starts over). A dyno not sampled
/// in a round is forgotten at the next [`Sampler::round`].
#[derive(Default)]
pub struct Sampler {
    seen: HashMap<(String, String, i64), Seen>,
    round: u64,
}

struct Seen {
    cpu: Duration,
    at: Instant,
    load: Load,
    round: u64,
}

impl Sampler {
    /// Starts a round of samples: what the last round did not sample (a
    /// dyno that stopped) is forgotten.
    pub fn round(&mut self) {
        let last = self.round;
        self.seen.retain(|_, s| s.round == last);
        self.round += 1;
    }

    /// The line for one dyno now. `started` is when it started (its first
    /// sample measures from then).
    pub fn line(
        &mut self,
        app: &str,
        dyno: &str,
        started: chrono::DateTime<chrono::Utc>,
        usage: &Usage,
    ) -> String {
        let now = Instant::now();
        let key = (app.to_owned(), dyno.to_owned(), started.timestamp_micros());
        let seen = self.seen.entry(key).or_insert_with(|| {
            let age = (chrono::Utc::now() - started).to_std().unwrap_or_default();
            Seen {
                cpu: Duration::ZERO,
                at: now.checked_sub(age).unwrap_or(now),
                load: Load::default(),
                round: 0,
            }
        });
        let used = usage.cpu.saturating_sub(seen.cpu);
        seen.load.add(used, now - seen.at);
        seen.cpu = usage.cpu;
        seen.at = now;
        seen.round = self.round;
        figures(dyno, usage, Some(&seen.load))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_in_herokus_format() {
        let usage = Usage {
            memory_bytes: 22_334_669,
            quota_bytes: 512 << 20,
            cpu: Duration::from_millis(412),
        };
        let load = Load {
            m1: 0.02,
            m5: 0.011,
            m15: 0.0,
        };
        assert_eq!(
            figures("web.1", &usage, Some(&load)),
            "source=web.1 dyno=web.1 sample#memory_total=21.30MB sample#memory_quota=512.00MB sample#cpu_ms=412 sample#load_avg_1m=0.02 sample#load_avg_5m=0.01 sample#load_avg_15m=0.00"
        );
    }

    #[test]
    fn a_dyno_gone_for_a_round_is_forgotten() {
        let mut s = Sampler::default();
        let at = chrono::Utc::now();
        let usage = Usage::default();
        s.round();
        s.line("a", "web.1", at, &usage);
        s.line("a", "web.2", at, &usage);
        s.round();
        s.line("a", "web.1", at, &usage);
        s.round();
        let left: Vec<&str> = s.seen.keys().map(|(_, d, _)| d.as_str()).collect();
        assert_eq!(left, ["web.1"]);
    }

    #[test]
    fn a_busy_dyno_approaches_one_core() {
        let mut load = Load::default();
        for _ in 0..60 {
            load.add(Duration::from_secs(20), Duration::from_secs(20));
        }
        assert!((load.m1 - 1.0).abs() < 0.001, "{load:?}");
        assert!(load.m15 > 0.7 && load.m15 < 1.0, "{load:?}");
        let mut idle = Load::default();
        idle.add(Duration::ZERO, Duration::from_secs(20));
        assert_eq!(idle, Load::default());
    }
}
