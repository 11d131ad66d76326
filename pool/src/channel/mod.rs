//! Channels: an AF_XDP socket on one interface queue, bound to a nexus
//! arena (Skywalk's channel, realized with AF_XDP).
//!
//! The arena's BUF_DEF region **is** the UMEM: registered from the owner's
//! view, chunk = buffer size, so a packet index *i* is UMEM frame *i*. The
//! four rings are mapped into four objects of the arena's RING region,
//! inside the owner's span, and the schema records where. Packets move
//! between pool and kernel by index, never copied:
//!
//! ```text
//!            alloc                 rx_burst
//!  pool ──────────────► fill ring ─────────► RX ring ──► app
//!   ▲   ◄── RX-free slots ◄──── free_rx ◄───────────────┘  │
//!   │                                                        │ tx_burst
//!   └── TX-alloc slots ◄── completion ring ◄── TX ring ◄─────┘
//!            (alloc_tx takes from here first)
//! ```
//!
//! Two short cuts keep a busy loop off the slots: `free_rx` puts frames
//! straight back onto the fill ring while it has room, and `complete`
//! returns sent frames straight to the fill ring in place of frames RX
//! took (a forwarding loop's frames then go ring to ring).
//!
//! Every frame's place is kept in its metadata ([`PacketState`]), so a
//! descriptor from the kernel that names a frame not where the ring says is
//! dropped and counted, never double-freed, and [`Channel::account`] can
//! prove that each frame is in exactly one place.
//!
//! The per-packet path allocates nothing, takes no lock, and makes a
//! syscall only when the ring asks for one (NEED_WAKEUP) — or, without
//! need_wakeup, once per TX batch, as copy mode requires.
//!
//! Where things are: opening and binding here; the receive side in `rx`
//! (fill ring, RX ring, giving frames back), the send side in `tx` (TX
//! ring, `reflect`, completions), the slot descriptors in `slots`, the
//! frame types in `frame`, counters and frame accounting in `account`,
//! receive coalescing (waking once a batch) in `coalesce`, where frames lie
//! in the UMEM in `umem`, the rings in `ring` and the socket's syscalls in
//! `xsk`.

mod account;
mod coalesce;
mod frame;
mod ring;
mod rx;
mod slots;
mod tx;
mod umem;
mod xsk;

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

pub use account::{ChannelCounters, FrameAccount};
pub use coalesce::Coalesce;
pub use frame::{RxFrame, TxFrame, TxMetadata, MAX_FRAGS, TX_METADATA_SIZE, XDP_TX_METADATA};
pub use ring::{XdpDesc, XDP_PKT_CONTD};
use slots::Slots;
pub use xsk::{BindFlags, RingId, UmemOptions, XskSocket, XskStats};

use ring::{Consumer, Producer, RingMem};
use umem::UmemGeometry;

use crate::arena::{Arena, ArenaMapping};
use crate::error::{Error, Result};
use crate::pool::{PacketIndex, PacketPool, PacketState, PoolWorker, StateColumn};
use crate::region::RegionId;
use crate::schema::{RingInfo, RingKind};

/// The smallest `XDP_MAX_TX_SKB_BUDGET` the kernel accepts (its
/// `TX_BATCH_SIZE`).
const TX_BUDGET_MIN: u32 = 32;

/// Copy, zero-copy, or whichever the driver allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BindMode {
    /// Force copy mode (`XDP_COPY`).
    Copy,
    /// Force zero-copy mode (`XDP_ZEROCOPY`); fails where unsupported.
    ZeroCopy,
    /// Try zero-copy, fall back to copy; [`Channel::zero_copy`] says which.
    Auto,
}

