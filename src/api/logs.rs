//! `/apps/A/log-stream?lines=N&tail=1&ps=web&source=app`: `wdyno logs`.

use std::sync::Arc;

use super::reply::{Reply, lines_reply};
use crate::logbus::{Event, LOG_RING_LINES, LogFilter, Source};
use crate::names::AppName;
use crate::service::Service;

/// Lines on their way to one reader; past them the reader's place in the
/// bus falls behind (and, when following, counts what it loses).
const PUMP_LINES: usize = 256;
/// Lines `logs` prints without `-n`, as Heroku.
const DEFAULT_LINES: usize = 100;

pub(super) async fn stream(s: &Arc<Service>, app: AppName, query: &str) -> Reply {
    let mut lines = DEFAULT_LINES;
    let mut tail = false;
    let mut filter = LogFilter::default();
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "lines" => lines = v.parse().unwrap_or(DEFAULT_LINES).min(LOG_RING_LINES),
            "tail" => tail = v == "1" || v == "true",
            "dyno" | "ps" => filter.process = Some(v.into_owned()),
            "source" => filter.source = Source::parse(&v),
            _ => {}
        }
    }
    let mut sub = s.logs(&app, filter, lines, tail).await?;
    // The backlog goes out whole, however slowly the reader reads; while
    // following, a reader that does not keep up loses lines and is told
    // how many of its app's lines, rather than holding anything up.
    let (tx, rx) = tokio::sync::mpsc::channel(PUMP_LINES);
    tokio::spawn(async move {
        while let Some(ev) = sub.next().await {
            let line = match ev {
                Event::Line(l) => l.to_string(),
                Event::Dropped(n) => format!("… {n} lines dropped"),
            };
            if tx.send(line).await.is_err() {
                break;
            }
        }
    });
    Ok(lines_reply(futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|line| (line, rx)) },
    )))
}
