//! What one sandboxed build may use: memory, processes, file sizes, disk.
//!
//! Checked on the machine this was written on (cgroup v1 and v2 mounted
//! side by side, the v2 tree with no memory controller): the kernel's own
//! accounting is the only memory limit that holds for a tree of processes,
//! so a build gets a cgroup of its own when the host lets us make one —
//! v2 when the daemon's cgroup hands `memory` and `pids` to its children,
//! else the v1 `memory` and `pids` hierarchies when they are writable. Where
//! neither is, builds run without a memory or per-build process limit and
//! the daemon says so at start. Always, whatever the cgroups:
//! - rlimits set before the sandbox starts: `RLIMIT_NPROC` (counted per uid,
//!   so it bounds all builds together: every build runs as [`BUILD_UID`]),
//!   `RLIMIT_FSIZE` (no single file past [`BUILD_FILE_SIZE`]), no core dumps;
//! - `/tmp` is a tmpfs of [`BUILD_TMP`] bytes (its pages count as the
//!   build's memory in a cgroup);
//! - the build and cache dirs are measured every [`DISK_CHECK_EVERY`] and
//!   the build is stopped past [`BUILD_DISK`]: no quota filesystem is
//!   available here, so the bound is the limit plus what a build writes in
//!   one interval.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Memory of a whole build (every process, and its `/tmp`): rustc on a
/// large crate (wasmtime) peaks near 2 GiB, componentize-js near 1 GiB.
pub const BUILD_MEMORY: u64 = 4 << 30;
/// Processes of one build: cargo runs a rustc per core and build scripts,
/// npm a shell per lifecycle script; a fork bomb stops here.
pub const BUILD_PIDS: u64 = 512;
/// Processes of every build together, by uid (`RLIMIT_NPROC`), for hosts
/// where no cgroup can hold a build.
pub const BUILD_NPROC: u64 = 1024;
/// The largest file a build may write: far above any rlib or component.
pub const BUILD_FILE_SIZE: u64 = 2 << 30;
/// The build's private `/tmp`.
pub const BUILD_TMP: u64 = 1 << 30;
/// The build dir and the app's cache dir together (a Rust target dir of a
/// wasmtime-sized app is a few GiB).
pub const BUILD_DISK: u64 = 8 << 30;
/// How often the build and cache dirs are measured.
pub const DISK_CHECK_EVERY: Duration = Duration::from_secs(2);

/// Where builds' cgroups are made, found once at start.
#[derive(Debug, Clone)]
pub enum Cgroups {
    /// A cgroup v2 dir whose children get `memory` and `pids`.
    V2(PathBuf),
    /// The v1 `memory` and `pids` dirs to make children in.
    V1 { memory: PathBuf, pids: PathBuf },
}

impl Cgroups {
    /// The cgroup tree this host lets the daemon use for builds, if any.
    pub fn find() -> Option<Cgroups> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let path_of = |want: &str| {
            own.lines().find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctl, path) = (parts.next()?, parts.next()?, parts.next()?);
                ctl.split(',')
                    .any(|c| c == want)
                    .then(|| path.trim_start_matches('/').to_owned())
            })
        };
        let v2_root = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            Some(PathBuf::from("/sys/fs/cgroup"))
        } else {
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        };
        if let (Some(root), Some(rel)) = (v2_root, path_of("")) {
            let dir = root.join(rel);
            if probe(&Cgroups::V2(dir.clone())) {
                return Some(Cgroups::V2(dir));
            }
        }
        let v1 = Cgroups::V1 {
            memory: Path::new("/sys/fs/cgroup/memory").join(path_of("memory")?),
            pids: Path::new("/sys/fs/cgroup/pids").join(path_of("pids")?),
        };
        probe(&v1).then_some(v1)
    }

    /// Makes the cgroup of one build, its limits set.
    pub fn create(&self, name: &str) -> std::io::Result<BuildCgroup> {
        let dirs = match self {
            Cgroups::V2(dir) => vec![dir.join(name)],
            Cgroups::V1 { memory, pids } => vec![memory.join(name), pids.join(name)],
        };
        let cg = BuildCgroup { dirs };
        for d in &cg.dirs {
            std::fs::create_dir(d)?;
        }
        match self {
            Cgroups::V2(_) => {
                let d = &cg.dirs[0];
                std::fs::write(d.join("memory.max"), BUILD_MEMORY.to_string())?;
                std::fs::write(d.join("memory.swap.max"), "0").ok();
                std::fs::write(d.join("pids.max"), BUILD_PIDS.to_string())?;
            }
            Cgroups::V1 { .. } => {
                std::fs::write(
                    cg.dirs[0].join("memory.limit_in_bytes"),
                    BUILD_MEMORY.to_string(),
                )?;
                std::fs::write(cg.dirs[1].join("pids.max"), BUILD_PIDS.to_string())?;
            }
        }
        Ok(cg)
    }
}

