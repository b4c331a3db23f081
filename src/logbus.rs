//! The log bus: every line an app produces — its dynos' stdout/stderr, the
//! router's request lines, the platform's own events — in one time-ordered
//! stream per app.
//!
//! Publishing never blocks: [`LocalBus`] keeps a ring of the last
//! [`LOG_RING_LINES`] lines per app and fans each line out through that
//! app's broadcast channel. A subscriber that falls behind loses lines (it
//! is told how many of its app's lines) instead of slowing a dyno or the
//! router down.
//!
//! Rings exist only for apps the platform [`open`](LogBus::open)ed (apps in
//! the ledger): a line for any other name is kept nowhere, so a stream of
//! made-up names (a Host header per request) cannot grow the bus.
//!
//! In a cluster, [`StreamBus`] keeps every host's lines in one JetStream
//! stream and serves reads from a [`LocalBus`] on each host that mirrors it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

#[path = "logbus/stream.rs"]
mod stream;
pub use stream::StreamBus;

/// Lines kept per app for `wdyno logs` (Heroku keeps 1500).
pub const LOG_RING_LINES: usize = 1500;
/// How many lines a live subscriber may lag before it starts losing lines.
const SUBSCRIBER_BACKLOG: usize = 4096;
/// A longer line is cut here (Heroku's logplex does the same at 10 000).
pub const MAX_LINE_BYTES: usize = 10_000;

/// How a line's time is written everywhere it goes (`wdyno logs`, drains,
/// the dashboard): microseconds, UTC, as Heroku's log times.
pub const STAMP: &str = "%Y-%m-%dT%H:%M:%S%.6f+00:00";

/// Who wrote a line: the app's own processes or the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    App,
    Wdyno,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::App => "app",
            Source::Wdyno => "wdyno",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "app" => Some(Source::App),
            // Heroku's name for the platform's own lines.
            "wdyno" | "heroku" => Some(Source::Wdyno),
            _ => None,
        }
    }
}

/// One line of an app's log. Serialized (the cluster's bus sends it to
/// other hosts) with its time to the nanosecond, so a line read back is
/// equal to the line written.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    pub app: String,
    pub source: Source,
    /// `web.1`, `router`, `api`…
    pub process: String,
    pub text: String,
}

impl LogLine {
    /// Builds a line stamped now, with `text` made safe for a terminal and
    /// cut to [`MAX_LINE_BYTES`].
    pub fn now(app: &str, source: Source, process: &str, text: &str) -> Self {
        LogLine {
            at: Utc::now(),
            app: app.to_owned(),
            source,
            process: process.to_owned(),
            text: sanitize(text),
        }
    }

    /// [`LogLine::now`] for a text the caller owns: kept as it is, not
    /// copied, when there is nothing to strip or cut.
    pub fn now_owned(app: &str, source: Source, process: &str, text: String) -> Self {
        let text = match is_clean(&text) {
            true => text,
            false => sanitize(&text),
        };
        LogLine {
            at: Utc::now(),
            app: app.to_owned(),
            source,
            process: process.to_owned(),
            text,
        }
    }
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}[{}]: {}",
            self.at.format(STAMP),
            self.source.as_str(),
            self.process,
            self.text
        )
    }
}

/// Whether `text` holds nothing [`sanitize`] would strip or cut. Bytes that
/// may start a character worth a closer look: C0 controls and DEL, 0xC2
/// (C1 controls, U+0080–U+009F), 0xD8 (U+061C), 0xE2 (U+200E–U+2069),
/// 0xEF (U+FEFF, U+FFF9–U+FFFB); a line with one of those is checked by
/// character.
fn is_clean(text: &str) -> bool {
    let suspect = |b: u8| (b < 0x20 && b != b'\t') || matches!(b, 0x7f | 0xc2 | 0xd8 | 0xe2 | 0xef);
    text.len() <= MAX_LINE_BYTES
        && (!text.bytes().any(suspect)
            || !text
                .chars()
                .any(|c| (c.is_control() && c != '\t') || spoofs_layout(c)))
}

