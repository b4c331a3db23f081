//! How many dynos this host holds, which of its limits says so, and the
//! slots every running instance takes.
//!
//! Memory is not what runs out first: an idle hello dyno costs ~80 KiB.
//! What does run out is
//! - **memory maps**: wasmtime gives every running instance a fiber stack
//!   with a guard page (two maps, made when the pool is created) and splits
//!   the linear-memory slab where the instance's memory becomes accessible;
//!   the kernel stops a process at `vm.max_map_count` mappings;
//! - **file descriptors**: a web dyno's `$PORT` listener and the router's
//!   pooled connection to it (two ends, both in this process);
//! - **address space**: each linear-memory slot reserves 4 GiB plus a
//!   guard, which is what makes wasm bounds checks free.
//!
//! [`plan`] turns the host's figures into a number of instance *slots*,
//! names the limit that set it and says how to raise it. The pooling
//! allocator is sized from the plan (no constants), the dyno manager
//! refuses a formation that does not fit before any dyno starts, and
//! [`Slots`] hands out the slots at run time: command dynos and one-offs
//! from their share, `wasi:http/proxy` requests from a reserve that command
//! dynos can never take, and no single proxy app more than half of it.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Maps one running instance slot costs: 2 for its fiber stack and guard
/// (made up front by the pool), the rest for its linear memory, tables and
/// the allocations of its store. Measured with the bench's hello app:
/// 1000 idle dynos added about 5 400 maps.
pub const MAPS_PER_SLOT: u64 = 7;
/// Maps kept for the daemon itself: threads, libraries, the allocator's
/// arenas, sled, buildpack runs.
pub const MAP_RESERVE: u64 = 4096;
/// Descriptors a dyno needs at the least: its `$PORT` listener. Everything
/// guests open, listeners included, comes from the guests' pool (see
/// [`super::fds`]).
pub const FDS_PER_SLOT: u64 = 1;
/// Descriptors the platform always keeps for itself (API, router clients
/// and its pooled connections to dynos, the ledger, log streams, builds):
/// at least this many, or an eighth of the limit if that is more.
pub const FD_RESERVE_MIN: u64 = 1024;
/// Most files and sockets one dyno may hold open (a common `ulimit -n`).
pub const FDS_PER_DYNO: u32 = 1024;
/// Address space one linear-memory slot reserves: wasmtime's default 4 GiB
/// reservation (bounds checks elided) plus its 32 MiB guard.
pub const SLOT_ADDRESS_SPACE: u64 = (4 << 30) + (32 << 20);
/// Share of the address space the memory pool may reserve; the rest is for
/// everything else the process maps.
const ADDRESS_SPACE_SHARE: u64 = 2;
/// User address space of a 4-level-paging x86-64 or aarch64 process.
const USER_ADDRESS_SPACE: u64 = 1 << 47;
/// Slots reserved for `wasi:http/proxy` requests: a sixteenth of the pool,
/// at least 8 and at most 256 concurrent requests host-wide.
const PROXY_SHARE: u32 = 16;
const PROXY_MIN: u32 = 8;
const PROXY_MAX: u32 = 256;

/// The figures of this host that bound how many dynos it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// `vm.max_map_count`.
    pub max_map_count: u64,
    /// Mappings this process already has.
    pub maps_in_use: u64,
    /// The soft `RLIMIT_NOFILE` (after the daemon raised it).
    pub open_files: u64,
    /// Usable address space: the smaller of `RLIMIT_AS` and the user space.
    pub address_space: u64,
}

impl HostLimits {
    /// Reads the figures of the running process and host.
    pub fn read() -> Self {
        let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(65_530);
        let maps_in_use = std::fs::read_to_string("/proc/self/maps")
            .map(|s| s.lines().count() as u64)
            .unwrap_or(0);
        HostLimits {
            max_map_count,
            maps_in_use,
            open_files: rlimit(libc::RLIMIT_NOFILE).0,
            address_space: rlimit(libc::RLIMIT_AS).0.min(USER_ADDRESS_SPACE),
        }
    }
}

