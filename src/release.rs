//! A release: one slug bound to config vars, the unit that runs, rolls
//! back and is recorded in the [`crate::ledger`]. Pure types: no storage.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::slug::SlugId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its release phase (or build) is running.
    Pending,
    Succeeded,
    Failed,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pending => "pending",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub version: u64,
    /// `None` for a release made by a config change before any deploy.
    pub slug: Option<SlugId>,
    pub config: BTreeMap<String, String>,
    /// Process type → command line.
    pub process_types: BTreeMap<String, String>,
    pub description: String,
    /// RFC 3339, microseconds.
    pub created_at: DateTime<Utc>,
    pub status: Status,
}

impl Release {
    /// What an app without releases runs: nothing.
    pub(crate) fn none() -> Self {
        Release {
            version: 0,
            slug: None,
            config: BTreeMap::new(),
            process_types: BTreeMap::new(),
            description: String::new(),
            created_at: DateTime::<Utc>::UNIX_EPOCH,
            status: Status::Succeeded,
        }
    }
}

/// What a deploy asks to record.
#[derive(Debug, Clone)]
pub struct NewRelease {
    pub slug: SlugId,
    pub process_types: BTreeMap<String, String>,
    pub description: String,
}
