//! The verbs that are one API call and a table (or `--json`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use chrono::{DateTime, Utc};
use http::Method;
use serde_json::{Value, json};
use wdyno::api::Client;
use wdyno::api::client::path;

use super::Cmd;
use super::app::resolve;

fn when(t: &str) -> String {
    DateTime::parse_from_rfc3339(t)
        .map(|d| {
            d.with_timezone(&Utc)
                .format("%Y/%m/%d %H:%M:%S %z")
                .to_string()
        })
        .unwrap_or_else(|_| t.to_owned())
}

fn ago(t: &str) -> String {
    let Ok(d) = DateTime::parse_from_rfc3339(t) else {
        return String::new();
    };
    let secs = (Utc::now() - d.with_timezone(&Utc)).num_seconds().max(0);
    match secs {
        0..60 => format!("~ {secs}s ago"),
        60..3600 => format!("~ {}m ago", secs / 60),
        _ => format!("~ {}h ago", secs / 3600),
    }
}

/// Buildpack paths as the daemon must see them: absolute.
fn absolute(packs: &[String]) -> Vec<String> {
    packs
        .iter()
        .map(|b| match std::path::Path::new(b).canonicalize() {
            Ok(p) if b.contains('/') => p.display().to_string(),
            _ => b.clone(),
        })
        .collect()
}

/// Prints a line; when the reader has gone (`wdyno logs | head`), exits
/// quietly with 0, as `cat` ends in a pipe, instead of panicking.
fn print_or_quit(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(0);
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).expect("JSON prints"));
}

