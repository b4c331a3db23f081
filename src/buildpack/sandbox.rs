//! The build sandbox: every buildpack step (`bin/detect`, `bin/compile`,
//! `bin/release`) runs in a bubblewrap (`bwrap`) sandbox, because an app's
//! build runs the app's own code (a `build.rs`, any crate's build script,
//! npm lifecycle scripts) and must not get the daemon's powers.
//!
//! What a step sees, all of it (see [`Sandbox::argv`]):
//! - its own mount namespace on an empty root: the host's `/usr` (and the
//!   `/bin`, `/lib*`, `/sbin` links or dirs) read-only; of `/etc` only what
//!   name resolution and TLS need, plus a `passwd`/`group` naming the build
//!   user; `/proc` of its own pid namespace, a minimal `/dev`, a private
//!   size-limited `/tmp`;
//! - `/build` (the build dir) and `/cache` (that app's cache dir) writable,
//!   `/env` (ENV_DIR, the app's config) and `/buildpack` read-only, the Rust
//!   toolchain (rustc, cargo, the wasm32-wasip2 target) read-only at
//!   `/opt/rust`, the buildpack's shared tools (see [`super::tools`])
//!   read-only at `/tools`. Nothing else of `$WDYNO_HOME`: no API token, no ledger,
//!   no other app's cache, no other buildpack;
//! - the uid [`BUILD_UID`], a real unprivileged uid on the host (not a
//!   user-namespace alias of root), no capabilities, no new privileges;
//! - an environment made here from nothing: `PATH`, `HOME`, `LANG`,
//!   `CARGO_HOME` (in the app's cache: crates are downloaded per app);
//!   the app's config only through `/env`;
//! - its own pid, ipc and uts namespaces; the host's network only for
//!   `bin/compile` and `bin/tools` (registries: crates.io, npm), none for
//!   detect and release.
//!
//! `bin/tools`, which installs a buildpack's shared tools, runs in the same
//! sandbox with none of an app's dirs: only the dir it installs into,
//! writable at `/tools`.
//!
//! What a compile step can still reach through the shared network: every
//! TCP/UDP service on the host's loopback, and abstract unix sockets (they
//! live in the network namespace). The control API answers only with the
//! token, which the build cannot read; the router and dyno ports serve what
//! they serve to anyone. Other loopback services (a local database) are
//! reachable: closing that needs a network namespace with its own route out
//! (slirp4netns, pasta or veth with NAT), which this host does not offer.
//!
//! How: bwrap runs as root without a user namespace (so it can bind the
//! root-only toolchain dirs), keeps only `CAP_SETUID`/`CAP_SETGID`, and
//! runs `setpriv` inside, which becomes [`BUILD_UID`] and drops every
//! capability before the buildpack's script starts. A daemon that is not
//! root runs bwrap in a user namespace instead, as its own uid.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use std::os::unix::fs::PermissionsExt;

use super::limits::{self, BUILD_TMP, BuildCgroup, Cgroups};

/// The host uid (and gid) every sandboxed build runs as: in Debian's range
/// for system users made on demand, so no login account owns it.
pub const BUILD_UID: u32 = 64_000;

/// Where the build sees its dirs.
pub const BUILD: &str = "/build";
pub const CACHE: &str = "/cache";
pub const ENV: &str = "/env";
pub const PACK: &str = "/buildpack";
pub const RUST: &str = "/opt/rust";
pub const TOOLS: &str = "/tools";
/// The variable that tells `bin/compile` where its shared tools are.
pub const TOOLS_VAR: &str = "WDYNO_TOOLS";

/// The `/etc` files a build may read: DNS, hosts, TLS roots, time zone,
/// the dynamic loader's cache, and Debian's alternatives (`/usr/bin/cc` is
/// a link through `/etc/alternatives`).
const ETC: &[&str] = &[
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/gai.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/localtime",
];

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error(
        "builds run in a bubblewrap sandbox, and `bwrap` is not on the daemon's PATH: install bubblewrap (Debian: apt-get install bubblewrap) and restart the daemon, or start it with --unsafe-builds to run buildpacks unsandboxed as the daemon's user"
    )]
    NoBwrap,
    #[error(
        "builds run in a bubblewrap sandbox, which needs `setpriv` (util-linux) on the daemon's PATH to drop root: install util-linux, or start the daemon with --unsafe-builds"
    )]
    NoSetpriv,
    #[error("preparing the build sandbox: {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// How buildpack steps run.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// In the sandbox.
    Sandboxed(Arc<Sandbox>),
    /// As the daemon itself: `wdyno local`, or `--unsafe-builds`.
    Unsandboxed,
    /// The daemon wants a sandbox and has none: every build fails with this.
    Unavailable(Arc<SandboxError>),
}

