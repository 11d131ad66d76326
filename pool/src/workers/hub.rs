//! The owner's data path with workers: a channel's received packets lent
//! to the workers of its arena's offer, and what they hand back sent or
//! freed — checked, counted, and taken back whole when a worker goes.

use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

use rustix::event::{poll, PollFd, PollFlags};

use super::advisory::{FlowAdvisories, NexusAdvisoryState, SlotAdvisory};
use super::ring::{self, FREE};
use crate::channel::ring::{Consumer, Producer};
use crate::channel::{Channel, Frame, Refusal, Refused, XdpDesc};
use crate::error::{ArenaError, Error, Result};
use crate::lend::slots::{WorkerTable, ACTIVE, LEAVING};
use crate::lend::ArenaOffer;
use crate::pool::{Holder, PacketState, Tag};
use crate::region::Region;

/// Polls between two publications of the nexus advisory.
const PUBLISH_EVERY: u64 = 128;

/// How received packets are spread over the workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Spread {
    /// By a hash of the flow (addresses, protocol and ports of IPv4 and
    /// IPv6 TCP/UDP; the MAC addresses otherwise): a flow stays on one
    /// worker, so its packets stay in order and a worker's per-flow state
    /// stays its own. The default, for that reason.
    #[default]
    FlowHash,
    /// Each packet to the next worker: even load whatever the flows, but a
    /// flow's packets may be reordered across workers.
    RoundRobin,
}

/// What the owner counted for one worker slot.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct WorkerCounters {
    /// Workers that joined this slot.
    pub joins: u64,
    /// Frames lent (descriptors put in its ring).
    pub lent: u64,
    /// Frames it handed back to send.
    pub sent: u64,
    /// Frames it handed back to free.
    pub freed: u64,
    /// Frames dropped because its ring was full (the worker is behind).
    pub dropped_full: u64,
    /// Frames it handed back that the TX ring had no room for (freed).
    pub tx_full: u64,
    /// Frames taken back when it went.
    pub reclaimed: u64,
    /// Descriptors handed back whose address is not in the UMEM.
    pub bad_range: u64,
    /// Descriptors naming a frame lent to another worker.
    pub bad_other_worker: u64,
    /// Descriptors naming a frame it had already handed back.
    pub bad_twice: u64,
    /// Descriptors naming a frame not lent to any worker.
    pub bad_not_lent: u64,
    /// Descriptors whose data runs past the frame's buffer (the frame was
    /// taken back and freed).
    pub bad_length: u64,
    /// Fragment flags on a channel of one-frame packets (the frame was
    /// taken back and freed).
    pub bad_chain: u64,
    /// Wakeups written to its eventfd (it was asleep).
    pub wakeups: u64,
}

impl WorkerCounters {
    /// Descriptors refused, every reason.
    pub fn bad(&self) -> u64 {
        self.bad_range
            + self.bad_other_worker
            + self.bad_twice
            + self.bad_not_lent
            + self.bad_length
            + self.bad_chain
    }

    fn count(&mut self, why: Refusal) {
        *match why {
            Refusal::OutOfRange => &mut self.bad_range,
            Refusal::OtherWorker => &mut self.bad_other_worker,
            Refusal::Twice => &mut self.bad_twice,
            Refusal::NotLent => &mut self.bad_not_lent,
            Refusal::PastBuffer => &mut self.bad_length,
            Refusal::BrokenChain => &mut self.bad_chain,
        } += 1;
    }
}

/// One active worker's two rings, as the owner drives them.
#[derive(Debug)]
struct Lane {
    /// The slot's generation when the hub took it up.
    generation: u32,
    pid: u32,
    to: Producer<XdpDesc>,
    from: Consumer<XdpDesc>,
    /// Descriptors written into `to` this round, not yet submitted.
    pending: u32,
    /// Its flows are flow-controlled (its ring was full).
    controlled: bool,
}

