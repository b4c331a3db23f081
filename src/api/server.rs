//! Serving the API: connections (at most [`super::MAX_CONNECTIONS`] at
//! once), the bearer token, and the table of routes. Every request needs
//! `Authorization: Bearer TOKEN` (the token in `$WDYNO_HOME/api-token`).

use std::convert::Infallible;
use std::sync::Arc;

use http::{Method, Request, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::logs::Sessions;
use super::present::Site;
use super::reply::{ApiError, Reply, app_name, error_reply, ok};
use super::schema::{self, Range};
use super::{apps, dashboard, dynos, formation, logs, releases, visibility};
use crate::service::Service;

/// What the handlers share: the service layer, the token, what the API
/// adds to records, and the open log sessions.
#[derive(Clone)]
pub struct Api {
    pub(super) service: Arc<Service>,
    token: Arc<str>,
    site: Arc<Site>,
    sessions: Arc<Sessions>,
}

impl Api {
    pub fn new(service: Arc<Service>, token: String, site: Site) -> Self {
        Api {
            service,
            token: token.into(),
            site: Arc::new(site),
            sessions: Arc::default(),
        }
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let want = format!("Bearer {}", self.token);
        req.headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|got| constant_time_eq(got.as_bytes(), want.as_bytes()))
    }
}

pub(super) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Serves the API until `shutdown` resolves, at most `max_connections`
/// connections at once: past that a client is answered 503 and closed.
pub async fn serve(
    listener: TcpListener,
    api: Api,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let open = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let Ok(permit) = open.clone().try_acquire_owned() else {
                    tracing::warn!("API connection refused: {max_connections} open (the cap)");
                    tokio::spawn(refuse(tcp, max_connections));
                    continue;
                };
                let api = api.clone();
                let conn = hyper::server::conn::http1::Builder::new().serve_connection(
                    TokioIo::new(tcp),
                    hyper::service::service_fn(move |req| {
                        let api = api.clone();
                        async move { Ok::<_, Infallible>(handle(api, req).await.unwrap_or_else(error_reply)) }
                    }),
                );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                    drop(permit);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), graceful.shutdown()).await;
}

/// The answer past the connection cap: one 503, then the socket closes.
async fn refuse(mut tcp: tokio::net::TcpStream, cap: usize) {
    use tokio::io::AsyncWriteExt;
    let body = format!(
        "{{\"id\":\"unavailable\",\"message\":\"The API has {cap} connections open, its limit: close some and try again.\"}}"
    );
    let reply = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        let _ = tcp.write_all(reply.as_bytes()).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}

