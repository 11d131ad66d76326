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
//! Every frame's place is kept in its metadata ([`PacketState`]), so a
//! descriptor from the kernel that names a frame not where the ring says is
//! dropped and counted, never double-freed, and [`Channel::account`] can
//! prove that each frame is in exactly one place.
//!
//! The per-packet path allocates nothing, takes no lock, and makes a
//! syscall only when the ring asks for one (NEED_WAKEUP) — or, without
//! need_wakeup, once per TX batch, as copy mode requires.

mod ring;
mod xsk;

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

pub use ring::{XdpDesc, XDP_PKT_CONTD};
pub use xsk::{BindFlags, RingId, UmemOptions, XskSocket, XskStats};

use ring::{Consumer, Producer, RingMem};

use crate::arena::{Arena, ArenaMapping};
use crate::error::{Error, Result};
use crate::pool::{PacketIndex, PacketPool, PacketState, PoolWorker, StateColumn};
use crate::region::RegionId;
use crate::schema::{RingInfo, RingKind};

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
    /// is 32, which caps a batch of 64 at half).
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
        }
    }
}

/// How many frames ahead [`Channel::reflect`] prefetches headers: enough
/// misses in flight to hide their latency, fewer than a core's line-fill
/// buffers (10–16 on current x86).
const PREFETCH_AHEAD: usize = 8;

/// A received frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxFrame {
    /// The packet (its metadata index; also its UMEM frame).
    pub pkt: PacketIndex,
    /// UMEM address of the data.
    pub addr: u64,
    /// Bytes of data.
    pub len: u32,
    /// Descriptor options (XDP_PKT_CONTD).
    pub options: u32,
}

impl RxFrame {
    /// More fragments of this packet follow (multi-buffer channels).
    pub fn more(&self) -> bool {
        self.options & XDP_PKT_CONTD != 0
    }
}

/// Most frames one packet may span: copy mode's limit (`MAX_SKB_FRAGS`
/// fragments after the first). Longer TX chains are refused.
pub const MAX_FRAGS: usize = 18;

/// A frame to send: a packet the application holds, and where its data is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxFrame {
    /// The packet.
    pub pkt: PacketIndex,
    /// Offset of the data inside the packet's buffer.
    pub offset: u32,
    /// Bytes of data.
    pub len: u32,
    /// More frames of this packet follow (multi-buffer channels): a packet
    /// is a run of frames with `more` set, ended by one without.
    pub more: bool,
}

/// `XDP_TX_METADATA`: a TX descriptor option saying the frame's data is
/// preceded by TX metadata.
pub const XDP_TX_METADATA: u32 = 1 << 1;

/// Bytes of the kernel's `struct xsk_tx_metadata` (flags, then the
/// request: checksum start and offset, launch time).
pub const TX_METADATA_SIZE: u32 = 24;

/// What a TX frame asks of the kernel through its metadata
/// (`struct xsk_tx_metadata`), written by [`Channel::write_tx_metadata`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxMetadata {
    /// Checksum offload: (start, offset) — the kernel sums the frame from
    /// `start` to its end and stores the result at `start + offset`. The
    /// application seeds that field with the pseudo-header sum, as for
    /// `CHECKSUM_PARTIAL`.
    pub checksum: Option<(u16, u16)>,
    /// Launch time (ns, the interface's qdisc clock), where supported.
    pub launch_time: Option<u64>,
    /// Ask for a TX timestamp (zero-copy drivers that support it).
    pub timestamp: bool,
}

impl TxMetadata {
    const FLAG_TIMESTAMP: u64 = 1 << 0;
    const FLAG_CHECKSUM: u64 = 1 << 1;
    const FLAG_LAUNCH_TIME: u64 = 1 << 2;

    /// The metadata as the kernel reads it.
    pub fn to_bytes(&self) -> [u8; TX_METADATA_SIZE as usize] {
        let mut b = [0u8; TX_METADATA_SIZE as usize];
        let mut flags = 0u64;
        if self.timestamp {
            flags |= Self::FLAG_TIMESTAMP;
        }
        if let Some((start, offset)) = self.checksum {
            flags |= Self::FLAG_CHECKSUM;
            b[8..10].copy_from_slice(&start.to_ne_bytes());
            b[10..12].copy_from_slice(&offset.to_ne_bytes());
        }
        if let Some(t) = self.launch_time {
            flags |= Self::FLAG_LAUNCH_TIME;
            b[16..24].copy_from_slice(&t.to_ne_bytes());
        }
        b[0..8].copy_from_slice(&flags.to_ne_bytes());
        b
    }
}

