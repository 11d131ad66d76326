//! Where each packet is, and who holds it: the pool's state column.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use super::PacketIndex;
use crate::error::{ArenaError, Error, RegionError, Result};
use crate::region::RegionId;
use crate::util::lock;

/// Where a packet is: kept owner-private, so that every frame can be
/// accounted for and a descriptor naming a frame that is not where the ring
/// says is caught.
#[repr(u8)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum PacketState {
    /// In the pool (in a cache).
    Free = 0,
    /// Handed out to the application (a [`Packet`](super::Packet) exists).
    Allocated = 1,
    /// Given to the kernel for RX by a channel: in its fill or RX ring.
    Fill = 2,
    /// Given to the kernel for TX by a channel: in its TX or completion
    /// ring.
    Tx = 3,
    /// Parked in a channel's slot descriptors (RX-free or TX-allocation
    /// path), on its way back to the rings.
    Staged = 4,
    /// Lent to a worker process (the holder is the worker's number): its
    /// descriptor went into the worker's ring, and only the owner can take
    /// it back — when the worker hands it back, or when the worker is gone.
    Lent = 5,
}

impl PacketState {
    /// Every state, in code order.
    pub const ALL: [PacketState; 6] = [
        PacketState::Free,
        PacketState::Allocated,
        PacketState::Fill,
        PacketState::Tx,
        PacketState::Staged,
        PacketState::Lent,
    ];

    fn from_bits(v: u16) -> PacketState {
        match v & STATE_MASK {
            1 => PacketState::Allocated,
            2 => PacketState::Fill,
            3 => PacketState::Tx,
            4 => PacketState::Staged,
            5 => PacketState::Lent,
            _ => PacketState::Free,
        }
    }
}

/// Bits of a column entry that hold the state; the rest hold the holder.
const STATE_BITS: u32 = 3;
const STATE_MASK: u16 = (1 << STATE_BITS) - 1;

/// Most holders (channels) one pool can have at once: what fits beside the
/// state in a column entry, less the "nobody" holder 0.
pub const MAX_HOLDERS: usize = (1 << (16 - STATE_BITS)) - 1;

/// Who holds a packet that is in a channel's hands (Fill, Tx, Staged) or
/// lent to a worker (Lent): each channel over a pool is one holder, and so
/// is each worker, so that a channel sharing its pool with others gives
/// back only its own frames and refuses the others', and a worker hands
/// back only what was lent to it.
/// Free and Allocated packets belong to no holder ([`Holder::NONE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Holder(u16);

impl Holder {
    /// Nobody: the pool, or the application.
    pub(crate) const NONE: Holder = Holder(0);
}

/// A state and its holder as one column entry: what a transition compares
/// and stores in one go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tag(u16);

impl Tag {
    /// `state` held by `holder`.
    #[inline(always)]
    pub(crate) const fn new(state: PacketState, holder: Holder) -> Tag {
        Tag(state as u16 | holder.0 << STATE_BITS)
    }

    /// A free packet.
    pub(crate) const FREE: Tag = Tag::new(PacketState::Free, Holder::NONE);
    /// A packet the application holds.
    pub(crate) const APP: Tag = Tag::new(PacketState::Allocated, Holder::NONE);

    /// The state part.
    pub(crate) fn state(self) -> PacketState {
        PacketState::from_bits(self.0)
    }
}

/// The state column: each packet's [`Tag`], two bytes per packet, beside
/// the metadata rather than in it.
///
/// The data path moves every packet through two or three states per round
/// trip; with the tags dense (32 packets per cache line) they stay in L1
/// while the kernel's copies stream through the cache — a word in each
/// 32-byte KMD object cost a cache miss per transition (~25 ns of CPU per
/// packet in threaded-NAPI rxdrop).
///
/// Shared (`Arc`) between the pool and its channels, so that a channel's
/// per-frame checks index a column it holds itself: reaching it through
/// the pool costs loads the compiler cannot hoist past the tag stores.
///
/// Relaxed atomics: a packet's tag is only ever moved by the one thread
/// that holds the packet; the atomics make a lying index from another
/// thread a wrong answer rather than a data race.
#[derive(Debug, Clone)]
pub(crate) struct StateColumn {
    tags: Arc<[AtomicU16]>,
    /// Which holder numbers are taken (index 0, nobody, always is).
    holders: Arc<Mutex<Vec<bool>>>,
}

impl StateColumn {
    pub(crate) fn new(packets: u32) -> Self {
        Self {
            tags: (0..packets).map(|_| AtomicU16::new(Tag::FREE.0)).collect(),
            holders: Arc::new(Mutex::new(vec![true])),
        }
    }

    /// Packets in the column.
    pub(crate) fn len(&self) -> u32 {
        self.tags.len() as u32
    }

    /// Packet `pkt`'s tag; `None` when there is no such packet.
    #[inline(always)]
    pub(crate) fn tag(&self, pkt: PacketIndex) -> Option<Tag> {
        self.tags
            .get(pkt.get() as usize)
            .map(|s| Tag(s.load(Ordering::Relaxed)))
    }

    /// Packet `pkt`'s state; `None` when there is no such packet.
    #[inline(always)]
    pub(crate) fn get(&self, pkt: PacketIndex) -> Option<PacketState> {
        self.tag(pkt).map(Tag::state)
    }

    /// Is packet `pkt` tagged `t`?
    #[inline(always)]
    pub(crate) fn is(&self, pkt: PacketIndex, t: Tag) -> bool {
        self.tags
            .get(pkt.get() as usize)
            .is_some_and(|v| v.load(Ordering::Relaxed) == t.0)
    }

