//! The worker slots of an offered arena, as the offer's thread (which
//! admits workers and sees them go) and the owner's data path (the
//! [`WorkerHub`](crate::workers::WorkerHub)) share them. They live with
//! the offer, which hands them out; `workers` lends through them.
//!
//! A slot is VACANT, ACTIVE (a worker has it; the hub lends to it) or
//! LEAVING (its worker is gone; the hub must take back what it lent, then
//! makes it VACANT). The offer's thread only ever takes a VACANT slot
//! (resetting its rings, which nobody else touches then) and only ever
//! moves an ACTIVE one to LEAVING; the hub does the rest. Every change
//! bumps one epoch word, so the hub's data path notices a change with one
//! load per round.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use rustix::event::{eventfd, EventfdFlags};

use crate::arena::Arena;
use crate::error::{ArenaError, Error, Result};
use crate::region::Region;
use crate::schema::objects::worker_ring as ring;

/// No worker.
pub(crate) const VACANT: u32 = 0;
/// A worker has the slot.
pub(crate) const ACTIVE: u32 = 1;
/// The worker is gone; the hub has not taken its frames back yet.
pub(crate) const LEAVING: u32 = 2;

/// One slot.
#[derive(Debug)]
pub(crate) struct Slot {
    state: AtomicU32,
    /// Bumped at every join: a slot that went and came back between two
    /// looks of the hub is a different worker.
    generation: AtomicU32,
    /// The worker's pid while ACTIVE (for statistics and logs).
    pid: AtomicU32,
    /// The worker sleeps on it; the owner writes it when the worker asked.
    wake: OwnedFd,
    /// RING objects of its two rings: to the worker, from it.
    objs: [u32; 2],
}

/// The worker slots of one arena: see the module docs.
#[derive(Debug)]
pub struct WorkerTable {
    slots: Vec<Slot>,
    epoch: AtomicU64,
    /// Is a hub lending from this table? Without one nothing is lent, so a
    /// leaving worker's slot is VACANT at once.
    hub: AtomicBool,
    /// The owner sleeps on it; a worker writes it when the owner asked.
    owner_wake: OwnedFd,
    /// The RING region, through whose owner view both sides of the owner
    /// reach the rings.
    ring_region: Arc<Region>,
    ring_entries: u32,
    arena_id: u64,
}

fn new_eventfd() -> Result<OwnedFd> {
    eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK).map_err(|e| Error::sys("eventfd", e))
}

impl WorkerTable {
    /// The table of `arena`'s worker slots; `None` when it has none.
    pub(crate) fn of(arena: &Arena) -> Result<Option<Arc<WorkerTable>>> {
        let Some(n) = arena.nexus() else {
            return Ok(None);
        };
        let (objs, entries) = n.worker_slots();
        if objs.is_empty() {
            return Ok(None);
        }
        let ring_region = n
            .ring_cache()
            .map(|c| c.region().clone())
            .ok_or(Error::Arena(ArenaError::InvalidParams {
                arena: arena.name().to_owned(),
                rule: "worker slots without a RING region",
            }))?;
        let slots = objs
            .iter()
            .map(|&objs| {
                Ok(Slot {
                    state: AtomicU32::new(VACANT),
                    generation: AtomicU32::new(0),
                    pid: AtomicU32::new(0),
                    wake: new_eventfd()?,
                    objs,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(Arc::new(WorkerTable {
            slots,
            epoch: AtomicU64::new(0),
            hub: AtomicBool::new(false),
            owner_wake: new_eventfd()?,
            ring_region,
            ring_entries: entries,
            arena_id: arena.id(),
        })))
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Has the table no slot? (Never: a table exists for slots.)
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The arena's id.
    pub(crate) fn arena_id(&self) -> u64 {
        self.arena_id
    }

    /// Entries of each worker ring.
    pub(crate) fn ring_entries(&self) -> u32 {
        self.ring_entries
    }

    /// The change counter.
    #[inline(always)]
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Slot `i`'s state, generation and pid.
    pub(crate) fn slot(&self, i: usize) -> (u32, u32, u32) {
        let s = &self.slots[i];
        (
            s.state.load(Ordering::Acquire),
            s.generation.load(Ordering::Acquire),
            s.pid.load(Ordering::Relaxed),
        )
    }

    /// The owner's address of slot `i`'s ring `which` (0 to the worker, 1
    /// from it): the start of its RING object.
    pub(crate) fn ring_base(&self, i: usize, which: usize) -> Result<*mut u8> {
        Ok(self.ring_region.obj_ptr(self.slots[i].objs[which])?)
    }

    /// The worker's eventfd of slot `i`.
    pub(crate) fn wake_fd(&self, i: usize) -> BorrowedFd<'_> {
        self.slots[i].wake.as_fd()
    }

    /// The owner's eventfd.
    pub(crate) fn owner_wake_fd(&self) -> BorrowedFd<'_> {
        self.owner_wake.as_fd()
    }

    /// A worker `pid` joins: takes a VACANT slot, resets its rings, makes
    /// it ACTIVE; `None` when every slot is taken.
    pub(crate) fn join(&self, pid: u32) -> Result<Option<usize>> {
        for (i, s) in self.slots.iter().enumerate() {
            if s.state.load(Ordering::Acquire) != VACANT {
                continue;
            }
            // VACANT: neither the hub nor a worker touches these rings
            // (the last worker's connection is gone), so they are reset
            // here, with plain atomic stores.
            for which in 0..2 {
                let base = self.ring_base(i, which)?;
                for off in [ring::PRODUCER, ring::CONSUMER, ring::FLAGS] {
                    // SAFETY: `base` is the owner view's address of a RING
                    // object this slot owns (kept mapped by `ring_region`),
                    // at least `ring::bytes(entries)` long (checked when
                    // the arena was made), so each index word lies inside
                    // it; RING objects are page-aligned, so the words are
                    // 4-aligned.
                    unsafe { AtomicU32::from_ptr(base.add(off as usize).cast()) }
                        .store(0, Ordering::Relaxed);
                }
            }
            s.pid.store(pid, Ordering::Relaxed);
            s.generation.fetch_add(1, Ordering::AcqRel);
            s.state.store(ACTIVE, Ordering::Release);
            self.bump();
            return Ok(Some(i));
        }
        Ok(None)
    }

    /// Is a slot LEAVING (about to be VACANT once the hub has its frames
    /// back)?
    pub(crate) fn emptying(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.state.load(Ordering::Acquire) == LEAVING)
    }

    /// Slot `i`'s worker is gone (exited, killed, redirected, cut off):
    /// LEAVING for the hub to take its frames back, or VACANT at once when
    /// no hub lends.
    pub(crate) fn leave(&self, i: usize) {
        let s = &self.slots[i];
        let to = if self.hub.load(Ordering::Acquire) {
            LEAVING
        } else {
            VACANT
        };
        if s.state
            .compare_exchange(ACTIVE, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            s.pid.store(0, Ordering::Relaxed);
            self.bump();
        }
    }

    /// The hub has taken slot `i`'s frames back: VACANT again.
    pub(crate) fn vacate(&self, i: usize) {
        if self.slots[i]
            .state
            .compare_exchange(LEAVING, VACANT, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.bump();
        }
    }

    /// A hub starts (true: it may lend) or stops lending from the table;
    /// false when another hub already lends from it.
    pub(crate) fn attach_hub(&self, on: bool) -> bool {
        if on {
            self.hub
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        } else {
            self.hub.store(false, Ordering::Release);
            // Whatever left meanwhile has nothing lent any more.
            for i in 0..self.slots.len() {
                self.vacate(i);
            }
            true
        }
    }
}
