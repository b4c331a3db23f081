//! A dyno is fenced off the host: no host-only address but the ports the
//! operator opened, its `$PORT` on loopback only, its disk bounded, and
//! nothing of the platform's at rest readable by another user.

mod common;

use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::daemon::Daemon;
use common::{Host, built_app, listening, network_address, probe, until, within};

/// A UDP socket on `ip` that answers every datagram with `pong`.
fn udp_echo(ip: IpAddr) -> u16 {
    let sock = UdpSocket::bind((ip, 0)).unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = sock.recv_from(&mut buf) {
            let _ = sock.send_to(b"pong", from);
        }
    });
    port
}

#[tokio::test]
async fn dyno_reaches_no_loopback_service_over_tcp_or_udp() {
    let mut host = Host::new("fence");
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = tcp.local_addr().unwrap().port().to_string();
    let tcp6 = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap();
    let p6 = tcp6.local_addr().unwrap().port().to_string();
    let u = udp_echo("127.0.0.1".parse().unwrap()).to_string();
    let u6 = udp_echo(IpAddr::V6(Ipv6Addr::LOCALHOST)).to_string();
    let out = probe(
        &mut host,
        "worker.1",
        &[
            "connect",
            &format!("127.0.0.1:{p}"),
            ",",
            "connect",
            &format!("localhost:{p}"),
            ",",
            "connect",
            &format!("127.0.0.2:{p}"),
            ",",
            "connect",
            &format!("0.0.0.0:{p}"),
            ",",
            "connect",
            &format!("[::1]:{p6}"),
            ",",
            "connect",
            &format!("[::ffff:127.0.0.1]:{p}"),
            ",",
            "connect",
            "169.254.169.254:80",
            ",",
            "udp",
            &format!("127.0.0.1:{u}"),
            ",",
            "udp",
            &format!("localhost:{u}"),
            ",",
            "udp",
            &format!("[::1]:{u6}"),
            ",",
        ],
    )
    .await;
    let denied = "error: PermissionDenied";
    // wasmtime itself refuses the unspecified address and a v4-mapped
    // address on a v6 socket as remote addresses.
    let invalid = "error: InvalidInput";
    assert_eq!(
        out,
        [
            denied, denied, denied, invalid, denied, invalid, denied, denied, denied, denied
        ]
    );

    // The network is still reachable (egress is on here).
    let net = network_address();
    let outside = TcpListener::bind((net, 0)).unwrap();
    let net_port = outside.local_addr().unwrap().port();
    let out = probe(
        &mut host,
        "worker.2",
        &["connect", &SocketAddr::new(net, net_port).to_string()],
    )
    .await;
    assert_eq!(out, ["ok"]);
}

#[tokio::test]
async fn an_opened_host_port_is_reachable_and_only_it() {
    let mut host = Host::new("fence");
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = tcp.local_addr().unwrap().port();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let c = closed.local_addr().unwrap().port();
    let u = udp_echo("127.0.0.1".parse().unwrap());
    host.ports.allow_host_port(p);
    host.ports.allow_host_port(u);
    // Even with egress off: an opened port is the operator's own grant.
    host.egress = false;
    let out = probe(
        &mut host,
        "worker.1",
        &[
            "connect",
            &format!("127.0.0.1:{p}"),
            ",",
            "connect",
            &format!("127.0.0.1:{c}"),
            ",",
            "udp",
            &format!("127.0.0.1:{u}"),
            ",",
        ],
    )
    .await;
    assert_eq!(out, ["ok", "error: PermissionDenied", "ok pong"]);
}

#[tokio::test]
async fn another_user_cannot_read_a_dynos_files() {
    // In-process, without the daemon's umask or quota: the dyno's own
    // directory (0700) keeps others out.
    let mut host = Host::new("fence");
    // The test's temp dir is 0700 itself: open it, so only the dyno's own
    // directory stands in the way.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(host.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let app = built_app("probe");
    let mut lines = host.subscribe();
    let argv = [
        "bin/probe",
        "write",
        "/tmp/secret",
        "s3cret",
        ",",
        "sleep",
        "600000",
    ];
    let w = host.start(&app, "worker.1", &argv, false);
    lines
        .wait_for(Duration::from_secs(30), |l| {
            l.process == "worker.1" && l.text == "ok"
        })
        .await;
    let secret = w.work_dir.join("tmp/secret");
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "s3cret");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(&secret)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("Permission denied"),
        "{err}"
    );
    w.dyno.stop();
    within(10, "worker.1 stops", w.dyno.wait()).await;
}

