//! loom models of the cache's lock-free protocol: a worker's bursts on its
//! magazine array against a purge that empties it (the busy/purging
//! handshake of the [module docs](super)), and the depot exchange both
//! fall back on. Every interleaving loom can reach is run, with the
//! orderings the code uses ([`super::worker::order`]); the array is a
//! loom `UnsafeCell`, so a purge and a burst touching it at once fail the
//! model, as does any object lost or held twice.
//!
//! The barriers are modelled as the fallback path has them: a SeqCst fence
//! on both sides. With membarrier the worker's side is only a compiler
//! fence and the kernel makes every running thread of the process execute
//! a full fence at the purger's barrier — at least as strong at the point
//! the model puts it, but beyond what loom can express.
//!
//! The per-call methods' fast path (`WorkerSlot::hold_fast`) is the same
//! handshake, with the same orderings; its `purging` byte's other bit is
//! constant for a slot's life and only sends the worker the slow way, so
//! the model keeps `purging` a flag.

use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicBool, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

use super::worker::order;
use crate::util::loom_explore as explore;

/// Objects in the model: few, so that loom's search stays exhaustive.
const OBJECTS: [u32; 4] = [1, 2, 3, 4];

/// One worker slot and what stands behind it.
struct Model {
    busy: AtomicBool,
    purging: AtomicBool,
    /// The worker's magazine array (its objects).
    cpu: UnsafeCell<Vec<u32>>,
    /// Full magazines' objects, behind the depot's lock.
    depot: Mutex<Vec<u32>>,
    /// Objects not in any magazine, behind the slab layer's lock.
    slab: Mutex<Vec<u32>>,
}

impl Model {
    fn new() -> Model {
        Model {
            busy: AtomicBool::new(false),
            purging: AtomicBool::new(false),
            cpu: UnsafeCell::new(vec![OBJECTS[0], OBJECTS[1]]),
            depot: Mutex::new(Vec::new()),
            slab: Mutex::new(vec![OBJECTS[2], OBJECTS[3]]),
        }
    }

    /// A burst, as `CacheWorker::burst` runs it: `f` gets the array, or
    /// `None` when a purge is on and the burst goes to the slabs.
    fn burst<R>(&self, f: impl FnOnce(Option<&mut Vec<u32>>) -> R) -> R {
        self.busy.store(true, order::RAISE_BUSY);
        fence(SeqCst); // light_barrier without membarrier
        if !self.purging.load(order::SEE_PURGING) {
            // SAFETY: what the protocol promises and loom checks: `busy`
            // is up and `purging` was seen down after the fence, so no
            // purge touches the array until `busy` falls.
            let r = self.cpu.with_mut(|cpu| f(Some(unsafe { &mut *cpu })));
            self.busy.store(false, order::LOWER_BUSY);
            return r;
        }
        self.busy.store(false, order::LOWER_BUSY);
        f(None)
    }

    /// Allocates one object: from the array, else a full magazine's worth
    /// from the depot, else the slabs.
    fn alloc(&self) -> Option<u32> {
        self.burst(|cpu| match cpu {
            Some(cpu) => {
                if cpu.is_empty() {
                    cpu.append(&mut self.depot.lock().unwrap());
                }
                cpu.pop().or_else(|| self.slab.lock().unwrap().pop())
            }
            None => self.slab.lock().unwrap().pop(),
        })
    }

    /// Frees one object: into the array (spilling to the depot past two),
    /// or to the slabs while a purge is on.
    fn free(&self, obj: u32) {
        self.burst(|cpu| match cpu {
            Some(cpu) => {
                cpu.push(obj);
                if cpu.len() > 2 {
                    self.depot.lock().unwrap().extend(cpu.drain(..1));
                }
            }
            None => self.slab.lock().unwrap().push(obj),
        })
    }

    /// A purge, as `with_every_slot` runs it: raise `purging`, the heavy
    /// barrier, wait for `busy` to fall, empty the array to the slabs.
    fn purge(&self) {
        self.purging.store(true, order::RAISE_PURGING);
        fence(SeqCst); // heavy_barrier without membarrier
        while self.busy.load(order::SEE_BUSY) {
            thread::yield_now();
        }
        // SAFETY: `purging` is up and `busy` was seen down after the
        // barrier: the worker bypasses the array until `purging` falls.
        let emptied = self
            .cpu
            .with_mut(|cpu| std::mem::take(unsafe { &mut *cpu }));
        let mut slab = self.slab.lock().unwrap();
        slab.extend(emptied);
        slab.append(&mut self.depot.lock().unwrap());
        drop(slab);
        self.purging.store(false, order::LOWER_PURGING);
    }

    /// Every object, wherever it is (the threads have ended).
    fn every_object(&self, held: &[u32]) -> Vec<u32> {
        // SAFETY: the threads have been joined: nobody else touches it.
        let mut all = self.cpu.with(|cpu| unsafe { &*cpu }.clone());
        all.extend(self.depot.lock().unwrap().iter());
        all.extend(self.slab.lock().unwrap().iter());
        all.extend(held);
        all.sort_unstable();
        all
    }
}

#[test]
fn a_purge_and_a_workers_bursts_never_share_its_array_nor_lose_an_object() {
    let runs = explore(|| {
        let m = Arc::new(Model::new());
        let w = m.clone();
        let worker = thread::spawn(move || {
            let a = w.alloc();
            let b = w.alloc();
            if let Some(a) = a {
                w.free(a);
            }
            b.into_iter().collect::<Vec<_>>()
        });
        m.purge();
        let held = worker.join().unwrap();
        assert_eq!(
            m.every_object(&held),
            OBJECTS,
            "an object lost or held twice"
        );
    });
    println!("cache purge model: {runs} interleavings");
    assert!(runs > 1);
}

#[test]
fn a_purge_after_a_racing_one_finds_every_object_in_the_slabs() {
    let runs = explore(|| {
        let m = Arc::new(Model::new());
        let w = m.clone();
        let worker = thread::spawn(move || {
            let a = w.alloc();
            if let Some(a) = a {
                w.free(a);
            }
        });
        m.purge();
        worker.join().unwrap();
        m.purge();
        // Nothing is held: the second purge leaves every object in the
        // slabs, none in a magazine.
        assert_eq!(m.every_object(&[]), OBJECTS);
        let mut slab = m.slab.lock().unwrap().clone();
        slab.sort_unstable();
        assert_eq!(slab, OBJECTS);
    });
    println!("cache purge-after-a-race model: {runs} interleavings");
    assert!(runs > 1);
}
