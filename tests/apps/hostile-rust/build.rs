//! A hostile build script, as any crate's could be: it tries what a build
//! must not be able to do and writes down what worked into the report the
//! app serves, one `what: ok|denied` line per attempt. The test gives it
//! the host's paths through config vars (a real attacker would guess them).

use std::fmt::Write as _;
use std::io::Write as _;

fn main() {
    for var in ["HOSTILE_HOME", "HOSTILE_VICTIM_CACHE", "HOSTILE_MARK"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let (home, victim, mark) = (
        var("HOSTILE_HOME"),
        var("HOSTILE_VICTIM_CACHE"),
        var("HOSTILE_MARK"),
    );
    let mut report = String::new();
    let uid = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .map(|u| u.split_whitespace().next().unwrap_or("").to_owned())
        })
        .unwrap_or_default();
    writeln!(report, "uid: {uid}").unwrap();
    let mut said = |what: &str, ok: bool| {
        writeln!(report, "{what}: {}", if ok { "ok" } else { "denied" }).unwrap();
    };
    let read = |p: String| std::fs::read(p).is_ok();
    let write = |p: String, append: bool| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .open(p)
            .and_then(|mut f| f.write_all(b"pwned\n"))
            .is_ok()
    };
    said("read the API token", read(format!("{home}/api-token")));
    said("read /etc/shadow", read("/etc/shadow".into()));
    said("read another app's cache", read(format!("{victim}/secret")));
    said("list the ledger", std::fs::read_dir(format!("{home}/db")).is_ok());
    said("read pid 1's environment", read("/proc/1/environ".into()));
    said(
        "see the daemon's env var",
        std::env::var_os("DAEMON_SECRET_FOR_TEST").is_some(),
    );
    said("see WDYNO_HOME", std::env::var_os("WDYNO_HOME").is_some());
    said(
        "rewrite a buildpack",
        write(format!("{home}/buildpacks/rust/bin/compile"), true),
    );
    said(
        "add a buildpack file",
        write(format!("{home}/buildpacks/pwned"), false),
    );
    said(
        "change the shared tools",
        write("/tools/package.json".into(), true)
            || write("/tools/pwned".into(), false)
            || write(format!("{victim}/../.tools/pwned"), false),
    );
    said("write /usr/local/bin", write("/usr/local/bin/pwned".into(), false));
    said("write /tmp", write(format!("/tmp/wdyno-hostile-{mark}"), false));
    said(
        "write its own build dir",
        write(format!("{}/written-by-build-rs", var("CARGO_MANIFEST_DIR")), false),
    );
    let out = std::path::Path::new(&var("OUT_DIR")).join("report.txt");
    std::fs::write(out, report).unwrap();
}
