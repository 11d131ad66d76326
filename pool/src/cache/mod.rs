//! Caches: a slab allocator over a region, with per-worker magazines in front.
//!
//! A [`Cache`] is Skywalk's `skmem_cache` (after Bonwick & Adams, 2001):
//!
//! * the **slab layer** (`slab`) cuts the region's segments into objects
//!   and is the only place that knows which objects exist;
//! * the **depot** (`depot`) holds full and empty magazines, behind one
//!   mutex;
//! * each **worker slot** (`worker`) holds room for two magazines (the
//!   *loaded* and the *previous*), used without any lock or atomic
//!   read-modify-write.
//!
//! Objects are named by their index in the region (`u32`): object `i` is at
//! byte `i * obj_size` of the region, which is exactly what an AF_XDP ring
//! descriptor needs once the region is the UMEM.
//!
//! # How a worker reaches its magazines: an explicit handle
//!
//! A data-path thread calls [`Cache::worker`] once and keeps the returned
//! [`CacheWorker`], as DPDK passes a per-lcore cache. We chose that over
//! thread-locals because:
//! * AF_XDP rings are single-producer/single-consumer, so the thread that
//!   drives a socket already owns an explicit context; the handle lives
//!   beside it, and `&mut self` proves single-threaded use at compile time;
//! * a thread-local cache needs a lookup per call and a destructor at thread
//!   exit, and its objects are stranded when a thread parks or dies — a
//!   handle flushes its magazines to the depot when dropped;
//! * one process may own several arenas: a thread-local per (thread, cache)
//!   pair would need a map.
//!
//! # Purge and reap reach into live workers
//!
//! [`Cache::purge`] must empty *every* magazine, including those of workers
//! that are running (or idle, holding objects). Per-slot locks would put an
//! atomic read-modify-write on every alloc and free. Instead each slot has a
//! `busy` flag the worker sets around its magazine work with plain stores and
//! a compiler fence, and a `purging` flag it checks; the purger sets
//! `purging`, runs `membarrier(PRIVATE_EXPEDITED)` (which makes every
//! running thread of the process execute a full fence — the heavy half of an
//! asymmetric Dekker barrier), then waits for `busy` to clear. From then on
//! the worker sees `purging` and bypasses its magazines until the purger has
//! emptied them and cleared the flag. Without membarrier, both sides use
//! full fences instead.
//!
//! The per-call methods ([`CacheWorker::alloc`], [`CacheWorker::free`]) run
//! the same handshake for each call, written out so that the common case
//! touches only the slot's cache line: `purging` is a byte whose second,
//! constant bit says the slot has no such fast path (no magazines, or no
//! membarrier, where the light barrier must be a full fence), so one load
//! tests both and anything unusual goes out of line to a burst.

mod depot;
mod error;
mod magazine;
#[cfg(test)]
mod model;
mod slab;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crossbeam_utils::CachePadded;

use crate::util::lock;
use depot::Depot;
pub use error::{CacheError, Result};
pub use magazine::magazine_rounds_for;
use slab::SlabLayer;
pub use slab::SlabStats;
pub use worker::{Burst, CacheWorker};
use worker::{CpuCache, WorkerSlot};

use crate::region::{default_workers, Region, RegionFlags};
use crate::sys;

/// Builds a fresh object: called with the object's index and bytes each
/// time the slab layer hands it out.
pub type Constructor = Box<dyn Fn(u32, &mut [u8]) + Send + Sync>;

/// What a cache should be.
#[non_exhaustive]
pub struct CacheParams {
    /// Name for logs and statistics.
    pub name: String,
    /// Bypass the magazine layer (every operation goes to the slabs). Also
    /// implied when the region is NOMAGAZINES.
    pub no_magazines: bool,
    /// Rounds per magazine; `None` picks by object size
    /// ([`magazine_rounds_for`]).
    pub magazine_rounds: Option<usize>,
    /// Worker slots (concurrent [`CacheWorker`]s); 0 = the region's
    /// `workers` parameter, or one per CPU.
    pub workers: usize,
    /// Optional object constructor.
    pub constructor: Option<Constructor>,
}

