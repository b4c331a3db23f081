//! The benchmark's hello web app: plain `std::net`, one connection at a
//! time, `Connection: close`. The same source runs as a dyno and natively.
//!
//! - `GET /` answers `$GREETING` (default `hello`), so a benchmark can tell
//!   releases apart by their config;
//! - `GET /cpu?n=N` counts the primes below `N` with a sieve: a CPU-bound
//!   handler whose hot loop is three instructions long;
//! - `GET /render?n=N` renders an HTML table of `N` rows and answers its
//!   length: CPU-bound the way a templating handler is;
//! - `GET /sleep?n=N` sleeps `N` µs and answers `slept`: a handler whose
//!   time is fixed and costs no CPU (the routing benchmark's slow and fast
//!   requests), so a dyno's utilisation is what the arrival rate makes it.

use std::fmt::Write as _;
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
    let (route, n) = match target.split_once("?n=") {
        Some((route, n)) => (route, n.parse::<usize>().ok()),
        None => (target, None),
    };
    let reply = match (route, n) {
        ("/", _) => response("200 OK", &format!("{greeting}\n")),
        ("/cpu", Some(n)) => response("200 OK", &format!("{}\n", primes_below(n))),
        ("/render", Some(n)) => response("200 OK", &format!("{}\n", render(n))),
        ("/sleep", Some(n)) => {
            std::thread::sleep(std::time::Duration::from_micros(n as u64));
            response("200 OK", "slept\n")
        }
        ("/cpu" | "/render" | "/sleep", None) => response("400 Bad Request", "n must be a number\n"),
        _ => response("404 Not Found", "not found\n"),
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

fn render(rows: usize) -> usize {
    let mut html = String::from("<table>\n");
    for i in 0..rows {
        let id = (i as u32).wrapping_mul(2_654_435_761);
        let _ = writeln!(
            html,
            "<tr><td>{i}</td><td>item-{id:08x}</td><td>{:.2}</td></tr>",
            i as f64 / 7.0
        );
    }
    html.push_str("</table>\n");
    html.len()
}
