//! What passes between a channel and its application: received frames,
//! frames to send, and the TX metadata in front of them.

use crate::pool::PacketIndex;

use super::XDP_PKT_CONTD;

/// A received frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxFrame {
    /// The packet (its metadata index; also its UMEM frame).
    pub pkt: PacketIndex,
    /// UMEM address of the data.
    pub addr: u64,
    /// Bytes of data.
    pub len: u32,
    /// Descriptor options (XDP_PKT_CONTD).
    pub options: u32,
}

impl RxFrame {
    /// More fragments of this packet follow (multi-buffer channels).
    pub fn more(&self) -> bool {
        self.options & XDP_PKT_CONTD != 0
    }
}

/// Most frames one packet may span: copy mode's limit (`MAX_SKB_FRAGS`
/// fragments after the first). Longer TX chains are refused.
pub const MAX_FRAGS: usize = 18;

/// A frame to send: a packet the application holds, and where its data is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxFrame {
    /// The packet.
    pub pkt: PacketIndex,
    /// Offset of the data inside the packet's buffer.
    pub offset: u32,
    /// Bytes of data.
    pub len: u32,
    /// More frames of this packet follow (multi-buffer channels): a packet
    /// is a run of frames with `more` set, ended by one without.
    pub more: bool,
}

/// `XDP_TX_METADATA`: a TX descriptor option saying the frame's data is
/// preceded by TX metadata.
pub const XDP_TX_METADATA: u32 = 1 << 1;

/// Bytes of the kernel's `struct xsk_tx_metadata` (flags, then the
/// request: checksum start and offset, launch time).
pub const TX_METADATA_SIZE: u32 = 24;

/// What a TX frame asks of the kernel through its metadata
/// (`struct xsk_tx_metadata`), written by [`Channel::write_tx_metadata`](super::Channel::write_tx_metadata).
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
