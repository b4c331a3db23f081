//! Dyno start time and idle footprint.
//!
//! `cargo bench --bench dyno [-- --quick]` prints:
//! - start to `$PORT` bound (`up`) of a precompiled command-world web dyno,
//!   p50/p99 over N starts, beside a native process spawn of `true` in the
//!   same run as the baseline of "starting something";
//! - RSS growth of the process for 100 idle web dynos.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::{Host, built_app};
use wdyno::dyno::State;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let starts = if quick { 50 } else { 1000 };
    let idle = if quick { 10 } else { 100 };
    let app = built_app("probe");
    let mut host = Host::new("bench");
    host.grace = Duration::from_secs(5);

    // Warm up: compile (or load) the component once.
    common::runtime()
        .prepare(&app.join("bin/web.wasm"))
        .unwrap();

    let mut native = Vec::with_capacity(starts);
    for _ in 0..starts {
        let t = Instant::now();
        std::process::Command::new("true").status().unwrap();
        native.push(t.elapsed());
    }
    native.sort();

    let mut times = Vec::with_capacity(starts);
    for i in 0..starts {
        let t = Instant::now();
        let d = host.start(&app, &format!("web.{}", i + 1), &["bin/web"], true);
        assert_eq!(d.dyno.wait_up().await, State::Up);
        times.push(t.elapsed());
        d.dyno.stop();
        d.dyno.wait().await;
    }
    times.sort();

    let before = rss_kib();
    let mut running = Vec::new();
    for i in 0..idle {
        running.push(host.start(&app, &format!("idle.{}", i + 1), &["bin/web"], true));
    }
    for d in &running {
        assert_eq!(d.dyno.wait_up().await, State::Up);
    }
    let grown = rss_kib().saturating_sub(before);

    println!("| figure | wdyno | baseline (same run) | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| web dyno start to $PORT bound, p50 ({starts} starts) | {} | spawn `true`: {} | {:.2}x |",
        ms(percentile(&times, 0.5)),
        ms(percentile(&native, 0.5)),
        percentile(&times, 0.5).as_secs_f64() / percentile(&native, 0.5).as_secs_f64()
    );
    println!(
        "| web dyno start to $PORT bound, p99 | {} | spawn `true`: {} | {:.2}x |",
        ms(percentile(&times, 0.99)),
        ms(percentile(&native, 0.99)),
        percentile(&times, 0.99).as_secs_f64() / percentile(&native, 0.99).as_secs_f64()
    );
    println!(
        "| RSS growth, {idle} idle web dynos | {} MiB ({} KiB/dyno) | — | — |",
        grown / 1024,
        grown / idle as u64
    );
    for d in &running {
        d.dyno.stop();
    }
    for d in &running {
        d.dyno.wait().await;
    }
}
