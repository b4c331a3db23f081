//! The live dashboard (`wdyno dashboard -a APP`), after Heroku's log2viz:
//! one page, all of it in the binary, fed by server-sent events of the
//! app's log and its dynos.
//!
//! - `GET /dashboard/A?key=KEY` sets the dashboard cookie and sends the
//!   browser on to `/dashboard/A`, so the key is in no URL after first use;
//! - `GET /dashboard/A`: the page;
//! - `GET /dashboard/A/events`: `hello`, then `line` events (the last
//!   [`BACKLOG`] lines marked `backlog`, then each new one), `dynos` every
//!   [`DYNOS_EVERY`], `dropped` when the page fell behind.
//!
//! The key is derived from the API token ([`key`]), and it opens only
//! these pages: a leaked dashboard cookie reads dashboards, it cannot
//! change an app. The cookie is `HttpOnly`, `SameSite=Strict` and scoped to
//! `/dashboard`.

use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::reply::{ApiError, Reply, events, sse_reply};
use crate::logbus::{Event, LogFilter};
use crate::names::AppName;
use crate::service::Service;

/// The page, with `{{APP}}` where the app's name goes.
const PAGE: &str = include_str!("dashboard.html");
/// The cookie the page is opened with after first use.
pub const COOKIE: &str = "wdyno_dashboard";
/// Lines of history a page starts with.
const BACKLOG: usize = 100;
/// How often the page is sent the dynos.
const DYNOS_EVERY: Duration = Duration::from_secs(2);
/// Events on their way to one page.
const PUMP_EVENTS: usize = 256;

/// The dashboard key of the API token `token`: what `wdyno dashboard`
/// puts in the URL and the cookie then holds.
pub fn key(token: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"wdyno dashboard\0");
    h.update(token.as_bytes());
    hex::encode(h.finalize())
}

/// How a dashboard request proved itself, if it did.
pub(super) enum Pass {
    /// The key in the URL: set the cookie and drop the key from the URL.
    UrlKey,
    /// The cookie, or the API token as a bearer.
    Held,
}

/// Whether `req` may see dashboards: the bearer token, the cookie, or
/// `?key=` in the URL.
pub(super) fn pass(req: &Request<Incoming>, token: &str, bearer_ok: bool) -> Option<Pass> {
    if bearer_ok {
        return Some(Pass::Held);
    }
    let want = key(token);
    let cookie = req
        .headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .any(|(k, v)| {
            k == COOKIE && super::server::constant_time_eq(v.as_bytes(), want.as_bytes())
        });
    if cookie {
        return Some(Pass::Held);
    }
    let url_key = req.uri().query().is_some_and(|q| {
        q.split('&')
            .filter_map(|kv| kv.split_once('='))
            .any(|(k, v)| {
                k == "key" && super::server::constant_time_eq(v.as_bytes(), want.as_bytes())
            })
    });
    url_key.then_some(Pass::UrlKey)
}

/// `GET /dashboard/A`: the page, or (opened with the key) the cookie and
/// a redirect to the page without it.
pub(super) async fn page(s: &Service, app: AppName, pass: Pass, token: &str) -> Reply {
    s.app(&app).await?;
    let location = format!("/dashboard/{app}");
    let mut r = match pass {
        Pass::UrlKey => {
            let mut r = Response::new(body(String::new()));
            *r.status_mut() = StatusCode::SEE_OTHER;
            let cookie = format!(
                "{COOKIE}={}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=31536000",
                key(token)
            );
            let h = r.headers_mut();
            h.insert(header::LOCATION, value(&location)?);
            h.insert(header::SET_COOKIE, value(&cookie)?);
            r
        }
        Pass::Held => {
            let html = PAGE.replace("{{APP}}", app.as_str());
            let mut r = Response::new(body(html));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/html; charset=utf-8"),
            );
            r
        }
    };
    let h = r.headers_mut();
    // Everything is inline; nothing leaves for another origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(r)
}

/// `GET /dashboard/A/events`.
pub(super) async fn stream(s: &Arc<Service>, app: AppName) -> Reply {
    // What is in the ring now is history: stamped no later than this.
    let since = chrono::Utc::now();
    let mut sub = s.logs(&app, LogFilter::default(), BACKLOG, true).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(PUMP_EVENTS);
    let s = s.clone();
    tokio::spawn(async move {
        let hello = json!({"app": app.as_str(), "at": stamp(chrono::Utc::now())});
        if tx.send((Some("hello"), hello.to_string())).await.is_err() {
            return;
        }
        let mut tick = tokio::time::interval(DYNOS_EVERY);
        loop {
            let ev = tokio::select! {
                ev = sub.next() => match ev {
                    Some(Event::Line(l)) => (Some("line"), json!({
                        "at": stamp(l.at),
                        "source": l.source.as_str(),
                        "process": l.process,
                        "text": l.text,
                        "backlog": l.at <= since,
                    }).to_string()),
                    Some(Event::Dropped(n)) => (Some("dropped"), json!({"lines": n}).to_string()),
                    None => break,
                },
                _ = tick.tick() => (Some("dynos"), dynos(&s, &app).await),
            };
            if tx.send(ev).await.is_err() {
                break;
            }
        }
    });
    Ok(sse_reply(events(rx)))
}

/// The `dynos` event: each dyno's state and figures.
async fn dynos(s: &Service, app: &AppName) -> String {
    let mb = |b: u64| (b as f64 / f64::from(1u32 << 20) * 10.0).round() / 10.0;
    let all: Vec<serde_json::Value> = s
        .ps(app)
        .await
        .unwrap_or_default()
        .iter()
        .map(|d| {
            json!({
                "name": d.name,
                "type": d.process_type,
                "state": d.state,
                "memory_mb": mb(d.usage.memory_bytes),
                "quota_mb": mb(d.usage.quota_bytes),
                "cpu_ms": u64::try_from(d.usage.cpu.as_millis()).unwrap_or(u64::MAX),
            })
        })
        .collect();
    serde_json::Value::from(all).to_string()
}

fn stamp(at: chrono::DateTime<chrono::Utc>) -> String {
    at.format(crate::logbus::STAMP).to_string()
}

fn body(s: String) -> super::reply::Body {
    Full::new(Bytes::from(s)).boxed()
}

fn value(s: &str) -> Result<header::HeaderValue, ApiError> {
    header::HeaderValue::from_str(s).map_err(|e| ApiError::internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_the_tokens_own() {
        assert_eq!(key("a"), key("a"));
        assert_ne!(key("a"), key("b"));
        assert_eq!(key("a").len(), 64);
        assert!(!key("secret-token").contains("secret"));
    }

    #[test]
    fn the_page_has_a_place_for_the_app_and_no_remote_assets() {
        assert!(PAGE.contains("{{APP}}"));
        for remote in ["http://", "https://", "//cdn", "@import"] {
            assert!(!PAGE.contains(remote), "the page loads {remote}");
        }
    }
}
