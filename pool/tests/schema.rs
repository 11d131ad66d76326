//! The schema: writing, parsing, and refusing every kind of bad schema.
//!
//! Each validation rule has a test that writes a valid schema, corrupts
//! exactly the field that rule guards, and checks the exact error. Proptests
//! throw random and randomly damaged bytes at the parser.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::mem::{offset_of, size_of};

use proptest::prelude::*;
use skmem::region::{RegionFlags, RegionId, RegionParams};
use skmem::schema::{
    schema_size, write_schema, RegionEntry, RegionEntryInfo, RingEntry, RingInfo, RingKind,
    SchemaArenaKind, SchemaError, SchemaHeader, SchemaInfo, SchemaView, SCHEMA_NAME_MAX,
    SCHEMA_VERSION,
};

const PAGE: u64 = 4096;

/// A non-guard region of `seg_count` segments of `seg_size` bytes holding
/// `obj_count` objects of `obj_size` bytes, at span offset `offset`.
fn region(
    id: RegionId,
    offset: u64,
    (seg_size, seg_count): (u64, u32),
    (obj_size, obj_count): (u64, u32),
) -> RegionEntryInfo {
    RegionEntryInfo {
        id,
        flags: RegionFlags::template(id),
        offset,
        size: seg_size * u64::from(seg_count),
        obj_size,
        obj_count,
        seg_count,
        seg_size,
        uuid: [id.index() as u8 + 1; 16],
    }
}

/// One ring in its own page at span offset `base`, laid out like the
/// kernel's `struct xdp_ring`: producer and consumer a cache line apart,
/// flags right after the consumer's padding line (4-aligned only), the
/// descriptors from byte 192.
fn ring(base: u64, entries: u32, desc_size: u32) -> RingInfo {
    RingInfo {
        entries,
        producer: base,
        consumer: base + 64,
        desc: base + 192,
        flags: base + 132,
        desc_size,
    }
}

// Entry positions in `nexus()`.
const GUARD_HEAD: usize = 0;
const SCHEMA: usize = 1;
const RING: usize = 2;
const BUF_DEF: usize = 3;
const UMD: usize = 4;
const GUARD_TAIL: usize = 5;

const SPAN: u64 = 47 * PAGE;

/// A nexus arena's schema: guards, schema, a four-page ring region holding
/// all four rings, 64 buffers of 2 KiB in 4 segments, 256 metadata objects.
fn nexus() -> SchemaInfo {
    let regions = vec![
        region(RegionId::GuardHead, 0, (PAGE, 1), (PAGE, 1)),
        region(RegionId::Schema, PAGE, (PAGE, 1), (PAGE, 1)),
        region(RegionId::Ring, 2 * PAGE, (4 * PAGE, 1), (PAGE, 4)),
        region(RegionId::BufDef, 6 * PAGE, (8 * PAGE, 4), (2048, 64)),
        region(RegionId::Umd, 38 * PAGE, (8 * PAGE, 1), (128, 256)),
        region(RegionId::GuardTail, 46 * PAGE, (PAGE, 1), (PAGE, 1)),
    ];
    assert_eq!(regions[GUARD_TAIL].end(), Some(SPAN));
    SchemaInfo {
        kind: SchemaArenaKind::Nexus,
        name: "nexus.eth0".into(),
        span_size: SPAN,
        regions,
        rings: [
            Some(ring(2 * PAGE, 256, 8)),
            Some(ring(3 * PAGE, 256, 8)),
            Some(ring(4 * PAGE, 128, 16)),
            Some(ring(5 * PAGE, 128, 16)),
        ],
        generation: 6,
        workers: Vec::new(),
    }
}

fn encode(info: &SchemaInfo) -> Vec<u8> {
    let mut b = vec![0; schema_size(info.regions.len(), info.workers.len())];
    assert_eq!(write_schema(info, &mut b), Ok(b.len()));
    b
}

/// The valid nexus schema's bytes.
fn valid() -> Vec<u8> {
    encode(&nexus())
}

fn parse_err(b: &[u8]) -> SchemaError {
    SchemaView::parse(b, SPAN).expect_err("corrupted schema was accepted")
}

/// Byte position of a header field.
fn header_field(field: usize) -> usize {
    field
}

/// Byte position of a field of ring `kind`.
fn ring_field(kind: RingKind, field: usize) -> usize {
    offset_of!(SchemaHeader, rings) + kind.index() * size_of::<RingEntry>() + field
}

/// Byte position of a field of region entry `index`.
fn entry_field(index: usize, field: usize) -> usize {
    size_of::<SchemaHeader>() + index * size_of::<RegionEntry>() + field
}

fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The valid schema with the u32 at `at` replaced by `v`, parsed.
fn with_u32(at: usize, v: u32) -> Result<(), SchemaError> {
    let mut b = valid();
    set_u32(&mut b, at, v);
    SchemaView::parse(&b, SPAN).map(|_| ())
}

/// The valid schema with the u64 at `at` replaced by `v`, parsed.
fn with_u64(at: usize, v: u64) -> Result<(), SchemaError> {
    let mut b = valid();
    set_u64(&mut b, at, v);
    SchemaView::parse(&b, SPAN).map(|_| ())
}

// ---------------------------------------------------------------------------
// Writing and reading back.

#[test]
fn a_written_schema_parses_back_to_the_same_description() {
    let info = nexus();
    let b = encode(&info);
    assert_eq!(b.len(), 312 + 6 * 64);
    let view = SchemaView::parse(&b, SPAN).unwrap();
    assert_eq!(view.to_info(), info);
    assert_eq!(view.version(), SCHEMA_VERSION);
    assert_eq!(view.kind(), SchemaArenaKind::Nexus);
    assert_eq!(view.name(), "nexus.eth0");
    assert_eq!(view.span_size(), SPAN);
    assert_eq!(view.total_size(), b.len());
    assert_eq!(view.region_count(), 6);
    assert_eq!(view.regions().collect::<Vec<_>>(), info.regions);
    for kind in RingKind::ALL {
        assert_eq!(view.ring(kind), info.rings[kind.index()]);
        assert_eq!(view.ring(kind), info.ring(kind));
    }
}

