//! Regions: memfd-backed memory cut into equal segments of fixed-size objects.
//!
//! A [`Region`] is Skywalk's `skmem_region`. Its backing store is one memfd
//! (so a mapper can map it again, in this process or another); the owner
//! keeps one view of all of it, read-write unless KREADONLY. Segments are
//! handed out whole, by index, to the slab layer of the region's cache
//! ([`crate::cache`]); a region never interprets its objects.
//!
//! Mirroring pairs an owner-private master (KMD, KBFT, TXAKSD, RXFKSD,
//! KSTATS) with its user-visible mirror (UMD, UBFT, TXAUSD, RXFUSD, USTATS)
//! of equal geometry: the mirror is never allocated directly, and taking
//! segment *i* of the master takes segment *i* of the mirror, so object *i*
//! of one shadows object *i* of the other for its whole life.

mod error;
mod flags;
mod id;
mod object;
mod params;

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

pub use error::{RegionError, Result};
pub use flags::RegionFlags;
pub use id::RegionId;
pub(crate) use object::Obj;
pub use params::{
    default_workers, RegionGeometry, RegionParams, CACHE_LINE, DEFAULT_SEG_SIZE, MAX_FRAGS,
    MAX_OBJ_SIZE, MAX_SEG_SIZE,
};

use crate::sys::{Mapping, Memfd, Protection, HUGE_PAGE_SIZE};

/// Index of a segment inside its region.
pub type SegIndex = u32;

/// Who is looking at a region: the owner or a mapper.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The owning process (Skywalk's kernel): read-write unless KREADONLY.
    Owner,
    /// A mapper (Skywalk's user task): read-only when UREADONLY.
    User,
}

/// Free and used segments. Behind a mutex: segments move only when a slab is
/// created or destroyed, never on the per-packet path.
#[derive(Debug)]
struct Segments {
    /// Free segment indices; popped from the end, so the lowest comes first.
    free: Vec<SegIndex>,
    /// Whether each segment is in use.
    in_use: Vec<bool>,
}

/// A region: see the module documentation.
///
/// ```
/// use skmem::region::{Region, RegionFlags, RegionId, RegionParams, View};
///
/// // 64 user slot descriptors' worth of objects, read-only to mappers.
/// let r = Region::create("doc", &RegionParams::new(RegionId::TxaUsd, 64, 64))?;
/// assert!(r.flags().contains(RegionFlags::UREADONLY));
/// let seg = r.alloc_segment()?;
/// assert_eq!(r.stats().segs_in_use, 1);
/// let view = r.map_view(View::User)?; // a second, read-only mapping
/// assert_eq!(view.len(), r.size());
/// r.free_segment(seg)?;
/// # Ok::<(), skmem::Error>(())
/// ```
#[derive(Debug)]
pub struct Region {
    name: String,
    params: RegionParams,
    geom: RegionGeometry,
    /// Bytes of its memfd and mappings (see [`Region::size`]).
    size: usize,
    uuid: uuid::Uuid,
    /// Absent for guards, which have no bytes.
    memfd: Option<Memfd>,
    /// The owner's view of the whole region.
    owner_view: Mapping,
    segments: Mutex<Segments>,
    mirror: OnceLock<Arc<Region>>,
    is_mirror: AtomicBool,
    has_cache: AtomicBool,
    /// Registered with the kernel as a UMEM: its pages are pinned, and an
    /// emptied segment keeps them (punching a hole under a pin would part
    /// the kernel's pages from the file's).
    pinned: AtomicBool,
    seg_allocs: AtomicU64,
    seg_frees: AtomicU64,
    segs_in_use: AtomicU64,
}

