//! A std::net server written as on Linux: each connection's stream is
//! cloned for a reader and a writer. WASI 0.2 has no `dup`, so
//! `TcpStream::try_clone` fails with "operation not supported on this
//! platform" and the dyno crashes at its first request.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

fn main() {
    let port = std::env::var("PORT").expect("PORT is set");
    let listener = TcpListener::bind(format!("0.0.0.0:{port}")).expect("binding $PORT");
    for stream in listener.incoming() {
        let mut stream = stream.expect("accepting");
        let reader = BufReader::new(stream.try_clone().unwrap());
        for line in reader.lines() {
            if line.expect("reading").is_empty() {
                break;
            }
        }
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
    }
}
