//! `wdyno deploy DIR` and the git pre-receive hook: send the source to the
//! daemon as a tarball and print the build as it streams back.

use std::io::BufRead;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use wdyno::api::Client;
use wdyno::api::schema::{BuildResult, event};
use wdyno::names::AppName;

/// Sends `tar` to the build endpoint; returns 0 if it released.
async fn build(
    client: &Client,
    app: &AppName,
    tar: Vec<u8>,
    source: &str,
    prefix: &str,
) -> Result<i32> {
    let mut outcome: Option<BuildResult> = None;
    client
        .events(
            http::Method::POST,
            &format!("/apps/{app}/builds"),
            hyper::body::Bytes::from(tar),
            &[("x-wdyno-source", source.to_owned())],
            &mut |name, data| match name {
                Some(event::RESULT) => outcome = serde_json::from_str(data).ok(),
                _ => println!("{prefix}{data}"),
            },
        )
        .await?;
    match outcome {
        Some(BuildResult {
            version: Some(_), ..
        }) => Ok(0),
        Some(BuildResult { error, .. }) => {
            let msg = error.unwrap_or_else(|| "the build failed".into());
            for l in msg.lines() {
                println!("{prefix} !     {l}");
            }
            Ok(1)
        }
        None => bail!("the daemon closed the build stream without a result"),
    }
}

pub async fn deploy(home: &Path, app: &AppName, dir: &Path) -> Result<i32> {
    let client = Client::from_home(home)?;
    if !dir.is_dir() {
        bail!("{} is not a directory", dir.display());
    }
    let tar = tar_dir(dir).with_context(|| format!("packing {}", dir.display()))?;
    let commit = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["rev-parse", "--short=7", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    build(&client, app, tar, &commit, "").await
}

/// Tars a source dir: what its `.gitignore` files and `.slugignore` leave
/// out is not even uploaded (see `wdyno::slugignore`).
fn tar_dir(dir: &Path) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    for e in wdyno::slugignore::source_entries(dir)? {
        let path = dir.join(&e.rel);
        if e.is_dir {
            b.append_dir(&e.rel, &path)?;
        } else {
            b.append_path_with_name(&path, &e.rel)?;
        }
    }
    Ok(b.into_inner()?)
}

/// git's pre-receive hook: builds what is pushed to main (or master).
pub async fn pre_receive(home: &Path, app: &AppName) -> Result<i32> {
    let client = Client::from_home(home)?;
    let stdin = std::io::stdin();
    let mut code = 0;
    for line in stdin.lock().lines() {
        let line = line?;
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [_old, new, refname] = parts.as_slice() else {
            continue;
        };
        if *refname != "refs/heads/main" && *refname != "refs/heads/master" {
            println!("-----> Ignoring {refname}: only main (or master) is deployed");
            continue;
        }
        if new.chars().all(|c| c == '0') {
            continue;
        }
        let out = Command::new("git")
            .args(["archive", "--format=tar", new])
            .output()
            .context("running git archive")?;
        if !out.status.success() {
            bail!(
                "git archive {new} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let short = &new[..new.len().min(7)];
        code = build(&client, app, out.stdout, short, "").await?;
        if code != 0 {
            println!(" !     Push rejected, failed to compile app.");
        }
    }
    Ok(code)
}
