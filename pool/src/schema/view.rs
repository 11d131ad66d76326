//! The mapper's side: bytes from another process, checked field by field
//! and decoded, never trusted and never a panic.

use super::*;

/// A validated schema, borrowed from the bytes it was parsed from.
///
/// ```
/// use skmem::arena::{Arena, NexusParams};
/// use skmem::region::RegionId;
/// use skmem::schema::SchemaView;
///
/// let mut p = NexusParams::new("doc");
/// p.pool.packets = 256;
/// let arena = Arena::create_nexus(&p)?;
/// let mapping = arena.map()?;
/// // A mapper copies the schema out of the span, then trusts nothing in it.
/// let (_, len) = mapping.region(RegionId::Schema).unwrap();
/// let mut bytes = vec![0; len];
/// mapping.read_region(RegionId::Schema, 0, &mut bytes)?;
/// let schema = SchemaView::parse(&bytes, mapping.size() as u64)?;
/// let bufs = schema.region(RegionId::BufDef).unwrap();
/// assert_eq!(bufs.offset as usize, arena.region_offset(RegionId::BufDef));
/// assert!(SchemaView::parse(&bytes[..10], mapping.size() as u64).is_err());
/// # Ok::<(), skmem::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct SchemaView<'a> {
    version: u32,
    kind: SchemaArenaKind,
    name: &'a str,
    span_size: u64,
    rings: [Option<RingInfo>; RingKind::COUNT],
    /// Exactly `region_count` entries, each already validated.
    entries: &'a [u8],
    /// Exactly `worker_count` worker entries, each already validated.
    workers: &'a [u8],
    generation: u64,
}

impl<'a> SchemaView<'a> {
    /// Parses and validates untrusted schema bytes, for a span of
    /// `span_size` bytes. `bytes` may be longer than the schema (the whole
    /// SCHEMA page, say); the rest is ignored. Never panics.
    pub fn parse(bytes: &'a [u8], span_size: u64) -> Result<Self, SchemaError> {
        let h = SchemaHeader::read(bytes).ok_or(SchemaError::TooShortForHeader {
            len: bytes.len(),
            needed: HEADER_SIZE,
        })?;
        check_format(&h)?;
        let (count, worker_count) = counts(&h)?;
        let short = SchemaError::TooShortForEntries {
            len: bytes.len(),
            total_size: h.total_size,
        };
        let entries = bytes
            .get(HEADER_SIZE..schema_size(count, 0))
            .ok_or(short.clone())?;
        let workers = bytes
            .get(schema_size(count, 0)..schema_size(count, worker_count))
            .ok_or(short)?;
        if h.span_size != span_size {
            return Err(SchemaError::SpanSizeMismatch {
                found: h.span_size,
                expected: span_size,
            });
        }
        if !h.generation.is_multiple_of(2) {
            return Err(SchemaError::BeingRewritten {
                generation: h.generation,
            });
        }
        let name_at = offset_of!(SchemaHeader, name);
        let name = parse_name(bytes.get(name_at..name_at + NAME_FIELD).unwrap_or(&[]))?;
        let kind = SchemaArenaKind::try_from(h.arena_kind)?;

        let mut rings = [None; RingKind::COUNT];
        for ((slot, raw), ring) in rings.iter_mut().zip(&h.rings).zip(RingKind::ALL) {
            *slot = parse_ring(ring, raw, span_size)?;
        }

        let mut previous: Option<RegionEntryInfo> = None;
        for (index, chunk) in entries.chunks_exact(ENTRY_SIZE).enumerate() {
            // chunks_exact over a whole number of entries: always decodes.
            let raw = RegionEntry::read(chunk).unwrap_or_default();
            let entry = parse_region(index, &raw, previous.as_ref(), span_size)?;
            previous = Some(entry);
        }
        for (slot, chunk) in (0u32..).zip(workers.chunks_exact(WORKER_SIZE)) {
            let raw = WorkerEntry::read(chunk).unwrap_or_default();
            parse_worker(slot, &raw, span_size)?;
        }

        Ok(Self {
            version: h.version,
            kind,
            name,
            span_size,
            rings,
            entries,
            workers,
            generation: h.generation,
        })
    }

    /// The header's `total_size` field, unchecked: how many bytes a copy of
    /// the schema needs (`None` for bytes shorter than a header). For
    /// copying only; [`parse`](Self::parse) checks it.
    pub fn total_size_of(bytes: &[u8]) -> Option<usize> {
        u32::get(bytes, offset_of!(SchemaHeader, total_size)).map(|t| t as usize)
    }

