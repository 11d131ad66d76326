//! The schema reader's refusals: every kind of bad header, ring and region
//! entry.
//!
//! Each validation rule has a test that writes a valid schema, corrupts
//! exactly the field that rule guards, and checks the exact error.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod common;

use std::mem::offset_of;

use skmem::region::{RegionFlags, RegionId};
use skmem::schema::{RegionEntry, RingEntry, RingKind, SchemaError, SchemaHeader, SchemaView};

use common::schema::{
    encode, entry_field, header_field, nexus, parse_err, ring_field, set_u32, valid, with_u32,
    with_u64, BUF_DEF, GUARD_HEAD, GUARD_TAIL, PAGE, RING, SCHEMA, SPAN, UMD,
};

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
