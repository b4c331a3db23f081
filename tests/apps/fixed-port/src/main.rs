//! A web app that ignores `$PORT` and binds 8080, as many tutorials do.
//! A dyno may bind only its own `$PORT`, so the bind is refused.

use std::io::Write;
use std::net::TcpListener;

fn main() {
    let listener = TcpListener::bind("0.0.0.0:8080").unwrap();
    for stream in listener.incoming() {
        let _ = stream
            .unwrap()
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\n\r\nok\n");
    }
}
