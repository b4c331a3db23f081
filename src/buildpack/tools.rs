//! A buildpack's tools, installed once per machine instead of into every
//! app's cache (the JS buildpack's are ~530 MB).
//!
//! wdyno's one addition to the classic buildpack API: a buildpack with a
//! `bin/tools` script gets `bin/tools DIR` run once, before the first build
//! that needs it, into a dir shared by every app's build and keyed by the
//! hash of what installs it (`bin/tools` and the buildpack's `tools/`). Its
//! `bin/compile` then sees that dir read-only, named by `WDYNO_TOOLS`
//! (sandboxed builds find it at [`TOOLS`](super::sandbox::TOOLS)).
//!
//! Why sharing is safe: the install runs the buildpack's own script on its
//! pinned lockfile, sandboxed like a build but with no app source, config or
//! cache in sight; once it succeeds the dir is given to the daemon's uid,
//! made unwritable to anyone else, and renamed into place, so no app's build
//! can change what the next one runs. A failed install leaves nothing behind
//! and is tried again by the next build.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::sandbox::{Isolation, Step};
use super::{Buildpack, BuildpackError, Outcome};

/// Where the shared tools live, beside the per-app caches (app names start
/// with a letter, so no app's cache is called this).
const DIR: &str = ".tools";

/// How long one install may take: downloads are large, but it happens once.
pub const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The tools dir of `pack` for builds whose cache is `cache`, installed now
/// if it is not yet; `None` if the buildpack has no `bin/tools`.
pub fn ensure(
    pack: &Buildpack,
    iso: &Isolation,
    cache: &Path,
    line: &mut dyn FnMut(&str),
) -> Result<Option<PathBuf>, BuildpackError> {
    if !pack.dir.join(Step::Tools.script()).is_file() {
        return Ok(None);
    }
    let root = cache.parent().unwrap_or(cache).join(DIR);
    let name = format!(
        "{}-{}",
        dir_name(&pack.name),
        key(&pack.dir).map_err(pack.io("hashing tools/"))?
    );
    let dir = root.join(&name);
    if installed(&dir) {
        return Ok(Some(dir));
    }
    std::fs::create_dir_all(&root).map_err(pack.io("creating the shared tools dir"))?;
    // One install at a time, across builds and daemons sharing this cache.
    let lock = std::fs::File::create(root.join(format!("{name}.lock")))
        .and_then(|f| f.lock().map(|()| f))
        .map_err(pack.io("locking the shared tools dir"))?;
    if installed(&dir) {
        return Ok(Some(dir));
    }
    let stage = root.join(format!("{name}.installing"));
    let _ = std::fs::remove_dir_all(&stage);
    std::fs::create_dir(&stage).map_err(pack.io("creating the tools dir"))?;
    let ran = pack.install_tools(iso, &stage, line);
    let result = ran.and_then(|()| {
        if !installed(&stage) {
            return Err(BuildpackError::ToolsFailed {
                name: pack.name.clone(),
                status: "success, but without writing .installed".into(),
                tail: String::new(),
            });
        }
        seal(&stage).map_err(pack.io("sealing the tools dir"))?;
        std::fs::rename(&stage, &dir).map_err(pack.io("moving the tools dir into place"))
    });
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&stage);
    }
    drop(lock);
    result.map(|()| Some(dir))
}

fn installed(dir: &Path) -> bool {
    dir.join(".installed").is_file()
}

/// A buildpack name (a built-in's, or a path) as one path component.
fn dir_name(name: &str) -> String {
    let tail = name.rsplit('/').find(|s| !s.is_empty()).unwrap_or("pack");
    tail.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The hash of what installs the tools: `bin/tools` and every file of
/// `tools/`, names and contents, in name order.
fn key(pack: &Path) -> std::io::Result<String> {
    let mut files = vec![PathBuf::from(Step::Tools.script())];
    if let Ok(entries) = std::fs::read_dir(pack.join("tools")) {
        for e in entries {
            let e = e?;
            if e.file_type()?.is_file() {
                files.push(Path::new("tools").join(e.file_name()));
            }
        }
    }
    files.sort();
    let mut h = Sha256::new();
    for f in files {
        let text = std::fs::read(pack.join(&f))?;
        h.update(f.as_os_str().as_encoded_bytes());
        h.update((text.len() as u64).to_le_bytes());
        h.update(&text);
    }
    Ok(hex::encode(&h.finalize()[..8]))
}

/// Gives the tree to the daemon's uid and takes away everyone else's write
/// permission; what anyone could read or run stays so.
fn seal(root: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // SAFETY: geteuid(2) and getegid(2) have no preconditions.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let md = std::fs::symlink_metadata(&p)?;
        if md.uid() != uid || md.gid() != gid {
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid))?;
        }
        if md.file_type().is_symlink() {
            continue;
        }
        let mode = md.mode() & 0o7777;
        let exec = if md.is_dir() || mode & 0o111 != 0 {
            0o111
        } else {
            0
        };
        let sealed = (mode & !0o7022) | 0o444 | exec;
        if sealed != mode {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(sealed))?;
        }
        if md.is_dir() {
            for e in std::fs::read_dir(&p)? {
                todo.push(e?.path());
            }
        }
    }
    Ok(())
}

