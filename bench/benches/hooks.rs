//! Cost of a lifecycle hook call when no uprobe is attached, beside a plain
//! never-inlined empty call, in one run. The floor: ≤ 2 ns per call.
//!
//! And what observing costs (root; skipped otherwise): a trivial syscall
//! (`getppid`) with no probe attached, with every probe of `skmemctl
//! watch` attached (its `sys_enter_munmap` tracepoint puts every syscall
//! on the kernel's traced path), and with all but that one
//! (`ObserveTarget::skip_munmap`); and a hook call with its uprobe attached
//! (what each lifecycle event costs the process while watched).
//!
//! Run: `cargo bench -p skmem-bench --bench hooks` (or `cargo xtask bench`).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use skmem::probe::hook_fn;
use skmem_xdp::observe::{ObserveTarget, Observer};
use skmem_xdp_common::{HookEvent, HookPayload, HOOK_NAME_LEN};

#[inline(never)]
extern "C" fn empty(p: *const HookPayload) {
    black_box(p);
}

/// A hook's payload: arena `arena_id` of kind `kind`, mapped by `pid`,
/// everything else zero.
fn payload(arena_id: u64, kind: u32, pid: u32) -> HookPayload {
    HookPayload {
        arena_id,
        span_addr: 0,
        span_size: 0,
        kind,
        pid,
        flags: 0,
        error: 0,
        name: [0; HOOK_NAME_LEN],
        mem_total: 0,
        mem_inuse: 0,
        seq: 0,
    }
}

fn hooks(c: &mut Criterion) {
    let mut g = c.benchmark_group("hooks");
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    let payload = payload(1, 1, 1);
    let hook = black_box(hook_fn(HookEvent::ArenaMap));
    g.bench_function("hook-unattached", |b| b.iter(|| hook(black_box(&payload))));
    let plain: extern "C" fn(*const HookPayload) = black_box(empty);
    g.bench_function("empty-call", |b| b.iter(|| plain(black_box(&payload))));
    g.finish();
}

/// A syscall that does no work: what a syscall's entry and exit cost.
fn getppid() -> libc::c_long {
    // SAFETY: getppid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_getppid) }
}

/// The observer on this executable (the uprobes on its hooks), or `None`,
/// said on stderr, when it cannot attach (not root, no eBPF object).
fn observer(skip_munmap: bool) -> Option<Observer> {
    let exe = std::env::current_exe().ok()?;
    let target = ObserveTarget {
        skip_munmap,
        ..ObserveTarget::binaries([exe])
    };
    match Observer::attach(target) {
        Ok(o) => Some(o),
        Err(e) => {
            eprintln!("observe: not measured ({e})");
            None
        }
    }
}

fn observe(c: &mut Criterion) {
    let mut g = c.benchmark_group("observe");
    g.warm_up_time(Duration::from_millis(300));
    g.measurement_time(Duration::from_secs(2));
    g.bench_function("syscall-unobserved", |b| b.iter(getppid));
    if let Some(mut obs) = observer(false) {
        g.bench_function("syscall-observed", |b| b.iter(getppid));
        let payload = payload(0, 0, std::process::id());
        // An unmap of an arena the probes never saw created: the probe
        // runs in full (uprobe trap, payload read, map lookup, an event on
        // the ring). The events are read between chunks, outside the
        // timing, so that the ring never fills (a full ring is cheaper).
        let hook = black_box(hook_fn(HookEvent::ArenaUnmap));
        g.bench_function("hook-attached", |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let n = left.min(1000);
                    let t = std::time::Instant::now();
                    for _ in 0..n {
                        hook(black_box(&payload));
                    }
                    spent += t.elapsed();
                    left -= n;
                    let _ = obs.next_events(Duration::ZERO);
                }
                spent
            })
        });
        // Detached before the next observer attaches.
        drop(obs);
    }
    if let Some(_obs) = observer(true) {
        g.bench_function("syscall-observed-no-munmap", |b| b.iter(getppid));
    }
    g.finish();
}

criterion_group!(benches, hooks, observe);
criterion_main!(benches);
