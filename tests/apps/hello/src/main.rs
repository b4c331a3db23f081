//! The benchmark's hello web app: plain `std::net`, one connection at a
//! time, `Connection: close`. The same source runs as a dyno and natively.
//!
//! - `GET /` answers `$GREETING` (default `hello`), so a benchmark can tell
//!   releases apart by their config;
//! - `GET /cpu?n=N` counts the primes below `N` with a sieve: a CPU-bound
//!   handler.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};

fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("PORT must be set to a port number");
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "hello".to_owned());
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("binding $PORT");
    let mut buf = vec![0u8; 16 * 1024];
    for stream in listener.incoming() {
        if let Ok(stream) = stream {
            serve(stream, &mut buf, &greeting);
        }
    }
}

fn serve(mut stream: TcpStream, buf: &mut [u8], greeting: &str) {
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => len += n,
        }
        if len == buf.len() {
            let _ = stream.write_all(&response("431 Request Header Fields Too Large", ""));
            return;
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    let target = head.split(' ').nth(1).unwrap_or("/");
    let reply = match target.strip_prefix("/cpu?n=").map(str::parse::<usize>) {
        Some(Ok(n)) => response("200 OK", &format!("{}\n", primes_below(n))),
        Some(Err(_)) => response("400 Bad Request", "n must be a number\n"),
        None if target == "/" => response("200 OK", &format!("{greeting}\n")),
        None => response("404 Not Found", "not found\n"),
    };
    let _ = stream.write_all(&reply);
}

fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn primes_below(n: usize) -> usize {
    if n < 3 {
        return 0;
    }
    let mut composite = vec![false; n];
    let mut count = 0;
    for i in 2..n {
        if !composite[i] {
            count += 1;
            // `i * i` would overflow a 32-bit usize (wasm32) past 65 535.
            if i > n / i {
                continue;
            }
            let mut j = i * i;
            while j < n {
                composite[j] = true;
                j += i;
            }
        }
    }
    count
}
