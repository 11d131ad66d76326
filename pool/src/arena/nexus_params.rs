//! What a nexus arena is made of — its parameters with Skywalk's
//! defaults, the nexus advisory a creator may supply — and Skywalk's rules
//! on them, checked before anything is created.

use std::sync::Arc;

use crate::error::{Error, RegionError, Result};
use crate::pool::{PacketPool, PoolParams};
use crate::region::{Region, RegionFlags, RegionId, RegionParams};
use crate::schema;
use crate::sys::page_size;

/// Kinds of nexus advisory (Skywalk's flowswitch and netif advisories).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NexusAdvisoryKind {
    /// A flowswitch advisory.
    Flowswitch,
    /// A netif advisory.
    Netif,
}

impl NexusAdvisoryKind {
    /// The advisory layout version this library speaks for the kind.
    pub const fn current_version(self) -> u32 {
        match self {
            NexusAdvisoryKind::Flowswitch => 1,
            NexusAdvisoryKind::Netif => 1,
        }
    }
}

/// A nexus advisory supplied by the arena's creator: its own monolithic
/// NEXUSADV region holding one object, a kind and a version.
#[derive(Debug, Clone)]
pub struct NexusAdvisory {
    /// The NEXUSADV region (monolithic, one segment).
    pub region: Arc<Region>,
    /// Kind.
    pub kind: NexusAdvisoryKind,
    /// Version of the layout inside, checked against the kind's current one.
    pub version: u32,
}

impl NexusAdvisory {
    /// Creates an advisory region of `size` bytes for `kind`, at the
    /// current version.
    pub fn new(owner: &str, kind: NexusAdvisoryKind, size: usize) -> Result<Self> {
        let region = Region::create(owner, &RegionParams::new(RegionId::NexusAdv, size, 1))?;
        Ok(Self {
            region,
            kind,
            version: kind.current_version(),
        })
    }
}

/// Bytes of one flow advisory entry.
pub const FLOWADV_ENTRY_SIZE: usize = 16;
/// Bytes of the per-channel statistics object.
pub const STATS_SIZE: usize = 256;
/// Bytes of one user slot descriptor `{md_idx u32, flags u16, len u16}`.
pub const USD_SIZE: usize = 8;
/// Bytes of one owner slot descriptor (slot → packet).
pub const KSD_SIZE: usize = 8;
/// Rings of a port: fill, completion, RX, TX.
pub const RINGS: usize = 4;

/// What a nexus arena is made of. [`NexusParams::new`] fills in Skywalk's
/// defaults; every field may be changed before [`Arena::create_nexus`](super::Arena::create_nexus).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct NexusParams {
    /// The port's name (e.g. `veth0q0`); the arena is `skmem.nexus.NAME`.
    pub name: String,
    /// Region parameters by id (Skywalk's `srp[]`); an object count of 0
    /// means "configured empty". Pool region entries carry the flags
    /// Skywalk checks; the pool itself is sized by `pool`.
    pub regions: Vec<RegionParams>,
    /// The packet pool to create when none is supplied.
    pub pool: PoolParams,
    /// Caller-supplied RX pool.
    pub rx_pool: Option<Arc<PacketPool>>,
    /// Caller-supplied TX pool.
    pub tx_pool: Option<Arc<PacketPool>>,
    /// Owner-only (Skywalk's kernel-only): nothing user-visible.
    pub owner_only: bool,
    /// Truncated buffers in the pool this arena creates.
    pub truncated_buf: bool,
    /// The user allocates packets itself (Skywalk's NAF_USER_PKT_POOL):
    /// the user slot descriptors are then writable.
    pub user_packet_pool: bool,
    /// Optional nexus advisory.
    pub nexus_advisory: Option<NexusAdvisory>,
    /// Worker slots: each is two rings in the RING region (see
    /// [`crate::workers`]), which must then hold [`RINGS`] + 2 × this many
    /// objects — [`with_worker_slots`](Self::with_worker_slots) sees to it.
    pub worker_slots: usize,
    /// Entries of each worker ring (a power of two; each ring must fit a
    /// RING object).
    pub worker_ring_entries: u32,
}

/// The size of a RING object holding a ring of `entries` descriptors:
/// one page for its producer, consumer and flags, then the descriptors (16
/// bytes at most), in whole pages — each ring is mapped on its own.
fn ring_obj_size(entries: u32) -> usize {
    let page = page_size();
    (page + entries as usize * 16).next_multiple_of(page)
}

