//! `/apps/A/releases`, `/config-vars` and `/builds`: everything that adds
//! a release.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::present::{self, Site, release_id};
use super::reply::{
    ApiError, Reply, json_reply, ok, page_reply, read_body, read_json, sse_reply, unbounded_events,
};
use super::schema::{self, BuildResult, Quantity, Range, ReleaseCreate, event};
use crate::ledger::App;
use crate::names::{AppName, ConfigKey};
use crate::release::Release;
use crate::service::Service;

/// Largest source upload.
const MAX_SOURCE: u64 = 1 << 30;

/// `GET /apps/A/releases`: oldest first, or a page as the `Range` header
/// asks (`version ..; order=desc, max=N`).
pub(super) async fn list(s: &Service, site: &Site, app: AppName, range: Option<Range>) -> Reply {
    let app = s.app(&app).await?;
    let current = s.current(&app.name).await?.version;
    let all: Vec<schema::Release> = s
        .releases(&app.name)
        .await?
        .iter()
        .map(|r| site.release(&app, r, current))
        .collect();
    match range {
        Some(range) => {
            let (page, next) = range.page(&all, |r| r.version);
            page_reply(&page, next)
        }
        None => ok(&all),
    }
}

/// The release a path segment names: its version (`3`, `v3`) or its id.
async fn find(s: &Service, app: &App, segment: &str) -> Result<Release, ApiError> {
    if let Ok(v) = segment.trim_start_matches('v').parse::<u64>() {
        return Ok(s.release(&app.name, v).await?);
    }
    s.releases(&app.name)
        .await?
        .into_iter()
        .find(|r| release_id(app, r.version) == segment)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "{} has no release {segment}. Run `wdyno releases -a {}` to list them.",
                    app.name, app.name
                ),
            )
        })
}

/// `GET /apps/A/releases/{id_or_version}`.
pub(super) async fn info(s: &Service, site: &Site, app: AppName, segment: &str) -> Reply {
    let app = s.app(&app).await?;
    let release = find(s, &app, segment).await?;
    let current = s.current(&app.name).await?.version;
    ok(&site.release(&app, &release, current))
}

/// `GET /apps/A/releases/{id_or_version}/config-vars`.
pub(super) async fn config_of(s: &Service, app: AppName, segment: &str) -> Reply {
    let app = s.app(&app).await?;
    ok(&find(s, &app, segment).await?.config)
}

/// `POST /apps/A/releases {"release": id_or_version}`: a rollback.
pub(super) async fn rollback(
    s: &Service,
    site: &Site,
    app: AppName,
    req: Request<Incoming>,
) -> Reply {
    let body: ReleaseCreate = read_body(req).await?;
    let app = s.app(&app).await?;
    let target = match &body.release {
        Some(Quantity::Count(v)) => Some(*v),
        Some(Quantity::Text(t)) => Some(find(s, &app, t).await?.version),
        // No release named: the one before the current.
        None => None,
    };
    let release = s.rollback(&app.name, target).await?;
    Ok(json_reply(
        StatusCode::CREATED,
        &site.release(&app, &release, release.version),
    ))
}

/// `PATCH /apps/A/config-vars {"KEY": "value", "OLD": null}`: one
/// release; the answer is the new config vars, as Heroku's.
pub(super) async fn set_config(s: &Service, app: AppName, req: Request<Incoming>) -> Reply {
    let body = read_json(req).await?;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad("expected a JSON object of KEY: value (null unsets)"))?;
    let mut set = BTreeMap::new();
    let mut unset = Vec::new();
    for (k, v) in obj {
        let key = ConfigKey::parse(k).map_err(|e| ApiError::bad(e.to_string()))?;
        match v {
            Value::Null => unset.push(key),
            Value::String(text) => {
                set.insert(key, text.clone());
            }
            other => {
                set.insert(key, other.to_string());
            }
        }
    }
    ok(&s.set_config(&app, &set, &unset).await?.config)
}

/// `GET /apps/A/builds`, oldest first.
pub(super) async fn builds(s: &Service, app: AppName) -> Reply {
    let app = s.app(&app).await?;
    let list: Vec<schema::Build> = s
        .builds(&app.name)
        .await?
        .iter()
        .map(|b| present::build(&app, b))
        .collect();
    ok(&list)
}

