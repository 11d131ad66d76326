//! The system arena: the process-wide SYSCTLS region of tunables (Skywalk's
//! `skmem_arena_create_for_system`).
//!
//! The region is created once per process, holds one monolithic,
//! read-only-to-mappers, never-redirected object — the tunables of
//! [`crate::sysctls`] — and is retained (never copied) by every system
//! arena.

use std::sync::Arc;

use super::{Arena, ArenaKind, ArenaState, KindState};
use crate::error::{Error, RegionError, Result};
use crate::region::{Region, RegionFlags, RegionId};
pub use crate::sysctls::Sysctls;

/// What a system arena keeps: the SYSCTLS object ([`Arena::system`] hands
/// out a snapshot).
#[derive(Debug, Clone)]
pub struct SystemState {
    sysctls: Arc<Region>,
}

impl SystemState {
    /// The tunables now in force (see [`crate::sysctls`]).
    pub fn sysctls(&self) -> Sysctls {
        crate::sysctls::current()
    }

    /// The SYSCTLS region.
    pub fn region(&self) -> &Arc<Region> {
        &self.sysctls
    }
}

impl Arena {
    /// Creates a system arena named `skmem.system.NAME`, retaining the
    /// process-wide SYSCTLS region.
    pub fn create_system(name: &str) -> Result<Arena> {
        let r = crate::sysctls::region()?;
        let must = RegionFlags::MMAPOK
            | RegionFlags::NOMAGAZINES
            | RegionFlags::UREADONLY
            | RegionFlags::MONOLITHIC;
        let mask = must | RegionFlags::KREADONLY | RegionFlags::SHAREOK;
        if r.flags() & mask != must || !r.flags().contains(RegionFlags::NOREDIRECT) {
            return Err(Error::Region(RegionError::InvalidParams {
                region: RegionId::Sysctls,
                rule: "SYSCTLS must be MMAPOK, NOMAGAZINES, UREADONLY, MONOLITHIC, NOREDIRECT, and neither KREADONLY nor SHAREOK",
            }));
        }
        let mut st = ArenaState::new(KindState::System(SystemState { sysctls: r.clone() }));
        st.set(RegionId::Sysctls, r);
        Arena::finalize(ArenaKind::System, name, st)
    }
}
