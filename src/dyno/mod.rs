//! The wasm host: each dyno is a wasmtime store and component instance
//! under the dyno contract of DESIGN.md.
//!
//! - [`engine`]: the one `Engine`/`Linker`, compiled-component cache,
//!   *prepare per release*.
//! - [`capacity`]: how many dynos the host holds and the slots each
//!   running instance takes.
//! - [`world`]: command or proxy, told from the component.
//! - [`sandbox`]: everything one dyno may do, built in one place.
//! - [`ports`], [`fence`], [`egress`]: who may bind and reach which port
//!   and address.
//! - [`files`], [`disk`]: a dyno's `/app` + `/tmp`, and its disk quota.
//! - `shadows`: the WASI calls wrapped around wasmtime-wasi's (binds moved
//!   to loopback, `ENOSPC` noticed).
//! - [`fds`]: the files and sockets guests may hold open.
//! - [`output`]: stdout/stderr → log lines; [`hints`]: the hint lines
//!   for crashes caused by a WASI limit or the dyno contract.
//! - [`lifecycle`]: `wdyno:dyno/lifecycle`, the stop signal.
//! - [`command`], [`proxy`]: *instantiate per dyno* (or per request), the
//!   state machine, and the stop sequence.

pub mod capacity;
pub mod command;
pub mod disk;
pub mod door;
pub mod egress;
pub mod engine;
pub mod fds;
pub mod fence;
pub mod files;
pub mod hints;
pub mod lifecycle;
pub mod meter;
pub mod output;
pub mod pipe;
pub mod ports;
pub mod proxy;
mod quota;
pub mod sandbox;
mod shadows;
mod vsock;
pub mod world;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use capacity::{Capacity, CapacityConfig, Limit};
pub use engine::{Prepared, Runtime, RuntimeConfig};
pub use lifecycle::Signals;
pub use meter::{Meter, Usage};
pub use ports::{PortBook, PortLease};
pub use sandbox::{DEFAULT_MEMORY, Determinism, Sandbox};
pub use world::World;

use crate::logbus::Bus;
use files::DynoFiles;

/// Time a web dyno has to bind `$PORT` (Heroku's R10 is at 60 s).
pub const DEFAULT_BOOT_TIMEOUT: Duration = Duration::from_secs(60);
/// Time between SIGTERM and SIGKILL (Heroku's is 30 s).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30);

/// Errors of the wasm host.
#[derive(Debug, thiserror::Error)]
pub enum DynoError {
    #[error("{}: this is {found}", path.display())]
    NotADyno { path: PathBuf, found: String },
    #[error("{}: not a valid WebAssembly component: {why}", path.display())]
    InvalidComponent { path: PathBuf, why: String },
    #[error(
        "{}: imports an interface wdyno does not provide (dynos get WASI 0.2 and \
         wdyno:dyno/lifecycle): {why}", path.display()
    )]
    UnsupportedImports { path: PathBuf, why: String },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("laying out the dyno's files: {0}")]
    Files(String),
    #[error("wasm host error: {0}")]
    Host(String),
}

impl DynoError {
    pub(crate) fn host(e: wasmtime::Error) -> Self {
        DynoError::Host(format!("{e:#}"))
    }
}

/// Where a dyno is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Starting,
    Up,
    Stopping,
    Down,
    Crashed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Up => "up",
            State::Stopping => "stopping",
            State::Down => "down",
            State::Crashed => "crashed",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, State::Down | State::Crashed)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a dyno ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// `run` returned or the guest called `exit`.
    Exited,
    /// Stopped by the platform before it finished on its own (SIGTERM).
    Terminated,
    /// Still running at the end of the grace period (R12, SIGKILL).
    Killed,
    /// Went over its memory quota (R14).
    MemoryQuota,
    /// A web dyno that did not bind `$PORT` in time (R10).
    BootTimeout,
    /// The guest trapped.
    Trapped(String),
    /// The host could not start it.
    Failed(String),
}

/// How a dyno ended: its exit status (0 or 143 clean, 137 killed, else the
/// guest's own code) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    pub status: i32,
    pub cause: Cause,
}

