//! Arena lifecycle latency: create + map + unmap + destroy of a default
//! nexus arena (4096 × 2 KiB buffers, Skywalk's defaults), and each part,
//! in one run. The floor is a median under 1 ms for the whole cycle.
//!
//! Run: `cargo bench -p skmem-bench --bench arena` (or `cargo xtask bench`).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use skmem::arena::{Arena, NexusParams};

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
    g.finish();
}

criterion_group!(benches, arena_benches);
criterion_main!(benches);
