//! `wdyno local [DIR]`: like `heroku local`: build DIR in a throwaway
//! home, run its process types, serve the router, print the collated log
//! with `web.1 |` prefixes until Ctrl-C. It reads the app's `.env` (or
//! `-e FILE`) into its config vars, takes a formation as `heroku local`
//! does (`web=2,worker=1`, or a process name), and picks its port as
//! Foreman does (`-p`, PORT in the .env, `$PORT`, 5000); see
//! [`super::foreman`].

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use wdyno::logbus::{Event, LogFilter, Source};
use wdyno::names::{AppName, ConfigKey, ProcessType};
use wdyno::platform::{Platform, PlatformConfig};

use super::foreman;

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// The app's directory (default .), and/or the dynos to run as
    /// `heroku local` takes them: `web=2,worker=1`, or a process name
    /// (`web`). Default: one of each process type.
    #[arg(value_name = "DIR|FORMATION", num_args = 0..=2)]
    pub args: Vec<String>,
    /// Dynos to run: web=2,worker=1 (as the positional FORMATION).
    #[arg(short = 'm', long)]
    pub formation: Option<String>,
    /// The router's port (default: PORT in the .env, then $PORT, then 5000).
    #[arg(short, long)]
    pub port: Option<u16>,
    /// Env files to read instead of DIR/.env (repeatable, or a comma list).
    #[arg(short = 'e', long = "env", value_delimiter = ',')]
    pub env: Vec<PathBuf>,
}

/// DIR and FORMATION from the positional arguments.
fn split_args(args: &[String]) -> Result<(PathBuf, Option<String>)> {
    let mut dir = None;
    let mut formation = None;
    for a in args {
        if dir.is_none() && !foreman::is_formation(a, Path::new(a).is_dir()) {
            dir = Some(PathBuf::from(a));
        } else if formation.is_none() {
            formation = Some(a.clone());
        } else {
            bail!("{a:?}: expected a directory and a formation (like web=2,worker=1)");
        }
    }
    Ok((dir.unwrap_or_else(|| PathBuf::from(".")), formation))
}

/// The env files' variables (DIR/.env if it exists, or the `-e` files),
/// later files winning; PORT is taken out (it picks the router's port).
fn read_env(
    dir: &Path,
    files: &[PathBuf],
) -> Result<(BTreeMap<ConfigKey, String>, Option<String>)> {
    let default = dir.join(".env");
    let files: Vec<PathBuf> = if files.is_empty() {
        default.is_file().then_some(default).into_iter().collect()
    } else {
        files.to_vec()
    };
    let mut vars = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("reading the env file {}", f.display()))?;
        vars.extend(foreman::parse_env(&f.display().to_string(), &text)?);
    }
    let port = vars.remove("PORT");
    let config = vars
        .into_iter()
        .map(|(k, v)| Ok((ConfigKey::parse(&k)?, v)))
        .collect::<Result<_>>()?;
    Ok((config, port))
}

/// An app name from a directory name: `My_App` → `my-app`.
fn app_name(dir: &Path) -> Result<AppName> {
    let base = dir
        .canonicalize()?
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut name: String = base
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        name.insert_str(0, "app-");
    }
    name.truncate(30);
    let name = name.trim_end_matches('-').to_owned();
    AppName::parse(&name).with_context(|| format!("naming the app after {}", dir.display()))
}

const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

