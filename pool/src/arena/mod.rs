//! Arenas: the regions, caches and objects of one user of the pool, mapped
//! into processes as one span (Skywalk's `skmem_arena`).
//!
//! Three kinds, as in Skywalk (`skmem_arena.c` in xnu):
//!
//! * **nexus** ([`nexus`]) — the memory of one AF_XDP port: the packet pool
//!   (whose BUF_DEF region is the UMEM), the rings, the TX-allocation and
//!   RX-free slot descriptors, statistics, flow and nexus advisories, the
//!   schema and the guards;
//! * **NECP** ([`necp`]) — per-flow statistics: KSTATS objects mirrored
//!   read-only into USTATS;
//! * **system** ([`system`]) — the process-wide, read-only SYSCTLS region.
//!
//! The lifecycle is Skywalk's: an arena is created ACTIVE and registered
//! ([`registry`]); [`Arena`] is a counted reference (clone = retain,
//! drop = release; the last one tears everything down and unregisters).
//! [`Arena::map`] gives a [`ArenaMapping`]; redirecting every mapping makes
//! the arena inactive, after which [`Arena::defunct`] releases the memory
//! that mappers can no longer reach.
//!
//! ```
//! use skmem::arena::{Arena, NexusParams};
//! use skmem::region::RegionId;
//!
//! // A nexus arena with Skywalk's defaults: 4096 packets of 2 KiB.
//! let arena = Arena::create_nexus(&NexusParams::new("veth0q0"))?;
//! let pool = arena.nexus().and_then(|n| n.rx_pool().cloned()).unwrap();
//!
//! // One handle per data-path thread.
//! let mut worker = pool.worker()?;
//! let mut pkt = worker.alloc().unwrap(); // the packet's owning token
//! pool.write_buffer(&mut pkt, 0, b"hello")?;
//! let umem_addr = pool.buf_addr(&pkt)?; // what an AF_XDP descriptor carries
//! assert_eq!(pool.packet_of_addr(umem_addr)?, pkt.index());
//!
//! // Map it as a mapper would: one span, regions in id order.
//! let mapping = arena.map()?;
//! let (bufs, _) = mapping.region(RegionId::BufDef).unwrap();
//! assert_eq!(bufs as usize - mapping.addr() as usize, arena.region_offset(RegionId::BufDef));
//! worker.free(pkt)?; // consumed: a second free does not compile
//!
//! // Redirect the only mapping: the arena goes inactive and may be defuncted.
//! assert!(mapping.redirect()?);
//! arena.defunct()?;
//! # Ok::<(), skmem::Error>(())
//! ```

mod lent;
mod mapping;
pub mod necp;
pub mod nexus;
mod nexus_params;
#[cfg(feature = "publish")]
pub(crate) mod published;
pub mod registry;
pub mod system;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use skmem_xdp_common::HookEvent;

use crate::error::{ArenaError, Error, Result};
use crate::mapper::{Span, SpanLayout};
use crate::probe::{self, Subject};
use crate::region::{Region, RegionId};
use crate::util::lock;
use registry::ArenaStats;

/// Why a second channel on one nexus arena is refused: the arena is one
/// port, its rings and slots one channel's.
pub(crate) const ONE_CHANNEL: &str =
    "the arena already has a channel (one port, one channel: share the pool with another arena instead)";

pub use mapping::ArenaMapping;
pub use necp::NecpState;
pub use nexus::{NexusState, SlotHold};
pub use nexus_params::{
    NexusAdvisory, NexusAdvisoryKind, NexusParams, FLOWADV_ENTRY_SIZE, KSD_SIZE, RINGS, STATS_SIZE,
    USD_SIZE,
};
pub use system::{Sysctls, SystemState};

/// The three kinds of arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum ArenaKind {
    /// An AF_XDP port's memory.
    Nexus,
    /// Per-flow statistics.
    Necp,
    /// Process-wide tunables.
    System,
}

