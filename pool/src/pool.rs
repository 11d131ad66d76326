//! The packet pool: Skywalk's `kern_pbufpool`, shaped for AF_XDP.
//!
//! A [`PacketPool`] owns the regions a packet is made of:
//!
//! | region | what | cache |
//! |---|---|---|
//! | KMD | owner-private metadata: state, buflet chain | magazines |
//! | UMD | its user-visible mirror: length, data offset, flags, timestamp | (mirror) |
//! | BUF_DEF | default buffers: the AF_XDP UMEM chunks | none in single-buffer pools; slabs otherwise |
//! | BUF_LARGE | optional large buffers | slabs |
//! | KBFT / UBFT | buflets, when packets may chain several buffers | (indexed like BUF_DEF) |
//!
//! **Indices do the addressing.** A packet is the index of its metadata
//! object. In a single-buffer pool (`max_frags == 1`) packet *i* owns
//! buffer *i* for life — Bonwick's object caching: the binding is made when
//! the metadata object is constructed and survives free — so a packet's
//! buffer address is `i * buf_size` and a buffer address gives back its
//! packet with one division, both O(1), which is exactly an AF_XDP aligned
//! UMEM descriptor. In a multi-buffer pool buffers are taken on demand; buflet
//! *j* describes buffer *j* (same index), records its packet, and links to
//! the next buflet, so the conversions stay O(1).
//!
//! Options follow the seed: an **owner-only** pool (Skywalk's kernel-only)
//! has no user-visible regions at all; **truncated** buffers are not rounded
//! to a power of two (they suit AF_XDP unaligned chunks). A pool may be shared
//! by several arenas: they retain its regions, never copy them.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use crate::cache::{Cache, CacheParams, CacheWorker};
use crate::error::{Error, Result};
use crate::region::{Region, RegionFlags, RegionId, RegionParams, MAX_FRAGS};

/// Index of a packet (of its metadata object) in its pool.
pub type PacketIndex = u32;

/// Bytes of one metadata object (KMD and UMD alike, so they can mirror).
/// Two share a cache line: 64 bytes of metadata per 2 KiB buffer keeps the
/// pool's overhead near 3 %.
pub const META_SIZE: usize = 32;
/// Bytes of one buflet object (KBFT and UBFT alike).
pub const BUFLET_SIZE: usize = 64;
/// Smallest default buffer (Skywalk's 512 B).
pub const MIN_BUF_SIZE: usize = 512;
/// Largest default buffer (Skywalk's 32 KiB).
pub const MAX_BUF_SIZE: usize = 32 * 1024;
/// "No buflet" in a chain.
const NIL: u32 = u32::MAX;

/// What a pool should hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolParams {
    /// Packets (metadata objects). At least this many exist.
    pub packets: usize,
    /// Default buffer size in bytes (the AF_XDP chunk size).
    pub buf_size: usize,
    /// Default buffers; 0 = as many as packets. A single-buffer pool must
    /// leave it 0 or equal to `packets` (buffer *i* belongs to packet *i*).
    pub buffers: usize,
    /// Large buffer size; 0 = no large buffers.
    pub large_buf_size: usize,
    /// Large buffers (with `large_buf_size`).
    pub large_buffers: usize,
    /// Most buffers one packet may chain; above 1 buffers come on demand
    /// and buflet tables exist.
    pub max_frags: u16,
    /// Owner-only (Skywalk's kernel-only): no user-visible regions.
    pub owner_only: bool,
    /// Truncated buffers: the size is not rounded to a power of two.
    pub truncated_buf: bool,
    /// Worker slots of the metadata cache (0 = one per CPU).
    pub workers: usize,
}

impl Default for PoolParams {
    /// Skywalk's flowswitch defaults: 4096 packets of 2 KiB, one buffer each.
    fn default() -> Self {
        Self {
            packets: 4096,
            buf_size: 2048,
            buffers: 0,
            large_buf_size: 0,
            large_buffers: 0,
            max_frags: 1,
            owner_only: false,
            truncated_buf: false,
            workers: 0,
        }
    }
}

/// Where a packet is: kept owner-private, so that every frame can be
/// accounted for and a descriptor naming a frame that is not where the ring
/// says is caught.
///
/// The states form a column of their own beside KMD — one byte per packet,
/// 64 packets per cache line — rather than a word in each 32-byte KMD
/// object: the data path moves every packet through two or three states per
/// round trip, and with the states dense they stay in L1 while the kernel's
/// copies stream through the cache (a word per KMD object cost a cache miss
/// per transition: ~25 ns of CPU per packet in threaded-NAPI rxdrop).
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum PacketState {
    /// In the pool (in a cache).
    Free = 0,
    /// Handed out to the application.
    Allocated = 1,
    /// Given to the kernel for RX: in the fill ring or the RX ring.
    Fill = 2,
    /// Given to the kernel for TX: in the TX ring or the completion ring.
    Tx = 3,
    /// Parked in a channel's slot descriptors (RX-free or TX-allocation
    /// path), on its way back to the rings.
    Staged = 4,
}

