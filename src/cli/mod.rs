//! `wdyno`'s command line: Heroku's verbs, talking to the control API.
//!
//! This file holds the clap definitions ([`Cmd`]) and sends each verb to
//! the module of the Heroku concept it is about: [`apps`] (and which app
//! a command means), [`releases`] (builds, releases, rollback),
//! [`config`], [`ps`] (dynos, formation, hosts), [`run`] (one-off dynos),
//! [`logs`], [`visibility`] (labs, drains, dashboard) and [`deploy`]. [`format`] prints times and `--json` the way
//! they all share. [`daemon`] and [`local`] (with [`foreman`]) run the
//! platform itself rather than talk to it.

mod apps;
mod config;
mod daemon;
mod deploy;
mod foreman;
mod format;
mod local;
mod logs;
mod ps;
mod releases;
mod run;
mod visibility;

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use wdyno::api::Client;

/// Heroku's runtime, rebuilt on WebAssembly.
#[derive(Debug, Parser)]
#[command(name = "wdyno", version, about)]
pub struct Cli {
    /// The platform's home (ledger, slugs, API token).
    #[arg(long, global = true, env = "WDYNO_HOME", default_value = ".wdyno")]
    pub home: PathBuf,
    /// Machine-readable output where a table is printed.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Args, Clone, Default)]
pub struct AppArg {
    /// The app (default: the one the `wdyno` git remote names).
    #[arg(short, long)]
    pub app: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the platform: control API, dyno manager, router, log bus.
    Daemon(Box<daemon::DaemonArgs>),
    /// Build DIR and run its process types here, like `heroku local`.
    Local(local::LocalArgs),
    /// List apps.
    Apps,
    /// Create an app (without a name, one is made up).
    #[command(name = "apps:create", alias = "create")]
    AppsCreate {
        name: Option<String>,
        /// Build with this buildpack (rust, js, wasm or a path) instead of
        /// detecting one.
        #[arg(long, short = 'b')]
        buildpack: Vec<String>,
    },
    /// Name the app's buildpacks (rust, js, wasm or paths); none: detect.
    #[command(name = "buildpacks:set")]
    BuildpacksSet {
        buildpacks: Vec<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show an app: its URLs, owner, dynos and buildpacks.
    #[command(name = "apps:info", alias = "info")]
    AppsInfo(AppArg),
    /// Print the app's web URL, and open it in a browser if there is one.
    Open {
        /// A path in the app to open.
        path: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Change how an app is served: `--routing least-connections` sends
    /// each request to the least busy dyno (default `random`);
    /// `--sleep-after 30m` stops its web dynos after 30 minutes without a
    /// request, and the next request starts one (default `off`).
    #[command(name = "apps:update")]
    #[command(group(clap::ArgGroup::new("change").required(true).multiple(true)))]
    AppsUpdate {
        #[arg(long, group = "change", value_parser = ["random", "least-connections"])]
        routing: Option<String>,
        /// `30m`, `90s`, `1h`, or `off`.
        #[arg(long, group = "change", value_name = "DURATION")]
        sleep_after: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Destroy an app and everything of it.
    #[command(name = "apps:destroy")]
    AppsDestroy {
        name: String,
        /// The app's name again, to confirm.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Build DIR (default .) with its buildpack and release it.
    Deploy {
        dir: Option<PathBuf>,
        #[command(flatten)]
        app: AppArg,
    },
    /// List builds.
    Builds(AppArg),
    /// List releases.
    Releases(AppArg),
    /// Show one release (default: the current) and its config vars.
    #[command(name = "releases:info")]
    ReleasesInfo {
        version: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Roll back to a release (default: the one before the current).
    #[command(name = "releases:rollback")]
    Rollback {
        version: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show config vars.
    Config(AppArg),
    /// Set config vars: KEY=value…
    #[command(name = "config:set")]
    ConfigSet {
        #[arg(required = true)]
        pairs: Vec<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Unset config vars: KEY…
    #[command(name = "config:unset")]
    ConfigUnset {
        #[arg(required = true)]
        keys: Vec<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Print one config var.
    #[command(name = "config:get")]
    ConfigGet {
        key: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Add a `wdyno` git remote for the app to the repo here.
    #[command(name = "git:remote")]
    GitRemote(AppArg),
    /// List dynos.
    Ps(AppArg),
    /// List the platform's hosts: state, last heartbeat, dynos and capacity.
    Hosts,
    /// Scale process types: web=3 worker+1…; with none, show the formation.
    #[command(name = "ps:scale", alias = "scale")]
    Scale {
        changes: Vec<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Restart all dynos, a type, or one dyno.
    #[command(name = "ps:restart")]
    Restart {
        dyno: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Stop one dyno.
    #[command(name = "ps:stop")]
    Stop {
        dyno: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Run a one-off dyno.
    Run {
        /// Send its output to the log instead of this terminal.
        #[arg(long)]
        detach: bool,
        #[command(flatten)]
        app: AppArg,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run a one-off dyno whose output goes to the app's log.
    #[command(name = "run:detached")]
    RunDetached {
        #[command(flatten)]
        app: AppArg,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Show the app's log.
    Logs {
        #[command(flatten)]
        app: AppArg,
        /// Keep following new lines.
        #[arg(short, long)]
        tail: bool,
        /// Only this dyno (web.1) or process type (web).
        #[arg(long, short = 'd', alias = "dyno")]
        ps: Option<String>,
        /// Only `app` or `wdyno` lines.
        #[arg(long, short = 's')]
        source: Option<String>,
        /// How many past lines (up to 1500).
        #[arg(short = 'n', long = "num", default_value_t = 100)]
        num: usize,
    },
    /// List labs features and whether the app has them.
    Labs(AppArg),
    /// Turn a labs feature on (log-runtime-metrics).
    #[command(name = "labs:enable")]
    LabsEnable {
        feature: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Turn a labs feature off.
    #[command(name = "labs:disable")]
    LabsDisable {
        feature: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// List the app's log drains.
    Drains(AppArg),
    /// Send every log line to URL too: https://, http://, syslog+tls://host:port or syslog://host:port.
    #[command(name = "drains:add")]
    DrainsAdd {
        url: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Stop draining to a URL (or a drain's id or token).
    #[command(name = "drains:remove")]
    DrainsRemove {
        url: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Print (and open, where there is a browser) the app's live dashboard.
    Dashboard(AppArg),
    /// Internal: run by git's pre-receive hook of an app's repo.
    #[command(hide = true)]
    Hook {
        which: String,
        #[command(flatten)]
        app: AppArg,
    },
}

impl Cli {
    /// Process-wide settings a platform needs, made while the process has
    /// one thread (before the tokio runtime): files at rest private to this
    /// user (umask 077), and the daemon's private mount namespace for disk
    /// quotas.
    pub fn prepare_process(&self) {
        if matches!(self.command, Cmd::Daemon(_) | Cmd::Local(_)) {
            // SAFETY: umask(2) only sets this process's file mode mask.
            unsafe { libc::umask(0o077) };
        }
        if let Cmd::Daemon(args) = &self.command {
            daemon::isolate(args);
        }
    }
}

pub async fn run(cli: Cli) -> Result<i32> {
    let home = cli.home.clone();
    let json = cli.json;
    match cli.command {
        Cmd::Daemon(args) => daemon::run(&home, *args).await.map(|()| 0),
        Cmd::Local(args) => local::run(args).await,
        Cmd::Hook { which, app } => {
            if which != "pre-receive" {
                bail!("unknown hook {which}");
            }
            deploy::pre_receive(&home, &apps::resolve(&app)?).await
        }
        Cmd::Deploy { dir, app } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from("."));
            deploy::deploy(&home, &apps::resolve(&app)?, &dir).await
        }
        Cmd::GitRemote(app) => apps::git_remote(&home, &apps::resolve(&app)?)
            .await
            .map(|()| 0),
        other => {
            let client = Client::from_home(&home).context("finding the daemon")?;
            api_verb(&client, other, json).await
        }
    }
}

/// The verbs that are calls to the daemon's API, each to its module.
async fn api_verb(client: &Client, cmd: Cmd, json: bool) -> Result<i32> {
    use apps::resolve;
    match cmd {
        Cmd::Apps => apps::list(client, json).await?,
        Cmd::AppsCreate { name, buildpack } => {
            apps::create(client, name.as_deref(), &buildpack).await?
        }
        Cmd::AppsInfo(app) => apps::info(client, &resolve(&app)?, json).await?,
        Cmd::AppsUpdate {
            routing,
            sleep_after,
            app,
        } => {
            let change = apps::Update {
                routing,
                sleep_after,
            };
            apps::update(client, &resolve(&app)?, change).await?
        }
        Cmd::Open { path, app } => apps::open(client, &resolve(&app)?, path.as_deref()).await?,
        Cmd::RunDetached { app, command } => {
            run::detached(client, &resolve(&app)?, &command.join(" ")).await?
        }
        Cmd::BuildpacksSet { buildpacks, app } => {
            apps::buildpacks_set(client, &resolve(&app)?, &buildpacks).await?
        }
        Cmd::AppsDestroy { name, confirm } => {
            apps::destroy(client, &name, confirm.as_deref()).await?
        }
        Cmd::Builds(app) => releases::builds(client, &resolve(&app)?, json).await?,
        Cmd::Releases(app) => releases::list(client, &resolve(&app)?, json).await?,
        Cmd::ReleasesInfo { version, app } => {
            releases::info(client, &resolve(&app)?, version.as_deref(), json).await?
        }
        Cmd::Rollback { version, app } => {
            releases::rollback(client, &resolve(&app)?, version.as_deref()).await?
        }
        Cmd::Config(app) => config::show(client, &resolve(&app)?, json).await?,
        Cmd::ConfigSet { pairs, app } => config::set(client, &resolve(&app)?, &pairs).await?,
        Cmd::ConfigUnset { keys, app } => config::unset(client, &resolve(&app)?, &keys).await?,
        Cmd::ConfigGet { key, app } => config::get(client, &resolve(&app)?, &key).await?,
        Cmd::Ps(app) => ps::list(client, &resolve(&app)?, json).await?,
        Cmd::Hosts => ps::hosts(client, json).await?,
        Cmd::Scale { changes, app } => ps::scale(client, &resolve(&app)?, &changes).await?,
        Cmd::Restart { dyno, app } => ps::restart(client, &resolve(&app)?, dyno.as_deref()).await?,
        Cmd::Stop { dyno, app } => ps::stop(client, &resolve(&app)?, &dyno).await?,
        Cmd::Run {
            detach,
            app,
            command,
        } => {
            let (app, command) = (resolve(&app)?, command.join(" "));
            if !detach {
                return run::attached(client, &app, &command).await;
            }
            run::detached(client, &app, &command).await?
        }
        Cmd::Logs {
            app,
            tail,
            ps,
            source,
            num,
        } => {
            let filter = logs::Filter {
                tail,
                ps,
                source,
                num,
            };
            logs::show(client, &resolve(&app)?, &filter).await?
        }
        Cmd::Labs(app) => visibility::list(client, &resolve(&app)?, json).await?,
        Cmd::LabsEnable { feature, app } => {
            visibility::set(client, &resolve(&app)?, &feature, true).await?
        }
        Cmd::LabsDisable { feature, app } => {
            visibility::set(client, &resolve(&app)?, &feature, false).await?
        }
        Cmd::Drains(app) => visibility::drains(client, &resolve(&app)?, json).await?,
        Cmd::DrainsAdd { url, app } => visibility::add(client, &resolve(&app)?, &url).await?,
        Cmd::DrainsRemove { url, app } => visibility::remove(client, &resolve(&app)?, &url).await?,
        Cmd::Dashboard(app) => visibility::dashboard(client, &resolve(&app)?).await?,
        Cmd::Daemon(_)
        | Cmd::Local(_)
        | Cmd::Deploy { .. }
        | Cmd::GitRemote(_)
        | Cmd::Hook { .. } => unreachable!("handled in cli::run"),
    }
    Ok(0)
}
