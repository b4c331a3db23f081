//! The one wasmtime `Engine` and `Linker` of a platform, and the cache of
//! compiled components.
//!
//! *Prepare per release, instantiate per dyno*: [`Runtime::prepare`] turns a
//! component file into a [`Prepared`] — compiled once (or loaded from
//! `cache/compiled/`), world detected, imports linked — so that starting a
//! dyno is only instantiation.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use super::DynoError;
use super::capacity::{self, Capacity, CapacityConfig, HostLimits, Slots};
use super::fds::FdPool;
use super::sandbox::DynoData;
use super::world::{self, World};

/// How often the epoch advances: the CPU time slice a busy dyno gets
/// before it yields to others, and the precision of the stop deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);
/// Wasm stack per dyno: deep enough for real apps (StarlingMonkey needs
/// about 1 MiB), small enough that a runaway recursion traps fast.
const MAX_WASM_STACK: usize = 2 << 20;

/// Engine-wide settings, fixed when the runtime starts.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `cache/compiled/`: precompiled components.
    pub cache_dir: PathBuf,
    /// The largest memory quota any dyno may be given.
    pub max_memory: usize,
    /// Use the pooling allocator for instances (fast per-request
    /// instantiation for proxy dynos). Probed at start: if the machine
    /// refuses the address-space reservation, on-demand allocation is used.
    pub pooling: bool,
    /// Epoch interruption: how a busy dyno yields to others and how the
    /// stop deadline kills it. Always on in the platform; off only to
    /// measure what it costs (`cargo bench`).
    pub epochs: bool,
    /// The operator's narrowing of the host's capacity.
    pub capacity: CapacityConfig,
}

/// The compiler and linker shared by every dyno of a platform.
pub struct Runtime {
    engine: Engine,
    linker: Linker<DynoData>,
    cache_dir: PathBuf,
    pooling: bool,
    slots: Slots,
    fds: Arc<FdPool>,
    compilations: std::sync::atomic::AtomicU64,
    /// Components prepared and still in use, by digest: a release's dynos
    /// instantiate the very component its build prepared and checked.
    prepared: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<Prepared>>>,
    preparations: std::sync::atomic::AtomicU64,
    ticker: Option<std::thread::JoinHandle<()>>,
    stop_ticker: Arc<std::sync::atomic::AtomicBool>,
}

/// A component ready to be instantiated, with its world.
pub struct Prepared {
    /// The component's file, for messages.
    pub path: PathBuf,
    /// sha256 of the component's bytes.
    pub digest: String,
    /// Instance slots one instance of it takes (see [`capacity`]).
    pub weight: u32,
    pub(crate) pre: Pre,
}

pub(crate) enum Pre {
    Command(CommandPre<DynoData>),
    Proxy(ProxyPre<DynoData>),
}

impl Prepared {
    pub fn world(&self) -> World {
        match self.pre {
            Pre::Command(_) => World::Command,
            Pre::Proxy(_) => World::Proxy,
        }
    }
}

/// Instances, memories, tables and stacks of the pool, per slot. A slot is
/// one linear memory and one fiber stack; components of Rust and
/// StarlingMonkey have a few small core instances and tables around their
/// one memory. Core and component instances are only counted by the pool,
/// so their share is generous; tables reserve 160 KiB of address space each.
const CORE_INSTANCES_PER_SLOT: u32 = 16;
const TABLES_PER_SLOT: u32 = 4;

