//! The mapper: an arena's user-mappable regions stitched into one
//! contiguous span (Skywalk's `IOSKArena`/`IOSKMapper`).
//!
//! [`SpanLayout`] is computed once, when an arena is finalized: every
//! MMAPOK region in [`RegionId`] order, each at the sum of the sizes before
//! it — so `region_offset(id)` is both Skywalk's arithmetic and the real
//! offset inside every mapping — except that a huge-page region
//! ([`RegionFlags::HUGETLB`], skmem's own) starts on the next huge page,
//! and the span's base is one. A [`Span`] reserves the whole range as
//! inaccessible memory, then maps each region over its part with
//! `MAP_FIXED`: guards stay inaccessible, UREADONLY regions are read-only.
//! Redirecting a span replaces every region without NOREDIRECT with
//! anonymous zero pages of the same protection.

use std::os::fd::AsFd;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crate::error::{Error, LendError, RegionError, Result};
use crate::region::{Region, RegionFlags, RegionGeometry, RegionId, View};
use crate::schema::{SchemaError, SchemaInfo, SchemaView, SCHEMA_GENERATION, SCHEMA_HEADER_SIZE};
use crate::sys::{Mapping, Protection, HUGE_PAGE_SIZE};

/// How long a mapper waits out the owner's rewrites of the schema before
/// giving up on a copy.
pub const SCHEMA_READ_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// One region's place in a span.
#[derive(Debug, Clone)]
pub struct SpanEntry {
    /// Which region.
    pub id: RegionId,
    /// Offset from the span's base.
    pub offset: usize,
    /// Bytes.
    pub size: usize,
    /// What a mapper may do with it.
    pub prot: Protection,
    /// Whether a redirect replaces it (no NOREDIRECT flag).
    pub redirectable: bool,
    /// The region's flags (as a mapper reads them in the schema).
    pub flags: RegionFlags,
    /// The region's geometry.
    pub geometry: RegionGeometry,
    /// The region's uuid.
    pub uuid: uuid::Uuid,
    /// The region, for its memfd, while the arena holds it: the layout
    /// does not keep a region alive, so a defunct that releases one gives
    /// its memory back.
    pub region: Weak<Region>,
}

/// Where each user-mappable region sits in a span.
#[derive(Debug, Clone, Default)]
pub struct SpanLayout {
    entries: Vec<SpanEntry>,
    size: usize,
}

impl SpanLayout {
    /// Lays out the MMAPOK regions among `regions` (indexed by id).
    pub fn new(regions: &[Option<Arc<Region>>]) -> Self {
        let mut entries = Vec::new();
        let mut offset = 0usize;
        for (i, r) in regions.iter().enumerate() {
            let Some(r) = r else { continue };
            if !r.flags().contains(RegionFlags::MMAPOK) {
                continue;
            }
            let id = RegionId::from_index(i).unwrap_or(r.id());
            // A huge-page region starts on a huge page (the span's base is
            // one too: see `Span::map`); the gap before it stays part of
            // the inaccessible reservation.
            if r.flags().contains(RegionFlags::HUGETLB) {
                offset = offset.next_multiple_of(HUGE_PAGE_SIZE);
            }
            entries.push(SpanEntry {
                id,
                offset,
                size: r.size(),
                prot: r.protection(View::User),
                redirectable: !r.flags().contains(RegionFlags::NOREDIRECT),
                flags: r.flags(),
                geometry: *r.geometry(),
                uuid: r.uuid(),
                region: Arc::downgrade(r),
            });
            offset += r.size();
        }
        Self {
            entries,
            size: offset,
        }
    }

    /// Total bytes of a span.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The regions, in span order.
    pub fn entries(&self) -> &[SpanEntry] {
        &self.entries
    }

    /// The entry for `id`, if that region is in the span.
    pub fn entry(&self, id: RegionId) -> Option<&SpanEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// What a span's base must be a multiple of: a huge page when a
    /// region sits on huge pages, else a page.
    pub fn align(&self) -> usize {
        span_align(self.entries.iter().map(|e| e.flags))
    }
}

/// The alignment of a span holding regions of `flags`: see
/// [`SpanLayout::align`].
fn span_align(mut flags: impl Iterator<Item = RegionFlags>) -> usize {
    if flags.any(|f| f.contains(RegionFlags::HUGETLB)) {
        HUGE_PAGE_SIZE
    } else {
        crate::sys::page_size()
    }
}

/// One live span in this process: the reservation plus every region mapped
/// into it. Unmapped when dropped.
#[derive(Debug)]
pub struct Span {
    reservation: Mapping,
    /// Offsets, sizes and protections of what is mapped (kept after the
    /// arena drops its regions, e.g. when defunct).
    entries: Vec<(RegionId, usize, usize, Protection, bool)>,
}

