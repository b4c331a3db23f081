use super::*;
use crate::ledger::Drain;
use crate::names::{ConfigKey, ProcessType};

fn app(s: &str) -> AppName {
    AppName::parse(s).unwrap()
}

fn key(s: &str) -> ConfigKey {
    ConfigKey::parse(s).unwrap()
}

fn slug(n: u8) -> SlugId {
    SlugId::parse(&format!("{:02x}", n).repeat(32)).unwrap()
}

fn deploy(l: &SledLedger, a: &AppName, n: u8) -> Release {
    l.create_release(
        a,
        NewRelease {
            slug: slug(n),
            process_types: BTreeMap::from([("web".into(), "bin/web".into())]),
            description: format!("Deploy {}", slug(n).short()),
        },
        true,
    )
    .unwrap()
}

#[test]
fn releases_append_config_and_rollback() {
    let t = tempfile::tempdir().unwrap();
    let l = SledLedger::open(t.path()).unwrap();
    let a = app("hello");
    l.create_app(&a).unwrap();
    assert!(matches!(l.create_app(&a), Err(LedgerError::AppExists(_))));
    assert_eq!(
        l.current(&a).unwrap().version,
        0,
        "no release before the first deploy"
    );
    let v1 = deploy(&l, &a, 1);
    assert_eq!((v1.version, v1.status), (1, Status::Succeeded));
    let set = BTreeMap::from([(key("GREETING"), "hi".into()), (key("B"), "2".into())]);
    let v2 = l.set_config(&a, &set, &[]).unwrap();
    assert_eq!(v2.description, "Set B, GREETING config vars");
    assert_eq!((v2.version, v2.slug.clone()), (2, Some(slug(1))));
    let v3 = deploy(&l, &a, 2);
    assert_eq!(v3.config.get("GREETING").map(String::as_str), Some("hi"));
    let v4 = l
        .set_config(&a, &BTreeMap::new(), &[key("GREETING")])
        .unwrap();
    assert_eq!(v4.description, "Remove GREETING config vars");
    assert!(!v4.config.contains_key("GREETING"));
    assert!(matches!(
        l.set_config(&a, &BTreeMap::new(), &[key("NOPE")]),
        Err(LedgerError::NoSuchConfig(_))
    ));
    let v5 = l.rollback(&a, 1).unwrap();
    assert_eq!(v5.description, "Rollback to v1");
    assert_eq!(
        (v5.slug.clone(), v5.config.clone()),
        (Some(slug(1)), BTreeMap::new())
    );
    assert_eq!(l.current(&a).unwrap().version, 5);
    let versions: Vec<u64> = l.releases(&a).unwrap().iter().map(|r| r.version).collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
    assert_eq!(l.slugs_in_use().unwrap(), HashSet::from([slug(1), slug(2)]));
}

#[test]
fn a_failed_release_phase_never_becomes_current() {
    let t = tempfile::tempdir().unwrap();
    let l = SledLedger::open(t.path()).unwrap();
    let a = app("phase");
    l.create_app(&a).unwrap();
    deploy(&l, &a, 1);
    let new = NewRelease {
        slug: slug(2),
        process_types: BTreeMap::new(),
        description: "Deploy x".into(),
    };
    let pending = l.create_release(&a, new, false).unwrap();
    assert_eq!((pending.version, pending.status), (2, Status::Pending));
    let set = BTreeMap::from([(key("LATE"), "x".into())]);
    assert!(matches!(
        l.set_config(&a, &set, &[]),
        Err(LedgerError::ReleaseInProgress(2))
    ));
    assert!(matches!(
        l.rollback(&a, 1),
        Err(LedgerError::ReleaseInProgress(2))
    ));
    assert_eq!(l.current(&a).unwrap().version, 1);
    assert_eq!(
        l.finish_release(&a, 2, false).unwrap().status,
        Status::Failed
    );
    assert_eq!(l.current(&a).unwrap().version, 1);
    let e = l.rollback(&a, 2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Cannot roll back to v2: that release did not succeed."
    );
}

#[test]
fn formation_only_names_known_types() {
    let t = tempfile::tempdir().unwrap();
    let l = SledLedger::open(t.path()).unwrap();
    let a = app("form");
    l.create_app(&a).unwrap();
    let e = l
        .scale(
            &a,
            &BTreeMap::from([(ProcessType::parse("web").unwrap(), 2)]),
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "No such process type web defined in the Procfile of form (it has: none yet: deploy first)."
    );
    deploy(&l, &a, 1);
    let f = l
        .scale(
            &a,
            &BTreeMap::from([(ProcessType::parse("web").unwrap(), 3)]),
        )
        .unwrap();
    assert_eq!(f.to_map(), BTreeMap::from([("web".to_owned(), 3)]));
    assert_eq!(l.formation(&a).unwrap(), f);
}

