//! Where frames lie in the UMEM: a descriptor's address to its packet, a
//! packet to its address, and whether a frame's data stays inside its
//! buffer.

use crate::pool::PacketIndex;

/// With unaligned chunks the kernel puts the data's offset inside the
/// chunk in an address's top 16 bits.
const UNALIGNED_OFFSET_SHIFT: u32 = 48;
const UNALIGNED_ADDR_MASK: u64 = (1 << UNALIGNED_OFFSET_SHIFT) - 1;

/// The UMEM's layout as the per-frame paths use it: one buffer per packet,
/// packet `p`'s at address `p * buf_size`.
///
/// `Copy`, so a hot loop takes it into locals: the compiler then keeps it
/// in registers, where fields reached through the channel are reloaded
/// after every store through a ring pointer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UmemGeometry {
    /// log2 of the buffer size when it is a power of two: an address's
    /// packet is then a shift away, else a division (unaligned chunks).
    shift: Option<u32>,
    buf_size: u64,
    packet_count: u32,
    unaligned: bool,
}

impl UmemGeometry {
    /// `packet_count` buffers of `buf_size` bytes; `unaligned`: the socket
    /// uses unaligned chunks.
    pub(crate) fn new(buf_size: u32, packet_count: u32, unaligned: bool) -> Self {
        Self {
            shift: buf_size
                .is_power_of_two()
                .then_some(buf_size.trailing_zeros()),
            buf_size: u64::from(buf_size),
            packet_count,
            unaligned,
        }
    }

    /// Bytes of one buffer.
    #[inline(always)]
    pub(crate) fn buf_size(&self) -> u64 {
        self.buf_size
    }

    /// The plain UMEM address of a descriptor's.
    #[inline(always)]
    pub(crate) fn linear(&self, addr: u64) -> u64 {
        if self.unaligned {
            (addr & UNALIGNED_ADDR_MASK) + (addr >> UNALIGNED_OFFSET_SHIFT)
        } else {
            addr
        }
    }

    /// The packet whose buffer holds plain UMEM address `addr`; `None` past
    /// the last.
    #[inline(always)]
    pub(crate) fn pkt_of(&self, addr: u64) -> Option<PacketIndex> {
        let pkt = match self.shift {
            Some(shift) => addr >> shift,
            None => addr / self.buf_size,
        };
        (pkt < u64::from(self.packet_count)).then_some(PacketIndex::new(pkt as u32))
    }

    /// The UMEM address of packet `pkt`'s buffer.
    #[inline(always)]
    pub(crate) fn addr_of(&self, pkt: PacketIndex) -> u64 {
        u64::from(pkt.get()) * self.buf_size
    }

    /// Do `len` bytes at plain address `addr` end inside the buffer of
    /// `pkt`, the packet holding `addr` ([`pkt_of`](Self::pkt_of))?
    #[inline(always)]
    pub(crate) fn fits(&self, pkt: PacketIndex, addr: u64, len: u32) -> bool {
        // `addr` is inside the buffer, so only the end can lie beyond.
        addr - self.addr_of(pkt) + u64::from(len) <= self.buf_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_addresses_map_to_their_packet_and_back() {
        let g = UmemGeometry::new(2048, 4, false);
        let p = PacketIndex::new;
        assert_eq!(g.pkt_of(0), Some(p(0)));
        assert_eq!(g.pkt_of(2048 + 256), Some(p(1)));
        assert_eq!(g.pkt_of(4 * 2048), None);
        assert_eq!(g.addr_of(p(3)), 3 * 2048);
        assert!(g.fits(p(1), 2048 + 256, 2048 - 256));
        assert!(!g.fits(p(1), 2048 + 256, 2048 - 255));
    }

    #[test]
    fn unaligned_addresses_carry_their_offset_in_the_top_bits() {
        let g = UmemGeometry::new(3000, 4, true);
        let addr = g.linear((100 << UNALIGNED_OFFSET_SHIFT) | 3000);
        assert_eq!(addr, 3100);
        assert_eq!(g.pkt_of(addr), Some(PacketIndex::new(1)));
        assert!(g.fits(PacketIndex::new(1), addr, 2900));
        assert!(!g.fits(PacketIndex::new(1), addr, 2901));
        assert_eq!(g.pkt_of(12_000), None);
    }
}