#[test]
fn regions_are_found_by_id_and_absent_ones_are_none() {
    let b = valid();
    let view = SchemaView::parse(&b, SPAN).unwrap();
    let buf = view.region(RegionId::BufDef).unwrap();
    assert_eq!((buf.offset, buf.size), (6 * PAGE, 32 * PAGE));
    assert_eq!((buf.obj_size, buf.obj_count), (2048, 64));
    assert_eq!((buf.seg_size, buf.seg_count), (8 * PAGE, 4));
    assert_eq!(buf.uuid, [RegionId::BufDef.index() as u8 + 1; 16]);
    assert_eq!(buf.flags, RegionFlags::template(RegionId::BufDef));
    assert_eq!(view.region(RegionId::BufLarge), None);
    assert_eq!(view.region(RegionId::Kmd), None);
}

#[test]
fn a_schema_without_regions_or_rings_round_trips() {
    let info = SchemaInfo {
        kind: SchemaArenaKind::System,
        name: String::new(),
        span_size: 0,
        regions: vec![],
        rings: [None; 4],
        generation: 0,
        workers: Vec::new(),
    };
    let b = encode(&info);
    assert_eq!(b.len(), 312);
    let view = SchemaView::parse(&b, 0).unwrap();
    assert_eq!(view.to_info(), info);
    assert_eq!(view.regions().count(), 0);
    assert_eq!(view.ring(RingKind::Tx), None);
}

#[test]
fn rings_are_zeroed_until_the_socket_exists() {
    let mut info = nexus();
    info.kind = SchemaArenaKind::Necp;
    info.rings = [None, None, Some(ring(4 * PAGE, 64, 16)), None];
    let b = encode(&info);
    let fill = ring_field(RingKind::Fill, 0);
    assert!(b[fill..fill + 2 * size_of::<RingEntry>()]
        .iter()
        .all(|&x| x == 0));
    let view = SchemaView::parse(&b, SPAN).unwrap();
    assert_eq!(view.to_info(), info);
    assert_eq!(view.ring(RingKind::Fill), None);
    assert_eq!(view.ring(RingKind::Rx), Some(ring(4 * PAGE, 64, 16)));
}

#[test]
fn the_writer_leaves_bytes_past_the_schema_alone_and_the_reader_ignores_them() {
    let info = nexus();
    let mut page = vec![0xab; PAGE as usize];
    let n = write_schema(&info, &mut page).unwrap();
    assert_eq!(n, schema_size(6, 0));
    assert!(page[n..].iter().all(|&x| x == 0xab));
    let view = SchemaView::parse(&page, SPAN).unwrap();
    assert_eq!(view.to_info(), info);
    assert_eq!(view.total_size(), n);
}

#[test]
fn a_longest_name_and_a_non_ascii_name_round_trip() {
    for name in ["n".repeat(SCHEMA_NAME_MAX), "arène.ñ.日本".to_owned()] {
        let mut info = nexus();
        info.name = name.clone();
        let b = encode(&info);
        assert_eq!(SchemaView::parse(&b, SPAN).unwrap().name(), name);
    }
}

#[test]
fn an_entry_from_a_configured_geometry_passes_validation() {
    let params = RegionParams::new(RegionId::BufDef, 2048, 100);
    let geom = params.configure().unwrap();
    let entry = RegionEntryInfo::from_geometry(RegionId::BufDef, params.flags, 0, &geom, [9; 16]);
    assert_eq!(entry.size, geom.size() as u64);
    assert_eq!(entry.obj_count, geom.obj_count);
    let info = SchemaInfo {
        kind: SchemaArenaKind::Nexus,
        name: "geom".into(),
        span_size: entry.size,
        regions: vec![entry],
        rings: [None; 4],
        generation: 2,
        workers: Vec::new(),
    };
    let b = encode(&info);
    assert_eq!(SchemaView::parse(&b, entry.size).unwrap().to_info(), info);
}

#[test]
fn arena_kinds_convert_to_and_from_their_numbers() {
    for (kind, n) in [
        (SchemaArenaKind::Nexus, 1),
        (SchemaArenaKind::Necp, 2),
        (SchemaArenaKind::System, 3),
    ] {
        assert_eq!(u32::from(kind), n);
        assert_eq!(SchemaArenaKind::try_from(n), Ok(kind));
        assert_eq!(SchemaArenaKind::from_u32(n), Some(kind));
    }
    assert_eq!(
        SchemaArenaKind::try_from(0),
        Err(SchemaError::UnknownArenaKind { found: 0 })
    );
    assert_eq!(SchemaArenaKind::from_u32(4), None);
    assert_eq!(SchemaArenaKind::Necp.to_string(), "necp");
}

#[test]
fn rings_are_ordered_fill_completion_rx_tx() {
    assert_eq!(
        RingKind::ALL,
        [
            RingKind::Fill,
            RingKind::Completion,
            RingKind::Rx,
            RingKind::Tx
        ]
    );
    for (i, kind) in RingKind::ALL.into_iter().enumerate() {
        assert_eq!(kind.index(), i);
    }
    assert_eq!(RingKind::Completion.to_string(), "completion");
}

// ---------------------------------------------------------------------------
// The writer's own refusals.

#[test]
fn a_destination_too_small_is_refused_and_left_untouched() {
    let info = nexus();
    let needed = schema_size(6, 0);
    let mut dst = vec![0x5a; needed - 1];
    assert_eq!(
        write_schema(&info, &mut dst),
        Err(SchemaError::BufferTooSmall {
            len: needed - 1,
            needed
        })
    );
    assert!(dst.iter().all(|&x| x == 0x5a));
    assert_eq!(
        write_schema(&info, &mut []),
        Err(SchemaError::BufferTooSmall { len: 0, needed })
    );
}

