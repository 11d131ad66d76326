//! Region parameters and how they are rounded into a geometry.
//!
//! Skywalk's rules, kept here: objects are cache-line aligned (guards are
//! whole pages); a segment is a multiple of both the page size and the
//! object size, so objects never straddle segments and object `i` sits at
//! byte `i * obj_size`; MONOLITHIC means a single segment holding every
//! object; regions whose caches use magazines get extra objects so that
//! objects parked in magazines can never starve the rings.

use super::{RegionError, RegionFlags, RegionId, Result};
use crate::sys::page_size;
use crate::util::magazine_rounds_for;

/// Objects are aligned to (and sized in multiples of) this many bytes.
pub const CACHE_LINE: usize = 64;
/// Default segment size when the caller leaves it at 0 (Skywalk's 32 KiB).
pub const DEFAULT_SEG_SIZE: usize = 32 * 1024;
/// Largest segment a region may have.
pub const MAX_SEG_SIZE: usize = 64 * 1024 * 1024;
/// Largest object a region may hold.
pub const MAX_OBJ_SIZE: usize = 16 * 1024 * 1024;
/// Largest number of buffers one packet may chain (buflets).
pub const MAX_FRAGS: u16 = 64;
/// Largest total size of one region.
pub const MAX_REGION_SIZE: usize = 1 << 40;

/// What a creator asks of a region.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RegionParams {
    /// Which region this is.
    pub id: RegionId,
    /// Requested object size in bytes (rounded up to [`CACHE_LINE`]).
    pub obj_size: usize,
    /// Requested object count (rounded up to whole segments).
    pub obj_count: usize,
    /// Requested segment size; 0 picks [`DEFAULT_SEG_SIZE`], or less when
    /// the whole region is smaller.
    pub seg_size: usize,
    /// Flags.
    pub flags: RegionFlags,
    /// Most buffers one packet may chain (only meaningful for metadata).
    pub max_frags: u16,
    /// Object alignment; 0 means a cache line ([`CACHE_LINE`]). Smaller
    /// alignments (a power of two, at least 8) pack small objects tighter
    /// at the price of objects sharing cache lines.
    pub align: usize,
    /// Worker slots the region's cache will have; with magazines, each may
    /// park up to two magazines of objects, which the region adds on top of
    /// `obj_count`. 0 means one per CPU.
    pub workers: usize,
}

impl RegionParams {
    /// Parameters for `id` with Skywalk's template flags, `count` objects of
    /// `size` bytes, the default segment size and one fragment per packet.
    pub fn new(id: RegionId, size: usize, count: usize) -> Self {
        Self {
            id,
            obj_size: size,
            obj_count: count,
            seg_size: 0,
            flags: RegionFlags::template(id),
            max_frags: 1,
            align: 0,
            workers: 0,
        }
    }

    /// Replaces the flags.
    pub fn with_flags(mut self, flags: RegionFlags) -> Self {
        self.flags = flags;
        self
    }

    /// Replaces the requested segment size.
    pub fn with_seg_size(mut self, seg_size: usize) -> Self {
        self.seg_size = seg_size;
        self
    }

    /// Replaces the number of worker slots the region's cache will have.
    pub fn with_workers(mut self, workers: usize) -> Self {
        self.workers = workers;
        self
    }

    /// Replaces the object alignment (0 = a cache line).
    pub fn with_align(mut self, align: usize) -> Self {
        self.align = align;
        self
    }

    /// Replaces the fragment limit.
    pub fn with_max_frags(mut self, max_frags: u16) -> Self {
        self.max_frags = max_frags;
        self
    }

    fn invalid(&self, rule: &'static str) -> RegionError {
        RegionError::InvalidParams {
            region: self.id,
            rule,
        }
    }

