//! Opening a channel, step by step.
//!
//! Each step that takes something — from the pool (a holder number, a
//! worker slot), the arena (a mapping, RING and slot-descriptor objects,
//! the schema's ring table, a hold on the slot descriptors) or the kernel
//! (the socket, its UMEM and rings) — returns a guard that gives it back
//! when dropped. A failed step returns early, and the guards of the steps
//! before it drop in reverse order: nothing is left. The guards the
//! channel needs for its whole life go into its [`Claims`].

use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::arena::{Arena, SlotHold};
use crate::cache::Cache;
use crate::error::{ChannelError, Error, Result};
use crate::pool::{Holder, PacketPool, StateColumn};
use crate::region::{Region, RegionId};
use crate::schema::{RingInfo, RingKind};

use super::ring::{Consumer, Producer, RingMem};
use super::slots::Slots;
use super::umem::UmemGeometry;
use super::xsk::{BindFlags, RingId, UmemOptions, XskSocket};
use super::{
    coalesce, ifindex, BindMode, Channel, ChannelParams, LiveCounters, Tags, XdpDesc, MAX_FRAGS,
    ONE_CHANNEL, TX_BUDGET_MIN,
};

/// What an open channel holds of its arena and pool, each given back when
/// the channel drops (after it has closed its socket and returned its
/// frames): the fields drop in this order.
#[derive(Debug)]
pub(super) struct Claims {
    /// RING and slot-descriptor objects.
    _objs: ObjGuard,
    /// The schema's ring table, cleared.
    _rings: SchemaRings,
    /// The slot descriptors' hold through a defunct.
    _slots: SlotHold,
    /// The channel's holder number in the pool's state column, last: no
    /// packet carries it any more.
    _holder: HolderClaim,
}

/// Cache objects taken during set-up, given back when dropped.
#[derive(Debug, Default)]
pub(super) struct ObjGuard(Vec<(Arc<Cache>, u32)>);

impl ObjGuard {
    /// Takes an object from `cache`; `why` names it when none is left.
    fn take(&mut self, cache: &Arc<Cache>, why: &'static str, arena: &Arena) -> Result<u32> {
        let obj = cache.alloc().ok_or_else(|| {
            Error::Channel(ChannelError::InvalidParams {
                channel: arena.name().to_owned(),
                rule: why,
            })
        })?;
        self.0.push((cache.clone(), obj));
        Ok(obj)
    }

    /// Moves `other`'s objects into this guard.
    fn absorb(&mut self, mut other: ObjGuard) {
        self.0.append(&mut other.0);
    }
}

impl Drop for ObjGuard {
    fn drop(&mut self) {
        for (cache, obj) in self.0.drain(..) {
            if let Err(e) = cache.free(obj) {
                tracing::error!(cache = cache.name(), error = %e, "a channel's object refused");
            }
        }
    }
}

/// A holder number taken in a pool's state column, released when dropped.
#[derive(Debug)]
pub(super) struct HolderClaim {
    states: StateColumn,
    holder: Holder,
}

impl HolderClaim {
    fn take(pool: &PacketPool) -> Result<Self> {
        crate::failpoint::step("channel holder")?;
        let states = pool.state_column();
        let holder = states.claim_holder(pool.name())?;
        Ok(Self { states, holder })
    }
}

impl Drop for HolderClaim {
    fn drop(&mut self) {
        self.states.release_holder(self.holder);
    }
}

/// The arena's schema records this channel's rings; cleared when dropped.
#[derive(Debug)]
pub(super) struct SchemaRings {
    arena: Arena,
}

impl SchemaRings {
    fn record(arena: &Arena, rings: [Option<RingInfo>; RingKind::COUNT]) -> Result<Self> {
        crate::failpoint::step("schema rings")?;
        arena.claim_schema_rings(rings)?;
        Ok(Self {
            arena: arena.clone(),
        })
    }
}

impl Drop for SchemaRings {
    fn drop(&mut self) {
        if let Err(e) = self.arena.set_schema_rings(Default::default()) {
            tracing::error!(arena = self.arena.name(), error = %e, "schema rings not cleared");
        }
    }
}

/// What the arena gives a channel, read once under its lock.
struct Parts {
    pool: Arc<PacketPool>,
    ring_cache: Arc<Cache>,
    txa_cache: Arc<Cache>,
    rxf_cache: Arc<Cache>,
    stats: Option<Arc<Region>>,
}

