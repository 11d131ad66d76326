//! Object cache micro-benchmark: skmem's magazine cache, the same cache
//! without magazines, and two common free lists (crossbeam's `ArrayQueue`,
//! `Mutex<Vec>`), side by side in one run.
//!
//! Workloads, each on 1 and 2 threads (every thread with its own worker),
//! shaped like DPDK's `mempool_perf_autotest` with n_keep = 32:
//! * `single`: get 32 objects one call each, then put them back one call
//!   each (DPDK's get/put bulk 1);
//! * `batch32`, `batch64`: get a batch in one call and put it back in one
//!   call (what the rings do).
//!
//! skmem runs each workload twice: with one burst around each get/put
//! cycle (`CacheWorker::burst`, how a ring poll uses the cache) and with the
//! worker's per-call methods, each of which opens its own burst
//! (`-per-call`).
//!
//! Objects are 2048-byte buffers, as in DPDK's `mempool_perf_autotest`;
//! only indices move, the bytes are never touched. Throughput is reported
//! in objects per second summed over threads; a "get+put" is one element.
//!
//! Beside them, in `single` on one thread, two models of the per-call
//! fast path's own memory traffic with no pool behind it
//! ([`Model`]): `model-array` (an array and its length in memory, what
//! any get+put one call at a time touches) and `model-handshake` (the
//! same inside the busy/purging handshake a purge-safe per-call path
//! adds): the floor under `skmem-magazines-per-call` on the machine that
//! runs it, measured in the same run.
//!
//! Run: `cargo bench -p skmem-bench --bench cache` (or `cargo xtask bench`,
//! which also rewrites the table in BENCHMARKS.md).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::cell::UnsafeCell;
use std::hint::black_box;
use std::sync::atomic::{compiler_fence, AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use skmem::cache::{Cache, CacheParams};
use skmem::region::{Region, RegionFlags, RegionId, RegionParams};

const OBJECTS: usize = 16 * 1024;
const OBJ_SIZE: usize = 2048;

/// One contender: something that hands out and takes back `u32` objects.
trait Pool: Send + Sync + 'static {
    /// Per-thread state (a cache worker, or nothing).
    type Local;
    fn local(self: &Arc<Self>) -> Self::Local;
    /// Gets `keep.len()` objects one call each, then puts them back.
    fn get_put_single(&self, local: &mut Self::Local, keep: &mut [u32]);
    /// Gets `buf.len()` objects in one call, then puts them back in one.
    fn get_put_batch(&self, local: &mut Self::Local, buf: &mut [u32]);
}

/// Gets `objs.len()` objects one `get` call each, then puts them back one
/// `put` call each; `s` is what both act on.
#[inline]
fn one_call_each<S>(
    s: &mut S,
    objs: &mut [u32],
    get: impl Fn(&mut S) -> u32,
    put: impl Fn(&mut S, u32),
) {
    for o in objs.iter_mut() {
        *o = get(s);
    }
    for &o in black_box(&*objs) {
        put(s, o);
    }
}

struct Skmem {
    cache: Arc<Cache>,
    /// Use a burst around each round of single calls.
    burst: bool,
}

impl Skmem {
    fn new(magazines: bool, burst: bool, workers: usize) -> Self {
        let mut flags = RegionFlags::template(RegionId::Kmd);
        if !magazines {
            flags |= RegionFlags::NOMAGAZINES;
        }
        let params = RegionParams::new(RegionId::Kmd, OBJ_SIZE, OBJECTS)
            .with_flags(flags)
            .with_workers(workers);
        let region = Region::create("bench", &params).expect("region");
        let cache = Cache::new(region, CacheParams::new("bench")).expect("cache");
        Skmem { cache, burst }
    }
}

impl Pool for Skmem {
    type Local = skmem::cache::CacheWorker;
    fn local(self: &Arc<Self>) -> Self::Local {
        self.cache.worker().expect("worker slot")
    }
    #[inline]
    fn get_put_single(&self, w: &mut Self::Local, keep: &mut [u32]) {
        if self.burst {
            one_call_each(
                &mut w.burst(),
                keep,
                |b| b.alloc().expect("object"),
                |b, k| b.free(k).expect("free"),
            );
        } else {
            one_call_each(
                w,
                keep,
                |w| w.alloc().expect("object"),
                |w, k| w.free(k).expect("free"),
            );
        }
    }
    #[inline]
    fn get_put_batch(&self, w: &mut Self::Local, buf: &mut [u32]) {
        if self.burst {
            let mut b = w.burst();
            assert_eq!(b.alloc_batch(buf), buf.len());
            b.free_batch(black_box(buf)).expect("free");
        } else {
            assert_eq!(w.alloc_batch(buf), buf.len());
            w.free_batch(black_box(buf)).expect("free");
        }
    }
}

