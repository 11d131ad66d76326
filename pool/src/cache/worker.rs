//! Per-worker magazines and the lock-free fast path.
//!
//! Each worker slot holds one array with room for two magazines (Bonwick's
//! *loaded* and *previous*, laid end to end, as DPDK lays out its per-lcore
//! cache): allocations pop from the top, frees push on top. When the array
//! is empty, one full magazine comes from the depot (or half of one from the
//! slabs); when it is full, the top magazine's worth goes to the depot. Two
//! magazines of room give the hysteresis Bonwick's swap gives: a worker
//! oscillating around a boundary never touches the depot.
//!
//! The busy/purging protocol that lets [`Cache::purge`](super::Cache::purge)
//! empty a live worker's array is described in the [module docs](super).

use std::cell::UnsafeCell;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use super::error::Result;
use super::Cache;
use crate::sys;
use crate::util::lock;

/// The orderings of the busy/purging protocol, named once: the code here
/// and its loom model (`cache/model.rs`) use these, so the model checks
/// the protocol as written. Each flag is raised Relaxed and ordered by
/// the barrier after it (the Dekker half); it is lowered Release and read
/// Acquire, which carries the array's contents between worker and purger.
pub(crate) mod order {
    use std::sync::atomic::Ordering::{self, Acquire, Relaxed, Release};

    /// A worker raising `busy` (the light barrier after it orders it).
    pub const RAISE_BUSY: Ordering = Relaxed;
    /// A worker reading `purging`, after the light barrier.
    pub const SEE_PURGING: Ordering = Acquire;
    /// A worker lowering `busy`: its array's changes go with it.
    pub const LOWER_BUSY: Ordering = Release;
    /// A purger raising `purging` (the heavy barrier after it orders it).
    pub const RAISE_PURGING: Ordering = Relaxed;
    /// A purger waiting for `busy` to fall.
    pub const SEE_BUSY: Ordering = Acquire;
    /// A purger lowering `purging`: the emptied array goes with it.
    pub const LOWER_PURGING: Ordering = Release;
}

/// A worker's objects: `objs[..len]`, capacity two magazines.
#[derive(Debug)]
pub(crate) struct CpuCache {
    pub(crate) len: usize,
    pub(crate) objs: Box<[u32]>,
}

impl CpuCache {
    /// The objects above `keep`, leaving `keep` of them.
    pub(crate) fn drain_above(&mut self, keep: usize) -> &[u32] {
        let from = keep.min(self.len);
        let to = self.len;
        self.len = from;
        &self.objs[from..to]
    }
}

/// `WorkerSlot::purging` bit: a purger is at work on the slot (the
/// protocol's flag).
const PURGING: u8 = 1;
/// `WorkerSlot::purging` bit, set for the slot's life: the per-call fast
/// path does not apply (no magazines, or no membarrier, so the light
/// barrier must be a full fence). Kept in the same byte as [`PURGING`] so
/// that the fast path tests both with the one load the protocol needs.
const NO_FAST_PATH: u8 = 2;

/// One worker's slot.
pub(crate) struct WorkerSlot {
    pub(crate) claimed: AtomicBool,
    busy: AtomicBool,
    /// [`PURGING`], raised and lowered by purgers, and the constant
    /// [`NO_FAST_PATH`] (`idle`).
    purging: AtomicU8,
    /// What `purging` holds when no purge is on: [`NO_FAST_PATH`] or 0.
    idle: u8,
    cpu: UnsafeCell<CpuCache>,
}

// SAFETY: `cpu` is touched only by (a) the one worker that claimed the slot
// (a CAS on `claimed`), between setting `busy` and clearing it, while
// `purging` is clear; or (b) a purger holding the cache's `exclusive` mutex
// after it set `purging`, ran the heavy barrier, and saw `busy` clear. The
// protocol makes (a) and (b) mutually exclusive; Release/Acquire on `busy`
// and `purging` carries the array's contents between them.
unsafe impl Sync for WorkerSlot {}

