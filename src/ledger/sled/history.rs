//! An app's release history: `v1, v2, …`, append-only, no gaps.
//!
//! Every new release — deploy, config change, rollback — goes through
//! [`SledLedger::append`], one transaction over `heads` and `releases` that
//! bumps the app's last version and writes the release together, so a
//! crash leaves either both or neither.

use std::collections::BTreeMap;

use sled::Transactional;

use super::{
    Head, LedgerError, MAX_CONFIG_BYTES, NewRelease, Release, Result, SledLedger, Status, abort,
    decode, encode, flatten, head_of, now, prefix, release_key, tx_get,
};
use crate::names::{AppName, ConfigKey};

impl SledLedger {
    /// Every release of an app, oldest first.
    pub fn releases(&self, app: &AppName) -> Result<Vec<Release>> {
        self.app(app)?;
        self.releases
            .scan_prefix(prefix(app))
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    pub fn release(&self, app: &AppName, version: u64) -> Result<Release> {
        self.app(app)?;
        let key = release_key(app, version);
        match self.releases.get(&key)? {
            Some(v) => decode(&key, &v),
            None => Err(LedgerError::ReleaseNotFound {
                app: app.to_string(),
                version: format!("v{version}"),
            }),
        }
    }

    /// The release dynos run: the newest that succeeded. An app with no
    /// release yet has an empty `v0` (no slug, no config), never stored.
    pub fn current(&self, app: &AppName) -> Result<Release> {
        let head: Head = match self.heads.get(app.as_str())? {
            Some(v) => decode(app.as_str().as_bytes(), &v)?,
            None => return Err(LedgerError::AppNotFound(app.to_string())),
        };
        match head.current {
            0 => Ok(Release::none()),
            v => self.release(app, v).map_err(|e| match e {
                LedgerError::ReleaseNotFound { .. } => LedgerError::Corrupt {
                    key: format!("{app} v{v}"),
                    why: "the current release is missing".into(),
                },
                other => other,
            }),
        }
    }

    /// The config vars of the current release (empty before any).
    pub fn config(&self, app: &AppName) -> Result<BTreeMap<String, String>> {
        Ok(self.current(app)?.config)
    }

    /// Appends a release built from `make(current)`; it becomes current at
    /// once when `activate` says so (else it is `Pending` until
    /// `finish_release`).
    fn append(
        &self,
        app: &AppName,
        activate: Activate,
        make: impl Fn(&Release) -> std::result::Result<Release, LedgerError>,
    ) -> Result<Release> {
        let r = (&self.heads, &self.releases).transaction(|(heads, rels)| {
            let mut head = head_of(heads, app)?;
            let current: Release = match tx_get(rels, &release_key(app, head.current))? {
                Some(r) => r,
                None if head.current == 0 => Release::none(),
                None => {
                    return abort(LedgerError::Corrupt {
                        key: format!("{app} v{}", head.current),
                        why: "the current release is missing".into(),
                    });
                }
            };
            // While a release phase runs, its release is the newest; anything
            // appended now would be built on the release before it and would
            // hide the deploy once its phase succeeds.
            if head.last > head.current
                && let Some(last) = tx_get::<Release>(rels, &release_key(app, head.last))?
                && last.status == Status::Pending
            {
                return abort(LedgerError::ReleaseInProgress(head.last));
            }
            let mut next = make(&current).or_else(abort)?;
            let activate = activate.now(&next);
            head.last += 1;
            next.version = head.last;
            next.created_at = now();
            next.status = if activate {
                head.current = head.last;
                Status::Succeeded
            } else {
                Status::Pending
            };
            rels.insert(release_key(app, next.version), encode(&next))?;
            heads.insert(app.as_str(), encode(&head))?;
            Ok(next)
        });
        let release = flatten(r)?;
        self.flush()?;
        Ok(release)
    }

    /// Records a deploy: the new slug and process types with the current
    /// config vars. With `activate` it is current at once (`Succeeded`);
    /// without, it is `Pending` while its release phase runs.
    pub fn create_release(
        &self,
        app: &AppName,
        new: NewRelease,
        activate: bool,
    ) -> Result<Release> {
        self.append(app, Activate::deploy(activate), |current| {
            Ok(deployed(current, &new))
        })
    }

    /// Ends a pending release's release phase: success makes it current
    /// (unless a newer release already is), failure records it as failed.
    pub fn finish_release(&self, app: &AppName, version: u64, ok: bool) -> Result<Release> {
        let r = (&self.heads, &self.releases).transaction(|(heads, rels)| {
            let mut head = head_of(heads, app)?;
            let key = release_key(app, version);
            let Some(mut rel): Option<Release> = tx_get(rels, &key)? else {
                return abort(LedgerError::ReleaseNotFound {
                    app: app.to_string(),
                    version: format!("v{version}"),
                });
            };
            if rel.status != Status::Pending {
                return abort(LedgerError::NotPending {
                    version,
                    status: rel.status,
                });
            }
            rel.status = if ok {
                Status::Succeeded
            } else {
                Status::Failed
            };
            if ok && version > head.current {
                head.current = version;
                heads.insert(app.as_str(), encode(&head))?;
            }
            rels.insert(key, encode(&rel))?;
            Ok(rel)
        });
        let rel = flatten(r)?;
        self.flush()?;
        Ok(rel)
    }

    /// `config:set` / `config:unset`: a new release with the changed vars.
    /// Works before any deploy too (the release then has no slug). A
    /// release with a `release` process is `Pending` until its phase ends.
    pub fn set_config(
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
    }

    /// `releases:rollback vN`: a new release with vN's slug, config and
    /// process types. Only a release that succeeded can be rolled back to.
    /// A release with a `release` process is `Pending` until its phase ends.
    pub fn rollback(&self, app: &AppName, version: u64) -> Result<Release> {
        let target = self.release(app, version)?;
        // A release that succeeded never changes again, so reading it
        // outside the transaction is safe.
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
    }
}

/// When an appended release becomes current.
#[derive(Clone, Copy)]
pub(in crate::ledger) enum Activate {
    Now,
    /// Pending: the caller runs its release phase.
    AfterPhase,
    /// Pending if it has code with a `release` process, else now.
    UnlessPhase,
}

impl Activate {
    /// Whether `next` is current at once.
    pub(in crate::ledger) fn now(self, next: &Release) -> bool {
        match self {
            Activate::Now => true,
            Activate::AfterPhase => false,
            // Heroku runs the release phase on every new release of
            // code: config changes and rollbacks too.
            Activate::UnlessPhase => {
                next.slug.is_none() || !next.process_types.contains_key("release")
            }
        }
    }
}

impl Activate {
    /// A deploy's: current at once with `activate`, else after its
    /// release phase.
    pub(in crate::ledger) fn deploy(activate: bool) -> Self {
        match activate {
            true => Activate::Now,
            false => Activate::AfterPhase,
        }
    }
}

/// A deploy's release: `new`'s slug and process types with `current`'s
/// config vars (the ledger numbers and stamps it).
pub(in crate::ledger) fn deployed(current: &Release, new: &NewRelease) -> Release {
    Release {
        slug: Some(new.slug.clone()),
        config: current.config.clone(),
        process_types: new.process_types.clone(),
        description: new.description.clone(),
        ..current.clone()
    }
}

/// `Set A, B config vars`, `Remove C config vars`, or both.
pub(in crate::ledger) fn describe_config_change(
    set: &BTreeMap<ConfigKey, String>,
    unset: &[ConfigKey],
) -> String {
    let set_names = set
        .keys()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let unset_names = unset
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    match (set.is_empty(), unset.is_empty()) {
        (false, true) => format!("Set {set_names} config vars"),
        (true, false) => format!("Remove {unset_names} config vars"),
        _ => format!("Set {set_names} and remove {unset_names} config vars"),
    }
}

/// The release after `current` with these config changes: unsetting a var
/// that is not set is refused, and so is a total over [`MAX_CONFIG_BYTES`].
pub(in crate::ledger) fn change_config(
    current: &Release,
    set: &BTreeMap<ConfigKey, String>,
    unset: &[ConfigKey],
    description: &str,
) -> Result<Release> {
    let mut config = current.config.clone();
    for k in unset {
        if config.remove(k.as_str()).is_none() {
            return Err(LedgerError::NoSuchConfig(k.to_string()));
        }
    }
    for (k, v) in set {
        config.insert(k.to_string(), v.clone());
    }
    let size = config_size(&config);
    if size > MAX_CONFIG_BYTES {
        return Err(LedgerError::ConfigTooBig(size));
    }
    Ok(Release {
        config,
        description: description.to_owned(),
        ..current.clone()
    })
}

/// Bytes of keys and values, as Heroku counts its 32 kB.
pub fn config_size(config: &BTreeMap<String, String>) -> usize {
    config.iter().map(|(k, v)| k.len() + v.len()).sum()
}
