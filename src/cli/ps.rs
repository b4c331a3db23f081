//! Dynos: the running processes of an app's formation (how many of each
//! process type), and the hosts they run on. `ps`, `ps:scale`,
//! `ps:restart`, `ps:stop` and `hosts`.

use anyhow::{Result, bail};
use http::Method;
use serde_json::Value;
use wdyno::api::Client;
use wdyno::api::client::path;
use wdyno::api::schema::{Dyno, Formation, FormationBatch, FormationUpdate, Quantity};
use wdyno::names::AppName;

use super::format::{ago, print_json, when_ago};

/// `ps`: the app's dynos as Heroku's CLI shows them (one-offs first,
/// then formation dynos grouped by command), then each host's dyno slots.
pub async fn list(client: &Client, app: &AppName, json_out: bool) -> Result<()> {
    let dynos: Vec<Dyno> = client.get(&format!("/apps/{app}/dynos")).await?;
    if json_out {
        print_json(&serde_json::to_value(&dynos)?);
        return Ok(());
    }
    print!("{}", dynos_text(&dynos, chrono::Utc::now()));
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

/// The number in a dyno's name (`web.12` → 12), for ordering.
fn number(name: &str) -> u64 {
    name.rsplit('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// `ps`'s text for `dynos` at `now`: `=== web (Basic): bin/web (2)`, then
/// `web.1: up 2026/11/29 13:21:56 +0000 (~ 54s ago)`.
pub fn dynos_text(dynos: &[Dyno], now: chrono::DateTime<chrono::Utc>) -> String {
    let since = |d: &Dyno| when_ago(d.updated_at, now);
    let mut out = String::new();
    if dynos.is_empty() {
        return out;
    }
    // Dynos of a cluster say where they run.
    let hosts: std::collections::BTreeSet<&str> = dynos.iter().map(|d| d.host.as_str()).collect();
    let on = |d: &Dyno| match hosts.len() > 1 {
        true => format!(" on {}", d.host),
        false => String::new(),
    };
    let mut one_offs: Vec<&Dyno> = dynos.iter().filter(|d| d.process_type == "run").collect();
    one_offs.sort_by_key(|d| number(&d.name));
    if !one_offs.is_empty() {
        out += &format!("=== run: one-off processes ({})\n\n", one_offs.len());
        for d in one_offs {
            out += &format!(
                "{} ({}): {} {}{}: {}\n",
                d.name,
                d.size,
                d.state,
                since(d),
                on(d),
                d.command
            );
        }
        out += "\n";
    }
    let mut formation: Vec<&Dyno> = dynos.iter().filter(|d| d.process_type != "run").collect();
    formation.sort_by(|a, b| {
        (&a.process_type, number(&a.name)).cmp(&(&b.process_type, number(&b.name)))
    });
    let mut commands: Vec<(&str, &str)> = Vec::new();
    for d in &formation {
        if !commands.contains(&(d.process_type.as_str(), d.command.as_str())) {
            commands.push((&d.process_type, &d.command));
        }
    }
    for (ty, command) in commands {
        let of: Vec<&&Dyno> = formation
            .iter()
            .filter(|d| d.process_type == ty && d.command == command)
            .collect();
        out += &format!("=== {ty} ({}): {command} ({})\n\n", of[0].size, of.len());
        for d in of {
            out += &format!("{}: {} {}{}\n", d.name, d.state, since(d), on(d));
        }
        out += "\n";
    }
    out
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
            "{}: {} (heartbeat {}) dynos {}, {} slots running, {} in formations, capacity {} (+{} for wasi:http/proxy requests, {} per app)",
            h["name"].as_str().unwrap_or(""),
            h["state"].as_str().unwrap_or(""),
            ago(at),
            h["dynos"],
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

/// One argument of `ps:scale`: `web=2`, `web+1`, `web-1`, `web=2:Basic`.
fn change(arg: &str) -> Result<FormationUpdate> {
    let at = arg
        .find(['=', '+', '-'])
        .filter(|&i| i > 0)
        .ok_or_else(|| {
            anyhow::anyhow!("{arg:?} is not TYPE=QUANTITY (like web=2, web+1 or web=2:Basic)")
        })?;
    let (ty, rest) = arg.split_at(at);
    let (quantity, size) = match rest.split_once(':') {
        Some((q, size)) => (q, Some(size.to_owned())),
        None => (rest, None),
    };
    let quantity = quantity.strip_prefix('=').unwrap_or(quantity);
    let digits = quantity.trim_start_matches(['+', '-']);
    if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
        bail!("{arg:?}: the quantity must be a whole number (web=2), or a change (web+1, web-1)");
    }
    Ok(FormationUpdate {
        process_type: Some(ty.to_owned()),
        quantity: Some(Quantity::Text(quantity.to_owned())),
        size,
    })
}

/// `ps:scale web=2 worker=1…`: the changed types after the change; with no
/// argument, the whole formation (`web=1:Basic worker=0:Basic`).
pub async fn scale(client: &Client, app: &AppName, changes: &[String]) -> Result<()> {
    if changes.is_empty() {
        let formation: Vec<Formation> = client.get(&format!("/apps/{app}/formation")).await?;
        if formation.is_empty() {
            bail!("No process types on {app}: deploy a Procfile first");
        }
        let mut all: Vec<String> = formation
            .iter()
            .map(|f| format!("{}={}:{}", f.process_type, f.quantity, f.size))
            .collect();
        all.sort();
        println!("{}", all.join(" "));
        return Ok(());
    }
    let updates = changes
        .iter()
        .map(|c| change(c))
        .collect::<Result<Vec<_>>>()?;
    let asked: Vec<String> = updates
        .iter()
        .filter_map(|u| u.process_type.clone())
        .collect();
    let f: Vec<Formation> = client
        .json(
            Method::PATCH,
            &format!("/apps/{app}/formation"),
            serde_json::to_value(FormationBatch { updates })?,
        )
        .await?;
    let now: Vec<String> = f
        .iter()
        .filter(|f| asked.contains(&f.process_type))
        .map(|f| format!("{} at {}:{}", f.process_type, f.quantity, f.size))
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn dyno(name: &str, command: &str, secs_ago: i64, now: chrono::DateTime<chrono::Utc>) -> Dyno {
        let ty = name.split('.').next().unwrap().to_owned();
        Dyno {
            id: String::new(),
            app: wdyno::api::schema::Named::fixed("app", "a"),
            attach_url: None,
            command: command.into(),
            created_at: now,
            name: name.into(),
            release: wdyno::api::schema::ReleaseRef {
                id: String::new(),
                version: 1,
            },
            size: "Basic".into(),
            state: "up".into(),
            process_type: ty,
            updated_at: now - chrono::Duration::seconds(secs_ago),
            port: None,
            host: String::new(),
        }
    }

    #[test]
    fn ps_reads_as_herokus() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T13:22:50Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let dynos = vec![
            dyno("web.2", "bin/web", 54, now),
            dyno("run.7", "bin/task 1", 5, now),
            dyno("web.10", "bin/web", 54, now),
            dyno("worker.1", "bin/work", 3700, now),
        ];
        assert_eq!(
            dynos_text(&dynos, now),
            "=== run: one-off processes (1)\n\
             \n\
             run.7 (Basic): up 2026/11/29 13:22:45 +0000 (~ 5s ago): bin/task 1\n\
             \n\
             === web (Basic): bin/web (2)\n\
             \n\
             web.2: up 2026/11/29 13:21:56 +0000 (~ 54s ago)\n\
             web.10: up 2026/11/29 13:21:56 +0000 (~ 54s ago)\n\
             \n\
             === worker (Basic): bin/work (1)\n\
             \n\
             worker.1: up 2026/11/29 12:21:10 +0000 (~ 1h ago)\n\
             \n"
        );
    }

    #[test]
    fn scale_arguments_are_herokus() {
        let q = |a: &str| {
            let u = change(a).unwrap();
            (
                u.process_type.unwrap(),
                u.quantity.unwrap().scale().unwrap(),
                u.size,
            )
        };
        use wdyno::api::schema::Scale;
        assert_eq!(q("web=2"), ("web".into(), Scale::To(2), None));
        assert_eq!(q("web+1"), ("web".into(), Scale::By(1), None));
        assert_eq!(q("worker-2"), ("worker".into(), Scale::By(-2), None));
        assert_eq!(
            q("web=3:Basic"),
            ("web".into(), Scale::To(3), Some("Basic".into()))
        );
        assert!(change("web").is_err());
        assert!(
            change("web=two")
                .unwrap_err()
                .to_string()
                .contains("whole number")
        );
    }
}
