"""What the Rust buildpack knows about wasm32-wasip2 builds.

`wasip2.py threads` reads `cargo metadata` on stdin and, when the app
starts tokio's multi-threaded runtime, prints why that cannot run as a dyno
and what to write instead (exit 1): wasm32-wasip2 has no threads, so such
an app compiles and then crashes at boot ("OS can't spawn worker thread").

`wasip2.py rustflags FLAG...` prints how to give cargo FLAG... after the
user's own rustflags, without dropping any of theirs:
- `encoded:<flags>`: the user set RUSTFLAGS (which makes cargo ignore
  config-file rustflags); theirs, then ours, for CARGO_ENCODED_RUSTFLAGS;
- `config:<value>`: a `--config` value for `target.wasm32-wasip2.rustflags`.
  Cargo joins it with the app's own target rustflags, but then ignores
  `build.rustflags`, so the app's `build.rustflags` are carried into it.
"""

import json
import os
import re
import sys
import tomllib

TOKIO_MAIN = re.compile(r"#\[\s*tokio::main\s*(\(([^)]*)\))?\s*\]")


def multi_threaded(code):
    """The multi-threaded runtime this line starts, if it starts one."""
    m = TOKIO_MAIN.search(code)
    if m and "current_thread" not in (m.group(2) or ""):
        return m.group(0)
    if "new_multi_thread" in code:
        return "Builder::new_multi_thread()"
    return None


def sources(meta):
    """(package root, .rs file) for the bins and cdylibs cargo builds."""
    default = set(meta.get("workspace_default_members") or meta["workspace_members"])
    for pkg in meta["packages"]:
        if pkg["id"] not in default:
            continue
        root = os.path.dirname(pkg["manifest_path"])
        tops = {
            os.path.dirname(t["src_path"])
            for t in pkg["targets"]
            if {"bin", "cdylib"} & set(t["kind"])
        }
        for top in sorted(tops):
            for d, subdirs, files in os.walk(top):
                subdirs[:] = sorted(s for s in subdirs if s != "target")
                for f in sorted(files):
                    if f.endswith(".rs"):
                        yield root, os.path.join(d, f)


def threads():
    for root, path in sources(json.load(sys.stdin)):
        with open(path, errors="replace") as f:
            for n, line in enumerate(f, 1):
                found = multi_threaded(line.split("//", 1)[0])
                if found:
                    where = f"{os.path.relpath(path, root)}:{n}"
                    print(
                        f"{where}: {found} starts tokio's multi-threaded runtime, but a"
                        " WebAssembly dyno has one thread (wasm32-wasip2 cannot spawn"
                        " threads, so the dyno would crash at boot)."
                    )
                    print(
                        '  Write #[tokio::main(flavor = "current_thread")] (or'
                        " Builder::new_current_thread()): the rest of an axum, hyper or"
                        " tokio app runs unchanged, tokio's net included."
                    )
                    print("  A working axum app: examples/rust-axum in the wdyno repository.")
                    return 1
    return 0


def rustflags(ours):
    user = os.environ.get("RUSTFLAGS", "").split()
    if user:
        print("encoded:" + "\x1f".join(user + ours))
        return 0
    cfg = {}
    for name in (".cargo/config.toml", ".cargo/config"):
        if os.path.isfile(name):
            with open(name, "rb") as f:
                cfg = tomllib.load(f)
            break
    has_target = any(
        isinstance(v, dict) and "rustflags" in v for v in cfg.get("target", {}).values()
    )
    build = cfg.get("build", {}).get("rustflags", [])
    carried = [] if has_target else (build.split() if isinstance(build, str) else list(build))
    print("config:target.wasm32-wasip2.rustflags=" + json.dumps(carried + ours))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["threads"]:
        sys.exit(threads())
    if sys.argv[1:2] == ["rustflags"]:
        sys.exit(rustflags(sys.argv[2:]))
    sys.exit("usage: wasip2.py threads < metadata.json | wasip2.py rustflags FLAG...")
