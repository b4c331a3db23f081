//! The KV bucket under [`super::NatsLedger`], and what a failed call means.
//!
//! Reads go to the stream's leader (`STREAM.MSG.GET`), never to a direct
//! get a lagging follower may answer: a reader that saw a head must find
//! every record that head names. Writes are compare-and-set on a key's
//! revision (0: the key must not exist), so every write either lands
//! exactly where its writer expected or is refused.
//!
//! A failed call is a [`Fail`]: a lost race ([`Fail::Conflict`]), a
//! cluster that did not answer ([`Fail::Cluster`], retried by [`Tries`]
//! until [`CLUSTER_DEADLINE`]), or an answer for the user.

use std::time::Duration;

use async_nats::jetstream::kv::{Store, UpdateErrorKind};
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use bytes::Bytes;
use futures::TryStreamExt;
use tokio::time::Instant;

use crate::ledger::LedgerError;

/// How long a change keeps retrying while the cluster does not answer:
/// long enough to ride out the election of a new stream leader (5–10 s
/// measured here after a leader is killed), short enough that a minority
/// of servers fails a write in seconds rather than hanging it.
pub(super) const CLUSTER_DEADLINE: Duration = Duration::from_secs(12);
/// How long a change keeps retrying lost races with other writers before
/// it gives up.
pub(super) const CONFLICT_DEADLINE: Duration = Duration::from_secs(30);
/// The longest random pause after a lost race, in milliseconds.
const MAX_CONFLICT_PAUSE_MS: u64 = 200;
/// The pause between tries while the cluster does not answer (a leader
/// election takes a few of these).
const CLUSTER_PAUSE: Duration = Duration::from_millis(250);

/// Why one step of a ledger change did not finish.
#[derive(Debug)]
pub(super) enum Fail {
    /// Another writer changed the key first: read again and retry.
    Conflict,
    /// The cluster did not answer. `maybe`: the write may still have been
    /// (or still be) applied.
    Cluster { why: String, maybe: bool },
    /// An answer for the user (no such app, a refused change).
    Ledger(LedgerError),
}

impl From<LedgerError> for Fail {
    fn from(e: LedgerError) -> Self {
        Fail::Ledger(e)
    }
}

/// The error and its sources, in one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let more = inner.to_string();
        if !s.contains(&more) {
            s.push_str(": ");
            s.push_str(&more);
        }
        src = inner.source();
    }
    s
}

fn cluster(e: &dyn std::error::Error, key: &str, write: bool) -> Fail {
    let verb = if write { "writing" } else { "reading" };
    let why = format!("{verb} {key}: {}", chain(e));
    // However the client wraps it, the server's refusal of a
    // compare-and-set is a lost race, not a silent cluster.
    if why.contains("wrong last sequence") {
        return Fail::Conflict;
    }
    // "no responders": no server took the message, so nothing can land.
    let maybe = write && !why.contains("no responders");
    Fail::Cluster { why, maybe }
}

/// A key's newest message, as the stream's leader has it.
pub(super) struct Found {
    /// `None`: deleted or purged (or never written, with `rev` 0).
    pub value: Option<Bytes>,
    pub rev: u64,
}

#[derive(Clone)]
pub(super) struct Bucket {
    kv: Store,
}

impl Bucket {
    pub fn new(kv: Store) -> Self {
        Bucket { kv }
    }

    pub fn store(&self) -> &Store {
        &self.kv
    }

    pub async fn get(&self, key: &str) -> Result<Found, Fail> {
        let subject = format!("{}{key}", self.kv.prefix);
        match self
            .kv
            .stream
            .get_last_raw_message_by_subject(&subject)
            .await
        {
            Ok(m) => {
                let op = m.headers.get("KV-Operation").map(|v| v.as_str().to_owned());
                let gone = matches!(op.as_deref(), Some("DEL") | Some("PURGE"));
                Ok(Found {
                    value: (!gone).then_some(m.payload),
                    rev: m.sequence,
                })
            }
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(Found {
                value: None,
                rev: 0,
            }),
            Err(e) => Err(cluster(&e, key, false)),
        }
    }

    /// Writes `value` if the key's newest message is still `rev` (0: the
    /// key has never been written).
    pub async fn update(&self, key: &str, value: Vec<u8>, rev: u64) -> Result<u64, Fail> {
        match self.kv.update(key, value.into(), rev).await {
            Ok(r) => Ok(r),
            Err(e) if e.kind() == UpdateErrorKind::WrongLastRevision => Err(Fail::Conflict),
            Err(e) => Err(cluster(&e, key, true)),
        }
    }

    /// Writes `value` if the key has never been written (a record's
    /// commit): [`Fail::Conflict`] when it has.
    pub async fn create_new(&self, key: &str, value: Vec<u8>) -> Result<u64, Fail> {
        self.update(key, value, 0).await
    }