impl Isolation {
    /// A sandbox if this host can make one, else why not.
    pub fn sandboxed(home: &Path) -> Isolation {
        match Sandbox::new(home) {
            Ok(s) => Isolation::Sandboxed(Arc::new(s)),
            Err(e) => {
                tracing::warn!("{e}");
                Isolation::Unavailable(Arc::new(e))
            }
        }
    }
}

/// The dirs of one build, as the host names them.
#[derive(Debug, Clone, Copy)]
pub struct Dirs<'a> {
    pub build: &'a Path,
    pub cache: &'a Path,
    pub env: &'a Path,
}

/// A buildpack step: only `compile` and `tools` get the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Detect,
    Compile,
    Release,
    /// Installs the buildpack's shared tools ([`super::tools`]).
    Tools,
}

impl Step {
    /// The buildpack's script for this step.
    pub fn script(self) -> &'static str {
        match self {
            Step::Detect => "bin/detect",
            Step::Compile => "bin/compile",
            Step::Release => "bin/release",
            Step::Tools => "bin/tools",
        }
    }
}

/// What the sandbox is made from, found once at start.
#[derive(Debug)]
pub struct Sandbox {
    bwrap: PathBuf,
    /// `Some` when the daemon is root: drops to [`BUILD_UID`] inside.
    setpriv: Option<PathBuf>,
    /// The dir with the `passwd` and `group` the build sees.
    etc: PathBuf,
    /// The Rust toolchain's sysroot (its `bin/` has cargo and rustc).
    rust: Option<PathBuf>,
    cgroups: Option<Cgroups>,
}

