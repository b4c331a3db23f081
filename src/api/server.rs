//! Routes of the control API. Every request needs `Authorization: Bearer
//! TOKEN` (the token in `$WDYNO_HOME/api-token`); errors are JSON
//! `{"id": "...", "message": "..."}` with the right status.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

use super::RESULT_PREFIX;
use crate::logbus::{Event, Source};
use crate::names::{AppName, ConfigKey, ProcessType};
use crate::platform::Platform;
use crate::release::LedgerError;

type Body = BoxBody<Bytes, Infallible>;
type Reply = Result<Response<Body>, ApiError>;

/// Largest body the API reads into memory (source uploads stream to disk).
const MAX_JSON: usize = 1 << 20;
/// Largest source upload.
const MAX_SOURCE: u64 = 1 << 30;

pub struct ApiError {
    status: StatusCode,
    id: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            id,
            message: message.into(),
        }
    }
    fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", message)
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        let (status, id) = match &e {
            LedgerError::AppNotFound(_) | LedgerError::ReleaseNotFound { .. } => {
                (StatusCode::NOT_FOUND, "not_found")
            }
            LedgerError::AppExists(_) => (StatusCode::CONFLICT, "conflict"),
            LedgerError::Storage(_) | LedgerError::Corrupt { .. } => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_params"),
        };
        ApiError::new(status, id, e.to_string())
    }
}

impl From<crate::manager::ManagerError> for ApiError {
    fn from(e: crate::manager::ManagerError) -> Self {
        match e {
            crate::manager::ManagerError::Ledger(l) => l.into(),
            crate::manager::ManagerError::NoSuchDyno { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            crate::manager::ManagerError::Capacity(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "capacity_exceeded",
                e.to_string(),
            ),
            other => ApiError::bad(other.to_string()),
        }
    }
}

fn json_reply(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec_pretty(v).expect("API values serialize");
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_reply(e: ApiError) -> Response<Body> {
    json_reply(e.status, &json!({"id": e.id, "message": e.message}))
}

/// A streamed text reply fed by a channel of lines.
fn stream_reply(rx: tokio::sync::mpsc::UnboundedReceiver<String>) -> Response<Body> {
    lines_reply(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    }))
}

/// A streamed text reply: one line per item.
fn lines_reply(
    lines: impl futures::Stream<Item = String> + Send + Sync + 'static,
) -> Response<Body> {
    use futures::StreamExt;
    let frames = lines.map(|line| Ok::<_, Infallible>(Frame::data(Bytes::from(line + "\n"))));
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Serves the API until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    platform: Arc<Platform>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let p = platform.clone();
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(tcp),
                    hyper::service::service_fn(move |req| {
                        let p = p.clone();
                        async move { Ok::<_, Infallible>(handle(p, req).await.unwrap_or_else(error_reply)) }
                    }),
                );
                let conn = graceful.watch(conn);
                tokio::spawn(async move { let _ = conn.await; });
            }
            _ = &mut shutdown => break,
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), graceful.shutdown()).await;
}

async fn read_json(req: Request<Incoming>) -> Result<Value, ApiError> {
    let body = http_body_util::Limited::new(req.into_body(), MAX_JSON)
        .collect()
        .await
        .map_err(|e| ApiError::bad(format!("reading the request body: {e}")))?
        .to_bytes();
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("the request body is not valid JSON: {e}")))
}

fn app_name(s: &str) -> Result<AppName, ApiError> {
    AppName::parse(s).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))
}

