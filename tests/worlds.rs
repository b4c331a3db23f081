//! Both dyno worlds serve on `$PORT`; anything else is refused clearly.

mod common;

use std::path::Path;

use common::{Client, Host, built_app, runtime, within};
use wdyno::dyno::{DynoError, Runtime, RuntimeConfig, State, World};

async fn serves(app: &str, expect: &str) {
    let mut host = Host::new(app);
    let dir = built_app(app);
    let web = host.start(&dir, "web.1", &["bin/web"], true);
    assert_eq!(
        within(60, "up", web.dyno.wait_up()).await,
        State::Up,
        "{:?}",
        host.lines("web.1")
    );
    let mut client = Client::connect(web.port.unwrap()).await;
    for _ in 0..20 {
        let (status, body) = within(10, "request", client.get("/")).await;
        assert_eq!(status, 200, "{:?}", host.lines("web.1"));
        assert_eq!(body, expect);
    }
    web.dyno.stop();
    let exit = within(10, "stops", web.dyno.wait()).await;
    assert_eq!(exit.status, 143);
}

#[tokio::test]
async fn rust_proxy_component_serves_on_its_port() {
    serves("rust-http", "hello from rust-http web.1").await;
}

#[tokio::test]
async fn js_proxy_component_serves_on_its_port() {
    serves("js-web", "hello from js-web web.1").await;
}

#[tokio::test]
async fn worlds_are_detected() {
    let rt = runtime();
    let probe = built_app("probe");
    let http = built_app("rust-http");
    assert_eq!(
        rt.prepare(&probe.join("bin/web.wasm")).unwrap().world(),
        World::Command
    );
    assert_eq!(
        rt.prepare(&http.join("bin/web.wasm")).unwrap().world(),
        World::Proxy
    );
}

fn refused(file: &Path) -> String {
    match runtime().prepare(file) {
        Ok(_) => panic!("{} was accepted", file.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn bad_inputs_get_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let real = std::fs::read(built_app("probe").join("bin/web.wasm")).unwrap();

    let text = write("script.wasm", b"#!/bin/sh\necho hello\n");
    let msg = refused(&text);
    assert!(
        msg.starts_with(&format!(
            "{}: this is not WebAssembly at all",
            text.display()
        )),
        "{msg}"
    );

    let wat = write("text.wasm", b"(component)");
    assert!(refused(&wat).contains("not WebAssembly at all"));

    let core = write("core.wasm", b"\0asm\x01\0\0\0");
    let msg = refused(&core);
    assert!(
        msg.contains("core.wasm: this is a core wasm module, not a component"),
        "{msg}"
    );

    let cut = write("truncated.wasm", &real[..real.len() / 3]);
    let msg = refused(&cut);
    assert!(
        msg.contains("truncated.wasm: not a valid WebAssembly component"),
        "{msg}"
    );

    let empty = write("empty.wasm", b"\0asm\x0d\0\x01\0");
    let msg = refused(&empty);
    assert!(
        msg.contains("empty.wasm: this is a component that exports nothing"),
        "{msg}"
    );

    let missing = dir.path().join("missing.wasm");
    assert!(matches!(
        runtime().prepare(&missing),
        Err(DynoError::Io { .. })
    ));
    assert!(refused(&missing).contains("missing.wasm"));
}

#[test]
fn a_second_runtime_loads_compiled_components_from_the_cache() {
    let cache = tempfile::tempdir().unwrap();
    let cfg = RuntimeConfig {
        cache_dir: cache.path().to_owned(),
        max_memory: 64 << 20,
        pooling: false,
        epochs: true,
        capacity: Default::default(),
    };
    let component = built_app("probe").join("bin/web.wasm");
    let first = Runtime::new(&cfg).unwrap();
    first.prepare(&component).unwrap();
    assert_eq!(first.compilations(), 1);
    drop(first);
    let second = Runtime::new(&cfg).unwrap();
    let prepared = second.prepare(&component).unwrap();
    assert_eq!(second.compilations(), 0, "loaded, not compiled");
    assert!(second.is_cached(&prepared.digest));
}
