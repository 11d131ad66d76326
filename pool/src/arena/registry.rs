//! The registry of live arenas and their statistics snapshots (Skywalk's
//! arena list and `kern.skywalk.stats.arena`). Channels keep their own
//! (`crate::channel::registry`). What the process publishes of them is in
//! `published`.
//!
//! Every arena registers itself when created and unregisters when its last
//! reference goes; the registry holds only weak references, so it never
//! keeps an arena alive. Snapshots are plain serde structs, for tables and
//! JSON alike.

use std::sync::{Arc, Mutex, Weak};

use super::{Arena, ArenaInner, ArenaKind};
use crate::cache::CacheStats;
use crate::region::{RegionId, RegionStats};
use crate::util::lock;

/// Most mapped pids listed per arena (Skywalk's SK_STATS_ARENA_MAPPED_PID_MAX).
pub const MAPPED_PIDS_MAX: usize = 8;

static REGISTRY: Mutex<Vec<(u64, Weak<ArenaInner>)>> = Mutex::new(Vec::new());

pub(crate) fn register(inner: &Arc<ArenaInner>) {
    lock(&REGISTRY).push((inner.id, Arc::downgrade(inner)));
    // The first arena makes the process visible to `skmemctl stats`.
    #[cfg(feature = "publish")]
    crate::publish::provide(super::published::sections);
}

/// Removes arena `id`; false when it was not registered.
pub(crate) fn unregister(id: u64) -> bool {
    let mut r = lock(&REGISTRY);
    let before = r.len();
    r.retain(|(i, _)| *i != id);
    r.len() != before
}

/// Every live arena of this process, oldest first.
pub fn arenas() -> Vec<Arena> {
    lock(&REGISTRY)
        .iter()
        .filter_map(|(_, w)| w.upgrade().map(Arena))
        .collect()
}

/// Snapshots of every live arena.
pub fn snapshot_all() -> Vec<ArenaStats> {
    arenas().iter().map(Arena::stats).collect()
}

/// An arena's statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ArenaStats {
    /// `skmem.KIND.NAME`.
    pub name: String,
    /// Process-unique id.
    pub id: u64,
    /// Kind.
    pub kind: ArenaKind,
    /// ACTIVE.
    pub active: bool,
    /// DEFUNCT.
    pub defunct: bool,
    /// Size of a mapping (0 when unmapped).
    pub map_size: usize,
    /// Live mappings.
    pub map_count: usize,
    /// Mappings redirected.
    pub map_redirected: usize,
    /// Pids holding mappings (at most [`MAPPED_PIDS_MAX`]).
    pub mapped_pids: Vec<i32>,
    /// Total bytes of the regions held.
    pub mem_total: usize,
    /// Bytes in use in the regions held.
    pub mem_inuse: usize,
    /// The uuid of every region held, by id.
    pub region_uuids: Vec<(RegionId, uuid::Uuid)>,
    /// Each region's statistics.
    pub regions: Vec<RegionStats>,
    /// Each cache's statistics.
    pub caches: Vec<CacheStats>,
}

pub(crate) fn snapshot(arena: &Arena) -> ArenaStats {
    let recs = arena.map_records();
    let regions: Vec<_> = arena
        .region_ids()
        .into_iter()
        .filter_map(|id| arena.region(id))
        .collect();
    let mut caches = Vec::new();
    if let Some(n) = arena.nexus() {
        let pools = [n.rx_pool(), n.tx_pool()];
        let mut seen: Vec<*const crate::pool::PacketPool> = Vec::new();
        for p in pools.into_iter().flatten() {
            if seen.contains(&Arc::as_ptr(p)) {
                continue;
            }
            seen.push(Arc::as_ptr(p));
            caches.extend(p.caches().map(|c| c.stats()));
        }
        for c in [
            n.schema_cache(),
            n.ring_cache(),
            n.txaksd_cache(),
            n.rxfksd_cache(),
        ]
        .into_iter()
        .flatten()
        {
            caches.push(c.stats());
        }
    }
    if let Some(c) = arena.necp().as_ref().and_then(|n| n.kstats_cache()) {
        caches.push(c.stats());
    }
    let (mem_total, mem_inuse) = arena.mem_stats();
    ArenaStats {
        name: arena.name().to_owned(),
        id: arena.id(),
        kind: arena.kind(),
        active: arena.is_active(),
        defunct: arena.is_defunct(),
        map_size: arena.map_size(),
        map_count: recs.len(),
        map_redirected: recs.iter().filter(|r| r.2).count(),
        mapped_pids: recs.iter().take(MAPPED_PIDS_MAX).map(|r| r.0).collect(),
        mem_total,
        mem_inuse,
        region_uuids: regions.iter().map(|r| (r.id(), r.uuid())).collect(),
        regions: regions.iter().map(|r| r.stats()).collect(),
        caches,
    }
}
