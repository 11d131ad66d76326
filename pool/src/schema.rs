//! The schema: the versioned, read-only map of an arena's span.
//!
//! An arena is mapped into a process as one contiguous **span**: the head
//! guard, the SCHEMA region, the other user-mappable regions in
//! [`RegionId`] order, the tail guard. The owner writes the schema into the
//! SCHEMA region's object with [`write_schema`]; a mapper reads it with
//! [`SchemaView::parse`] and needs nothing else to find every region and
//! ring in the span. Every offset in the schema is relative to the start of
//! the span (the map base), as in Skywalk's schema for stats and advisories.
//!
//! The mapper may be another process, so [`SchemaView::parse`] treats the
//! bytes as hostile: every field is checked, every failure is its own
//! [`SchemaError`] variant, and no input makes it panic. Bytes that parse
//! are exactly the bytes [`write_schema`] produces for the decoded
//! [`SchemaInfo`] (reserved fields and name padding must be zero), so a
//! schema has one encoding and a corrupted one is refused rather than
//! half-understood.
//!
//! # Layout (version 3)
//!
//! All integers are little-endian. No field has implicit padding: every gap
//! is an explicit reserved field, and compile-time assertions below hold
//! the `#[repr(C)]` structs to these tables. The structs document the
//! layout; encoding and decoding go field by field through byte slices, so
//! neither needs `unsafe` nor trusts alignment.
//!
//! The bytes are a [`SchemaHeader`] followed by `region_count`
//! [`RegionEntry`]s and `worker_count` [`WorkerEntry`]s, `total_size`
//! bytes in all. Bytes after `total_size` (the rest of the SCHEMA page) are
//! ignored.
//!
//! [`SchemaHeader`], 312 bytes:
//!
//! | offset | size | field          | type             | value |
//! |-------:|-----:|----------------|------------------|-------|
//! |      0 |    8 | `magic`        | `[u8; 8]`        | `b"SKMEMSCH"` |
//! |      8 |    4 | `version`      | `u32`            | [`SCHEMA_VERSION`] (3) |
//! |     12 |    4 | `header_size`  | `u32`            | 312 |
//! |     16 |    4 | `entry_size`   | `u32`            | 64 |
//! |     20 |    4 | `region_count` | `u32`            | entries that follow, at most [`RegionId::COUNT`] |
//! |     24 |    4 | `total_size`   | `u32`            | 312 + 64 × `region_count` + 96 × `worker_count` |
//! |     28 |    4 | `arena_kind`   | `u32`            | [`SchemaArenaKind`]: 1 nexus, 2 NECP, 3 system |
//! |     32 |    8 | `span_size`    | `u64`            | bytes of the whole span |
//! |     40 |   64 | `name`         | `[u8; 64]`       | arena name, UTF-8, NUL-terminated and NUL-padded |
//! |    104 |  192 | `rings`        | `[RingEntry; 4]` | fill, completion, RX, TX ([`RingKind`] order) |
//! |    296 |    8 | `generation`   | `u64`            | even; odd while the owner rewrites the schema (see below) |
//! |    304 |    4 | `worker_count` | `u32`            | worker entries after the regions, at most [`SCHEMA_MAX_WORKERS`] |
//! |    308 |    4 | `worker_entry_size` | `u32`       | 96 |
//!
//! [`RingEntry`], 48 bytes (offsets inside the entry; the four ring offsets
//! mirror Linux's `struct xdp_ring_offset`, but from the span base):
//!
//! | offset | size | field       | type  | value |
//! |-------:|-----:|-------------|-------|-------|
//! |      0 |    4 | `present`   | `u32` | 1 if the ring exists, 0 if not (then the whole entry is 0) |
//! |      4 |    4 | `entries`   | `u32` | ring size, a power of two |
//! |      8 |    8 | `producer`  | `u64` | span offset of the producer index (4-aligned) |
//! |     16 |    8 | `consumer`  | `u64` | span offset of the consumer index (4-aligned) |
//! |     24 |    8 | `desc`      | `u64` | span offset of the descriptor array (8-aligned) |
//! |     32 |    8 | `flags`     | `u64` | span offset of the flags word (4-aligned) |
//! |     40 |    4 | `desc_size` | `u32` | bytes of one descriptor, not 0 |
//! |     44 |    4 | `reserved`  | `u32` | 0 |
//!
//! [`RegionEntry`], 64 bytes, one per region present in the span, in
//! increasing id and offset order:
//!
//! | offset | size | field       | type       | value |
//! |-------:|-----:|-------------|------------|-------|
//! |      0 |    4 | `id`        | `u32`      | [`RegionId::index`] of a user-mappable region |
//! |      4 |    4 | `flags`     | `u32`      | [`RegionFlags::bits`], including MMAPOK |
//! |      8 |    8 | `offset`    | `u64`      | span offset of the region |
//! |     16 |    8 | `size`      | `u64`      | bytes of the region |
//! |     24 |    8 | `obj_size`  | `u64`      | bytes of one object |
//! |     32 |    4 | `obj_count` | `u32`      | objects in the region |
//! |     36 |    4 | `seg_count` | `u32`      | segments in the region |
//! |     40 |    8 | `seg_size`  | `u64`      | bytes of one segment; `seg_size × seg_count = size` |
//! |     48 |   16 | `uuid`      | `[u8; 16]` | the region's uuid, for statistics |
//!
//! [`WorkerEntry`], 96 bytes, one per worker slot of the arena (see
//! [`crate::workers`]): two [`RingEntry`]s, both present, with 16-byte
//! descriptors — `to_worker` (the owner produces received packets, the
//! worker consumes: the worker's RX ring) then `from_worker` (the worker
//! produces packets to send or free, the owner consumes: its TX ring).
//!
//! # Reading from shared memory
//!
//! A [`SchemaView`] borrows a `&[u8]`, which Rust requires not to change
//! while borrowed. A mapper therefore copies the schema out of the shared
//! mapping before parsing it, so that the owner (or anyone with the region
//! writable) cannot change it between validation and use.
//!
//! The owner rewrites the schema while mappers may read it (a channel's
//! rings appear on bind and go on close), so the copy must not catch half
//! a rewrite. `generation` is a sequence lock: the owner makes it odd,
//! rewrites the rest word by word, then makes it even again, one more than
//! the odd value; a reader reads it (even), copies the schema, reads it
//! again, and keeps the copy only if both reads agree.
//! [`ArenaMapping::schema`](crate::arena::ArenaMapping::schema) does that;
//! the parser refuses an odd generation.

