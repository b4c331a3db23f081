//! Builds and releases: every deploy is a build (a slug from the app's
//! source), and every build that succeeds, config change or rollback is a
//! new numbered release (slug + config). `builds`, `releases` and
//! `releases:rollback`.

use anyhow::Result;
use http::Method;
use serde_json::{Value, json};
use wdyno::api::Client;
use wdyno::names::AppName;

use super::format::{print_json, when};

/// `builds`, newest first.
pub async fn builds(client: &Client, app: &AppName, json_out: bool) -> Result<()> {
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
    Ok(())
}

/// `releases`, newest first; the current one is the newest that succeeded.
pub async fn list(client: &Client, app: &AppName, json_out: bool) -> Result<()> {
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
    Ok(())
}

/// `releases:rollback [vN]`: a new release with an old one's slug and
/// config; without a version, the daemon picks the one before the current.
pub async fn rollback(client: &Client, app: &AppName, version: Option<&str>) -> Result<()> {
    let body = match version {
        Some(v) => json!({"release": v}),
        None => json!({}),
    };
    let r: Value = client
        .json(Method::POST, &format!("/apps/{app}/releases"), body)
        .await?;
    println!("Rolling back {app}... done, v{}", r["version"]);
    println!("{}", r["description"].as_str().unwrap_or(""));
    Ok(())
}
