//! The control API (HTTP/JSON on 127.0.0.1, bearer token required), shaped
//! after the Heroku Platform API, and the client the CLI uses.

pub mod client;
pub mod server;

pub use client::Client;

/// Prefix of the last line of a streamed build: `ok vN` or `error MESSAGE`.
pub const RESULT_PREFIX: &str = "wdyno-result: ";
/// Prefix of the last line of an attached one-off dyno: its exit status.
pub const EXIT_PREFIX: &str = "wdyno-exit: ";
