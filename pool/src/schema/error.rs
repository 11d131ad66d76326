//! Why a schema is refused: one variant per check, so a mapper says
//! exactly what was wrong with the bytes it was given.

use super::*;

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
