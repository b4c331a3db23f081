//! Slugs: a built app as one compressed tarball (tar + zstd), named by the
//! sha256 of its bytes, in `slugs/<sha256>.tar.zst`.
//!
//! Packing is reproducible (sorted entries, zeroed times and owners, modes
//! reduced to 0644/0755) and durable (temp file, fsync, rename, fsync of the
//! dir) so a release is never written before its slug. A slug holds only
//! regular files and directories: packing refuses a source with a symlink,
//! a device or a fifo rather than guessing what the link should mean.
//!
//! Unpacking ([`SlugDir::unpack`]) trusts nothing: the digest is checked first,
//! then every entry must be a regular file or directory at a plain relative
//! path, within the entry-count and size limits; nothing is ever written
//! outside the destination.
//!
//! In a cluster, [`ObjectSlugs`] keeps slugs in the JetStream object store
//! and each host caches the ones it runs in its own [`SlugDir`].

use std::collections::HashSet;
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use object::ObjectSlugs;

#[path = "slug/object.rs"]
mod object;
#[path = "slug/pack.rs"]
mod pack;
#[path = "slug/unpack.rs"]
mod unpack;

/// Largest unpacked slug: Heroku's limit, and plenty for wasm components.
pub const DEFAULT_MAX_BYTES: u64 = 500 << 20;
/// Most entries (files and directories) in a slug: far above any real app,
/// low enough that a hostile slug cannot exhaust inodes.
pub const DEFAULT_MAX_ENTRIES: u64 = 100_000;
const SUFFIX: &str = ".tar.zst";
/// Temp files of packs and imports start with this; a crash can leave
/// one behind, and [`SlugDir::remove_orphans`] removes it.
const TMP_PREFIX: &str = ".tmp";

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
    #[error("slug {0} does not exist: redeploy to rebuild it")]
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
    #[error(
        "the cluster's slug store (object store {bucket}) could not {what}: {why}; check that \
         a majority of the NATS servers are up"
    )]
    Cluster {
        bucket: &'static str,
        what: String,
        why: String,
    },
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

/// Limits on what a slug may hold, checked both when packing and when
/// unpacking.
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

/// What an unpack wrote: regular files and their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    pub files: u64,
    pub bytes: u64,
}

/// Where slugs are kept, by digest: this host's `slugs/` directory
/// ([`SlugDir`]) or a cluster's object store. Every implementation
/// verifies a slug's digest before any byte of it is used.
#[async_trait::async_trait]
pub trait SlugStore: Send + Sync {
    /// Packs a built app directory into a slug and stores it durably;
    /// returns its id and its size in bytes.
    async fn put(&self, dir: &Path) -> Result<(SlugId, u64), SlugError>;
    /// Unpacks slug `id`, verified, into `dest` (which must not exist).
    async fn unpack(&self, id: &SlugId, dest: &Path) -> Result<Unpacked, SlugError>;
    /// Removes every slug not in `keep` (and leftovers of interrupted
    /// puts); returns how many files went.
    async fn retain(&self, keep: &HashSet<SlugId>) -> Result<usize, SlugError>;
}

/// The `slugs/` directory.
#[derive(Debug, Clone)]
pub struct SlugDir {
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

impl SlugDir {
    pub fn open(dir: impl Into<PathBuf>, limits: Limits) -> Result<Self, SlugError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        Ok(SlugDir { dir, limits })
    }

    pub fn path(&self, id: &SlugId) -> PathBuf {
        self.dir.join(format!("{id}{SUFFIX}"))
    }

    pub fn exists(&self, id: &SlugId) -> bool {
        self.path(id).is_file()
    }

    fn temp_file(&self) -> Result<tempfile::NamedTempFile, SlugError> {
        tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(io_err(format!(
                "creating a temp file in {}",
                self.dir.display()
            )))
    }

    /// Syncs `tmp` and renames it to the slug `id`, then syncs the dir: once
    /// this returns, the slug survives a crash.
    fn persist(&self, tmp: tempfile::NamedTempFile, id: &SlugId) -> Result<(), SlugError> {
        tmp.as_file()
            .sync_all()
            .map_err(io_err("syncing the slug"))?;
        let dest = self.path(id);
        tmp.persist(&dest).map_err(|e| SlugError::Io {
            what: format!("renaming the slug to {}", dest.display()),
            source: e.error,
        })?;
        sync_dir(&self.dir)
    }