impl Buildpack {
    /// Runs `bin/tools STAGE` as `iso` says, its output handed to `line`.
    fn install_tools(
        &self,
        iso: &Isolation,
        stage: &Path,
        line: &mut dyn FnMut(&str),
    ) -> Result<(), BuildpackError> {
        let (cmd, _cgroup) = match iso {
            Isolation::Sandboxed(s) => s
                .tools_command(&self.dir, stage)
                .map_err(self.io("preparing the build sandbox"))?,
            Isolation::Unsandboxed => {
                let mut cmd = std::process::Command::new(self.dir.join(Step::Tools.script()));
                cmd.arg(stage);
                (cmd, None)
            }
            Isolation::Unavailable(e) => return Err(BuildpackError::NoSandbox(e.clone())),
        };
        let watch_disk = matches!(iso, Isolation::Sandboxed(_));
        let failed = |status: String, tail: String| BuildpackError::ToolsFailed {
            name: self.name.clone(),
            status,
            tail,
        };
        match self.stream(
            cmd,
            "bin/tools",
            &[stage],
            watch_disk,
            INSTALL_TIMEOUT,
            line,
        )? {
            Outcome::Done => Ok(()),
            Outcome::Failed { status, tail } => Err(failed(status, tail)),
            Outcome::TimedOut { tail } => {
                Err(failed(format!("no end within {INSTALL_TIMEOUT:?}"), tail))
            }
            Outcome::DiskFull { tail } => Err(failed(
                format!("more than {} GiB written", super::limits::BUILD_DISK >> 30),
                tail,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_follows_what_installs_the_tools() {
        let pack = tempfile::tempdir().unwrap();
        let p = pack.path();
        std::fs::create_dir_all(p.join("bin")).unwrap();
        std::fs::create_dir_all(p.join("tools")).unwrap();
        std::fs::write(p.join("bin/tools"), "#!/bin/sh\n").unwrap();
        std::fs::write(p.join("tools/package-lock.json"), "{}").unwrap();
        let first = key(p).unwrap();
        assert_eq!(first.len(), 16);
        assert_eq!(key(p).unwrap(), first);
        std::fs::write(p.join("tools/package-lock.json"), "{ }").unwrap();
        let second = key(p).unwrap();
        assert_ne!(second, first);
        std::fs::write(p.join("bin/tools"), "#!/bin/bash\n").unwrap();
        assert_ne!(key(p).unwrap(), second);
    }

    #[test]
    fn a_tools_dir_is_named_by_one_path_component() {
        assert_eq!(dir_name("js"), "js");
        assert_eq!(dir_name("/srv/packs/my pack/"), "my_pack");
    }

    #[test]
    fn a_sealed_tree_is_readable_by_all_and_writable_by_the_daemon_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("t");
        std::fs::create_dir_all(d.join("bin")).unwrap();
        std::fs::write(d.join("bin/tool"), "x").unwrap();
        std::fs::write(d.join("data"), "x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        std::fs::set_permissions(d.join("bin/tool"), std::fs::Permissions::from_mode(0o777))
            .unwrap();
        std::fs::set_permissions(d.join("data"), std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(d.join("bin"), std::fs::Permissions::from_mode(0o2777)).unwrap();
        seal(&d).unwrap();
        assert_eq!(mode(&d.join("bin/tool")), 0o755);
        assert_eq!(mode(&d.join("data")), 0o644);
        assert_eq!(mode(&d.join("bin")), 0o755);
    }
}
