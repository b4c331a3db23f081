//! Apps and their formation in the bucket: creating an app creates its
//! head, destroying it deletes the head (then purges its records), and a
//! change of its record or formation is one compare-and-set of the head.

use std::collections::{BTreeMap, HashSet};

use super::{
    Fail, Head, NatsLedger, Tries, build_prefix, decode, encode, head_key, new_id, now,
    release_prefix,
};
use crate::formation::Formation;
use crate::ledger::{App, AppChange, LedgerError, Result};
use crate::names::{AppName, ProcessType};
use crate::slug::SlugId;

impl NatsLedger {
    /// Creates an app (a head of a new incarnation, no release yet).
    pub async fn create_app(&self, name: &AppName) -> Result<App> {
        let change = new_id();
        let mut head = Head {
            incarnation: new_id(),
            app: App {
                name: name.clone(),
                created_at: now(),
                buildpacks: Vec::new(),
                features: Default::default(),
                drains: Vec::new(),
                routing: Default::default(),
                sleep_after: Default::default(),
            },
            last: 0,
            current: 0,
            builds: 0,
            formation: Formation::default(),
            ended: BTreeMap::new(),
            recent: Default::default(),
        };
        head.remember(&change, 0);
        let mut tries = Tries::write();
        loop {
            match self.try_create_app(name, &change, &head).await {
                Ok(app) => return Ok(app),
                Err(f) => tries.after(f).await?,
            }
        }
    }

    async fn try_create_app(&self, name: &AppName, change: &str, head: &Head) -> Result<App, Fail> {
        let key = head_key(name);
        match self.bucket.create(&key, encode(head)).await {
            Ok(_) => Ok(head.app.clone()),
            Err(Fail::Conflict) => match self.bucket.get(&key).await?.value {
                Some(bytes) => {
                    let there: Head = decode(&key, &bytes)?;
                    match there.landed(change) {
                        // An earlier try whose answer was lost.
                        Some(_) => Ok(there.app),
                        None => Err(LedgerError::AppExists(name.to_string()).into()),
                    }
                }
                // Destroyed between the two calls: try again.
                None => Err(Fail::Conflict),
            },
            Err(e) => Err(e),
        }
    }

    /// Removes an app: deleting its head (compare-and-set) is the commit;
    /// its records are then purged, and are unreachable even if a purge
    /// fails, their keys naming an incarnation no head has any more.
    pub async fn destroy_app(&self, name: &AppName) -> Result<()> {
        let mut tries = Tries::write();
        // The incarnation a delete whose answer was lost was aimed at.
        let mut unsure: Option<String> = None;
        loop {
            match self.try_destroy(name, &mut unsure).await {
                Ok(()) => return Ok(()),
                Err(f) => tries.after(f).await?,
            }
        }
    }

    async fn try_destroy(&self, name: &AppName, unsure: &mut Option<String>) -> Result<(), Fail> {
        let s = match (self.load(name).await, unsure.clone()) {
            (Err(Fail::Ledger(LedgerError::AppNotFound(_))), Some(inc)) => {
                return self.purge_records(name, &inc).await;
            }
            (Ok(s), Some(inc)) if s.head.incarnation != inc => {
                return self.purge_records(name, &inc).await;
            }
            (r, _) => r?,
        };
        match self.bucket.delete(&head_key(name), s.rev).await {
            Ok(()) => self.purge_records(name, &s.head.incarnation).await,
            Err(Fail::Cluster { why, maybe: true }) => {
                *unsure = Some(s.head.incarnation);
                Err(Fail::Cluster { why, maybe: true })
            }
            Err(e) => Err(e),
        }
    }

    /// Best effort: the app is gone already.
    async fn purge_records(&self, name: &AppName, inc: &str) -> Result<(), Fail> {
        for prefix in [release_prefix(name, inc), build_prefix(name, inc)] {
            if let Err(e) = self.bucket.purge_under(&prefix).await {
                tracing::warn!("ledger: {name} destroyed, but its records {prefix}.* stay: {e:?}");
            }
        }
        Ok(())
    }