/// 127.0.0.1 and ::1 as `/proc/net/tcp{,6}` print them.
const V4_LOOPBACK: &str = "0100007F";
const V6_LOOPBACK: &str = "00000000000000000000000001000000";

/// `LISTEN` sockets on `port` in `/proc/net/tcp{,6}`, as local addresses in
/// the kernel's hex.
async fn web_listens_on_loopback_only(bind: Option<&str>, want: &str) {
    let mut host = Host::new("fence");
    if let Some(b) = bind {
        host.config.insert("BIND".into(), b.into());
    }
    let app = built_app("probe");
    let web = host.start(&app, "web.1", &["bin/web"], true);
    let state = within(30, "web.1 up", web.dyno.wait_up()).await;
    assert_eq!(state, wdyno::dyno::State::Up, "{:?}", host.lines("web.1"));
    let port = web.port.unwrap();
    assert_eq!(listening(port), [format!("{want}:{port:04X}")]);
    if bind.is_none() {
        // The router's way in works; the network's does not.
        let (status, body) = common::get(port, "/").await;
        assert_eq!((status, body.as_str()), (200, "hello from web.1"));
        let net = network_address();
        let e = std::net::TcpStream::connect((net, port)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    }
    web.dyno.stop();
    within(10, "web.1 stops", web.dyno.wait()).await;
}

#[tokio::test]
async fn web_dyno_bound_on_0_0_0_0_listens_on_loopback_only() {
    web_listens_on_loopback_only(None, V4_LOOPBACK).await;
}

#[tokio::test]
async fn web_dyno_bound_on_v6_wildcard_listens_on_v6_loopback_only() {
    web_listens_on_loopback_only(Some("[::]"), V6_LOOPBACK).await;
}

fn log_lines(d: &Daemon, app: &str, ps: &str) -> Vec<String> {
    let out = d.cli(&["logs", "-a", app, "-n", "1500", "--ps", ps]).ok();
    out.stdout.lines().map(str::to_owned).collect()
}

/// The texts after `SOURCE[PROCESS]: ` of the lines from `source`.
fn texts(lines: &[String], source: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l.split_once(&format!(" {source}[")))
        .filter_map(|(_, rest)| rest.split_once("]: "))
        .map(|(_, text)| text.to_owned())
        .collect()
}

fn prebuilt() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let probe = built_app("probe");
    for (from, to) in [("web", "web"), ("probe", "worker")] {
        std::fs::copy(
            probe.join(format!("bin/{from}.wasm")),
            dir.path().join(format!("bin/{to}.wasm")),
        )
        .unwrap();
    }
    std::fs::write(dir.path().join("Procfile"), "web: bin/web\n").unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_opens_only_the_allowed_host_port() {
    let db = TcpListener::bind("127.0.0.1:0").unwrap();
    let p = db.local_addr().unwrap().port();
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let o = other.local_addr().unwrap().port();
    let d = Daemon::start(&["--allow-host-port", &p.to_string()]);
    let app = prebuilt();
    d.create_and_deploy("fenced", app.path());
    d.answers("fenced", "/", "hello from web.1").await;
    let name = d.run_detached(
        "fenced",
        &[
            "bin/worker",
            "connect",
            &format!("127.0.0.1:{p}"),
            ",",
            "connect",
            &format!("127.0.0.1:{o}"),
        ],
    );
    let got = until("the one-off's output", 30, || {
        let t = texts(&log_lines(&d, "fenced", &name), "app");
        (t.len() >= 2).then_some(t)
    })
    .await;
    assert_eq!(got, ["ok", "error: PermissionDenied"]);

    // A web process bound on `[::]` listens in memory (the daemon's
    // default): nothing of the host listens on its port, and the router
    // reaches it. (With real ports it lands on `[::1]`: see
    // `web_dyno_bound_on_v6_wildcard_listens_on_v6_loopback_only`.)
    d.cli(&["config:set", "BIND=[::]", "-a", "fenced"]).ok();
    let mut bound = false;
    for _ in 0..300 {
        let (status, env) = d.get("fenced", "/env").await;
        if status == 200 && env.lines().any(|l| l == "BIND=[::]") {
            bound = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(bound, "the release with BIND=[::] serves");
    let port = d.ps("fenced")[0]["port"].as_u64().unwrap() as u16;
    d.answers("fenced", "/", "hello from web.1").await;
    assert_eq!(listening(port), Vec::<String>::new());
}

/// `cat FILE` in the daemon's mount namespace, as root or as nobody.
fn cat_in(daemon: u32, file: &Path, nobody: bool) -> (bool, String) {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &daemon.to_string(), "-m", "--"]);
    if nobody {
        cmd.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
        ]);
    }
    let out = cmd.arg("cat").arg(file).output().expect("running nsenter");
    let text = if out.status.success() {
        out.stdout
    } else {
        out.stderr
    };
    (
        out.status.success(),
        String::from_utf8_lossy(&text).into_owned(),
    )
}