/// How to open a channel.
#[derive(Debug, Clone)]
pub struct ChannelParams {
    /// Interface name.
    pub ifname: String,
    /// Queue id on the interface.
    pub queue: u32,
    /// Bind mode.
    pub mode: BindMode,
    /// Use NEED_WAKEUP (syscalls only when the kernel asks).
    pub need_wakeup: bool,
    /// Bytes reserved in front of each frame's data (UMEM headroom).
    pub headroom: u32,
    /// Entries of the fill and completion rings.
    pub umem_ring_entries: u32,
    /// Entries of the RX and TX rings.
    pub ring_entries: u32,
    /// Descriptors moved per call.
    pub batch: usize,
    /// Busy polling: (µs, budget).
    pub busy_poll: Option<(u32, u32)>,
    /// `XDP_MAX_TX_SKB_BUDGET` where the kernel has it: how many TX
    /// descriptors one copy-mode `sendto` may transmit (the kernel's default
    /// is 32, which caps a batch of 64 at half). At least 32; more than
    /// the TX ring holds is clamped to its size (the kernel refuses it).
    pub tx_budget: Option<u32>,
    /// Unaligned UMEM chunks (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`): lets a
    /// pool of truncated, non-power-of-two buffers be the UMEM. RX
    /// addresses carry their offset in the top 16 bits; the channel hands
    /// out plain UMEM addresses either way.
    pub unaligned_chunks: bool,
    /// Bytes of TX metadata in front of a TX frame's data (0, or a multiple
    /// of 8 below 256; [`TxMetadata`] needs [`TX_METADATA_SIZE`]). Frames
    /// sent with [`Channel::tx_burst_with_metadata`] carry it.
    pub tx_metadata_len: u32,
    /// Checksums requested by TX metadata are computed by the kernel in
    /// software (`XDP_UMEM_TX_SW_CSUM`; what copy mode offers).
    pub tx_sw_csum: bool,
    /// Multi-buffer packets (`XDP_USE_SG`): a packet larger than a buffer
    /// arrives, and may be sent, as a chain of frames — every frame but
    /// the last says [`RxFrame::more`] / [`TxFrame::more`]. The XDP
    /// program must be frags-aware (skmem's is). `rx_burst` then never
    /// splits a packet, and needs room for [`MAX_FRAGS`] frames.
    pub multi_buffer: bool,
    /// Receive coalescing for [`Channel::poll`]: sleep until a batch
    /// should have arrived, instead of waking at every NAPI flush (see
    /// [`Coalesce`]). Off by default: it trades up to
    /// [`Coalesce::max_wait_us`] of latency for fewer wake-ups.
    pub coalesce: Option<Coalesce>,
}

impl ChannelParams {
    /// Defaults: copy-or-zero-copy, need_wakeup, no headroom, 1024-entry
    /// rings, batches of 64, a TX budget of the whole TX ring.
    pub fn new(ifname: impl Into<String>, queue: u32) -> Self {
        Self {
            ifname: ifname.into(),
            queue,
            mode: BindMode::Auto,
            need_wakeup: true,
            headroom: 0,
            umem_ring_entries: 1024,
            ring_entries: 1024,
            batch: 64,
            busy_poll: None,
            tx_budget: Some(1024),
            unaligned_chunks: false,
            tx_metadata_len: 0,
            tx_sw_csum: false,
            multi_buffer: false,
            coalesce: None,
        }
    }
}

/// An AF_XDP socket bound to a nexus arena: see the module docs.
pub struct Channel {
    // Drop order matters: the socket is closed first, in `Drop` (the kernel
    // stops touching the UMEM and the rings), then the frames it held go
    // back to the pool, then the fields drop — the mapping holding the
    // rings among them.
    sock: std::mem::ManuallyDrop<XskSocket>,
    /// RING and slot-descriptor objects this channel took, to give back.
    objs: Vec<(Arc<crate::cache::Cache>, u32)>,
    fill: Producer,
    comp: Consumer,
    rx: Consumer,
    tx: Producer,
    worker: PoolWorker,
    pool: Arc<PacketPool>,
    rxf: Slots,
    txa: Slots,
    mapping: ArenaMapping,
    arena: Arena,
    params: ChannelParams,
    ifindex: u32,
    zero_copy: bool,
    counters: ChannelCounters,
    /// Frames given to the kernel for RX (fill ring + RX ring) not yet
    /// taken back from the RX ring: kept at most the RX ring's size, so the
    /// RX ring never overflows. Excess traffic is then dropped by the
    /// kernel before it copies a frame (fill ring empty) rather than after
    /// (RX ring full) — a copy saved per dropped frame, and no cache line of
    /// the RX ring's indices bouncing between the CPUs while it is full.
    rx_held: u32,
    /// Frames RX has taken from the kernel (popped from the RX ring) and
    /// the fill ring has not had back yet. Completed TX frames go straight
    /// to the fill ring only up to this: a channel that never receives
    /// keeps its completions for TX.
    rx_taken: u32,
    /// The UMEM's layout, kept here: [`pkt_of`](Self::pkt_of) runs per
    /// frame, and reaching the pool's packet count through the pool is
    /// three dependent loads the compiler cannot hoist past the state
    /// stores.
    geo: UmemGeometry,
    /// The pool's state column, kept here for the same reason.
    states: StateColumn,
    /// Start of BUF_DEF in the owner's view: the UMEM as registered, where
    /// a plain UMEM address is an offset.
    umem: *const u8,
    scratch_descs: Vec<XdpDesc>,
    scratch_pkts: Vec<PacketIndex>,
    scratch_tx: Vec<TxFrame>,
    stats_obj: Option<*mut u8>,
    /// Receive coalescing's rate estimate, when configured.
    moderator: Option<coalesce::Moderator>,
    /// Whether this channel has set its thread's timer slack (coalescing's
    /// sleeps are short: the default 50 µs of slack would double them).
    timer_slack_set: bool,
}

