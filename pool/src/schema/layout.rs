//! The bytes: the `#[repr(C)]` structs that document the layout (held to
//! it by compile-time assertions), and each one's field-by-field encoding
//! and decoding through byte slices.

use super::*;

/// The schema's header, at offset 0 of the SCHEMA region's object. See the
/// module documentation for the byte layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SchemaHeader {
    /// [`SCHEMA_MAGIC`].
    pub magic: [u8; 8],
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    /// `size_of::<SchemaHeader>()`: 312.
    pub header_size: u32,
    /// `size_of::<RegionEntry>()`: 64.
    pub entry_size: u32,
    /// Number of [`RegionEntry`]s following the header.
    pub region_count: u32,
    /// Bytes used: header plus entries.
    pub total_size: u32,
    /// [`SchemaArenaKind`] as a number.
    pub arena_kind: u32,
    /// Bytes of the whole span, guards included.
    pub span_size: u64,
    /// Arena name: UTF-8, NUL-terminated, NUL-padded.
    pub name: [u8; 64],
    /// The rings, in [`RingKind`] order.
    pub rings: [RingEntry; 4],
    /// The sequence lock's count: even when the schema is whole.
    pub generation: u64,
    /// Number of [`WorkerEntry`]s after the region entries.
    pub worker_count: u32,
    /// `size_of::<WorkerEntry>()`: 96.
    pub worker_entry_size: u32,
}

/// One worker slot's two rings.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WorkerEntry {
    /// Owner → worker: received packets.
    pub to_worker: RingEntry,
    /// Worker → owner: packets to send or to free.
    pub from_worker: RingEntry,
}

/// Where one ring is in the span: Linux's `struct xdp_ring_offset` plus the
/// ring's size and descriptor size, relative to the span base.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RingEntry {
    /// 1 if the ring exists, 0 if not.
    pub present: u32,
    /// Ring size in descriptors.
    pub entries: u32,
    /// Span offset of the producer index.
    pub producer: u64,
    /// Span offset of the consumer index.
    pub consumer: u64,
    /// Span offset of the descriptor array.
    pub desc: u64,
    /// Span offset of the flags word.
    pub flags: u64,
    /// Bytes of one descriptor.
    pub desc_size: u32,
    /// Zero.
    pub reserved: u32,
}

/// One region present in the span.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RegionEntry {
    /// [`RegionId::index`].
    pub id: u32,
    /// [`RegionFlags::bits`].
    pub flags: u32,
    /// Span offset of the region.
    pub offset: u64,
    /// Bytes of the region.
    pub size: u64,
    /// Bytes of one object.
    pub obj_size: u64,
    /// Number of objects.
    pub obj_count: u32,
    /// Number of segments.
    pub seg_count: u32,
    /// Bytes of one segment.
    pub seg_size: u64,
    /// The region's uuid.
    pub uuid: [u8; 16],
}

// The tables in the module documentation, checked at compile time: each
// field at its documented offset, each struct exactly as long as its fields
// (so there is no padding anywhere, implicit or trailing).
const _: () = {
    assert!(offset_of!(SchemaHeader, magic) == 0);
    assert!(offset_of!(SchemaHeader, version) == 8);
    assert!(offset_of!(SchemaHeader, header_size) == 12);
    assert!(offset_of!(SchemaHeader, entry_size) == 16);
    assert!(offset_of!(SchemaHeader, region_count) == 20);
    assert!(offset_of!(SchemaHeader, total_size) == 24);
    assert!(offset_of!(SchemaHeader, arena_kind) == 28);
    assert!(offset_of!(SchemaHeader, span_size) == 32);
    assert!(offset_of!(SchemaHeader, name) == 40);
    assert!(offset_of!(SchemaHeader, rings) == 104);
    assert!(offset_of!(SchemaHeader, generation) == 296);
    assert!(offset_of!(SchemaHeader, worker_count) == 304);
    assert!(offset_of!(SchemaHeader, worker_entry_size) == 308);
    assert!(HEADER_SIZE == 104 + 4 * 48 + 8 + 8);
    assert!(HEADER_SIZE == 312);
    assert!(offset_of!(WorkerEntry, from_worker) == 48);
    assert!(WORKER_SIZE == 96);
    assert!(is_aligned(SCHEMA_GENERATION as u64, 8));
    assert!(is_aligned(HEADER_SIZE as u64, 8));

    assert!(offset_of!(RingEntry, present) == 0);
    assert!(offset_of!(RingEntry, entries) == 4);
    assert!(offset_of!(RingEntry, producer) == 8);
    assert!(offset_of!(RingEntry, consumer) == 16);
    assert!(offset_of!(RingEntry, desc) == 24);
    assert!(offset_of!(RingEntry, flags) == 32);
    assert!(offset_of!(RingEntry, desc_size) == 40);
    assert!(offset_of!(RingEntry, reserved) == 44);
    assert!(RING_SIZE == 48);

    assert!(offset_of!(RegionEntry, id) == 0);
    assert!(offset_of!(RegionEntry, flags) == 4);
    assert!(offset_of!(RegionEntry, offset) == 8);
    assert!(offset_of!(RegionEntry, size) == 16);
    assert!(offset_of!(RegionEntry, obj_size) == 24);
    assert!(offset_of!(RegionEntry, obj_count) == 32);
    assert!(offset_of!(RegionEntry, seg_count) == 36);
    assert!(offset_of!(RegionEntry, seg_size) == 40);
    assert!(offset_of!(RegionEntry, uuid) == 48);
    assert!(ENTRY_SIZE == 64);

    assert!(NAME_FIELD == 64);
    assert!(RingKind::COUNT == 4);
    // The largest schema's total_size must fit its u32 field, and a page.
    assert!(HEADER_SIZE + RegionId::COUNT * ENTRY_SIZE + SCHEMA_MAX_WORKERS * WORKER_SIZE <= 4096);
};