/// A channel whose received packets are processed by worker processes:
/// see the [module docs](super). Made from the channel and the arena's
/// offer; [`poll`](Self::poll) does one round of the owner's work.
///
/// ```no_run
/// use skmem::arena::{Arena, NexusParams};
/// use skmem::channel::{Channel, ChannelParams};
/// use skmem::lend::{ArenaOffer, OfferPolicy};
/// use skmem::workers::{Spread, WorkerHub};
///
/// let arena = Arena::create_nexus(&NexusParams::new("fwd").with_worker_slots(2))?;
/// let ch = Channel::open(&arena, &ChannelParams::new("veth0", 0))?;
/// let offer = ArenaOffer::serve(&arena, "/run/skmem-fwd.sock", OfferPolicy::root_only())?;
/// let mut hub = WorkerHub::new(ch, &offer, Spread::FlowHash)?;
/// loop {
///     if hub.poll()? == 0 {
///         hub.wait(100)?;
///     }
/// }
/// # Ok::<(), skmem::Error>(())
/// ```
#[derive(Debug)]
pub struct WorkerHub {
    ch: Channel,
    table: Arc<WorkerTable>,
    epoch: u64,
    lanes: Vec<Option<Lane>>,
    holders: Vec<Holder>,
    /// Each slot's Lent tag.
    tags: Vec<Tag>,
    counters: Vec<WorkerCounters>,
    /// Slots with a lane, in slot order: what spreading picks from.
    active: Vec<usize>,
    spread: Spread,
    next: usize,
    batch: usize,
    rx: Vec<Frame>,
    tx: Vec<Frame>,
    free: Vec<Frame>,
    /// Frames received with no worker to take them (freed).
    no_worker: u64,
    /// Owner-private: by packet, the slot (+1) it was last lent to — what
    /// tells a frame handed back twice from one never lent.
    last_lent: Vec<u8>,
    /// FLOWADV, when the arena has it.
    flowadv: Option<FlowAdvisories>,
    /// NEXUSADV, and what goes in it (kept: no allocation per publish).
    nexusadv: Option<Arc<Region>>,
    adv_state: NexusAdvisoryState,
    adv_bytes: Vec<u8>,
    adv_seq: u64,
    polls: u64,
}

impl WorkerHub {
    /// Lends `ch`'s received packets to the workers `offer` admits. The
    /// offer must serve `ch`'s arena, made with worker slots; one hub per
    /// offer; channels of one-frame packets only (multi-buffer chains are
    /// not lent yet).
    pub fn new(ch: Channel, offer: &ArenaOffer, spread: Spread) -> Result<WorkerHub> {
        let bad = |rule| {
            Error::Arena(ArenaError::InvalidParams {
                arena: ch.arena().name().to_owned(),
                rule,
            })
        };
        let table = offer
            .worker_table()
            .ok_or_else(|| bad("the offer's arena has no worker slots"))?;
        if table.arena_id() != ch.arena().id() {
            return Err(bad("the offer serves another arena than the channel's"));
        }
        if ch.params().multi_buffer {
            return Err(bad(
                "a worker hub lends one-frame packets: no multi-buffer channel",
            ));
        }
        if !table.attach_hub(true) {
            return Err(bad("another worker hub already lends from this offer"));
        }
        let mut holders = Vec::with_capacity(table.len());
        for _ in 0..table.len() {
            match ch.claim_holder() {
                Ok(h) => holders.push(h),
                Err(e) => {
                    holders.iter().for_each(|&h| ch.release_holder(h));
                    table.attach_hub(false);
                    return Err(e);
                }
            }
        }
        let batch = ch.params().batch.max(1);
        let n = table.len();
        let nexus = ch.arena().nexus();
        let flowadv = nexus
            .as_ref()
            .and_then(|x| x.flowadv_region().map(|(r, e)| (r.clone(), e)))
            .and_then(|(r, e)| FlowAdvisories::new(r, e));
        let nexusadv = nexus
            .as_ref()
            .and_then(|x| x.nexus_advisory().map(|a| a.region.clone()));
        let mut hub = WorkerHub {
            tags: holders
                .iter()
                .map(|&h| Tag::new(PacketState::Lent, h))
                .collect(),
            holders,
            lanes: (0..n).map(|_| None).collect(),
            counters: vec![WorkerCounters::default(); n],
            active: Vec::with_capacity(n),
            table,
            // Not the table's: the first poll looks at every slot.
            epoch: u64::MAX,
            spread,
            next: 0,
            batch,
            rx: Vec::with_capacity(batch),
            tx: Vec::with_capacity(batch),
            free: Vec::with_capacity(batch),
            no_worker: 0,
            last_lent: vec![0; ch.pool().packet_count() as usize],
            flowadv,
            nexusadv,
            adv_state: NexusAdvisoryState {
                slots: vec![SlotAdvisory::default(); n],
                ..NexusAdvisoryState::default()
            },
            adv_bytes: Vec::with_capacity(crate::schema::objects::nexus_advisory::bytes(n)),
            adv_seq: 0,
            polls: 0,
            ch,
        };
        hub.sync()?;
        hub.publish_advisory()?;
        Ok(hub)
    }

    /// The channel.
    pub fn channel(&self) -> &Channel {
        &self.ch
    }

