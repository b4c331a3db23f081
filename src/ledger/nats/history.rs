//! An app's release history in the bucket: every new release goes through
//! [`NatsLedger::append`] (create the record, then move the head), every
//! read through a head rolled forward (see the module doc of
//! [`super`]).

use std::collections::BTreeMap;

use super::{
    Fail, NatsLedger, Snapshot, Stored, Tries, encode, head_key, new_id, now, release_key,
};
use crate::ledger::sled::{Activate, change_config, deployed, describe_config_change};
use crate::ledger::{LedgerError, Result};
use crate::names::{AppName, ConfigKey};
use crate::release::{NewRelease, Release, Status};

impl NatsLedger {
    /// Every release of an app, oldest first.
    pub async fn releases(&self, app: &AppName) -> Result<Vec<Release>> {
        self.read(move || async move {
            let s = self.load(app).await?;
            let mut all = Vec::with_capacity(s.head.last as usize);
            for v in 1..=s.head.last {
                all.push(self.release_in(&s, app, v).await?);
            }
            Ok(all)
        })
        .await
    }

    pub async fn release(&self, app: &AppName, version: u64) -> Result<Release> {
        self.read(move || async move {
            let s = self.load(app).await?;
            self.release_in(&s, app, version).await
        })
        .await
    }

    /// The release dynos run: the newest that succeeded (an empty `v0`
    /// before any).
    pub async fn current(&self, app: &AppName) -> Result<Release> {
        self.read(move || async move {
            let s = self.load(app).await?;
            self.current_in(&s, app).await
        })
        .await
    }

    async fn current_in(&self, s: &Snapshot, app: &AppName) -> Result<Release, Fail> {
        match s.head.current {
            0 => Ok(Release::none()),
            v => self.release_in(s, app, v).await.map_err(|e| match e {
                Fail::Ledger(LedgerError::ReleaseNotFound { .. }) => LedgerError::Corrupt {
                    key: format!("{app} v{v}"),
                    why: "the current release is missing".into(),
                }
                .into(),
                other => other,
            }),
        }
    }

    /// Appends the release `make(current)` as the next version, retrying
    /// lost races and unanswered calls within the [`Tries`] budget.
    async fn append(
        &self,
        app: &AppName,
        activate: Activate,
        make: impl Fn(&Release) -> Result<Release>,
    ) -> Result<Release> {
        let change = new_id();
        let mut tries = Tries::write();
        // The version this call last tried to create, and the first it
        // tried whose answer was lost (from there on, a record may be ours).
        let (mut tried, mut unsure) = (None, None);
        loop {
            match self
                .try_append(app, &change, activate, &make, &mut tried, unsure)
                .await
            {
                Ok(r) => return Ok(r),
                Err(f) => {
                    if matches!(f, Fail::Cluster { maybe: true, .. }) {
                        unsure = unsure.or(tried);
                    }
                    tries.after(f).await?
                }
            }
        }
    }

    async fn try_append(
        &self,
        app: &AppName,
        change: &str,
        activate: Activate,
        make: &impl Fn(&Release) -> Result<Release>,
        tried: &mut Option<u64>,
        unsure: Option<u64>,
    ) -> Result<Release, Fail> {
        let mut s = self.load_with(app, false).await?;
        // An earlier try of this call whose answer was lost may have landed:
        // the head's recent changes say so, or else (if many changes came
        // since) the records from the first version it may have taken.
        if let Some(v) = s.head.landed(change) {
            return self.release_in(&s, app, v).await;
        }
        for v in unsure.unwrap_or(u64::MAX)..=s.head.last {
            let stored = self.stored_release(app, &s.head.incarnation, v).await?;
            if stored.is_some_and(|r| r.change == change) {
                return self.release_in(&s, app, v).await;
            }
        }
        let current = self.current_in(&s, app).await?;
        // While a release phase runs, its release is the newest; anything
        // appended now would be built on the release before it and would
        // hide the deploy once its phase succeeds.
        if s.head.last > s.head.current {
            let last = self.release_in(&s, app, s.head.last).await?;
            if last.status == Status::Pending {
                return Err(LedgerError::ReleaseInProgress(s.head.last).into());
            }
        }
        let mut next = make(&current)?;
        let now_current = activate.now(&next);
        next.version = s.head.last + 1;
        next.created_at = now();
        next.status = if now_current {
            Status::Succeeded
        } else {
            Status::Pending
        };
        let inc = s.head.incarnation.clone();
        *tried = Some(next.version);
        let stored = Stored {
            change: change.to_owned(),
            value: next.clone(),
        };
        // The commit: it fails if another writer took this version first,
        // and the next try rolls forward over theirs.
        self.bucket
            .create_new(&release_key(app, &inc, next.version), encode(&stored))
            .await?;
        s.head.last = next.version;
        if now_current {
            s.head.current = next.version;
        }
        s.head.remember(change, next.version);
        // Best effort: a head left behind is rolled forward by whoever
        // reads it next.
        if let Err(e) = self
            .bucket
            .update(&head_key(app), encode(&s.head), s.rev)
            .await
        {
            tracing::debug!(
                "ledger: {app} v{} committed; head not moved: {e:?}",
                next.version
            );
        }
        Ok(next)
    }

