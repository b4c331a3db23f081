use super::*;

fn app(s: &str) -> AppName {
    AppName::parse(s).unwrap()
}

fn key(s: &str) -> ConfigKey {
    ConfigKey::parse(s).unwrap()
}

fn slug(n: u8) -> SlugId {
    SlugId::parse(&format!("{:02x}", n).repeat(32)).unwrap()
}

fn deploy(l: &Ledger, a: &AppName, n: u8) -> Release {
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
    let l = Ledger::open(t.path()).unwrap();
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
    let l = Ledger::open(t.path()).unwrap();
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
    let l = Ledger::open(t.path()).unwrap();
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
    assert_eq!(f, BTreeMap::from([("web".to_owned(), 3)]));
    assert_eq!(l.formation(&a).unwrap(), f);
}

#[test]
fn reopening_keeps_every_release_and_destroy_removes_all() {
    let t = tempfile::tempdir().unwrap();
    let a = app("many");
    {
        let l = Ledger::open(t.path()).unwrap();
        l.create_app(&a).unwrap();
        for i in 0..200u32 {
            deploy(&l, &a, (i % 250) as u8);
        }
    }
    let l = Ledger::open(t.path()).unwrap();
    let versions: Vec<u64> = l.releases(&a).unwrap().iter().map(|r| r.version).collect();
    assert_eq!(versions, (1..=200).collect::<Vec<_>>());
    l.destroy_app(&a).unwrap();
    assert!(matches!(l.releases(&a), Err(LedgerError::AppNotFound(_))));
    assert!(l.apps().unwrap().is_empty());
}

#[test]
fn config_is_capped_at_32_kb() {
    let t = tempfile::tempdir().unwrap();
    let l = Ledger::open(t.path()).unwrap();
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
