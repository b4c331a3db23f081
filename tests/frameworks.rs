//! The web frameworks Heroku users push, deployed unchanged: each app is a
//! real one from crates.io, built by its buildpack inside the daemon from a
//! directory that holds only its source, and answers through the router.

mod common;

use std::path::Path;
use std::process::Command;

use common::daemon::Daemon;
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
