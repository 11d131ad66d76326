//! The four AF_XDP rings: single-producer/single-consumer queues shared
//! with the kernel. Public for benchmarks and tools that drive rings of
//! their own; a [`Channel`](super::Channel) holds its four, and no user of
//! a channel needs them.
//!
//! Each ring is `entries` descriptors plus a producer and a consumer index
//! (free-running `u32`s) and a flags word, at the offsets the kernel gives
//! (`XDP_MMAP_OFFSETS`). We keep cached copies of the kernel's index, as
//! libxdp does, so most operations touch no shared cache line: the kernel's
//! index is re-read only when the cached view says the ring is full (for a
//! producer) or empty (for a consumer). Publishing is a Release store;
//! reading the other side is an Acquire load.
//!
//! The sides are typed by what the ring carries ([`RingEntry`]): a fill
//! producer writes UMEM addresses, a TX producer descriptors, and neither
//! can write the other's.
//!
//! ```compile_fail
//! use skmem::channel::ring::{FillProducer, XdpDesc};
//! fn fill(p: &mut FillProducer) {
//!     p.write_at(0, XdpDesc::default()); // a descriptor into the fill ring
//! }
//! ```
//!
//! ```compile_fail
//! use skmem::channel::ring::RxConsumer;
//! fn rx(c: &RxConsumer) -> Option<u64> {
//!     c.read_at(0) // an RX entry is a descriptor, not an address
//! }
//! ```

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU32, Ordering};

use rustix::net::xdp::XdpRingOffset;

/// `XDP_RING_NEED_WAKEUP` in a ring's flags word.
const NEED_WAKEUP: u32 = 1;

/// An RX/TX descriptor (`struct xdp_desc`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XdpDesc {
    /// UMEM address of the frame's data.
    pub addr: u64,
    /// Bytes of data.
    pub len: u32,
    /// Options (`XDP_PKT_CONTD` for all but the last fragment).
    pub options: u32,
}

/// `XDP_PKT_CONTD`: more fragments of this packet follow.
pub const XDP_PKT_CONTD: u32 = 1;

/// What a ring carries: a UMEM address (`u64`: the fill and completion
/// rings) or a descriptor ([`XdpDesc`]: the RX and TX rings, and the
/// worker rings). Sealed: a ring of anything else would not match the
/// kernel's layout.
pub trait RingEntry: Copy + Default + sealed::Sealed {}

impl RingEntry for u64 {}
impl RingEntry for XdpDesc {}

mod sealed {
    pub trait Sealed {}
    impl Sealed for u64 {}
    impl Sealed for super::XdpDesc {}
}

/// The fill ring's producing side: it can only write UMEM addresses.
pub type FillProducer = Producer<u64>;
/// The TX ring's producing side: it can only write descriptors.
pub type TxProducer = Producer<XdpDesc>;
/// The completion ring's consuming side: UMEM addresses.
pub type CompletionConsumer = Consumer<u64>;
/// The RX ring's consuming side: descriptors.
pub type RxConsumer = Consumer<XdpDesc>;

/// Where a mapped ring of `T`s has its parts.
#[derive(Debug)]
pub struct RingMem<T: RingEntry> {
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut T,
    mask: u32,
    size: u32,
    _entries: PhantomData<T>,
}

// SAFETY: the pointers target a ring mapping that the owning Channel keeps
// mapped for the ring's life; the index words are only touched atomically
// and each descriptor slot is owned by one side at a time (the ring
// protocol), so moving the handle between threads is sound.
unsafe impl<T: RingEntry> Send for RingMem<T> {}

impl<T: RingEntry> RingMem<T> {
    /// The ring whose mapping starts at `base`.
    ///
    /// # Safety
    /// `base` must be the start of a live mapping of a ring of `T`s, at
    /// least `off.desc + entries * size_of::<T>()` bytes, that outlives the
    /// value; `entries` must be the ring's (power-of-two) size.
    pub unsafe fn new(base: *mut u8, off: &XdpRingOffset, entries: u32) -> Self {
        let at = |o: u64| base.wrapping_add(o as usize);
        Self {
            producer: at(off.producer).cast(),
            consumer: at(off.consumer).cast(),
            // Kernels before 5.4 have no flags word; ours all do, but keep
            // a harmless default.
            flags: at(off.flags.unwrap_or(off.producer)).cast(),
            desc: at(off.desc).cast(),
            mask: entries - 1,
            size: entries,
            _entries: PhantomData,
        }
    }

    #[inline(always)]
    fn producer(&self) -> &AtomicU32 {
        // SAFETY: `new`'s contract: the word lies in the live mapping and
        // is 4-aligned (the kernel's layout).
        unsafe { &*self.producer }
    }

