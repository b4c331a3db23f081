//! `wdyno daemon`: the platform in the foreground until Ctrl-C / SIGTERM.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use wdyno::platform::{Platform, PlatformConfig};

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// The router's port.
    #[arg(long, default_value_t = 5000)]
    pub router_port: u16,
    /// The control API's port (0: any free port; the CLI finds it in
    /// `$WDYNO_HOME/api`).
    #[arg(long, default_value_t = 0)]
    pub api_port: u16,
    /// Seconds between SIGTERM and SIGKILL for dynos.
    #[arg(long, default_value_t = 30)]
    pub grace: u64,
    /// Seconds a web dyno has to bind $PORT.
    #[arg(long, default_value_t = 60)]
    pub boot_timeout: u64,
    /// Seconds the router holds a request for a sleeping app while its web
    /// dyno starts (H20; Heroku's router waits 75 s).
    #[arg(long, default_value_t = 75)]
    pub wake_timeout: u64,
    /// Memory quota per dyno, MiB.
    #[arg(long, default_value_t = 512)]
    pub memory_mb: usize,
    /// Seconds the router waits for a dyno's response (H12).
    #[arg(long, default_value_t = 30)]
    pub request_timeout: u64,
    /// Seconds a dyno's answer may send nothing once it has started (H15).
    #[arg(long, default_value_t = 55)]
    pub idle_timeout: u64,
    /// First restart backoff of a crashing dyno, milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub restart_backoff_ms: u64,
    /// Largest request body the router forwards, bytes (larger: 413).
    #[arg(long, default_value_t = 100 << 20)]
    pub max_body: usize,
    /// Seed for the router's dyno pick (tests).
    #[arg(long)]
    pub router_seed: Option<u64>,
    /// Forbid dynos any outgoing connection (opened host ports excepted).
    #[arg(long)]
    pub no_egress: bool,
    /// Open a port of this host's loopback (or link-local) addresses to
    /// dynos, e.g. a local database's; repeatable. Every other host-only
    /// address and port is fenced off.
    #[arg(long, env = "WDYNO_ALLOW_HOST_PORT", value_delimiter = ',')]
    pub allow_host_port: Vec<u16>,
    /// Disk quota per dyno for /app + /tmp, MiB (0: none). Needs root or
    /// unprivileged user namespaces; without them the daemon warns and
    /// runs without one.
    #[arg(long, default_value_t = 512)]
    pub disk_mb: u64,
    /// Where buildpacks keep their caches (default $WDYNO_HOME/cache/build).
    #[arg(long)]
    pub build_cache: Option<std::path::PathBuf>,
    /// Seconds a buildpack's bin/compile may run.
    #[arg(long, default_value_t = 900)]
    pub compile_timeout: u64,
    /// Hold at most this many dynos, fewer than the host's limits allow
    /// (they are printed at start).
    #[arg(long, env = "WDYNO_CAPACITY")]
    pub capacity: Option<u32>,
    /// Most dynos one app may run on this host (default: half the host's
    /// capacity, so no one app can take all of it).
    #[arg(long, env = "WDYNO_MAX_APP_DYNOS")]
    pub max_app_dynos: Option<u32>,
    /// CA certificates (a PEM file) that TLS drains trust besides the
    /// Mozilla roots: for drains to a private CA's endpoints.
    #[arg(long, env = "WDYNO_DRAIN_CA")]
    pub drain_ca: Option<std::path::PathBuf>,
    /// Seconds between runtime-metrics lines (`labs:enable
    /// log-runtime-metrics`).
    #[arg(long, default_value_t = 20)]
    pub metrics_interval: u64,
    /// How the router reaches web dynos: `memory` (no socket between them;
    /// the default) or `real` loopback ports you can curl (debugging).
    #[arg(long, value_enum, env = "WDYNO_DYNO_PORTS", default_value_t = wdyno::placement::DynoPorts::Memory)]
    pub dyno_ports: wdyno::placement::DynoPorts,
    /// Requests that may wait for one web dyno to take them before the
    /// router answers `H11 Backlog too deep` (when every dyno of the app
    /// has as many waiting).
    #[arg(long, default_value_t = 50)]
    pub backlog: usize,
    /// Join a cluster: its NATS servers, comma-separated
    /// (`nats://[user:pass@]host:4222,...`). Without it the daemon runs
    /// alone, its ledger in sled under its home.
    #[arg(long, env = "WDYNO_CLUSTER")]
    pub cluster: Option<String>,
    /// This host's name in the cluster (letters, digits, '-', '_').
    #[arg(long, env = "WDYNO_HOST")]
    pub host: Option<String>,
    /// In a cluster: the port other hosts' routers hand this host's dynos
    /// their requests on (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub peer_port: u16,
    /// The address the router, API and peer port listen on.
    #[arg(long, env = "WDYNO_BIND", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// In a cluster: the address other hosts reach this one at (default:
    /// --bind, which must then not be 0.0.0.0 or ::).
    #[arg(long, env = "WDYNO_ADVERTISE")]
    pub advertise: Option<std::net::IpAddr>,
    /// Run buildpacks without the build sandbox, as the daemon's own user
    /// with its files and environment: only for code you trust.
    #[arg(long)]
    pub unsafe_builds: bool,
}

