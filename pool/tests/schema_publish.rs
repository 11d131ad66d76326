//! The schema as mappers read it while the owner rewrites it: never half
//! of one version and half of another (the sequence lock), and never
//! before it is whole (an arena is registered only after its schema is
//! written).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skmem::arena::{Arena, NexusParams};
use skmem::region::RegionId;
use skmem::schema::{RingInfo, RingKind, SchemaView};
use skmem::stats;

fn small(name: &str) -> NexusParams {
    let mut p = NexusParams::new(name);
    p.pool.packets = 256;
    p
}

/// A ring table inside the arena's RING region, every field derived from
/// `tag`, so that a mix of two tables shows.
fn table(arena: &Arena, tag: u64) -> [Option<RingInfo>; RingKind::COUNT] {
    let base = arena.region_offset(RegionId::Ring) as u64 + tag * 4096;
    let ring = |i: u64, desc_size: u32| {
        Some(RingInfo {
            entries: 64 << tag,
            producer: base + i * 512,
            consumer: base + i * 512 + 64,
            flags: base + i * 512 + 128,
            desc: base + i * 512 + 256,
            desc_size,
        })
    };
    [ring(0, 8), ring(1, 8), ring(2, 16), ring(3, 16)]
}

#[test]
fn a_mapper_reading_while_rings_are_rebound_never_sees_half_a_table() {
    let arena = Arena::create_nexus(&small("seqlock")).unwrap();
    let mapping = arena.map().unwrap();
    let tables = [Default::default(), table(&arena, 0), table(&arena, 1)];
    let done = AtomicBool::new(false);
    let rewrites = AtomicU64::new(0);
    let (reads, torn_raw) = std::thread::scope(|s| {
        s.spawn(|| {
            let deadline = Instant::now() + Duration::from_millis(1500);
            while Instant::now() < deadline {
                for t in &tables {
                    arena.set_schema_rings(*t).unwrap();
                }
                rewrites.fetch_add(3, Ordering::Relaxed);
            }
            done.store(true, Ordering::Release);
        });
        let (mut reads, mut torn_raw, mut last) = (0u64, 0u64, 0);
        let (_, len) = mapping.region(RegionId::Schema).unwrap();
        let mut raw = vec![0u8; len];
        while !done.load(Ordering::Acquire) {
            let info = mapping.schema().unwrap();
            assert!(
                tables.contains(&info.rings),
                "a torn ring table: {:?}",
                info.rings
            );
            assert!(info.generation.is_multiple_of(2) && info.generation >= last);
            last = info.generation;
            reads += 1;
            // The same read without the sequence lock, for comparison.
            mapping.read_region(RegionId::Schema, 0, &mut raw).unwrap();
            match SchemaView::parse(&raw, mapping.size() as u64) {
                Ok(v) if tables.contains(&v.to_info().rings) => {}
                _ => torn_raw += 1,
            }
        }
        (reads, torn_raw)
    });
    eprintln!(
        "{reads} whole reads over {} rewrites; {torn_raw} copies without the lock were torn",
        rewrites.load(Ordering::Relaxed)
    );
    assert!(reads > 100, "{reads}");
    assert!(rewrites.load(Ordering::Relaxed) > 100);
    // Each rewrite moved the generation on by two.
    let end = mapping.schema().unwrap().generation;
    assert_eq!(end, 2 + 2 * rewrites.load(Ordering::Relaxed));
}

#[test]
fn the_registry_lists_an_arena_only_once_its_schema_is_whole() {
    let done = AtomicBool::new(false);
    let seen = std::thread::scope(|s| {
        s.spawn(|| {
            // Each lives while the next eight are made.
            let mut alive = std::collections::VecDeque::new();
            for i in 0..300 {
                alive.push_back(Arena::create_nexus(&small(&format!("reg{i}"))).unwrap());
                if alive.len() > 8 {
                    alive.pop_front();
                }
            }
            done.store(true, Ordering::Release);
        });
        let mut seen = 0u64;
        while !done.load(Ordering::Acquire) {
            for a in stats::arenas() {
                if !a.name().starts_with("skmem.nexus.reg") {
                    continue;
                }
                let m = a.map().unwrap();
                let info = m.schema().unwrap_or_else(|e| panic!("{}: {e}", a.name()));
                assert_eq!(info.name, a.name());
                seen += 1;
            }
        }
        seen
    });
    eprintln!("{seen} arenas read from the registry while being created");
    assert!(seen > 0);
}