impl Region {
    /// Creates region `params.id` for the arena or pool called `owner`.
    pub fn create(owner: &str, params: &RegionParams) -> Result<Arc<Region>> {
        let geom = params.configure()?;
        crate::failpoint::step("region create")?;
        let name = format!("{owner}.{}", params.id);
        let huge = params.flags.contains(RegionFlags::HUGETLB)
            && !params.flags.contains(RegionFlags::GUARD);
        // A huge-page region is a whole number of huge pages; its objects
        // fill the front, the rest is slack.
        let size = if huge {
            geom.size().next_multiple_of(HUGE_PAGE_SIZE)
        } else {
            geom.size()
        };
        let (memfd, owner_view) = if params.flags.contains(RegionFlags::GUARD) {
            (None, Mapping::inaccessible(size)?)
        } else {
            let memfd = if huge {
                Memfd::create_huge(&format!("skmem.{name}"), size)?
            } else {
                Memfd::create(&format!("skmem.{name}"), size)?
            };
            let prot = if params.flags.contains(RegionFlags::KREADONLY) {
                Protection::Read
            } else {
                Protection::ReadWrite
            };
            let view = Mapping::shared(memfd.as_fd(), size, prot).map_err(|e| match e {
                e if huge && e.errno() == libc::ENOMEM => RegionError::HugePages {
                    region: params.id,
                    needed: size / HUGE_PAGE_SIZE,
                },
                e => e.into(),
            })?;
            // The owner's view exists: from now on a region mappers only
            // read takes no new write from anyone, and no holder of the fd
            // may add a seal.
            memfd.seal(params.flags.contains(RegionFlags::UREADONLY))?;
            (Some(memfd), view)
        };
        let seg_count = geom.seg_count as usize;
        tracing::debug!(region = %name, size, segments = seg_count, obj_size = geom.obj_size, "region created");
        Ok(Arc::new(Region {
            name,
            params: params.clone(),
            geom,
            size,
            uuid: uuid::Uuid::new_v4(),
            memfd,
            owner_view,
            segments: Mutex::new(Segments {
                free: (0..geom.seg_count).rev().collect(),
                in_use: vec![false; seg_count],
            }),
            mirror: OnceLock::new(),
            is_mirror: AtomicBool::new(false),
            has_cache: AtomicBool::new(false),
            pinned: AtomicBool::new(false),
            seg_allocs: AtomicU64::new(0),
            seg_frees: AtomicU64::new(0),
            segs_in_use: AtomicU64::new(0),
        }))
    }

    /// Pairs `master` with its `mirror` (Skywalk's `skmem_region_mirror`).
    ///
    /// Both must be the two halves of one of the five mirror pairs, have
    /// equal geometry, and have nothing allocated yet.
    pub fn mirror(master: &Arc<Region>, mirror: Arc<Region>) -> Result<()> {
        let bad = |rule| RegionError::InvalidMirror {
            master: master.id(),
            mirror: mirror.id(),
            rule,
        };
        if master.id().mirror() != Some(mirror.id()) {
            return Err(bad("not a master/mirror pair (KMD↔UMD, KBFT↔UBFT, TXAKSD↔TXAUSD, RXFKSD↔RXFUSD, KSTATS↔USTATS)"));
        }
        if master.geom.obj_size != mirror.geom.obj_size
            || master.geom.seg_size != mirror.geom.seg_size
            || master.geom.obj_count != mirror.geom.obj_count
        {
            return Err(bad(
                "geometries differ (object size, segment size and count must be equal)",
            ));
        }
        if master.segs_in_use() != 0 || mirror.segs_in_use() != 0 {
            return Err(bad("a region already has segments in use"));
        }
        if mirror.has_cache.load(Ordering::Acquire) {
            return Err(bad(
                "the mirror already backs a cache; mirrors are never allocated directly",
            ));
        }
        if mirror.is_mirror.swap(true, Ordering::AcqRel) {
            return Err(bad("the mirror is already mirrored"));
        }
        if master.mirror.set(mirror.clone()).is_err() {
            mirror.is_mirror.store(false, Ordering::Release);
            return Err(bad("the master already has a mirror"));
        }
        Ok(())
    }

    /// Takes the lowest free segment (and the same segment of the mirror).
    pub fn alloc_segment(&self) -> Result<SegIndex> {
        if self.is_mirror.load(Ordering::Acquire) {
            return Err(RegionError::Misuse {
                region: self.id(),
                rule: "a mirror is allocated only through its master",
            });
        }
        if self.is_guard() {
            return Err(RegionError::Misuse {
                region: self.id(),
                rule: "a guard region holds no objects",
            });
        }
        let seg = {
            let mut s = self.segments.lock().unwrap_or_else(|e| e.into_inner());
            let seg = s.free.pop().ok_or(RegionError::Exhausted {
                region: self.id(),
                segments: self.geom.seg_count,
            })?;
            s.in_use[seg as usize] = true;
            seg
        };
        self.account_alloc();
        if let Some(m) = self.mirror.get() {
            m.shadow(seg, true);
        }
        Ok(seg)
    }

