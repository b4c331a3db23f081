//! The answers the router gives itself: error pages, refusals.

use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use super::Body;

pub fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(
        Full::new(Bytes::from_static(body.as_bytes()))
            .map_err(|e| match e {})
            .boxed(),
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