/// A free list every thread shares, with nothing per thread: the two
/// common contenders.
trait FreeList: Send + Sync + 'static {
    /// Takes one object.
    fn take(&self) -> u32;
    /// Gives one object back.
    fn give(&self, o: u32);
    /// Takes `buf.len()` objects, then gives them back, in as few calls as
    /// the list allows (by default, one per object).
    #[inline]
    fn take_give_batch(&self, buf: &mut [u32]) {
        one_call_each(&mut (), buf, |_| self.take(), |_, o| self.give(o));
    }
}

impl<L: FreeList> Pool for L {
    type Local = ();
    fn local(self: &Arc<Self>) {}
    #[inline]
    fn get_put_single(&self, local: &mut (), keep: &mut [u32]) {
        one_call_each(local, keep, |_| self.take(), |_, o| self.give(o));
    }
    #[inline]
    fn get_put_batch(&self, _: &mut (), buf: &mut [u32]) {
        self.take_give_batch(buf);
    }
}

struct Queue(ArrayQueue<u32>);

impl Queue {
    fn new() -> Self {
        let q = ArrayQueue::new(OBJECTS);
        for i in 0..OBJECTS as u32 {
            q.push(i).expect("capacity");
        }
        Queue(q)
    }
}

impl FreeList for Queue {
    #[inline]
    fn take(&self) -> u32 {
        self.0.pop().expect("object")
    }
    #[inline]
    fn give(&self, o: u32) {
        self.0.push(o).expect("room");
    }
}

struct Locked(Mutex<Vec<u32>>);

impl Locked {
    fn new() -> Self {
        Locked(Mutex::new((0..OBJECTS as u32).collect()))
    }
}

impl FreeList for Locked {
    #[inline]
    fn take(&self) -> u32 {
        self.0.lock().unwrap().pop().expect("object")
    }
    #[inline]
    fn give(&self, o: u32) {
        self.0.lock().unwrap().push(o);
    }
    #[inline]
    fn take_give_batch(&self, buf: &mut [u32]) {
        {
            let mut v = self.0.lock().unwrap();
            let at = v.len() - buf.len();
            buf.copy_from_slice(&v[at..]);
            v.truncate(at);
        }
        self.0.lock().unwrap().extend_from_slice(black_box(&*buf));
    }
}

/// A model of `CacheWorker::alloc` / `free`'s fast path, not a pool: each
/// thread's array of objects and its length behind a slot of a shared
/// table (as the cache's worker slots are, so the compiler cannot keep
/// the length in a register across calls either), and with `handshake`
/// the busy/purging handshake around each call, with the cache's
/// orderings (`busy` raised Relaxed, a compiler fence — the light
/// barrier where membarrier works — `purging` read Acquire, `busy`
/// lowered Release). No purger runs and nothing refills or spills: the
/// array holds what one round of `single` takes out and puts back.
struct Model {
    handshake: bool,
    slots: Vec<ModelSlot>,
    /// The next slot `local` hands out (modulo the table's size).
    next: AtomicUsize,
}

/// On lines of its own, as the cache's worker slots are.
#[repr(align(128))]
struct ModelSlot {
    busy: AtomicBool,
    purging: AtomicU8,
    cpu: UnsafeCell<ModelArray>,
}

/// `objs[..len]` are the slot's objects (the cache's `CpuCache`).
struct ModelArray {
    len: usize,
    objs: Box<[u32]>,
}

// SAFETY: a slot's array is only touched through `ModelSlot::call` by the
// thread `Model::local` gave the slot's index to; every `run` takes
// exactly `threads` indices and joins its threads before the next, so
// the threads of one run hold distinct slots (indices modulo `threads`).
unsafe impl Sync for ModelSlot {}

impl Model {
    fn new(handshake: bool, threads: usize) -> Self {
        let slots = (0..threads)
            .map(|_| ModelSlot {
                busy: AtomicBool::new(false),
                purging: AtomicU8::new(0),
                cpu: UnsafeCell::new(ModelArray {
                    len: KEEP,
                    objs: (0..2 * KEEP as u32).collect(),
                }),
            })
            .collect();
        Model {
            handshake,
            slots,
            next: AtomicUsize::new(0),
        }
    }
}

impl ModelSlot {
    /// One call's fast path: `f` on the array, inside the handshake if
    /// `handshake`.
    #[inline(always)]
    fn call<R>(&self, handshake: bool, f: impl FnOnce(&mut ModelArray) -> R) -> R {
        if handshake {
            self.busy.store(true, Ordering::Relaxed);
            compiler_fence(Ordering::SeqCst);
            if self.purging.load(Ordering::Acquire) != 0 {
                no_purger();
            }
        }
        // SAFETY: only the thread holding this slot's index gets here (see
        // the `Sync` impl), and no purger exists: the array is this
        // call's alone.
        let r = f(unsafe { &mut *self.cpu.get() });
        if handshake {
            self.busy.store(false, Ordering::Release);
        }
        r
    }
}

