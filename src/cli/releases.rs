//! Builds and releases: every deploy is a build (a slug from the app's
//! source), and every build that succeeds, config change or rollback is a
//! new numbered release (slug + config). `builds`, `releases` and
//! `releases:rollback`.

use std::collections::BTreeMap;

use anyhow::Result;
use http::Method;
use serde_json::{Value, json};
use wdyno::api::Client;
use wdyno::api::client::path;
use wdyno::api::schema::Release;
use wdyno::names::AppName;

use super::format::{print_json, when, when_ago, when_at};

/// `builds`, newest first.
pub async fn builds(client: &Client, app: &AppName, json_out: bool) -> Result<()> {
    let builds: Value = client.get(&format!("/apps/{app}/builds")).await?;
    if json_out {
        print_json(&builds);
        return Ok(());
    }
    println!("=== {app} Builds");
    for b in builds.as_array().into_iter().flatten().rev() {
        let release = b["release"]["version"]
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

/// `releases`, newest first, as Heroku's CLI shows them: version,
/// description, who, when, in aligned columns.
pub async fn list(client: &Client, app: &AppName, json_out: bool) -> Result<()> {
    let releases: Vec<Release> = client.get(&format!("/apps/{app}/releases")).await?;
    if json_out {
        print_json(&serde_json::to_value(&releases)?);
        return Ok(());
    }
    print!(
        "{}",
        releases_text(app.as_str(), &releases, chrono::Utc::now())
    );
    Ok(())
}

/// `releases`'s text for `releases` (oldest first) at `now`.
pub fn releases_text(
    app: &str,
    releases: &[Release],
    now: chrono::DateTime<chrono::Utc>,
) -> String {
    let current = releases.iter().find(|r| r.current).map_or(0, |r| r.version);
    let mut out = format!("=== {app} Releases - Current: v{current}\n\n");
    let rows: Vec<[String; 4]> = releases
        .iter()
        .rev()
        .map(|r| {
            let status = match r.status.as_str() {
                "failed" => " (release command failed)",
                "pending" => " (release command executing)",
                _ => "",
            };
            [
                format!("v{}", r.version),
                format!("{}{status}", r.description),
                r.user.email.clone(),
                when_ago(r.created_at, now),
            ]
        })
        .collect();
    let width = |i: usize| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    for [v, d, u, t] in &rows {
        out += &format!("{v:<w0$}  {d:<w1$}  {u:<w2$}  {t}\n");
    }
    out
}

/// `releases:info [vN]`: one release (default: the current) and its
/// config vars.
pub async fn info(
    client: &Client,
    app: &AppName,
    version: Option<&str>,
    json_out: bool,
) -> Result<()> {
    let which = match version {
        Some(v) => v.trim_start_matches('v').to_owned(),
        None => {
            let all: Vec<Release> = client.get(&format!("/apps/{app}/releases")).await?;
            match all.iter().find(|r| r.current) {
                Some(r) => r.version.to_string(),
                None => anyhow::bail!("{app} has no releases yet: deploy it first"),
            }
        }
    };
    let r: Release = client
        .get(&path(&["apps", app.as_str(), "releases", &which], &[]))
        .await?;
    let config: BTreeMap<String, String> = client
        .get(&path(
            &["apps", app.as_str(), "releases", &which, "config-vars"],
            &[],
        ))
        .await?;
    if json_out {
        print_json(&serde_json::to_value(&r)?);
        return Ok(());
    }
    println!("=== Release v{}", r.version);
    println!("By:      {}", r.user.email);
    println!("Change:  {}", r.description);
    println!("Current: {}", r.current);
    println!("Status:  {}", r.status);
    println!("When:    {}", when_at(r.created_at));
    println!();
    println!("=== v{} Config vars", r.version);
    let width = config.keys().map(|k| k.len() + 1).max().unwrap_or(0);
    for (k, v) in &config {
        println!("{:width$} {v}", format!("{k}:"));
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
    let r: Release = client
        .json(Method::POST, &format!("/apps/{app}/releases"), body)
        .await?;
    println!("Rolling back {app}... done, v{}", r.version);
    println!("{}", r.description);
    Ok(())
}

/// The newest release (`Range: version ..; order=desc, max=1`), as the
/// Heroku CLI reads the version a config change made.
pub async fn newest(client: &Client, app: &AppName) -> Result<Option<Release>> {
    let page: Vec<Release> = client
        .get_with(
            &format!("/apps/{app}/releases"),
            &[("range", "version ..; order=desc, max=1".into())],
        )
        .await?;
    Ok(page.into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;
    use wdyno::api::schema::{Named, User};

    #[test]
    fn releases_read_as_herokus_aligned() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-29T13:30:00Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let r = |v: u64, d: &str, status: &str, current: bool, mins: i64| Release {
            id: String::new(),
            version: v,
            current,
            status: status.into(),
            description: d.into(),
            user: User::of_email("me@localhost"),
            created_at: now - chrono::Duration::minutes(mins),
            updated_at: now,
            slug: None,
            app: Named::fixed("app", "a"),
            addon_plan_names: vec![],
            output_stream_url: None,
            eligible_for_rollback: true,
            process_types: Default::default(),
        };
        let list = vec![
            r(1, "Deploy abc1234", "succeeded", false, 90),
            r(2, "Set FOO config vars", "succeeded", true, 5),
            r(3, "Deploy def5678", "failed", false, 1),
        ];
        assert_eq!(
            releases_text("a", &list, now),
            "=== a Releases - Current: v2\n\n\
             v3  Deploy def5678 (release command failed)  me@localhost  2026/11/29 13:29:00 +0000 (~ 1m ago)\n\
             v2  Set FOO config vars                      me@localhost  2026/11/29 13:25:00 +0000 (~ 5m ago)\n\
             v1  Deploy abc1234                           me@localhost  2026/11/29 12:00:00 +0000 (~ 1h ago)\n"
        );
    }
}