    #[inline(always)]
    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    /// Does the kernel ask for a syscall to make progress?
    #[inline(always)]
    pub fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & NEED_WAKEUP != 0
    }

    /// Sets or clears NEED_WAKEUP: what a consumer that is about to sleep
    /// says to its producer (worker rings only; the kernel sets its own).
    #[inline(always)]
    pub fn set_need_wakeup(&self, on: bool) {
        // SAFETY: as for `producer`.
        let f = unsafe { &*self.flags };
        if on {
            f.fetch_or(NEED_WAKEUP, Ordering::Relaxed);
        } else {
            f.fetch_and(!NEED_WAKEUP, Ordering::Relaxed);
        }
    }

    /// Entries.
    #[inline]
    pub fn size(&self) -> u32 {
        self.size
    }
}

/// The orderings of the ring hand-over, named once: the producer and
/// consumer here and their loom model (`channel/ring_model.rs`) use these,
/// so the model checks the protocol as written. Each side publishes its
/// index Release (the slots it wrote or read go with it) and reads the
/// other side's Acquire; its own index it reads Relaxed (only it writes
/// it).
pub(crate) mod order {
    use std::sync::atomic::Ordering::{self, Acquire, Relaxed, Release};

    /// Publishing this side's index.
    pub const PUBLISH: Ordering = Release;
    /// Reading the other side's index.
    pub const OBSERVE: Ordering = Acquire;
    /// Reading this side's own index, at the start.
    pub const OWN: Ordering = Relaxed;
}

/// The side of a ring of `T`s we produce into (fill: [`FillProducer`],
/// TX: [`TxProducer`]).
#[derive(Debug)]
pub struct Producer<T: RingEntry> {
    mem: RingMem<T>,
    cached_prod: u32,
    /// Kernel consumer index + ring size: the first slot we may not use.
    cached_cons: u32,
}

impl<T: RingEntry> Producer<T> {
    /// The producing side of `mem`, starting from the indices it holds.
    #[inline]
    pub fn new(mem: RingMem<T>) -> Self {
        let cached_prod = mem.producer().load(order::OWN);
        let cached_cons = mem.consumer().load(order::OBSERVE).wrapping_add(mem.size);
        let mut p = Self {
            mem,
            cached_prod,
            cached_cons,
        };
        p.distrust();
        p
    }

    /// A consumer index no honest consumer could have written (more free
    /// slots than the ring has: a worker process, say, writing garbage)
    /// counts as a full ring. The kernel never trips it; a hostile peer
    /// only stops its own ring.
    #[inline(always)]
    fn distrust(&mut self) {
        if self.cached_cons.wrapping_sub(self.cached_prod) > self.mem.size {
            self.cached_cons = self.cached_prod;
        }
    }

    /// Free slots, refreshing the kernel's consumer index only when the
    /// cached view has fewer than `want`.
    #[inline]
    pub fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_cons = self
            .mem
            .consumer()
            .load(order::OBSERVE)
            .wrapping_add(self.mem.size);
        self.distrust();
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// Writes `v` into the `k`-th free slot without publishing it: a
    /// batch is written in place, then published at once with
    /// [`submit`](Self::submit) — no staging copy. False (nothing written)
    /// when fewer than `k + 1` slots are free.
    #[inline(always)]
    pub fn write_at(&mut self, k: u32, v: T) -> bool {
        if k >= self.cached_cons.wrapping_sub(self.cached_prod) {
            return false;
        }
        let idx = self.cached_prod.wrapping_add(k) & self.mem.mask;
        // SAFETY: idx <= mask < size, so the slot lies in the descriptor
        // array of the live mapping; slots between the kernel's consumer
        // and our producer index are ours to write (ring protocol: k is
        // below the free count just checked), and descriptors are naturally
        // aligned in the kernel's layout. Plain writes: the Release store of
        // the producer index in `submit` orders them before the kernel may
        // read the slots, as in libxdp.
        unsafe { std::ptr::write(self.mem.desc.add(idx as usize), v) };
        true
    }

    /// Publishes the first `n` slots written with
    /// [`write_at`](Self::write_at).
    #[inline]
    pub fn submit(&mut self, n: u32) {
        debug_assert!(n <= self.cached_cons.wrapping_sub(self.cached_prod));
        self.cached_prod = self.cached_prod.wrapping_add(n);
        self.mem.producer().store(self.cached_prod, order::PUBLISH);
    }

    /// Does the kernel want a syscall?
    #[inline]
    pub fn needs_wakeup(&self) -> bool {
        self.mem.needs_wakeup()
    }

