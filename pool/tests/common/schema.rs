//! The schema tests' fixtures: a valid nexus schema to corrupt, where its
//! fields lie, and the checks of what a mapper relies on, made independently
//! of the parser.

use std::mem::{offset_of, size_of};

use skmem::region::{RegionFlags, RegionId};
use skmem::schema::{
    schema_size, write_schema, RegionEntry, RegionEntryInfo, RingEntry, RingInfo, RingKind,
    SchemaArenaKind, SchemaError, SchemaHeader, SchemaInfo, SchemaView, SCHEMA_NAME_MAX,
};

pub const PAGE: u64 = 4096;

/// A non-guard region of `seg_count` segments of `seg_size` bytes holding
/// `obj_count` objects of `obj_size` bytes, at span offset `offset`.
pub fn region(
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
pub fn ring(base: u64, entries: u32, desc_size: u32) -> RingInfo {
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
pub const GUARD_HEAD: usize = 0;
pub const SCHEMA: usize = 1;
pub const RING: usize = 2;
pub const BUF_DEF: usize = 3;
pub const UMD: usize = 4;
pub const GUARD_TAIL: usize = 5;

pub const SPAN: u64 = 47 * PAGE;

/// A nexus arena's schema: guards, schema, a four-page ring region holding
/// all four rings, 64 buffers of 2 KiB in 4 segments, 256 metadata objects.
pub fn nexus() -> SchemaInfo {
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

pub fn encode(info: &SchemaInfo) -> Vec<u8> {
    let mut b = vec![0; schema_size(info.regions.len(), info.workers.len())];
    assert_eq!(write_schema(info, &mut b), Ok(b.len()));
    b
}

/// The valid nexus schema's bytes.
pub fn valid() -> Vec<u8> {
    encode(&nexus())
}

pub fn parse_err(b: &[u8]) -> SchemaError {
    SchemaView::parse(b, SPAN).expect_err("corrupted schema was accepted")
}

/// Byte position of a header field.
pub fn header_field(field: usize) -> usize {
    field
}

/// Byte position of a field of ring `kind`.
pub fn ring_field(kind: RingKind, field: usize) -> usize {
    offset_of!(SchemaHeader, rings) + kind.index() * size_of::<RingEntry>() + field
}

/// Byte position of a field of region entry `index`.
pub fn entry_field(index: usize, field: usize) -> usize {
    size_of::<SchemaHeader>() + index * size_of::<RegionEntry>() + field
}

pub fn set_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

pub fn set_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The valid schema with the u32 at `at` replaced by `v`, parsed.
pub fn with_u32(at: usize, v: u32) -> Result<(), SchemaError> {
    let mut b = valid();
    set_u32(&mut b, at, v);
    SchemaView::parse(&b, SPAN).map(|_| ())
}

/// The valid schema with the u64 at `at` replaced by `v`, parsed.
pub fn with_u64(at: usize, v: u64) -> Result<(), SchemaError> {
    let mut b = valid();
    set_u64(&mut b, at, v);
    SchemaView::parse(&b, SPAN).map(|_| ())
}

/// Checks, independently of the parser, everything a mapper relies on; and
/// that the bytes are the canonical encoding of what was parsed.
pub fn check_invariants(view: &SchemaView<'_>, bytes: &[u8], span: u64) {
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
