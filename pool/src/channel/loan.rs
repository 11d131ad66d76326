//! Frames a channel lends to worker processes: out as descriptors, tagged
//! with the worker's holder in the state column, and back — checked — as
//! frames (see [`crate::workers`]).

use crate::error::Result;
use crate::pool::{Holder, Packet, PacketIndex, PacketState, Tag};

use super::{Channel, Frame, XdpDesc, XDP_PKT_CONTD};

/// Why a descriptor a worker handed back was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Its address is not in the UMEM.
    OutOfRange,
    /// Its frame is lent to another worker.
    OtherWorker,
    /// Its frame was lent to this worker and already handed back.
    Twice,
    /// Its frame is not lent to any worker.
    NotLent,
    /// Its data runs past the frame's buffer (the frame is taken back and
    /// freed: it was this worker's).
    PastBuffer,
    /// A fragment flag on a channel whose packets are one frame each (the
    /// frame is taken back and freed).
    BrokenChain,
}

/// A descriptor a worker handed back and the owner refused: why, the
/// frame it names (when it names one), and that frame, taken back, when it
/// was the worker's to give (data past the buffer, a broken chain: the
/// owner frees it).
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) why: Refusal,
    pub(crate) pkt: Option<PacketIndex>,
    pub(crate) frame: Option<Frame>,
}

impl Channel {
    /// A holder number for a worker slot, from the pool's state column.
    pub(crate) fn claim_holder(&self) -> Result<Holder> {
        self.states.claim_holder(self.pool.name())
    }

    /// Gives a holder number back.
    pub(crate) fn release_holder(&self, h: Holder) {
        self.states.release_holder(h);
    }

    /// Lends `f` to the worker holding `to` (a Lent tag): its descriptor,
    /// for the worker's ring. The frame is the application's (it came from
    /// `rx_burst`), so the move cannot fail.
    #[inline(always)]
    pub(crate) fn lend(&self, f: Frame, to: Tag) -> XdpDesc {
        let d = XdpDesc {
            addr: self.frame_addr(&f),
            len: f.len,
            options: f.options,
        };
        let pkt = f.retire();
        self.states.set(pkt, to);
        d
    }

    /// Takes back a descriptor the worker holding `from` handed back:
    /// the frame it names, the application's again — or why not. The
    /// descriptor is untrusted: its address must name a frame lent to this
    /// worker, and its data stay in that frame's buffer.
    #[inline(always)]
    pub(crate) fn take_back(&self, d: XdpDesc, from: Tag) -> std::result::Result<Frame, Refused> {
        let addr = self.linear(d.addr);
        let Some(pkt) = self.pkt_of(addr) else {
            return Err(Refused {
                why: Refusal::OutOfRange,
                pkt: None,
                frame: None,
            });
        };
        if !self.states.transition(pkt, from, Tag::APP) {
            // The column says where the frame is; whether this worker had
            // it before (handed back twice) only the lender knows.
            let why = match self.states.tag(pkt) {
                Some(t) if t.state() == PacketState::Lent => Refusal::OtherWorker,
                _ => Refusal::NotLent,
            };
            return Err(Refused {
                why,
                pkt: Some(pkt),
                frame: None,
            });
        }
        let frame = |len| {
            Frame::new(
                Packet::issue(pkt, self.pool_id),
                (addr - self.addr_of(pkt)) as u32,
                len,
                0,
            )
        };
        let taken = |why| Refused {
            why,
            pkt: Some(pkt),
            frame: Some(frame(0)),
        };
        if !self.geo.fits(pkt, addr, d.len) {
            return Err(taken(Refusal::PastBuffer));
        }
        if d.options & XDP_PKT_CONTD != 0 && !self.params.multi_buffer {
            return Err(taken(Refusal::BrokenChain));
        }
        let mut f = frame(d.len);
        f.options = d.options & XDP_PKT_CONTD;
        Ok(f)
    }

    /// How many frames are tagged `t` (a walk of the state column).
    pub(crate) fn count_tagged(&self, t: Tag) -> u64 {
        self.states.tagged(t).count() as u64
    }

    /// Takes back every frame lent to the worker holding `from` (it is
    /// gone) and gives them to the fill path; how many.
    pub(crate) fn reclaim(&mut self, from: Tag) -> Result<usize> {
        let held: Vec<PacketIndex> = self.states.tagged(from).collect();
        let mut frames = Vec::with_capacity(held.len());
        for pkt in held {
            if self.states.transition(pkt, from, Tag::APP) {
                frames.push(Frame::new(Packet::issue(pkt, self.pool_id), 0, 0, 0));
            }
        }
        let n = frames.len();
        self.free_rx(&mut frames)?;
        Ok(n)
    }
}
