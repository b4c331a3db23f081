//! Everything a dyno may do, built in one place.
//!
//! A [`Sandbox`] is the whole grant of one dyno: its directory (`/app`, a
//! fresh copy of the slug's files, and an empty `/tmp`, both under its own
//! host dir and gone when it stops), its environment (config vars plus the
//! platform's four), its socket policy (bind `$PORT` only, on loopback;
//! never connect to the platform's or another dyno's ports, nor to any
//! host-only address but the ports the operator opened), its memory and disk
//! quotas (memory's in [`super::quota`]), and the clocks and randomness it
//! sees. Read this file to audit what a dyno can reach.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use rand::SeedableRng;
use wasmtime::Store;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

use super::DynoError;
use super::egress::EgressHooks;
use super::fence::host_only;
use super::files::DynoFiles;
use super::lifecycle::SharedSignals;
use super::output::{DynoOutput, OutputPipe};
use super::ports::PortBook;
use super::quota::Quota;
use crate::logbus::Bus;

/// Default memory quota of a dyno (Heroku's standard-1X).
pub const DEFAULT_MEMORY: usize = 512 << 20;
/// Handles (files, sockets, streams, pollables…) one store may hold. The
/// default of a million let a guest open thousands of host fds in seconds.
pub(crate) const MAX_HANDLES: usize = 10_000;
/// Bytes a guest may pass to the host in one call.
const HOSTCALL_FUEL: usize = 16 << 20;
/// Most random bytes one `get-random-bytes` call may ask for.
const MAX_RANDOM: u64 = 1 << 20;

/// Fixed clocks and seeds, so a test sees the same dyno behaviour every run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Determinism {
    /// Wall-clock time the dyno sees at its start (it then advances in real
    /// time).
    pub wall_clock_start: Option<SystemTime>,
    /// When set, the monotonic clock starts at zero and the random sources
    /// are seeded from this (mixed with the dyno's name).
    pub seed: Option<u64>,
}

/// A dyno's whole grant. Built once per dyno; proxy dynos build one WASI
/// context from it per request.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub app: String,
    /// `web.1`, `run.4711`.
    pub dyno: String,
    pub release_version: u64,
    /// The app's files as unpacked from the slug; never written to.
    pub files: PathBuf,
    /// `dynos/APP/NAME`: holds `app/` and `tmp/` while the dyno runs.
    pub work_dir: PathBuf,
    /// The release's config vars.
    pub config: BTreeMap<String, String>,
    /// The dyno's `$PORT`, for web and proxy dynos.
    pub port: Option<u16>,
    /// `$PORT` in memory: a command dyno's bind of it is virtual and the
    /// router connects through this ([`super::vsock`]). `None`: a real
    /// loopback port.
    pub door: Option<Arc<super::door::MemPort>>,
    pub ports: PortBook,
    /// Whether the dyno may open connections to other hosts.
    pub egress: bool,
    /// Memory quota in bytes.
    pub memory: usize,
    /// Disk quota in bytes for `/app` + `/tmp` together, or `None` for
    /// none (the dyno's files then share the home's filesystem unbounded).
    /// Enforced by a size-limited tmpfs, so only a process that entered a
    /// private mount namespace sets it (see [`super::disk`]).
    pub disk: Option<u64>,
    pub determinism: Determinism,
}

/// What lives in a dyno's `Store`.
pub struct DynoData {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: EgressHooks,
    pub(crate) files: Arc<DynoFiles>,
    pub(crate) table: ResourceTable,
    /// Files and sockets this store holds, against the host's budget.
    pub(crate) fds: super::fds::DynoFds,
    quota: Quota,
    pub(crate) signals: SharedSignals,
    /// The in-memory `$PORT`, and what the guest's sockets on it are.
    pub(crate) door: Option<Arc<super::door::MemPort>>,
    pub(crate) virt: std::collections::HashMap<u32, super::vsock::VSock>,
}

impl Drop for DynoData {
    /// The guest is gone: its in-memory listener goes with it (a store's
    /// resources are dropped without their guest destructors), so the
    /// router's next connect is refused rather than left waiting.
    fn drop(&mut self) {
        if let Some(door) = &self.door {
            door.close();
        }
    }
}

impl WasiView for DynoData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for DynoData {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

impl Sandbox {
    /// The env a dyno sees: its config vars, then the platform's own.
    pub fn env(&self) -> BTreeMap<String, String> {
        let mut env = self.config.clone();
        if let Some(port) = self.port {
            env.insert("PORT".into(), port.to_string());
        }
        env.insert("DYNO".into(), self.dyno.clone());
        env.insert("WDYNO_APP".into(), self.app.clone());
        env.insert(
            "WDYNO_RELEASE_VERSION".into(),
            self.release_version.to_string(),
        );
        env
    }