    /// The channel, to account its frames or read its counters.
    pub fn channel_mut(&mut self) -> &mut Channel {
        &mut self.ch
    }

    /// Each slot's counters.
    pub fn counters(&self) -> &[WorkerCounters] {
        &self.counters
    }

    /// Frames received while no worker was there (given back to the fill
    /// path).
    pub fn no_worker(&self) -> u64 {
        self.no_worker
    }

    /// The pids of the workers lent to now, by slot.
    pub fn workers(&self) -> Vec<Option<u32>> {
        self.lanes
            .iter()
            .map(|l| l.as_ref().map(|l| l.pid))
            .collect()
    }

    /// Frames lent now, to every worker.
    pub fn lent(&self) -> u64 {
        self.tags.iter().map(|&t| self.ch.count_tagged(t)).sum()
    }

    /// A worker's ring from the owner is at least half full: that worker is
    /// falling behind, and once its ring is full what is received for it is
    /// dropped (counted as `dropped_full`, its flows marked in the flow
    /// advisory). An owner that shares a CPU with its workers should give
    /// them the CPU now (`std::thread::yield_now`) rather than lend more —
    /// otherwise it fills their rings while they wait for the CPU.
    pub fn behind(&self) -> bool {
        self.active.iter().any(|&s| {
            self.lanes[s]
                .as_ref()
                .is_some_and(|l| l.to.outstanding() >= l.to.size() / 2)
        })
    }

    /// One round of the owner's work: received packets into the workers'
    /// rings, what they handed back onto the TX ring or the fill path, TX
    /// completions; workers that came or went are taken up or have their
    /// frames taken back. Returns how many frames moved (0: nothing to do).
    pub fn poll(&mut self) -> Result<usize> {
        if self.table.epoch() != self.epoch {
            self.sync()?;
        }
        let mut moved = self.lend_received()?;
        moved += self.take_handed_back();
        if !self.tx.is_empty() {
            let mut tx = std::mem::take(&mut self.tx);
            let r = self.ch.tx_burst(&mut tx);
            if !tx.is_empty() {
                // The TX ring is full: what does not fit is freed, counted
                // against nobody's worker (the wire is the limit).
                self.counters_tx_full(tx.len() as u64);
                self.free.append(&mut tx);
            }
            self.tx = tx;
            r?;
        }
        if !self.free.is_empty() {
            let mut free = std::mem::take(&mut self.free);
            let r = self.ch.free_rx(&mut free);
            free.clear();
            self.free = free;
            r?;
        }
        moved += self.ch.complete();
        self.polls += 1;
        if self.polls.is_multiple_of(PUBLISH_EVERY) {
            self.publish_advisory()?;
        }
        Ok(moved)
    }

    /// Writes the owner's per-queue state into NEXUSADV.
    fn publish_advisory(&mut self) -> Result<()> {
        let Some(r) = &self.nexusadv else {
            return Ok(());
        };
        let c = self.ch.counters();
        self.adv_state.rx_packets = c.rx_packets;
        self.adv_state.tx_packets = c.tx_packets;
        self.adv_state.no_worker = self.no_worker;
        for (i, s) in self.adv_state.slots.iter_mut().enumerate() {
            let w = &self.counters[i];
            let lane = self.lanes[i].as_ref();
            *s = SlotAdvisory {
                lent: w.lent,
                back: w.sent + w.freed,
                dropped_full: w.dropped_full,
                reclaimed: w.reclaimed,
                occupancy: lane.map_or(0, |l| l.to.outstanding()),
                pid: lane.map_or(0, |l| l.pid),
                bad: w.bad(),
            };
        }
        self.adv_seq += 2;
        self.adv_state.encode(self.adv_seq, &mut self.adv_bytes);
        Ok(r.obj(0)?.publish(0, &self.adv_bytes)?)
    }

    fn counters_tx_full(&mut self, n: u64) {
        if let Some(&s) = self.active.first() {
            self.counters[s].tx_full += n;
        }
    }

