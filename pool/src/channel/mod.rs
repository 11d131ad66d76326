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
//! The application holds frames as [`Frame`]s, which carry the packet's
//! token ([`Packet`](crate::pool::Packet)): their bytes are read and
//! written through the frame, so the borrow checker keeps a frame's data
//! from changing while it is read, and what `rx_burst` hands out is what
//! `free_rx`, `tx_burst` and `reflect` take back.
//!
//! Every frame's place is kept in the pool's state column
//! ([`PacketState`], with this channel as its holder), so a descriptor
//! from the kernel that names a frame not where the ring says is dropped
//! and counted, never double-freed; a channel sharing its pool with others
//! gives back only its own frames; and [`Channel::account`] can prove that
//! each frame is in exactly one place.
//!
//! The per-packet path allocates nothing, takes no lock, and makes a
//! syscall only when the ring asks for one (NEED_WAKEUP) — or, without
//! need_wakeup, once per TX batch, as copy mode requires.
//!
//! Where things are: the channel here; opening and binding, step by step,
//! in `open`; the receive side in `rx`
//! (fill ring, RX ring, giving frames back), the send side in `tx` (TX
//! ring, `reflect`, completions), the slot descriptors in `slots`, frames
//! and their bytes in `frame`, counters and frame accounting in `account`
//! (and, for other threads to read, in `registry`),
//! receive coalescing (waking once a batch) in `coalesce`, where frames lie
//! in the UMEM in `umem`, the rings in `ring` and the socket's syscalls in
//! `xsk`.

mod account;
mod coalesce;
mod frame;
mod loan;
mod open;
pub mod registry;
pub mod ring;
#[cfg(test)]
mod ring_model;
mod rx;
mod slots;
mod tx;
mod umem;
mod wait;
mod xsk;

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;

pub(crate) use account::LiveCounters;
pub use account::{ChannelCounters, FrameAccount, TxRefusal, TxRefusals};
pub use coalesce::Coalesce;
pub use frame::{Frame, TxMetadata, MAX_FRAGS, TX_METADATA_SIZE, XDP_TX_METADATA};
pub(crate) use loan::{Refusal, Refused};
pub use ring::{XdpDesc, XDP_PKT_CONTD};
use slots::Slots;
pub use wait::{Adaptive, Waiting};
pub use xsk::{BindFlags, RingId, UmemOptions, XskSocket, XskStats};

use open::Claims;
use ring::{CompletionConsumer, FillProducer, RxConsumer, TxProducer};
use umem::UmemGeometry;

use crate::arena::{Arena, ArenaMapping};
use crate::error::{ChannelError, Error, Result};
use crate::pool::{
    Holder, PacketIndex, PacketPool, PacketState, PoolId, PoolWorker, StateColumn, Tag,
};
use crate::region::Region;

pub(crate) use crate::arena::ONE_CHANNEL;

/// The smallest `XDP_MAX_TX_SKB_BUDGET` the kernel accepts (its
/// `TX_BATCH_SIZE`).
const TX_BUDGET_MIN: u32 = 32;

/// Copy, zero-copy, or whichever the driver allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
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
#[non_exhaustive]
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
    /// the last says [`Frame::more`]. The XDP
    /// program must be frags-aware (skmem's is). `rx_burst` then never
    /// splits a packet, and needs room for [`MAX_FRAGS`] frames.
    pub multi_buffer: bool,
    /// Receive coalescing for [`Channel::poll`]: sleep until a batch
    /// should have arrived, instead of waking at every NAPI flush (see
    /// [`Coalesce`]). Off by default: it trades up to
    /// [`Coalesce::max_wait_us`] of latency for fewer wake-ups.
    pub coalesce: Option<Coalesce>,
    /// How [`Channel::wait`] waits when nothing arrived: adaptive by
    /// default — spin while frames keep coming, sleep in `poll(2)` when
    /// they stop, coalesce on a CPU shared with the queue's NAPI thread
    /// (see [`Waiting`]).
    pub waiting: Waiting,
}

