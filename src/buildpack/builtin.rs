//! The built-in buildpacks, compiled into the binary.

use std::path::Path;

/// Detection order of the built-ins.
pub const NAMES: &[&str] = &["rust", "js", "wasm"];

const FILES: &[(&str, &str, bool)] = &[
    (
        "rust/bin/detect",
        include_str!("../../buildpacks/rust/bin/detect"),
        true,
    ),
    (
        "rust/bin/compile",
        include_str!("../../buildpacks/rust/bin/compile"),
        true,
    ),
    (
        "rust/bin/release",
        include_str!("../../buildpacks/rust/bin/release"),
        true,
    ),
    (
        "rust/lib/fcntl_fix.rs",
        include_str!("../../buildpacks/rust/lib/fcntl_fix.rs"),
        false,
    ),
    (
        "rust/lib/wasip2.py",
        include_str!("../../buildpacks/rust/lib/wasip2.py"),
        false,
    ),
    (
        "js/bin/detect",
        include_str!("../../buildpacks/js/bin/detect"),
        true,
    ),
    (
        "js/bin/compile",
        include_str!("../../buildpacks/js/bin/compile"),
        true,
    ),
    (
        "js/bin/release",
        include_str!("../../buildpacks/js/bin/release"),
        true,
    ),
    (
        "js/tools/package-lock.json",
        include_str!("../../buildpacks/js/tools/package-lock.json"),
        false,
    ),
    (
        "js/wit/worlds.wit",
        include_str!("../../buildpacks/js/wit/worlds.wit"),
        false,
    ),
    (
        "wasm/bin/detect",
        include_str!("../../buildpacks/wasm/bin/detect"),
        true,
    ),
    (
        "wasm/bin/compile",
        include_str!("../../buildpacks/wasm/bin/compile"),
        true,
    ),
    (
        "wasm/bin/release",
        include_str!("../../buildpacks/wasm/bin/release"),
        true,
    ),
];

/// Writes the built-in buildpacks under `dir` (replacing older copies).
pub fn install_builtins(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for (rel, text, exec) in FILES {
        let path = dir.join(rel);
        // Readable by the build sandbox's uid whatever the daemon's umask:
        // buildpacks are public code, mounted read-only into builds.
        let mut parent = path.parent().expect("file has a parent");
        std::fs::create_dir_all(parent)?;
        while parent.starts_with(dir) {
            std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
            match parent.parent() {
                Some(p) => parent = p,
                None => break,
            }
        }
        if std::fs::read_to_string(&path).is_ok_and(|old| old == *text) {
            continue;
        }
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)?;
        let mode = if *exec { 0o755 } else { 0o644 };
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(mode))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}
