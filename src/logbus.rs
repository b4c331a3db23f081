//! The log bus: every line an app produces — its dynos' stdout/stderr, the
//! router's request lines, the platform's own events — in one time-ordered
//! stream per app.
//!
//! Publishing never blocks: the bus keeps a ring of the last
//! [`LOG_RING_LINES`] lines per app and fans each line out through a
//! broadcast channel. A subscriber that falls behind loses lines (it is told
//! how many) instead of slowing a dyno or the router down.
//!
//! Rings exist only for apps the platform [`open`](LogBus::open)ed (apps in
//! the ledger): a line for any other name is handed to live subscribers and
//! kept nowhere, so a stream of made-up names (a Host header per request)
//! cannot grow the bus.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

/// Lines kept per app for `wdyno logs` (Heroku keeps 1500).
pub const LOG_RING_LINES: usize = 1500;
/// How many lines a live subscriber may lag before it starts losing lines.
const SUBSCRIBER_BACKLOG: usize = 4096;
/// A longer line is cut here (Heroku's logplex does the same at 10 000).
pub const MAX_LINE_BYTES: usize = 10_000;

/// Who wrote a line: the app's own processes or the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
            "wdyno" => Some(Source::Wdyno),
            _ => None,
        }
    }
}

/// One line of an app's log.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}[{}]: {}",
            self.at.format("%Y-%m-%dT%H:%M:%S%.6f+00:00"),
            self.source.as_str(),
            self.process,
            self.text
        )
    }
}