pub(crate) fn rlimit(resource: libc::__rlimit_resource_t) -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(resource, &mut r) } != 0 {
        return (u64::MAX, u64::MAX);
    }
    (r.rlim_cur, r.rlim_max)
}

/// Which limit of the host sets its capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    MapCount,
    OpenFiles,
    AddressSpace,
    /// The operator asked for less (`wdyno daemon --capacity`).
    Operator,
}

impl Limit {
    /// The limit's name as the operator knows it.
    pub fn name(self) -> &'static str {
        match self {
            Limit::MapCount => "vm.max_map_count",
            Limit::OpenFiles => "the open-files limit (ulimit -n)",
            Limit::AddressSpace => "the address space (4 GiB reserved per dyno's memory)",
            Limit::Operator => "the daemon's --capacity",
        }
    }

    /// How to raise it.
    pub fn how_to_raise(self) -> &'static str {
        match self {
            Limit::MapCount => {
                "raise it as root with `sysctl -w vm.max_map_count=262144` (7 maps per dyno)"
            }
            Limit::OpenFiles => "raise the hard limit (`ulimit -Hn`, systemd's LimitNOFILE)",
            Limit::AddressSpace => {
                "lift any `ulimit -v`; past half of the 128 TiB a process may map, add hosts"
            }
            Limit::Operator => "start the daemon with a larger --capacity",
        }
    }
}

/// What this host holds, in instance slots. A slot is one running
/// instance's share of the pool: one linear memory, its tables, one fiber
/// stack. A dyno of a typical component takes one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capacity {
    /// Every slot of the pool.
    pub slots: u32,
    /// Slots for command dynos: formations and one-offs.
    pub dynos: u32,
    /// Slots only `wasi:http/proxy` requests may take.
    pub proxy: u32,
    /// Most dynos one app's formation may have.
    pub per_app: u32,
    /// The limit that set `slots`.
    pub limit: Limit,
    /// Descriptors guests may hold host-wide (all but the platform's
    /// reserve), one app (half, or two per dyno it may run) and one dyno.
    pub guest_fds: u32,
    pub fds_per_app: u32,
    pub fds_per_dyno: u32,
}

impl Capacity {
    /// One line for the daemon's start and `ps`.
    pub fn describe(&self) -> String {
        format!(
            "dyno capacity {} (set by {}; {}), {} more slots reserved for wasi:http/proxy requests, at most {} dynos per app",
            self.dynos,
            self.limit.name(),
            self.limit.how_to_raise(),
            self.proxy,
            self.per_app
        )
    }
}

/// Operator settings that narrow the plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapacityConfig {
    /// At most this many dyno slots (lower than the host allows, never
    /// higher).
    pub dynos: Option<u32>,
    /// Most dynos one app may have; default half of the host's capacity, so
    /// no one app can take all of it.
    pub per_app: Option<u32>,
}

/// The host's capacity from its limits: the smallest of what the maps, the
/// descriptors and the address space allow.
pub fn plan(host: &HostLimits, cfg: &CapacityConfig) -> Capacity {
    let maps = host
        .max_map_count
        .saturating_sub(host.maps_in_use)
        .saturating_sub(MAP_RESERVE)
        / MAPS_PER_SLOT;
    let fd_reserve = FD_RESERVE_MIN.max(host.open_files / 8);
    let guest_fds = host.open_files.saturating_sub(fd_reserve).max(2);
    let fds = guest_fds / FDS_PER_SLOT;
    let guest_fds = guest_fds.min(u64::from(u32::MAX)) as u32;
    let space = host.address_space / ADDRESS_SPACE_SHARE / SLOT_ADDRESS_SPACE;
    let (mut slots, mut limit) = [
        (maps, Limit::MapCount),
        (fds, Limit::OpenFiles),
        (space, Limit::AddressSpace),
    ]
    .into_iter()
    .min_by_key(|(n, _)| *n)
    .expect("three limits");
    slots = slots.clamp(2, u64::from(u32::MAX / 64));
    let slots = slots as u32;
    let proxy = (slots / PROXY_SHARE).clamp(PROXY_MIN.min(slots / 2), PROXY_MAX);
    let mut dynos = slots - proxy;
    if let Some(n) = cfg.dynos
        && n < dynos
    {
        dynos = n;
        limit = Limit::Operator;
    }
    let per_app = cfg
        .per_app
        .unwrap_or((dynos / 2).max(1))
        .clamp(1, dynos.max(1));
    Capacity {
        slots: dynos + proxy,
        dynos,
        proxy,
        per_app,
        limit,
        guest_fds,
        fds_per_app: (guest_fds / 2)
            .max(per_app.saturating_mul(2))
            .min(guest_fds),
        fds_per_dyno: FDS_PER_DYNO.min(guest_fds / 2).max(1),
    }
}