impl Parts {
    fn of(arena: &Arena) -> Result<Parts> {
        let bad = |rule| {
            Error::Channel(ChannelError::InvalidParams {
                channel: arena.name().to_owned(),
                rule,
            })
        };
        let n = arena
            .nexus()
            .ok_or_else(|| bad("a channel needs a nexus arena"))?;
        let (Some(pool), Some(ring_cache), Some(txa_cache), Some(rxf_cache)) = (
            n.rx_pool().cloned(),
            n.ring_cache().cloned(),
            n.txaksd_cache().cloned(),
            n.rxfksd_cache().cloned(),
        ) else {
            return Err(bad(
                "a channel needs the arena's pool, rings and slot descriptors",
            ));
        };
        if pool.on_demand() {
            return Err(bad(
                "a channel's pool binds one buffer to each packet (no on-demand buffers)",
            ));
        }
        if n.has_channel() {
            return Err(bad(ONE_CHANNEL));
        }
        Ok(Parts {
            pool,
            ring_cache,
            txa_cache,
            rxf_cache,
            stats: n.stats_region().cloned(),
        })
    }
}

/// The rules on a channel's parameters, checked before anything is taken.
fn check(arena: &Arena, params: &ChannelParams, buf_size: u32) -> Result<()> {
    let bad = |rule| {
        Err(Error::Channel(ChannelError::InvalidParams {
            channel: arena.name().to_owned(),
            rule,
        }))
    };
    for e in [params.umem_ring_entries, params.ring_entries] {
        if !e.is_power_of_two() || e < 64 {
            return bad("ring entries must be a power of two, at least 64");
        }
    }
    if params.batch == 0 || params.batch > 4096 {
        return bad("batch must be 1..=4096");
    }
    if !buf_size.is_power_of_two() && !params.unaligned_chunks {
        return bad("AF_XDP aligned chunks need a power-of-two buffer size (or unaligned_chunks)");
    }
    if !params.tx_metadata_len.is_multiple_of(8) || params.tx_metadata_len >= 256 {
        return bad("TX metadata length must be a multiple of 8 below 256");
    }
    if params.tx_metadata_len >= buf_size / 2 {
        return bad("TX metadata must leave most of the frame for data");
    }
    if params.headroom >= buf_size / 2 {
        return bad("headroom must leave most of the frame for data");
    }
    if params.tx_budget.is_some_and(|b| b < TX_BUDGET_MIN) {
        return bad("a TX budget must be at least 32 (the kernel's own batch)");
    }
    if params.coalesce.is_some_and(|c| c.max_wait_us == 0) {
        return bad("coalescing needs a longest wait above 0 µs");
    }
    Ok(())
}

/// The rules a channel sharing `first`'s UMEM must also keep: the socket
/// takes its UMEM and bind options from the first one's (the kernel
/// refuses bind flags on a shared socket), so they must be the same, and it
/// brings its own fill and completion rings, so it must be another queue
/// or device.
fn check_shared(
    arena: &Arena,
    params: &ChannelParams,
    pool: &Arc<PacketPool>,
    first: &Channel,
) -> Result<()> {
    let bad = |rule| {
        Err(Error::Channel(ChannelError::InvalidParams {
            channel: arena.name().to_owned(),
            rule,
        }))
    };
    if !Arc::ptr_eq(pool, &first.pool) {
        return bad("a shared UMEM is one pool: the arena's pool must be the first channel's");
    }
    let f = &first.params;
    if (params.mode, params.need_wakeup, params.multi_buffer)
        != (f.mode, f.need_wakeup, f.multi_buffer)
    {
        return bad("a socket sharing a UMEM binds as the first one did: same mode, need_wakeup and multi_buffer");
    }
    if (
        params.headroom,
        params.unaligned_chunks,
        params.tx_metadata_len,
        params.tx_sw_csum,
    ) != (
        f.headroom,
        f.unaligned_chunks,
        f.tx_metadata_len,
        f.tx_sw_csum,
    ) {
        return bad("a socket sharing a UMEM has the first one's UMEM options: same headroom, chunks and TX metadata");
    }
    if params.ifname == f.ifname && params.queue == f.queue {
        return bad("sharing a UMEM on the first channel's own queue would share its fill and completion rings: bind another queue or device");
    }
    Ok(())
}

/// The four rings, mapped into RING objects of the channel's span.
struct Rings {
    fill: RingMem<u64>,
    comp: RingMem<u64>,
    rx: RingMem<XdpDesc>,
    tx: RingMem<XdpDesc>,
    /// Where they are, for the schema.
    info: [Option<RingInfo>; RingKind::COUNT],
}

