//! A background worker: does a unit of work every few seconds and logs it.

fn main() {
    let every = std::env::var("WORKER_INTERVAL_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    for job in 1.. {
        println!("worker: finished job {job}");
        std::thread::sleep(std::time::Duration::from_millis(every));
    }
}
