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

pub mod dyno;
pub mod logbus;
pub mod names;
pub mod procfile;
pub mod release;
pub mod slug;
