//! What a channel counts, and where every frame of its UMEM is.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::pool::{PacketIndex, PacketState, Tag};

use super::Channel;

/// Packet counters of a channel (what USTATS publishes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChannelCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Frames queued for TX.
    pub tx_packets: u64,
    /// Bytes queued for TX.
    pub tx_bytes: u64,
    /// TX completions.
    pub tx_completed: u64,
    /// Descriptors from the kernel that named a frame not where the ring
    /// says (dropped, counted, never freed twice).
    pub bad_descs: u64,
    /// TX frames refused (not held by the application, or too long).
    pub tx_refused: u64,
    /// Syscalls made to wake the kernel.
    pub wakeups: u64,
    /// Busy-poll syscalls ([`Channel::busy_poll`]).
    pub busy_polls: u64,
    /// Sleeps of receive coalescing ([`Channel::poll`] with
    /// [`ChannelParams::coalesce`](super::ChannelParams::coalesce)).
    pub coalesced_sleeps: u64,
    /// Waits in `poll(2)` for something to receive ([`Channel::poll`],
    /// [`Channel::wait`]): how often the thread slept rather than spun.
    pub polls: u64,
}

/// Why a TX frame was refused before it reached the TX ring (the kernel
/// never sees it, so its `tx_invalid_descs` does not move).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxRefusal {
    /// A frame of another pool.
    Foreign,
    /// A frame of this pool the application does not hold (sent twice,
    /// or forged).
    NotHeld,
    /// No data (`len` 0).
    Empty,
    /// Data past the end of its buffer (or before its start: an offset
    /// that wrapped), or longer than a buffer.
    Overrun,
    /// No room in front of the data for the TX metadata.
    MetadataRoom,
    /// A chain the channel cannot send: unended, on a channel without
    /// multi-buffer, or of more than [`MAX_FRAGS`](super::MAX_FRAGS)
    /// frames.
    Chain,
    /// Descriptor options other than [`XDP_PKT_CONTD`](super::XDP_PKT_CONTD)
    /// (which the kernel refuses).
    Options,
}

/// TX frames refused before the ring, by [reason](TxRefusal); they add up
/// to [`ChannelCounters::tx_refused`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct TxRefusals {
    /// [`TxRefusal::Foreign`].
    pub foreign: u64,
    /// [`TxRefusal::NotHeld`].
    pub not_held: u64,
    /// [`TxRefusal::Empty`].
    pub empty: u64,
    /// [`TxRefusal::Overrun`].
    pub overrun: u64,
    /// [`TxRefusal::MetadataRoom`].
    pub metadata_room: u64,
    /// [`TxRefusal::Chain`].
    pub chain: u64,
    /// [`TxRefusal::Options`].
    pub options: u64,
}

impl TxRefusals {
    /// The sum over every reason.
    pub fn total(&self) -> u64 {
        self.foreign
            + self.not_held
            + self.empty
            + self.overrun
            + self.metadata_room
            + self.chain
            + self.options
    }
}

/// One counter the channel writes and other threads read (the process's
/// published statistics, [`crate::publish`]).
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. A load and a store, not a locked read-modify-write: the
    /// channel is the only writer (it is `Send` but not `Sync`, and every
    /// writer holds it), readers only need each value whole.
    #[inline(always)]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The value now.
    #[inline(always)]
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// [`ChannelCounters`] as the channel keeps them: shared with the process's
/// statistics registry, so `skmemctl stats` can read them while the
/// channel runs.
#[derive(Debug, Default)]
pub(crate) struct LiveCounters {
    pub(crate) rx_packets: Counter,
    pub(crate) rx_bytes: Counter,
    pub(crate) tx_packets: Counter,
    pub(crate) tx_bytes: Counter,
    pub(crate) tx_completed: Counter,
    pub(crate) bad_descs: Counter,
    pub(crate) tx_refused: Counter,
    pub(crate) wakeups: Counter,
    pub(crate) busy_polls: Counter,
    pub(crate) coalesced_sleeps: Counter,
    pub(crate) polls: Counter,
    /// `tx_refused` by reason, indexed by `TxRefusal as usize`.
    pub(crate) refusals: [Counter; 7],
}

impl LiveCounters {
    /// Counts one TX frame refused for `why`.
    #[cold]
    pub(crate) fn refuse(&self, why: TxRefusal) {
        self.tx_refused.add(1);
        self.refusals[why as usize].add(1);
    }

    /// The refusals by reason now.
    pub(crate) fn refusals(&self) -> TxRefusals {
        let r = |why: TxRefusal| self.refusals[why as usize].get();
        TxRefusals {
            foreign: r(TxRefusal::Foreign),
            not_held: r(TxRefusal::NotHeld),
            empty: r(TxRefusal::Empty),
            overrun: r(TxRefusal::Overrun),
            metadata_room: r(TxRefusal::MetadataRoom),
            chain: r(TxRefusal::Chain),
            options: r(TxRefusal::Options),
        }
    }

