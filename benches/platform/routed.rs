//! The router's figures: requests/s through it to N web dynos against the
//! same app native with no proxy at all (and, while the dynos still have
//! ports of their own, against the same load straight to them), for
//! keep-alive clients and clients that send `Connection: close`; the router
//! thread's CPU per request; and the p99 it adds at one connection.
//!
//! The native baseline is the hello app (std::net, `Connection: close`):
//! the keep-alive app (probe, wstd) only builds for wasm, so its rows say
//! they compare against hello.

use std::path::PathBuf;
use std::time::Duration;

use crate::load::{self, Target};
use crate::native::{self, Fleet};
use crate::served::{APP, Served, rps, us};
use crate::{Plan, Row, Table, ms, ratio};

/// How the load generator's connections behave.
#[derive(Clone, Copy)]
pub enum Client {
    KeepAlive,
    /// `Connection: close` on every request: a connect per request.
    Close,
}

impl Client {
    pub const BOTH: [Client; 2] = [Client::KeepAlive, Client::Close];

    pub fn name(self) -> &'static str {
        match self {
            Client::KeepAlive => "keep-alive client",
            Client::Close => "`Connection: close` client",
        }
    }

    pub fn target(self, t: Target) -> Target {
        match self {
            Client::KeepAlive => t,
            Client::Close => t.closing(),
        }
    }
}

/// The router's CPU per keep-alive request may be at most this.
const ROUTER_CPU: Duration = Duration::from_micros(10);

/// What an app is, for the figure's text.
fn what(app: &str) -> &'static str {
    match app {
        APP => "hello, `Connection: close` app",
        _ => "probe, keep-alive app",
    }
}

/// The native baseline's words: how many processes, and why hello.
fn native_words(app: &str, n: usize) -> String {
    let processes = match n {
        1 => "native hello, no proxy".to_owned(),
        _ => format!("{n} native hello processes, no proxy, the load spread over them"),
    };
    match app {
        APP => processes,
        _ => format!("{processes} (probe has no native build)"),
    }
}

/// The router rows for each of `apps` at `n` web dynos, with both kinds of
/// client, against `n` native hello processes measured in between.
pub async fn router(
    plan: &Plan,
    table: &mut Table,
    s: &Served,
    apps: &[&str],
    n: usize,
    bin: &PathBuf,
) {
    for app in apps {
        s.scale(app, n).await;
    }
    let fleet = Fleet::spawn(bin, n);
    // At least one connection per dyno, so the load reaches every dyno (and
    // every native process) as the router's does.
    let (c, t) = (plan.concurrency.max(n), plan.load_time);
    let front = load::front_server();
    for client in Client::BOTH {
        let front_cpu = front_cpu(front, client, c, t).await;
        let native = load::run(
            &client.target(Target::new(fleet.addrs(), "localhost", "/")),
            c,
            t,
        )
        .await;
        assert_eq!(native.failed, 0, "the native hello app failed requests");
        for app in apps {
            let ports = s.direct_ports(app).await;
            // Left out once dynos have no ports of their own.
            let direct = match ports.is_empty() {
                true => None,
                false => {
                    let direct = client.target(Target::new(ports, "localhost", "/"));
                    let (d, d_cpu) = s.load(&direct, c, t).await;
                    assert_eq!(d.failed, 0, "requests straight to the dynos failed");
                    Some((d, d_cpu))
                }
            };
            let (r, r_cpu) = s.load(&client.target(s.routed(app, "/")), c, t).await;
            assert_eq!(r.failed, 0, "requests through the router failed");
            let x = r.rps() / native.rps();
            let direct_words = direct
                .as_ref()
                .map(|(d, _)| format!("; direct to the dynos: {}", rps(d)))
                .unwrap_or_default();
            let what = what(app);
            table.row(Row {
                figure: format!(
                    "requests/s through the router, {n} web dyno(s) ({what}), {}, {c} connections",
                    client.name()
                ),
                wdyno: rps(&r),
                baseline: format!("{}: {}{direct_words}", native_words(app, n), rps(&native)),
                ratio: ratio(x),
                target: "≥ 0.8x native".into(),
                met: Some(x >= 0.8),
            });
            let direct_cpu = direct
                .as_ref()
                .map(|(_, d)| format!(", direct {}", us(d.daemon)))
                .unwrap_or_default();
            let keep_alive = matches!(client, Client::KeepAlive);
            table.row(Row {
                figure: format!(
                    "router thread CPU per request, {n} web dyno(s) ({what}), {}",
                    client.name()
                ),
                wdyno: us(r_cpu.router),
                baseline: format!(
                    "whole daemon: routed {}{direct_cpu}; the router's front alone (its hyper server on a thread of its own answering itself, no route, no dyno): {}",
                    us(r_cpu.daemon),
                    us(front_cpu)
                ),
                ratio: "—".into(),
                target: match keep_alive {
                    true => format!("≤ {}", us(ROUTER_CPU)),
                    false => "— (the target is for keep-alive)".into(),
                },
                met: keep_alive.then_some(r_cpu.router <= ROUTER_CPU),
            });
        }
    }
    if n == 1 {
        for app in apps {
            added_p99(plan, table, s, app).await;
        }
    }
    drop(fleet);
    for app in apps {
        s.scale(app, 1).await;
    }
}

/// CPU per request of [`load::front_server`]'s thread under the same load.
async fn front_cpu(port: u16, client: Client, c: usize, t: Duration) -> Duration {
    let me = std::process::id();
    let before = native::thread_cpu_time(me, load::FRONT_THREAD);
    let l = load::run(&client.target(Target::local(port, "localhost", "/")), c, t).await;
    assert_eq!(l.failed, 0, "the front alone failed requests");
    let n = u32::try_from(l.ok.max(1)).unwrap_or(u32::MAX);
    native::thread_cpu_time(me, load::FRONT_THREAD).saturating_sub(before) / n
}

/// The p99 latency the router adds at one keep-alive connection to one
/// dyno, against the same straight to the dyno (left out when the dyno
/// has no port of its own).
async fn added_p99(plan: &Plan, table: &mut Table, s: &Served, app: &str) {
    let ports = s.direct_ports(app).await;
    if ports.is_empty() {
        return;
    }
    let t = plan.load_time;
    let d = load::run(&Target::new(ports, "localhost", "/"), 1, t).await;
    let r = load::run(&s.routed(app, "/"), 1, t).await;
    let (dp, rp) = (d.percentile(0.99), r.percentile(0.99));
    let added = rp.saturating_sub(dp);
    table.row(Row {
        figure: format!(
            "p99 latency added by the router ({}, 1 connection)",
            what(app)
        ),
        wdyno: ms(added),
        baseline: format!("direct p99 {}, routed p99 {}", ms(dp), ms(rp)),
        ratio: "—".into(),
        target: "< 1 ms".into(),
        met: Some(added < Duration::from_millis(1)),
    });
}
