//! A web dyno's `$PORT` in memory (the daemon's default, `--dyno-ports
//! memory`): the guest binds and listens as always, nothing listens on
//! the host, and connections handed to it through its door behave as TCP
//! does: keep-alive, half-close, `[::]` binds, the dyno's own egress.

mod common;

use std::sync::Arc;

use common::{Host, built_app, listening, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wdyno::dyno::State;
use wdyno::dyno::door::MemPort;

/// GET `path` over a new in-memory connection, the raw answer.
async fn raw_get(door: &Arc<MemPort>, path: &str, half_close: bool) -> String {
    let mut conn = door.connect().await.expect("the dyno listens");
    let req = format!("GET {path} HTTP/1.1\r\nHost: test.localhost\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.unwrap();
    if half_close {
        // The request is whole: the router's end is done sending.
        conn.shutdown().await.unwrap();
    }
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.unwrap();
    answer
}

async fn serves_in_memory_only(bind: Option<&str>) {
    let mut host = Host::new("mem");
    host.in_memory = true;
    if let Some(b) = bind {
        host.config.insert("BIND".into(), b.into());
    }
    let app = built_app("probe");
    let web = host.start(&app, "web.1", &["bin/web"], true);
    let state = within(30, "web.1 up", web.dyno.wait_up()).await;
    assert_eq!(state, State::Up, "{:?}", host.lines("web.1"));
    let port = web.port.unwrap();
    let door = web.door.clone().unwrap();
    assert_eq!(door.port(), port);

    // Nothing of the host listens on $PORT: the door is the only way in.
    assert_eq!(listening(port), Vec::<String>::new());
    let e = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);

    // The dyno answers a request whose sender half-closed, and its close
    // ends the stream on the router's side.
    let answer = raw_get(&door, "/", true).await;
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nhello from web.1"), "{answer}");

    // Keep-alive: three requests on one connection, as the router pools.
    let conn = door.connect().await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(conn))
            .await
            .unwrap();
    tokio::spawn(conn);
    for path in ["/", "/greeting", "/"] {
        use http_body_util::BodyExt;
        send.ready().await.unwrap();
        let req = hyper::Request::get(path)
            .header("host", "test.localhost")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let want = if path == "/" {
            "hello from web.1"
        } else {
            "unset"
        };
        assert_eq!(body, want.as_bytes(), "{path}");
    }

    web.dyno.stop();
    within(10, "web.1 stops", web.dyno.wait()).await;
    // A stopped dyno's door refuses.
    let refused = door.connect().await.err().map(|e| e.kind());
    assert_eq!(refused, Some(std::io::ErrorKind::ConnectionRefused));
}

#[tokio::test]
async fn a_dyno_bound_on_0_0_0_0_serves_in_memory_only() {
    serves_in_memory_only(None).await;
}

#[tokio::test]
async fn a_dyno_bound_on_the_v6_wildcard_serves_in_memory_only() {
    serves_in_memory_only(Some("[::]")).await;
}

#[tokio::test]
async fn a_dyno_with_port_in_memory_still_reaches_the_network() {
    let mut host = Host::new("mem-egress");
    host.in_memory = true;
    let net = common::network_address();
    let outside = std::net::TcpListener::bind((net, 0)).unwrap();
    let at = outside.local_addr().unwrap();
    let app = built_app("probe");
    // A web dyno: it has a door, and its outgoing connection is real.
    let started = host.start(
        &app,
        "web.1",
        &[
            "bin/probe",
            "bind",
            "$PORT",
            ",",
            "connect",
            &at.to_string(),
        ],
        true,
    );
    let exit = within(30, "probe exits", started.dyno.wait()).await;
    assert_eq!(exit.status, 0, "{:?}", host.lines("web.1"));
    assert_eq!(host.output("web.1"), ["ok", "ok"]);
    outside.set_nonblocking(true).unwrap();
    assert!(outside.accept().is_ok(), "the connection reached the host");
}

/// A daemon's web dynos: in memory by default (nothing listens on their
/// ports), on real loopback ports with `--dyno-ports real`; the router
/// reaches a command dyno and a `wasi:http/proxy` dyno either way.
async fn daemon_serves(real: bool) {
    use common::daemon::Daemon;
    let d = match real {
        true => Daemon::start(&["--dyno-ports", "real"]),
        false => Daemon::start(&[]),
    };
    let cmd = common::prebuilt(&built_app("probe").join("bin/web.wasm"));
    d.create_and_deploy("cmd", cmd.path());
    d.answers("cmd", "/", "hello from web.1").await;
    let prx = common::prebuilt(&built_app("rust-http").join("bin/web.wasm"));
    d.create_and_deploy("prx", prx.path());
    d.answers("prx", "/", "hello from rust-http web.1").await;
    for app in ["cmd", "prx"] {
        let port = d.ps(app)[0]["port"].as_u64().unwrap() as u16;
        let open = listening(port);
        match real {
            true => assert_eq!(open.len(), 1, "{app}: {open:?}"),
            false => assert_eq!(open, Vec::<String>::new(), "{app}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_reaches_dynos_in_memory_by_default() {
    daemon_serves(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_reaches_dynos_on_real_ports_when_asked() {
    daemon_serves(true).await;
}
