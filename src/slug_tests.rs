use super::*;
use std::os::unix::fs::PermissionsExt;

fn store(dir: &Path) -> SlugDir {
    SlugDir::open(dir.join("slugs"), Limits::default()).unwrap()
}

fn app_tree(root: &Path) -> PathBuf {
    let src = root.join("src");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(src.join("Procfile"), "web: bin/web\n").unwrap();
    std::fs::write(src.join("bin/web.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    src
}

/// Raw tar entries: headers written as given, then their data.
type Entries = Vec<(tar::Header, Vec<u8>)>;

/// One raw tar entry: GNU header with `name` written as is.
fn raw_entry(ty: tar::EntryType, name: &[u8], data: &[u8]) -> (tar::Header, Vec<u8>) {
    let mut h = tar::Header::new_gnu();
    h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
    h.set_entry_type(ty);
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    (h, data.to_vec())
}

/// Imports a hand-made slug of `entries` and unpacks it into `t/out`.
fn unpack_crafted(t: &Path, entries: &[(tar::Header, Vec<u8>)]) -> Result<Unpacked, SlugError> {
    let mut b = tar::Builder::new(Vec::new());
    for (h, data) in entries {
        b.append(h, &data[..]).unwrap();
    }
    let bytes = zstd::encode_all(&b.into_inner().unwrap()[..], 3).unwrap();
    let file = t.join("crafted.tar.zst");
    std::fs::write(&file, bytes).unwrap();
    let s = store(t);
    let id = s.import(&file).unwrap();
    s.unpack(&id, &t.join("out"))
}

fn long_name(path: &[u8]) -> (tar::Header, Vec<u8>) {
    let mut data = path.to_vec();
    data.push(0);
    raw_entry(tar::EntryType::GNULongName, b"././@LongLink", &data)
}

#[test]
fn pack_is_reproducible_and_round_trips() {
    let t = tempfile::tempdir().unwrap();
    let src = app_tree(t.path());
    std::fs::set_permissions(src.join("bin/web.wasm"), PermissionsExt::from_mode(0o700)).unwrap();
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
    let mode = |p: &str| {
        std::fs::metadata(dest.join(p))
            .unwrap()
            .permissions()
            .mode()
            & 0o111
    };
    assert_ne!(mode("bin/web.wasm"), 0, "executable bit kept");
    assert_eq!(mode("Procfile"), 0);
    assert!(dest.join("empty").is_dir());
    assert_eq!(s.list().unwrap(), vec![a]);
}

#[test]
fn long_paths_round_trip() {
    let t = tempfile::tempdir().unwrap();
    let src = t.path().join("src");
    let deep = format!("{}/{}/{}", "a".repeat(60), "b".repeat(60), "c".repeat(60));
    std::fs::create_dir_all(src.join(&deep)).unwrap();
    std::fs::write(src.join(&deep).join("f.txt"), "deep").unwrap();
    let s = store(t.path());
    let id = s.pack(&src).unwrap();
    let dest = t.path().join("out");
    assert_eq!(
        s.unpack(&id, &dest).unwrap(),
        Unpacked { files: 1, bytes: 4 }
    );
    assert_eq!(
        std::fs::read_to_string(dest.join(&deep).join("f.txt")).unwrap(),
        "deep"
    );
}

#[test]
fn pack_refuses_links_sockets_and_oversize_sources() {
    let t = tempfile::tempdir().unwrap();
    let src = app_tree(t.path());
    std::os::unix::fs::symlink("/etc/passwd", src.join("passwd")).unwrap();
    let e = store(t.path()).pack(&src).unwrap_err();
    assert_eq!(
        e.to_string(),
        "slug entry \"passwd\" is refused: a slug holds only regular files and directories (no links or devices)"
    );
    std::fs::remove_file(src.join("passwd")).unwrap();
    let _sock = std::os::unix::net::UnixListener::bind(src.join("bin/sock")).unwrap();
    let e = store(t.path()).pack(&src).unwrap_err();
    assert!(
        matches!(&e, SlugError::BadEntry { path, .. } if path == "bin/sock"),
        "{e}"
    );
    std::fs::remove_file(src.join("bin/sock")).unwrap();
    let small = |max_bytes, max_entries| {
        SlugDir::open(
            t.path().join("s2"),
            Limits {
                max_bytes,
                max_entries,
            },
        )
        .unwrap()
    };
    let e = small(10, 100).pack(&src).unwrap_err();
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
    assert_eq!(
        e.to_string(),
        "the app is 21 bytes unpacked, over the slug limit of 10 bytes: remove build artefacts or big assets"
    );
    let e = small(1000, 3).pack(&src).unwrap_err();
    assert!(matches!(e, SlugError::TooManyEntries { limit: 3 }), "{e}");
    assert_eq!(
        std::fs::read_dir(t.path().join("s2")).unwrap().count(),
        0,
        "no temp left"
    );
}

#[test]
fn pack_refuses_names_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let t = tempfile::tempdir().unwrap();
    let src = app_tree(t.path());
    std::fs::write(src.join(std::ffi::OsStr::from_bytes(b"bad\xff")), "x").unwrap();
    let e = store(t.path()).pack(&src).unwrap_err();
    assert_eq!(
        e.to_string(),
        "slug entry \"bad\u{fffd}\" is refused: file names in a slug must be UTF-8"
    );
}

#[test]
fn unpack_checks_the_entry_count_and_leaves_no_partial_tree() {
    let t = tempfile::tempdir().unwrap();
    let src = app_tree(t.path());
    let id = store(t.path()).pack(&src).unwrap();
    let strict = SlugDir::open(
        t.path().join("slugs"),
        Limits {
            max_bytes: 1000,
            max_entries: 2,
        },
    )
    .unwrap();
    let dest = t.path().join("out");
    let e = strict.unpack(&id, &dest).unwrap_err();
    assert!(matches!(e, SlugError::TooManyEntries { limit: 2 }), "{e}");
    assert!(!dest.exists());
}

#[test]
fn long_names_are_checked_like_short_ones() {
    let t = tempfile::tempdir().unwrap();
    let file = || raw_entry(tar::EntryType::Regular, b"x", b"pwned");
    let cases: Vec<(Entries, &str)> = vec![
        (
            vec![long_name(b"../../evil"), file()],
            "slug entry \"../../evil\" is refused: only plain relative paths (no '/', '..' or '.' parts)",
        ),
        (
            vec![long_name(b"/tmp/evil"), file()],
            "slug entry \"/tmp/evil\" is refused: only plain relative paths (no '/', '..' or '.' parts)",
        ),
        (
            vec![long_name(&[b'a'; 5000]), file()],
            "slug entry \"(long name)\" is refused: a path longer than 4096 bytes",
        ),
        (
            vec![long_name(b"a"), long_name(b"b"), file()],
            "slug entry \"(long name)\" is refused: two long names for one entry",
        ),
        (
            vec![long_name(b"a")],
            "slug entry \"(long name)\" is refused: the slug ends after a long name",
        ),
    ];
    for (entries, want) in cases {
        let dir = tempfile::tempdir_in(t.path()).unwrap();
        let e = unpack_crafted(dir.path(), &entries).unwrap_err();
        assert_eq!(e.to_string(), want);
        assert!(!dir.path().join("out").exists());
        assert!(!dir.path().join("x").exists() && !dir.path().join("evil").exists());
    }
}

#[test]
fn pax_headers_and_directories_with_data_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let pax = raw_entry(
        tar::EntryType::XHeader,
        b"PaxHeaders/x",
        b"20 path=/etc/evil\n",
    );
    let e = unpack_crafted(
        t.path(),
        &[pax, raw_entry(tar::EntryType::Regular, b"x", b"")],
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "slug entry \"PaxHeaders/x\" is refused: pax headers and long link names are not used in slugs"
    );
    let t = tempfile::tempdir().unwrap();
    let dir = raw_entry(tar::EntryType::Directory, b"d", &[0; 600]);
    let e = unpack_crafted(t.path(), &[dir]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "slug entry \"d\" is refused: a directory entry carries data"
    );
}