/// `POST /apps/A/builds`: the body is a tar of the source; the answer
/// streams the build's output as `line` events and ends with a `result`
/// event ([`schema::BuildResult`]).
pub(super) async fn build(s: Arc<Service>, app: AppName, req: Request<Incoming>) -> Reply {
    s.app(&app).await?;
    let source_desc = req
        .headers()
        .get("x-wdyno-source")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
        .take(40)
        .collect::<String>();
    let dir = receive_source(s.builds_dir(), req).await?;
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel::<String>();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, mut done) = tokio::sync::oneshot::channel::<BuildResult>();
    tokio::spawn(async move {
        let result = s.deploy(&app, dir.path(), &source_desc, lines_tx).await;
        let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
        let _ = done_tx.send(match result {
            Ok(r) => BuildResult {
                version: Some(r.version),
                error: None,
            },
            Err(e) => BuildResult {
                version: None,
                error: Some(e.to_string()),
            },
        });
    });
    tokio::spawn(async move {
        let result = loop {
            tokio::select! {
                biased;
                Some(line) = lines.recv() => {
                    let _ = tx.send((Some(event::LINE), line));
                }
                result = &mut done => break result,
            }
        };
        // The deploy has returned: every line it said is queued.
        while let Ok(line) = lines.try_recv() {
            let _ = tx.send((Some(event::LINE), line));
        }
        let result = result.unwrap_or(BuildResult {
            version: None,
            error: Some("the build's task ended without a result".into()),
        });
        let _ = tx.send((
            Some(event::RESULT),
            serde_json::to_string(&result).expect("a result serializes"),
        ));
    });
    Ok(sse_reply(unbounded_events(rx)))
}

/// Writes an uploaded tarball of an app's source into a fresh temp dir
/// under `builds`, and unpacks it there.
async fn receive_source(
    builds: std::path::PathBuf,
    req: Request<Incoming>,
) -> Result<tempfile::TempDir, ApiError> {
    let internal = |e: std::io::Error| ApiError::internal(e.to_string());
    tokio::fs::create_dir_all(&builds).await.map_err(internal)?;
    let b = builds.clone();
    let dir = tokio::task::spawn_blocking(move || {
        tempfile::Builder::new().prefix("source-").tempdir_in(&b)
    })
    .await
    .map_err(|e| internal(std::io::Error::other(e.to_string())))?
    .map_err(internal)?;
    let tar_path = dir.path().join("source.tar");
    let mut file = tokio::fs::File::create(&tar_path).await.map_err(internal)?;
    let mut body = req.into_body();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| ApiError::bad(format!("reading the upload: {e}")))?;
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
            if total > MAX_SOURCE {
                return Err(ApiError::bad("the source is over 1 GiB"));
            }
            tokio::io::AsyncWriteExt::write_all(&mut file, data)
                .await
                .map_err(internal)?;
        }
    }
    // tokio's File writes in the background: without this the last
    // chunk may not be on disk when the tarball is read.
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(internal)?;
    drop(file);
    tokio::task::spawn_blocking(move || unpack_source(dir, &builds))
        .await
        .map_err(|e| internal(std::io::Error::other(e.to_string())))?
}

/// Unpacks `dir/source.tar` and returns a temp dir holding just the source.
fn unpack_source(
    dir: tempfile::TempDir,
    builds: &std::path::Path,
) -> Result<tempfile::TempDir, ApiError> {
    let internal = |e: std::io::Error| ApiError::internal(e.to_string());
    let tar_path = dir.path().join("source.tar");
    let src = dir.path().join("src");
    let unpacked = (|| {
        std::fs::create_dir(&src)?;
        let mut archive = tar::Archive::new(std::fs::File::open(&tar_path)?);
        archive.set_preserve_permissions(true);
        // `unpack` refuses entries that would land outside `src`.
        archive.unpack(&src)?;
        std::fs::remove_file(&tar_path)
    })();
    unpacked.map_err(|e| {
        let mut why = e.to_string();
        let mut cause = std::error::Error::source(&e);
        while let Some(c) = cause {
            why.push_str(&format!(": {c}"));
            cause = c.source();
        }
        ApiError::bad(format!(
            "the upload is not a readable tar of the source: {why}"
        ))
    })?;
    let inner = tempfile::Builder::new()
        .prefix("app-")
        .tempdir_in(builds)
        .map_err(internal)?;
    std::fs::remove_dir(inner.path()).map_err(internal)?;
    std::fs::rename(&src, inner.path()).map_err(internal)?;
    Ok(inner)
}
