//! The API's one typed contract: every request and answer body, in the
//! shapes of the Heroku Platform API v3, so the `heroku` CLI and scripts
//! written for it work against wdyno, and wdyno's own CLI reads the same
//! types.
//!
//! Heroku names things by UUID as well as by name. wdyno's ledger keys
//! them by name and version, so each id here is derived from what
//! identifies the thing for good (an app's name and creation time, a
//! release's app and version): the same thing always has the same id, and
//! a destroyed app's successor of the same name gets a new one.
//!
//! Fields Heroku has and wdyno has nothing for are there, empty (`null`,
//! `[]`, `false`), because clients read them; fields of wdyno's own (a
//! dyno's `port`, a release's `process_types`) are added at the end of a
//! shape.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The media type the Heroku CLI asks for (`version=3`, `3.sdk`, …); the
/// API answers every variant with this one shape.
pub const MEDIA_TYPE: &str = "application/vnd.heroku+json; version=3";

pub use super::range::{MAX_PAGE, Range};
pub use crate::formation::DYNO_SIZE;

/// A stable id in UUID form for the thing `parts` name.
pub fn id_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let b = h.finalize();
    let x = hex::encode(&b[..16]);
    // Version 8 (custom) UUID with the RFC 4122 variant bits.
    format!(
        "{}-{}-8{}-{:x}{}-{}",
        &x[0..8],
        &x[8..12],
        &x[13..16],
        (u8::from_str_radix(&x[16..17], 16).unwrap_or(0) & 0x3) | 0x8,
        &x[17..20],
        &x[20..32]
    )
}

/// A thing named in another's answer (`"app": {"id", "name"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    pub id: String,
    pub name: String,
}

impl Named {
    /// One of the fixed things every app has one of (its stack, region…).
    pub fn fixed(kind: &str, name: &str) -> Self {
        Named {
            id: id_of(&[kind, name]),
            name: name.to_owned(),
        }
    }
}

/// A thing named by id alone (`"slug": {"id"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdRef {
    pub id: String,
}

/// The user an app belongs to or a release was made by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
}

impl User {
    pub fn of_email(email: &str) -> Self {
        User {
            id: id_of(&["user", email]),
            email: email.to_owned(),
        }
    }
}

/// `GET /account`: the one account a daemon has (its token's holder).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub email: String,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub verified: bool,
    pub two_factor_authentication: bool,
    pub beta: bool,
    pub allow_tracking: bool,
    pub federated: bool,
    pub default_organization: Option<Named>,
    pub default_team: Option<Named>,
}

/// An app (`GET /apps`, `GET /apps/A`, `POST /apps`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct App {
    pub id: String,
    pub name: String,
    pub owner: User,
    /// Where the router serves it: `http://NAME.localhost:PORT/`.
    pub web_url: String,
    /// Where `git push` deploys it: the app's bare repo on the daemon's
    /// host.
    pub git_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub released_at: Option<DateTime<Utc>>,
    pub stack: Named,
    pub build_stack: Named,
    pub region: Named,
    pub generation: Named,
    pub buildpack_provided_description: Option<String>,
    pub maintenance: bool,
    pub acm: bool,
    pub archived_at: Option<DateTime<Utc>>,
    pub internal_routing: Option<bool>,
    pub organization: Option<Named>,
    pub team: Option<Named>,
    pub space: Option<Named>,
    pub repo_size: Option<u64>,
    pub slug_size: Option<u64>,
    pub process_tier: String,
    /// wdyno: the buildpacks the app names (empty: detected).
    pub buildpacks: Vec<String>,
    /// wdyno: how the router spreads its requests (`random`,
    /// `least-connections`).
    pub routing: crate::routing::Routing,
    /// wdyno: how long without a request before its web dynos sleep
    /// (`30m`, `90s`, `1h`; `off`, the default: never).
    #[serde(default)]
    pub sleep_after: crate::idling::SleepAfter,
}

/// `POST /apps`: every field optional; with no name one is made up.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppCreate {
    #[serde(default)]
    pub name: Option<String>,
    /// wdyno: buildpacks to name at once.
    #[serde(default)]
    pub buildpacks: Option<Vec<String>>,
}

/// `PATCH /apps/A`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AppUpdate {
    #[serde(default)]
    pub buildpacks: Option<Vec<String>>,
    /// `random` or `least-connections`.
    #[serde(default)]
    pub routing: Option<String>,
    /// `30m`, `90s`, `1h` or `off` (`null`: unchanged, as a missing
    /// field).
    #[serde(default)]
    pub sleep_after: Option<String>,
}

/// A formation entry: one process type's dynos.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Formation {
    pub id: String,
    pub app: Named,
    #[serde(rename = "type")]
    pub process_type: String,
    pub quantity: u32,
    pub size: String,
    pub command: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A dyno count as clients send it: a number, or a string of one (the
/// Heroku CLI sends `"2"`), or a change (`"+1"`, `"-1"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Quantity {
    Count(u64),
    Text(String),
}

/// What a quantity asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    To(u64),
    By(i64),
}

impl Quantity {
    /// Parses it, or says what a quantity may be.
    pub fn scale(&self) -> Result<Scale, String> {
        let bad = |q: &str| format!("quantity {q:?} is not a whole number, or +N / -N");
        match self {
            Quantity::Count(n) => Ok(Scale::To(*n)),
            Quantity::Text(t) => {
                let t = t.trim();
                if let Some(n) = t.strip_prefix('+') {
                    n.parse::<i64>().map(Scale::By).map_err(|_| bad(t))
                } else if let Some(n) = t.strip_prefix('-') {
                    n.parse::<i64>().map(|n| Scale::By(-n)).map_err(|_| bad(t))
                } else {
                    t.parse::<u64>().map(Scale::To).map_err(|_| bad(t))
                }
            }
        }
    }
}

