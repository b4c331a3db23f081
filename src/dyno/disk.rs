//! A dyno's disk quota: `/app` + `/tmp` live on a tmpfs of their own,
//! mounted with `size=` the quota, so a dyno that fills it gets `ENOSPC`
//! and the host's disks (where the ledger, slugs and builds live) never see
//! a byte of it.
//!
//! Why tmpfs: the kernel enforces the size on every write path (plain
//! writes, `fallocate`, `mmap`), a mount costs microseconds, needs no
//! filesystem image, loop device or quota support on the host's disk, and
//! everything in it is gone when it is unmounted. The cost: the pages are
//! memory (or swap), so a full dyno holds up to its disk quota in RAM on
//! top of its memory quota. Inodes are capped too ([`inodes_for`]), since
//! tmpfs counts them outside `size=`.
//!
//! The mounts are made in a private mount namespace that the daemon enters
//! at start ([`enter_private_mounts`], while it is still single-threaded):
//! they are invisible to the rest of the host and vanish with the process,
//! even on `kill -9`. A process that has not entered one cannot enforce a
//! quota (the mounts would outlive it), so [`mount_quota`] refuses.

use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Default disk quota of a dyno for `/app` + `/tmp`.
pub const DEFAULT_DISK: u64 = 512 << 20;

/// Set once this process has its own mount namespace.
static PRIVATE_MOUNTS: AtomicBool = AtomicBool::new(false);

/// How the daemon got its private mount namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// As root: a new mount namespace.
    MountNamespace,
    /// Not root: a user namespace mapping this uid to root, and a mount
    /// namespace in it.
    UserNamespace,
}

/// Why the private mount namespace could not be made.
#[derive(Debug, thiserror::Error)]
#[error("{step}: {source}")]
pub struct IsolationError {
    step: &'static str,
    #[source]
    source: io::Error,
}

/// Enters a private mount namespace (via a user namespace when not root)
/// and makes every mount in it private, so dyno quota mounts neither show
/// on the host nor outlive this process.
///
/// Must be called while the process has one thread: `unshare` of a user
/// namespace fails in a multi-threaded process, and the namespace should
/// hold every thread anyway.
pub fn enter_private_mounts() -> Result<Isolation, IsolationError> {
    let fail = |step| move |source| IsolationError { step, source };
    // SAFETY: plain syscalls on this process.
    let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let how = if uid == 0 {
        check(unsafe { libc::unshare(libc::CLONE_NEWNS) }).map_err(fail("unshare(CLONE_NEWNS)"))?;
        Isolation::MountNamespace
    } else {
        check(unsafe { libc::unshare(libc::CLONE_NEWUSER | libc::CLONE_NEWNS) })
            .map_err(fail("unshare(CLONE_NEWUSER | CLONE_NEWNS)"))?;
        std::fs::write("/proc/self/setgroups", "deny").map_err(fail("writing setgroups"))?;
        std::fs::write("/proc/self/uid_map", format!("0 {uid} 1"))
            .map_err(fail("writing uid_map"))?;
        std::fs::write("/proc/self/gid_map", format!("0 {gid} 1"))
            .map_err(fail("writing gid_map"))?;
        Isolation::UserNamespace
    };
    let root = c"/";
    // SAFETY: valid NUL-terminated path; null source, type and data are
    // allowed for a propagation change.
    check(unsafe {
        libc::mount(
            std::ptr::null(),
            root.as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        )
    })
    .map_err(fail("making / private"))?;
    PRIVATE_MOUNTS.store(true, Ordering::SeqCst);
    Ok(how)
}

/// Whether [`enter_private_mounts`] succeeded in this process.
pub fn private_mounts() -> bool {
    PRIVATE_MOUNTS.load(Ordering::SeqCst)
}

/// tmpfs inodes for a quota: one per 8 KiB, at least 4096. Each costs
/// kernel memory that `size=` does not count, so a dyno creating empty
/// files without end is stopped too.
pub fn inodes_for(bytes: u64) -> u64 {
    (bytes / (8 << 10)).max(4096)
}

/// Mounts a tmpfs of `bytes` at `dir` (which must exist), mode 0700.
pub(crate) fn mount_quota(dir: &Path, bytes: u64) -> io::Result<()> {
    if !private_mounts() {
        return Err(io::Error::other(
            "a disk quota needs the daemon's private mount namespace (mounts \
             made without one would outlive the process)",
        ));
    }
    let target = path_c(dir)?;
    let opts = CString::new(format!(
        "size={bytes},nr_inodes={},mode=0700",
        inodes_for(bytes)
    ))
    .expect("no NUL in mount options");
    // SAFETY: valid NUL-terminated strings for the call's duration.
    check(unsafe {
        libc::mount(
            c"wdyno-dyno".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            opts.as_ptr().cast(),
        )
    })
}

/// Detaches the tmpfs at `dir`; its pages are freed once nothing holds a
/// file in it. Not mounted is not an error.
pub(crate) fn unmount(dir: &Path) -> io::Result<()> {
    let target = path_c(dir)?;
    // SAFETY: valid NUL-terminated path.
    match check(unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) }) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => Ok(()),
        other => other,
    }
}

fn path_c(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other)
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_scale_with_the_quota_with_a_floor() {
        assert_eq!(inodes_for(DEFAULT_DISK), 65_536);
        assert_eq!(inodes_for(1 << 20), 4096);
    }

    #[test]
    fn quota_mount_is_refused_without_a_private_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let e = mount_quota(dir.path(), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("private mount namespace"), "{e}");
    }
}
