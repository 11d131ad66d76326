//! The nexus arena: the memory of one AF_XDP port (Skywalk's
//! `skmem_arena_create_for_nexus` and its teardown).
//!
//! Creation follows Skywalk step by step: check every rule Skywalk
//! ASSERTs on the region parameters (each broken rule is an
//! [`RegionError::InvalidParams`] naming the region), set up the packet
//! pool (ours, or the caller's — shared, never copied), take the nexus
//! advisory, build the TX-allocation and RX-free slot descriptors (an
//! owner-private master and its user-visible mirror, each with a cache),
//! create every other configured region, the schema and ring caches, and
//! the singleton statistics and flow-advisory objects; then finalize.
//! Any failure drops what was built: the partial state is an owned value,
//! so `?` releases it.

use std::sync::Arc;

use super::nexus_params::{check_counts, check_flags, NexusParams, FLOWADV_ENTRY_SIZE, RINGS};
use super::{Arena, ArenaKind, ArenaState, KindState, NexusAdvisory, ONE_CHANNEL};
use crate::cache::{Cache, CacheParams};
use crate::error::{ArenaError, Error, RegionError, Result};
use crate::pool::{PacketPool, PoolParams};
use crate::region::{Region, RegionFlags, RegionId};
use crate::schema::{self, RegionEntryInfo, RingInfo, RingKind, SchemaArenaKind, SchemaInfo};

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
    /// Each worker slot's two RING objects (to the worker, from it).
    worker_objs: Vec<[u32; 2]>,
    /// Entries of each worker ring.
    worker_ring_entries: u32,
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

    /// The flow-advisory region and its entry count.
    pub(crate) fn flowadv_region(&self) -> Option<(&Arc<Region>, usize)> {
        self.flowadv_obj.as_ref().map(|r| (r, self.flowadv_entries))
    }

    /// Owner's address of the flow-advisory table and its entry count.
    pub fn flowadv_obj(&self) -> Option<(*mut u8, usize)> {
        self.flowadv_obj
            .as_ref()
            .map(|r| (r.base(), self.flowadv_entries))
    }

    /// Each worker slot's two RING objects (to the worker, from it), and
    /// the entries of each worker ring.
    pub(crate) fn worker_slots(&self) -> (&[[u32; 2]], u32) {
        (&self.worker_objs, self.worker_ring_entries)
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

    /// Skywalk's nexus teardown in defunct context: statistics, flow and
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

/// A hold on a nexus arena's slot descriptors: they survive a defunct
/// while it lives (see [`Arena::hold_slot_descriptors`]).
#[derive(Debug)]
pub struct SlotHold {
    arena: Arena,
}

impl Drop for SlotHold {
    fn drop(&mut self) {
        if let KindState::Nexus(n) = &mut self.arena.state().kind {
            n.noidle_add(-1);
        }
    }
}

/// The regions a packet pool contributes (Skywalk's `skmem_pp_region_ids`).
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

/// Skywalk's `skmem_arena_pp_setup`: our pool, or the caller's.
fn pool_setup(p: &NexusParams, st: &mut ArenaState, n: &mut NexusState) -> Result<()> {
    let name = &p.name;
    let bad = |rule| {
        Error::Arena(ArenaError::InvalidParams {
            arena: format!("skmem.nexus.{name}"),
            rule,
        })
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

/// Skywalk's `skmem_arena_sd_setup` for one path.
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
        return Err(Error::Region(RegionError::InvalidParams {
            region: r.id(),
            rule: "holds one singleton object: must be MONOLITHIC with one segment",
        }));
    }
    crate::failpoint::step("singleton alloc")?;
    r.alloc_segment()?;
    Ok(r.clone())
}

impl Arena {
    /// Creates a nexus arena (Skywalk's `skmem_arena_create_for_nexus`).
    pub fn create_nexus(p: &NexusParams) -> Result<Arena> {
        if format!("skmem.nexus.{}", p.name).len() > schema::SCHEMA_NAME_MAX
            || p.name.contains('\0')
        {
            return Err(Error::Arena(ArenaError::InvalidParams {
                arena: p.name.clone(),
                rule: "the name must fit the schema: at most 51 bytes, no NUL",
            }));
        }
        check_flags(p)?;
        check_counts(p)?;
        check_workers(p)?;
        let mut st = ArenaState::new(KindState::Nexus(Box::default()));
        let mut n = NexusState::default();
        pool_setup(p, &mut st, &mut n)?;

        advisory_setup(p, &mut st, &mut n)?;
        sd_setup(p, &mut st, &mut n, true)?;
        sd_setup(p, &mut st, &mut n, false)?;

        other_regions(p, &mut st)?;
        ring_and_schema_caches(p, &st, &mut n)?;
        if let Some(r) = st.region(RegionId::UStats) {
            n.stats_obj = Some(singleton(r)?);
        }
        if let Some(r) = st.region(RegionId::FlowAdv) {
            n.flowadv_obj = Some(singleton(r)?);
            n.flowadv_entries = r.geometry().obj_size / FLOWADV_ENTRY_SIZE;
        }
        // Write the schema (its object is allocated once and stays).
        let schema_obj = match &n.schema_cache {
            Some(c) => Some(c.alloc().ok_or(Error::Region(RegionError::Exhausted {
                region: RegionId::Schema,
                segments: 1,
            }))?),
            None => None,
        };
        n.schema_obj = schema_obj;
        st.kind = KindState::Nexus(Box::new(n));
        Arena::finalize(ArenaKind::Nexus, &p.name, st)
    }

    /// Keeps the slot descriptors through a defunct for as long as the
    /// returned hold lives (Skywalk's `skmem_arena_nexus_sd_set_noidle`,
    /// +1 now and −1 when the hold drops). Nexus arenas only.
    pub fn hold_slot_descriptors(&self) -> Result<SlotHold> {
        crate::failpoint::step("slot hold")?;
        let mut st = self.state();
        match &mut st.kind {
            KindState::Nexus(n) => {
                n.noidle_add(1);
                drop(st);
                Ok(SlotHold {
                    arena: self.clone(),
                })
            }
            _ => Err(Error::Arena(ArenaError::InvalidParams {
                arena: self.name().to_owned(),
                rule: "slot descriptors exist only in nexus arenas",
            })),
        }
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
                    return Err(Error::Arena(ArenaError::InvalidParams {
                        arena: self.name().to_owned(),
                        rule: ONE_CHANNEL,
                    }));
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
                    return Err(Error::Arena(ArenaError::InvalidParams {
                        arena: self.name().to_owned(),
                        rule: "rings exist only in nexus arenas",
                    }))
                }
            }
        }
        self.write_schema()
    }

    /// Writes the schema object describing this arena's span (nothing for
    /// an arena without a schema).
    pub(super) fn write_schema(&self) -> Result<()> {
        let st = self.state();
        let (obj, rings, worker_objs, worker_entries) = match &st.kind {
            KindState::Nexus(n) => match n.schema_obj {
                Some(obj) => (obj, n.rings, n.worker_objs.clone(), n.worker_ring_entries),
                None => return Ok(()),
            },
            _ => return Ok(()),
        };
        let layout = &st.layout;
        let schema = st
            .region(RegionId::Schema)
            .ok_or(Error::Region(RegionError::Misuse {
                region: RegionId::Schema,
                rule: "no schema region",
            }))?;
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
                    let g = e.geometry;
                    RegionEntryInfo {
                        id: e.id,
                        flags: e.flags,
                        offset: e.offset as u64,
                        size: e.size as u64,
                        obj_size: g.obj_size as u64,
                        obj_count: g.obj_count,
                        seg_count: g.seg_count,
                        seg_size: g.seg_size as u64,
                        uuid: *e.uuid.as_bytes(),
                    }
                })
                .collect(),
            rings,
            generation,
            workers: worker_rings(layout, &worker_objs, worker_entries)?,
        };
        let mut bytes = vec![0u8; schema::schema_size(info.regions.len(), info.workers.len())];
        schema::write_schema(&info, &mut bytes)?;
        // Mappers may be reading: rewritten under the sequence lock.
        Ok(o.publish(schema::SCHEMA_GENERATION, &bytes)?)
    }
}