    /// The layout version: [`SCHEMA_VERSION`].
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The arena's kind.
    pub fn kind(&self) -> SchemaArenaKind {
        self.kind
    }

    /// The sequence lock's count the schema was written with.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The arena's name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Bytes of the whole span.
    pub fn span_size(&self) -> u64 {
        self.span_size
    }

    /// Bytes the schema occupies: header plus entries.
    pub fn total_size(&self) -> usize {
        HEADER_SIZE
            .saturating_add(self.entries.len())
            .saturating_add(self.workers.len())
    }

    /// The worker slots' rings, by slot, decoded.
    pub fn workers(&self) -> impl Iterator<Item = WorkerRings> + 'a {
        let span_size = self.span_size;
        // Every entry was validated by `parse`, so none is skipped.
        self.workers
            .chunks_exact(WORKER_SIZE)
            .filter_map(WorkerEntry::read)
            .filter_map(move |w| parse_worker(0, &w, span_size).ok())
    }

    /// Number of regions in the span.
    pub fn region_count(&self) -> usize {
        self.entries.len() / ENTRY_SIZE
    }

    /// The regions, in increasing id and offset order, decoded.
    pub fn regions(&self) -> impl Iterator<Item = RegionEntryInfo> + 'a {
        // Every entry was validated by `parse`, so none is skipped.
        self.entries
            .chunks_exact(ENTRY_SIZE)
            .filter_map(RegionEntry::read)
            .filter_map(|e| RegionEntryInfo::from_checked_entry(&e))
    }

    /// The region `id`, if it is in the span.
    pub fn region(&self, id: RegionId) -> Option<RegionEntryInfo> {
        self.regions().find(|r| r.id == id)
    }

    /// The ring of kind `kind`, if present.
    pub fn ring(&self, kind: RingKind) -> Option<RingInfo> {
        self.rings.get(kind.index()).copied().flatten()
    }

    /// An owned copy of everything the schema says.
    pub fn to_info(&self) -> SchemaInfo {
        SchemaInfo {
            kind: self.kind,
            name: self.name.to_owned(),
            span_size: self.span_size,
            regions: self.regions().collect(),
            rings: self.rings,
            generation: self.generation,
            workers: self.workers().collect(),
        }
    }
}

/// The name up to its NUL; the rest of the field must be NUL too, so the
/// field has one encoding.
pub(super) fn parse_name(field: &[u8]) -> Result<&str, SchemaError> {
    let nul = field
        .iter()
        .position(|&b| b == 0)
        .ok_or(SchemaError::NameNotTerminated)?;
    let (name, padding) = field
        .split_at_checked(nul)
        .ok_or(SchemaError::NameNotTerminated)?;
    if let Some(p) = padding.iter().position(|&b| b != 0) {
        return Err(SchemaError::NameNotNulPadded {
            at: nul.saturating_add(p),
        });
    }
    std::str::from_utf8(name).map_err(|e| SchemaError::NameNotUtf8 {
        valid_up_to: e.valid_up_to(),
    })
}