fn authorized(p: &Platform, req: &Request<Incoming>) -> bool {
    let want = format!("Bearer {}", p.token);
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|got| constant_time_eq(got.as_bytes(), want.as_bytes()))
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn handle(p: Arc<Platform>, req: Request<Incoming>) -> Reply {
    if !authorized(&p, &req) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Invalid credentials provided: send the token in $WDYNO_HOME/api-token as `Authorization: Bearer TOKEN`",
        ));
    }
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    // Each segment percent-decoded (`web%201` is the dyno name `web 1`).
    let decoded: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|seg| {
            percent_encoding::percent_decode_str(seg)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let method = req.method().clone();
    match (&method, parts.as_slice()) {
        (&Method::GET, ["hosts"]) => Ok(json_reply(
            StatusCode::OK,
            &json!([{
                "name": p.host_name(),
                "state": "up",
                "heartbeat_at": chrono::Utc::now(),
                "capacity": p.manager.capacity(),
            }]),
        )),
        (&Method::GET, ["apps"]) => {
            let apps = p.ledger.apps()?;
            Ok(json_reply(StatusCode::OK, &apps))
        }
        (&Method::POST, ["apps"]) => {
            let body = read_json(req).await?;
            let name = body["name"]
                .as_str()
                .ok_or_else(|| ApiError::bad("expected {\"name\": \"APP\"}"))?;
            let name = AppName::parse(name).map_err(|e| ApiError::bad(e.to_string()))?;
            let app = p.ledger.create_app(&name)?;
            p.app_created(&app.name);
            Ok(json_reply(StatusCode::CREATED, &app))
        }
        (&Method::GET, ["apps", app]) => {
            Ok(json_reply(StatusCode::OK, &p.ledger.app(&app_name(app)?)?))
        }
        (&Method::PATCH, ["apps", app]) => {
            let app = app_name(app)?;
            let body = read_json(req).await?;
            let packs: Vec<String> = match body.get("buildpacks") {
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                _ => {
                    return Err(ApiError::bad(
                        "expected {\"buildpacks\": [\"rust\" | \"js\" | \"wasm\" | \"/path\", …]}",
                    ));
                }
            };
            crate::buildpack::resolve(&p.home.join("buildpacks"), &packs)
                .map_err(|e| ApiError::bad(e.to_string()))?;
            Ok(json_reply(
                StatusCode::OK,
                &p.ledger.set_buildpacks(&app, &packs)?,
            ))
        }
        (&Method::DELETE, ["apps", app]) => {
            let app = app_name(app)?;
            p.ledger.app(&app)?;
            p.manager.remove_app(&app).await;
            p.ledger.destroy_app(&app)?;
            p.bus.forget(app.as_str());
            let _ = std::fs::remove_dir_all(p.home.join("repos").join(format!("{app}.git")));
            p.builder.forget_cache(&app);
            Ok(json_reply(StatusCode::OK, &json!({"name": app})))
        }
        (&Method::GET, ["apps", app, "releases"]) => Ok(json_reply(
            StatusCode::OK,
            &p.ledger.releases(&app_name(app)?)?,
        )),
        (&Method::POST, ["apps", app, "releases"]) => {
            let app = app_name(app)?;
            let body = read_json(req).await?;
            let target = match body["release"].as_str() {
                Some(v) => v
                    .trim_start_matches('v')
                    .parse::<u64>()
                    .map_err(|_| ApiError::bad(format!("{v:?} is not a release version (vN)")))?,
                // No version: the release before the current one.
                None => previous_release(&p, &app)?,
            };
            let release = p.ledger.rollback(&app, target)?;
            p.manager.converge(&app).await?;
            Ok(json_reply(StatusCode::CREATED, &release))
        }
        (&Method::GET, ["apps", app, "config-vars"]) => Ok(json_reply(
            StatusCode::OK,
            &p.ledger.current(&app_name(app)?)?.config,
        )),
        (&Method::PATCH, ["apps", app, "config-vars"]) => {
            let app = app_name(app)?;
            let body = read_json(req).await?;
            let obj = body.as_object().ok_or_else(|| {
                ApiError::bad("expected a JSON object of KEY: value (null unsets)")
            })?;
            let mut set = BTreeMap::new();
            let mut unset = Vec::new();
            for (k, v) in obj {
                let key = ConfigKey::parse(k).map_err(|e| ApiError::bad(e.to_string()))?;
                match v {
                    Value::Null => unset.push(key),
                    Value::String(s) => {
                        set.insert(key, s.clone());
                    }
                    other => {
                        set.insert(key, other.to_string());
                    }
                }
            }
            let release = p.ledger.set_config(&app, &set, &unset)?;
            p.manager.converge(&app).await?;
            Ok(json_reply(StatusCode::OK, &release))
        }
        (&Method::GET, ["apps", app, "formation"]) => Ok(json_reply(
            StatusCode::OK,
            &p.ledger.formation(&app_name(app)?)?,
        )),
        (&Method::PATCH, ["apps", app, "formation"]) => {
            let app = app_name(app)?;
            let body = read_json(req).await?;
            let obj = body
                .as_object()
                .ok_or_else(|| ApiError::bad("expected {\"TYPE\": quantity, …}"))?;
            let mut changes = BTreeMap::new();
            for (k, v) in obj {
                let ty = ProcessType::parse(k).map_err(|e| ApiError::bad(e.to_string()))?;
                let n = v.as_u64().filter(|n| *n <= 10_000).ok_or_else(|| {
                    ApiError::bad(format!(
                        "{k}: quantity must be a whole number from 0 to 10000"
                    ))
                })?;
                changes.insert(ty, n as u32);
            }
            let formation = p.manager.scale(&app, &changes).await?;
            Ok(json_reply(StatusCode::OK, &formation))
        }
        (&Method::GET, ["apps", app, "dynos"]) => {
            let app = app_name(app)?;
            p.ledger.app(&app)?;
            Ok(json_reply(StatusCode::OK, &p.manager.ps(&app)))
        }
        (&Method::DELETE, ["apps", app, "dynos"]) => {
            let app = app_name(app)?;
            let n = p.manager.restart(&app, None).await?;
            Ok(json_reply(StatusCode::OK, &json!({"restarted": n})))
        }
        (&Method::DELETE, ["apps", app, "dynos", which]) => {
            let app = app_name(app)?;
            let n = p.manager.restart(&app, Some(which)).await?;
            Ok(json_reply(StatusCode::OK, &json!({"restarted": n})))
        }
        (&Method::POST, ["apps", app, "dynos", dyno, "actions", "stop"]) => {
            let app = app_name(app)?;
            p.manager.stop_dyno(&app, dyno)?;
            Ok(json_reply(StatusCode::OK, &json!({"stopped": dyno})))
        }
        (&Method::GET, ["apps", app, "builds"]) => Ok(json_reply(
            StatusCode::OK,
            &p.ledger.builds(&app_name(app)?)?,
        )),
        (&Method::POST, ["apps", app, "builds"]) => {
            let app = app_name(app)?;
            p.ledger.app(&app)?;
            let source_desc = req
                .headers()
                .get("x-wdyno-source")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "._-".contains(*c))
                .take(40)
                .collect::<String>();
            let dir = receive_source(&p, req).await?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let p2 = p.clone();
            tokio::spawn(async move {
                let result = p2
                    .builder
                    .deploy(&app, dir.path(), &source_desc, tx.clone())
                    .await;
                let last = match result {
                    Ok(r) => format!("{RESULT_PREFIX}ok v{}", r.version),
                    // One line: the message, JSON-quoted (it may span lines).
                    Err(e) => format!("{RESULT_PREFIX}error {}", Value::String(e.to_string())),
                };
                let _ = tx.send(last);
                drop(dir);
            });
            Ok(stream_reply(rx))
        }
        (&Method::POST, ["apps", app, "dynos"]) => {
            let app = app_name(app)?;
            let body = read_json(req).await?;
            let command = body["command"]
                .as_str()
                .ok_or_else(|| ApiError::bad("expected {\"command\": \"bin/task args\"}"))?;
            let release = p.ledger.current(&app)?;
            let dyno = p
                .manager
                .run_one_off(&app, &release, "run", command, None)
                .await?;
            Ok(json_reply(
                StatusCode::CREATED,
                &json!({"name": dyno.name()}),
            ))
        }
        (&Method::POST, ["apps", app, "dynos", "attach"]) => {
            let app = app_name(app)?;
            attach(p, app, req).await
        }
        (&Method::GET, ["apps", app, "log-stream"]) => {
            let app = app_name(app)?;
            p.ledger.app(&app)?;
            Ok(log_stream(&p, app, &query))
        }
        (&Method::POST, ["apps", app, "git"]) => {
            let app = app_name(app)?;
            p.ledger.app(&app)?;
            let repo = crate::git::ensure_repo(&p.home, &app).map_err(|e| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    e.to_string(),
                )
            })?;
            Ok(json_reply(
                StatusCode::OK,
                &json!({"url": repo.display().to_string()}),
            ))
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such endpoint: {method} {path}"),
        )),
    }
}

