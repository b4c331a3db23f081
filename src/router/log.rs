//! The router's log line, Heroku's shape: one per request, into the app's
//! ring when the request named an app that exists, else into the
//! platform's own log (tracing), so made-up names keep nothing.

use std::fmt::Write;
use std::time::Instant;

use rand::RngExt;

use super::table::Backend;
use super::{Router, host};
use crate::logbus::{LogLine, Source};

/// Whether a client's `X-Request-Id` is one to keep.
pub fn good_request_id(id: &str) -> bool {
    (20..=200).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=-".contains(&b))
}

/// A new id, shaped as a UUID: 32 random hex digits in groups of 8, 4,
/// 4, 4 and 12.
pub fn new_request_id(rng: &mut rand::rngs::StdRng) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let a: u128 = rng.random();
    let mut id = String::with_capacity(36);
    for i in 0..32 {
        if matches!(i, 8 | 12 | 16 | 20) {
            id.push('-');
        }
        id.push(HEX[(a >> (124 - 4 * i)) as usize & 0xf] as char);
    }
    id
}

/// The path as a log field: quoted, and escaped only when it holds a quote
/// or a backslash (hyper lets both through in a request target).
pub fn path_field(path: &str) -> String {
    if path.bytes().any(|b| b == b'"' || b == b'\\') {
        host::quoted(path.as_bytes())
    } else {
        format!("\"{path}\"")
    }
}

/// The fields every router line shares.
pub struct LineBits {
    /// The app the Host header names, if it is a host.
    pub app: Option<String>,
    /// The route table has it (learnt from the pick, so the hot path looks
    /// the app up once). Lines about an app that exists go to its ring,
    /// all others to the platform's own log (tracing).
    pub known: bool,
    pub method: String,
    pub path: String,
    /// Already safe to log: a checked host as is, anything else quoted.
    pub host: String,
    pub request_id: String,
    pub fwd: String,
    /// Logged by another host's router (this one was handed the request).
    pub quiet: bool,
}

impl Router {
    /// One router line: to the app's ring when the request named an app
    /// that exists, else to the platform's log.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn log_line(
        &self,
        l: &LineBits,
        at: &str,
        dyno: &str,
        connect: u128,
        status: u16,
        bytes: u64,
        started: Instant,
    ) {
        if l.quiet {
            return;
        }
        let mut text = String::with_capacity(
            160 + at.len() + l.path.len() + l.host.len() + l.request_id.len() + dyno.len(),
        );
        let _ = write!(
            text,
            "{at} method={} path={} host={} request_id={} fwd=\"{}\" dyno={dyno} connect={connect}ms service={}ms status={status} bytes={bytes} protocol=http",
            l.method,
            l.path,
            l.host,
            l.request_id,
            l.fwd,
            started.elapsed().as_millis()
        );
        match &l.app {
            Some(app) if l.known || self.table.exists(app) => {
                self.bus
                    .publish(LogLine::now_owned(app, Source::Wdyno, "router", text))
            }
            _ => tracing::warn!(target: "wdyno::router", "{text}"),
        }
    }

    pub(super) fn log_error(
        &self,
        l: &LineBits,
        code: &str,
        desc: &str,
        backend: Option<&Backend>,
        started: Instant,
    ) {
        let dyno = backend.map_or("", |b| b.dyno.as_str());
        let at = format!("at=error code={code} desc=\"{desc}\"");
        self.log_line(l, &at, dyno, 0, 503, 0, started);
    }

    /// A request the router answers itself because of what the client
    /// sent: no `H` code (those blame the app), the status it got.
    pub(super) fn refused(&self, l: &LineBits, desc: &str, status: u16, started: Instant) {
        let at = format!("at=error desc=\"{desc}\"");
        self.log_line(l, &at, "", 0, status, 0, started);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_vetted() {
        assert!(good_request_id("abcdefghij0123456789"));
        assert!(!good_request_id("short"));
        assert!(!good_request_id("has spaces in it, not allowed here"));
        assert!(!good_request_id(&"a".repeat(201)));
    }

    #[test]
    fn new_request_ids_are_uuid_shaped_and_differ() {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let (a, b) = (new_request_id(&mut rng), new_request_id(&mut rng));
        assert_ne!(a, b);
        for id in [&a, &b] {
            let groups: Vec<usize> = id.split('-').map(str::len).collect();
            assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
            assert!(
                id.bytes()
                    .all(|c| c == b'-' || c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
            );
            assert!(good_request_id(id), "{id} must pass the router's own check");
        }
    }

    #[test]
    fn paths_cannot_end_their_field() {
        assert_eq!(path_field("/a?b=1"), "\"/a?b=1\"");
        assert_eq!(path_field("/a\"b"), "\"/a\\\"b\"");
    }
}
