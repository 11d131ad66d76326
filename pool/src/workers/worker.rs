//! The worker's side: an arena mapped from its owner, a worker slot, and
//! the packets the owner lends through the slot's rings, processed in
//! place.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{fence, Ordering};

use rustix::event::{poll, PollFd, PollFlags};

use super::advisory::{FlowAdvisory, NexusAdvisoryState};
use super::ring::{self, FREE};
use crate::channel::ring::{Consumer, Producer};
use crate::channel::{XdpDesc, XDP_PKT_CONTD};
use crate::error::{Error, LendError, RegionError, Result};
use crate::lend::RemoteArena;
use crate::region::{RegionFlags, RegionId};
use crate::schema::RingInfo;

/// A packet the owner lent this worker: where its data is in the UMEM,
/// and how long it is. Hand it back with [`WorkerChannel::tx_burst`] (to
/// send) or [`WorkerChannel::free`].
#[derive(Debug, PartialEq, Eq)]
pub struct WorkerFrame {
    addr: u64,
    /// Bytes of data (change it to send fewer; it cannot grow past the
    /// frame's room, which [`WorkerChannel::data_mut`] checks).
    pub len: u32,
    options: u32,
}

impl WorkerFrame {
    /// The UMEM address of the data.
    pub fn addr(&self) -> u64 {
        self.addr
    }

    /// More fragments of this packet follow (multi-buffer).
    pub fn more(&self) -> bool {
        self.options & XDP_PKT_CONTD != 0
    }
}

/// What this worker counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct WorkerStats {
    /// Frames received from the owner.
    pub received: u64,
    /// Frames handed back to send.
    pub sent: u64,
    /// Frames handed back to free.
    pub freed: u64,
    /// Descriptors from the owner outside the UMEM (skipped).
    pub bad_descs: u64,
    /// Times this worker woke the owner.
    pub owner_wakeups: u64,
    /// Times this worker slept in [`WorkerChannel::wait`].
    pub sleeps: u64,
}

/// A worker's channel: see the [module docs](super).
///
/// ```no_run
/// use skmem::workers::WorkerChannel;
///
/// let mut w = WorkerChannel::connect("/run/skmem-fwd.sock")?;
/// let mut frames = Vec::new();
/// loop {
///     if w.rx_burst(&mut frames, 64)? == 0 {
///         w.wait(100)?;
///         continue;
///     }
///     for f in &mut frames {
///         let data = w.data_mut(f)?;
///         // l2fwd: swap the Ethernet addresses, in place.
///         for i in 0..6 {
///             data.swap(i, i + 6);
///         }
///     }
///     w.tx_burst(&mut frames)?;
/// }
/// # Ok::<(), skmem::Error>(())
/// ```
#[derive(Debug)]
pub struct WorkerChannel {
    remote: RemoteArena,
    slot: u32,
    rx: Consumer<XdpDesc>,
    tx: Producer<XdpDesc>,
    wake: OwnedFd,
    owner_wake: OwnedFd,
    /// BUF_DEF (the UMEM) in the span.
    umem: *mut u8,
    umem_len: u64,
    stats: WorkerStats,
    /// `inspect_rx`'s frames, kept: no allocation per call.
    scratch: Vec<WorkerFrame>,
}

// SAFETY: the raw pointers are into the span `remote` keeps mapped for
// this value's life; the ring words are touched atomically and the UMEM
// bytes only through `&self`/`&mut self` methods, so moving the channel
// to another thread moves nothing shared.
unsafe impl Send for WorkerChannel {}

/// Checks that `r` lies in region `ring` of the span (mapped read-write)
/// and returns its base address there.
fn ring_in_span(remote: &RemoteArena, r: &RingInfo, what: &str) -> Result<*mut u8> {
    let bad = |why: &str| {
        Error::Lend(LendError::Handover {
            what: format!("worker {what} ring: {why}"),
        })
    };
    let region = remote
        .schema()
        .regions
        .iter()
        .find(|e| e.id == RegionId::Ring)
        .ok_or_else(|| bad("no RING region in the span"))?;
    if region.flags.contains(RegionFlags::UREADONLY) {
        return Err(bad("the RING region is read-only"));
    }
    let base = r
        .producer
        .checked_sub(ring::PRODUCER)
        .ok_or_else(|| bad("misplaced"))?;
    let laid_out = r.consumer == base + ring::CONSUMER
        && r.flags == base + ring::FLAGS
        && r.desc == base + ring::DESC
        && r.desc_size as usize == ring::DESC_SIZE
        && r.entries.is_power_of_two();
    if !laid_out {
        return Err(bad("not laid out as a worker ring"));
    }
    let end = base + ring::bytes(r.entries) as u64;
    if !base.is_multiple_of(8) || base < region.offset || end > region.offset + region.size {
        return Err(bad("outside the RING region"));
    }
    Ok(remote.addr().wrapping_add(base as usize))
}

