//! wdyno: Heroku's runtime, rebuilt on WebAssembly.
//!
//! # Layout
//! - [`logbus`]: every line of an app — dynos, router, platform — in one
//!   stream, a ring per app, non-blocking subscribers.
//! - [`dyno`]: the wasm host. One `Engine` per platform; each dyno a store
//!   and component instance in a sandbox built in one place
//!   ([`dyno::Sandbox`]); the stop sequence (SIGTERM, grace, SIGKILL).
//!
//! Dependencies point one way: `dyno → logbus`.

pub mod api;
pub mod build;
pub mod buildpack;
pub mod dyno;
pub mod git;
pub mod logbus;
pub mod manager;
pub mod names;
pub mod platform;
pub mod procfile;
pub mod release;
pub mod router;
pub mod routes;
pub mod slug;
pub mod slugignore;