impl PacketState {
    fn from_u8(v: u8) -> PacketState {
        match v {
            1 => PacketState::Allocated,
            2 => PacketState::Fill,
            3 => PacketState::Tx,
            4 => PacketState::Staged,
            _ => PacketState::Free,
        }
    }
}

/// The state column: each packet's [`PacketState`], one byte per packet.
///
/// Shared (`Arc`) between the pool and its channels, so that a channel's
/// per-frame checks index a column it holds itself — reaching it through
/// the pool costs loads the compiler cannot hoist past the state stores.
///
/// Relaxed atomics: a packet's state is only ever moved by the one thread
/// that holds the packet; the atomics only make a lying index from another
/// thread a wrong answer rather than a data race.
#[derive(Debug, Clone)]
pub(crate) struct StateColumn(Arc<[AtomicU8]>);

impl StateColumn {
    fn new(packets: u32) -> Self {
        Self(
            (0..packets)
                .map(|_| AtomicU8::new(PacketState::Free as u8))
                .collect(),
        )
    }

    /// Packet `pkt`'s state; `None` when there is no such packet.
    #[inline(always)]
    pub(crate) fn get(&self, pkt: PacketIndex) -> Option<PacketState> {
        self.0
            .get(pkt as usize)
            .map(|s| PacketState::from_u8(s.load(Ordering::Relaxed)))
    }

    /// Is packet `pkt` in state `s`?
    #[inline(always)]
    pub(crate) fn is(&self, pkt: PacketIndex, s: PacketState) -> bool {
        self.0
            .get(pkt as usize)
            .is_some_and(|v| v.load(Ordering::Relaxed) == s as u8)
    }

    /// Moves `pkt` from state `from` to `to`; false (and nothing changed)
    /// when it is not in `from` — a descriptor that lies.
    #[inline(always)]
    pub(crate) fn transition(&self, pkt: PacketIndex, from: PacketState, to: PacketState) -> bool {
        let Some(s) = self.0.get(pkt as usize) else {
            return false;
        };
        if s.load(Ordering::Relaxed) != from as u8 {
            return false;
        }
        s.store(to as u8, Ordering::Relaxed);
        true
    }

    /// Puts `pkt` in state `s` (ignored for an index out of range).
    #[inline(always)]
    pub(crate) fn set(&self, pkt: PacketIndex, s: PacketState) {
        if let Some(v) = self.0.get(pkt as usize) {
            v.store(s as u8, Ordering::Relaxed);
        }
    }
}

/// Byte offsets inside a KMD object (owner-private). Bytes 0..4 are unused:
/// the packet's state lives in the pool's state column.
mod kmd {
    pub const BUFLET_HEAD: usize = 4;
    pub const NBUFLETS: usize = 8;
}

/// Byte offsets inside a UMD object (user-visible). The layout is part of
/// the shared-memory ABI: see [`UserMeta`].
mod umd {
    pub const LEN: usize = 0;
    pub const DATA_OFF: usize = 4;
    pub const BUF_ADDR: usize = 8;
    pub const FLAGS: usize = 16;
    pub const NFRAGS: usize = 20;
    pub const TIMESTAMP: usize = 24;
}

/// Byte offsets inside a KBFT object (owner-private buflet).
mod kbft {
    pub const PKT: usize = 0;
    pub const NEXT: usize = 4;
    pub const LEN: usize = 8;
}

/// The user-visible packet metadata, as mappers see it in UMD (32 bytes,
/// little-endian, in this field order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UserMeta {
    /// Bytes of packet data in the first buffer.
    pub len: u32,
    /// Offset of the data in the first buffer (headroom).
    pub data_off: u32,
    /// The first buffer's address in BUF_DEF (the UMEM address).
    pub buf_addr: u64,
    /// Flags (AF_XDP descriptor options, e.g. XDP_PKT_CONTD).
    pub flags: u32,
    /// Buffers chained after the first (multi-buffer packets).
    pub nfrags: u32,
    /// Timestamp in nanoseconds, when known.
    pub timestamp_ns: u64,
}