/// Maps the socket's four rings into RING objects (taken into `objs`) of
/// `mapping`, the channel's span.
fn map_rings(
    arena: &Arena,
    sock: &XskSocket,
    mapping: &crate::arena::ArenaMapping,
    ring_cache: &Arc<Cache>,
    params: &ChannelParams,
    objs: &mut ObjGuard,
) -> Result<Rings> {
    let bad = |rule| {
        Error::Channel(ChannelError::InvalidParams {
            channel: arena.name().to_owned(),
            rule,
        })
    };
    let off = sock.mmap_offsets()?;
    let obj_size = ring_cache.region().geometry().obj_size;
    let (ring_base, _) = mapping
        .region(RegionId::Ring)
        .ok_or_else(|| bad("RING not mapped"))?;
    let ring_span_off = ring_base as usize - mapping.addr() as usize;
    let mut info: [Option<RingInfo>; RingKind::COUNT] = Default::default();
    // Where each ring was mapped, in the order below.
    let mut places = Vec::with_capacity(4);
    for (id, kind, o, entries) in [
        (
            RingId::Fill,
            RingKind::Fill,
            &off.fr,
            params.umem_ring_entries,
        ),
        (
            RingId::Completion,
            RingKind::Completion,
            &off.cr,
            params.umem_ring_entries,
        ),
        (RingId::Rx, RingKind::Rx, &off.rx, params.ring_entries),
        (RingId::Tx, RingKind::Tx, &off.tx, params.ring_entries),
    ] {
        let len = (o.desc as usize + entries as usize * id.desc_size())
            .next_multiple_of(crate::sys::page_size());
        if len > obj_size {
            return Err(bad(
                "a ring does not fit a RING object: fewer entries, or a larger RING region",
            ));
        }
        let obj = objs.take(ring_cache, "no RING object left", arena)?;
        let at = ring_base.wrapping_add(obj as usize * obj_size);
        // SAFETY: `at..at+len` is RING object `obj` (just taken for this
        // ring) inside the channel's own span, page-aligned since the
        // object size is a multiple of the page; its old contents (the
        // region's zero pages) are not used by anyone.
        unsafe { sock.map_ring_at(id, at, len)? };
        places.push((at, o, entries));
        let base = (ring_span_off + obj as usize * obj_size) as u64;
        info[kind.index()] = Some(RingInfo {
            entries,
            producer: base + o.producer,
            consumer: base + o.consumer,
            desc: base + o.desc,
            flags: base + o.flags.unwrap_or(o.producer),
            desc_size: id.desc_size() as u32,
        });
    }
    let [fill, comp, rx, tx] = places[..] else {
        return Err(bad("ring set-up"));
    };
    // SAFETY: each place starts a ring mapping just made for a ring of
    // that entry type (UMEM addresses for fill and completion, descriptors
    // for RX and TX: `RingId::desc_size`), its length covers the
    // descriptors, and the span outlives the ring (the channel holds the
    // mapping, and drops the rings' users first).
    let rings = unsafe {
        Rings {
            fill: RingMem::new(fill.0, fill.1, fill.2),
            comp: RingMem::new(comp.0, comp.1, comp.2),
            rx: RingMem::new(rx.0, rx.1, rx.2),
            tx: RingMem::new(tx.0, tx.1, tx.2),
            info,
        }
    };
    Ok(rings)
}

/// How long a bind waits for a queue whose last socket has just closed:
/// the kernel lets go of the queue from a workqueue after `close`
/// returns, and until then a bind to it is refused with EBUSY.
const BIND_BUSY_WAIT: Duration = Duration::from_secs(1);

/// [`bind`], retried while the queue is still being released (EBUSY), up
/// to [`BIND_BUSY_WAIT`].
fn bind_when_free(
    sock: &mut XskSocket,
    ifindex: u32,
    params: &ChannelParams,
    first: Option<&Channel>,
) -> Result<()> {
    // One creation step, however many times the bind is retried.
    crate::failpoint::step(if first.is_some() {
        "bind(AF_XDP, shared UMEM)"
    } else {
        "bind(AF_XDP)"
    })?;
    let deadline = Instant::now() + BIND_BUSY_WAIT;
    loop {
        match bind(sock, ifindex, params, first) {
            Err(e) if e.errno() == libc::EBUSY && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(2));
            }
            r => return r,
        }
    }
}