    /// Entries we produced that the kernel has not consumed yet.
    #[inline]
    pub fn outstanding(&self) -> u32 {
        self.cached_prod
            .wrapping_sub(self.mem.consumer().load(order::OBSERVE))
    }

    /// Ring size.
    #[inline]
    pub fn size(&self) -> u32 {
        self.mem.size()
    }
}

/// The side of a ring of `T`s we consume from (completion:
/// [`CompletionConsumer`], RX: [`RxConsumer`]).
#[derive(Debug)]
pub struct Consumer<T: RingEntry> {
    mem: RingMem<T>,
    cached_prod: u32,
    cached_cons: u32,
}

impl<T: RingEntry> Consumer<T> {
    /// The consuming side of `mem`, starting from the indices it holds.
    #[inline]
    pub fn new(mem: RingMem<T>) -> Self {
        let cached_cons = mem.consumer().load(order::OWN);
        let cached_prod = mem.producer().load(order::OBSERVE);
        let mut c = Self {
            mem,
            cached_prod,
            cached_cons,
        };
        c.distrust();
        c
    }

    /// A producer index no honest producer could have written (more
    /// entries than the ring has) counts as an empty ring: see
    /// [`Producer`]'s.
    #[inline(always)]
    fn distrust(&mut self) {
        if self.cached_prod.wrapping_sub(self.cached_cons) > self.mem.size {
            self.cached_prod = self.cached_cons;
        }
    }

    /// Entries available, refreshing the kernel's producer index only when
    /// the cached view is short of `want`.
    #[inline]
    fn available(&mut self, want: u32) -> u32 {
        let n = self.cached_prod.wrapping_sub(self.cached_cons);
        if n >= want {
            return n;
        }
        self.cached_prod = self.mem.producer().load(order::OBSERVE);
        self.distrust();
        self.cached_prod.wrapping_sub(self.cached_cons)
    }

    /// Entries ready to be read in place, at most `want`: read them with
    /// [`read_at`](Self::read_at), then hand them back with
    /// [`release`](Self::release) — no staging copy.
    #[inline]
    pub fn peek(&mut self, want: u32) -> u32 {
        self.available(want).min(want)
    }

    /// The `k`-th entry ready to read; `None` past what is ready.
    #[inline(always)]
    pub fn read_at(&self, k: u32) -> Option<T> {
        if k >= self.cached_prod.wrapping_sub(self.cached_cons) {
            return None;
        }
        let idx = self.cached_cons.wrapping_add(k) & self.mem.mask;
        // SAFETY: idx <= mask, so the slot is in the live descriptor array,
        // and it lies between our consumer and the kernel's producer index
        // (checked), so it is ours to read. Plain reads: the Acquire load of
        // that index in `available` orders them after the kernel's writes.
        Some(unsafe { std::ptr::read(self.mem.desc.add(idx as usize)) })
    }

    /// Gives the first `n` entries read in place back to the kernel.
    #[inline]
    pub fn release(&mut self, n: u32) {
        debug_assert!(n <= self.cached_prod.wrapping_sub(self.cached_cons));
        if n > 0 {
            self.cached_cons = self.cached_cons.wrapping_add(n);
            self.mem.consumer().store(self.cached_cons, order::PUBLISH);
        }
    }

    /// Says the consumer sleeps (or no longer does): see
    /// [`RingMem::set_need_wakeup`].
    #[inline]
    pub fn set_need_wakeup(&self, on: bool) {
        self.mem.set_need_wakeup(on);
    }

    /// Entries waiting (refreshes the kernel's index).
    #[inline]
    pub fn pending(&mut self) -> u32 {
        self.available(u32::MAX)
    }

    /// Ring size.
    #[inline]
    pub fn size(&self) -> u32 {
        self.mem.size()
    }
}

