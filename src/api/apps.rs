//! `/apps`: create, update (buildpacks), destroy, and the git remote.

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::reply::{ApiError, Reply, json_reply, ok, read_json};
use crate::names::AppName;
use crate::service::Service;

pub(super) async fn create(s: &Service, req: Request<Incoming>) -> Reply {
    let body = read_json(req).await?;
    let name = body["name"]
        .as_str()
        .ok_or_else(|| ApiError::bad("expected {\"name\": \"APP\"}"))?;
    let name = AppName::parse(name).map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(json_reply(StatusCode::CREATED, &s.create_app(&name).await?))
}

pub(super) async fn update(s: &Service, app: AppName, req: Request<Incoming>) -> Reply {
    let body = read_json(req).await?;
    let packs: Vec<String> = match body.get("buildpacks") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => {
            return Err(ApiError::bad(
                "expected {\"buildpacks\": [\"rust\" | \"js\" | \"wasm\" | \"/path\", …]}",
            ));
        }
    };
    ok(&s.set_buildpacks(&app, &packs).await?)
}

pub(super) async fn destroy(s: &Service, app: AppName) -> Reply {
    s.destroy_app(&app).await?;
    ok(&json!({"name": app}))
}

pub(super) async fn git(s: &Service, app: AppName) -> Reply {
    let repo = s.git_repo(&app).await?;
    ok(&json!({"url": repo.display().to_string()}))
}