impl NexusParams {
    /// Defaults from the process's [sysctls](crate::sysctls) (unless
    /// tuned: a pool of 4096 × 2 KiB packets, RING objects for rings of
    /// 1024 entries, 256 slot descriptors per path, 512 flow advisories,
    /// one guard page at each end), and statistics.
    pub fn new(name: impl Into<String>) -> Self {
        let page = page_size();
        let t = crate::sysctls::current();
        let ring_entries = t.ring_entries.max(t.umem_ring_entries) as usize;
        let slots = t.slot_descs as usize;
        let guard = page * t.guard_pages as usize;
        let sized = |id: RegionId, size: usize, count: usize| RegionParams::new(id, size, count);
        let regions = RegionId::ALL
            .iter()
            .map(|&id| match id {
                RegionId::GuardHead | RegionId::GuardTail => sized(id, guard, 1),
                RegionId::Schema => sized(
                    id,
                    schema::schema_size(RegionId::COUNT, schema::SCHEMA_MAX_WORKERS)
                        .next_multiple_of(page),
                    1,
                ),
                // Room for one ring's producer/consumer/flags page and its
                // descriptors (16 bytes at most).
                RegionId::Ring => sized(id, ring_obj_size(ring_entries as u32), RINGS),
                RegionId::TxaUsd | RegionId::RxfUsd => sized(id, slots * USD_SIZE, 1),
                RegionId::TxaKsd | RegionId::RxfKsd => sized(id, slots * KSD_SIZE, 1),
                RegionId::UStats => sized(id, STATS_SIZE, 1),
                RegionId::FlowAdv => sized(id, t.max_flows as usize * FLOWADV_ENTRY_SIZE, 1),
                // Pool regions: sized by the pool, flags checked here.
                RegionId::BufDef
                | RegionId::BufLarge
                | RegionId::RxBufDef
                | RegionId::RxBufLarge
                | RegionId::TxBufDef
                | RegionId::TxBufLarge
                | RegionId::Umd
                | RegionId::Ubft
                | RegionId::Kmd
                | RegionId::RxKmd
                | RegionId::TxKmd
                | RegionId::Kbft
                | RegionId::RxKbft
                | RegionId::TxKbft => sized(id, 64, 0),
                // Not for a nexus arena.
                RegionId::NexusAdv | RegionId::Sysctls | RegionId::KStats | RegionId::Intrinsic => {
                    sized(id, 64, 0)
                }
            })
            .collect();
        Self {
            name: name.into(),
            regions,
            pool: PoolParams::default(),
            rx_pool: None,
            tx_pool: None,
            owner_only: false,
            truncated_buf: false,
            user_packet_pool: false,
            nexus_advisory: None,
            worker_slots: 0,
            worker_ring_entries: t.ring_entries,
        }
    }

    /// Sets `n` worker slots, and room for their rings in the RING region.
    pub fn with_worker_slots(mut self, n: usize) -> Self {
        self.worker_slots = n;
        self.region_mut(RegionId::Ring).obj_count = RINGS + 2 * n;
        self
    }

    /// Sizes the RING region's objects for rings of up to `entries`
    /// descriptors: what a channel on this arena needs before it asks for
    /// larger rings than the sysctls' (which size them by default).
    pub fn with_ring_entries(mut self, entries: u32) -> Self {
        self.region_mut(RegionId::Ring).obj_size = ring_obj_size(entries);
        self
    }

    /// The parameters of region `id`.
    pub fn region(&self, id: RegionId) -> &RegionParams {
        &self.regions[id.index()]
    }

    /// Mutable parameters of region `id`.
    pub fn region_mut(&mut self, id: RegionId) -> &mut RegionParams {
        &mut self.regions[id.index()]
    }

    pub(super) fn flags(&self, id: RegionId) -> RegionFlags {
        self.regions[id.index()].flags
    }
}

