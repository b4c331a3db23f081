//! Build, release, run: source → buildpack → slug → release, with the
//! output streamed as Heroku prints it (`-----> Rust app detected`).
//!
//! Each step checks what it was given before the next runs: a buildpack
//! that fails or times out, a Procfile that does not parse or names a
//! component the slug lacks, a component of no supported world — each ends
//! the build with a clear message and no release. The slug is written (and
//! synced) before the release that names it; a release with a `release`
//! process becomes current only once that process exits 0.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::buildpack::{self, BuildpackError};
use crate::dyno::Cause;
use crate::manager::{Manager, ManagerError};
use crate::names::AppName;
use crate::procfile::{Procfile, ProcfileError};
use crate::release::{Ledger, LedgerError, NewRelease, Release, Status};
use crate::slug::{SlugError, SlugStore};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Buildpack(#[from] BuildpackError),
    #[error(transparent)]
    Procfile(#[from] ProcfileError),
    #[error(
        "no Procfile and the buildpack gave no default process types: add a Procfile (`web: bin/web`)"
    )]
    NoProcesses,
    #[error(transparent)]
    Slug(#[from] SlugError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Manager(#[from] ManagerError),
    #[error(
        "release phase failed ({0}): v{1} was recorded as failed and is not live; dynos stay on the previous release"
    )]
    ReleasePhase(String, u64),
    #[error("copying the source: {0}")]
    Source(#[from] crate::slugignore::SourceError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Where builds happen and what they use.
pub struct Builder {
    pub ledger: Ledger,
    pub slugs: SlugStore,
    pub manager: Arc<Manager>,
    /// `$WDYNO_HOME`: holds `buildpacks/` and `builds/`.
    pub home: PathBuf,
    /// Buildpack caches, one dir per app (`$WDYNO_HOME/cache/build`).
    pub cache: PathBuf,
    pub compile_timeout: std::time::Duration,
    /// Whether buildpacks run in the build sandbox (see
    /// [`buildpack::sandbox`]).
    pub isolation: buildpack::Isolation,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

impl Builder {
    /// Builds `source` (a directory, less what [`crate::slugignore`] leaves
    /// out) and releases it.
    /// `say` receives every output line. `source_desc` names the source in
    /// the release description (a commit, or empty for the slug digest).
    pub async fn deploy(
        &self,
        app: &AppName,
        source: &Path,
        source_desc: &str,
        say: tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<Release, BuildError> {
        let mut build = self.ledger.create_build(app, source_desc)?;
        let result = self.run(app, source, source_desc, &say).await;
        build.status = if result.is_ok() {
            Status::Succeeded
        } else {
            Status::Failed
        };
        if let Ok(r) = &result {
            build.slug = r.slug.clone();
            build.release = Some(r.version);
        }
        if let Err(e) = &result {
            build.output_tail = e.to_string();
        }
        self.ledger.finish_build(app, &build)?;
        result
    }

    /// Removes `app`'s buildpack cache (`apps:destroy`): a new app of the
    /// same name starts from a clean build.
    pub fn forget_cache(&self, app: &AppName) {
        let dir = self.cache.join(app.as_str());
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("removing the build cache {}: {e}", dir.display());
        }
    }

    async fn run(
        &self,
        app: &AppName,
        source: &Path,
        source_desc: &str,
        say: &tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<Release, BuildError> {
        let meta = self.ledger.app(app)?;
        let current = self.ledger.current(app)?;
        let packs = buildpack::resolve(&self.home.join("buildpacks"), &meta.buildpacks)?;
        let work = tempfile::Builder::new()
            .prefix(&format!("{app}-"))
            .tempdir_in(ensure(&self.home.join("builds"))?)
            .map_err(io("creating a build dir"))?;
        let build_dir = work.path().join("app");
        let env_dir = work.path().join("env");
        let cache = ensure(&self.cache.join(app.as_str()))?;
        let (slugs, timeout) = (self.slugs.clone(), self.compile_timeout);
        let runtime = self.manager.runtime().clone();
        let source = source.to_owned();
        let config = current.config.clone();
        let say2 = say.clone();
        let iso = self.isolation.clone();
        // Buildpacks are processes and slugs are files: this part blocks.
        let (slug, procfile) = tokio::task::spawn_blocking(move || {
            let say = |s: String| {
                let _ = say2.send(s);
            };
            // What .gitignore and .slugignore leave out is never built.
            crate::slugignore::copy_source(&source, &build_dir)?;
            std::fs::create_dir_all(&env_dir).map_err(io("creating the env dir"))?;
            for (k, v) in &config {
                std::fs::write(env_dir.join(k), v).map_err(io("writing the env dir"))?;
            }
            let dirs = buildpack::Dirs {
                build: &build_dir,
                cache: &cache,
                env: &env_dir,
            };
            if let buildpack::Isolation::Unsandboxed = iso {
                say(UNSANDBOXED.into());
            }
            let (pack, name) = buildpack::detect(&packs, &iso, dirs)?;
            say(format!("-----> {name} app detected"));
            pack.compile(&iso, dirs, timeout, &mut |l| say(l.to_owned()))?;
            let defaults = pack.release(&iso, dirs)?;
            say("-----> Discovering process types".into());
            let procfile = match std::fs::read_to_string(build_dir.join("Procfile")) {
                Ok(text) => Procfile::parse(&text)?,
                Err(_) => Procfile::from_defaults(&defaults)?,
            };
            if procfile.is_empty() {
                return Err(BuildError::NoProcesses);
            }
            let types: Vec<String> = procfile.iter().map(|(t, _)| t.to_string()).collect();
            say(format!(
                "       Procfile declares types -> {}",
                types.join(", ")
            ));
            let built = list_components(&build_dir);
            procfile.check_components(&built, |component| {
                let path = build_dir.join(component);
                if !path.is_file() {
                    return None;
                }
                Some(runtime.prepare(&path).map(|_| ()).map_err(|e| match e {
                    crate::dyno::DynoError::NotADyno { found, .. } => found,
                    other => other.to_string(),
                }))
            })?;
            say("-----> Compressing...".into());
            let slug = slugs.pack(&build_dir)?;
            let size = std::fs::metadata(slugs.path(&slug))
                .map(|m| m.len())
                .unwrap_or(0);
            say(format!(
                "       Done: {:.1}M",
                size as f64 / (1024.0 * 1024.0)
            ));
            Ok::<_, BuildError>((slug, procfile))
        })
        .await
        .map_err(|e| BuildError::Io {
            what: "the build task".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
        drop(work);

        let description = if source_desc.is_empty() {
            format!("Deploy {}", slug.short())
        } else {
            format!("Deploy {source_desc}")
        };
        let has_phase = procfile.get("release").is_some();
        let release = self.ledger.create_release(
            app,
            NewRelease {
                slug,
                process_types: procfile.to_map(),
                description,
            },
            !has_phase,
        )?;
        let _ = say.send("-----> Launching...".into());
        if let Some(cmd) = procfile.get("release") {
            let _ = say.send(format!("-----> Running release command `{}`", cmd.line));
            let dyno = self
                .manager
                .run_one_off(app, &release, "release", &cmd.line, None)
                .await?;
            let exit = dyno.wait().await;
            let ok = exit.status == 0 && exit.cause == Cause::Exited;
            self.ledger.finish_release(app, release.version, ok)?;
            if !ok {
                return Err(BuildError::ReleasePhase(
                    format!("status {}", exit.status),
                    release.version,
                ));
            }
        }
        // As Heroku: an app's first web process type gets one dyno.
        if self.ledger.formation(app)?.is_empty() && procfile.get("web").is_some() {
            let web = crate::names::ProcessType::parse("web").expect("valid");
            self.ledger
                .scale(app, &std::collections::BTreeMap::from([(web, 1)]))?;
        }
        self.manager.converge(app).await?;
        let failures = self.manager.web_boot_failures(app, release.version).await;
        let _ = say.send(released_line(app, release.version, &failures));
        Ok(self.ledger.release(app, release.version)?)
    }
}

/// Said at the start of every unsandboxed build, so nobody mistakes one for
/// a sandboxed build.
pub const UNSANDBOXED: &str = "-----> Building without a sandbox: the buildpack and the app's build code run as this user, with its files and environment";

/// `Released vN`, or, when web dynos of vN ended before they came up,
/// `Released vN, but web.1 did not come up: REASON; see wdyno logs -a APP`.
fn released_line(app: &AppName, version: u64, failed: &[crate::manager::BootFailure]) -> String {
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

fn ensure(dir: &Path) -> Result<PathBuf, BuildError> {
    std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    Ok(dir.to_owned())
}

/// `bin/*.wasm` and any other `.wasm` under the build, for messages.
fn list_components(build: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "wasm")
                && let Ok(rel) = p.strip_prefix(root)
            {
                out.push(rel.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(build, build, &mut out);
    out.sort();
    out
}