/// A dyno or request that cannot get a slot without waiting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// The slots of a running platform, handed out as permits that go back when
/// the instance ends.
pub struct Slots {
    capacity: Capacity,
    dynos: Arc<Semaphore>,
    proxy: Arc<Semaphore>,
    /// Each proxy app's own share of the proxy reserve (half of it), so
    /// one app's flood cannot starve another's requests.
    proxy_apps: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Slots held by one running instance.
#[derive(Debug)]
pub struct SlotPermit {
    _first: OwnedSemaphorePermit,
    _second: Option<OwnedSemaphorePermit>,
}

/// One app's way into the proxy reserve (see [`Slots::proxy_share`]).
#[derive(Debug, Clone)]
pub struct ProxyShare {
    own: Arc<Semaphore>,
    shared: Arc<Semaphore>,
    share: u32,
}

impl ProxyShare {
    /// `weight` slots for one request: at once when free (the common case
    /// costs two atomic operations), else waiting for them.
    pub async fn acquire(&self, weight: u32) -> SlotPermit {
        let weight = weight.min(self.share);
        let take = |s: &Arc<Semaphore>| s.clone().try_acquire_many_owned(weight).ok();
        let mine = match take(&self.own) {
            Some(p) => p,
            None => self
                .own
                .clone()
                .acquire_many_owned(weight)
                .await
                .expect("the slot semaphore is never closed"),
        };
        let shared = match take(&self.shared) {
            Some(p) => p,
            None => self
                .shared
                .clone()
                .acquire_many_owned(weight)
                .await
                .expect("the slot semaphore is never closed"),
        };
        SlotPermit {
            _first: mine,
            _second: Some(shared),
        }
    }
}

impl fmt::Debug for Slots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slots")
            .field("capacity", &self.capacity)
            .field("dynos_free", &self.dynos.available_permits())
            .field("proxy_free", &self.proxy.available_permits())
            .finish()
    }
}

impl Slots {
    pub fn new(capacity: Capacity) -> Self {
        Slots {
            capacity,
            dynos: Arc::new(Semaphore::new(capacity.dynos as usize)),
            proxy: Arc::new(Semaphore::new(capacity.proxy as usize)),
            proxy_apps: Mutex::new(HashMap::new()),
        }
    }

    pub fn capacity(&self) -> Capacity {
        self.capacity
    }

    /// Dyno slots held right now.
    pub fn dynos_in_use(&self) -> u32 {
        self.capacity.dynos - self.dynos.available_permits() as u32
    }

    /// `weight` slots for a command dyno, at once if free.
    pub fn try_dyno(&self, weight: u32) -> Result<SlotPermit, Full> {
        self.dynos
            .clone()
            .try_acquire_many_owned(weight.min(self.capacity.dynos))
            .map(|p| SlotPermit {
                _first: p,
                _second: None,
            })
            .map_err(|_| Full)
    }

    /// `weight` slots for a command dyno, waiting until they are free.
    pub async fn dyno(&self, weight: u32) -> SlotPermit {
        let p = self
            .dynos
            .clone()
            .acquire_many_owned(weight.min(self.capacity.dynos))
            .await
            .expect("the slot semaphore is never closed");
        SlotPermit {
            _first: p,
            _second: None,
        }
    }

