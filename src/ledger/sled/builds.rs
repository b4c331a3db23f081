//! Builds: one record per deploy attempt, successful or not, numbered per
//! app (`1, 2, …`) so that destroying an app can remove them all in the
//! same transaction as the rest of it.

use sled::Transactional;

use super::{
    Build, LedgerError, Result, SledLedger, Status, abort, build_key, decode, encode, flatten,
    head_of, now, prefix,
};
use crate::names::AppName;

impl SledLedger {
    /// Starts recording a build: `Pending`, no slug yet.
    pub fn create_build(&self, app: &AppName, source: &str) -> Result<Build> {
        let r = (&self.heads, &self.builds).transaction(|(heads, builds)| {
            let mut head = head_of(heads, app)?;
            head.builds += 1;
            let build = Build {
                id: head.builds,
                status: Status::Pending,
                source: source.to_owned(),
                slug: None,
                release: None,
                created_at: now(),
                output_tail: String::new(),
            };
            builds.insert(build_key(app, build.id), encode(&build))?;
            heads.insert(app.as_str(), encode(&head))?;
            Ok(build)
        });
        let build = flatten(r)?;
        self.flush()?;
        Ok(build)
    }

    /// Records how a build ended (its status, slug, release, output).
    pub fn finish_build(&self, app: &AppName, build: &Build) -> Result<()> {
        let r = (&self.heads, &self.builds).transaction(|(heads, builds)| {
            head_of(heads, app)?;
            let key = build_key(app, build.id);
            if builds.get(&key)?.is_none() {
                return abort(LedgerError::BuildNotFound {
                    app: app.to_string(),
                    id: build.id,
                });
            }
            builds.insert(key, encode(build))?;
            Ok(())
        });
        flatten(r)?;
        self.flush()
    }

    pub fn build(&self, app: &AppName, id: u64) -> Result<Build> {
        self.app(app)?;
        let key = build_key(app, id);
        match self.builds.get(&key)? {
            Some(v) => decode(&key, &v),
            None => Err(LedgerError::BuildNotFound {
                app: app.to_string(),
                id,
            }),
        }
    }

    /// Every build of an app, oldest first.
    pub fn builds(&self, app: &AppName) -> Result<Vec<Build>> {
        self.app(app)?;
        self.builds
            .scan_prefix(prefix(app))
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }
}