use std::fmt;
use std::mem::{offset_of, size_of};

use crate::region::{RegionFlags, RegionGeometry, RegionId};

/// The first eight bytes of every schema.
pub const SCHEMA_MAGIC: [u8; 8] = *b"SKMEMSCH";

/// The layout version this module writes and the only one it reads.
pub const SCHEMA_VERSION: u32 = 3;

/// Most worker slots a schema describes (what fits the SCHEMA page beside
/// every region).
pub const SCHEMA_MAX_WORKERS: usize = 16;

/// Longest arena name, in bytes: the name field is 64 bytes and always
/// keeps a terminating NUL, so C readers can use it as a string.
pub const SCHEMA_NAME_MAX: usize = 63;

/// Bytes of the name field.
const NAME_FIELD: usize = SCHEMA_NAME_MAX + 1;

/// Bytes of a [`SchemaHeader`].
const HEADER_SIZE: usize = size_of::<SchemaHeader>();

/// Byte offset of the header's `generation`, the schema's sequence lock.
pub const SCHEMA_GENERATION: usize = offset_of!(SchemaHeader, generation);

/// Bytes of the header.
pub const SCHEMA_HEADER_SIZE: usize = HEADER_SIZE;

/// Bytes of a [`RegionEntry`].
const ENTRY_SIZE: usize = size_of::<RegionEntry>();

/// Bytes of a [`RingEntry`].
const RING_SIZE: usize = size_of::<RingEntry>();

/// Bytes of a [`WorkerEntry`].
const WORKER_SIZE: usize = size_of::<WorkerEntry>();

/// Bytes a ring index (producer, consumer, flags) must have inside the span.
/// The kernel's indices are `u32`, but room for a `u64` keeps the check
/// independent of that choice.
const RING_INDEX_BYTES: u64 = 8;

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
const HEADER_SIZE_U32: u32 = HEADER_SIZE as u32;
/// `ENTRY_SIZE` as stored in the header.
const ENTRY_SIZE_U32: u32 = ENTRY_SIZE as u32;
/// `WORKER_SIZE` as stored in the header.
const WORKER_SIZE_U32: u32 = WORKER_SIZE as u32;

/// Is `v` a multiple of `align` (a power of two)? A mask rather than
/// `is_multiple_of`, which is newer than the workspace's rust-version.
const fn is_aligned(v: u64, align: u64) -> bool {
    v & align.wrapping_sub(1) == 0
}

// Field access by offset. Every helper returns `None` instead of panicking
// when the range falls outside the slice, so a short buffer is an error.

fn get<const N: usize>(b: &[u8], at: usize) -> Option<[u8; N]> {
    b.get(at..at.checked_add(N)?)?.try_into().ok()
}

fn get_u32(b: &[u8], at: usize) -> Option<u32> {
    get(b, at).map(u32::from_le_bytes)
}

fn get_u64(b: &[u8], at: usize) -> Option<u64> {
    get(b, at).map(u64::from_le_bytes)
}

fn put(b: &mut [u8], at: usize, v: &[u8]) -> Option<()> {
    b.get_mut(at..at.checked_add(v.len())?)?.copy_from_slice(v);
    Some(())
}

fn put_u32(b: &mut [u8], at: usize, v: u32) -> Option<()> {
    put(b, at, &v.to_le_bytes())
}

fn put_u64(b: &mut [u8], at: usize, v: u64) -> Option<()> {
    put(b, at, &v.to_le_bytes())
}

impl RingEntry {
    /// An absent ring: all zero.
    const ABSENT: RingEntry = RingEntry {
        present: 0,
        entries: 0,
        producer: 0,
        consumer: 0,
        desc: 0,
        flags: 0,
        desc_size: 0,
        reserved: 0,
    };