    /// Moves `pkt` from tag `from` to `to`; false (and nothing changed)
    /// when it is not tagged `from` — a descriptor that lies, or a packet
    /// another holder has.
    #[inline(always)]
    pub(crate) fn transition(&self, pkt: PacketIndex, from: Tag, to: Tag) -> bool {
        let Some(s) = self.tags.get(pkt.get() as usize) else {
            return false;
        };
        if s.load(Ordering::Relaxed) != from.0 {
            return false;
        }
        s.store(to.0, Ordering::Relaxed);
        true
    }

    /// Tags `pkt` with `t` (ignored for an index out of range).
    #[inline(always)]
    pub(crate) fn set(&self, pkt: PacketIndex, t: Tag) {
        if let Some(v) = self.tags.get(pkt.get() as usize) {
            v.store(t.0, Ordering::Relaxed);
        }
    }

    /// Every packet tagged `t`, in index order (a walk: for teardown and
    /// accounting, not for the data path).
    pub(crate) fn tagged(&self, t: Tag) -> impl Iterator<Item = PacketIndex> + '_ {
        self.tags
            .iter()
            .enumerate()
            .filter(move |(_, v)| v.load(Ordering::Relaxed) == t.0)
            .map(|(i, _)| PacketIndex::new(i as u32))
    }

    /// Takes a holder number for a new channel.
    pub(crate) fn claim_holder(&self, pool: &str) -> Result<Holder> {
        let mut h = lock(&self.holders);
        let n = match h.iter().position(|&taken| !taken) {
            Some(n) => n,
            None if h.len() <= MAX_HOLDERS => {
                h.push(false);
                h.len() - 1
            }
            None => {
                return Err(Error::Arena(ArenaError::InvalidParams {
                    arena: pool.to_owned(),
                    rule: "a pool has at most 8191 channels at once",
                }))
            }
        };
        h[n] = true;
        Ok(Holder(n as u16))
    }

    /// Gives holder `holder`'s number back (its channel is gone and holds
    /// no packet any more).
    pub(crate) fn release_holder(&self, holder: Holder) {
        if holder != Holder::NONE {
            if let Some(t) = lock(&self.holders).get_mut(holder.0 as usize) {
                *t = false;
            }
        }
    }
}

/// `pkt` is not a packet of a pool with `count` packets.
pub(crate) fn out_of_range(pkt: PacketIndex, count: u32) -> Error {
    Error::Region(RegionError::ObjectOutOfRange {
        region: RegionId::Kmd,
        index: pkt.get(),
        count,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_keeps_state_and_holder_apart() {
        let c = StateColumn::new(4);
        let h = c.claim_holder("t").unwrap();
        assert_ne!(h, Holder::NONE);
        let fill = Tag::new(PacketState::Fill, h);
        let p = PacketIndex::new(2);
        c.set(p, fill);
        assert_eq!(c.get(p), Some(PacketState::Fill));
        assert_eq!(c.tag(p), Some(fill));
        assert_ne!(fill, Tag::new(PacketState::Fill, Holder::NONE));
        // Another holder's Fill is not this one's.
        let other = Tag::new(PacketState::Fill, c.claim_holder("t").unwrap());
        assert!(!c.transition(p, other, Tag::APP));
        assert!(c.transition(p, fill, Tag::APP));
        assert_eq!(c.tagged(Tag::APP).collect::<Vec<_>>(), vec![p]);
        assert!(!c.transition(PacketIndex::new(4), Tag::FREE, Tag::APP));
    }

    #[test]
    fn holder_numbers_are_reused_after_release() {
        let c = StateColumn::new(1);
        let a = c.claim_holder("t").unwrap();
        let b = c.claim_holder("t").unwrap();
        c.release_holder(a);
        assert_eq!(c.claim_holder("t").unwrap(), a);
        assert_ne!(a, b);
    }

    #[test]
    fn a_lent_packet_comes_back_once_and_only_from_its_worker() {
        let c = StateColumn::new(8);
        let (w1, w2) = (c.claim_holder("t").unwrap(), c.claim_holder("t").unwrap());
        let (lent1, lent2) = (
            Tag::new(PacketState::Lent, w1),
            Tag::new(PacketState::Lent, w2),
        );
        let p = PacketIndex::new(5);
        c.set(p, Tag::APP);
        assert!(c.transition(p, Tag::APP, lent1));
        assert_eq!(c.get(p), Some(PacketState::Lent));
        // Another worker cannot hand it back; its own worker can, once.
        assert!(!c.transition(p, lent2, Tag::APP));
        assert!(c.transition(p, lent1, Tag::APP));
        assert!(!c.transition(p, lent1, Tag::APP), "handed back twice");
        // A gone worker's packets are found by its tag alone.
        for i in [1, 3, 6] {
            c.set(PacketIndex::new(i), lent2);
        }
        let held: Vec<u32> = c.tagged(lent2).map(PacketIndex::get).collect();
        assert_eq!(held, [1, 3, 6]);
    }

    #[test]
    fn a_pool_runs_out_of_holders_with_a_typed_error() {
        let c = StateColumn::new(1);
        for _ in 0..MAX_HOLDERS {
            c.claim_holder("t").unwrap();
        }
        assert!(matches!(
            c.claim_holder("t"),
            Err(Error::Arena(ArenaError::InvalidParams { .. }))
        ));
    }
}