pub(super) fn parse_ring(
    ring: RingKind,
    raw: &RingEntry,
    span_size: u64,
) -> Result<Option<RingInfo>, SchemaError> {
    match raw.present {
        0 if *raw == RingEntry::ABSENT => return Ok(None),
        0 => return Err(SchemaError::AbsentRingNotZeroed { ring }),
        1 => {}
        found => return Err(SchemaError::RingPresenceInvalid { ring, found }),
    }
    if raw.reserved != 0 {
        return Err(SchemaError::RingReservedNotZero {
            ring,
            found: raw.reserved,
        });
    }
    if !raw.entries.is_power_of_two() {
        return Err(SchemaError::RingEntriesNotPowerOfTwo {
            ring,
            entries: raw.entries,
        });
    }
    for (field, offset) in [
        ("producer", raw.producer),
        ("consumer", raw.consumer),
        ("flags", raw.flags),
    ] {
        if offset
            .checked_add(RING_INDEX_BYTES)
            .is_none_or(|end| end > span_size)
        {
            return Err(SchemaError::RingIndexOutsideSpan {
                ring,
                field,
                offset,
                span_size,
            });
        }
        // The indices are u32s a mapper accesses atomically.
        if !is_aligned(offset, 4) {
            return Err(SchemaError::RingMisaligned {
                ring,
                field,
                offset,
                align: 4,
            });
        }
    }
    if raw.desc_size == 0 {
        return Err(SchemaError::RingDescSizeZero { ring });
    }
    // Descriptors hold u64 addresses.
    if !is_aligned(raw.desc, 8) {
        return Err(SchemaError::RingMisaligned {
            ring,
            field: "desc",
            offset: raw.desc,
            align: 8,
        });
    }
    // u32 × u32 always fits a u64; only the addition can overflow.
    let array = u64::from(raw.entries) * u64::from(raw.desc_size);
    if raw
        .desc
        .checked_add(array)
        .is_none_or(|end| end > span_size)
    {
        return Err(SchemaError::RingDescriptorsOutsideSpan {
            ring,
            desc: raw.desc,
            entries: raw.entries,
            desc_size: raw.desc_size,
            span_size,
        });
    }
    Ok(Some(RingInfo {
        entries: raw.entries,
        producer: raw.producer,
        consumer: raw.consumer,
        desc: raw.desc,
        flags: raw.flags,
        desc_size: raw.desc_size,
    }))
}

/// A worker slot's entry: both rings present, valid, with 16-byte
/// descriptors.
pub(super) fn parse_worker(
    slot: u32,
    raw: &WorkerEntry,
    span_size: u64,
) -> Result<WorkerRings, SchemaError> {
    let ring = |kind, raw: &RingEntry| -> Result<RingInfo, SchemaError> {
        let wrap = |source| SchemaError::WorkerRing {
            slot,
            source: Box::new(source),
        };
        let info = parse_ring(kind, raw, span_size)
            .map_err(wrap)?
            .ok_or(SchemaError::WorkerRingAbsent { slot })?;
        if info.desc_size != 16 {
            return Err(wrap(SchemaError::RingDescSizeMismatch {
                ring: kind,
                found: info.desc_size,
                expected: 16,
            }));
        }
        Ok(info)
    };
    Ok(WorkerRings {
        to_worker: ring(RingKind::Rx, &raw.to_worker)?,
        from_worker: ring(RingKind::Tx, &raw.from_worker)?,
    })
}
/// The header names this format: magic, version, and the sizes of the
/// header and its entries.
fn check_format(h: &SchemaHeader) -> Result<(), SchemaError> {
    if h.magic != SCHEMA_MAGIC {
        return Err(SchemaError::BadMagic { found: h.magic });
    }
    if h.version != SCHEMA_VERSION {
        return Err(SchemaError::UnsupportedVersion {
            found: h.version,
            supported: SCHEMA_VERSION,
        });
    }
    if h.header_size != HEADER_SIZE_U32 {
        return Err(SchemaError::HeaderSizeMismatch {
            found: h.header_size,
            expected: HEADER_SIZE_U32,
        });
    }
    if h.entry_size != ENTRY_SIZE_U32 {
        return Err(SchemaError::EntrySizeMismatch {
            found: h.entry_size,
            expected: ENTRY_SIZE_U32,
        });
    }
    if h.worker_entry_size != WORKER_SIZE_U32 {
        return Err(SchemaError::WorkerEntrySizeMismatch {
            found: h.worker_entry_size,
            expected: WORKER_SIZE_U32,
        });
    }
    Ok(())
}

/// The counts of region and worker entries, each within its bound, and the
/// total size they make.
fn counts(h: &SchemaHeader) -> Result<(usize, usize), SchemaError> {
    let count = usize::try_from(h.region_count)
        .ok()
        .filter(|&n| n <= RegionId::COUNT)
        .ok_or(SchemaError::TooManyRegions {
            count: u64::from(h.region_count),
            max: RegionId::COUNT,
        })?;
    let worker_count = usize::try_from(h.worker_count)
        .ok()
        .filter(|&n| n <= SCHEMA_MAX_WORKERS)
        .ok_or(SchemaError::TooManyWorkers {
            count: u64::from(h.worker_count),
            max: SCHEMA_MAX_WORKERS,
        })?;
    // At most the largest schema, which fits u32 (asserted above).
    let expected = u32::try_from(schema_size(count, worker_count)).unwrap_or(u32::MAX);
    if h.total_size != expected {
        return Err(SchemaError::TotalSizeMismatch {
            found: h.total_size,
            region_count: h.region_count,
            expected,
        });
    }
    Ok((count, worker_count))
}

