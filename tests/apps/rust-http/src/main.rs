//! A `wasi:http/proxy` app: the platform owns `$PORT` and calls this
//! handler in a fresh instance per request.

use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let dyno = std::env::var("DYNO").unwrap_or_default();
    match request.uri().path() {
        "/" => Ok(Response::new(format!("hello from rust-http {dyno}").into())),
        "/env" => {
            let mut vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}\n")).collect();
            vars.sort();
            Ok(Response::new(vars.concat().into()))
        }
        _ => {
            let mut resp = Response::new("not found\n".to_owned().into());
            *resp.status_mut() = StatusCode::NOT_FOUND;
            Ok(resp)
        }
    }
}
