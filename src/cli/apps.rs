//! Apps: the unit everything else hangs off. Which app a command is
//! about (`-a APP` or the `wdyno` git remote), and the verbs on apps
//! themselves: `apps`, `apps:create`, `apps:info`, `open`, `apps:destroy`,
//! `buildpacks:set` and `git:remote`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use http::Method;
use serde_json::{Value, json};
use wdyno::api::Client;
use wdyno::api::client::path;
use wdyno::api::schema::{App, AppCreate, Formation};
use wdyno::idling::SleepAfter;
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

/// `apps:create [NAME]`: an app with its buildpacks named, or none at
/// all (if the buildpacks are refused, the daemon makes no app); with no
/// name, the daemon makes one up.
pub async fn create(client: &Client, name: Option<&str>, buildpack: &[String]) -> Result<()> {
    let body = AppCreate {
        name: name.map(str::to_owned),
        buildpacks: (!buildpack.is_empty()).then(|| absolute(buildpack)),
    };
    let app: App = client
        .json(Method::POST, "/apps", serde_json::to_value(body)?)
        .await?;
    println!("Creating {}... done", app.name);
    println!("{} | {}", app.web_url, app.git_url);
    Ok(())
}

/// `apps:info`: the app as Heroku's CLI shows it.
pub async fn info(client: &Client, app: &AppName, json_out: bool) -> Result<()> {
    let a: App = client.get(&path(&["apps", app.as_str()], &[])).await?;
    if json_out {
        print_json(&serde_json::to_value(&a)?);
        return Ok(());
    }
    let formation: Vec<Formation> = client
        .get(&path(&["apps", app.as_str(), "formation"], &[]))
        .await?;
    print!("{}", info_text(&a, &formation));
    Ok(())
}

/// `apps:info`'s text.
pub fn info_text(a: &App, formation: &[Formation]) -> String {
    let dynos: Vec<String> = formation
        .iter()
        .filter(|f| f.quantity > 0)
        .map(|f| format!("{}: {}", f.process_type, f.quantity))
        .collect();
    let buildpacks = if a.buildpacks.is_empty() {
        "detected at each build".to_owned()
    } else {
        a.buildpacks.join(", ")
    };
    let mut out = format!("=== {}\n", a.name);
    let fields = [
        ("Buildpacks", buildpacks),
        ("Dynos", dynos.join(", ")),
        ("Git URL", a.git_url.clone()),
        ("Owner", a.owner.email.clone()),
        ("Region", a.region.name.clone()),
        ("Routing", a.routing.as_str().to_owned()),
        ("Sleep after", a.sleep_after.to_string()),
        ("Stack", a.stack.name.clone()),
        ("Web URL", a.web_url.clone()),
    ];
    // As Heroku's: values in one column, past the longest key.
    let width = fields.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 2;
    for (k, v) in fields {
        out += &format!("{:<width$}{v}\n", format!("{k}:"));
    }
    out
}

/// `open`: prints the app's web URL, and opens it in a browser when this
/// machine has one (`$BROWSER`, or `xdg-open` with a display).
pub async fn open(client: &Client, app: &AppName, path_in_app: Option<&str>) -> Result<()> {
    let a: App = client.get(&path(&["apps", app.as_str()], &[])).await?;
    let url = match path_in_app {
        Some(p) => format!("{}{}", a.web_url, p.trim_start_matches('/')),
        None => a.web_url,
    };
    println!("{url}");
    open_in_browser(&url);
    Ok(())
}

/// Opens `url` in `$BROWSER`, or with `xdg-open` where there is a
/// display; nothing where there is no browser. Best effort: the caller
/// has printed the URL whatever the browser does.
pub fn open_in_browser(url: &str) {
    let browser = std::env::var("BROWSER")
        .ok()
        .filter(|b| !b.is_empty())
        .or_else(|| {
            let display = std::env::var_os("DISPLAY").is_some()
                || std::env::var_os("WAYLAND_DISPLAY").is_some();
            (display && Command::new("xdg-open").arg("--version").output().is_ok())
                .then(|| "xdg-open".to_owned())
        });
    if let Some(b) = browser {
        let _ = Command::new(b)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
    }
}

/// What `apps:update` changes (at least one).
pub struct Update {
    pub routing: Option<String>,
    pub sleep_after: Option<String>,
}

/// `apps:update --routing random|least-connections --sleep-after 30m|off`.
pub async fn update(client: &Client, app: &AppName, change: Update) -> Result<()> {
    let mut body = serde_json::Map::new();
    if let Some(r) = &change.routing {
        body.insert("routing".into(), json!(r));
    }
    if let Some(v) = &change.sleep_after {
        // Checked here too, so the message names the flag.
        let v = SleepAfter::parse(v).map_err(|e| anyhow::anyhow!("--sleep-after: {e}"))?;
        body.insert("sleep_after".into(), json!(v.to_string()));
    }
    let a: App = client
        .json(Method::PATCH, &format!("/apps/{app}"), Value::Object(body))
        .await?;
    if change.routing.is_some() {
        println!("Routing of {app}: {}", a.routing.as_str());
    }
    if change.sleep_after.is_some() {
        match a.sleep_after.duration() {
            Some(_) => println!(
                "Web dynos of {app} sleep after {} without a request",
                a.sleep_after
            ),
            None => println!("Web dynos of {app} never sleep"),
        }
    }
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
