//! Slot descriptors: the RX-free and TX-allocation paths, one stack of
//! packets per slot-descriptor object (owner master, user mirror).

use std::sync::Arc;

use crate::pool::PacketIndex;
use crate::region::Region;

/// Bytes of one slot: the owner's `{packet u32, unused u32}`, the user's
/// `{md_idx u32, flags u16, len u16}`.
const SLOT: usize = 8;

/// A stack of packets in one slot-descriptor object (owner master, user
/// mirror): the RX-free or TX-allocation path.
#[derive(Debug)]
pub(super) struct Slots {
    /// The owner-private region (TXAKSD or RXFKSD) and its object.
    ksd: Arc<Region>,
    /// Its user-visible mirror (TXAUSD or RXFUSD), if the arena has one.
    usd: Option<Arc<Region>>,
    obj: u32,
    cap: usize,
    len: usize,
}

impl Slots {
    /// The stack in object `obj` of `ksd` (and of its mirror `usd`).
    pub(super) fn new(ksd: Arc<Region>, usd: Option<Arc<Region>>, obj: u32) -> Self {
        let cap = ksd.geometry().obj_size / SLOT;
        Self {
            ksd,
            usd,
            obj,
            cap,
            len: 0,
        }
    }

    /// Pushes `pkt` (its data `len` bytes long, for the user's view);
    /// false when the stack is full.
    pub(super) fn push(&mut self, pkt: PacketIndex, len: u16) -> bool {
        if self.len == self.cap {
            return false;
        }
        let at = self.len * SLOT;
        let Ok(k) = self.ksd.obj(self.obj) else {
            return false;
        };
        if k.store_u32(at, pkt.get()).is_err() {
            return false;
        }
        if let Some(u) = self.usd.as_ref().and_then(|u| u.obj(self.obj).ok()) {
            // What mappers read; the owner's copy is the truth.
            let _ = u.store_u32(at, pkt.get());
            let _ = u.store_u16(at + 6, len);
        }
        self.len += 1;
        true
    }

    /// Pops the packet pushed last.
    pub(super) fn pop(&mut self) -> Option<PacketIndex> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        let k = self.ksd.obj(self.obj).ok()?;
        k.load_u32(self.len * SLOT).ok().map(PacketIndex::new)
    }
}
