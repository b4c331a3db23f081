//! The cluster's log bus: every host's lines in one JetStream stream,
//! `wdyno-logs`, one subject per app (`wdyno.logs.APP`), so `wdyno logs` on
//! any host shows the lines of every host.
//!
//! Each host reads the stream into a mirror, a [`LocalBus`] fed by one
//! ordered consumer of the whole stream (from its first message, so it gets
//! each app's last [`LOG_RING_LINES`] lines, then every new one). Every read
//! is served from the mirror, so reads stay synchronous and cost no round
//! trip. The mirror holds every app the stream has lines of, whether or not
//! this host opened it: an app's backlog arrives before anyone here knows
//! it will be asked for.
//!
//! Publishing keeps [`LogBus`]'s promise: it never blocks and never fails.
//! A line goes into a bounded outbox drained by one task, which sends it
//! until the stream acknowledges it (so a failover loses none); when the
//! outbox is full (the cluster is unreachable) lines are dropped and
//! counted ([`StreamBus::dropped`]). A line shows up in the mirror, here as on every
//! other host, once the stream has it.
//!
//! Forgetting an app purges its subject with a rollup mark (`Nats-Rollup:
//! sub`): the stream drops every earlier message of the subject and keeps
//! the mark, and each mirror that reads the mark drops the app's lines too,
//! so a destroyed app's lines come back neither for a successor of the same
//! name nor on a host that joins later.
//! The purge takes every line the subject holds when the mark arrives: a
//! host that forgets an app late, after a successor of the same name has
//! written lines, purges those too (an app has no id beyond its name).
//!
//! The mirror applies each stream sequence once: when its consumer is
//! recreated (a reconnect, a server restart) it resumes after the last
//! sequence applied.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{consumer, stream};
use futures::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::{LOG_RING_LINES, LocalBus, LogBus, LogFilter, LogLine, Subscription};
use crate::cluster::{Cluster, ClusterError};

#[path = "outbox.rs"]
mod outbox;
use outbox::{Outbox, send};

/// The stream's name.
pub const STREAM: &str = "wdyno-logs";
/// An app's subject is this followed by the app's name.
const SUBJECT_PREFIX: &str = "wdyno.logs.";
/// Lines that may wait to be sent: about a second of a busy host's output,
/// enough to ride out a server failover; past it lines are dropped rather
/// than held in memory without bound.
pub const OUTBOX_LINES: usize = 8192;
/// Messages kept per subject: the ring's lines plus one, for the rollup
/// mark a forgotten app's subject starts with, so a successor still gets
/// its last [`LOG_RING_LINES`] lines in every mirror.
const STREAM_LINES_PER_APP: i64 = LOG_RING_LINES as i64 + 1;
/// Marks a message as "forget this app's earlier lines".
const FORGET_HEADER: &str = "Wdyno-Forget";
/// How long [`StreamBus::open`] waits for the mirror to hold the stream's
/// backlog before it returns anyway (the rest then arrives in the
/// background).
const CATCH_UP: Duration = Duration::from_secs(10);
/// Pause before the mirror's consumer is made again after it failed.
const RESUME_PAUSE: Duration = Duration::from_millis(500);
/// The mirror's pull requests last this long, and the server's idle
/// heartbeats come every half of it: two missed (a server gone) and the
/// consumer is made again, so a mirror notices in ~5 s, not the client's
/// default 30 s.
const PULL_EXPIRES: Duration = Duration::from_secs(5);

/// The log bus of a cluster host. See the module doc.
pub struct StreamBus {
    mirror: Arc<Mirror>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    /// Lines in the outbox; bounds it at [`OUTBOX_LINES`] (forgets are not
    /// counted: they are rare and must not be lost).
    queued: Arc<AtomicUsize>,
    /// Lines lost: the outbox was full, or the stream did not take them.
    dropped: Arc<AtomicU64>,
    /// The sender and the mirror's reader; dropping the bus aborts them.
    _tasks: Mutex<JoinSet<()>>,
}

/// What this host reads: the stream's lines and the apps opened here.
struct Mirror {
    lines: LocalBus,
    opened: Mutex<HashSet<String>>,
}

/// What the sender sends, in the order the bus was called.
enum Outgoing {
    Line(LogLine),
    Forget(String),
}