    /// Checks every rule and rounds the request into a geometry.
    pub fn configure(&self) -> Result<RegionGeometry> {
        self.check_flags()?;
        self.check_sizes()?;
        let page = page_size();
        if self.align != 0 && (!self.align.is_power_of_two() || self.align < 8 || self.align > page)
        {
            return Err(self.invalid("alignment must be a power of two from 8 to the page size"));
        }
        let align = if self.flags.contains(RegionFlags::GUARD) {
            page
        } else if self.align != 0 {
            self.align
        } else {
            CACHE_LINE
        };
        let obj_size = self.obj_size.next_multiple_of(align);
        // The smallest segment that is a whole number of pages and of objects.
        let unit = lcm(page, obj_size);
        if unit > MAX_SEG_SIZE {
            return Err(self.invalid(
                "no segment of at most 64 MiB is a multiple of both the page size and this object size",
            ));
        }
        let want = self.objects_wanted(obj_size)?;
        self.round(want, obj_size, unit, align)
    }

    /// The flag rules: which flags go with which regions, and together.
    fn check_flags(&self) -> Result<()> {
        let f = self.flags;
        if f.contains(RegionFlags::MIRRORED) {
            return Err(self.invalid(
                "MIRRORED is set by Region::mirror when paired with its master, not by the creator",
            ));
        }
        if f.contains(RegionFlags::MMAPOK) && !self.id.is_user_mappable() {
            return Err(self.invalid("an owner-private region cannot be MMAPOK"));
        }
        if f.contains(RegionFlags::UREADONLY) && !f.contains(RegionFlags::MMAPOK) {
            return Err(
                self.invalid("UREADONLY needs MMAPOK: only a mappable region has a user view")
            );
        }
        if f.contains(RegionFlags::GUARD) != self.id.is_guard() {
            return Err(self.invalid(
                "GUARD is for the GUARD_HEAD and GUARD_TAIL regions, and they must have it",
            ));
        }
        if f.contains(RegionFlags::GUARD) {
            if !f.contains(RegionFlags::NOREDIRECT) {
                return Err(self.invalid("a GUARD region must be NOREDIRECT"));
            }
            if f.intersects(RegionFlags::SHAREOK | RegionFlags::UREADONLY | RegionFlags::KREADONLY)
            {
                return Err(self
                    .invalid("a GUARD region holds no data: no SHAREOK, UREADONLY or KREADONLY"));
            }
        }
        Ok(())
    }

    /// The size rules: counts and sizes within Skywalk's limits.
    fn check_sizes(&self) -> Result<()> {
        if self.obj_count == 0 {
            return Err(self.invalid("object count is 0 (an empty region is not created at all)"));
        }
        if self.obj_size == 0 {
            return Err(self.invalid("object size is 0"));
        }
        if self.obj_size > MAX_OBJ_SIZE {
            return Err(self.invalid("object size exceeds 16 MiB"));
        }
        if self.max_frags == 0 || self.max_frags > MAX_FRAGS {
            return Err(self.invalid("max_frags must be in 1..=64"));
        }
        if self.seg_size > MAX_SEG_SIZE {
            return Err(self.invalid("segment size exceeds 64 MiB"));
        }
        Ok(())
    }

    /// Objects to make room for: those asked, plus what every worker's
    /// two magazines may hold parked, so the count asked stays allocatable
    /// while magazines are full (none for a region without magazines).
    fn objects_wanted(&self, obj_size: usize) -> Result<usize> {
        let f = self.flags;
        let reserve = if f.contains(RegionFlags::NOMAGAZINES) || f.contains(RegionFlags::GUARD) {
            0
        } else {
            let workers = if self.workers == 0 {
                default_workers()
            } else {
                self.workers
            };
            workers * 2 * magazine_rounds_for(obj_size)
        };
        self.obj_count
            .checked_add(reserve)
            .filter(|&n| {
                n.checked_mul(obj_size)
                    .is_some_and(|b| b <= MAX_REGION_SIZE)
            })
            .ok_or_else(|| self.invalid("object count × object size exceeds 1 TiB"))
    }