    fn read(b: &[u8]) -> Option<Self> {
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

    fn write(&self, b: &mut [u8]) -> Option<()> {
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
    fn read(b: &[u8]) -> Option<Self> {
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

    fn write(&self, b: &mut [u8]) -> Option<()> {
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
    fn ring_offset(i: usize) -> Option<usize> {
        offset_of!(SchemaHeader, rings).checked_add(i.checked_mul(RING_SIZE)?)
    }

    fn read(b: &[u8]) -> Option<Self> {
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

    fn write(&self, b: &mut [u8]) -> Option<()> {
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
    fn read(b: &[u8]) -> Option<Self> {
        Some(Self {
            to_worker: RingEntry::read(b)?,
            from_worker: RingEntry::read(b.get(RING_SIZE..)?)?,
        })
    }

    fn write(&self, b: &mut [u8]) -> Option<()> {
        self.to_worker.write(b)?;
        self.from_worker.write(b.get_mut(RING_SIZE..)?)
    }
}

/// What kind of arena a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SchemaArenaKind {
    /// A nexus arena: packet pools, rings, advisories.
    Nexus = 1,
    /// A NECP arena: per-flow statistics.
    Necp = 2,
    /// The system arena: process-wide tunables.
    System = 3,
}

impl SchemaArenaKind {
    /// The value stored in the header's `arena_kind` field.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// The kind stored as `v`, if `v` names one.
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Nexus),
            2 => Some(Self::Necp),
            3 => Some(Self::System),
            _ => None,
        }
    }

    /// Short lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Nexus => "nexus",
            Self::Necp => "necp",
            Self::System => "system",
        }
    }
}

impl From<SchemaArenaKind> for u32 {
    fn from(kind: SchemaArenaKind) -> u32 {
        kind.as_u32()
    }
}

impl TryFrom<u32> for SchemaArenaKind {
    type Error = SchemaError;

    fn try_from(v: u32) -> Result<Self, SchemaError> {
        Self::from_u32(v).ok_or(SchemaError::UnknownArenaKind { found: v })
    }
}

impl fmt::Display for SchemaArenaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The four AF_XDP rings, in the order of the header's `rings` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RingKind {
    /// Fill ring: free UMEM frames handed to the kernel for RX.
    Fill,
    /// Completion ring: UMEM frames the kernel has finished sending.
    Completion,
    /// RX ring: received packets.
    Rx,
    /// TX ring: packets to send.
    Tx,
}

impl RingKind {
    /// Every ring kind, in header order.
    pub const ALL: [RingKind; 4] = [Self::Fill, Self::Completion, Self::Rx, Self::Tx];

    /// Number of ring kinds.
    pub const COUNT: usize = Self::ALL.len();

    /// Position in the header's `rings` array.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Short lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Fill => "fill",
            Self::Completion => "completion",
            Self::Rx => "rx",
            Self::Tx => "tx",
        }
    }
}

impl fmt::Display for RingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one present ring is in the span (all offsets from the span base).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RingInfo {
    /// Ring size in descriptors: a power of two.
    pub entries: u32,
    /// Span offset of the producer index (4-aligned).
    pub producer: u64,
    /// Span offset of the consumer index (4-aligned).
    pub consumer: u64,
    /// Span offset of the descriptor array (8-aligned).
    pub desc: u64,
    /// Span offset of the flags word (4-aligned).
    pub flags: u64,
    /// Bytes of one descriptor: 8 for fill and completion (a UMEM address),
    /// 16 for RX and TX (`struct xdp_desc`).
    pub desc_size: u32,
}

impl RingInfo {
    fn to_entry(self) -> RingEntry {
        RingEntry {
            present: 1,
            entries: self.entries,
            producer: self.producer,
            consumer: self.consumer,
            desc: self.desc,
            flags: self.flags,
            desc_size: self.desc_size,
            reserved: 0,
        }
    }
}

/// One region of the span, as the schema describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegionEntryInfo {
    /// Which region.
    pub id: RegionId,
    /// Its flags; always include MMAPOK.
    pub flags: RegionFlags,
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

impl RegionEntryInfo {
    /// The entry for a region of geometry `geom` placed at span offset
    /// `offset`.
    pub fn from_geometry(
        id: RegionId,
        flags: RegionFlags,
        offset: u64,
        geom: &RegionGeometry,
        uuid: [u8; 16],
    ) -> Self {
        // usize is at most 64 bits on every target skmem builds for.
        let wide = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        Self {
            id,
            flags,
            offset,
            size: wide(geom.size()),
            obj_size: wide(geom.obj_size),
            obj_count: geom.obj_count,
            seg_count: geom.seg_count,
            seg_size: wide(geom.seg_size),
            uuid,
        }
    }

    /// One past the region's last byte, as a span offset; `None` if that
    /// overflows (which a parsed schema never does).
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.size)
    }

    fn to_entry(self) -> RegionEntry {
        RegionEntry {
            // Indices are below RegionId::COUNT (28).
            id: self.id as u32,
            flags: self.flags.bits(),
            offset: self.offset,
            size: self.size,
            obj_size: self.obj_size,
            obj_count: self.obj_count,
            seg_count: self.seg_count,
            seg_size: self.seg_size,
            uuid: self.uuid,
        }
    }

    /// Decodes an entry whose id and flags the parser has checked. `None`
    /// only for an unknown id or unknown flag bits.
    fn from_checked_entry(e: &RegionEntry) -> Option<Self> {
        Some(Self {
            id: usize::try_from(e.id).ok().and_then(RegionId::from_index)?,
            flags: RegionFlags::from_bits(e.flags)?,
            offset: e.offset,
            size: e.size,
            obj_size: e.obj_size,
            obj_count: e.obj_count,
            seg_count: e.seg_count,
            seg_size: e.seg_size,
            uuid: e.uuid,
        })
    }
}