/// Packet counters of a channel (what USTATS publishes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChannelCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames queued for TX.
    pub tx_packets: u64,
    /// Bytes queued for TX.
    pub tx_bytes: u64,
    /// TX completions.
    pub tx_completed: u64,
    /// Descriptors from the kernel that named a frame not where the ring
    /// says (dropped, counted, never freed twice).
    pub bad_descs: u64,
    /// TX frames refused (not held by the application, or too long).
    pub tx_refused: u64,
    /// Syscalls made to wake the kernel.
    pub wakeups: u64,
    /// Busy-poll syscalls ([`Channel::busy_poll`]).
    pub busy_polls: u64,
}

/// Where every frame of the UMEM is: see [`Channel::account`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameAccount {
    /// Frames in the UMEM.
    pub total: u64,
    /// In the pool's caches.
    pub pool: u64,
    /// Parked in the RX-free and TX-allocation slot descriptors.
    pub staged: u64,
    /// Held by the application.
    pub app: u64,
    /// Given to the kernel for RX (fill ring or RX ring).
    pub kernel_rx: u64,
    /// Given to the kernel for TX (TX ring or completion ring).
    pub kernel_tx: u64,
    /// Fill entries not yet consumed by the kernel.
    pub fill_ring: u64,
    /// RX entries not yet consumed by us.
    pub rx_ring: u64,
    /// TX entries not yet consumed by the kernel.
    pub tx_ring: u64,
    /// Completion entries not yet consumed by us.
    pub completion_ring: u64,
}

impl FrameAccount {
    /// Checks that every frame is in exactly one place: the places add up
    /// to the total, and — when the rings are quiet — the frames the kernel
    /// holds are exactly the ring entries.
    pub fn check(&self, quiescent: bool) -> std::result::Result<(), String> {
        let sum = self.pool + self.staged + self.app + self.kernel_rx + self.kernel_tx;
        if sum != self.total {
            return Err(format!(
                "places add up to {sum}, not {}: {self:?}",
                self.total
            ));
        }
        if quiescent {
            if self.kernel_rx != self.fill_ring + self.rx_ring {
                return Err(format!(
                    "kernel holds {} RX frames but the fill and RX rings hold {}: {self:?}",
                    self.kernel_rx,
                    self.fill_ring + self.rx_ring
                ));
            }
            if self.kernel_tx != self.tx_ring + self.completion_ring {
                return Err(format!(
                    "kernel holds {} TX frames but the TX and completion rings hold {}: {self:?}",
                    self.kernel_tx,
                    self.tx_ring + self.completion_ring
                ));
            }
        }
        Ok(())
    }
}

/// A stack of packets in one slot-descriptor object (owner master, user
/// mirror): the RX-free or TX-allocation path.
#[derive(Debug)]
struct Slots {
    ksd: *mut u8,
    usd: Option<*mut u8>,
    cap: usize,
    len: usize,
}

// SAFETY: the pointers target slot-descriptor objects of regions the
// channel's arena holds (the channel keeps the arena, and a no-idle count
// keeps the regions through a defunct); only the channel touches them.
unsafe impl Send for Slots {}

impl Slots {
    fn push(&mut self, pkt: PacketIndex, len: u16) -> bool {
        if self.len == self.cap {
            return false;
        }
        // SAFETY: slot `len` < cap lies inside the KSD object (cap = object
        // size / 8) and the USD mirror object of the same index and size.
        unsafe {
            std::ptr::write(self.ksd.add(self.len * 8).cast::<u32>(), pkt);
            if let Some(u) = self.usd {
                // The user-visible slot: {md_idx u32, flags u16, len u16}.
                let slot = u.add(self.len * 8);
                std::ptr::write_volatile(slot.cast::<u32>(), pkt.to_le());
                std::ptr::write_volatile(slot.add(6).cast::<u16>(), len.to_le());
            }
        }
        self.len += 1;
        true
    }