pub(super) fn parse_region(
    index: usize,
    raw: &RegionEntry,
    previous: Option<&RegionEntryInfo>,
    span_size: u64,
) -> Result<RegionEntryInfo, SchemaError> {
    let id = usize::try_from(raw.id)
        .ok()
        .and_then(RegionId::from_index)
        .ok_or(SchemaError::UnknownRegionId { index, id: raw.id })?;
    if !id.is_user_mappable() {
        return Err(SchemaError::RegionNotMappable { index, id });
    }
    if let Some(p) = previous {
        if id == p.id {
            return Err(SchemaError::DuplicateRegion { index, id });
        }
        if id < p.id {
            return Err(SchemaError::RegionsOutOfOrder {
                index,
                id,
                previous: p.id,
            });
        }
    }
    let flags = RegionFlags::from_bits(raw.flags).ok_or(SchemaError::UnknownRegionFlags {
        id,
        bits: raw.flags & !RegionFlags::all().bits(),
    })?;
    if !flags.contains(RegionFlags::MMAPOK) {
        return Err(SchemaError::RegionNotMmapOk { id, flags });
    }
    let guard = flags.contains(RegionFlags::GUARD);
    if guard != id.is_guard() {
        return Err(SchemaError::GuardFlagMismatch { id, flags });
    }
    let (offset, size) = (raw.offset, raw.size);
    check_placement(id, offset, size, previous, span_size)?;
    if guard {
        // A guard is whole PROT_NONE pages: its object fields mean nothing,
        // but an empty guard would guard nothing.
        if size == 0 {
            return Err(SchemaError::EmptyGuard { id });
        }
    } else {
        check_objects(id, raw, flags)?;
    }
    Ok(RegionEntryInfo {
        id,
        flags,
        offset,
        size,
        obj_size: raw.obj_size,
        obj_count: raw.obj_count,
        seg_count: raw.seg_count,
        seg_size: raw.seg_size,
        uuid: raw.uuid,
    })
}

/// A region entry's bytes lie inside the span, after the previous entry's.
fn check_placement(
    id: RegionId,
    offset: u64,
    size: u64,
    previous: Option<&RegionEntryInfo>,
    span_size: u64,
) -> Result<(), SchemaError> {
    let end = offset
        .checked_add(size)
        .ok_or(SchemaError::RegionEndOverflows { id, offset, size })?;
    if end > span_size {
        return Err(SchemaError::RegionOutsideSpan {
            id,
            offset,
            size,
            span_size,
        });
    }
    if let Some(p) = previous {
        // `p` passed these checks, so its end does not overflow.
        let previous_end = p.end().unwrap_or(u64::MAX);
        if offset < previous_end {
            return Err(SchemaError::RegionsOverlap {
                id,
                offset,
                previous: p.id,
                previous_end,
            });
        }
    }
    Ok(())
}

/// A data region's objects fit it, and its segments cover it (whole huge
/// pages, on a huge page, for a HUGETLB region).
fn check_objects(id: RegionId, raw: &RegionEntry, flags: RegionFlags) -> Result<(), SchemaError> {
    let size = raw.size;
    let offset = raw.offset;
    if raw
        .obj_size
        .checked_mul(u64::from(raw.obj_count))
        .is_none_or(|bytes| bytes > size)
    {
        return Err(SchemaError::ObjectsExceedRegion {
            id,
            obj_size: raw.obj_size,
            obj_count: raw.obj_count,
            size,
        });
    }
    // A huge-page region is its segments rounded up to whole huge
    // pages, on a huge page in the span.
    let huge = flags.contains(RegionFlags::HUGETLB);
    let page = crate::sys::HUGE_PAGE_SIZE as u64;
    if huge && (!offset.is_multiple_of(page) || !size.is_multiple_of(page)) {
        return Err(SchemaError::HugeRegionMisplaced { id, offset, size });
    }
    let covered = raw.seg_size.checked_mul(u64::from(raw.seg_count)).map(|b| {
        if huge {
            b.next_multiple_of(page)
        } else {
            b
        }
    });
    if covered != Some(size) {
        return Err(SchemaError::SegmentsDoNotCoverRegion {
            id,
            seg_size: raw.seg_size,
            seg_count: raw.seg_count,
            size,
        });
    }
    Ok(())
}
