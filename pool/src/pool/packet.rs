//! Names and rights: a packet's and a buffer's index, and the token that
//! proves who holds a packet.
//!
//! An index ([`PacketIndex`], [`BufIndex`]) only *names* an object: anyone
//! may hold one, copy it, or read a ring's lie into one, so an index gives
//! no access to bytes. A [`Packet`] is the right to a packet: the pool
//! makes exactly one when it hands the packet out, it cannot be copied,
//! cloned or made by hand, and the calls that give the packet back (free,
//! send, give to the fill ring) take it by value. The buffer and metadata
//! accessors take `&Packet` to read and `&mut Packet` to write, so the
//! borrow checker proves that nobody writes bytes another borrow is
//! reading — across threads too.
//!
//! ```compile_fail
//! # use skmem::pool::{PacketPool, PoolParams};
//! # let pool = PacketPool::create("cf1", &PoolParams::default().with(|p| p.packets = 64))?;
//! # let mut w = pool.worker()?;
//! let pkt = w.alloc().unwrap();
//! let copy = pkt.clone(); // a packet cannot be duplicated
//! # Ok::<(), skmem::Error>(())
//! ```
//!
//! ```compile_fail
//! # use skmem::pool::{PacketPool, PoolParams};
//! # let pool = PacketPool::create("cf2", &PoolParams::default().with(|p| p.packets = 64))?;
//! # let mut w = pool.worker()?;
//! let mut pkt = w.alloc().unwrap();
//! let seen = pool.buffer(&pkt)?;
//! pool.buffer_mut(&mut pkt)?[0] = 1; // not while `seen` reads the bytes
//! assert_eq!(seen[0], 0);
//! # Ok::<(), skmem::Error>(())
//! ```
//!
//! ```compile_fail
//! # use skmem::pool::{PacketPool, PoolParams};
//! # let pool = PacketPool::create("cf3", &PoolParams::default().with(|p| p.packets = 64))?;
//! # let mut w = pool.worker()?;
//! let pkt = w.alloc().unwrap();
//! w.free(pkt)?;
//! w.free(pkt)?; // a double free does not compile: `free` took the packet
//! # Ok::<(), skmem::Error>(())
//! ```
//!
//! ```compile_fail
//! # use skmem::pool::{PacketIndex, Packet};
//! let forged = Packet { index: PacketIndex::new(3), pool: 1 }; // private fields
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, RegionError, Result};

/// A `u32` index newtype: the name of one object of a pool, shown as
/// `WHAT N`.
macro_rules! index_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $new:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize))]
        #[repr(transparent)]
        pub struct $name(u32);

        impl $name {
            #[doc = $new]
            #[inline(always)]
            pub const fn new(index: u32) -> Self {
                Self(index)
            }

            /// The index as a number.
            #[inline(always)]
            pub const fn get(self) -> u32 {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($what, " {}"), self.0)
            }
        }

        impl From<$name> for u32 {
            fn from(i: $name) -> u32 {
                i.0
            }
        }
    };
}

index_type!(
    /// The name of a packet in its pool: the index of its metadata object
    /// (and, in a single-buffer pool, of its UMEM frame). A name gives no
    /// access to the packet's bytes; see [`Packet`].
    PacketIndex,
    "packet",
    "The packet named `index`."
);

index_type!(
    /// The name of a buffer in its pool's BUF_DEF region (in a
    /// single-buffer pool the buffer of the packet with the same number; in
    /// a multi-buffer pool also the number of the buflet that describes
    /// it).
    BufIndex,
    "buffer",
    "The buffer named `index`."
);

/// A pool's identity, unique in the process: what a [`Packet`] carries so
/// that a packet of one pool is never taken for one of another.
pub(crate) type PoolId = u32;

/// The next pool's identity; `None` once the process has made 2³² − 1
/// pools (identities are never reused).
pub(crate) fn next_pool_id() -> Result<PoolId> {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1))
        .map_err(|_| {
            Error::Region(RegionError::InvalidParams {
                region: crate::region::RegionId::Kmd,
                rule: "this process has made 2^32 - 1 packet pools; identities are never reused",
            })
        })
}

/// A packet its holder owns: the one value that may read and write the
/// packet's buffer and metadata, and the one a free or a send consumes.
///
/// Only the pool (or a channel over it) makes one, when it hands the
/// packet out; it cannot be copied, cloned or built by hand. A `Packet`
/// dropped without being freed or sent is not lost to the books — the pool
/// still counts it as the application's (`Allocated`, what
/// [`Channel::account`](crate::channel::Channel::account) shows as `app`)
/// — but nothing can give it back any more: free what you take.
#[must_use = "a packet dropped without being freed or sent stays the application's for good"]
#[derive(Debug, PartialEq, Eq)]
pub struct Packet {
    index: PacketIndex,
    pool: PoolId,
}

impl Packet {
    /// Makes the token for packet `index` of pool `pool`: only where the
    /// packet has just become the application's (its state moved to
    /// `Allocated`), so that one token exists per held packet.
    #[inline(always)]
    pub(crate) fn issue(index: PacketIndex, pool: PoolId) -> Self {
        Self { index, pool }
    }

    /// Takes the token back (the packet is leaving the application).
    #[inline(always)]
    pub(crate) fn retire(self) -> PacketIndex {
        self.index
    }

    /// The packet's name.
    #[inline(always)]
    pub fn index(&self) -> PacketIndex {
        self.index
    }

    /// The identity of the pool it belongs to.
    #[inline(always)]
    pub(crate) fn pool_id(&self) -> PoolId {
        self.pool
    }
}

/// Something handed back that could not be taken, returned with the reason
/// so the caller keeps it (a packet of another pool, say).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct Refused<T: fmt::Debug> {
    /// Why.
    #[source]
    pub error: Error,
    /// What was handed back, still the caller's.
    pub item: T,
}

impl<T: fmt::Debug> From<Refused<T>> for Error {
    /// Keeps the reason; the item is dropped (for `?` in code that does not
    /// want it back).
    fn from(r: Refused<T>) -> Error {
        r.error
    }
}

/// Packet names as the object indices the caches speak.
pub(crate) fn raw_indices_mut(s: &mut [PacketIndex]) -> &mut [u32] {
    // SAFETY: `PacketIndex` is `repr(transparent)` over `u32` (same size,
    // alignment and validity, and every `u32` is a valid `PacketIndex`),
    // and the new slice takes over the old one's borrow.
    unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast::<u32>(), s.len()) }
}