/// Status of a dyno stopped cleanly (128 + SIGTERM).
pub const STATUS_TERMINATED: i32 = 143;
/// Status of a dyno killed at the deadline (128 + SIGKILL).
pub const STATUS_KILLED: i32 = 137;
/// Status of a dyno that trapped (128 + SIGABRT).
pub const STATUS_TRAPPED: i32 = 134;

/// What to run as one dyno.
#[derive(Clone)]
pub struct Launch {
    pub sandbox: Sandbox,
    pub prepared: Arc<Prepared>,
    /// The Procfile command as written, for the log (`bin/web $PORT`).
    pub command_line: String,
    /// argv, `argv[0]` being the component path.
    pub args: Vec<String>,
    /// A web dyno is `up` only once `$PORT` accepts connections.
    pub web: bool,
    /// A one-off dyno (`run.N`) ends `down`, never `crashed`.
    pub one_off: bool,
    pub boot_timeout: Duration,
    pub grace: Duration,
    /// Stdin of an attached one-off dyno; others read an empty stdin.
    pub stdin: Option<output::AttachedStdin>,
    /// A proxy web dyno's handler as the router calls it in memory;
    /// `None`: it serves a real `$PORT`.
    pub proxy_door: Option<Arc<proxy::ProxyDoor>>,
}

/// A running (or finished) dyno. Dropping it does not stop it; call
/// [`Dyno::stop`] and [`Dyno::wait`].
pub struct Dyno {
    name: String,
    signals: Arc<Signals>,
    state: watch::Receiver<State>,
    exit: watch::Receiver<Option<Exit>>,
    grace: Duration,
    started: Instant,
}

/// The sending side of a dyno's state, held by its task.
pub(crate) struct Reporter {
    app: String,
    name: String,
    bus: Bus,
    meter: Arc<Meter>,
    state: watch::Sender<State>,
    exit: watch::Sender<Option<Exit>>,
}

impl Reporter {
    pub(crate) fn set(&self, to: State) {
        let from = *self.state.borrow();
        if from != to {
            // Logged first, so whoever sees the new state finds its line.
            self.log(&format!("State changed from {from} to {to}"));
            self.state.send_replace(to);
        }
    }

    pub(crate) fn log(&self, text: &str) {
        self.bus.platform(&self.app, &self.name, text);
    }

    /// The R14 line, with the dyno's figures at its peak as
    /// `log-runtime-metrics` writes them.
    pub(crate) fn memory_quota_exceeded(&self) {
        let figures = crate::metrics::figures(&self.name, &self.meter.at_peak(), None);
        self.log(&format!("Error R14 (Memory quota exceeded) {figures}"));
    }

    /// Records the end: the R-code line if any, the exit status, the state.
    pub(crate) fn finish(&self, exit: Exit, stop_requested: bool, one_off: bool) {
        match &exit.cause {
            Cause::Killed => self.log("Error R12 (Exit timeout) -> At least one process failed to exit within the grace period after SIGTERM"),
            Cause::MemoryQuota => self.memory_quota_exceeded(),
            Cause::BootTimeout => self.log("Error R10 (Boot timeout) -> Web process failed to bind to $PORT within the boot timeout"),
            Cause::Trapped(why) => self.log(&format!("Process crashed: {why}")),
            Cause::Failed(why) => self.log(&format!("Process failed to start: {why}")),
            Cause::Exited | Cause::Terminated => {}
        }
        self.log(&format!("Process exited with status {}", exit.status));
        let clean = stop_requested || one_off;
        self.exit.send_replace(Some(exit));
        self.set(if clean { State::Down } else { State::Crashed });
    }
}

