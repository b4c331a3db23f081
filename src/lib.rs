//! wdyno: Heroku's runtime, rebuilt on WebAssembly.
//!
//! # Layout
//! Each Heroku concept is one module named after it.
//! - Pure types: [`names`] (app, process type, dyno name, config key),
//!   [`procfile`], [`formation`], [`release`], [`routing`], [`idling`]
//!   (when an app's web dynos sleep).
//! - Storage, each behind a trait another backend can replace:
//!   [`ledger`] (apps, releases, config, formation, builds; [`ledger::Ledger`]
//!   over sled), [`slug`] (packed apps by digest; [`slug::SlugStore`] over
//!   a directory), [`logbus`] (every line of an app; [`logbus::LogBus`] in
//!   memory).
//! - Sandbox and build: [`dyno`] (the wasm host: one engine, a sandbox
//!   per dyno built in one place, the stop sequence), [`buildpack`]
//!   (detect/compile/release in the build sandbox), [`deploy`] (source →
//!   buildpack → slug; [`slugignore`] says what of a source goes in),
//!   [`git`] (`git push` remotes).
//! - Control: [`placement`] (a [`placement::DynoHost`] starts a dyno spec
//!   and reports its state; [`placement::LocalHost`] is this process),
//!   [`manager`] (one reconcile loop per app: formation × release → dynos,
//!   restarts, the router's table).
//! - Edge: [`router`] (Host → app → an up web dyno; its table inside).
//! - [`service`]: the one layer that orchestrates (create, deploy, config,
//!   scale, restart, run, logs, labs, drains); every front end calls it.
//! - Visibility: [`metrics`] (runtime-metrics lines from each dyno's
//!   meter), [`drain`] (an app's lines to HTTP(S) and syslog endpoints).
//! - Faces: [`api`] (the control API, split by resource, and its client).
//!   The CLI lives in the binary (`src/cli/`).
//! - [`platform`]: the composition root: builds everything from
//!   `$WDYNO_HOME` and runs the API and the router.
//!
//! Dependencies point one way: `api → service → manager → placement →
//! dyno → logbus`; `platform` sits above them all.

pub mod api;
mod blocking;
pub mod buildpack;
pub mod cluster;
pub mod deploy;
pub mod drain;
pub mod dyno;
pub mod formation;
pub mod git;
pub mod idling;
pub mod ledger;
pub mod logbus;
pub mod manager;
pub mod metrics;
pub mod names;
pub mod placement;
pub mod platform;
pub mod procfile;
pub mod release;
pub mod router;
pub mod routing;
pub mod service;
pub mod slug;
pub mod slugignore;
