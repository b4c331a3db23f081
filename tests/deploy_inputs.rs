//! What a deploy takes from its inputs: `.gitignore` and `.slugignore`
//! leave files out of the slug, `apps:destroy` takes the build cache with
//! the app, and values in API paths and queries stay single values.

mod common;

use common::built_app;
use common::daemon::{Daemon, build_cache};

/// A prebuilt app (the hello component and a Procfile) plus `files`.
fn app_dir(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = common::prebuilt(&built_app("hello").join("bin/web.wasm"));
    for (path, bytes) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, bytes).unwrap();
    }
    dir
}

/// The file paths in the current release's slug.
fn slug_files(d: &Daemon, app: &str) -> Vec<String> {
    let releases = d.json(&["releases", "-a", app]);
    let slug = releases.as_array().unwrap().last().unwrap()["slug"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = std::fs::File::open(d.home().join("slugs").join(format!("{slug}.tar.zst"))).unwrap();
    let mut tar = tar::Archive::new(zstd::Decoder::new(file).unwrap());
    let mut out: Vec<String> = tar
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.header().entry_type().is_file())
        .map(|e| e.path().unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitignore_and_slugignore_leave_files_out_of_the_slug() {
    let d = Daemon::start(&[]);
    let big = vec![7u8; 3 << 20];
    let dir = app_dir(&[
        (".gitignore", b"*.bin\n!keep.bin\n/tmp/\n"),
        (".slugignore", b"docs\n*.psd\n"),
        ("data.bin", &big),
        ("keep.bin", b"kept"),
        ("tmp/scratch", b"x"),
        ("lib/tmp/kept", b"x"),
        ("docs/guide.md", b"x"),
        ("art.psd", b"x"),
    ]);
    d.create_and_deploy("ignoring", dir.path());
    assert_eq!(
        slug_files(&d, "ignoring"),
        [
            ".gitignore",
            ".slugignore",
            "Procfile",
            "bin/web.wasm",
            "keep.bin",
            "lib/tmp/kept"
        ]
    );
    d.answers("ignoring", "/", "hello\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroying_an_app_removes_its_build_cache() {
    let d = Daemon::start(&[]);
    let dir = app_dir(&[]);
    d.create_and_deploy("cache-gone", dir.path());
    let cache = build_cache().join("cache-gone");
    assert!(cache.is_dir(), "{} after a build", cache.display());
    std::fs::write(cache.join("left-by-a-buildpack"), "x").unwrap();
    d.cli(&["apps:destroy", "cache-gone", "--confirm", "cache-gone"])
        .ok();
    assert!(!cache.exists(), "{} after apps:destroy", cache.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dyno_names_in_paths_and_queries_stay_one_value() {
    let d = Daemon::start(&[]);
    let dir = app_dir(&[]);
    d.create_and_deploy("values", dir.path());
    d.answers("values", "/", "hello\n").await;
    let web1 = d.cli(&["logs", "-a", "values", "--ps", "web.1"]).ok();
    assert!(web1.stdout.lines().count() > 1, "{}", web1.stdout);
    // A space is encoded, not "invalid uri character".
    let spaced = d.cli(&["logs", "-a", "values", "--ps", "web 1"]).ok();
    assert_eq!(spaced.stdout, "");
    // `&lines=1` is part of the value, not a second parameter.
    let injected = d
        .cli(&["logs", "-a", "values", "--ps", "web.1&lines=1"])
        .ok();
    assert_eq!(injected.stdout, "");
    let restart = d.cli(&["ps:restart", "web 1", "-a", "values"]);
    assert_eq!(restart.code, 1);
    assert_eq!(
        restart.stderr,
        " !    values has no dyno web 1. Run `wdyno ps -a values` to list them.\n"
    );
}