    /// Writes `value` unless the key holds one (a deleted key counts as
    /// absent): [`Fail::Conflict`] when it does.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<u64, Fail> {
        match self.update(key, value.clone(), 0).await {
            Err(Fail::Conflict) => {
                let found = self.get(key).await?;
                match found.value {
                    Some(_) => Err(Fail::Conflict),
                    None => self.update(key, value, found.rev).await,
                }
            }
            other => other,
        }
    }

    pub async fn put(&self, key: &str, value: Vec<u8>) -> Result<u64, Fail> {
        self.kv
            .put(key, value.into())
            .await
            .map_err(|e| cluster(&e, key, true))
    }

    /// Deletes the key if its newest message is still `rev`.
    pub async fn delete(&self, key: &str, rev: u64) -> Result<(), Fail> {
        match self.kv.delete_expect_revision(key, Some(rev)).await {
            Ok(()) => Ok(()),
            Err(e) if chain(&e).contains("wrong last sequence") => Err(Fail::Conflict),
            Err(e) => Err(cluster(&e, key, true)),
        }
    }

    /// Removes every message of the keys under `prefix` (`release.APP.INC`)
    /// from the stream.
    pub async fn purge_under(&self, prefix: &str) -> Result<(), Fail> {
        let filter = format!("{}{prefix}.>", self.kv.prefix);
        self.kv
            .stream
            .purge()
            .filter(filter)
            .await
            .map(|_| ())
            .map_err(|e| cluster(&e, prefix, true))
    }

    /// The keys one level under `prefix` (`head` → `head.APP`), deleted
    /// ones included: the stream's subject index, not a scan of the bucket.
    pub async fn keys_under(&self, prefix: &str) -> Result<Vec<String>, Fail> {
        let filter = format!("{}{prefix}.*", self.kv.prefix);
        let subjects = self
            .kv
            .stream
            .info_with_subjects(&filter)
            .await
            .map_err(|e| cluster(&e, prefix, false))?;
        let all: Vec<(String, usize)> = subjects
            .try_collect()
            .await
            .map_err(|e| cluster(&e, prefix, false))?;
        let mut keys: Vec<String> = all
            .into_iter()
            .filter_map(|(subject, _)| subject.strip_prefix(&self.kv.prefix).map(str::to_owned))
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// The retry budget of one ledger call.
pub(super) struct Tries {
    started: Instant,
    /// When the step now running began (the call's start, or the end of
    /// the last pause).
    step_began: Instant,
    /// When the step that first found the cluster silent began to answer during this call.
    unanswered_since: Option<Instant>,
    /// Whether some write of this call may have landed unacknowledged.
    maybe_written: bool,
    write: bool,
    /// Races lost so far: the pause after one grows with them.
    conflicts: u32,
}

impl Tries {
    pub fn write() -> Self {
        Tries {
            started: Instant::now(),
            step_began: Instant::now(),
            unanswered_since: None,
            maybe_written: false,
            write: true,
            conflicts: 0,
        }
    }

    pub fn read() -> Self {
        Tries {
            write: false,
            ..Tries::write()
        }
    }

    /// Waits before the next try, or says why there is none.
    pub async fn after(&mut self, fail: Fail) -> Result<(), LedgerError> {
        self.pause(fail).await?;
        self.step_began = Instant::now();
        Ok(())
    }

    /// Whether the error may say that nothing was changed.
    fn hint(&self) -> &'static str {
        if self.maybe_written {
            "It may still take effect once a majority is back: look before you retry. "
        } else {
            "Nothing was changed. "
        }
    }

    async fn pause(&mut self, fail: Fail) -> Result<(), LedgerError> {
        match fail {
            Fail::Ledger(e) => Err(e),
            Fail::Conflict => {
                if self.started.elapsed() >= CONFLICT_DEADLINE {
                    return Err(LedgerError::NotCommitted {
                        why: format!(
                            "other writers kept changing this app for {}s",
                            CONFLICT_DEADLINE.as_secs()
                        ),
                        hint: self.hint(),
                    });
                }
                // The cluster answered: its silence budget starts afresh.
                self.unanswered_since = None;
                // A random pause, its range doubling with each race lost
                // (to MAX_CONFLICT_PAUSE_MS), so many writers spread out.
                self.conflicts += 1;
                let range = (2u64 << self.conflicts.min(8)).min(MAX_CONFLICT_PAUSE_MS);
                let pause = rand::random::<u64>() % range;
                tokio::time::sleep(Duration::from_millis(pause)).await;
                Ok(())
            }
            Fail::Cluster { why, maybe } => {
                self.maybe_written |= maybe;
                // Counted from the start of the step that found it silent: a
                // call that timed out has used the whole budget.
                let since = *self.unanswered_since.get_or_insert(self.step_began);
                if since.elapsed() < CLUSTER_DEADLINE {
                    tracing::debug!("ledger: {why}; retrying");
                    tokio::time::sleep(CLUSTER_PAUSE).await;
                    return Ok(());
                }
                Err(if !self.write {
                    LedgerError::Unreadable(why)
                } else {
                    LedgerError::NotCommitted {
                        why,
                        hint: self.hint(),
                    }
                })
            }
        }
    }
}
