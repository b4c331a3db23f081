//! Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, so
//! the router drops them in both directions and frames each side itself.
//! An app's `Connection: close` ends the router's connection to the dyno,
//! never the client's keep-alive connection; a client's `Keep-Alive` or
//! `TE` is the router's business, not the app's.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Always hop-by-hop, whether or not `Connection` names them.
const HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Names a `Connection` header may not strip: the router relies on them to
/// route and frame the message.
const KEPT: [HeaderName; 2] = [header::HOST, header::CONTENT_LENGTH];

/// Whether the request asks to switch protocols (a WebSocket handshake):
/// an `Upgrade` header and `upgrade` among the `Connection` options.
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

pub(super) fn connection_has(headers: &HeaderMap, option: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(option))
}

/// Removes the hop-by-hop headers and those `Connection` names. With
/// `tunnel` the `Upgrade` header stays and `Connection: upgrade` is set
/// again: the next hop must see the handshake.
pub fn strip(headers: &mut HeaderMap, tunnel: bool) {
    if headers.contains_key(header::CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .filter(|n| !KEPT.contains(n))
            .collect();
        for name in named {
            if !(tunnel && name == header::UPGRADE) {
                headers.remove(name);
            }
        }
    }
    // One pass over the names first: most messages carry none of them,
    // and a removal hashes its name.
    if headers.keys().any(|k| HOP.contains(k)) {
        for name in &HOP {
            if !(tunnel && name == header::UPGRADE) {
                headers.remove(name);
            }
        }
    }
    if tunnel {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn names(h: &HeaderMap) -> Vec<&str> {
        let mut n: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        n.sort();
        n
    }

    #[test]
    fn hop_headers_and_named_ones_go() {
        let mut h = map(&[
            ("connection", "close, X-Secret"),
            ("connection", "keep-alive"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("trailer", "x-t"),
            ("transfer-encoding", "chunked"),
            ("proxy-connection", "keep-alive"),
            ("upgrade", "websocket"),
            ("content-type", "text/plain"),
        ]);
        strip(&mut h, false);
        assert_eq!(names(&h), ["content-type"]);
    }

    #[test]
    fn connection_cannot_strip_routing_headers() {
        let mut h = map(&[
            ("connection", "host, content-length"),
            ("host", "a.localhost"),
            ("content-length", "3"),
        ]);
        strip(&mut h, false);
        assert_eq!(names(&h), ["content-length", "host"]);
    }

    #[test]
    fn a_tunnel_keeps_the_handshake() {
        let mut h = map(&[
            ("connection", "Upgrade, keep-alive"),
            ("upgrade", "websocket"),
            ("keep-alive", "timeout=5"),
            ("sec-websocket-key", "k"),
        ]);
        assert!(wants_upgrade(&h));
        strip(&mut h, true);
        assert_eq!(names(&h), ["connection", "sec-websocket-key", "upgrade"]);
        assert_eq!(h["connection"], "upgrade");
        assert!(!wants_upgrade(&map(&[("upgrade", "websocket")])));
        assert!(!wants_upgrade(&map(&[("connection", "upgrade")])));
    }
}
