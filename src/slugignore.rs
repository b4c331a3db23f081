//! Which files of an app's source a deploy takes: everything under the
//! directory except what its `.gitignore` files and its `.slugignore`
//! leave out, and the directories that are never source (`.git`,
//! `target`, `node_modules`, `.wdyno`).
//!
//! - `.gitignore`: git's rules (`*`, `?`, `[..]`, `**`, a leading or inner
//!   `/` anchors, a trailing `/` matches directories only, `!` re-includes),
//!   in the directory and every subdirectory that has one; files above the
//!   app's directory, `.git/info/exclude` and the user's global excludes
//!   are not read, so the same directory deploys the same on any machine.
//! - `.slugignore` (Heroku's, same syntax, at the root): Heroku applies it
//!   to the build directory after the build; wdyno applies it when the
//!   source directory is packed, before the build, so an ignored file is
//!   neither uploaded nor built. It is applied on its own: a `.gitignore`
//!   `!` cannot bring back what `.slugignore` removes, and, as on Heroku,
//!   `.slugignore` itself has no `!` lines (they are skipped).
//!
//! Matching is the `ignore` crate's (ripgrep's), which implements git's
//! semantics.

use std::path::{Path, PathBuf};

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Directories never taken from a source, at any depth.
pub const NEVER_SOURCE: [&str; 4] = [".git", "target", "node_modules", ".wdyno"];

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {why}")]
    Ignore { path: String, why: String },
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One entry of a source to copy or tar: a path relative to the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceEntry {
    pub rel: PathBuf,
    pub is_dir: bool,
}

/// The directories and regular files of `root` a deploy takes, parents
/// before children, in name order. Links and devices are left out (a slug
/// cannot hold them).
pub fn source_entries(root: &Path) -> Result<Vec<SourceEntry>, SourceError> {
    let slugignore = slugignore(root)?;
    let mut walk = ignore::WalkBuilder::new(root);
    walk.standard_filters(false)
        .git_ignore(true)
        .require_git(false)
        .parents(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b))
        .filter_entry(move |e| {
            let never = e.depth() > 0
                && e.file_type().is_some_and(|t| t.is_dir())
                && NEVER_SOURCE.iter().any(|n| e.file_name() == *n);
            !never
        });
    let mut out = Vec::new();
    for entry in walk.build() {
        let entry = entry.map_err(|e| SourceError::Ignore {
            path: root.display().to_string(),
            why: e.to_string(),
        })?;
        if entry.depth() == 0 {
            continue;
        }
        let Some(ty) = entry.file_type() else {
            continue;
        };
        if !ty.is_dir() && !ty.is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(root)
            .expect("walked from root")
            .to_owned();
        if slugignore
            .matched_path_or_any_parents(&rel, ty.is_dir())
            .is_ignore()
        {
            continue;
        }
        out.push(SourceEntry {
            rel,
            is_dir: ty.is_dir(),
        });
    }
    Ok(out)
}

fn slugignore(root: &Path) -> Result<Gitignore, SourceError> {
    let file = root.join(".slugignore");
    let bad = |why: String| SourceError::Ignore {
        path: file.display().to_string(),
        why,
    };
    let mut b = GitignoreBuilder::new(root);
    if file.is_file() {
        let text = std::fs::read_to_string(&file).map_err(|e| bad(e.to_string()))?;
        // As on Heroku, `!` lines re-include nothing: they are skipped.
        for line in text.lines().filter(|l| !l.starts_with('!')) {
            b.add_line(Some(file.clone()), line)
                .map_err(|e| bad(e.to_string()))?;
        }
    }
    b.build().map_err(|e| bad(e.to_string()))
}

/// Copies what [`source_entries`] takes of `from` into `to`.
pub fn copy_source(from: &Path, to: &Path) -> Result<(), SourceError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| SourceError::Io { path, source }
    };
    std::fs::create_dir_all(to).map_err(io(to))?;
    for e in source_entries(from)? {
        let dest = to.join(&e.rel);
        if e.is_dir {
            std::fs::create_dir_all(&dest).map_err(io(&dest))?;
        } else {
            std::fs::copy(from.join(&e.rel), &dest).map_err(io(&dest))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let p = dir.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    fn taken(dir: &Path) -> Vec<String> {
        source_entries(dir)
            .unwrap()
            .into_iter()
            .filter(|e| !e.is_dir)
            .map(|e| e.rel.display().to_string())
            .collect()
    }

    #[test]
    fn gitignore_rules_follow_git() {
        let dir = tree(&[
            (
                ".gitignore",
                "# comment\n*.log\n!keep.log\n/build\ncache/\ndocs/**/*.tmp\nsub/only-here\n\\#hash\n",
            ),
            ("a.log", ""),
            ("keep.log", ""),
            ("build/x", ""),
            ("src/build/y", ""),
            ("cache", ""),
            ("deep/cache/z", ""),
            ("docs/a/b/c.tmp", ""),
            ("docs/c.tmp", ""),
            ("sub/only-here", ""),
            ("other/sub/only-here", ""),
            ("#hash", ""),
            ("src/main.rs", ""),
            ("src/.gitignore", "generated.rs\n"),
            ("src/generated.rs", ""),
        ]);
        assert_eq!(
            taken(dir.path()),
            [
                ".gitignore",
                "cache",
                "keep.log",
                "other/sub/only-here",
                "src/.gitignore",
                "src/build/y",
                "src/main.rs",
            ]
        );
    }

    #[test]
    fn slugignore_applies_on_its_own_and_never_source_dirs_are_skipped() {
        let dir = tree(&[
            (".slugignore", "*.psd\n/test\n!art.psd\n"),
            (".gitignore", "!art.psd\n"),
            ("art.psd", ""),
            ("test/t.rs", ""),
            ("lib/test/kept.rs", ""),
            ("target/debug/x", ""),
            ("node_modules/m/index.js", ""),
            (".git/HEAD", ""),
            ("web.js", ""),
        ]);
        assert_eq!(
            taken(dir.path()),
            [".gitignore", ".slugignore", "lib/test/kept.rs", "web.js"]
        );
    }
}
