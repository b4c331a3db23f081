//! `/apps/A/dynos`: `ps`, `ps:restart`, `ps:stop`, `run` (detached and
//! attached).

use http::{Request, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use super::present;
use super::reply::{ApiError, Reply, json_reply, ok, read_body, sse_reply, unbounded_events};
use super::schema::{self, DynoCreate, event};
use crate::names::AppName;
use crate::service::{AttachedEvent, Service};

/// The app's dynos now, formation and one-off.
async fn all(s: &Service, app: &AppName) -> Result<Vec<schema::Dyno>, ApiError> {
    let record = s.app(app).await?;
    Ok(s.ps(app)
        .await?
        .iter()
        .map(|d| present::dyno(&record, d))
        .collect())
}

/// `GET /apps/A/dynos`.
pub(super) async fn list(s: &Service, app: AppName) -> Reply {
    ok(&all(s, &app).await?)
}

/// `GET /apps/A/dynos/NAME`.
pub(super) async fn info(s: &Service, app: AppName, name: &str) -> Reply {
    match all(s, &app).await?.into_iter().find(|d| d.name == name) {
        Some(d) => ok(&d),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{app} has no dyno {name}: run `wdyno ps -a {app}` to list them"),
        )),
    }
}

pub(super) async fn restart(s: &Service, app: AppName, which: Option<&str>) -> Reply {
    let n = s.restart(&app, which).await?;
    ok(&json!({"restarted": n}))
}

pub(super) async fn stop(s: &Service, app: AppName, dyno: &str) -> Reply {
    s.stop(&app, dyno).await?;
    ok(&json!({"stopped": dyno}))
}

/// `POST /apps/A/dynos {"command": "bin/task args"}`: a detached one-off
/// dyno (`run:detached`); the answer is the dyno.
pub(super) async fn run(s: &Service, app: AppName, req: Request<Incoming>) -> Reply {
    let body: DynoCreate = read_body(req)
        .await
        .map_err(|_| ApiError::bad("expected {\"command\": \"bin/task args\"}"))?;
    if body.attach == Some(true) {
        return Err(ApiError::bad(
            "wdyno does not speak Heroku's rendezvous protocol for attached one-off dynos: \
             use `heroku run:detached` and `heroku logs --tail`, or `wdyno run` for an attached session",
        ));
    }
    let env = body.env.clone().unwrap_or_default();
    let name = s.run_detached(&app, &body.command, &env).await?;
    match all(s, &app).await?.into_iter().find(|d| d.name == name) {
        Some(d) => Ok(json_reply(StatusCode::CREATED, &d)),
        // It has ended already: say so with what is known.
        None => Ok(json_reply(
            StatusCode::CREATED,
            &json!({"name": name, "state": "down", "command": body.command, "type": "run"}),
        )),
    }
}

/// `wdyno run`: a one-off dyno whose stdin is the request body. The
/// answer streams its output as `line` events, then an `exit` event with
/// its status. When the client goes away the dyno is stopped.
pub(super) async fn attach(
    s: std::sync::Arc<Service>,
    app: AppName,
    req: Request<Incoming>,
) -> Reply {
    let command = req
        .headers()
        .get("x-wdyno-command")
        .and_then(|v| v.to_str().ok())
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| ApiError::bad("expected the command, hex-encoded, in x-wdyno-command"))?;
    let attached = s.attach(&app, &command).await?;
    let (mut to_guest, mut events, name) = (attached.stdin, attached.events, attached.name);
    let mut body = req.into_body();
    // Cancelled when the client's side of the request breaks off (it sent
    // no end of its stdin): the client has gone.
    let gone = tokio_util::sync::CancellationToken::new();
    let client_gone = gone.clone();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        loop {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref()
                        && to_guest.write_all(data).await.is_err()
                    {
                        break;
                    }
                }
                Some(Err(_)) => {
                    client_gone.cancel();
                    break;
                }
                None => break,
            }
        }
        // End of the client's stdin: the guest reads EOF.
        let _ = to_guest.shutdown().await;
    });
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let _ = tx.send((
        Some(event::LINE),
        format!("Running {command} on {app}... up, {name}"),
    ));
    tokio::spawn(async move {
        let client_left = loop {
            tokio::select! {
                ev = events.recv() => {
                    let ev = match ev {
                        Some(AttachedEvent::Line(text)) => (Some(event::LINE), text),
                        Some(AttachedEvent::Exit(status)) => (Some(event::EXIT), status.to_string()),
                        None => break false,
                    };
                    if tx.send(ev).is_err() {
                        break true;
                    }
                }
                () = tx.closed() => break true,
                () = gone.cancelled() => break true,
            }
        };
        // The client went away (Ctrl-C, a dropped connection): a one-off
        // nobody is attached to has no one to answer to.
        if client_left {
            tracing::info!("{app}: the client of {name} went away; stopping it");
            let _ = s.stop(&app, &name).await;
        }
    });
    Ok(sse_reply(unbounded_events(rx)))
}