pub async fn run(home: &Path, args: DaemonArgs) -> Result<()> {
    // Held until this daemon exits: one daemon per home.
    let _lock = one_daemon_per_home(home)?;
    let mut cfg = PlatformConfig::new(home);
    cfg.manager.grace = Duration::from_secs(args.grace);
    cfg.manager.boot_timeout = Duration::from_secs(args.boot_timeout);
    cfg.manager.memory = args.memory_mb << 20;
    cfg.manager.restart_base = Duration::from_millis(args.restart_backoff_ms);
    cfg.manager.egress = !args.no_egress;
    cfg.manager.dyno_ports = args.dyno_ports;
    cfg.router.backlog = args.backlog.max(1);
    cfg.allow_host_ports = args.allow_host_port.clone();
    if args.disk_mb > 0 && wdyno::dyno::disk::private_mounts() {
        cfg.manager.disk = Some(args.disk_mb << 20);
    }
    cfg.router.request_timeout = Duration::from_secs(args.request_timeout);
    cfg.router.boot_timeout = Duration::from_secs(args.wake_timeout.max(1));
    cfg.router.idle_timeout = Duration::from_secs(args.idle_timeout.max(1));
    cfg.router.seed = args.router_seed;
    cfg.router.max_body = args.max_body;
    cfg.build_cache = args.build_cache;
    cfg.compile_timeout = Duration::from_secs(args.compile_timeout);
    cfg.drain_ca = args.drain_ca;
    cfg.metrics_every = Duration::from_secs(args.metrics_interval.max(1));
    cfg.capacity = wdyno::dyno::CapacityConfig {
        dynos: args.capacity,
        per_app: args.max_app_dynos,
    };
    if let Some(servers) = &args.cluster {
        let Some(host) = &args.host else {
            anyhow::bail!(
                "--cluster needs --host NAME (or WDYNO_HOST): the name this host has in the cluster"
            );
        };
        if args.advertise.is_none() && args.bind.is_unspecified() {
            anyhow::bail!(
                "--bind {} listens on every address: say which one other hosts reach this one at with --advertise IP",
                args.bind
            );
        }
        cfg.cluster = Some(wdyno::cluster::ClusterConfig::parse(servers, host)?);
        cfg.peer_port = args.peer_port;
        cfg.advertise = args.advertise;
    }
    let open_files = wdyno::dyno::fds::raise_open_files_limit();
    cfg.sandbox_builds = !args.unsafe_builds;
    if args.unsafe_builds {
        eprintln!(
            "wdyno daemon: --unsafe-builds: buildpacks and the apps' build code run unsandboxed, as this user"
        );
    }
    let platform = Platform::open(cfg)
        .await
        .with_context(|| format!("opening {}", home.display()))?;
    // Installed before we say we are ready, so a SIGTERM sent the moment
    // we are always takes the stop sequence, never the default action.
    let shutdown = shutdown_signal()?;
    let api = bind(args.bind, args.api_port, "control API").await?;
    let router = bind(args.bind, args.router_port, "router").await?;
    // The CLI finds the daemon by these files: they exist before we say
    // we are ready.
    platform.advertise(api.local_addr()?, router.local_addr()?)?;
    eprintln!(
        "wdyno daemon: router on http://localhost:{}, API on http://{} (home {})",
        router.local_addr()?.port(),
        api.local_addr()?,
        home.display()
    );
    eprintln!(
        "wdyno daemon: {} (open files {open_files})",
        platform.runtime().slots().capacity().describe()
    );
    platform.run(api, router, shutdown).await?;
    eprintln!("wdyno daemon: stopped");
    Ok(())
}