/// `HEADER_SIZE` as stored in the header (fits: asserted above).
pub(super) const HEADER_SIZE_U32: u32 = HEADER_SIZE as u32;
/// `ENTRY_SIZE` as stored in the header.
pub(super) const ENTRY_SIZE_U32: u32 = ENTRY_SIZE as u32;
/// `WORKER_SIZE` as stored in the header.
pub(super) const WORKER_SIZE_U32: u32 = WORKER_SIZE as u32;

/// Is `v` a multiple of `align` (a power of two)? A mask rather than
/// `is_multiple_of`, which is newer than the workspace's rust-version.
pub(super) const fn is_aligned(v: u64, align: u64) -> bool {
    v & align.wrapping_sub(1) == 0
}

// Field access by offset. Every helper returns `None` instead of panicking
// when the range falls outside the slice, so a short buffer is an error.

pub(super) fn get<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

pub(super) fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    get(b, at).map(u32::from_le_bytes)
}

pub(super) fn get_u64(b: &[u8], at: usize) -> Option<u64> {
    get(b, at).map(u64::from_le_bytes)
}

pub(super) fn put(b: &mut [u8], at: usize, v: &[u8]) -> Option<()> {
    b.get_mut(at..at.checked_add(v.len())?)?.copy_from_slice(v);
    Some(())
}

pub(super) fn put_u32(b: &mut [u8], at: usize, v: u32) -> Option<()> {
    put(b, at, &v.to_le_bytes())
}

pub(super) fn put_u64(b: &mut [u8], at: usize, v: u64) -> Option<()> {
    put(b, at, &v.to_le_bytes())
}

impl RingEntry {
    /// An absent ring: all zero.
    pub(super) const ABSENT: RingEntry = RingEntry {
        present: 0,
        entries: 0,
        producer: 0,
        consumer: 0,
        desc: 0,
        flags: 0,
        desc_size: 0,
        reserved: 0,
    };

    pub(super) fn read(b: &[u8]) -> Option<Self> {
        Some(Self {
            present: get_u32(b, offset_of!(RingEntry, present))?,
            entries: get_u32(b, offset_of!(RingEntry, entries))?,
            producer: get_u64(b, offset_of!(RingEntry, producer))?,
            consumer: get_u64(b, offset_of!(RingEntry, consumer))?,
            desc: get_u64(b, offset_of!(RingEntry, desc))?,
            flags: get_u64(b, offset_of!(RingEntry, flags))?,
            desc_size: get_u32(b, offset_of!(RingEntry, desc_size))?,
            reserved: get_u32(b, offset_of!(RingEntry, reserved))?,
        })
    }

    pub(super) fn write(&self, b: &mut [u8]) -> Option<()> {
        put_u32(b, offset_of!(RingEntry, present), self.present)?;
        put_u32(b, offset_of!(RingEntry, entries), self.entries)?;
        put_u64(b, offset_of!(RingEntry, producer), self.producer)?;
        put_u64(b, offset_of!(RingEntry, consumer), self.consumer)?;
        put_u64(b, offset_of!(RingEntry, desc), self.desc)?;
        put_u64(b, offset_of!(RingEntry, flags), self.flags)?;
        put_u32(b, offset_of!(RingEntry, desc_size), self.desc_size)?;
        put_u32(b, offset_of!(RingEntry, reserved), self.reserved)
    }
}