/// Removes terminal control sequences and other control characters (tabs
/// stay), escapes the Unicode format characters that move or reorder text
/// on a terminal (line and paragraph separators, bidi embeddings, overrides
/// and isolates: see [`spoofs_layout`]) as `\u{202e}`, so a dyno cannot
/// drive the terminal of whoever reads its logs or make one line look like
/// two, and cuts the line at [`MAX_LINE_BYTES`] on a character boundary.
pub fn sanitize(text: &str) -> String {
    // Most lines hold nothing to strip: copy them whole.
    if is_clean(text) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len().min(MAX_LINE_BYTES));
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI (`ESC [ … final`) and OSC (`ESC ] … BEL|ST`) sequences go
            // whole; any other escape loses just the ESC and its next char.
            match chars.next() {
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' {
                            break;
                        }
                        if c == '\u{1b}' {
                            chars.next_if_eq(&'\\');
                            break;
                        }
                    }
                }
                _ => {}
            }
            continue;
        }
        if c.is_control() && c != '\t' {
            continue;
        }
        if spoofs_layout(c) {
            let escaped = format!("\\u{{{:x}}}", c as u32);
            if out.len() + escaped.len() > MAX_LINE_BYTES {
                break;
            }
            out.push_str(&escaped);
            continue;
        }
        if out.len() + c.len_utf8() > MAX_LINE_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// Format characters that break or reorder a line when a terminal shows
/// it: U+2028/U+2029 (line and paragraph separators), the bidi marks,
/// embeddings, overrides and isolates (U+061C, U+200E, U+200F,
/// U+202A–U+202E, U+2066–U+2069), the BOM used mid-line (U+FEFF) and the
/// interlinear annotation marks (U+FFF9–U+FFFB). Zero-width joiners stay:
/// scripts and emoji need them and they move nothing.
pub fn spoofs_layout(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
            | '\u{fff9}'..='\u{fffb}'
    )
}

/// Which of an app's lines a reader wants (`wdyno logs --source app --ps
/// web`): `None` lets every line through.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub source: Option<Source>,
    /// A dyno (`web.1`) or, without a dot, a process type (`web`).
    pub process: Option<String>,
}

impl LogFilter {
    pub fn matches(&self, l: &LogLine) -> bool {
        self.source.is_none_or(|s| s == l.source)
            && self.process.as_deref().is_none_or(|ps| {
                if ps.contains('.') {
                    l.process == ps
                } else {
                    l.process.split('.').next() == Some(ps)
                }
            })
    }
}

/// The log bus: where every part of the platform writes an app's lines and
/// where `logs`, `run` and `wdyno local` read them. This process's
/// [`LocalBus`] keeps them in memory; a cluster's bus keeps them in a
/// stream every host can read.
///
/// Publishing never blocks and never fails; reading is per app, and a
/// reader that falls behind is told how many of *its app's* lines it lost.
pub trait LogBus: Send + Sync {
    /// Gives `app` a place for its lines (it was created, or found in the
    /// ledger at start). Idempotent: an open app keeps its lines.
    fn open(&self, app: &str);
    /// Whether `app` was opened (and not forgotten).
    fn is_open(&self, app: &str) -> bool;
    /// Forgets an app's lines (the app was destroyed).
    fn forget(&self, app: &str);
    /// Adds a line to its app. A line for an app that was not opened is
    /// dropped: made-up names (a Host header per request) cannot grow the
    /// bus.
    fn publish(&self, line: LogLine);
    /// The newest `backlog` lines of `app` that pass `filter`, oldest first,
    /// then, with `follow`, every new one as it comes.
    fn subscribe(&self, app: &str, filter: LogFilter, backlog: usize, follow: bool)
    -> Subscription;
    /// The last `n` lines of `app` (at most [`LOG_RING_LINES`]), oldest
    /// first.
    fn recent(&self, app: &str, n: usize) -> Vec<Arc<LogLine>>;

    /// Shorthand for a platform event about `process` (`web.1`, `api`…).
    fn platform(&self, app: &str, process: &str, text: &str) {
        self.publish(LogLine::now(app, Source::Wdyno, process, text));
    }
}

/// How the platform's parts hold the bus.
pub type Bus = Arc<dyn LogBus>;

