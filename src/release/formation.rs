//! The formation: how many dynos of each process type should run.
//!
//! It lives beside the releases so a platform restart brings back the same
//! dynos. Types a later deploy drops stay in the map until scaled; the
//! dyno manager runs only the types the current release has.

use std::collections::BTreeMap;

use sled::Transactional;

use super::{Ledger, LedgerError, Result, abort, decode, encode, flatten, tx_get};
use crate::names::{AppName, ProcessType};

impl Ledger {
    /// Process type → dyno count (empty until the first scale).
    pub fn formation(&self, app: &AppName) -> Result<BTreeMap<String, u32>> {
        self.app(app)?;
        match self.formation.get(app.as_str())? {
            Some(v) => decode(app.as_str().as_bytes(), &v),
            None => Ok(BTreeMap::new()),
        }
    }

    /// `ps:scale`: changes the counts of some types and returns the whole
    /// formation. Every type must exist in the current release.
    pub fn scale(
        &self,
        app: &AppName,
        changes: &BTreeMap<ProcessType, u32>,
    ) -> Result<BTreeMap<String, u32>> {
        let current = self.current(app)?;
        for ty in changes.keys() {
            if !current.process_types.contains_key(ty.as_str()) {
                let known: Vec<&str> = current.process_types.keys().map(String::as_str).collect();
                return Err(LedgerError::UnknownProcessType {
                    app: app.to_string(),
                    ty: ty.to_string(),
                    known: if known.is_empty() {
                        "none yet: deploy first".into()
                    } else {
                        known.join(", ")
                    },
                });
            }
        }
        let r = (&self.heads, &self.formation).transaction(|(heads, form)| {
            // The app may have been destroyed since `current` was read.
            if heads.get(app.as_str())?.is_none() {
                return abort(LedgerError::AppNotFound(app.to_string()));
            }
            let mut f: BTreeMap<String, u32> =
                tx_get(form, app.as_str().as_bytes())?.unwrap_or_default();
            for (ty, n) in changes {
                f.insert(ty.to_string(), *n);
            }
            form.insert(app.as_str(), encode(&f))?;
            Ok(f)
        });
        let f = flatten(r)?;
        self.flush()?;
        Ok(f)
    }
}