#[test]
fn reopening_keeps_every_release_and_destroy_removes_all() {
    let t = tempfile::tempdir().unwrap();
    let a = app("many");
    {
        let l = SledLedger::open(t.path()).unwrap();
        l.create_app(&a).unwrap();
        for i in 0..200u32 {
            deploy(&l, &a, (i % 250) as u8);
        }
    }
    let l = SledLedger::open(t.path()).unwrap();
    let versions: Vec<u64> = l.releases(&a).unwrap().iter().map(|r| r.version).collect();
    assert_eq!(versions, (1..=200).collect::<Vec<_>>());
    l.destroy_app(&a).unwrap();
    assert!(matches!(l.releases(&a), Err(LedgerError::AppNotFound(_))));
    assert!(l.apps().unwrap().is_empty());
}

#[test]
fn config_is_capped_at_32_kb() {
    let t = tempfile::tempdir().unwrap();
    let l = SledLedger::open(t.path()).unwrap();
    let a = app("big");
    l.create_app(&a).unwrap();
    let e = l
        .set_config(
            &a,
            &BTreeMap::from([(key("BLOB"), "x".repeat(40_000))]),
            &[],
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "Config vars would total 40004 bytes, over the limit of 32 kB."
    );
    assert!(l.releases(&a).unwrap().is_empty(), "nothing recorded");
}

fn ledger() -> (tempfile::TempDir, SledLedger) {
    let t = tempfile::tempdir().unwrap();
    let l = SledLedger::open(t.path()).unwrap();
    (t, l)
}

#[test]
fn config_before_any_deploy_makes_a_release_without_a_slug() {
    let (_t, l) = ledger();
    let a = app("early");
    l.create_app(&a).unwrap();
    assert_eq!(l.config(&a).unwrap(), BTreeMap::new());
    let set = BTreeMap::from([(key("A"), "1".into())]);
    let v1 = l.set_config(&a, &set, &[key("A")]).unwrap_err();
    assert_eq!(v1.to_string(), "Config var A is not set on this app.");
    let v1 = l.set_config(&a, &set, &[]).unwrap();
    assert_eq!((v1.version, v1.slug.clone()), (1, None));
    let v2 = l
        .set_config(&a, &BTreeMap::from([(key("B"), "2".into())]), &[key("A")])
        .unwrap();
    assert_eq!(v2.description, "Set B and remove A config vars");
    assert_eq!(
        l.config(&a).unwrap(),
        BTreeMap::from([("B".to_owned(), "2".to_owned())])
    );
    assert_eq!(
        l.set_config(&a, &BTreeMap::new(), &[])
            .unwrap_err()
            .to_string(),
        "No config vars given: use KEY=value to set one, or name a KEY to unset."
    );
    let versions: Vec<u64> = l.releases(&a).unwrap().iter().map(|r| r.version).collect();
    assert_eq!(versions, [1, 2], "refused changes leave no gap");
    assert_eq!(deploy(&l, &a, 7).config, l.config(&a).unwrap());
}

#[test]
fn a_release_phase_ends_once() {
    let (_t, l) = ledger();
    let a = app("once");
    l.create_app(&a).unwrap();
    let new = NewRelease {
        slug: slug(1),
        process_types: BTreeMap::new(),
        description: "Deploy a".into(),
    };
    let v1 = l.create_release(&a, new, false).unwrap();
    assert_eq!((v1.version, v1.status), (1, Status::Pending));
    assert_eq!(l.current(&a).unwrap().version, 0);
    assert_eq!(
        l.finish_release(&a, 1, true).unwrap().status,
        Status::Succeeded
    );
    assert_eq!(l.current(&a).unwrap().version, 1);
    assert_eq!(
        l.finish_release(&a, 1, false).unwrap_err().to_string(),
        "Release v1 is succeeded, not pending: its release phase already ended."
    );
    assert_eq!(l.release(&a, 1).unwrap().status, Status::Succeeded);
    assert_eq!(
        l.finish_release(&a, 9, true).unwrap_err().to_string(),
        "once has no release v9. Run `wdyno releases -a once` to list them."
    );
    assert_eq!(
        l.rollback(&a, 9).unwrap_err().to_string(),
        "once has no release v9. Run `wdyno releases -a once` to list them."
    );
}

#[test]
fn times_are_kept_to_the_microsecond() {
    let (_t, l) = ledger();
    let a = app("clock");
    let created = l.create_app(&a).unwrap();
    assert_eq!(l.app(&a).unwrap(), created);
    let r = deploy(&l, &a, 1);
    assert_eq!(r.created_at.timestamp_subsec_nanos() % 1000, 0);
    assert_eq!(l.release(&a, 1).unwrap(), r, "reads back exactly");
    let json = serde_json::to_value(&r).unwrap();
    let text = json["created_at"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(text).is_ok(), "{text}");
    assert_eq!(json["status"], "succeeded");
}