impl WorkerSlot {
    /// A slot whose array holds `capacity` objects; `fast` says the
    /// per-call fast path applies (magazines, and membarrier works).
    pub(crate) fn new(capacity: usize, fast: bool) -> Self {
        let idle = if fast { 0 } else { NO_FAST_PATH };
        Self {
            claimed: AtomicBool::new(false),
            busy: AtomicBool::new(false),
            purging: AtomicU8::new(idle),
            idle,
            cpu: UnsafeCell::new(CpuCache {
                len: 0,
                objs: vec![0; capacity].into_boxed_slice(),
            }),
        }
    }

    /// The worker's half of the busy/purging handshake: raises `busy`, runs
    /// the light barrier, and returns the array when no purge is on (the
    /// caller then [`release`](Self::release)s it), else lowers `busy`
    /// again and returns `None` (go to the slabs). Bursts enter through
    /// it, the per-call methods through [`hold_fast`](Self::hold_fast),
    /// the same handshake; `cache/model.rs` models it.
    ///
    /// # Safety
    ///
    /// The caller is the handle that claimed this slot (CAS in
    /// `Cache::worker`), on one thread (`&mut` on the handle), and holds no
    /// other pointer from an earlier `hold` that it has not released.
    #[inline(always)]
    unsafe fn hold(&self, asymmetric: bool) -> Option<NonNull<CpuCache>> {
        // SAFETY: the caller's contract is this one's.
        unsafe { self.handshake(asymmetric, PURGING) }
    }

    /// [`hold`](Self::hold) for the per-call methods: the same handshake
    /// with the light barrier a compiler fence, and `None` also when the
    /// slot has no fast path ([`NO_FAST_PATH`]) — one load and one branch
    /// for both. Without membarrier the compiler fence is too weak for
    /// the handshake, but such a slot always has `NO_FAST_PATH` set and
    /// this returns `None` without touching the array: raising and
    /// lowering `busy` around nothing only makes a purger wait a moment.
    ///
    /// # Safety
    ///
    /// As for [`hold`](Self::hold).
    #[inline(always)]
    unsafe fn hold_fast(&self) -> Option<NonNull<CpuCache>> {
        // SAFETY: as for `hold`; the slot's `idle` being 0 (the only way
        // past the mask) says membarrier works, so the compiler fence is
        // the light barrier.
        unsafe { self.handshake(true, PURGING | NO_FAST_PATH) }
    }

    /// The worker's half of the handshake: raise `busy`, the light
    /// barrier, then give way if `purging` has any bit of `refuse` set.
    ///
    /// # Safety
    ///
    /// As for [`hold`](Self::hold); with `asymmetric` true only when
    /// membarrier works or `refuse` holds [`NO_FAST_PATH`].
    #[inline(always)]
    unsafe fn handshake(&self, asymmetric: bool, refuse: u8) -> Option<NonNull<CpuCache>> {
        self.busy.store(true, order::RAISE_BUSY);
        sys::light_barrier(asymmetric);
        if self.purging.load(order::SEE_PURGING) & refuse != 0 {
            self.busy.store(false, order::LOWER_BUSY);
            return None;
        }
        // `busy` is up and `purging` was seen down after the barrier: no
        // purger touches `cpu` until `release` (module docs), and the
        // caller's claim keeps every other worker away.
        NonNull::new(self.cpu.get())
    }

    /// Ends a [`hold`](Self::hold) that returned the array: the array's
    /// changes go to a later purger with the Release store.
    #[inline(always)]
    fn release(&self) {
        self.busy.store(false, order::LOWER_BUSY);
    }
}

