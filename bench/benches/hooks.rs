//! Cost of a lifecycle hook call when no uprobe is attached, beside a plain
//! never-inlined empty call, in one run. The floor: ≤ 2 ns per call.
//!
//! Run: `cargo bench -p skmem-bench --bench hooks` (or `cargo xtask bench`).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use skmem::probe::hook_fn;
use skmem_xdp_common::{HookEvent, HookPayload, HOOK_NAME_LEN};

#[inline(never)]
extern "C" fn empty(p: *const HookPayload) {
    black_box(p);
}

fn hooks(c: &mut Criterion) {
    let mut g = c.benchmark_group("hooks");
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    let payload = HookPayload {
        arena_id: 1,
        span_addr: 0,
        span_size: 0,
        kind: 1,
        pid: 1,
        flags: 0,
        error: 0,
        name: [0; HOOK_NAME_LEN],
        mem_total: 0,
        mem_inuse: 0,
        seq: 0,
    };
    let hook = black_box(hook_fn(HookEvent::ArenaMap));
    g.bench_function("hook-unattached", |b| b.iter(|| hook(black_box(&payload))));
    let plain: extern "C" fn(*const HookPayload) = black_box(empty);
    g.bench_function("empty-call", |b| b.iter(|| plain(black_box(&payload))));
    g.finish();
}

criterion_group!(benches, hooks);
criterion_main!(benches);