#[test]
fn a_name_longer_than_63_bytes_is_refused() {
    let mut info = nexus();
    info.name = "n".repeat(64);
    assert_eq!(
        write_schema(&info, &mut [0; 1024]),
        Err(SchemaError::NameTooLong { len: 64, max: 63 })
    );
    // 32 two-byte characters: 64 bytes, though only 32 chars.
    info.name = "é".repeat(32);
    assert_eq!(
        write_schema(&info, &mut [0; 1024]),
        Err(SchemaError::NameTooLong { len: 64, max: 63 })
    );
}

#[test]
fn a_name_with_a_nul_is_refused_by_the_writer() {
    let mut info = nexus();
    info.name = "ab\0cd".into();
    assert_eq!(
        write_schema(&info, &mut [0; 1024]),
        Err(SchemaError::NameContainsNul { at: 2 })
    );
}

#[test]
fn more_regions_than_region_ids_are_refused_by_the_writer() {
    let mut info = nexus();
    info.regions = vec![info.regions[0]; RegionId::COUNT + 1];
    assert_eq!(
        write_schema(&info, &mut vec![0; 8192]),
        Err(SchemaError::TooManyRegions { count: 29, max: 28 })
    );
}

#[test]
fn the_writer_refuses_what_a_reader_would_refuse() {
    let mut info = nexus();
    info.regions[UMD].offset -= PAGE;
    assert_eq!(
        write_schema(&info, &mut [0; 1024]),
        Err(SchemaError::RegionsOverlap {
            id: RegionId::Umd,
            offset: 37 * PAGE,
            previous: RegionId::BufDef,
            previous_end: 38 * PAGE,
        })
    );

    let mut info = nexus();
    info.regions.swap(BUF_DEF, UMD);
    assert_eq!(
        write_schema(&info, &mut [0; 1024]),
        Err(SchemaError::RegionsOutOfOrder {
            index: UMD,
            id: RegionId::BufDef,
            previous: RegionId::Umd,
        })
    );

    let mut info = nexus();
    info.rings[RingKind::Tx.index()] = Some(ring(SPAN, 128, 16));
    assert!(matches!(
        write_schema(&info, &mut [0; 1024]),
        Err(SchemaError::RingIndexOutsideSpan {
            ring: RingKind::Tx,
            ..
        })
    ));
}

// ---------------------------------------------------------------------------
// The header.

#[test]
fn a_buffer_shorter_than_the_header_is_refused() {
    let b = valid();
    assert_eq!(
        parse_err(&b[..303]),
        SchemaError::TooShortForHeader {
            len: 303,
            needed: 312
        }
    );
    assert_eq!(
        parse_err(&[]),
        SchemaError::TooShortForHeader {
            len: 0,
            needed: 312
        }
    );
}

#[test]
fn bytes_without_the_magic_are_refused() {
    let mut b = valid();
    b[header_field(offset_of!(SchemaHeader, magic)) + 7] = b'X';
    assert_eq!(
        parse_err(&b),
        SchemaError::BadMagic {
            found: *b"SKMEMSCX"
        }
    );
}

#[test]
fn a_schema_from_another_version_is_refused() {
    for found in [0, 1, 2, 4, u32::MAX] {
        assert_eq!(
            with_u32(header_field(offset_of!(SchemaHeader, version)), found),
            Err(SchemaError::UnsupportedVersion {
                found,
                supported: 3
            })
        );
    }
}

#[test]
fn a_schema_copied_while_being_rewritten_is_refused() {
    for generation in [1, 7, u64::MAX] {
        assert_eq!(
            with_u64(
                header_field(offset_of!(SchemaHeader, generation)),
                generation
            ),
            Err(SchemaError::BeingRewritten { generation })
        );
    }
    assert_eq!(
        with_u64(header_field(offset_of!(SchemaHeader, generation)), 1 << 40),
        Ok(())
    );
}

#[test]
fn a_header_of_another_size_is_refused() {
    assert_eq!(
        with_u32(header_field(offset_of!(SchemaHeader, header_size)), 296),
        Err(SchemaError::HeaderSizeMismatch {
            found: 296,
            expected: 312
        })
    );
}

#[test]
fn entries_of_another_size_are_refused() {
    assert_eq!(
        with_u32(header_field(offset_of!(SchemaHeader, entry_size)), 72),
        Err(SchemaError::EntrySizeMismatch {
            found: 72,
            expected: 64
        })
    );
}

#[test]
fn more_regions_than_region_ids_are_refused() {
    for count in [29, u32::MAX] {
        assert_eq!(
            with_u32(header_field(offset_of!(SchemaHeader, region_count)), count),
            Err(SchemaError::TooManyRegions {
                count: u64::from(count),
                max: 28
            })
        );
    }
}

#[test]
fn a_total_size_that_disagrees_with_the_region_count_is_refused() {
    let total = 312 + 6 * 64;
    assert_eq!(
        with_u32(
            header_field(offset_of!(SchemaHeader, total_size)),
            total + 1
        ),
        Err(SchemaError::TotalSizeMismatch {
            found: total + 1,
            region_count: 6,
            expected: total
        })
    );
    assert_eq!(
        with_u32(header_field(offset_of!(SchemaHeader, region_count)), 5),
        Err(SchemaError::TotalSizeMismatch {
            found: total,
            region_count: 5,
            expected: total - 64
        })
    );
}

