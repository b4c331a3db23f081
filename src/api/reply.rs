//! Replies and errors: JSON `{"id": "...", "message": "..."}` with the
//! status that fits, and streamed text replies.

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
            | LedgerError::BuildNotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            LedgerError::AppExists(_) => (StatusCode::CONFLICT, "conflict"),
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

/// A streamed text reply fed by a channel of lines.
pub(super) fn stream_reply(rx: tokio::sync::mpsc::UnboundedReceiver<String>) -> Response<Body> {
    lines_reply(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|line| (line, rx))
    }))
}

/// A streamed text reply: one line per item.
pub(super) fn lines_reply(
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

/// An app name from a path: one that cannot be an app is simply not found.
pub(super) fn app_name(s: &str) -> Result<AppName, ApiError> {
    AppName::parse(s).map_err(|e| ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()))
}
