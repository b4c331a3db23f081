//! Log drains as a receiver sees them: HTTP posts in Logplex's framing,
//! syslog over TCP and TLS, every line of a burst in order, and a receiver
//! that never reads blocking nothing (`L10`).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::daemon::Daemon;
use common::probe_app::{deploy_with_web, following, probe_log};
use common::{until, within};

/// What an HTTP drain receiver got: each post's headers and body.
type Posts = Arc<Mutex<Vec<(http::HeaderMap, String)>>>;

async fn http_receiver() -> (u16, Posts) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let posts: Posts = Arc::default();
    let got = posts.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let got = got.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let got = got.clone();
                        async move {
                            use http_body_util::BodyExt;
                            let headers = req.headers().clone();
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            got.lock()
                                .unwrap()
                                .push((headers, String::from_utf8(body.to_vec()).unwrap()));
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Empty::<bytes::Bytes>::new(),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    (port, posts)
}

/// Splits octet-counted frames (`LEN SP MSG`…); the rest is returned too,
/// for a stream that stopped mid-frame.
fn frames(mut data: &str) -> (Vec<String>, &str) {
    let mut out = Vec::new();
    while let Some((len, rest)) = data.split_once(' ') {
        let len: usize = len
            .parse()
            .unwrap_or_else(|_| panic!("not a frame length: {len:?}"));
        if rest.len() < len {
            break;
        }
        out.push(rest[..len].to_owned());
        data = &rest[len..];
    }
    (out, data)
}

/// What a syslog receiver read, as one stream.
async fn syslog_receiver() -> (u16, Arc<Mutex<String>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<String>> = Arc::default();
    let into = got.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncReadExt;
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 64 << 10];
        loop {
            let n = tcp.read(&mut buf).await.unwrap();
            if n == 0 {
                return;
            }
            into.lock()
                .unwrap()
                .push_str(std::str::from_utf8(&buf[..n]).unwrap());
        }
    });
    (port, got)
}