impl Sandbox {
    /// Finds bwrap, setpriv and the Rust toolchain, makes sure the
    /// wasm32-wasip2 target is installed (builds cannot add it: the
    /// toolchain is read-only to them) and writes the build's `passwd`.
    pub fn new(home: &Path) -> Result<Sandbox, SandboxError> {
        let bwrap = on_path("bwrap").ok_or(SandboxError::NoBwrap)?;
        // SAFETY: geteuid(2) has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let setpriv = if root {
            Some(on_path("setpriv").ok_or(SandboxError::NoSetpriv)?)
        } else {
            None
        };
        let etc = home.join("sandbox");
        let io = |what: &str| {
            let what = what.to_owned();
            move |source| SandboxError::Io { what, source }
        };
        std::fs::create_dir_all(&etc).map_err(io("creating the sandbox's /etc"))?;
        let uid = if root {
            BUILD_UID
        } else {
            // SAFETY: getuid(2) has no preconditions.
            unsafe { libc::getuid() }
        };
        std::fs::write(
            etc.join("passwd"),
            format!(
                "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\nbuild:x:{uid}:{uid}:wdyno build:/tmp:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        )
        .map_err(io("writing the sandbox's /etc/passwd"))?;
        std::fs::write(
            etc.join("group"),
            format!("root:x:0:\nbuild:x:{uid}:\nnogroup:x:65534:\n"),
        )
        .map_err(io("writing the sandbox's /etc/group"))?;
        // The daemon's umask is 077; these two are what every build reads.
        for f in ["passwd", "group"] {
            std::fs::set_permissions(etc.join(f), std::fs::Permissions::from_mode(0o644))
                .map_err(io("making the sandbox's /etc readable"))?;
        }
        let rust = rust_sysroot();
        let cgroups = Cgroups::find();
        match &cgroups {
            Some(c) => tracing::info!("builds are sandboxed with bwrap, limited by {c:?}"),
            None => tracing::warn!(
                "builds are sandboxed with bwrap, but no cgroup can be made for them here: they have no memory limit and share one process limit"
            ),
        }
        Ok(Sandbox {
            bwrap,
            setpriv,
            etc,
            rust,
            cgroups,
        })
    }

    /// The uid builds run as on the host: their writable dirs belong to it.
    pub fn uid(&self) -> u32 {
        if self.setpriv.is_some() {
            BUILD_UID
        } else {
            // SAFETY: getuid(2) has no preconditions.
            unsafe { libc::getuid() }
        }
    }

    /// bwrap's arguments for `step` of the buildpack in `pack` (never
    /// [`Step::Tools`]: see [`Sandbox::tools_argv`]), with its shared
    /// `tools` when it has them.
    pub fn argv(
        &self,
        step: Step,
        pack: &Path,
        dirs: Dirs<'_>,
        tools: Option<&Path>,
    ) -> Vec<OsString> {
        let mut a = self.base(step, pack);
        a.push("--bind").push(dirs.build).push(BUILD);
        a.push("--bind").push(dirs.cache).push(CACHE);
        a.push("--ro-bind").push(dirs.env).push(ENV);
        let mut env = vec![];
        if let Some(t) = tools {
            a.push("--ro-bind").push(t).push(TOOLS);
            env.push((TOOLS_VAR, TOOLS));
        }
        let mut argv = vec![BUILD];
        if step == Step::Compile {
            argv.extend([CACHE, ENV]);
        }
        self.exec(a, step, BUILD, &env, &argv)
    }

    /// bwrap's arguments for `bin/tools` of the buildpack in `pack`,
    /// installing into `stage`: no app's dirs.
    pub fn tools_argv(&self, pack: &Path, stage: &Path) -> Vec<OsString> {
        let mut a = self.base(Step::Tools, pack);
        a.push("--bind").push(stage).push(TOOLS);
        self.exec(a, Step::Tools, TOOLS, &[], &[TOOLS])
    }

    /// What every step sees: namespaces, the host's `/usr`, `/etc` in part,
    /// `/proc`, `/dev`, `/tmp`, the buildpack.
    fn base(&self, step: Step, pack: &Path) -> Args {
        let mut a = Args::default();
        a.add(&["--die-with-parent", "--new-session"]);
        a.add(&["--unshare-pid", "--unshare-ipc", "--unshare-uts"]);
        a.add(&["--unshare-cgroup-try", "--hostname", "wdyno-build"]);
        if !matches!(step, Step::Compile | Step::Tools) {
            a.add(&["--unshare-net"]);
        }
        if self.setpriv.is_none() {
            a.add(&["--unshare-user", "--disable-userns"]);
        }
        a.add(&["--ro-bind", "/usr", "/usr"]);
        for top in ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"] {
            match std::fs::read_link(top) {
                Ok(target) => a.push("--symlink").push(target).push(top),
                Err(_) if Path::new(top).is_dir() => a.push("--ro-bind").push(top).push(top),
                Err(_) => &mut a,
            };
        }
        a.add(&["--proc", "/proc", "--dev", "/dev"]);
        a.add(&["--perms", "1777", "--size"])
            .push(BUILD_TMP.to_string())
            .add(&["--tmpfs", "/tmp"]);
        a.add(&["--dir", "/etc"]);
        for f in ETC {
            a.add(&["--ro-bind-try", f, f]);
        }
        for f in ["passwd", "group"] {
            a.push("--ro-bind")
                .push(self.etc.join(f))
                .push(format!("/etc/{f}"));
        }
        a.push("--ro-bind").push(pack).push(PACK);
        a
    }