/// Reads a little-endian `u32` at `off` of an object.
///
/// # Safety
/// `base..base+off+4` must lie inside a live, readable region view.
unsafe fn get_u32(base: *const u8, off: usize) -> u32 {
    // SAFETY: caller's contract; volatile because other processes may write
    // user-visible objects at any time (a shared-memory protocol, not Rust
    // aliasing), unaligned-safe read of plain bytes.
    u32::from_le(unsafe { std::ptr::read_volatile(base.add(off).cast::<u32>()) })
}

/// # Safety
/// As for [`get_u32`], and the view must be writable.
unsafe fn put_u32(base: *mut u8, off: usize, v: u32) {
    // SAFETY: caller's contract.
    unsafe { std::ptr::write_volatile(base.add(off).cast::<u32>(), v.to_le()) }
}

/// # Safety
/// As for [`get_u32`] with 8 bytes.
unsafe fn get_u64(base: *const u8, off: usize) -> u64 {
    // SAFETY: caller's contract.
    u64::from_le(unsafe { std::ptr::read_volatile(base.add(off).cast::<u64>()) })
}

/// # Safety
/// As for [`put_u32`] with 8 bytes.
unsafe fn put_u64(base: *mut u8, off: usize, v: u64) {
    // SAFETY: caller's contract.
    unsafe { std::ptr::write_volatile(base.add(off).cast::<u64>(), v.to_le()) }
}

/// A packet buffer pool: see the module docs.
///
/// ```
/// use skmem::pool::{PacketPool, PoolParams};
///
/// let pool = PacketPool::create("doc", &PoolParams { packets: 256, ..PoolParams::default() })?;
/// let mut worker = pool.worker()?;
/// let pkt = worker.alloc().expect("a packet");
/// pool.write_buffer(pkt, 0, b"frame bytes")?;
/// // A packet is its UMEM frame: index and address convert in O(1).
/// let addr = pool.buf_addr(pkt)?;
/// assert_eq!(pool.packet_of_addr(addr + 100)?, pkt);
/// worker.free(pkt)?;
/// assert!(worker.free(pkt).is_err(), "a double free is refused, not done");
/// # Ok::<(), skmem::Error>(())
/// ```
#[derive(Debug)]
pub struct PacketPool {
    name: String,
    params: PoolParams,
    kmd: Arc<Region>,
    umd: Option<Arc<Region>>,
    kmd_cache: Arc<Cache>,
    buf_def: Arc<Region>,
    /// Buffer cache, only when buffers come on demand.
    buf_cache: Option<Arc<Cache>>,
    buf_large: Option<Arc<Region>>,
    large_cache: Option<Arc<Cache>>,
    kbft: Option<Arc<Region>>,
    ubft: Option<Arc<Region>>,
    buf_size: usize,
    refused_frees: AtomicU64,
    /// Each packet's [`PacketState`], one byte per KMD object (owner-private;
    /// see [`PacketState`] for why a column of its own).
    states: StateColumn,
}

