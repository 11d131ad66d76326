//! What a channel counts, and where every frame of its UMEM is.

use crate::pool::PacketState;

use super::Channel;

/// Packet counters of a channel (what USTATS publishes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
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
}

/// Where every frame of the UMEM is: see [`Channel::account`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FrameAccount {
    /// Frames in the UMEM.
    pub total: u64,
    /// In the pool's caches.
    pub pool: u64,
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
        let sum = self.pool + self.staged + self.app + self.kernel_rx + self.kernel_tx;
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
    /// Where every frame of the UMEM is, from the packets' own states and
    /// the rings' indices.
    pub fn account(&mut self) -> FrameAccount {
        let c = self.pool.state_counts();
        let rx_ring = self.rx.pending() as u64;
        let completion_ring = self.comp.pending() as u64;
        FrameAccount {
            total: self.pool.packet_count() as u64,
            pool: c[PacketState::Free as usize],
            staged: c[PacketState::Staged as usize],
            app: c[PacketState::Allocated as usize],
            kernel_rx: c[PacketState::Fill as usize],
            kernel_tx: c[PacketState::Tx as usize],
            fill_ring: self.fill.outstanding() as u64,
            rx_ring,
            tx_ring: self.tx.outstanding() as u64,
            completion_ring,
        }
    }
}
