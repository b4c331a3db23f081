//! Log sessions: `POST /apps/A/log-sessions {lines, tail, dyno, source}`
//! answers a `logplex_url`; a GET of it streams the app's lines as
//! server-sent events (one `message` per line), the newest `lines` of the
//! ring and, with `tail`, every new one. The URL is the credential (a
//! client like the `heroku` CLI's EventSource sends no token), so it is
//! random, names one app and filter, and lapses after
//! [`SESSION_LIFETIME`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::{Request, StatusCode, header};
use hyper::body::Incoming;

use super::reply::{ApiError, Reply, events, json_reply, read_body, sse_reply};
use super::schema::{LogSession, LogSessionCreate, id_of};
use crate::logbus::{Event, LOG_RING_LINES, LogFilter, Source};
use crate::names::AppName;
use crate::service::Service;

/// Lines on their way to one reader; past them the reader's place in the
/// bus falls behind (and, when following, counts what it loses).
const PUMP_LINES: usize = 256;
/// Lines `logs` prints without `-n`, as Heroku.
const DEFAULT_LINES: usize = 100;
/// How long a session's URL may be opened after it was made.
pub const SESSION_LIFETIME: Duration = Duration::from_secs(300);

/// What a session's URL streams.
#[derive(Debug, Clone)]
struct Session {
    app: AppName,
    filter: LogFilter,
    lines: usize,
    tail: bool,
    made: Instant,
}

/// The sessions made and not yet lapsed, by their secret.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Session>>);

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.0.lock().expect("log sessions lock poisoned")
    }

    fn add(&self, session: Session) -> String {
        use rand::RngExt;
        let secret: [u8; 24] = rand::rng().random();
        let secret = hex::encode(secret);
        let mut all = self.lock();
        all.retain(|_, s| s.made.elapsed() < SESSION_LIFETIME);
        all.insert(secret.clone(), session);
        secret
    }

    fn get(&self, secret: &str) -> Option<Session> {
        self.lock()
            .get(secret)
            .filter(|s| s.made.elapsed() < SESSION_LIFETIME)
            .cloned()
    }
}

/// `POST /apps/A/log-sessions`.
pub(super) async fn create(
    s: &Service,
    sessions: &Arc<Sessions>,
    app: AppName,
    req: Request<Incoming>,
) -> Reply {
    // The URL names the API as the client reached it.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty() && h.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("127.0.0.1")
        .to_owned();
    let body: LogSessionCreate = read_body(req).await?;
    s.app(&app).await?;
    let mut filter = LogFilter {
        process: body.dyno.clone().or(body.process_type.clone()),
        ..LogFilter::default()
    };
    if let Some(source) = &body.source {
        filter.source = Some(Source::parse(source).ok_or_else(|| {
            ApiError::bad(format!(
                "source {source:?} is neither app (the app's output) nor heroku / wdyno (the platform's lines)"
            ))
        })?);
    }
    let lines = body
        .lines
        .map_or(DEFAULT_LINES, |n| n as usize)
        .min(LOG_RING_LINES);
    let secret = sessions.add(Session {
        app: app.clone(),
        filter,
        lines,
        tail: body.tail.unwrap_or(false),
        made: Instant::now(),
    });
    let now = chrono::Utc::now();
    Ok(json_reply(
        StatusCode::CREATED,
        &LogSession {
            id: id_of(&["log-session", &secret]),
            logplex_url: format!("http://{host}/log-sessions/{secret}"),
            created_at: now,
            updated_at: now,
        },
    ))
}

/// `GET /log-sessions/SECRET`: the session's lines as server-sent events.
pub(super) async fn stream(s: &Arc<Service>, sessions: &Sessions, secret: &str) -> Reply {
    let Some(session) = sessions.get(secret) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such log session, or it lapsed: make a new one with POST /apps/APP/log-sessions",
        ));
    };
    let mut sub = s
        .logs(&session.app, session.filter, session.lines, session.tail)
        .await?;
    // The backlog goes out whole, however slowly the reader reads; while
    // following, a reader that does not keep up loses lines and is told
    // how many of its app's lines, rather than holding anything up.
    let (tx, rx) = tokio::sync::mpsc::channel(PUMP_LINES);
    tokio::spawn(async move {
        while let Some(ev) = sub.next().await {
            let line = match ev {
                Event::Line(l) => l.to_string(),
                Event::Dropped(n) => format!(
                    "{} wdyno[logs]: Error L10 (output buffer overflow): {n} lines dropped: this reader fell behind",
                    chrono::Utc::now().format(crate::logbus::STAMP)
                ),
            };
            if tx.send((None, line)).await.is_err() {
                break;
            }
        }
    });
    Ok(sse_reply(events(rx)))
}
