//! The web frameworks Heroku users push, deployed unchanged: each app is a
//! real one from crates.io or npm, built by its buildpack inside the daemon
//! from a directory that holds only its source, and answers through the
//! router. What cannot work is refused at build time, saying what does.

mod common;

use std::path::Path;
use std::process::Command;

use common::daemon::Daemon;
use common::raw::{Answer, Raw};
use common::{Client, repo, within};

/// A fresh directory holding `tests/apps/NAME`'s source and nothing else
/// (no `target/`, no build output).
fn source_only(name: &str) -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_name() == "target" {
                continue;
            }
            let dest = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &dest);
            } else {
                std::fs::copy(e.path(), dest).unwrap();
            }
        }
    }
    let dir = tempfile::tempdir().unwrap();
    copy(&repo().join("tests/apps").join(name), dir.path());
    dir
}

const AXUM_HELLO: &str = "Hello from axum\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_app_deploys_unchanged_and_answers_through_the_router() {
    let d = Daemon::start(&[]);
    let src = source_only("axum-hello");
    let out = d.create_and_deploy("axum", src.path());
    assert!(
        out.stdout.contains("-----> Rust app detected"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("       Released v1"), "{}", out.stdout);
    d.answers("axum", "/", AXUM_HELLO).await;

    // Two requests on one keep-alive connection.
    let mut c = Client::connect(d.router).await;
    for _ in 0..2 {
        assert_eq!(
            c.get_host("axum.localhost", "/").await,
            (200, AXUM_HELLO.to_owned())
        );
    }

    // Fifty at once, each on its own connection.
    let router = d.router;
    let answers = within(60, "50 concurrent requests", async move {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..50 {
            set.spawn(async move {
                let mut c = Client::connect(router).await;
                c.get_host("axum.localhost", "/").await
            });
        }
        set.join_all().await
    })
    .await;
    assert_eq!(answers.len(), 50);
    for a in answers {
        assert_eq!(a, (200, AXUM_HELLO.to_owned()));
    }
}

