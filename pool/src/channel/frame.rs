//! What passes between a channel and its application: frames — a held
//! packet and where its data lies in the packet's buffer — their bytes,
//! and the TX metadata in front of them.
//!
//! A [`Frame`] carries the [`Packet`] token, so it is the right to its
//! bytes: [`Channel::data`] reads them through `&Frame`,
//! [`Channel::data_mut`] writes them through `&mut Frame`, and the calls
//! that give a frame back (`free_rx`, `tx_burst`, `reflect`, `free`) take
//! it out of the caller's vector. What `rx_burst` returns is what they take.
//!
//! ```compile_fail
//! # use skmem::arena::{Arena, NexusParams};
//! # use skmem::channel::{Channel, ChannelParams};
//! # let arena = Arena::create_nexus(&NexusParams::new("cf-frame"))?;
//! # let mut ch = Channel::open(&arena, &ChannelParams::new("veth0", 0))?;
//! let mut frames = Vec::new();
//! ch.rx_burst(&mut frames, 64)?;
//! let seen = ch.data(&frames[0])?;
//! ch.free_rx(&mut frames)?; // not while `seen` reads a frame's bytes
//! assert_eq!(seen.len(), 0);
//! # Ok::<(), skmem::Error>(())
//! ```
//!
//! ```compile_fail
//! # use skmem::arena::{Arena, NexusParams};
//! # use skmem::channel::{Channel, ChannelParams};
//! # let arena = Arena::create_nexus(&NexusParams::new("cf-frame2"))?;
//! # let mut ch = Channel::open(&arena, &ChannelParams::new("veth0", 0))?;
//! let mut frames = Vec::new();
//! ch.rx_burst(&mut frames, 64)?;
//! let seen = ch.data(&frames[0])?;
//! ch.data_mut(&mut frames[0])?[0] = 0xff; // not while `seen` reads it
//! assert_eq!(seen[0], 0xff);
//! # Ok::<(), skmem::Error>(())
//! ```

use crate::error::{Error, RegionError, Result};
use crate::pool::{Packet, PacketIndex};
use crate::region::RegionId;

use super::{Channel, XDP_PKT_CONTD};

/// A frame the application holds: its packet, and where its data lies in
/// the packet's buffer.
///
/// Received frames come from [`Channel::rx_burst`]; frames to send from
/// [`Channel::alloc_tx`] (or [`Frame::from_packet`] for a packet allocated
/// from the pool). `offset` and `len` are the application's to change —
/// every access checks them against the buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Frame {
    pkt: Packet,
    /// Offset of the data inside the packet's buffer.
    pub offset: u32,
    /// Bytes of data.
    pub len: u32,
    /// Descriptor options: [`XDP_PKT_CONTD`] on every fragment of a
    /// multi-buffer packet but the last.
    pub options: u32,
}

impl Frame {
    pub(super) fn new(pkt: Packet, offset: u32, len: u32, options: u32) -> Frame {
        Frame {
            pkt,
            offset,
            len,
            options,
        }
    }

    /// A frame for a packet the application allocated from the pool: no
    /// data yet, at the start of its buffer.
    pub fn from_packet(pkt: Packet) -> Frame {
        Frame::new(pkt, 0, 0, 0)
    }

    /// The packet's name.
    #[inline(always)]
    pub fn packet(&self) -> PacketIndex {
        self.pkt.index()
    }

    /// The packet itself (to read its metadata through the pool, say).
    pub fn as_packet(&self) -> &Packet {
        &self.pkt
    }

    /// The packet itself, to write through the pool.
    pub fn as_packet_mut(&mut self) -> &mut Packet {
        &mut self.pkt
    }

    /// Gives up the frame and keeps its packet (to free it to the pool
    /// with a [`PoolWorker`](crate::pool::PoolWorker), say).
    pub fn into_packet(self) -> Packet {
        self.pkt
    }

    /// More fragments of this packet follow (multi-buffer channels).
    #[inline(always)]
    pub fn more(&self) -> bool {
        self.options & XDP_PKT_CONTD != 0
    }

    /// Marks whether more fragments of this packet follow.
    pub fn set_more(&mut self, more: bool) {
        if more {
            self.options |= XDP_PKT_CONTD;
        } else {
            self.options &= !XDP_PKT_CONTD;
        }
    }

    /// The token, taken back as the frame leaves the application.
    #[inline(always)]
    pub(super) fn retire(self) -> PacketIndex {
        self.pkt.retire()
    }

    /// The token's pool identity.
    #[inline(always)]
    pub(super) fn pool_id(&self) -> crate::pool::PoolId {
        self.pkt.pool_id()
    }
}

/// Most frames one packet may span: copy mode's limit (`MAX_SKB_FRAGS`
/// fragments after the first). Longer TX chains are refused.
pub const MAX_FRAGS: usize = 18;

/// `XDP_TX_METADATA`: a TX descriptor option saying the frame's data is
/// preceded by TX metadata.
pub const XDP_TX_METADATA: u32 = 1 << 1;

/// Bytes of the kernel's `struct xsk_tx_metadata` (flags, then the
/// request: checksum start and offset, launch time).
pub const TX_METADATA_SIZE: u32 = 24;