fn statvfs_used(path: &Path) -> u64 {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid path and out-pointer.
    assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
    (st.f_blocks - st.f_bfree) * st.f_frsize
}

fn files_under(dir: &Path, acc: &mut Vec<PathBuf>) {
    acc.push(dir.to_owned());
    if dir.is_dir() {
        for e in std::fs::read_dir(dir).unwrap() {
            files_under(&e.unwrap().path(), acc);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_quota_gives_enospc_and_files_at_rest_are_private() {
    let d = Daemon::start(&["--disk-mb", "16"]);
    let app = prebuilt();
    d.create_and_deploy("quota", app.path());
    let used_before = statvfs_used(d.home());
    let name = d.run_detached(
        "quota",
        &[
            "bin/worker",
            "write",
            "/tmp/secret",
            "s3cret",
            ",",
            "fill",
            "stream",
            "/tmp/big",
            "256",
            ",",
            "fill",
            "pwrite",
            "/tmp/big2",
            "8",
            ",",
            "sleep",
            "600000",
        ],
    );
    let got = until("the fill's output", 60, || {
        let t = texts(&log_lines(&d, "quota", &name), "app");
        (t.len() >= 5).then_some(t)
    })
    .await;
    assert_eq!(got[0], "ok");
    let wrote: u64 = got[1]
        .strip_prefix("wrote ")
        .and_then(|r| r.strip_suffix(" MiB"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{got:?}"));
    // The slug's files take a little of the 16 MiB.
    assert!((8..16).contains(&wrote), "{got:?}");
    // Through a stream (std's `write`) wasi-libc says EIO (29) for any
    // failure, whatever the host reports; `pwrite` gets ENOSPC (51). The
    // quota line below comes from the stream's failure, the first.
    assert_eq!(got[2], "error: Uncategorized (errno Some(29))");
    assert_eq!(
        got[3..],
        ["wrote 0 MiB", "error: StorageFull (errno Some(51))"]
    );
    let platform = texts(&log_lines(&d, "quota", &name), "wdyno");
    assert!(
        platform.contains(&"Error: disk quota of 16 MiB reached (/app + /tmp)".to_owned()),
        "{platform:?}"
    );
    // None of it is on the home's disk.
    let grown = statvfs_used(d.home()).saturating_sub(used_before);
    assert!(
        grown < 128 << 20,
        "the home's disk grew by {} MiB",
        grown >> 20
    );

    // Files at rest, read as nobody: refused; as root (the control): read.
    let dyno_dir = std::fs::read_dir(d.home().join("dynos/quota"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(&name))
        .expect("the one-off's dir");
    let mut slugs = std::fs::read_dir(d.home().join("slugs")).unwrap();
    let slug = slugs.next().unwrap().unwrap().path();
    let db_file = d.home().join("db/conf");
    let secret = dyno_dir.join("tmp/secret");
    for file in [d.home().join("api-token"), db_file, slug, secret.clone()] {
        let (ok, text) = cat_in(d.pid(), &file, false);
        assert!(ok, "root reads {}: {text}", file.display());
        let (ok, text) = cat_in(d.pid(), &file, true);
        assert!(
            !ok && text.contains("Permission denied"),
            "nobody read {}: {text}",
            file.display()
        );
    }
    assert_eq!(cat_in(d.pid(), &secret, false).1, "s3cret");
    // Nor is a single mode bit left for group or others.
    let mut all = vec![d.home().to_owned(), d.home().join("api-token")];
    files_under(&d.home().join("db"), &mut all);
    files_under(&d.home().join("slugs"), &mut all);
    for f in &all {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::symlink_metadata(f).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is {:o}", f.display(), mode & 0o777);
    }
}