    /// A store for one instance of this dyno: WASI context, limits, clocks.
    pub(crate) fn store(
        &self,
        runtime: &super::Runtime,
        args: &[String],
        output: &DynoOutput,
        signals: SharedSignals,
        files: Arc<DynoFiles>,
        stdin: Option<&super::output::AttachedStdin>,
    ) -> Result<Store<DynoData>, DynoError> {
        // The dyno's clocks count from here.
        let started = Instant::now();
        let mut b = WasiCtxBuilder::new();
        if let Some(stdin) = stdin {
            b.stdin(stdin.clone());
        }
        let env: Vec<(String, String)> = self.env().into_iter().collect();
        b.envs(&env);
        b.args(args);
        b.stdout(OutputPipe(output.clone()));
        b.stderr(OutputPipe(output.clone()));
        // `/` (holding `app/` and `tmp/`) is preopened by `files` on the
        // guest's first request for it.
        b.initial_cwd("/app");
        b.max_random_size(MAX_RANDOM);
        self.grant_sockets(&mut b, signals.clone(), output.bus());
        self.fix_clocks(&mut b, started);

        let hooks = EgressHooks::new(self.ports.clone(), self.port, self.egress);
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HANDLES);
        let fds = runtime.fds().dyno(&self.app, &self.dyno, output.bus());
        let data = DynoData {
            wasi: b.build(),
            http: WasiHttpCtx::new(),
            hooks,
            files,
            table,
            fds,
            quota: Quota::new(self.memory, signals.clone()),
            signals,
            door: self.door.clone(),
            virt: Default::default(),
        };
        data.signals.meter.set_quota(self.memory as u64);
        let mut store = Store::new(runtime.engine(), data);
        store.limiter(|d| &mut d.quota);
        store.set_hostcall_fuel(HOSTCALL_FUEL);
        // A busy guest yields to others every epoch tick; each such yield
        // is recorded, which is how the stop sequence tells a computing
        // guest from one parked in the host.
        store.epoch_deadline_callback(|cx| {
            cx.data().signals.saw_yield();
            Ok(wasmtime::UpdateDeadline::Yield(1))
        });
        store.set_epoch_deadline(1);
        Ok(store)
    }

    fn grant_sockets(&self, b: &mut WasiCtxBuilder, signals: SharedSignals, bus: Bus) {
        b.allow_tcp(true);
        b.allow_udp(self.egress || self.ports.any_host_port_allowed());
        // Names are looked up only with egress: a lookup is itself a
        // message to the outside (DNS can carry data out).
        b.allow_ip_name_lookup(self.egress);
        let (ports, own, egress) = (self.ports.clone(), self.port, self.egress);
        let (app, dyno) = (self.app.clone(), self.dyno.clone());
        let told = std::sync::atomic::AtomicBool::new(false);
        b.socket_addr_check(move |addr: SocketAddr, use_| {
            let ok = socket_allowed(&ports, own, egress, addr, use_);
            // A web dyno binding a port of its own choosing (8080): say
            // which port it may bind, once, before it crashes on the error.
            if let (false, SocketAddrUse::TcpBind, Some(own)) = (ok, use_, own)
                && addr.port() != 0
                && !told.swap(true, Ordering::SeqCst)
            {
                bus.platform(&app, &dyno, &super::hints::bind_refused(addr.port(), own));
            }
            if ok && matches!(use_, SocketAddrUse::TcpListen) {
                // Recorded before `listening` fires, which makes it `up`.
                signals.listens_v6.store(addr.is_ipv6(), Ordering::SeqCst);
                signals.listening.send_replace(true);
            }
            Box::pin(async move { ok })
        });
    }

    fn fix_clocks(&self, b: &mut WasiCtxBuilder, started: Instant) {
        let d = self.determinism;
        if let Some(start) = d.wall_clock_start {
            b.wall_clock(FixedWall {
                start: start
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default(),
                origin: started,
            });
        }
        if let Some(seed) = d.seed {
            b.monotonic_clock(FromZero { origin: started });
            let mixed = seed ^ fnv(self.dyno.as_bytes());
            b.secure_random(rand::rngs::StdRng::seed_from_u64(mixed));
            b.insecure_random(rand::rngs::StdRng::seed_from_u64(mixed.rotate_left(17)));
            b.insecure_random_seed(u128::from(mixed));
        }
    }
}