/// The worker-slot rules: not for an owner-only arena, at most what a
/// schema describes, a power-of-two ring that fits a RING object, and a
/// RING region with room for every slot's two rings.
fn check_workers(p: &NexusParams) -> Result<()> {
    if p.worker_slots == 0 {
        return Ok(());
    }
    let bad = |rule| {
        Err(Error::Arena(ArenaError::InvalidParams {
            arena: p.name.clone(),
            rule,
        }))
    };
    if p.owner_only {
        return bad("an owner-only arena has no worker slots: nothing of it is mapped");
    }
    if p.worker_slots > schema::SCHEMA_MAX_WORKERS {
        return bad("at most 16 worker slots (what the schema describes)");
    }
    if !p.worker_ring_entries.is_power_of_two() || p.worker_ring_entries < 64 {
        return bad("worker rings have a power-of-two number of entries, at least 64");
    }
    let ring = p.region(RegionId::Ring);
    if ring.obj_count < RINGS + 2 * p.worker_slots {
        return bad("the RING region needs 4 objects plus 2 per worker slot (NexusParams::with_worker_slots)");
    }
    if ring.obj_size < schema::objects::worker_ring::bytes(p.worker_ring_entries) {
        return bad(
            "a worker ring does not fit a RING object: fewer entries, or larger RING objects",
        );
    }
    Ok(())
}