// SAFETY: every raw pointer a Channel holds (rings, slot descriptors, the
// statistics object, the UMEM) targets memory owned by the arena, mapping
// and pool it holds; a Channel is used from one thread at a time (`&mut self`).
unsafe impl Send for Channel {}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("arena", &self.arena.name())
            .field("ifname", &self.params.ifname)
            .field("queue", &self.params.queue)
            .field("zero_copy", &self.zero_copy)
            .finish()
    }
}

/// The interface index of `ifname`.
pub fn ifindex(ifname: &str) -> Result<u32> {
    let c = std::ffi::CString::new(ifname).map_err(|_| Error::InvalidArenaParams {
        arena: ifname.to_owned(),
        rule: "an interface name has no NUL",
    })?;
    // SAFETY: `c` is a valid NUL-terminated string for the call's duration.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(Error::Sys {
            call: "if_nametoindex",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(idx)
}

impl Channel {
    /// Opens a channel on `params.ifname`/`params.queue` over `arena` (a
    /// nexus arena that is not owner-only).
    ///
    /// The fill ring starts empty, as libxdp's sockets do: the first
    /// receive call ([`rx_burst`](Self::rx_burst),
    /// [`inspect_rx`](Self::inspect_rx), [`poll`](Self::poll)) or
    /// [`refill`](Self::refill) feeds it, so a channel that only sends
    /// lends the kernel no frames. Frames that reach the socket before then
    /// are dropped for want of a fill frame (`XDP_STATISTICS`' fill-ring
    /// empty count): call `refill` once the socket is in the XSKMAP if
    /// traffic may already be flowing.
    pub fn open(arena: &Arena, params: &ChannelParams) -> Result<Channel> {
        let bad = |rule| Error::InvalidArenaParams {
            arena: arena.name().to_owned(),
            rule,
        };
        let (pool, ring_cache, txa_cache, rxf_cache, stats_obj) = arena
            .with_nexus(|n| {
                (
                    n.rx_pool().cloned(),
                    n.ring_cache().cloned(),
                    n.txaksd_cache().cloned(),
                    n.rxfksd_cache().cloned(),
                    n.stats_obj(),
                )
            })
            .ok_or_else(|| bad("a channel needs a nexus arena"))?;
        let (Some(pool), Some(ring_cache), Some(txa_cache), Some(rxf_cache)) =
            (pool, ring_cache, txa_cache, rxf_cache)
        else {
            return Err(bad(
                "a channel needs the arena's pool, rings and slot descriptors",
            ));
        };
        if pool.on_demand() {
            return Err(bad(
                "a channel's pool binds one buffer to each packet (no on-demand buffers)",
            ));
        }
        for e in [params.umem_ring_entries, params.ring_entries] {
            if !e.is_power_of_two() || e < 64 {
                return Err(bad("ring entries must be a power of two, at least 64"));
            }
        }
        if params.batch == 0 || params.batch > 4096 {
            return Err(bad("batch must be 1..=4096"));
        }
        let buf_size = pool.buf_size() as u32;
        if !buf_size.is_power_of_two() && !params.unaligned_chunks {
            return Err(bad(
                "AF_XDP aligned chunks need a power-of-two buffer size (or unaligned_chunks)",
            ));
        }
        if !params.tx_metadata_len.is_multiple_of(8) || params.tx_metadata_len >= 256 {
            return Err(bad("TX metadata length must be a multiple of 8 below 256"));
        }
        if params.tx_metadata_len >= buf_size / 2 {
            return Err(bad("TX metadata must leave most of the frame for data"));
        }
        if params.headroom >= buf_size / 2 {
            return Err(bad("headroom must leave most of the frame for data"));
        }
        if params.tx_budget.is_some_and(|b| b < TX_BUDGET_MIN) {
            return Err(bad(
                "a TX budget must be at least 32 (the kernel's own batch)",
            ));
        }
        if params.coalesce.is_some_and(|c| c.max_wait_us == 0) {
            return Err(bad("coalescing needs a longest wait above 0 µs"));
        }
        let ifindex = ifindex(&params.ifname)?;
        let mapping = arena.map()?;

        let mut sock = XskSocket::new()?;
        let umem = pool
            .region(RegionId::BufDef)
            .cloned()
            .ok_or_else(|| bad("no BUF_DEF region"))?;
        let umem_base = umem.base().cast_const();
        sock.register_umem(
            umem,
            buf_size,
            params.headroom,
            UmemOptions {
                unaligned: params.unaligned_chunks,
                tx_metadata_len: params.tx_metadata_len,
                tx_sw_csum: params.tx_sw_csum,
            },
        )?;
        sock.set_ring_size(RingId::Fill, params.umem_ring_entries)?;
        sock.set_ring_size(RingId::Completion, params.umem_ring_entries)?;
        sock.set_ring_size(RingId::Rx, params.ring_entries)?;
        sock.set_ring_size(RingId::Tx, params.ring_entries)?;
        let off = sock.mmap_offsets()?;

        // One RING object per ring, inside the span.
        let ring_region = arena
            .region(RegionId::Ring)
            .ok_or_else(|| bad("no RING region"))?;
        let obj_size = ring_region.geometry().obj_size;
        let (ring_base, _) = mapping
            .region(RegionId::Ring)
            .ok_or_else(|| bad("RING not mapped"))?;
        let ring_span_off = ring_base as usize - mapping.addr() as usize;
        let mut rings: [Option<RingInfo>; RingKind::COUNT] = Default::default();
        let mut mems = Vec::with_capacity(4);
        // Objects taken, given back if set-up fails half-way.
        let mut objs = ObjGuard(Vec::new());
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
            let obj = ring_cache
                .alloc()
                .ok_or_else(|| bad("no RING object left"))?;
            objs.push((ring_cache.clone(), obj));
            let at = ring_base.wrapping_add(obj as usize * obj_size);
            // SAFETY: `at..at+len` is RING object `obj` (just allocated for
            // this ring) inside this channel's own span, page-aligned since
            // the object size is a multiple of the page; its old contents
            // (the region's zero pages) are not used by anyone.
            unsafe { sock.map_ring_at(id, at, len)? };
            // SAFETY: `at` starts the ring mapping just made, `len` covers
            // its descriptors, and the span outlives the ring (field order).
            mems.push(unsafe { RingMem::new(at, o, entries) });
            let base = (ring_span_off + obj as usize * obj_size) as u64;
            rings[kind.index()] = Some(RingInfo {
                entries,
                producer: base + o.producer,
                consumer: base + o.consumer,
                desc: base + o.desc,
                flags: base + o.flags.unwrap_or(o.producer),
                desc_size: id.desc_size() as u32,
            });
        }
        let mut mems = mems.into_iter();
        let (Some(fr), Some(cr), Some(rx), Some(tx)) =
            (mems.next(), mems.next(), mems.next(), mems.next())
        else {
            return Err(bad("ring set-up"));
        };

