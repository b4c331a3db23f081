//! A dyno's files, laid out when it first asks for them.
//!
//! Every dyno owns a fresh read-write copy of its slug's files at `/app`
//! and an empty `/tmp`. Copying them is the dearest part of a start, and a
//! dyno that never touches the filesystem (most web processes) does not
//! need them at all. The copy is therefore made the first time the guest
//! asks for its preopened directories (`wasi:filesystem/preopens`), which
//! wasi-libc does before its first path operation: the dyno cannot tell
//! the difference, since the slug's files never change.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use wasmtime::component::Resource;
use wasmtime_wasi::filesystem::{Descriptor, Dir};
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::{FsPerms, OpenMode};

use super::DynoError;
use super::sandbox::DynoData;

/// One dyno's directory on the host: `root/app` and `root/tmp`. Shared by
/// every store of the dyno (a proxy dyno has one per request).
#[derive(Debug)]
pub struct DynoFiles {
    /// The slug's files, unpacked; never written to.
    files: PathBuf,
    /// `dynos/APP/NAME`.
    root: PathBuf,
    laid_out: Mutex<Layout>,
}

#[derive(Debug)]
enum Layout {
    Pending,
    Done,
    Failed(String),
}

impl DynoFiles {
    pub fn new(files: PathBuf, root: PathBuf) -> Self {
        DynoFiles {
            files,
            root,
            laid_out: Mutex::new(Layout::Pending),
        }
    }

    /// The dyno's root directory, opened, with its files laid out first if
    /// this is the first time.
    pub fn open_root(&self) -> Result<std::fs::File, DynoError> {
        let mut layout = self.laid_out.lock().expect("dyno files lock poisoned");
        match &*layout {
            Layout::Done => {}
            Layout::Failed(why) => return Err(DynoError::Files(why.clone())),
            Layout::Pending => match lay_out(&self.files, &self.root) {
                Ok(()) => *layout = Layout::Done,
                Err(e) => {
                    let why = e.to_string();
                    *layout = Layout::Failed(why.clone());
                    return Err(DynoError::Files(why));
                }
            },
        }
        std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY)
            .open(&self.root)
            .map_err(|source| DynoError::Io {
                what: format!("opening {}", self.root.display()),
                source,
            })
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
        remove_dir(&self.root)
    }
}

/// A fresh `/app` (a copy of the slug's files) and an empty `/tmp`,
/// replacing whatever an earlier run of this dyno left.
fn lay_out(files: &Path, root: &Path) -> Result<(), DynoError> {
    let io = |what: String| move |source| DynoError::Io { what, source };
    remove_dir(root)?;
    std::fs::create_dir_all(root.join("tmp"))
        .map_err(io(format!("creating {}", root.display())))?;
    let app = root.join("app");
    copy_tree(files, &app).map_err(io(format!("copying the app's files to {}", app.display())))
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