fn previous_release(p: &Platform, app: &AppName) -> Result<u64, ApiError> {
    let current = p.ledger.current(app)?.version;
    p.ledger
        .releases(app)?
        .iter()
        .rev()
        .find(|r| r.version < current && r.status == crate::release::Status::Succeeded)
        .map(|r| r.version)
        .ok_or_else(|| ApiError::bad("there is no earlier release to roll back to"))
}

/// Writes an uploaded tarball of an app's source into a fresh temp dir.
async fn receive_source(
    p: &Platform,
    req: Request<Incoming>,
) -> Result<tempfile::TempDir, ApiError> {
    let internal = |e: std::io::Error| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            e.to_string(),
        )
    };
    let builds = p.home.join("builds");
    std::fs::create_dir_all(&builds).map_err(internal)?;
    let dir = tempfile::Builder::new()
        .prefix("source-")
        .tempdir_in(&builds)
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
    let src = dir.path().join("src");
    let (tar_path2, src2) = (tar_path.clone(), src.clone());
    tokio::task::spawn_blocking(move || {
        std::fs::create_dir(&src2)?;
        let mut archive = tar::Archive::new(std::fs::File::open(&tar_path2)?);
        archive.set_preserve_permissions(true);
        // `unpack` refuses entries that would land outside `src2`.
        archive.unpack(&src2)?;
        std::fs::remove_file(&tar_path2)
    })
    .await
    .map_err(|e| internal(std::io::Error::other(e.to_string())))?
    .map_err(|e| {
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
    // The build reads `dir/src`; return a TempDir rooted there.
    let inner = tempfile::Builder::new()
        .prefix("app-")
        .tempdir_in(&builds)
        .map_err(internal)?;
    std::fs::remove_dir(inner.path()).map_err(internal)?;
    std::fs::rename(&src, inner.path()).map_err(internal)?;
    Ok(inner)
}

/// `logs`: the last N lines, then (with `tail=1`) new ones as they come.
fn log_stream(p: &Platform, app: AppName, query: &str) -> Response<Body> {
    let mut lines = 100usize;
    let mut tail = false;
    let mut ps: Option<String> = None;
    let mut source: Option<Source> = None;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "lines" => lines = v.parse().unwrap_or(100).min(crate::logbus::LOG_RING_LINES),
            "tail" => tail = v == "1" || v == "true",
            "dyno" | "ps" => ps = Some(v.into_owned()),
            "source" => source = Source::parse(&v),
            _ => {}
        }
    }
    let matches_app = app.to_string();
    let matches = move |l: &crate::logbus::LogLine| {
        l.app == app.as_str()
            && source.is_none_or(|s| s == l.source)
            && ps.as_deref().is_none_or(|ps| {
                if ps.contains('.') {
                    l.process == ps
                } else {
                    l.process.split('.').next() == Some(ps)
                }
            })
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<String>(TAIL_BACKLOG);
    let mut sub = p.bus.subscribe();
    let recent: Vec<_> = p
        .bus
        .recent(&matches_app, usize::MAX)
        .into_iter()
        .filter(|l| matches(l))
        .collect();
    for l in recent.iter().skip(recent.len().saturating_sub(lines)) {
        let _ = tx.try_send(l.to_string());
    }
    if tail {
        tokio::spawn(async move {
            // A reader that does not keep up loses lines, and is told how
            // many, rather than holding anything up.
            let mut dropped = 0u64;
            while let Some(ev) = sub.next().await {
                let text = match ev {
                    Event::Line(l) if matches(&l) => l.to_string(),
                    Event::Line(_) => continue,
                    Event::Dropped(n) => {
                        dropped += n;
                        continue;
                    }
                };
                if dropped > 0 && tx.try_send(format!("… {dropped} lines dropped")).is_ok() {
                    dropped = 0;
                }
                match tx.try_send(text) {
                    Ok(()) => {}
                    Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => dropped += 1,
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break,
                }
            }
        });
    }
    lines_reply(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    }))
}