impl StreamBus {
    /// Joins the cluster's log stream (creating it if this is the first
    /// host) and waits, up to [`CATCH_UP`], until the mirror holds the
    /// stream's backlog.
    pub async fn open(cluster: &Cluster) -> Result<Arc<StreamBus>, ClusterError> {
        let config = stream::Config {
            name: STREAM.to_owned(),
            subjects: vec![format!("{SUBJECT_PREFIX}*")],
            max_messages_per_subject: STREAM_LINES_PER_APP,
            num_replicas: cluster.replicas(),
            storage: stream::StorageType::File,
            allow_rollup: true,
            ..Default::default()
        };
        let js = cluster.jetstream();
        let stream = cluster
            .retry(format!("log stream {STREAM}"), || {
                js.get_or_create_stream(config.clone())
            })
            .await?;
        let empty = stream.cached_info().state.messages == 0;
        let mirror = Arc::new(Mirror {
            lines: LocalBus::default(),
            opened: Mutex::new(HashSet::new()),
        });
        let (caught_up, mut is_caught_up) = watch::channel(empty);
        let (outbox, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let mut tasks = JoinSet::new();
        tasks.spawn(read_stream(stream, mirror.clone(), caught_up));
        let dropped = Arc::new(AtomicU64::new(0));
        let start = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
        tasks.spawn(send(Outbox {
            cluster: cluster.clone(),
            rx,
            queued: queued.clone(),
            dropped: dropped.clone(),
            id_prefix: format!("{}.{start}.", cluster.host()),
            next_id: 0,
        }));
        if tokio::time::timeout(CATCH_UP, is_caught_up.wait_for(|c| *c))
            .await
            .is_err()
        {
            tracing::warn!(
                "the log mirror has not read {STREAM}'s backlog in {CATCH_UP:?}; \
                 older lines will show once it has"
            );
        }
        Ok(Arc::new(StreamBus {
            mirror,
            outbox,
            queued,
            dropped,
            _tasks: Mutex::new(tasks),
        }))
    }

    /// How many lines this host dropped because its outbox was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl LogBus for StreamBus {
    fn open(&self, app: &str) {
        self.mirror.opened().insert(app.to_owned());
        self.mirror.lines.open(app);
    }

    fn is_open(&self, app: &str) -> bool {
        self.mirror.is_open(app)
    }

    fn forget(&self, app: &str) {
        self.mirror.opened().remove(app);
        self.mirror.lines.forget(app);
        if subject(app).is_some() {
            // Only fails once the sender is gone, when the bus is dropped.
            let _ = self.outbox.send(Outgoing::Forget(app.to_owned()));
        }
    }

    fn publish(&self, line: LogLine) {
        if !self.mirror.is_open(&line.app) || subject(&line.app).is_none() {
            return;
        }
        if self.queued.fetch_add(1, Ordering::Relaxed) >= OUTBOX_LINES {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            if self
                .dropped
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(1000)
            {
                tracing::warn!(
                    "log lines are being dropped: {OUTBOX_LINES} wait for the cluster's \
                     log stream (are a majority of the NATS servers up?)"
                );
            }
            return;
        }
        let _ = self.outbox.send(Outgoing::Line(line));
    }

    fn subscribe(
        &self,
        app: &str,
        filter: LogFilter,
        backlog: usize,
        follow: bool,
    ) -> Subscription {
        self.mirror.lines.subscribe(app, filter, backlog, follow)
    }

    fn recent(&self, app: &str, n: usize) -> Vec<Arc<LogLine>> {
        self.mirror.lines.recent(app, n)
    }
}

impl Mirror {
    fn opened(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.opened.lock().expect("opened apps lock poisoned")
    }

    fn is_open(&self, app: &str) -> bool {
        self.opened().contains(app)
    }

    /// Applies one message of the stream.
    fn apply(&self, subject: &str, headers: Option<&HeaderMap>, payload: &[u8]) {
        let Some(app) = subject.strip_prefix(SUBJECT_PREFIX) else {
            return;
        };
        if headers.is_some_and(|h| h.get(FORGET_HEADER).is_some()) {
            // The app was destroyed on some host: its earlier lines are gone
            // from the stream, and go from here (a follower's stream ends).
            self.lines.forget(app);
            if self.is_open(app) {
                self.lines.open(app);
            }
            return;
        }
        match serde_json::from_slice::<LogLine>(payload) {
            Ok(line) if line.app == app => {
                self.lines.open(app);
                self.lines.publish(line);
            }
            _ => tracing::debug!("skipping a message on {subject} that is not a log line"),
        }
    }
}

/// The subject of `app`'s lines, if its name can be one (app names are
/// `[a-z0-9-]`; anything else never reaches the stream).
fn subject(app: &str) -> Option<String> {
    let ok = !app.is_empty()
        && app
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    ok.then(|| format!("{SUBJECT_PREFIX}{app}"))
}

/// Feeds the mirror from the stream, forever: each time its ordered
/// consumer fails for good, a new one starts after the last sequence
/// applied, and anything at or before it is skipped, so no line is
/// applied twice.
async fn read_stream(stream: stream::Stream, mirror: Arc<Mirror>, caught_up: watch::Sender<bool>) {
    let mut applied = 0u64;
    loop {
        let config = consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: applied + 1,
            },
            max_expires: PULL_EXPIRES,
            ..Default::default()
        };
        let messages = match stream.create_consumer(config).await {
            Ok(c) => c.messages().await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match messages {
            Ok(mut messages) => {
                while let Some(m) = messages.next().await {
                    let m = match m {
                        Ok(m) => m,
                        Err(e) => {
                            tracing::warn!("reading {STREAM}: {e}; resuming");
                            break;
                        }
                    };
                    let Ok((seq, pending)) = m.info().map(|i| (i.stream_sequence, i.pending))
                    else {
                        continue;
                    };
                    if seq <= applied {
                        continue;
                    }
                    applied = seq;
                    mirror.apply(m.subject.as_str(), m.headers.as_ref(), &m.payload);
                    if pending == 0 {
                        caught_up.send_replace(true);
                    }
                }
            }
            Err(e) => tracing::warn!("following {STREAM}: {e}; retrying"),
        }
        tokio::time::sleep(RESUME_PAUSE).await;
    }
}