    /// Received packets into the workers' rings.
    fn lend_received(&mut self) -> Result<usize> {
        let mut rx = std::mem::take(&mut self.rx);
        let r = self.ch.rx_burst(&mut rx, self.batch);
        let got = rx.len();
        if self.active.is_empty() {
            self.no_worker += got as u64;
            self.free.append(&mut rx);
        } else {
            for f in rx.drain(..) {
                let slot = self.pick(&f);
                let Some(lane) = self.lanes[slot].as_mut() else {
                    self.free.push(f);
                    continue;
                };
                let k = lane.pending;
                if lane.to.free(k + 1) <= k {
                    self.counters[slot].dropped_full += 1;
                    lane.controlled = true;
                    if let (Some(adv), Ok(bytes)) = (&self.flowadv, self.ch.data(&f)) {
                        if let Err(e) = adv.dropped(super::flow::hash(bytes), slot) {
                            tracing::warn!(error = %e, "flow advisory not written");
                        }
                    }
                    self.free.push(f);
                    continue;
                }
                if let Some(l) = self.last_lent.get_mut(f.packet().get() as usize) {
                    // At most 16 slots: fits.
                    *l = slot as u8 + 1;
                }
                let d = self.ch.lend(f, self.tags[slot]);
                // Room was checked just above.
                lane.to.write_at(k, d);
                lane.pending += 1;
                self.counters[slot].lent += 1;
            }
            self.submit()?;
        }
        self.rx = rx;
        r.map(|_| got)
    }

    /// Publishes what each lane got this round, waking a worker that
    /// sleeps.
    fn submit(&mut self) -> Result<()> {
        let mut any = false;
        for &s in &self.active {
            if let Some(lane) = self.lanes[s].as_mut() {
                if lane.pending > 0 {
                    lane.to.submit(lane.pending);
                    lane.pending = 0;
                    any = true;
                }
            }
        }
        // A worker whose ring was full and is half empty again has caught
        // up: its flows are no longer controlled.
        for &s in &self.active {
            if let Some(lane) = self.lanes[s].as_mut() {
                let size = lane.to.size();
                if lane.controlled && lane.to.free(size) >= size / 2 {
                    lane.controlled = false;
                    if let Some(adv) = &self.flowadv {
                        adv.caught_up(s)?;
                    }
                }
            }
        }
        if !any {
            return Ok(());
        }
        // The worker sets NEED_WAKEUP, then looks at the producer index;
        // we published the index, then look at NEED_WAKEUP: a full fence
        // on each side, or both could miss the other.
        fence(Ordering::SeqCst);
        for &s in &self.active {
            if let Some(lane) = self.lanes[s].as_ref() {
                if lane.to.needs_wakeup() {
                    rustix::io::write(self.table.wake_fd(s), &1u64.to_ne_bytes())
                        .map_err(|e| Error::sys("write(worker eventfd)", e))?;
                    self.counters[s].wakeups += 1;
                }
            }
        }
        Ok(())
    }

    /// The worker to lend `f` to.
    fn pick(&mut self, f: &Frame) -> usize {
        let n = self.active.len();
        let i = match self.spread {
            Spread::RoundRobin => {
                self.next = (self.next + 1) % n;
                self.next
            }
            Spread::FlowHash => match self.ch.data(f) {
                Ok(bytes) => (super::flow::hash(bytes) % n as u64) as usize,
                Err(_) => 0,
            },
        };
        self.active[i]
    }

    /// What the workers handed back, checked, into the TX and free lists.
    fn take_handed_back(&mut self) -> usize {
        let mut moved = 0;
        for ai in 0..self.active.len() {
            moved += self.take_from(self.active[ai]);
        }
        moved
    }

    /// Up to a batch of what slot `s`'s worker handed back.
    fn take_from(&mut self, s: usize) -> usize {
        let Some(lane) = self.lanes[s].as_mut() else {
            return 0;
        };
        let n = lane.from.peek(self.batch as u32);
        for k in 0..n {
            let Some(d) = lane.from.read_at(k) else {
                break;
            };
            let free = d.options & FREE != 0;
            let d = XdpDesc {
                options: d.options & !FREE,
                ..d
            };
            match self.ch.take_back(d, self.tags[s]) {
                Ok(f) if free => {
                    self.counters[s].freed += 1;
                    self.free.push(f);
                }
                Ok(f) => {
                    self.counters[s].sent += 1;
                    self.tx.push(f);
                }
                Err(Refused { why, pkt, frame }) => {
                    let had_it = pkt
                        .and_then(|p| self.last_lent.get(p.get() as usize))
                        .is_some_and(|&l| usize::from(l) == s + 1);
                    let why = match why {
                        Refusal::NotLent if had_it => Refusal::Twice,
                        why => why,
                    };
                    self.counters[s].count(why);
                    if let Some(f) = frame {
                        self.free.push(f);
                    }
                }
            }
        }
        lane.from.release(n);
        n as usize
    }

