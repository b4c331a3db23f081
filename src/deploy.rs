//! Deploying, its build half: source → buildpack → slug, with the output
//! streamed as Heroku prints it (`-----> Rust app detected`). The service
//! layer ([`crate::service`]) records the release and starts the dynos.
//!
//! Each step checks what it was given before the next runs: a buildpack
//! that fails or times out, a Procfile that does not parse or names a
//! component the slug lacks, a component of no supported world — each ends
//! the build with a clear message and no slug. The slug is stored (and
//! synced) before [`Builder::build`] returns, so a release never names a
//! slug that is not there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::buildpack::{self, BuildpackError};
use crate::dyno::{Prepared, Runtime};
use crate::names::AppName;
use crate::procfile::{Procfile, ProcfileError};
use crate::slug::{SlugError, SlugId, SlugStore};

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
    pub slugs: Arc<dyn SlugStore>,
    /// Checks and prepares the built components (the dynos run these).
    pub runtime: Arc<Runtime>,
    /// `$WDYNO_HOME`: holds `buildpacks/` and `builds/`.
    pub home: PathBuf,
    /// Buildpack caches, one dir per app (`$WDYNO_HOME/cache/build`).
    pub cache: PathBuf,
    pub compile_timeout: std::time::Duration,
    /// Whether buildpacks run in the build sandbox (see
    /// [`buildpack::sandbox`]).
    pub isolation: buildpack::Isolation,
}

/// What a build made: the slug, its process types, and its components as
/// prepared while checking them. Holding `components` until the release's
/// dynos start means they instantiate these, not a second preparation.
pub struct Built {
    pub slug: SlugId,
    pub procfile: Procfile,
    pub components: Vec<Arc<Prepared>>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BuildError {
    let what = what.into();
    move |source| BuildError::Io { what, source }
}

impl Builder {
    /// Builds `source` (a directory, less what [`crate::slugignore`] leaves
    /// out) for `app` with its
    /// buildpacks (empty: detect) and config vars (the build's ENV_DIR).
    /// `say` receives every output line.
    pub async fn build(
        &self,
        app: &AppName,
        buildpacks: &[String],
        config: &BTreeMap<String, String>,
        source: &Path,
        say: &tokio::sync::mpsc::UnboundedSender<String>,
    ) -> Result<Built, BuildError> {
        let packs = buildpack::resolve(&self.home.join("buildpacks"), buildpacks)?;
        let (home, cache_root) = (self.home.clone(), self.cache.clone());
        let app_name = app.to_string();
        let timeout = self.compile_timeout;
        let runtime = self.runtime.clone();
        let source = source.to_owned();
        let config = config.clone();
        let say2 = say.clone();
        let iso = self.isolation.clone();
        // Buildpacks are processes and slugs are files: this part blocks.
        let built = crate::blocking::run(
            move || {
                let work = tempfile::Builder::new()
                    .prefix(&format!("{app_name}-"))
                    .tempdir_in(ensure(&home.join("builds"))?)
                    .map_err(io("creating a build dir"))?;
                let cache = ensure(&cache_root.join(&app_name))?;
                let build_dir = work.path().join("app");
                let env_dir = work.path().join("env");
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
                let mut components = Vec::new();
                procfile.check_components(&built, |component| {
                    let path = build_dir.join(component);
                    if !path.is_file() {
                        return None;
                    }
                    Some(match runtime.prepare(&path) {
                        Ok(p) => {
                            components.push(p);
                            Ok(())
                        }
                        Err(crate::dyno::DynoError::NotADyno { found, .. }) => Err(found),
                        Err(other) => Err(other.to_string()),
                    })
                })?;
                say("-----> Compressing...".into());
                Ok((work, procfile, components))
            },
            |why| BuildError::Io {
                what: "the build task".into(),
                source: std::io::Error::other(why),
            },
        )
        .await;
        let (work, procfile, components) = built?;
        let (slug, size) = self.slugs.put(&work.path().join("app")).await?;
        let _ = say.send(format!(
            "       Done: {:.1}M",
            size as f64 / (1024.0 * 1024.0)
        ));
        let _ = tokio::task::spawn_blocking(move || drop(work)).await;
        Ok(Built {
            slug,
            procfile,
            components,
        })
    }
}

/// Said at the start of every unsandboxed build, so nobody mistakes one for
/// a sandboxed build.
pub const UNSANDBOXED: &str = "-----> Building without a sandbox: the buildpack and the app's build code run as this user, with its files and environment";

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