impl Consumer<XdpDesc> {
    /// Takes received descriptors of whole packets only (multi-buffer: a
    /// packet's fragments carry [`XDP_PKT_CONTD`] but the last), so that a
    /// packet never straddles two calls; returns how many. A packet with
    /// more fragments than `out` holds is not taken.
    #[inline]
    pub fn pop_packets(&mut self, out: &mut [XdpDesc]) -> usize {
        let n = self.peek(out.len().min(u32::MAX as usize) as u32);
        for (k, o) in (0..n).zip(out.iter_mut()) {
            *o = self.read_at(k).unwrap_or_default();
        }
        // Up to and including the last fragment of the last whole packet.
        let k = out[..n as usize]
            .iter()
            .rposition(|d| d.options & XDP_PKT_CONTD == 0)
            .map_or(0, |p| p + 1);
        self.release(k as u32);
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ring in plain memory, the test playing the kernel: indices at 0,
    /// 64 and 128, eight 16-byte descriptors from 192.
    struct FakeRing {
        _mem: Vec<u64>,
        /// Every access, ours and the ring's, goes through this one pointer.
        base: *mut u64,
    }

    const ENTRIES: u32 = 8;

    impl FakeRing {
        fn new() -> Self {
            let mut mem = vec![0u64; 64];
            let base = mem.as_mut_ptr();
            Self { _mem: mem, base }
        }

        fn ring<T: RingEntry>(&mut self) -> RingMem<T> {
            let off = XdpRingOffset {
                producer: 0,
                consumer: 64,
                desc: 192,
                flags: Some(128),
            };
            // SAFETY: the Vec is 512 bytes, 8-aligned, outlives the ring in
            // each test, and holds the indices and 8 × 16 descriptor bytes.
            unsafe { RingMem::new(self.base.cast(), &off, ENTRIES) }
        }

        /// The 8-byte word at word index `i`.
        fn get(&self, i: usize) -> u64 {
            assert!(i < 64);
            // SAFETY: i < 64 words of the live Vec.
            unsafe { self.base.add(i).read_volatile() }
        }

        fn set(&mut self, i: usize, v: u64) {
            assert!(i < 64);
            // SAFETY: as in `get`.
            unsafe { self.base.add(i).write_volatile(v) }
        }

        fn word(&self, byte: usize) -> u32 {
            self.get(byte / 8) as u32
        }

        fn set_word(&mut self, byte: usize, v: u32) {
            self.set(byte / 8, u64::from(v));
        }
    }

    #[test]
    fn addresses_written_in_place_are_published_by_submit_only() {
        let mut f = FakeRing::new();
        let mut p = Producer::new(f.ring());
        assert_eq!(p.free(ENTRIES), ENTRIES);
        for k in 0..3 {
            assert!(p.write_at(k, 0x1000 * (u64::from(k) + 1)));
        }
        // Written but not yet published: the producer index has not moved.
        assert_eq!(f.word(0), 0);
        p.submit(3);
        assert_eq!(f.word(0), 3);
        assert_eq!([f.get(24), f.get(25), f.get(26)], [0x1000, 0x2000, 0x3000]);
        // Five slots are left until the kernel consumes: the sixth is refused.
        assert!(p.write_at(4, 1));
        assert!(!p.write_at(5, 1));
        // The kernel consumes two: two more fit (after a refresh).
        f.set_word(64, 2);
        assert_eq!(p.free(ENTRIES), 7);
        assert!(p.write_at(6, 1));
        assert!(!p.write_at(7, 1));
    }

    #[test]
    fn indices_no_honest_peer_writes_count_as_a_full_or_empty_ring() {
        let mut f = FakeRing::new();
        // A consumer index ahead of the producer: "more free than the ring
        // has" is a full ring, nothing written.
        f.set_word(64, 100);
        let mut p = Producer::new(f.ring());
        assert_eq!(p.free(1), 0);
        assert!(!p.write_at(0, 1));
        // Honest again: the ring works.
        f.set_word(64, 0);
        assert_eq!(p.free(ENTRIES), ENTRIES);
        // A producer index claiming more entries than the ring holds: an
        // empty ring, nothing read.
        let mut g = FakeRing::new();
        let mut c = Consumer::<XdpDesc>::new(g.ring());
        g.set_word(0, ENTRIES + 1);
        assert_eq!(c.peek(u32::MAX), 0);
        assert_eq!(c.read_at(0), None);
        g.set_word(0, u32::MAX);
        assert_eq!(c.pending(), 0);
        g.set_word(0, 2);
        assert_eq!(c.peek(8), 2);
    }

    #[test]
    fn descriptors_are_read_in_place_and_released_at_once() {
        let mut f = FakeRing::new();
        let mut c = Consumer::new(f.ring());
        assert_eq!(c.peek(4), 0);
        // The kernel produces three descriptors.
        for i in 0..3u64 {
            f.set(24 + 2 * i as usize, 0x800 * i);
            f.set(25 + 2 * i as usize, 60 + i); // len 60+i, options 0
        }
        f.set_word(0, 3);
        assert_eq!(c.peek(2), 2);
        assert_eq!(c.peek(8), 3);
        assert_eq!(
            c.read_at(2),
            Some(XdpDesc {
                addr: 0x1000,
                len: 62,
                options: 0
            })
        );
        assert_eq!(c.read_at(3), None, "past what the kernel produced");
        // Nothing is handed back until release.
        assert_eq!(f.word(64), 0);
        c.release(3);
        assert_eq!(f.word(64), 3);
        assert_eq!(c.peek(8), 0);
        assert_eq!(c.read_at(0), None);
    }
}
