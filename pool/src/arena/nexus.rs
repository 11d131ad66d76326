//! The nexus arena: the memory of one AF_XDP port (Skywalk's
//! `skmem_arena_create_for_nexus` and its teardown).
//!
//! Creation follows the seed step by step: check every rule the seed
//! ASSERTs on the region parameters (each broken rule is an
//! [`Error::InvalidRegionParams`] naming the region), set up the packet
//! pool (ours, or the caller's — shared, never copied), take the nexus
//! advisory, build the TX-allocation and RX-free slot descriptors (an
//! owner-private master and its user-visible mirror, each with a cache),
//! create every other configured region, the schema and ring caches, and
//! the singleton statistics and flow-advisory objects; then finalize.
//! Any failure drops what was built: the partial state is an owned value,
//! so `?` releases it.

use std::sync::Arc;

use super::{Arena, ArenaKind, ArenaState, KindState};
use crate::cache::{Cache, CacheParams};
use crate::error::{Error, Result};
use crate::pool::{PacketPool, PoolParams};
use crate::region::{Region, RegionFlags, RegionId, RegionParams};
use crate::schema::{self, RegionEntryInfo, RingInfo, RingKind, SchemaArenaKind, SchemaInfo};
use crate::sys::page_size;

/// Kinds of nexus advisory (the seed's flowswitch and netif advisories).
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
/// defaults; every field may be changed before [`Arena::create_nexus`].
#[derive(Debug, Clone)]
pub struct NexusParams {
    /// The port's name (e.g. `veth0q0`); the arena is `skmem.nexus.NAME`.
    pub name: String,
    /// Region parameters by id (the seed's `srp[]`); an object count of 0
    /// means "configured empty". Pool region entries carry the flags the
    /// seed checks; the pool itself is sized by `pool`.
    pub regions: Vec<RegionParams>,
    /// The packet pool to create when none is supplied.
    pub pool: PoolParams,
    /// Caller-supplied RX pool.
    pub rx_pool: Option<Arc<PacketPool>>,
    /// Caller-supplied TX pool.
    pub tx_pool: Option<Arc<PacketPool>>,
    /// Owner-only (the seed's kernel-only): nothing user-visible.
    pub owner_only: bool,
    /// Truncated buffers in the pool this arena creates.
    pub truncated_buf: bool,
    /// The user allocates packets itself (the seed's NAF_USER_PKT_POOL):
    /// the user slot descriptors are then writable.
    pub user_packet_pool: bool,
    /// Optional nexus advisory.
    pub nexus_advisory: Option<NexusAdvisory>,
}

