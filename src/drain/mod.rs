//! Log drains (`wdyno drains:add URL`): every line of an app also goes to
//! an HTTP(S) endpoint in Logplex's framing or to a syslog server (TCP or
//! TLS), as Heroku's Logplex sends them.
//!
//! A drain never slows the log bus or a dyno down. Each drain is one task
//! that follows its app on the bus into a buffer of its own
//! ([`BUFFER_LINES`]) and sends from that buffer in batches; a drain that
//! is slow, dead or refusing is retried with backoff while the buffer
//! fills, and once full the oldest lines go, with an `L10` line in the
//! app's log saying how many.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio_rustls::rustls::ClientConfig;

use crate::ledger::Drain;
use crate::logbus::{Bus, Event, LogFilter, LogLine};

pub mod frame;
mod link;

pub use link::{DELIVERY_TIMEOUT, Kind, Target, tls_config};

/// Lines a drain holds while its endpoint is slow or down.
pub const BUFFER_LINES: usize = 1024;
/// Lines per HTTP post or syslog write.
pub const BATCH_LINES: usize = 500;
/// The first retry waits this long, each next one twice as long…
const RETRY_FIRST: Duration = Duration::from_millis(250);
/// …up to this.
const RETRY_MAX: Duration = Duration::from_secs(30);
/// At most one `L10` line per drain this often.
const OVERFLOW_REPORT_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("{url} is not a drain URL: {why}")]
    BadUrl { url: String, why: String },
    #[error("reading the drain CA certificates: {0}")]
    Ca(String),
}

/// A drain's identity: a random UUID (version 4).
pub fn new_id() -> String {
    let x: u128 = rand::random();
    let x = (x & !(0xf << 76) | (0x4 << 76)) & !(0x3 << 62) | (0x2 << 62);
    let h = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The running drains of every app.
pub struct Drains {
    bus: Bus,
    tls: Arc<ClientConfig>,
    running: Mutex<HashMap<String, Running>>,
}

struct Running {
    app: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Drains {
    pub fn new(bus: Bus, tls: Arc<ClientConfig>) -> Self {
        Drains {
            bus,
            tls,
            running: Mutex::default(),
        }
    }

    /// Makes `app`'s running drains exactly `drains`: new ones start
    /// (with the lines from now on), removed ones stop.
    pub fn sync(&self, app: &str, drains: &[Drain]) {
        let mut running = self.running.lock().expect("drains lock poisoned");
        running.retain(|id, r| r.app != app || drains.iter().any(|d| d.id == *id));
        for d in drains {
            if running.contains_key(&d.id) {
                continue;
            }
            let target = match Target::parse(&d.url) {
                Ok(t) => t,
                // Checked when added; a record from elsewhere is skipped.
                Err(e) => {
                    tracing::warn!("drain {} of {app}: {e}", d.id);
                    continue;
                }
            };
            let link = link::Link::new(target, d.token.clone(), d.id.clone(), self.tls.clone());
            let task = tokio::spawn(run(self.bus.clone(), app.to_owned(), d.token.clone(), link));
            running.insert(
                d.id.clone(),
                Running {
                    app: app.to_owned(),
                    task,
                },
            );
        }
    }
}

/// A drain's buffer between its reader and its sender.
#[derive(Default)]
struct Buffer {
    state: Mutex<Held>,
    more: Notify,
}

#[derive(Default)]
struct Held {
    lines: VecDeque<Arc<LogLine>>,
    /// Lines lost since the last `L10` line, and since when.
    dropped: u64,
    since: Option<DateTime<Utc>>,
}

impl Buffer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        self.state.lock().expect("drain buffer lock poisoned")
    }

    fn push(&self, line: Arc<LogLine>) {
        {
            let mut h = self.lock();
            if h.lines.len() == BUFFER_LINES {
                h.lines.pop_front();
                h.lost(1);
            }
            h.lines.push_back(line);
        }
        self.more.notify_one();
    }

    /// Up to `n` lines, oldest first, waiting for one if there is none.
    async fn take(&self, n: usize) -> Vec<Arc<LogLine>> {
        loop {
            {
                let mut h = self.lock();
                if !h.lines.is_empty() {
                    let n = n.min(h.lines.len());
                    return h.lines.drain(..n).collect();
                }
            }
            // A push between the check and here leaves a permit: no wakeup
            // is lost.
            self.more.notified().await;
        }
    }

    /// How many were lost since when, and the count starts over.
    fn take_dropped(&self) -> Option<(u64, DateTime<Utc>)> {
        let mut h = self.lock();
        let since = h.since.take()?;
        Some((std::mem::take(&mut h.dropped), since))
    }
}

impl Held {
    fn lost(&mut self, n: u64) {
        self.dropped += n;
        self.since.get_or_insert_with(Utc::now);
    }
}

/// One drain: follows the app into the buffer, and sends from it.
async fn run(bus: Bus, app: String, token: String, mut link: link::Link) {
    let buffer = Arc::new(Buffer::default());
    let mut sub = bus.subscribe(&app, LogFilter::default(), 0, true);
    let reader = async {
        let mut report = tokio::time::interval(OVERFLOW_REPORT_EVERY);
        report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = sub.next() => match ev {
                    Some(Event::Line(l)) => buffer.push(l),
                    Some(Event::Dropped(n)) => buffer.lock().lost(n),
                    // The app is gone.
                    None => return,
                },
                _ = report.tick() => {
                    if let Some((n, since)) = buffer.take_dropped() {
                        bus.platform(&app, "logplex", &format!(
                            "Error L10 (Drain buffer overflow) -> {n} messages dropped since {} on drain {token}",
                            since.format("%Y-%m-%dT%H:%M:%S+00:00")
                        ));
                    }
                }
            }
        }
    };
    let sender = async {
        let mut wait = RETRY_FIRST;
        let mut told = false;
        loop {
            let batch = buffer.take(BATCH_LINES).await;
            loop {
                match link.send(&batch).await {
                    Ok(()) => {
                        wait = RETRY_FIRST;
                        told = false;
                        break;
                    }
                    Err(why) => {
                        if !told {
                            tracing::warn!("drain {token} of {app}: {why}; retrying");
                            told = true;
                        }
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(RETRY_MAX);
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = reader => {}
        _ = sender => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logbus::Source;

    #[test]
    fn ids_are_v4_uuids() {
        let a = new_id();
        assert_ne!(a, new_id());
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12]);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]), "{a}");
    }

    #[tokio::test]
    async fn a_full_buffer_drops_the_oldest_and_counts() {
        let b = Buffer::default();
        for i in 0..BUFFER_LINES + 5 {
            b.push(Arc::new(LogLine::now(
                "a",
                Source::App,
                "web.1",
                &i.to_string(),
            )));
        }
        let (n, _) = b.take_dropped().unwrap();
        assert_eq!(n, 5);
        assert!(b.take_dropped().is_none());
        let first = b.take(BATCH_LINES).await;
        assert_eq!(first.len(), BATCH_LINES);
        assert_eq!(first[0].text, "5");
    }
}
