//! `wdyno local` as a Foreman / `heroku local` user expects: it reads
//! `.env` (or `-e FILE`), takes `web=2` or a bare process name, honours
//! `$PORT` and `-p`, and with its one app plain `http://localhost:PORT/`
//! reaches it.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::daemon::WDYNO;
use common::{built_app, stdout_lines};

/// A prebuilt app: the hello component (answers `$GREETING`), a Procfile
/// and `files`.
fn app_dir(procfile: &str, files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("greet").tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    std::fs::copy(
        built_app("hello").join("bin/web.wasm"),
        dir.path().join("bin/web.wasm"),
    )
    .unwrap();
    std::fs::write(dir.path().join("Procfile"), procfile).unwrap();
    for (path, text) in files {
        std::fs::write(dir.path().join(path), text).unwrap();
    }
    dir
}

struct Local {
    child: Child,
    /// Its $HOME and build cache, kept while it runs.
    _home: tempfile::TempDir,
    lines: Receiver<String>,
    app: String,
    port: u16,
}

/// Starts `wdyno local ARGS` in `cwd` with `env`, and waits for the line
/// that says where it serves.
fn local(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Local {
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(WDYNO);
    cmd.arg("local")
        .args(args)
        .current_dir(cwd)
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env_remove("PORT")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let lines = stdout_lines(&mut child);
    loop {
        let l = lines
            .recv_timeout(Duration::from_secs(120))
            .expect("wdyno local says where it serves");
        if let Some(rest) = l.strip_prefix("-----> ")
            && let Some((app, rest)) = rest.split_once(" on http://")
            && let Some(rest) = rest.strip_prefix(&format!("{app}.localhost:"))
        {
            let port = rest.split(' ').next().unwrap().parse().unwrap();
            assert!(
                l.ends_with(&format!("(also http://localhost:{port}/) (Ctrl-C to stop)")),
                "{l}"
            );
            return Local {
                child,
                _home: home,
                lines,
                app: app.to_owned(),
                port,
            };
        }
    }
}

impl Local {
    /// Waits (30 s) until `Host: host` `GET /` answers 200 with `want`.
    async fn answers(&self, host: &str, want: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut c = common::Client::connect(self.port).await;
            let got = c.get_host(host, "/").await;
            if got == (200, want.to_owned()) {
                return;
            }
            assert!(Instant::now() < deadline, "{host}: {got:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (30 s) for a printed line containing `text`.
    fn saw(&self, text: &str) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(deadline - Instant::now()) {
            let hit = l.contains(text);
            seen.push(l);
            if hit {
                return seen;
            }
        }
        panic!("no line with {text:?} within 30 s: {seen:#?}");
    }

    /// Ctrl-C; everything it printed after what was read.
    fn stop(mut self) -> Vec<String> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
        assert!(self.child.wait().unwrap().success());
        self.lines.iter().collect()
    }
}

impl Drop for Local {
    /// A failed test leaves no `wdyno local` behind.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_reads_dotenv_and_plain_localhost_reaches_its_app() {
    let dir = app_dir(
        "web: bin/web\n",
        &[(".env", "# Foreman's format\nGREETING=\"hi from .env\"\n")],
    );
    let l = local(dir.path(), &["-p", "0"], &[]);
    l.answers(&format!("localhost:{}", l.port), "hi from .env\n")
        .await;
    l.answers("127.0.0.1", "hi from .env\n").await;
    l.answers(&format!("{}.localhost", l.app), "hi from .env\n")
        .await;
    l.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_reads_the_env_file_named_with_e_instead() {
    let dir = app_dir(
        "web: bin/web\n",
        &[
            (".env", "GREETING=not this\n"),
            ("other.env", "GREETING='from -e'\n"),
        ],
    );
    let l = local(dir.path(), &[".", "-e", "other.env", "-p", "0"], &[]);
    l.answers("localhost", "from -e\n").await;
    l.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_honours_port_and_p_wins_over_it() {
    let dir = app_dir("web: bin/web\n", &[]);
    let port = common::free_port();
    let l = local(dir.path(), &[], &[("PORT", &port.to_string())]);
    assert_eq!(l.port, port);
    l.answers("localhost", "hello\n").await;
    l.stop();
    let dotenv = common::free_port();
    let dir = app_dir("web: bin/web\n", &[(".env", &format!("PORT={dotenv}\n"))]);
    let l = local(dir.path(), &[], &[("PORT", "1")]);
    assert_eq!(l.port, dotenv, ".env's PORT wins over $PORT, as in Foreman");
    l.stop();
    let l = local(dir.path(), &["-p", "0"], &[("PORT", "1")]);
    assert_ne!(l.port, dotenv, "-p wins");
    l.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_takes_a_formation_or_a_process_name_as_heroku_local_does() {
    // `other` would crash (it has no $PORT): it must not run.
    let dir = app_dir("web: bin/web\nother: bin/web\n", &[]);
    let d = dir.path().to_str().unwrap();
    let l = local(Path::new("/"), &[d, "web=2", "-p", "0"], &[]);
    l.saw("web.2 wdyno  | State changed from starting to up");
    let rest = l.stop();
    assert!(!rest.iter().any(|l| l.contains("other.")), "{rest:#?}");

    let l = local(dir.path(), &["web", "-p", "0"], &[]);
    let seen = l.saw("web.1 wdyno  | State changed from starting to up");
    let rest = l.stop();
    let all: Vec<&String> = seen.iter().chain(&rest).collect();
    assert!(
        !all.iter()
            .any(|l| l.contains("other.") || l.contains("web.2")),
        "{all:#?}"
    );
}

#[test]
fn local_refuses_a_process_type_the_procfile_lacks() {
    let dir = app_dir("web: bin/web\n", &[]);
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(WDYNO)
        .args(["local", "clock", "-p", "0"])
        .current_dir(dir.path())
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        " !     clock: no process type clock in the Procfile (it has: web)\n"
    );
}

/// `wdyno local DIR -p 0` with its stdout on a terminal (a pty), `env`
/// added: the first line that says a dyno is up, as printed.
fn up_line_on_a_terminal(dir: &Path, env: &[(&str, &str)]) -> String {
    use std::io::BufRead;
    use std::os::fd::{FromRawFd, OwnedFd};
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty(3) fills in two new descriptors, owned below.
    let rc = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty");
    // SAFETY: fresh descriptors from openpty, each owned once.
    let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    let home = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(WDYNO);
    cmd.args(["local", dir.to_str().unwrap(), "-p", "0"])
        .env("HOME", home.path())
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env_remove("NO_COLOR")
        .stdout(Stdio::from(slave))
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in std::io::BufReader::new(std::fs::File::from(master))
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let found = loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(l) if l.contains("State changed from starting to up") => break Some(l),
            Ok(_) => {}
            Err(_) => break None,
        }
    };
    // SAFETY: kill(2) on our own child: Ctrl-C.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let _ = child.wait();
    found.expect("a dyno comes up within 60 s")
}

#[test]
fn no_color_turns_the_colour_off_on_a_terminal() {
    let dir = app_dir("web: bin/web\n", &[]);
    let coloured = up_line_on_a_terminal(dir.path(), &[]);
    assert!(coloured.contains("\x1b[36m"), "{coloured:?}");
    let plain = up_line_on_a_terminal(dir.path(), &[("NO_COLOR", "1")]);
    assert!(!plain.contains('\x1b'), "{plain:?}");
    assert!(
        plain.contains("web.1 wdyno  | State changed from starting to up"),
        "{plain:?}"
    );
}
