//! The answers the router gives itself: error pages, refusals.

use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::Body;

pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|e| match e {})
            .boxed_unsync(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    r
}

/// A refusal after which the connection is closed: what follows the head
/// cannot be trusted to be the next request.
pub fn closing(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = text(status, body);
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

pub const ERROR_PAGE: &str = "<!DOCTYPE html><html><head><title>Application Error</title></head><body><h1>Application error</h1><p>An error occurred in the application and your page could not be served. If you are the application owner, check your logs for details: <code>wdyno logs --tail</code></p></body></html>\n";

pub const NO_SUCH_APP: &str = "<!DOCTYPE html><html><head><title>No such app</title></head><body><h1>No such app</h1><p>There is no app at this address. Name one in the Host header: <code>APP.localhost</code>.</p></body></html>\n";

/// The answer to a connection past the router's cap: the error page with
/// 503, then the connection closes (within a second, whatever the client).
pub async fn refuse(mut tcp: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        ERROR_PAGE.len()
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = tcp.write_all(head.as_bytes()).await;
        let _ = tcp.write_all(ERROR_PAGE.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}
