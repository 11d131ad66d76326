//! # skmem — an AF_XDP packet buffer pool on Skywalk's memory model
//!
//! skmem reproduces the memory subsystem of Apple's Skywalk (`skmem_*` in
//! xnu) for Linux AF_XDP: packet buffers, their metadata and the socket's
//! rings live in **regions** of shared memory, allocated through **caches**
//! with per-worker **magazines**, grouped into **arenas** that other
//! processes can map as one contiguous span.
//!
//! This crate is the library; its modules, one concept each:
//!
//! * [`region`] — memfd-backed memory cut into segments of equal objects,
//!   with Skywalk's ids, flags, rounding rules and mirroring;
//! * [`cache`] — slab allocation over a region, with a lock-free per-worker
//!   magazine layer and a depot; purge and reap;
//! * [`pool`] — the packet pool: metadata, buffers (the UMEM), buflets;
//! * [`arena`] — nexus, NECP and system arenas and their lifecycle (map,
//!   redirect, defunct);
//! * [`mapper`] — an arena's user-mappable regions as one contiguous span;
//! * [`lend`] — an arena offered to other processes on a Unix socket, and
//!   mapped by them;
//! * [`schema`] — the versioned layout page a mapper reads first;
//! * [`stats`] — the registry of live arenas and their statistics;
//! * [`sys`] — the memory syscalls, where the `unsafe` lives;
//! * [`error`] — `Error`, carrying each layer's error (region, cache, arena,
//!   channel, lend), each with Skywalk's errno.
//!
//! ```
//! use skmem::cache::{Cache, CacheParams};
//! use skmem::region::{Region, RegionId, RegionParams};
//!
//! // 1024 packet-metadata objects of 128 bytes, a cache with magazines.
//! let region = Region::create("example", &RegionParams::new(RegionId::Kmd, 128, 1024))?;
//! let cache = Cache::new(region, CacheParams::new("kmd.example"))?;
//! let mut worker = cache.worker()?;
//!
//! let mut batch = [0u32; 32];
//! assert_eq!(worker.alloc_batch(&mut batch), 32);
//! worker.free_batch(&batch)?;
//! # Ok::<(), skmem::Error>(())
//! ```

#![warn(missing_docs)]
// The unit-test build of a library sees its package's dev-dependencies,
// which the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod arena;
pub mod cache;
pub mod channel;
pub mod error;
#[doc(hidden)]
pub mod failpoint;
#[cfg(feature = "publish")]
pub mod inspect;
pub mod lend;
pub mod mapper;
pub mod owner;
pub mod pool;
pub mod probe;
#[cfg(feature = "publish")]
pub mod publish;
pub mod region;
pub mod schema;
/// The registry of live arenas and channels and their statistics (it
/// lives under [`arena`]; this is its old name).
pub use arena::registry as stats;
pub mod sys;
pub mod sysctls;
mod util;
pub mod workers;

pub use error::{ArenaError, CacheError, ChannelError, Error, LendError, RegionError, Result};

// The types a forwarder needs, at the root: `use skmem::{Arena, Channel, ...}`.
pub use arena::{Arena, ArenaKind, ArenaMapping, NexusParams};
pub use cache::{Cache, CacheParams};
pub use channel::{BindMode, Channel, ChannelCounters, ChannelParams, Coalesce, Frame, XskStats};
pub use lend::{ArenaOffer, RemoteArena};
pub use pool::{PacketPool, PoolParams};
pub use region::{Region, RegionFlags, RegionId, RegionParams};
pub use workers::{Spread, WorkerChannel, WorkerHub};
