//! Caches: slab and magazine layers, purge, reap, statistics, and the
//! invariants under concurrency (no object handed out twice, every freed
//! object comes back, in use + free = total).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Barrier};

use proptest::prelude::*;
use skmem::cache::{Cache, CacheParams, CacheStats};
use skmem::error::{CacheError, RegionError};
use skmem::region::{Region, RegionFlags, RegionId, RegionParams};

fn kmd_cache(count: usize, workers: usize) -> Arc<Cache> {
    let r = Region::create(
        "t",
        &RegionParams::new(RegionId::Kmd, 128, count).with_workers(workers),
    )
    .unwrap();
    Cache::new(r, CacheParams::new("kmd.t")).unwrap()
}

fn slab_only_cache(count: usize) -> Arc<Cache> {
    let r = Region::create("t", &RegionParams::new(RegionId::BufDef, 2048, count)).unwrap();
    assert!(r.flags().contains(RegionFlags::NOMAGAZINES));
    Cache::new(r, CacheParams::new("buf.t")).unwrap()
}

fn assert_balanced(st: &CacheStats, held: u64) {
    assert_eq!(st.obj_in_use, held, "{st:#?}");
    assert_eq!(
        st.obj_in_use + st.obj_in_magazines + st.obj_free_in_slabs,
        st.obj_total
    );
}

#[test]
fn slab_only_cache_hands_out_every_object_once_then_runs_dry() {
    let c = slab_only_cache(64);
    assert!(!c.has_magazines());
    let total = c.region().geometry().obj_count as usize;
    let mut seen = HashSet::new();
    while let Some(o) = c.alloc() {
        assert!(seen.insert(o), "object {o} handed out twice");
    }
    assert_eq!(seen.len(), total);
    let st = c.stats();
    assert_balanced(&st, total as u64);
    assert!(st.slab.slab_alloc_fail > 0);
    for o in seen {
        c.free(o).unwrap();
    }
    assert_balanced(&c.stats(), 0);
}

#[test]
fn double_free_and_foreign_index_are_refused_and_counted() {
    let c = slab_only_cache(16);
    let o = c.alloc().unwrap();
    c.free(o).unwrap();
    let e = c.free(o).unwrap_err();
    assert!(
        matches!(e, CacheError::NotAllocated { index, .. } if index == o),
        "{e}"
    );
    let e = c.free(1 << 30).unwrap_err();
    assert!(
        matches!(e, CacheError::Region(RegionError::ObjectOutOfRange { .. })),
        "{e}"
    );
    assert_eq!(e.errno(), libc::EINVAL);
    assert_eq!(c.stats().slab.slab_free_refused, 2);
    assert_balanced(&c.stats(), 0);
}

