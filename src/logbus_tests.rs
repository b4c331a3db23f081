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
    let bus = LocalBus::default();
    for i in 0..10_000 {
        bus.platform(&format!("nosuch{i}"), "router", "at=info");
    }
    assert!(bus.lock().is_empty());
    assert!(bus.recent("nosuch1", 10).is_empty());
    assert!(!bus.is_open("nosuch1"));
    bus.open("a");
    bus.platform("a", "web.1", "kept");
    assert_eq!(bus.recent("a", 10).len(), 1);
    bus.open("a");
    assert_eq!(bus.recent("a", 10).len(), 1, "opening again keeps lines");
    bus.forget("a");
    bus.platform("a", "web.1", "after");
    assert!(bus.recent("a", 10).is_empty());
}

fn texts(lines: &[Event]) -> Vec<String> {
    lines
        .iter()
        .map(|e| match e {
            Event::Line(l) => l.text.clone(),
            Event::Dropped(n) => format!("dropped {n}"),
        })
        .collect()
}

async fn drain(sub: &mut Subscription) -> Vec<Event> {
    let mut out = Vec::new();
    while let Some(e) = sub.next().await {
        out.push(e);
    }
    out
}

#[tokio::test]
async fn a_backlog_is_the_newest_lines_in_order_and_filtered() {
    let bus = LocalBus::default();
    bus.open("a");
    for i in 0..2000 {
        bus.publish(LogLine::now("a", Source::App, "web.1", &format!("{i}")));
        bus.platform("a", "worker.1", "noise");
    }
    let filter = LogFilter {
        source: Some(Source::App),
        process: Some("web".into()),
    };
    let got = texts(&drain(&mut bus.subscribe("a", filter, 700, false)).await);
    let want: Vec<String> = (1250..2000).skip(50).map(|i| i.to_string()).collect();
    assert_eq!(got, want, "the ring holds 1500 lines, half of them web.1's");
    let all = drain(&mut bus.subscribe("a", LogFilter::default(), 1500, false)).await;
    assert_eq!(all.len(), LOG_RING_LINES);
}

#[tokio::test]
async fn a_follower_counts_only_its_own_apps_lost_lines() {
    let bus = LocalBus::default();
    bus.open("busy");
    bus.open("quiet");
    let mut quiet = bus.subscribe("quiet", LogFilter::default(), 0, true);
    let mut busy = bus.subscribe("busy", LogFilter::default(), 0, true);
    for i in 0..SUBSCRIBER_BACKLOG + 10 {
        bus.platform("busy", "web.1", &format!("{i}"));
    }
    bus.platform("quiet", "web.1", "hello");
    match quiet.next().await {
        Some(Event::Line(l)) => assert_eq!(l.text, "hello"),
        other => panic!("expected the quiet app's line, got {other:?}"),
    }
    assert!(matches!(busy.next().await, Some(Event::Dropped(10))));
    bus.forget("quiet");
    assert!(quiet.next().await.is_none(), "forgetting ends followers");
}

#[test]
fn ring_keeps_last_lines_per_app() {
    let bus = LocalBus::default();
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
