//! Arena lifecycle latency: create + map + unmap + destroy of a default
//! nexus arena (4096 × 2 KiB buffers, Skywalk's defaults), and each part,
//! in one run. The floor is a median under 1 ms for the whole cycle.
//!
//! Beside the in-process map: the hand-over — a mapper connecting to the
//! arena's offer, receiving its memfds and the SYSCTLS one, reading the
//! schema and building its span, then unmapping — floor under 2 ms. The
//! mapper here is a thread of the bench (the protocol, socket and memfds
//! are the same as for another process); before timing, its span is
//! checked to be the owner's layout, byte for byte.
//!
//! Run: `cargo bench -p skmem-bench --bench arena` (or `cargo xtask bench`).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use skmem::arena::{Arena, ArenaMapping, NexusParams};
use skmem::lend::{ArenaOffer, OfferPolicy, RemoteArena};
use skmem::region::{RegionFlags, RegionId};

fn arena_benches(c: &mut Criterion) {
    let mut g = c.benchmark_group("arena");
    g.warm_up_time(Duration::from_millis(500));
    g.measurement_time(Duration::from_secs(3));
    let params = NexusParams::new("bench");
    g.bench_function("nexus-create-map-unmap-destroy", |b| {
        b.iter(|| {
            let a = Arena::create_nexus(&params).expect("create");
            let m = a.map().expect("map");
            black_box(m.addr());
            drop(m);
            drop(a);
        })
    });
    g.bench_function("nexus-create-destroy", |b| {
        b.iter(|| drop(black_box(Arena::create_nexus(&params).expect("create"))))
    });
    let a = Arena::create_nexus(&params).expect("create");
    g.bench_function("nexus-map-unmap", |b| {
        b.iter(|| drop(black_box(a.map().expect("map"))))
    });
    g.bench_function("nexus-map-redirect-unmap", |b| {
        // Two mappings, so redirecting one leaves the arena active.
        let keep = a.map().expect("map");
        b.iter(|| {
            let m = a.map().expect("map");
            black_box(m.redirect().expect("redirect"));
        });
        drop(keep);
    });
    let path = std::env::temp_dir().join(format!("skmem-bench-{}.sock", std::process::id()));
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    let mut policy = OfferPolicy::root_only().allow_uid(uid);
    // Each iteration's mapper is gone once dropped, but the owner's thread
    // may take its record away a little later.
    policy.max_mappers = 4096;
    let offer = ArenaOffer::serve(&a, &path, policy).expect("serve");
    same_layout(
        &a.map().expect("map"),
        &RemoteArena::connect(offer.path()).expect("connect"),
    );
    g.bench_function("nexus-handover-map-unmap", |b| {
        b.iter(|| {
            drop(black_box(
                RemoteArena::connect(offer.path()).expect("connect"),
            ))
        })
    });
    drop(offer);
    g.finish();
}

/// The mapper's span is the owner's: every region at the same offset, of
/// the same size and access, and every readable byte the same.
fn same_layout(own: &ArenaMapping, remote: &RemoteArena) {
    assert_eq!(own.size(), remote.size(), "span sizes differ");
    for r in &remote.schema().regions {
        let (at, len) = own.region(r.id).expect("the owner maps every region");
        let (rat, rlen) = remote.region(r.id).expect("the mapper maps every region");
        assert_eq!(
            (at as usize - own.addr() as usize, len),
            (rat as usize - remote.addr() as usize, rlen),
            "{} is not where the owner has it",
            r.id
        );
        if r.flags.contains(RegionFlags::GUARD) {
            continue;
        }
        let (mut mine, mut theirs) = (vec![0u8; len], vec![0u8; len]);
        own.read_region(r.id, 0, &mut mine).expect("owner read");
        remote.read(r.id, 0, &mut theirs).expect("mapper read");
        assert!(mine == theirs, "{} differs", r.id);
    }
    assert!(
        remote.region(RegionId::Kmd).is_none(),
        "an owner-private region was lent"
    );
}

criterion_group!(benches, arena_benches);
criterion_main!(benches);
