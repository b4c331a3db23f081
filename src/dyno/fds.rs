//! Open files and sockets of dynos, budgeted so no tenant can starve the
//! platform or another app of descriptors.
//!
//! Every dyno lives in the daemon's process, so every file a guest opens
//! and every socket it makes is a descriptor of the daemon: without a
//! budget, four dynos at 5 000 open files each made the router answer H19
//! for other apps and `deploy` fail with "Too many open files". The daemon
//! keeps a reserve for itself (see [`super::capacity`]); guests share a
//! pool beside it, and take from it through the only host calls that make
//! a descriptor: `open-at` and the preopened root (files), `create-tcp-
//! socket`, `accept`, `create-udp-socket` (sockets). Each one is counted
//! against the dyno, its app (at most half the pool) and the pool, and
//! given back when the guest drops the handle or the dyno ends. A guest
//! over its limit gets the error a full descriptor table gives
//! (`new-socket-limit`, `insufficient-memory` for files) and the dyno's log
//! gets one line naming the limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self as fs, DescriptorFlags, HostDescriptor, OpenFlags, PathFlags,
};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode as NetError, IpAddressFamily};
use wasmtime_wasi::p2::bindings::sockets::tcp::HostTcpSocket;
use wasmtime_wasi::p2::bindings::sockets::udp::HostUdpSocket;
use wasmtime_wasi::p2::bindings::sockets::{tcp_create_socket, udp_create_socket};
use wasmtime_wasi::p2::{DynInputStream, DynOutputStream, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::WasiSocketsView;

use super::sandbox::DynoData;
use super::shadows::{FS_TYPES, TCP, TCP_CREATE, UDP, UDP_CREATE};
use crate::logbus::Bus;

/// Raises the soft limit on open files to the hard limit (first raising the
/// hard limit to the kernel's `fs.nr_open` when the process may, as root
/// may), so dynos are never refused descriptors the host would give.
/// Returns the soft limit now in force.
pub fn raise_open_files_limit() -> u64 {
    let (_, hard) = super::capacity::rlimit(libc::RLIMIT_NOFILE);
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(hard);
    let set = |soft: u64, hard: u64| {
        let r = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: setrlimit reads the struct we pass.
        unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) == 0 }
    };
    if nr_open <= hard || !set(nr_open, nr_open) {
        set(hard, hard);
    }
    super::capacity::rlimit(libc::RLIMIT_NOFILE).0
}

/// The host-wide pool of descriptors for guests, and each app's share.
#[derive(Debug)]
pub struct FdPool {
    limit: u32,
    per_app: u32,
    per_dyno: u32,
    used: AtomicU32,
    apps: Mutex<HashMap<String, Arc<AtomicU32>>>,
}

/// Which limit refused a descriptor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FdLimit {
    Dyno(u32),
    App(u32),
    Host(u32),
}

impl FdPool {
    /// A pool of `limit` descriptors, `per_app` of them for one app at most
    /// and `per_dyno` for one dyno.
    pub fn new(limit: u32, per_app: u32, per_dyno: u32) -> Arc<Self> {
        Arc::new(FdPool {
            limit,
            per_app: per_app.clamp(1, limit.max(1)),
            per_dyno: per_dyno.clamp(1, limit.max(1)),
            used: AtomicU32::new(0),
            apps: Mutex::new(HashMap::new()),
        })
    }

    /// Descriptors held by all guests now.
    pub fn used(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }

    /// The counters of one dyno (one store: a proxy dyno has one per
    /// request).
    pub fn dyno(self: &Arc<Self>, app: &str, dyno: &str, bus: Bus) -> DynoFds {
        let counter = self
            .apps
            .lock()
            .expect("fd pool lock poisoned")
            .entry(app.to_owned())
            .or_default()
            .clone();
        DynoFds {
            pool: self.clone(),
            app: counter,
            used: AtomicU32::new(0),
            told: AtomicBool::new(false),
            log: (bus, app.to_owned(), dyno.to_owned()),
        }
    }
}

/// One dyno's descriptors; gives back what it still holds when dropped.
pub struct DynoFds {
    pool: Arc<FdPool>,
    app: Arc<AtomicU32>,
    used: AtomicU32,
    /// The limit line was written (once per dyno).
    told: AtomicBool,
    /// Where that line goes: the bus, the app, the dyno.
    log: (Bus, String, String),
}

