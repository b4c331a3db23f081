//! `/apps/A/dynos`: `ps`, `ps:restart`, `run` (detached and attached).

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use super::EXIT_PREFIX;
use super::reply::{ApiError, Reply, json_reply, ok, read_json, stream_reply};
use crate::names::AppName;
use crate::service::{AttachedEvent, Service};

pub(super) async fn restart(s: &Service, app: AppName, which: Option<&str>) -> Reply {
    let n = s.restart(&app, which).await?;
    ok(&json!({"restarted": n}))
}

/// `run:detached`: `{"command": "bin/task args"}` → `{"name": "run.N"}`.
pub(super) async fn run(s: &Service, app: AppName, req: Request<Incoming>) -> Reply {
    let body = read_json(req).await?;
    let command = body["command"]
        .as_str()
        .ok_or_else(|| ApiError::bad("expected {\"command\": \"bin/task args\"}"))?;
    let name = s.run_detached(&app, command).await?;
    Ok(json_reply(StatusCode::CREATED, &json!({"name": name})))
}

/// `wdyno run`: a one-off dyno whose stdin is the request body and whose
/// stdout/stderr lines are the response, ended by `wdyno-exit: STATUS`.
pub(super) async fn attach(s: &Service, app: AppName, req: Request<Incoming>) -> Reply {
    let command = req
        .headers()
        .get("x-wdyno-command")
        .and_then(|v| v.to_str().ok())
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad("expected the command, hex-encoded, in x-wdyno-command"))?;
    let attached = s.attach(&app, &command).await?;
    let (mut to_guest, mut events) = (attached.stdin, attached.events);
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
    let _ = tx.send(format!(
        "Running {command} on {app}... up, {}",
        attached.name
    ));
    tokio::spawn(async move {
        while let Some(ev) = events.recv().await {
            let line = match ev {
                AttachedEvent::Line(text) => text,
                AttachedEvent::Exit(status) => format!("{EXIT_PREFIX}{status}"),
            };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Ok(stream_reply(rx))
}
