//! A worker that drains on stop, as a real app's event loop would: it
//! subscribes to `wdyno:dyno/lifecycle`, then blocks in one `wasi:io/poll`
//! call on two pollables at once — a 50 ms clock tick (its "work") and the
//! stop. When the stop fires it says how far it got and exits 0.

wit_bindgen::generate!({
    path: "wit",
    world: "wdyno:dyno/dyno",
    // The stop pollable is the same `wasi:io/poll` resource the wasip2
    // crate's clock returns, so both go into one `poll` call.
    with: { "wasi:io/poll@0.2.6": wasip2::io::poll },
});

use std::io::Write;
use wasip2::clocks::monotonic_clock;
use wasip2::io::poll::poll;
use wdyno::dyno::lifecycle;

/// One unit of work: long enough to be cheap, short enough that a test
/// sees several before it asks the dyno to stop.
const TICK_NS: u64 = 50_000_000;

fn say(line: &str) {
    println!("{line}");
    let _ = std::io::stdout().flush();
}

fn main() {
    // Subscribe before saying "working", so a stop asked right after that
    // line is never missed.
    let stop = lifecycle::subscribe_stop();
    say("working");
    let mut ticks = 0u64;
    loop {
        let tick = monotonic_clock::subscribe_duration(TICK_NS);
        if poll(&[&tick, &stop]).contains(&1) {
            break;
        }
        ticks += 1;
    }
    let left = lifecycle::grace_remaining_ms().unwrap_or(0);
    say(&format!(
        "draining after {ticks} ticks ({}s of grace left)",
        left / 1000
    ));
    say("drained");
}