    /// Returns segment `seg` (and the mirror's) to the free list.
    pub fn free_segment(&self, seg: SegIndex) -> Result<()> {
        if self.is_mirror.load(Ordering::Acquire) {
            return Err(RegionError::Misuse {
                region: self.id(),
                rule: "a mirror is freed only through its master",
            });
        }
        {
            let mut s = self.segments.lock().unwrap_or_else(|e| e.into_inner());
            match s.in_use.get(seg as usize) {
                Some(true) => {}
                Some(false) => {
                    return Err(RegionError::Misuse {
                        region: self.id(),
                        rule: "segment freed while not in use",
                    })
                }
                None => {
                    return Err(RegionError::Misuse {
                        region: self.id(),
                        rule: "segment index out of range",
                    })
                }
            }
            s.in_use[seg as usize] = false;
            s.free.push(seg);
        }
        self.release_pages(seg);
        self.account_free();
        if let Some(m) = self.mirror.get() {
            m.shadow(seg, false);
        }
        Ok(())
    }

    /// Mirrors a master's segment state change. A mirror keeps no free
    /// list of its own: it is never allocated directly.
    fn shadow(&self, seg: SegIndex, used: bool) {
        {
            let mut s = self.segments.lock().unwrap_or_else(|e| e.into_inner());
            s.in_use[seg as usize] = used;
        }
        if used {
            self.account_alloc();
        } else {
            self.release_pages(seg);
            self.account_free();
        }
    }

    /// Gives free segment `seg`'s pages back to the system (a hole punched
    /// in the memfd: it reads as zeros when next allocated) — except in a
    /// pinned region, and in one sealed against writes (the kernel refuses
    /// the punch there; such regions are small and go whole at teardown).
    fn release_pages(&self, seg: SegIndex) {
        let Some(fd) = &self.memfd else { return };
        if self.pinned.load(Ordering::Acquire) || self.params.flags.contains(RegionFlags::UREADONLY)
        {
            return;
        }
        let size = self.geom.seg_size;
        if let Err(e) = fd.punch_hole(seg as usize * size, size) {
            tracing::warn!(region = %self.name, segment = seg, error = %e, "pages of a free segment kept");
        }
    }

    /// Marks the region as registered with the kernel as a UMEM, which pins
    /// its pages: emptied segments keep them from now on.
    pub(crate) fn pin(&self) {
        self.pinned.store(true, Ordering::Release);
    }

    /// Bytes of memory the region's memfd holds now (0 for a guard).
    pub fn resident(&self) -> u64 {
        self.memfd
            .as_ref()
            .and_then(|m| m.resident().ok())
            .unwrap_or(0)
    }

    fn account_alloc(&self) {
        self.seg_allocs.fetch_add(1, Ordering::Relaxed);
        self.segs_in_use.fetch_add(1, Ordering::Relaxed);
    }

    fn account_free(&self) {
        self.seg_frees.fetch_add(1, Ordering::Relaxed);
        self.segs_in_use.fetch_sub(1, Ordering::Relaxed);
    }

    /// Claims the region for a cache (a region backs at most one).
    pub(crate) fn claim_for_cache(&self) -> bool {
        !self.is_mirror.load(Ordering::Acquire) && !self.has_cache.swap(true, Ordering::AcqRel)
    }

    /// Maps the whole region again, with the protection `view` gets
    /// (guards: none; UREADONLY to a mapper and KREADONLY to the owner:
    /// read-only). The mapping is independent of the owner's view and is
    /// unmapped when dropped.
    pub fn map_view(&self, view: View) -> Result<Mapping> {
        let prot = self.protection(view);
        match &self.memfd {
            None => Ok(Mapping::inaccessible(self.size())?),
            Some(fd) => Ok(Mapping::shared(fd.as_fd(), self.size(), prot)?),
        }
    }

    /// The protection a view of this region gets.
    pub fn protection(&self, view: View) -> Protection {
        let f = self.params.flags;
        if f.contains(RegionFlags::GUARD) {
            Protection::None
        } else if (view == View::User && f.contains(RegionFlags::UREADONLY))
            || (view == View::Owner && f.contains(RegionFlags::KREADONLY))
        {
            Protection::Read
        } else {
            Protection::ReadWrite
        }
    }

