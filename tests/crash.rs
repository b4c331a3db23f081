//! A crash at any instant leaves the ledger whole: a child process deploys
//! and sets config in a loop and is killed with SIGKILL at seeded random
//! points; after each kill the ledger opens, every listed release is
//! complete, its slug exists and verifies, and versions have no gaps.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use rand::{RngExt, SeedableRng};
use wdyno::ledger::{LedgerError, SledLedger as Ledger};
use wdyno::names::{AppName, ConfigKey};
use wdyno::release::{NewRelease, Status};
use wdyno::slug::{Limits, SlugDir};

const CHILD_ENV: &str = "WDYNO_CRASH_CHILD_HOME";
const KILLS: usize = 24;

fn app() -> AppName {
    AppName::parse("crashy").unwrap()
}

/// The child: deploys (pack a slug, record a release) and sets config vars
/// until it is killed, saying `op N` after each step it completed.
#[test]
#[ignore = "run by crash_at_any_point_leaves_a_whole_ledger as its child"]
fn crash_child() {
    let Ok(home) = std::env::var(CHILD_ENV) else {
        return;
    };
    let home = Path::new(&home);
    let ledger = Ledger::open(&home.join("db")).unwrap();
    let slugs = SlugDir::open(home.join("slugs"), Limits::default()).unwrap();
    match ledger.create_app(&app()) {
        Ok(_) | Err(LedgerError::AppExists(_)) => {}
        Err(e) => panic!("{e}"),
    }
    let src = home.join("src");
    let mut out = std::io::stdout();
    for n in 0u64.. {
        let _ = std::fs::remove_dir_all(&src);
        std::fs::create_dir_all(src.join("bin")).unwrap();
        std::fs::write(src.join("Procfile"), "web: bin/web\n").unwrap();
        // Unique content each time: a new slug per deploy, big enough that
        // packing takes a while.
        let blob: Vec<u8> = (0..256 * 1024u32)
            .map(|i| (i as u64 ^ n).wrapping_mul(2654435761) as u8)
            .collect();
        std::fs::write(src.join("bin/web.wasm"), blob).unwrap();
        let slug = slugs.pack(&src).unwrap();
        ledger
            .create_release(
                &app(),
                NewRelease {
                    slug,
                    process_types: BTreeMap::from([("web".into(), "bin/web".into())]),
                    description: format!("Deploy {n}"),
                },
                true,
            )
            .unwrap();
        writeln!(out, "op deploy {n}").unwrap();
        let set = BTreeMap::from([(ConfigKey::parse("N").unwrap(), n.to_string())]);
        ledger.set_config(&app(), &set, &[]).unwrap();
        writeln!(out, "op config {n}").unwrap();
        out.flush().unwrap();
    }
}

fn check(home: &Path) -> u64 {
    let ledger = Ledger::open(&home.join("db")).expect("the ledger opens after a crash");
    let slugs = SlugDir::open(home.join("slugs"), Limits::default()).unwrap();
    let releases = match ledger.releases(&app()) {
        Ok(r) => r,
        Err(LedgerError::AppNotFound(_)) => return 0,
        Err(e) => panic!("{e}"),
    };
    for (i, r) in releases.iter().enumerate() {
        assert_eq!(r.version, i as u64 + 1, "versions have no gaps");
        assert_eq!(r.status, Status::Succeeded);
        assert_eq!(
            r.process_types.get("web").map(String::as_str),
            Some("bin/web")
        );
        let slug = r.slug.as_ref().expect("every release has a slug");
        slugs
            .verify(slug)
            .expect("the slug of a listed release exists and verifies");
        if r.description.starts_with("Set ") {
            assert!(r.config.contains_key("N"));
        }
    }
    if let Some(last) = releases.last() {
        assert_eq!(ledger.current(&app()).unwrap().version, last.version);
    }
    // Slugs written but never recorded are orphans, removed at start.
    let removed = slugs
        .remove_orphans(&ledger.slugs_in_use().unwrap())
        .unwrap();
    assert!(
        removed <= 1,
        "at most the one in-flight slug is orphaned, found {removed}"
    );
    releases.len() as u64
}

#[test]
fn crash_at_any_point_leaves_a_whole_ledger() {
    let home = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let exe = std::env::current_exe().unwrap();
    let mut seen = 0;
    for kill in 0..KILLS {
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, home.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill after a seeded number of completed steps, plus a seeded spin
        // so the kill lands anywhere inside the next step.
        let steps = rng.random_range(1..6);
        let spin = rng.random_range(0..400_000u32);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut done = 0;
        while done < steps {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("op ") => done += 1,
                Some(Ok(_)) => {}
                _ => panic!("the child ended before it was killed (kill {kill})"),
            }
        }
        for i in 0..spin {
            std::hint::black_box(i);
        }
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed");
        let count = check(home.path());
        assert!(
            count >= seen,
            "no committed release was lost ({count} < {seen})"
        );
        seen = count;
    }
    assert!(
        seen >= KILLS as u64,
        "the child made progress between kills: {seen} releases"
    );
}