    /// Copies an existing slug file into the store under the digest of the
    /// bytes copied (tests use it to plant hand-made tarballs).
    pub fn import(&self, file: &Path) -> Result<SlugId, SlugError> {
        let mut from = File::open(file).map_err(io_err(format!("opening {}", file.display())))?;
        let tmp = self.temp_file()?;
        let mut hashing = Hashing {
            inner: tmp.as_file(),
            hash: Sha256::new(),
        };
        io::copy(&mut from, &mut hashing).map_err(io_err(format!("copying {}", file.display())))?;
        let id = SlugId(hex::encode(hashing.hash.finalize()));
        self.persist(tmp, &id)?;
        Ok(id)
    }

    /// Checks that a slug's bytes still hash to its name.
    pub fn verify(&self, id: &SlugId) -> Result<(), SlugError> {
        self.open_verified(id).map(drop)
    }

    /// Opens a slug and checks its digest; the caller reads the same open
    /// file, so the bytes checked are the bytes used.
    fn open_verified(&self, id: &SlugId) -> Result<File, SlugError> {
        let mut file = match File::open(self.path(id)) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SlugError::Missing(id.clone()));
            }
            Err(e) => return Err(io_err(format!("opening slug {id}"))(e)),
        };
        let mut hash = Sha256::new();
        io::copy(&mut file, &mut hash).map_err(io_err(format!("reading slug {id}")))?;
        let actual = hex::encode(hash.finalize());
        if actual != id.0 {
            return Err(SlugError::DigestMismatch {
                expected: id.clone(),
                actual,
            });
        }
        Ok(file)
    }

    /// Every slug in the store, in id order.
    pub fn list(&self) -> Result<Vec<SlugId>, SlugError> {
        let mut ids = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(io_err("listing slugs"))? {
            let e = e.map_err(io_err("listing slugs"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(id) = slug_of(&name) {
                ids.push(id);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Removes slugs no release refers to and temp files of interrupted
    /// packs (a crash between slug and release leaves one of those). Call
    /// it at start-up, before any build runs: a build's slug is an orphan
    /// until its release is written.
    pub fn remove_orphans(&self, keep: &HashSet<SlugId>) -> Result<usize, SlugError> {
        let mut removed = 0;
        for e in std::fs::read_dir(&self.dir).map_err(io_err("listing slugs"))? {
            let e = e.map_err(io_err("listing slugs"))?;
            let name = e.file_name().to_string_lossy().into_owned();
            let orphan = match slug_of(&name) {
                Some(id) => !keep.contains(&id),
                None => name.starts_with(TMP_PREFIX),
            };
            if orphan {
                std::fs::remove_file(e.path()).map_err(io_err(format!("removing {name}")))?;
                tracing::info!(file = %name, "removed orphan slug file");
                removed += 1;
            }
        }
        Ok(removed)
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SlugError> + Send + 'static,
) -> Result<T, SlugError> {
    crate::blocking::run(f, |why| SlugError::Io {
        what: "the slug task".into(),
        source: io::Error::other(why),
    })
    .await
}

/// Packing, hashing and fsync block: they run on the blocking pool.
#[async_trait::async_trait]
impl SlugStore for SlugDir {
    async fn put(&self, dir: &Path) -> Result<(SlugId, u64), SlugError> {
        let (me, dir) = (self.clone(), dir.to_owned());
        blocking(move || {
            let id = me.pack(&dir)?;
            let size = std::fs::metadata(me.path(&id))
                .map_err(io_err("reading the slug's size"))?
                .len();
            Ok((id, size))
        })
        .await
    }

    async fn unpack(&self, id: &SlugId, dest: &Path) -> Result<Unpacked, SlugError> {
        let (me, id, dest) = (self.clone(), id.clone(), dest.to_owned());
        blocking(move || SlugDir::unpack(&me, &id, &dest)).await
    }

    async fn retain(&self, keep: &HashSet<SlugId>) -> Result<usize, SlugError> {
        let (me, keep) = (self.clone(), keep.clone());
        blocking(move || me.remove_orphans(&keep)).await
    }
}

/// The slug a file in `slugs/` holds, if its name is `<sha256>.tar.zst`.
fn slug_of(file_name: &str) -> Option<SlugId> {
    file_name
        .strip_suffix(SUFFIX)
        .and_then(|s| SlugId::parse(s).ok())
}

fn sync_dir(dir: &Path) -> Result<(), SlugError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(format!("syncing {}", dir.display())))
}

#[cfg(test)]
#[path = "slug_tests.rs"]
mod tests;