impl ArenaKind {
    /// The kind's code in the schema and in hook payloads: 1 nexus, 2
    /// NECP, 3 system.
    pub fn code(self) -> u32 {
        match self {
            ArenaKind::Nexus => 1,
            ArenaKind::Necp => 2,
            ArenaKind::System => 3,
        }
    }

    /// `nexus`, `necp` or `system`, as in arena names.
    pub fn name(self) -> &'static str {
        match self {
            ArenaKind::Nexus => "nexus",
            ArenaKind::Necp => "necp",
            ArenaKind::System => "system",
        }
    }
}

/// What each kind keeps beside the regions.
#[derive(Debug)]
pub(crate) enum KindState {
    Nexus(Box<NexusState>),
    Necp(NecpState),
    System(SystemState),
}

/// One mapping's record in its arena (Skywalk's `skmem_arena_mmap_info`).
#[derive(Debug, Clone)]
pub(crate) struct MapRecord {
    id: u64,
    pid: i32,
    size: usize,
    redirected: bool,
}

/// The mutable part of an arena, behind its lock.
#[derive(Debug)]
pub(crate) struct ArenaState {
    active: bool,
    defunct: bool,
    /// Every region, by id; `None` when absent or released.
    pub(crate) regions: Vec<Option<Arc<Region>>>,
    layout: SpanLayout,
    maps: Vec<MapRecord>,
    map_redirected: usize,
    mapsize: usize,
    /// The number the next lifecycle event gets (create is 0).
    seq: u64,
    pub(crate) kind: KindState,
}

impl ArenaState {
    pub(crate) fn new(kind: KindState) -> Self {
        Self {
            active: false,
            defunct: false,
            regions: vec![None; RegionId::COUNT],
            layout: SpanLayout::default(),
            maps: Vec::new(),
            map_redirected: 0,
            mapsize: 0,
            seq: 0,
            kind,
        }
    }

    pub(crate) fn set(&mut self, id: RegionId, r: Arc<Region>) {
        self.regions[id.index()] = Some(r);
    }

    pub(crate) fn region(&self, id: RegionId) -> Option<&Arc<Region>> {
        self.regions[id.index()].as_ref()
    }

    /// Adds a mapping's record (by `pid`, `size` bytes); returns its id.
    fn add_map(&mut self, pid: i32, size: usize) -> u64 {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        self.maps.push(MapRecord {
            id,
            pid,
            size,
            redirected: false,
        });
        if self.maps.len() == 1 {
            self.mapsize = size;
        }
        id
    }

    /// Removes mapping `map_id`'s record (Skywalk's
    /// `skmem_arena_munmap_common`); `None` when there is none, else
    /// whether its going makes the arena inactive — every other mapping was
    /// redirected but this one kept the arena active — so that the
    /// postponed defunct is due.
    fn remove_map(&mut self, map_id: u64) -> Option<bool> {
        let pos = self.maps.iter().position(|m| m.id == map_id)?;
        let rec = self.maps.remove(pos);
        if self.maps.is_empty() {
            self.mapsize = 0;
        }
        let postponed = if rec.redirected {
            self.map_redirected -= 1;
            false
        } else {
            self.map_redirected != 0 && self.map_redirected == self.maps.len()
        };
        if postponed {
            self.active = false;
        }
        Some(postponed)
    }

    /// Marks the record at `pos` redirected; true when every mapping now
    /// is, and the arena goes inactive.
    fn mark_redirected(&mut self, pos: usize) -> bool {
        self.maps[pos].redirected = true;
        self.map_redirected += 1;
        let inactive = self.map_redirected == self.maps.len();
        if inactive {
            self.active = false;
        }
        inactive
    }

    /// (total bytes, bytes in use) over the regions held.
    fn mem_stats(&self) -> (usize, usize) {
        self.regions
            .iter()
            .flatten()
            .fold((0, 0), |(t, u), r| (t + r.size(), u + r.mem_inuse()))
    }
}