impl CacheParams {
    /// Defaults: magazines unless the region says NOMAGAZINES, magazine size
    /// by object size, as many worker slots as the region planned for.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            no_magazines: false,
            magazine_rounds: None,
            workers: 0,
            constructor: None,
        }
    }

    /// Sets a constructor.
    pub fn with_constructor(
        mut self,
        ctor: impl Fn(u32, &mut [u8]) + Send + Sync + 'static,
    ) -> Self {
        self.constructor = Some(Box::new(ctor));
        self
    }
}

impl std::fmt::Debug for CacheParams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheParams")
            .field("name", &self.name)
            .field("no_magazines", &self.no_magazines)
            .field("magazine_rounds", &self.magazine_rounds)
            .field("workers", &self.workers)
            .field("constructor", &self.constructor.is_some())
            .finish()
    }
}

/// A slab cache with an optional magazine layer: see the module docs.
pub struct Cache {
    name: String,
    region: Arc<Region>,
    pub(crate) rounds: usize,
    pub(crate) magazines: bool,
    /// Whether the light barrier can be a compiler fence (membarrier works).
    pub(crate) asymmetric: bool,
    constructor: Option<Constructor>,
    slab: Mutex<SlabLayer>,
    depot: Mutex<Depot>,
    pub(crate) slots: Box<[CachePadded<WorkerSlot>]>,
    /// Serialises purge, reap, stats and worker release, which all take
    /// slots exclusively.
    pub(crate) exclusive: Mutex<()>,
    purges: AtomicU64,
    reaps: AtomicU64,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("name", &self.name)
            .field("region", &self.region.name())
            .field("rounds", &self.rounds)
            .field("magazines", &self.magazines)
            .finish_non_exhaustive()
    }
}

impl Cache {
    /// Creates a cache over `region` (a region backs at most one cache, and
    /// a mirror none).
    pub fn new(region: Arc<Region>, params: CacheParams) -> Result<Arc<Cache>> {
        let invalid = |rule| CacheError::InvalidParams {
            cache: params.name.clone(),
            rule,
        };
        if region.is_guard() {
            return Err(invalid("a guard region holds no objects"));
        }
        let magazines = !params.no_magazines && !region.flags().contains(RegionFlags::NOMAGAZINES);
        let rounds = params
            .magazine_rounds
            .unwrap_or_else(|| magazine_rounds_for(region.geometry().obj_size));
        if magazines && !(1..=4096).contains(&rounds) {
            return Err(invalid("magazine rounds must be in 1..=4096"));
        }
        let workers = match (params.workers, region.params().workers) {
            (0, 0) => default_workers(),
            (0, w) => w,
            (w, _) => w,
        };
        if workers > 1024 {
            return Err(invalid("more than 1024 worker slots"));
        }
        crate::failpoint::step("cache create")?;
        if !region.claim_for_cache() {
            return Err(invalid("the region already backs a cache, or is a mirror"));
        }
        let obj_count = region.geometry().obj_count as usize;
        let (slot_capacity, depot_mags) = if magazines {
            // Enough magazines that every object can sit in a full one: the
            // data path never allocates a magazine.
            (2 * rounds, obj_count.div_ceil(rounds) + 1)
        } else {
            (0, 0)
        };
        let asymmetric = sys::asymmetric_barrier_supported();
        let slots = (0..workers)
            .map(|_| CachePadded::new(WorkerSlot::new(slot_capacity, magazines && asymmetric)))
            .collect();
        tracing::debug!(cache = %params.name, region = region.name(), magazines, rounds, workers, "cache created");
        Ok(Arc::new(Cache {
            name: params.name,
            slab: Mutex::new(SlabLayer::new(region.clone())),
            region,
            rounds,
            magazines,
            asymmetric,
            constructor: params.constructor,
            depot: Mutex::new(Depot::new(depot_mags, rounds)),
            slots,
            exclusive: Mutex::new(()),
            purges: AtomicU64::new(0),
            reaps: AtomicU64::new(0),
        }))
    }

    /// The cache's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The region it allocates from.
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// Does it have a magazine layer?
    pub fn has_magazines(&self) -> bool {
        self.magazines
    }

    /// Rounds per magazine.
    pub fn magazine_rounds(&self) -> usize {
        self.rounds
    }

