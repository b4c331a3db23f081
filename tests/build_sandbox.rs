//! Builds run in the build sandbox: an app's build code (a Rust `build.rs`,
//! npm lifecycle scripts of a JS app and of its `file:` dependency) gets
//! nothing of the host — not the API token, `/etc/shadow`, another app's
//! cache, the daemon's environment, the buildpacks or the host's `/tmp` —
//! and the build itself still succeeds. A daemon without bubblewrap refuses
//! to build; `--unsafe-builds` builds and says it is unsandboxed.

mod common;

use std::path::Path;

use common::daemon::{Daemon, build_cache};
use common::{built_app, repo};

/// An env var of the daemon that no build may see.
const SECRET: (&str, &str) = ("DAEMON_SECRET_FOR_TEST", "hunter2");

/// What the hostile code may do in the sandbox: only write its own dirs and
/// its private `/tmp`, as the unprivileged build uid.
const ALLOWED: &str = "\
uid: 64000
read the API token: denied
read /etc/shadow: denied
read another app's cache: denied
list the ledger: denied
read pid 1's environment: denied
see the daemon's env var: denied
see WDYNO_HOME: denied
rewrite a buildpack: denied
add a buildpack file: denied
change the shared tools: denied
write /usr/local/bin: denied
write /tmp: ok
write its own build dir: ok
";

const JS_STAGES: [&str; 4] = [
    "preinstall",
    "postinstall",
    "dep-preinstall",
    "dep-postinstall",
];

fn buildpack_files(home: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![home.join("buildpacks")];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_build_code_gets_nothing_of_the_host_and_the_build_succeeds() {
    let d = Daemon::start_with_env(&[], &[SECRET]);
    let home = d.home().to_str().unwrap().to_owned();
    let victim = build_cache().join("sandbox-victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("secret"), "the victim's secret").unwrap();
    let mark = format!(
        "{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let packs_before = buildpack_files(d.home());
    for (app, detected) in [
        ("hostile-rust", "Rust app detected"),
        ("hostile-js", "JavaScript app detected"),
    ] {
        d.cli(&["apps:create", app]).ok();
        d.cli(&[
            "config:set",
            &format!("HOSTILE_HOME={home}"),
            &format!("HOSTILE_VICTIM_CACHE={}", victim.display()),
            &format!("HOSTILE_MARK={mark}"),
            "-a",
            app,
        ])
        .ok();
        let src = repo().join("tests/apps").join(app);
        let out = d.cli(&["deploy", src.to_str().unwrap(), "-a", app]).ok();
        assert!(
            out.stdout.contains(&format!("-----> {detected}")),
            "{}",
            out.stdout
        );
        assert!(out.stdout.contains("       Released v2"), "{}", out.stdout);
        assert!(!out.stdout.contains("without a sandbox"), "{}", out.stdout);
    }
    d.answers("hostile-rust", "/", ALLOWED).await;
    let js: String = JS_STAGES
        .iter()
        .map(|s| format!("== {s}\n{ALLOWED}"))
        .collect::<String>()
        + "== hostile-dep bundled\n";
    d.answers("hostile-js", "/", &js).await;

    // What "ok" inside was never the host's: its /tmp, its buildpacks.
    let host_tmp: Vec<String> = std::fs::read_dir("/tmp")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&mark))
        .collect();
    assert_eq!(host_tmp, Vec::<String>::new());
    assert!(
        buildpack_files(d.home()) == packs_before,
        "buildpacks changed"
    );
    assert!(!Path::new("/usr/local/bin/pwned").exists());
    // Nor the shared tools every JS build runs.
    for tools in std::fs::read_dir(build_cache().join(".tools")).unwrap() {
        let tools = tools.unwrap().path();
        assert!(!tools.join("pwned").exists(), "{tools:?}");
        if tools.is_dir() {
            let lock = std::fs::read_to_string(tools.join("package.json")).unwrap();
            assert!(!lock.contains("pwned"), "{tools:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_without_bubblewrap_refuses_to_build_and_says_what_to_do() {
    // No bwrap on its PATH (nothing else either: the build never starts).
    let d = Daemon::start_with_env(&[], &[("PATH", "/nonexistent")]);
    d.cli(&["apps:create", "nobwrap"]).ok();
    let app = prebuilt();
    let out = d.cli(&["deploy", app.path().to_str().unwrap(), "-a", "nobwrap"]);
    assert_eq!(out.code, 1, "{}", out.stdout);
    assert!(
        out.stdout.contains(
            "builds run in a bubblewrap sandbox, and `bwrap` is not on the daemon's PATH: install bubblewrap (Debian: apt-get install bubblewrap) and restart the daemon, or start it with --unsafe-builds to run buildpacks unsandboxed as the daemon's user"
        ),
        "{}",
        out.stdout
    );
    assert!(d.json(&["releases", "-a", "nobwrap"]) == serde_json::json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsafe_builds_run_unsandboxed_and_say_so() {
    let d = Daemon::start(&["--unsafe-builds"]);
    let app = prebuilt();
    let out = d.create_and_deploy("unsafe", app.path());
    let lines: Vec<&str> = out.stdout.lines().take(2).collect();
    assert_eq!(
        lines,
        [
            "-----> Building without a sandbox: the buildpack and the app's build code run as this user, with its files and environment",
            "-----> WebAssembly app detected",
        ],
        "{}",
        out.stdout
    );
    d.answers("unsafe", "/", "hello\n").await;
}

/// A prebuilt app (the wasm buildpack's): the hello component.
fn prebuilt() -> tempfile::TempDir {
    common::prebuilt(&built_app("hello").join("bin/web.wasm"))
}