/// Everything a schema says, as plain Rust: what the owner hands to
/// [`write_schema`] and what [`SchemaView::to_info`] gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    /// The arena's kind.
    pub kind: SchemaArenaKind,
    /// The arena's name: at most [`SCHEMA_NAME_MAX`] bytes, no NUL.
    pub name: String,
    /// Bytes of the whole span.
    pub span_size: u64,
    /// The regions present in the span, in increasing id (and offset) order.
    pub regions: Vec<RegionEntryInfo>,
    /// The rings, indexed by [`RingKind::index`]; `None` until the AF_XDP
    /// socket exists.
    pub rings: [Option<RingInfo>; RingKind::COUNT],
    /// The sequence lock's count when the schema was written (even).
    pub generation: u64,
    /// The worker slots' rings, by slot (empty for an arena without
    /// worker slots).
    pub workers: Vec<WorkerRings>,
}

/// Where one worker slot's two rings are (see [`WorkerEntry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkerRings {
    /// Owner → worker: received packets (the worker's RX ring).
    pub to_worker: RingInfo,
    /// Worker → owner: packets to send or free (the worker's TX ring).
    pub from_worker: RingInfo,
}

impl SchemaInfo {
    /// The ring of kind `kind`, if present.
    pub fn ring(&self, kind: RingKind) -> Option<RingInfo> {
        self.rings.get(kind.index()).copied().flatten()
    }
}

/// Why a schema could not be written or was refused by a reader.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
#[non_exhaustive]
pub enum SchemaError {
    /// The destination buffer cannot hold the schema.
    #[error("schema needs {needed} bytes, the buffer has {len}")]
    BufferTooSmall {
        /// Bytes available.
        len: usize,
        /// Bytes the schema needs.
        needed: usize,
    },

    /// The arena name does not fit the 64-byte name field with its NUL.
    #[error("arena name is {len} bytes, at most {max} fit")]
    NameTooLong {
        /// The name's length in bytes.
        len: usize,
        /// [`SCHEMA_NAME_MAX`].
        max: usize,
    },

    /// The arena name contains a NUL byte, which would cut it short.
    #[error("arena name contains a NUL byte at {at}")]
    NameContainsNul {
        /// Byte position of the first NUL.
        at: usize,
    },

    /// The generation is odd: the bytes were copied while the owner was
    /// rewriting the schema. Copy it again.
    #[error("schema generation {generation} is odd: copied while being rewritten")]
    BeingRewritten {
        /// The generation read.
        generation: u64,
    },

    /// Fewer bytes than a header.
    #[error("schema is {len} bytes, shorter than its {needed}-byte header")]
    TooShortForHeader {
        /// Bytes given.
        len: usize,
        /// Header size.
        needed: usize,
    },

    /// The bytes do not start with [`SCHEMA_MAGIC`].
    #[error("bad schema magic {found:02x?}")]
    BadMagic {
        /// The first eight bytes.
        found: [u8; 8],
    },

    /// The schema has a layout version this reader does not know.
    #[error("schema version {found} is not supported (this reader knows version {supported})")]
    UnsupportedVersion {
        /// The version in the header.
        found: u32,
        /// [`SCHEMA_VERSION`].
        supported: u32,
    },

    /// The header's `header_size` is not the size of a [`SchemaHeader`].
    #[error("schema header size is {found}, expected {expected}")]
    HeaderSizeMismatch {
        /// The value in the header.
        found: u32,
        /// `size_of::<SchemaHeader>()`.
        expected: u32,
    },

    /// The header's `entry_size` is not the size of a [`RegionEntry`].
    #[error("schema entry size is {found}, expected {expected}")]
    EntrySizeMismatch {
        /// The value in the header.
        found: u32,
        /// `size_of::<RegionEntry>()`.
        expected: u32,
    },

    /// More regions than there are region ids.
    #[error("schema has {count} regions, at most {max} exist")]
    TooManyRegions {
        /// The region count given.
        count: u64,
        /// [`RegionId::COUNT`].
        max: usize,
    },