/// Fires `event`'s hook about the arena `(id, kind, name)`, whose state is
/// `st`, under its lock: the probes see an arena's events in the order its
/// state changed, each with the memory figures of that state and the next
/// number of the arena's sequence. `mem` overrides the figures (destroy
/// has none left).
fn fire(
    who: (u64, ArenaKind, &str),
    st: &mut ArenaState,
    event: HookEvent,
    at: Fired,
    mem: Option<(usize, usize)>,
) {
    let seq = st.seq;
    st.seq += 1;
    let subject = Subject {
        arena_id: who.0,
        kind: who.1.code(),
        name: who.2,
        mem: mem.unwrap_or_else(|| st.mem_stats()),
        seq,
        pid: at.pid.unwrap_or_else(std::process::id),
    };
    probe::emit(event, subject, at.span, at.flags, at.error);
}

/// What a fired event says beside its arena: the span concerned, the
/// event's flags, its errno (0 on success), and the process it is about
/// when that is not this one (a mapper).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fired {
    pub(crate) span: (usize, usize),
    pub(crate) flags: u32,
    pub(crate) error: i32,
    pub(crate) pid: Option<u32>,
}

/// The shared body of an arena.
#[derive(Debug)]
pub(crate) struct ArenaInner {
    pub(crate) id: u64,
    pub(crate) kind: ArenaKind,
    pub(crate) name: String,
    pub(crate) state: Mutex<ArenaState>,
}

