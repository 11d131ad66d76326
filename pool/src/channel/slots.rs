//! Slot descriptors: the RX-free and TX-allocation paths, one stack of
//! packets per slot-descriptor object (owner master, user mirror).

use crate::pool::PacketIndex;

/// A stack of packets in one slot-descriptor object (owner master, user
/// mirror): the RX-free or TX-allocation path.
#[derive(Debug)]
pub(super) struct Slots {
    pub(super) ksd: *mut u8,
    pub(super) usd: Option<*mut u8>,
    pub(super) cap: usize,
    pub(super) len: usize,
}

// SAFETY: the pointers target slot-descriptor objects of regions the
// channel's arena holds (the channel keeps the arena, and a no-idle count
// keeps the regions through a defunct); only the channel touches them.
unsafe impl Send for Slots {}

impl Slots {
    pub(super) fn push(&mut self, pkt: PacketIndex, len: u16) -> bool {
        if self.len == self.cap {
            return false;
        }
        // SAFETY: slot `len` < cap lies inside the KSD object (cap = object
        // size / 8) and the USD mirror object of the same index and size.
        unsafe {
            std::ptr::write(self.ksd.add(self.len * 8).cast::<u32>(), pkt);
            if let Some(u) = self.usd {
                // The user-visible slot: {md_idx u32, flags u16, len u16}.
                let slot = u.add(self.len * 8);
                std::ptr::write_volatile(slot.cast::<u32>(), pkt.to_le());
                std::ptr::write_volatile(slot.add(6).cast::<u16>(), len.to_le());
            }
        }
        self.len += 1;
        true
    }

    pub(super) fn pop(&mut self) -> Option<PacketIndex> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: as in `push`.
        Some(unsafe { std::ptr::read(self.ksd.add(self.len * 8).cast::<u32>()) })
    }
}
