//! The NECP arena: per-flow statistics (Skywalk's
//! `skmem_arena_create_for_necp`).
//!
//! KSTATS objects are the owner's; each is mirrored, read-only, by the
//! USTATS object of the same index, which mappers read. KSTATS is served by
//! a cache without magazines whose constructor zeroes a fresh object.

use std::sync::Arc;

use super::{Arena, ArenaKind, ArenaState, KindState};
use crate::cache::{Cache, CacheParams};
use crate::error::{ArenaError, Error, RegionError, Result};
use crate::region::{Region, RegionFlags, RegionId, RegionParams};

/// What an NECP arena keeps beside its regions ([`Arena::necp`] hands out
/// a snapshot).
#[derive(Debug, Clone)]
pub struct NecpState {
    /// `None` once defunct.
    kstats_cache: Option<Arc<Cache>>,
}

impl NecpState {
    /// The KSTATS cache (no magazines, with a constructor), until defunct.
    pub fn kstats_cache(&self) -> Option<&Arc<Cache>> {
        self.kstats_cache.as_ref()
    }

    pub(crate) fn reap(&self, purge: bool) {
        match &self.kstats_cache {
            Some(c) if purge => c.purge(),
            Some(c) => c.reap(),
            None => {}
        }
    }

    /// Skywalk's NECP teardown in defunct context: the statistics regions
    /// and their cache go.
    pub(crate) fn teardown_for_defunct(&mut self, regions: &mut [Option<Arc<Region>>]) {
        self.kstats_cache = None;
        regions[RegionId::UStats.index()] = None;
        regions[RegionId::KStats.index()] = None;
    }
}

/// Skywalk's rules for the two statistics regions.
fn check(ustats: &RegionParams, kstats: &RegionParams) -> Result<()> {
    let rule = |region, rule| Err(Error::Region(RegionError::InvalidParams { region, rule }));
    if ustats.id != RegionId::UStats {
        return rule(ustats.id, "the user statistics region must be USTATS");
    }
    if kstats.id != RegionId::KStats {
        return rule(kstats.id, "the owner statistics region must be KSTATS");
    }
    if !ustats.flags.contains(RegionFlags::MMAPOK) {
        return rule(RegionId::UStats, "must be MMAPOK (user-mappable)");
    }
    if kstats.flags.contains(RegionFlags::MMAPOK) {
        return rule(RegionId::KStats, "must not be MMAPOK (owner-private)");
    }
    for (id, p) in [(RegionId::UStats, ustats), (RegionId::KStats, kstats)] {
        if p.flags.contains(RegionFlags::SHAREOK) {
            return rule(id, "must not be SHAREOK");
        }
    }
    let (u, k) = (ustats.configure()?, kstats.configure()?);
    if u.seg_size != k.seg_size
        || u.seg_count != k.seg_count
        || u.obj_size != k.obj_size
        || u.obj_count != k.obj_count
    {
        return rule(
            RegionId::UStats,
            "USTATS and KSTATS geometries differ (segment size and count, object size and count)",
        );
    }
    Ok(())
}

impl Arena {
    /// Creates an NECP arena named `skmem.necp.NAME`.
    pub fn create_necp(name: &str, ustats: &RegionParams, kstats: &RegionParams) -> Result<Arena> {
        check(ustats, kstats)?;
        let u = Region::create(name, ustats)?;
        let k = Region::create(name, kstats)?;
        Region::mirror(&k, u.clone())?;
        let size = k.geometry().obj_size;
        let cache = Cache::new(
            k.clone(),
            CacheParams {
                no_magazines: true,
                ..CacheParams::new(format!("kstats.{name}"))
            }
            .with_constructor(move |_, bytes: &mut [u8]| {
                debug_assert_eq!(bytes.len(), size);
                bytes.fill(0);
            }),
        )?;
        let mut st = ArenaState::new(KindState::Necp(NecpState {
            kstats_cache: Some(cache),
        }));
        st.set(RegionId::UStats, u);
        st.set(RegionId::KStats, k);
        Arena::finalize(ArenaKind::Necp, name, st)
    }

    /// NECP: allocates one flow's statistics object (its index in KSTATS
    /// and USTATS).
    pub fn alloc_flow_stats(&self) -> Result<u32> {
        let c = self.flow_stats_cache()?;
        c.alloc().ok_or(Error::Region(RegionError::Exhausted {
            region: RegionId::KStats,
            segments: c.region().geometry().seg_count,
        }))
    }

    /// NECP: frees one flow's statistics object.
    pub fn free_flow_stats(&self, idx: u32) -> Result<()> {
        Ok(self.flow_stats_cache()?.free(idx)?)
    }

    /// The KSTATS cache of an NECP arena that is not defunct.
    fn flow_stats_cache(&self) -> Result<Arc<Cache>> {
        let n = self.necp().ok_or_else(|| {
            Error::Arena(ArenaError::InvalidParams {
                arena: self.name().to_owned(),
                rule: "flow statistics exist only in NECP arenas",
            })
        })?;
        n.kstats_cache.ok_or_else(|| {
            Error::Arena(ArenaError::AlreadyDefunct {
                arena: self.name().to_owned(),
            })
        })
    }
}