impl PacketPool {
    /// Creates a pool called `name` (regions are named `NAME.ID`).
    pub fn create(name: &str, params: &PoolParams) -> Result<Arc<PacketPool>> {
        let bad = |region, rule| Error::InvalidRegionParams { region, rule };
        if params.packets == 0 {
            return Err(bad(RegionId::Kmd, "a pool needs at least one packet"));
        }
        if !(MIN_BUF_SIZE..=MAX_BUF_SIZE).contains(&params.buf_size) {
            return Err(bad(RegionId::BufDef, "buffer size must be 512 B to 32 KiB"));
        }
        if !params.truncated_buf && !params.buf_size.is_power_of_two() {
            return Err(bad(
                RegionId::BufDef,
                "buffer size must be a power of two unless buffers are truncated (AF_XDP aligned chunks)",
            ));
        }
        if params.max_frags == 0 || params.max_frags > MAX_FRAGS {
            return Err(bad(RegionId::Kmd, "max_frags must be in 1..=64"));
        }
        let on_demand = params.max_frags > 1;
        if !on_demand && params.buffers != 0 && params.buffers != params.packets {
            return Err(bad(
                RegionId::BufDef,
                "a single-buffer pool binds buffer i to packet i: buffers must equal packets",
            ));
        }
        if on_demand && params.buffers != 0 && params.buffers < params.packets {
            return Err(bad(
                RegionId::BufDef,
                "an on-demand pool needs at least one buffer per packet",
            ));
        }
        if (params.large_buf_size == 0) != (params.large_buffers == 0) {
            return Err(bad(
                RegionId::BufLarge,
                "large buffers need both a size and a count",
            ));
        }
        if params.large_buf_size != 0 && params.large_buf_size <= params.buf_size {
            return Err(bad(
                RegionId::BufLarge,
                "large buffers must be larger than default buffers",
            ));
        }

        let user = |id: RegionId| {
            let f = RegionFlags::template(id);
            if params.owner_only {
                f - RegionFlags::MMAPOK - RegionFlags::UREADONLY
            } else {
                f
            }
        };
        // Owner-only pools have no mirrors, and their buffers are not
        // mappable: the pool is never seen outside the owner.
        let kmd = Region::create(
            name,
            &RegionParams::new(RegionId::Kmd, META_SIZE, params.packets)
                .with_align(META_SIZE)
                .with_max_frags(params.max_frags)
                .with_workers(params.workers),
        )?;
        let kg = *kmd.geometry();
        let umd = if params.owner_only {
            None
        } else {
            let umd = Region::create(
                name,
                &RegionParams::new(RegionId::Umd, kg.obj_size, kg.obj_count as usize)
                    .with_align(META_SIZE)
                    .with_flags(user(RegionId::Umd))
                    .with_seg_size(kg.seg_size),
            )?;
            Region::mirror(&kmd, umd.clone())?;
            Some(umd)
        };
        let buffers = if on_demand {
            params.buffers.max(params.packets)
        } else {
            // Every metadata object, the magazine reserve included, owns one.
            kg.obj_count as usize
        };
        let buf_def = Region::create(
            name,
            &RegionParams::new(RegionId::BufDef, params.buf_size, buffers)
                .with_flags(user(RegionId::BufDef)),
        )?;
        if !on_demand && buf_def.geometry().obj_count != kg.obj_count {
            return Err(bad(
                RegionId::BufDef,
                "buffer and metadata counts round differently: choose a packet count that fills whole buffer segments",
            ));
        }
        let buf_size = buf_def.geometry().obj_size;
        if !on_demand {
            // Buffer i belongs to packet i for life, and the kernel pins the
            // whole UMEM when it is registered: every segment is in use.
            for _ in 0..buf_def.geometry().seg_count {
                buf_def.alloc_segment()?;
            }
        }
        let (kbft, ubft, buf_cache) = if on_demand {
            let bg = *buf_def.geometry();
            let kbft = Region::create(
                name,
                &RegionParams::new(RegionId::Kbft, BUFLET_SIZE, bg.obj_count as usize),
            )?;
            let ubft = if params.owner_only {
                None
            } else {
                let g = *kbft.geometry();
                let ubft = Region::create(
                    name,
                    &RegionParams::new(RegionId::Ubft, g.obj_size, g.obj_count as usize)
                        .with_flags(user(RegionId::Ubft))
                        .with_seg_size(g.seg_size),
                )?;
                Region::mirror(&kbft, ubft.clone())?;
                Some(ubft)
            };
            let cache = Cache::new(buf_def.clone(), CacheParams::new(format!("buf.{name}")))?;
            (Some(kbft), ubft, Some(cache))
        } else {
            (None, None, None)
        };
        let (buf_large, large_cache) = if params.large_buffers > 0 {
            let r = Region::create(
                name,
                &RegionParams::new(
                    RegionId::BufLarge,
                    params.large_buf_size,
                    params.large_buffers,
                )
                .with_flags(user(RegionId::BufLarge)),
            )?;
            let c = Cache::new(r.clone(), CacheParams::new(format!("buf_large.{name}")))?;
            (Some(r), Some(c))
        } else {
            (None, None)
        };

        // The metadata constructor binds buffer i (single-buffer pools) and
        // resets the user-visible mirror.
        let ctor_umd = umd.clone();
        let fixed_buf = (!on_demand).then_some(buf_size as u64);
        let ctor = move |idx: u32, bytes: &mut [u8]| {
            bytes.fill(0);
            let head = if fixed_buf.is_some() { idx } else { NIL };
            bytes[kmd::BUFLET_HEAD..kmd::BUFLET_HEAD + 4].copy_from_slice(&head.to_le_bytes());
            if let Some(Ok(p)) = ctor_umd.as_ref().map(|u| u.obj_ptr(idx)) {
                // SAFETY: object `idx` of the mirror exists (equal geometry)
                // and is this new packet's, inside the owner's view.
                unsafe {
                    std::ptr::write_bytes(p, 0, META_SIZE);
                    put_u64(p, umd::BUF_ADDR, fixed_buf.map_or(0, |b| idx as u64 * b));
                }
            }
        };
        let kmd_cache = Cache::new(
            kmd.clone(),
            CacheParams::new(format!("kmd.{name}")).with_constructor(ctor),
        )?;
        tracing::debug!(
            pool = name,
            packets = kg.obj_count,
            buf_size,
            on_demand,
            "packet pool created"
        );
        Ok(Arc::new(PacketPool {
            name: name.to_owned(),
            params: params.clone(),
            kmd,
            umd,
            kmd_cache,
            buf_def,
            buf_cache,
            buf_large,
            large_cache,
            kbft,
            ubft,
            buf_size,
            refused_frees: AtomicU64::new(0),
            states: StateColumn::new(kg.obj_count),
        }))
    }

    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameters it was created with.
    pub fn params(&self) -> &PoolParams {
        &self.params
    }

