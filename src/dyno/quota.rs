//! What one dyno's store may grow to: its memory quota (a growth past it
//! fails, and the dyno is marked over quota) and bounds on instances,
//! tables and memories. Each growth is counted into the dyno's meter.

use std::sync::atomic::Ordering;

use wasmtime::ResourceLimiter;

use super::lifecycle::SharedSignals;
use super::meter::Held;

/// Instances, tables, memories one store may create: a component of
/// StarlingMonkey's size uses a handful of each.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 64;
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

/// The memory quota, recording when a guest runs into it.
pub(super) struct Quota {
    memory: usize,
    signals: SharedSignals,
    /// This store's share of the dyno's memory, as its meter counts it.
    held: Held,
}

impl ResourceLimiter for Quota {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory {
            self.signals.over_quota.store(true, Ordering::SeqCst);
            wasmtime::bail!(
                "memory quota exceeded: wanted {} MiB of {} MiB",
                desired >> 20,
                self.memory >> 20
            );
        }
        self.held.grow(current, desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            return Ok(false);
        }
        // Counted as a table of references takes it: a pointer each.
        let slot = std::mem::size_of::<usize>();
        self.held.grow(current * slot, desired * slot);
        Ok(true)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

impl Quota {
    pub(super) fn new(memory: usize, signals: SharedSignals) -> Self {
        Quota {
            memory,
            held: Held::new(signals.meter.clone()),
            signals,
        }
    }
}
