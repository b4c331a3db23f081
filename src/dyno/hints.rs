//! Crashes that teach: the platform's `wdyno[web.1]: Hint:` lines for
//! failures whose cause is a limit of WASI 0.2 or of the dyno contract,
//! not a bug the app's author could find from the message alone.
//!
//! Pure functions of what the dyno printed or asked for, so each hint and
//! its exact words are unit-tested here.

/// What std prints for a call WASI 0.2 has no equivalent of.
pub const UNSUPPORTED: &str = "operation not supported on this platform";

/// The hint for a line of a dyno's own output, if the line shows a WASI
/// limit. Given once per dyno (the caller keeps track).
pub fn for_output(line: &str) -> Option<&'static str> {
    line.contains(UNSUPPORTED).then_some(
        "Hint: \"operation not supported on this platform\" is a limit of WASI 0.2, which has no such call (no dup, no threads, no processes); for TcpStream::try_clone, share the stream by reference instead: BufReader::new(&stream) and (&stream).write_all(…)",
    )
}

/// The line logged when a web dyno's bind of `port` is refused because it
/// is not the dyno's `$PORT` (`own`).
pub fn bind_refused(port: u16, own: u16) -> String {
    format!(
        "Error: bind to port {port} refused: a web dyno may listen only on $PORT ({own} for this dyno). Hint: read the port from the PORT environment variable, e.g. std::env::var(\"PORT\") or process.env.PORT"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unsupported_operation_names_the_wasi_limit_and_the_try_clone_fix() {
        let panic = r#"called `Result::unwrap()` on an `Err` value: Error { kind: Unsupported, message: "operation not supported on this platform" }"#;
        let hint = for_output(panic).unwrap();
        assert!(hint.contains("limit of WASI 0.2"), "{hint}");
        assert!(hint.contains("TcpStream::try_clone, share the stream by reference"));
        assert_eq!(
            for_output("thread 'main' panicked at src/main.rs:9:5:"),
            None
        );
    }

    #[test]
    fn a_refused_bind_names_port() {
        assert_eq!(
            bind_refused(8080, 40123),
            "Error: bind to port 8080 refused: a web dyno may listen only on $PORT (40123 for this dyno). Hint: read the port from the PORT environment variable, e.g. std::env::var(\"PORT\") or process.env.PORT"
        );
    }
}
