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

/// A field of the layout: read and written little-endian at a byte
/// offset. Each returns `None`, never panicking, when the bytes fall
/// outside the slice, so a short buffer is an error.
pub(super) trait Field: Sized {
    /// The field at `at` of `b`.
    fn get(b: &[u8], at: usize) -> Option<Self>;
    /// Writes the field at `at` of `b`.
    fn put(&self, b: &mut [u8], at: usize) -> Option<()>;
}

impl<const N: usize> Field for [u8; N] {
    fn get(b: &[u8], at: usize) -> Option<Self> {
        b.get(at..at.checked_add(N)?)?.try_into().ok()
    }

    fn put(&self, b: &mut [u8], at: usize) -> Option<()> {
        b.get_mut(at..at.checked_add(N)?)?.copy_from_slice(self);
        Some(())
    }
}

impl Field for u32 {
    fn get(b: &[u8], at: usize) -> Option<Self> {
        <[u8; 4]>::get(b, at).map(u32::from_le_bytes)
    }

    fn put(&self, b: &mut [u8], at: usize) -> Option<()> {
        self.to_le_bytes().put(b, at)
    }
}

impl Field for u64 {
    fn get(b: &[u8], at: usize) -> Option<Self> {
        <[u8; 8]>::get(b, at).map(u64::from_le_bytes)
    }

    fn put(&self, b: &mut [u8], at: usize) -> Option<()> {
        self.to_le_bytes().put(b, at)
    }
}

/// A struct of the layout as a field of another (the header's rings, a
/// worker entry's two).
impl Field for RingEntry {
    fn get(b: &[u8], at: usize) -> Option<Self> {
        Self::read(b.get(at..)?)
    }

    fn put(&self, b: &mut [u8], at: usize) -> Option<()> {
        self.write(b.get_mut(at..)?)
    }
}

/// The header's array of rings, one after the other.
impl<const N: usize> Field for [RingEntry; N] {
    fn get(b: &[u8], at: usize) -> Option<Self> {
        let mut rings = [RingEntry::ABSENT; N];
        for (i, ring) in rings.iter_mut().enumerate() {
            *ring = RingEntry::get(b, at.checked_add(i.checked_mul(RING_SIZE)?)?)?;
        }
        Some(rings)
    }

    fn put(&self, b: &mut [u8], at: usize) -> Option<()> {
        for (i, ring) in self.iter().enumerate() {
            ring.put(b, at.checked_add(i.checked_mul(RING_SIZE)?)?)?;
        }
        Some(())
    }
}

/// `read` and `write` for a struct of the layout: each listed field, in
/// order, at its `offset_of!` — the one place a field's position is
/// given, and the compile-time assertions above hold it to the tables.
macro_rules! codec {
    ($t:ident { $($f:ident),* $(,)? }) => {
        impl $t {
            /// Decodes one from the front of `b` (`None` if `b` is short).
            pub(super) fn read(b: &[u8]) -> Option<Self> {
                Some(Self {
                    $($f: Field::get(b, offset_of!($t, $f))?,)*
                })
            }

            /// Encodes it at the front of `b` (`None` if `b` is short).
            pub(super) fn write(&self, b: &mut [u8]) -> Option<()> {
                $(Field::put(&self.$f, b, offset_of!($t, $f))?;)*
                Some(())
            }
        }
    };
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
}

codec!(RingEntry {
    present,
    entries,
    producer,
    consumer,
    desc,
    flags,
    desc_size,
    reserved,
});

codec!(RegionEntry {
    id,
    flags,
    offset,
    size,
    obj_size,
    obj_count,
    seg_count,
    seg_size,
    uuid,
});

codec!(SchemaHeader {
    magic,
    version,
    header_size,
    entry_size,
    region_count,
    total_size,
    arena_kind,
    span_size,
    name,
    rings,
    generation,
    worker_count,
    worker_entry_size,
});

codec!(WorkerEntry {
    to_worker,
    from_worker,
});