async fn handle(api: Api, req: Request<Incoming>) -> Reply {
    let path = req.uri().path().trim_end_matches('/').to_owned();
    // Each segment percent-decoded (`web%201` is the dyno name `web 1`).
    let decoded: Vec<String> = path
        .split('/')
        .skip(1)
        .map(|seg| {
            percent_encoding::percent_decode_str(seg)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let parts: Vec<&str> = decoded.iter().map(String::as_str).collect();
    let method = req.method().clone();
    let s = &api.service;
    // A log session's URL is its own credential.
    if let (&Method::GET, ["log-sessions", secret]) = (&method, parts.as_slice()) {
        return logs::stream(s, &api.sessions, secret).await;
    }
    // The dashboard: its own key (URL or cookie) opens it, read-only.
    if let (&Method::GET, ["dashboard", app, rest @ ..]) = (&method, parts.as_slice()) {
        let Some(pass) = dashboard::pass(&req, &api.token, api.authorized(&req)) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                format!(
                    "This dashboard needs its key: open the URL `wdyno dashboard -a {app}` prints."
                ),
            ));
        };
        return match rest {
            [] => dashboard::page(s, app_name(app)?, pass, &api.token).await,
            ["events"] => dashboard::stream(s, app_name(app)?).await,
            _ => Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no such endpoint: {method} {path}"),
            )),
        };
    }
    if !api.authorized(&req) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Invalid credentials provided: send the token in $WDYNO_HOME/api-token as `Authorization: Bearer TOKEN` (for the heroku CLI: HEROKU_API_KEY=TOKEN)",
        ));
    }
    let site = &api.site;
    let range = req
        .headers()
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(Range::parse);
    match (&method, parts.as_slice()) {
        (&Method::GET, ["account"]) => ok(&site.account()),
        // wdyno's labs features are an app's: the account has none (the
        // heroku CLI asks here first, then the app).
        (&Method::GET, ["account", "features"]) => ok(&Vec::<schema::AppFeature>::new()),
        (&Method::GET, ["account", "features", f]) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No account feature {f}: wdyno's labs features are per app (-a APP)."),
        )),
        (&Method::GET, ["hosts"]) => ok(&s.hosts()),
        (&Method::GET, ["apps"] | ["users", "~", "apps"]) => apps::list(s, site).await,
        (&Method::POST, ["apps"]) => apps::create(s, site, req).await,
        (&Method::GET, ["apps", app]) => apps::info(s, site, app).await,
        (&Method::PATCH, ["apps", app]) => apps::update(s, site, app_name(app)?, req).await,
        (&Method::DELETE, ["apps", app]) => apps::destroy(s, site, app).await,
        (&Method::POST, ["apps", app, "git"]) => apps::git(s, app_name(app)?).await,
        (&Method::GET, ["apps", app, "domains"]) => apps::domains(s, site, app_name(app)?).await,
        (&Method::GET, ["apps", app, "buildpack-installations"]) => {
            apps::buildpacks(s, app_name(app)?).await
        }
        (&Method::GET, ["apps", app, "addons" | "collaborators"]) => {
            apps::none(s, app_name(app)?).await
        }
        (&Method::GET, ["apps", app, "releases"]) => {
            releases::list(s, site, app_name(app)?, range).await
        }
        (&Method::GET, ["apps", app, "releases", which]) => {
            releases::info(s, site, app_name(app)?, which).await
        }
        (&Method::GET, ["apps", app, "releases", which, "config-vars"]) => {
            releases::config_of(s, app_name(app)?, which).await
        }
        (&Method::POST, ["apps", app, "releases"]) => {
            releases::rollback(s, site, app_name(app)?, req).await
        }
        (&Method::GET, ["apps", app, "config-vars"]) => {
            ok(&s.current(&app_name(app)?).await?.config)
        }
        (&Method::PATCH, ["apps", app, "config-vars"]) => {
            releases::set_config(s, app_name(app)?, req).await
        }
        (&Method::GET, ["apps", app, "builds"]) => releases::builds(s, app_name(app)?).await,
        (&Method::POST, ["apps", app, "builds"]) => {
            releases::build(s.clone(), app_name(app)?, req).await
        }
        (&Method::GET, ["apps", app, "formation"]) => formation::list(s, app_name(app)?).await,
        (&Method::PATCH, ["apps", app, "formation"]) => {
            formation::batch(s, app_name(app)?, req).await
        }
        (&Method::GET, ["apps", app, "formation", ty]) => {
            formation::info(s, app_name(app)?, ty).await
        }
        (&Method::PATCH, ["apps", app, "formation", ty]) => {
            formation::update(s, app_name(app)?, ty, req).await
        }
        (&Method::DELETE, ["apps", app, "formations", ty]) => {
            formation::restart(s, app_name(app)?, ty).await
        }
        (&Method::POST, ["apps", app, "formations", ty, "actions", "stop"]) => {
            formation::stop(s, app_name(app)?, ty).await
        }
        (&Method::GET, ["apps", app, "dynos"]) => dynos::list(s, app_name(app)?).await,
        (&Method::GET, ["apps", app, "dynos", dyno]) => dynos::info(s, app_name(app)?, dyno).await,
        (&Method::POST, ["apps", app, "dynos"]) => dynos::run(s, app_name(app)?, req).await,
        (&Method::POST, ["apps", app, "dynos", "attach"]) => {
            dynos::attach(s.clone(), app_name(app)?, req).await
        }
        (&Method::DELETE, ["apps", app, "dynos"]) => dynos::restart(s, app_name(app)?, None).await,
        (&Method::DELETE, ["apps", app, "dynos", which]) => {
            dynos::restart(s, app_name(app)?, Some(which)).await
        }
        (&Method::POST, ["apps", app, "dynos", dyno, "actions", "stop"]) => {
            dynos::stop(s, app_name(app)?, dyno).await
        }
        (&Method::GET, ["apps", app, "features"]) => visibility::features(s, app_name(app)?).await,
        (&Method::GET, ["apps", app, "features", f]) => {
            visibility::feature_info(s, app_name(app)?, f).await
        }
        (&Method::PATCH, ["apps", app, "features", f]) => {
            visibility::set_feature(s, app_name(app)?, f, req).await
        }
        (&Method::GET, ["apps", app, "log-drains"]) => visibility::drains(s, app_name(app)?).await,
        (&Method::POST, ["apps", app, "log-drains"]) => {
            visibility::add_drain(s, app_name(app)?, req).await
        }
        (&Method::DELETE, ["apps", app, "log-drains", which]) => {
            visibility::remove_drain(s, app_name(app)?, which).await
        }
        (&Method::POST, ["apps", app, "log-sessions"]) => {
            logs::create(s, &api.sessions, app_name(app)?, req).await
        }
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such endpoint: {method} {path}"),
        )),
    }
}
