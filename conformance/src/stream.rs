//! Packet streams, as the kernel's `pkt_stream`: what the sending socket
//! sends (each packet's number, length, and the frames it is written in,
//! valid or not) and what the receiving socket must see, in order.
//!
//! Packet *n* of a stream is [`FrameSpec::build`]`(n)` at the packet's
//! length: an Ethernet/IPv4/UDP frame whose payload words are
//! `n << 16 | word`, so a packet that arrives in the wrong order, or with
//! one wrong byte, is caught.

use skmem_netns::frame::MIN_FRAME;
use skmem_netns::FrameSpec;

/// One frame (UMEM buffer) of a packet: where its bytes lie in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frag {
    /// Offset of the data in the buffer.
    pub offset: u32,
    /// Bytes of data.
    pub len: u32,
    /// Descriptor options besides `more` (which the sender sets on every
    /// frame but a packet's last): an unknown option, or `XDP_PKT_CONTD`
    /// on a last frame, makes an invalid descriptor.
    pub options: u32,
}

/// A [`Frag::offset`] that puts the frame's data across the first 4 KiB
/// page boundary inside its buffer, half on each side (the kernel's
/// unaligned cases place packets across one; the sender works out where,
/// from the buffer's UMEM address).
pub const ACROSS_PAGE: u32 = u32::MAX;

/// A packet the sending socket sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxPacket {
    /// Its number (the payload words' high half).
    pub number: u64,
    /// Its length in bytes (the sum of its frames').
    pub len: usize,
    /// The frames it is written in: one, or a chain (multi-buffer).
    pub frags: Vec<Frag>,
    /// Whether it should reach the wire: skmem refuses (and counts) an
    /// invalid one before it reaches the TX ring.
    pub valid: bool,
}

/// A packet the receiving socket must see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxPacket {
    /// Its number.
    pub number: u64,
    /// The length it was sent with.
    pub sent_len: usize,
    /// The length it must arrive with (an XDP program may have moved its
    /// tail): the first `min(sent_len, len)` bytes are the ones sent.
    pub len: usize,
}

/// What one socket sends: packets of one flow.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The flow (its `size` is ignored: each packet has its own length).
    pub spec: FrameSpec,
    /// The packets, in sending order.
    pub packets: Vec<TxPacket>,
}

impl Stream {
    /// `count` valid packets of `len` bytes, numbered from 0, each in one
    /// frame at the start of its buffer.
    pub fn new(spec: &FrameSpec, count: u64, len: usize) -> Stream {
        Stream {
            spec: spec.clone(),
            packets: (0..count)
                .map(|number| TxPacket {
                    number,
                    len,
                    frags: vec![Frag {
                        offset: 0,
                        len: len as u32,
                        options: 0,
                    }],
                    valid: true,
                })
                .collect(),
        }
    }

    /// `count` valid packets of `len` bytes, each written in frames of at
    /// most `frag_size` bytes (multi-buffer when `len` is larger).
    pub fn fragmented(spec: &FrameSpec, count: u64, len: usize, frag_size: usize) -> Stream {
        let mut s = Stream::new(spec, count, len);
        for p in &mut s.packets {
            p.frags = split(len, frag_size);
        }
        s
    }

    /// What must arrive: the valid packets, in order, unchanged.
    pub fn expected(&self) -> Vec<RxPacket> {
        self.packets
            .iter()
            .filter(|p| p.valid)
            .map(|p| RxPacket {
                number: p.number,
                sent_len: p.len,
                len: p.len,
            })
            .collect()
    }

    /// Valid packets (the ones that reach the wire).
    pub fn valid(&self) -> u64 {
        self.packets.iter().filter(|p| p.valid).count() as u64
    }

    /// Frames of the invalid packets (the ones skmem refuses).
    pub fn invalid_frames(&self) -> u64 {
        self.packets
            .iter()
            .filter(|p| !p.valid)
            .map(|p| p.frags.len() as u64)
            .sum()
    }

    /// The bytes of packet `number` at `len` bytes.
    pub fn bytes(&self, number: u64, len: usize) -> Vec<u8> {
        bytes(&self.spec, number, len)
    }
}

/// The bytes of packet `number` of `spec`'s flow at `len` bytes: the frame
/// [`FrameSpec::build`] makes (its IPv4 and UDP lengths say `len`); below
/// the smallest frame it builds, that frame's first `len` bytes.
pub fn bytes(spec: &FrameSpec, number: u64, len: usize) -> Vec<u8> {
    let size = len.max(MIN_FRAME);
    let mut v = FrameSpec {
        size,
        ..spec.clone()
    }
    .build(number)
    .expect("lengths of the conformance streams are buildable");
    v.truncate(len);
    v
}

/// `len` bytes in frames of `frag_size`, each at the start of its buffer.
pub fn split(len: usize, frag_size: usize) -> Vec<Frag> {
    let mut frags = Vec::new();
    let mut left = len;
    loop {
        let n = left.min(frag_size);
        frags.push(Frag {
            offset: 0,
            len: n as u32,
            options: 0,
        });
        left -= n;
        if left == 0 {
            return frags;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> FrameSpec {
        FrameSpec::new(
            [2, 0, 0, 0, 0, 1],
            [2, 0, 0, 0, 0, 2],
            "10.0.0.1".parse().unwrap(),
            "10.0.0.2".parse().unwrap(),
            1,
            2,
            64,
        )
        .unwrap()
    }

    #[test]
    fn a_packet_is_split_into_whole_frames_and_a_remainder() {
        let lens: Vec<u32> = split(9000, 4096).iter().map(|f| f.len).collect();
        assert_eq!(lens, [4096, 4096, 808]);
        assert_eq!(split(64, 4096).len(), 1);
        assert_eq!(split(4096, 4096).len(), 1);
    }

    #[test]
    fn only_valid_packets_are_expected_in_order() {
        let mut s = Stream::new(&spec(), 4, 64);
        s.packets[1].valid = false;
        let numbers: Vec<u64> = s.expected().iter().map(|p| p.number).collect();
        assert_eq!(numbers, [0, 2, 3]);
        assert_eq!(s.valid(), 3);
        assert_eq!(s.invalid_frames(), 1);
    }

    #[test]
    fn short_packets_are_the_leading_bytes_of_the_smallest_frame() {
        let s = Stream::new(&spec(), 1, 64);
        assert_eq!(s.bytes(7, 20), s.bytes(7, MIN_FRAME)[..20]);
        assert_eq!(s.bytes(7, 100).len(), 100);
    }
}