pub async fn run(client: &Client, cmd: Cmd, json_out: bool) -> Result<()> {
    match cmd {
        Cmd::Apps => {
            let apps: Value = client.get("/apps").await?;
            if json_out {
                print_json(&apps);
                return Ok(());
            }
            println!("=== Apps");
            for a in apps.as_array().into_iter().flatten() {
                println!("{}", a["name"].as_str().unwrap_or(""));
            }
        }
        Cmd::AppsCreate { name, buildpack } => {
            let _: Value = client
                .json(Method::POST, "/apps", json!({"name": name}))
                .await?;
            if !buildpack.is_empty() {
                let set = json!({"buildpacks": absolute(&buildpack)});
                if let Err(e) = client
                    .json::<Value>(Method::PATCH, &format!("/apps/{name}"), set)
                    .await
                {
                    let _: Value = client
                        .json(Method::DELETE, &format!("/apps/{name}"), Value::Null)
                        .await?;
                    return Err(e.into());
                }
            }
            println!("Creating {name}... done");
            println!("http://{name}.localhost:5000/");
        }
        Cmd::BuildpacksSet { buildpacks, app } => {
            let app = resolve(&app)?;
            let abs = absolute(&buildpacks);
            let _: Value = client
                .json(
                    Method::PATCH,
                    &format!("/apps/{app}"),
                    json!({"buildpacks": abs}),
                )
                .await?;
            println!(
                "Buildpacks of {app}: {}",
                if abs.is_empty() {
                    "detected".into()
                } else {
                    abs.join(", ")
                }
            );
        }
        Cmd::AppsDestroy { name, confirm } => {
            if confirm.as_deref() != Some(name.as_str()) {
                bail!("this destroys {name} and all its releases; run again with --confirm {name}");
            }
            let _: Value = client
                .json(Method::DELETE, &format!("/apps/{name}"), Value::Null)
                .await?;
            println!("Destroying {name}... done");
        }
        Cmd::Builds(app) => {
            let app = resolve(&app)?;
            let builds: Value = client.get(&format!("/apps/{app}/builds")).await?;
            if json_out {
                print_json(&builds);
                return Ok(());
            }
            println!("=== {app} Builds");
            for b in builds.as_array().into_iter().flatten().rev() {
                let release = b["release"]
                    .as_u64()
                    .map(|v| format!("v{v}"))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "{}  {:9}  {:4}  {}",
                    b["id"],
                    b["status"].as_str().unwrap_or(""),
                    release,
                    when(b["created_at"].as_str().unwrap_or(""))
                );
            }
        }
        Cmd::Releases(app) => {
            let app = resolve(&app)?;
            let releases: Value = client.get(&format!("/apps/{app}/releases")).await?;
            if json_out {
                print_json(&releases);
                return Ok(());
            }
            let list = releases.as_array().cloned().unwrap_or_default();
            let current = list
                .iter()
                .rev()
                .find(|r| r["status"] == "succeeded")
                .and_then(|r| r["version"].as_u64())
                .unwrap_or(0);
            println!("=== {app} Releases - Current: v{current}");
            for r in list.iter().rev() {
                let status = match r["status"].as_str() {
                    Some("failed") => " (release command failed)",
                    Some("pending") => " (release command running)",
                    _ => "",
                };
                println!(
                    "{:<5} {}{}  {}",
                    format!("v{}", r["version"].as_u64().unwrap_or(0)),
                    r["description"].as_str().unwrap_or(""),
                    status,
                    when(r["created_at"].as_str().unwrap_or(""))
                );
            }
        }
        Cmd::Rollback { version, app } => {
            let app = resolve(&app)?;
            let body = match &version {
                Some(v) => json!({"release": v}),
                None => json!({}),
            };
            let r: Value = client
                .json(Method::POST, &format!("/apps/{app}/releases"), body)
                .await?;
            println!("Rolling back {app}... done, v{}", r["version"]);
            println!("{}", r["description"].as_str().unwrap_or(""));
        }
        Cmd::Config(app) => {
            let app = resolve(&app)?;
            let config: BTreeMap<String, String> =
                client.get(&format!("/apps/{app}/config-vars")).await?;
            if json_out {
                print_json(&json!(config));
                return Ok(());
            }
            println!("=== {app} Config Vars");
            let width = config.keys().map(|k| k.len() + 1).max().unwrap_or(0);
            for (k, v) in &config {
                println!("{:width$} {v}", format!("{k}:"));
            }
        }
        Cmd::ConfigSet { pairs, app } => {
            let app = resolve(&app)?;
            let mut body = serde_json::Map::new();
            for p in &pairs {
                let Some((k, v)) = p.split_once('=') else {
                    bail!("{p:?} is not KEY=value");
                };
                body.insert(k.to_owned(), Value::String(v.to_owned()));
            }
            let keys: Vec<&String> = body.keys().collect();
            let label = keys
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            let r: Value = client
                .json(
                    Method::PATCH,
                    &format!("/apps/{app}/config-vars"),
                    Value::Object(body.clone()),
                )
                .await?;
            println!(
                "Setting {label} and restarting {app}... done, v{}",
                r["version"]
            );
        }
        Cmd::ConfigUnset { keys, app } => {
            let app = resolve(&app)?;
            let body: serde_json::Map<String, Value> =
                keys.iter().map(|k| (k.clone(), Value::Null)).collect();
            let r: Value = client
                .json(
                    Method::PATCH,
                    &format!("/apps/{app}/config-vars"),
                    Value::Object(body),
                )
                .await?;
            println!(
                "Unsetting {} and restarting {app}... done, v{}",
                keys.join(", "),
                r["version"]
            );
        }
        Cmd::ConfigGet { key, app } => {
            let app = resolve(&app)?;
            let config: BTreeMap<String, String> =
                client.get(&format!("/apps/{app}/config-vars")).await?;
            println!("{}", config.get(&key).map(String::as_str).unwrap_or(""));
        }
        Cmd::Ps(app) => {
            let app = resolve(&app)?;
            let dynos: Value = client.get(&format!("/apps/{app}/dynos")).await?;
            if json_out {
                print_json(&dynos);
                return Ok(());
            }
            let list = dynos.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                println!("No dynos on {app}");
            }
            let mut types: Vec<&str> = list.iter().filter_map(|d| d["type"].as_str()).collect();
            types.dedup();
            for ty in types {
                let of: Vec<&Value> = list.iter().filter(|d| d["type"] == ty).collect();
                println!(
                    "=== {ty} ({}): {}",
                    of.len(),
                    of[0]["command"].as_str().unwrap_or("")
                );
                for d in of {
                    let at = d["updated_at"].as_str().unwrap_or("");
                    println!(
                        "{}: {} {} ({})",
                        d["name"].as_str().unwrap_or(""),
                        d["state"].as_str().unwrap_or(""),
                        when(at).trim_end_matches(" +0000"),
                        ago(at)
                    );
                }
                println!();
            }
            let hosts: Value = client.get("/hosts").await?;
            for h in hosts.as_array().into_iter().flatten() {
                let c = &h["capacity"];
                println!(
                    "Host {}: {} of {} dyno slots in use (capacity set by {})",
                    h["name"].as_str().unwrap_or(""),
                    c["formations"]
                        .as_u64()
                        .unwrap_or(0)
                        .max(c["running"].as_u64().unwrap_or(0)),
                    c["capacity"],
                    c["limit"].as_str().unwrap_or("")
                );
            }
        }
        Cmd::Hosts => {
            let hosts: Value = client.get("/hosts").await?;
            if json_out {
                print_json(&hosts);
                return Ok(());
            }
            println!("=== Hosts");
            for h in hosts.as_array().into_iter().flatten() {
                let c = &h["capacity"];
                let at = h["heartbeat_at"].as_str().unwrap_or("");
                println!(
                    "{}: {} (heartbeat {}) dynos {} running, {} in formations, capacity {} (+{} for wasi:http/proxy requests, {} per app)",
                    h["name"].as_str().unwrap_or(""),
                    h["state"].as_str().unwrap_or(""),
                    ago(at),
                    c["running"],
                    c["formations"],
                    c["capacity"],
                    c["proxy_reserve"],
                    c["per_app"]
                );
                println!(
                    "  capacity set by {}: {}",
                    c["limit"].as_str().unwrap_or(""),
                    c["how_to_raise"].as_str().unwrap_or("")
                );
            }
        }
        Cmd::Scale { changes, app } => {
            let app = resolve(&app)?;
            let mut body = serde_json::Map::new();
            for c in &changes {
                let Some((ty, n)) = c.split_once('=').or_else(|| c.split_once(':')) else {
                    bail!("{c:?} is not TYPE=QUANTITY (like web=2)");
                };
                let n: u64 = n
                    .parse()
                    .map_err(|_| anyhow::anyhow!("{c:?}: the quantity must be a whole number"))?;
                body.insert(ty.to_owned(), json!(n));
            }
            let f: BTreeMap<String, u64> = client
                .json(
                    Method::PATCH,
                    &format!("/apps/{app}/formation"),
                    Value::Object(body),
                )
                .await?;
            let now: Vec<String> = f.iter().map(|(k, v)| format!("{k}={v}")).collect();
            println!("Scaling dynos... done, now running {}", now.join(", "));
        }
        Cmd::Restart { dyno, app } => {
            let app = resolve(&app)?;
            let url = match &dyno {
                Some(d) => path(&["apps", app.as_str(), "dynos", d], &[]),
                None => format!("/apps/{app}/dynos"),
            };
            let _: Value = client.json(Method::DELETE, &url, Value::Null).await?;
            println!(
                "Restarting {} dynos on {app}... done",
                dyno.as_deref().unwrap_or("all")
            );
        }
        Cmd::Stop { dyno, app } => {
            let app = resolve(&app)?;
            let _: Value = client
                .json(
                    Method::POST,
                    &path(
                        &["apps", app.as_str(), "dynos", &dyno, "actions", "stop"],
                        &[],
                    ),
                    Value::Null,
                )
                .await?;
            println!("Stopping {dyno} dyno on {app}... done");
        }
        Cmd::Run {
            detach,
            app,
            command,
        } => {
            let app = resolve(&app)?;
            debug_assert!(detach, "attached runs are handled in cli::run");
            let v: Value = client
                .json(
                    Method::POST,
                    &format!("/apps/{app}/dynos"),
                    json!({"command": command.join(" ")}),
                )
                .await?;
            println!(
                "Running {} on {app}... up, {}",
                command.join(" "),
                v["name"].as_str().unwrap_or("")
            );
            println!(
                "Run `wdyno logs -a {app} --ps {}` to see its output.",
                v["name"].as_str().unwrap_or("")
            );
        }
        Cmd::Logs {
            app,
            tail,
            ps,
            source,
            num,
        } => {
            let app = resolve(&app)?;
            let lines = num.min(wdyno::logbus::LOG_RING_LINES).to_string();
            let mut q: Vec<(&str, &str)> = vec![("lines", &lines)];
            if tail {
                q.push(("tail", "1"));
            }
            if let Some(ps) = &ps {
                q.push(("dyno", ps));
            }
            if let Some(s) = &source {
                if wdyno::logbus::Source::parse(s).is_none() {
                    bail!("--source is app or wdyno, not {s:?}");
                }
                q.push(("source", s));
            }
            client
                .stream(
                    Method::GET,
                    &path(&["apps", app.as_str(), "log-stream"], &q),
                    hyper::body::Bytes::new(),
                    &[],
                    &mut print_or_quit,
                )
                .await?;
        }
        Cmd::Daemon(_)
        | Cmd::Local(_)
        | Cmd::Deploy { .. }
        | Cmd::GitRemote(_)
        | Cmd::Hook { .. } => {
            unreachable!("handled in cli::run")
        }
    }
    Ok(())
}