impl RegionEntry {
    pub(super) fn read(b: &[u8]) -> Option<Self> {
        Some(Self {
            id: get_u32(b, offset_of!(RegionEntry, id))?,
            flags: get_u32(b, offset_of!(RegionEntry, flags))?,
            offset: get_u64(b, offset_of!(RegionEntry, offset))?,
            size: get_u64(b, offset_of!(RegionEntry, size))?,
            obj_size: get_u64(b, offset_of!(RegionEntry, obj_size))?,
            obj_count: get_u32(b, offset_of!(RegionEntry, obj_count))?,
            seg_count: get_u32(b, offset_of!(RegionEntry, seg_count))?,
            seg_size: get_u64(b, offset_of!(RegionEntry, seg_size))?,
            uuid: get(b, offset_of!(RegionEntry, uuid))?,
        })
    }

    pub(super) fn write(&self, b: &mut [u8]) -> Option<()> {
        put_u32(b, offset_of!(RegionEntry, id), self.id)?;
        put_u32(b, offset_of!(RegionEntry, flags), self.flags)?;
        put_u64(b, offset_of!(RegionEntry, offset), self.offset)?;
        put_u64(b, offset_of!(RegionEntry, size), self.size)?;
        put_u64(b, offset_of!(RegionEntry, obj_size), self.obj_size)?;
        put_u32(b, offset_of!(RegionEntry, obj_count), self.obj_count)?;
        put_u32(b, offset_of!(RegionEntry, seg_count), self.seg_count)?;
        put_u64(b, offset_of!(RegionEntry, seg_size), self.seg_size)?;
        put(b, offset_of!(RegionEntry, uuid), &self.uuid)
    }
}

impl SchemaHeader {
    /// Byte offset of ring `i` in the header.
    pub(super) fn ring_offset(i: usize) -> Option<usize> {
        offset_of!(SchemaHeader, rings).checked_add(i.checked_mul(RING_SIZE)?)
    }

    pub(super) fn read(b: &[u8]) -> Option<Self> {
        let mut rings = [RingEntry::ABSENT; RingKind::COUNT];
        for (i, ring) in rings.iter_mut().enumerate() {
            *ring = RingEntry::read(b.get(Self::ring_offset(i)?..)?)?;
        }
        Some(Self {
            magic: get(b, offset_of!(SchemaHeader, magic))?,
            version: get_u32(b, offset_of!(SchemaHeader, version))?,
            header_size: get_u32(b, offset_of!(SchemaHeader, header_size))?,
            entry_size: get_u32(b, offset_of!(SchemaHeader, entry_size))?,
            region_count: get_u32(b, offset_of!(SchemaHeader, region_count))?,
            total_size: get_u32(b, offset_of!(SchemaHeader, total_size))?,
            arena_kind: get_u32(b, offset_of!(SchemaHeader, arena_kind))?,
            span_size: get_u64(b, offset_of!(SchemaHeader, span_size))?,
            name: get(b, offset_of!(SchemaHeader, name))?,
            rings,
            generation: get_u64(b, offset_of!(SchemaHeader, generation))?,
            worker_count: get_u32(b, offset_of!(SchemaHeader, worker_count))?,
            worker_entry_size: get_u32(b, offset_of!(SchemaHeader, worker_entry_size))?,
        })
    }

    pub(super) fn write(&self, b: &mut [u8]) -> Option<()> {
        put(b, offset_of!(SchemaHeader, magic), &self.magic)?;
        put_u32(b, offset_of!(SchemaHeader, version), self.version)?;
        put_u32(b, offset_of!(SchemaHeader, header_size), self.header_size)?;
        put_u32(b, offset_of!(SchemaHeader, entry_size), self.entry_size)?;
        put_u32(b, offset_of!(SchemaHeader, region_count), self.region_count)?;
        put_u32(b, offset_of!(SchemaHeader, total_size), self.total_size)?;
        put_u32(b, offset_of!(SchemaHeader, arena_kind), self.arena_kind)?;
        put_u64(b, offset_of!(SchemaHeader, span_size), self.span_size)?;
        put(b, offset_of!(SchemaHeader, name), &self.name)?;
        for (i, ring) in self.rings.iter().enumerate() {
            ring.write(b.get_mut(Self::ring_offset(i)?..)?)?;
        }
        put_u64(b, offset_of!(SchemaHeader, generation), self.generation)?;
        put_u32(b, offset_of!(SchemaHeader, worker_count), self.worker_count)?;
        put_u32(
            b,
            offset_of!(SchemaHeader, worker_entry_size),
            self.worker_entry_size,
        )
    }
}

impl WorkerEntry {
    pub(super) fn read(b: &[u8]) -> Option<Self> {
        Some(Self {
            to_worker: RingEntry::read(b)?,
            from_worker: RingEntry::read(b.get(RING_SIZE..)?)?,
        })
    }

    pub(super) fn write(&self, b: &mut [u8]) -> Option<()> {
        self.to_worker.write(b)?;
        self.from_worker.write(b.get_mut(RING_SIZE..)?)
    }
}
