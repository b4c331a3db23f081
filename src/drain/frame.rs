//! A log line as a drain receives it: an RFC 5424 message, octet-counted
//! (RFC 6587) as Logplex frames them:
//!
//! ```text
//! 98 <190>1 2026-12-03T08:00:00.123456+00:00 d.0b6c… app web.1 - - hello
//! ```
//!
//! The hostname is the drain's token, the app-name the line's source
//! (`app` or `wdyno`), the procid its process; Heroku's priorities: an
//! app's lines local7.info (190), the router's local3.info (158), the
//! platform's other lines syslog.notice (45).

use crate::logbus::{LogLine, Source};

/// The RFC 5424 message of `line` for the drain with `token`.
pub fn message(line: &LogLine, token: &str) -> String {
    let pri = match (line.source, line.process.as_str()) {
        (Source::App, _) => 190,
        (Source::Wdyno, "router") => 158,
        (Source::Wdyno, _) => 45,
    };
    format!(
        "<{pri}>1 {} {token} {} {} - - {}",
        line.at.format(crate::logbus::STAMP),
        line.source.as_str(),
        procid(&line.process),
        line.text
    )
}

/// `message` with its length in bytes before it, as one frame.
pub fn frame(line: &LogLine, token: &str, out: &mut Vec<u8>) {
    let m = message(line, token);
    out.extend_from_slice(m.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(m.as_bytes());
}

/// RFC 5424's PROCID is 1–128 printable ASCII characters without spaces;
/// a process name is that already, but a made-up one is made safe.
fn procid(process: &str) -> String {
    let p: String = process
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(128)
        .collect();
    if p.is_empty() { "-".into() } else { p }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(source: Source, process: &str, text: &str) -> LogLine {
        LogLine {
            at: chrono::DateTime::parse_from_rfc3339("2026-12-03T08:00:00.123456Z")
                .unwrap()
                .into(),
            app: "hello".into(),
            source,
            process: process.into(),
            text: text.into(),
        }
    }

    #[test]
    fn frames_are_octet_counted_rfc5424() {
        let mut out = Vec::new();
        frame(&line(Source::App, "web.1", "héllo"), "d.tok", &mut out);
        let s = String::from_utf8(out).unwrap();
        let (len, msg) = s.split_once(' ').unwrap();
        assert_eq!(len.parse::<usize>().unwrap(), msg.len());
        assert_eq!(
            msg,
            "<190>1 2026-12-03T08:00:00.123456+00:00 d.tok app web.1 - - héllo"
        );
    }

    #[test]
    fn priorities_are_herokus() {
        assert!(message(&line(Source::Wdyno, "router", "x"), "t").starts_with("<158>1 "));
        assert!(message(&line(Source::Wdyno, "web.1", "x"), "t").starts_with("<45>1 "));
        assert!(message(&line(Source::Wdyno, "web 1", "x"), "t").contains(" wdyno web1 - - x"));
    }
}