#[test]
fn a_schema_whose_entries_run_past_the_bytes_is_refused() {
    let b = valid();
    let total = b.len();
    assert_eq!(
        parse_err(&b[..total - 1]),
        SchemaError::TooShortForEntries {
            len: total - 1,
            total_size: total as u32
        }
    );
    // A consistent header that claims one entry more than there is.
    let mut b = valid();
    set_u32(&mut b, offset_of!(SchemaHeader, region_count), 7);
    set_u32(
        &mut b,
        offset_of!(SchemaHeader, total_size),
        total as u32 + 64,
    );
    assert_eq!(
        parse_err(&b),
        SchemaError::TooShortForEntries {
            len: total,
            total_size: total as u32 + 64
        }
    );
}

#[test]
fn a_schema_for_a_span_of_another_size_is_refused() {
    let b = valid();
    assert_eq!(
        SchemaView::parse(&b, SPAN + PAGE).unwrap_err(),
        SchemaError::SpanSizeMismatch {
            found: SPAN,
            expected: SPAN + PAGE
        }
    );
    assert_eq!(
        with_u64(header_field(offset_of!(SchemaHeader, span_size)), SPAN - 1),
        Err(SchemaError::SpanSizeMismatch {
            found: SPAN - 1,
            expected: SPAN
        })
    );
}

#[test]
fn a_name_without_a_terminating_nul_is_refused() {
    let mut b = valid();
    let name = offset_of!(SchemaHeader, name);
    b[name..name + 64].fill(b'a');
    assert_eq!(parse_err(&b), SchemaError::NameNotTerminated);
}

#[test]
fn a_name_that_is_not_utf8_is_refused() {
    let mut b = valid();
    b[offset_of!(SchemaHeader, name) + 3] = 0xff;
    assert_eq!(parse_err(&b), SchemaError::NameNotUtf8 { valid_up_to: 3 });
}

#[test]
fn a_name_with_bytes_after_its_terminator_is_refused() {
    let mut b = valid();
    b[offset_of!(SchemaHeader, name) + 50] = b'x';
    assert_eq!(parse_err(&b), SchemaError::NameNotNulPadded { at: 50 });
}

#[test]
fn an_unknown_arena_kind_is_refused() {
    for found in [0, 4, u32::MAX] {
        assert_eq!(
            with_u32(header_field(offset_of!(SchemaHeader, arena_kind)), found),
            Err(SchemaError::UnknownArenaKind { found })
        );
    }
}

// ---------------------------------------------------------------------------
// Rings.

#[test]
fn a_ring_presence_other_than_0_or_1_is_refused() {
    assert_eq!(
        with_u32(ring_field(RingKind::Rx, offset_of!(RingEntry, present)), 2),
        Err(SchemaError::RingPresenceInvalid {
            ring: RingKind::Rx,
            found: 2
        })
    );
}

#[test]
fn an_absent_ring_with_leftover_fields_is_refused() {
    let mut info = nexus();
    info.rings[RingKind::Completion.index()] = None;
    for field in [
        offset_of!(RingEntry, entries),
        offset_of!(RingEntry, reserved),
    ] {
        let mut b = encode(&info);
        set_u32(&mut b, ring_field(RingKind::Completion, field), 64);
        assert_eq!(
            parse_err(&b),
            SchemaError::AbsentRingNotZeroed {
                ring: RingKind::Completion
            }
        );
    }
}

#[test]
fn a_ring_with_a_non_zero_reserved_field_is_refused() {
    assert_eq!(
        with_u32(ring_field(RingKind::Tx, offset_of!(RingEntry, reserved)), 1),
        Err(SchemaError::RingReservedNotZero {
            ring: RingKind::Tx,
            found: 1
        })
    );
}

#[test]
fn a_ring_size_that_is_not_a_power_of_two_is_refused() {
    for entries in [0, 3, 100, u32::MAX] {
        assert_eq!(
            with_u32(
                ring_field(RingKind::Fill, offset_of!(RingEntry, entries)),
                entries
            ),
            Err(SchemaError::RingEntriesNotPowerOfTwo {
                ring: RingKind::Fill,
                entries
            })
        );
    }
}

#[test]
fn ring_indices_outside_the_span_are_refused() {
    for (field, name) in [
        (offset_of!(RingEntry, producer), "producer"),
        (offset_of!(RingEntry, consumer), "consumer"),
        (offset_of!(RingEntry, flags), "flags"),
    ] {
        // The last 4 bytes of the span: a u32 would fit, 8 bytes do not.
        for offset in [SPAN - 4, SPAN, u64::MAX - 3] {
            assert_eq!(
                with_u64(ring_field(RingKind::Completion, field), offset),
                Err(SchemaError::RingIndexOutsideSpan {
                    ring: RingKind::Completion,
                    field: name,
                    offset,
                    span_size: SPAN
                })
            );
        }
    }
    // The last 8 bytes of the span are still inside it.
    assert_eq!(
        with_u64(
            ring_field(RingKind::Completion, offset_of!(RingEntry, flags)),
            SPAN - 8
        ),
        Ok(())
    );
}

#[test]
fn misaligned_ring_offsets_are_refused() {
    for (field, name, offset, align) in [
        (offset_of!(RingEntry, producer), "producer", 2 * PAGE + 2, 4),
        (
            offset_of!(RingEntry, consumer),
            "consumer",
            2 * PAGE + 65,
            4,
        ),
        (offset_of!(RingEntry, flags), "flags", 2 * PAGE + 131, 4),
        (offset_of!(RingEntry, desc), "desc", 2 * PAGE + 196, 8),
    ] {
        assert_eq!(
            with_u64(ring_field(RingKind::Fill, field), offset),
            Err(SchemaError::RingMisaligned {
                ring: RingKind::Fill,
                field: name,
                offset,
                align
            })
        );
    }
}

#[test]
fn a_ring_with_zero_byte_descriptors_is_refused() {
    assert_eq!(
        with_u32(
            ring_field(RingKind::Rx, offset_of!(RingEntry, desc_size)),
            0
        ),
        Err(SchemaError::RingDescSizeZero { ring: RingKind::Rx })
    );
}

