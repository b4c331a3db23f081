//! A dyno's files, laid out when it first asks for them.
//!
//! Every dyno owns a fresh read-write copy of its slug's files at `/app`
//! and an empty `/tmp`. Copying them is the dearest part of a start, and a
//! dyno that never touches the filesystem (most web processes) does not
//! need them at all. The copy is therefore made the first time the guest
//! asks for its preopened directories (`wasi:filesystem/preopens`), which
//! wasi-libc does before its first path operation: the dyno cannot tell
//! the difference, since the slug's files never change.
//!
//! With a disk quota the dyno's directory is a tmpfs of that size (see
//! [`super::disk`]): the slug's files are copied into it and count against
//! it, and the first `ENOSPC` a guest is told of is logged once. Either
//! way the directory is 0700, so no other user of the host reads a dyno's
//! files.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use wasmtime::component::Resource;
use wasmtime_wasi::filesystem::{Descriptor, Dir};
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::{FsPerms, OpenMode};

use super::DynoError;
use super::sandbox::DynoData;

/// One dyno's directory on the host: `root/app` and `root/tmp`. Shared by
/// every store of the dyno (a proxy dyno has one per request).
pub struct DynoFiles {
    /// The slug's files, unpacked; never written to.
    files: PathBuf,
    /// `dynos/APP/NAME`.
    root: PathBuf,
    /// Disk quota in bytes: `root` is then a tmpfs of this size.
    quota: Option<u64>,
    /// Tells the dyno's log that the quota is reached.
    on_full: Box<dyn Fn(u64) + Send + Sync>,
    full_reported: AtomicBool,
    laid_out: Mutex<Layout>,
}

impl std::fmt::Debug for DynoFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynoFiles")
            .field("root", &self.root)
            .field("quota", &self.quota)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
enum Layout {
    Pending,
    Done,
    Failed(String),
}

impl DynoFiles {
    /// `on_full` is called (once) with the quota when a guest is first told
    /// there is no space left.
    pub fn new(
        files: PathBuf,
        root: PathBuf,
        quota: Option<u64>,
        on_full: impl Fn(u64) + Send + Sync + 'static,
    ) -> Self {
        DynoFiles {
            files,
            root,
            quota,
            on_full: Box::new(on_full),
            full_reported: AtomicBool::new(false),
            laid_out: Mutex::new(Layout::Pending),
        }
    }

    /// Whether this dyno's files live on a quota'd tmpfs.
    pub(crate) fn has_quota(&self) -> bool {
        self.quota.is_some()
    }

    /// A guest's write failed with `ENOSPC`: with a quota, that is the
    /// quota reached (the tmpfs is the only filesystem the dyno writes).
    pub(crate) fn out_of_space(&self) {
        if let Some(quota) = self.quota
            && !self.full_reported.swap(true, Ordering::SeqCst)
        {
            (self.on_full)(quota);
        }
    }

    /// The dyno's root directory, opened, with its files laid out first if
    /// this is the first time.
    pub fn open_root(&self) -> Result<std::fs::File, DynoError> {
        self.lay_out()?;
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&self.root)
            .map_err(|source| DynoError::Io {
                what: format!("opening {}", self.root.display()),
                source,
            })
    }

    /// Lays the files out if this is the first time (a copy of the slug's
    /// files: it blocks, so the preopens call runs it on the blocking
    /// pool), or says why an earlier try failed.
    pub fn lay_out(&self) -> Result<(), DynoError> {
        let mut layout = self.laid_out.lock().expect("dyno files lock poisoned");
        match &*layout {
            Layout::Done => Ok(()),
            Layout::Failed(why) => Err(DynoError::Files(why.clone())),
            Layout::Pending => match lay_out(&self.files, &self.root, self.quota) {
                Ok(()) => {
                    *layout = Layout::Done;
                    Ok(())
                }
                Err(e) => {
                    let why = e.to_string();
                    *layout = Layout::Failed(why.clone());
                    Err(DynoError::Files(why))
                }
            },
        }
    }

    /// Whether the files were ever laid out.
    pub fn laid_out(&self) -> bool {
        matches!(
            *self.laid_out.lock().expect("dyno files lock poisoned"),
            Layout::Done | Layout::Failed(_)
        )
    }

    /// Removes whatever was laid out (the dyno stopped).
    pub fn remove(&self) -> Result<(), DynoError> {
        if self.quota.is_some() {
            unmount(&self.root)?;
        }
        remove_dir(&self.root)
    }
}

/// A fresh `/app` (a copy of the slug's files) and an empty `/tmp`,
/// replacing whatever an earlier run of this dyno left; on a tmpfs of
/// `quota` bytes if there is one.
fn lay_out(files: &Path, root: &Path, quota: Option<u64>) -> Result<(), DynoError> {
    let io = |what: String| move |source| DynoError::Io { what, source };
    if quota.is_some() {
        unmount(root)?;
    }
    remove_dir(root)?;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .map_err(io(format!("creating {}", root.display())))?;
    if let Some(bytes) = quota {
        super::disk::mount_quota(root, bytes)
            .map_err(io(format!("mounting the disk quota at {}", root.display())))?;
    }
    std::fs::create_dir(root.join("tmp"))
        .map_err(io(format!("creating {}/tmp", root.display())))?;
    let app = root.join("app");
    copy_tree(files, &app).map_err(|e| match quota {
        Some(bytes) if e.raw_os_error() == Some(libc::ENOSPC) => DynoError::Files(format!(
            "the app's files do not fit in the disk quota of {} MiB: raise it (--disk-mb) or \
             make the slug smaller",
            bytes >> 20
        )),
        _ => DynoError::Io {
            what: format!("copying the app's files to {}", app.display()),
            source: e,
        },
    })
}

fn unmount(dir: &Path) -> Result<(), DynoError> {
    super::disk::unmount(dir).map_err(|source| DynoError::Io {
        what: format!("unmounting the disk quota at {}", dir.display()),
        source,
    })
}

fn remove_dir(dir: &Path) -> Result<(), DynoError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(DynoError::Io {
            what: format!("removing {}", dir.display()),
            source,
        }),
    }
}

/// Copies a directory tree of regular files and directories.
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// `wasi:filesystem/preopens`: the dyno's one preopen, `/`, which holds
/// exactly `app/` and `tmp/`.
impl preopens::Host for DynoData {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        // The root is a descriptor too; with none left the guest sees no
        // preopens (its file operations then fail) rather than a trap.
        if self.fds.take().is_err() {
            return Ok(Vec::new());
        }
        let root = match self.files.open_root() {
            Ok(root) => root,
            Err(e) => {
                self.fds.give();
                return Err(e.into());
            }
        };
        let dir = Dir::new(
            root,
            FsPerms::ReadWrite,
            OpenMode::READ | OpenMode::WRITE,
            false,
        );
        let fd = self.table.push(Descriptor::Dir(dir))?;
        Ok(vec![(fd, "/".to_owned())])
    }
}
