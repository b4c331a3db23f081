//! A web app that answers the router's edge cases in raw bytes, one
//! connection at a time (plain `std::net`, no threads on wasip2):
//!
//! - `GET /` → `edge`, with hop-by-hop headers the router must not pass on
//!   (`Connection: close, x-hop`, `x-hop`, `Keep-Alive`) and an end-to-end
//!   one it must (`x-app`); the app closes the connection after each answer;
//! - `GET /headers` → the request's header names, one per line, sorted;
//! - `POST /count` → how many body bytes arrived (`Content-Length` or
//!   chunked);
//! - `GET /clte` → an answer with both `Content-Length` and
//!   `Transfer-Encoding` (a broken upstream); it says `Connection: close`
//!   (as every answer here should: the app closes after each), so the
//!   router never reuses the connection;
//! - `GET /ws` with `Upgrade: websocket` → 101, then each text frame
//!   received is sent back (unmasked) until a close frame;
//! - `GET /chunked` → 3000 bytes (`x` × 1000 three times) in three chunks;
//! - `GET /stall` → a chunked answer that sends one 5-byte chunk and then
//!   nothing for an hour;
//! - `GET /request-start` → the `X-Request-Start` the router sent.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("PORT must be set to a port number");
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("binding $PORT");
    for stream in listener.incoming().flatten() {
        let _ = serve(&stream);
    }
}

struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_owned();
    let path = parts.next().unwrap_or("/").to_owned();
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
        }
    }
    Ok(Some(Head { method, path, headers }))
}

/// Reads the body by its framing; returns its length.
fn read_body(r: &mut impl BufRead, head: &Head) -> std::io::Result<u64> {
    if head.get("transfer-encoding").is_some() {
        let mut total = 0;
        let mut line = String::new();
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other("bad chunk size"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        return Ok(total);
                    }
                }
            }
            std::io::copy(&mut r.by_ref().take(size), &mut std::io::sink())?;
            total += size;
            line.clear();
            r.read_line(&mut line)?;
        }
    }
    let n: u64 = head.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    std::io::copy(&mut r.by_ref().take(n), &mut std::io::sink())
}

fn serve(stream: &TcpStream) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream);
    let Some(head) = read_head(&mut reader)? else {
        return Ok(());
    };
    let mut out = stream;
    match (head.method.as_str(), head.path.as_str()) {
        ("GET", "/") => out.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close, x-hop\r\n\
              x-hop: secret\r\nkeep-alive: timeout=5\r\nx-app: kept\r\n\r\nedge\n",
        ),
        ("GET", "/headers") => {
            let mut names: Vec<&str> = head.headers.iter().map(|(k, _)| k.as_str()).collect();
            names.sort();
            names.dedup();
            let body = names.join("\n") + "\n";
            out.write_all(reply("200 OK", &body).as_bytes())
        }
        ("POST", "/count") => {
            let n = read_body(&mut reader, &head)?;
            out.write_all(reply("200 OK", &format!("{n}\n")).as_bytes())
        }
        ("GET", "/clte") => out.write_all(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n\
              5\r\nhello\r\n0\r\n\r\n",
        ),
        ("GET", "/ws") if head.get("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket")) => {
            out.write_all(
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
            )?;
            echo_frames(&mut reader, out)
        }
        ("GET", "/chunked") => {
            out.write_all(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n")?;
            for _ in 0..3 {
                out.write_all(b"3e8\r\n")?;
                out.write_all(&[b'x'; 1000])?;
                out.write_all(b"\r\n")?;
                out.flush()?;
            }
            out.write_all(b"0\r\n\r\n")
        }
        ("GET", "/stall") => {
            out.write_all(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n5\r\nhello\r\n",
            )?;
            out.flush()?;
            std::thread::sleep(std::time::Duration::from_secs(3600));
            Ok(())
        }
        ("GET", "/request-start") => {
            let v = head.get("x-request-start").unwrap_or("none").to_owned();
            out.write_all(reply("200 OK", &v).as_bytes())
        }
        _ => out.write_all(reply("404 Not Found", "not found\n").as_bytes()),
    }
}

fn reply(status: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// RFC 6455 frames, small ones only (payloads under 64 KiB).
fn echo_frames(r: &mut impl Read, mut w: impl Write) -> std::io::Result<()> {
    loop {
        let mut h = [0u8; 2];
        r.read_exact(&mut h)?;
        let opcode = h[0] & 0x0f;
        let masked = h[1] & 0x80 != 0;
        let mut len = (h[1] & 0x7f) as usize;
        if len == 126 {
            let mut l = [0u8; 2];
            r.read_exact(&mut l)?;
            len = u16::from_be_bytes(l) as usize;
        } else if len == 127 {
            return Ok(());
        }
        let mut mask = [0u8; 4];
        if masked {
            r.read_exact(&mut mask)?;
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload)?;
        if masked {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        let mut frame = vec![0x80 | opcode];
        if len < 126 {
            frame.push(len as u8);
        } else {
            frame.push(126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        frame.extend_from_slice(&payload);
        w.write_all(&frame)?;
        if opcode == 8 {
            return Ok(());
        }
    }
}