    /// Ends `a` with the toolchain, the environment (and `env`), the drop
    /// to the build uid and `step`'s script run in `dir` with `args`.
    fn exec(
        &self,
        mut a: Args,
        step: Step,
        dir: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Vec<OsString> {
        let mut path = String::from("/usr/local/bin:/usr/bin:/bin");
        if let Some(rust) = &self.rust {
            a.add(&["--dir", "/opt"])
                .push("--ro-bind")
                .push(rust)
                .push(RUST);
            path = format!("{RUST}/bin:{path}");
        }
        a.add(&["--chdir", dir, "--clearenv"]);
        for (k, v) in [
            ("PATH", path.as_str()),
            ("HOME", "/tmp"),
            ("LANG", "C.UTF-8"),
            ("USER", "build"),
            ("CARGO_HOME", "/cache/cargo-home"),
        ]
        .into_iter()
        .chain(env.iter().copied())
        {
            a.add(&["--setenv", k, v]);
        }
        if let Some(setpriv) = &self.setpriv {
            let uid = BUILD_UID.to_string();
            a.add(&["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID", "--"]);
            a.push(setpriv).add(&["--reuid", &uid, "--regid", &uid]);
            a.add(&["--clear-groups", "--inh-caps=-all", "--bounding-set=-all"]);
            a.add(&["--no-new-privs"]);
        }
        a.add(&["--"]).push(Path::new(PACK).join(step.script()));
        a.add(args);
        a.0
    }

    /// The command for `step`, ready to spawn, and the cgroup it joins
    /// (dropping it kills whatever is left of the build). Gives the
    /// writable dirs to the build uid first.
    pub fn command(
        &self,
        step: Step,
        pack: &Path,
        dirs: Dirs<'_>,
        tools: Option<&Path>,
    ) -> std::io::Result<(Command, Option<BuildCgroup>)> {
        if self.setpriv.is_some() {
            limits::chown_tree(dirs.build, BUILD_UID)?;
            limits::chown_tree(dirs.cache, BUILD_UID)?;
            // Read-only to the build by its mount, but written under the
            // daemon's umask 077: the build uid must own it to read it.
            limits::chown_tree(dirs.env, BUILD_UID)?;
        }
        self.spawnable(self.argv(step, pack, dirs, tools))
    }

    /// The command for `bin/tools` installing into `stage` (given to the
    /// build uid first), and the cgroup it joins.
    pub fn tools_command(
        &self,
        pack: &Path,
        stage: &Path,
    ) -> std::io::Result<(Command, Option<BuildCgroup>)> {
        if self.setpriv.is_some() {
            limits::chown_tree(stage, BUILD_UID)?;
        }
        self.spawnable(self.tools_argv(pack, stage))
    }

    fn spawnable(&self, argv: Vec<OsString>) -> std::io::Result<(Command, Option<BuildCgroup>)> {
        use std::os::unix::process::CommandExt;
        let cgroup = match &self.cgroups {
            Some(c) => {
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                Some(c.create(&format!("wdyno-build-{}-{n}", std::process::id()))?)
            }
            None => None,
        };
        let procs = cgroup.as_ref().map(|c| c.procs_files()).unwrap_or_default();
        let mut cmd = Command::new(&self.bwrap);
        cmd.args(argv).env_clear();
        // SAFETY: join_in_child makes only async-signal-safe calls.
        unsafe { cmd.pre_exec(move || limits::join_in_child(&procs)) };
        Ok((cmd, cgroup))
    }
}

/// bwrap's argv, built up.
#[derive(Default)]
struct Args(Vec<OsString>);

impl Args {
    fn push(&mut self, s: impl Into<OsString>) -> &mut Self {
        self.0.push(s.into());
        self
    }
    fn add(&mut self, all: &[&str]) -> &mut Self {
        self.0.extend(all.iter().map(OsString::from));
        self
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The active Rust toolchain's sysroot, with wasm32-wasip2 added when it
/// lacks it (here, once, outside any build).
fn rust_sysroot() -> Option<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    if !out.status.success() {
        tracing::warn!("no Rust toolchain (rustc --print sysroot failed): Rust apps cannot build");
        return None;
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !sysroot.join("lib/rustlib/wasm32-wasip2").is_dir() {
        tracing::info!("adding the wasm32-wasip2 target for builds");
        let mut rustup = Command::new("rustup");
        rustup.args(["target", "add", "wasm32-wasip2"]);
        // The toolchain is shared read-only with builds, which run as
        // another uid: not under the daemon's umask 077.
        // SAFETY: umask is async-signal-safe and touches no memory.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut rustup, || {
                libc::umask(0o022);
                Ok(())
            });
        }
        let added = rustup.output();
        if !added.is_ok_and(|o| o.status.success()) {
            tracing::warn!(
                "could not add the wasm32-wasip2 target: run `rustup target add wasm32-wasip2` as the daemon's user; Rust apps fail to build until then"
            );
        }
    }
    Some(sysroot)
}

#[cfg(test)]
#[path = "sandbox_tests.rs"]
mod tests;