    /// `app`'s hold on the proxy reserve: its own half and the shared
    /// whole. Taken once per proxy dyno, so a request costs no lookup.
    pub fn proxy_share(&self, app: &str) -> ProxyShare {
        let share = (self.capacity.proxy / 2).max(1);
        let own = self
            .proxy_apps
            .lock()
            .expect("slots lock poisoned")
            .entry(app.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(share as usize)))
            .clone();
        ProxyShare {
            own,
            shared: self.proxy.clone(),
            share,
        }
    }

    /// `weight` slots of the proxy reserve for one request of `app`,
    /// waiting until they are free.
    pub async fn proxy(&self, app: &str, weight: u32) -> SlotPermit {
        self.proxy_share(app).acquire(weight).await
    }

    /// Forgets a destroyed app's share of the proxy reserve.
    pub fn forget_app(&self, app: &str) {
        self.proxy_apps
            .lock()
            .expect("slots lock poisoned")
            .remove(app);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(max_map_count: u64, open_files: u64) -> HostLimits {
        HostLimits {
            max_map_count,
            maps_in_use: 300,
            open_files,
            address_space: USER_ADDRESS_SPACE,
        }
    }

    #[test]
    fn the_smallest_limit_sets_capacity_and_is_named() {
        // Few descriptors: they decide.
        let c = plan(&host(65_530, 4096), &CapacityConfig::default());
        assert_eq!(c.limit, Limit::OpenFiles);
        assert_eq!(c.slots, 4096 - 1024);
        assert_eq!(
            (c.guest_fds, c.fds_per_app, c.fds_per_dyno),
            (3072, 2880, 1024)
        );
        // This machine: 65 530 maps, 20 000 descriptors; the maps decide.
        let c = plan(&host(65_530, 20_000), &CapacityConfig::default());
        assert_eq!(c.guest_fds, 20_000 - 2_500);
        assert_eq!(c.limit, Limit::MapCount);
        assert_eq!(c.slots, ((65_530 - 300 - 4096) / 7) as u32);
        assert_eq!(c.proxy, 256);
        assert_eq!(c.dynos, c.slots - 256);
        assert_eq!(c.per_app, c.dynos / 2);
        assert!(c.describe().contains("sysctl -w vm.max_map_count"));
        // Maps raised too: the address space decides.
        let c = plan(&host(1 << 22, 1 << 20), &CapacityConfig::default());
        assert_eq!(c.limit, Limit::AddressSpace);
        assert_eq!(u64::from(c.slots), (1 << 46) / SLOT_ADDRESS_SPACE);
        assert!(c.dynos >= 10_000, "{c:?}");
    }

    #[test]
    fn the_operator_may_lower_capacity_never_raise_it() {
        let h = host(65_530, 1 << 20);
        let low = plan(
            &h,
            &CapacityConfig {
                dynos: Some(10),
                per_app: Some(4),
            },
        );
        assert_eq!(
            (low.dynos, low.per_app, low.limit),
            (10, 4, Limit::Operator)
        );
        let high = plan(
            &h,
            &CapacityConfig {
                dynos: Some(1_000_000),
                per_app: Some(1_000_000),
            },
        );
        assert_eq!(high.limit, Limit::MapCount);
        assert_eq!(high.per_app, high.dynos);
    }

    #[tokio::test]
    async fn proxy_requests_keep_their_reserve_and_no_app_takes_all_of_it() {
        let slots = Slots::new(Capacity {
            slots: 6,
            dynos: 2,
            proxy: 4,
            per_app: 2,
            limit: Limit::Operator,
            guest_fds: 16,
            fds_per_app: 8,
            fds_per_dyno: 4,
        });
        let _a = slots.try_dyno(1).unwrap();
        let _b = slots.try_dyno(1).unwrap();
        assert_eq!(slots.try_dyno(1).unwrap_err(), Full);
        assert_eq!(slots.dynos_in_use(), 2);
        // Command dynos are full; proxy requests still get slots.
        let p1 = slots.proxy("flood", 1).await;
        let _p2 = slots.proxy("flood", 1).await;
        // The flooding app has its half; a third request of it waits…
        let third = tokio::time::timeout(
            std::time::Duration::from_millis(20),
            slots.proxy("flood", 1),
        )
        .await;
        assert!(third.is_err(), "an app got more than half the reserve");
        // …while another app is served at once.
        let _q = slots.proxy("quiet", 1).await;
        drop(p1);
        let _p3 = slots.proxy("flood", 1).await;
    }
}