/// Skywalk's rules on region flags, checked before anything is created.
pub(super) fn check_flags(p: &NexusParams) -> Result<()> {
    use RegionId::*;
    let rule = |region, rule| Err(Error::Region(RegionError::InvalidParams { region, rule }));
    if p.regions.len() != RegionId::COUNT
        || p.regions.iter().enumerate().any(|(i, r)| r.id.index() != i)
    {
        return rule(
            GuardHead,
            "the region table must list every region id, in order",
        );
    }
    for id in [GuardHead, GuardTail] {
        if !p.flags(id).contains(RegionFlags::GUARD) {
            return rule(id, "must be a GUARD region (neither readable nor writable)");
        }
    }
    for id in [Schema, FlowAdv, NexusAdv] {
        if !p.flags(id).contains(RegionFlags::UREADONLY) {
            return rule(id, "must be UREADONLY");
        }
    }
    for id in [TxaUsd, RxfUsd] {
        let ro = p.flags(id).contains(RegionFlags::UREADONLY);
        if p.user_packet_pool && ro {
            return rule(
                id,
                "must be writable (not UREADONLY) with a user packet pool",
            );
        }
        if !p.user_packet_pool && !ro {
            return rule(id, "must be UREADONLY without a user packet pool");
        }
    }
    for id in [
        GuardHead, Schema, Ring, BufDef, BufLarge, Umd, Ubft, TxaUsd, RxfUsd, UStats, FlowAdv,
        NexusAdv, GuardTail,
    ] {
        if !p.flags(id).contains(RegionFlags::MMAPOK) {
            return rule(id, "must be MMAPOK (user-mappable)");
        }
    }
    for id in [
        Kmd, RxKmd, TxKmd, Kbft, RxKbft, TxKbft, TxaKsd, RxfKsd, KStats,
    ] {
        if p.flags(id).contains(RegionFlags::MMAPOK) {
            return rule(id, "must not be MMAPOK (owner-private)");
        }
    }
    for id in [BufDef, BufLarge, RxBufDef, RxBufLarge, TxBufDef, TxBufLarge] {
        if !p.flags(id).contains(RegionFlags::SHAREOK) {
            return rule(id, "must be SHAREOK (buffers may back several sockets)");
        }
    }
    for id in [
        GuardHead, Schema, Ring, Umd, Ubft, TxaUsd, RxfUsd, UStats, FlowAdv, NexusAdv, GuardTail,
        Kmd, RxKmd, TxKmd, Kbft, RxKbft, TxKbft, TxaKsd, RxfKsd, KStats,
    ] {
        if p.flags(id).contains(RegionFlags::SHAREOK) {
            return rule(id, "must not be SHAREOK");
        }
    }
    for id in [GuardHead, Schema, GuardTail] {
        if !p.flags(id).contains(RegionFlags::NOREDIRECT) {
            return rule(id, "must be NOREDIRECT (stays mapped through a redirect)");
        }
    }
    Ok(())
}

/// Skywalk's rules on which regions a nexus arena has, and how many
/// objects: none of another kind's, singletons where one object is meant,
/// and every region it needs configured non-empty.
pub(super) fn check_counts(p: &NexusParams) -> Result<()> {
    use RegionId::*;
    let rule = |region, rule| Err(Error::Region(RegionError::InvalidParams { region, rule }));
    if p.region(KStats).obj_count != 0 {
        return rule(KStats, "a nexus arena has no KSTATS");
    }
    for id in [Sysctls, Intrinsic] {
        if p.region(id).obj_count != 0 {
            return rule(id, "not for a nexus arena");
        }
    }
    if p.nexus_advisory.is_none() && p.region(NexusAdv).obj_count != 0 {
        return rule(NexusAdv, "configured without a nexus advisory to hold");
    }
    for id in [UStats, FlowAdv] {
        let r = p.region(id);
        if r.obj_count > 1 || (r.obj_count == 1 && !r.flags.contains(RegionFlags::MONOLITHIC)) {
            return rule(
                id,
                "holds one singleton object: must be MONOLITHIC with one object",
            );
        }
    }
    // Every region the arena creates itself must be configured non-empty,
    // except those Skywalk allows to be absent.
    for id in [Schema, Ring, TxaKsd, RxfKsd] {
        if p.region(id).obj_count == 0 && !(p.owner_only && matches!(id, Schema | Ring)) {
            return rule(id, "configured empty, but a nexus arena needs it");
        }
    }
    if !p.owner_only {
        for id in [TxaUsd, RxfUsd] {
            if p.region(id).obj_count == 0 {
                return rule(id, "configured empty, but a nexus arena needs it");
            }
        }
    }
    Ok(())
}

impl NexusParams {
    /// These parameters, changed by `f`: how to set a few fields, the
    /// struct being `#[non_exhaustive]` (a field added later is not a
    /// breaking change) — `NexusParams::new("port").with(|p| p.pool.packets = 8192)`.
    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
