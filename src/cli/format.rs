//! How the CLI prints what the daemon answers: timestamps the way
//! Heroku's CLI shows them, and `--json` output.

use chrono::{DateTime, Utc};
use serde_json::Value;

/// An RFC 3339 time as `2024/05/01 12:00:00 +0000`; anything else as given.
pub fn when(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|d| when_at(d.with_timezone(&Utc)))
        .unwrap_or_else(|_| t.to_owned())
}

/// A time as Heroku's CLI prints it: `2024/05/01 12:00:00 +0000`.
pub fn when_at(t: DateTime<Utc>) -> String {
    t.format("%Y/%m/%d %H:%M:%S %z").to_string()
}

/// A time and its age at `now`: `2024/05/01 12:00:00 +0000 (~ 54s ago)`.
pub fn when_ago(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!("{} ({})", when_at(t), ago_at(t, now))
}

/// How long ago an RFC 3339 time was (`~ 5m ago`); empty if it is not one.
pub fn ago(t: &str) -> String {
    let Ok(d) = DateTime::parse_from_rfc3339(t) else {
        return String::new();
    };
    ago_at(d.with_timezone(&Utc), Utc::now())
}

/// How long before `now` `t` was, as Heroku's CLI says it (`~ 54s ago`).
pub fn ago_at(t: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - t).num_seconds().max(0);
    match secs {
        0..60 => format!("~ {secs}s ago"),
        60..3600 => format!("~ {}m ago", secs / 60),
        _ => format!("~ {}h ago", secs / 3600),
    }
}

/// `--json`: the daemon's answer, pretty-printed.
pub fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON prints"));
}
