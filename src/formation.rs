//! The formation: how many dynos of each process type an app runs
//! (`wdyno scale web=2 worker=1`). Pure: the ledger stores it, the manager
//! reads it to decide what should run.
//!
//! Types a later deploy drops stay in the formation until scaled; the
//! manager runs only the types the current release has, and never a
//! `release` dyno (that type runs once per release, as the release phase).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::names::ProcessType;

/// The size every dyno has, as Heroku names sizes: one pooled wasm
/// instance with the platform's memory quota.
pub const DYNO_SIZE: &str = "Basic";

/// Process type → dyno count. Serializes as a JSON object
/// (`{"web": 2, "worker": 1}`); a type absent counts 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Formation(BTreeMap<ProcessType, u32>);

impl Formation {
    /// The count of `ty` (0 when the type was never scaled).
    pub fn get(&self, ty: &str) -> u32 {
        self.0
            .iter()
            .find(|(t, _)| t.as_str() == ty)
            .map_or(0, |(_, n)| *n)
    }

    /// Sets each type's count, keeping the others.
    pub fn apply(&mut self, changes: &BTreeMap<ProcessType, u32>) {
        for (ty, n) in changes {
            self.0.insert(ty.clone(), *n);
        }
    }

    /// This formation with `changes` applied.
    pub fn with(&self, changes: &BTreeMap<ProcessType, u32>) -> Formation {
        let mut next = self.clone();
        next.apply(changes);
        next
    }

    /// Every type ever scaled, with its count (0 included), by type.
    pub fn iter(&self) -> impl Iterator<Item = (&ProcessType, u32)> {
        self.0.iter().map(|(t, n)| (t, *n))
    }

    /// No type has been scaled yet (a new app).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The map form, as the API's JSON shows it.
    pub fn to_map(&self) -> BTreeMap<String, u32> {
        self.0.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }
}

impl FromIterator<(ProcessType, u32)> for Formation {
    fn from_iter<I: IntoIterator<Item = (ProcessType, u32)>>(iter: I) -> Self {
        Formation(iter.into_iter().collect())
    }
}

/// `web=2 worker=1`: types the manager runs (not `release`), as `ps` and
/// the capacity errors print them.
impl fmt::Display for Formation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (ty, n) in &self.0 {
            if ty.as_str() == "release" {
                continue;
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{ty}={n}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(s: &str) -> ProcessType {
        ProcessType::parse(s).unwrap()
    }

    #[test]
    fn counts_apply_and_print() {
        let mut f = Formation::default();
        assert_eq!(f.get("web"), 0);
        f.apply(&BTreeMap::from([(ty("web"), 2), (ty("release"), 1)]));
        let g = f.with(&BTreeMap::from([(ty("worker"), 1)]));
        assert_eq!((f.get("web"), g.get("worker")), (2, 1));
        assert_eq!(g.to_string(), "web=2 worker=1");
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            r#"{"release":1,"web":2,"worker":1}"#
        );
        let back: Formation = serde_json::from_str(r#"{"web":3}"#).unwrap();
        assert_eq!(back.get("web"), 3);
        assert!(serde_json::from_str::<Formation>(r#"{"bad type":3}"#).is_err());
    }
}
