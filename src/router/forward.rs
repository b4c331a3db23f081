//! How a request reaches a dyno, by the way its `$PORT` is reached: a real
//! port through hyper's pooling client, an in-memory one through the
//! dyno's [`Pool`](super::pool::Pool), a proxy dyno's handler by a call.

use http::{HeaderName, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::body::Capped;
use super::pool::SendError;
use super::wire::AnswerBody;
use super::{Backend, Router};
use crate::placement::DynoAddr;

/// The cluster's token, on a request one host's router hands another's.
pub(super) const PEER_TOKEN: HeaderName = HeaderName::from_static("wdyno-peer-token");
/// The dyno a handed-over request is for.
pub(super) const PEER_DYNO: HeaderName = HeaderName::from_static("wdyno-dyno");

/// Headers the router sets on every request it forwards.
pub(super) const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub(super) const X_REQUEST_START: HeaderName = HeaderName::from_static("x-request-start");
pub(super) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub(super) const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub(super) const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");

/// A dyno's answer: over a connection, or from a proxy dyno's handler.
pub(super) enum Answer {
    Http(Response<Incoming>),
    /// From a dyno whose `$PORT` is in memory: its body reads the pipe.
    Memory(Response<AnswerBody>),
    Handler(Response<crate::dyno::proxy::Body>),
}

/// Why a dyno gave no answer.
pub(super) enum Failed {
    /// It could not be reached (`H19`).
    Connect,
    /// It took the request and closed without answering (`H13`).
    Closed,
    /// The platform could not address it (`H99`).
    Platform,
}

impl Router {
    /// Whether a request on the peer port shows the cluster's token
    /// (compared in constant time).
    pub(super) fn shows_cluster_token(&self, headers: &http::HeaderMap) -> bool {
        let (Some(want), Some(got)) = (self.cfg.peer_token.as_deref(), headers.get(PEER_TOKEN))
        else {
            return false;
        };
        let (want, got) = (want.as_bytes(), got.as_bytes());
        want.len() == got.len() && want.iter().zip(got).fold(0u8, |d, (a, b)| d | (a ^ b)) == 0
    }

    /// Sends the request to the dyno the way its `$PORT` is reached.
    pub(super) async fn send(
        &self,
        backend: &Backend,
        path: &str,
        mut req: Request<Capped>,
    ) -> Result<Answer, Failed> {
        match &backend.addr {
            DynoAddr::Tcp { .. } => {
                let addr = backend.addr.socket_addr().ok_or(Failed::Platform)?;
                *req.uri_mut() = format!("http://{addr}{path}")
                    .parse()
                    .map_err(|_| Failed::Platform)?;
                match self.client.request(req).await {
                    Ok(resp) => Ok(Answer::Http(resp)),
                    Err(e) if e.is_connect() => Err(Failed::Connect),
                    Err(_) => Err(Failed::Closed),
                }
            }
            DynoAddr::Memory(door) => {
                // A request target in origin form (`/path?q`) goes as it
                // is; one in absolute form (a scheme has an authority)
                // gives its authority to `Host` when the client sent none.
                if let Some(authority) = req.uri().authority().cloned() {
                    if !req.headers().contains_key(http::header::HOST) {
                        let host = HeaderValue::from_str(authority.as_str())
                            .map_err(|_| Failed::Platform)?;
                        req.headers_mut().insert(http::header::HOST, host);
                    }
                    *req.uri_mut() = path.parse().map_err(|_| Failed::Platform)?;
                }
                match backend.pool.send(door, req).await {
                    Ok(resp) => Ok(Answer::Memory(resp)),
                    Err(SendError::Connect(_)) => Err(Failed::Connect),
                    Err(SendError::Wire(e)) => {
                        tracing::debug!(dyno = %backend.dyno, "no answer: {e}");
                        Err(Failed::Closed)
                    }
                }
            }
            DynoAddr::Remote { peer, .. } => {
                *req.uri_mut() = format!("http://{peer}{path}")
                    .parse()
                    .map_err(|_| Failed::Platform)?;
                let token = self.cfg.peer_token.as_deref().ok_or(Failed::Platform)?;
                let headers = req.headers_mut();
                headers.insert(
                    PEER_TOKEN,
                    HeaderValue::from_str(token).map_err(|_| Failed::Platform)?,
                );
                headers.insert(
                    PEER_DYNO,
                    HeaderValue::from_str(&backend.dyno).map_err(|_| Failed::Platform)?,
                );
                match self.client.request(req).await {
                    Ok(resp) => Ok(Answer::Http(resp)),
                    Err(e) if e.is_connect() => Err(Failed::Connect),
                    Err(_) => Err(Failed::Closed),
                }
            }
            DynoAddr::Handler { door, .. } => {
                let req = req.map(|b| {
                    b.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string())))
                });
                door.call(req)
                    .await
                    .map(Answer::Handler)
                    .map_err(|_| Failed::Closed)
            }
        }
    }
}