/// Whether a build cgroup can be made here, with its limits.
fn probe(c: &Cgroups) -> bool {
    let name = format!("wdyno-probe-{}", std::process::id());
    if let Cgroups::V2(dir) = c {
        // Children get the controllers only if this cgroup passes them on;
        // asking fails (EBUSY) when it also holds processes, as it usually does.
        let enabled =
            std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
        if !(enabled.contains("memory") && enabled.contains("pids")) {
            let _ = std::fs::write(dir.join("cgroup.subtree_control"), "+memory +pids");
        }
    }
    match c.create(&name) {
        Ok(cg) => {
            drop(cg);
            true
        }
        Err(e) => {
            tracing::debug!("no build cgroup in {c:?}: {e}");
            if let Cgroups::V2(d) = c {
                let _ = std::fs::remove_dir(d.join(&name));
            }
            false
        }
    }
}

/// One build's cgroup dirs; killed and removed when dropped.
#[derive(Debug)]
pub struct BuildCgroup {
    dirs: Vec<PathBuf>,
}

impl BuildCgroup {
    /// `cgroup.procs` of each dir, ready for [`join_in_child`].
    pub fn procs_files(&self) -> Vec<CString> {
        self.dirs
            .iter()
            .filter_map(|d| {
                CString::new(d.join("cgroup.procs").as_os_str().as_encoded_bytes()).ok()
            })
            .collect()
    }
}

impl Drop for BuildCgroup {
    fn drop(&mut self) {
        for d in &self.dirs {
            // Whatever escaped the process-group kill goes now.
            if std::fs::write(d.join("cgroup.kill"), "1").is_err()
                && let Ok(pids) = std::fs::read_to_string(d.join("cgroup.procs"))
            {
                for pid in pids.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
                    // SAFETY: kill(2) on a process of this build's cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
        for d in &self.dirs {
            // A cgroup is removable once its last process is reaped, which
            // can trail the kill by a moment.
            for _ in 0..100 {
                if std::fs::remove_dir(d).is_ok() || !d.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Runs between fork and exec of the sandbox: joins the build's cgroups
/// and sets its rlimits. Only async-signal-safe calls (open, write, close,
/// setrlimit).
pub fn join_in_child(procs: &[CString]) -> std::io::Result<()> {
    for f in procs {
        // SAFETY: a valid NUL-terminated path; plain syscalls.
        unsafe {
            let fd = libc::open(f.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let ok = libc::write(fd, b"0\n".as_ptr().cast(), 2) == 2;
            libc::close(fd);
            if !ok {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    for (res, value) in [
        (libc::RLIMIT_NPROC, BUILD_NPROC),
        (libc::RLIMIT_FSIZE, BUILD_FILE_SIZE),
        (libc::RLIMIT_CORE, 0),
    ] {
        let lim = libc::rlimit {
            rlim_cur: value,
            rlim_max: value,
        };
        // SAFETY: setrlimit(2) with a valid struct.
        if unsafe { libc::setrlimit(res, &lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Bytes the files under `dirs` take on disk, links not followed. Walked
/// with a list, not recursion: a build controls how deep its tree is.
pub fn disk_usage(dirs: &[&Path]) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut todo: Vec<PathBuf> = dirs.iter().map(|d| d.to_path_buf()).collect();
    let mut total = 0u64;
    while let Some(dir) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(md) = e.metadata() else { continue };
            total += md.blocks() * 512;
            if md.is_dir() {
                todo.push(e.path());
            }
        }
    }
    total
}

/// Gives a tree to `uid` (the build's writable dirs), changing only what
/// another owner left: after the first build this is a walk with no writes.
pub fn chown_tree(root: &Path, uid: u32) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let md = std::fs::symlink_metadata(&p)?;
        if md.uid() != uid || md.gid() != uid {
            std::os::unix::fs::lchown(&p, Some(uid), Some(uid))?;
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&p)? {
                todo.push(e?.path());
            }
        }
    }
    Ok(())
}