/// `wdyno run`: a one-off dyno whose stdin is the request body and whose
/// stdout/stderr lines are the response, ended by `wdyno-exit: STATUS`.
async fn attach(p: Arc<Platform>, app: AppName, req: Request<Incoming>) -> Reply {
    let command = req
        .headers()
        .get("x-wdyno-command")
        .and_then(|v| v.to_str().ok())
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad("expected the command, hex-encoded, in x-wdyno-command"))?;
    let release = p.ledger.current(&app)?;
    // Subscribed before the dyno starts, so no line is missed.
    let mut sub = p.bus.subscribe();
    let (mut to_guest, from_client) = tokio::io::duplex(64 * 1024);
    let stdin = crate::dyno::output::AttachedStdin::new(from_client);
    let dyno = p
        .manager
        .run_one_off(&app, &release, "run", &command, Some(stdin))
        .await?;
    let mut body = req.into_body();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref()
                && to_guest.write_all(data).await.is_err()
            {
                break;
            }
        }
        // End of the client's stdin: the guest reads EOF.
        let _ = to_guest.shutdown().await;
    });
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let name = dyno.name().to_owned();
    let _ = tx.send(format!("Running {command} on {app}... up, {name}"));
    tokio::spawn(async move {
        let app = app.to_string();
        while let Some(ev) = sub.next().await {
            let Event::Line(l) = ev else { continue };
            if l.app != app || l.process != name {
                continue;
            }
            match l.source {
                Source::App => {
                    if tx.send(l.text.clone()).is_err() {
                        break;
                    }
                }
                // The final state line comes after every output line.
                Source::Wdyno
                    if l.text.ends_with(" to down") || l.text.ends_with(" to crashed") =>
                {
                    break;
                }
                Source::Wdyno => {}
            }
        }
        let exit = dyno.wait().await;
        let _ = tx.send(format!("{}{}", super::EXIT_PREFIX, exit.status));
    });
    Ok(stream_reply(rx))
}

/// Lines a `logs --tail` reader may fall behind before it loses some.
const TAIL_BACKLOG: usize = 1024;