#[test]
fn ring_descriptors_past_the_span_are_refused() {
    // 2^31 descriptors of 16 bytes from inside the span.
    assert_eq!(
        with_u32(
            ring_field(RingKind::Tx, offset_of!(RingEntry, entries)),
            1 << 31
        ),
        Err(SchemaError::RingDescriptorsOutsideSpan {
            ring: RingKind::Tx,
            desc: 5 * PAGE + 192,
            entries: 1 << 31,
            desc_size: 16,
            span_size: SPAN
        })
    );
    // An array whose end overflows u64.
    let desc = u64::MAX - 7;
    assert_eq!(
        with_u64(ring_field(RingKind::Tx, offset_of!(RingEntry, desc)), desc),
        Err(SchemaError::RingDescriptorsOutsideSpan {
            ring: RingKind::Tx,
            desc,
            entries: 128,
            desc_size: 16,
            span_size: SPAN
        })
    );
    // An array ending exactly at the span's end is inside it.
    assert_eq!(
        with_u64(
            ring_field(RingKind::Tx, offset_of!(RingEntry, desc)),
            SPAN - 128 * 16
        ),
        Ok(())
    );
}

// ---------------------------------------------------------------------------
// Region entries.

#[test]
fn an_entry_that_names_no_region_is_refused() {
    for id in [RegionId::COUNT as u32, u32::MAX] {
        assert_eq!(
            with_u32(entry_field(UMD, offset_of!(RegionEntry, id)), id),
            Err(SchemaError::UnknownRegionId { index: UMD, id })
        );
    }
}

#[test]
fn an_owner_private_region_in_the_span_is_refused() {
    assert_eq!(
        with_u32(
            entry_field(UMD, offset_of!(RegionEntry, id)),
            RegionId::Kmd.index() as u32
        ),
        Err(SchemaError::RegionNotMappable {
            index: UMD,
            id: RegionId::Kmd
        })
    );
}

#[test]
fn a_region_listed_twice_is_refused() {
    assert_eq!(
        with_u32(
            entry_field(RING, offset_of!(RegionEntry, id)),
            RegionId::Schema.index() as u32
        ),
        Err(SchemaError::DuplicateRegion {
            index: RING,
            id: RegionId::Schema
        })
    );
}

#[test]
fn regions_out_of_id_order_are_refused() {
    assert_eq!(
        with_u32(
            entry_field(RING, offset_of!(RegionEntry, id)),
            RegionId::GuardHead.index() as u32
        ),
        Err(SchemaError::RegionsOutOfOrder {
            index: RING,
            id: RegionId::GuardHead,
            previous: RegionId::Schema
        })
    );
}

#[test]
fn unknown_region_flag_bits_are_refused() {
    let flags = RegionFlags::template(RegionId::BufDef).bits() | 1 << 31 | 1 << 7;
    assert_eq!(
        with_u32(entry_field(BUF_DEF, offset_of!(RegionEntry, flags)), flags),
        Err(SchemaError::UnknownRegionFlags {
            id: RegionId::BufDef,
            bits: 1 << 31 | 1 << 7
        })
    );
}

#[test]
fn a_region_without_mmapok_is_refused() {
    let flags = RegionFlags::template(RegionId::Umd) - RegionFlags::MMAPOK;
    assert_eq!(
        with_u32(
            entry_field(UMD, offset_of!(RegionEntry, flags)),
            flags.bits()
        ),
        Err(SchemaError::RegionNotMmapOk {
            id: RegionId::Umd,
            flags
        })
    );
}

#[test]
fn a_guard_flag_that_disagrees_with_the_region_is_refused() {
    let flags = RegionFlags::template(RegionId::BufDef) | RegionFlags::GUARD;
    assert_eq!(
        with_u32(
            entry_field(BUF_DEF, offset_of!(RegionEntry, flags)),
            flags.bits()
        ),
        Err(SchemaError::GuardFlagMismatch {
            id: RegionId::BufDef,
            flags
        })
    );
    let flags = RegionFlags::template(RegionId::GuardHead) - RegionFlags::GUARD;
    assert_eq!(
        with_u32(
            entry_field(GUARD_HEAD, offset_of!(RegionEntry, flags)),
            flags.bits()
        ),
        Err(SchemaError::GuardFlagMismatch {
            id: RegionId::GuardHead,
            flags
        })
    );
}

#[test]
fn a_region_whose_end_overflows_is_refused() {
    let offset = u64::MAX - PAGE + 1;
    assert_eq!(
        with_u64(
            entry_field(GUARD_TAIL, offset_of!(RegionEntry, offset)),
            offset
        ),
        Err(SchemaError::RegionEndOverflows {
            id: RegionId::GuardTail,
            offset,
            size: PAGE
        })
    );
}

#[test]
fn a_region_past_the_end_of_the_span_is_refused() {
    assert_eq!(
        with_u64(
            entry_field(GUARD_TAIL, offset_of!(RegionEntry, size)),
            2 * PAGE
        ),
        Err(SchemaError::RegionOutsideSpan {
            id: RegionId::GuardTail,
            offset: 46 * PAGE,
            size: 2 * PAGE,
            span_size: SPAN
        })
    );
}

#[test]
fn overlapping_regions_are_refused() {
    // BUF_DEF starts one byte before the ring region ends.
    let offset = 6 * PAGE - 1;
    assert_eq!(
        with_u64(
            entry_field(BUF_DEF, offset_of!(RegionEntry, offset)),
            offset
        ),
        Err(SchemaError::RegionsOverlap {
            id: RegionId::BufDef,
            offset,
            previous: RegionId::Ring,
            previous_end: 6 * PAGE
        })
    );
    // Ids in order but offsets not: SCHEMA placed before GUARD_HEAD's end.
    assert_eq!(
        with_u64(entry_field(SCHEMA, offset_of!(RegionEntry, offset)), 0),
        Err(SchemaError::RegionsOverlap {
            id: RegionId::Schema,
            offset: 0,
            previous: RegionId::GuardHead,
            previous_end: PAGE
        })
    );
}

