//! The platform inside the test process: real ledger, slugs, wasmtime,
//! router and API, on port-0 listeners, with a client for its API. For
//! tests of the platform's behaviour that need no daemon process (no
//! signals, no `git push`, no CLI output).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use wdyno::api::Client;
use wdyno::platform::{Platform, PlatformConfig};
use wdyno::release::Release;
use wdyno::service::Service;

pub struct Inproc {
    pub platform: Arc<Platform>,
    pub service: Arc<Service>,
    /// The router's port on 127.0.0.1.
    pub router: u16,
    pub api: Client,
    api_addr: std::net::SocketAddr,
    stop: tokio::sync::watch::Sender<bool>,
    running: Option<tokio::task::JoinHandle<()>>,
    _home: tempfile::TempDir,
}

impl Inproc {
    /// A platform with the daemon tests' settings (grace 3 s, boot
    /// timeout 20 s, restart backoff 200 ms, the shared build cache).
    pub async fn start() -> Inproc {
        let home = tempfile::tempdir().unwrap();
        let mut cfg = PlatformConfig::new(home.path());
        cfg.manager.grace = Duration::from_secs(3);
        cfg.manager.boot_timeout = Duration::from_secs(20);
        cfg.manager.restart_base = Duration::from_millis(200);
        cfg.build_cache = Some(super::daemon::build_cache());
        wdyno::dyno::fds::raise_open_files_limit();
        let platform = Platform::open(cfg).await.expect("the platform opens");
        let api = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let router = tokio::net::TcpListener::bind(("127.0.0.1", 0))
            .await
            .unwrap();
        let api_addr = api.local_addr().unwrap();
        let client = Client::new(&format!("http://{api_addr}"), platform.token());
        let router_port = router.local_addr().unwrap().port();
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let p = platform.clone();
        let running = tokio::spawn(async move {
            p.run(api, router, async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
            .expect("the platform runs");
        });
        Inproc {
            service: platform.service().clone(),
            platform,
            router: router_port,
            api: client,
            api_addr,
            stop,
            running: Some(running),
            _home: home,
        }
    }

    /// Where the API listens.
    pub fn api_addr(&self) -> std::net::SocketAddr {
        self.api_addr
    }

    /// Creates `app` and deploys `dir` to it; returns the release and the
    /// build's output.
    pub async fn create_and_deploy(&self, app: &str, dir: &Path) -> (Release, Vec<String>) {
        let name = wdyno::names::AppName::parse(app).unwrap();
        self.service.create_app(&name).await.unwrap();
        self.deploy(app, dir).await
    }

    pub async fn deploy(&self, app: &str, dir: &Path) -> (Release, Vec<String>) {
        let name = wdyno::names::AppName::parse(app).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let release = self.service.deploy(&name, dir, "", tx).await;
        let mut out = Vec::new();
        while let Ok(l) = rx.try_recv() {
            out.push(l);
        }
        match release {
            Ok(r) => (r, out),
            Err(e) => panic!("deploy of {app} failed: {e}\n{}", out.join("\n")),
        }
    }

    /// Stops every dyno through the stop sequence.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(r) = self.running.take() {
            r.await.unwrap();
        }
    }
}
