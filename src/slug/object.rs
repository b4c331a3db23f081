//! The cluster's slug store: slugs in the JetStream object store
//! `wdyno-slugs`, each named by its digest, and on each host a cache (that
//! host's [`SlugDir`]) of the slugs it has built or run.
//!
//! A slug reaches a dyno only from the cache, and only after its bytes hash
//! to its name: a download goes to a temp file in the cache, is hashed as
//! it is written, and is renamed into place only if the digest matches
//! (a mismatch removes the file and is [`SlugError::DigestMismatch`]). The
//! object store's own checksum is not what is trusted: it says the bytes
//! are those uploaded, not that they are the slug the release names.
//!
//! A cached slug that no longer matches its digest (a disk fault) is
//! thrown away and downloaded again: the cache is a copy, and the store
//! holds the original.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::object_store::{self, GetErrorKind, InfoErrorKind, ObjectStore};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{SlugDir, SlugError, SlugId, SlugStore, Unpacked, blocking, io_err};
use crate::cluster::{Cluster, ClusterError};

/// The object store's name.
pub const BUCKET: &str = "wdyno-slugs";
/// Bytes read from the store per write into the cache.
const CHUNK: usize = 128 << 10;

/// Slugs in the cluster's object store, cached on this host. See the
/// module doc.
#[derive(Clone)]
pub struct ObjectSlugs {
    store: ObjectStore,
    cache: SlugDir,
}

/// How long an upload is tried again while the cluster does not take it:
/// long enough to ride out a stream leader's election (5–10 s here).
const RIDE_OUT: Duration = Duration::from_secs(12);
const RIDE_OUT_PAUSE: Duration = Duration::from_millis(250);

fn cluster_err(what: impl Into<String>, why: impl ToString) -> SlugError {
    SlugError::Cluster {
        bucket: BUCKET,
        what: what.into(),
        why: why.to_string(),
    }
}

impl ObjectSlugs {
    /// Opens the store (creating it on the cluster's first host), caching
    /// into `cache` (`$WDYNO_HOME/slugs`).
    pub async fn open(cluster: &Cluster, cache: SlugDir) -> Result<Self, SlugError> {
        let config = object_store::Config {
            bucket: BUCKET.to_owned(),
            num_replicas: cluster.replicas(),
            storage: async_nats::jetstream::stream::StorageType::File,
            ..Default::default()
        };
        let js = cluster.jetstream();
        let store = cluster
            .retry(format!("object store {BUCKET}"), || {
                let config = config.clone();
                async move {
                    match js.get_object_store(BUCKET).await {
                        Ok(store) => Ok(store),
                        Err(_) => js
                            .create_object_store(config)
                            .await
                            .map_err(|e| e.to_string()),
                    }
                }
            })
            .await
            .map_err(|e| match e {
                ClusterError::JetStream { why, .. } => cluster_err("open", why),
                e => cluster_err("open", e),
            })?;
        Ok(ObjectSlugs { store, cache })
    }

    /// This host's cache.
    pub fn cache(&self) -> &SlugDir {
        &self.cache
    }

    /// Whether the store holds slug `id` with the bytes its name promises
    /// (the store's own checksum of the upload equals the slug's digest).
    async fn stored(&self, id: &SlugId) -> Result<bool, SlugError> {
        match self.store.info(id.as_str()).await {
            Ok(info) => Ok(!info.deleted && info.digest.as_deref() == Some(&nats_digest(id))),
            Err(e) if e.kind() == InfoErrorKind::NotFound => Ok(false),
            Err(e) => Err(cluster_err(format!("look up slug {id}"), e)),
        }
    }

