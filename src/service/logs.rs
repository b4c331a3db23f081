//! Reading an app's lines: `logs` (the newest N, then with `--tail` new
//! ones), and `run` attached (a one-off dyno's output as its own stream,
//! ended by its exit status).

use futures::FutureExt;

use super::{Result, Service};
use crate::dyno::output::AttachedStdin;
use crate::logbus::{Event, LogFilter, Source, Subscription};
use crate::names::AppName;

/// What an attached one-off dyno sends: its output lines, then its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachedEvent {
    Line(String),
    Exit(i32),
}

/// A one-off dyno being attached to (`wdyno run`).
pub struct Attached {
    pub name: String,
    /// Bytes written here are the dyno's stdin; shutting it down is EOF.
    pub stdin: tokio::io::DuplexStream,
    pub events: tokio::sync::mpsc::UnboundedReceiver<AttachedEvent>,
}

/// Bytes of stdin an attached dyno may have unread before the writer
/// waits.
const STDIN_BUFFER: usize = 64 * 1024;

impl Service {
    /// `logs -n LINES [--tail]`: exactly the newest `lines` that pass
    /// `filter` (at most the ring's 1500), oldest first; with `tail`, then
    /// every new one.
    pub async fn logs(
        &self,
        app: &AppName,
        filter: LogFilter,
        lines: usize,
        tail: bool,
    ) -> Result<Subscription> {
        self.ledger.app(app).await?;
        Ok(self.bus.subscribe(app.as_str(), filter, lines, tail))
    }

    /// `run COMMAND` attached: a one-off dyno whose stdin is
    /// [`Attached::stdin`] and whose output lines and exit status come as
    /// [`Attached::events`].
    pub async fn attach(&self, app: &AppName, command: &str) -> Result<Attached> {
        let release = self.ledger.current(app).await?;
        // Subscribed before the dyno starts, so no line is missed.
        let mut sub = self
            .bus
            .subscribe(app.as_str(), LogFilter::default(), 0, true);
        let (to_guest, from_client) = tokio::io::duplex(STDIN_BUFFER);
        let dyno = self
            .manager
            .run_one_off(
                app,
                &release,
                "run",
                command,
                Some(AttachedStdin::new(from_client)),
            )
            .await?;
        let name = dyno.name().to_owned();
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let who = name.clone();
        tokio::spawn(async move {
            let forward = |ev: Event| match ev {
                Event::Line(l) if l.process == who && l.source == Source::App => {
                    tx.send(AttachedEvent::Line(l.text.clone())).is_ok()
                }
                _ => true,
            };
            let end = dyno.wait();
            tokio::pin!(end);
            let exit = loop {
                tokio::select! {
                    biased;
                    ev = sub.next() => match ev {
                        Some(ev) => if !forward(ev) { return },
                        None => break dyno.wait().await,
                    },
                    exit = &mut end => {
                        // Its last lines were published before it ended.
                        while let Some(Some(ev)) = sub.next().now_or_never() {
                            if !forward(ev) {
                                return;
                            }
                        }
                        break exit;
                    }
                }
            };
            let _ = tx.send(AttachedEvent::Exit(exit.status));
        });
        Ok(Attached {
            name,
            stdin: to_guest,
            events,
        })
    }
}
