//! Packing a slug: a build directory into one reproducible tarball.
//!
//! Entries are listed first, sorted by name, with every limit checked
//! before a byte is written; headers carry no times, owners or exact modes,
//! so the same files always give the same digest.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::{Hashing, SlugDir, SlugError, SlugId, io_err};

/// Reads exactly `left` bytes, so a file that grows or shrinks while it is
/// packed makes the pack fail instead of writing a tarball whose headers
/// lie about sizes.
struct Exactly<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Exactly<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file shrank while it was packed",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl SlugDir {
    /// Packs the files of `src` into a slug and returns its id. The same
    /// files always give the same id.
    pub fn pack(&self, src: &Path) -> Result<SlugId, SlugError> {
        let mut entries = Vec::new();
        let mut size = 0u64;
        self.collect(src, src, &mut entries, &mut size)?;
        let tmp = self.temp_file()?;
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
                let data = Exactly {
                    inner: file,
                    left: meta.len(),
                };
                tar.append_data(&mut header, rel, data)
                    .map_err(io_err(what))?;
            }
        }
        let zstd = tar.into_inner().map_err(io_err("finishing the tarball"))?;
        let mut hashing = zstd.finish().map_err(io_err("finishing zstd"))?;
        hashing.flush().map_err(io_err("writing the slug"))?;
        let id = SlugId(hex::encode(hashing.hash.finalize()));
        self.persist(tmp, &id)?;
        tracing::debug!(slug = %id, entries = entries.len(), bytes = size, "packed slug");
        Ok(id)
    }

    /// Lists `dir` depth-first in name order, checking every limit.
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
            let refuse = |why| SlugError::BadEntry {
                path: rel.display().to_string(),
                why,
            };
            if rel.to_str().is_none() {
                return Err(refuse("file names in a slug must be UTF-8"));
            }
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
                return Err(refuse(
                    "a slug holds only regular files and directories (no links or devices)",
                ));
            }
        }
        Ok(())
    }
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