#[test]
fn gaps_between_regions_are_allowed() {
    let mut info = nexus();
    info.regions.remove(UMD);
    let b = encode(&info);
    assert_eq!(SchemaView::parse(&b, SPAN).unwrap().to_info(), info);
}

#[test]
fn more_objects_than_a_region_holds_are_refused() {
    assert_eq!(
        with_u32(entry_field(BUF_DEF, offset_of!(RegionEntry, obj_count)), 65),
        Err(SchemaError::ObjectsExceedRegion {
            id: RegionId::BufDef,
            obj_size: 2048,
            obj_count: 65,
            size: 32 * PAGE
        })
    );
    // obj_size × obj_count overflows u64.
    assert_eq!(
        with_u64(
            entry_field(BUF_DEF, offset_of!(RegionEntry, obj_size)),
            u64::MAX / 2
        ),
        Err(SchemaError::ObjectsExceedRegion {
            id: RegionId::BufDef,
            obj_size: u64::MAX / 2,
            obj_count: 64,
            size: 32 * PAGE
        })
    );
}

#[test]
fn segments_that_do_not_make_up_the_region_are_refused() {
    assert_eq!(
        with_u32(entry_field(BUF_DEF, offset_of!(RegionEntry, seg_count)), 3),
        Err(SchemaError::SegmentsDoNotCoverRegion {
            id: RegionId::BufDef,
            seg_size: 8 * PAGE,
            seg_count: 3,
            size: 32 * PAGE
        })
    );
    // seg_size × seg_count overflows u64.
    assert_eq!(
        with_u64(
            entry_field(BUF_DEF, offset_of!(RegionEntry, seg_size)),
            u64::MAX / 2
        ),
        Err(SchemaError::SegmentsDoNotCoverRegion {
            id: RegionId::BufDef,
            seg_size: u64::MAX / 2,
            seg_count: 4,
            size: 32 * PAGE
        })
    );
}

#[test]
fn an_empty_guard_is_refused() {
    assert_eq!(
        with_u64(entry_field(GUARD_TAIL, offset_of!(RegionEntry, size)), 0),
        Err(SchemaError::EmptyGuard {
            id: RegionId::GuardTail
        })
    );
}

#[test]
fn a_guards_object_fields_are_not_checked() {
    let mut info = nexus();
    let g = &mut info.regions[GUARD_HEAD];
    (g.obj_size, g.obj_count, g.seg_size, g.seg_count) = (u64::MAX, u32::MAX, 3, 7);
    let b = encode(&info);
    assert_eq!(SchemaView::parse(&b, SPAN).unwrap().to_info(), info);
}

#[test]
fn every_truncation_of_a_valid_schema_is_refused() {
    let b = valid();
    for len in 0..b.len() {
        let e = SchemaView::parse(&b[..len], SPAN).unwrap_err();
        if len < 312 {
            assert_eq!(e, SchemaError::TooShortForHeader { len, needed: 312 });
        } else {
            assert_eq!(
                e,
                SchemaError::TooShortForEntries {
                    len,
                    total_size: b.len() as u32
                }
            );
        }
    }
    assert!(SchemaView::parse(&b, SPAN).is_ok());
}

#[test]
fn errors_say_what_was_wrong() {
    let e = with_u32(entry_field(BUF_DEF, offset_of!(RegionEntry, seg_count)), 3).unwrap_err();
    assert_eq!(
        e.to_string(),
        "region buf_def: 3 segments of 32768 bytes do not make its 131072 bytes"
    );
    let e = with_u32(header_field(offset_of!(SchemaHeader, version)), 2).unwrap_err();
    assert_eq!(
        e.to_string(),
        "schema version 2 is not supported (this reader knows version 3)"
    );
}

// ---------------------------------------------------------------------------
// Properties.

/// Checks, independently of the parser, everything a mapper relies on; and
/// that the bytes are the canonical encoding of what was parsed.
fn check_invariants(view: &SchemaView<'_>, bytes: &[u8], span: u64) {
    assert_eq!(view.span_size(), span);
    assert!(view.name().len() <= SCHEMA_NAME_MAX && !view.name().contains('\0'));
    let regions: Vec<_> = view.regions().collect();
    assert_eq!(regions.len(), view.region_count());
    assert!(regions.len() <= RegionId::COUNT);
    for r in &regions {
        let end = u128::from(r.offset) + u128::from(r.size);
        assert!(end <= u128::from(span), "{r:?} outside span {span}");
        assert!(r.id.is_user_mappable());
        assert!(r.flags.contains(RegionFlags::MMAPOK));
        assert_eq!(r.flags.contains(RegionFlags::GUARD), r.id.is_guard());
        if r.id.is_guard() {
            assert!(r.size > 0);
        } else {
            assert!(u128::from(r.obj_size) * u128::from(r.obj_count) <= u128::from(r.size));
            assert_eq!(
                u128::from(r.seg_size) * u128::from(r.seg_count),
                u128::from(r.size)
            );
        }
        assert_eq!(view.region(r.id), Some(*r));
    }
    for pair in regions.windows(2) {
        assert!(pair[0].id < pair[1].id);
        assert!(pair[0].offset + pair[0].size <= pair[1].offset, "{pair:?}");
    }
    for kind in RingKind::ALL {
        if let Some(r) = view.ring(kind) {
            assert!(r.entries.is_power_of_two());
            for at in [r.producer, r.consumer, r.flags] {
                assert!(u128::from(at) + 8 <= u128::from(span));
                assert_eq!(at % 4, 0);
            }
            assert_eq!(r.desc % 8, 0);
            assert!(
                u128::from(r.desc) + u128::from(r.entries) * u128::from(r.desc_size)
                    <= u128::from(span)
            );
        }
    }
    let workers: Vec<_> = view.workers().collect();
    assert!(workers.len() <= skmem::schema::SCHEMA_MAX_WORKERS);
    for w in &workers {
        for r in [w.to_worker, w.from_worker] {
            assert!(r.entries.is_power_of_two());
            assert_eq!(r.desc_size, 16);
            for at in [r.producer, r.consumer, r.flags] {
                assert!(u128::from(at) + 8 <= u128::from(span));
                assert_eq!(at % 4, 0);
            }
            assert!(u128::from(r.desc) + u128::from(r.entries) * 16 <= u128::from(span));
        }
    }
    let info = view.to_info();
    assert_eq!(info.workers, workers);
    let mut again = vec![0; view.total_size()];
    assert_eq!(write_schema(&info, &mut again), Ok(again.len()));
    assert_eq!(&again[..], &bytes[..view.total_size()]);
}