#[cold]
#[inline(never)]
fn no_purger() -> ! {
    panic!("the model has no purger, no refill and no spill")
}

impl Pool for Model {
    type Local = usize;
    fn local(self: &Arc<Self>) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len()
    }
    #[inline]
    fn get_put_single(&self, i: &mut usize, keep: &mut [u32]) {
        let (slot, hs) = (&self.slots[*i], self.handshake);
        one_call_each(
            &mut (),
            keep,
            |_| {
                slot.call(hs, |a| match a.len.checked_sub(1) {
                    Some(top) => {
                        a.len = top;
                        a.objs[top]
                    }
                    None => no_purger(),
                })
            },
            |_, o| {
                slot.call(hs, |a| match a.objs.get_mut(a.len) {
                    Some(at) => {
                        *at = o;
                        a.len += 1;
                    }
                    None => no_purger(),
                })
            },
        );
    }
    fn get_put_batch(&self, _: &mut usize, _: &mut [u32]) {
        unreachable!("the models run the single workload only")
    }
}

/// Objects held between gets and puts in the `single` workload (DPDK's
/// n_keep).
const KEEP: usize = 32;

/// Runs `iters` rounds of the workload on each of `threads` threads,
/// started together; returns the slowest thread's time (the run's wall
/// time, without thread start-up).
fn run<P: Pool>(pool: &Arc<P>, threads: usize, iters: u64, batch: usize) -> Duration {
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (pool, start) = (pool.clone(), start.clone());
            std::thread::spawn(move || {
                let mut local = pool.local();
                let mut buf = vec![0u32; if batch == 0 { KEEP } else { batch }];
                // Warm the magazines before the clock starts.
                for _ in 0..64 {
                    if batch == 0 {
                        pool.get_put_single(&mut local, &mut buf);
                    } else {
                        pool.get_put_batch(&mut local, &mut buf);
                    }
                }
                start.wait();
                let t = Instant::now();
                if batch == 0 {
                    for _ in 0..iters {
                        pool.get_put_single(&mut local, &mut buf);
                    }
                } else {
                    for _ in 0..iters {
                        pool.get_put_batch(&mut local, &mut buf);
                    }
                }
                t.elapsed()
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("bench thread"))
        .max()
        .unwrap_or_default()
}

fn contenders(c: &mut Criterion, workload: &str, batch: usize) {
    let mut group = c.benchmark_group(workload);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for threads in [1usize, 2] {
        let per_iter = (if batch == 0 { KEEP } else { batch } * threads) as u64;
        group.throughput(Throughput::Elements(per_iter));
        let mut contender = |name: &str, pool: &dyn Fn(&mut criterion::Bencher)| {
            group.bench_function(BenchmarkId::new(name, threads), |b| pool(b));
        };
        let skmem_mag = Arc::new(Skmem::new(true, true, threads));
        contender("skmem-magazines", &|b| {
            b.iter_custom(|iters| run(&skmem_mag, threads, iters, batch))
        });
        let per_call = Arc::new(Skmem::new(true, false, threads));
        contender("skmem-magazines-per-call", &|b| {
            b.iter_custom(|iters| run(&per_call, threads, iters, batch))
        });
        let skmem_slab = Arc::new(Skmem::new(false, false, threads));
        contender("skmem-no-magazines", &|b| {
            b.iter_custom(|iters| run(&skmem_slab, threads, iters, batch))
        });
        let queue = Arc::new(Queue::new());
        contender("crossbeam-arrayqueue", &|b| {
            b.iter_custom(|iters| run(&queue, threads, iters, batch))
        });
        let locked = Arc::new(Locked::new());
        contender("mutex-vec", &|b| {
            b.iter_custom(|iters| run(&locked, threads, iters, batch))
        });
        if batch == 0 && threads == 1 {
            for (name, handshake) in [("model-array", false), ("model-handshake", true)] {
                let model = Arc::new(Model::new(handshake, threads));
                contender(name, &|b| {
                    b.iter_custom(|iters| run(&model, threads, iters, batch))
                });
            }
        }
    }
    group.finish();
}

fn cache_benches(c: &mut Criterion) {
    contenders(c, "single", 0);
    contenders(c, "batch32", 32);
    contenders(c, "batch64", 64);
}

criterion_group!(benches, cache_benches);
criterion_main!(benches);
