//! A small HTTP/1.1 server on `$PORT` (keep-alive, concurrent connections).
//! `GET /` → `hello from $DYNO`, `/env` → the env, `/greeting` → `$GREETING`,
//! `/alloc/N` → holds N MiB more for good, `/print/N` → prints N lines.
//! Listens on `$BIND` (default `0.0.0.0`, as most apps do).

use wstd::io::{AsyncRead, AsyncWrite};
use wstd::iter::AsyncIterator;
use wstd::net::{TcpListener, TcpStream};

#[wstd::main]
async fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").expect("PORT is set for web dynos");
    let host = std::env::var("BIND").unwrap_or_else(|_| "0.0.0.0".into());
    let listener = TcpListener::bind(&format!("{host}:{port}")).await?;
    println!("listening on {port}");
    let mut incoming = listener.incoming();
    while let Some(stream) = incoming.next().await {
        let Ok(stream) = stream else { continue };
        wstd::runtime::spawn(async move {
            let _ = serve(stream).await;
        })
        .detach();
    }
    Ok(())
}

async fn serve(mut stream: TcpStream) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Read until a whole header block is buffered.
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or("");
        let path = request_line.split(' ').nth(1).unwrap_or("/").to_owned();
        let mut length = 0usize;
        let mut close = false;
        for line in lines {
            let Some((k, v)) = line.split_once(':') else { continue };
            let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
            if k == "content-length" {
                length = v.parse().unwrap_or(0);
            } else if k == "connection" && v.eq_ignore_ascii_case("close") {
                close = true;
            }
        }
        while buf.len() < end + length {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..end + length);
        match path.as_str() {
            // Misbehaviours the router must survive.
            "/close" => return Ok(()),
            "/hang" => {
                println!("hanging");
                wstd::task::sleep(wstd::time::Duration::from_secs(3600)).await;
                return Ok(());
            }
            _ => {}
        }
        let (status, body) = route(&path);
        let response = format!(
            "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n{}\r\n{body}",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        stream.write_all(response.as_bytes()).await?;
        stream.flush().await?;
        if close {
            return Ok(());
        }
    }
}

/// What `/alloc/N` holds: never freed.
static HOARD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

fn route(path: &str) -> (&'static str, String) {
    if let Some(n) = path.strip_prefix("/alloc/").and_then(|n| n.parse::<usize>().ok()) {
        let mut hoard = HOARD.lock().unwrap();
        hoard.push(vec![1u8; n << 20]);
        let total: usize = hoard.iter().map(Vec::len).sum();
        let dyno = std::env::var("DYNO").unwrap_or_default();
        return ("200 OK", format!("{dyno} holds {} MiB", total >> 20));
    }
    if let Some(n) = path.strip_prefix("/print/").and_then(|n| n.parse::<u32>().ok()) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        for i in 1..=n {
            let _ = writeln!(out, "burst {i}/{n}");
        }
        let _ = out.flush();
        return ("200 OK", format!("printed {n}"));
    }
    match path {
        "/" => (
            "200 OK",
            format!("hello from {}", std::env::var("DYNO").unwrap_or_default()),
        ),
        "/env" => {
            let mut vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}\n")).collect();
            vars.sort();
            ("200 OK", vars.concat())
        }
        "/version" => (
            "200 OK",
            std::fs::read_to_string("/app/VERSION").unwrap_or_else(|_| "none".into()),
        ),
        "/greeting" => (
            "200 OK",
            std::env::var("GREETING").unwrap_or_else(|_| "unset".into()),
        ),
        _ => ("404 Not Found", "not found\n".into()),
    }
}