/// The nexus advisory (NEXUSADV): the caller's, checked, or — for an arena
/// with worker slots — one made to publish the owner's per-queue state to
/// its workers.
fn advisory_setup(p: &NexusParams, st: &mut ArenaState, n: &mut NexusState) -> Result<()> {
    if let Some(adv) = &p.nexus_advisory {
        let r = &adv.region;
        if r.id() != RegionId::NexusAdv
            || !r.flags().contains(RegionFlags::MONOLITHIC)
            || r.geometry().seg_count != 1
        {
            return Err(Error::Region(RegionError::InvalidParams {
                region: RegionId::NexusAdv,
                rule: "the advisory region must be NEXUSADV, MONOLITHIC, one segment",
            }));
        }
        if adv.version != adv.kind.current_version() {
            return Err(Error::Region(RegionError::InvalidParams {
                region: RegionId::NexusAdv,
                rule: "the advisory's version is not the current one for its kind",
            }));
        }
        st.set(RegionId::NexusAdv, r.clone());
        n.nexus_advisory = Some(adv.clone());
    } else if p.worker_slots > 0 && !p.owner_only {
        // Worker arenas publish the owner's per-queue state to their
        // workers (`workers::advisory`).
        let adv = NexusAdvisory::new(
            &p.name,
            super::NexusAdvisoryKind::Flowswitch,
            schema::objects::nexus_advisory::bytes(p.worker_slots),
        )?;
        st.set(RegionId::NexusAdv, adv.region.clone());
        n.nexus_advisory = Some(adv);
    }

    Ok(())
}

/// The nexus arena's remaining regions (schema, rings, statistics, flow
/// advisories, guards): those configured non-empty and not made by the
/// pool or slot-descriptor set-up.
fn other_regions(p: &NexusParams, st: &mut ArenaState) -> Result<()> {
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
            return Err(Error::Region(RegionError::InvalidParams {
                region: id,
                rule: "not created by a nexus arena (the advisory brings its own)",
            }));
        }
        st.set(id, Region::create(&p.name, rp)?);
    }

    Ok(())
}

/// The caches over SCHEMA and RING, and the worker slots' rings, taken
/// once for the arena's life.
fn ring_and_schema_caches(p: &NexusParams, st: &ArenaState, n: &mut NexusState) -> Result<()> {
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
    if let Some(c) = &n.ring_cache {
        // The worker slots' rings: taken once, for the arena's life
        // (fresh memfd pages: indices and flags start at 0).
        for _ in 0..p.worker_slots {
            let mut pair = [0u32; 2];
            for obj in &mut pair {
                *obj = c.alloc().ok_or(Error::Region(RegionError::Exhausted {
                    region: RegionId::Ring,
                    segments: c.region().geometry().seg_count,
                }))?;
            }
            n.worker_objs.push(pair);
        }
        n.worker_ring_entries = p.worker_ring_entries;
    }
    Ok(())
}

/// Where each worker slot's rings are in the span.
fn worker_rings(
    layout: &crate::mapper::SpanLayout,
    objs: &[[u32; 2]],
    entries: u32,
) -> Result<Vec<schema::WorkerRings>> {
    use crate::schema::objects::worker_ring as ring;
    if objs.is_empty() {
        return Ok(Vec::new());
    }
    let e = layout
        .entries()
        .iter()
        .find(|e| e.id == RegionId::Ring)
        .ok_or(Error::Region(RegionError::Misuse {
            region: RegionId::Ring,
            rule: "worker slots without a RING region in the span",
        }))?;
    let at = |obj: u32| {
        let base = (e.offset + obj as usize * e.geometry.obj_size) as u64;
        RingInfo {
            entries,
            producer: base + ring::PRODUCER,
            consumer: base + ring::CONSUMER,
            desc: base + ring::DESC,
            flags: base + ring::FLAGS,
            desc_size: ring::DESC_SIZE as u32,
        }
    };
    Ok(objs
        .iter()
        .map(|&[to, from]| schema::WorkerRings {
            to_worker: at(to),
            from_worker: at(from),
        })
        .collect())
}
