//! `wdyno local [DIR]`: like `heroku local`: build DIR in a throwaway
//! home, run its process types, serve the router, print the collated log
//! with `web.1 |` prefixes until Ctrl-C.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use wdyno::logbus::{Event, LogFilter, Source};
use wdyno::names::{AppName, ProcessType};
use wdyno::platform::{Platform, PlatformConfig};

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// The app's directory.
    pub dir: Option<PathBuf>,
    /// Dynos to run: web=2,worker=1 (default: one of each process type).
    #[arg(short = 'm', long)]
    pub formation: Option<String>,
    /// The router's port.
    #[arg(short, long, default_value_t = 5000)]
    pub port: u16,
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

fn parse_formation(spec: &str) -> Result<BTreeMap<ProcessType, u32>> {
    let mut out = BTreeMap::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let Some((ty, n)) = part.split_once('=') else {
            bail!("-m {spec}: expected TYPE=COUNT,… like web=2,worker=1");
        };
        out.insert(
            ProcessType::parse(ty.trim())?,
            n.trim()
                .parse()
                .with_context(|| format!("-m {part}: the count must be a number"))?,
        );
    }
    Ok(out)
}

const COLORS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

pub async fn run(args: LocalArgs) -> Result<i32> {
    let dir = args.dir.unwrap_or_else(|| PathBuf::from("."));
    let app = app_name(&dir)?;
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
    // Before anything is served: Ctrl-C always takes the stop sequence.
    let ctrl_c = super::daemon::shutdown_signal()?;
    // Its dynos share this process's descriptors, as the daemon's do.
    wdyno::dyno::fds::raise_open_files_limit();
    let platform = Platform::open(cfg).await?;
    let api = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let router = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("port {} is in use: pick another with --port", args.port))?;
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
    let formation = match &args.formation {
        Some(spec) => parse_formation(spec)?,
        None => release
            .process_types
            .keys()
            .filter(|t| t.as_str() != "release")
            .map(|t| Ok((ProcessType::parse(t)?, 1)))
            .collect::<Result<_>>()?,
    };
    service.scale(&app, &formation).await?;
    println!(
        "-----> {app} on http://{app}.localhost:{} (Ctrl-C to stop)",
        port
    );

    let color = std::io::stdout().is_terminal();
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