/// Runs `f` on every slot's array with the slot held exclusively. The
/// caller holds the cache's `exclusive` mutex.
pub(crate) fn with_every_slot(
    slots: &[crossbeam_utils::CachePadded<WorkerSlot>],
    mut f: impl FnMut(&mut CpuCache),
) {
    for slot in slots {
        slot.purging
            .store(slot.idle | PURGING, order::RAISE_PURGING);
    }
    // After this, a worker either sees `purging` or its `busy` is visible.
    sys::heavy_barrier();
    for slot in slots {
        while slot.busy.load(order::SEE_BUSY) {
            std::hint::spin_loop();
        }
        // SAFETY: `purging` is set and, after the barrier, `busy` was seen
        // clear: the owning worker will not touch `cpu` until `purging` is
        // cleared below, and other purgers are excluded by `exclusive`.
        f(unsafe { &mut *slot.cpu.get() });
        slot.purging.store(slot.idle, order::LOWER_PURGING);
    }
}

/// A worker's handle on a cache: the lock-free fast path. A data-path
/// thread claims one with [`Cache::worker`] and keeps it; dropping it gives
/// its objects back to the depot and frees the slot.
///
/// ```
/// use skmem::cache::{Cache, CacheParams};
/// use skmem::region::{Region, RegionId, RegionParams};
///
/// let region = Region::create("doc", &RegionParams::new(RegionId::Kmd, 256, 4096))?;
/// let cache = Cache::new(region, CacheParams::new("kmd.doc"))?;
/// let mut w = cache.worker()?;
/// let obj = w.alloc().expect("an object");
/// w.free(obj)?;
/// # Ok::<(), skmem::Error>(())
/// ```
pub struct CacheWorker {
    cache: Arc<Cache>,
    /// This handle's slot inside `cache.slots`, which lives as long as the
    /// `Arc` above; cached here to keep the fast path one load shorter.
    slot: NonNull<WorkerSlot>,
    index: usize,
    rounds: usize,
    magazines: bool,
    asymmetric: bool,
}

// SAFETY: the slot pointer targets memory owned by the `Arc<Cache>` the
// handle holds; the slot protocol makes the handle's use of it sound from
// whichever single thread owns the handle (`&mut self` on every access).
unsafe impl Send for CacheWorker {}

impl std::fmt::Debug for CacheWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheWorker")
            .field("cache", &self.cache.name())
            .field("slot", &self.index)
            .finish()
    }
}

impl CacheWorker {
    pub(crate) fn new(cache: Arc<Cache>, index: usize) -> Self {
        let slot = NonNull::from(&*cache.slots[index]);
        Self {
            rounds: cache.rounds,
            magazines: cache.magazines,
            asymmetric: cache.asymmetric,
            cache,
            slot,
            index,
        }
    }

    /// The cache this handle allocates from.
    pub fn cache(&self) -> &Arc<Cache> {
        &self.cache
    }

