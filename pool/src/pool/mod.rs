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
//! **Indices do the addressing.** A packet is named by the index of its
//! metadata object ([`PacketIndex`]). In a single-buffer pool (`max_frags == 1`) packet *i* owns
//! buffer *i* for life — Bonwick's object caching: the binding is made when
//! the metadata object is constructed and survives free — so a packet's
//! buffer address is `i * buf_size` and a buffer address gives back its
//! packet with one division, both O(1), which is exactly an AF_XDP aligned
//! UMEM descriptor. In a multi-buffer pool buffers are taken on demand; buflet
//! *j* describes buffer *j* (same index), records its packet, and links to
//! the next buflet, so the conversions stay O(1).
//!
//! **Tokens give the rights.** The pool hands a packet out as a [`Packet`],
//! the one value that may read and write its buffer and metadata; freeing
//! or sending the packet consumes it (see [`packet`]).
//!
//! Options follow Skywalk: an **owner-only** pool (Skywalk's kernel-only)
//! has no user-visible regions at all; **truncated** buffers are not rounded
//! to a power of two (they suit AF_XDP unaligned chunks). A pool may be shared
//! by several arenas: they retain its regions, never copy them.

mod create;
pub mod packet;
mod state;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub(crate) use packet::{next_pool_id, PoolId};
pub use packet::{BufIndex, Packet, PacketIndex, Refused};
pub(crate) use state::{Holder, StateColumn, Tag};
pub use state::{PacketState, MAX_HOLDERS};
pub use worker::PoolWorker;

use crate::cache::Cache;
use crate::error::{Error, RegionError, Result};
use crate::region::{Region, RegionId};

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
#[non_exhaustive]
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
    /// Worker slots of the metadata cache (0 = one per CPU). Each channel
    /// over the pool takes one, as does each [`PacketPool::worker`].
    pub workers: usize,
    /// Back the default buffers (BUF_DEF: the UMEM) with 2 MiB huge pages
    /// ([`RegionFlags::HUGETLB`](crate::region::RegionFlags::HUGETLB)): the
    /// machine must have enough free (`vm.nr_hugepages`), or creation
    /// fails with [`crate::RegionError::HugePages`].
    pub huge_pages: bool,
}

