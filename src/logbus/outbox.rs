//! The sending half of [`StreamBus`](super::StreamBus): one task that
//! takes lines and forgets from the outbox, in the order the bus was
//! called, and hands them to the stream until it has them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use tokio::sync::mpsc;

use super::{FORGET_HEADER, Outgoing, STREAM, subject};
use crate::cluster::Cluster;
use crate::logbus::LogLine;

/// Lines sent before their acknowledgements are awaited: a busy host's
/// lines flow at the stream's pace, not one round trip each.
const SEND_WINDOW: usize = 256;
/// How long a line is offered to the stream (servers failing over,
/// electing a leader) before it is dropped and counted.
const LINE_RETRY: Duration = crate::cluster::STARTUP_RETRY;

/// The sender's state: the outbox's far end and how lines are named.
pub(super) struct Outbox {
    pub(super) cluster: Cluster,
    pub(super) rx: mpsc::UnboundedReceiver<Outgoing>,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) dropped: Arc<AtomicU64>,
    /// `HOST.START.`: with a counter, each line's `Nats-Msg-Id`, unique
    /// across hosts and restarts of one host.
    pub(super) id_prefix: String,
    pub(super) next_id: u64,
}

/// A line ready to be sent (again).
struct Encoded {
    subject: String,
    headers: HeaderMap,
    payload: bytes::Bytes,
}

/// Sends the outbox to the stream, in order, up to [`SEND_WINDOW`] lines
/// at a time. Each line is a JetStream publish the stream acknowledges; a
/// line not acknowledged is sent again (its `Nats-Msg-Id` makes a second
/// copy a no-op) until [`LINE_RETRY`] has passed, then dropped and counted.
/// So a server failover loses no line, though it may reorder the lines of
/// one window. A forget waits for the lines before it.
pub(super) async fn send(mut out: Outbox) {
    let mut lines = Vec::with_capacity(SEND_WINDOW);
    while let Some(first) = out.rx.recv().await {
        let mut next = Some(first);
        while let Some(o) = next {
            match o {
                Outgoing::Line(line) => {
                    out.queued.fetch_sub(1, Ordering::Relaxed);
                    if let Some(l) = out.encode(&line) {
                        lines.push(l);
                    }
                    if lines.len() == SEND_WINDOW {
                        out.send_lines(&mut lines).await;
                    }
                }
                Outgoing::Forget(app) => {
                    out.send_lines(&mut lines).await;
                    out.forget(&app).await;
                }
            }
            next = out.rx.try_recv().ok();
        }
        out.send_lines(&mut lines).await;
    }
}

impl Outbox {
    fn encode(&mut self, line: &LogLine) -> Option<Encoded> {
        let subject = subject(&line.app)?;
        let mut headers = HeaderMap::new();
        headers.insert(
            "Nats-Msg-Id",
            format!("{}{}", self.id_prefix, self.next_id).as_str(),
        );
        self.next_id += 1;
        let payload = serde_json::to_vec(line).expect("a log line serializes");
        Some(Encoded {
            subject,
            headers,
            payload: payload.into(),
        })
    }

    async fn send_lines(&self, lines: &mut Vec<Encoded>) {
        let js = self.cluster.jetstream();
        let deadline = tokio::time::Instant::now() + LINE_RETRY;
        let mut pause = Duration::from_millis(100);
        while !lines.is_empty() {
            let mut acks = Vec::with_capacity(lines.len());
            for l in lines.iter() {
                let sent = js
                    .publish_with_headers(l.subject.clone(), l.headers.clone(), l.payload.clone())
                    .await;
                acks.push(sent);
            }
            let mut why = String::new();
            let mut unsent = Vec::new();
            for (l, sent) in lines.drain(..).zip(acks) {
                let acked = match sent {
                    Ok(ack) => ack.await.map(drop),
                    Err(e) => Err(e),
                };
                if let Err(e) = acked {
                    why = e.to_string();
                    unsent.push(l);
                }
            }
            *lines = unsent;
            if lines.is_empty() {
                break;
            }
            if tokio::time::Instant::now() + pause >= deadline {
                self.dropped
                    .fetch_add(lines.len() as u64, Ordering::Relaxed);
                tracing::warn!(
                    "dropped {} log lines that {STREAM} did not take in {LINE_RETRY:?} ({why}): \
                     are a majority of the NATS servers up?",
                    lines.len()
                );
                lines.clear();
                break;
            }
            tracing::debug!(
                "{} log lines not taken by {STREAM} ({why}); retrying",
                lines.len()
            );
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(2));
        }
    }

    /// Purges `app`'s subject with the rollup mark, retried while the
    /// servers fail over.
    async fn forget(&self, app: &str) {
        let Some(subject) = subject(app) else {
            return;
        };
        let mut headers = HeaderMap::new();
        headers.insert("Nats-Rollup", "sub");
        headers.insert(FORGET_HEADER, "1");
        let cluster = &self.cluster;
        let purged = cluster
            .retry(format!("purge of {app}'s log lines"), || async {
                cluster
                    .jetstream()
                    .publish_with_headers(subject.clone(), headers.clone(), Default::default())
                    .await?
                    .await
            })
            .await;
        if let Err(e) = purged {
            tracing::warn!("{e}: the destroyed app's lines stay in {STREAM}");
        }
    }
}