/// tokio's multi-threaded runtime compiles for wasm32-wasip2 and then
/// crashes at boot (no threads); the buildpack says so before compiling.
#[test]
fn the_rust_buildpack_refuses_a_multi_threaded_tokio_runtime_before_compiling() {
    let build = source_only("axum-hello");
    let main = build.path().join("src/main.rs");
    let code = std::fs::read_to_string(&main).unwrap();
    let code = code.replace(
        "#[tokio::main(flavor = \"current_thread\")]",
        "#[tokio::main]",
    );
    std::fs::write(&main, code).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let env = tempfile::tempdir().unwrap();
    let out = Command::new(repo().join("buildpacks/rust/bin/compile"))
        .args([build.path(), cache.path(), env.path()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(!stdout.contains("Building with"), "{stdout}");
    assert_eq!(
        stderr,
        " !     src/main.rs:3: #[tokio::main] starts tokio's multi-threaded runtime, but a \
         WebAssembly dyno has one thread (wasm32-wasip2 cannot spawn threads, so the dyno \
         would crash at boot).\n \
         !       Write #[tokio::main(flavor = \"current_thread\")] (or \
         Builder::new_current_thread()): the rest of an axum, hyper or tokio app runs \
         unchanged, tokio's net included.\n \
         !       A working axum app: examples/rust-axum in the wdyno repository.\n"
    );
}

/// Builds a dependency-free app whose code compiles only when rustc got
/// both `--cfg NAME` (the user's) and `--cfg tokio_unstable` (the
/// buildpack's); `setup` adds the user's flags to the build or ENV_DIR.
fn builds_with_both_flags(name: &str, setup: impl FnOnce(&Path, &Path)) {
    let build = tempfile::tempdir().unwrap();
    let b = build.path();
    std::fs::create_dir_all(b.join("src")).unwrap();
    std::fs::write(
        b.join("Cargo.toml"),
        "[package]\nname = \"flags\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\
         [workspace]\n[lints.rust]\nunexpected_cfgs = \"allow\"\n",
    )
    .unwrap();
    std::fs::write(
        b.join("src/main.rs"),
        format!(
            "#[cfg(not({name}))] compile_error!(\"the user's flags were dropped\");\n\
             #[cfg(not(tokio_unstable))] compile_error!(\"the buildpack's flags were dropped\");\n\
             fn main() {{}}\n"
        ),
    )
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let env = tempfile::tempdir().unwrap();
    setup(b, env.path());
    let out = Command::new(repo().join("buildpacks/rust/bin/compile"))
        .args([b, cache.path(), env.path()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(b.join("bin/flags.wasm").is_file());
}

#[test]
fn the_rust_buildpack_adds_its_flags_after_the_users_rustflags() {
    builds_with_both_flags("from_env", |_, env| {
        std::fs::write(env.join("RUSTFLAGS"), "--cfg from_env").unwrap();
    });
}

#[test]
fn the_rust_buildpack_keeps_the_apps_cargo_config_rustflags() {
    builds_with_both_flags("from_config", |build, _| {
        std::fs::create_dir_all(build.join(".cargo")).unwrap();
        std::fs::write(
            build.join(".cargo/config.toml"),
            "[build]\nrustflags = [\"--cfg\", \"from_config\"]\n",
        )
        .unwrap();
    });
}

/// One request to `app` through the router, read off the wire.
fn ask(d: &Daemon, app: &str, method: &str, path: &str, json: Option<&str>) -> Answer {
    let mut raw = Raw::connect(d.router);
    let body = json.unwrap_or("");
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: {app}.localhost\r\nConnection: close\r\n");
    if json.is_some() {
        req += &format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    raw.send(format!("{req}\r\n{body}").as_bytes());
    raw.answer()
}

/// Express 5 from npm, unchanged: its `app.listen()` server answers through
/// the JS buildpack's node compatibility layer (node:http onto wasi:http).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_express_app_deploys_unchanged_and_answers_through_the_router() {
    let d = Daemon::start(&[]);
    let src = source_only("express-hello");
    let out = d.create_and_deploy("express", src.path());
    assert!(
        out.stdout.contains("-----> JavaScript app detected"),
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("platform=node"), "{}", out.stdout);
    // app.listen()'s callback runs once, with the top level, at build time.
    assert!(
        out.stdout.contains("\n       express-hello is listening\n"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("       Released v1"), "{}", out.stdout);
    d.answers("express", "/", "Hello from Express").await;

    let hello = ask(&d, "express", "GET", "/", None);
    assert_eq!(hello.status, 200);
    assert_eq!(
        hello.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(hello.header("x-powered-by"), Some("Express"));
    // Express's ETag: a SHA-1 of the body, by the layer's crypto.
    assert_eq!(
        hello.header("etag"),
        Some("W/\"12-40mOgeUhWrk39Sw9/C4gBtprR54\"")
    );

    let user = ask(&d, "express", "GET", "/users/42?tab=repos", None);
    assert_eq!(
        (user.status, user.text()),
        (200, r#"{"id":"42","query":{"tab":"repos"}}"#.to_owned())
    );
    assert_eq!(
        user.header("content-type"),
        Some("application/json; charset=utf-8")
    );

    let echo = ask(
        &d,
        "express",
        "POST",
        "/echo",
        Some(r#"{"name":"wdyno","n":[1,2]}"#),
    );
    assert_eq!(
        (echo.status, echo.text()),
        (201, r#"{"got":{"name":"wdyno","n":[1,2]}}"#.to_owned())
    );

    let missing = ask(&d, "express", "GET", "/nope", None);
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.text(),
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>Error</title>\n</head>\n<body>\n<pre>Cannot GET /nope</pre>\n</body>\n</html>\n"
    );

    // process.env is the dyno's at run time; NODE_ENV defaults to production.
    assert_eq!(
        d.get("express", "/dyno").await,
        (200, "web.1 production".to_owned())
    );
}

/// Koa from npm, unchanged, through the same layer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_koa_app_deploys_unchanged_and_answers_through_the_router() {
    let d = Daemon::start(&[]);
    let src = source_only("koa-hello");
    d.create_and_deploy("koa", src.path());
    d.answers("koa", "/", "Hello from Koa").await;
    let user = ask(&d, "koa", "GET", "/users/7", None);
    assert_eq!(
        (user.status, user.text()),
        (200, r#"{"id":"7"}"#.to_owned())
    );
    assert_eq!(
        user.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let missing = ask(&d, "koa", "GET", "/nope", None);
    assert_eq!(
        (missing.status, missing.text()),
        (404, "Not Found".to_owned())
    );
}

/// A plain `http.createServer(...).listen(process.env.PORT)` app answers,
/// and two JS apps built on one machine install the JS tools once: the
/// second build has no install step, and no app's cache holds the tools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_http_servers_answer_and_js_tools_are_installed_once_per_machine() {
    let cache = tempfile::tempdir().unwrap();
    let d = Daemon::start_with_build_cache(cache.path());
    let src = source_only("node-http-hello");
    const INSTALL: &str = "-----> Installing componentize-js";
    let first = d.create_and_deploy("http-one", src.path());
    assert!(first.stdout.contains(INSTALL), "{}", first.stdout);
    let second = d.create_and_deploy("http-two", src.path());
    assert!(!second.stdout.contains(INSTALL), "{}", second.stdout);
    assert!(
        second.stdout.contains("       Released v1"),
        "{}",
        second.stdout
    );
    for app in ["http-one", "http-two"] {
        let used = dir_size(&cache.path().join(app));
        assert!(used < 1 << 20, "{app}'s build cache holds {used} bytes");
    }
    // The shared tools belong to the daemon and are read-only to builds.
    let tools: Vec<_> = std::fs::read_dir(cache.path().join(".tools"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(tools.len(), 1, "{tools:?}");
    assert!(tools[0].join(".installed").is_file());
    assert!(dir_size(&tools[0]) > 100 << 20);
    assert_writable_by_owner_only(&tools[0]);

    for app in ["http-one", "http-two"] {
        d.answers(app, "/", "Hello from node:http\n").await;
    }
    let hello = ask(&d, "http-one", "GET", "/", None);
    assert_eq!(
        hello.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(hello.header("content-length"), Some("21"));
    let echo = ask(&d, "http-one", "POST", "/echo", Some(r#"{"a":1}"#));
    assert_eq!(
        (echo.status, echo.text()),
        (
            200,
            r#"{"method":"POST","type":"application/json","body":"{\"a\":1}"}"#.to_owned()
        )
    );
    // Written in parts: streamed, so chunked by the router.
    let stream = ask(&d, "http-one", "GET", "/stream", None);
    assert_eq!(
        (stream.status, stream.text()),
        (200, "one\ntwo\nthree\n".to_owned())
    );
    assert_eq!(stream.header("transfer-encoding"), Some("chunked"));
    let missing = ask(&d, "http-two", "GET", "/nope", None);
    assert_eq!(
        (missing.status, missing.text()),
        (404, "no /nope here\n".to_owned())
    );
}

fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| {
            let e = e.unwrap();
            let md = e.metadata().unwrap();
            if md.is_dir() {
                dir_size(&e.path())
            } else {
                md.len()
            }
        })
        .sum()
}

fn assert_writable_by_owner_only(root: &Path) {
    use std::os::unix::fs::MetadataExt;
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let md = std::fs::symlink_metadata(&p).unwrap();
        if md.file_type().is_symlink() {
            continue;
        }
        // SAFETY: geteuid(2) has no preconditions.
        assert_eq!(md.uid(), unsafe { libc::geteuid() }, "{p:?}");
        assert_eq!(md.mode() & 0o022, 0, "{p:?} is writable by others");
        if md.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
}

/// A node built-in a dyno cannot have stops the build before anything is
/// componentized, in wdyno's words: which module, where, what runs instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_js_buildpack_refuses_child_process_saying_what_runs_instead() {
    let d = Daemon::start(&[]);
    let src = source_only("js-child-process");
    d.cli(&["apps:create", "shells"]).ok();
    let out = d.cli(&["deploy", src.path().to_str().unwrap(), "-a", "shells"]);
    assert_ne!(out.code, 0, "{}", out.stdout);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(!said.contains("platform=node"), "{said}");
    assert!(!said.contains("componentize-js failed"), "{said}");
    let message = " !     index.js:2 imports node's child_process, which cannot work in a wdyno \
         dyno: a WebAssembly dyno cannot start processes.\n \
         !       What runs: a fetch event handler (addEventListener(\"fetch\", ...)), Hono, and \
         node:http servers (Express, Koa) through the buildpack's node layer: http, https, \
         events, stream, buffer, url, querystring, path, util, string_decoder, crypto (hashes, \
         HMACs, random), timers, os, assert, async_hooks, diagnostics_channel, and fs, net, tty \
         and zlib in part.\n \
         !       Port that code, or choose a package that does without it: examples/js-web (a \
         fetch event) and examples/js-express (Express) in the wdyno repository show how.\n";
    let streamed: String = said
        .lines()
        .filter(|l| l.starts_with(" !  "))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(streamed.contains(message), "{said}");
}

/// The node layer's crypto (ETags, signed cookies) agrees with node's own.
#[test]
fn the_node_layers_hashes_and_hmacs_match_nodes() {
    let layer = repo().join("buildpacks/js/lib/node/crypto.js");
    let check = r#"
        const ours = require(process.argv[1]);
        const node = require("crypto");
        const inputs = ["", "abc", "x".repeat(55), "y".repeat(56), "z".repeat(64), "w".repeat(1000), "héllo"];
        let n = 0;
        for (const alg of ["sha1", "sha256"]) {
            for (const s of inputs) {
                for (const enc of ["hex", "base64"]) {
                    const want = node.createHash(alg).update(s).digest(enc);
                    const got = ours.createHash(alg).update(s.slice(0, 3)).update(s.slice(3)).digest(enc);
                    if (got !== want) throw new Error(`${alg} of ${s.length} chars: ${got} != ${want}`);
                    for (const key of ["k", "key".repeat(30)]) {
                        const want = node.createHmac(alg, key).update(s).digest(enc);
                        const got = ours.createHmac(alg, key).update(s).digest(enc);
                        if (got !== want) throw new Error(`hmac-${alg} of ${s.length} chars`);
                        n++;
                    }
                }
            }
        }
        console.log(`${n} hmacs agree`);
    "#;
    let out = Command::new("node")
        .args(["-e", check, layer.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "56 hmacs agree\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