/// One change of a batch scale, or the body of `PATCH
/// /apps/A/formation/TYPE` (whose type is in the path).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FormationUpdate {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub process_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantity: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// `PATCH /apps/A/formation`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FormationBatch {
    pub updates: Vec<FormationUpdate>,
}

/// A dyno (`GET /apps/A/dynos`, `POST /apps/A/dynos`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dyno {
    pub id: String,
    pub app: Named,
    pub attach_url: Option<String>,
    pub command: String,
    pub created_at: DateTime<Utc>,
    pub name: String,
    pub release: ReleaseRef,
    pub size: String,
    pub state: String,
    #[serde(rename = "type")]
    pub process_type: String,
    pub updated_at: DateTime<Utc>,
    /// wdyno: the port a web dyno listens on.
    pub port: Option<u16>,
    /// wdyno: the host it runs on (in a cluster, where the scheduler
    /// placed it).
    #[serde(default)]
    pub host: String,
}

/// A release named in a dyno's answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReleaseRef {
    pub id: String,
    pub version: u64,
}

/// `POST /apps/A/dynos`: a one-off dyno.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DynoCreate {
    pub command: String,
    #[serde(default)]
    pub attach: Option<bool>,
    #[serde(default)]
    pub env: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub size: Option<String>,
    #[serde(rename = "type", default)]
    pub process_type: Option<String>,
    #[serde(default)]
    pub time_to_live: Option<u64>,
}

/// A release (`GET /apps/A/releases`, `…/releases/{id_or_version}`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Release {
    pub id: String,
    pub version: u64,
    /// Whether this is the release the app's dynos run.
    pub current: bool,
    pub status: String,
    pub description: String,
    pub user: User,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub slug: Option<IdRef>,
    pub app: Named,
    pub addon_plan_names: Vec<String>,
    pub output_stream_url: Option<String>,
    /// Whether `releases:rollback` may take it (it succeeded with a slug).
    pub eligible_for_rollback: bool,
    /// wdyno: the release's process types and their commands.
    pub process_types: BTreeMap<String, String>,
}

/// `POST /apps/A/releases`: a rollback to a release, by id or version
/// (`"3"`, `"v3"`, `3`); without one, to the release before the current.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ReleaseCreate {
    #[serde(default)]
    pub release: Option<Quantity>,
}

/// A build (`GET /apps/A/builds`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Build {
    /// wdyno numbers an app's builds 1, 2, …
    pub id: u64,
    pub status: String,
    pub source: String,
    pub slug: Option<IdRef>,
    pub release: Option<ReleaseRef>,
    pub created_at: DateTime<Utc>,
    pub output_tail: String,
}

/// `POST /apps/A/log-sessions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogSessionCreate {
    /// A dyno (`web.1`) or a process type (`web`).
    #[serde(default)]
    pub dyno: Option<String>,
    #[serde(default)]
    pub lines: Option<u64>,
    /// `app` or `heroku` (the platform's lines; `wdyno` also).
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub tail: Option<bool>,
    /// Heroku's newer CLIs send the process type apart from the dyno.
    #[serde(rename = "type", default)]
    pub process_type: Option<String>,
}

/// A log session: `logplex_url` streams its lines as server-sent events
/// (each line the `data` of one `message` event), once, without a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogSession {
    pub id: String,
    pub logplex_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A labs feature of an app (`GET /apps/A/features`, `PATCH
/// /apps/A/features/F`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppFeature {
    pub id: String,
    pub name: String,
    pub display_name: String,
    pub description: String,
    pub doc_url: String,
    pub enabled: bool,
    pub state: String,
    pub feedback_email: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `PATCH /apps/A/features/F`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppFeatureUpdate {
    pub enabled: bool,
}

/// A log drain (`GET|POST /apps/A/log-drains`, `DELETE
/// /apps/A/log-drains/ID|URL|TOKEN`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogDrain {
    pub id: String,
    pub url: String,
    pub token: String,
    pub addon: Option<Named>,
    pub app: Named,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /apps/A/log-drains`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LogDrainCreate {
    pub url: String,
}

/// Every error: an id a program can match and a message a person can act
/// on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Error {
    pub id: String,
    pub message: String,
}

/// The typed events of a streamed answer (a build's output, an attached
/// one-off dyno), sent as server-sent events: `event: NAME`, `data: …`.
pub mod event {
    /// A line of output; the data is the line.
    pub const LINE: &str = "line";
    /// A build's end: the data is a [`super::BuildResult`] in JSON.
    pub const RESULT: &str = "result";
    /// An attached dyno's end: the data is its exit status.
    pub const EXIT: &str = "exit";
}

/// How a streamed build ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildResult {
    /// The release it made, on success.
    pub version: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_numbers_strings_or_changes() {
        let q = |j: &str| serde_json::from_str::<Quantity>(j).unwrap().scale();
        assert_eq!(q("2"), Ok(Scale::To(2)));
        assert_eq!(q("\"2\""), Ok(Scale::To(2)));
        assert_eq!(q("\"+1\""), Ok(Scale::By(1)));
        assert_eq!(q("\"-3\""), Ok(Scale::By(-3)));
        assert!(q("\"two\"").unwrap_err().contains("\"two\""));
    }

    #[test]
    fn ids_are_stable_uuids() {
        let a = id_of(&["app", "web", "2026-01-01"]);
        assert_eq!(a, id_of(&["app", "web", "2026-01-01"]));
        assert_ne!(a, id_of(&["app", "web", "2026-01-02"]));
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, vec![8, 4, 4, 4, 12]);
        assert_eq!(&a[14..15], "8");
        assert!("89ab".contains(&a[19..20]), "{a}");
    }
}