impl ChannelParams {
    /// Defaults: copy-or-zero-copy, no headroom, and the ring sizes, batch
    /// and waiting mode the process's [sysctls](crate::sysctls) say (1024-entry
    /// rings, batches of 64, NEED_WAKEUP, no busy polling unless tuned), a
    /// TX budget of the whole TX ring.
    pub fn new(ifname: impl Into<String>, queue: u32) -> Self {
        let t = crate::sysctls::current();
        Self {
            ifname: ifname.into(),
            queue,
            mode: BindMode::Auto,
            need_wakeup: t.need_wakeup == 1,
            headroom: 0,
            umem_ring_entries: t.umem_ring_entries,
            ring_entries: t.ring_entries,
            batch: t.batch as usize,
            busy_poll: t.busy_poll(),
            tx_budget: Some(t.ring_entries),
            unaligned_chunks: false,
            tx_metadata_len: 0,
            tx_sw_csum: false,
            multi_buffer: false,
            coalesce: None,
            waiting: Waiting::default(),
        }
    }
}

/// The tags of this channel's packets: each state a channel puts a packet
/// in, with the channel as its holder. Kept precomputed, so a per-packet
/// check is one compare.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tags {
    /// In the fill or RX ring.
    fill: Tag,
    /// In the TX or completion ring.
    tx: Tag,
    /// In the slot descriptors.
    staged: Tag,
}

impl Tags {
    fn of(holder: Holder) -> Self {
        Self {
            fill: Tag::new(PacketState::Fill, holder),
            tx: Tag::new(PacketState::Tx, holder),
            staged: Tag::new(PacketState::Staged, holder),
        }
    }
}

/// An AF_XDP socket bound to a nexus arena: see the module docs.
pub struct Channel {
    // Drop order matters: the socket is closed first, in `Drop` (the kernel
    // stops touching the UMEM and the rings), then the frames it held go
    // back to the pool, then the fields drop — the claims on the arena
    // (objects, schema rings, slot hold, holder number) and the mapping
    // holding the rings among them.
    sock: std::mem::ManuallyDrop<XskSocket>,
    fill: FillProducer,
    comp: CompletionConsumer,
    rx: RxConsumer,
    tx: TxProducer,
    worker: PoolWorker,
    pool: Arc<PacketPool>,
    /// The identity of the pool's packets, for the per-frame check.
    pool_id: PoolId,
    /// This channel's tags in the pool's state column.
    tag: Tags,
    rxf: Slots,
    txa: Slots,
    /// What opening took from the arena, each given back when dropped.
    _claims: Claims,
    mapping: ArenaMapping,
    arena: Arena,
    params: ChannelParams,
    ifindex: u32,
    zero_copy: bool,
    /// Shared with [`published`](Self::published): `skmemctl stats` reads
    /// them while the channel runs.
    counters: Arc<LiveCounters>,
    /// This channel in the process's statistics registry.
    published: Arc<registry::ChannelRecord>,
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
    /// The UMEM: the pool's BUF_DEF region, whose owner view was
    /// registered with the kernel.
    buf_def: Arc<Region>,
    scratch_descs: Vec<XdpDesc>,
    scratch_pkts: Vec<PacketIndex>,
    /// The arena's USTATS region, whose one object this channel publishes.
    stats: Option<Arc<Region>>,
    /// Receive coalescing's rate estimate, when configured.
    moderator: Option<coalesce::Moderator>,
    /// The adaptive wait's state, made at the first [`wait`](Self::wait).
    adaptive: Option<wait::AdaptiveState>,
    /// Whether this channel has set its thread's timer slack (coalescing's
    /// sleeps are short: the default 50 µs of slack would double them).
    timer_slack_set: bool,
}

// Channel is Send without an unsafe impl: the rings' memory (`RingMem`) is
// the one part that needs a justification, and carries its own.

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
    crate::sys::interface_index(ifname).map_err(|source| match source.kind() {
        std::io::ErrorKind::InvalidInput => Error::Channel(ChannelError::InvalidParams {
            channel: ifname.to_owned(),
            rule: "an interface name is 1 to 15 bytes, with no NUL",
        }),
        _ => Error::Sys {
            call: "if_nametoindex",
            source,
        },
    })
}

