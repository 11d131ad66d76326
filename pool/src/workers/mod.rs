//! Worker processes on the data path: packets lent, in place, to
//! processes that map the arena (Skywalk's user tasks processing a
//! channel's packets), each isolated from the others.
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

mod flow;
mod hub;
pub(crate) mod ring;
pub(crate) mod table;
mod worker;

pub use hub::{Spread, WorkerCounters, WorkerHub};
pub use ring::{FREE, NEED_WAKEUP};
pub use table::WorkerTable;
pub use worker::{WorkerChannel, WorkerFrame, WorkerStats};
