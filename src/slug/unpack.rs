//! Unpacking a slug: the one place a tarball's contents reach the disk.
//!
//! The tar crate's own `unpack` is not used: every entry is read raw (no
//! GNU long-name or pax preprocessing done for us), its path checked to be
//! plain and relative, its type to be a regular file or a directory, and
//! each file is created with `create_new` under a destination that did not
//! exist before, into which no link is ever written. So nothing can land
//! outside it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use super::{SlugDir, SlugError, SlugId, Unpacked, io_err};

/// Longest path a GNU long-name entry may give (Linux's `PATH_MAX`).
const MAX_PATH_BYTES: u64 = 4096;

const ONLY_FILES_AND_DIRS: &str =
    "a slug holds only regular files and directories (no links or devices)";

impl SlugDir {
    /// Verifies a slug and unpacks it into `dest`, which is created and must
    /// not exist yet. On any error `dest` is removed again.
    pub fn unpack(&self, id: &SlugId, dest: &Path) -> Result<Unpacked, SlugError> {
        let mut file = self.open_verified(id)?;
        file.rewind()
            .map_err(io_err(format!("reading slug {id}")))?;
        std::fs::create_dir(dest).map_err(io_err(format!("creating {}", dest.display())))?;
        let result = self.unpack_into(file, dest);
        match &result {
            Ok(stats) => {
                tracing::debug!(slug = %id, files = stats.files, bytes = stats.bytes, "unpacked slug");
            }
            Err(_) => {
                let _ = std::fs::remove_dir_all(dest);
            }
        }
        result
    }

    fn unpack_into(&self, file: File, dest: &Path) -> Result<Unpacked, SlugError> {
        let zstd = zstd::Decoder::new(file).map_err(io_err("reading the slug"))?;
        let mut archive = tar::Archive::new(zstd);
        let entries = archive
            .entries()
            .map_err(io_err("reading the slug"))?
            .raw(true);
        let mut stats = Unpacked { files: 0, bytes: 0 };
        let mut count = 0u64;
        let mut long_name: Option<Vec<u8>> = None;
        for entry in entries {
            let mut entry = entry.map_err(io_err("reading the slug"))?;
            let ty = entry.header().entry_type();
            if ty.is_gnu_longname() {
                if long_name.is_some() {
                    return Err(bad("(long name)", "two long names for one entry"));
                }
                long_name = Some(read_long_name(&mut entry)?);
                continue;
            }
            if ty.is_pax_local_extensions() || ty.is_pax_global_extensions() || ty.is_gnu_longlink()
            {
                let shown = String::from_utf8_lossy(&entry.header().path_bytes()).into_owned();
                return Err(bad(
                    &shown,
                    "pax headers and long link names are not used in slugs",
                ));
            }
            count += 1;
            if count > self.limits.max_entries {
                return Err(SlugError::TooManyEntries {
                    limit: self.limits.max_entries,
                });
            }
            let raw = long_name
                .take()
                .unwrap_or_else(|| entry.header().path_bytes().into_owned());
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let rel = safe_path(&raw).ok_or_else(|| {
                bad(
                    &shown,
                    "only plain relative paths (no '/', '..' or '.' parts)",
                )
            })?;
            let target = dest.join(&rel);
            let size = entry.size();
            match ty {
                tar::EntryType::Directory if size == 0 => {
                    std::fs::create_dir_all(&target)
                        .map_err(io_err(format!("creating {}", target.display())))?;
                }
                tar::EntryType::Directory => {
                    return Err(bad(&shown, "a directory entry carries data"));
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    stats.bytes += size;
                    if stats.bytes > self.limits.max_bytes {
                        return Err(SlugError::TooBig {
                            size: stats.bytes,
                            limit: self.limits.max_bytes,
                        });
                    }
                    let executable = entry.header().mode().unwrap_or(0) & 0o111 != 0;
                    write_file(&mut entry, &target, size, executable, &shown)?;
                    stats.files += 1;
                }
                _ => return Err(bad(&shown, ONLY_FILES_AND_DIRS)),
            }
        }
        if long_name.is_some() {
            return Err(bad("(long name)", "the slug ends after a long name"));
        }
        Ok(stats)
    }
}

fn bad(path: &str, why: &'static str) -> SlugError {
    SlugError::BadEntry {
        path: path.to_owned(),
        why,
    }
}

/// The body of a GNU long-name entry: a path, NUL-terminated.
fn read_long_name(entry: &mut impl Read) -> Result<Vec<u8>, SlugError> {
    let mut name = Vec::new();
    entry
        .take(MAX_PATH_BYTES + 1)
        .read_to_end(&mut name)
        .map_err(io_err("reading the slug"))?;
    while name.last() == Some(&0) {
        name.pop();
    }
    if name.len() as u64 > MAX_PATH_BYTES {
        return Err(bad("(long name)", "a path longer than 4096 bytes"));
    }
    Ok(name)
}

/// Copies one file's `size` bytes to a new file at `target`.
fn write_file(
    entry: &mut impl Read,
    target: &Path,
    size: u64,
    executable: bool,
    shown: &str,
) -> Result<(), SlugError> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(io_err(format!("creating {}", parent.display())))?;
    }
    let mut out = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if executable { 0o755 } else { 0o644 })
        .open(target)
        .map_err(io_err(format!("creating {}", target.display())))?;
    let copied = io::copy(&mut entry.take(size), &mut out)
        .map_err(io_err(format!("writing {}", target.display())))?;
    if copied != size {
        return Err(bad(shown, "the tarball ends inside this file"));
    }
    Ok(())
}

/// A tar path as a plain relative path (only normal parts), or `None`.
fn safe_path(raw: &[u8]) -> Option<PathBuf> {
    let s = std::str::from_utf8(raw).ok()?;
    if s.starts_with('/') || s.contains('\0') {
        return None;
    }
    let mut out = PathBuf::new();
    for c in Path::new(s.trim_end_matches('/')).components() {
        match c {
            Component::Normal(part) => out.push(part),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}
