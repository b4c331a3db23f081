//! The control API (HTTP/JSON on 127.0.0.1, bearer token required), shaped
//! after the Heroku Platform API, and the client the CLI uses.
//!
//! Handlers are split by resource (`apps`, `releases` with config vars and
//! builds, `formation`, `dynos`, `logs`); each parses its request, calls
//! one [`crate::service::Service`] method and maps the result.

mod apps;
pub mod client;
mod dynos;
mod formation;
mod logs;
mod releases;
mod reply;
mod server;

pub use client::Client;
pub use server::{Api, serve};

/// Prefix of the last line of a streamed build: `ok vN` or `error MESSAGE`.
pub const RESULT_PREFIX: &str = "wdyno-result: ";
/// Prefix of the last line of an attached one-off dyno: its exit status.
pub const EXIT_PREFIX: &str = "wdyno-exit: ";
/// Connections the API serves at once. Far above what the CLI and a
/// dashboard open; a client past it gets a 503 and the connection closes,
/// so a flood of connections cannot take the daemon's descriptors.
pub const MAX_CONNECTIONS: usize = 256;
