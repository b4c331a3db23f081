//! Deploy: build, release, run. The build ([`crate::deploy::Builder`])
//! makes a slug; the release records it; a release with a `release`
//! process becomes current only once that process exits 0 (Heroku's
//! release phase); then the app's loop starts the new dynos.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Result, Service, ServiceError};
use crate::dyno::Cause;
use crate::manager::BootFailure;
use crate::names::{AppName, ProcessType};
use crate::release::{NewRelease, Release, Status};

impl Service {
    /// Builds `source` (a directory; `.git` is skipped) and releases it.
    /// `say` receives every output line. `source_desc` names the source in
    /// the release description (a commit, or empty for the slug digest).
    pub async fn deploy(
        &self,
        app: &AppName,
        source: &Path,
        source_desc: &str,
        say: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<Release> {
        let mut build = self.ledger.create_build(app, source_desc).await?;
        let result = self.build_and_release(app, source, source_desc, &say).await;
        build.status = match &result {
            Ok(_) => Status::Succeeded,
            Err(_) => Status::Failed,
        };
        match &result {
            Ok(r) => {
                build.slug = r.slug.clone();
                build.release = Some(r.version);
            }
            Err(e) => build.output_tail = e.to_string(),
        }
        self.ledger.finish_build(app, &build).await?;
        result
    }

    async fn build_and_release(
        &self,
        app: &AppName,
        source: &Path,
        source_desc: &str,
        say: &tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<Release> {
        let meta = self.ledger.app(app).await?;
        let current = self.ledger.current(app).await?;
        let built = self
            .builder
            .build(app, &meta.buildpacks, &current.config, source, say)
            .await?;
        let description = match source_desc {
            "" => format!("Deploy {}", built.slug.short()),
            desc => format!("Deploy {desc}"),
        };
        let phase = built.procfile.get("release").map(|c| c.line.clone());
        self.api_line(app, &description);
        let release = self
            .ledger
            .create_release(
                app,
                NewRelease {
                    slug: built.slug.clone(),
                    process_types: built.procfile.to_map(),
                    description,
                },
                phase.is_none(),
            )
            .await?;
        let _ = say.send("-----> Launching...".into());
        if let Some(command) = phase {
            let _ = say.send(format!("-----> Running release command `{command}`"));
            self.release_phase(app, &release, &command).await?;
        }
        // As Heroku: an app's first web process type gets one dyno.
        if self.ledger.formation(app).await?.is_empty() && built.procfile.get("web").is_some() {
            let web = ProcessType::parse("web").expect("valid");
            self.ledger.scale(app, &BTreeMap::from([(web, 1)])).await?;
        }
        self.manager.reconcile(app).await?;
        // The build's prepared components were the ones the dynos took.
        drop(built);
        self.api_line(app, &format!("Release v{} created", release.version));
        let failures = self.manager.web_boot_failures(app, release.version).await;
        let _ = say.send(released_line(app, release.version, &failures));
        Ok(self.ledger.release(app, release.version).await?)
    }

    /// Runs `command` as `release.N` of a pending release and records
    /// whether it succeeded; only then may the release become current.
    pub(super) async fn release_phase(
        &self,
        app: &AppName,
        release: &Release,
        command: &str,
    ) -> Result<()> {
        let dyno = self
            .manager
            .run_one_off(app, release, "release", command, None)
            .await?;
        let exit = dyno.wait().await;
        let ok = exit.status == 0 && exit.cause == Cause::Exited;
        self.ledger.finish_release(app, release.version, ok).await?;
        match ok {
            true => Ok(()),
            false => Err(ServiceError::ReleasePhase(
                format!("status {}", exit.status),
                release.version,
            )),
        }
    }
}

/// `Released vN`, or, when web dynos of vN ended before they came up,
/// `Released vN, but web.1 did not come up: REASON; see wdyno logs -a APP`.
fn released_line(app: &AppName, version: u64, failed: &[BootFailure]) -> String {
    let Some(first) = failed.first() else {
        return format!("       Released v{version}");
    };
    let names: Vec<&str> = failed.iter().map(|f| f.dyno.as_str()).collect();
    format!(
        "       Released v{version}, but {} did not come up: {}; see wdyno logs -a {app}",
        names.join(", "),
        first.reason
    )
}
