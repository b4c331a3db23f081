//! A real `wdyno daemon` process in a temp home, driven with the real CLI.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const WDYNO: &str = env!("CARGO_BIN_EXE_wdyno");

pub struct Daemon {
    child: Option<Child>,
    pub home: tempfile::TempDir,
    pub router: u16,
    /// The address its router listens on (`--bind`).
    pub router_ip: std::net::IpAddr,
    /// A command the daemon runs under (`ip netns exec NS`), if any.
    wrapper: Vec<String>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    pub stderr: mpsc::Receiver<String>,
}

/// What a CLI run printed.
#[derive(Debug)]
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// Fails the test unless the command exited 0.
    pub fn ok(self) -> Out {
        assert_eq!(
            self.code, 0,
            "command failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Shared across daemons so each test app compiles its dependencies once.
pub fn build_cache() -> PathBuf {
    super::scratch().join("build-cache")
}

impl Daemon {
    /// Starts a daemon with short grace and boot times for tests, plus
    /// `extra` flags.
    pub fn start(extra: &[&str]) -> Daemon {
        Daemon::start_with_env(extra, &[])
    }

    /// As [`Daemon::start`], with `env` added to (or, for an empty value,
    /// removed from) the daemon's environment.
    pub fn start_with_env(extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_in(&build_cache(), extra, env)
    }

    /// As [`Daemon::start`], with its own build cache: what the shared one
    /// already holds (installed buildpack tools) is not there.
    pub fn start_with_build_cache(cache: &Path) -> Daemon {
        Daemon::start_in(cache, &[], &[])
    }

    /// A daemon run under `wrapper` (`["ip", "netns", "exec", NS]`) whose
    /// router listens on `router_ip` (pass `--bind` in `extra`).
    pub fn start_wrapped(wrapper: &[&str], router_ip: std::net::IpAddr, extra: &[&str]) -> Daemon {
        let mut d = Daemon::start_full(&build_cache(), wrapper, extra, &[]);
        d.router_ip = router_ip;
        d
    }

    fn start_in(cache: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::start_full(cache, &[], extra, env)
    }

    fn start_full(cache: &Path, wrapper: &[&str], extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let home = tempfile::tempdir().unwrap();
        let mut args: Vec<String> = [
            "daemon",
            "--router-port",
            "0",
            "--api-port",
            "0",
            "--grace",
            "3",
            "--boot-timeout",
            "20",
            "--restart-backoff-ms",
            "200",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("--build-cache".into());
        args.push(cache.display().to_string());
        args.extend(extra.iter().map(|s| s.to_string()));
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let wrapper: Vec<String> = wrapper.iter().map(|s| s.to_string()).collect();
        let (child, router, stderr) = spawn(&wrapper, home.path(), &args, &env);
        Daemon {
            child: Some(child),
            home,
            router,
            router_ip: std::net::Ipv4Addr::LOCALHOST.into(),
            wrapper,
            args,
            env,
            stderr,
        }
    }

    /// The daemon's process id (benchmarks read its RSS and CPU time).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon running").id()
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// Runs the CLI against this daemon.
    pub fn cli(&self, args: &[&str]) -> Out {
        self.cli_in(None, args)
    }

    /// Runs a CLI command with `--json`; it must succeed. Its output, parsed.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.cli(&[args, &["--json"]].concat()).ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?} --json printed no JSON ({e}): {}", out.stdout))
    }

    pub fn cli_in(&self, dir: Option<&Path>, args: &[&str]) -> Out {
        let mut cmd = Command::new(WDYNO);
        cmd.args(args)
            .env("WDYNO_HOME", self.home())
            .env_remove("WDYNO_API_URL");
        if let Some(d) = dir {
            cmd.current_dir(d);
        }
        let out = cmd.output().unwrap();
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Creates `app` and deploys `dir` to it; fails unless both succeed.
    pub fn create_and_deploy(&self, app: &str, dir: &Path) -> Out {
        self.cli(&["apps:create", app]).ok();
        self.cli(&["deploy", dir.to_str().unwrap(), "-a", app]).ok()
    }

    /// `GET path` through the router for `app`.
    pub async fn get(&self, app: &str, path: &str) -> (u16, String) {
        let mut c = super::Client::connect_to((self.router_ip, self.router).into()).await;
        c.get_host(&format!("{app}.localhost"), path).await
    }

    /// Waits (deadline 30 s) until the app answers `path` with 200 and
    /// exactly `want`.
    pub async fn answers(&self, app: &str, path: &str, want: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let mut last = (0, String::new());
        while std::time::Instant::now() < deadline {
            last = self.get(app, path).await;
            if last == (200, want.to_owned()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{app}{path} never answered {want:?}; last answer {last:?}");
    }

    /// `GET path` on the control API, with the token: the JSON answer.
    pub fn api_get(&self, path: &str) -> serde_json::Value {
        self.api_call("GET", path, None)
    }

    /// `POST path` with a JSON body on the control API: the JSON answer.
    pub fn api_post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        self.api_call("POST", path, Some(body))
    }

    fn api_call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        use std::io::{Read, Write};
        let read = |f: &str| std::fs::read_to_string(self.home().join(f)).unwrap();
        let api = read("api");
        let addr = api.trim().trim_start_matches("http://");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            read("api-token").trim(),
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        let body = out.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {path}: {e}: {out}"))
    }

    /// `run --detach -a APP -- COMMAND…`; the one-off's name (`run.N`).
    pub fn run_detached(&self, app: &str, command: &[&str]) -> String {
        let mut argv = vec!["run", "--detach", "-a", app, "--"];
        argv.extend_from_slice(command);
        let out = self.cli(&argv).ok();
        let first = out.stdout.lines().next().unwrap_or_default();
        first.rsplit(' ').next().unwrap().to_owned()
    }

    /// `ps --json`: the app's dynos.
    pub fn ps(&self, app: &str) -> Vec<serde_json::Value> {
        self.json(&["ps", "-a", app]).as_array().unwrap().clone()
    }

    /// `Some(())` once the app has exactly `n` dynos, all up.
    pub fn all_up(&self, app: &str, n: usize) -> Option<()> {
        let list = self.ps(app);
        (list.len() == n && list.iter().all(|x| x["state"] == "up")).then_some(())
    }

    /// `kill -9`: the daemon ends at once, its dynos with it.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Asks the daemon to stop (SIGTERM) and waits for it.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("daemon running");
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().unwrap()
    }

    /// Stops and starts the daemon on the same home.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let (child, router, stderr) = spawn(&self.wrapper, self.home.path(), &self.args, &self.env);
        self.child = Some(child);
        self.router = router;
        self.stderr = stderr;
    }
}

fn spawn(
    wrapper: &[String],
    home: &Path,
    args: &[String],
    env: &[(String, String)],
) -> (Child, u16, mpsc::Receiver<String>) {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(WDYNO);
            c
        }
        None => Command::new(WDYNO),
    };
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .args(args)
        .env("WDYNO_HOME", home)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let err = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    // The daemon says where it listens once it is ready.
    loop {
        let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon did not report its ports within 60 s");
        };
        if let Some(rest) = line.strip_prefix("wdyno daemon: router on http://localhost:") {
            let port = rest.split(',').next().unwrap().parse().unwrap();
            return (child, port, rx);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }
}
