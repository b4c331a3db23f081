//! wdyno's benchmarks, each figure beside a baseline measured in the same
//! run, so the ratio holds on a noisy machine.
//!
//! `cargo bench --bench platform` runs the full table (a few minutes);
//! `cargo bench --bench platform -- --quick` runs every figure briefly (CI
//! calls it so the harness cannot rot). The load generator is the
//! harness's own (`load.rs`); apps are built by the real buildpacks, the
//! platform is a real `wdyno daemon` process.

mod baselines;
mod cluster;
#[path = "../../tests/common/mod.rs"]
mod common;
mod density;
mod faq;
mod inproc;
mod load;
mod native;
mod routed;
mod served;
mod wake;

use std::time::Duration;

/// How long and how much each figure runs.
pub struct Plan {
    pub quick: bool,
    pub starts: usize,
    pub load_time: Duration,
    pub concurrency: usize,
    pub scale: usize,
    pub many: usize,
    pub rollbacks: usize,
    pub cpu_rounds: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                starts: 50,
                load_time: Duration::from_millis(500),
                concurrency: 16,
                scale: 200,
                many: 20,
                rollbacks: 2,
                cpu_rounds: 3,
            }
        } else {
            Plan {
                quick,
                starts: 1000,
                load_time: Duration::from_secs(5),
                concurrency: 16,
                scale: 1000,
                many: 100,
                rollbacks: 10,
                cpu_rounds: 30,
            }
        }
    }
}

/// One line of the table.
pub struct Row {
    pub figure: String,
    pub wdyno: String,
    pub baseline: String,
    pub ratio: String,
    pub target: String,
    /// Whether the target is met; `None` where there is no target or the
    /// figure was skipped.
    pub met: Option<bool>,
}

#[derive(Default)]
pub struct Table(Vec<Row>);

impl Table {
    pub fn row(&mut self, row: Row) {
        // Printed as it comes too, so a long run shows progress.
        eprintln!("  {}: {} ({})", row.figure, row.wdyno, row.baseline);
        self.0.push(row);
    }

    fn print(&self) {
        println!("| figure | wdyno | baseline (same run) | ratio | target | met |");
        println!("|---|---|---|---|---|---|");
        for r in &self.0 {
            let met = match r.met {
                Some(true) => "yes",
                Some(false) => "**no**",
                None => "—",
            };
            println!(
                "| {} | {} | {} | {} | {} | {met} |",
                r.figure, r.wdyno, r.baseline, r.ratio, r.target
            );
        }
    }
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

pub fn ratio(r: f64) -> String {
    format!("{r:.2}x")
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{cores} cores, {cpu}")
}

fn main() {
    // As the daemon does: no backtrace walk on every wasmtime error.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(bench());
}

async fn bench() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only NAME[,NAME…]` runs some figures (for profiling one).
    let only: Option<Vec<String>> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|names| names.split(',').map(str::to_owned).collect());
    let want = |name: &str| only.as_ref().is_none_or(|o| o.iter().any(|n| n == name));
    let plan = Plan::new(quick);
    let mut table = Table::default();
    eprintln!("building the hello app (buildpack and native)…");
    let app = common::built_app("hello");
    common::built_app("rust-http");
    let bin = native::build_hello();

    eprintln!("figures:");
    if want("ceiling") {
        served::ceiling(&plan, &mut table).await;
    }
    if want("start") {
        inproc::start(&plan, &mut table, &app, &bin).await;
    }
    if want("epochs") {
        inproc::epochs(&plan, &mut table, &app).await;
    }
    // Before the shared daemon starts: its own daemons and NATS servers
    // take the machine.
    if want("cluster") {
        cluster::cluster(&plan, &mut table).await;
    }
    let s = served::Served::start().await;
    if want("std-net") {
        served::std_net(&plan, &mut table, &s, &bin).await;
    }
    // `router` and `nginx` run at 1 and at N dynos; adding `many` to
    // `--only` narrows them to N, `keep-alive` narrows `router` to the
    // keep-alive app (for profiling one case).
    let narrowed = |name: &str| only.as_ref().is_some_and(|o| o.iter().any(|n| n == name));
    let dynos = match narrowed("many") {
        true => vec![plan.many],
        false => vec![1, plan.many],
    };
    if want("router") {
        let apps = match narrowed("keep-alive") {
            true => vec![served::KEEP_ALIVE],
            false => vec![served::KEEP_ALIVE, served::APP],
        };
        for &n in &dynos {
            routed::router(&plan, &mut table, &s, &apps, n, &bin).await;
        }
    }
    if want("nginx") {
        for &n in &dynos {
            baselines::nginx(&plan, &mut table, &s, n, &bin).await;
        }
    }
    if want("faq") {
        faq::faq(&plan, &mut table, &s).await;
    }
    if want("wake") {
        wake::wake(&plan, &mut table, &s).await;
    }
    if want("scale") {
        served::scale(&plan, &mut table, &s).await;
    }
    if want("rollback") {
        served::rollback(&plan, &mut table, &s).await;
    }
    if want("metrics") {
        served::metrics(&plan, &mut table, &s).await;
    }
    if want("proxy") {
        baselines::proxy(&plan, &mut table, &s).await;
    }
    if want("density") {
        density::density(&plan, &mut table, &s).await;
    }

    println!();
    println!(
        "wdyno benchmarks{}, {}, {}",
        if plan.quick { " (--quick)" } else { "" },
        chrono::Utc::now().format("%Y-%m-%d"),
        machine()
    );
    println!();
    table.print();
}