    /// Records a deploy: the new slug and process types with the current
    /// config vars, current at once with `activate`, else pending.
    pub async fn create_release(
        &self,
        app: &AppName,
        new: NewRelease,
        activate: bool,
    ) -> Result<Release> {
        self.append(app, Activate::deploy(activate), |current| {
            Ok(deployed(current, &new))
        })
        .await
    }

    /// Ends a pending release's release phase, in the head: success makes
    /// it current (unless a newer release already is).
    pub async fn finish_release(&self, app: &AppName, version: u64, ok: bool) -> Result<Release> {
        let change = new_id();
        let mut tries = Tries::write();
        loop {
            match self.try_finish(app, &change, version, ok).await {
                Ok(r) => return Ok(r),
                Err(f) => tries.after(f).await?,
            }
        }
    }

    async fn try_finish(
        &self,
        app: &AppName,
        change: &str,
        version: u64,
        ok: bool,
    ) -> Result<Release, Fail> {
        let mut s = self.load(app).await?;
        let mut rel = self.release_in(&s, app, version).await?;
        if s.head.landed(change).is_some() {
            return Ok(rel);
        }
        if rel.status != Status::Pending {
            return Err(LedgerError::NotPending {
                version,
                status: rel.status,
            }
            .into());
        }
        rel.status = if ok {
            Status::Succeeded
        } else {
            Status::Failed
        };
        s.head.ended.insert(version, rel.status);
        if ok && version > s.head.current {
            s.head.current = version;
        }
        s.head.remember(change, version);
        self.bucket
            .update(&head_key(app), encode(&s.head), s.rev)
            .await?;
        Ok(rel)
    }

    /// `config:set` / `config:unset`: a new release with the changed vars.
    pub async fn set_config(
        &self,
        app: &AppName,
        set: &BTreeMap<ConfigKey, String>,
        unset: &[ConfigKey],
    ) -> Result<Release> {
        if set.is_empty() && unset.is_empty() {
            return Err(LedgerError::NothingToChange);
        }
        let description = describe_config_change(set, unset);
        self.append(app, Activate::UnlessPhase, |current| {
            change_config(current, set, unset, &description)
        })
        .await
    }

    /// `releases:rollback vN`: a new release with vN's slug, config and
    /// process types; only a release that succeeded can be rolled back to.
    pub async fn rollback(&self, app: &AppName, version: u64) -> Result<Release> {
        let target = self.release(app, version).await?;
        // A release that succeeded never changes again, so reading it
        // before the append is safe.
        if target.status != Status::Succeeded {
            return Err(LedgerError::BadRollback {
                version,
                why: "did not succeed",
            });
        }
        self.append(app, Activate::UnlessPhase, |current| {
            Ok(Release {
                slug: target.slug.clone(),
                config: target.config.clone(),
                process_types: target.process_types.clone(),
                description: format!("Rollback to v{version}"),
                ..current.clone()
            })
        })
        .await
    }
}