impl Default for PoolParams {
    /// The process's [sysctls](crate::sysctls) (Skywalk's flowswitch
    /// defaults unless tuned: 4096 packets of 2 KiB), one buffer each.
    fn default() -> Self {
        let t = crate::sysctls::current();
        Self {
            packets: t.packets as usize,
            buf_size: t.buf_size as usize,
            buffers: 0,
            large_buf_size: 0,
            large_buffers: 0,
            max_frags: 1,
            owner_only: false,
            truncated_buf: false,
            workers: 0,
            huge_pages: false,
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

/// A packet buffer pool: see the module docs.
///
/// ```
/// use skmem::pool::{PacketPool, PoolParams};
///
/// let pool = PacketPool::create("doc", &PoolParams::default().with(|p| p.packets = 256))?;
/// let mut worker = pool.worker()?;
/// let mut pkt = worker.alloc().expect("a packet");
/// pool.write_buffer(&mut pkt, 0, b"frame bytes")?;
/// assert_eq!(&pool.buffer(&pkt)?[..5], b"frame");
/// // A packet is its UMEM frame: index and address convert in O(1).
/// let addr = pool.buf_addr(&pkt)?;
/// assert_eq!(pool.packet_of_addr(addr + 100)?, pkt.index());
/// worker.free(pkt)?; // the packet is gone: no second free can compile
/// # Ok::<(), skmem::Error>(())
/// ```
#[derive(Debug)]
pub struct PacketPool {
    /// Identity carried by this pool's [`Packet`]s.
    id: PoolId,
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
    /// Each packet's state and holder (owner-private; see [`StateColumn`]
    /// for why a column of its own).
    states: StateColumn,
}

impl PacketPool {
    /// The pool's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The parameters it was created with.
    pub fn params(&self) -> &PoolParams {
        &self.params
    }

    /// The identity its packets carry.
    pub(crate) fn id(&self) -> PoolId {
        self.id
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
        Ok(PoolWorker::new(self.clone(), self.kmd_cache.worker()?))
    }

    /// Where packet `pkt` is.
    pub fn state(&self, pkt: PacketIndex) -> Result<PacketState> {
        self.states
            .get(pkt)
            .ok_or_else(|| state::out_of_range(pkt, self.packet_count()))
    }

    /// The state column, for a channel to keep.
    pub(crate) fn state_column(&self) -> StateColumn {
        self.states.clone()
    }

    /// Counts the packets in each state, in [`PacketState`] code order (a
    /// walk over the column: for accounting, not for the data path).
    pub fn state_counts(&self) -> [u64; 5] {
        let mut c = [0u64; 5];
        for i in 0..self.packet_count() {
            if let Some(s) = self.states.get(PacketIndex::new(i)) {
                c[s as usize] += 1;
            }
        }
        c
    }

    /// `pkt`'s index, when it is a packet of this pool that its holder
    /// holds; a packet of another pool is refused (and counted).
    #[inline]
    pub(crate) fn check_ours(&self, pkt: &Packet) -> Result<PacketIndex> {
        if pkt.pool_id() != self.id || !self.states.is(pkt.index(), Tag::APP) {
            self.refused_frees.fetch_add(1, Ordering::Relaxed);
            return Err(Error::ForeignPacket {
                pool: self.name.clone(),
                index: pkt.index().get(),
            });
        }
        Ok(pkt.index())
    }

    /// Frees (to the buffer cache) every buflet chained on `pkt`.
    fn release_buflets(&self, pkt: PacketIndex) {
        let (Some(cache), Some(kbft)) = (&self.buf_cache, &self.kbft) else {
            return;
        };
        let Ok(k) = self.kmd.obj(pkt.get()) else {
            return;
        };
        let mut b = k.load_u32(kmd::BUFLET_HEAD).unwrap_or(NIL);
        let mut guard = 0;
        while b != NIL && guard < self.params.max_frags as usize {
            let next = kbft
                .obj(b)
                .and_then(|o| o.load_u32(kbft::NEXT))
                .unwrap_or(NIL);
            if let Err(e) = cache.free(b) {
                tracing::warn!(pool = %self.name, buflet = b, error = %e, "buflet refused");
            }
            b = next;
            guard += 1;
        }
        if k.store_u32(kmd::BUFLET_HEAD, NIL)
            .and_then(|()| k.store_u32(kmd::NBUFLETS, 0))
            .is_err()
        {
            tracing::error!(pool = %self.name, packet = pkt.get(), "KMD object refused its reset");
        }
    }

    /// Chains a new on-demand buffer on `pkt`; returns it (also its
    /// buflet's index). Errors when the pool is single-buffer, the chain is
    /// at `max_frags`, or buffers ran out.
    pub fn attach_buffer(&self, pkt: &mut Packet) -> Result<BufIndex> {
        let (Some(cache), Some(kbft)) = (&self.buf_cache, &self.kbft) else {
            return Err(Error::Region(RegionError::Misuse {
                region: RegionId::Kbft,
                rule: "a single-buffer pool has no buflets",
            }));
        };
        let pkt = self.check_ours(pkt)?;
        let k = self.kmd.obj(pkt.get())?;
        let n = k.load_u32(kmd::NBUFLETS)?;
        if n >= self.params.max_frags as u32 {
            return Err(Error::Region(RegionError::Misuse {
                region: RegionId::Kbft,
                rule: "the packet already chains max_frags buffers",
            }));
        }
        let b = cache.alloc().ok_or(Error::Region(RegionError::Exhausted {
            region: RegionId::BufDef,
            segments: self.buf_def.geometry().seg_count,
        }))?;
        let bl = kbft.obj(b)?;
        bl.store_u32(kbft::PKT, pkt.get())?;
        bl.store_u32(kbft::NEXT, NIL)?;
        bl.store_u32(kbft::LEN, 0)?;
        // Appended at the tail, so the chain keeps fragment order.
        let head = k.load_u32(kmd::BUFLET_HEAD)?;
        if head == NIL {
            k.store_u32(kmd::BUFLET_HEAD, b)?;
        } else {
            let mut t = head;
            for _ in 0..n.saturating_sub(1) {
                t = kbft.obj(t)?.load_u32(kbft::NEXT)?;
            }
            kbft.obj(t)?.store_u32(kbft::NEXT, b)?;
        }
        k.store_u32(kmd::NBUFLETS, n + 1)?;
        if let Some(u) = &self.ubft {
            u.obj(b)?.store_u64(0, self.buf_addr_of(BufIndex::new(b)))?;
        }
        Ok(BufIndex::new(b))
    }

    /// The buffers of `pkt`, in order.
    pub fn buffers(&self, pkt: &Packet) -> Result<Vec<BufIndex>> {
        let pkt = self.check_ours(pkt)?;
        let head = self.kmd.obj(pkt.get())?.load_u32(kmd::BUFLET_HEAD)?;
        let Some(kbft) = &self.kbft else {
            return Ok(vec![BufIndex::new(head)]);
        };
        let mut out = Vec::new();
        let mut b = head;
        while b != NIL && out.len() < self.params.max_frags as usize {
            out.push(BufIndex::new(b));
            b = kbft.obj(b)?.load_u32(kbft::NEXT)?;
        }
        Ok(out)
    }

    /// The BUF_DEF (UMEM) address of buffer `buf`.
    pub fn buf_addr_of(&self, buf: BufIndex) -> u64 {
        buf.get() as u64 * self.buf_size as u64
    }

    /// The first buffer of `pkt` (an error while an on-demand packet has
    /// none).
    fn first_buffer(&self, pkt: PacketIndex) -> Result<BufIndex> {
        if self.kbft.is_none() {
            return Ok(BufIndex::new(pkt.get()));
        }
        let head = self.kmd.obj(pkt.get())?.load_u32(kmd::BUFLET_HEAD)?;
        if head == NIL {
            return Err(Error::Region(RegionError::Misuse {
                region: RegionId::Kbft,
                rule: "the packet has no buffer attached",
            }));
        }
        Ok(BufIndex::new(head))
    }

    /// The first buffer's BUF_DEF (UMEM) address of `pkt`: O(1).
    pub fn buf_addr(&self, pkt: &Packet) -> Result<u64> {
        let pkt = self.check_ours(pkt)?;
        Ok(self.buf_addr_of(self.first_buffer(pkt)?))
    }

    /// The packet owning the buffer at BUF_DEF address `addr` (any byte
    /// inside the buffer): O(1). Errors for addresses outside the region or
    /// buffers no packet holds — addresses may come from a ring, so they are
    /// untrusted.
    pub fn packet_of_addr(&self, addr: u64) -> Result<PacketIndex> {
        let count = self.buf_def.geometry().obj_count;
        let buf = addr / self.buf_size as u64;
        if buf >= count as u64 {
            return Err(Error::Region(RegionError::ObjectOutOfRange {
                region: RegionId::BufDef,
                index: u32::try_from(buf).unwrap_or(u32::MAX),
                count,
            }));
        }
        let buf = buf as u32;
        match &self.kbft {
            None => Ok(PacketIndex::new(buf)),
            Some(kbft) => {
                let in_use = self.buf_cache.as_ref().is_some_and(|c| c.is_allocated(buf));
                if !in_use {
                    return Err(Error::Region(RegionError::Misuse {
                        region: RegionId::BufDef,
                        rule: "no packet holds this buffer",
                    }));
                }
                Ok(PacketIndex::new(kbft.obj(buf)?.load_u32(kbft::PKT)?))
            }
        }
    }

    /// BUF_DEF, for a channel: its owner view is the UMEM.
    pub(crate) fn buf_def(&self) -> &Arc<Region> {
        &self.buf_def
    }

    /// The bytes of `pkt`'s first buffer.
    pub fn buffer<'a>(&'a self, pkt: &'a Packet) -> Result<&'a [u8]> {
        let buf = self.first_buffer(self.check_ours(pkt)?)?;
        // SAFETY: the caller holds the packet (`check_ours`: its token, of
        // this pool, and the packet is the application's), and `&Packet`
        // keeps any `&mut` of it — the only way to write the buffer — away
        // for `'a`; the kernel does not touch an application's buffer.
        Ok(unsafe { self.buf_def.obj(buf.get())?.slice(0, self.buf_size) }?)
    }

    /// The bytes of `pkt`'s first buffer, to write.
    pub fn buffer_mut<'a>(&'a self, pkt: &'a mut Packet) -> Result<&'a mut [u8]> {
        let buf = self.first_buffer(self.check_ours(pkt)?)?;
        // SAFETY: as in `buffer`, and `&mut Packet` makes this borrow the
        // only one of the buffer for `'a`.
        Ok(unsafe { self.buf_def.obj(buf.get())?.slice_mut(0, self.buf_size) }?)
    }

    /// Copies `data` into `pkt`'s first buffer at `offset`.
    pub fn write_buffer(&self, pkt: &mut Packet, offset: usize, data: &[u8]) -> Result<()> {
        let buf = self.buffer_mut(pkt)?;
        let dst = offset
            .checked_add(data.len())
            .and_then(|end| buf.get_mut(offset..end))
            .ok_or(Error::Region(RegionError::Misuse {
                region: RegionId::BufDef,
                rule: "write past the end of the buffer",
            }))?;
        dst.copy_from_slice(data);
        Ok(())
    }

    /// Copies bytes of `pkt`'s first buffer from `offset` into `out`.
    pub fn read_buffer(&self, pkt: &Packet, offset: usize, out: &mut [u8]) -> Result<()> {
        let buf = self.buffer(pkt)?;
        let src = offset
            .checked_add(out.len())
            .and_then(|end| buf.get(offset..end))
            .ok_or(Error::Region(RegionError::Misuse {
                region: RegionId::BufDef,
                rule: "read past the end of the buffer",
            }))?;
        out.copy_from_slice(src);
        Ok(())
    }

    /// The user-visible metadata of `pkt` (from UMD; owner-only pools keep
    /// none and answer with the buffer's address alone).
    pub fn meta(&self, pkt: &Packet) -> Result<UserMeta> {
        let idx = self.check_ours(pkt)?;
        let Some(umd) = &self.umd else {
            return Ok(UserMeta {
                buf_addr: self.buf_addr(pkt).unwrap_or(0),
                ..UserMeta::default()
            });
        };
        let o = umd.obj(idx.get())?;
        Ok(UserMeta {
            len: o.load_u32(umd::LEN)?,
            data_off: o.load_u32(umd::DATA_OFF)?,
            buf_addr: o.load_u64(umd::BUF_ADDR)?,
            flags: o.load_u32(umd::FLAGS)?,
            nfrags: o.load_u32(umd::NFRAGS)?,
            timestamp_ns: o.load_u64(umd::TIMESTAMP)?,
        })
    }

    /// Writes the user-visible metadata of `pkt`.
    pub fn set_meta(&self, pkt: &mut Packet, m: &UserMeta) -> Result<()> {
        let idx = self.check_ours(pkt)?;
        let Some(umd) = &self.umd else {
            return Ok(());
        };
        let o = umd.obj(idx.get())?;
        o.store_u32(umd::LEN, m.len)?;
        o.store_u32(umd::DATA_OFF, m.data_off)?;
        o.store_u64(umd::BUF_ADDR, m.buf_addr)?;
        o.store_u32(umd::FLAGS, m.flags)?;
        o.store_u32(umd::NFRAGS, m.nfrags)?;
        Ok(o.store_u64(umd::TIMESTAMP, m.timestamp_ns)?)
    }

    /// Frees refused so far (packets of another pool, packets not where
    /// the caller said).
    pub fn refused_frees(&self) -> u64 {
        self.refused_frees.load(Ordering::Relaxed)
    }

    /// Counts a refused free.
    pub(crate) fn count_refused(&self) {
        self.refused_frees.fetch_add(1, Ordering::Relaxed);
    }

    /// Packets handed out (and not yet freed).
    pub fn packets_in_use(&self) -> u64 {
        self.kmd_cache.stats().obj_in_use
    }

    /// Large buffers: allocates one (its index in BUF_LARGE).
    pub fn alloc_large(&self) -> Option<u32> {
        self.large_cache.as_ref()?.alloc()
    }

    /// Frees a large buffer.
    pub fn free_large(&self, buf: u32) -> Result<()> {
        match &self.large_cache {
            Some(c) => Ok(c.free(buf)?),
            None => Err(Error::Region(RegionError::Misuse {
                region: RegionId::BufLarge,
                rule: "the pool has no large buffers",
            })),
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

impl PoolParams {
    /// These parameters, changed by `f`: how to set a few fields, the
    /// struct being `#[non_exhaustive]` (a field added later is not a
    /// breaking change) — `PoolParams::default().with(|p| p.packets = 2048)`.
    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}
