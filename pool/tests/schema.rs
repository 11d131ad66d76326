//! The schema: writing it and reading it back, the writer's own refusals,
//! and the worker slots after the regions (round trip and damage).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod common;

use std::mem::{offset_of, size_of};

use skmem::region::{RegionFlags, RegionId, RegionParams};
use skmem::schema::{
    schema_size, write_schema, RegionEntry, RegionEntryInfo, RingEntry, RingKind, SchemaArenaKind,
    SchemaError, SchemaHeader, SchemaInfo, SchemaView, SCHEMA_NAME_MAX, SCHEMA_VERSION,
};

use common::schema::{
    check_invariants, encode, nexus, ring, ring_field, set_u32, set_u64, valid, BUF_DEF, PAGE,
    SPAN, UMD,
};

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
