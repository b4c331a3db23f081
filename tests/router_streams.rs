//! The router on a dyno's answers as they go on: a streamed answer is
//! logged with the bytes it sent, a stream that goes quiet is cut (`H15`),
//! the app sees when the router had its request (`X-Request-Start`), and
//! past the backlog on every dyno a request gets `H11`. Driven through a
//! real daemon with raw sockets.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::edge::{edge_daemon, get, router_line};
use common::raw::Raw;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_is_logged_with_the_bytes_it_sent() {
    let d = edge_daemon("edge", &[]).await;
    let mut c = Raw::connect(d.router);
    c.send(&get("edge.localhost", "/chunked"));
    let a = c.answer();
    assert_eq!((a.status, a.text().len()), (200, 3000));
    let line = router_line(&d, "edge", "path=\"/chunked\"").await;
    assert!(
        line.contains("at=info method=GET path=\"/chunked\""),
        "{line}"
    );
    assert!(
        line.ends_with(" status=200 bytes=3000 protocol=http"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_that_goes_quiet_is_cut_with_h15() {
    let d = edge_daemon("edge", &["--idle-timeout", "1"]).await;
    let mut c = Raw::connect(d.router);
    let sent = Instant::now();
    c.send(&get("edge.localhost", "/stall"));
    // The head and the first chunk arrive; then the router cuts it.
    let mut got = Vec::new();
    let _ = c.r.read_to_end(&mut got);
    let took = sent.elapsed();
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("\r\n\r\n5\r\nhello\r\n"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the stream was not ended as if whole: {text}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    let line = router_line(&d, "edge", "path=\"/stall\"").await;
    assert!(
        line.contains(
            "wdyno[router]: at=error code=H15 desc=\"Idle connection\" method=GET path=\"/stall\""
        ),
        "{line}"
    );
    assert!(
        line.ends_with(" status=503 bytes=5 protocol=http"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_sees_when_the_router_had_its_request() {
    let d = edge_daemon("edge", &[]).await;
    let now_ms = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64
    };
    let before = now_ms();
    let mut c = Raw::connect(d.router);
    c.send(&get("edge.localhost", "/request-start"));
    let a = c.answer();
    let after = now_ms();
    assert_eq!(a.status, 200);
    let at: u64 = a
        .text()
        .parse()
        .unwrap_or_else(|_| panic!("X-Request-Start is not ms: {:?}", a.text()));
    assert!(
        (before..=after).contains(&at),
        "{before} <= {at} <= {after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_backlog_on_every_dyno_a_request_gets_h11() {
    // One single-threaded dyno, a backlog of 2: a stalled answer holds
    // the dyno, the next two requests wait for its accept; then the
    // router refuses.
    let d = edge_daemon("edge", &["--backlog", "2"]).await;
    let mut first = Raw::connect(d.router);
    first.send(&get("edge.localhost", "/stall"));
    assert!(first.line().starts_with("HTTP/1.1 200 OK"));
    let mut held = Vec::new();
    let mut refused = None;
    // Each request either waits (queued for the dyno's accept) or is
    // refused; the third finds the backlog full.
    for _ in 0..4 {
        let mut c = Raw::connect(d.router);
        c.r.get_ref()
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        c.send(&get("edge.localhost", "/"));
        let mut head = [0u8; 12];
        match c.r.read_exact(&mut head) {
            Ok(()) => {
                refused = Some(String::from_utf8_lossy(&head).into_owned());
                break;
            }
            Err(_) => held.push(c),
        }
    }
    assert_eq!(
        refused.as_deref(),
        Some("HTTP/1.1 503"),
        "held {}",
        held.len()
    );
    let line = router_line(&d, "edge", "code=H11").await;
    assert!(
        line.contains("wdyno[router]: at=error code=H11 desc=\"Backlog too deep\" method=GET path=\"/\" host=edge.localhost"),
        "{line}"
    );
    assert!(line.contains(" status=503 "), "{line}");
}
