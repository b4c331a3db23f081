//! Figures against other people's servers, which the harness gets itself
//! when the machine lacks them: nginx in front of the native hello app
//! (Debian's package), and `wasmtime serve` of the proxy component
//! (`cargo install wasmtime-cli`, cached under `target/`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, repo};
use crate::load::{self, Load, Target};
use crate::native::Fleet;
use crate::routed::Client;
use crate::served::{APP, Served, rps};
use crate::{Plan, Row, Table, ms, ratio};

/// The `wasmtime` the proxy figure compares against: wdyno's own.
const WASMTIME_VERSION: &str = "48.0.8";

/// nginx as a user would put it in front of an app: one worker per core
/// (`auto`: on the 2-core bench machine that is 2 workers, where wdyno's
/// router is one thread), keep-alive connections to the upstream, and an
/// access log to a buffered file, since the router logs a line per request
/// too. The native hello app closes every connection, so the upstream
/// keep-alive pool does not help it here; it is there as deployed.
fn nginx_conf(dir: &Path, port: u16, upstreams: &[u16]) -> String {
    let dir = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|p| format!("    server 127.0.0.1:{p};\n"))
        .collect();
    format!(
        "worker_processes auto;
events {{ worker_connections 4096; }}
http {{
  access_log {dir}/access.log combined buffer=64k;
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream app {{
{servers}    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
      proxy_set_header Host $host;
    }}
  }}
}}
"
    )
}

/// An nginx master process (and its workers) running a config of ours.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(upstreams: &[u16]) -> Result<Nginx, String> {
        let bin = nginx_binary()?;
        let dir = tempfile::tempdir().map_err(|e| format!("a temp dir for nginx: {e}"))?;
        let port = common::free_port();
        let conf = dir.path().join("nginx.conf");
        std::fs::write(&conf, nginx_conf(dir.path(), port, upstreams))
            .map_err(|e| format!("writing {}: {e}", conf.display()))?;
        let d = dir.path().display();
        let mut child = Command::new(&bin)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .arg("-g")
            .arg(format!(
                "daemon off; pid {d}/nginx.pid; error_log {d}/error.log;"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("running {}: {e}", bin.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = || std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default();
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("nginx exited ({status}): {}", log().trim()));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("nginx never listened: {}", log().trim()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Nginx {
            child,
            port,
            _dir: dir,
        })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its workers on TERM, while
        // a killed master leaves them serving.
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx's binary, installed from Debian's packages when missing.
fn nginx_binary() -> Result<PathBuf, String> {
    let find = || {
        let path = std::env::var_os("PATH").unwrap_or_default();
        std::env::split_paths(&path)
            .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from))
            .map(|d| d.join("nginx"))
            .find(|p| p.is_file())
    };
    if let Some(bin) = find() {
        return Ok(bin);
    }
    eprintln!("nginx is not installed: apt-get install -y nginx…");
    let apt = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .stdout(std::io::stderr())
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed =
        apt(&["install", "-y", "nginx"]) || (apt(&["update"]) && apt(&["install", "-y", "nginx"]));
    match (installed, find()) {
        (true, Some(bin)) => Ok(bin),
        _ => Err("nginx is not installed and `apt-get install -y nginx` failed".into()),
    }
}

fn rps_p99(l: &Load) -> String {
    format!("{}, p99 {}", rps(l), ms(l.percentile(0.99)))
}

/// The router to `n` hello dynos against nginx in front of `n` native
/// hello processes, for both kinds of client: wdyno should serve 1.2x
/// nginx's requests/s at a lower p99.
pub async fn nginx(plan: &Plan, table: &mut Table, s: &Served, n: usize, bin: &PathBuf) {
    let figure = |client: &str| {
        format!(
            "requests/s and p99 through the router, {n} hello dyno(s), against nginx in front of \
             {n} native hello process(es), {client}, {} connections",
            plan.concurrency.max(n)
        )
    };
    let fleet = Fleet::spawn(bin, n);
    let nginx = match Nginx::start(&fleet.ports) {
        Ok(nginx) => nginx,
        Err(why) => {
            table.row(Row {
                figure: figure("both clients"),
                wdyno: "—".into(),
                baseline: format!("nginx: skipped, {why}"),
                ratio: "—".into(),
                target: "≥ 1.2x nginx, lower p99".into(),
                met: None,
            });
            return;
        }
    };
    s.scale(APP, n).await;
    let (c, t) = (plan.concurrency.max(n), plan.load_time);
    for client in Client::BOTH {
        let proxied = client.target(Target::local(nginx.port, "localhost", "/"));
        let x = load::run(&proxied, c, t).await;
        let (w, _) = s.load(&client.target(s.routed(APP, "/")), c, t).await;
        assert_eq!((x.failed, w.failed), (0, 0), "requests failed");
        let r = w.rps() / x.rps();
        let lower_p99 = w.percentile(0.99) < x.percentile(0.99);
        table.row(Row {
            figure: figure(client.name()),
            wdyno: rps_p99(&w),
            baseline: format!(
                "nginx 1 master + `worker_processes auto`, upstream keepalive 64, buffered \
                 access log: {}",
                rps_p99(&x)
            ),
            ratio: ratio(r),
            target: "≥ 1.2x nginx, lower p99".into(),
            met: Some(r >= 1.2 && lower_p99),
        });
    }
    drop(nginx);
    s.scale(APP, 1).await;
}

