//! Worker processes on the data path: packets lent, in place, to
//! processes that map the arena (Skywalk's user tasks processing a
//! channel's packets): none can break the owner, and one that crashes
//! loses no frame.
//!
//! A nexus arena made with worker slots
//! ([`NexusParams::with_worker_slots`](crate::arena::NexusParams::with_worker_slots))
//! holds, for each slot, two rings in its RING region, recorded in the
//! schema ([`WorkerRings`](crate::schema::WorkerRings)): owner → worker for
//! received packets, worker → owner for packets to send or to free. The
//! descriptors are AF_XDP's (`XdpDesc`: the UMEM address of the data, its
//! length, options), so a worker reads and writes packets where the kernel
//! put them — no copy — and the owner moves descriptors between the AF_XDP
//! rings and the worker rings in batches.
//!
//! What the owner lends it keeps account of in its own memory: a lent
//! packet is [`PacketState::Lent`](crate::pool::PacketState::Lent), held by
//! the worker's number in the pool's owner-private state column, so every
//! descriptor a worker hands back is checked against what was lent to it,
//! and a worker that is gone has everything lent to it taken back.
//!
//! # Who may break what
//!
//! Every descriptor a worker hands back is untrusted: an address outside
//! the UMEM, a frame not lent to this worker (or lent to another), one
//! handed back twice, data past the frame's buffer, a fragment flag where
//! packets are one frame — each is a counted drop ([`WorkerCounters`]),
//! never a double free and never a write into owner-private memory (the
//! state column and the metadata stay in the owner). A worker that exits,
//! is killed, is redirected or is cut off has every frame lent to it taken
//! back; the owner keeps lending to the others throughout, and a new
//! worker takes the slot. What workers cannot be kept from is each other's
//! packets: they map one UMEM and one RING region, read-write, so a
//! hostile worker can read or scribble on another's frames and rings (it
//! can stall that worker, not the owner's accounting). Workers that must
//! not see each other need arenas of their own.
//!
//! # No direct mode
//!
//! A worker never drives the AF_XDP rings itself: the owner moves every
//! descriptor between the socket's rings and the worker's. That is a hop
//! per packet (BENCHMARKS.md measures it: `skmem-w1` beside `skmem`), and
//! it is what keeps the accounting exact — a worker holding the socket's
//! rings could hand the kernel any UMEM address, and a frame it sent would
//! come back on the completion ring with no one to tell whose it was.
//!
//! # Spreading, waking
//!
//! Received packets go to the workers by a hash of their flow
//! ([`Spread::FlowHash`], the default: a flow's packets stay in order and
//! on one worker) or round-robin ([`Spread::RoundRobin`]: even load, but a
//! flow may be reordered). One worker per queue is one hub per channel.
//! A side that sleeps sets NEED_WAKEUP on the ring it consumes and waits
//! on its eventfd (handed over with the slot); the other side writes the
//! eventfd only when the flag is set — no syscall per packet, none at all
//! while both are busy.
//!
//! # Sharing a CPU
//!
//! An owner and its workers on one CPU with the queue's threaded NAPI
//! kthread are three tasks the scheduler shares out. At `SCHED_OTHER`,
//! waking a worker hands it the CPU mid-round, and when it sleeps the
//! scheduler may give the CPU to the kthread rather than back to the owner
//! — until the next tick, with the fill ring dry (bench/NOTES.md, session
//! 20; `skmem-w1` receives about half of what one process does there).
//! Run owner and workers at `SCHED_FIFO` on that CPU (`skmemctl fwd
//! --workers N --cpu C --fifo P` does): they run the moment they have work
//! and NAPI runs in their waits. An owner that shares a CPU with its
//! workers should also give them the CPU when [`WorkerHub::behind`] says
//! their rings are filling.

pub mod advisory;
mod flow;
mod hub;
pub(crate) mod ring;
mod worker;

pub use crate::lend::WorkerTable;
pub use advisory::{
    FlowAdvisory, NexusAdvisoryState, SlotAdvisory, FLOW_CONTROLLED, NEXUS_ADVISORY_VERSION,
};
pub use hub::{Spread, WorkerCounters, WorkerHub};
pub use ring::{FREE, NEED_WAKEUP};
pub use worker::{WorkerChannel, WorkerFrame, WorkerStats};

/// The advisories of an arena a mapper maps: the owner's per-queue state
/// (NEXUSADV, when the arena has worker slots) and the flow advisories set
/// now or before (FLOWADV). See [`advisory`]'s layout.
pub fn advisories(
    remote: &crate::lend::RemoteArena,
) -> crate::Result<(Option<NexusAdvisoryState>, Vec<FlowAdvisory>)> {
    advisory::read(remote)
}
