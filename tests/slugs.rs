//! A slug that is not what it claims is refused, and unpacking never writes
//! outside its destination.

use std::io::Write;
use std::path::Path;

use wdyno::slug::{Limits, SlugDir, SlugError};

/// Writes a tar.zst whose single entry has a raw name, type and link.
fn crafted(path: &Path, name: &str, ty: tar::EntryType, link: Option<&str>, data: &[u8]) {
    let mut header = tar::Header::new_old();
    {
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
    }
    if let Some(link) = link {
        let raw = &mut header.as_old_mut().linkname;
        raw[..link.len()].copy_from_slice(link.as_bytes());
    }
    header.set_entry_type(ty);
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    let mut tar_bytes = Vec::new();
    {
        let mut b = tar::Builder::new(&mut tar_bytes);
        b.append(&header, data).unwrap();
        b.finish().unwrap();
    }
    let mut out = std::fs::File::create(path).unwrap();
    out.write_all(&zstd::encode_all(&tar_bytes[..], 3).unwrap())
        .unwrap();
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn refused(name: &str, ty: tar::EntryType, link: Option<&str>) -> SlugError {
    let t = tempfile::tempdir().unwrap();
    let store = SlugDir::open(t.path().join("slugs"), Limits::default()).unwrap();
    let file = t.path().join("bad.tar.zst");
    crafted(&file, name, ty, link, b"pwned");
    let id = store.import(&file).unwrap();
    let work = t.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let dest = work.join("app");
    let err = store.unpack(&id, &dest).unwrap_err();
    // Nothing was written anywhere: not in work/, not beside the store.
    assert_eq!(entries(&work), Vec::<String>::new(), "{name}");
    assert_eq!(
        entries(t.path()),
        ["bad.tar.zst", "slugs", "work"],
        "{name}"
    );
    assert!(!Path::new("/tmp/evil").exists());
    err
}

#[test]
fn parent_dir_entries_are_refused() {
    let e = refused("../evil", tar::EntryType::Regular, None);
    assert_eq!(
        e.to_string(),
        "slug entry \"../evil\" is refused: only plain relative paths (no '/', '..' or '.' parts)"
    );
    let e = refused("bin/../../evil", tar::EntryType::Regular, None);
    assert!(matches!(e, SlugError::BadEntry { .. }), "{e}");
}

#[test]
fn absolute_paths_are_refused() {
    let e = refused("/tmp/evil", tar::EntryType::Regular, None);
    assert!(
        e.to_string()
            .starts_with("slug entry \"/tmp/evil\" is refused"),
        "{e}"
    );
}

#[test]
fn links_and_devices_are_refused() {
    for (name, ty, link) in [
        ("passwd", tar::EntryType::Symlink, Some("/etc/passwd")),
        ("up", tar::EntryType::Symlink, Some("../../..")),
        ("hard", tar::EntryType::Link, Some("/etc/passwd")),
        ("null", tar::EntryType::Char, None),
        ("fifo", tar::EntryType::Fifo, None),
    ] {
        let e = refused(name, ty, link);
        assert_eq!(
            e.to_string(),
            format!(
                "slug entry \"{name}\" is refused: a slug holds only regular files and directories (no links or devices)"
            )
        );
    }
}

#[test]
fn a_slug_whose_bytes_changed_is_refused() {
    let t = tempfile::tempdir().unwrap();
    let store = SlugDir::open(t.path().join("slugs"), Limits::default()).unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("Procfile"), "web: bin/web\n").unwrap();
    let id = store.pack(&src).unwrap();
    let path = store.path(&id);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let dest = t.path().join("out");
    let e = store.unpack(&id, &dest).unwrap_err();
    assert!(matches!(e, SlugError::DigestMismatch { .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with(&format!("slug {id} is corrupt: its bytes hash to "))
    );
    assert!(!dest.exists());
}

#[test]
fn a_slug_over_the_size_limit_is_refused_with_its_size() {
    let t = tempfile::tempdir().unwrap();
    let big = SlugDir::open(t.path().join("slugs"), Limits::default()).unwrap();
    let src = t.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("blob"), vec![7u8; 4096]).unwrap();
    let id = big.pack(&src).unwrap();
    let small = SlugDir::open(
        t.path().join("slugs"),
        Limits {
            max_bytes: 1000,
            max_entries: 10,
        },
    )
    .unwrap();
    let e = small.unpack(&id, &t.path().join("out")).unwrap_err();
    assert_eq!(
        e.to_string(),
        "the app is 4096 bytes unpacked, over the slug limit of 1000 bytes: remove build artefacts or big assets"
    );
}