    /// Holds this worker's magazines for a burst of operations — one poll
    /// of the rings, say. Inside a burst every operation is plain loads and
    /// stores on the worker's array (the compiler keeps its length in a
    /// register); entering and leaving cost one flag store each and a load.
    ///
    /// A purge or reap that starts during the burst waits for it to end, so
    /// keep bursts short. If a purge is in progress when the burst begins,
    /// the burst bypasses the magazines and goes to the slabs.
    #[inline(always)]
    pub fn burst(&mut self) -> Burst<'_> {
        // SAFETY: the slot outlives `self.cache` (see the field's comment).
        let slot = unsafe { self.slot.as_ref() };
        if self.magazines {
            // SAFETY: this handle claimed the slot and `&mut self` keeps it
            // on one thread; the burst borrows `self` mutably, so no other
            // hold is live, and its drop releases this one.
            if let Some(mut cpu) = unsafe { slot.hold(self.asymmetric) } {
                // SAFETY: `hold` returned the array: nobody else touches it
                // until the burst's drop releases the slot.
                let cpu = unsafe { cpu.as_mut() };
                return Burst {
                    cache: &self.cache,
                    slot,
                    len: cpu.len,
                    objs: &mut cpu.objs,
                    home: Some(&mut cpu.len),
                    rounds: self.rounds,
                };
            }
        }
        Burst {
            cache: &self.cache,
            slot,
            len: 0,
            objs: &mut [],
            home: None,
            rounds: self.rounds,
        }
    }

    /// Allocates one object, or `None` when the region is exhausted. For
    /// several operations in a row, a [`burst`](Self::burst) is cheaper.
    ///
    /// The common case (magazines on, no purge, the array not empty) is
    /// written out here rather than through a [`Burst`]: it touches only
    /// the slot's cache line, and everything else (refill, bypass) is out
    /// of line, so that a caller's loop of single calls keeps its
    /// registers and pays the two `busy` stores, one load of `purging` and
    /// the array's own loads and stores, nothing more.
    #[inline]
    pub fn alloc(&mut self) -> Option<u32> {
        // SAFETY: the slot outlives `self.cache` (see the field).
        let slot = unsafe { self.slot.as_ref() };
        // SAFETY: this handle claimed the slot and `&mut self` keeps it on
        // one thread; the hold is released below on every path.
        if let Some(mut cpu) = unsafe { slot.hold_fast() } {
            // SAFETY: `hold_fast` returned the array: it is ours until the
            // release below.
            let cpu = unsafe { cpu.as_mut() };
            if let Some(top) = cpu.len.checked_sub(1) {
                debug_assert!(top < cpu.objs.len());
                // SAFETY: `len <= objs.len()` always: every writer of
                // `len` (a burst's drop, `drain_above`, this method and
                // `free`) keeps it so, and `top < len`.
                let obj = unsafe { *cpu.objs.get_unchecked(top) };
                cpu.len = top;
                slot.release();
                return Some(obj);
            }
            slot.release();
        }
        self.alloc_slow()
    }

    /// [`alloc`](Self::alloc) when the fast path could not serve: the array
    /// is empty (a refill), a purge is on, or the slot has no fast path.
    #[cold]
    #[inline(never)]
    fn alloc_slow(&mut self) -> Option<u32> {
        self.burst().alloc()
    }

    /// Frees one object (see [`Burst::free`]). Like [`alloc`](Self::alloc),
    /// the common case is written out and the rest is out of line.
    #[inline]
    pub fn free(&mut self, obj: u32) -> Result<()> {
        // SAFETY: the slot outlives `self.cache` (see the field).
        let slot = unsafe { self.slot.as_ref() };
        // SAFETY: as in `alloc`; released below on every path.
        if let Some(mut cpu) = unsafe { slot.hold_fast() } {
            // SAFETY: `hold_fast` returned the array: it is ours until the
            // release below.
            let cpu = unsafe { cpu.as_mut() };
            let len = cpu.len;
            if let Some(at) = cpu.objs.get_mut(len) {
                *at = obj;
                cpu.len = len + 1;
                slot.release();
                return Ok(());
            }
            slot.release();
        }
        self.free_slow(obj)
    }

    /// [`free`](Self::free) when the fast path could not serve: the array
    /// is full (a spill), a purge is on, or the slot has no fast path.
    #[cold]
    #[inline(never)]
    fn free_slow(&mut self, obj: u32) -> Result<()> {
        self.burst().free(obj)
    }

    /// Allocates up to `out.len()` objects; returns how many (fewer only
    /// when the region is exhausted).
    #[inline]
    pub fn alloc_batch(&mut self, out: &mut [u32]) -> usize {
        self.burst().alloc_batch(out)
    }

    /// Frees a batch of objects.
    #[inline]
    pub fn free_batch(&mut self, objs: &[u32]) -> Result<()> {
        self.burst().free_batch(objs)
    }
}

/// A worker's magazines, held for a burst of operations: see
/// [`CacheWorker::burst`]. Dropping it lets purges in.
pub struct Burst<'a> {
    cache: &'a Cache,
    slot: &'a WorkerSlot,
    /// The worker's array; its first `len` entries are objects.
    objs: &'a mut [u32],
    /// The array's length, kept here (in a register, once inlined) for the
    /// burst and written back to `home` at its end.
    len: usize,
    /// Where the length lives between bursts; `None` when the magazines are
    /// bypassed (no magazine layer, or a purge was running at the start).
    home: Option<&'a mut usize>,
    rounds: usize,
}

