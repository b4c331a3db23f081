//! A `wasi:http/proxy` app: the platform binds `$PORT` and calls this
//! handler in a fresh instance for every request.

use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let dyno = std::env::var("DYNO").unwrap_or_default();
    match request.uri().path() {
        "/" => Ok(Response::new(format!("Hello from rust-http on {dyno}\n").into())),
        _ => {
            let mut resp = Response::new("not found\n".to_owned().into());
            *resp.status_mut() = StatusCode::NOT_FOUND;
            Ok(resp)
        }
    }
}
