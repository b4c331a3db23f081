//! `/apps/A/formation`: `ps:scale`.

use std::collections::BTreeMap;

use http::Request;
use hyper::body::Incoming;

use super::reply::{ApiError, Reply, ok, read_json};
use crate::names::{AppName, ProcessType};
use crate::service::Service;

/// Most dynos of one type a scale may ask for.
const MAX_QUANTITY: u64 = 10_000;

pub(super) async fn scale(s: &Service, app: AppName, req: Request<Incoming>) -> Reply {
    let body = read_json(req).await?;
    let obj = body
        .as_object()
        .ok_or_else(|| ApiError::bad("expected {\"TYPE\": quantity, …}"))?;
    let mut changes = BTreeMap::new();
    for (k, v) in obj {
        let ty = ProcessType::parse(k).map_err(|e| ApiError::bad(e.to_string()))?;
        let n = v.as_u64().filter(|n| *n <= MAX_QUANTITY).ok_or_else(|| {
            ApiError::bad(format!(
                "{k}: quantity must be a whole number from 0 to {MAX_QUANTITY}"
            ))
        })?;
        changes.insert(ty, n as u32);
    }
    ok(&s.scale(&app, &changes).await?)
}