impl std::fmt::Debug for Burst<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Burst")
            .field("cache", &self.cache.name())
            .field("magazines", &self.home.is_some())
            .finish()
    }
}

impl Burst<'_> {
    /// Allocates one object, or `None` when the region is exhausted.
    #[inline]
    pub fn alloc(&mut self) -> Option<u32> {
        if self.home.is_none() {
            return self.cache.alloc();
        }
        if self.len == 0 {
            self.len = refill(self.cache, self.rounds, self.objs);
            if self.len == 0 {
                return None;
            }
        }
        self.len -= 1;
        Some(self.objs[self.len])
    }

    /// Frees one object. Objects go back into the magazines unchecked (as in
    /// Skywalk and DPDK); the slab layer checks them when they reach it.
    #[inline]
    pub fn free(&mut self, obj: u32) -> Result<()> {
        if self.home.is_none() {
            return self.cache.free(obj);
        }
        if self.len == self.objs.len() {
            self.len = spill(self.cache, self.rounds, self.objs);
        }
        self.objs[self.len] = obj;
        self.len += 1;
        Ok(())
    }

    /// Allocates up to `out.len()` objects; returns how many (fewer only
    /// when the region is exhausted).
    #[inline]
    pub fn alloc_batch(&mut self, out: &mut [u32]) -> usize {
        if self.home.is_none() {
            return self.cache.alloc_batch(out);
        }
        // The common case — the array holds enough — in one straight copy,
        // without the loop's bookkeeping (which made batches of 4 slower
        // per object than single allocations).
        let n = out.len();
        if n <= self.len {
            let from = self.len - n;
            copy_objs(out, &self.objs[from..self.len]);
            self.len = from;
            return n;
        }
        let mut done = 0;
        loop {
            let take = (out.len() - done).min(self.len);
            let from = self.len - take;
            copy_objs(&mut out[done..done + take], &self.objs[from..self.len]);
            self.len = from;
            done += take;
            if done == out.len() {
                return done;
            }
            self.len = refill(self.cache, self.rounds, self.objs);
            if self.len == 0 {
                return done;
            }
        }
    }

    /// Frees a batch of objects.
    #[inline]
    pub fn free_batch(&mut self, objs: &[u32]) -> Result<()> {
        if self.home.is_none() {
            return self.cache.free_batch(objs);
        }
        let n = objs.len();
        if n <= self.objs.len() - self.len {
            copy_objs(&mut self.objs[self.len..self.len + n], objs);
            self.len += n;
            return Ok(());
        }
        let mut done = 0;
        loop {
            let put = (objs.len() - done).min(self.objs.len() - self.len);
            copy_objs(
                &mut self.objs[self.len..self.len + put],
                &objs[done..done + put],
            );
            self.len += put;
            done += put;
            if done == objs.len() {
                return Ok(());
            }
            self.len = spill(self.cache, self.rounds, self.objs);
        }
    }
}

impl Drop for Burst<'_> {
    #[inline(always)]
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            *home = self.len;
            self.slot.busy.store(false, order::LOWER_BUSY);
        }
    }
}