/// Binds `sock` as `params` say (falling back to copy mode in `Auto`), or
/// to `first`'s UMEM.
fn bind(
    sock: &mut XskSocket,
    ifindex: u32,
    params: &ChannelParams,
    first: Option<&Channel>,
) -> Result<()> {
    if let Some(first) = first {
        return sock.bind_shared(ifindex, params.queue, &first.sock);
    }
    let flags = |copy, zero_copy| BindFlags {
        copy,
        zero_copy,
        need_wakeup: params.need_wakeup,
        multi_buffer: params.multi_buffer,
    };
    match params.mode {
        BindMode::Copy => sock.bind(ifindex, params.queue, flags(true, false)),
        BindMode::ZeroCopy => sock.bind(ifindex, params.queue, flags(false, true)),
        BindMode::Auto => match sock.bind(ifindex, params.queue, flags(false, true)) {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::info!(ifname = %params.ifname, error = %e, "zero-copy bind refused, falling back to copy mode");
                sock.bind(ifindex, params.queue, flags(true, false))
            }
        },
    }
}

/// A slot-descriptor stack in an object (taken into `objs`) of the
/// owner-private `cache` and its user mirror `usd`.
fn slots(arena: &Arena, cache: &Arc<Cache>, usd: RegionId, objs: &mut ObjGuard) -> Result<Slots> {
    crate::failpoint::step("slot descriptors")?;
    let obj = objs.take(cache, "no slot-descriptor object left", arena)?;
    Ok(Slots::new(cache.region().clone(), arena.region(usd), obj))
}

impl Channel {
    /// Opens a channel on `params.ifname`/`params.queue` over `arena` (a
    /// nexus arena that is not owner-only and has no channel yet).
    ///
    /// The fill ring starts empty, as libxdp's sockets do: the first
    /// receive call ([`rx_burst`](Self::rx_burst),
    /// [`inspect_rx`](Self::inspect_rx), [`poll`](Self::poll)) or
    /// [`refill`](Self::refill) feeds it, so a channel that only sends
    /// lends the kernel no frames. Frames that reach the socket before then
    /// are dropped for want of a fill frame (`XDP_STATISTICS`' fill-ring
    /// empty count): call `refill` once the socket is in the XSKMAP if
    /// traffic may already be flowing.
    ///
    /// On failure nothing is left: every step is undone.
    pub fn open(arena: &Arena, params: &ChannelParams) -> Result<Channel> {
        Self::open_with(arena, params, None)
    }

    /// Opens a channel whose socket shares `first`'s UMEM
    /// (`XDP_SHARED_UMEM`, as libxdp's `xsk_socket__create_shared`): one
    /// packet pool as the UMEM of sockets on several queues or devices,
    /// each with its own fill and completion rings.
    ///
    /// `arena` is a nexus arena over `first`'s pool (made with
    /// [`NexusParams::rx_pool`](crate::arena::NexusParams::rx_pool) set to
    /// it); `params` must bind a queue or device other than `first`'s, with
    /// `first`'s mode, wakeups, multi-buffer and UMEM options (the socket
    /// inherits them). Each channel gives back only its own frames, so
    /// either may close while the other runs; the pool needs a worker slot
    /// per channel ([`PoolParams::workers`](crate::pool::PoolParams::workers)).
    pub fn open_shared(arena: &Arena, params: &ChannelParams, first: &Channel) -> Result<Channel> {
        Self::open_with(arena, params, Some(first))
    }

