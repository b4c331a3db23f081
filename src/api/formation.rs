//! `/apps/A/formation` and `/apps/A/formations/TYPE`: `ps:scale`, and
//! restarting or stopping every dyno of a type.

use std::collections::BTreeMap;

use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::present;
use super::reply::{ApiError, Reply, ok, read_body};
use super::schema::{self, DYNO_SIZE, FormationBatch, FormationUpdate, Scale};
use crate::names::{AppName, ProcessType};
use crate::service::Service;

/// Most dynos of one type a scale may ask for.
const MAX_QUANTITY: u64 = 10_000;

/// The app's formation entries, one per process type of its release.
async fn entries(s: &Service, app: &AppName) -> Result<Vec<schema::Formation>, ApiError> {
    let record = s.app(app).await?;
    let current = s.current(app).await?;
    let formation = s.formation(app).await?;
    Ok(present::formation(&record, &current, &formation))
}

/// `GET /apps/A/formation`.
pub(super) async fn list(s: &Service, app: AppName) -> Reply {
    ok(&entries(s, &app).await?)
}

fn process_type(ty: &str) -> Result<ProcessType, ApiError> {
    ProcessType::parse(ty).map_err(|e| ApiError::bad(e.to_string()))
}

/// `GET /apps/A/formation/TYPE`.
pub(super) async fn info(s: &Service, app: AppName, ty: &str) -> Reply {
    let all = entries(s, &app).await?;
    match all.into_iter().find(|f| f.process_type == ty) {
        Some(f) => ok(&f),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("No such process type {ty} defined in the Procfile of {app}."),
        )),
    }
}

/// The counts the updates ask for, relative ones from the formation now.
async fn counts(
    s: &Service,
    app: &AppName,
    updates: &[(String, FormationUpdate)],
) -> Result<BTreeMap<ProcessType, u32>, ApiError> {
    let now = s.formation(app).await?;
    let mut changes = BTreeMap::new();
    for (ty, u) in updates {
        if let Some(size) = &u.size
            && !size.eq_ignore_ascii_case(DYNO_SIZE)
        {
            return Err(ApiError::bad(format!(
                "{ty}: size {size} does not exist here; every wdyno dyno is {DYNO_SIZE}"
            )));
        }
        let Some(q) = &u.quantity else { continue };
        let n = match q.scale().map_err(|e| ApiError::bad(format!("{ty}: {e}")))? {
            Scale::To(n) => n,
            Scale::By(d) => (i64::from(now.get(ty)) + d).max(0) as u64,
        };
        if n > MAX_QUANTITY {
            return Err(ApiError::bad(format!(
                "{ty}: quantity must be a whole number from 0 to {MAX_QUANTITY}"
            )));
        }
        changes.insert(process_type(ty)?, n as u32);
    }
    Ok(changes)
}

/// `PATCH /apps/A/formation {"updates": [{"type", "quantity", "size"}]}`:
/// every change at once; the answer is the whole formation.
pub(super) async fn batch(s: &Service, app: AppName, req: Request<Incoming>) -> Reply {
    let body: FormationBatch = read_body(req).await.map_err(|_| {
        ApiError::bad(
            "expected {\"updates\": [{\"type\": \"web\", \"quantity\": 2}, …]} (quantity a number or a string of one)",
        )
    })?;
    let mut updates = Vec::new();
    for u in body.updates {
        let ty = u.process_type.clone().ok_or_else(|| {
            ApiError::bad("each update names its process type: {\"type\": \"web\", …}")
        })?;
        updates.push((ty, u));
    }
    let changes = counts(s, &app, &updates).await?;
    s.scale(&app, &changes).await?;
    ok(&entries(s, &app).await?)
}

/// `PATCH /apps/A/formation/TYPE {"quantity", "size"}`.
pub(super) async fn update(s: &Service, app: AppName, ty: &str, req: Request<Incoming>) -> Reply {
    let body: FormationUpdate = read_body(req).await?;
    let changes = counts(s, &app, &[(ty.to_owned(), body)]).await?;
    s.scale(&app, &changes).await?;
    info(s, app, ty).await
}

/// `DELETE /apps/A/formations/TYPE`: `ps:restart --process-type`.
pub(super) async fn restart(s: &Service, app: AppName, ty: &str) -> Reply {
    let ty = process_type(ty)?;
    let n = s.restart(&app, Some(ty.as_str())).await?;
    ok(&json!({"restarted": n}))
}

/// `POST /apps/A/formations/TYPE/actions/stop`: `ps:stop --process-type`.
pub(super) async fn stop(s: &Service, app: AppName, ty: &str) -> Reply {
    let n = s.stop_type(&app, &process_type(ty)?).await?;
    ok(&json!({"stopped": n}))
}
