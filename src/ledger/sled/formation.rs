//! The `formation` tree: app name → its [`Formation`]. It lives beside the
//! releases so a platform restart brings back the same dynos.

use std::collections::BTreeMap;

use sled::Transactional;

use super::{LedgerError, Result, SledLedger, abort, decode, encode, flatten, tx_get};
use crate::formation::Formation;
use crate::names::{AppName, ProcessType};

impl SledLedger {
    /// Process type → dyno count (empty until the first scale).
    pub fn formation(&self, app: &AppName) -> Result<Formation> {
        self.app(app)?;
        match self.formation.get(app.as_str())? {
            Some(v) => decode(app.as_str().as_bytes(), &v),
            None => Ok(Formation::default()),
        }
    }

    /// `ps:scale`: changes the counts of some types and returns the whole
    /// formation. Every type must exist in the current release.
    pub fn scale(&self, app: &AppName, changes: &BTreeMap<ProcessType, u32>) -> Result<Formation> {
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
            let mut f: Formation = tx_get(form, app.as_str().as_bytes())?.unwrap_or_default();
            f.apply(changes);
            form.insert(app.as_str(), encode(&f))?;
            Ok(f)
        });
        let f = flatten(r)?;
        self.flush()?;
        Ok(f)
    }
}
