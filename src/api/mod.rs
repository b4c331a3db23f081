//! The control API (HTTP/JSON on 127.0.0.1, bearer token required), shaped
//! after the Heroku Platform API, and the client the CLI uses.
//!
//! The request and answer bodies are one typed contract, [`schema`], in
//! the shapes of the Heroku Platform API v3, so the official `heroku` CLI
//! drives wdyno (`HEROKU_HOST=http://127.0.0.1:PORT`,
//! `HEROKU_API_KEY=TOKEN`); wdyno's own CLI reads the same types.
//! Handlers are split by resource (`apps`, `releases` with config vars and
//! builds, `formation`, `dynos`, `logs`, `visibility` for labs features
//! and drains, `dashboard` for the live page); each parses its request, calls
//! one [`crate::service::Service`] method and maps the result into the
//! contract ([`present`]).

mod apps;
pub mod client;
pub mod dashboard;
mod dynos;
mod formation;
mod logs;
mod present;
mod range;
mod releases;
mod reply;
pub mod schema;
mod server;
mod visibility;

pub use client::Client;
pub use present::Site;
pub use server::{Api, serve};
/// Connections the API serves at once. Far above what the CLI and a
/// dashboard open; a client past it gets a 503 and the connection closes,
/// so a flood of connections cannot take the daemon's descriptors.
pub const MAX_CONNECTIONS: usize = 256;