    /// The counters now (each value whole; not one instant across them).
    pub(crate) fn snapshot(&self) -> ChannelCounters {
        ChannelCounters {
            rx_packets: self.rx_packets.get(),
            rx_bytes: self.rx_bytes.get(),
            tx_packets: self.tx_packets.get(),
            tx_bytes: self.tx_bytes.get(),
            tx_completed: self.tx_completed.get(),
            bad_descs: self.bad_descs.get(),
            tx_refused: self.tx_refused.get(),
            wakeups: self.wakeups.get(),
            busy_polls: self.busy_polls.get(),
            coalesced_sleeps: self.coalesced_sleeps.get(),
            polls: self.polls.get(),
        }
    }
}

/// Where every frame of the UMEM is: see [`Channel::account`]. The
/// places are this channel's, except `others`: frames that other channels
/// sharing the pool hold (in their rings or slots).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FrameAccount {
    /// Frames in the UMEM.
    pub total: u64,
    /// In the pool's caches.
    pub pool: u64,
    /// Held by other channels over the same pool.
    pub others: u64,
    /// Lent to worker processes (their frames, until handed back).
    pub lent: u64,
    /// Parked in the RX-free and TX-allocation slot descriptors.
    pub staged: u64,
    /// Held by the application.
    pub app: u64,
    /// Given to the kernel for RX (fill ring or RX ring).
    pub kernel_rx: u64,
    /// Given to the kernel for TX (TX ring or completion ring).
    pub kernel_tx: u64,
    /// Fill entries not yet consumed by the kernel.
    pub fill_ring: u64,
    /// RX entries not yet consumed by us.
    pub rx_ring: u64,
    /// TX entries not yet consumed by the kernel.
    pub tx_ring: u64,
    /// Completion entries not yet consumed by us.
    pub completion_ring: u64,
}

impl FrameAccount {
    /// Checks that every frame is in exactly one place: the places add up
    /// to the total, and — when the rings are quiet — the frames the kernel
    /// holds are exactly the ring entries.
    pub fn check(&self, quiescent: bool) -> std::result::Result<(), String> {
        let sum = self.pool
            + self.others
            + self.lent
            + self.staged
            + self.app
            + self.kernel_rx
            + self.kernel_tx;
        if sum != self.total {
            return Err(format!(
                "places add up to {sum}, not {}: {self:?}",
                self.total
            ));
        }
        if quiescent {
            if self.kernel_rx != self.fill_ring + self.rx_ring {
                return Err(format!(
                    "kernel holds {} RX frames but the fill and RX rings hold {}: {self:?}",
                    self.kernel_rx,
                    self.fill_ring + self.rx_ring
                ));
            }
            if self.kernel_tx != self.tx_ring + self.completion_ring {
                return Err(format!(
                    "kernel holds {} TX frames but the TX and completion rings hold {}: {self:?}",
                    self.kernel_tx,
                    self.tx_ring + self.completion_ring
                ));
            }
        }
        Ok(())
    }
}

impl Channel {
    /// Where every frame of the UMEM is, from the packets' own tags and
    /// the rings' indices.
    pub fn account(&mut self) -> FrameAccount {
        let mut a = FrameAccount {
            total: u64::from(self.states.len()),
            fill_ring: u64::from(self.fill.outstanding()),
            rx_ring: u64::from(self.rx.pending()),
            tx_ring: u64::from(self.tx.outstanding()),
            completion_ring: u64::from(self.comp.pending()),
            ..FrameAccount::default()
        };
        for i in 0..self.states.len() {
            let Some(t) = self.states.tag(PacketIndex::new(i)) else {
                continue;
            };
            let place = match t {
                Tag::FREE => &mut a.pool,
                Tag::APP => &mut a.app,
                t if t == self.tag.fill => &mut a.kernel_rx,
                t if t == self.tag.tx => &mut a.kernel_tx,
                t if t == self.tag.staged => &mut a.staged,
                t if t.state() == PacketState::Lent => &mut a.lent,
                _ => &mut a.others,
            };
            *place += 1;
        }
        a
    }

    /// How many frames this channel holds in `state` (its rings for Fill
    /// and Tx, its slots for Staged; 0 for the others).
    pub fn held(&self, state: PacketState) -> u64 {
        let t = match state {
            PacketState::Fill => self.tag.fill,
            PacketState::Tx => self.tag.tx,
            PacketState::Staged => self.tag.staged,
            PacketState::Free | PacketState::Allocated | PacketState::Lent => return 0,
        };
        self.states.tagged(t).count() as u64
    }
}
