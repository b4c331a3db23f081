//! `git push wdyno main`: each app has a bare repo under `repos/APP.git`
//! whose `pre-receive` hook builds the pushed commit through the control
//! API. The build's output reaches the pusher as `remote: …` lines; a
//! failed build exits non-zero, so git rejects the push.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::names::AppName;

/// Creates `repos/APP.git` (bare, with the hook) if it is not there yet;
/// returns its path.
pub fn ensure_repo(home: &Path, app: &AppName) -> std::io::Result<PathBuf> {
    let repo = home.join("repos").join(format!("{app}.git"));
    if !repo.join("HEAD").exists() {
        std::fs::create_dir_all(&repo)?;
        let out = Command::new("git")
            .args(["init", "--bare", "--quiet", "--initial-branch=main"])
            .arg(&repo)
            .output()?;
        if !out.status.success() {
            return Err(std::io::Error::other(format!(
                "git init --bare failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
    }
    let exe = std::env::current_exe()?;
    let hook = repo.join("hooks").join("pre-receive");
    std::fs::create_dir_all(hook.parent().expect("hooks dir"))?;
    let script = format!(
        "#!/bin/sh\n# Written by wdyno: builds and releases what is pushed to main.\nexec {} hook pre-receive --home {} -a {}\n",
        shell_quote(&exe.display().to_string()),
        shell_quote(&home.display().to_string()),
        app
    );
    std::fs::write(&hook, script)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))?;
    Ok(repo)
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}