    /// `total_size` is not header plus `region_count` entries plus
    /// `worker_count` worker entries.
    #[error(
        "schema total size is {found}, but {region_count} regions and its workers need {expected}"
    )]
    TotalSizeMismatch {
        /// The value in the header.
        found: u32,
        /// The header's region count.
        region_count: u32,
        /// Header plus entries.
        expected: u32,
    },

    /// More worker slots than a schema describes.
    #[error("schema names {count} worker slots, at most {max} exist")]
    TooManyWorkers {
        /// The count given.
        count: u64,
        /// [`SCHEMA_MAX_WORKERS`].
        max: usize,
    },

    /// The header's `worker_entry_size` is not this layout's.
    #[error("schema worker entry size is {found}, expected {expected}")]
    WorkerEntrySizeMismatch {
        /// The value in the header.
        found: u32,
        /// `size_of::<WorkerEntry>()`.
        expected: u32,
    },

    /// A worker slot lacks one of its rings.
    #[error("worker slot {slot}: a ring is absent")]
    WorkerRingAbsent {
        /// The slot.
        slot: u32,
    },

    /// A worker slot's ring is refused (its RX ring is the owner → worker
    /// one, its TX ring the worker → owner one).
    #[error("worker slot {slot}: {source}")]
    WorkerRing {
        /// The slot.
        slot: u32,
        /// What is wrong with the ring.
        source: Box<SchemaError>,
    },

    /// The bytes end before the last region entry.
    #[error("schema is {total_size} bytes but only {len} were given")]
    TooShortForEntries {
        /// Bytes given.
        len: usize,
        /// The header's total size.
        total_size: u32,
    },

    /// The schema describes a span of another size than the one mapped.
    #[error("schema span size is {found}, the mapped span is {expected}")]
    SpanSizeMismatch {
        /// The value in the header.
        found: u64,
        /// The span size the reader expects.
        expected: u64,
    },

    /// The 64-byte name field has no terminating NUL.
    #[error("arena name is not NUL-terminated")]
    NameNotTerminated,

    /// The name before its NUL is not UTF-8.
    #[error("arena name is not UTF-8 (valid up to byte {valid_up_to})")]
    NameNotUtf8 {
        /// Length of the valid UTF-8 prefix.
        valid_up_to: usize,
    },

    /// A non-NUL byte follows the name's terminating NUL.
    #[error("arena name field has a non-NUL byte at {at}, after its terminator")]
    NameNotNulPadded {
        /// Position of the stray byte in the name field.
        at: usize,
    },

    /// `arena_kind` names no [`SchemaArenaKind`].
    #[error("unknown arena kind {found}")]
    UnknownArenaKind {
        /// The value in the header.
        found: u32,
    },

    /// A ring's `present` field is neither 0 nor 1.
    #[error("{ring} ring: present is {found}, not 0 or 1")]
    RingPresenceInvalid {
        /// The ring.
        ring: RingKind,
        /// The value found.
        found: u32,
    },

    /// An absent ring's entry has non-zero fields.
    #[error("{ring} ring is absent but its entry is not zeroed")]
    AbsentRingNotZeroed {
        /// The ring.
        ring: RingKind,
    },

    /// A ring's reserved field is not zero.
    #[error("{ring} ring: reserved field is {found:#x}, not 0")]
    RingReservedNotZero {
        /// The ring.
        ring: RingKind,
        /// The value found.
        found: u32,
    },

    /// A ring's size is not a power of two (or is 0).
    #[error("{ring} ring: {entries} entries is not a power of two")]
    RingEntriesNotPowerOfTwo {
        /// The ring.
        ring: RingKind,
        /// The value found.
        entries: u32,
    },

    /// A ring's producer, consumer or flags word is not inside the span.
    #[error("{ring} ring: {field} at {offset} is not inside the {span_size}-byte span")]
    RingIndexOutsideSpan {
        /// The ring.
        ring: RingKind,
        /// `"producer"`, `"consumer"` or `"flags"`.
        field: &'static str,
        /// The offset found.
        offset: u64,
        /// The span size.
        span_size: u64,
    },

    /// A ring offset is not aligned for what lives there (4 bytes for the
    /// `u32` indices and flags, 8 for the descriptor array).
    #[error("{ring} ring: {field} at {offset} is not {align}-byte aligned")]
    RingMisaligned {
        /// The ring.
        ring: RingKind,
        /// `"producer"`, `"consumer"`, `"flags"` or `"desc"`.
        field: &'static str,
        /// The offset found.
        offset: u64,
        /// The alignment required.
        align: u64,
    },

    /// A ring's descriptor size is 0.
    #[error("{ring} ring: descriptor size is 0")]
    RingDescSizeZero {
        /// The ring.
        ring: RingKind,
    },

    /// A ring's descriptor size is not the one its kind has.
    #[error("{ring} ring: descriptors of {found} bytes, expected {expected}")]
    RingDescSizeMismatch {
        /// The ring.
        ring: RingKind,
        /// The size given.
        found: u32,
        /// The size this ring's descriptors have.
        expected: u32,
    },

    /// A ring's descriptor array does not fit inside the span.
    #[error(
        "{ring} ring: {entries} descriptors of {desc_size} bytes at {desc} overrun the {span_size}-byte span"
    )]
    RingDescriptorsOutsideSpan {
        /// The ring.
        ring: RingKind,
        /// Span offset of the array.
        desc: u64,
        /// Ring size.
        entries: u32,
        /// Descriptor size.
        desc_size: u32,
        /// The span size.
        span_size: u64,
    },

    /// An entry's id is not a region id.
    #[error("region entry {index}: {id} is not a region id")]
    UnknownRegionId {
        /// Position of the entry.
        index: usize,
        /// The value found.
        id: u32,
    },

    /// An entry names an owner-private region, which is never in a span.
    #[error("region entry {index}: {id} is owner-private and cannot be in a span")]
    RegionNotMappable {
        /// Position of the entry.
        index: usize,
        /// The region.
        id: RegionId,
    },

    /// Two entries name the same region.
    #[error("region entry {index}: {id} appears twice")]
    DuplicateRegion {
        /// Position of the second entry.
        index: usize,
        /// The region.
        id: RegionId,
    },

    /// Entries are not in increasing id order.
    #[error("region entry {index}: {id} comes after {previous}, out of id order")]
    RegionsOutOfOrder {
        /// Position of the entry.
        index: usize,
        /// The region.
        id: RegionId,
        /// The region of the entry before it.
        previous: RegionId,
    },

    /// An entry's flags have bits that are not [`RegionFlags`].
    #[error("region {id}: unknown flag bits {bits:#x}")]
    UnknownRegionFlags {
        /// The region.
        id: RegionId,
        /// The unknown bits only.
        bits: u32,
    },

    /// An entry's flags lack MMAPOK: such a region is never in a span.
    #[error("region {id}: flags {flags:?} lack MMAPOK")]
    RegionNotMmapOk {
        /// The region.
        id: RegionId,
        /// The flags found.
        flags: RegionFlags,
    },

    /// GUARD is set on a region that is not a guard, or missing on one that
    /// is.
    #[error("region {id}: flags {flags:?} disagree with the id on GUARD")]
    GuardFlagMismatch {
        /// The region.
        id: RegionId,
        /// The flags found.
        flags: RegionFlags,
    },

    /// `offset + size` overflows.
    #[error("region {id}: offset {offset} + size {size} overflows")]
    RegionEndOverflows {
        /// The region.
        id: RegionId,
        /// The offset found.
        offset: u64,
        /// The size found.
        size: u64,
    },

    /// The region ends past the span.
    #[error("region {id}: {size} bytes at {offset} end past the {span_size}-byte span")]
    RegionOutsideSpan {
        /// The region.
        id: RegionId,
        /// The offset found.
        offset: u64,
        /// The size found.
        size: u64,
        /// The span size.
        span_size: u64,
    },

    /// The region starts before the previous one ends.
    #[error("region {id}: offset {offset} is before the end of {previous} at {previous_end}")]
    RegionsOverlap {
        /// The region.
        id: RegionId,
        /// Its offset.
        offset: u64,
        /// The region before it.
        previous: RegionId,
        /// Where that region ends.
        previous_end: u64,
    },

    /// `obj_size × obj_count` exceeds the region (or overflows).
    #[error("region {id}: {obj_count} objects of {obj_size} bytes exceed its {size} bytes")]
    ObjectsExceedRegion {
        /// The region.
        id: RegionId,
        /// Object size.
        obj_size: u64,
        /// Object count.
        obj_count: u32,
        /// Region size.
        size: u64,
    },

    /// A huge-page region not on a huge page, or not whole huge pages.
    #[error("region {id} is on huge pages but its {size} bytes at offset {offset} are not whole 2 MiB pages on a 2 MiB boundary")]
    HugeRegionMisplaced {
        /// The region.
        id: RegionId,
        /// Its offset in the span.
        offset: u64,
        /// Its size.
        size: u64,
    },

    /// `seg_size × seg_count` is not the region's size (rounded up to
    /// whole huge pages for a huge-page region).
    #[error("region {id}: {seg_count} segments of {seg_size} bytes do not make its {size} bytes")]
    SegmentsDoNotCoverRegion {
        /// The region.
        id: RegionId,
        /// Segment size.
        seg_size: u64,
        /// Segment count.
        seg_count: u32,
        /// Region size.
        size: u64,
    },

    /// A guard region of size 0 guards nothing.
    #[error("guard region {id} has size 0")]
    EmptyGuard {
        /// The region.
        id: RegionId,
    },
}