    /// Downloads slug `id` into the cache, verified.
    async fn download(&self, id: &SlugId) -> Result<(), SlugError> {
        let mut object = match self.store.get(id.as_str()).await {
            Ok(o) => o,
            Err(e) if e.kind() == GetErrorKind::NotFound => {
                return Err(SlugError::Missing(id.clone()));
            }
            Err(e) => return Err(cluster_err(format!("download slug {id}"), e)),
        };
        // Dropping `tmp` before the rename removes the file.
        let tmp = self.cache.temp_file()?;
        let file = tmp
            .as_file()
            .try_clone()
            .map_err(io_err("opening the slug's temp file"))?;
        let mut file = tokio::fs::File::from_std(file);
        let mut hash = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = object
                .read(&mut buf)
                .await
                .map_err(|e| cluster_err(format!("download slug {id}"), e))?;
            if n == 0 {
                break;
            }
            size += n as u64;
            if size > self.cache.limits.max_bytes {
                return Err(SlugError::TooBig {
                    size,
                    limit: self.cache.limits.max_bytes,
                });
            }
            hash.update(&buf[..n]);
            file.write_all(&buf[..n])
                .await
                .map_err(io_err(format!("writing slug {id} into the cache")))?;
        }
        file.flush()
            .await
            .map_err(io_err(format!("writing slug {id} into the cache")))?;
        drop(file);
        let actual = hex::encode(hash.finalize());
        if actual != id.as_str() {
            return Err(SlugError::DigestMismatch {
                expected: id.clone(),
                actual,
            });
        }
        let (cache, id) = (self.cache.clone(), id.clone());
        blocking(move || cache.persist(tmp, &id)).await
    }
}

#[async_trait::async_trait]
impl SlugStore for ObjectSlugs {
    /// Packs into the cache, then uploads unless the store has the slug
    /// already (another host built the same bytes).
    async fn put(&self, dir: &Path) -> Result<(SlugId, u64), SlugError> {
        let (id, size) = SlugStore::put(&self.cache, dir).await?;
        if self.stored(&id).await? {
            return Ok((id, size));
        }
        let path = self.cache.path(&id);
        // Tried again while the servers elect a new stream leader.
        let deadline = tokio::time::Instant::now() + RIDE_OUT;
        loop {
            let mut file = tokio::fs::File::open(&path)
                .await
                .map_err(io_err(format!("opening {}", path.display())))?;
            match self.store.put(id.as_str(), &mut file).await {
                Ok(_) => break,
                Err(e) if tokio::time::Instant::now() >= deadline => {
                    return Err(cluster_err(format!("upload slug {id}"), e));
                }
                Err(e) => {
                    tracing::debug!(slug = %id, "uploading: {e}; trying again");
                    tokio::time::sleep(RIDE_OUT_PAUSE).await;
                }
            }
        }
        tracing::debug!(slug = %id, size, "uploaded slug");
        Ok((id, size))
    }

    async fn unpack(&self, id: &SlugId, dest: &Path) -> Result<Unpacked, SlugError> {
        if self.cache.exists(id) {
            match SlugStore::unpack(&self.cache, id, dest).await {
                Err(SlugError::DigestMismatch { actual, .. }) => {
                    tracing::warn!(slug = %id, actual, "cached slug is corrupt; downloading it again");
                    match std::fs::remove_file(self.cache.path(id)) {
                        Err(e) if e.kind() != io::ErrorKind::NotFound => {
                            return Err(io_err(format!("removing corrupt slug {id}"))(e));
                        }
                        _ => {}
                    }
                }
                // Removed between the check and the open (a retain).
                Err(SlugError::Missing(_)) => {}
                done => return done,
            }
        }
        self.download(id).await?;
        SlugStore::unpack(&self.cache, id, dest).await
    }

    /// Prunes this host's cache only. The store keeps every slug: another
    /// host may have a build in flight whose slug no release names yet, and
    /// this host cannot tell.
    async fn retain(&self, keep: &HashSet<SlugId>) -> Result<usize, SlugError> {
        SlugStore::retain(&self.cache, keep).await
    }
}

/// How the object store writes a sha256: `SHA-256=` and the digest in
/// URL-safe base64 with padding.
fn nats_digest(id: &SlugId) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = hex::decode(id.as_str()).expect("a slug id is hex");
    let mut out = String::from("SHA-256=");
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_written_as_the_object_store_writes_it() {
        // sha256("") in base64url, as the object store's meta holds it.
        let id = SlugId::parse("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
            .unwrap();
        assert_eq!(
            nats_digest(&id),
            "SHA-256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="
        );
    }

    #[test]
    fn a_cluster_failure_names_the_store_and_what_to_check() {
        let e = cluster_err("download slug 1234567", "timed out").to_string();
        assert_eq!(
            e,
            "the cluster's slug store (object store wdyno-slugs) could not download slug \
             1234567: timed out; check that a majority of the NATS servers are up"
        );
    }
}