    /// Claims a worker slot: the handle a data-path thread keeps and
    /// allocates through. Fails when every slot is taken.
    pub fn worker(self: &Arc<Self>) -> Result<CacheWorker> {
        crate::failpoint::step("cache worker")?;
        for (i, slot) in self.slots.iter().enumerate() {
            if slot
                .claimed
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                return Ok(CacheWorker::new(self.clone(), i));
            }
        }
        Err(CacheError::NoWorkerSlot {
            cache: self.name.clone(),
            slots: self.slots.len(),
        })
    }

    /// Allocates one object from the slab layer (no magazines). Data-path
    /// threads use a [`CacheWorker`] instead.
    pub fn alloc(&self) -> Option<u32> {
        let mut one = [0u32];
        (self.slab_alloc(&mut one) == 1).then_some(one[0])
    }

    /// Allocates up to `out.len()` objects from the slab layer; returns how
    /// many.
    pub fn alloc_batch(&self, out: &mut [u32]) -> usize {
        self.slab_alloc(out)
    }

    /// Frees one object to the slab layer, which refuses objects it did not
    /// hand out.
    pub fn free(&self, obj: u32) -> Result<()> {
        lock(&self.slab).free(obj, &self.name)
    }

    /// Frees objects to the slab layer; stops at the first refused one and
    /// reports it (the objects before it are freed).
    pub fn free_batch(&self, objs: &[u32]) -> Result<()> {
        let mut slab = lock(&self.slab);
        objs.iter().try_for_each(|&o| slab.free(o, &self.name))
    }

    /// Is `obj` held by a user or parked in a magazine (not free in a slab)?
    pub fn is_allocated(&self, obj: u32) -> bool {
        lock(&self.slab).is_allocated(obj)
    }

    /// The owner's bytes of object `obj`.
    pub fn obj_ptr(&self, obj: u32) -> Result<*mut u8> {
        Ok(self.region.obj_ptr(obj)?)
    }

    pub(crate) fn slab_alloc(&self, out: &mut [u32]) -> usize {
        let n = lock(&self.slab).alloc_into(out);
        if let Some(ctor) = &self.constructor {
            let objects = self.region.objects();
            for &obj in &out[..n] {
                let bytes = objects.get(obj).and_then(|o| {
                    // SAFETY: `obj` was just handed out by the slab layer,
                    // so nobody else holds it while the constructor runs.
                    unsafe { o.slice_mut(0, o.len()) }
                });
                match bytes {
                    Ok(bytes) => ctor(obj, bytes),
                    Err(e) => {
                        tracing::error!(cache = %self.name, error = %e, "object refused its constructor")
                    }
                }
            }
        }
        n
    }

    pub(crate) fn slab_free(&self, objs: &[u32]) {
        if objs.is_empty() {
            return;
        }
        let mut slab = lock(&self.slab);
        for &o in objs {
            if let Err(e) = slab.free(o, &self.name) {
                // Only objects this cache handed out reach here from the
                // magazine layer; a refusal means a caller double-freed.
                tracing::warn!(cache = %self.name, error = %e, "object refused by the slab layer");
            }
        }
    }

    pub(crate) fn depot(&self) -> MutexGuard<'_, Depot> {
        match self.depot.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::WouldBlock) => {
                let mut g = lock(&self.depot);
                g.contention += 1;
                g
            }
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
        }
    }

    fn with_every_slot(&self, f: impl FnMut(&mut CpuCache)) {
        if self.magazines {
            worker::with_every_slot(&self.slots, f);
        }
    }

    /// Empties every magazine — every worker's and the depot's — into the
    /// slabs and gives every empty slab's segment back to the region.
    pub fn purge(&self) {
        let _x = lock(&self.exclusive);
        let mut parked = Vec::new();
        self.with_every_slot(|cpu| parked.extend_from_slice(cpu.drain_above(0)));
        self.depot().drain_all(&mut parked);
        self.slab_free(&parked);
        let destroyed = lock(&self.slab).destroy_empty();
        self.purges.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(cache = %self.name, objects = parked.len(), slabs = destroyed, "cache purged");
    }

    /// Trims the cache to its working set: full magazines the depot has not
    /// needed since the last reap go back to the slabs, each worker's
    /// previous magazine is emptied, and empty slabs are destroyed.
    pub fn reap(&self) {
        let _x = lock(&self.exclusive);
        let mut parked = Vec::new();
        let rounds = self.rounds;
        self.with_every_slot(|cpu| parked.extend_from_slice(cpu.drain_above(rounds)));
        self.depot().reap(&mut parked);
        self.slab_free(&parked);
        lock(&self.slab).destroy_empty();
        self.reaps.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot of the cache's statistics. Briefly takes every worker slot
    /// (a membarrier) to count the rounds they hold.
    pub fn stats(&self) -> CacheStats {
        let _x = lock(&self.exclusive);
        let mut worker_rounds = Vec::with_capacity(self.slots.len());
        self.with_every_slot(|cpu| worker_rounds.push(cpu.len as u64));
        let (contention, (depot_full, depot_empty, depot_ws, depot_rounds)) = {
            let d = self.depot();
            (d.contention, d.counts())
        };
        let (slab, slab_free) = {
            let s = lock(&self.slab);
            (s.stats(), s.free_objects())
        };
        let obj_total = self.region.geometry().obj_count as u64;
        let magazine_objects = depot_rounds as u64 + worker_rounds.iter().sum::<u64>();
        CacheStats {
            name: self.name.clone(),
            region: self.region.name().to_owned(),
            region_uuid: self.region.uuid(),
            obj_size: self.region.geometry().obj_size,
            slab_size: self.region.geometry().seg_size,
            magazines: self.magazines,
            magazine_rounds: self.rounds,
            workers: self.slots.len(),
            workers_claimed: self
                .slots
                .iter()
                .filter(|s| s.claimed.load(Ordering::Relaxed))
                .count(),
            obj_total,
            obj_free_in_slabs: slab_free,
            obj_in_magazines: magazine_objects,
            obj_in_use: obj_total - slab_free - magazine_objects,
            depot_full: depot_full as u64,
            depot_empty: depot_empty as u64,
            depot_working_set: depot_ws as u64,
            depot_contention: contention,
            worker_rounds,
            purges: self.purges.load(Ordering::Relaxed),
            reaps: self.reaps.load(Ordering::Relaxed),
            slab,
        }
    }
}

