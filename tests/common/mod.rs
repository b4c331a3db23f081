//! Shared by the integration tests: test apps built once by the real
//! buildpacks, one wasm runtime per test binary, and waiting on events with
//! deadlines.
#![allow(dead_code)]

pub mod browser;
pub mod cluster;
pub mod daemon;
pub mod edge;
pub mod inproc;
pub mod nats;
pub mod probe_app;
pub mod raw;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use wdyno::dyno::{
    DEFAULT_MEMORY, Determinism, Dyno, Launch, PortBook, PortLease, Runtime, RuntimeConfig, Sandbox,
};
use wdyno::logbus::{Bus, Event, LocalBus, LogFilter, LogLine, Subscription};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where tests keep what outlives one test: built apps, compiled components.
pub fn scratch() -> PathBuf {
    let dir = repo().join("target").join("wdyno-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Builds `tests/apps/NAME` (or `examples/NAME` when the path names one)
/// with the buildpack that detects it, once per source state: the build is
/// redone only when a source file changed. Returns the built app dir (what a
/// slug would hold).
pub fn built_app(name: &str) -> PathBuf {
    let src = repo().join("tests").join("apps").join(name);
    build_dir(&src, name)
}

/// An app dir holding one ready component as `bin/web.wasm` and the
/// Procfile `web: bin/web` (the wasm buildpack packs it as is).
pub fn prebuilt(component: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::copy(component, dir.path().join("bin/web.wasm")).unwrap();
    std::fs::write(dir.path().join("Procfile"), "web: bin/web\n").unwrap();
    dir
}

pub fn build_dir(src: &Path, name: &str) -> PathBuf {
    let root = scratch().join("apps");
    std::fs::create_dir_all(&root).unwrap();
    // One build at a time across test binaries.
    let lock = std::fs::File::create(root.join(".lock")).unwrap();
    lock.lock().unwrap();
    let stamp = source_stamp(src);
    let out = root.join(name);
    let stamp_file = root.join(format!("{name}.stamp"));
    if std::fs::read_to_string(&stamp_file).ok().as_deref() == Some(stamp.as_str()) && out.is_dir()
    {
        return out;
    }
    let _ = std::fs::remove_dir_all(&out);
    copy_source(src, &out);
    let pack = detect(&out);
    let cache = root.join("cache").join(pack.file_name().unwrap());
    let env_dir = root.join("env-empty");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::create_dir_all(&env_dir).unwrap();
    let status = Command::new(pack.join("bin/compile"))
        .arg(&out)
        .arg(&cache)
        .arg(&env_dir)
        .status()
        .unwrap();
    assert!(status.success(), "building {name} with {}", pack.display());
    std::fs::write(&stamp_file, stamp).unwrap();
    out
}

fn detect(dir: &Path) -> PathBuf {
    for pack in ["rust", "js", "wasm"] {
        let pack = repo().join("buildpacks").join(pack);
        let ok = Command::new(pack.join("bin/detect"))
            .arg(dir)
            .output()
            .unwrap()
            .status
            .success();
        if ok {
            return pack;
        }
    }
    panic!("no buildpack detects {}", dir.display());
}

fn copy_source(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "target" || name == "node_modules" {
            continue;
        }
        let dest = to.join(&name);
        if e.file_type().unwrap().is_dir() {
            copy_source(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A digest of every source file's path, size and mtime, and of the
/// buildpacks, so a rebuild happens exactly when something changed.
fn source_stamp(src: &Path) -> String {
    fn walk(dir: &Path, acc: &mut Vec<String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name();
            if name == "target" || name == "node_modules" {
                continue;
            }
            let md = e.metadata().unwrap();
            if md.is_dir() {
                walk(&e.path(), acc);
            } else {
                let mtime = md
                    .modified()
                    .unwrap()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap();
                // Relative to the repo, so a second checkout (a git
                // worktree) with the same files and times reuses the build.
                let path = e.path();
                let rel = path.strip_prefix(repo()).unwrap_or(&path);
                acc.push(format!(
                    "{} {} {}",
                    rel.display(),
                    md.len(),
                    mtime.as_nanos()
                ));
            }
        }
    }
    let mut acc = Vec::new();
    walk(src, &mut acc);
    walk(&repo().join("buildpacks"), &mut acc);
    acc.join("\n")
}

/// One runtime per test binary, its compiled components cached on disk
/// across binaries and runs.
pub fn runtime() -> Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| {
        Arc::new(
            Runtime::new(&RuntimeConfig {
                cache_dir: scratch().join("compiled"),
                max_memory: DEFAULT_MEMORY,
                pooling: true,
                epochs: true,
                capacity: Default::default(),
            })
            .expect("wasm runtime"),
        )
    })
    .clone()
}

/// A little platform for one test: a log bus, a port book, a dyno dir.
pub struct Host {
    pub bus: Bus,
    pub ports: PortBook,
    pub dir: tempfile::TempDir,
    pub app: String,
    pub config: BTreeMap<String, String>,
    pub memory: usize,
    pub grace: Duration,
    pub boot_timeout: Duration,
    pub egress: bool,
    pub determinism: Determinism,
    /// The shared test runtime unless a test needs another.
    pub runtime: Arc<Runtime>,
    /// Web dynos' `$PORT` in memory (as the daemon's default) rather than
    /// a real loopback port.
    pub in_memory: bool,
    leases: Vec<PortLease>,
    prepared: std::collections::HashMap<PathBuf, Arc<wdyno::dyno::Prepared>>,
}

impl Host {
    pub fn new(app: &str) -> Host {
        let bus = LocalBus::shared();
        bus.open(app);
        Host {
            bus,
            ports: PortBook::new(),
            dir: tempfile::tempdir().unwrap(),
            app: app.to_owned(),
            config: BTreeMap::new(),
            memory: DEFAULT_MEMORY,
            grace: Duration::from_secs(5),
            boot_timeout: Duration::from_secs(20),
            egress: true,
            determinism: Determinism::default(),
            runtime: runtime(),
            in_memory: false,
            leases: Vec::new(),
            prepared: std::collections::HashMap::new(),
        }
    }

    /// Starts dyno `name` running the component `argv[0]` of `app_dir`.
    /// `web` dynos get a `$PORT`; `$PORT` in args is expanded.
    pub fn start(&mut self, app_dir: &Path, name: &str, argv: &[&str], web: bool) -> Started {
        let lease = if web {
            Some(self.ports.lease().unwrap())
        } else {
            None
        };
        let port = lease.as_ref().map(|l| l.port());
        let component = app_dir.join(format!("{}.wasm", argv[0]));
        // Prepared once per component, as the manager does once per release.
        let prepared = self
            .prepared
            .entry(component.clone())
            .or_insert_with(|| self.runtime.prepare(&component).expect("prepare component"))
            .clone();
        let args: Vec<String> = argv
            .iter()
            .map(|a| match port {
                Some(p) => a.replace("$PORT", &p.to_string()),
                None => a.to_string(),
            })
            .collect();
        let door = port
            .filter(|_| self.in_memory)
            .map(wdyno::dyno::door::MemPort::new);
        let sandbox = Sandbox {
            app: self.app.clone(),
            dyno: name.to_owned(),
            release_version: 7,
            files: app_dir.to_owned(),
            work_dir: self.dir.path().join(name),
            config: self.config.clone(),
            port,
            door: door.clone(),
            ports: self.ports.clone(),
            egress: self.egress,
            memory: self.memory,
            disk: None,
            determinism: self.determinism,
        };
        let launch = Launch {
            sandbox,
            prepared,
            command_line: argv.join(" "),
            args,
            web,
            one_off: false,
            boot_timeout: self.boot_timeout,
            grace: self.grace,
            stdin: None,
            proxy_door: None,
        };
        let dyno = Dyno::start(self.runtime.clone(), self.bus.clone(), launch);
        if let Some(l) = lease {
            self.leases.push(l);
        }
        Started {
            dyno,
            port,
            door,
            work_dir: self.dir.path().join(name),
        }
    }

    /// Lines of `dyno` so far, as `source text` (`app hello`, `wdyno State…`).
    pub fn lines(&self, dyno: &str) -> Vec<String> {
        self.bus
            .recent(&self.app, usize::MAX)
            .iter()
            .filter(|l| l.process == dyno)
            .map(|l| format!("{} {}", l.source.as_str(), l.text))
            .collect()
    }

    /// The app's own output of `dyno` (stdout and stderr lines).
    pub fn output(&self, dyno: &str) -> Vec<String> {
        self.bus
            .recent(&self.app, usize::MAX)
            .iter()
            .filter(|l| l.process == dyno && l.source == wdyno::logbus::Source::App)
            .map(|l| l.text.clone())
            .collect()
    }

    pub fn subscribe(&self) -> Lines {
        Lines(self.bus.subscribe(&self.app, LogFilter::default(), 0, true))
    }
}

pub struct Started {
    pub dyno: Dyno,
    pub port: Option<u16>,
    /// Its `$PORT` in memory, when [`Host::in_memory`].
    pub door: Option<Arc<wdyno::dyno::door::MemPort>>,
    pub work_dir: PathBuf,
}

/// A live view of the log bus for waiting on a line.
pub struct Lines(Subscription);

impl Lines {
    /// Waits for a line matching `pred`, failing the test at `deadline`.
    pub async fn wait_for(
        &mut self,
        deadline: Duration,
        pred: impl Fn(&LogLine) -> bool,
    ) -> LogLine {
        let found = tokio::time::timeout(deadline, async {
            loop {
                match self.0.next().await {
                    Some(Event::Line(l)) if pred(&l) => return (*l).clone(),
                    Some(_) => {}
                    None => panic!("log bus closed"),
                }
            }
        })
        .await;
        found.unwrap_or_else(|_| panic!("no matching log line within {deadline:?}"))
    }
}

/// Runs `bin/probe` with `args` as a worker and returns its stdout lines
/// once it has exited (0, or the test fails).
pub async fn probe(host: &mut Host, name: &str, args: &[&str]) -> Vec<String> {
    let app = built_app("probe");
    let mut argv = vec!["bin/probe"];
    argv.extend_from_slice(args);
    let started = host.start(&app, name, &argv, false);
    let exit = within(60, "probe exits", started.dyno.wait()).await;
    assert_eq!(exit.status, 0, "probe {args:?}: {:?}", host.lines(name));
    host.output(name)
}

/// Polls a state until `f` returns `Some`, failing the test at a deadline.
pub async fn until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits for `fut` or fails the test after `secs` seconds.
pub async fn within<T>(secs: u64, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: not within {secs} s"))
}

/// A child's stdout, line by line, read on a thread of its own so a test
/// can wait on it with a deadline (`recv_timeout`).
pub fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    rx
}

/// A loopback port free now (for a server the test starts itself).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 GET over a fresh connection: (status, body).
pub async fn get(port: u16, path: &str) -> (u16, String) {
    let mut client = Client::connect(port).await;
    client.get(path).await
}

/// A keep-alive HTTP/1.1 client on one connection.
pub struct Client {
    send: hyper::client::conn::http1::SendRequest<http_body_util::Empty<bytes::Bytes>>,
}

impl Client {
    pub async fn connect(port: u16) -> Client {
        Client::connect_to((std::net::Ipv4Addr::LOCALHOST, port).into()).await
    }

    pub async fn connect_to(addr: std::net::SocketAddr) -> Client {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        Client { send }
    }

    pub async fn get(&mut self, path: &str) -> (u16, String) {
        self.get_host("test.localhost", path).await
    }

    pub async fn get_host(&mut self, host: &str, path: &str) -> (u16, String) {
        use http_body_util::BodyExt;
        self.send.ready().await.unwrap();
        let req = hyper::Request::get(path)
            .header("host", host)
            .body(http_body_util::Empty::new())
            .unwrap();
        let resp = self.send.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// This host's first IPv4 address that is not loopback or link-local: the
/// network's way in (dynos may reach it; their `$PORT` must not be there).
pub fn network_address() -> std::net::IpAddr {
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "scope", "global"])
        .output()
        .expect("running ip");
    let text = String::from_utf8_lossy(&out.stdout);
    let addr = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .expect("these tests need a non-loopback IPv4 address on the host");
    addr.split('/').next().unwrap().parse().unwrap()
}

/// The sockets listening on `port` on this host, as `/proc/net/tcp{,6}`
/// show their local addresses (hex).
pub fn listening(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state) = (f[1], f[3]);
            if state == "0A" && local.ends_with(&format!(":{port:04X}")) {
                found.push(local.to_owned());
            }
        }
    }
    found
}
