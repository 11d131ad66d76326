//! AF_XDP ring batch operations: skmem's producer/consumer code beside
//! crossbeam's `ArrayQueue`, in one run.
//!
//! skmem's `Producer`, `Consumer` and `RingMem` (`skmem::channel::ring`)
//! are the ones the channel runs, used here as any crate would (their
//! hot methods are `#[inline]`, so they inline across the crate boundary
//! as they do inside it). The ring lives in ordinary memory laid out as the kernel
//! lays it out (producer, consumer and flags words on their own cache
//! lines, then the descriptors); no socket is involved.
//!
//! * `ring-1thread/CONTENDER/B`: one thread enqueues B 8-byte addresses
//!   (a fill-ring batch) and dequeues them again;
//! * `ring-2thread/CONTENDER/B`: a producer pinned to cpu0 enqueues
//!   batches of B while a consumer pinned to cpu1 dequeues batches of B:
//!   throughput across cores.
//!
//! The peer is `crossbeam_queue::ArrayQueue<u64>`, already this crate's
//! dev-dependency: a bounded lock-free queue, but multi-producer/
//! multi-consumer (a CAS per element) and without batch operations, so it
//! moves one element per call. An SPSC ring with batch operations (`rtrb`'s
//! chunks) would be the closer peer; adding it means a new dependency.
//!
//! Throughput is elements (addresses) per second.
//!
//! Run: `cargo bench -p skmem-bench --bench ring`.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam_queue::ArrayQueue;
use rustix::net::xdp::XdpRingOffset;
use skmem::channel::ring::{CompletionConsumer, Consumer, FillProducer, Producer, RingMem};

/// A batch onto the ring the way the channel does it: addresses written in
/// place into the free slots, then published once. Returns how many fit.
#[inline]
fn push_addrs(prod: &mut FillProducer, addrs: &[u64]) -> usize {
    let n = (prod.free(addrs.len() as u32) as usize).min(addrs.len());
    for (k, &a) in addrs[..n].iter().enumerate() {
        prod.write_at(k as u32, a);
    }
    prod.submit(n as u32);
    n
}

/// A batch off the ring the way the channel does it: read in place, then
/// released once. Returns how many.
#[inline]
fn pop_addrs(cons: &mut CompletionConsumer, out: &mut [u64]) -> usize {
    let n = cons.peek(out.len() as u32);
    for (k, o) in (0..n).zip(out.iter_mut()) {
        *o = cons.read_at(k).unwrap_or_default();
    }
    cons.release(n);
    n as usize
}

/// Ring entries, as the pps harness's rings.
const ENTRIES: u32 = 1024;
const BATCHES: [usize; 4] = [1, 8, 32, 64];

#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line([u8; 64]);

/// A ring's memory: three index lines, then the descriptors (8-byte
/// addresses, as the fill and completion rings hold).
struct RingBuf {
    lines: Vec<Line>,
}

impl RingBuf {
    const OFFSETS: XdpRingOffset = XdpRingOffset {
        producer: 0,
        consumer: 64,
        flags: Some(128),
        desc: 192,
    };

    fn new() -> Self {
        let bytes = 192 + ENTRIES as usize * 8;
        RingBuf {
            lines: vec![Line([0; 64]); bytes.div_ceil(64)],
        }
    }

    /// A producer and a consumer over this memory.
    fn sides(&mut self) -> (FillProducer, CompletionConsumer) {
        let base = self.lines.as_mut_ptr().cast::<u8>();
        // SAFETY: `base` starts a live, 64-aligned buffer of 192 + ENTRIES
        // × 8 bytes laid out as OFFSETS says; it outlives both sides (every
        // caller drops them before the buffer); ENTRIES is a power of two.
        // Each side touches only its own index plus the descriptor slots
        // the ring protocol gives it.
        unsafe {
            (
                Producer::new(RingMem::new(base, &Self::OFFSETS, ENTRIES)),
                Consumer::new(RingMem::new(base, &Self::OFFSETS, ENTRIES)),
            )
        }
    }
}

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    // Unpinned figures are still figures; a machine with one CPU lands here.
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring-1thread");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        let addrs: Vec<u64> = (0..batch as u64).map(|i| i * 2048).collect();
        let mut out = vec![0u64; batch];

        let mut buf = RingBuf::new();
        {
            let (mut prod, mut cons) = buf.sides();
            group.bench_function(BenchmarkId::new("skmem-ring", batch), |b| {
                b.iter(|| {
                    assert_eq!(push_addrs(&mut prod, black_box(&addrs)), batch);
                    assert_eq!(pop_addrs(&mut cons, &mut out), batch);
                    black_box(&out);
                })
            });
        }

        let q = ArrayQueue::new(ENTRIES as usize);
        group.bench_function(BenchmarkId::new("crossbeam-arrayqueue", batch), |b| {
            b.iter(|| {
                for &a in black_box(&addrs) {
                    q.push(a).expect("room");
                }
                for o in out.iter_mut() {
                    *o = q.pop().expect("element");
                }
                black_box(&out);
            })
        });
    }
    group.finish();
}

/// Moves `total` elements from a producer on cpu0 to a consumer on cpu1 in
/// batches of `batch`; returns the time from the common start until the
/// consumer has them all.
fn two_threads<P, C>(total: u64, batch: usize, mut push: P, mut pop: C) -> Duration
where
    P: FnMut(&[u64]) -> usize + Send,
    C: FnMut(&mut [u64]) -> usize + Send,
{
    let start = Arc::new(Barrier::new(2));
    std::thread::scope(|s| {
        let go = start.clone();
        s.spawn(move || {
            pin(0);
            let addrs: Vec<u64> = (0..batch as u64).map(|i| i * 2048).collect();
            go.wait();
            let mut sent = 0u64;
            while sent < total {
                let want = (total - sent).min(batch as u64) as usize;
                let n = push(&addrs[..want]);
                if n == 0 {
                    std::hint::spin_loop();
                }
                sent += n as u64;
            }
        });
        let consumer = s.spawn(move || {
            pin(1);
            let mut out = vec![0u64; batch];
            start.wait();
            let t = Instant::now();
            let mut got = 0u64;
            while got < total {
                let n = pop(&mut out);
                if n == 0 {
                    std::hint::spin_loop();
                }
                got += n as u64;
                black_box(&out);
            }
            t.elapsed()
        });
        consumer.join().expect("consumer thread")
    })
}

fn cross_core(c: &mut Criterion) {
    let mut group = c.benchmark_group("ring-2thread");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    group.sample_size(20);
    for batch in BATCHES {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(BenchmarkId::new("skmem-ring", batch), |b| {
            b.iter_custom(|iters| {
                let mut buf = RingBuf::new();
                let (mut prod, mut cons) = buf.sides();
                two_threads(
                    iters * batch as u64,
                    batch,
                    |a| push_addrs(&mut prod, a),
                    |o| pop_addrs(&mut cons, o),
                )
            })
        });
        group.bench_function(BenchmarkId::new("crossbeam-arrayqueue", batch), |b| {
            b.iter_custom(|iters| {
                let q = ArrayQueue::new(ENTRIES as usize);
                two_threads(
                    iters * batch as u64,
                    batch,
                    |a| a.iter().take_while(|&&x| q.push(x).is_ok()).count(),
                    |o| {
                        let mut n = 0;
                        for slot in o.iter_mut() {
                            match q.pop() {
                                Some(x) => *slot = x,
                                None => break,
                            }
                            n += 1;
                        }
                        n
                    },
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, one_thread, cross_core);
criterion_main!(benches);
