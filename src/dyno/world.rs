//! Which kind of dyno a component is, told from its bytes and exports.

use std::fmt;
use std::path::{Path, PathBuf};

use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::DynoError;

/// The two worlds a dyno can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `wasi:cli/command`: `run` is called; a web dyno binds `$PORT` itself.
    Command,
    /// `wasi:http/proxy`: the platform owns `$PORT` and calls `handle` in a
    /// fresh instance per request.
    Proxy,
}

impl fmt::Display for World {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            World::Command => "wasi:cli/command",
            World::Proxy => "wasi:http/proxy",
        })
    }
}

const MAGIC: &[u8; 4] = b"\0asm";

/// Refuses, with a message naming the file, anything that is not a
/// component binary: other files, core modules, WAT text.
pub fn check_header(path: &Path, bytes: &[u8]) -> Result<(), DynoError> {
    let not = |found: String| DynoError::NotADyno {
        path: path.to_owned(),
        found,
    };
    if bytes.len() < 8 {
        return Err(not(format!(
            "a file of {} bytes, too short to be a wasm component",
            bytes.len()
        )));
    }
    if &bytes[..4] != MAGIC {
        let head = String::from_utf8_lossy(&bytes[..bytes.len().min(16)])
            .chars()
            .map(|c| if c.is_control() { '.' } else { c })
            .collect::<String>();
        return Err(not(format!(
            "not WebAssembly at all (it starts with {head:?}); build it for wasm32-wasip2"
        )));
    }
    match &bytes[4..8] {
        [1, 0, 0, 0] => Err(not(
            "a core wasm module, not a component; build for wasm32-wasip2 or wrap it with \
             `wasm-tools component new`"
                .into(),
        )),
        [0x0d, 0, 1, 0] => Ok(()),
        other => Err(not(format!(
            "a wasm binary of unknown version/layer {other:02x?}"
        ))),
    }
}

/// Tells a component's world from its exports.
pub fn detect(path: &Path, engine: &Engine, component: &Component) -> Result<World, DynoError> {
    let ty = component.component_type();
    let mut names = Vec::new();
    let mut world = None;
    for (name, item) in ty.exports(engine) {
        if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
            names.push(name.to_owned());
            continue;
        }
        let unversioned = name.split('@').next().unwrap_or(name);
        match unversioned {
            "wasi:http/incoming-handler" => world = Some(World::Proxy),
            "wasi:cli/run" if world.is_none() => world = Some(World::Command),
            _ => {}
        }
        names.push(name.to_owned());
    }
    world.ok_or_else(|| DynoError::NotADyno {
        path: PathBuf::from(path),
        found: if names.is_empty() {
            "a component that exports nothing; a dyno exports wasi:cli/run or \
             wasi:http/incoming-handler"
                .into()
        } else {
            format!(
                "a component exporting {}; a dyno exports wasi:cli/run or \
                 wasi:http/incoming-handler",
                names.join(", ")
            )
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(bytes: &[u8]) -> String {
        check_header(Path::new("bin/web.wasm"), bytes)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn headers_are_told_apart() {
        assert!(msg(b"").contains("0 bytes"));
        assert!(msg(b"#!/bin/sh\necho hi\n").contains("not WebAssembly at all"));
        assert!(msg(b"\0asm\x01\0\0\0rest").contains("core wasm module"));
        assert!(msg(b"\0asm\x02\0\0\0rest").contains("unknown version"));
        assert!(msg(b"\0asm\x01\0\0\0").starts_with("bin/web.wasm"));
        assert!(check_header(Path::new("x"), b"\0asm\x0d\0\x01\0").is_ok());
    }
}
