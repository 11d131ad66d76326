//! The arenas and caches of this process as it publishes them (the
//! `arenas` and `caches` of its statistics document, which `skmemctl stats`
//! reads through [`crate::inspect`]). The registry hands them to the
//! statistics socket ([`crate::publish`]) when the first arena registers.

use serde::{Deserialize, Serialize};

use super::registry::{snapshot_all, ArenaStats};
use crate::cache::CacheStats;

/// An arena, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArenaSummary {
    /// `skmem.KIND.NAME`.
    pub name: String,
    /// Process-unique id.
    pub id: u64,
    /// `nexus`, `necp` or `system`.
    pub kind: String,
    /// `ACTIVE`, `INACTIVE` or `DEFUNCT`.
    pub state: String,
    /// Size of a mapping (0 when unmapped).
    pub map_size: usize,
    /// Live mappings.
    pub map_count: usize,
    /// Mappings redirected to zero pages.
    pub map_redirected: usize,
    /// Pids holding mappings (at most [`MAPPED_PIDS_MAX`](super::registry::MAPPED_PIDS_MAX)).
    pub mapped_pids: Vec<i32>,
    /// Bytes of the regions held.
    pub mem_total: usize,
    /// Bytes in use in them.
    pub mem_inuse: usize,
}

impl From<&ArenaStats> for ArenaSummary {
    fn from(a: &ArenaStats) -> Self {
        let state = if a.defunct {
            "DEFUNCT"
        } else if a.active {
            "ACTIVE"
        } else {
            "INACTIVE"
        };
        ArenaSummary {
            name: a.name.clone(),
            id: a.id,
            kind: a.kind.name().to_owned(),
            state: state.to_owned(),
            map_size: a.map_size,
            map_count: a.map_count,
            map_redirected: a.map_redirected,
            mapped_pids: a.mapped_pids.clone(),
            mem_total: a.mem_total,
            mem_inuse: a.mem_inuse,
        }
    }
}

/// A cache, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSummary {
    /// The arena holding it.
    pub arena: String,
    /// Cache name.
    pub name: String,
    /// Object size.
    pub obj_size: usize,
    /// Objects in its region.
    pub obj_total: u64,
    /// Objects held by users.
    pub obj_in_use: u64,
    /// Objects parked in magazines (per-CPU workers' and the depot's).
    pub obj_in_magazines: u64,
    /// Objects free in the slab layer.
    pub obj_free_in_slabs: u64,
    /// Rounds per magazine (0: the magazine layer is off).
    pub magazine_rounds: usize,
    /// Full magazines in the depot.
    pub depot_full: u64,
    /// Empty magazines in the depot.
    pub depot_empty: u64,
    /// Times the depot lock was contended.
    pub depot_contention: u64,
    /// Purges so far.
    pub purges: u64,
    /// Reaps so far.
    pub reaps: u64,
}

impl CacheSummary {
    fn of(arena: &str, c: &CacheStats) -> Self {
        CacheSummary {
            arena: arena.to_owned(),
            name: c.name.clone(),
            obj_size: c.obj_size,
            obj_total: c.obj_total,
            obj_in_use: c.obj_in_use,
            obj_in_magazines: c.obj_in_magazines,
            obj_free_in_slabs: c.obj_free_in_slabs,
            magazine_rounds: if c.magazines { c.magazine_rounds } else { 0 },
            depot_full: c.depot_full,
            depot_empty: c.depot_empty,
            depot_contention: c.depot_contention,
            purges: c.purges,
            reaps: c.reaps,
        }
    }
}

/// Every live arena of this process, and their caches, as published.
pub(crate) fn summaries() -> (Vec<ArenaSummary>, Vec<CacheSummary>) {
    let arenas = snapshot_all();
    let caches = arenas
        .iter()
        .flat_map(|a| a.caches.iter().map(|c| CacheSummary::of(&a.name, c)))
        .collect();
    (arenas.iter().map(ArenaSummary::from).collect(), caches)
}

/// The `arenas` and `caches` sections of this process's statistics
/// document, taken now.
pub(crate) fn sections() -> serde_json::Map<String, serde_json::Value> {
    let (summaries, caches) = summaries();
    let mut m = serde_json::Map::new();
    m.insert("arenas".into(), serde_json::json!(summaries));
    m.insert("caches".into(), serde_json::json!(caches));
    m
}
