//! The scenario of Heroku's routing FAQ: single-threaded dynos, a few slow
//! requests among many fast ones, and random routing queueing fast
//! requests behind slow ones where least-connections would not.
//!
//! The dynos are the hello app's (std::net: one connection at a time, and
//! `Connection: close`, so the router opens a connection per request and a
//! dyno's backlog is its queue); `/sleep?n=µs` makes each request's service
//! time exact and CPU-free, so the dynos' utilisation is what the arrival
//! rate makes it and not what the machine's 2 cores allow. Arrivals are a
//! Poisson process (open loop: their times never depend on answers), the
//! same seeded schedule for both routings.

use std::time::Duration;

use rand::{RngExt, SeedableRng};
use serde_json::json;

use crate::load::{self, Arrival, OpenLoad};
use crate::served::Served;
use crate::{Plan, Row, Table, ms, ratio};

const APP: &str = "faq";
const DYNOS: usize = 10;
const FAST: &str = "/sleep?n=1000";
const SLOW: &str = "/sleep?n=20000";
/// The share of requests that are slow (20x the rest).
const SLOW_SHARE: f64 = 0.1;
const UTILISATION: f64 = 0.75;
/// Least-connections' p99 may be at most this share of random's.
const TARGET: f64 = 1.0 / 3.0;

/// How long a dyno is busy with a request for `path`: the dynos' time
/// over the requests they finished, kept busy (least-connections, 4
/// connections a dyno) for `time`. That includes what each request costs
/// the dyno besides the sleep (its connection, its HTTP, the timer's
/// rounding), so the arrival rate loads the dynos as said.
async fn service_time(s: &Served, path: &str, time: Duration) -> Duration {
    let l = load::run(&s.routed(APP, path), 4 * DYNOS, time).await;
    assert_eq!(l.failed, 0, "{path} failed");
    (l.elapsed * DYNOS as u32) / u32::try_from(l.ok.max(1)).unwrap_or(u32::MAX)
}

async fn set_routing(s: &Served, routing: &str) {
    let (status, body) = s
        .api(
            "PATCH",
            &format!("/apps/{APP}"),
            Some(json!({ "routing": routing })),
        )
        .await;
    assert_eq!(status, 200, "setting routing {routing}: {body}");
}

/// A Poisson process at `rate` requests/s for `time`, each request slow
/// with probability [`SLOW_SHARE`].
fn schedule(rate: f64, time: Duration) -> Vec<Arrival> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2013);
    let mut at = 0.0;
    let mut arrivals = Vec::new();
    loop {
        // Exponential gaps: -ln(U)/rate, U in (0, 1].
        at += -(1.0 - rng.random::<f64>()).ln() / rate;
        if at >= time.as_secs_f64() {
            return arrivals;
        }
        let slow = rng.random::<f64>() < SLOW_SHARE;
        arrivals.push(Arrival {
            at: Duration::from_secs_f64(at),
            path: (if slow { SLOW } else { FAST }).to_owned(),
        });
    }
}

fn p50_p99(l: &OpenLoad) -> String {
    let failed = match l.failed {
        0 => String::new(),
        n => format!(", {n} failed"),
    };
    format!(
        "p50 {}, p99 {}{failed}",
        ms(crate::percentile(&l.latencies, 0.5)),
        ms(crate::percentile(&l.latencies, 0.99))
    )
}

pub async fn faq(plan: &Plan, table: &mut Table, s: &Served) {
    s.deploy(APP, "hello");
    s.scale(APP, DYNOS).await;
    s.daemon.answers(APP, "/", "hello\n").await;
    let calibrate = match plan.quick {
        true => Duration::from_millis(200),
        false => Duration::from_secs(1),
    };
    set_routing(s, "least-connections").await;
    let fast = service_time(s, FAST, calibrate).await;
    let slow = service_time(s, SLOW, calibrate * 2).await;
    let mean = fast.mul_f64(1.0 - SLOW_SHARE) + slow.mul_f64(SLOW_SHARE);
    let rate = UTILISATION * DYNOS as f64 / mean.as_secs_f64();
    // A full run is at least 10 s and 20 000 requests, for a steady p99.
    let time = match plan.quick {
        true => Duration::from_secs(1),
        false => Duration::from_secs_f64((20_000.0 / rate).max(10.0)),
    };
    let arrivals = schedule(rate, time);
    let mut runs = Vec::new();
    for routing in ["random", "least-connections"] {
        set_routing(s, routing).await;
        runs.push(load::open_loop(&s.routed(APP, "/"), &arrivals).await);
    }
    let (random, least) = (&runs[0], &runs[1]);
    let p99 = |l: &OpenLoad| crate::percentile(&l.latencies, 0.99).as_secs_f64();
    let x = p99(least) / p99(random).max(f64::EPSILON);
    table.row(Row {
        figure: format!(
            "routing FAQ: {DYNOS} single-threaded hello dynos (one connection at a time), 10% of \
             requests sleep 20 ms and the rest 1 ms (a dyno busy {} and {} with each, measured), \
             Poisson arrivals at 75% utilisation ({rate:.0} req/s, {} requests), latency from \
             each request's due time",
            ms(fast),
            ms(slow),
            arrivals.len()
        ),
        wdyno: format!("least-connections: {}", p50_p99(least)),
        baseline: format!("random: {}", p50_p99(random)),
        ratio: ratio(x),
        target: "p99 ≤ 0.33x random's".into(),
        met: Some(x <= TARGET && least.failed == 0 && random.failed == 0),
    });
    s.scale(APP, 0).await;
}