/// A snapshot of a cache's statistics (Skywalk's `kern.skywalk.stats.cache`).
///
/// `obj_in_use + obj_in_magazines + obj_free_in_slabs == obj_total`, where
/// `obj_in_use` counts objects held by users.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CacheStats {
    /// Cache name.
    pub name: String,
    /// Region name.
    pub region: String,
    /// Region uuid.
    pub region_uuid: uuid::Uuid,
    /// Object size.
    pub obj_size: usize,
    /// Slab (segment) size.
    pub slab_size: usize,
    /// Whether the magazine layer is on.
    pub magazines: bool,
    /// Rounds per magazine.
    pub magazine_rounds: usize,
    /// Worker slots.
    pub workers: usize,
    /// Worker slots currently claimed.
    pub workers_claimed: usize,
    /// Objects in the region.
    pub obj_total: u64,
    /// Objects free in the slab layer (including segments not yet slabs).
    pub obj_free_in_slabs: u64,
    /// Objects parked in magazines (workers' and the depot's).
    pub obj_in_magazines: u64,
    /// Objects held by users.
    pub obj_in_use: u64,
    /// Full magazines in the depot.
    pub depot_full: u64,
    /// Empty magazines in the depot.
    pub depot_empty: u64,
    /// Full magazines the working set did not touch since the last reap.
    pub depot_working_set: u64,
    /// Times the depot lock was contended.
    pub depot_contention: u64,
    /// Rounds held by each worker slot (loaded + previous).
    pub worker_rounds: Vec<u64>,
    /// Purges so far.
    pub purges: u64,
    /// Reaps so far.
    pub reaps: u64,
    /// Slab-layer counters.
    pub slab: SlabStats,
}

impl CacheParams {
    /// These parameters, changed by `f`: how to set a few fields, the
    /// struct being `#[non_exhaustive]` (a field added later is not a
    /// breaking change) — `CacheParams::new("md").with(|p| p.workers = 2)`.
    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