impl WorkerChannel {
    /// Maps the arena offered at `path` and asks for a worker slot. A
    /// refusal (no slot free, no worker slots, credentials) is
    /// [`LendError::MapperRefused`] with the owner's reason.
    pub fn connect(path: impl AsRef<Path>) -> Result<WorkerChannel> {
        let (remote, joined) = RemoteArena::connect_as(path.as_ref(), true)?;
        let (slot, wake, owner_wake) = joined.ok_or_else(|| {
            Error::Lend(LendError::Handover {
                what: "no worker slot came".into(),
            })
        })?;
        let rings = remote
            .schema()
            .workers
            .get(slot as usize)
            .copied()
            .ok_or_else(|| {
                Error::Lend(LendError::Handover {
                    what: format!("worker slot {slot} is not in the schema"),
                })
            })?;
        let to = ring_in_span(&remote, &rings.to_worker, "RX")?;
        let from = ring_in_span(&remote, &rings.from_worker, "TX")?;
        if to == from {
            return Err(Error::Lend(LendError::Handover {
                what: "the worker's two rings are one".into(),
            }));
        }
        let (umem, umem_len) = remote.region(RegionId::BufDef).ok_or_else(|| {
            Error::Lend(LendError::Handover {
                what: "no BUF_DEF region in the span".into(),
            })
        })?;
        let writable = remote
            .schema()
            .regions
            .iter()
            .any(|r| r.id == RegionId::BufDef && !r.flags.contains(RegionFlags::UREADONLY));
        if !writable {
            return Err(Error::Lend(LendError::Handover {
                what: "BUF_DEF is read-only to mappers: a worker processes packets in place".into(),
            }));
        }
        // SAFETY: both rings were checked to lie, whole and 8-aligned,
        // inside the span's read-write RING region, which `remote` keeps
        // mapped as long as the channel (it is a field of it).
        let (rx, tx) = unsafe {
            (
                ring::consumer(to, rings.to_worker.entries),
                ring::producer(from, rings.from_worker.entries),
            )
        };
        tracing::info!(slot, arena = %remote.schema().name, "worker slot taken");
        Ok(WorkerChannel {
            remote,
            slot,
            rx,
            tx,
            wake,
            owner_wake,
            umem,
            umem_len: umem_len as u64,
            stats: WorkerStats::default(),
            scratch: Vec::new(),
        })
    }

    /// The worker slot this channel has.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    /// The mapped arena.
    pub fn arena(&self) -> &RemoteArena {
        &self.remote
    }

    /// What this worker counted.
    pub fn stats(&self) -> WorkerStats {
        self.stats
    }

    /// The owner's advisories: its per-queue state, and the flows it
    /// dropped because a worker's ring was full — to back off (see
    /// [`advisory`](super::advisory)).
    pub fn advisories(&self) -> Result<(Option<NexusAdvisoryState>, Vec<FlowAdvisory>)> {
        super::advisory::read(&self.remote)
    }

    fn check(&self) -> Result<()> {
        if self.remote.is_redirected() {
            return Err(Error::Lend(LendError::Redirected {
                arena: self.remote.schema().name.clone(),
            }));
        }
        Ok(())
    }

    /// Takes up to `max` lent packets into `out`; how many. After a
    /// redirect, [`LendError::Redirected`].
    pub fn rx_burst(&mut self, out: &mut Vec<WorkerFrame>, max: usize) -> Result<usize> {
        self.check()?;
        let n = self.rx.peek(max.min(u32::MAX as usize) as u32);
        let mut got = 0;
        for k in 0..n {
            let Some(d) = self.rx.read_at(k) else {
                break;
            };
            // The owner's descriptor, still checked: the data must lie in
            // the UMEM this process mapped.
            if d.addr
                .checked_add(u64::from(d.len))
                .is_none_or(|end| end > self.umem_len)
            {
                self.stats.bad_descs += 1;
                continue;
            }
            out.push(WorkerFrame {
                addr: d.addr,
                len: d.len,
                options: d.options & XDP_PKT_CONTD,
            });
            got += 1;
        }
        self.rx.release(n);
        self.stats.received += got as u64;
        Ok(got)
    }

    /// The data of `f`.
    pub fn data(&self, f: &WorkerFrame) -> Result<&[u8]> {
        self.check()?;
        let (at, len) = self.range(f)?;
        // SAFETY: `at..at+len` lies inside BUF_DEF of the span (checked by
        // `range`), mapped readable while `self.remote` lives, which
        // outlives the borrow of `self`. The owner lends a frame to one
        // worker at a time and does not touch it while lent, so nothing
        // writes these bytes while the slice lives (an owner breaking that
        // would race like a kernel writing a frame an AF_XDP program reads).
        Ok(unsafe { std::slice::from_raw_parts(self.umem.add(at), len) })
    }

    /// The data of `f`, to change in place (one frame at a time: the
    /// borrow is of the channel).
    pub fn data_mut(&mut self, f: &mut WorkerFrame) -> Result<&mut [u8]> {
        self.check()?;
        let (at, len) = self.range(f)?;
        // SAFETY: as in `data`; BUF_DEF is mapped read-write (checked in
        // `connect`: the span's protections follow the schema's flags),
        // and `&mut self` makes this the only slice of the UMEM handed out.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.umem.add(at), len) })
    }