/// Copies object indices between the worker's array and a caller's batch.
///
/// Batches are short (tens of objects), where a call to `memcpy` costs more
/// than the copy: fixed 8-wide chunks compile to inline vector moves.
#[inline(always)]
fn copy_objs(dst: &mut [u32], src: &[u32]) {
    let mut d = dst.chunks_exact_mut(8);
    let mut s = src.chunks_exact(8);
    for (d, s) in (&mut d).zip(&mut s) {
        let s: &[u32; 8] = s.try_into().expect("chunks of 8");
        let d: &mut [u32; 8] = d.try_into().expect("chunks of 8");
        *d = *s;
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// The array (`objs`, empty) needs objects: load one full magazine from the
/// depot, else half a magazine from the slabs. Returns the new length (0
/// when nothing could be had).
#[cold]
#[inline(never)]
fn refill(cache: &Cache, rounds: usize, objs: &mut [u32]) -> usize {
    {
        let mut depot = cache.depot();
        if let Some(mut full) = depot.take_full() {
            let rounds = full.drain();
            let n = rounds.len();
            objs[..n].copy_from_slice(rounds);
            depot.put_empty(full);
            return n;
        }
    }
    // Depot dry: half a magazine from the slabs, leaving room for frees.
    let want = (rounds / 2).max(1);
    cache.slab_alloc(&mut objs[..want])
}

/// The array (`objs`, full) needs room: the top magazine's worth goes to
/// the depot. Returns the new length.
#[cold]
#[inline(never)]
fn spill(cache: &Cache, rounds: usize, objs: &mut [u32]) -> usize {
    let keep = objs.len() - rounds;
    let top = &objs[keep..];
    let mut depot = cache.depot();
    match depot.take_empty() {
        Some(mut empty) => {
            empty.load(top);
            depot.put_full(empty);
        }
        None => {
            // Cannot happen: the depot holds a magazine for every object.
            drop(depot);
            cache.slab_free(top);
        }
    }
    keep
}

impl Drop for CacheWorker {
    fn drop(&mut self) {
        let cache = &*self.cache;
        if self.magazines {
            let _x = lock(&cache.exclusive);
            // SAFETY: we own the slot (claimed, not yet released) and hold
            // `exclusive`, so no purger runs; this thread is its only user.
            let cpu = unsafe { &mut *self.slot.as_ref().cpu.get() };
            let mut depot = cache.depot();
            // Whole magazines to the depot, the remainder to the slabs.
            while cpu.len >= self.rounds {
                let Some(mut empty) = depot.take_empty() else {
                    break;
                };
                let top = cpu.len - self.rounds;
                empty.load(cpu.drain_above(top));
                depot.put_full(empty);
            }
            drop(depot);
            cache.slab_free(cpu.drain_above(0));
        }
        // SAFETY: see the `slot` field.
        unsafe { self.slot.as_ref() }
            .claimed
            .store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossbeam_utils::CachePadded;

    /// A slot without the fast path (no membarrier, or no magazines) never
    /// hands its array to `hold_fast`, whose compiler fence would be too
    /// weak there, yet a burst's `hold` still gets it; with the fast path,
    /// `hold_fast` gets it; both give way to `PURGING`, leaving `busy` down.
    #[test]
    fn hold_fast_serves_only_fast_slots_and_both_holds_give_way_to_a_purge() {
        for fast in [false, true] {
            let slot = WorkerSlot::new(4, fast);
            // SAFETY: this test is the slot's only user, on one thread, and
            // releases every hold it gets.
            unsafe {
                assert_eq!(slot.hold_fast().is_some(), fast);
                if fast {
                    slot.release();
                } else {
                    assert!(!slot.busy.load(Ordering::Relaxed), "busy left up");
                }
                assert!(slot.hold(false).is_some());
                slot.release();
                slot.purging.store(slot.idle | PURGING, Ordering::Relaxed);
                assert!(slot.hold_fast().is_none());
                assert!(slot.hold(true).is_none());
                assert!(slot.hold(false).is_none());
                assert!(!slot.busy.load(Ordering::Relaxed), "busy left up");
            }
        }
    }

    /// A purge raises and lowers `PURGING` and keeps the constant bit.
    #[test]
    #[cfg_attr(miri, ignore = "membarrier is a system call Miri lacks")]
    fn a_purge_keeps_the_no_fast_path_bit() {
        let slots = [false, true].map(|fast| CachePadded::new(WorkerSlot::new(4, fast)));
        let mut seen = 0;
        with_every_slot(&slots, |_| seen += 1);
        assert_eq!(seen, 2);
        assert_eq!(slots[0].purging.load(Ordering::Relaxed), NO_FAST_PATH);
        assert_eq!(slots[1].purging.load(Ordering::Relaxed), 0);
        // SAFETY: this test is the slots' only user, on one thread.
        unsafe {
            assert!(slots[0].hold_fast().is_none());
            assert!(slots[1].hold_fast().is_some());
            slots[1].release();
        }
    }
}