/// One region's shape: included?, gap pages before it, pages per segment,
/// segments, object size, share of the room filled with objects (per
/// mille), MIRRORED, uuid.
type RegionSpec = (bool, u64, u64, u32, u64, u64, bool, [u8; 16]);

/// One ring's shape: log2 of the size, wide (16-byte) descriptors, and
/// four random numbers that place its parts inside the span.
type RingSpec = (u32, bool, u64, u64, u64, u64);

fn region_spec() -> impl Strategy<Value = RegionSpec> {
    (
        any::<bool>(),
        0u64..3,
        1u64..5,
        0u32..5,
        prop::sample::select(vec![64u64, 128, 2048, 4096, 16384]),
        0u64..=1000,
        any::<bool>(),
        any::<[u8; 16]>(),
    )
}

fn ring_spec() -> impl Strategy<Value = RingSpec> {
    (
        0u32..9,
        any::<bool>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
    )
}

fn kind() -> impl Strategy<Value = SchemaArenaKind> {
    prop_oneof![
        Just(SchemaArenaKind::Nexus),
        Just(SchemaArenaKind::Necp),
        Just(SchemaArenaKind::System),
    ]
}

/// A random valid schema: any subset of the user-mappable regions in id
/// order with gaps, any geometry that adds up, rings anywhere in the span.
fn valid_info() -> impl Strategy<Value = SchemaInfo> {
    let mappable = RegionId::ALL
        .iter()
        .filter(|id| id.is_user_mappable())
        .count();
    (
        prop::collection::vec(region_spec(), mappable),
        1u64..4,
        prop::array::uniform4(prop::option::of(ring_spec())),
        "[a-zA-Z0-9é._-]{0,31}",
        kind(),
        any::<u32>(),
    )
        .prop_map(|(specs, tail_pages, rings, name, kind, generation)| {
            let mut regions = Vec::new();
            let mut end = 0;
            for (&id, spec) in RegionId::ALL.iter().zip(specs) {
                let (present, gap, pages, segs, obj_size, fill, mirrored, uuid) = spec;
                if !present || !id.is_user_mappable() {
                    continue;
                }
                let segs = if id.is_guard() { segs.max(1) } else { segs };
                let seg_size = pages * PAGE;
                let size = seg_size * u64::from(segs);
                let mut flags = RegionFlags::template(id);
                if mirrored && id.master().is_some() {
                    flags |= RegionFlags::MIRRORED;
                }
                let offset = end + gap * PAGE;
                end = offset + size;
                regions.push(RegionEntryInfo {
                    id,
                    flags,
                    offset,
                    size,
                    obj_size,
                    obj_count: (size / obj_size * fill / 1000) as u32,
                    seg_count: segs,
                    seg_size,
                    uuid,
                });
            }
            let span_size = end + tail_pages * PAGE;
            let place = |r: u64, room: u64, align: u64| (r % (room + 1)) / align * align;
            let rings = rings.map(|spec| {
                spec.map(|(log2, wide, a, b, c, d)| {
                    let entries = 1u32 << log2;
                    let desc_size = if wide { 16 } else { 8 };
                    let array = u64::from(entries) * u64::from(desc_size);
                    RingInfo {
                        entries,
                        producer: place(a, span_size - 8, 4),
                        consumer: place(b, span_size - 8, 4),
                        flags: place(c, span_size - 8, 4),
                        desc: place(d, span_size - array, 8),
                        desc_size,
                    }
                })
            });
            SchemaInfo {
                kind,
                name,
                span_size,
                regions,
                rings,
                generation: 2 * u64::from(generation),
                workers: Vec::new(),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_make_the_parser_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..2200),
        span in any::<u64>(),
    ) {
        if let Ok(view) = SchemaView::parse(&bytes, span) {
            check_invariants(&view, &bytes, span);
        }
    }

    /// With a header that passes the first checks (and, half the time,
    /// zeroed rings), random bytes reach the ring and region checks.
    #[test]
    fn random_bytes_behind_a_plausible_header_never_make_the_parser_panic(
        mut bytes in prop::collection::vec(any::<u8>(), 312..2400),
        count in 0u32..=28,
        workers in 0u32..=2,
        span in prop_oneof![any::<u64>(), 0u64..1 << 20],
        zero_rings in any::<bool>(),
        small_ids in any::<bool>(),
    ) {
        bytes[..8].copy_from_slice(b"SKMEMSCH");
        set_u32(&mut bytes, offset_of!(SchemaHeader, version), SCHEMA_VERSION);
        set_u32(&mut bytes, offset_of!(SchemaHeader, header_size), 312);
        set_u32(&mut bytes, offset_of!(SchemaHeader, entry_size), 64);
        set_u32(&mut bytes, offset_of!(SchemaHeader, region_count), count);
        set_u32(&mut bytes, offset_of!(SchemaHeader, total_size), 312 + 64 * count + 96 * workers);
        set_u32(&mut bytes, offset_of!(SchemaHeader, worker_count), workers);
        set_u32(&mut bytes, offset_of!(SchemaHeader, worker_entry_size), 96);
        set_u64(&mut bytes, offset_of!(SchemaHeader, generation), 2 * u64::from(count));
        set_u32(&mut bytes, offset_of!(SchemaHeader, arena_kind), 1);
        set_u64(&mut bytes, offset_of!(SchemaHeader, span_size), span);
        let name = offset_of!(SchemaHeader, name);
        bytes[name..name + 64].fill(0);
        bytes[name] = b'p';
        if zero_rings {
            bytes[offset_of!(SchemaHeader, rings)..offset_of!(SchemaHeader, generation)].fill(0);
        }
        if small_ids {
            // Ids of user-mappable regions with their template flags, so
            // the geometry checks run on random numbers.
            for (i, entry) in bytes[312..].chunks_exact_mut(64).enumerate() {
                let id = RegionId::ALL[i % 18];
                set_u32(entry, 0, id.index() as u32);
                set_u32(entry, 4, RegionFlags::template(id).bits());
            }
        }
        if let Ok(view) = SchemaView::parse(&bytes, span) {
            check_invariants(&view, &bytes, span);
        }
    }

    #[test]
    fn any_valid_schema_round_trips(info in valid_info()) {
        let mut b = vec![0; schema_size(info.regions.len(), info.workers.len())];
        prop_assert_eq!(write_schema(&info, &mut b), Ok(b.len()));
        let view = SchemaView::parse(&b, info.span_size).unwrap();
        check_invariants(&view, &b, info.span_size);
        prop_assert_eq!(view.to_info(), info);
    }

    /// Damage anywhere in a valid schema is either refused or leaves a
    /// schema that still keeps every promise.
    #[test]
    fn a_damaged_schema_is_refused_or_still_sound(
        info in valid_info(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..6),
    ) {
        // A whole page, as a mapper would see it: damage to the counts may
        // point past the schema's own bytes.
        let mut page = vec![0; PAGE as usize];
        let total = write_schema(&info, &mut page).unwrap();
        for (at, xor) in flips {
            page[at.index(total)] ^= xor;
        }
        if let Ok(view) = SchemaView::parse(&page, info.span_size) {
            check_invariants(&view, &page, info.span_size);
        }
    }
}

// ---------------------------------------------------------------------------
// Worker slots.

/// The nexus schema with two worker slots, their rings in UMD's pages (the
/// parser checks rings against the span, not against a region).
fn with_workers() -> SchemaInfo {
    let mut info = nexus();
    info.workers = (0..2)
        .map(|i| skmem::schema::WorkerRings {
            to_worker: ring((38 + 2 * i) * PAGE, 128, 16),
            from_worker: ring((39 + 2 * i) * PAGE, 128, 16),
        })
        .collect();
    info
}

/// Byte position of a field of worker slot `slot`'s ring (0 to the
/// worker, 1 from it).
fn worker_field(slot: usize, which: usize, field: usize) -> usize {
    size_of::<SchemaHeader>()
        + 6 * size_of::<RegionEntry>()
        + slot * 2 * size_of::<RingEntry>()
        + which * size_of::<RingEntry>()
        + field
}

#[test]
fn worker_slots_round_trip_after_the_regions() {
    let info = with_workers();
    let b = encode(&info);
    assert_eq!(b.len(), 312 + 6 * 64 + 2 * 96);
    let view = SchemaView::parse(&b, SPAN).unwrap();
    assert_eq!(view.to_info(), info);
    assert_eq!(view.workers().count(), 2);
    check_invariants(&view, &b, SPAN);
}

#[test]
fn a_damaged_worker_slot_is_refused_with_its_slot() {
    let parse = |b: &[u8]| SchemaView::parse(b, SPAN).map(|v| v.to_info());
    // A ring of slot 1 outside the span.
    let mut b = encode(&with_workers());
    set_u64(
        &mut b,
        worker_field(1, 1, offset_of!(RingEntry, desc)),
        SPAN,
    );
    assert!(matches!(
        parse(&b),
        Err(SchemaError::WorkerRing { slot: 1, .. })
    ));
    // Descriptors of the wrong size.
    let mut b = encode(&with_workers());
    set_u32(
        &mut b,
        worker_field(0, 0, offset_of!(RingEntry, desc_size)),
        8,
    );
    let e = parse(&b).unwrap_err();
    assert_eq!(
        e.to_string(),
        "worker slot 0: rx ring: descriptors of 8 bytes, expected 16"
    );
    // An absent ring.
    let mut b = encode(&with_workers());
    let at = worker_field(0, 1, 0);
    b[at..at + size_of::<RingEntry>()].fill(0);
    assert_eq!(
        parse(&b).unwrap_err(),
        SchemaError::WorkerRingAbsent { slot: 0 }
    );
    // More slots than exist, another entry size, a count the size disagrees
    // with.
    let mut b = encode(&with_workers());
    set_u32(&mut b, offset_of!(SchemaHeader, worker_count), 17);
    assert!(matches!(
        parse(&b),
        Err(SchemaError::TooManyWorkers { count: 17, .. })
    ));
    let mut b = encode(&with_workers());
    set_u32(&mut b, offset_of!(SchemaHeader, worker_entry_size), 95);
    assert!(matches!(
        parse(&b),
        Err(SchemaError::WorkerEntrySizeMismatch { found: 95, .. })
    ));
    let mut b = encode(&with_workers());
    set_u32(&mut b, offset_of!(SchemaHeader, worker_count), 1);
    assert!(matches!(
        parse(&b),
        Err(SchemaError::TotalSizeMismatch { .. })
    ));
    // And the writer refuses too many.
    let mut info = with_workers();
    info.workers = vec![info.workers[0]; 17];
    let mut out = vec![0; 8192];
    assert!(matches!(
        write_schema(&info, &mut out),
        Err(SchemaError::TooManyWorkers { .. })
    ));
}
