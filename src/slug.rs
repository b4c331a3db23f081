//! Slugs: a built app as one compressed tarball (tar + zstd), named by the
//! sha256 of its bytes, in `slugs/`.
//!
//! Packing is reproducible (sorted entries, zeroed times and owners) and
//! durable (temp file, fsync, rename, fsync of the dir) so a release is never
//! written before its slug. Unpacking trusts nothing: the digest is checked
//! first, then every entry must be a regular file or directory at a plain
//! relative path, within the entry-count and size limits; nothing is ever
//! written outside the destination.

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use sha2::{Digest, Sha256};

/// Largest unpacked slug (Heroku's limit).
pub const DEFAULT_MAX_BYTES: u64 = 500 << 20;
/// Most entries (files and directories) in a slug.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
const SUFFIX: &str = ".tar.zst";

/// A slug's sha256, as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct SlugId(String);

impl SlugId {
    pub fn parse(s: &str) -> Result<Self, SlugError> {
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(SlugId(s.to_owned()))
        } else {
            Err(SlugError::BadId(s.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 7 digits, as git shows commits.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

impl fmt::Display for SlugId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for SlugId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        SlugId::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SlugError {
    #[error("{0:?} is not a slug id (64 hex digits of sha256)")]
    BadId(String),
    #[error("slug {0} does not exist")]
    Missing(SlugId),
    #[error("slug {expected} is corrupt: its bytes hash to {actual}; redeploy to rebuild it")]
    DigestMismatch { expected: SlugId, actual: String },
    #[error("slug entry {path:?} is refused: {why}")]
    BadEntry { path: String, why: &'static str },
    #[error(
        "the app is {size} bytes unpacked, over the slug limit of {limit} bytes: remove build artefacts or big assets"
    )]
    TooBig { size: u64, limit: u64 },
    #[error("the app has more than {limit} files and directories, over the slug limit")]
    TooManyEntries { limit: u64 },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> SlugError {
    let what = what.into();
    move |source| SlugError::Io { what, source }
}

/// Limits on what a slug may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: DEFAULT_MAX_BYTES,
            max_entries: DEFAULT_MAX_ENTRIES,
        }
    }
}

/// What an unpack wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
}

/// The `slugs/` directory.
#[derive(Debug, Clone)]
pub struct SlugStore {
    dir: PathBuf,
    limits: Limits,
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl SlugStore {
    pub fn open(dir: impl Into<PathBuf>, limits: Limits) -> Result<Self, SlugError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        Ok(SlugStore { dir, limits })
    }

    pub fn path(&self, id: &SlugId) -> PathBuf {
        self.dir.join(format!("{id}{SUFFIX}"))
    }

    pub fn exists(&self, id: &SlugId) -> bool {
        self.path(id).is_file()
    }

