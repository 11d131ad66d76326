//! The owner's side of mappings held by other processes (see
//! [`crate::lend`]): what it hands over, and its records of each mapper,
//! kept like its own mappings' — a record per mapping, with the mapper's
//! pid — so that redirect, unmap and the postponed defunct follow the
//! rules of Skywalk's `skmem_arena.c` whoever maps. The events name the
//! mapper's pid.

use std::sync::Arc;

use skmem_xdp_common::HookEvent;

use super::{errno, Arena, Fired};
use crate::error::{ArenaError, Error, Result};
use crate::region::{Region, RegionFlags, RegionId};

/// Unmap event flag: the mapper is gone — it exited, closed its socket, or
/// was cut off — rather than having unmapped.
pub(crate) const UNMAP_GONE: u32 = 1 << 1;

/// What a mapper is handed: for each user-mappable region with bytes, in
/// span order, its id and the region (for its memfd). Owner-private
/// regions are never among them, nor guards, which have no memfd.
pub(crate) struct Lent {
    pub(crate) arena_id: u64,
    pub(crate) span_size: u64,
    pub(crate) regions: Vec<(RegionId, Arc<Region>)>,
}

impl Arena {
    /// What a new mapper gets, if the arena can be mapped now (ACTIVE, not
    /// DEFUNCT: ENODEV otherwise, as for [`Arena::map`]).
    pub(crate) fn lend(&self) -> Result<Lent> {
        let st = self.state();
        if !st.active || st.defunct {
            return Err(Error::Arena(ArenaError::NotActive {
                arena: self.name().to_owned(),
            }));
        }
        let mut regions = Vec::new();
        for e in st.layout.entries() {
            if e.flags.contains(RegionFlags::GUARD) {
                continue;
            }
            debug_assert!(e.id.is_user_mappable());
            let r = e
                .region
                .upgrade()
                .ok_or(Error::Arena(ArenaError::NotActive {
                    arena: self.name().to_owned(),
                }))?;
            regions.push((e.id, r));
        }
        Ok(Lent {
            arena_id: self.id(),
            span_size: st.layout.size() as u64,
            regions,
        })
    }

    /// Records the mapping of process `pid`, whose span (in its own
    /// address space) is `span`; refused with ENODEV, as [`Arena::map`],
    /// when the arena went inactive meanwhile. Returns the record's id.
    pub(crate) fn map_lent(&self, pid: u32, span: (usize, usize)) -> Result<u64> {
        let mut st = self.state();
        let r = if !st.active || st.defunct {
            Err(Error::Arena(ArenaError::NotActive {
                arena: self.name().to_owned(),
            }))
        } else {
            Ok(st.add_map(pid as i32, span.1))
        };
        let at = Fired {
            span,
            error: errno(&r),
            pid: Some(pid),
            ..Fired::default()
        };
        self.fire(&mut st, HookEvent::ArenaMap, at);
        r
    }

    /// Records that mapper `pid` redirected its mapping `map_id`; true when
    /// every mapping now is, and the arena went inactive.
    pub(crate) fn redirected_lent(
        &self,
        map_id: u64,
        pid: u32,
        span: (usize, usize),
    ) -> Result<bool> {
        let mut st = self.state();
        let r = match st.maps.iter().position(|m| m.id == map_id) {
            None => Err(Error::Arena(ArenaError::NotMapped {
                arena: self.name().to_owned(),
            })),
            Some(pos) if st.maps[pos].redirected => {
                Err(Error::Arena(ArenaError::AlreadyRedirected {
                    arena: self.name().to_owned(),
                }))
            }
            Some(pos) => Ok(st.mark_redirected(pos)),
        };
        let at = Fired {
            span,
            flags: r.as_ref().map_or(0, |&inactive| inactive as u32),
            error: errno(&r),
            pid: Some(pid),
        };
        self.fire(&mut st, HookEvent::ArenaRedirect, at);
        r
    }

    /// Removes mapper `pid`'s mapping `map_id` — it unmapped, or is `gone`
    /// — exactly as an unmap, the postponed defunct included.
    pub(crate) fn unmapped_lent(&self, map_id: u64, pid: u32, span: (usize, usize), gone: bool) {
        let mut st = self.state();
        let at = Fired {
            span,
            flags: if gone { UNMAP_GONE } else { 0 },
            pid: Some(pid),
            ..Fired::default()
        };
        self.unmap_locked(&mut st, map_id, at);
    }
}
