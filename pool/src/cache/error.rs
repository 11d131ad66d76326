//! What can go wrong in a cache, with the errno Skywalk would answer.
//!
//! A cache stands on one region; a region's failure under it (a bad object
//! index) is carried as `CacheError::Region`. `skmem::Error` carries cache
//! errors as `Error::Cache`, and the region's as `Error::Region`.

use crate::failpoint::Injected;
use crate::region::RegionError;

/// Result of a cache operation.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;

/// Everything that can go wrong creating or using a cache.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Cache parameters break one of the creation rules (EINVAL).
    #[error("cache {cache}: invalid parameters: {rule}")]
    InvalidParams {
        /// The cache's name.
        cache: String,
        /// The rule that was broken.
        rule: &'static str,
    },

    /// An object handed back that is not currently allocated: a double
    /// free, or an index the caller never got (EINVAL).
    #[error("cache {cache}: object {index} freed but not allocated")]
    NotAllocated {
        /// The cache's name.
        cache: String,
        /// The index given.
        index: u32,
    },

    /// Every per-worker magazine slot of the cache is taken (EBUSY).
    #[error("cache {cache}: all {slots} worker slots are taken")]
    NoWorkerSlot {
        /// The cache's name.
        cache: String,
        /// How many slots it has.
        slots: usize,
    },

    /// The region under the cache refused (an object out of its range).
    #[error(transparent)]
    Region(#[from] RegionError),

    /// A fault injected by a test at a cache's creation step (ENOMEM).
    #[error(transparent)]
    Injected(#[from] Injected),
}

impl CacheError {
    /// The errno Skywalk would return for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            CacheError::InvalidParams { .. } | CacheError::NotAllocated { .. } => libc::EINVAL,
            CacheError::NoWorkerSlot { .. } => libc::EBUSY,
            CacheError::Region(e) => e.errno(),
            CacheError::Injected(_) => libc::ENOMEM,
        }
    }
}