impl NexusParams {
    /// Defaults: a pool of 4096 × 2 KiB packets, rings of 1024 entries, 256 slot descriptors per path, 512 flow advisories,
    /// statistics, one guard page at each end.
    pub fn new(name: impl Into<String>) -> Self {
        let page = page_size();
        let ring_entries = 1024;
        let slots = 256;
        let sized = |id: RegionId, size: usize, count: usize| RegionParams::new(id, size, count);
        let regions = RegionId::ALL
            .iter()
            .map(|&id| match id {
                RegionId::GuardHead | RegionId::GuardTail => sized(id, page, 1),
                RegionId::Schema => sized(
                    id,
                    schema::schema_size(RegionId::COUNT).next_multiple_of(page),
                    1,
                ),
                // Room for one ring's producer/consumer/flags page and its
                // descriptors (16 bytes at most).
                RegionId::Ring => sized(id, page + ring_entries * 16, RINGS),
                RegionId::TxaUsd | RegionId::RxfUsd => sized(id, slots * USD_SIZE, 1),
                RegionId::TxaKsd | RegionId::RxfKsd => sized(id, slots * KSD_SIZE, 1),
                RegionId::UStats => sized(id, STATS_SIZE, 1),
                RegionId::FlowAdv => sized(id, 512 * FLOWADV_ENTRY_SIZE, 1),
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
        }
    }

    /// The parameters of region `id`.
    pub fn region(&self, id: RegionId) -> &RegionParams {
        &self.regions[id.index()]
    }

    /// Mutable parameters of region `id`.
    pub fn region_mut(&mut self, id: RegionId) -> &mut RegionParams {
        &mut self.regions[id.index()]
    }

    fn flags(&self, id: RegionId) -> RegionFlags {
        self.regions[id.index()].flags
    }
}

/// The seed's rules on region flags, checked before anything is created.
fn check_flags(p: &NexusParams) -> Result<()> {
    use RegionId::*;
    let rule = |region, rule| Err(Error::InvalidRegionParams { region, rule });
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
    // except those the seed allows to be absent.
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

/// What a nexus arena keeps beside its regions. [`Arena::nexus`] hands out
/// a snapshot: a copy whose handles (pools, caches, regions) keep what
/// they name alive while the copy lives.
#[derive(Debug, Default, Clone)]
pub struct NexusState {
    rx_pool: Option<Arc<PacketPool>>,
    tx_pool: Option<Arc<PacketPool>>,
    external_pool: bool,
    txaksd_cache: Option<Arc<Cache>>,
    rxfksd_cache: Option<Arc<Cache>>,
    schema_cache: Option<Arc<Cache>>,
    ring_cache: Option<Arc<Cache>>,
    /// The singleton statistics object (segment 0 of USTATS).
    stats_obj: Option<Arc<Region>>,
    /// The singleton flow-advisory object (segment 0 of FLOWADV).
    flowadv_obj: Option<Arc<Region>>,
    flowadv_entries: usize,
    nexus_advisory: Option<NexusAdvisory>,
    /// Users keeping the slot descriptors alive through a defunct.
    ksd_noidle: i32,
    /// The schema's object in SCHEMA, and the rings it describes.
    schema_obj: Option<u32>,
    rings: [Option<RingInfo>; RingKind::COUNT],
}

impl NexusState {
    /// The RX packet pool (the same as TX unless split).
    pub fn rx_pool(&self) -> Option<&Arc<PacketPool>> {
        self.rx_pool.as_ref()
    }

    /// The TX packet pool.
    pub fn tx_pool(&self) -> Option<&Arc<PacketPool>> {
        self.tx_pool.as_ref()
    }

    /// Was the pool supplied by the caller?
    pub fn external_pool(&self) -> bool {
        self.external_pool
    }

    /// The TX-allocation slot-descriptor cache.
    pub fn txaksd_cache(&self) -> Option<&Arc<Cache>> {
        self.txaksd_cache.as_ref()
    }

    /// The RX-free slot-descriptor cache.
    pub fn rxfksd_cache(&self) -> Option<&Arc<Cache>> {
        self.rxfksd_cache.as_ref()
    }

    /// The ring cache.
    pub fn ring_cache(&self) -> Option<&Arc<Cache>> {
        self.ring_cache.as_ref()
    }

    /// The schema cache.
    pub fn schema_cache(&self) -> Option<&Arc<Cache>> {
        self.schema_cache.as_ref()
    }

    /// The statistics region (its one object is the channel's USTATS),
    /// while it exists.
    pub fn stats_region(&self) -> Option<&Arc<Region>> {
        self.stats_obj.as_ref()
    }

    /// Owner's address of the flow-advisory table and its entry count.
    pub fn flowadv_obj(&self) -> Option<(*mut u8, usize)> {
        self.flowadv_obj
            .as_ref()
            .map(|r| (r.base(), self.flowadv_entries))
    }

    /// The nexus advisory, while held.
    pub fn nexus_advisory(&self) -> Option<&NexusAdvisory> {
        self.nexus_advisory.as_ref()
    }

    /// Does a channel's rings sit in the span (one channel per arena)?
    pub fn has_channel(&self) -> bool {
        self.rings.iter().any(Option::is_some)
    }

    pub(crate) fn noidle(&self) -> i32 {
        self.ksd_noidle
    }

    /// Adds `cnt` to the no-idle count; only [`SlotHold`](super::SlotHold)
    /// calls it, +1 when made and −1 when dropped, so it never goes below
    /// zero.
    pub(crate) fn noidle_add(&mut self, cnt: i32) {
        self.ksd_noidle += cnt;
        debug_assert!(self.ksd_noidle >= 0);
    }

    fn caches(&self) -> impl Iterator<Item = &Arc<Cache>> {
        [
            self.schema_cache.as_ref(),
            self.ring_cache.as_ref(),
            self.txaksd_cache.as_ref(),
            self.rxfksd_cache.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    pub(crate) fn reap(&self, purge: bool) {
        for c in self.caches() {
            if purge {
                c.purge();
            } else {
                c.reap();
            }
        }
        if let Some(p) = &self.rx_pool {
            p.reap(purge);
        }
        if let (Some(t), Some(r)) = (&self.tx_pool, &self.rx_pool) {
            if !Arc::ptr_eq(t, r) {
                t.reap(purge);
            }
        }
    }

    /// The seed's nexus teardown in defunct context: statistics, flow and
    /// nexus advisories, pool regions, rings, and — unless someone holds
    /// them — the slot descriptors. Schema and guards stay.
    pub(crate) fn teardown_for_defunct(&mut self, regions: &mut [Option<Arc<Region>>]) {
        use RegionId::*;
        let mut drop_region = |id: RegionId| regions[id.index()] = None;
        if self.stats_obj.take().is_some() {
            drop_region(UStats);
        }
        if self.flowadv_obj.take().is_some() {
            self.flowadv_entries = 0;
            drop_region(FlowAdv);
        }
        if self.nexus_advisory.take().is_some() {
            drop_region(NexusAdv);
        }
        if self.rx_pool.is_some() {
            for id in POOL_REGIONS {
                drop_region(id);
            }
            self.rx_pool = None;
            self.tx_pool = None;
        }
        if self.ring_cache.take().is_some() {
            drop_region(Ring);
        }
        if self.ksd_noidle != 0 {
            return;
        }
        self.txaksd_cache = None;
        self.rxfksd_cache = None;
        for id in [TxaUsd, TxaKsd, RxfUsd, RxfKsd] {
            drop_region(id);
        }
    }
}

/// The regions a packet pool contributes (the seed's `skmem_pp_region_ids`).
const POOL_REGIONS: [RegionId; 14] = [
    RegionId::BufDef,
    RegionId::BufLarge,
    RegionId::RxBufDef,
    RegionId::RxBufLarge,
    RegionId::TxBufDef,
    RegionId::TxBufLarge,
    RegionId::Umd,
    RegionId::Ubft,
    RegionId::Kmd,
    RegionId::RxKmd,
    RegionId::TxKmd,
    RegionId::Kbft,
    RegionId::RxKbft,
    RegionId::TxKbft,
];

/// The seed's `skmem_arena_pp_setup`: our pool, or the caller's.
fn pool_setup(p: &NexusParams, st: &mut ArenaState, n: &mut NexusState) -> Result<()> {
    let name = &p.name;
    let bad = |rule| Error::InvalidArenaParams {
        arena: format!("skmem.nexus.{name}"),
        rule,
    };
    let (rx, tx) = match (&p.rx_pool, &p.tx_pool) {
        (None, None) => {
            let params = PoolParams {
                owner_only: p.owner_only,
                truncated_buf: p.truncated_buf,
                ..p.pool.clone()
            };
            let pool = PacketPool::create(name, &params)?;
            (pool.clone(), pool)
        }
        (rx, tx) => {
            let rx = rx
                .clone()
                .or_else(|| tx.clone())
                .ok_or_else(|| bad("no pool"))?;
            let tx = tx.clone().unwrap_or_else(|| rx.clone());
            if !p.owner_only && (rx.owner_only() || tx.owner_only()) {
                return Err(bad("an owner-only pool cannot back a user-visible arena"));
            }
            n.external_pool = true;
            (rx, tx)
        }
    };
    if Arc::ptr_eq(&rx, &tx) {
        for id in [
            RegionId::BufDef,
            RegionId::BufLarge,
            RegionId::Kmd,
            RegionId::Kbft,
        ] {
            if let Some(r) = rx.region(id) {
                st.set(id, r.clone());
            }
        }
    } else {
        if !p.owner_only {
            return Err(bad(
                "split RX/TX pools are supported only in owner-only arenas",
            ));
        }
        let pairs = [
            (RegionId::BufDef, RegionId::RxBufDef, RegionId::TxBufDef),
            (
                RegionId::BufLarge,
                RegionId::RxBufLarge,
                RegionId::TxBufLarge,
            ),
            (RegionId::Kmd, RegionId::RxKmd, RegionId::TxKmd),
            (RegionId::Kbft, RegionId::RxKbft, RegionId::TxKbft),
        ];
        for (id, rx_id, tx_id) in pairs {
            if let Some(r) = rx.region(id) {
                st.set(rx_id, r.clone());
            }
            if let Some(r) = tx.region(id) {
                st.set(tx_id, r.clone());
            }
        }
    }
    if !p.owner_only {
        for id in [RegionId::Umd, RegionId::Ubft] {
            if let Some(r) = rx.region(id) {
                if !r.flags().contains(RegionFlags::MIRRORED) {
                    return Err(bad("a user-visible pool region must be a mirror"));
                }
                st.set(id, r.clone());
            }
        }
    }
    n.rx_pool = Some(rx);
    n.tx_pool = Some(tx);
    Ok(())
}

/// The seed's `skmem_arena_sd_setup` for one path.
fn sd_setup(p: &NexusParams, st: &mut ArenaState, n: &mut NexusState, tx: bool) -> Result<()> {
    let (ksd, usd, tag) = if tx {
        (RegionId::TxaKsd, RegionId::TxaUsd, "txa")
    } else {
        (RegionId::RxfKsd, RegionId::RxfUsd, "rxf")
    };
    let k = Region::create(&p.name, p.region(ksd))?;
    if !p.owner_only {
        let u = Region::create(&p.name, p.region(usd))?;
        Region::mirror(&k, u.clone())?;
        st.set(usd, u);
    }
    st.set(ksd, k.clone());
    let cache = Cache::new(
        k,
        CacheParams {
            no_magazines: true,
            ..CacheParams::new(format!("{tag}_ksd.{}", p.name))
        },
    )?;
    if tx {
        n.txaksd_cache = Some(cache);
    } else {
        n.rxfksd_cache = Some(cache);
    }
    Ok(())
}

/// Takes the one object of a singleton region (segment 0).
fn singleton(r: &Arc<Region>) -> Result<Arc<Region>> {
    if !r.flags().contains(RegionFlags::MONOLITHIC) || r.geometry().seg_count != 1 {
        return Err(Error::InvalidRegionParams {
            region: r.id(),
            rule: "holds one singleton object: must be MONOLITHIC with one segment",
        });
    }
    crate::failpoint::step("singleton alloc")?;
    r.alloc_segment()?;
    Ok(r.clone())
}

impl Arena {
    /// Creates a nexus arena (the seed's `skmem_arena_create_for_nexus`).
    pub fn create_nexus(p: &NexusParams) -> Result<Arena> {
        if format!("skmem.nexus.{}", p.name).len() > schema::SCHEMA_NAME_MAX
            || p.name.contains('\0')
        {
            return Err(Error::InvalidArenaParams {
                arena: p.name.clone(),
                rule: "the name must fit the schema: at most 51 bytes, no NUL",
            });
        }
        check_flags(p)?;
        let mut st = ArenaState::new(KindState::Nexus(Box::default()));
        let mut n = NexusState::default();
        pool_setup(p, &mut st, &mut n)?;

        if let Some(adv) = &p.nexus_advisory {
            let r = &adv.region;
            if r.id() != RegionId::NexusAdv
                || !r.flags().contains(RegionFlags::MONOLITHIC)
                || r.geometry().seg_count != 1
            {
                return Err(Error::InvalidRegionParams {
                    region: RegionId::NexusAdv,
                    rule: "the advisory region must be NEXUSADV, MONOLITHIC, one segment",
                });
            }
            if adv.version != adv.kind.current_version() {
                return Err(Error::InvalidRegionParams {
                    region: RegionId::NexusAdv,
                    rule: "the advisory's version is not the current one for its kind",
                });
            }
            st.set(RegionId::NexusAdv, r.clone());
            n.nexus_advisory = Some(adv.clone());
        }

        sd_setup(p, &mut st, &mut n, true)?;
        sd_setup(p, &mut st, &mut n, false)?;

        for &id in RegionId::ALL {
            let rp = p.region(id);
            if st.region(id).is_some()
                || POOL_REGIONS.contains(&id)
                || matches!(
                    id,
                    RegionId::TxaUsd | RegionId::RxfUsd | RegionId::TxaKsd | RegionId::RxfKsd
                )
                || rp.obj_count == 0
            {
                continue;
            }
            if p.owner_only
                && matches!(
                    id,
                    RegionId::GuardHead | RegionId::Schema | RegionId::Ring | RegionId::GuardTail
                )
            {
                continue;
            }
            if matches!(id, RegionId::NexusAdv) {
                return Err(Error::InvalidRegionParams {
                    region: id,
                    rule: "not created by a nexus arena (the advisory brings its own)",
                });
            }
            st.set(id, Region::create(&p.name, rp)?);
        }

        if let Some(r) = st.region(RegionId::Schema).cloned() {
            n.schema_cache = Some(Cache::new(
                r,
                CacheParams {
                    no_magazines: true,
                    ..CacheParams::new(format!("schema.{}", p.name))
                },
            )?);
        }
        if let Some(r) = st.region(RegionId::Ring).cloned() {
            n.ring_cache = Some(Cache::new(
                r,
                CacheParams {
                    no_magazines: true,
                    ..CacheParams::new(format!("ring.{}", p.name))
                },
            )?);
        }
        if let Some(r) = st.region(RegionId::UStats) {
            n.stats_obj = Some(singleton(r)?);
        }
        if let Some(r) = st.region(RegionId::FlowAdv) {
            n.flowadv_obj = Some(singleton(r)?);
            n.flowadv_entries = r.geometry().obj_size / FLOWADV_ENTRY_SIZE;
        }
        // Write the schema (its object is allocated once and stays).
        let schema_obj = match &n.schema_cache {
            Some(c) => Some(c.alloc().ok_or(Error::RegionExhausted {
                region: RegionId::Schema,
                segments: 1,
            })?),
            None => None,
        };
        n.schema_obj = schema_obj;
        st.kind = KindState::Nexus(Box::new(n));
        Arena::finalize(ArenaKind::Nexus, &p.name, st)
    }

    /// Records where a new channel's rings sit in the span and rewrites
    /// the schema so mappers find them; refused while another channel's
    /// are recorded (an arena is one port: one channel at a time).
    pub(crate) fn claim_schema_rings(
        &self,
        rings: [Option<RingInfo>; RingKind::COUNT],
    ) -> Result<()> {
        {
            let st = self.state();
            if let KindState::Nexus(n) = &st.kind {
                if n.has_channel() {
                    return Err(Error::InvalidArenaParams {
                        arena: self.name().to_owned(),
                        rule: crate::channel::ONE_CHANNEL,
                    });
                }
            }
        }
        self.set_schema_rings(rings)
    }

    /// Records where a channel's rings sit in the span and rewrites the
    /// schema so mappers find them.
    pub fn set_schema_rings(&self, rings: [Option<RingInfo>; RingKind::COUNT]) -> Result<()> {
        {
            let mut st = self.state();
            match &mut st.kind {
                KindState::Nexus(n) => n.rings = rings,
                _ => {
                    return Err(Error::InvalidArenaParams {
                        arena: self.name().to_owned(),
                        rule: "rings exist only in nexus arenas",
                    })
                }
            }
        }
        self.write_schema()
    }

    /// Writes the schema object describing this arena's span (nothing for
    /// an arena without a schema).
    pub(super) fn write_schema(&self) -> Result<()> {
        let st = self.state();
        let (obj, rings) = match &st.kind {
            KindState::Nexus(n) => match n.schema_obj {
                Some(obj) => (obj, n.rings),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        let layout = &st.layout;
        let schema = st.region(RegionId::Schema).ok_or(Error::RegionMisuse {
            region: RegionId::Schema,
            rule: "no schema region",
        })?;
        let o = schema.obj(obj)?;
        // The sequence lock's next even count (0 before the first write).
        let generation = (o.load_u64(schema::SCHEMA_GENERATION)? | 1) + 1;
        let info = SchemaInfo {
            kind: SchemaArenaKind::Nexus,
            name: self.name().to_owned(),
            span_size: layout.size() as u64,
            regions: layout
                .entries()
                .iter()
                .map(|e| {
                    let g = e.region.geometry();
                    RegionEntryInfo {
                        id: e.id,
                        flags: e.region.flags(),
                        offset: e.offset as u64,
                        size: e.size as u64,
                        obj_size: g.obj_size as u64,
                        obj_count: g.obj_count,
                        seg_count: g.seg_count,
                        seg_size: g.seg_size as u64,
                        uuid: *e.region.uuid().as_bytes(),
                    }
                })
                .collect(),
            rings,
            generation,
        };
        let mut bytes = vec![0u8; schema::schema_size(info.regions.len())];
        schema::write_schema(&info, &mut bytes)?;
        // Mappers may be reading: rewritten under the sequence lock.
        o.publish(schema::SCHEMA_GENERATION, &bytes)
    }
}