impl Drop for ArenaInner {
    fn drop(&mut self) {
        // The last reference is gone: unregister, then tear down (dropping
        // the state releases every region and cache still held). An arena
        // whose creation failed before it was registered was never seen.
        if !registry::unregister(self.id) {
            return;
        }
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        st.active = false;
        // Torn down: no memory left to report.
        let who = (self.id, self.kind, self.name.as_str());
        fire(
            who,
            st,
            HookEvent::ArenaDestroy,
            Fired::default(),
            Some((0, 0)),
        );
        tracing::debug!(arena = %self.name, "arena destroyed");
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The errno of a result, 0 for success (hook payloads).
pub(crate) fn errno<T>(r: &Result<T>) -> i32 {
    r.as_ref().err().map_or(0, Error::errno)
}

/// A counted reference to an arena: clone to retain, drop to release.
#[derive(Debug, Clone)]
pub struct Arena(pub(crate) Arc<ArenaInner>);

impl Arena {
    /// Builds an arena from a fully created state: finalizes the span
    /// layout, marks it ACTIVE and registers it (Skywalk's
    /// `skmem_arena_create_finalize` and the list insertion).
    pub(crate) fn finalize(kind: ArenaKind, name: &str, mut state: ArenaState) -> Result<Arena> {
        crate::failpoint::step("arena finalize")?;
        state.layout = SpanLayout::new(&state.regions);
        state.active = true;
        let inner = Arc::new(ArenaInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            kind,
            name: format!("skmem.{}.{name}", kind.name()),
            state: Mutex::new(state),
        });
        let arena = Arena(inner);
        // Whoever finds the arena in the registry may map it and read its
        // schema at once: the schema is whole before it is registered.
        arena.write_schema()?;
        // Registered and announced under the lock: no other event of the
        // arena can come first.
        let mut st = arena.state();
        registry::register(&arena.0);
        tracing::debug!(arena = %arena.name(), "arena created");
        arena.fire(&mut st, HookEvent::ArenaCreate, Fired::default());
        drop(st);
        Ok(arena)
    }

    /// Fires a lifecycle hook about this arena under its lock, held as
    /// `st` (see [`fire`]).
    pub(crate) fn fire(&self, st: &mut ArenaState, event: HookEvent, at: Fired) {
        fire((self.id(), self.kind(), self.name()), st, event, at, None);
    }

    /// Fires a hook that changes no arena state (a channel binding or
    /// closing): takes the lock for it.
    pub(crate) fn emit(&self, event: HookEvent, span: (usize, usize), flags: u32, error: i32) {
        let mut st = self.state();
        let at = Fired {
            span,
            flags,
            error,
            pid: None,
        };
        self.fire(&mut st, event, at);
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, ArenaState> {
        lock(&self.0.state)
    }

    /// Process-unique id.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// `skmem.KIND.NAME`.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Which kind of arena.
    pub fn kind(&self) -> ArenaKind {
        self.0.kind
    }

    /// Retains the arena (a new counted reference).
    pub fn retain(&self) -> Arena {
        self.clone()
    }

    /// Releases this reference; true when it was the last one and the arena
    /// was destroyed.
    pub fn release(self) -> bool {
        Arc::into_inner(self.0).is_some()
    }

    /// References held (the caller's included; mappings hold one each).
    pub fn refcount(&self) -> usize {
        Arc::strong_count(&self.0)
    }

    /// ACTIVE: mappable, not every mapping redirected.
    pub fn is_active(&self) -> bool {
        self.state().active
    }

    /// DEFUNCT: its redirectable memory has been released.
    pub fn is_defunct(&self) -> bool {
        self.state().defunct
    }

    /// Maps the arena into this process as one span (Skywalk's
    /// `skmem_arena_mmap`). Refused with ENODEV unless ACTIVE and not
    /// DEFUNCT.
    pub fn map(&self) -> Result<ArenaMapping> {
        let mut st = self.state();
        let r = self.map_locked(&mut st);
        let span = r.as_ref().map_or((0, 0), |m| (m.addr() as usize, m.size()));
        let error = errno(&r);
        let at = Fired {
            span,
            error,
            ..Fired::default()
        };
        self.fire(&mut st, HookEvent::ArenaMap, at);
        r
    }

    fn map_locked(&self, st: &mut ArenaState) -> Result<ArenaMapping> {
        crate::failpoint::step("arena map")?;
        if !st.active || st.defunct {
            return Err(Error::Arena(ArenaError::NotActive {
                arena: self.name().to_owned(),
            }));
        }
        if st.layout.size() == 0 {
            return Err(Error::Arena(ArenaError::InvalidParams {
                arena: self.name().to_owned(),
                rule: "the arena has no user-mappable region",
            }));
        }
        let span = Span::map(&st.layout)?;
        let size = span.size();
        let id = st.add_map(std::process::id() as i32, size);
        tracing::debug!(arena = %self.name(), addr = ?span.addr(), size, "mapped");
        Ok(ArenaMapping {
            arena: self.clone(),
            span: Some(span),
            id,
            holds_channel: false,
        })
    }

    /// Number of live mappings.
    pub fn map_count(&self) -> usize {
        self.state().maps.len()
    }

    /// Size of a mapping (Skywalk's `ar_mapsize`; 0 when unmapped).
    pub fn map_size(&self) -> usize {
        self.state().mapsize
    }

    /// The pids of the processes holding mappings, one per mapping.
    pub fn mapped_pids(&self) -> Vec<i32> {
        self.state().maps.iter().map(|m| m.pid).collect()
    }

    /// Size a span of this arena has.
    pub fn span_size(&self) -> usize {
        self.state().layout.size()
    }

    /// Offset of region `id` from the span's base: the sum of the sizes of
    /// the present regions before it (Skywalk's
    /// `skmem_arena_get_region_offset`, counting every present region, as
    /// Skywalk does; user-mappable ones all precede the rest) — or, for a
    /// region in the span, where the span puts it (the same, unless a
    /// huge-page region moved it onto a huge page).
    pub fn region_offset(&self, id: RegionId) -> usize {
        let st = self.state();
        if let Some(e) = st.layout.entry(id) {
            return e.offset;
        }
        st.regions[..id.index()]
            .iter()
            .flatten()
            .map(|r| r.size())
            .sum()
    }

    /// Region `id`, while the arena holds it.
    pub fn region(&self, id: RegionId) -> Option<Arc<Region>> {
        self.state().region(id).cloned()
    }

    /// Ids of the regions the arena holds now.
    pub fn region_ids(&self) -> Vec<RegionId> {
        let st = self.state();
        RegionId::ALL
            .iter()
            .copied()
            .filter(|&id| st.region(id).is_some())
            .collect()
    }

    /// (total bytes, bytes in use) over the regions held (Skywalk's
    /// `skmem_arena_get_stats`).
    pub fn mem_stats(&self) -> (usize, usize) {
        self.state().mem_stats()
    }

    /// Total bytes of the regions held.
    pub fn mem_total(&self) -> usize {
        self.mem_stats().0
    }

    /// Bytes of the segments in use in the regions held.
    pub fn mem_inuse(&self) -> usize {
        self.mem_stats().1
    }

    /// Trims every cache of the arena to its working set, or (`purge`)
    /// empties them, the per-worker magazines included.
    pub fn reap(&self, purge: bool) {
        let mut st = self.state();
        match &st.kind {
            KindState::Nexus(n) => n.reap(purge),
            KindState::Necp(n) => n.reap(purge),
            KindState::System(_) => {}
        }
        let at = Fired {
            flags: purge as u32,
            ..Fired::default()
        };
        self.fire(&mut st, HookEvent::ArenaReap, at);
    }

    /// Defuncts the arena (Skywalk's `skmem_arena_defunct`): EALREADY when
    /// done, EBUSY while ACTIVE; otherwise purges the caches and releases
    /// the memory mappers can no longer reach, keeping the schema and guards.
    pub fn defunct(&self) -> Result<()> {
        let mut st = self.state();
        self.defunct_locked(&mut st)
    }

    /// [`defunct`](Self::defunct) with the lock held as `st`; fires the
    /// event.
    fn defunct_locked(&self, st: &mut ArenaState) -> Result<()> {
        let r = self.defunct_work(st);
        let at = Fired {
            error: errno(&r),
            ..Fired::default()
        };
        self.fire(st, HookEvent::ArenaDefunct, at);
        r
    }

    fn defunct_work(&self, st: &mut ArenaState) -> Result<()> {
        if st.defunct {
            return Err(Error::Arena(ArenaError::AlreadyDefunct {
                arena: self.name().to_owned(),
            }));
        }
        if st.active {
            return Err(Error::Arena(ArenaError::Active {
                arena: self.name().to_owned(),
            }));
        }
        match &mut st.kind {
            KindState::Nexus(n) => {
                n.reap(true);
                n.teardown_for_defunct(&mut st.regions);
            }
            KindState::Necp(n) => {
                n.reap(true);
                n.teardown_for_defunct(&mut st.regions);
            }
            // Nothing to release for a system arena during defunct.
            KindState::System(_) => {}
        }
        st.defunct = true;
        tracing::debug!(arena = %self.name(), "arena defunct");
        Ok(())
    }

    /// Unmaps mapping `map_id`'s span, removes its record and fires the
    /// event (Skywalk's `skmem_arena_munmap_common`), all under the lock —
    /// so no other mapping can get the same address and announce it first;
    /// if every other mapping was redirected but this one kept the arena
    /// active, the arena goes inactive and the postponed defunct runs here,
    /// under the same lock.
    pub(crate) fn unmapped(&self, map_id: u64, span: Span) {
        let mut st = self.state();
        let span = {
            let at = (span.addr() as usize, span.size());
            drop(span);
            at
        };
        let at = Fired {
            span,
            ..Fired::default()
        };
        self.unmap_locked(&mut st, map_id, at);
    }

    /// Removes mapping `map_id`'s record and fires its unmap event (`at`,
    /// with bit 0 of the flags set when the postponed defunct is due),
    /// then runs that defunct — all under the lock held as `st`.
    fn unmap_locked(&self, st: &mut ArenaState, map_id: u64, mut at: Fired) {
        let Some(postponed) = st.remove_map(map_id) else {
            return;
        };
        at.flags |= postponed as u32;
        self.fire(st, HookEvent::ArenaUnmap, at);
        if postponed {
            if let Err(e) = self.defunct_locked(st) {
                tracing::warn!(arena = %self.name(), error = %e, "postponed defunct failed");
            }
        }
    }

    /// Redirects mapping `map_id` of span `span` (Skywalk's
    /// `skmem_arena_mredirect`) and fires the event, under the lock.
    pub(crate) fn redirect(
        &self,
        map_id: u64,
        span: Option<&Span>,
        holds_channel: bool,
    ) -> Result<bool> {
        let mut st = self.state();
        let r = self.redirect_locked(&mut st, map_id, span, holds_channel);
        let at = Fired {
            span: span.map_or((0, 0), |s| (s.addr() as usize, s.size())),
            flags: r.as_ref().map_or(0, |&inactive| inactive as u32),
            error: errno(&r),
            pid: None,
        };
        self.fire(&mut st, HookEvent::ArenaRedirect, at);
        r
    }

    fn redirect_locked(
        &self,
        st: &mut ArenaState,
        map_id: u64,
        span: Option<&Span>,
        holds_channel: bool,
    ) -> Result<bool> {
        let name = || self.name().to_owned();
        let (Some(span), Some(pos)) = (span, st.maps.iter().position(|m| m.id == map_id)) else {
            return Err(Error::Arena(ArenaError::NotMapped { arena: name() }));
        };
        if st.maps[pos].redirected {
            return Err(Error::Arena(ArenaError::AlreadyRedirected {
                arena: name(),
            }));
        }
        if holds_channel {
            return Err(Error::Arena(ArenaError::MappingHoldsChannel {
                arena: name(),
            }));
        }
        span.redirect()?;
        let need_defunct = st.mark_redirected(pos);
        tracing::debug!(arena = %self.name(), need_defunct, "mapping redirected");
        Ok(need_defunct)
    }

    /// Is mapping `map_id` redirected?
    pub(crate) fn is_redirected(&self, map_id: u64) -> bool {
        self.state()
            .maps
            .iter()
            .any(|m| m.id == map_id && m.redirected)
    }

    /// A statistics snapshot.
    pub fn stats(&self) -> ArenaStats {
        registry::snapshot(self)
    }

    /// A snapshot of the nexus part, for nexus arenas. Taken under the
    /// arena's lock and returned without it, so nothing done with it can
    /// deadlock on the arena; its handles keep what they name alive while
    /// it lives (drop it to let a defunct give the memory back).
    pub fn nexus(&self) -> Option<NexusState> {
        match &self.state().kind {
            KindState::Nexus(n) => Some((**n).clone()),
            _ => None,
        }
    }

    /// A snapshot of the NECP part, for NECP arenas (as [`Arena::nexus`]).
    pub fn necp(&self) -> Option<NecpState> {
        match &self.state().kind {
            KindState::Necp(n) => Some(n.clone()),
            _ => None,
        }
    }

    /// A snapshot of the system part, for system arenas (as
    /// [`Arena::nexus`]).
    pub fn system(&self) -> Option<SystemState> {
        match &self.state().kind {
            KindState::System(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// True when nothing keeps the slot descriptors alive (Skywalk's
    /// `skmem_arena_nexus_sd_idle`); always true for other kinds.
    pub fn sd_idle(&self) -> bool {
        match &self.state().kind {
            KindState::Nexus(n) => n.noidle() == 0,
            _ => true,
        }
    }

    pub(crate) fn map_records(&self) -> Vec<(i32, usize, bool)> {
        self.state()
            .maps
            .iter()
            .map(|m| (m.pid, m.size, m.redirected))
            .collect()
    }
}