/// What a TX frame asks of the kernel through its metadata
/// (`struct xsk_tx_metadata`), written by [`Channel::write_tx_metadata`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxMetadata {
    /// Checksum offload: (start, offset) — the kernel sums the frame from
    /// `start` to its end and stores the result at `start + offset`. The
    /// application seeds that field with the pseudo-header sum, as for
    /// `CHECKSUM_PARTIAL`.
    pub checksum: Option<(u16, u16)>,
    /// Launch time (ns, the interface's qdisc clock), where supported.
    pub launch_time: Option<u64>,
    /// Ask for a TX timestamp (zero-copy drivers that support it).
    pub timestamp: bool,
}

impl TxMetadata {
    const FLAG_TIMESTAMP: u64 = 1 << 0;
    const FLAG_CHECKSUM: u64 = 1 << 1;
    const FLAG_LAUNCH_TIME: u64 = 1 << 2;

    /// The metadata as the kernel reads it.
    pub fn to_bytes(&self) -> [u8; TX_METADATA_SIZE as usize] {
        let mut b = [0u8; TX_METADATA_SIZE as usize];
        let mut flags = 0u64;
        if self.timestamp {
            flags |= Self::FLAG_TIMESTAMP;
        }
        if let Some((start, offset)) = self.checksum {
            flags |= Self::FLAG_CHECKSUM;
            b[8..10].copy_from_slice(&start.to_ne_bytes());
            b[10..12].copy_from_slice(&offset.to_ne_bytes());
        }
        if let Some(t) = self.launch_time {
            flags |= Self::FLAG_LAUNCH_TIME;
            b[16..24].copy_from_slice(&t.to_ne_bytes());
        }
        b[0..8].copy_from_slice(&flags.to_ne_bytes());
        b
    }
}

/// A frame's range does not lie inside its buffer.
fn outside() -> Error {
    Error::Region(RegionError::Misuse {
        region: RegionId::BufDef,
        rule: "the frame's offset and length run past its buffer",
    })
}

impl Channel {
    /// The whole buffer of `frame`'s packet, checked to be this channel's.
    fn buffer_of(&self, frame: &Frame) -> Result<crate::region::Obj<'_>> {
        let pkt = self.pool.check_ours(&frame.pkt)?;
        Ok(self.buf_def.obj(pkt.get())?)
    }

    /// The data of a frame the application holds: `len` bytes at `offset`
    /// of its buffer. Errors for a frame of another pool, or a range past
    /// the buffer.
    #[inline]
    pub fn data<'a>(&'a self, frame: &'a Frame) -> Result<&'a [u8]> {
        let buf = self.buffer_of(frame)?;
        // SAFETY: the application holds the packet (its token, of this
        // channel's pool, checked by `buffer_of`), and `&Frame` keeps the
        // one way to write the buffer (`&mut Frame`) away for `'a`; the
        // kernel does not touch an application's buffer.
        unsafe { buf.slice(frame.offset as usize, frame.len as usize) }.map_err(|_| outside())
    }

    /// The `len` bytes in front of a received frame's data: where an XDP
    /// program that moved `data_meta` (`bpf_xdp_adjust_meta`, as
    /// skmem-xdp's `XdpAction::Metadata` does) left its metadata, which
    /// the kernel copies with the frame. Only the first frame of a
    /// multi-buffer packet has it. Errors for a frame of another pool, or
    /// `len` larger than the room in front of the data.
    pub fn metadata<'a>(&'a self, frame: &'a Frame, len: usize) -> Result<&'a [u8]> {
        let buf = self.buffer_of(frame)?;
        let start = (frame.offset as usize)
            .checked_sub(len)
            .ok_or_else(outside)?;
        // SAFETY: as in `data`: the bytes in front of the data are in the
        // same buffer, which the application holds.
        unsafe { buf.slice(start, len) }.map_err(|_| outside())
    }

    /// The data of a frame the application holds, to change in place.
    #[inline]
    pub fn data_mut<'a>(&'a self, frame: &'a mut Frame) -> Result<&'a mut [u8]> {
        let buf = self.buffer_of(frame)?;
        // SAFETY: as in `data`, and `&mut Frame` makes this borrow the
        // only one of the buffer for `'a`.
        unsafe { buf.slice_mut(frame.offset as usize, frame.len as usize) }.map_err(|_| outside())
    }

    /// The whole buffer of a frame the application holds (from byte 0,
    /// whatever the frame's offset), to build a frame in.
    pub fn buffer_mut<'a>(&'a self, frame: &'a mut Frame) -> Result<&'a mut [u8]> {
        let buf = self.buffer_of(frame)?;
        // SAFETY: as in `data_mut`.
        Ok(unsafe { buf.slice_mut(0, buf.len()) }?)
    }

    /// Copies `bytes` into `frame`'s buffer at its offset and makes them
    /// its data (`len` = `bytes.len()`).
    pub fn set_data(&self, frame: &mut Frame, bytes: &[u8]) -> Result<()> {
        let len = u32::try_from(bytes.len()).map_err(|_| outside())?;
        let off = frame.offset as usize;
        let buf = self.buffer_mut(frame)?;
        buf.get_mut(off..off + bytes.len())
            .ok_or_else(outside)?
            .copy_from_slice(bytes);
        frame.len = len;
        Ok(())
    }
}