    /// `want` objects of `obj_size` in whole segments of `unit`s.
    fn round(
        &self,
        want: usize,
        obj_size: usize,
        unit: usize,
        align: usize,
    ) -> Result<RegionGeometry> {
        let f = self.flags;
        // Everything at once, in whole units: the segment of a MONOLITHIC or
        // GUARD region, and the cap on a default segment (a small region
        // does not need a whole default segment).
        let whole = (want * obj_size).next_multiple_of(unit);
        let seg_size = if f.intersects(RegionFlags::MONOLITHIC | RegionFlags::GUARD) {
            whole
        } else if self.seg_size == 0 {
            DEFAULT_SEG_SIZE.next_multiple_of(unit).min(whole)
        } else {
            self.seg_size.next_multiple_of(unit)
        };
        if seg_size > MAX_SEG_SIZE && f.contains(RegionFlags::MONOLITHIC) {
            return Err(self.invalid("a MONOLITHIC region's single segment would exceed 64 MiB"));
        }
        let objs_per_seg = seg_size / obj_size;
        let seg_count = want.div_ceil(objs_per_seg);
        let obj_count = seg_count * objs_per_seg;
        if obj_count > u32::MAX as usize || seg_count > u32::MAX as usize {
            return Err(self.invalid("more than 2^32-1 objects"));
        }
        Ok(RegionGeometry {
            obj_size,
            obj_count: obj_count as u32,
            seg_size,
            seg_count: seg_count as u32,
            objs_per_seg: objs_per_seg as u32,
            align,
        })
    }
}

/// A region's configured shape: what [`RegionParams::configure`] made of a
/// request. Object `i` lives at byte `i * obj_size` of the region, in
/// segment `i / objs_per_seg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RegionGeometry {
    /// Configured object size (≥ requested, a multiple of `align`).
    pub obj_size: usize,
    /// Configured object count (≥ requested, whole segments).
    pub obj_count: u32,
    /// Configured segment size: a multiple of the page size and `obj_size`.
    pub seg_size: usize,
    /// Number of segments.
    pub seg_count: u32,
    /// Objects in one segment.
    pub objs_per_seg: u32,
    /// Object alignment.
    pub align: usize,
}

impl RegionGeometry {
    /// Total bytes of the region.
    pub fn size(&self) -> usize {
        self.seg_size * self.seg_count as usize
    }
}

/// Worker slots per cache when the creator does not say: one per CPU.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

