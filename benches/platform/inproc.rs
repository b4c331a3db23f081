//! Figures measured on the runtime inside this process: dyno start, and
//! what epoch preemption costs a CPU-bound handler.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use wdyno::dyno::{DEFAULT_MEMORY, Runtime, RuntimeConfig, State};

use crate::common::{self, Client, Host};
use crate::native::Native;
use crate::{Plan, Row, Table, ms, percentile, ratio};

/// Start to `$PORT` bound: the hello app as a precompiled command-world
/// dyno, against the same app built natively and spawned. The two are
/// interleaved so both see the same machine.
pub async fn start(plan: &Plan, table: &mut Table, app: &Path, bin: &std::path::PathBuf) {
    let mut host = Host::new("bench");
    // Warm up both (component prepared, binary in the page cache).
    let warm = host.start(app, "web.0", &["bin/web"], true);
    assert_eq!(warm.dyno.wait_up().await, State::Up);
    warm.dyno.stop();
    warm.dyno.wait().await;
    drop(Native::spawn_until_bound(bin, common::free_port()));

    let (mut dynos, mut natives) = (Vec::new(), Vec::new());
    let mut leftover_files = 0;
    for i in 0..plan.starts {
        let (proc_, took) = Native::spawn_until_bound(bin, common::free_port());
        natives.push(took);
        drop(proc_);

        let t = Instant::now();
        let d = host.start(app, &format!("web.{}", i + 1), &["bin/web"], true);
        assert_eq!(d.dyno.wait_up().await, State::Up);
        dynos.push(t.elapsed());
        // The dyno never touched its files, so none were copied.
        leftover_files += usize::from(d.work_dir.exists());
        d.dyno.stop();
        d.dyno.wait().await;
    }
    assert_eq!(leftover_files, 0, "dynos that never read files got a copy");
    dynos.sort_unstable();
    natives.sort_unstable();
    for (p, name, target) in [
        (0.5, "p50", Duration::from_millis(1)),
        (0.99, "p99", Duration::from_millis(5)),
    ] {
        let (d, n) = (percentile(&dynos, p), percentile(&natives, p));
        table.row(Row {
            figure: format!(
                "dyno start to `$PORT` bound, {name} ({} starts)",
                plan.starts
            ),
            wdyno: ms(d),
            baseline: format!("native spawn: {}", ms(n)),
            ratio: ratio(n.as_secs_f64() / d.as_secs_f64()),
            target: format!("< {}, faster than native", ms(target)),
            met: Some(d < target && d < n),
        });
    }
}

/// CPU-bound handlers with epoch preemption on against the same engine
/// settings with it off; requests alternate. Two handlers: a sieve (the
/// worst case: a hot loop of three instructions, so the check at its
/// back edge is a large share) and rendering an HTML table (the work of a
/// templating handler).
pub async fn epochs(plan: &Plan, table: &mut Table, app: &Path) {
    let off = Arc::new(
        Runtime::new(&RuntimeConfig {
            cache_dir: common::scratch().join("compiled-no-epochs"),
            max_memory: DEFAULT_MEMORY,
            pooling: true,
            epochs: false,
            capacity: Default::default(),
        })
        .expect("a runtime without epochs"),
    );
    let mut with = Host::new("epochs-on");
    let mut without = Host::new("epochs-off");
    without.runtime = off;
    let on = with.start(app, "web.1", &["bin/web"], true);
    let no = without.start(app, "web.1", &["bin/web"], true);
    assert_eq!(on.dyno.wait_up().await, State::Up);
    assert_eq!(no.dyno.wait_up().await, State::Up);

    for (path, what, want) in [
        ("/cpu?n=2000000", "sieve", "148933\n"),
        ("/render?n=20000", "HTML table", "1221137\n"),
    ] {
        let (mut t_on, mut t_off) = (Vec::new(), Vec::new());
        for round in 0..plan.cpu_rounds + 1 {
            for (port, times) in [(on.port, &mut t_on), (no.port, &mut t_off)] {
                let mut c = Client::connect(port.expect("web dyno port")).await;
                let t = Instant::now();
                assert_eq!(c.get(path).await, (200, want.to_owned()), "{path}");
                // The first round warms both up.
                if round > 0 {
                    times.push(t.elapsed());
                }
            }
        }
        t_on.sort_unstable();
        t_off.sort_unstable();
        let (a, b) = (percentile(&t_on, 0.5), percentile(&t_off, 0.5));
        let r = b.as_secs_f64() / a.as_secs_f64();
        table.row(Row {
            figure: format!("CPU-bound handler ({what}, `{path}`), epochs on, median"),
            wdyno: ms(a),
            baseline: format!("epochs off: {}", ms(b)),
            ratio: ratio(r),
            target: "≥ 0.85x".into(),
            met: Some(r >= 0.85),
        });
    }
    for d in [&on, &no] {
        d.dyno.stop();
        d.dyno.wait().await;
    }
}