/// The socket policy, as one pure function.
///
/// Binds: only `$PORT`, and only on loopback (the bind itself is moved
/// there by [`super::fence::bind_address`]: the router is the dyno's only way in).
/// Connections and datagrams: never to a platform port or another dyno's
/// port; to a host-only address ([`host_only`]) only on a port the operator
/// opened (or the dyno's own `$PORT`); elsewhere only with egress.
pub fn socket_allowed(
    ports: &PortBook,
    own: Option<u16>,
    egress: bool,
    addr: SocketAddr,
    use_: SocketAddrUse,
) -> bool {
    let port = addr.port();
    // Outgoing sockets are needed for egress or for an opened host port.
    let outgoing = egress || ports.any_host_port_allowed();
    match use_ {
        // Port 0 on bind is the implicit bind before a connect (on the
        // wildcard address): an outgoing socket.
        SocketAddrUse::TcpBind | SocketAddrUse::TcpListen => {
            (own == Some(port) && addr.ip().is_loopback())
                || (port == 0 && outgoing && matches!(use_, SocketAddrUse::TcpBind))
        }
        SocketAddrUse::TcpAccept | SocketAddrUse::UdpReceive => true,
        SocketAddrUse::TcpConnect | SocketAddrUse::UdpSend => {
            if host_only(addr.ip()) || ports.is_fenced(addr.ip()) {
                (egress && own == Some(port))
                    || (ports.host_port_allowed(port) && ports.may_connect(own, port))
            } else {
                egress && ports.may_connect(own, port)
            }
        }
        SocketAddrUse::UdpBind => outgoing && port == 0,
    }
}

struct FixedWall {
    start: Duration,
    origin: Instant,
}

impl wasmtime_wasi::HostWallClock for FixedWall {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }
    fn now(&self) -> Duration {
        self.start + self.origin.elapsed()
    }
}

struct FromZero {
    origin: Instant,
}

impl wasmtime_wasi::HostMonotonicClock for FromZero {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        self.origin.elapsed().as_nanos() as u64
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    fn at(port: u16) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
    }

    #[test]
    fn policy_binds_only_own_port_and_never_reaches_platform() {
        let book = PortBook::new();
        book.reserve(7000);
        let other = book.lease().unwrap();
        let own = Some(40_000);
        use SocketAddrUse::*;
        assert!(socket_allowed(&book, own, true, at(40_000), TcpBind));
        assert!(socket_allowed(&book, own, true, at(40_000), TcpListen));
        assert!(!socket_allowed(&book, own, true, at(40_001), TcpBind));
        assert!(!socket_allowed(&book, own, true, at(0), TcpListen));
        assert!(socket_allowed(&book, own, true, at(0), TcpBind));
        assert!(!socket_allowed(&book, own, false, at(0), TcpBind));
        assert!(!socket_allowed(&book, own, true, at(7000), TcpConnect));
        assert!(!socket_allowed(
            &book,
            own,
            true,
            at(other.port()),
            TcpConnect
        ));
        let net = |port| SocketAddr::from(([192, 0, 2, 9], port));
        assert!(socket_allowed(&book, own, true, net(443), TcpConnect));
        assert!(!socket_allowed(&book, own, false, net(443), TcpConnect));
        assert!(!socket_allowed(&book, own, true, net(7000), TcpConnect));
        assert!(!socket_allowed(&book, own, true, at(53), UdpBind));
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn host_only_addresses_are_fenced_but_opened_ports() {
        let book = PortBook::new();
        book.reserve(7000);
        let own = Some(40_000);
        use SocketAddrUse::*;
        for a in [
            "127.0.0.1:5432",
            "127.0.0.2:5432",
            "0.0.0.0:5432",
            "169.254.169.254:80",
            "[::1]:5432",
            "[::]:5432",
            "[fe80::1]:5432",
            "[::ffff:127.0.0.1]:5432",
            "[::ffff:169.254.169.254]:80",
            "[::127.0.0.1]:5432",
        ] {
            for use_ in [TcpConnect, UdpSend] {
                assert!(
                    !socket_allowed(&book, own, true, addr(a), use_),
                    "{a} {use_:?}"
                );
            }
        }
        // The network stays reachable with egress; the dyno's own port too.
        assert!(socket_allowed(
            &book,
            own,
            true,
            addr("192.0.2.9:5432"),
            TcpConnect
        ));
        assert!(socket_allowed(
            &book,
            own,
            true,
            addr("[2001:db8::1]:53"),
            UdpSend
        ));
        assert!(socket_allowed(
            &book,
            own,
            true,
            addr("[::ffff:192.0.2.9]:80"),
            TcpConnect
        ));
        assert!(socket_allowed(&book, own, true, at(40_000), TcpConnect));
        assert!(!socket_allowed(&book, own, false, at(40_000), TcpConnect));

        book.allow_host_port(5432);
        book.allow_host_port(7000);
        for use_ in [TcpConnect, UdpSend] {
            assert!(socket_allowed(&book, own, true, at(5432), use_));
            assert!(socket_allowed(&book, own, true, addr("[::1]:5432"), use_));
            // An opened port works without egress; nothing else does.
            assert!(socket_allowed(&book, own, false, at(5432), use_));
            assert!(!socket_allowed(
                &book,
                own,
                false,
                addr("192.0.2.9:5432"),
                use_
            ));
            assert!(!socket_allowed(&book, own, true, at(5433), use_));
            // Opening a platform port does not open it.
            assert!(!socket_allowed(&book, own, true, at(7000), use_));
        }
        assert!(socket_allowed(&book, own, false, at(0), TcpBind));
        assert!(socket_allowed(&book, own, false, at(0), UdpBind));
    }
}