impl Span {
    /// Maps `layout` into this process.
    pub fn map(layout: &SpanLayout) -> Result<Span> {
        let reservation = Mapping::inaccessible_aligned(layout.size(), layout.align())?;
        for e in layout.entries() {
            let region = e
                .region
                .upgrade()
                .ok_or(Error::Region(RegionError::Misuse {
                    region: e.id,
                    rule: "the region was released (the arena is defunct)",
                }))?;
            if let Some(fd) = region.fd() {
                reservation.overlay_shared(e.offset, e.size, e.prot, fd)?;
            }
            // Guards have no fd: they stay part of the inaccessible
            // reservation.
        }
        Ok(Span {
            reservation,
            entries: layout
                .entries()
                .iter()
                .map(|e| (e.id, e.offset, e.size, e.prot, e.redirectable))
                .collect(),
        })
    }

    /// Overlays every redirectable region with zero pages, keeping its
    /// protection.
    pub fn redirect(&self) -> Result<()> {
        for &(_, offset, size, prot, redirectable) in &self.entries {
            if redirectable {
                self.reservation.overlay_zero(offset, size, prot)?;
            }
        }
        Ok(())
    }

    /// Base address.
    pub fn addr(&self) -> *mut u8 {
        self.reservation.as_ptr()
    }

    /// Size in bytes.
    pub fn size(&self) -> usize {
        self.reservation.len()
    }

    /// Address and size of region `id` when a mapper may read it (not a
    /// guard).
    pub fn readable(&self, id: RegionId) -> Option<(*mut u8, usize)> {
        self.entries
            .iter()
            .find(|e| e.0 == id && e.3 != Protection::None)
            .map(|&(_, off, size, ..)| (self.addr().wrapping_add(off), size))
    }

    /// A whole copy of the schema (the SCHEMA region's bytes), taken under
    /// its sequence lock: the generation is read (even), the bytes copied,
    /// the generation read again, and the copy kept only when both agree —
    /// so a rewrite by the owner (a channel binding or closing) is never
    /// caught half-way. Rewrites in progress are waited out for up to
    /// [`SCHEMA_READ_PATIENCE`]; past it (an owner that died half-way
    /// through a rewrite leaves the generation odd for good),
    /// [`SchemaError::BeingRewritten`].
    pub fn copy_schema(&self) -> Result<Vec<u8>> {
        let (base, size) =
            self.readable(RegionId::Schema)
                .ok_or(Error::Region(RegionError::Misuse {
                    region: RegionId::Schema,
                    rule: "the span has no readable schema",
                }))?;
        // SAFETY: the SCHEMA region's part of the span, mapped readable
        // while `self` lives (and this borrow of it does).
        unsafe { copy_schema_at(base, size) }
    }

    /// Builds a span from a schema a mapper was given and the memfds that
    /// came with it — the hand-over's side of [`Span::map`]: every region
    /// where the schema puts it, guards inaccessible, read-only regions
    /// read-only, each memfd checked to be as long as its region. A memfd
    /// the schema does not name, or a region without one, is refused.
    pub fn from_schema(
        schema: &SchemaInfo,
        mut fds: std::collections::HashMap<RegionId, std::os::fd::OwnedFd>,
    ) -> Result<Span> {
        let refuse = |what: String| Error::Lend(LendError::Handover { what });
        let align = span_align(schema.regions.iter().map(|r| r.flags));
        let reservation = Mapping::inaccessible_aligned(schema.span_size as usize, align)?;
        let mut entries = Vec::with_capacity(schema.regions.len());
        for r in &schema.regions {
            let (offset, size) = (r.offset as usize, r.size as usize);
            let prot = if r.flags.contains(RegionFlags::GUARD) {
                Protection::None
            } else if r.flags.contains(RegionFlags::UREADONLY) {
                Protection::Read
            } else {
                Protection::ReadWrite
            };
            match (fds.remove(&r.id), prot) {
                (None, Protection::None) => {}
                (Some(_), Protection::None) => {
                    return Err(refuse(format!("a memfd came for guard {}", r.id)))
                }
                (None, _) => return Err(refuse(format!("no memfd came for {}", r.id))),
                (Some(fd), _) => {
                    let len = rustix::fs::fstat(&fd)
                        .map_err(|e| Error::sys("fstat(lent memfd)", e))?
                        .st_size as u64;
                    if len != r.size {
                        return Err(refuse(format!(
                            "{}'s memfd is {len} bytes, the schema says {}",
                            r.id, r.size
                        )));
                    }
                    reservation.overlay_shared(offset, size, prot, fd.as_fd())?;
                }
            }
            let redirectable = !r.flags.contains(RegionFlags::NOREDIRECT);
            entries.push((r.id, offset, size, prot, redirectable));
        }
        if let Some(id) = fds.keys().next() {
            return Err(refuse(format!(
                "a memfd came for {id}, which the schema does not name"
            )));
        }
        Ok(Span {
            reservation,
            entries,
        })
    }