/// Removes terminal control sequences and other control characters (tabs
/// stay), escapes the Unicode format characters that move or reorder text
/// on a terminal (line and paragraph separators, bidi embeddings, overrides
/// and isolates: see [`spoofs_layout`]) as `\u{202e}`, so a dyno cannot
/// drive the terminal of whoever reads its logs or make one line look like
/// two, and cuts the line at [`MAX_LINE_BYTES`] on a character boundary.
pub fn sanitize(text: &str) -> String {
    // Most lines hold nothing to strip: copy them whole. Bytes that may start
    // a character worth a closer look: C0 controls and DEL, 0xC2 (C1
    // controls, U+0080–U+009F), 0xD8 (U+061C), 0xE2 (U+200E–U+2069), 0xEF
    // (U+FEFF, U+FFF9–U+FFFB). Lines with one of those are checked by
    // character before they are copied whole.
    let suspect = |b: u8| (b < 0x20 && b != b'\t') || matches!(b, 0x7f | 0xc2 | 0xd8 | 0xe2 | 0xef);
    if text.len() <= MAX_LINE_BYTES
        && (!text.bytes().any(suspect)
            || !text
                .chars()
                .any(|c| (c.is_control() && c != '\t') || spoofs_layout(c)))
    {
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

/// The in-process bus shared by every part of a platform.
#[derive(Clone)]
pub struct LogBus {
    inner: Arc<Inner>,
}

struct Inner {
    rings: Mutex<HashMap<String, VecDeque<Arc<LogLine>>>>,
    live: broadcast::Sender<Arc<LogLine>>,
}

impl Default for LogBus {
    fn default() -> Self {
        Self::new()
    }
}

impl LogBus {
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(SUBSCRIBER_BACKLOG);
        LogBus {
            inner: Arc::new(Inner {
                rings: Mutex::new(HashMap::new()),
                live,
            }),
        }
    }

    /// Gives `app` a ring (it was created, or found in the ledger at start).
    /// Idempotent: an open ring keeps its lines.
    pub fn open(&self, app: &str) {
        self.inner
            .rings
            .lock()
            .expect("log ring lock poisoned")
            .entry(app.to_owned())
            .or_default();
    }

    /// Whether `app` has a ring.
    pub fn is_open(&self, app: &str) -> bool {
        self.inner
            .rings
            .lock()
            .expect("log ring lock poisoned")
            .contains_key(app)
    }

    /// Adds a line to its app's ring, if the app has one, and hands it to
    /// live subscribers. A line for an app without a ring allocates nothing
    /// that outlives it.
    pub fn publish(&self, line: LogLine) {
        let line = Arc::new(line);
        {
            let mut rings = self.inner.rings.lock().expect("log ring lock poisoned");
            if let Some(ring) = rings.get_mut(&line.app) {
                if ring.len() == LOG_RING_LINES {
                    ring.pop_front();
                }
                ring.push_back(line.clone());
            }
        }
        // No subscriber is not an error.
        let _ = self.inner.live.send(line);
    }

    /// Shorthand for a platform event about `process` (`web.1`, `api`…).
    pub fn platform(&self, app: &str, process: &str, text: &str) {
        self.publish(LogLine::now(app, Source::Wdyno, process, text));
    }

    /// The last `n` lines of `app` (at most [`LOG_RING_LINES`]), oldest first.
    pub fn recent(&self, app: &str, n: usize) -> Vec<Arc<LogLine>> {
        let rings = self.inner.rings.lock().expect("log ring lock poisoned");
        rings
            .get(app)
            .map(|r| r.iter().skip(r.len().saturating_sub(n)).cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets an app's lines (the app was destroyed).
    pub fn forget(&self, app: &str) {
        self.inner
            .rings
            .lock()
            .expect("log ring lock poisoned")
            .remove(app);
    }

    /// Follows every app's new lines from now on.
    pub fn subscribe(&self) -> Subscription {
        Subscription {
            rx: self.inner.live.subscribe(),
        }
    }
}

/// A live view of the bus. See [`Subscription::next`].
pub struct Subscription {
    rx: broadcast::Receiver<Arc<LogLine>>,
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum Event {
    Line(Arc<LogLine>),
    /// The subscriber was too slow and this many lines went past it.
    Dropped(u64),
}

impl Subscription {
    /// The next event, or `None` once the bus is gone.
    pub async fn next(&mut self) -> Option<Event> {
        match self.rx.recv().await {
            Ok(line) => Some(Event::Line(line)),
            Err(broadcast::error::RecvError::Lagged(n)) => Some(Event::Dropped(n)),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_strips_escapes_and_controls() {
        assert_eq!(sanitize("\u{1b}[31mred\u{1b}[0m ok"), "red ok");
        assert_eq!(sanitize("a\u{1b}]0;title\u{7}b"), "ab");
        assert_eq!(sanitize("tab\tbell\u{7}cr\r"), "tab\tbellcr");
        assert_eq!(sanitize("c1\u{9b}31m é"), "c131m é");
    }

    #[test]
    fn sanitize_escapes_separators_and_bidi_controls() {
        assert_eq!(sanitize("a\u{2028}b"), "a\\u{2028}b");
        assert_eq!(sanitize("a\u{2029}b"), "a\\u{2029}b");
        assert_eq!(
            sanitize("user=\u{202e}nimda\u{202c} ok"),
            "user=\\u{202e}nimda\\u{202c} ok"
        );
        assert_eq!(sanitize("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(
            sanitize("\u{200f}\u{61c}\u{feff}"),
            "\\u{200f}\\u{61c}\\u{feff}"
        );
        // Characters that share the lead bytes but move nothing stay.
        let kept = "em — dash… • bullet ｆｕｌｌ 👩\u{200d}💻 é";
        assert_eq!(sanitize(kept), kept);
    }

    #[test]
    fn sanitize_escapes_within_the_line_limit() {
        let text = format!("{}\u{2028}", "x".repeat(MAX_LINE_BYTES - 3));
        let cut = sanitize(&text);
        assert_eq!(cut, "x".repeat(MAX_LINE_BYTES - 3));
    }

    #[test]
    fn sanitize_cuts_long_lines_on_char_boundary() {
        let long = "é".repeat(MAX_LINE_BYTES);
        let cut = sanitize(&long);
        assert_eq!(cut.len(), MAX_LINE_BYTES);
        assert!(cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn lines_for_apps_without_a_ring_are_not_kept() {
        let bus = LogBus::new();
        let mut sub = bus.subscribe();
        for i in 0..10_000 {
            bus.platform(&format!("nosuch{i}"), "router", "at=info");
        }
        assert!(bus.inner.rings.lock().unwrap().is_empty());
        assert!(bus.recent("nosuch1", 10).is_empty());
        assert!(!bus.is_open("nosuch1"));
        // Live subscribers still see them (the broadcast ring is bounded).
        assert!(matches!(
            sub.rx.try_recv(),
            Err(broadcast::error::TryRecvError::Lagged(_))
        ));
        bus.open("a");
        bus.platform("a", "web.1", "kept");
        assert_eq!(bus.recent("a", 10).len(), 1);
        bus.open("a");
        assert_eq!(bus.recent("a", 10).len(), 1, "opening again keeps lines");
        bus.forget("a");
        bus.platform("a", "web.1", "after");
        assert!(bus.recent("a", 10).is_empty());
    }

    #[test]
    fn ring_keeps_last_lines_per_app() {
        let bus = LogBus::new();
        bus.open("a");
        bus.open("b");
        for i in 0..LOG_RING_LINES + 5 {
            bus.publish(LogLine::now("a", Source::App, "web.1", &format!("{i}")));
        }
        bus.platform("b", "web.1", "other");
        let last = bus.recent("a", 2);
        assert_eq!(last.len(), 2);
        assert_eq!(last[0].text, format!("{}", LOG_RING_LINES + 3));
        assert_eq!(last[1].text, format!("{}", LOG_RING_LINES + 4));
        assert_eq!(bus.recent("a", 10_000).len(), LOG_RING_LINES);
        assert_eq!(bus.recent("b", 100).len(), 1);
    }

    #[test]
    fn display_is_heroku_shaped() {
        let mut line = LogLine::now("a", Source::App, "web.1", "hi");
        line.at = DateTime::parse_from_rfc3339("2026-11-22T20:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            line.to_string(),
            "2026-11-22T20:00:00.123456+00:00 app[web.1]: hi"
        );
    }
}