/// `wasmtime` for the proxy figure: on PATH, else cached under
/// `target/wasmtime-cli`, else (on a full run) built there by `cargo
/// install`. `Err` says why the figure is skipped.
fn wasmtime(quick: bool) -> Result<PathBuf, String> {
    let runs = |bin: &Path| {
        Command::new(bin)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if runs(Path::new("wasmtime")) {
        return Ok("wasmtime".into());
    }
    let root = repo().join("target/wasmtime-cli");
    let cached = root.join("bin/wasmtime");
    if runs(&cached) {
        return Ok(cached);
    }
    if quick {
        return Err(format!(
            "`wasmtime` is neither on PATH nor cached at {} (a full run builds it)",
            cached.display()
        ));
    }
    eprintln!(
        "building wasmtime-cli {WASMTIME_VERSION} into {} (cargo install, once; it takes long)…",
        root.display()
    );
    let install = |locked: bool| {
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args(["install", "wasmtime-cli", "--version", WASMTIME_VERSION]);
        if locked {
            cargo.arg("--locked");
        }
        cargo
            .arg("--root")
            .arg(&root)
            .env("CARGO_TARGET_DIR", repo().join("target/wasmtime-cli-build"))
            .stdout(std::io::stderr())
            .status()
            .is_ok_and(|s| s.success())
    };
    // Its lock file first; without it should the locked set not build.
    if (install(true) || install(false)) && runs(&cached) {
        Ok(cached)
    } else {
        Err(format!(
            "`cargo install wasmtime-cli --version {WASMTIME_VERSION}` failed"
        ))
    }
}

/// `wasmtime serve` of `component` on a free port.
struct Serve {
    child: Child,
    port: u16,
}

impl Serve {
    fn start(wasmtime: &Path, component: &Path) -> Result<Serve, String> {
        let port = common::free_port();
        let mut child = Command::new(wasmtime)
            .arg("serve")
            .arg("-S")
            .arg("cli=y")
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .arg(component)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("running {}: {e}", wasmtime.display()))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("`wasmtime serve` exited ({status})"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err("`wasmtime serve` never listened".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(Serve { child, port })
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `wasi:http/proxy` dyno (tests/apps/rust-http) through the router
/// against the same component under `wasmtime serve`.
pub async fn proxy(plan: &Plan, table: &mut Table, s: &Served) {
    let app = "proxy";
    s.deploy(app, "rust-http");
    let deadline = Instant::now() + Duration::from_secs(30);
    while s.daemon.get(app, "/").await.0 != 200 {
        assert!(Instant::now() < deadline, "the proxy dyno never answered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (c, t) = (plan.concurrency, plan.load_time);
    let (r, _) = s.load(&s.routed(app, "/"), c, t).await;
    assert_eq!(r.failed, 0, "the proxy dyno failed requests");
    let ports = s.direct_ports(app).await;
    let direct = match ports.is_empty() {
        true => String::new(),
        false => {
            let d = load::run(&Target::new(ports, "localhost", "/"), c, t).await;
            assert_eq!(d.failed, 0, "the proxy dyno failed direct requests");
            format!("; direct to the dyno: {}", rps(&d))
        }
    };
    let component = common::built_app("rust-http").join("bin/web.wasm");
    let served = wasmtime(plan.quick).and_then(|bin| Serve::start(&bin, &component));
    let (baseline, x, met) = match served {
        Err(why) => (
            format!("`wasmtime serve`: skipped, {why}"),
            "—".into(),
            None,
        ),
        Ok(serve) => {
            let target = Target::local(serve.port, "localhost", "/");
            let w = load::run(&target, c, t).await;
            drop(serve);
            assert_eq!(w.failed, 0, "`wasmtime serve` failed requests");
            let x = r.rps() / w.rps();
            (
                format!("`wasmtime serve -S cli=y`, same component: {}", rps(&w)),
                ratio(x),
                Some(x >= 3.0),
            )
        }
    };
    table.row(Row {
        figure: format!(
            "`wasi:http/proxy` component (rust-http) as a dyno, through the router, keep-alive, \
             {c} connections"
        ),
        wdyno: rps(&r),
        baseline: format!("{baseline}{direct}"),
        ratio: x,
        target: "≥ 3x".into(),
        met,
    });
}
