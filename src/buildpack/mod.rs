//! Running buildpacks with Heroku's classic API: `bin/detect BUILD`,
//! `bin/compile BUILD CACHE ENV`, `bin/release BUILD`.
//!
//! The built-in buildpacks (`buildpacks/` in the repo) are compiled into
//! the binary and written out under `$WDYNO_HOME/buildpacks/` at start, so
//! a `wdyno` binary needs nothing of its source tree. An app may name its
//! buildpacks (a built-in name or a path); otherwise the first whose
//! `bin/detect` succeeds builds it.
//!
//! wdyno adds one script to that API: `bin/tools DIR`, which installs
//! what a buildpack builds with, once per machine, shared read-only by
//! every app's build ([`tools`]).
//!
//! Every step runs as [`Isolation`] says: in the build sandbox
//! ([`sandbox`]) for the daemon, unsandboxed only for `wdyno local` or a
//! daemon started with `--unsafe-builds`.

mod builtin;
pub mod limits;
mod release_yaml;
pub mod sandbox;
mod tools;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use builtin::install_builtins;
pub use sandbox::{Dirs, Isolation, Sandbox, SandboxError, Step};

/// How long `bin/compile` may run (Heroku's build timeout).
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Lines of output kept for a failed build's message.
const TAIL_LINES: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum BuildpackError {
    #[error(
        "no buildpack detected this app: a Rust app has Cargo.toml, a JavaScript app package.json, a prebuilt app .wasm files"
    )]
    NoneDetected,
    #[error("buildpack {0:?} does not exist: use rust, js, wasm or a path to a buildpack")]
    Unknown(String),
    #[error("buildpack {name}: bin/compile failed with {status}:\n{tail}")]
    CompileFailed {
        name: String,
        status: String,
        tail: String,
    },
    #[error("buildpack {name}: bin/compile ran past {limit:?} and was stopped:\n{tail}")]
    Timeout {
        name: String,
        limit: Duration,
        tail: String,
    },
    #[error(
        "buildpack {name}: bin/compile wrote more than {} GiB into the build and cache dirs and was stopped:\n{tail}",
        limits::BUILD_DISK >> 30
    )]
    DiskFull { name: String, tail: String },
    #[error("buildpack {name}: bin/tools, installing its tools, failed with {status}:\n{tail}")]
    ToolsFailed {
        name: String,
        status: String,
        tail: String,
    },
    #[error(transparent)]
    NoSandbox(Arc<SandboxError>),
    #[error("buildpack {name}: bin/release printed YAML it cannot read: {why}")]
    BadRelease { name: String, why: String },
    #[error("buildpack {name}: {what}: {source}")]
    Io {
        name: String,
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// How a streamed step ended, with its last lines of output.
enum Outcome {
    Done,
    Failed { status: String, tail: String },
    TimedOut { tail: String },
    DiskFull { tail: String },
}

/// A buildpack on disk.
#[derive(Debug, Clone)]
pub struct Buildpack {
    pub name: String,
    pub dir: PathBuf,
}

impl Buildpack {
    fn io(&self, what: &str) -> impl FnOnce(std::io::Error) -> BuildpackError + '_ {
        let what = what.to_owned();
        move |source| BuildpackError::Io {
            name: self.name.clone(),
            what,
            source,
        }
    }

    /// The command for `step`, sandboxed as `iso` says, and the build
    /// cgroup it runs in (held until the step is over).
    fn command(
        &self,
        iso: &Isolation,
        step: Step,
        dirs: Dirs<'_>,
        tools: Option<&Path>,
    ) -> Result<(Command, Option<limits::BuildCgroup>), BuildpackError> {
        match iso {
            Isolation::Sandboxed(s) => s
                .command(step, &self.dir, dirs, tools)
                .map_err(self.io("preparing the build sandbox")),
            Isolation::Unsandboxed => {
                let mut cmd = Command::new(self.dir.join(step.script()));
                cmd.arg(dirs.build);
                if step == Step::Compile {
                    cmd.args([dirs.cache, dirs.env]);
                }
                if let Some(t) = tools {
                    cmd.env(sandbox::TOOLS_VAR, t);
                }
                Ok((cmd, None))
            }
            Isolation::Unavailable(e) => Err(BuildpackError::NoSandbox(e.clone())),
        }
    }

    /// Runs `bin/detect`; `Some(name it printed)` if it applies.
    pub fn detect(
        &self,
        iso: &Isolation,
        dirs: Dirs<'_>,
    ) -> Result<Option<String>, BuildpackError> {
        let (mut cmd, _cgroup) = self.command(iso, Step::Detect, dirs, None)?;
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(self.io("running bin/detect"))?;
        Ok(out.status.success().then(|| {
            let said = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            if said.is_empty() {
                self.name.clone()
            } else {
                said
            }
        }))
    }

    /// Runs `bin/compile`, handing each output line (stdout and stderr) to
    /// `line` as it comes, and stops it at `timeout` or when a sandboxed
    /// build fills more than [`limits::BUILD_DISK`]. A buildpack with
    /// `bin/tools` has its tools installed first, once per machine
    /// ([`tools`]).
    pub fn compile(
        &self,
        iso: &Isolation,
        dirs: Dirs<'_>,
        timeout: Duration,
        line: &mut dyn FnMut(&str),
    ) -> Result<(), BuildpackError> {
        let tools = tools::ensure(self, iso, dirs.cache, line)?;
        let (cmd, _cgroup) = self.command(iso, Step::Compile, dirs, tools.as_deref())?;
        let watch_disk = matches!(iso, Isolation::Sandboxed(_));
        let name = self.name.clone();
        match self.stream(
            cmd,
            "bin/compile",
            &[dirs.build, dirs.cache],
            watch_disk,
            timeout,
            line,
        )? {
            Outcome::Done => Ok(()),
            Outcome::Failed { status, tail } => {
                Err(BuildpackError::CompileFailed { name, status, tail })
            }
            Outcome::TimedOut { tail } => Err(BuildpackError::Timeout {
                name,
                limit: timeout,
                tail,
            }),
            Outcome::DiskFull { tail } => Err(BuildpackError::DiskFull { name, tail }),
        }
    }

    /// Runs `cmd` (the buildpack's `script`) in its own process group,
    /// handing each output line to `line`, and kills it at `timeout` or, if
    /// `watch_disk`, once `dirs` hold more than [`limits::BUILD_DISK`].
    fn stream(
        &self,
        mut cmd: Command,
        script: &str,
        dirs: &[&Path],
        watch_disk: bool,
        timeout: Duration,
        line: &mut dyn FnMut(&str),
    ) -> Result<Outcome, BuildpackError> {
        use std::os::unix::process::CommandExt;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout stops its children too.
            .process_group(0)
            .spawn()
            .map_err(self.io(&format!("running {script}")))?;
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let mut readers = Vec::new();
        for pipe in [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            readers.push(std::thread::spawn(move || {
                for l in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(l).is_err() {
                        break;
                    }
                }
            }));
        }
        drop(tx);
        let deadline = Instant::now() + timeout;
        let mut tail: Vec<String> = Vec::new();
        let mut timed_out = false;
        let mut disk_full = false;
        let mut next_disk_check = Instant::now() + limits::DISK_CHECK_EVERY;
        loop {
            let now = Instant::now();
            if watch_disk && now >= next_disk_check {
                next_disk_check = now + limits::DISK_CHECK_EVERY;
                if limits::disk_usage(dirs) > limits::BUILD_DISK {
                    disk_full = true;
                    // SAFETY: kill(2) on the process group we created.
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                    break;
                }
            }
            let mut left = deadline.saturating_duration_since(now);
            if watch_disk {
                left = left.min(next_disk_check.saturating_duration_since(now));
            }
            match rx.recv_timeout(left) {
                Ok(l) => {
                    line(&l);
                    tail.push(l);
                    if tail.len() > TAIL_LINES {
                        tail.remove(0);
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {}
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    timed_out = true;
                    // SAFETY: kill(2) on the process group we created.
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                    break;
                }
            }
        }
        let status = child
            .wait()
            .map_err(self.io(&format!("waiting for {script}")))?;
        for r in readers {
            let _ = r.join();
        }
        let tail = tail.join("\n");
        Ok(if disk_full {
            Outcome::DiskFull { tail }
        } else if timed_out {
            Outcome::TimedOut { tail }
        } else if !status.success() {
            Outcome::Failed {
                status: status.to_string(),
                tail,
            }
        } else {
            Outcome::Done
        })
    }

    /// Runs `bin/release` (if the buildpack has one) and returns its
    /// `default_process_types`.
    pub fn release(
        &self,
        iso: &Isolation,
        dirs: Dirs<'_>,
    ) -> Result<BTreeMap<String, String>, BuildpackError> {
        if !self.dir.join("bin/release").exists() {
            return Ok(BTreeMap::new());
        }
        let (mut cmd, _cgroup) = self.command(iso, Step::Release, dirs, None)?;
        let out = cmd
            .stdin(Stdio::null())
            .output()
            .map_err(self.io("running bin/release"))?;
        if !out.status.success() {
            return Err(BuildpackError::BadRelease {
                name: self.name.clone(),
                why: format!("bin/release failed with {}", out.status),
            });
        }
        release_yaml::default_process_types(&String::from_utf8_lossy(&out.stdout)).map_err(|why| {
            BuildpackError::BadRelease {
                name: self.name.clone(),
                why,
            }
        })
    }
}

/// The buildpacks an app is built with: the ones it names, or every
/// built-in in order for detection.
pub fn resolve(home_packs: &Path, named: &[String]) -> Result<Vec<Buildpack>, BuildpackError> {
    if named.is_empty() {
        return Ok(builtin::NAMES
            .iter()
            .map(|n| Buildpack {
                name: n.to_string(),
                dir: home_packs.join(n),
            })
            .collect());
    }
    named
        .iter()
        .map(|n| {
            let dir = if builtin::NAMES.contains(&n.as_str()) {
                home_packs.join(n)
            } else {
                PathBuf::from(n)
            };
            if dir.join("bin/compile").is_file() {
                Ok(Buildpack {
                    name: n.clone(),
                    dir,
                })
            } else {
                Err(BuildpackError::Unknown(n.clone()))
            }
        })
        .collect()
}

/// The first buildpack that detects the app, with the name it printed.
pub fn detect(
    packs: &[Buildpack],
    iso: &Isolation,
    dirs: Dirs<'_>,
) -> Result<(Buildpack, String), BuildpackError> {
    for p in packs {
        if let Some(name) = p.detect(iso, dirs)? {
            return Ok((p.clone(), name));
        }
    }
    Err(BuildpackError::NoneDetected)
}
