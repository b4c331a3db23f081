//! Which app a command is about, and the `wdyno` git remote.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use wdyno::names::AppName;

use super::AppArg;

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