        let flags = |copy, zero_copy| BindFlags {
            copy,
            zero_copy,
            need_wakeup: params.need_wakeup,
            multi_buffer: params.multi_buffer,
        };
        match params.mode {
            BindMode::Copy => sock.bind(ifindex, params.queue, flags(true, false))?,
            BindMode::ZeroCopy => sock.bind(ifindex, params.queue, flags(false, true))?,
            BindMode::Auto => {
                if let Err(e) = sock.bind(ifindex, params.queue, flags(false, true)) {
                    tracing::info!(ifname = %params.ifname, error = %e, "zero-copy bind refused, falling back to copy mode");
                    sock.bind(ifindex, params.queue, flags(true, false))?;
                }
            }
        }
        let zero_copy = sock.zero_copy()?;
        if let Some((usecs, budget)) = params.busy_poll {
            sock.set_busy_poll(usecs, budget)?;
        }
        if let Some(b) = params.tx_budget {
            if !sock.set_max_tx_budget(b.min(params.ring_entries))? {
                tracing::info!("XDP_MAX_TX_SKB_BUDGET not supported by this kernel");
            }
        }
        arena.set_schema_rings(rings)?;

        let mut slots = |cache: &Arc<crate::cache::Cache>, usd: RegionId| -> Result<Slots> {
            let obj = cache
                .alloc()
                .ok_or_else(|| bad("no slot-descriptor object left"))?;
            objs.push((cache.clone(), obj));
            let ksd = cache.obj_ptr(obj)?;
            let usd = arena.region(usd).map(|r| r.obj_ptr(obj)).transpose()?;
            Ok(Slots {
                ksd,
                usd,
                cap: cache.region().geometry().obj_size / 8,
                len: 0,
            })
        };
        let rxf = slots(&rxf_cache, RegionId::RxfUsd)?;
        let txa = slots(&txa_cache, RegionId::TxaUsd)?;
        // The slot descriptors must outlive a defunct while we use them.
        arena.sd_set_noidle(1)?;
        let worker = pool.worker()?;
        tracing::info!(ifname = %params.ifname, queue = params.queue, zero_copy, "channel bound");
        arena.emit(
            skmem_xdp_common::HookEvent::ChannelBind,
            (mapping.addr() as usize, mapping.size()),
            params.queue << 1 | zero_copy as u32,
            0,
        );
        Ok(Channel {
            sock: std::mem::ManuallyDrop::new(sock),
            objs: std::mem::take(&mut objs.0),
            fill: Producer::new(fr),
            comp: Consumer::new(cr),
            rx: Consumer::new(rx),
            tx: Producer::new(tx),
            worker,
            geo: UmemGeometry::new(buf_size, pool.packet_count(), params.unaligned_chunks),
            states: pool.state_column(),
            umem: umem_base,
            pool,
            rxf,
            txa,
            mapping,
            arena: arena.clone(),
            // Room for a whole multi-buffer packet whatever the batch.
            scratch_descs: vec![XdpDesc::default(); params.batch.max(MAX_FRAGS)],
            scratch_pkts: vec![0; params.batch],
            scratch_tx: vec![TxFrame::default(); params.batch + MAX_FRAGS],
            params: params.clone(),
            ifindex,
            zero_copy,
            counters: ChannelCounters::default(),
            rx_held: 0,
            rx_taken: 0,
            stats_obj,
            moderator: params.coalesce.map(coalesce::Moderator::new),
            timer_slack_set: false,
        })
    }

    /// The socket, to add to an XSKMAP.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }

    /// Did the bind end in zero-copy mode?
    pub fn zero_copy(&self) -> bool {
        self.zero_copy
    }

    /// The packet pool.
    pub fn pool(&self) -> &Arc<PacketPool> {
        &self.pool
    }

    /// The arena.
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// The owner's mapping of the arena, which holds the rings.
    pub fn mapping(&self) -> &ArenaMapping {
        &self.mapping
    }

    /// The interface index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The parameters it was opened with.
    pub fn params(&self) -> &ChannelParams {
        &self.params
    }

    /// Packet counters.
    pub fn counters(&self) -> ChannelCounters {
        self.counters
    }

    /// How many more frames the kernel may be given for RX (see `rx_held`).
    #[inline(always)]
    fn rx_room(&self) -> usize {
        self.rx.size().saturating_sub(self.rx_held) as usize
    }

    /// The plain UMEM address of a descriptor's (see [`UmemGeometry`]).
    #[inline(always)]
    fn linear(&self, addr: u64) -> u64 {
        self.geo.linear(addr)
    }

    /// The packet whose buffer holds plain UMEM address `addr`.
    #[inline(always)]
    fn pkt_of(&self, addr: u64) -> Option<PacketIndex> {
        self.geo.pkt_of(addr)
    }

    /// The UMEM address of packet `pkt`'s buffer.
    #[inline(always)]
    fn addr_of(&self, pkt: PacketIndex) -> u64 {
        self.geo.addr_of(pkt)
    }

    /// The kernel's statistics for this socket.
    pub fn xsk_stats(&self) -> Result<XskStats> {
        self.sock.statistics()
    }

    /// Publishes the counters and the kernel's statistics into the
    /// arena's USTATS object (little-endian u64s: rx packets, rx bytes, tx
    /// packets, tx bytes, tx completed, bad descriptors, tx refused, then
    /// `XDP_STATISTICS`' six counters).
    pub fn publish_stats(&self) -> Result<()> {
        let Some(p) = self.stats_obj else {
            return Ok(());
        };
        let k = self.sock.statistics()?;
        let c = self.counters;
        let words = [
            c.rx_packets,
            c.rx_bytes,
            c.tx_packets,
            c.tx_bytes,
            c.tx_completed,
            c.bad_descs,
            c.tx_refused,
            k.rx_dropped,
            k.rx_invalid_descs,
            k.tx_invalid_descs,
            k.rx_ring_full,
            k.rx_fill_ring_empty_descs,
            k.tx_ring_empty_descs,
        ];
        for (i, w) in words.iter().enumerate() {
            // SAFETY: the statistics object is STATS_SIZE (256) bytes of the
            // arena's USTATS region, held while the arena lives (the channel
            // holds the arena); 13 words fit.
            unsafe { std::ptr::write_volatile(p.add(i * 8).cast::<u64>(), w.to_le()) };
        }
        Ok(())
    }

    /// Frees the application's packets straight to the pool.
    pub fn free(&mut self, pkts: &[PacketIndex]) -> usize {
        self.worker.free_batch_from(pkts, PacketState::Allocated)
    }

    /// Ring sizes (fill, completion, RX, TX).
    pub fn ring_sizes(&self) -> [u32; 4] {
        [
            self.fill.size(),
            self.comp.size(),
            self.rx.size(),
            self.tx.size(),
        ]
    }
}

