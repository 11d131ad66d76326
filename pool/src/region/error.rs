//! What can go wrong in a region, with the errno Skywalk would answer.
//!
//! The region is the bottom layer: its errors know nothing of caches,
//! arenas or channels. `skmem::Error` carries them as `Error::Region`.

use super::RegionId;
use crate::failpoint::Injected;
use crate::sys::SysError;

/// Result of a region operation.
pub type Result<T, E = RegionError> = std::result::Result<T, E>;

/// Everything that can go wrong creating, mirroring or using a region.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegionError {
    /// Region parameters break one of the creation rules (EINVAL).
    #[error("region {region}: invalid parameters: {rule}")]
    InvalidParams {
        /// The region whose parameters were refused.
        region: RegionId,
        /// The rule that was broken, in words.
        rule: &'static str,
    },

    /// Two regions cannot be paired as master and mirror (EINVAL).
    #[error("regions {master} and {mirror} cannot be mirrored: {rule}")]
    InvalidMirror {
        /// The owner-private master.
        master: RegionId,
        /// The user-visible mirror.
        mirror: RegionId,
        /// The rule that was broken.
        rule: &'static str,
    },

    /// The region has no free segment left (ENOMEM).
    #[error("region {region}: all {segments} segments are in use")]
    Exhausted {
        /// The full region.
        region: RegionId,
        /// How many segments it has.
        segments: u32,
    },

    /// A huge-page region found too few free huge pages to reserve
    /// (ENOMEM).
    #[error("region {region}: {needed} free 2 MiB huge pages needed and not there (reserve them: sysctl vm.nr_hugepages)")]
    HugePages {
        /// The region.
        region: RegionId,
        /// Huge pages it needs.
        needed: usize,
    },

    /// The region is used in a way its flags forbid (EINVAL).
    #[error("region {region}: {rule}")]
    Misuse {
        /// The region.
        region: RegionId,
        /// What is not allowed.
        rule: &'static str,
    },

    /// An object index that does not name an object of the region
    /// (EINVAL).
    #[error("region {region}: object {index} out of range (the region has {count} objects)")]
    ObjectOutOfRange {
        /// The region.
        region: RegionId,
        /// The index given.
        index: u32,
        /// How many objects the region has.
        count: u32,
    },

    /// A fault injected by a test at region creation (ENOMEM).
    #[error(transparent)]
    Injected(#[from] Injected),

    /// A memory syscall failed: the kernel's errno.
    #[error(transparent)]
    Sys(#[from] SysError),
}

impl RegionError {
    /// The errno Skywalk would return for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            RegionError::InvalidParams { .. }
            | RegionError::InvalidMirror { .. }
            | RegionError::Misuse { .. }
            | RegionError::ObjectOutOfRange { .. } => libc::EINVAL,
            RegionError::Exhausted { .. }
            | RegionError::HugePages { .. }
            | RegionError::Injected(_) => libc::ENOMEM,
            RegionError::Sys(e) => e.errno(),
        }
    }
}