    /// The backing memfd (absent for guards), to map into a span or send to
    /// another process.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        self.memfd.as_ref().map(|m| m.as_fd())
    }

    /// The owner's address of object `index`.
    pub fn obj_ptr(&self, index: u32) -> Result<*mut u8> {
        if index >= self.geom.obj_count {
            return Err(RegionError::ObjectOutOfRange {
                region: self.id(),
                index,
                count: self.geom.obj_count,
            });
        }
        // Plain arithmetic, no dereference: index < obj_count, so the offset is inside
        // the owner's view (obj_count * obj_size <= size()).
        Ok(self
            .owner_view
            .as_ptr()
            .wrapping_add(index as usize * self.geom.obj_size))
    }

    /// Start of the owner's view.
    pub fn base(&self) -> *mut u8 {
        self.owner_view.as_ptr()
    }

    /// The region's id.
    pub fn id(&self) -> RegionId {
        self.params.id
    }

    /// `OWNER.id`, e.g. `nexus.veth0.buf_def`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The region's uuid.
    pub fn uuid(&self) -> uuid::Uuid {
        self.uuid
    }

    /// The parameters it was created with.
    pub fn params(&self) -> &RegionParams {
        &self.params
    }

    /// Its configured geometry.
    pub fn geometry(&self) -> &RegionGeometry {
        &self.geom
    }

    /// Flags, including MIRRORED once paired as a mirror.
    pub fn flags(&self) -> RegionFlags {
        let mut f = self.params.flags;
        if self.is_mirror.load(Ordering::Acquire) {
            f |= RegionFlags::MIRRORED;
        }
        f
    }

    /// Is this a guard region?
    pub fn is_guard(&self) -> bool {
        self.params.flags.contains(RegionFlags::GUARD)
    }

    /// The mirror paired with this master, if any.
    pub fn mirror_region(&self) -> Option<&Arc<Region>> {
        self.mirror.get()
    }

    /// Total size in bytes: the objects' (the geometry's), or for a
    /// [`RegionFlags::HUGETLB`] region that rounded up to whole huge pages.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Segments currently in use.
    pub fn segs_in_use(&self) -> u64 {
        self.segs_in_use.load(Ordering::Relaxed)
    }

    /// Bytes of the segments in use.
    pub fn mem_inuse(&self) -> usize {
        self.segs_in_use() as usize * self.geom.seg_size
    }

    /// A snapshot of the region's statistics.
    pub fn stats(&self) -> RegionStats {
        RegionStats {
            name: self.name.clone(),
            uuid: self.uuid,
            id: self.id(),
            flags: self.flags(),
            seg_size_requested: self.params.seg_size,
            seg_size: self.geom.seg_size,
            seg_count: self.geom.seg_count,
            objs_per_seg: self.geom.objs_per_seg,
            obj_size_requested: self.params.obj_size,
            obj_size: self.geom.obj_size,
            obj_count_requested: self.params.obj_count,
            obj_count: self.geom.obj_count,
            align: self.geom.align,
            max_frags: self.params.max_frags,
            mem_total: self.size(),
            mem_inuse: self.mem_inuse(),
            segs_in_use: self.segs_in_use(),
            seg_allocs: self.seg_allocs.load(Ordering::Relaxed),
            seg_frees: self.seg_frees.load(Ordering::Relaxed),
        }
    }
}

/// Region statistics, as Skywalk's `kern.skywalk.stats.region` exports them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RegionStats {
    /// `OWNER.id`.
    pub name: String,
    /// The region's uuid.
    pub uuid: uuid::Uuid,
    /// Which region.
    pub id: RegionId,
    /// Flags (mode).
    pub flags: RegionFlags,
    /// Requested segment size (0 = default).
    pub seg_size_requested: usize,
    /// Configured segment size.
    pub seg_size: usize,
    /// Number of segments.
    pub seg_count: u32,
    /// Objects per segment.
    pub objs_per_seg: u32,
    /// Requested object size.
    pub obj_size_requested: usize,
    /// Configured object size.
    pub obj_size: usize,
    /// Requested object count.
    pub obj_count_requested: usize,
    /// Configured object count.
    pub obj_count: u32,
    /// Object alignment.
    pub align: usize,
    /// Most buffers per packet.
    pub max_frags: u16,
    /// Bytes in all segments.
    pub mem_total: usize,
    /// Bytes in segments in use.
    pub mem_inuse: usize,
    /// Segments in use.
    pub segs_in_use: u64,
    /// Segment allocations so far.
    pub seg_allocs: u64,
    /// Segment frees so far.
    pub seg_frees: u64,
}