    /// Packets (metadata objects), the magazine reserve included.
    pub fn packet_count(&self) -> u32 {
        self.kmd.geometry().obj_count
    }

    /// Configured default buffer size.
    pub fn buf_size(&self) -> usize {
        self.buf_size
    }

    /// Do packets take buffers on demand (multi-buffer pool)?
    pub fn on_demand(&self) -> bool {
        self.buf_cache.is_some()
    }

    /// Is this an owner-only pool?
    pub fn owner_only(&self) -> bool {
        self.params.owner_only
    }

    /// The region `id` of this pool, if it has one.
    pub fn region(&self, id: RegionId) -> Option<&Arc<Region>> {
        match id {
            RegionId::Kmd => Some(&self.kmd),
            RegionId::Umd => self.umd.as_ref(),
            RegionId::BufDef => Some(&self.buf_def),
            RegionId::BufLarge => self.buf_large.as_ref(),
            RegionId::Kbft => self.kbft.as_ref(),
            RegionId::Ubft => self.ubft.as_ref(),
            _ => None,
        }
    }

    /// Every region of the pool.
    pub fn regions(&self) -> impl Iterator<Item = &Arc<Region>> {
        [
            Some(&self.kmd),
            self.umd.as_ref(),
            Some(&self.buf_def),
            self.buf_large.as_ref(),
            self.kbft.as_ref(),
            self.ubft.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    /// Every cache of the pool.
    pub fn caches(&self) -> impl Iterator<Item = &Arc<Cache>> {
        [
            Some(&self.kmd_cache),
            self.buf_cache.as_ref(),
            self.large_cache.as_ref(),
        ]
        .into_iter()
        .flatten()
    }

    /// The metadata cache (with magazines).
    pub fn metadata_cache(&self) -> &Arc<Cache> {
        &self.kmd_cache
    }

    /// Claims a worker: the per-thread handle packets are allocated through.
    pub fn worker(self: &Arc<Self>) -> Result<PoolWorker> {
        Ok(PoolWorker {
            pool: self.clone(),
            kmd: self.kmd_cache.worker()?,
        })
    }

    fn kmd_ptr(&self, pkt: PacketIndex) -> Result<*mut u8> {
        self.kmd.obj_ptr(pkt)
    }

    /// Where packet `pkt` is.
    pub fn state(&self, pkt: PacketIndex) -> Result<PacketState> {
        match self.states.get(pkt) {
            Some(s) => Ok(s),
            None => Err(Error::ObjectOutOfRange {
                region: RegionId::Kmd,
                index: pkt,
                count: self.packet_count(),
            }),
        }
    }

    /// Moves `pkt` from state `from` to `to`; false (and nothing changed)
    /// when it is not in `from` — a descriptor that lies.
    #[inline]
    pub(crate) fn transition(&self, pkt: PacketIndex, from: PacketState, to: PacketState) -> bool {
        self.states.transition(pkt, from, to)
    }

    /// The state column, for a channel to keep.
    pub(crate) fn state_column(&self) -> StateColumn {
        self.states.clone()
    }

    /// Counts the packets in each state (a walk over KMD: for accounting,
    /// not for the data path).
    pub fn state_counts(&self) -> [u64; 5] {
        let mut c = [0u64; 5];
        for pkt in 0..self.packet_count() {
            if let Ok(s) = self.state(pkt) {
                c[s as usize] += 1;
            }
        }
        c
    }

    pub(crate) fn set_state(&self, pkt: PacketIndex, s: PacketState) {
        self.states.set(pkt, s);
    }

    /// Checks that `pkt` is a packet this pool handed out.
    fn check_allocated(&self, pkt: PacketIndex) -> Result<()> {
        match self.state(pkt) {
            Ok(PacketState::Allocated) => Ok(()),
            Ok(_) => {
                self.refused_frees.fetch_add(1, Ordering::Relaxed);
                Err(Error::NotAllocated {
                    cache: self.kmd_cache.name().to_owned(),
                    index: pkt,
                })
            }
            Err(e) => {
                self.refused_frees.fetch_add(1, Ordering::Relaxed);
                Err(e)
            }
        }
    }

    /// Frees (to the buffer cache) every buflet chained on `pkt`.
    fn release_buflets(&self, pkt: PacketIndex) {
        let (Some(cache), Some(kbft)) = (&self.buf_cache, &self.kbft) else {
            return;
        };
        let Ok(p) = self.kmd_ptr(pkt) else { return };
        // SAFETY: `p` is KMD object `pkt`, owner view.
        let mut b = unsafe { get_u32(p, kmd::BUFLET_HEAD) };
        let mut guard = 0;
        while b != NIL && guard < self.params.max_frags as usize {
            let next = match kbft.obj_ptr(b) {
                // SAFETY: buflet `b` exists (obj_ptr checked its range).
                Ok(bp) => unsafe { get_u32(bp, kbft::NEXT) },
                Err(_) => NIL,
            };
            if let Err(e) = cache.free(b) {
                tracing::warn!(pool = %self.name, buflet = b, error = %e, "buflet refused");
            }
            b = next;
            guard += 1;
        }
        // SAFETY: as above.
        unsafe {
            put_u32(p, kmd::BUFLET_HEAD, NIL);
            put_u32(p, kmd::NBUFLETS, 0);
        }
    }

    /// Chains a new on-demand buffer on `pkt`; returns its index (also its
    /// buflet's). Errors when the pool is single-buffer, `pkt` is not
    /// allocated, the chain is at `max_frags`, or buffers ran out.
    pub fn attach_buffer(&self, pkt: PacketIndex) -> Result<u32> {
        let (Some(cache), Some(kbft)) = (&self.buf_cache, &self.kbft) else {
            return Err(Error::RegionMisuse {
                region: RegionId::Kbft,
                rule: "a single-buffer pool has no buflets",
            });
        };
        self.check_allocated(pkt)?;
        let p = self.kmd_ptr(pkt)?;
        // SAFETY: `p` is KMD object `pkt`, owner view.
        let n = unsafe { get_u32(p, kmd::NBUFLETS) };
        if n >= self.params.max_frags as u32 {
            return Err(Error::RegionMisuse {
                region: RegionId::Kbft,
                rule: "the packet already chains max_frags buffers",
            });
        }
        let b = cache.alloc().ok_or(Error::RegionExhausted {
            region: RegionId::BufDef,
            segments: self.buf_def.geometry().seg_count,
        })?;
        let bp = kbft.obj_ptr(b)?;
        // SAFETY: `bp` is KBFT object `b`, just ours; `p` as above. Append
        // at the tail so the chain keeps fragment order.
        unsafe {
            put_u32(bp, kbft::PKT, pkt);
            put_u32(bp, kbft::NEXT, NIL);
            put_u32(bp, kbft::LEN, 0);
            let head = get_u32(p, kmd::BUFLET_HEAD);
            if head == NIL {
                put_u32(p, kmd::BUFLET_HEAD, b);
            } else {
                let mut t = head;
                for _ in 0..n.saturating_sub(1) {
                    t = get_u32(kbft.obj_ptr(t)?, kbft::NEXT);
                }
                put_u32(kbft.obj_ptr(t)?, kbft::NEXT, b);
            }
            put_u32(p, kmd::NBUFLETS, n + 1);
        }
        if let Some(Ok(up)) = self.ubft.as_ref().map(|u| u.obj_ptr(b)) {
            // SAFETY: mirror object `b` exists and is this buflet's.
            unsafe { put_u64(up, 0, self.buf_addr_of(b)) };
        }
        Ok(b)
    }

    /// The buffers of `pkt`, in order: buffer indices (= buflet indices).
    pub fn buffers(&self, pkt: PacketIndex) -> Result<Vec<u32>> {
        let p = self.kmd_ptr(pkt)?;
        // SAFETY: `p` is KMD object `pkt`, owner view.
        let head = unsafe { get_u32(p, kmd::BUFLET_HEAD) };
        let Some(kbft) = &self.kbft else {
            return Ok(vec![head]);
        };
        let mut out = Vec::new();
        let mut b = head;
        while b != NIL && out.len() < self.params.max_frags as usize {
            out.push(b);
            // SAFETY: obj_ptr checked the range.
            b = unsafe { get_u32(kbft.obj_ptr(b)?, kbft::NEXT) };
        }
        Ok(out)
    }

    /// The BUF_DEF (UMEM) address of buffer `buf`.
    pub fn buf_addr_of(&self, buf: u32) -> u64 {
        buf as u64 * self.buf_size as u64
    }

    /// The first buffer's BUF_DEF (UMEM) address of packet `pkt`: O(1).
    pub fn buf_addr(&self, pkt: PacketIndex) -> Result<u64> {
        if self.kbft.is_none() {
            if pkt >= self.packet_count() {
                return Err(Error::ObjectOutOfRange {
                    region: RegionId::Kmd,
                    index: pkt,
                    count: self.packet_count(),
                });
            }
            return Ok(self.buf_addr_of(pkt));
        }
        let p = self.kmd_ptr(pkt)?;
        // SAFETY: KMD object `pkt`, owner view.
        let head = unsafe { get_u32(p, kmd::BUFLET_HEAD) };
        if head == NIL {
            return Err(Error::RegionMisuse {
                region: RegionId::Kbft,
                rule: "the packet has no buffer attached",
            });
        }
        Ok(self.buf_addr_of(head))
    }

    /// The packet owning the buffer at BUF_DEF address `addr` (any byte
    /// inside the buffer): O(1). Errors for addresses outside the region or
    /// buffers no packet holds — addresses may come from a ring, so they are
    /// untrusted.
    pub fn packet_of_addr(&self, addr: u64) -> Result<PacketIndex> {
        let count = self.buf_def.geometry().obj_count;
        let buf = addr / self.buf_size as u64;
        if buf >= count as u64 {
            return Err(Error::ObjectOutOfRange {
                region: RegionId::BufDef,
                index: u32::try_from(buf).unwrap_or(u32::MAX),
                count,
            });
        }
        let buf = buf as u32;
        match &self.kbft {
            None => Ok(buf),
            Some(kbft) => {
                let in_use = self.buf_cache.as_ref().is_some_and(|c| c.is_allocated(buf));
                if !in_use {
                    return Err(Error::RegionMisuse {
                        region: RegionId::BufDef,
                        rule: "no packet holds this buffer",
                    });
                }
                // SAFETY: buflet `buf` exists (same count as BUF_DEF).
                Ok(unsafe { get_u32(kbft.obj_ptr(buf)?, kbft::PKT) })
            }
        }
    }

    /// Owner's pointer to buffer `buf` and its length.
    pub fn buffer_ptr(&self, buf: u32) -> Result<(*mut u8, usize)> {
        Ok((self.buf_def.obj_ptr(buf)?, self.buf_size))
    }

    /// Copies `data` into buffer `buf` at `offset`.
    pub fn write_buffer(&self, buf: u32, offset: usize, data: &[u8]) -> Result<()> {
        let (p, len) = self.buffer_ptr(buf)?;
        if offset.checked_add(data.len()).is_none_or(|end| end > len) {
            return Err(Error::RegionMisuse {
                region: RegionId::BufDef,
                rule: "write past the end of the buffer",
            });
        }
        // SAFETY: `p..p+len` is buffer `buf` in the owner's read-write view
        // and the range was checked; the caller holds the packet.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p.add(offset), data.len()) };
        Ok(())
    }

    /// Copies bytes of buffer `buf` from `offset` into `out`.
    pub fn read_buffer(&self, buf: u32, offset: usize, out: &mut [u8]) -> Result<()> {
        let (p, len) = self.buffer_ptr(buf)?;
        if offset.checked_add(out.len()).is_none_or(|end| end > len) {
            return Err(Error::RegionMisuse {
                region: RegionId::BufDef,
                rule: "read past the end of the buffer",
            });
        }
        // SAFETY: as in `write_buffer`.
        unsafe { std::ptr::copy_nonoverlapping(p.add(offset), out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// The user-visible metadata of `pkt` (from UMD; owner-only pools keep
    /// none and answer from KMD's view of the buffer).
    pub fn meta(&self, pkt: PacketIndex) -> Result<UserMeta> {
        let Some(umd) = &self.umd else {
            return Ok(UserMeta {
                buf_addr: self.buf_addr(pkt).unwrap_or(0),
                ..UserMeta::default()
            });
        };
        let p = umd.obj_ptr(pkt)?;
        // SAFETY: UMD object `pkt`, owner view (read-write).
        unsafe {
            Ok(UserMeta {
                len: get_u32(p, umd::LEN),
                data_off: get_u32(p, umd::DATA_OFF),
                buf_addr: get_u64(p, umd::BUF_ADDR),
                flags: get_u32(p, umd::FLAGS),
                nfrags: get_u32(p, umd::NFRAGS),
                timestamp_ns: get_u64(p, umd::TIMESTAMP),
            })
        }
    }

    /// Writes the user-visible metadata of `pkt`.
    pub fn set_meta(&self, pkt: PacketIndex, m: &UserMeta) -> Result<()> {
        let Some(umd) = &self.umd else {
            return Ok(());
        };
        let p = umd.obj_ptr(pkt)?;
        // SAFETY: UMD object `pkt`, owner view (read-write).
        unsafe {
            put_u32(p, umd::LEN, m.len);
            put_u32(p, umd::DATA_OFF, m.data_off);
            put_u64(p, umd::BUF_ADDR, m.buf_addr);
            put_u32(p, umd::FLAGS, m.flags);
            put_u32(p, umd::NFRAGS, m.nfrags);
            put_u64(p, umd::TIMESTAMP, m.timestamp_ns);
        }
        Ok(())
    }

    /// Frees refused so far (double frees, foreign indices).
    pub fn refused_frees(&self) -> u64 {
        self.refused_frees.load(Ordering::Relaxed)
    }

    /// Packets handed out (and not yet freed).
    pub fn packets_in_use(&self) -> u64 {
        let st = self.kmd_cache.stats();
        st.obj_in_use
    }

    /// Large buffers: allocates one (its index in BUF_LARGE).
    pub fn alloc_large(&self) -> Option<u32> {
        self.large_cache.as_ref()?.alloc()
    }

    /// Frees a large buffer.
    pub fn free_large(&self, buf: u32) -> Result<()> {
        match &self.large_cache {
            Some(c) => c.free(buf),
            None => Err(Error::RegionMisuse {
                region: RegionId::BufLarge,
                rule: "the pool has no large buffers",
            }),
        }
    }

    /// Trims every cache to its working set, or empties them (`purge`).
    pub fn reap(&self, purge: bool) {
        for c in self.caches() {
            if purge {
                c.purge();
            } else {
                c.reap();
            }
        }
    }
}

/// A data-path thread's handle on a pool: packets come and go through the
/// metadata cache's magazines.
#[derive(Debug)]
pub struct PoolWorker {
    pool: Arc<PacketPool>,
    kmd: CacheWorker,
}

impl PoolWorker {
    /// The pool.
    pub fn pool(&self) -> &Arc<PacketPool> {
        &self.pool
    }

    /// Allocates one packet (with its buffer in a single-buffer pool).
    pub fn alloc(&mut self) -> Option<PacketIndex> {
        let pkt = self.kmd.alloc()?;
        self.pool.set_state(pkt, PacketState::Allocated);
        Some(pkt)
    }

    /// Allocates up to `out.len()` packets; returns how many.
    pub fn alloc_batch(&mut self, out: &mut [PacketIndex]) -> usize {
        let n = self.kmd.alloc_batch(out);
        for &p in &out[..n] {
            self.pool.set_state(p, PacketState::Allocated);
        }
        n
    }

    /// Frees one packet (and its on-demand buffers). A packet that is not
    /// allocated is refused with an error and counted, never freed twice.
    pub fn free(&mut self, pkt: PacketIndex) -> Result<()> {
        self.pool.check_allocated(pkt)?;
        self.pool.release_buflets(pkt);
        self.pool.set_state(pkt, PacketState::Free);
        self.kmd.free(pkt)
    }

    /// Allocates up to `out.len()` packets straight into state `to`.
    pub(crate) fn alloc_batch_as(&mut self, out: &mut [PacketIndex], to: PacketState) -> usize {
        let n = self.kmd.alloc_batch(out);
        for &p in &out[..n] {
            self.pool.set_state(p, to);
        }
        n
    }

    /// Returns `pkts`, each in state `from`, to the pool; the ones not in
    /// `from` are refused and counted.
    pub(crate) fn free_batch_from(&mut self, pkts: &[PacketIndex], from: PacketState) -> usize {
        let mut freed = 0;
        let mut burst = self.kmd.burst();
        for &p in pkts {
            if !self.pool.transition(p, from, PacketState::Free) {
                self.pool.refused_frees.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.pool.release_buflets(p);
            if burst.free(p).is_ok() {
                freed += 1;
            }
        }
        freed
    }

    /// Frees a batch; refused packets are skipped and counted, and the
    /// first refusal is returned after the rest were freed.
    pub fn free_batch(&mut self, pkts: &[PacketIndex]) -> Result<()> {
        let mut first_err = None;
        let mut burst = self.kmd.burst();
        for &p in pkts {
            let checked = self.pool.check_allocated(p);
            if let Err(e) = checked {
                first_err.get_or_insert(e);
                continue;
            }
            self.pool.release_buflets(p);
            self.pool.set_state(p, PacketState::Free);
            if let Err(e) = burst.free(p) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
