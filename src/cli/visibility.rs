//! Seeing into an app: `labs`, `labs:enable`, `labs:disable` (runtime
//! metrics), `drains`, `drains:add`, `drains:remove`, and `dashboard`.

use anyhow::Result;
use http::Method;
use serde_json::json;
use wdyno::api::Client;
use wdyno::api::client::path;
use wdyno::api::schema::{AppFeature, LogDrain};
use wdyno::names::AppName;

use super::format::print_json;

/// `labs`: every feature, `[+]` where the app has it on.
pub async fn list(client: &Client, app: &AppName, json: bool) -> Result<()> {
    let all: Vec<AppFeature> = client
        .get(&path(&["apps", app.as_str(), "features"], &[]))
        .await?;
    if json {
        print_json(&serde_json::to_value(&all)?);
        return Ok(());
    }
    println!("=== App Features ({app})");
    let width = all.iter().map(|f| f.name.len()).max().unwrap_or(0);
    for f in &all {
        let mark = if f.enabled { "[+]" } else { "[ ]" };
        println!("{mark} {:width$}  {}", f.name, f.description);
    }
    Ok(())
}

/// `labs:enable F` / `labs:disable F`.
pub async fn set(client: &Client, app: &AppName, feature: &str, enabled: bool) -> Result<()> {
    let _: AppFeature = client
        .json(
            Method::PATCH,
            &path(&["apps", app.as_str(), "features", feature], &[]),
            json!({ "enabled": enabled }),
        )
        .await?;
    let verb = if enabled { "Enabling" } else { "Disabling" };
    println!("{verb} {feature} for {app}... done");
    Ok(())
}

/// `drains`: each drain's URL and token.
pub async fn drains(client: &Client, app: &AppName, json: bool) -> Result<()> {
    let all: Vec<LogDrain> = client
        .get(&path(&["apps", app.as_str(), "log-drains"], &[]))
        .await?;
    if json {
        print_json(&serde_json::to_value(&all)?);
        return Ok(());
    }
    if all.is_empty() {
        println!("{app} has no drains.");
        return Ok(());
    }
    println!("=== Drains");
    for d in &all {
        println!("{} ({})", d.url, d.token);
    }
    Ok(())
}

/// `drains:add URL`.
pub async fn add(client: &Client, app: &AppName, url: &str) -> Result<()> {
    let d: LogDrain = client
        .json(
            Method::POST,
            &path(&["apps", app.as_str(), "log-drains"], &[]),
            json!({ "url": url }),
        )
        .await?;
    println!("Successfully added drain {} ({})", d.url, d.token);
    Ok(())
}

/// `drains:remove URL|ID|TOKEN`.
pub async fn remove(client: &Client, app: &AppName, which: &str) -> Result<()> {
    let d: LogDrain = client
        .json(
            Method::DELETE,
            &path(&["apps", app.as_str(), "log-drains", which], &[]),
            serde_json::Value::Null,
        )
        .await?;
    println!("Successfully removed drain {}", d.url);
    Ok(())
}

/// `dashboard`: the page's URL (with the key that sets its cookie),
/// opened in a browser where there is one.
pub async fn dashboard(client: &Client, app: &AppName) -> Result<()> {
    // The app must exist before a URL to it is worth printing.
    let _: wdyno::api::schema::App = client.get(&path(&["apps", app.as_str()], &[])).await?;
    let key = wdyno::api::dashboard::key(client.token());
    let url = format!("{}/dashboard/{app}?key={key}", client.base_url());
    println!("{url}");
    super::apps::open_in_browser(&url);
    Ok(())
}