/// The refusal of a frame that is not one of `pool`'s (counted).
fn foreign(pool: &PacketPool, f: &Frame) -> Error {
    pool.count_refused();
    Error::ForeignPacket {
        pool: pool.name().to_owned(),
        index: f.packet().get(),
    }
}

impl Channel {
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

    /// The owner's mapping of the arena, which holds the rings (it cannot
    /// be redirected while the channel lives: see
    /// [`ArenaMapping::redirect`]).
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

    /// The longest frame the kernel can receive into one buffer of this
    /// channel: the buffer less the UMEM headroom and the kernel's own
    /// `XDP_PACKET_HEADROOM` (256 bytes). Without multi-buffer, longer
    /// frames are dropped by the socket and counted in
    /// [`XskStats::rx_dropped`].
    pub fn rx_frame_room(&self) -> usize {
        const XDP_PACKET_HEADROOM: usize = 256;
        self.pool
            .buf_size()
            .saturating_sub(self.params.headroom as usize + XDP_PACKET_HEADROOM)
    }

    /// Packet counters.
    pub fn counters(&self) -> ChannelCounters {
        self.counters.snapshot()
    }

    /// The TX frames refused before the ring, by reason (they add up to
    /// [`ChannelCounters::tx_refused`]).
    pub fn tx_refusals(&self) -> TxRefusals {
        self.counters.refusals()
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

    /// The UMEM address of a frame's data (what its descriptor carries).
    pub fn frame_addr(&self, frame: &Frame) -> u64 {
        self.addr_of(frame.packet()) + u64::from(frame.offset)
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
        let Some(stats) = &self.stats else {
            return Ok(());
        };
        let k = self.sock.statistics()?;
        let c = self.counters.snapshot();
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
        let obj = stats.obj(0)?;
        for (i, w) in words.into_iter().enumerate() {
            obj.store_u64(i * 8, w)?;
        }
        Ok(())
    }

    /// Frees the application's frames straight to the pool. Frames of
    /// another pool stay in `frames`, counted, and the first refusal is
    /// returned.
    pub fn free(&mut self, frames: &mut Vec<Frame>) -> Result<()> {
        let mut refused = None;
        let mut n = 0;
        let pool_id = self.pool_id;
        let (scratch, worker, pool) = (&mut self.scratch_pkts, &mut self.worker, &self.pool);
        frames.retain(|f| {
            if f.pool_id() != pool_id {
                refused.get_or_insert_with(|| foreign(pool, f));
                return true;
            }
            scratch[n] = f.packet();
            n += 1;
            if n == scratch.len() {
                worker.free_from(&scratch[..n], Tag::APP);
                n = 0;
            }
            false
        });
        if n > 0 {
            self.worker.free_from(&self.scratch_pkts[..n], Tag::APP);
        }
        refused.map_or(Ok(()), Err)
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

impl Drop for Channel {
    fn drop(&mut self) {
        // The registry must stop reading the socket before it closes.
        self.published.closing();
        // SAFETY: `sock` is dropped exactly once, here, and never used
        // after (the remaining code touches only the pool and the arena).
        unsafe { std::mem::ManuallyDrop::drop(&mut self.sock) };
        // The kernel no longer holds any frame of ours: every frame it held,
        // and every frame parked in our slots, goes back to the pool — ours
        // only, tagged with our holder: a pool shared with other channels
        // keeps theirs.
        for t in [self.tag.fill, self.tag.tx, self.tag.staged] {
            let held: Vec<PacketIndex> = self.states.tagged(t).collect();
            self.worker.free_from(&held, t);
        }
        self.arena.emit(
            skmem_xdp_common::HookEvent::ChannelUnbind,
            (self.mapping.addr() as usize, self.mapping.size()),
            self.params.queue << 1,
            0,
        );
    }
}

impl ChannelParams {
    /// These parameters, changed by `f`: how to set a few fields, the
    /// struct being `#[non_exhaustive]` (a field added later is not a
    /// breaking change) — `ChannelParams::new("veth0", 0).with(|p| p.headroom = 128)`.
    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
