//! A loom model of the ring hand-over as skmem's [`Producer`] and
//! [`Consumer`] run it — the AF_XDP rings (fill and TX produced, RX and
//! completion consumed, the kernel on the other side) and the worker rings
//! (both sides skmem's, in two processes). Every interleaving loom can
//! reach is run with the orderings the code uses ([`order`]): slots are
//! loom `UnsafeCell`s, so a producer writing a slot the consumer may still
//! read (or the reverse) fails the model, as does an entry lost, repeated
//! or out of order. The ring is small, so the indices wrap.
//!
//! [`Producer`]: super::ring::Producer
//! [`Consumer`]: super::ring::Consumer
//! [`order`]: super::ring::order

use loom::cell::UnsafeCell;
use loom::sync::atomic::AtomicU32;
use loom::sync::Arc;
use loom::thread;

use super::ring::order;

/// Entries of the model's ring: two, so three entries wrap it.
const SIZE: u32 = 2;

/// The shared part: two indices and the slots.
struct Ring {
    producer: AtomicU32,
    consumer: AtomicU32,
    slots: [UnsafeCell<u64>; SIZE as usize],
}

/// The producing side, as `Producer` keeps it: cached indices, the
/// consumer's refreshed only when the cached view is short.
struct Prod {
    ring: Arc<Ring>,
    cached_prod: u32,
    cached_cons: u32,
}

impl Prod {
    fn new(ring: Arc<Ring>) -> Prod {
        let cached_prod = ring.producer.load(order::OWN);
        let cached_cons = ring.consumer.load(order::OBSERVE).wrapping_add(SIZE);
        Prod {
            ring,
            cached_prod,
            cached_cons,
        }
    }

    /// `Producer::free`.
    fn free(&mut self, want: u32) -> u32 {
        let free = self.cached_cons.wrapping_sub(self.cached_prod);
        if free >= want {
            return free;
        }
        self.cached_cons = self.ring.consumer.load(order::OBSERVE).wrapping_add(SIZE);
        self.cached_cons.wrapping_sub(self.cached_prod)
    }

    /// `Producer::write_at` then `Producer::submit` of one entry.
    fn push(&mut self, v: u64) -> bool {
        if self.free(1) == 0 {
            return false;
        }
        let idx = (self.cached_prod & (SIZE - 1)) as usize;
        // SAFETY: the slot is between the consumer's index and ours: the
        // protocol gives it to the producer, and loom checks that it does.
        self.ring.slots[idx].with_mut(|p| unsafe { *p = v });
        self.cached_prod = self.cached_prod.wrapping_add(1);
        self.ring.producer.store(self.cached_prod, order::PUBLISH);
        true
    }
}

/// The consuming side, as `Consumer` keeps it.
struct Cons {
    ring: Arc<Ring>,
    cached_prod: u32,
    cached_cons: u32,
}

impl Cons {
    fn new(ring: Arc<Ring>) -> Cons {
        let cached_cons = ring.consumer.load(order::OWN);
        let cached_prod = ring.producer.load(order::OBSERVE);
        Cons {
            ring,
            cached_prod,
            cached_cons,
        }
    }

    /// `Consumer::peek`, `read_at` and `release` of one entry.
    fn pop(&mut self) -> Option<u64> {
        if self.cached_prod.wrapping_sub(self.cached_cons) == 0 {
            self.cached_prod = self.ring.producer.load(order::OBSERVE);
            if self.cached_prod.wrapping_sub(self.cached_cons) == 0 {
                return None;
            }
        }
        let idx = (self.cached_cons & (SIZE - 1)) as usize;
        // SAFETY: the slot is between our index and the producer's: the
        // protocol gives it to the consumer, and loom checks that it does.
        let v = self.ring.slots[idx].with(|p| unsafe { *p });
        self.cached_cons = self.cached_cons.wrapping_add(1);
        self.ring.consumer.store(self.cached_cons, order::PUBLISH);
        Some(v)
    }
}

#[test]
fn a_ring_hands_every_entry_over_once_in_order_and_never_shares_a_slot() {
    const ENTRIES: u64 = 3;
    let runs = crate::util::loom_explore(|| {
        let ring = Arc::new(Ring {
            producer: AtomicU32::new(0),
            consumer: AtomicU32::new(0),
            slots: [UnsafeCell::new(0), UnsafeCell::new(0)],
        });
        let mut prod = Prod::new(ring.clone());
        let producer = thread::spawn(move || {
            for v in 1..=ENTRIES {
                while !prod.push(v) {
                    thread::yield_now();
                }
            }
        });
        let mut cons = Cons::new(ring);
        let mut got = Vec::new();
        while got.len() < ENTRIES as usize {
            match cons.pop() {
                Some(v) => got.push(v),
                None => thread::yield_now(),
            }
        }
        producer.join().unwrap();
        assert_eq!(got, (1..=ENTRIES).collect::<Vec<_>>());
    });
    println!("ring model: {runs} interleavings");
    assert!(runs > 1);
}