/// The burst lines (`burst i/1000`) among frames, as `(i, frame)`.
fn burst(frames: &[String]) -> Vec<(u32, String)> {
    frames
        .iter()
        .filter_map(|f| {
            let n = f.rsplit_once(" - - burst ")?.1.strip_suffix("/1000")?;
            Some((n.parse().unwrap(), f.clone()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_get_every_line_of_a_burst_in_order_and_framed() {
    let d = Daemon::start(&[]);
    deploy_with_web(&d, 1).await;
    let (http_port, posts) = http_receiver().await;
    let (syslog_port, stream) = syslog_receiver().await;
    let http_url = format!("http://127.0.0.1:{http_port}/logs");
    let syslog_url = format!("syslog://127.0.0.1:{syslog_port}");
    let out = d.cli(&["drains:add", &http_url, "-a", "probe"]).ok();
    assert!(
        out.stdout
            .starts_with(&format!("Successfully added drain {http_url} (d.")),
        "{}",
        out.stdout
    );
    d.cli(&["drains:add", &syslog_url, "-a", "probe"]).ok();

    // A drain to the same URL again, and URLs that are not drains.
    let out = d.cli(&["drains:add", &http_url, "-a", "probe"]);
    assert!(
        out.stderr
            .contains(&format!("probe already drains to {http_url}.")),
        "{}",
        out.stderr
    );
    let out = d.cli(&["drains:add", "syslog://127.0.0.1", "-a", "probe"]);
    assert!(
        out.stderr.contains("a syslog drain needs a port"),
        "{}",
        out.stderr
    );

    let listed = d.json(&["drains", "-a", "probe"]);
    let token_of = |url: &str| {
        listed
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["url"] == url)
            .unwrap_or_else(|| panic!("{url} not in {listed}"))["token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (http_token, syslog_token) = (token_of(&http_url), token_of(&syslog_url));
    assert!(
        http_token.starts_with("d.") && http_token.len() == 38,
        "{http_token}"
    );

    let (status, body) = d.get("probe", "/print/1000").await;
    assert_eq!((status, body.as_str()), (200, "printed 1000"));

    // HTTP: every line, in order, in posts framed as Logplex frames them.
    let got = until("the HTTP drain has the burst", 30, || {
        let posts = posts.lock().unwrap().clone();
        let all: Vec<String> = posts.iter().flat_map(|(_, b)| frames(b).0).collect();
        (burst(&all).len() >= 1000).then_some(posts)
    })
    .await;
    let mut ids = std::collections::HashSet::new();
    let mut all = Vec::new();
    for (h, body) in &got {
        let header = |k: &str| {
            h.get(k)
                .unwrap_or_else(|| panic!("no {k}"))
                .to_str()
                .unwrap()
        };
        assert_eq!(header("content-type"), "application/logplex-1");
        assert_eq!(header("logplex-drain-token"), http_token);
        let (fs, rest) = frames(body);
        assert_eq!(rest, "", "a post ends on a frame");
        assert_eq!(header("logplex-msg-count"), fs.len().to_string());
        assert!(
            ids.insert(header("logplex-frame-id").to_owned()),
            "frame ids are unique"
        );
        all.extend(fs);
    }
    let lines = burst(&all);
    assert_eq!(
        lines.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );
    let (_, first) = &lines[0];
    let head = format!(" {http_token} app web.1 - - burst 1/1000");
    assert!(
        first.starts_with("<190>1 20") && first.ends_with(&head),
        "{first}"
    );

    // Syslog: the same lines, octet-counted on one stream.
    let text = until("the syslog drain has the burst", 30, || {
        let text = stream.lock().unwrap().clone();
        (burst(&frames(&text).0).len() >= 1000).then_some(text)
    })
    .await;
    let lines = burst(&frames(&text).0);
    assert_eq!(
        lines.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        (1..=1000).collect::<Vec<_>>()
    );
    assert!(
        lines[999]
            .1
            .ends_with(&format!(" {syslog_token} app web.1 - - burst 1000/1000")),
        "{}",
        lines[999].1
    );

    // Removed: it is no longer listed.
    let out = d.cli(&["drains:remove", &syslog_url, "-a", "probe"]).ok();
    assert_eq!(
        out.stdout.trim(),
        format!("Successfully removed drain {syslog_url}")
    );
    let listed = d.json(&["drains", "-a", "probe"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_that_never_reads_blocks_nothing_and_says_l10() {
    let d = Daemon::start(&[]);
    deploy_with_web(&d, 1).await;
    // Accepts, never reads, with a small window: the drain's writes stall.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    let listener = socket.listen(1).unwrap();
    let held = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        std::future::pending::<()>().await;
        drop(tcp);
    });
    d.cli(&[
        "drains:add",
        &format!("syslog://127.0.0.1:{port}"),
        "-a",
        "probe",
    ])
    .ok();

    let mut tail = std::process::Command::new(common::daemon::WDYNO)
        .args(["logs", "--tail", "-a", "probe", "-n", "1"])
        .env("WDYNO_HOME", d.home())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rx = following(&mut tail).await;

    // Far more than the drain holds, while the app keeps answering.
    for _ in 0..4 {
        let (status, body) = within(10, "a burst", d.get("probe", "/print/5000")).await;
        assert_eq!((status, body.as_str()), (200, "printed 5000"));
    }
    let l10 = until("the L10 line", 15, || {
        probe_log(&d)
            .into_iter()
            .find(|l| l.contains("wdyno[logplex]: Error L10 (Drain buffer overflow) -> "))
    })
    .await;
    let dropped: u64 = l10
        .split(" -> ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {l10}"));
    assert!(dropped > 0, "{l10}");
    assert!(l10.contains("messages dropped since 20"), "{l10}");

    // The tail still follows: a line printed now reaches it.
    let (status, _) = d.get("probe", "/print/1").await;
    assert_eq!(status, 200);
    within(15, "the tail sees the newest line", async {
        loop {
            let l = rx
                .recv_timeout(Duration::from_secs(15))
                .expect("the tail went quiet");
            if l.ends_with("app[web.1]: burst 1/1") {
                break;
            }
        }
    })
    .await;
    let _ = tail.kill();
    let _ = tail.wait();
    held.abort();
}

/// A test CA and a server certificate it signed for `localhost`, made by
/// openssl: (CA PEM, server cert PEM, server key PEM), or `None` (said
/// why) where openssl cannot run.
fn test_ca(dir: &std::path::Path) -> Option<[std::path::PathBuf; 3]> {
    let at = |f: &str| dir.join(f).to_str().unwrap().to_owned();
    std::fs::write(
        at("leaf.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let steps = [
        format!(
            "req -x509 -days 2 -subj /CN=wdyno-test-CA {ec} -keyout {} -out {}",
            at("ca.key"),
            at("ca.pem")
        ),
        format!(
            "req -subj /CN=localhost {ec} -keyout {} -out {}",
            at("key.pem"),
            at("leaf.csr")
        ),
        format!(
            "x509 -req -days 2 -in {} -CA {} -CAkey {} -CAcreateserial -extfile {} -out {}",
            at("leaf.csr"),
            at("ca.pem"),
            at("ca.key"),
            at("leaf.ext"),
            at("cert.pem")
        ),
    ];
    for step in &steps {
        let args: Vec<&str> = step.split(' ').collect();
        match std::process::Command::new("openssl").args(&args).output() {
            Ok(o) if o.status.success() => {}
            Ok(o) => panic!("openssl {step}: {}", String::from_utf8_lossy(&o.stderr)),
            Err(e) => {
                println!("skipped: openssl cannot run ({e}): it makes the test's certificates");
                return None;
            }
        }
    }
    Some(["ca.pem", "cert.pem", "key.pem"].map(|f| dir.join(f)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_syslog_drain_trusts_the_operators_ca_and_delivers() {
    use rustls_pki_types::pem::PemObject;
    use tokio::io::AsyncReadExt;
    use tokio_rustls::rustls;
    let dir = tempfile::tempdir().unwrap();
    let Some([ca, cert, key]) = test_ca(dir.path()) else {
        return;
    };
    let certs: Vec<_> = rustls_pki_types::CertificateDer::pem_file_iter(&cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(&key).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let got: Arc<Mutex<String>> = Arc::default();
    let into = got.clone();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            // A handshake the drain refuses just ends that connection.
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let mut buf = vec![0u8; 16 << 10];
            while let Ok(n) = tls.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                into.lock()
                    .unwrap()
                    .push_str(std::str::from_utf8(&buf[..n]).unwrap());
            }
        }
    });

    let d = Daemon::start(&["--drain-ca", ca.to_str().unwrap()]);
    deploy_with_web(&d, 1).await;
    let url = format!("syslog+tls://localhost:{port}");
    d.cli(&["drains:add", &url, "-a", "probe"]).ok();
    let token = d.json(&["drains", "-a", "probe"])[0]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = d.get("probe", "/print/1000").await;
    assert_eq!(status, 200);
    let text = until("the TLS drain has the burst", 30, || {
        let text = got.lock().unwrap().clone();
        (burst(&frames(&text).0).len() >= 1000).then_some(text)
    })
    .await;
    let lines = burst(&frames(&text).0);
    assert_eq!(lines.len(), 1000);
    assert!(
        lines[0]
            .1
            .ends_with(&format!(" {token} app web.1 - - burst 1/1000")),
        "{}",
        lines[0].1
    );
}
