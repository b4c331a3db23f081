//! Host headers: whether a value is a `host[:port]` at all, and which app
//! it names. The router writes the Host header into every request's log
//! line, so a value that is not a host (`x status=500 code=H10`) is refused
//! before anything logs it raw, and is only ever logged [`quoted`].

/// Longest Host value accepted: a 253-byte DNS name, a dot, `:65535`.
const MAX_HOST: usize = 253 + 1 + 6;

/// `raw` as a host, when it is one: a DNS-style name (`[A-Za-z0-9._~-]`,
/// the unreserved characters of RFC 3986's reg-name; no percent-escapes or
/// sub-delimiters, which no app name needs) or a bracketed IPv6 literal,
/// then an optional `:port`.
pub fn parse(raw: &[u8]) -> Option<&str> {
    if raw.is_empty() || raw.len() > MAX_HOST {
        return None;
    }
    let port = if raw[0] == b'[' {
        let close = raw.iter().position(|&b| b == b']')?;
        let inside = &raw[1..close];
        let v6 = |b: &u8| b.is_ascii_hexdigit() || *b == b':' || *b == b'.';
        if inside.is_empty() || !inside.iter().all(v6) {
            return None;
        }
        match &raw[close + 1..] {
            [] => None,
            [b':', port @ ..] => Some(port),
            _ => return None,
        }
    } else {
        let (name, port) = match raw.iter().rposition(|&b| b == b':') {
            Some(i) => (&raw[..i], Some(&raw[i + 1..])),
            None => (raw, None),
        };
        let ok = |b: &u8| b.is_ascii_alphanumeric() || b"-._~".contains(b);
        if name.is_empty() || name[0] == b'.' || !name.iter().all(ok) {
            return None;
        }
        port
    };
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.iter().all(u8::is_ascii_digit))
    {
        return None;
    }
    // Every byte checked above is ASCII.
    std::str::from_utf8(raw).ok()
}

/// The app a parsed host names: its first label, lowercased (hostnames
/// are case-insensitive), so `RED.localhost:5000`, `red.localhost.`,
/// `red.example.com` and `red` all name `red`. IP literals name none.
pub fn app_of_host(host: &str) -> Option<String> {
    if host.starts_with('[') {
        return None;
    }
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let label = name.split('.').next()?;
    (!label.is_empty()).then(|| label.to_ascii_lowercase())
}

/// Whether a parsed host is a bare local name or an address, naming no
/// app: `localhost`, `localhost:5000`, `127.0.0.1:5000`, `[::1]:5000`.
pub fn names_no_app(host: &str) -> bool {
    if host.starts_with('[') {
        return true;
    }
    let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let name = name.trim_end_matches('.');
    name.eq_ignore_ascii_case("localhost") || name.parse::<std::net::Ipv4Addr>().is_ok()
}

/// `raw` in double quotes for a log line, with `"` and `\` backslashed and
/// anything outside printable ASCII as `\xNN`, so an unchecked value can
/// never end its field or start another.
pub fn quoted(raw: &[u8]) -> String {
    let mut out = String::with_capacity(raw.len() + 2);
    out.push('"');
    for &b in raw {
        match b {
            b'"' | b'\\' => {
                out.push('\\');
                out.push(b as char);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_name_apps() {
        let app = |h: &str| parse(h.as_bytes()).and_then(app_of_host);
        assert_eq!(app("hello.localhost:5000").as_deref(), Some("hello"));
        assert_eq!(app("hello.example.com").as_deref(), Some("hello"));
        assert_eq!(app("hello").as_deref(), Some("hello"));
        assert_eq!(app("hello:80").as_deref(), Some("hello"));
        assert_eq!(app("RED.localhost").as_deref(), Some("red"));
        assert_eq!(app("red.localhost.").as_deref(), Some("red"));
        assert_eq!(app("red.localhost.:5000").as_deref(), Some("red"));
        assert_eq!(app("[::1]:5000"), None);
        assert_eq!(app("127.0.0.1").as_deref(), Some("127"));
    }

    #[test]
    fn bare_local_hosts_name_no_app() {
        for h in [
            "localhost",
            "LOCALHOST:5000",
            "localhost.",
            "127.0.0.1:5000",
            "[::1]:5000",
        ] {
            assert!(names_no_app(h), "{h}");
        }
        for h in ["hello.localhost:5000", "hello", "red.example.com"] {
            assert!(!names_no_app(h), "{h}");
        }
    }

    #[test]
    fn only_hosts_parse() {
        for good in [
            "a",
            "a.b",
            "a-b_c~d.e:1",
            "[::1]",
            "[::ffff:127.0.0.1]:80",
            "x:65535",
        ] {
            assert_eq!(parse(good.as_bytes()), Some(good), "{good}");
        }
        for bad in [
            "",
            "x status=500 code=H10",
            "x\"y",
            "a:b:c",
            "a:",
            "a:123456",
            ":80",
            ".a",
            "a/b",
            "a%2eb",
            "[::1",
            "[::1]x",
            "[]",
            "[zz]",
            "caf\u{e9}",
            "a\tb",
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(parse(&[b'a'; MAX_HOST + 1]), None);
        assert_eq!(parse(b"a\xffb"), None);
    }

    #[test]
    fn quoting_cannot_end_the_field() {
        assert_eq!(
            quoted(b"x status=500 code=H10"),
            "\"x status=500 code=H10\""
        );
        assert_eq!(quoted(b"a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(
            quoted(b"a\r\nb\xe2\x80\xa8"),
            "\"a\\x0d\\x0ab\\xe2\\x80\\xa8\""
        );
    }
}
