//! Capacity is an answer, not a crash: a formation the host cannot hold is
//! refused before any dyno starts, with the limit named; proxy apps keep
//! their reserved slots when command dynos fill theirs; a full host still
//! rolls its dynos over to a new release.

mod common;

use common::daemon::Daemon;
use common::{built_app, prebuilt, until};
use serde_json::Value;

/// The formation as `{"web": 2, …}` (the API lists Heroku's entries).
fn formation(d: &Daemon, app: &str) -> Value {
    let list = d.api_get(&format!("/apps/{app}/formation"));
    list.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["type"].as_str().unwrap().to_owned(),
                f["quantity"].clone(),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_past_capacity_is_refused_with_the_limit_named() {
    let d = Daemon::start(&["--capacity", "4", "--max-app-dynos", "3"]);
    let web = prebuilt(&built_app("probe").join("bin/web.wasm"));
    d.create_and_deploy("big", web.path());
    d.create_and_deploy("small", web.path());
    d.cli(&["ps:scale", "web=3", "-a", "big"]).ok();
    until("web=3 of big up", 60, || d.all_up("big", 3)).await;

    // Past the app's share.
    let out = d.cli(&["ps:scale", "web=4", "-a", "big"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "!    Cannot scale big to web=4: an app may run at most 3 dynos on this host \
         (half its capacity of 4, so one app cannot take all of it). \
         The operator can allow more with `wdyno daemon --max-app-dynos N`."
    );
    // Past the host: big holds 3 of 4, small has 1 and wants 2.
    let out = d.cli(&["ps:scale", "web=2", "-a", "small"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert_eq!(
        out.stderr.trim(),
        "!    Cannot scale small to web=2: this host holds 4 dynos (its capacity, set by the \
         daemon's --capacity); other apps and one-off dynos take 3, and small would need 2 \
         (1 free). Scale something down, or start the daemon with a larger --capacity."
    );
    // Nothing changed and nothing crashed.
    assert_eq!(formation(&d, "big"), serde_json::json!({"web": 3}));
    assert_eq!(formation(&d, "small"), serde_json::json!({"web": 1}));
    until("small's one dyno up", 30, || d.all_up("small", 1)).await;
    d.all_up("big", 3).expect("big's dynos still up");
    let crashed = d.cli(&["logs", "-a", "big", "-n", "1500"]).ok().stdout;
    assert!(!crashed.contains("crashed"), "{crashed}");

    // The host is full: no one-off either, and the message says why.
    let out = d.cli(&["run", "--detach", "-a", "small", "--", "bin/web"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("Cannot run a one-off dyno of small: this host's dyno capacity of 4"),
        "{out:?}"
    );

    // `ps` and `hosts` show capacity and use.
    let ps = d.cli(&["ps", "-a", "big"]).ok().stdout;
    assert!(
        ps.lines()
            .any(|l| l
                .ends_with("4 of 4 dyno slots in use (capacity set by the daemon's --capacity)")),
        "{ps}"
    );
    let hosts = d.json(&["hosts"]);
    assert_eq!(hosts[0]["state"], "up");
    assert_eq!(hosts[0]["capacity"]["capacity"], 4);
    assert_eq!(hosts[0]["capacity"]["formations"], 4);
    assert_eq!(hosts[0]["capacity"]["per_app"], 3);

    // Scaling down frees slots for others.
    d.cli(&["ps:scale", "web=1", "-a", "big"]).ok();
    d.cli(&["ps:scale", "web=3", "-a", "small"]).ok();
    until("web=3 of small up", 60, || d.all_up("small", 3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_apps_answer_while_command_dynos_fill_their_share() {
    let d = Daemon::start(&["--capacity", "3", "--max-app-dynos", "3"]);
    let web = prebuilt(&built_app("probe").join("bin/web.wasm"));
    let proxy = prebuilt(&built_app("rust-http").join("bin/web.wasm"));
    d.create_and_deploy("filler", web.path());
    d.create_and_deploy("proxy", proxy.path());
    // filler takes the two slots proxy's formation leaves.
    d.cli(&["ps:scale", "web=2", "-a", "filler"]).ok();
    until("filler's dynos up", 60, || d.all_up("filler", 2)).await;
    let out = d.cli(&["ps:scale", "web=3", "-a", "filler"]);
    assert_eq!(out.code, 1, "{out:?}");

    // 64 concurrent clients, 50 requests each: every one answered.
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let router = d.router;
        tasks.push(tokio::spawn(async move {
            let mut c = common::Client::connect(router).await;
            let mut ok = 0;
            for _ in 0..50 {
                let (status, body) = c.get_host("proxy.localhost", "/").await;
                if status == 200 && body == "hello from rust-http web.1" {
                    ok += 1;
                }
            }
            ok
        }));
    }
    let mut answered = 0;
    for t in tasks {
        answered += t.await.unwrap();
    }
    assert_eq!(answered, 64 * 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_host_still_replaces_every_dyno_on_restart() {
    let d = Daemon::start(&["--capacity", "3", "--max-app-dynos", "3"]);
    let web = prebuilt(&built_app("probe").join("bin/web.wasm"));
    d.create_and_deploy("full", web.path());
    d.cli(&["ps:scale", "web=3", "-a", "full"]).ok();
    until("web=3 up", 60, || d.all_up("full", 3)).await;
    let before: Vec<String> = d
        .ps("full")
        .iter()
        .map(|x| x["updated_at"].as_str().unwrap().to_owned())
        .collect();
    // A restart replaces each dyno; the replacements have no free slot to
    // start in beside the old ones, so each old one gives up its slot.
    d.cli(&["ps:restart", "-a", "full"]).ok();
    until("three new dynos up", 60, || {
        let now = d.ps("full");
        (now.len() == 3
            && now.iter().all(|x| x["state"] == "up")
            && now
                .iter()
                .all(|x| !before.contains(&x["updated_at"].as_str().unwrap().to_owned())))
        .then_some(())
    })
    .await;
    let log = d.cli(&["logs", "-a", "full", "-n", "1500"]).ok().stdout;
    assert!(
        log.contains("Waiting for a free dyno slot: this host's dyno capacity is in use"),
        "{log}"
    );
    assert!(!log.contains("crashed"), "{log}");
    d.answers("full", "/", "hello from web.1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_opening_files_and_sockets_cannot_starve_others() {
    let d = Daemon::start(&[]);
    let hosts = d.json(&["hosts"]);
    let pid = d.pid();
    let hog = prebuilt(&built_app("hog").join("bin/web.wasm"));
    let web = prebuilt(&built_app("probe").join("bin/web.wasm"));
    d.create_and_deploy("hog", hog.path());
    d.create_and_deploy("other", web.path());
    // Enough dynos that the app's share, not one dyno's limit, stops it.
    let per_dyno = 1024;
    let per_app = hosts[0]["capacity"]["per_app"].as_u64().unwrap();
    let limit = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let open_files: u64 = limit
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap();
    let guest = open_files - (open_files / 8).max(1024);
    let app_fds = (guest / 2).max(per_app * 2).min(guest);
    let dynos = app_fds.div_ceil(per_dyno) + 1;
    d.cli(&["ps:scale", &format!("web={dynos}"), "-a", "hog"])
        .ok();
    until("hog's dynos up", 120, || d.all_up("hog", dynos as usize)).await;

    // Every hog dyno takes what it can; the other app and the CLI go on.
    let mut seen = std::collections::BTreeMap::new();
    let mut other_ok = 0;
    while seen.len() < dynos as usize {
        let (status, body) = d.get("hog", "/hog").await;
        assert_eq!(status, 200, "{body}");
        let dyno = body.split(' ').next().unwrap().to_owned();
        seen.insert(dyno, body);
        let (status, body) = d.get("other", "/").await;
        assert_eq!((status, body.as_str()), (200, "hello from web.1"));
        other_ok += 1;
    }
    let held: u64 = seen
        .values()
        .map(|b| {
            let n = |k: &str| -> u64 {
                b.split(' ')
                    .find_map(|w| w.strip_prefix(k))
                    .unwrap()
                    .parse()
                    .unwrap()
            };
            n("files=") + n("sockets=")
        })
        .sum();
    // Each dyno also holds its listener, its root dir and the request's
    // connection: at most 3 per dyno beside what it reports.
    assert!(
        held <= app_fds && held + 3 * dynos >= app_fds,
        "hog holds {held} of its share {app_fds}: {seen:?}"
    );
    for body in seen.values() {
        // Both kinds were refused, neither ran to the test's own cap.
        assert!(!body.contains("never"), "{body}");
    }
    for _ in 0..100 {
        let (status, body) = d.get("other", "/").await;
        assert_eq!((status, body.as_str()), (200, "hello from web.1"));
        other_ok += 1;
    }
    assert!(other_ok >= 100 + dynos);
    d.cli(&["config:set", "X=1", "-a", "other"]).ok();
    d.answers("other", "/", "hello from web.1").await;
    d.cli(&["ps:scale", "web=2", "-a", "other"]).ok();
    until("other at web=2", 60, || d.all_up("other", 2)).await;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    assert!(
        fds < open_files - 1024,
        "the daemon holds {fds} of {open_files}"
    );
    let log = d.cli(&["logs", "-a", "hog", "-n", "1500"]).ok().stdout;
    assert!(
        log.contains(&format!(
            "Error (Open files limit) -> the app's dynos have {app_fds} files and sockets open, its limit on this host; further opens are refused"
        )),
        "{log}"
    );
    assert!(
        log.contains(
            "Error (Open files limit) -> this dyno has 1024 files and sockets open, its limit"
        ),
        "{log}"
    );
}