/// Bytes of a schema describing `region_count` regions and `worker_count`
/// worker slots. Saturates rather than overflowing for absurd counts.
pub fn schema_size(region_count: usize, worker_count: usize) -> usize {
    HEADER_SIZE
        .saturating_add(region_count.saturating_mul(ENTRY_SIZE))
        .saturating_add(worker_count.saturating_mul(WORKER_SIZE))
}

/// Writes the schema `info` describes at the start of `dst` and returns the
/// number of bytes written ([`schema_size`] of its region and worker
/// counts). Bytes of `dst` past that are left alone.
///
/// The writer refuses whatever a reader would refuse: after encoding it
/// parses its own output, so an owner never publishes a schema its mappers
/// reject (regions out of order or overlapping, rings outside the span…).
/// On error, the first [`schema_size`] bytes of `dst` are unspecified.
pub fn write_schema(info: &SchemaInfo, dst: &mut [u8]) -> Result<usize, SchemaError> {
    let name = info.name.as_bytes();
    if name.len() > SCHEMA_NAME_MAX {
        return Err(SchemaError::NameTooLong {
            len: name.len(),
            max: SCHEMA_NAME_MAX,
        });
    }
    if let Some(at) = name.iter().position(|&b| b == 0) {
        return Err(SchemaError::NameContainsNul { at });
    }
    let count = info.regions.len();
    if count > RegionId::COUNT {
        return Err(SchemaError::TooManyRegions {
            count: u64::try_from(count).unwrap_or(u64::MAX),
            max: RegionId::COUNT,
        });
    }
    let workers = info.workers.len();
    if workers > SCHEMA_MAX_WORKERS {
        return Err(SchemaError::TooManyWorkers {
            count: u64::try_from(workers).unwrap_or(u64::MAX),
            max: SCHEMA_MAX_WORKERS,
        });
    }
    let needed = schema_size(count, workers);
    let too_small = SchemaError::BufferTooSmall {
        len: dst.len(),
        needed,
    };
    // All fit u32: count ≤ RegionId::COUNT, workers ≤ SCHEMA_MAX_WORKERS,
    // and the largest schema's size is asserted to fit at compile time.
    let (Ok(count_u32), Ok(total_u32), Ok(workers_u32)) = (
        u32::try_from(count),
        u32::try_from(needed),
        u32::try_from(workers),
    ) else {
        return Err(too_small);
    };
    let Some(out) = dst.get_mut(..needed) else {
        return Err(too_small);
    };

    let mut name_field = [0u8; NAME_FIELD];
    if let Some(prefix) = name_field.get_mut(..name.len()) {
        prefix.copy_from_slice(name);
    }
    let mut rings = [RingEntry::ABSENT; RingKind::COUNT];
    for (entry, ring) in rings.iter_mut().zip(&info.rings) {
        if let Some(ring) = ring {
            *entry = ring.to_entry();
        }
    }
    let header = SchemaHeader {
        magic: SCHEMA_MAGIC,
        version: SCHEMA_VERSION,
        header_size: HEADER_SIZE_U32,
        entry_size: ENTRY_SIZE_U32,
        region_count: count_u32,
        total_size: total_u32,
        arena_kind: info.kind.as_u32(),
        span_size: info.span_size,
        name: name_field,
        rings,
        generation: info.generation,
        worker_count: workers_u32,
        worker_entry_size: WORKER_SIZE_U32,
    };

    if encode(&header, &info.regions, &info.workers, out).is_none() {
        return Err(too_small);
    }

    SchemaView::parse(out, info.span_size)?;
    Ok(needed)
}

