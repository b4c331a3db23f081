//! The `edge` app (tests/apps/edge) behind a real daemon, and the
//! router's lines about it: what the router tests drive.

use super::daemon::Daemon;
use super::{built_app, until};

/// A slug of the `edge` app (web) and the `probe` tool, ready to deploy.
pub fn edge_slug() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let edge = built_app("edge");
    let probe = built_app("probe");
    std::fs::copy(edge.join("bin/web.wasm"), dir.path().join("bin/web.wasm")).unwrap();
    std::fs::copy(
        probe.join("bin/probe.wasm"),
        dir.path().join("bin/probe.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("Procfile"), "web: bin/web\n").unwrap();
    dir
}

/// A daemon running `edge_slug` as `app`, its web dyno answering.
pub async fn edge_daemon(app: &str, extra: &[&str]) -> Daemon {
    let d = Daemon::start(extra);
    let slug = edge_slug();
    d.create_and_deploy(app, slug.path());
    d.answers(app, "/", "edge\n").await;
    d
}

/// The router's lines in `app`'s log, as `wdyno logs` prints them.
pub fn router_lines(d: &Daemon, app: &str) -> Vec<String> {
    d.cli(&["logs", "-a", app, "--ps", "router", "-n", "1500"])
        .ok()
        .stdout
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Waits for the router line of `app` that contains `needle`.
pub async fn router_line(d: &Daemon, app: &str, needle: &str) -> String {
    until(&format!("a router line with {needle:?}"), 10, || {
        router_lines(d, app)
            .into_iter()
            .find(|l| l.contains(needle))
    })
    .await
}

/// A GET of `path` for `host`, as a client writes it.
pub fn get(host: &str, path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes()
}
