//! Config vars: the app's environment, kept apart from its code. Each
//! change makes a new release and restarts the dynos. `config`,
//! `config:set`, `config:unset` and `config:get`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use http::Method;
use serde_json::{Value, json};
use wdyno::api::Client;
use wdyno::names::AppName;

use super::format::print_json;

/// `config`: every var, keys aligned.
pub async fn show(client: &Client, app: &AppName, json_out: bool) -> Result<()> {
    let config: BTreeMap<String, String> = client.get(&format!("/apps/{app}/config-vars")).await?;
    if json_out {
        print_json(&json!(config));
        return Ok(());
    }
    println!("=== {app} Config Vars");
    let width = config.keys().map(|k| k.len() + 1).max().unwrap_or(0);
    for (k, v) in &config {
        println!("{:width$} {v}", format!("{k}:"));
    }
    Ok(())
}

/// `config:set KEY=value…`, all in one release.
pub async fn set(client: &Client, app: &AppName, pairs: &[String]) -> Result<()> {
    let mut body = serde_json::Map::new();
    for p in pairs {
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
    let _: BTreeMap<String, String> = client
        .json(
            Method::PATCH,
            &format!("/apps/{app}/config-vars"),
            Value::Object(body.clone()),
        )
        .await?;
    println!(
        "Setting {label} and restarting {app}... done, v{}",
        newest_version(client, app).await?
    );
    Ok(())
}

/// `config:unset KEY…`, all in one release.
pub async fn unset(client: &Client, app: &AppName, keys: &[String]) -> Result<()> {
    let body: serde_json::Map<String, Value> =
        keys.iter().map(|k| (k.clone(), Value::Null)).collect();
    let _: BTreeMap<String, String> = client
        .json(
            Method::PATCH,
            &format!("/apps/{app}/config-vars"),
            Value::Object(body),
        )
        .await?;
    println!(
        "Unsetting {} and restarting {app}... done, v{}",
        keys.join(", "),
        newest_version(client, app).await?
    );
    Ok(())
}

/// The version a config change just made: the newest release.
async fn newest_version(client: &Client, app: &AppName) -> Result<u64> {
    Ok(super::releases::newest(client, app)
        .await?
        .map_or(0, |r| r.version))
}

/// `config:get KEY`: the value alone (empty if unset), for scripts.
pub async fn get(client: &Client, app: &AppName, key: &str) -> Result<()> {
    let config: BTreeMap<String, String> = client.get(&format!("/apps/{app}/config-vars")).await?;
    println!("{}", config.get(key).map(String::as_str).unwrap_or(""));
    Ok(())
}