/// Writes `header`, `regions` and `workers` into `out`. `out` is exactly
/// header plus entries long, so no write misses; the Option only avoids
/// indexing.
fn encode(
    header: &SchemaHeader,
    regions: &[RegionEntryInfo],
    workers: &[WorkerRings],
    out: &mut [u8],
) -> Option<()> {
    header.write(out)?;
    let (entries, slots) = out
        .get_mut(HEADER_SIZE..)?
        .split_at_mut_checked(regions.len().checked_mul(ENTRY_SIZE)?)?;
    for (chunk, region) in entries.chunks_exact_mut(ENTRY_SIZE).zip(regions) {
        region.to_entry().write(chunk)?;
    }
    for (chunk, w) in slots.chunks_exact_mut(WORKER_SIZE).zip(workers) {
        WorkerEntry {
            to_worker: w.to_worker.to_entry(),
            from_worker: w.from_worker.to_entry(),
        }
        .write(chunk)?;
    }
    Some(())
}

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
        get_u32(bytes, offset_of!(SchemaHeader, total_size)).map(|t| t as usize)
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
fn parse_name(field: &[u8]) -> Result<&str, SchemaError> {
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

fn parse_ring(
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
fn parse_worker(slot: u32, raw: &WorkerEntry, span_size: u64) -> Result<WorkerRings, SchemaError> {
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

fn parse_region(
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
    if guard {
        // A guard is whole PROT_NONE pages: its object fields mean nothing,
        // but an empty guard would guard nothing.
        if size == 0 {
            return Err(SchemaError::EmptyGuard { id });
        }
    } else {
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
        if huge && (offset % page != 0 || size % page != 0) {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Field sizes of each struct, in declaration order: their sum is the
    /// struct's size, so no padding hides between or after them.
    #[test]
    fn structs_have_no_padding() {
        let header_fields = [
            8,
            4,
            4,
            4,
            4,
            4,
            4,
            8,
            64,
            4 * size_of::<RingEntry>(),
            8,
            4,
            4,
        ];
        assert_eq!(
            header_fields.iter().sum::<usize>(),
            size_of::<SchemaHeader>()
        );
        let ring_fields = [4, 4, 8, 8, 8, 8, 4, 4];
        assert_eq!(ring_fields.iter().sum::<usize>(), size_of::<RingEntry>());
        let entry_fields = [4, 4, 8, 8, 8, 4, 4, 8, 16];
        assert_eq!(entry_fields.iter().sum::<usize>(), size_of::<RegionEntry>());
    }

    #[test]
    fn sizes_match_the_documented_layout() {
        assert_eq!(size_of::<SchemaHeader>(), 312);
        assert_eq!(size_of::<RingEntry>(), 48);
        assert_eq!(size_of::<RegionEntry>(), 64);
        assert_eq!(size_of::<SchemaHeader>() % 8, 0);
        assert_eq!(schema_size(0, 0), 312);
        assert_eq!(schema_size(3, 2), 312 + 3 * 64 + 2 * 96);
        assert_eq!(schema_size(usize::MAX, 0), usize::MAX);
    }

    #[test]
    fn offsets_match_the_documented_layout() {
        let header = [
            (offset_of!(SchemaHeader, magic), 0),
            (offset_of!(SchemaHeader, version), 8),
            (offset_of!(SchemaHeader, header_size), 12),
            (offset_of!(SchemaHeader, entry_size), 16),
            (offset_of!(SchemaHeader, region_count), 20),
            (offset_of!(SchemaHeader, total_size), 24),
            (offset_of!(SchemaHeader, arena_kind), 28),
            (offset_of!(SchemaHeader, span_size), 32),
            (offset_of!(SchemaHeader, name), 40),
            (offset_of!(SchemaHeader, rings), 104),
        ];
        let ring = [
            (offset_of!(RingEntry, present), 0),
            (offset_of!(RingEntry, entries), 4),
            (offset_of!(RingEntry, producer), 8),
            (offset_of!(RingEntry, consumer), 16),
            (offset_of!(RingEntry, desc), 24),
            (offset_of!(RingEntry, flags), 32),
            (offset_of!(RingEntry, desc_size), 40),
            (offset_of!(RingEntry, reserved), 44),
        ];
        let entry = [
            (offset_of!(RegionEntry, id), 0),
            (offset_of!(RegionEntry, flags), 4),
            (offset_of!(RegionEntry, offset), 8),
            (offset_of!(RegionEntry, size), 16),
            (offset_of!(RegionEntry, obj_size), 24),
            (offset_of!(RegionEntry, obj_count), 32),
            (offset_of!(RegionEntry, seg_count), 36),
            (offset_of!(RegionEntry, seg_size), 40),
            (offset_of!(RegionEntry, uuid), 48),
        ];
        for (actual, documented) in header.into_iter().chain(ring).chain(entry) {
            assert_eq!(actual, documented);
        }
    }

    /// The encoder, not just the struct, puts each field where the table
    /// says, little-endian.
    #[test]
    fn encoder_writes_each_field_little_endian_at_its_documented_offset() {
        let info = SchemaInfo {
            kind: SchemaArenaKind::Necp,
            name: "ab".into(),
            span_size: 0x1_0000_3000,
            regions: vec![RegionEntryInfo {
                id: RegionId::GuardHead,
                flags: RegionFlags::template(RegionId::GuardHead),
                offset: 0,
                size: 0x1000,
                obj_size: 0x1000,
                obj_count: 1,
                seg_count: 1,
                seg_size: 0x1000,
                uuid: [7; 16],
            }],
            rings: [
                None,
                Some(RingInfo {
                    entries: 0x40,
                    producer: 0x2000,
                    consumer: 0x2040,
                    desc: 0x20c0,
                    flags: 0x2084,
                    desc_size: 8,
                }),
                None,
                None,
            ],
            generation: 0x0102_0304_0506_0708,
            workers: vec![WorkerRings {
                to_worker: RingInfo {
                    entries: 0x40,
                    producer: 0x2100,
                    consumer: 0x2140,
                    desc: 0x2200,
                    flags: 0x2180,
                    desc_size: 16,
                },
                from_worker: RingInfo {
                    entries: 0x40,
                    producer: 0x2700,
                    consumer: 0x2740,
                    desc: 0x2800,
                    flags: 0x2780,
                    desc_size: 16,
                },
            }],
        };
        let mut b = [0xeeu8; 520];
        assert_eq!(write_schema(&info, &mut b), Ok(472));
        assert_eq!(&b[0..8], b"SKMEMSCH");
        assert_eq!(b[8..12], 3u32.to_le_bytes());
        assert_eq!(b[12..16], 312u32.to_le_bytes());
        assert_eq!(b[16..20], 64u32.to_le_bytes());
        assert_eq!(b[20..24], 1u32.to_le_bytes());
        assert_eq!(b[24..28], 472u32.to_le_bytes());
        assert_eq!(b[28..32], 2u32.to_le_bytes());
        assert_eq!(b[32..40], 0x1_0000_3000u64.to_le_bytes());
        assert_eq!(&b[40..43], b"ab\0");
        assert!(b[43..104].iter().all(|&x| x == 0));
        // Fill ring absent: 48 zero bytes.
        assert!(b[104..152].iter().all(|&x| x == 0));
        // Completion ring at 152.
        assert_eq!(b[152..156], 1u32.to_le_bytes());
        assert_eq!(b[156..160], 0x40u32.to_le_bytes());
        assert_eq!(b[160..168], 0x2000u64.to_le_bytes());
        assert_eq!(b[168..176], 0x2040u64.to_le_bytes());
        assert_eq!(b[176..184], 0x20c0u64.to_le_bytes());
        assert_eq!(b[184..192], 0x2084u64.to_le_bytes());
        assert_eq!(b[192..196], 8u32.to_le_bytes());
        assert_eq!(b[196..200], [0; 4]);
        assert!(b[200..296].iter().all(|&x| x == 0));
        // The generation at 296, the worker count and entry size after it.
        assert_eq!(b[296..304], 0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(b[304..308], 1u32.to_le_bytes());
        assert_eq!(b[308..312], 96u32.to_le_bytes());
        // The region entry at 312.
        assert_eq!(b[312..316], 0u32.to_le_bytes());
        assert_eq!(
            b[316..320],
            RegionFlags::template(RegionId::GuardHead)
                .bits()
                .to_le_bytes()
        );
        assert_eq!(b[320..328], 0u64.to_le_bytes());
        assert_eq!(b[328..336], 0x1000u64.to_le_bytes());
        assert_eq!(b[336..344], 0x1000u64.to_le_bytes());
        assert_eq!(b[344..348], 1u32.to_le_bytes());
        assert_eq!(b[348..352], 1u32.to_le_bytes());
        assert_eq!(b[352..360], 0x1000u64.to_le_bytes());
        assert_eq!(b[360..376], [7; 16]);
        // The worker entry at 376: its two rings, 48 bytes each.
        assert_eq!(b[376..380], 1u32.to_le_bytes());
        assert_eq!(b[384..392], 0x2100u64.to_le_bytes());
        assert_eq!(b[416..420], 16u32.to_le_bytes());
        assert_eq!(b[424..428], 1u32.to_le_bytes());
        assert_eq!(b[432..440], 0x2700u64.to_le_bytes());
        assert_eq!(b[448..456], 0x2800u64.to_le_bytes());
        // Past the schema, untouched.
        assert!(b[472..].iter().all(|&x| x == 0xee));
    }

    #[test]
    fn field_helpers_refuse_ranges_outside_the_slice() {
        let mut b = [0u8; 6];
        assert_eq!(get_u32(&b, 2), Some(0));
        assert_eq!(get_u32(&b, 3), None);
        assert_eq!(get_u64(&b, usize::MAX), None);
        assert_eq!(put_u32(&mut b, 3, 1), None);
        assert_eq!(put_u64(&mut b, usize::MAX - 2, 1), None);
        assert_eq!(put_u32(&mut b, 2, 0x0403_0201), Some(()));
        assert_eq!(b, [0, 0, 1, 2, 3, 4]);
    }
}
