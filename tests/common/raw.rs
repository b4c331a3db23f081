//! A client that writes raw bytes and reads HTTP/1.1 answers by their
//! framing, for tests that need to see exactly what is on the wire.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One HTTP/1.1 answer as read off the wire.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    /// Header lines, names lowercased: `name: value`.
    pub headers: Vec<String>,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find_map(|h| h.strip_prefix(name)?.strip_prefix(": "))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client connection that writes raw bytes and reads answers by their
/// framing; every read has a deadline.
pub struct Raw {
    pub r: BufReader<TcpStream>,
}

impl Raw {
    pub fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        Raw {
            r: BufReader::new(s),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.r.get_mut().write_all(bytes).unwrap();
    }

    pub fn line(&mut self) -> String {
        let mut l = String::new();
        self.r.read_line(&mut l).unwrap();
        l.trim_end_matches(['\r', '\n']).to_owned()
    }

    pub fn answer(&mut self) -> Answer {
        let status_line = self.line();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("not a status line: {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let l = self.line();
            if l.is_empty() {
                break;
            }
            let (k, v) = l.split_once(':').unwrap();
            headers.push(format!("{}: {}", k.to_ascii_lowercase(), v.trim()));
        }
        let mut a = Answer {
            status,
            headers,
            body: Vec::new(),
        };
        if status == 101 {
            return a;
        }
        if a.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = usize::from_str_radix(&self.line(), 16).unwrap();
                if size == 0 {
                    assert_eq!(self.line(), "");
                    break;
                }
                let mut chunk = vec![0; size];
                self.r.read_exact(&mut chunk).unwrap();
                a.body.extend(chunk);
                assert_eq!(self.line(), "");
            }
        } else {
            let n: usize = a.header("content-length").unwrap().parse().unwrap();
            a.body = vec![0; n];
            self.r.read_exact(&mut a.body).unwrap();
        }
        a
    }

    /// Whether the router closed the connection (EOF, nothing more sent).
    pub fn closed(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.r.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => panic!("reading to the end: {e} (after {rest:?})"),
        }
    }
}