#[test]
fn builds_are_numbered_per_app_and_recorded() {
    let (_t, l) = ledger();
    let (a, b) = (app("one"), app("two"));
    l.create_app(&a).unwrap();
    l.create_app(&b).unwrap();
    let b1 = l.create_build(&a, "abc1234").unwrap();
    let b2 = l.create_build(&a, "def5678").unwrap();
    let other = l.create_build(&b, "x").unwrap();
    assert_eq!((b1.id, b2.id, other.id), (1, 2, 1));
    assert_eq!(b1.status, Status::Pending);
    let done = Build {
        status: Status::Succeeded,
        slug: Some(slug(3)),
        release: Some(1),
        output_tail: "-----> Launching...".into(),
        ..b2.clone()
    };
    l.finish_build(&a, &done).unwrap();
    assert_eq!(l.build(&a, 2).unwrap(), done);
    assert_eq!(l.builds(&a).unwrap(), vec![b1, done]);
    assert_eq!(l.builds(&b).unwrap(), vec![other]);
    let ghost = Build {
        id: 5,
        ..l.build(&a, 1).unwrap()
    };
    assert_eq!(
        l.finish_build(&a, &ghost).unwrap_err().to_string(),
        "one has no build 5. Run `wdyno builds -a one` to list them."
    );
    let gone = app("gone");
    assert_eq!(
        l.create_build(&gone, "x").unwrap_err().to_string(),
        "Couldn't find that app: gone. Run `wdyno apps` to list yours."
    );
}

#[test]
fn a_destroyed_app_leaves_nothing_for_its_successor() {
    let (_t, l) = ledger();
    let a = app("phoenix");
    let other = app("phoenix-2");
    l.create_app(&a).unwrap();
    l.create_app(&other).unwrap();
    deploy(&l, &a, 1);
    deploy(&l, &other, 2);
    l.create_build(&a, "x").unwrap();
    l.scale(
        &a,
        &BTreeMap::from([(ProcessType::parse("web").unwrap(), 2)]),
    )
    .unwrap();
    l.destroy_app(&a).unwrap();
    assert!(matches!(
        l.destroy_app(&a),
        Err(LedgerError::AppNotFound(_))
    ));
    assert!(matches!(l.current(&a), Err(LedgerError::AppNotFound(_))));
    l.create_app(&a).unwrap();
    assert!(l.releases(&a).unwrap().is_empty());
    assert!(l.builds(&a).unwrap().is_empty());
    assert!(l.formation(&a).unwrap().is_empty());
    assert_eq!(l.create_build(&a, "y").unwrap().id, 1);
    assert_eq!(
        l.releases(&other).unwrap().len(),
        1,
        "a neighbour keeps its own"
    );
    assert_eq!(l.slugs_in_use().unwrap(), HashSet::from([slug(2)]));
}

#[test]
fn an_apps_features_and_drains_are_kept_and_never_doubled() {
    let t = tempfile::tempdir().unwrap();
    let a = app("hello");
    let drain = |id: &str, url: &str| Drain {
        id: id.into(),
        url: url.into(),
        token: format!("d.{id}"),
        created_at: now(),
    };
    {
        let l = SledLedger::open(t.path()).unwrap();
        l.create_app(&a).unwrap();
        let feature = |enabled| AppChange::Feature {
            name: "log-runtime-metrics".into(),
            enabled,
        };
        l.update_app(&a, &feature(true)).unwrap();
        let got = l.update_app(&a, &feature(true)).unwrap();
        assert_eq!(got.features.len(), 1);
        l.update_app(&a, &AppChange::AddDrain(drain("1", "syslog://x:1")))
            .unwrap();
        l.update_app(&a, &AppChange::AddDrain(drain("2", "https://y/")))
            .unwrap();
        let again = l.update_app(&a, &AppChange::AddDrain(drain("3", "syslog://x:1")));
        assert!(
            matches!(again, Err(LedgerError::DrainExists { .. })),
            "{again:?}"
        );
        let gone = l.update_app(&a, &AppChange::RemoveDrain("9".into()));
        assert!(
            matches!(gone, Err(LedgerError::NoSuchDrain { .. })),
            "{gone:?}"
        );
        let missing = l.update_app(&app("nope"), &feature(true));
        assert!(
            matches!(missing, Err(LedgerError::AppNotFound(_))),
            "{missing:?}"
        );
    }
    let l = SledLedger::open(t.path()).unwrap();
    let got = l.app(&a).unwrap();
    assert!(got.features.contains("log-runtime-metrics"));
    let urls: Vec<&str> = got.drains.iter().map(|d| d.url.as_str()).collect();
    assert_eq!(urls, ["syslog://x:1", "https://y/"]);
    let got = l
        .update_app(&a, &AppChange::RemoveDrain("1".into()))
        .unwrap();
    let ids: Vec<&str> = got.drains.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["2"]);
}