    fn pop(&mut self) -> Option<PacketIndex> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: as in `push`.
        Some(unsafe { std::ptr::read(self.ksd.add(self.len * 8).cast::<u32>()) })
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
    /// log2 of the buffer size when it is a power of two: an address's
    /// packet is then a shift away, else a division (unaligned chunks).
    buf_shift: Option<u32>,
    buf_size: u64,
    /// The pool's packet count, kept here: [`pkt_of`](Self::pkt_of) runs
    /// per frame, and reaching it through the pool is three dependent
    /// loads the compiler cannot hoist past the state stores.
    packet_count: u32,
    /// The pool's state column, kept here for the same reason.
    states: StateColumn,
    scratch_addrs: Vec<u64>,
    scratch_descs: Vec<XdpDesc>,
    scratch_pkts: Vec<PacketIndex>,
    scratch_tx: Vec<TxFrame>,
    stats_obj: Option<*mut u8>,
}

// SAFETY: every raw pointer a Channel holds (rings, slot descriptors, the
// statistics object) targets memory owned by the arena and mapping it
// holds; a Channel is used from one thread at a time (`&mut self`).
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
        let ifindex = ifindex(&params.ifname)?;
        let mapping = arena.map()?;

        let mut sock = XskSocket::new()?;
        let umem = pool
            .region(RegionId::BufDef)
            .cloned()
            .ok_or_else(|| bad("no BUF_DEF region"))?;
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
            if !sock.set_max_tx_budget(b)? {
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
            buf_shift: buf_size
                .is_power_of_two()
                .then_some(buf_size.trailing_zeros()),
            buf_size: buf_size as u64,
            packet_count: pool.packet_count(),
            states: pool.state_column(),
            pool,
            rxf,
            txa,
            mapping,
            arena: arena.clone(),
            scratch_addrs: vec![0; params.batch],
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

    /// The plain UMEM address of a descriptor's: with unaligned chunks the
    /// kernel puts the data's offset in the top 16 bits.
    #[inline(always)]
    fn linear(&self, addr: u64) -> u64 {
        if self.params.unaligned_chunks {
            (addr & UNALIGNED_ADDR_MASK) + (addr >> UNALIGNED_OFFSET_SHIFT)
        } else {
            addr
        }
    }

    /// The packet whose buffer holds plain UMEM address `addr`.
    #[inline(always)]
    fn pkt_of(&self, addr: u64) -> Option<PacketIndex> {
        let pkt = match self.buf_shift {
            Some(shift) => addr >> shift,
            None => addr / self.buf_size,
        };
        (pkt < u64::from(self.packet_count)).then_some(pkt as u32)
    }

    /// The UMEM address of packet `pkt`'s buffer.
    #[inline(always)]
    fn addr_of(&self, pkt: PacketIndex) -> u64 {
        pkt as u64 * self.buf_size
    }

    /// Tops up the fill ring: first from the RX-free slots, then from the
    /// TX-allocation slots (completed frames nobody asked for), then from
    /// the pool, in batches. Returns how many frames were given to the
    /// kernel.
    pub fn refill(&mut self) -> Result<usize> {
        let mut total = 0;
        loop {
            let want = (self.fill.free(self.params.batch as u32) as usize)
                .min(self.params.batch)
                .min(self.rx_room());
            if want == 0 {
                break;
            }
            // Staged frames first — freed after RX, then recycled TX
            // completions — so a forwarding loop circulates frames between
            // rings and slots without touching the pool's caches.
            let mut n = 0;
            while n < want {
                let Some(p) = self.rxf.pop().or_else(|| self.txa.pop()) else {
                    break;
                };
                if self
                    .states
                    .transition(p, PacketState::Staged, PacketState::Fill)
                {
                    self.scratch_pkts[n] = p;
                    n += 1;
                }
            }
            if n < want {
                n += self
                    .worker
                    .alloc_batch_as(&mut self.scratch_pkts[n..want], PacketState::Fill);
            }
            if n == 0 {
                break;
            }
            for i in 0..n {
                self.scratch_addrs[i] = self.addr_of(self.scratch_pkts[i]);
            }
            let pushed = self.fill.push_addrs(&self.scratch_addrs[..n]);
            debug_assert_eq!(pushed, n, "free() said there was room");
            self.rx_held += pushed as u32;
            self.rx_taken = self.rx_taken.saturating_sub(pushed as u32);
            total += pushed;
            if n < want {
                break;
            }
        }
        if total > 0 && self.params.need_wakeup && self.fill.needs_wakeup() {
            self.counters.wakeups += 1;
            self.sock.kick_rx()?;
        }
        Ok(total)
    }

    /// Receives up to `out.len()` frames (refilling the fill ring first).
    /// The frames are the application's until it frees them
    /// ([`free_rx`](Self::free_rx)) or sends them ([`tx_burst`](Self::tx_burst)).
    pub fn rx_burst(&mut self, out: &mut [RxFrame]) -> Result<usize> {
        if self.params.multi_buffer && out.len() < MAX_FRAGS {
            return Err(Error::InvalidArenaParams {
                arena: self.arena.name().to_owned(),
                rule: "a multi-buffer rx_burst needs room for MAX_FRAGS frames",
            });
        }
        self.refill()?;
        let mut got = 0;
        let mut bytes = 0;
        while got < out.len() {
            let want = (out.len() - got).min(self.scratch_descs.len());
            let n = if self.params.multi_buffer {
                self.rx.pop_packets(&mut self.scratch_descs[..want])
            } else {
                self.rx.pop_descs(&mut self.scratch_descs[..want])
            };
            if n == 0 {
                break;
            }
            self.rx_held = self.rx_held.saturating_sub(n as u32);
            self.rx_taken = self.rx_taken.saturating_add(n as u32);
            for d in &self.scratch_descs[..n] {
                let addr = self.linear(d.addr);
                let ok = self.pkt_of(addr).filter(|&p| {
                    self.states
                        .transition(p, PacketState::Fill, PacketState::Allocated)
                });
                match ok {
                    Some(pkt) => {
                        out[got] = RxFrame {
                            pkt,
                            addr,
                            len: d.len,
                            options: d.options,
                        };
                        got += 1;
                        bytes += u64::from(d.len);
                    }
                    None => self.counters.bad_descs += 1,
                }
            }
        }
        self.counters.rx_packets += got as u64;
        self.counters.rx_bytes += bytes;
        Ok(got)
    }

    /// Waits up to `timeout_ms` for something to receive.
    pub fn poll(&mut self, timeout_ms: i32) -> Result<bool> {
        self.refill()?;
        self.sock.poll_rx(timeout_ms)
    }

    /// Busy-polls: refills the fill ring, then makes one non-blocking
    /// `recvfrom`, in which the kernel runs the queue's NAPI instance in
    /// this thread for up to the busy-poll time, `budget` frames at a time
    /// ([`ChannelParams::busy_poll`]). Call it when
    /// [`rx_burst`](Self::rx_burst) found nothing, as xdpsock's busy-poll
    /// mode does. Without busy polling configured it is a plain RX wakeup.
    ///
    /// Setting the socket options alone busy-polls nothing: the kernel
    /// polls only inside a syscall on the socket.
    pub fn busy_poll(&mut self) -> Result<()> {
        self.refill()?;
        self.counters.busy_polls += 1;
        self.sock.kick_rx()
    }

    /// Gives received packets back: straight onto the fill ring while it
    /// has room (one state change and no slot write per packet — rxdrop's
    /// whole round trip is then two state changes), the rest onto the
    /// RX-free slots (from which [`refill`](Self::refill) feeds the fill
    /// ring later), the rest to the pool.
    pub fn free_rx(&mut self, pkts: &[PacketIndex]) -> Result<()> {
        let mut refused = None;
        let mut rest = 0;
        let mut to_fill = 0;
        let mut room = (self.fill.free(pkts.len() as u32) as usize)
            .min(self.rx_room())
            .min(pkts.len())
            .min(self.scratch_addrs.len());
        for &p in pkts {
            if room > 0
                && self
                    .states
                    .transition(p, PacketState::Allocated, PacketState::Fill)
            {
                self.scratch_addrs[to_fill] = self.addr_of(p);
                to_fill += 1;
                room -= 1;
                continue;
            }
            if !self
                .states
                .transition(p, PacketState::Allocated, PacketState::Staged)
            {
                refused.get_or_insert(Error::NotAllocated {
                    cache: self.pool.metadata_cache().name().to_owned(),
                    index: p,
                });
                continue;
            }
            if !self.rxf.push(p, 0) {
                self.scratch_pkts[rest] = p;
                rest += 1;
                if rest == self.scratch_pkts.len() {
                    self.worker
                        .free_batch_from(&self.scratch_pkts[..rest], PacketState::Staged);
                    rest = 0;
                }
            }
        }
        if to_fill > 0 {
            let pushed = self.fill.push_addrs(&self.scratch_addrs[..to_fill]);
            debug_assert_eq!(pushed, to_fill, "free() said there was room");
            self.rx_held += pushed as u32;
            self.rx_taken = self.rx_taken.saturating_sub(pushed as u32);
            if self.params.need_wakeup && self.fill.needs_wakeup() {
                self.counters.wakeups += 1;
                self.sock.kick_rx()?;
            }
        }
        if rest > 0 {
            self.worker
                .free_batch_from(&self.scratch_pkts[..rest], PacketState::Staged);
        }
        refused.map_or(Ok(()), Err)
    }

    /// Packets for the application to fill and send: from the TX-allocation
    /// slots (recycled completions) first, then the pool.
    pub fn alloc_tx(&mut self, out: &mut [PacketIndex]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(p) = self.txa.pop() else { break };
            if self
                .states
                .transition(p, PacketState::Staged, PacketState::Allocated)
            {
                out[n] = p;
                n += 1;
            }
        }
        n + self
            .worker
            .alloc_batch_as(&mut out[n..], PacketState::Allocated)
    }

    /// Queues frames for TX; returns how many were taken (the rest, if the
    /// ring is full, stay the application's). Of those taken, a frame whose
    /// data overruns its buffer is refused, counted and given back to the
    /// fill path; a frame the application does not hold is refused and
    /// counted (it is not ours to move).
    pub fn tx_burst(&mut self, frames: &[TxFrame]) -> Result<usize> {
        self.tx_burst_options(frames, 0)
    }

    /// [`tx_burst`](Self::tx_burst) for frames whose data is preceded by
    /// TX metadata ([`write_tx_metadata`](Self::write_tx_metadata)): the
    /// channel must have `tx_metadata_len`, and a frame whose offset
    /// leaves no room for the metadata in its buffer is refused, counted
    /// and given back to the fill path.
    pub fn tx_burst_with_metadata(&mut self, frames: &[TxFrame]) -> Result<usize> {
        if self.params.tx_metadata_len == 0 {
            return Err(Error::InvalidArenaParams {
                arena: self.arena.name().to_owned(),
                rule: "TX metadata needs a channel opened with tx_metadata_len",
            });
        }
        self.tx_burst_options(frames, XDP_TX_METADATA)
    }

    /// Writes `meta` in front of the data at `offset` in packet `pkt`'s
    /// buffer, where the kernel reads it for a frame sent with
    /// [`tx_burst_with_metadata`](Self::tx_burst_with_metadata). The
    /// packet must be the application's.
    pub fn write_tx_metadata(
        &mut self,
        pkt: PacketIndex,
        offset: u32,
        meta: &TxMetadata,
    ) -> Result<()> {
        let len = self.params.tx_metadata_len;
        if len < TX_METADATA_SIZE {
            return Err(Error::InvalidArenaParams {
                arena: self.arena.name().to_owned(),
                rule: "TX metadata needs tx_metadata_len of at least TX_METADATA_SIZE",
            });
        }
        if self.pool.state(pkt)? != PacketState::Allocated {
            return Err(Error::NotAllocated {
                cache: self.pool.metadata_cache().name().to_owned(),
                index: pkt,
            });
        }
        if offset < len {
            return Err(Error::RegionMisuse {
                region: RegionId::BufDef,
                rule: "TX metadata must fit in the buffer in front of the data",
            });
        }
        self.pool
            .write_buffer(pkt, (offset - len) as usize, &meta.to_bytes())
    }

    fn tx_burst_options(&mut self, frames: &[TxFrame], options: u32) -> Result<usize> {
        let mut done = 0;
        // Metadata sits in the buffer, in front of the data.
        let min_offset = if options & XDP_TX_METADATA != 0 {
            self.params.tx_metadata_len as u64
        } else {
            0
        };
        while done < frames.len() {
            let want = (frames.len() - done).min(self.scratch_descs.len());
            let room = (self.tx.free(want as u32) as usize).min(want);
            if room == 0 {
                break;
            }
            let mut n = 0;
            let mut i = done;
            while i < done + room {
                // The packet starting at `i`: one frame, or a chain of
                // frames with `more` set ended by one without.
                let len = frames[i..]
                    .iter()
                    .position(|f| !f.more)
                    .map_or(frames.len() - i, |p| p + 1);
                let ended = !frames[i + len - 1].more;
                let well_formed =
                    ended && (len == 1 || self.params.multi_buffer) && len <= MAX_FRAGS;
                if well_formed && i + len > done + room {
                    // A whole packet goes into the ring or none of it: this
                    // one waits for room (it stays the caller's).
                    break;
                }
                let valid = well_formed
                    && frames[i..i + len]
                        .iter()
                        .all(|f| self.sendable(f.pkt, f.offset as u64, f.len, min_offset));
                if !valid {
                    // Refused whole — a chain with a bad frame must not go
                    // out with a hole — and counted; the caller counts the
                    // frames as taken, so those it held go back to the fill
                    // path rather than strand (the others are not ours).
                    for f in &frames[i..i + len] {
                        self.counters.tx_refused += 1;
                        self.give_back(f.pkt);
                    }
                    i += len;
                    continue;
                }
                for f in &frames[i..i + len] {
                    self.states.set(f.pkt, PacketState::Tx);
                    self.scratch_descs[n] = XdpDesc {
                        addr: self.addr_of(f.pkt) + f.offset as u64,
                        len: f.len,
                        options: options | if f.more { XDP_PKT_CONTD } else { 0 },
                    };
                    self.counters.tx_bytes += f.len as u64;
                    n += 1;
                }
                i += len;
            }
            self.tx.push_descs(&self.scratch_descs[..n]);
            self.counters.tx_packets += n as u64;
            if i == done {
                break;
            }
            done = i;
        }
        if done > 0 && (!self.params.need_wakeup || self.tx.needs_wakeup()) {
            self.counters.wakeups += 1;
            self.sock.kick_tx()?;
        }
        Ok(done)
    }

    /// May the application send `len` bytes at `offset` of packet `pkt`'s
    /// buffer? It must hold the packet, and the data must be non-empty,
    /// inside the buffer and behind `min_offset` (the TX metadata).
    #[inline(always)]
    fn sendable(&self, pkt: PacketIndex, offset: u64, len: u32, min_offset: u64) -> bool {
        offset
            .checked_add(u64::from(len))
            .is_some_and(|end| end <= self.buf_size)
            && len > 0
            && offset >= min_offset
            && self.states.is(pkt, PacketState::Allocated)
    }

    /// Returns an application-held frame to the fill path (RX-free slots,
    /// else the pool).
    fn give_back(&mut self, pkt: PacketIndex) {
        if self
            .states
            .transition(pkt, PacketState::Allocated, PacketState::Staged)
            && !self.rxf.push(pkt, 0)
        {
            self.worker
                .free_batch_from(std::slice::from_ref(&pkt), PacketState::Staged);
        }
    }

    /// l2fwd's step: sends received frames back out of this socket with
    /// their Ethernet destination and source swapped, without copying
    /// them. Frames the TX ring has no room for go back to the fill path.
    /// Returns how many were queued.
    pub fn reflect(&mut self, frames: &[RxFrame]) -> Result<usize> {
        if !self.params.multi_buffer {
            return self.reflect_frames(frames);
        }
        // The kernel's copy left each header in another CPU's cache or in
        // memory: headers are asked for PREFETCH_AHEAD frames before they
        // are swapped, so the misses overlap rather than queue one behind
        // the other (all of a batch at once would overflow the CPU's
        // miss buffers and stall).
        for f in frames.iter().take(PREFETCH_AHEAD) {
            self.prefetch_header(f);
        }
        let mut queued = 0;
        let mut i = 0;
        // Does frames[i] start a packet? (Multi-buffer: a packet is a run
        // of frames with `more`, ended by one without.)
        let mut first = true;
        while i < frames.len() {
            let mut tx = std::mem::take(&mut self.scratch_tx);
            let mut n = 0;
            // A batch at a time, never cutting a packet (the scratch has
            // room for a batch plus a whole packet).
            while i < frames.len() && (n < self.params.batch || !first) && n < tx.len() {
                if let Some(ahead) = frames.get(i + PREFETCH_AHEAD) {
                    self.prefetch_header(ahead);
                }
                let f = &frames[i];
                let off = f.addr.wrapping_sub(self.pool.buf_addr_of(f.pkt));
                if first && f.len >= 12 {
                    self.swap_macs(f.pkt, off, f.len);
                }
                // An offset that does not fit is refused by tx_burst, with
                // the rest of its packet.
                tx[n] = TxFrame {
                    pkt: f.pkt,
                    offset: u32::try_from(off).unwrap_or(u32::MAX),
                    len: f.len,
                    more: f.more(),
                };
                first = !f.more();
                n += 1;
                i += 1;
            }
            let sent = self.tx_burst(&tx[..n]);
            let q = *sent.as_ref().unwrap_or(&0);
            for t in &tx[q..n] {
                self.give_back(t.pkt);
            }
            self.scratch_tx = tx;
            queued += sent?;
            // A packet longer than MAX_FRAGS was cut (and refused whole by
            // tx_burst): its remaining frames go back too.
            while !first && i < frames.len() {
                self.counters.tx_refused += 1;
                self.give_back(frames[i].pkt);
                first = !frames[i].more();
                i += 1;
            }
        }
        Ok(queued)
    }

    /// [`reflect`](Self::reflect) where every packet is one frame: each is
    /// checked, swapped and written to the TX ring in one pass — what
    /// `reflect` then `tx_burst` would do, without building the frames in
    /// between or checking each twice.
    fn reflect_frames(&mut self, frames: &[RxFrame]) -> Result<usize> {
        for f in frames.iter().take(PREFETCH_AHEAD) {
            self.prefetch_header(f);
        }
        let mut done = 0;
        while done < frames.len() {
            let want = (frames.len() - done).min(self.scratch_descs.len());
            let room = (self.tx.free(want as u32) as usize).min(want);
            if room == 0 {
                break;
            }
            let mut n = 0;
            for i in done..done + room {
                if let Some(ahead) = frames.get(i + PREFETCH_AHEAD) {
                    self.prefetch_header(ahead);
                }
                let f = &frames[i];
                let off = f.addr.wrapping_sub(self.pool.buf_addr_of(f.pkt));
                if f.more() || !self.sendable(f.pkt, off, f.len, 0) {
                    // A chain on a single-buffer channel, or a frame the
                    // application does not hold: refused and counted (as
                    // tx_burst does), held ones back to the fill path.
                    self.counters.tx_refused += 1;
                    self.give_back(f.pkt);
                    continue;
                }
                self.swap_macs(f.pkt, off, f.len);
                self.states.set(f.pkt, PacketState::Tx);
                self.scratch_descs[n] = XdpDesc {
                    addr: self.addr_of(f.pkt) + off,
                    len: f.len,
                    options: 0,
                };
                self.counters.tx_bytes += u64::from(f.len);
                n += 1;
            }
            self.tx.push_descs(&self.scratch_descs[..n]);
            self.counters.tx_packets += n as u64;
            done += room;
        }
        // The TX ring is full: the rest go back to the fill path.
        for f in &frames[done..] {
            self.give_back(f.pkt);
        }
        if done > 0 && (!self.params.need_wakeup || self.tx.needs_wakeup()) {
            self.counters.wakeups += 1;
            self.sock.kick_tx()?;
        }
        Ok(done)
    }

    /// Hints the CPU to fetch the first bytes of received frame `f`.
    #[inline(always)]
    fn prefetch_header(&self, f: &RxFrame) {
        let off = f.addr.wrapping_sub(self.pool.buf_addr_of(f.pkt));
        if let Ok((base, _)) = self.pool.buffer_ptr(f.pkt) {
            crate::sys::prefetch(base.wrapping_add(off as usize));
        }
    }

    /// Swaps the Ethernet destination and source of the frame at `off` in
    /// packet `pkt`'s buffer, if the application holds it and the header
    /// lies inside the buffer.
    fn swap_macs(&mut self, pkt: PacketIndex, off: u64, len: u32) {
        if !self.states.is(pkt, PacketState::Allocated) {
            return;
        }
        let Ok((base, size)) = self.pool.buffer_ptr(pkt) else {
            return;
        };
        if len < 12
            || off
                .checked_add(u64::from(len))
                .is_none_or(|end| end > size as u64)
        {
            return;
        }
        // SAFETY: the packet is the application's (received, not yet sent
        // or freed: the kernel does not touch its buffer), and
        // `off + len <= size` with `len >= 12`, so its first 12 bytes lie
        // inside its buffer.
        let hdr = unsafe { std::slice::from_raw_parts_mut(base.add(off as usize), 12) };
        let (dst, src) = hdr.split_at_mut(6);
        dst.swap_with_slice(src);
    }

    /// Drains the completion ring. Sent frames go straight back onto the
    /// fill ring in place of frames RX took (a forwarding loop's frames
    /// then circulate between rings without touching a slot — xdpsock's
    /// `complete_tx_l2fwd`), then to the TX-allocation slots (for
    /// [`alloc_tx`](Self::alloc_tx)), then the RX-free slots (for the fill
    /// ring later), the rest to the pool.
    /// Returns how many completed.
    pub fn complete(&mut self) -> usize {
        let mut total = 0;
        loop {
            let n = self.comp.pop_addrs(&mut self.scratch_addrs[..]);
            if n == 0 {
                break;
            }
            let mut room = (self.fill.free(n as u32) as usize)
                .min(self.rx_room())
                .min(self.rx_taken as usize)
                .min(n);
            let mut to_fill = 0;
            let mut rest = 0;
            for i in 0..n {
                let addr = self.linear(self.scratch_addrs[i]);
                let Some(p) = self.pkt_of(addr) else {
                    self.counters.bad_descs += 1;
                    continue;
                };
                if room > 0
                    && self
                        .states
                        .transition(p, PacketState::Tx, PacketState::Fill)
                {
                    // Compacted in place: `to_fill <= i`, and entry `i`
                    // was read above.
                    self.scratch_addrs[to_fill] = self.addr_of(p);
                    to_fill += 1;
                    room -= 1;
                    continue;
                }
                if !self
                    .states
                    .transition(p, PacketState::Tx, PacketState::Staged)
                {
                    self.counters.bad_descs += 1;
                    continue;
                }
                if !self.txa.push(p, 0) && !self.rxf.push(p, 0) {
                    self.scratch_pkts[rest] = p;
                    rest += 1;
                }
            }
            if to_fill > 0 {
                let pushed = self.fill.push_addrs(&self.scratch_addrs[..to_fill]);
                debug_assert_eq!(pushed, to_fill, "free() said there was room");
                self.rx_held += pushed as u32;
                self.rx_taken = self.rx_taken.saturating_sub(pushed as u32);
                if self.params.need_wakeup && self.fill.needs_wakeup() {
                    self.counters.wakeups += 1;
                    if let Err(e) = self.sock.kick_rx() {
                        tracing::warn!(error = %e, "RX wakeup failed");
                    }
                }
            }
            if rest > 0 {
                self.worker
                    .free_batch_from(&self.scratch_pkts[..rest], PacketState::Staged);
            }
            total += n;
        }
        self.counters.tx_completed += total as u64;
        // Copy mode transmits only inside a syscall: frames still in the TX
        // ring need another kick, or they would wait for the next burst.
        if self.tx.outstanding() > 0 && (!self.params.need_wakeup || self.tx.needs_wakeup()) {
            self.counters.wakeups += 1;
            if let Err(e) = self.sock.kick_tx() {
                tracing::warn!(error = %e, "TX kick failed");
            }
        }
        total
    }

    /// Kicks the kernel to transmit (when TX made no progress, say).
    pub fn kick_tx(&mut self) -> Result<()> {
        self.counters.wakeups += 1;
        self.sock.kick_tx()
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

    /// Where every frame of the UMEM is, from the packets' own states and
    /// the rings' indices.
    pub fn account(&mut self) -> FrameAccount {
        let c = self.pool.state_counts();
        let rx_ring = self.rx.pending() as u64;
        let completion_ring = self.comp.pending() as u64;
        FrameAccount {
            total: self.pool.packet_count() as u64,
            pool: c[PacketState::Free as usize],
            staged: c[PacketState::Staged as usize],
            app: c[PacketState::Allocated as usize],
            kernel_rx: c[PacketState::Fill as usize],
            kernel_tx: c[PacketState::Tx as usize],
            fill_ring: self.fill.outstanding() as u64,
            rx_ring,
            tx_ring: self.tx.outstanding() as u64,
            completion_ring,
        }
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

/// Unaligned chunks: the low 48 bits of a descriptor address are the
/// chunk's address, the top 16 the data's offset in it.
const UNALIGNED_OFFSET_SHIFT: u32 = 48;
const UNALIGNED_ADDR_MASK: u64 = (1 << UNALIGNED_OFFSET_SHIFT) - 1;

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
