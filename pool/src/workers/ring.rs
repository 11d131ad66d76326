//! A worker ring: a single-producer, single-consumer queue of descriptors
//! in one RING object of the arena's span, shared by the owner and one
//! worker process.
//!
//! The layout follows AF_XDP's rings, so the same producer and consumer
//! code drives both (`channel::ring`): a producer index, a consumer index
//! and a flags word, each on its own cache line, then `entries` 16-byte
//! descriptors ([`XdpDesc`]: the UMEM address of the data, its length,
//! options).
//!
//! | offset | what |
//! |---|---|
//! | 0 | producer index `u32` (free-running) |
//! | 64 | consumer index `u32` (free-running) |
//! | 128 | flags `u32`: bit 0, [`NEED_WAKEUP`] — the consumer sleeps |
//! | 256 | descriptors |
//!
//! The other side of a worker ring is another process, so neither side
//! trusts the indices it reads: an index that claims more than the ring
//! holds is clamped to the ring's size (see `channel::ring`), and every
//! descriptor a worker hands back is checked by the owner before it means
//! anything.

use rustix::net::xdp::XdpRingOffset;

use crate::channel::ring::{Consumer, Producer, RingMem};
use crate::channel::XdpDesc;

// The layout's offsets and sizes (the nexus arena sizes RING objects from
// them, so they live with the schema).
pub(crate) use crate::schema::objects::worker_ring::{
    bytes, CONSUMER, DESC, DESC_SIZE, FLAGS, PRODUCER,
};

/// The consumer is asleep (or about to be): the producer must wake it.
pub const NEED_WAKEUP: u32 = 1;

/// In a descriptor a worker hands back: free the frame (without it, the
/// owner sends it).
pub const FREE: u32 = 1 << 31;

// A worker ring's descriptor is AF_XDP's, so the channel's ring code
// drives it.
const _: () = assert!(DESC_SIZE == std::mem::size_of::<XdpDesc>());

/// The offsets, as the AF_XDP ring code takes them.
fn offsets() -> XdpRingOffset {
    XdpRingOffset {
        producer: PRODUCER,
        consumer: CONSUMER,
        desc: DESC,
        flags: Some(FLAGS),
    }
}

/// The ring at `base`.
///
/// # Safety
/// `base` must be the start of a worker ring of `entries` (a power of two)
/// descriptors — [`bytes`]`(entries)` mapped read-write, 8-aligned — that
/// stays mapped for the value's life.
pub(crate) unsafe fn mem(base: *mut u8, entries: u32) -> RingMem<XdpDesc> {
    // SAFETY: the caller's contract is `RingMem::new`'s, with our offsets.
    unsafe { RingMem::new(base, &offsets(), entries) }
}

/// The producer side of the ring at `base` (see [`mem`]).
///
/// # Safety
/// As for [`mem`].
pub(crate) unsafe fn producer(base: *mut u8, entries: u32) -> Producer<XdpDesc> {
    // SAFETY: the caller's contract.
    Producer::new(unsafe { mem(base, entries) })
}

/// The consumer side of the ring at `base` (see [`mem`]).
///
/// # Safety
/// As for [`mem`].
pub(crate) unsafe fn consumer(base: *mut u8, entries: u32) -> Consumer<XdpDesc> {
    // SAFETY: the caller's contract.
    Consumer::new(unsafe { mem(base, entries) })
}