/// Cache objects taken during set-up, given back unless the channel was
/// built (then the channel gives them back when dropped).
struct ObjGuard(Vec<(Arc<crate::cache::Cache>, u32)>);

impl ObjGuard {
    fn push(&mut self, o: (Arc<crate::cache::Cache>, u32)) {
        self.0.push(o);
    }
}

impl Drop for ObjGuard {
    fn drop(&mut self) {
        for (cache, obj) in self.0.drain(..) {
            let _ = cache.free(obj);
        }
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        // SAFETY: `sock` is dropped exactly once, here, and never used
        // after (the remaining code touches only the pool and the arena).
        unsafe { std::mem::ManuallyDrop::drop(&mut self.sock) };
        // The kernel no longer holds any frame: every frame it held, and
        // every frame parked in our slots, goes back to the pool.
        for state in [PacketState::Fill, PacketState::Tx, PacketState::Staged] {
            let held: Vec<PacketIndex> = (0..self.pool.packet_count())
                .filter(|&p| self.pool.state(p).ok() == Some(state))
                .collect();
            self.worker.free_batch_from(&held, state);
        }
        for (cache, obj) in self.objs.drain(..) {
            let _ = cache.free(obj);
        }
        if let Err(e) = self.arena.sd_set_noidle(-1) {
            tracing::warn!(error = %e, "no-idle count");
        }
        let _ = self.arena.set_schema_rings(Default::default());
        self.arena.emit(
            skmem_xdp_common::HookEvent::ChannelUnbind,
            (self.mapping.addr() as usize, self.mapping.size()),
            self.params.queue << 1,
            0,
        );
    }
}