    /// Copies bytes of region `id` from `offset` into `out` (reads of a
    /// mapping others may write, or redirect, at any time).
    pub fn read(&self, id: RegionId, offset: usize, out: &mut [u8]) -> Result<()> {
        let (p, size) = self.readable(id).ok_or(Error::Region(RegionError::Misuse {
            region: id,
            rule: "not a readable region of this span",
        }))?;
        if offset.checked_add(out.len()).is_none_or(|e| e > size) {
            return Err(Error::Region(RegionError::Misuse {
                region: id,
                rule: "read past the end of the region",
            }));
        }
        for (i, b) in out.iter_mut().enumerate() {
            // SAFETY: p+offset+i lies inside the region's part of the span
            // (checked above), which is readable (`readable` refuses
            // guards) and stays mapped while `self` lives. Volatile: other
            // processes write shared regions at any time.
            *b = unsafe { std::ptr::read_volatile(p.add(offset + i)) };
        }
        Ok(())
    }

    /// Copies `data` into region `id` at `offset`, when the span maps the
    /// region writable.
    pub fn write(&self, id: RegionId, offset: usize, data: &[u8]) -> Result<()> {
        let (p, size) = self
            .entries
            .iter()
            .find(|e| e.0 == id && e.3 == Protection::ReadWrite)
            .map(|&(_, off, size, ..)| (self.addr().wrapping_add(off), size))
            .ok_or(Error::Region(RegionError::Misuse {
                region: id,
                rule: "not a writable region of this span",
            }))?;
        if offset.checked_add(data.len()).is_none_or(|e| e > size) {
            return Err(Error::Region(RegionError::Misuse {
                region: id,
                rule: "write past the end of the region",
            }));
        }
        for (i, &b) in data.iter().enumerate() {
            // SAFETY: p+offset+i lies inside the region's part of the span
            // (checked above), mapped read-write while `self` lives.
            unsafe { std::ptr::write_volatile(p.add(offset + i), b) };
        }
        Ok(())
    }

    /// Address and size of region `id` inside the span.
    pub fn region(&self, id: RegionId) -> Option<(*mut u8, usize)> {
        self.entries
            .iter()
            .find(|e| e.0 == id)
            .map(|&(_, off, size, ..)| (self.addr().wrapping_add(off), size))
    }
}

/// A whole copy of the schema at `base` (`size` bytes, the SCHEMA region's
/// object), taken under its sequence lock: see [`Span::copy_schema`].
///
/// # Safety
/// `base..base+size` must be mapped readable for the call's duration.
pub(crate) unsafe fn copy_schema_at(base: *const u8, size: usize) -> Result<Vec<u8>> {
    let words = size / 8;
    if words * 8 < SCHEMA_GENERATION + 8 || !(base as usize).is_multiple_of(8) {
        return Err(Error::Region(RegionError::Misuse {
            region: RegionId::Schema,
            rule: "the schema region is too small for a schema",
        }));
    }
    let word = |i: usize| {
        // SAFETY: `i < words`, so the word lies inside `base..base+size`,
        // mapped readable (the caller's contract), and 8-aligned (checked).
        // An atomic load: the owner rewrites these words with atomic
        // stores, so the two never race.
        unsafe { AtomicU64::from_ptr(base.add(i * 8).cast_mut().cast()) }
    };
    let gen = word(SCHEMA_GENERATION / 8);
    let mut copy = vec![0u8; words * 8];
    let started = std::time::Instant::now();
    let mut attempt = 0u32;
    loop {
        let before = gen.load(Ordering::Acquire);
        if before.is_multiple_of(2) {
            // The header first, then as far as its total size says
            // (bounded by the region): the rest of the page is not the
            // schema's.
            let copy_words = |copy: &mut [u8], from: usize, to: usize| {
                for i in from..to {
                    let w = word(i).load(Ordering::Relaxed).to_ne_bytes();
                    copy[i * 8..i * 8 + 8].copy_from_slice(&w);
                }
            };
            let header = SCHEMA_HEADER_SIZE.div_ceil(8).min(words);
            copy_words(&mut copy, 0, header);
            let total =
                SchemaView::total_size_of(&copy).map_or(words, |t| t.div_ceil(8).min(words));
            copy_words(&mut copy, header, total.max(header));
            fence(Ordering::Acquire);
            if gen.load(Ordering::Relaxed) == before {
                copy.truncate(total.max(header) * 8);
                return Ok(copy);
            }
        }
        attempt += 1;
        if attempt.is_multiple_of(64) {
            if started.elapsed() > SCHEMA_READ_PATIENCE {
                return Err(SchemaError::BeingRewritten { generation: before }.into());
            }
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
}