#[test]
fn constructor_runs_when_the_slab_layer_hands_an_object_out() {
    let r = Region::create("t", &RegionParams::new(RegionId::KStats, 64, 32)).unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let seen = calls.clone();
    let c = Cache::new(
        r,
        CacheParams::new("kstats").with_constructor(move |idx, bytes| {
            seen.fetch_add(1, Ordering::Relaxed);
            bytes.fill(0);
            bytes[..4].copy_from_slice(&idx.to_le_bytes());
        }),
    )
    .unwrap();
    let o = c.alloc().unwrap();
    let p = c.obj_ptr(o).unwrap();
    // SAFETY: the object is ours and 64 bytes long.
    let first = unsafe { std::slice::from_raw_parts(p, 4) };
    assert_eq!(u32::from_le_bytes(first.try_into().unwrap()), o);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
fn worker_slots_are_limited_and_released_on_drop() {
    let c = kmd_cache(1000, 2);
    let a = c.worker().unwrap();
    let _b = c.worker().unwrap();
    let e = c.worker().unwrap_err();
    assert!(
        matches!(e, CacheError::NoWorkerSlot { slots: 2, .. }),
        "{e}"
    );
    assert_eq!(e.errno(), libc::EBUSY);
    drop(a);
    assert!(c.worker().is_ok());
}

#[test]
fn a_dropped_worker_leaves_its_objects_to_the_depot() {
    let c = kmd_cache(1000, 1);
    let mut w = c.worker().unwrap();
    let mut objs = vec![0u32; 300];
    assert_eq!(w.alloc_batch(&mut objs), 300);
    w.free_batch(&objs).unwrap();
    let st = c.stats();
    assert!(st.worker_rounds[0] > 0);
    assert_balanced(&st, 0);
    drop(w);
    let st = c.stats();
    assert_eq!(st.worker_rounds, vec![0]);
    assert_eq!(st.workers_claimed, 0);
    assert_balanced(&st, 0);
}

#[test]
fn purge_empties_a_live_workers_magazines_and_every_slab() {
    let c = kmd_cache(2000, 2);
    let mut w = c.worker().unwrap();
    let mut objs = vec![0u32; 500];
    assert_eq!(w.alloc_batch(&mut objs), 500);
    let keep = objs.pop().unwrap();
    w.free_batch(&objs).unwrap();
    assert!(c.stats().obj_in_magazines > 0);
    c.purge();
    let st = c.stats();
    assert_eq!(st.obj_in_magazines, 0, "{st:#?}");
    assert_eq!(st.worker_rounds, vec![0, 0]);
    assert_balanced(&st, 1);
    assert_eq!(st.purges, 1);
    // Only the slab holding `keep` survives.
    assert_eq!(c.region().segs_in_use(), 1);
    // The worker keeps working after a purge.
    let o = w.alloc().unwrap();
    w.free(o).unwrap();
    w.free(keep).unwrap();
    drop(w);
    c.purge();
    assert_eq!(c.region().segs_in_use(), 0);
    assert_balanced(&c.stats(), 0);
}

#[test]
fn reap_trims_the_depot_to_its_working_set() {
    let c = kmd_cache(4000, 1);
    let rounds = c.magazine_rounds();
    let mut w = c.worker().unwrap();
    let mut objs = vec![0u32; rounds * 10];
    assert_eq!(w.alloc_batch(&mut objs), objs.len());
    w.free_batch(&objs).unwrap();
    let full = c.stats().depot_full;
    assert!(full >= 7, "depot holds full magazines: {full}");
    // The first reap only starts the working-set interval; nothing used the
    // depot since, so the second gives all full magazines back.
    c.reap();
    let after_first = c.stats();
    c.reap();
    let st = c.stats();
    assert!(after_first.depot_full <= full);
    assert_eq!(st.depot_full, 0, "{st:#?}");
    // The full previous magazine was dropped; only the loaded one remains.
    assert!(st.worker_rounds[0] as usize <= rounds, "{st:#?}");
    assert_balanced(&st, 0);
    assert_eq!(st.reaps, 2);
    // A cache whose working set uses the depot keeps what it needs.
    for _ in 0..3 {
        assert_eq!(w.alloc_batch(&mut objs), objs.len());
        w.free_batch(&objs).unwrap();
    }
    assert_balanced(&c.stats(), 0);
}

#[test]
fn worker_fast_path_and_slab_path_agree_on_ownership() {
    let c = kmd_cache(500, 1);
    let total = c.region().geometry().obj_count as usize;
    let mut w = c.worker().unwrap();
    let mut seen = HashSet::new();
    while let Some(o) = w.alloc() {
        assert!(seen.insert(o), "object {o} twice");
        assert!(c.is_allocated(o));
    }
    assert_eq!(seen.len(), total);
    for &o in &seen {
        w.free(o).unwrap();
    }
    drop(w);
    c.purge();
    assert_balanced(&c.stats(), 0);
    assert_eq!(c.region().segs_in_use(), 0);
}

/// One step of a random workload.
#[derive(Debug, Clone)]
enum Op {
    Alloc,
    Free(usize),
    AllocBatch(usize),
    FreeBatch(usize),
    Reap,
    Purge,
    /// Inside one burst: allocate n singly, then free every other held one.
    Burst(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => Just(Op::Alloc),
        6 => any::<usize>().prop_map(Op::Free),
        3 => (1usize..100).prop_map(Op::AllocBatch),
        3 => (1usize..100).prop_map(Op::FreeBatch),
        1 => Just(Op::Reap),
        1 => Just(Op::Purge),
        3 => (1usize..80).prop_map(Op::Burst),
    ]
}

/// Ownership bitmap shared by all threads: set on alloc, cleared on free.
struct Owners(Vec<AtomicBool>);

impl Owners {
    fn take(&self, o: u32) {
        let was = self.0[o as usize].swap(true, Ordering::AcqRel);
        assert!(!was, "object {o} handed out twice");
    }
    fn give(&self, o: u32) {
        let was = self.0[o as usize].swap(false, Ordering::AcqRel);
        assert!(was, "object {o} freed but not held");
    }
}

fn run_thread(cache: &Arc<Cache>, owners: &Owners, ops: &[Op]) {
    let mut w = cache.worker().unwrap();
    let mut held: Vec<u32> = Vec::new();
    let mut buf = vec![0u32; 100];
    for op in ops {
        match *op {
            Op::Alloc => {
                if let Some(o) = w.alloc() {
                    owners.take(o);
                    held.push(o);
                }
            }
            Op::Free(i) if !held.is_empty() => {
                let o = held.swap_remove(i % held.len());
                owners.give(o);
                w.free(o).unwrap();
            }
            Op::AllocBatch(n) => {
                let got = w.alloc_batch(&mut buf[..n]);
                for &o in &buf[..got] {
                    owners.take(o);
                }
                held.extend_from_slice(&buf[..got]);
            }
            Op::FreeBatch(n) => {
                let n = n.min(held.len());
                let batch: Vec<u32> = held.drain(held.len() - n..).collect();
                for &o in &batch {
                    owners.give(o);
                }
                w.free_batch(&batch).unwrap();
            }
            Op::Reap => cache.reap(),
            Op::Purge => cache.purge(),
            Op::Burst(n) => {
                let mut b = w.burst();
                for _ in 0..n {
                    if let Some(o) = b.alloc() {
                        owners.take(o);
                        held.push(o);
                    }
                }
                let mut i = 0;
                held.retain(|&o| {
                    i += 1;
                    if i % 2 == 0 {
                        owners.give(o);
                        b.free(o).unwrap();
                        false
                    } else {
                        true
                    }
                });
            }
            Op::Free(_) => {}
        }
    }
    for o in held.drain(..) {
        owners.give(o);
        w.free(o).unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// On 1..4 threads: no object is handed out twice, every freed object
    /// comes back, and in use + parked + free = total at every quiescent
    /// point.
    #[test]
    fn random_workloads_never_duplicate_or_lose_objects(
        threads in proptest::collection::vec(proptest::collection::vec(op(), 1..200), 1..=4),
        magazines in any::<bool>(),
        count in 50usize..600,
    ) {
        let flags = if magazines {
            RegionFlags::template(RegionId::Kmd)
        } else {
            RegionFlags::template(RegionId::Kmd) | RegionFlags::NOMAGAZINES
        };
        let r = Region::create("p", &RegionParams::new(RegionId::Kmd, 128, count)
            .with_flags(flags)
            .with_workers(threads.len())).unwrap();
        let total = r.geometry().obj_count as usize;
        let cache = Cache::new(r, CacheParams::new("p")).unwrap();
        let owners = Owners((0..total).map(|_| AtomicBool::new(false)).collect());
        let start = Barrier::new(threads.len());
        std::thread::scope(|s| {
            for ops in &threads {
                let (cache, owners, start) = (&cache, &owners, &start);
                s.spawn(move || {
                    start.wait();
                    run_thread(cache, owners, ops);
                });
            }
        });
        prop_assert!(owners.0.iter().all(|b| !b.load(Ordering::Relaxed)));
        let st = cache.stats();
        prop_assert_eq!(st.obj_in_use, 0);
        prop_assert_eq!(st.obj_in_use + st.obj_in_magazines + st.obj_free_in_slabs, st.obj_total);
        cache.purge();
        let st = cache.stats();
        prop_assert_eq!(st.obj_free_in_slabs, st.obj_total);
        prop_assert_eq!(cache.region().segs_in_use(), 0);
        // Everything can be allocated again, each object once.
        let mut all = vec![0u32; total];
        prop_assert_eq!(cache.alloc_batch(&mut all), total);
        let distinct: HashSet<_> = all.iter().collect();
        prop_assert_eq!(distinct.len(), total);
    }
}

/// Counts a finished worker when dropped.
struct Done<'a>(&'a AtomicU32);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

/// Bounded stress on the depot: workers exchange magazines through it as
/// fast as they can while another thread purges and reaps, taking their
/// magazines away underneath them.
#[test]
fn depot_survives_concurrent_exchange_purge_and_reap() {
    const WORKERS: usize = 3;
    const ROUNDS: usize = 3_000;
    let r = Region::create(
        "s",
        &RegionParams::new(RegionId::Kmd, 128, 2_000).with_workers(WORKERS),
    )
    .unwrap();
    let total = r.geometry().obj_count as usize;
    let cache = Cache::new(
        r,
        // Small magazines: many depot exchanges.
        CacheParams::new("s").with(|p| p.magazine_rounds = Some(8)),
    )
    .unwrap();
    let owners = Owners((0..total).map(|_| AtomicBool::new(false)).collect());
    let done = AtomicU32::new(0);
    std::thread::scope(|s| {
        for t in 0..WORKERS {
            let (cache, owners, done) = (&cache, &owners, &done);
            s.spawn(move || {
                // Counted even if this worker panics, so the purger stops.
                let _done = Done(done);
                let mut w = cache.worker().unwrap();
                let mut buf = vec![0u32; 64];
                let mut held = Vec::new();
                for i in 0..ROUNDS {
                    let n = 1 + (i * 7 + t * 13) % 64;
                    let got = if i.is_multiple_of(2) {
                        w.alloc_batch(&mut buf[..n])
                    } else {
                        // Single allocations inside one burst.
                        let mut b = w.burst();
                        let mut got = 0;
                        while got < n {
                            match b.alloc() {
                                Some(o) => buf[got] = o,
                                None => break,
                            }
                            got += 1;
                        }
                        got
                    };
                    for &o in &buf[..got] {
                        owners.take(o);
                    }
                    held.extend_from_slice(&buf[..got]);
                    if !i.is_multiple_of(3) || held.len() > 300 {
                        let k = held.len() / 2 + 1;
                        let k = k.min(held.len());
                        let batch: Vec<u32> = held.drain(..k).collect();
                        for &o in &batch {
                            owners.give(o);
                        }
                        w.free_batch(&batch).unwrap();
                    }
                }
                for o in held {
                    owners.give(o);
                    w.free(o).unwrap();
                }
            });
        }
        let (cache, done) = (&cache, &done);
        s.spawn(move || {
            let mut i = 0u64;
            while done.load(Ordering::Acquire) < WORKERS as u32 {
                if i.is_multiple_of(2) {
                    cache.purge();
                } else {
                    cache.reap();
                }
                i += 1;
            }
            assert!(i > 0);
        });
    });
    let st = cache.stats();
    assert_balanced(&st, 0);
    assert!(st.purges > 0);
    cache.purge();
    assert_eq!(cache.stats().obj_free_in_slabs, total as u64);
    assert_eq!(cache.region().segs_in_use(), 0);
}

#[test]
fn every_invalid_cache_parameter_is_named() {
    let rule = |r: Result<Arc<Cache>, CacheError>| match r {
        Err(CacheError::InvalidParams { rule, .. }) => rule,
        other => panic!("expected CacheError::InvalidParams, got {other:?}"),
    };
    let kmd = || Region::create("t", &RegionParams::new(RegionId::Kmd, 128, 100)).unwrap();
    let guard = Region::create("t", &RegionParams::new(RegionId::GuardTail, 4096, 1)).unwrap();
    assert!(rule(Cache::new(guard, CacheParams::new("g"))).contains("guard"));
    let zero = CacheParams::new("z").with(|p| p.magazine_rounds = Some(0));
    assert!(rule(Cache::new(kmd(), zero)).contains("magazine rounds"));
    let huge = CacheParams::new("h").with(|p| p.magazine_rounds = Some(5000));
    assert!(rule(Cache::new(kmd(), huge)).contains("magazine rounds"));
    let many = CacheParams::new("w").with(|p| p.workers = 1025);
    assert!(rule(Cache::new(kmd(), many)).contains("1024 worker slots"));
    // Nothing was claimed by the refused attempts: the region still takes a cache.
    let r = kmd();
    let _ = Cache::new(r.clone(), CacheParams::new("x").with(|p| p.workers = 2000));
    assert!(Cache::new(r, CacheParams::new("ok")).is_ok());
}

#[test]
fn a_burst_sees_the_same_objects_as_single_calls() {
    let c = kmd_cache(1000, 1);
    let mut w = c.worker().unwrap();
    let mut held = Vec::new();
    {
        let mut b = w.burst();
        for _ in 0..200 {
            held.push(b.alloc().unwrap());
        }
        let mut batch = [0u32; 50];
        assert_eq!(b.alloc_batch(&mut batch), 50);
        held.extend_from_slice(&batch);
    }
    let distinct: HashSet<_> = held.iter().collect();
    assert_eq!(distinct.len(), 250);
    assert_balanced(&c.stats(), 250);
    {
        let mut b = w.burst();
        b.free_batch(&held[..100]).unwrap();
        for &o in &held[100..] {
            b.free(o).unwrap();
        }
    }
    assert_balanced(&c.stats(), 0);
}

#[test]
fn small_batches_cross_refills_and_spills_without_losing_or_repeating_objects() {
    // Batches of 4 and of 7 (not dividing the magazine), taken while the
    // worker's array holds enough (the straight copy) and when it runs dry
    // mid-batch (the refill loop); then put back the same way (straight,
    // and spilling whole magazines to the depot).
    let c = kmd_cache(1000, 1);
    let mut w = c.worker().unwrap();
    let mut got = Vec::new();
    for (i, size) in [4usize, 7].iter().cycle().take(200).enumerate() {
        let mut batch = vec![0u32; *size];
        let n = w.alloc_batch(&mut batch);
        assert_eq!(n, *size, "batch {i}");
        got.extend_from_slice(&batch);
    }
    assert_eq!(got.len(), 100 * 4 + 100 * 7);
    let mut sorted = got.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), got.len(), "an object was handed out twice");
    for chunk in got.chunks(7) {
        for part in chunk.chunks(4) {
            w.free_batch(part).unwrap();
        }
    }
    let st = c.stats();
    assert!(st.depot_full > 0, "whole magazines went to the depot");
    assert_balanced(&st, 0);
    // As many come back out again, none twice.
    let mut again = vec![0u32; got.len()];
    assert_eq!(w.alloc_batch(&mut again), got.len());
    again.sort_unstable();
    again.dedup();
    assert!(again.len() == got.len(), "an object was handed out twice");
}