/// Adds one to `counter` unless it is at `limit`.
fn take_one(counter: &AtomicU32, limit: u32) -> bool {
    counter
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < limit).then_some(n + 1)
        })
        .is_ok()
}

impl DynoFds {
    /// Takes one descriptor, or says which limit refused it (and logs that
    /// once).
    pub fn take(&self) -> Result<(), FdLimit> {
        let p = &self.pool;
        let refused = if !take_one(&self.used, p.per_dyno) {
            FdLimit::Dyno(p.per_dyno)
        } else if !take_one(&self.app, p.per_app) {
            self.used.fetch_sub(1, Ordering::AcqRel);
            FdLimit::App(p.per_app)
        } else if !take_one(&p.used, p.limit) {
            self.used.fetch_sub(1, Ordering::AcqRel);
            self.app.fetch_sub(1, Ordering::AcqRel);
            FdLimit::Host(p.limit)
        } else {
            return Ok(());
        };
        if !self.told.swap(true, Ordering::AcqRel) {
            let why = match refused {
                FdLimit::Dyno(n) => format!("this dyno has {n} files and sockets open, its limit"),
                FdLimit::App(n) => format!(
                    "the app's dynos have {n} files and sockets open, its limit on this host"
                ),
                FdLimit::Host(n) => {
                    format!("dynos on this host have {n} files and sockets open, the host's limit")
                }
            };
            let (bus, app, dyno) = &self.log;
            bus.platform(
                app,
                dyno,
                &format!("Error (Open files limit) -> {why}; further opens are refused"),
            );
        }
        Err(refused)
    }

    /// Gives one back (the guest dropped a file or socket).
    pub fn give(&self) {
        let dec = |c: &AtomicU32| {
            let _ = c.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        };
        if self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            .is_ok()
        {
            dec(&self.app);
            dec(&self.pool.used);
        }
    }

    /// Descriptors this dyno holds.
    pub fn held(&self) -> u32 {
        self.used.load(Ordering::Relaxed)
    }
}