impl Dyno {
    /// Starts a dyno: lays out its files and runs it on the current tokio
    /// runtime. It reports `starting`, then `up` (or ends).
    pub fn start(runtime: Arc<Runtime>, bus: Bus, launch: Launch) -> Dyno {
        let name = launch.sandbox.dyno.clone();
        let (state_tx, state) = watch::channel(State::Starting);
        let (exit_tx, exit) = watch::channel(None);
        let signals = Arc::new(Signals::default());
        let reporter = Reporter {
            app: launch.sandbox.app.clone(),
            name: name.clone(),
            bus: bus.clone(),
            meter: signals.meter().clone(),
            state: state_tx,
            exit: exit_tx,
        };
        let grace = launch.grace;
        reporter.log(&format!(
            "Starting process with command `{}`",
            launch.command_line
        ));
        let task_signals = signals.clone();
        tokio::spawn(async move {
            let one_off = launch.one_off;
            // Laid out when the dyno first asks for its files.
            let (app, dyno) = (launch.sandbox.app.clone(), launch.sandbox.dyno.clone());
            let log = bus.clone();
            let files = Arc::new(DynoFiles::new(
                launch.sandbox.files.clone(),
                launch.sandbox.work_dir.clone(),
                launch.sandbox.disk,
                move |quota| {
                    log.platform(
                        &app,
                        &dyno,
                        &format!(
                            "Error: disk quota of {} MiB reached (/app + /tmp)",
                            quota >> 20
                        ),
                    )
                },
            ));
            let reporter = Arc::new(reporter);
            let ended = match launch.prepared.pre {
                engine::Pre::Command(_) => {
                    let files = files.clone();
                    command::run(runtime, bus, launch, task_signals, files, &reporter).await
                }
                engine::Pre::Proxy(_) => {
                    let files = files.clone();
                    let door = launch.proxy_door.clone();
                    let reporter = reporter.clone();
                    proxy::run(runtime, bus, launch, task_signals, files, reporter, door).await
                }
            };
            // The files go before the final state is reported: `down` means
            // nothing of the dyno is left.
            if files.laid_out() {
                match tokio::task::spawn_blocking(move || files.remove()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::warn!("{e}"),
                    Err(e) => tracing::warn!("removing a dyno's files: {e}"),
                }
            }
            reporter.finish(ended.exit, ended.stopped, one_off);
        });
        Dyno {
            name,
            signals,
            state,
            exit,
            grace,
            started: Instant::now(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn state(&self) -> State {
        *self.state.borrow()
    }

    pub fn started(&self) -> Instant {
        self.started
    }

    /// Set when the dyno listens on `[::1]` rather than `127.0.0.1`: where
    /// the router must connect (shared with the router's table).
    pub fn listens_v6(&self) -> Arc<std::sync::atomic::AtomicBool> {
        self.signals.listens_v6.clone()
    }

    pub fn watch_state(&self) -> watch::Receiver<State> {
        self.state.clone()
    }

    /// What its instances hold now and how long they ran.
    pub fn usage(&self) -> Usage {
        self.signals.meter().usage()
    }

    /// Asks the dyno to stop: the lifecycle pollable fires and the grace
    /// period starts. Idempotent.
    pub fn stop(&self) {
        self.signals.request_stop(Instant::now() + self.grace);
    }

    /// Waits until the dyno has ended, its files removed from the state
    /// machine's point of view (`down` or `crashed`).
    pub async fn wait(&self) -> Exit {
        let mut exit = self.exit.clone();
        let mut state = self.state.clone();
        let _ = state.wait_for(|s| s.is_final()).await;
        let got = exit.wait_for(Option::is_some).await;
        match got {
            Ok(e) => e.clone().expect("waited for Some"),
            Err(_) => Exit {
                status: STATUS_KILLED,
                cause: Cause::Failed("dyno task ended without a status".into()),
            },
        }
    }

    /// Waits until the dyno is `up` or has to wait for a free slot (the
    /// host is full), or returns the state it ended in. A dyno it replaces
    /// may then go at once, to free the slot.
    pub async fn wait_up_or_queued(&self) {
        let mut queued = self.signals.watch_queued();
        tokio::select! {
            _ = self.wait_up() => {}
            _ = queued.wait_for(|q| *q) => {}
        }
    }

    /// Waits until the dyno is `up`, or returns the state it ended in.
    pub async fn wait_up(&self) -> State {
        let mut state = self.state.clone();
        match state.wait_for(|s| *s != State::Starting).await {
            Ok(s) => *s,
            Err(_) => State::Crashed,
        }
    }
}

/// How a dyno's run ended, before it is reported.
pub(crate) struct Ended {
    exit: Exit,
    /// Whether a stop had been asked for.
    stopped: bool,
}

impl Ended {
    fn failed(why: String) -> Self {
        Ended {
            exit: Exit {
                status: 1,
                cause: Cause::Failed(why),
            },
            stopped: false,
        }
    }
}