    /// Takes up workers that came, takes back the frames of workers that
    /// went.
    fn sync(&mut self) -> Result<()> {
        // Read first: a change while this runs makes the next poll look
        // again.
        self.epoch = self.table.epoch();
        for i in 0..self.lanes.len() {
            let (state, generation, pid) = self.table.slot(i);
            let ours = self.lanes[i].as_ref().map(|l| l.generation);
            if ours.is_some() && (state != ACTIVE || ours != Some(generation)) {
                // What it handed back before it went are its last words:
                // taken (checked) before the rest is reclaimed.
                // Bounded by one ring's worth: a worker that kept its
                // memfds could go on writing.
                let mut left = self.table.ring_entries() as usize;
                while left > 0 {
                    let n = self.take_from(i);
                    if n == 0 {
                        break;
                    }
                    left = left.saturating_sub(n);
                }
                let gone = self.lanes[i].take().map_or(0, |l| l.pid);
                let n = self.ch.reclaim(self.tags[i])? as u64;
                self.counters[i].reclaimed += n;
                tracing::info!(
                    slot = i,
                    pid = gone,
                    reclaimed = n,
                    "worker gone: its frames are back"
                );
            }
            if state == LEAVING {
                self.table.vacate(i);
            }
            if state == ACTIVE && self.lanes[i].is_none() {
                let entries = self.table.ring_entries();
                let (to, from) = (self.table.ring_base(i, 0)?, self.table.ring_base(i, 1)?);
                // SAFETY: the table's RING objects for slot i: each at least
                // `ring::bytes(entries)` long (checked when the arena was
                // made), page-aligned, kept mapped by the table's region
                // reference, which `self.table` holds as long as the lane.
                let (to, from) =
                    unsafe { (ring::producer(to, entries), ring::consumer(from, entries)) };
                self.lanes[i] = Some(Lane {
                    generation,
                    pid,
                    to,
                    from,
                    pending: 0,
                    controlled: false,
                });
                self.counters[i].joins += 1;
                tracing::info!(slot = i, pid, "worker joined");
            }
        }
        self.active = (0..self.lanes.len())
            .filter(|&i| self.lanes[i].is_some())
            .collect();
        Ok(())
    }

    /// A worker handed something back that is not taken yet.
    fn handed_back(&mut self) -> bool {
        self.active
            .iter()
            .any(|&s| self.lanes[s].as_mut().is_some_and(|l| l.from.pending() > 0))
    }

    /// Sleeps up to `timeout_ms` (−1: no limit) until a packet arrives or
    /// a worker hands something back — or a worker comes or goes. The
    /// workers are told the owner sleeps (NEED_WAKEUP on their rings to
    /// the owner), so they write its eventfd.
    pub fn wait(&mut self, timeout_ms: i32) -> Result<bool> {
        for &s in &self.active {
            if let Some(l) = self.lanes[s].as_ref() {
                l.from.set_need_wakeup(true);
            }
        }
        // As in `submit`, mirrored: our flag stores before the index loads.
        fence(Ordering::SeqCst);
        let woke = if self.handed_back() || self.table.epoch() != self.epoch {
            true
        } else {
            let (xsk, owner) = (self.ch.fd(), self.table.owner_wake_fd());
            let mut fds = [
                PollFd::new(&xsk, PollFlags::IN),
                PollFd::new(&owner, PollFlags::IN),
            ];
            let timeout = (timeout_ms >= 0).then(|| rustix::fs::Timespec {
                tv_sec: i64::from(timeout_ms / 1000),
                tv_nsec: i64::from(timeout_ms % 1000) * 1_000_000,
            });
            match poll(&mut fds, timeout.as_ref()) {
                Ok(n) => n > 0,
                Err(rustix::io::Errno::INTR) => false,
                Err(e) => return Err(Error::sys("poll(owner)", e)),
            }
        };
        let mut drain = [0u8; 8];
        let _ = rustix::io::read(self.table.owner_wake_fd(), &mut drain);
        for &s in &self.active {
            if let Some(l) = self.lanes[s].as_ref() {
                l.from.set_need_wakeup(false);
            }
        }
        Ok(woke)
    }
}

impl Drop for WorkerHub {
    fn drop(&mut self) {
        // Every frame still lent comes back before the channel closes:
        // the workers' views of it stay theirs, but the owner's accounting
        // ends exact.
        for i in 0..self.lanes.len() {
            self.lanes[i] = None;
            match self.ch.reclaim(self.tags[i]) {
                Ok(n) => self.counters[i].reclaimed += n as u64,
                Err(e) => tracing::warn!(slot = i, error = %e, "worker hub: frames not taken back"),
            }
            self.ch.release_holder(self.holders[i]);
        }
        self.table.attach_hub(false);
    }
}