impl Drop for DynoFds {
    fn drop(&mut self) {
        let n = self.used.swap(0, Ordering::AcqRel);
        self.app.fetch_sub(n, Ordering::AcqRel);
        self.pool.used.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Replaces, in the Linker, the host calls that make a descriptor with
/// counted ones, and the destructors of files and sockets with ones that
/// give the descriptor back. Called after wasmtime-wasi's own definitions,
/// with shadowing allowed.
pub(crate) fn add_to_linker(linker: &mut Linker<DynoData>) -> wasmtime::Result<()> {
    let mut types = linker.instance(FS_TYPES)?;
    types.func_wrap_async(
        "[method]descriptor.open-at",
        |mut store,
         (dir, path_flags, path, open_flags, flags): (
            Resource<Descriptor>,
            PathFlags,
            String,
            OpenFlags,
            DescriptorFlags,
        )| {
            Box::new(async move {
                if store.data().fds.take().is_err() {
                    return Ok((Err(fs::ErrorCode::InsufficientMemory),));
                }
                let data = store.data_mut();
                let opened = HostDescriptor::open_at(
                    &mut data.filesystem(),
                    dir,
                    path_flags,
                    path,
                    open_flags,
                    flags,
                )
                .await;
                match opened {
                    Ok(fd) => Ok((Ok(fd),)),
                    Err(e) => {
                        store.data().fds.give();
                        Ok((Err(e.downcast()?),))
                    }
                }
            })
        },
    )?;
    types.resource(
        "descriptor",
        ResourceType::host::<Descriptor>(),
        |mut store, rep| {
            let data = store.data_mut();
            HostDescriptor::drop(&mut data.filesystem(), Resource::new_own(rep))?;
            data.fds.give();
            Ok(())
        },
    )?;

    let mut create = linker.instance(TCP_CREATE)?;
    create.func_wrap(
        "create-tcp-socket",
        |mut store, (family,): (IpAddressFamily,)| {
            let data = store.data_mut();
            if data.fds.take().is_err() {
                return Ok((Err(NetError::NewSocketLimit),));
            }
            match tcp_create_socket::Host::create_tcp_socket(&mut data.sockets(), family) {
                Ok(s) => Ok((Ok(s),)),
                Err(e) => {
                    data.fds.give();
                    Ok((Err(e.downcast()?),))
                }
            }
        },
    )?;
    let mut tcp = linker.instance(TCP)?;
    tcp.func_wrap(
        "[method]tcp-socket.accept",
        |mut store, (listener,): (Resource<TcpSocket>,)| {
            type Accepted = (
                Resource<TcpSocket>,
                Resource<DynInputStream>,
                Resource<DynOutputStream>,
            );
            let data = store.data_mut();
            if data.fds.take().is_err() {
                return Ok((Err::<Accepted, _>(NetError::NewSocketLimit),));
            }
            let accepted = match super::vsock::accept(data, &listener) {
                Some(virtual_) => virtual_?,
                None => {
                    super::shadows::to_guest(HostTcpSocket::accept(&mut data.sockets(), listener))?
                }
            };
            if accepted.is_err() {
                data.fds.give();
            }
            Ok((accepted,))
        },
    )?;
    tcp.resource(
        "tcp-socket",
        ResourceType::host::<TcpSocket>(),
        |mut store, rep| {
            let data = store.data_mut();
            super::vsock::forget(data, rep);
            HostTcpSocket::drop(&mut data.sockets(), Resource::new_own(rep))?;
            data.fds.give();
            Ok(())
        },
    )?;

    let mut create = linker.instance(UDP_CREATE)?;
    create.func_wrap_async(
        "create-udp-socket",
        |mut store, (family,): (IpAddressFamily,)| {
            Box::new(async move {
                if store.data().fds.take().is_err() {
                    return Ok((Err(NetError::NewSocketLimit),));
                }
                let data = store.data_mut();
                let made =
                    udp_create_socket::Host::create_udp_socket(&mut data.sockets(), family).await;
                match made {
                    Ok(s) => Ok((Ok(s),)),
                    Err(e) => {
                        store.data().fds.give();
                        Ok((Err(e.downcast()?),))
                    }
                }
            })
        },
    )?;
    let mut udp = linker.instance(UDP)?;
    udp.resource(
        "udp-socket",
        ResourceType::host::<UdpSocket>(),
        |mut store, rep| {
            let data = store.data_mut();
            HostUdpSocket::drop(&mut data.sockets(), Resource::new_own(rep))?;
            data.fds.give();
            Ok(())
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logbus::LocalBus;

    #[test]
    fn a_dyno_an_app_and_the_host_each_have_a_limit() {
        let bus = LocalBus::shared();
        bus.open("a");
        let pool = FdPool::new(10, 5, 4);
        let a1 = pool.dyno("a", "web.1", bus.clone());
        for _ in 0..4 {
            a1.take().unwrap();
        }
        assert_eq!(a1.take(), Err(FdLimit::Dyno(4)));
        let a2 = pool.dyno("a", "web.2", bus.clone());
        a2.take().unwrap();
        // App a holds 5 of 10: its half.
        assert_eq!(a2.take(), Err(FdLimit::App(5)));
        let b = pool.dyno("b", "web.1", bus.clone());
        for _ in 0..4 {
            b.take().unwrap();
        }
        let c = pool.dyno("c", "web.1", bus.clone());
        c.take().unwrap();
        assert_eq!(c.take(), Err(FdLimit::Host(10)));
        assert_eq!(pool.used(), 10);
        // Closing gives back; an ended dyno gives back all it held.
        a1.give();
        c.take().unwrap();
        drop(b);
        assert_eq!(pool.used(), 6);
        a1.give();
        a1.give();
        a1.give();
        a1.give();
        assert_eq!(a1.held(), 0);
        assert_eq!(pool.used(), 3);
        // One line per dyno, naming the limit.
        let lines: Vec<String> = bus
            .recent("a", 100)
            .into_iter()
            .map(|l| l.text.clone())
            .filter(|t| t.contains("Open files limit"))
            .collect();
        assert_eq!(
            lines,
            [
                "Error (Open files limit) -> this dyno has 4 files and sockets open, its limit; further opens are refused",
                "Error (Open files limit) -> the app's dynos have 5 files and sockets open, its limit on this host; further opens are refused",
            ]
        );
    }
}
