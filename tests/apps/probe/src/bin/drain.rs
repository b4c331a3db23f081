//! A worker that drains on stop: it subscribes to `wdyno:dyno/lifecycle`,
//! works in ticks, and when the stop fires finishes its tick and exits 0.

wit_bindgen::generate!({
    path: "wit",
    world: "wdyno:dyno/dyno",
    generate_all,
});

use std::io::Write;
use wdyno::dyno::lifecycle;

fn main() {
    let stop = lifecycle::subscribe_stop();
    println!("working");
    let _ = std::io::stdout().flush();
    let mut ticks = 0u64;
    while !stop.ready() {
        std::thread::sleep(std::time::Duration::from_millis(20));
        ticks += 1;
    }
    let left = lifecycle::grace_remaining_ms().unwrap_or(0);
    println!("draining after {ticks} ticks ({}s of grace left)", left / 1000);
    let _ = std::io::stdout().flush();
    println!("drained");
}