/// Enters the private mount namespace that disk quotas need, or says
/// plainly that dynos run without one. Called while single-threaded.
pub(crate) fn isolate(args: &DaemonArgs) {
    if args.disk_mb == 0 {
        return;
    }
    if let Err(e) = wdyno::dyno::disk::enter_private_mounts() {
        eprintln!(
            "wdyno daemon: warning: the per-dyno disk quota is NOT enforced ({e}): dynos may \
             fill this host's disk. Run the daemon as root, or allow unprivileged user \
             namespaces (sysctl kernel.unprivileged_userns_clone=1 / \
             kernel.apparmor_restrict_unprivileged_userns=0); --disk-mb 0 silences this."
        );
    }
}

/// Takes `$WDYNO_HOME/daemon.lock` (an advisory lock the kernel drops when
/// the process ends, however it ends), or says that a daemon already runs
/// on this home: a second one would fail deep inside the ledger.
fn one_daemon_per_home(home: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(home).with_context(|| format!("creating {}", home.display()))?;
    let path = home.join("daemon.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            let api = std::fs::read_to_string(home.join("api")).unwrap_or_default();
            let at = match api.trim() {
                "" => String::new(),
                url => format!(" (API {url})"),
            };
            anyhow::bail!(
                "a wdyno daemon is already running on {}{at}: use it, stop it first, or start this one with another --home",
                home.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

async fn bind(ip: std::net::IpAddr, port: u16, what: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((ip, port)).await.with_context(|| {
        format!("port {port} for the {what} is in use: stop what listens there, or pick another port (--router-port / --api-port)")
    })
}

/// Resolves at the first SIGTERM or SIGINT; the handlers are installed
/// when this is called, not when the future is first polled.
pub(crate) fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing a SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing a SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Cmd};

    fn ports(args: &[&str]) -> Vec<u16> {
        match Cli::try_parse_from(args).unwrap().command {
            Cmd::Daemon(d) => d.allow_host_port,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn host_ports_are_opened_by_repeated_flags_or_a_comma_list_in_the_env() {
        let flags = [
            "wdyno",
            "daemon",
            "--allow-host-port",
            "5432",
            "--allow-host-port",
            "6379",
        ];
        assert_eq!(ports(&flags), [5432, 6379]);
        // SAFETY: the only test in this binary that reads this variable.
        unsafe { std::env::set_var("WDYNO_ALLOW_HOST_PORT", "5432,6379") };
        assert_eq!(ports(&["wdyno", "daemon"]), [5432, 6379]);
        unsafe { std::env::remove_var("WDYNO_ALLOW_HOST_PORT") };
        assert!(Cli::try_parse_from(["wdyno", "daemon", "--allow-host-port", "x"]).is_err());
    }
}
