//! The files of a home: private dirs, buildpacks, the sled ledger (alone),
//! slugs, the API token; and this host's name and owner.

use std::path::Path;

use rand::RngExt;

use super::{PlatformError, io};
use crate::ledger::SledLedger;
use crate::slug::{Limits, SlugDir};

/// This host's name, as `wdyno hosts` shows it.
pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The files of the home: private dirs, buildpacks, ledger (`alone`: a
/// cluster host's is the cluster's), slugs (a cluster host's cache of
/// them), token.
pub(super) fn open_home(
    home: &Path,
    limits: Limits,
    alone: bool,
) -> Result<(Option<SledLedger>, SlugDir, String), PlatformError> {
    make_private_dir(home)?;
    let token = api_token(home)?;
    crate::buildpack::install_builtins(&home.join("buildpacks"))
        .map_err(io("writing the built-in buildpacks"))?;
    let ledger = match alone {
        true => Some(SledLedger::open(&home.join("db"))?),
        false => None,
    };
    let slugs = SlugDir::open(home.join("slugs"), limits)?;
    // A home made by an older wdyno (or under a lax umask) keeps no
    // secret readable by other users: the config vars are in db/.
    for dir in ["db", "slugs"].iter().filter(|d| home.join(d).exists()) {
        restrict_tree(&home.join(dir))
            .map_err(io(format!("making {} private", home.join(dir).display())))?;
    }
    // Dyno dirs of a previous run are all stale.
    let _ = std::fs::remove_dir_all(home.join("dynos"));
    Ok((ledger, slugs, token))
}

/// Creates `home` (mode 0700) or takes an existing one's group and other
/// permissions away: it holds the API token and every app's config.
fn make_private_dir(home: &Path) -> Result<(), PlatformError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(home)
        .and_then(|()| std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700)))
        .map_err(io(format!("creating {}", home.display())))
}

/// Takes group and other permissions off everything under `dir`.
fn restrict_tree(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let md = std::fs::symlink_metadata(dir)?;
    if md.file_type().is_symlink() {
        return Ok(());
    }
    let mode = md.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & !0o077))?;
    }
    if md.is_dir() {
        for entry in std::fs::read_dir(dir)? {
            restrict_tree(&entry?.path())?;
        }
    }
    Ok(())
}

/// The API token: kept across restarts in `api-token` (mode 0600).
fn api_token(home: &Path) -> Result<String, PlatformError> {
    let path = home.join("api-token");
    if let Ok(t) = std::fs::read_to_string(&path) {
        let t = t.trim().to_owned();
        if t.len() >= 32 {
            return Ok(t);
        }
    }
    let bytes: [u8; 32] = rand::rng().random();
    let token = hex::encode(bytes);
    write_private(&path, &format!("{token}\n"))?;
    Ok(token)
}

pub(super) fn write_private(path: &Path, text: &str) -> Result<(), PlatformError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(format!("writing {}", tmp.display())))?;
    f.write_all(text.as_bytes())
        .map_err(io(format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(io(format!("writing {}", path.display())))
}

/// The email of the account a daemon serves: `WDYNO_OWNER_EMAIL`, else
/// `$USER@localhost`.
pub(super) fn owner_email() -> String {
    std::env::var("WDYNO_OWNER_EMAIL").unwrap_or_else(|_| {
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "wdyno".into());
        format!("{user}@localhost")
    })
}
