//! Per-release files: a release's slug unpacked once under
//! `releases/APP/vN/`, its components prepared once, shared by every
//! dyno of that release (each copies the files into its own `/app`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Manager, ManagerError};
use crate::dyno::Prepared;
use crate::names::AppName;
use crate::procfile::Procfile;
use crate::release::Release;

/// A release unpacked and prepared: what dynos of it start from.
pub struct ReleaseFiles {
    pub version: u64,
    pub dir: PathBuf,
    pub release: Release,
    pub procfile: Procfile,
    components: HashMap<String, Arc<Prepared>>,
}

impl ReleaseFiles {
    /// The prepared component for a slug path, if the Procfile named it.
    pub(super) fn component(&self, path: &str) -> Option<Arc<Prepared>> {
        self.components.get(path).cloned()
    }
}

impl Manager {
    /// Unpacks and prepares a release's slug (once per release).
    pub async fn release_files(
        &self,
        app: &AppName,
        release: &Release,
    ) -> Result<Arc<ReleaseFiles>, ManagerError> {
        if let Some(f) = self.lock().get(app.as_str()).and_then(|a| a.files.clone())
            && f.version == release.version
        {
            return Ok(f);
        }
        let slug = release
            .slug
            .clone()
            .ok_or_else(|| ManagerError::NotDeployed(app.to_string()))?;
        let dir = self
            .releases_dir
            .join(app.as_str())
            .join(format!("v{}", release.version));
        let slugs = self.slugs.clone();
        let runtime = self.runtime.clone();
        let process_types = release.process_types.clone();
        let unpack_dir = dir.clone();
        let (procfile, components) = tokio::task::spawn_blocking(move || {
            if !unpack_dir.join(".wdyno-complete").exists() {
                let _ = std::fs::remove_dir_all(&unpack_dir);
                if let Some(parent) = unpack_dir.parent() {
                    std::fs::create_dir_all(parent).map_err(|e| ManagerError::Io {
                        what: format!("creating {}", parent.display()),
                        source: e,
                    })?;
                }
                slugs.unpack(&slug, &unpack_dir)?;
                std::fs::write(unpack_dir.join(".wdyno-complete"), b"").map_err(|e| {
                    ManagerError::Io {
                        what: "marking the release unpacked".into(),
                        source: e,
                    }
                })?;
            }
            let procfile = Procfile::from_defaults(&process_types)?;
            let mut components = HashMap::new();
            for (_, cmd) in procfile.iter() {
                let path = cmd.component_path();
                if !components.contains_key(&path) {
                    components.insert(path.clone(), runtime.prepare(&unpack_dir.join(&path))?);
                }
            }
            Ok::<_, ManagerError>((procfile, components))
        })
        .await
        .map_err(|e| ManagerError::Command(format!("preparing the release: {e}")))??;
        // The marker file is the platform's, not the app's.
        Ok(Arc::new(ReleaseFiles {
            version: release.version,
            dir,
            release: release.clone(),
            procfile,
            components,
        }))
    }
}
