//! Apps: the unit everything else hangs off. Which app a command is
//! about (`-a APP` or the `wdyno` git remote), and the verbs on apps
//! themselves: `apps`, `apps:create`, `apps:destroy`, `buildpacks:set` and
//! `git:remote`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use http::Method;
use serde_json::{Value, json};
use wdyno::api::Client;
use wdyno::names::AppName;

use super::AppArg;
use super::format::print_json;

/// `-a APP`, or the app the `wdyno` git remote of the repo here names.
pub fn resolve(arg: &AppArg) -> Result<AppName> {
    let name = match &arg.app {
        Some(a) => a.clone(),
        None => {
            let out = Command::new("git")
                .args(["remote", "get-url", "wdyno"])
                .output();
            let url = match out {
                Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).trim().to_owned(),
                _ => bail!(
                    "no app given: use -a APP, or run inside a git checkout with a `wdyno` remote (`wdyno git:remote -a APP`)"
                ),
            };
            let file = url.rsplit('/').next().unwrap_or("");
            match file.strip_suffix(".git") {
                Some(app) => app.to_owned(),
                None => {
                    bail!("the `wdyno` git remote ({url}) does not name an app repo: use -a APP")
                }
            }
        }
    };
    Ok(AppName::parse(&name)?)
}

/// `git:remote`: makes sure the app's repo exists, then adds (or updates)
/// the `wdyno` remote here.
pub async fn git_remote(home: &Path, app: &AppName) -> Result<()> {
    let client = wdyno::api::Client::from_home(home)?;
    let v: Value = client
        .json(http::Method::POST, &format!("/apps/{app}/git"), Value::Null)
        .await?;
    let url = v["url"].as_str().context("the daemon gave no repo path")?;
    let has = Command::new("git")
        .args(["remote", "get-url", "wdyno"])
        .output()
        .is_ok_and(|o| o.status.success());
    let verb = if has { "set-url" } else { "add" };
    let status = Command::new("git")
        .args(["remote", verb, "wdyno", url])
        .status()
        .context("running git")?;
    if !status.success() {
        bail!("git remote {verb} failed: run this inside a git checkout");
    }
    println!("set git remote wdyno to {url}");
    Ok(())
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

/// `apps`.
pub async fn list(client: &Client, json_out: bool) -> Result<()> {
    let apps: Value = client.get("/apps").await?;
    if json_out {
        print_json(&apps);
        return Ok(());
    }
    println!("=== Apps");
    for a in apps.as_array().into_iter().flatten() {
        println!("{}", a["name"].as_str().unwrap_or(""));
    }
    Ok(())
}

/// `apps:create`: an app with its buildpacks named, or none at all — if
/// the buildpacks are refused, the new app is destroyed again.
pub async fn create(client: &Client, name: &str, buildpack: &[String]) -> Result<()> {
    let _: Value = client
        .json(Method::POST, "/apps", json!({"name": name}))
        .await?;
    if !buildpack.is_empty() {
        let set = json!({"buildpacks": absolute(buildpack)});
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
    Ok(())
}

/// `buildpacks:set`; an empty list goes back to detecting.
pub async fn buildpacks_set(client: &Client, app: &AppName, buildpacks: &[String]) -> Result<()> {
    let abs = absolute(buildpacks);
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
    Ok(())
}

/// `apps:destroy`: only with the name given twice, as Heroku asks.
pub async fn destroy(client: &Client, name: &str, confirm: Option<&str>) -> Result<()> {
    if confirm != Some(name) {
        bail!("this destroys {name} and all its releases; run again with --confirm {name}");
    }
    let _: Value = client
        .json(Method::DELETE, &format!("/apps/{name}"), Value::Null)
        .await?;
    println!("Destroying {name}... done");
    Ok(())
}