pub async fn run(args: LocalArgs) -> Result<i32> {
    let (dir, positional) = split_args(&args.args)?;
    let app = app_name(&dir)?;
    let (env, dotenv_port) = read_env(&dir, &args.env)?;
    let listen = foreman::port(
        args.port,
        dotenv_port.as_deref(),
        std::env::var("PORT").ok().as_deref(),
    )?;
    let home = tempfile::Builder::new().prefix("wdyno-local-").tempdir()?;
    let mut cfg = PlatformConfig::new(home.path());
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| home.path().to_owned())
        .join("wdyno/build");
    cfg.build_cache = Some(cache);
    // A developer's own code on their own machine, as `heroku local`: the
    // build output says it is unsandboxed.
    cfg.sandbox_builds = false;
    // One app: plain http://localhost:PORT/ reaches it.
    cfg.router.default_app = Some(app.to_string());
    // Before anything is served: Ctrl-C always takes the stop sequence.
    let ctrl_c = super::daemon::shutdown_signal()?;
    // Its dynos share this process's descriptors, as the daemon's do.
    wdyno::dyno::fds::raise_open_files_limit();
    let platform = Platform::open(cfg).await?;
    let api = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let router = tokio::net::TcpListener::bind(("127.0.0.1", listen))
        .await
        .with_context(|| format!("port {listen} is in use: pick another with --port"))?;
    let port = router.local_addr()?.port();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let running = {
        let platform = platform.clone();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            platform
                .run(api, router, async move {
                    let _ = rx.wait_for(|s| *s).await;
                })
                .await
        })
    };
    let service = platform.service().clone();
    service.create_app(&app).await?;
    let mut sub = service.logs(&app, LogFilter::default(), 0, true).await?;
    if !env.is_empty() {
        service.set_config(&app, &env, &[]).await?;
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let printer = tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            println!("{line}");
        }
    });
    let built = service.deploy(&app, &dir, "", tx).await;
    let _ = printer.await;
    let release = match built {
        Ok(r) => r,
        Err(e) => {
            let _ = stop_tx.send(true);
            let _ = running.await;
            eprintln!(" !     {e}");
            return Ok(1);
        }
    };
    let types: Vec<String> = release.process_types.keys().cloned().collect();
    let spec = positional
        .or(args.formation)
        .unwrap_or_else(|| "all=1".to_owned());
    let mut formation: BTreeMap<ProcessType, u32> = match foreman::parse_formation(&spec, &types) {
        Ok(f) => f
            .into_iter()
            .map(|(t, n)| Ok((ProcessType::parse(&t)?, n)))
            .collect::<Result<_>>()?,
        Err(e) => {
            let _ = stop_tx.send(true);
            let _ = running.await;
            eprintln!(" !     {e}");
            return Ok(1);
        }
    };
    // Types left out of the spec run no dynos (the first deploy gave web one).
    for t in &types {
        if t != "release" {
            formation.entry(ProcessType::parse(t)?).or_insert(0);
        }
    }
    service.scale(&app, &formation).await?;
    println!(
        "-----> {app} on http://{app}.localhost:{port} (also http://localhost:{port}/) (Ctrl-C to stop)"
    );

    let color = foreman::use_color(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let mut palette: BTreeMap<String, &str> = BTreeMap::new();
    let mut ctrl_c = std::pin::pin!(ctrl_c);
    let mut stopping = false;
    let mut running = running;
    let outcome = loop {
        tokio::select! {
            // Ctrl-C first (a flood of lines must not hide it), then lines:
            // when the platform has stopped, every line of its dynos is
            // already queued and gets printed before we exit.
            biased;
            _ = &mut ctrl_c, if !stopping => {
                stopping = true;
                let _ = stop_tx.send(true);
            }
            ev = sub.next() => {
                let Some(Event::Line(l)) = ev else { continue };
                // The control plane's own `app[api]` lines (releases,
                // scaling) are for `logs`; like Foreman, show processes.
                if l.source == Source::App && l.process == "api" {
                    continue;
                }
                let who = if l.source == Source::Wdyno && l.process != "router" {
                    format!("{} wdyno", l.process)
                } else {
                    l.process.clone()
                };
                let n = palette.len();
                let c = *palette.entry(l.process.clone()).or_insert(COLORS[n % COLORS.len()]);
                let stamp = l.at.format("%H:%M:%S");
                if color {
                    println!("\x1b[{c}m{stamp} {who:<12} |\x1b[0m {}", l.text);
                } else {
                    println!("{stamp} {who:<12} | {}", l.text);
                }
            }
            res = &mut running => break res,
        }
    };
    outcome??;
    Ok(0)
}