/// The in-process bus: a ring of the last [`LOG_RING_LINES`] lines per
/// app and, once someone follows the app, a broadcast channel of its own.
#[derive(Default)]
pub struct LocalBus {
    apps: Mutex<HashMap<String, AppLog>>,
}

#[derive(Default)]
struct AppLog {
    ring: VecDeque<Arc<LogLine>>,
    /// Made on the first follower, so an app nobody follows costs only its
    /// ring.
    live: Option<broadcast::Sender<Arc<LogLine>>>,
}

impl LocalBus {
    /// A bus, as the platform's parts hold it.
    pub fn shared() -> Bus {
        Arc::new(LocalBus::default())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AppLog>> {
        self.apps.lock().expect("log ring lock poisoned")
    }
}

impl LogBus for LocalBus {
    fn open(&self, app: &str) {
        self.lock().entry(app.to_owned()).or_default();
    }

    fn is_open(&self, app: &str) -> bool {
        self.lock().contains_key(app)
    }

    fn forget(&self, app: &str) {
        // Dropping the sender ends every follower of the app.
        self.lock().remove(app);
    }

    fn publish(&self, line: LogLine) {
        let line = Arc::new(line);
        let mut apps = self.lock();
        let Some(log) = apps.get_mut(&line.app) else {
            return;
        };
        if log.ring.len() == LOG_RING_LINES {
            log.ring.pop_front();
        }
        log.ring.push_back(line.clone());
        if let Some(live) = &log.live {
            // No follower left is not an error.
            let _ = live.send(line);
        }
    }

    fn subscribe(
        &self,
        app: &str,
        filter: LogFilter,
        backlog: usize,
        follow: bool,
    ) -> Subscription {
        let mut apps = self.lock();
        let Some(log) = apps.get_mut(app) else {
            return Subscription::from_lines(Vec::new(), None, filter);
        };
        // Under one lock: no line is both in the backlog and live, and none
        // falls between them.
        let mut lines: Vec<Arc<LogLine>> = log
            .ring
            .iter()
            .filter(|l| filter.matches(l))
            .cloned()
            .collect();
        lines.drain(..lines.len().saturating_sub(backlog));
        let live = follow.then(|| {
            log.live
                .get_or_insert_with(|| broadcast::channel(SUBSCRIBER_BACKLOG).0)
                .subscribe()
        });
        Subscription::from_lines(lines, live, filter)
    }

    fn recent(&self, app: &str, n: usize) -> Vec<Arc<LogLine>> {
        self.lock()
            .get(app)
            .map(|l| {
                l.ring
                    .iter()
                    .skip(l.ring.len().saturating_sub(n))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A reader's view of one app's lines: the backlog, then (when following)
/// live lines. See [`Subscription::next`].
pub struct Subscription {
    events: futures::stream::BoxStream<'static, Event>,
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Event {
    Line(Arc<LogLine>),
    /// The subscriber was too slow and this many of its app's lines went
    /// past it.
    Dropped(u64),
}

impl Subscription {
    /// A subscription over any stream of events (another bus's).
    pub fn new(events: futures::stream::BoxStream<'static, Event>) -> Self {
        Subscription { events }
    }

    fn from_lines(
        backlog: Vec<Arc<LogLine>>,
        live: Option<broadcast::Receiver<Arc<LogLine>>>,
        filter: LogFilter,
    ) -> Self {
        use futures::StreamExt;
        let backlog = futures::stream::iter(backlog.into_iter().map(Event::Line));
        let live = futures::stream::unfold((live, filter), |(rx, filter)| async move {
            let mut rx = rx?;
            loop {
                match rx.recv().await {
                    Ok(line) if filter.matches(&line) => {
                        return Some((Event::Line(line), (Some(rx), filter)));
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        return Some((Event::Dropped(n), (Some(rx), filter)));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Subscription::new(backlog.chain(live).boxed())
    }

    /// The next event, or `None` at the end (the backlog of a reader that
    /// does not follow, or the app was forgotten).
    pub async fn next(&mut self) -> Option<Event> {
        futures::StreamExt::next(&mut self.events).await
    }
}

#[cfg(test)]
#[path = "logbus_tests.rs"]
mod tests;
