//! Dynos: the running processes of an app's formation (how many of each
//! process type), and the hosts they run on. `ps`, `ps:scale`,
//! `ps:restart`, `ps:stop` and `hosts`.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use http::Method;
use serde_json::{Value, json};
use wdyno::api::Client;
use wdyno::api::client::path;
use wdyno::names::AppName;

use super::format::{ago, print_json, when};

/// `ps`: the app's dynos by process type, then each host's dyno slots.
pub async fn list(client: &Client, app: &AppName, json_out: bool) -> Result<()> {
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
    Ok(())
}

/// `hosts`: each host's state, heartbeat, dynos and capacity, with what
/// limits the capacity and how to raise it.
pub async fn hosts(client: &Client, json_out: bool) -> Result<()> {
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
    Ok(())
}

/// `ps:scale web=2 worker:1…`: the formation after the change.
pub async fn scale(client: &Client, app: &AppName, changes: &[String]) -> Result<()> {
    let mut body = serde_json::Map::new();
    for c in changes {
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
    Ok(())
}

/// `ps:restart [web | web.1]`: all dynos, one type, or one dyno.
pub async fn restart(client: &Client, app: &AppName, dyno: Option<&str>) -> Result<()> {
    let url = match dyno {
        Some(d) => path(&["apps", app.as_str(), "dynos", d], &[]),
        None => format!("/apps/{app}/dynos"),
    };
    let _: Value = client.json(Method::DELETE, &url, Value::Null).await?;
    println!(
        "Restarting {} dynos on {app}... done",
        dyno.unwrap_or("all")
    );
    Ok(())
}

/// `ps:stop web.1`: a formation dyno is started again, as on Heroku; a
/// one-off dyno just ends.
pub async fn stop(client: &Client, app: &AppName, dyno: &str) -> Result<()> {
    let _: Value = client
        .json(
            Method::POST,
            &path(
                &["apps", app.as_str(), "dynos", dyno, "actions", "stop"],
                &[],
            ),
            Value::Null,
        )
        .await?;
    println!("Stopping {dyno} dyno on {app}... done");
    Ok(())
}
