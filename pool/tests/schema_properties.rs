//! The schema's properties: proptests throw random and randomly damaged
//! bytes at the parser, and random valid schemas at the writer.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod common;

use std::mem::offset_of;

use proptest::prelude::*;
use skmem::region::{RegionFlags, RegionId};
use skmem::schema::{
    schema_size, write_schema, RegionEntryInfo, RingInfo, SchemaArenaKind, SchemaHeader,
    SchemaInfo, SchemaView, SCHEMA_VERSION,
};

use common::schema::{check_invariants, set_u32, set_u64, PAGE};

// ---------------------------------------------------------------------------
// Properties.

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
