//! Serves what its build script could do (`GET /`): the build sandbox test
//! reads it from the running app.

use std::io::{Read, Write};
use std::net::TcpListener;

const REPORT: &str = include_str!(concat!(env!("OUT_DIR"), "/report.txt"));

fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("PORT must be set to a port number");
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("binding $PORT");
    for mut stream in listener.incoming().flatten() {
        let mut buf = [0u8; 4096];
        let mut len = 0;
        while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
            match stream.read(&mut buf[len..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => len += n,
            }
        }
        let _ = stream.write_all(
            format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{REPORT}",
                REPORT.len()
            )
            .as_bytes(),
        );
    }
}