    /// Packs the files of `src` into a slug and returns its id.
    pub fn pack(&self, src: &Path) -> Result<SlugId, SlugError> {
        let mut entries = Vec::new();
        let mut size = 0u64;
        self.collect(src, src, &mut entries, &mut size)?;
        let tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io_err(format!(
            "creating a temp file in {}",
            self.dir.display()
        )))?;
        let hashing = Hashing {
            inner: tmp.as_file(),
            hash: Sha256::new(),
        };
        let zstd = zstd::Encoder::new(hashing, 3).map_err(io_err("starting zstd"))?;
        let mut tar = tar::Builder::new(zstd);
        for (rel, is_dir) in &entries {
            let full = src.join(rel);
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            let what = format!("packing {}", full.display());
            if *is_dir {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                tar.append_data(&mut header, rel, io::empty())
                    .map_err(io_err(what))?;
            } else {
                let file = File::open(&full).map_err(io_err(what.clone()))?;
                let meta = file.metadata().map_err(io_err(what.clone()))?;
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(if is_executable(&meta) { 0o755 } else { 0o644 });
                header.set_size(meta.len());
                tar.append_data(&mut header, rel, file)
                    .map_err(io_err(what))?;
            }
        }
        let zstd = tar.into_inner().map_err(io_err("finishing the tarball"))?;
        let mut hashing = zstd.finish().map_err(io_err("finishing zstd"))?;
        hashing.flush().map_err(io_err("writing the slug"))?;
        let id = SlugId(hex::encode(hashing.hash.finalize()));
        tmp.as_file()
            .sync_all()
            .map_err(io_err("syncing the slug"))?;
        let dest = self.path(&id);
        tmp.persist(&dest).map_err(|e| SlugError::Io {
            what: format!("renaming the slug to {}", dest.display()),
            source: e.error,
        })?;
        sync_dir(&self.dir)?;
        Ok(id)
    }

    fn collect(
        &self,
        root: &Path,
        dir: &Path,
        out: &mut Vec<(PathBuf, bool)>,
        size: &mut u64,
    ) -> Result<(), SlugError> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .map_err(io_err(format!("reading {}", dir.display())))?
            .collect::<Result<_, _>>()
            .map_err(io_err(format!("reading {}", dir.display())))?;
        names.sort_by_key(|e| e.file_name());
        for e in names {
            let path = e.path();
            let rel = path
                .strip_prefix(root)
                .expect("walked from root")
                .to_owned();
            let ty = e
                .file_type()
                .map_err(io_err(format!("reading {}", path.display())))?;
            if out.len() as u64 >= self.limits.max_entries {
                return Err(SlugError::TooManyEntries {
                    limit: self.limits.max_entries,
                });
            }
            if ty.is_dir() {
                out.push((rel, true));
                self.collect(root, &path, out, size)?;
            } else if ty.is_file() {
                let len = e
                    .metadata()
                    .map_err(io_err(format!("reading {}", path.display())))?
                    .len();
                *size += len;
                if *size > self.limits.max_bytes {
                    return Err(SlugError::TooBig {
                        size: tree_size(root),
                        limit: self.limits.max_bytes,
                    });
                }
                out.push((rel, false));
            } else {
                return Err(SlugError::BadEntry {
                    path: rel.display().to_string(),
                    why: "a slug holds only regular files and directories (no links or devices)",
                });
            }
        }
        Ok(())
    }

    /// Copies an existing slug file into the store under its digest.
    pub fn import(&self, file: &Path) -> Result<SlugId, SlugError> {
        let actual = hash_file(file)?;
        let id = SlugId(actual);
        let dest = self.path(&id);
        let tmp =
            tempfile::NamedTempFile::new_in(&self.dir).map_err(io_err("creating a temp file"))?;
        std::fs::copy(file, tmp.path()).map_err(io_err(format!("copying {}", file.display())))?;
        tmp.as_file()
            .sync_all()
            .map_err(io_err("syncing the slug"))?;
        tmp.persist(&dest).map_err(|e| SlugError::Io {
            what: "renaming the slug".into(),
            source: e.error,
        })?;
        sync_dir(&self.dir)?;
        Ok(id)
    }

    /// Checks that a slug's bytes still hash to its name.
    pub fn verify(&self, id: &SlugId) -> Result<(), SlugError> {
        let path = self.path(id);
        if !path.is_file() {
            return Err(SlugError::Missing(id.clone()));
        }
        let actual = hash_file(&path)?;
        if actual != id.0 {
            return Err(SlugError::DigestMismatch {
                expected: id.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Verifies a slug and unpacks it into `dest` (created; must not exist).
    /// On any error `dest` is removed again.
    pub fn unpack(&self, id: &SlugId, dest: &Path) -> Result<Unpacked, SlugError> {
        self.verify(id)?;
        std::fs::create_dir(dest).map_err(io_err(format!("creating {}", dest.display())))?;
        let result = self.unpack_into(id, dest);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(dest);
        }
        result
    }

    fn unpack_into(&self, id: &SlugId, dest: &Path) -> Result<Unpacked, SlugError> {
        let file = File::open(self.path(id)).map_err(io_err("opening the slug"))?;
        let zstd = zstd::Decoder::new(file).map_err(io_err("reading the slug"))?;
        let mut archive = tar::Archive::new(zstd);
        let mut stats = Unpacked { files: 0, bytes: 0 };
        let mut entries = 0u64;
        for entry in archive.entries().map_err(io_err("reading the slug"))? {
            let mut entry = entry.map_err(io_err("reading the slug"))?;
            entries += 1;
            if entries > self.limits.max_entries {
                return Err(SlugError::TooManyEntries {
                    limit: self.limits.max_entries,
                });
            }
            let raw = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw).into_owned();
            let rel = safe_path(&raw).ok_or(SlugError::BadEntry {
                path: shown.clone(),
                why: "only plain relative paths (no '/', '..' or '.' parts)",
            })?;
            let target = dest.join(&rel);
            match entry.header().entry_type() {
                tar::EntryType::Directory => {
                    std::fs::create_dir_all(&target)
                        .map_err(io_err(format!("creating {}", target.display())))?;
                }
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let size = entry.header().size().map_err(io_err("reading the slug"))?;
                    stats.bytes += size;
                    if stats.bytes > self.limits.max_bytes {
                        return Err(SlugError::TooBig {
                            size: stats.bytes,
                            limit: self.limits.max_bytes,
                        });
                    }
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(io_err(format!("creating {}", parent.display())))?;
                    }
                    let mut out = std::fs::OpenOptions::new()
                        .write(true)
                        .create_new(true)
                        .open(&target)
                        .map_err(io_err(format!("creating {}", target.display())))?;
                    let copied = io::copy(&mut (&mut entry).take(size), &mut out)
                        .map_err(io_err(format!("writing {}", target.display())))?;
                    if copied != size {
                        return Err(SlugError::BadEntry {
                            path: shown,
                            why: "the tarball ends inside this file",
                        });
                    }
                    stats.files += 1;
                }
                _ => {
                    return Err(SlugError::BadEntry {
                        path: shown,
                        why: "a slug holds only regular files and directories (no links or devices)",
                    });
                }
            }
        }
        Ok(stats)
    }

    /// Every slug in the store.
    pub fn list(&self) -> Result<Vec<SlugId>, SlugError> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(io_err("listing slugs"))? {
            let e = e.map_err(io_err("listing slugs"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = name
                .strip_suffix(SUFFIX)
                .and_then(|s| SlugId::parse(s).ok())
            {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Removes slugs no release refers to and temp files of interrupted
    /// packs (a crash between slug and release leaves one of those).
    pub fn remove_orphans(&self, keep: &HashSet<SlugId>) -> Result<usize, SlugError> {
        let mut removed = 0;
        for e in std::fs::read_dir(&self.dir).map_err(io_err("listing slugs"))? {
            let e = e.map_err(io_err("listing slugs"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let orphan = match name
                .strip_suffix(SUFFIX)
                .and_then(|s| SlugId::parse(s).ok())
            {
                Some(id) => !keep.contains(&id),
                None => name.starts_with(".tmp"),
            };
            if orphan {
                std::fs::remove_file(e.path()).map_err(io_err(format!("removing {name}")))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// A tar path as a safe relative path, or `None`.
fn safe_path(raw: &[u8]) -> Option<PathBuf> {
    let s = std::str::from_utf8(raw).ok()?;
    let path = Path::new(s.trim_end_matches('/'));
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(part) => out.push(part),
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o111 != 0
}

/// Bytes of the regular files under `dir`, for the too-big message.
fn tree_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => tree_size(&e.path()),
                    Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn hash_file(path: &Path) -> Result<String, SlugError> {
    let mut file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let mut hash = Sha256::new();
    io::copy(&mut file, &mut hash).map_err(io_err(format!("reading {}", path.display())))?;
    Ok(hex::encode(hash.finalize()))
}

fn sync_dir(dir: &Path) -> Result<(), SlugError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing {}", dir.display())))
}

#[cfg(test)]
#[path = "slug_tests.rs"]
mod tests;
