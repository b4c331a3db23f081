//! Replies and errors: JSON `{"id": "...", "message": "..."}` with the
//! status that fits, pages of lists, and server-sent event streams.

use std::convert::Infallible;

use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Bytes, Frame, Incoming};
use serde_json::{Value, json};

use crate::ledger::LedgerError;
use crate::manager::ManagerError;
use crate::names::AppName;
use crate::service::ServiceError;

pub(super) type Body = BoxBody<Bytes, Infallible>;
pub(super) type Reply = Result<Response<Body>, ApiError>;

/// Largest body the API reads into memory (source uploads stream to disk).
const MAX_JSON: usize = 1 << 20;

pub struct ApiError {
    pub(super) status: StatusCode,
    pub(super) id: &'static str,
    pub(super) message: String,
}

impl ApiError {
    pub(super) fn new(status: StatusCode, id: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            id,
            message: message.into(),
        }
    }

    pub(super) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_params", message)
    }

    pub(super) fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", message)
    }
}

impl From<LedgerError> for ApiError {
    fn from(e: LedgerError) -> Self {
        let (status, id) = match &e {
            LedgerError::AppNotFound(_)
            | LedgerError::ReleaseNotFound { .. }
            | LedgerError::BuildNotFound { .. }
            | LedgerError::NoSuchDrain { .. } => (StatusCode::NOT_FOUND, "not_found"),
            LedgerError::AppExists(_) | LedgerError::DrainExists { .. } => {
                (StatusCode::CONFLICT, "conflict")
            }
            LedgerError::Storage(_) | LedgerError::Corrupt { .. } | LedgerError::Task(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal_error")
            }
            _ => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_params"),
        };
        ApiError::new(status, id, e.to_string())
    }
}

impl From<ManagerError> for ApiError {
    fn from(e: ManagerError) -> Self {
        match e {
            ManagerError::Ledger(l) => l.into(),
            ManagerError::NoSuchDyno { .. } => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            ManagerError::Capacity(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "capacity_exceeded",
                e.to_string(),
            ),
            other => ApiError::bad(other.to_string()),
        }
    }
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Ledger(l) => l.into(),
            ServiceError::Manager(m) => m.into(),
            ServiceError::Io { .. } => ApiError::internal(e.to_string()),
            other => ApiError::bad(other.to_string()),
        }
    }
}

pub(super) fn json_reply(status: StatusCode, v: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec_pretty(v).expect("API values serialize");
    let mut r = Response::new(Full::new(Bytes::from(body)).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

pub(super) fn ok(v: &impl serde::Serialize) -> Reply {
    Ok(json_reply(StatusCode::OK, v))
}

pub(super) fn error_reply(e: ApiError) -> Response<Body> {
    json_reply(e.status, &json!({"id": e.id, "message": e.message}))
}

/// The events a channel's receiver yields, as a stream.
pub(super) fn unbounded_events(
    rx: tokio::sync::mpsc::UnboundedReceiver<Event>,
) -> impl futures::Stream<Item = Event> + Send + Sync + 'static {
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|ev| (ev, rx)) },
    )
}

/// The events a bounded channel's receiver yields, as a stream.
pub(super) fn events(
    rx: tokio::sync::mpsc::Receiver<Event>,
) -> impl futures::Stream<Item = Event> + Send + Sync + 'static {
    futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|ev| (ev, rx)) },
    )
}

pub(super) async fn read_json(req: Request<Incoming>) -> Result<Value, ApiError> {
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

/// A request body of the API's contract; an empty body reads as `{}`.
pub(super) async fn read_body<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, ApiError> {
    let v = match read_json(req).await? {
        Value::Null => json!({}),
        v => v,
    };
    serde_json::from_value(v).map_err(|e| ApiError::bad(format!("the request body: {e}")))
}

/// An event of a streamed answer: its name (`None`: a plain `message`)
/// and its data.
pub(super) type Event = (Option<&'static str>, String);

/// A server-sent events answer; it ends with the stream. Each line of an
/// event's data is a `data:` field of its own.
pub(super) fn sse_reply(
    events: impl futures::Stream<Item = Event> + Send + Sync + 'static,
) -> Response<Body> {
    use futures::StreamExt;
    let events = events.map(|(name, data)| {
        let mut text = String::with_capacity(data.len() + 24);
        if let Some(name) = name {
            text.push_str("event: ");
            text.push_str(name);
            text.push('\n');
        }
        for line in data.split('\n') {
            text.push_str("data: ");
            text.push_str(line.strip_suffix('\r').unwrap_or(line));
            text.push('\n');
        }
        text.push('\n');
        Ok::<_, Infallible>(Frame::data(Bytes::from(text)))
    });
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(events)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/event-stream"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

/// A page of a list: 206 with `Next-Range` when more follow, else 200.
pub(super) fn page_reply(v: &impl serde::Serialize, next: Option<String>) -> Reply {
    let Some(next) = next else {
        return ok(v);
    };
    let mut r = json_reply(StatusCode::PARTIAL_CONTENT, v);
    if let Ok(value) = header::HeaderValue::from_str(&next) {
        r.headers_mut().insert("next-range", value);
    }
    Ok(r)
}

/// An app name from a path: one that cannot be an app is simply not found.
pub(super) fn app_name(s: &str) -> Result<AppName, ApiError> {
    AppName::parse(s).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))
}