    fn range(&self, f: &WorkerFrame) -> Result<(usize, usize)> {
        match f.addr.checked_add(u64::from(f.len)) {
            Some(end) if end <= self.umem_len => Ok((f.addr as usize, f.len as usize)),
            _ => Err(Error::Region(RegionError::Misuse {
                region: RegionId::BufDef,
                rule: "a frame's data must lie in the UMEM",
            })),
        }
    }

    /// Hands frames back from the front of `frames`, to send (`free`
    /// false) or to free; what the ring has no room for stays, in order.
    fn hand_back(&mut self, frames: &mut Vec<WorkerFrame>, free: bool) -> Result<usize> {
        self.check()?;
        let room = self.tx.free(frames.len().min(u32::MAX as usize) as u32) as usize;
        let n = room.min(frames.len());
        for (k, f) in frames.iter().take(n).enumerate() {
            let d = XdpDesc {
                addr: f.addr,
                len: f.len,
                options: f.options | if free { FREE } else { 0 },
            };
            // k < n <= the free slots just counted.
            self.tx.write_at(k as u32, d);
        }
        if n > 0 {
            self.tx.submit(n as u32);
            frames.drain(..n);
            if free {
                self.stats.freed += n as u64;
            } else {
                self.stats.sent += n as u64;
            }
            // As the owner does: index published, then the flag read.
            fence(Ordering::SeqCst);
            if self.tx.needs_wakeup() {
                rustix::io::write(&self.owner_wake, &1u64.to_ne_bytes())
                    .map_err(|e| Error::sys("write(owner eventfd)", e))?;
                self.stats.owner_wakeups += 1;
            }
        }
        Ok(n)
    }

    /// Writes raw descriptors into the ring back to the owner, as a
    /// hostile or broken worker could (it owns the ring's memory): for
    /// tests of the owner's checks. [`FREE`] in `options` asks for a free.
    #[doc(hidden)]
    pub fn hand_back_raw(&mut self, descs: &[XdpDesc]) -> Result<usize> {
        self.check()?;
        let n = (self.tx.free(descs.len().min(u32::MAX as usize) as u32) as usize).min(descs.len());
        for (k, &d) in descs.iter().take(n).enumerate() {
            self.tx.write_at(k as u32, d);
        }
        self.tx.submit(n as u32);
        Ok(n)
    }

    /// Hands frames back to be sent, from the front of `frames`; how many.
    /// What the ring has no room for stays in `frames`.
    pub fn tx_burst(&mut self, frames: &mut Vec<WorkerFrame>) -> Result<usize> {
        self.hand_back(frames, false)
    }

    /// Hands frames back to be freed (to the fill path), from the front of
    /// `frames`; how many.
    pub fn free(&mut self, frames: &mut Vec<WorkerFrame>) -> Result<usize> {
        self.hand_back(frames, true)
    }

    /// Shows up to `max` lent packets to `f` and frees them all: a capture
    /// tool's or an rxdrop's whole loop. Returns how many were seen.
    pub fn inspect_rx<F>(&mut self, max: usize, mut f: F) -> Result<usize>
    where
        F: FnMut(&WorkerFrame, &[u8]),
    {
        let mut frames = std::mem::take(&mut self.scratch);
        frames.clear();
        let r = self.rx_burst(&mut frames, max).and_then(|n| {
            for fr in &frames {
                f(fr, self.data(fr)?);
            }
            while !frames.is_empty() {
                if self.free(&mut frames)? == 0 {
                    // The ring back is full: the owner is behind; let it
                    // run.
                    std::thread::yield_now();
                }
            }
            Ok(n)
        });
        self.scratch = frames;
        r
    }

    /// Sleeps up to `timeout_ms` (−1: no limit) until the owner lends
    /// something; whether something is there.
    pub fn wait(&mut self, timeout_ms: i32) -> Result<bool> {
        self.check()?;
        self.rx.set_need_wakeup(true);
        // Our flag before the owner's index: see the owner's `submit`.
        fence(Ordering::SeqCst);
        if self.rx.pending() > 0 {
            self.rx.set_need_wakeup(false);
            return Ok(true);
        }
        self.stats.sleeps += 1;
        let mut fds = [PollFd::new(&self.wake, PollFlags::IN)];
        let timeout = (timeout_ms >= 0).then(|| rustix::fs::Timespec {
            tv_sec: i64::from(timeout_ms / 1000),
            tv_nsec: i64::from(timeout_ms % 1000) * 1_000_000,
        });
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::sys("poll(worker)", e)),
        }
        let mut drain = [0u8; 8];
        let _ = rustix::io::read(self.wake.as_fd(), &mut drain);
        self.rx.set_need_wakeup(false);
        Ok(self.rx.pending() > 0)
    }
}
