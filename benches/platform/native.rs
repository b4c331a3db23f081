//! Baselines outside wdyno: the hello app built natively, and what procfs
//! says about a process.

use std::net::{Ipv4Addr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::repo;

/// Builds `tests/apps/hello` for the host, from the same source the Rust
/// buildpack builds for the dyno, and returns the binary.
pub fn build_hello() -> PathBuf {
    let target = repo().join("target/bench-native");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(repo().join("tests/apps/hello/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target)
        .status()
        .expect("running cargo");
    assert!(status.success(), "building the native hello app");
    target.join("release/web")
}

/// The native hello app, serving on `port`.
pub struct Native(Child);

impl Native {
    pub fn spawn(bin: &PathBuf, port: u16) -> Native {
        let child = Command::new(bin)
            .env_clear()
            .env("PORT", port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawning the native hello app");
        Native(child)
    }

    /// Spawns it and waits until `port` accepts a connection: the same
    /// point a dyno is `up`. Returns the time that took.
    pub fn spawn_until_bound(bin: &PathBuf, port: u16) -> (Native, Duration) {
        let t = Instant::now();
        let native = Native::spawn(bin, port);
        wait_bound(port, Duration::from_secs(10));
        (native, t.elapsed())
    }
}

impl Drop for Native {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` native hello processes, each on a port of its own: the baseline
/// for `n` dynos.
pub struct Fleet {
    pub ports: Vec<u16>,
    _processes: Vec<Native>,
}

impl Fleet {
    pub fn spawn(bin: &PathBuf, n: usize) -> Fleet {
        // Held until all are chosen, so no port comes up twice.
        let held: Vec<std::net::TcpListener> = (0..n)
            .map(|_| std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap())
            .collect();
        let ports: Vec<u16> = held
            .iter()
            .map(|l| l.local_addr().unwrap().port())
            .collect();
        drop(held);
        let processes = ports.iter().map(|&p| Native::spawn(bin, p)).collect();
        for &p in &ports {
            wait_bound(p, Duration::from_secs(10));
        }
        Fleet {
            ports,
            _processes: processes,
        }
    }

    pub fn addrs(&self) -> Vec<std::net::SocketAddr> {
        let local = |&p: &u16| std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, p));
        self.ports.iter().map(local).collect()
    }
}

/// Polls until `port` accepts a connection, or panics at the deadline.
pub fn wait_bound(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listened on {port}");
        std::hint::spin_loop();
    }
}

/// Resident set size of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// User plus system CPU time process `pid` has used.
pub fn cpu_time(pid: u32) -> Duration {
    stat_cpu(&format!("/proc/{pid}/stat"))
}

/// CPU time of the threads of `pid` named `name`.
pub fn thread_cpu_time(pid: u32, name: &str) -> Duration {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("reading /proc/PID/task");
    tasks
        .filter_map(Result::ok)
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .map(|t| stat_cpu(&t.path().join("stat").to_string_lossy()))
        .sum()
}

fn stat_cpu(path: &str) -> Duration {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ")".
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5); `rest` starts at 3.
    let total = ticks(11) + ticks(12);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_nanos(total * 1_000_000_000 / hz)
}