    /// One compare-and-set of an app's head: `edit` changes it (or refuses),
    /// `result` is what the caller gets back.
    async fn change_head<T>(
        &self,
        app: &AppName,
        edit: impl Fn(&mut Head) -> Result<()>,
        result: impl Fn(&Head) -> T,
    ) -> Result<T> {
        let change = new_id();
        let mut tries = Tries::write();
        loop {
            let step = async {
                let mut s = self.load(app).await?;
                if s.head.landed(&change).is_none() {
                    edit(&mut s.head)?;
                    s.head.remember(&change, 0);
                    self.bucket
                        .update(&head_key(app), encode(&s.head), s.rev)
                        .await?;
                }
                Ok::<_, Fail>(result(&s.head))
            };
            match step.await {
                Ok(v) => return Ok(v),
                Err(f) => tries.after(f).await?,
            }
        }
    }

    /// Changes an app's own record and returns it as changed.
    pub async fn update_app(&self, name: &AppName, change: &AppChange) -> Result<App> {
        self.change_head(
            name,
            |head| {
                let app = &mut head.app;
                match change {
                    AppChange::Buildpacks(packs) => app.buildpacks = packs.clone(),
                    AppChange::Feature { name, enabled } => {
                        if *enabled {
                            app.features.insert(name.clone());
                        } else {
                            app.features.remove(name);
                        }
                    }
                    AppChange::AddDrain(drain) => {
                        if app.drains.iter().any(|d| d.url == drain.url) {
                            return Err(LedgerError::DrainExists {
                                app: app.name.to_string(),
                                url: drain.url.clone(),
                            });
                        }
                        app.drains.push(drain.clone());
                    }
                    AppChange::RemoveDrain(which) => {
                        let before = app.drains.len();
                        app.drains.retain(|d| d.id != *which);
                        if app.drains.len() == before {
                            return Err(LedgerError::NoSuchDrain {
                                app: app.name.to_string(),
                                which: which.clone(),
                            });
                        }
                    }
                    AppChange::Routing(r) => app.routing = *r,
                    AppChange::SleepAfter(v) => app.sleep_after = *v,
                }
                Ok(())
            },
            |head| head.app.clone(),
        )
        .await
    }

    /// Every app, by name.
    pub async fn apps(&self) -> Result<Vec<App>> {
        self.read(move || async move {
            let mut apps = Vec::new();
            for key in self.bucket.keys_under("head").await? {
                if let Some(bytes) = self.bucket.get(&key).await?.value {
                    apps.push(decode::<Head>(&key, &bytes)?.app);
                }
            }
            apps.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(apps)
        })
        .await
    }

    pub async fn app(&self, name: &AppName) -> Result<App> {
        self.read(move || async move { Ok(self.load(name).await?.head.app) })
            .await
    }

    pub async fn formation(&self, app: &AppName) -> Result<Formation> {
        self.read(move || async move { Ok(self.load(app).await?.head.formation) })
            .await
    }

    /// `ps:scale`: every type must exist in the current release.
    pub async fn scale(
        &self,
        app: &AppName,
        changes: &BTreeMap<ProcessType, u32>,
    ) -> Result<Formation> {
        let current = self.current(app).await?;
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
        self.change_head(
            app,
            |head| {
                head.formation.apply(changes);
                Ok(())
            },
            |head| head.formation.clone(),
        )
        .await
    }

    /// Every slug a release of a live app names.
    pub async fn slugs_in_use(&self) -> Result<HashSet<SlugId>> {
        let mut used = HashSet::new();
        for app in self.apps().await? {
            match self.releases(&app.name).await {
                Ok(all) => used.extend(all.into_iter().filter_map(|r| r.slug)),
                // Destroyed since it was listed.
                Err(LedgerError::AppNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(used)
    }
}
