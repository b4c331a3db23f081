//! Density: the dyno capacity a daemon reports on this machine, and
//! `scale web=10000` of the hello app on one host with `vm.max_map_count`
//! raised (when the bench runs as root it raises it for this figure and
//! puts it back).

use std::time::{Duration, Instant};

use crate::common::daemon::Daemon;
use crate::native;
use crate::served::{APP, Served};
use crate::{Plan, Row, Table};

const MAX_MAP_COUNT: &str = "/proc/sys/vm/max_map_count";
/// Enough maps for 10 000 dynos at 7 each, with room for the daemon.
const RAISED_MAPS: u64 = 262_144;

/// `vm.max_map_count` set to a value for as long as this lives.
struct MapCount {
    old: u64,
}

impl MapCount {
    fn raise(to: u64) -> Result<MapCount, String> {
        let old: u64 = std::fs::read_to_string(MAX_MAP_COUNT)
            .map_err(|e| format!("reading {MAX_MAP_COUNT}: {e}"))?
            .trim()
            .parse()
            .map_err(|e| format!("{MAX_MAP_COUNT}: {e}"))?;
        if old < to {
            std::fs::write(MAX_MAP_COUNT, to.to_string())
                .map_err(|e| format!("raising vm.max_map_count needs root: {e}"))?;
        }
        Ok(MapCount { old })
    }
}

impl Drop for MapCount {
    fn drop(&mut self) {
        let _ = std::fs::write(MAX_MAP_COUNT, self.old.to_string());
    }
}

fn maps(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map(|m| m.lines().count() as u64)
        .unwrap_or(0)
}

/// Polls the app's dynos (every 100 ms: a 10 000-dyno list is large)
/// until `n` web dynos are up.
async fn until_up(s: &Served, n: usize, started: Instant) -> Duration {
    let deadline = started + Duration::from_secs(300);
    loop {
        let (_, dynos) = s.api("GET", &format!("/apps/{APP}/dynos"), None).await;
        let up = dynos
            .as_array()
            .map_or(0, |d| d.iter().filter(|x| x["state"] == "up").count());
        if up == n {
            return started.elapsed();
        }
        assert!(Instant::now() < deadline, "web={n} never came up ({up} up)");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn density(plan: &Plan, table: &mut Table, s: &Served) {
    // What the platform's own daemon reports with the machine as it is.
    let (_, hosts) = s.api("GET", "/hosts", None).await;
    let cap = &hosts[0]["capacity"];
    let host_maps = std::fs::read_to_string(MAX_MAP_COUNT).unwrap_or_default();
    table.row(Row {
        figure: format!(
            "dyno capacity reported (vm.max_map_count {}, ulimit -n {})",
            host_maps.trim(),
            open_files(s.daemon.pid())
        ),
        wdyno: format!(
            "{} dynos (+{} proxy slots), set by {}",
            cap["capacity"],
            cap["proxy_reserve"],
            cap["limit"].as_str().unwrap_or("?")
        ),
        baseline: "before: 1333 up of any scale, then crashes".into(),
        ratio: "—".into(),
        target: "stated, not crashed".into(),
        met: Some(cap["capacity"].as_u64().unwrap_or(0) > 1333),
    });

    let n = if plan.quick { 300 } else { 10_000 };
    let _raised = match MapCount::raise(RAISED_MAPS) {
        Ok(r) => r,
        Err(why) => {
            table.row(Row {
                figure: format!("`scale web={n}` on one host until all up"),
                wdyno: format!("skipped: {why}"),
                baseline: "—".into(),
                ratio: "—".into(),
                target: "< 5 s".into(),
                met: None,
            });
            return;
        }
    };
    let d = Served::attach(Daemon::start(&["--max-app-dynos", &n.to_string()]));
    d.deploy(APP, "hello");
    d.daemon.answers(APP, "/", "hello\n").await;
    let (_, hosts) = d.api("GET", "/hosts", None).await;
    let capacity = hosts[0]["capacity"]["capacity"].as_u64().unwrap_or(0);
    let pid = d.daemon.pid();
    let (rss, map) = (native::rss_kib(pid), maps(pid));
    let t = Instant::now();
    d.set_web(APP, n).await;
    let took = until_up(&d, n, t).await;
    let grown = native::rss_kib(pid).saturating_sub(rss);
    let per_dyno_maps = maps(pid).saturating_sub(map) as f64 / (n - 1) as f64;
    table.row(Row {
        figure: format!("`scale web={n}` on one host until all up"),
        wdyno: format!("{:.2} s", took.as_secs_f64()),
        baseline: format!("host capacity with vm.max_map_count {RAISED_MAPS}: {capacity}"),
        ratio: "—".into(),
        target: "< 5 s".into(),
        met: Some(took.as_secs_f64() < 5.0 * n as f64 / 10_000.0),
    });
    table.row(Row {
        figure: format!("daemon RSS growth, {n} idle hello dynos"),
        wdyno: format!(
            "{:.1} MiB ({} KiB/dyno, {per_dyno_maps:.1} maps/dyno)",
            grown as f64 / 1024.0,
            grown / (n as u64 - 1)
        ),
        baseline: "—".into(),
        ratio: "—".into(),
        target: "< 100 KiB/dyno".into(),
        met: Some(grown / (n as u64 - 1) < 100),
    });
    d.set_web(APP, 0).await;
    drop(d);
}

fn open_files(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/limits"))
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3).map(str::to_owned))
        })
        .unwrap_or_else(|| "?".into())
}
