//! `wdyno logs`: the app's log as the log bus keeps it — the app's own
//! output and the platform's lines about it — past lines from the ring,
//! and with `--tail` new ones as they come.

use anyhow::{Result, bail};
use wdyno::api::Client;
use wdyno::api::schema::LogSessionCreate;
use wdyno::names::AppName;

/// Which lines `wdyno logs` asks for.
pub struct Filter {
    pub tail: bool,
    /// A dyno (`web.1`) or process type (`web`).
    pub ps: Option<String>,
    /// `app` or `wdyno`.
    pub source: Option<String>,
    /// Past lines, capped at what the ring keeps.
    pub num: usize,
}

/// Prints a line; when the reader has gone (`wdyno logs | head`), exits
/// quietly with 0, as `cat` ends in a pipe, instead of panicking.
fn print_or_quit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

/// `logs`: streams until the daemon ends it (at once without `--tail`).
pub async fn show(client: &Client, app: &AppName, filter: &Filter) -> Result<()> {
    if let Some(s) = &filter.source
        && wdyno::logbus::Source::parse(s).is_none()
    {
        bail!("--source is app or wdyno, not {s:?}");
    }
    let session = LogSessionCreate {
        dyno: filter.ps.clone(),
        lines: Some(filter.num.min(wdyno::logbus::LOG_RING_LINES) as u64),
        source: filter.source.clone(),
        tail: Some(filter.tail),
        process_type: None,
    };
    client
        .logs(app.as_str(), &session, &mut print_or_quit)
        .await?;
    Ok(())
}