#[test]
fn duplicate_entries_fail_without_overwriting() {
    let t = tempfile::tempdir().unwrap();
    let a = raw_entry(tar::EntryType::Regular, b"f", b"one");
    let b = raw_entry(tar::EntryType::Regular, b"f", b"two");
    let e = unpack_crafted(t.path(), &[a, b]).unwrap_err();
    assert!(
        matches!(&e, SlugError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
        "{e}"
    );
    assert!(!t.path().join("out").exists());
}

#[test]
fn an_existing_destination_is_left_alone() {
    let t = tempfile::tempdir().unwrap();
    let src = app_tree(t.path());
    let s = store(t.path());
    let id = s.pack(&src).unwrap();
    let dest = t.path().join("out");
    std::fs::create_dir(&dest).unwrap();
    std::fs::write(dest.join("mine"), "keep").unwrap();
    let e = s.unpack(&id, &dest).unwrap_err();
    assert!(
        matches!(&e, SlugError::Io { source, .. } if source.kind() == io::ErrorKind::AlreadyExists),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(dest.join("mine")).unwrap(), "keep");
}

#[test]
fn import_names_a_slug_by_its_digest_and_missing_slugs_are_named() {
    let t = tempfile::tempdir().unwrap();
    let s = store(t.path());
    let file = t.path().join("f");
    std::fs::write(&file, "abc").unwrap();
    let id = s.import(&file).unwrap();
    assert_eq!(
        id.as_str(),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(id.short(), "ba7816b");
    s.verify(&id).unwrap();
    let gone = SlugId::parse(&"0".repeat(64)).unwrap();
    assert!(!s.exists(&gone));
    assert_eq!(
        s.verify(&gone).unwrap_err().to_string(),
        format!("slug {gone} does not exist: redeploy to rebuild it")
    );
    let e = s.unpack(&gone, &t.path().join("out")).unwrap_err();
    assert!(matches!(e, SlugError::Missing(_)), "{e}");
    assert!(!t.path().join("out").exists());
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
    std::fs::write(t.path().join("slugs/README"), "not ours").unwrap();
    let removed = s.remove_orphans(&HashSet::from([keep.clone()])).unwrap();
    assert_eq!(removed, 2);
    assert!(s.exists(&keep));
    assert!(!s.exists(&orphan));
    assert!(
        t.path().join("slugs/README").exists(),
        "only slugs and temps go"
    );
    assert_eq!(s.list().unwrap(), vec![keep]);
}

#[test]
fn slug_ids_are_checked() {
    assert!(SlugId::parse(&"a".repeat(64)).is_ok());
    assert!(SlugId::parse(&"A".repeat(64)).is_err());
    assert!(SlugId::parse(&"a".repeat(63)).is_err());
    assert!(SlugId::parse("../../etc/passwd").is_err());
    let id: SlugId = serde_json::from_str(&format!("\"{}\"", "b".repeat(64))).unwrap();
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        format!("\"{}\"", "b".repeat(64))
    );
    assert!(serde_json::from_str::<SlugId>("\"../x\"").is_err());
}
