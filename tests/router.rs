//! The router is strict about what it forwards: hosts are hosts, framing is
//! unambiguous, hop-by-hop headers stay on their hop, oversize bodies are
//! the client's fault, WebSockets get through, and names that are no app
//! cost nothing. Driven through a real daemon with raw sockets, so every
//! byte on the wire is the test's own.

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::daemon::Daemon;
use common::edge::{edge_daemon, get, router_line, router_lines};
use common::raw::Raw;
use common::until;

/// Waits for a line of the daemon's stderr that contains `needle`.
fn stderr_line(d: &Daemon, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match d.stderr.recv_timeout(left) {
            Ok(l) if l.contains(needle) => return l,
            Ok(_) => {}
            Err(_) => panic!("the daemon logged no line with {needle:?} within 10 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_header_that_is_no_host_gets_400_and_is_logged_quoted() {
    let d = Daemon::start(&[]);
    let mut c = Raw::connect(d.router);
    c.send(&get("x status=500 code=H10", "/"));
    let a = c.answer();
    assert_eq!(a.status, 400);
    assert_eq!(
        a.text(),
        "Bad Request: the Host header is not a host[:port]\n"
    );
    assert_eq!(a.header("connection"), Some("close"));
    assert!(c.closed());
    let line = stderr_line(&d, "desc=\"Invalid Host header\"");
    assert!(
        line.contains(
            "at=error desc=\"Invalid Host header\" method=GET path=\"/\" host=\"x status=500 code=H10\" request_id="
        ),
        "{line}"
    );
    assert!(
        line.ends_with("dyno= connect=0ms service=0ms status=400 bytes=0 protocol=http"),
        "{line}"
    );
    // A quote in the Host cannot end the field either.
    let mut c = Raw::connect(d.router);
    c.send(&get("a\" status=200 b=\"", "/"));
    assert_eq!(c.answer().status, 400);
    let line = stderr_line(&d, "desc=\"Invalid Host header\"");
    assert!(
        line.contains(r#"host="a\" status=200 b=\"" request_id="#),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostnames_are_case_insensitive_and_may_end_in_a_dot() {
    let d = edge_daemon("red", &[]).await;
    let port = d.router;
    for host in [
        "RED.localhost".to_owned(),
        "red.localhost.".to_owned(),
        format!("Red.LocalHost.:{port}"),
        "RED".to_owned(),
    ] {
        let mut c = Raw::connect(port);
        c.send(&get(&host, "/"));
        let a = c.answer();
        assert_eq!((a.status, a.text().as_str()), (200, "edge\n"), "{host}");
    }
    let line = router_line(&d, "red", "host=RED.localhost ").await;
    assert!(
        line.contains("at=info method=GET path=\"/\" host=RED.localhost request_id="),
        "{line}"
    );
    assert!(line.contains(" dyno=web.1 "), "{line}");
    assert!(
        line.ends_with(" status=200 bytes=5 protocol=http"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_stay_on_their_hop() {
    let d = edge_daemon("edge", &[]).await;
    let mut c = Raw::connect(d.router);
    // The app answers `Connection: close, x-hop` and `Keep-Alive`: none of
    // it reaches this keep-alive client, whose connection stays open.
    c.send(&get("edge.localhost", "/"));
    let a = c.answer();
    assert_eq!((a.status, a.text().as_str()), (200, "edge\n"));
    assert_eq!(a.header("connection"), None, "{:?}", a.headers);
    assert_eq!(a.header("x-hop"), None, "{:?}", a.headers);
    assert_eq!(a.header("keep-alive"), None, "{:?}", a.headers);
    assert_eq!(a.header("x-app"), Some("kept"), "{:?}", a.headers);
    // The same connection again: the client's own hop headers do not
    // reach the app.
    c.send(
        b"GET /headers HTTP/1.1\r\nHost: edge.localhost\r\nConnection: keep-alive, x-client-hop\r\n\
          x-client-hop: 1\r\nKeep-Alive: 300\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n\
          x-e2e: 1\r\n\r\n",
    );
    let a = c.answer();
    assert_eq!(a.status, 200);
    assert_eq!(a.header("connection"), None, "{:?}", a.headers);
    assert_eq!(
        a.text(),
        "host\nvia\nx-e2e\nx-forwarded-for\nx-forwarded-port\nx-forwarded-proto\nx-request-id\nx-request-start\n"
    );
    // And a third time, to be sure the connection is still usable.
    c.send(&get("edge.localhost", "/"));
    assert_eq!(c.answer().text(), "edge\n");
    // An `Upgrade` the app does not take ends the connection after the
    // answer: the router stops reading heads at an upgrade.
    c.send(b"GET / HTTP/1.1\r\nHost: edge.localhost\r\nUpgrade: h2c\r\n\r\n");
    let a = c.answer();
    assert_eq!((a.status, a.header("connection")), (200, Some("close")));
    assert!(c.closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413_not_h13() {
    let d = edge_daemon("edge", &["--max-body", "65536"]).await;
    // Declared too large: answered before anything is forwarded.
    let mut c = Raw::connect(d.router);
    c.send(b"POST /count HTTP/1.1\r\nHost: edge.localhost\r\nContent-Length: 10000000\r\n\r\n");
    let a = c.answer();
    assert_eq!((a.status, a.text().as_str()), (413, "Payload Too Large\n"));
    assert_eq!(a.header("connection"), Some("close"));
    assert!(c.closed());

    // Chunked, under the limit: forwarded whole.
    let chunk = format!("4000\r\n{}\r\n", "x".repeat(0x4000));
    let mut c = Raw::connect(d.router);
    c.send(b"POST /count HTTP/1.1\r\nHost: edge.localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(chunk.repeat(4).as_bytes());
    c.send(b"0\r\n\r\n");
    let a = c.answer();
    assert_eq!((a.status, a.text().as_str()), (200, "65536\n"));

    // Chunked, growing past the limit while the app reads it.
    let mut c = Raw::connect(d.router);
    c.send(b"POST /count HTTP/1.1\r\nHost: edge.localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
    c.send(chunk.repeat(5).as_bytes());
    let a = c.answer();
    assert_eq!((a.status, a.text().as_str()), (413, "Payload Too Large\n"));
    assert_eq!(a.header("connection"), Some("close"));

    let lines = until("two 413 lines", 10, || {
        let l: Vec<String> = router_lines(&d, "edge")
            .into_iter()
            .filter(|l| l.contains("status=413"))
            .collect();
        (l.len() == 2).then_some(l)
    })
    .await;
    for l in &lines {
        assert!(
            l.contains(
                "wdyno[router]: at=error desc=\"Request body too large\" method=POST path=\"/count\" host=edge.localhost request_id="
            ),
            "{l}"
        );
        assert!(l.ends_with(" status=413 bytes=0 protocol=http"), "{l}");
    }
    // No line blames the app for the body (the boot's own H14s while
    // `answers` waited are not about /count).
    let count: Vec<String> = router_lines(&d, "edge")
        .into_iter()
        .filter(|l| l.contains("path=\"/count\""))
        .collect();
    assert_eq!(count.len(), 3, "{count:?}");
    assert!(!count.iter().any(|l| l.contains("code=H")), "{count:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_refused_and_the_connection_closed() {
    let d = edge_daemon("edge", &[]).await;
    let mut c = Raw::connect(d.router);
    // Read as chunked, the body ends at once and a second request follows;
    // read by Content-Length it is all body. Either way: refused.
    c.send(
        b"POST /count HTTP/1.1\r\nHost: edge.localhost\r\nContent-Length: 40\r\n\
          Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: edge.localhost\r\n\r\n",
    );
    let a = c.answer();
    assert_eq!(
        (a.status, a.text().as_str()),
        (
            400,
            "Bad Request: Content-Length and Transfer-Encoding together\n"
        )
    );
    assert_eq!(a.header("connection"), Some("close"));
    assert!(c.closed(), "nothing answers the smuggled request");
    let line = router_line(&d, "edge", "status=400").await;
    assert!(
        line.contains(
            "wdyno[router]: at=error desc=\"Content-Length with Transfer-Encoding\" method=POST path=\"/count\" host=edge.localhost request_id="
        ),
        "{line}"
    );
    let all = router_lines(&d, "edge");
    assert!(
        !all.iter().any(
            |l| l.contains("/count\" host") && l.contains("at=info") || l.contains("/smuggled")
        ),
        "{all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_tunnelled_end_to_end() {
    let d = edge_daemon("edge", &[]).await;
    let mut c = Raw::connect(d.router);
    c.send(
        b"GET /ws HTTP/1.1\r\nHost: edge.localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    let a = c.answer();
    assert_eq!(a.status, 101, "{a:?}");
    assert_eq!(a.header("upgrade"), Some("websocket"));
    assert_eq!(a.header("connection"), Some("upgrade"));
    for text in ["hello through the router", "and back again"] {
        // A masked text frame, as a browser sends it.
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut frame = vec![0x81, 0x80 | text.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        c.send(&frame);
        let mut head = [0u8; 2];
        c.r.read_exact(&mut head).unwrap();
        assert_eq!(head, [0x81, text.len() as u8]);
        let mut payload = vec![0; text.len()];
        c.r.read_exact(&mut payload).unwrap();
        assert_eq!(String::from_utf8(payload).unwrap(), text);
    }
    c.send(&[0x88, 0x80, 0, 0, 0, 0]);
    let mut close = [0u8; 2];
    c.r.read_exact(&mut close).unwrap();
    assert_eq!(close, [0x88, 0]);
    assert!(c.closed());
    let line = router_line(&d, "edge", "path=\"/ws\"").await;
    assert!(
        line.contains("at=info method=GET path=\"/ws\" host=edge.localhost"),
        "{line}"
    );
    assert!(
        line.ends_with(" status=101 bytes=0 protocol=http"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_answer_with_both_framings_is_a_502() {
    let d = edge_daemon("edge", &[]).await;
    let mut c = Raw::connect(d.router);
    c.send(&get("edge.localhost", "/clte"));
    let a = c.answer();
    assert_eq!(a.status, 502);
    assert!(a.text().contains("Application error"), "{}", a.text());
    // The connection is still good for the next request.
    c.send(&get("edge.localhost", "/"));
    let a = c.answer();
    assert_eq!((a.status, a.text().as_str()), (200, "edge\n"));
    let line = router_line(&d, "edge", "path=\"/clte\"").await;
    assert!(
        line.contains(
            "wdyno[router]: at=error code=H17 desc=\"Poorly formatted HTTP response\" method=GET path=\"/clte\" host=edge.localhost request_id="
        ),
        "{line}"
    );
    assert!(line.contains(" dyno=web.1 "), "{line}");
    assert!(
        line.ends_with(" status=502 bytes=0 protocol=http"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn line_separators_and_bidi_overrides_are_escaped_in_logs() {
    let d = edge_daemon("edge", &[]).await;
    // Through a config var: a command line is split on whitespace, and
    // U+2028 is whitespace.
    let text = "user=admin\u{2028}at=info fake line \u{202e}txt.exe\u{202c}";
    d.cli(&["config:set", &format!("SPOOF={text}"), "-a", "edge"])
        .ok();
    let name = d.run_detached("edge", &["bin/probe", "env"]);
    let line = until("the one-off's output", 30, || {
        d.cli(&["logs", "-a", "edge", "--ps", &name, "--source", "app"])
            .ok()
            .stdout
            .lines()
            .find(|l| l.contains("SPOOF="))
            .map(str::to_owned)
    })
    .await;
    assert!(
        line.ends_with(&format!(
            "app[{name}]: SPOOF=user=admin\\u{{2028}}at=info fake line \\u{{202e}}txt.exe\\u{{202c}}"
        )),
        "{line:?}"
    );
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// Unknown names cost nothing to keep: 10 000 distinct ones leave the
/// daemon's resident memory within 3 MiB of where it was. Measured here:
/// +0 to +4 KiB; with a log ring opened per name, as before, +8 MiB for
/// these 200-character names (a ring kept the name twice and a line that
/// holds it once more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_hosts_get_404_and_leave_memory_flat() {
    let d = Daemon::start(&[]);
    let mut c = common::Client::connect(d.router).await;
    let pad = "p".repeat(200);
    let (status, body) = c.get_host("nosuch-app.localhost", "/").await;
    assert_eq!(status, 404);
    assert!(body.contains("<h1>No such app</h1>"), "{body}");
    // Warm up: buffers, pools and the allocator reach their steady size.
    for i in 0..2_000 {
        let (status, _) = c.get_host(&format!("warm{i}-{pad}.localhost"), "/").await;
        assert_eq!(status, 404);
    }
    let before = rss_kib(d.pid());
    for i in 0..10_000 {
        let (status, _) = c.get_host(&format!("nosuch{i}-{pad}.localhost"), "/").await;
        assert_eq!(status, 404);
    }
    let after = rss_kib(d.pid());
    let grown = after.saturating_sub(before);
    println!("10 000 unknown hosts: RSS {before} → {after} KiB (+{grown} KiB)");
    assert!(
        grown < 3 * 1024,
        "10 000 unknown hosts grew the daemon by {grown} KiB ({before} → {after} KiB)"
    );
    // Nothing was kept for them either.
    let out = d.cli(&["logs", "-a", "nosuch1", "-n", "10"]);
    assert!(!out.stdout.contains("router"), "{out:?}");
}