    fn open_with(
        arena: &Arena,
        params: &ChannelParams,
        first: Option<&Channel>,
    ) -> Result<Channel> {
        let parts = Parts::of(arena)?;
        let pool = parts.pool;
        let buf_size = pool.buf_size() as u32;
        check(arena, params, buf_size)?;
        if let Some(first) = first {
            check_shared(arena, params, &pool, first)?;
        }
        let ifindex = ifindex(&params.ifname)?;

        let holder = HolderClaim::take(&pool)?;
        let mut mapping = arena.map()?;
        mapping.hold_channel();
        let mut sock = socket(&pool, params, buf_size, first.is_none())?;
        let mut objs = ObjGuard::default();
        let rings = map_rings(arena, &sock, &mapping, &parts.ring_cache, params, &mut objs)?;
        bind_when_free(&mut sock, ifindex, params, first)?;
        let zero_copy = sock.zero_copy()?;
        tune(&sock, params)?;
        let schema_rings = SchemaRings::record(arena, rings.info)?;
        let mut slot_objs = ObjGuard::default();
        let rxf = slots(arena, &parts.rxf_cache, RegionId::RxfUsd, &mut slot_objs)?;
        let txa = slots(arena, &parts.txa_cache, RegionId::TxaUsd, &mut slot_objs)?;
        objs.absorb(slot_objs);
        let slot_hold = arena.hold_slot_descriptors()?;
        let worker = pool.worker()?;

        tracing::info!(ifname = %params.ifname, queue = params.queue, zero_copy, shared = first.is_some(), "channel bound");
        arena.emit(
            skmem_xdp_common::HookEvent::ChannelBind,
            (mapping.addr() as usize, mapping.size()),
            params.queue << 1 | zero_copy as u32,
            0,
        );
        let tag = Tags::of(holder.holder);
        let (counters, published) = register(arena, params, zero_copy, &sock);
        Ok(Channel {
            sock: std::mem::ManuallyDrop::new(sock),
            fill: Producer::new(rings.fill),
            comp: Consumer::new(rings.comp),
            rx: Consumer::new(rings.rx),
            tx: Producer::new(rings.tx),
            worker,
            pool_id: pool.id(),
            tag,
            geo: UmemGeometry::new(buf_size, pool.packet_count(), params.unaligned_chunks),
            states: pool.state_column(),
            buf_def: pool.buf_def().clone(),
            pool,
            rxf,
            txa,
            _claims: Claims {
                _objs: objs,
                _rings: schema_rings,
                _slots: slot_hold,
                _holder: holder,
            },
            mapping,
            arena: arena.clone(),
            // Room for a whole multi-buffer packet whatever the batch.
            scratch_descs: vec![XdpDesc::default(); params.batch.max(MAX_FRAGS)],
            scratch_pkts: vec![Default::default(); params.batch.max(MAX_FRAGS)],
            stats: parts.stats,
            params: params.clone(),
            ifindex,
            zero_copy,
            counters,
            published,
            rx_held: 0,
            rx_taken: 0,
            moderator: params.coalesce.map(coalesce::Moderator::new),
            adaptive: None,
            timer_slack_set: false,
        })
    }
}

/// The AF_XDP socket, its UMEM registered (unless it shares another
/// socket's) and its four rings sized.
fn socket(
    pool: &PacketPool,
    params: &ChannelParams,
    buf_size: u32,
    owns_umem: bool,
) -> Result<XskSocket> {
    let mut sock = XskSocket::new()?;
    if owns_umem {
        sock.register_umem(
            pool.buf_def().clone(),
            buf_size,
            params.headroom,
            UmemOptions {
                unaligned: params.unaligned_chunks,
                tx_metadata_len: params.tx_metadata_len,
                tx_sw_csum: params.tx_sw_csum,
            },
        )?;
    }
    sock.set_ring_size(RingId::Fill, params.umem_ring_entries)?;
    sock.set_ring_size(RingId::Completion, params.umem_ring_entries)?;
    sock.set_ring_size(RingId::Rx, params.ring_entries)?;
    sock.set_ring_size(RingId::Tx, params.ring_entries)?;
    Ok(sock)
}

/// The socket options a bound socket takes: busy polling and the TX
/// budget.
fn tune(sock: &XskSocket, params: &ChannelParams) -> Result<()> {
    if let Some((usecs, budget)) = params.busy_poll {
        sock.set_busy_poll(usecs, budget)?;
    }
    if let Some(b) = params.tx_budget {
        if !sock.set_max_tx_budget(b.min(params.ring_entries))? {
            tracing::info!("XDP_MAX_TX_SKB_BUDGET not supported by this kernel");
        }
    }
    Ok(())
}

/// Lists the channel in the registry, with counters it shares with it.
fn register(
    arena: &Arena,
    params: &ChannelParams,
    zero_copy: bool,
    sock: &XskSocket,
) -> (Arc<LiveCounters>, Arc<super::registry::ChannelRecord>) {
    let counters = Arc::new(LiveCounters::default());
    let published = super::registry::register_channel(super::registry::ChannelRecord {
        arena: arena.name().to_owned(),
        arena_id: arena.id(),
        ifname: params.ifname.clone(),
        queue: params.queue,
        zero_copy,
        counters: counters.clone(),
        fd: std::sync::Mutex::new(Some(sock.as_fd().as_raw_fd())),
    });
    (counters, published)
}
