//! `/apps/A/releases`, `/config-vars` and `/builds`: everything that adds
//! a release.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::Value;

use super::RESULT_PREFIX;
use super::reply::{ApiError, Reply, json_reply, ok, read_json, stream_reply};
use crate::names::{AppName, ConfigKey};
use crate::service::Service;

/// Largest source upload.
const MAX_SOURCE: u64 = 1 << 30;

pub(super) async fn rollback(s: &Service, app: AppName, req: Request<Incoming>) -> Reply {
    let body = read_json(req).await?;
    let target = match body["release"].as_str() {
        Some(v) => Some(
            v.trim_start_matches('v')
                .parse::<u64>()
                .map_err(|_| ApiError::bad(format!("{v:?} is not a release version (vN)")))?,
        ),
        // No version: the release before the current one.
        None => None,
    };
    Ok(json_reply(
        StatusCode::CREATED,
        &s.rollback(&app, target).await?,
    ))
}

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
    ok(&s.set_config(&app, &set, &unset).await?)
}

/// `POST /apps/A/builds`: the body is a tar of the source; the reply
/// streams the build's output and ends with `wdyno-result: ok vN` or
/// `wdyno-result: error "MESSAGE"`.
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
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let result = s.deploy(&app, dir.path(), &source_desc, tx.clone()).await;
        let last = match result {
            Ok(r) => format!("{RESULT_PREFIX}ok v{}", r.version),
            // One line: the message, JSON-quoted (it may span lines).
            Err(e) => format!("{RESULT_PREFIX}error {}", Value::String(e.to_string())),
        };
        let _ = tx.send(last);
        let _ = tokio::task::spawn_blocking(move || drop(dir)).await;
    });
    Ok(stream_reply(rx))
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
