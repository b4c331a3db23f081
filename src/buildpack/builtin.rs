//! The built-in buildpacks, compiled into the binary.

use std::path::Path;

/// Detection order of the built-ins.
pub const NAMES: &[&str] = &["rust", "js", "wasm"];

/// One file of a built-in buildpack: its path under `buildpacks/`, its text,
/// whether it is a script.
macro_rules! pack_file {
    ($rel:literal, $exec:literal) => {
        (
            $rel,
            include_str!(concat!("../../buildpacks/", $rel)),
            $exec,
        )
    };
}

const FILES: &[(&str, &str, bool)] = &[
    pack_file!("rust/bin/detect", true),
    pack_file!("rust/bin/compile", true),
    pack_file!("rust/bin/release", true),
    pack_file!("rust/lib/fcntl_fix.rs", false),
    pack_file!("rust/lib/wasip2.py", false),
    pack_file!("js/bin/detect", true),
    pack_file!("js/bin/compile", true),
    pack_file!("js/bin/release", true),
    pack_file!("js/bin/tools", true),
    pack_file!("js/tools/package-lock.json", false),
    pack_file!("js/tools/package.json", false),
    pack_file!("js/lib/bundle.mjs", false),
    pack_file!("js/lib/node/assert.js", false),
    pack_file!("js/lib/node/async_hooks.js", false),
    pack_file!("js/lib/node/crypto.js", false),
    pack_file!("js/lib/node/diagnostics_channel.js", false),
    pack_file!("js/lib/node/error-stack.js", false),
    pack_file!("js/lib/node/fs-promises.js", false),
    pack_file!("js/lib/node/fs.js", false),
    pack_file!("js/lib/node/globals.js", false),
    pack_file!("js/lib/node/http.js", false),
    pack_file!("js/lib/node/https.js", false),
    pack_file!("js/lib/node/net.js", false),
    pack_file!("js/lib/node/os.js", false),
    pack_file!("js/lib/node/perf_hooks.js", false),
    pack_file!("js/lib/node/process.js", false),
    pack_file!("js/lib/node/stream-promises.js", false),
    pack_file!("js/lib/node/stream-web.js", false),
    pack_file!("js/lib/node/stream.js", false),
    pack_file!("js/lib/node/timers-promises.js", false),
    pack_file!("js/lib/node/timers.js", false),
    pack_file!("js/lib/node/tty.js", false),
    pack_file!("js/lib/node/url.js", false),
    pack_file!("js/lib/node/util-types.js", false),
    pack_file!("js/lib/node/util.js", false),
    pack_file!("js/lib/node/zlib.js", false),
    pack_file!("js/wit/worlds.wit", false),
    pack_file!("wasm/bin/detect", true),
    pack_file!("wasm/bin/compile", true),
    pack_file!("wasm/bin/release", true),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to `buildpacks/` but not to [`FILES`] would be missing
    /// from every daemon's copy.
    #[test]
    fn every_file_of_the_builtin_buildpacks_is_compiled_in() {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    walk(root, &p, out);
                } else {
                    out.push(p.strip_prefix(root).unwrap().display().to_string());
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("buildpacks");
        let mut on_disk = Vec::new();
        walk(&root, &root, &mut on_disk);
        on_disk.sort();
        let mut listed: Vec<String> = FILES.iter().map(|(rel, _, _)| rel.to_string()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
    }
}
