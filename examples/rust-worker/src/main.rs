//! A background worker with no web process: it logs what it does.

fn main() {
    let queue = std::env::var("QUEUE").unwrap_or_else(|_| "default".into());
    println!("worker started on queue {queue}");
    for n in 1.. {
        println!("processed message {n} from {queue}");
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
