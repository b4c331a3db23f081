//! A tenant that tries to take every descriptor of the host: `GET /hog`
//! opens files in /tmp and UDP sockets until it is refused, keeps them all
//! open, and answers what it got: `web.1 files=N sockets=M refused=ERROR`.
//! Later calls answer the same figures (it holds what it took). `GET /`
//! answers `ok from web.1`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};

fn main() {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("PORT must be set to a port number");
    let dyno = std::env::var("DYNO").unwrap_or_default();
    let listener = TcpListener::bind(("0.0.0.0", port)).expect("binding $PORT");
    let mut held: Option<(Vec<std::fs::File>, Vec<UdpSocket>, String)> = None;
    for stream in listener.incoming().flatten() {
        let path = request_path(&stream);
        let body = match path.as_deref() {
            Some("/hog") => {
                let (files, sockets, refused) = held.get_or_insert_with(hog);
                format!(
                    "{dyno} files={} sockets={} refused={refused}",
                    files.len(),
                    sockets.len()
                )
            }
            _ => format!("ok from {dyno}"),
        };
        answer(stream, &body);
    }
}

/// Opens a file and a socket in turn until both are refused; returns what
/// it holds and the first refusal of each kind.
fn hog() -> (Vec<std::fs::File>, Vec<UdpSocket>, String) {
    let (mut files, mut sockets) = (Vec::new(), Vec::new());
    let (mut file_error, mut socket_error) = (None, None);
    while (file_error.is_none() || socket_error.is_none()) && files.len() + sockets.len() < 50_000 {
        if file_error.is_none() {
            match std::fs::File::create(format!("/tmp/hog-{}", files.len())) {
                Ok(f) => files.push(f),
                Err(e) => file_error = Some(e.to_string()),
            }
        }
        if socket_error.is_none() {
            match UdpSocket::bind("0.0.0.0:0") {
                Ok(s) => sockets.push(s),
                Err(e) => socket_error = Some(e.to_string()),
            }
        }
    }
    let said = |e: Option<String>| e.unwrap_or_else(|| "never".to_owned());
    (files, sockets, format!("{}/{}", said(file_error), said(socket_error)))
}

fn request_path(mut stream: &TcpStream) -> Option<String> {
    let mut buf = [0u8; 4096];
    let mut len = 0;
    while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf[len..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => len += n,
        }
        if len == buf.len() {
            return None;
        }
    }
    let head = String::from_utf8_lossy(&buf[..len]);
    head.split(' ').nth(1).map(str::to_owned)
}

fn answer(mut stream: TcpStream, body: &str) {
    let _ = stream.write_all(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}