fn engine_config(max_memory: usize, pooling: Option<&Capacity>, epochs: bool) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(epochs);
    config.max_wasm_stack(MAX_WASM_STACK);
    config.cranelift_opt_level(wasmtime::OptLevel::Speed);
    if let Some(cap) = pooling {
        // Sized from the host's capacity, not constants: every slot the
        // platform hands out has its memory, tables and stack here.
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(cap.slots);
        pool.total_core_instances(cap.slots.saturating_mul(CORE_INSTANCES_PER_SLOT));
        pool.total_memories(cap.slots);
        pool.total_tables(cap.slots.saturating_mul(TABLES_PER_SLOT));
        pool.total_stacks(cap.slots);
        pool.max_memory_size(max_memory);
        // A freed slot keeps up to 1 MiB of its memory resident and resets
        // only the pages its last user dirtied (found with Linux's
        // PAGEMAP_SCAN where the kernel has it): a proxy dyno's per-request
        // instance then reuses a warm slot instead of paying `madvise` and
        // page faults each time (12% of its CPU with 64 KiB kept).
        pool.linear_memory_keep_resident(1 << 20);
        pool.table_keep_resident(64 << 10);
        pool.pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

impl Runtime {
    /// Builds the engine and linker and starts the epoch ticker.
    pub fn new(cfg: &RuntimeConfig) -> Result<Self, DynoError> {
        let capacity = capacity::plan(&HostLimits::read(), &cfg.capacity);
        let (engine, pooling) = match cfg.pooling {
            true => {
                match Engine::new(&engine_config(cfg.max_memory, Some(&capacity), cfg.epochs)) {
                    Ok(engine) => (engine, true),
                    Err(e) => {
                        tracing::warn!("pooling allocator unavailable, using on-demand: {e:#}");
                        (Self::plain_engine(cfg)?, false)
                    }
                }
            }
            false => (Self::plain_engine(cfg)?, false),
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(DynoError::host)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut linker)
            .map_err(DynoError::host)?;
        super::lifecycle::add_to_linker(&mut linker).map_err(DynoError::host)?;
        // A dyno's files are laid out on its first request for them.
        linker.allow_shadowing(true);
        wasmtime_wasi::p2::bindings::filesystem::preopens::add_to_linker::<_, HasSelf<DynoData>>(
            &mut linker,
            |d| d,
        )
        .map_err(DynoError::host)?;
        // Binds moved to loopback, ENOSPC noticed for the disk quota.
        super::shadows::add_to_linker(&mut linker).map_err(DynoError::host)?;
        super::vsock::add_to_linker(&mut linker).map_err(DynoError::host)?;
        // Every file and socket a guest opens is counted against its
        // budget.
        super::fds::add_to_linker(&mut linker).map_err(DynoError::host)?;
        linker.allow_shadowing(false);
        std::fs::create_dir_all(&cfg.cache_dir).map_err(|e| DynoError::Io {
            what: format!("creating {}", cfg.cache_dir.display()),
            source: e,
        })?;

        let stop_ticker = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("wdyno-epoch".into())
                .spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| DynoError::Io {
                    what: "starting the epoch thread".into(),
                    source: e,
                })?
        };
        Ok(Runtime {
            engine,
            linker,
            cache_dir: cfg.cache_dir.clone(),
            pooling,
            slots: Slots::new(capacity),
            fds: FdPool::new(
                capacity.guest_fds,
                capacity.fds_per_app,
                capacity.fds_per_dyno,
            ),
            compilations: Default::default(),
            prepared: Default::default(),
            preparations: Default::default(),
            ticker: Some(ticker),
            stop_ticker,
        })
    }

    fn plain_engine(cfg: &RuntimeConfig) -> Result<Engine, DynoError> {
        Engine::new(&engine_config(cfg.max_memory, None, cfg.epochs)).map_err(DynoError::host)
    }

    /// How many components this runtime has compiled (not loaded from the
    /// cache).
    pub fn compilations(&self) -> u64 {
        self.compilations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// How many components this runtime prepared (loaded and linked): a
    /// component still in use is prepared once, however many releases and
    /// dynos run it.
    pub fn preparations(&self) -> u64 {
        self.preparations.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Whether instances come from the pooling allocator.
    pub fn pooling(&self) -> bool {
        self.pooling
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The descriptors guests may hold.
    pub fn fds(&self) -> &Arc<FdPool> {
        &self.fds
    }

    /// The host's capacity and the slots of running instances.
    pub fn slots(&self) -> &Slots {
        &self.slots
    }

    /// Compiles (or loads from the cache) the component at `path`, checks
    /// its world and links its imports.
    pub fn prepare(&self, path: &Path) -> Result<Arc<Prepared>, DynoError> {
        let bytes = std::fs::read(path).map_err(|e| DynoError::Io {
            what: format!("reading {}", path.display()),
            source: e,
        })?;
        world::check_header(path, &bytes)?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let live = self.prepared.lock().expect("prepared lock poisoned");
        if let Some(p) = live.get(&digest).and_then(std::sync::Weak::upgrade) {
            return Ok(p);
        }
        drop(live);
        let component = self.compile_cached(path, &digest, &bytes)?;
        let world = world::detect(path, &self.engine, &component)?;
        let weight = weight(&component);
        let instance_pre =
            self.linker
                .instantiate_pre(&component)
                .map_err(|e| DynoError::UnsupportedImports {
                    path: path.to_owned(),
                    why: format!("{e:#}"),
                })?;
        let pre =
            match world {
                World::Command => Pre::Command(CommandPre::new(instance_pre).map_err(|e| {
                    DynoError::NotADyno {
                        path: path.to_owned(),
                        found: format!("a command without a usable wasi:cli/run: {e:#}"),
                    }
                })?),
                World::Proxy => {
                    Pre::Proxy(
                        ProxyPre::new(instance_pre).map_err(|e| DynoError::NotADyno {
                            path: path.to_owned(),
                            found: format!("a proxy without a usable incoming-handler: {e:#}"),
                        })?,
                    )
                }
            };
        let prepared = Arc::new(Prepared {
            path: path.to_owned(),
            digest: digest.clone(),
            weight,
            pre,
        });
        self.preparations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut live = self.prepared.lock().expect("prepared lock poisoned");
        live.retain(|_, p| p.strong_count() > 0);
        live.insert(digest, Arc::downgrade(&prepared));
        Ok(prepared)
    }

    /// The cache file for a component digest on this engine.
    fn cache_path(&self, digest: &str) -> PathBuf {
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        self.cache_dir
            .join(format!("{digest}-{:016x}.cwasm", h.finish()))
    }

    /// Whether the component with this digest is already compiled.
    pub fn is_cached(&self, digest: &str) -> bool {
        self.cache_path(digest).is_file()
    }

    fn compile_cached(
        &self,
        path: &Path,
        digest: &str,
        bytes: &[u8],
    ) -> Result<Component, DynoError> {
        let cached = self.cache_path(digest);
        if cached.is_file() {
            // SAFETY: only files this platform compiled land in the cache
            // dir, named by the digest of their source and this engine's
            // compatibility hash; a file that fails to load is recompiled.
            match unsafe { Component::deserialize_file(&self.engine, &cached) } {
                Ok(component) => return Ok(component),
                Err(e) => tracing::warn!(
                    "recompiling {}: cached artifact unusable: {e:#}",
                    path.display()
                ),
            }
        }
        let invalid = |e: wasmtime::Error| DynoError::InvalidComponent {
            path: path.to_owned(),
            why: format!("{e:#}"),
        };
        let compiled = self.engine.precompile_component(bytes).map_err(invalid)?;
        self.compilations
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // A name of its own per writer: two threads (or processes) that
        // compile the same component at once each rename a whole file, and
        // the last rename wins with identical bytes.
        static WRITERS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let writer = WRITERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = cached.with_extension(format!("tmp{}-{writer}", std::process::id()));
        if let Err(e) =
            std::fs::write(&tmp, &compiled).and_then(|()| std::fs::rename(&tmp, &cached))
        {
            // The cache only saves time: a dyno still runs without it.
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("not caching {}: {e}", cached.display());
        }
        // SAFETY: just produced by this engine from these bytes.
        unsafe { Component::deserialize(&self.engine, &compiled) }.map_err(invalid)
    }
}

/// Slots one instance of `component` takes: one per linear memory, or per
/// four tables, at least one.
fn weight(component: &Component) -> u32 {
    component.resources_required().map_or(1, |r| {
        r.num_memories
            .max(r.num_tables.div_ceil(TABLES_PER_SLOT))
            .max(1)
    })
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker
            .store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}
