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
//!
//! # Where things are
//!
//! The constants here; the `#[repr(C)]` structs and their field-by-field
//! codec in `layout`; the decoded form ([`SchemaInfo`] and its parts) in
//! `info`; writing ([`write_schema`]) in `write`; reading
//! ([`SchemaView::parse`]) in `view`; every way bytes are refused
//! ([`SchemaError`]) in `error`.

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

mod error;
mod info;
mod layout;
pub mod objects;
mod view;
mod write;

pub use error::*;
pub use info::*;
pub use layout::*;
pub use view::*;
pub use write::*;

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
    fn fields_refuse_ranges_outside_the_slice() {
        let mut b = [0u8; 6];
        assert_eq!(u32::get(&b, 2), Some(0));
        assert_eq!(u32::get(&b, 3), None);
        assert_eq!(u64::get(&b, usize::MAX), None);
        assert_eq!(1u32.put(&mut b, 3), None);
        assert_eq!(1u64.put(&mut b, usize::MAX - 2), None);
        assert_eq!(0x0403_0201u32.put(&mut b, 2), Some(()));
        assert_eq!(b, [0, 0, 1, 2, 3, 4]);
        // A ring past the end of a header-sized buffer.
        assert_eq!(RingEntry::get(&b, 0), None);
    }
}
