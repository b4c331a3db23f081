use super::*;

fn store(dir: &Path) -> SlugStore {
    SlugStore::open(dir.join("slugs"), Limits::default()).unwrap()
}

fn app_tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("Procfile"), "web: bin/web\n").unwrap();
    std::fs::write(src.join("bin/web.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    src
}

#[test]
fn pack_is_reproducible_and_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let src = app_tree(t.path());
    let s = store(t.path());
    let a = s.pack(&src).unwrap();
    let b = s.pack(&src).unwrap();
    assert_eq!(a, b, "same files, same digest");
    s.verify(&a).unwrap();
    let dest = t.path().join("out");
    let stats = s.unpack(&a, &dest).unwrap();
    assert_eq!(
        stats,
        Unpacked {
            files: 2,
            bytes: 21
        }
    );
    assert_eq!(
        std::fs::read_to_string(dest.join("Procfile")).unwrap(),
        "web: bin/web\n"
    );
    assert!(dest.join("empty").is_dir());
    assert_eq!(s.list().unwrap(), vec![a]);
}

#[test]
fn pack_refuses_links_and_oversize_sources() {
    let t = tempfile::tempdir().unwrap();
    let src = app_tree(t.path());
    std::os::unix::fs::symlink("/etc/passwd", src.join("passwd")).unwrap();
    let e = store(t.path()).pack(&src).unwrap_err();
    assert_eq!(
        e.to_string(),
        "slug entry \"passwd\" is refused: a slug holds only regular files and directories (no links or devices)"
    );
    std::fs::remove_file(src.join("passwd")).unwrap();
    let small = SlugStore::open(
        t.path().join("s2"),
        Limits {
            max_bytes: 10,
            max_entries: 100,
        },
    )
    .unwrap();
    let e = small.pack(&src).unwrap_err();
    assert!(
        matches!(
            e,
            SlugError::TooBig {
                size: 21,
                limit: 10
            }
        ),
        "{e}"
    );
}

#[test]
fn orphans_and_temp_files_are_removed() {
    let t = tempfile::tempdir().unwrap();
    let src = app_tree(t.path());
    let s = store(t.path());
    let keep = s.pack(&src).unwrap();
    std::fs::write(src.join("more"), "x").unwrap();
    let orphan = s.pack(&src).unwrap();
    std::fs::write(t.path().join("slugs/.tmpABC"), "partial").unwrap();
    let removed = s.remove_orphans(&HashSet::from([keep.clone()])).unwrap();
    assert_eq!(removed, 2);
    assert!(s.exists(&keep));
    assert!(!s.exists(&orphan));
}

#[test]
fn slug_ids_are_checked() {
    assert!(SlugId::parse(&"a".repeat(64)).is_ok());
    assert!(SlugId::parse(&"A".repeat(64)).is_err());
    assert!(SlugId::parse("../../etc/passwd").is_err());
}
