//! Labs features and log drains of an app, in the Heroku API's shapes:
//! `GET /apps/A/features`, `GET|PATCH /apps/A/features/F`,
//! `GET|POST /apps/A/log-drains`, `DELETE /apps/A/log-drains/ID`.

use http::{Request, StatusCode};
use hyper::body::Incoming;

use super::present::{app_id, app_ref};
use super::reply::{ApiError, Reply, json_reply, ok, read_body};
use super::schema::{AppFeature, AppFeatureUpdate, LogDrain, LogDrainCreate, id_of};
use crate::ledger::{App, Drain};
use crate::names::AppName;
use crate::service::{Feature, Service, features_of};

fn feature(app: &App, f: &Feature, enabled: bool) -> AppFeature {
    AppFeature {
        id: id_of(&["feature", &app_id(app), f.name]),
        name: f.name.to_owned(),
        display_name: f.name.to_owned(),
        description: f.description.to_owned(),
        doc_url: f.doc_url.to_owned(),
        enabled,
        state: "beta".into(),
        feedback_email: String::new(),
        created_at: app.created_at,
        updated_at: chrono::Utc::now(),
    }
}

fn drain(app: &App, d: &Drain) -> LogDrain {
    LogDrain {
        id: d.id.clone(),
        url: d.url.clone(),
        token: d.token.clone(),
        addon: None,
        app: app_ref(app),
        created_at: d.created_at,
        updated_at: d.created_at,
    }
}

/// `GET /apps/A/features`.
pub(super) async fn features(s: &Service, app: AppName) -> Reply {
    let record = s.app(&app).await?;
    let all: Vec<AppFeature> = features_of(&record)
        .iter()
        .map(|(f, on)| feature(&record, f, *on))
        .collect();
    ok(&all)
}

/// `GET /apps/A/features/F`.
pub(super) async fn feature_info(s: &Service, app: AppName, name: &str) -> Reply {
    let record = s.app(&app).await?;
    let all = features_of(&record);
    let Some((f, on)) = all.iter().find(|(f, _)| f.name == name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such feature: {name}. Run `wdyno labs -a {app}` to list them."),
        ));
    };
    ok(&feature(&record, f, *on))
}

/// `PATCH /apps/A/features/F {"enabled": true}`.
pub(super) async fn set_feature(
    s: &Service,
    app: AppName,
    name: &str,
    req: Request<Incoming>,
) -> Reply {
    let body: AppFeatureUpdate = read_body(req).await?;
    let (record, f) = s.set_feature(&app, name, body.enabled).await?;
    let on = record.features.contains(f.name);
    ok(&feature(&record, &f, on))
}

/// `GET /apps/A/log-drains`.
pub(super) async fn drains(s: &Service, app: AppName) -> Reply {
    let record = s.app(&app).await?;
    let all: Vec<LogDrain> = record.drains.iter().map(|d| drain(&record, d)).collect();
    ok(&all)
}

/// `POST /apps/A/log-drains {"url": …}`.
pub(super) async fn add_drain(s: &Service, app: AppName, req: Request<Incoming>) -> Reply {
    let body: LogDrainCreate = read_body(req).await?;
    let (record, d) = s.add_drain(&app, &body.url).await?;
    Ok(json_reply(StatusCode::CREATED, &drain(&record, &d)))
}

/// `DELETE /apps/A/log-drains/ID|URL|TOKEN`.
pub(super) async fn remove_drain(s: &Service, app: AppName, which: &str) -> Reply {
    let (record, d) = s.remove_drain(&app, which).await?;
    ok(&drain(&record, &d))
}
