//! `/account`, `/apps`: the account, its apps (create with or without a
//! name, update buildpacks, destroy), the git remote, and the lists of
//! things an app has on Heroku (add-ons, collaborators, domains,
//! buildpack installations).

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::present::Site;
use super::reply::{ApiError, Reply, json_reply, ok, read_body};
use super::schema::{self, AppCreate, AppUpdate};
use crate::idling::SleepAfter;
use crate::ledger::App;
use crate::names::AppName;
use crate::routing::Routing;
use crate::service::Service;

/// An app in the API's shape, with when it was last released.
pub(super) async fn shape(s: &Service, site: &Site, app: &App) -> Result<schema::App, ApiError> {
    let released_at = s.releases(&app.name).await?.last().map(|r| r.created_at);
    Ok(site.app(app, released_at))
}

/// The app a path segment names: its name, or its id.
pub(super) async fn find(s: &Service, segment: &str) -> Result<App, ApiError> {
    if let Ok(name) = AppName::parse(segment)
        && let Ok(app) = s.app(&name).await
    {
        return Ok(app);
    }
    s.apps()
        .await?
        .into_iter()
        .find(|a| super::present::app_id(a) == segment)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("Couldn't find that app: {segment}. Run `wdyno apps` to list yours."),
            )
        })
}

pub(super) async fn list(s: &Service, site: &Site) -> Reply {
    let mut out = Vec::new();
    for app in s.apps().await? {
        out.push(shape(s, site, &app).await?);
    }
    ok(&out)
}

pub(super) async fn info(s: &Service, site: &Site, segment: &str) -> Reply {
    let app = find(s, segment).await?;
    ok(&shape(s, site, &app).await?)
}

pub(super) async fn create(s: &Service, site: &Site, req: Request<Incoming>) -> Reply {
    let body: AppCreate = read_body(req).await?;
    let app = match &body.name {
        Some(name) => {
            let name = AppName::parse(name).map_err(|e| ApiError::bad(e.to_string()))?;
            s.create_app(&name).await?
        }
        None => s.create_generated_app().await?,
    };
    let app = match body.buildpacks.as_deref() {
        Some(packs) if !packs.is_empty() => match s.set_buildpacks(&app.name, packs).await {
            Ok(named) => named,
            Err(e) => {
                // No half-made app: one whose buildpacks are refused goes
                // again.
                s.destroy_app(&app.name).await?;
                return Err(e.into());
            }
        },
        _ => app,
    };
    // A new app has no releases yet.
    Ok(json_reply(StatusCode::CREATED, &site.app(&app, None)))
}

pub(super) async fn update(
    s: &Service,
    site: &Site,
    app: AppName,
    req: Request<Incoming>,
) -> Reply {
    let body: AppUpdate = read_body(req).await?;
    if body.buildpacks.is_none() && body.routing.is_none() && body.sleep_after.is_none() {
        return Err(ApiError::bad(
            "expected {\"buildpacks\": [\"rust\" | \"js\" | \"wasm\" | \"/path\", …]}, {\"routing\": \"random\" | \"least-connections\"} or {\"sleep_after\": \"30m\" | \"off\"}",
        ));
    }
    // Checked before anything changes: a bad field changes nothing.
    let routing = match body.routing.as_deref() {
        Some(r) => Some(Routing::parse(r).ok_or_else(|| {
            ApiError::bad(format!(
                "routing {r:?} is neither random (Heroku's) nor least-connections"
            ))
        })?),
        None => None,
    };
    let sleep_after = match body.sleep_after.as_deref() {
        Some(v) => {
            Some(SleepAfter::parse(v).map_err(|e| ApiError::bad(format!("sleep_after: {e}")))?)
        }
        None => None,
    };
    let mut record = None;
    if let Some(packs) = &body.buildpacks {
        record = Some(s.set_buildpacks(&app, packs).await?);
    }
    if let Some(r) = routing {
        record = Some(s.set_routing(&app, r).await?);
    }
    if let Some(v) = sleep_after {
        record = Some(s.set_sleep_after(&app, v).await?);
    }
    let app = record.expect("one of the fields was given");
    ok(&shape(s, site, &app).await?)
}

pub(super) async fn destroy(s: &Service, site: &Site, segment: &str) -> Reply {
    let app = find(s, segment).await?;
    let shaped = shape(s, site, &app).await?;
    s.destroy_app(&app.name).await?;
    ok(&shaped)
}

pub(super) async fn git(s: &Service, app: AppName) -> Reply {
    let repo = s.git_repo(&app).await?;
    ok(&json!({"url": repo.display().to_string()}))
}

/// `GET /apps/A/domains`: the one hostname the router serves it at.
pub(super) async fn domains(s: &Service, site: &Site, app: AppName) -> Reply {
    let app = s.app(&app).await?;
    let host = format!("{}.localhost", app.name);
    ok(&json!([{
        "id": schema::id_of(&["domain", &super::present::app_id(&app), &host]),
        "app": super::present::app_ref(&app),
        "hostname": host,
        "kind": "heroku",
        "cname": null,
        "status": "succeeded",
        "acm_status": null,
        "acm_status_reason": null,
        "sni_endpoint": null,
        "created_at": app.created_at,
        "updated_at": app.created_at,
        "web_url": site.web_url(app.name.as_str()),
    }]))
}

/// `GET /apps/A/buildpack-installations`: the buildpacks the app names.
pub(super) async fn buildpacks(s: &Service, app: AppName) -> Reply {
    let app = s.app(&app).await?;
    let list: Vec<_> = app
        .buildpacks
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"ordinal": i, "buildpack": {"name": b, "url": b}}))
        .collect();
    ok(&list)
}

/// A list wdyno has nothing in (add-ons, collaborators): empty, for an
/// app that exists.
pub(super) async fn none(s: &Service, app: AppName) -> Reply {
    s.app(&app).await?;
    ok(&Vec::<()>::new())
}
