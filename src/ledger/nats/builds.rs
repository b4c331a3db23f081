//! Builds in the bucket: one record per deploy attempt, numbered per app
//! (`1, 2, …`) and created like a release: the record `build.APP.INC.ID`
//! first (the commit), then the head's counter, rolled forward by anyone
//! who finds a record past it.

use super::{Fail, NatsLedger, Stored, Tries, build_key, encode, head_key, new_id, now};
use crate::ledger::{Build, LedgerError, Result};
use crate::names::AppName;
use crate::release::Status;

impl NatsLedger {
    /// Starts recording a build: `pending`, the next number of the app.
    pub async fn create_build(&self, app: &AppName, source: &str) -> Result<Build> {
        let change = new_id();
        let mut tries = Tries::write();
        loop {
            match self.try_create_build(app, &change, source).await {
                Ok(b) => return Ok(b),
                Err(f) => tries.after(f).await?,
            }
        }
    }

    async fn try_create_build(
        &self,
        app: &AppName,
        change: &str,
        source: &str,
    ) -> Result<Build, Fail> {
        let mut s = self.load(app).await?;
        let inc = s.head.incarnation.clone();
        if let Some(id) = s.head.landed(change) {
            return match self.stored_build(app, &inc, id).await? {
                Some(stored) => Ok(stored.value),
                None => Err(LedgerError::BuildNotFound {
                    app: app.to_string(),
                    id,
                }
                .into()),
            };
        }
        let build = Build {
            id: s.head.builds + 1,
            status: Status::Pending,
            source: source.to_owned(),
            slug: None,
            release: None,
            created_at: now(),
            output_tail: String::new(),
        };
        let stored = Stored {
            change: change.to_owned(),
            value: build.clone(),
        };
        self.bucket
            .create_new(&build_key(app, &inc, build.id), encode(&stored))
            .await?;
        s.head.builds = build.id;
        s.head.remember(change, build.id);
        if let Err(e) = self
            .bucket
            .update(&head_key(app), encode(&s.head), s.rev)
            .await
        {
            tracing::debug!(
                "ledger: {app} build {} committed; head not moved: {e:?}",
                build.id
            );
        }
        Ok(build)
    }

    /// Records how a build ended (rewriting it is idempotent, so a lost
    /// answer is simply retried).
    pub async fn finish_build(&self, app: &AppName, build: &Build) -> Result<()> {
        let mut tries = Tries::write();
        loop {
            let step = async {
                let s = self.load(app).await?;
                let inc = &s.head.incarnation;
                let Some(stored) = self.stored_build(app, inc, build.id).await? else {
                    return Err(LedgerError::BuildNotFound {
                        app: app.to_string(),
                        id: build.id,
                    }
                    .into());
                };
                let stored = Stored {
                    change: stored.change,
                    value: build.clone(),
                };
                self.bucket
                    .put(&build_key(app, inc, build.id), encode(&stored))
                    .await?;
                Ok::<_, Fail>(())
            };
            match step.await {
                Ok(()) => return Ok(()),
                Err(f) => tries.after(f).await?,
            }
        }
    }

    pub async fn build(&self, app: &AppName, id: u64) -> Result<Build> {
        self.read(move || async move {
            let s = self.load(app).await?;
            match self.stored_build(app, &s.head.incarnation, id).await? {
                Some(stored) if id <= s.head.builds => Ok(stored.value),
                _ => Err(LedgerError::BuildNotFound {
                    app: app.to_string(),
                    id,
                }
                .into()),
            }
        })
        .await
    }

    /// Every build of an app, oldest first.
    pub async fn builds(&self, app: &AppName) -> Result<Vec<Build>> {
        self.read(move || async move {
            let s = self.load(app).await?;
            let mut all = Vec::new();
            for id in 1..=s.head.builds {
                if let Some(stored) = self.stored_build(app, &s.head.incarnation, id).await? {
                    all.push(stored.value);
                }
            }
            Ok(all)
        })
        .await
    }
}