impl RegionParams {
    /// These parameters, changed by `f`: how to set a few fields, the
    /// struct being `#[non_exhaustive]` (a field added later is not a
    /// breaking change) — `RegionParams::new(RegionId::BufDef, 2048, 1024).with(|p| p.align = 64)`.
    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_of(p: &RegionParams) -> &'static str {
        match p.configure() {
            Err(RegionError::InvalidParams { region, rule }) => {
                assert_eq!(region, p.id);
                rule
            }
            other => panic!("expected RegionError::InvalidParams, got {other:?}"),
        }
    }

    #[test]
    fn buffers_round_to_whole_segments_of_pages_and_objects() {
        let g = RegionParams::new(RegionId::BufDef, 2048, 4096)
            .configure()
            .unwrap();
        assert_eq!(g.obj_size, 2048);
        assert_eq!(g.seg_size, DEFAULT_SEG_SIZE);
        assert_eq!(g.objs_per_seg, 16);
        assert_eq!(g.obj_count, 4096);
        assert_eq!(g.seg_count, 256);
        assert_eq!(g.size(), 4096 * 2048);
    }

    #[test]
    fn odd_object_sizes_are_cache_line_aligned_and_divide_the_segment() {
        let g = RegionParams::new(RegionId::Ring, 100, 10)
            .configure()
            .unwrap();
        assert_eq!(g.obj_size, 128);
        assert_eq!(g.seg_size % page_size(), 0);
        assert_eq!(g.seg_size % g.obj_size, 0);
        assert!(g.obj_count >= 10);

        let g = RegionParams::new(RegionId::Ring, 192, 1000)
            .configure()
            .unwrap();
        assert_eq!(g.obj_size, 192);
        assert_eq!(g.seg_size % 192, 0);
        assert_eq!(g.seg_size % page_size(), 0);
        assert_eq!(g.obj_count, g.seg_count * g.objs_per_seg);
    }

    #[test]
    fn monolithic_is_one_segment() {
        let g = RegionParams::new(RegionId::Schema, 4096, 1)
            .configure()
            .unwrap();
        assert_eq!(g.seg_count, 1);
        let g = RegionParams::new(RegionId::Sysctls, 64, 100)
            .configure()
            .unwrap();
        assert_eq!(g.seg_count, 1);
        assert!(g.obj_count >= 100);
    }

    #[test]
    fn magazine_regions_get_room_for_parked_magazines() {
        let p = RegionParams::new(RegionId::Kmd, 128, 1000).with_workers(2);
        let g = p.configure().unwrap();
        assert!(g.obj_count as usize >= 1000 + 2 * 2 * magazine_rounds_for(128));
        let g2 = p.with_flags(RegionFlags::NOMAGAZINES).configure().unwrap();
        assert!(g2.obj_count < g.obj_count);
    }

    #[test]
    fn guard_regions_are_whole_pages() {
        let g = RegionParams::new(RegionId::GuardHead, 1, 1)
            .configure()
            .unwrap();
        assert_eq!(g.obj_size, page_size());
    }

    #[test]
    fn every_broken_rule_is_named() {
        let ok = RegionParams::new(RegionId::BufDef, 2048, 64);
        let cases: Vec<(RegionParams, &str)> = vec![
            (
                ok.clone().with_flags(ok.flags | RegionFlags::MIRRORED),
                "MIRRORED",
            ),
            (
                RegionParams::new(RegionId::Kmd, 128, 8).with_flags(RegionFlags::MMAPOK),
                "owner-private",
            ),
            (
                ok.clone().with_flags(RegionFlags::UREADONLY),
                "UREADONLY needs MMAPOK",
            ),
            (
                ok.clone()
                    .with_flags(RegionFlags::GUARD | RegionFlags::NOREDIRECT),
                "GUARD is for",
            ),
            (
                RegionParams::new(RegionId::GuardTail, 4096, 1).with_flags(RegionFlags::GUARD),
                "must be NOREDIRECT",
            ),
            (
                RegionParams::new(RegionId::GuardTail, 4096, 1).with_flags(
                    RegionFlags::GUARD | RegionFlags::NOREDIRECT | RegionFlags::SHAREOK,
                ),
                "holds no data",
            ),
            (
                RegionParams {
                    obj_count: 0,
                    ..ok.clone()
                },
                "object count is 0",
            ),
            (
                RegionParams {
                    obj_size: 0,
                    ..ok.clone()
                },
                "object size is 0",
            ),
            (
                RegionParams {
                    obj_size: MAX_OBJ_SIZE + 1,
                    ..ok.clone()
                },
                "exceeds 16 MiB",
            ),
            (ok.clone().with_max_frags(0), "max_frags"),
            (ok.clone().with_align(12), "alignment"),
            (ok.clone().with_align(4), "alignment"),
            (
                RegionParams {
                    obj_size: 64,
                    obj_count: 1 << 33,
                    ..ok.clone()
                },
                "2^32-1",
            ),
            (ok.clone().with_max_frags(MAX_FRAGS + 1), "max_frags"),
            (
                ok.clone().with_seg_size(MAX_SEG_SIZE + 1),
                "segment size exceeds",
            ),
            (
                RegionParams {
                    obj_size: 4096 * 4095 + 64,
                    ..ok.clone()
                },
                "no segment of at most",
            ),
            (
                RegionParams {
                    obj_count: usize::MAX,
                    ..ok.clone()
                },
                "exceeds 1 TiB",
            ),
            (
                RegionParams::new(RegionId::Schema, 1 << 20, 128),
                "single segment would exceed",
            ),
        ];
        for (p, want) in cases {
            let rule = rule_of(&p);
            assert!(rule.contains(want), "{p:?}: rule {rule:?} lacks {want:?}");
        }
    }
}
