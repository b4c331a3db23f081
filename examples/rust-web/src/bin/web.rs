//! A plain `std::net` web app: it binds `$PORT` like any Heroku app.
//!
//! `GET /` greets (config var `GREETING`), `GET /visits` counts visits in a
//! file under `/tmp` (scratch space that vanishes with the dyno).

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};

fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "5000".into());
    let listener = TcpListener::bind(format!("0.0.0.0:{port}"))?;
    println!("listening on port {port}");
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                if let Err(e) = handle(s) {
                    eprintln!("request failed: {e}");
                }
            }
            Err(e) => eprintln!("accept failed: {e}"),
        }
    }
    Ok(())
}

fn handle(stream: TcpStream) -> std::io::Result<()> {
    // wasip2 sockets cannot be cloned; read and write through `&TcpStream`.
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // Skip the headers; this app reads no bodies.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/");
    let dyno = std::env::var("DYNO").unwrap_or_default();
    let (status, body) = match path {
        "/" => {
            let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".into());
            ("200 OK", format!("{greeting} from rust-web on {dyno}\n"))
        }
        "/visits" => {
            let n = std::fs::read_to_string("/tmp/visits")
                .ok()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .unwrap_or(0)
                + 1;
            std::fs::write("/tmp/visits", n.to_string())?;
            ("200 OK", format!("{n} visits to {dyno}\n"))
        }
        _ => ("404 Not Found", "not found\n".to_owned()),
    };
    // One request per connection keeps a single-threaded server simple.
    write!(
        &stream,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    println!("{} {path} -> {status}", request_line.split(' ').next().unwrap_or("?"));
    Ok(())
}
