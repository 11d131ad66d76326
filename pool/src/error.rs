//! skmem's one error type.
//!
//! Skywalk reports failures as errno values and guards caller input with
//! `ASSERT`s; here every such case is a variant that says what was wrong, and
//! [`Error::errno`] gives the errno Skywalk would have returned, for callers
//! (and eBPF events) that speak errno.

use crate::region::RegionId;

/// Result alias used throughout skmem.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in skmem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Region parameters break one of the creation rules.
    #[error("region {region}: invalid parameters: {rule}")]
    InvalidRegionParams {
        /// The region whose parameters were refused.
        region: RegionId,
        /// The rule that was broken, in words.
        rule: &'static str,
    },

    /// A tunable's value is out of what the arenas and the kernel accept
    /// (EINVAL).
    #[error("sysctl {setting}: {rule}")]
    InvalidSysctl {
        /// The setting refused: `name=value`, or what was given for one.
        setting: String,
        /// The rule it breaks, in words.
        rule: &'static str,
    },

    /// Two regions cannot be paired as master and mirror.
    #[error("regions {master} and {mirror} cannot be mirrored: {rule}")]
    InvalidMirror {
        /// The owner-private master.
        master: RegionId,
        /// The user-visible mirror.
        mirror: RegionId,
        /// The rule that was broken.
        rule: &'static str,
    },

    /// Cache parameters break one of the creation rules.
    #[error("cache {cache}: invalid parameters: {rule}")]
    InvalidCacheParams {
        /// The cache's name.
        cache: String,
        /// The rule that was broken.
        rule: &'static str,
    },

    /// The region has no free segment left.
    #[error("region {region}: all {segments} segments are in use")]
    RegionExhausted {
        /// The full region.
        region: RegionId,
        /// How many segments it has.
        segments: u32,
    },

    /// A huge-page region found too few free huge pages to reserve.
    #[error("region {region}: {needed} free 2 MiB huge pages needed and not there (reserve them: sysctl vm.nr_hugepages)")]
    HugePages {
        /// The region.
        region: RegionId,
        /// Huge pages it needs.
        needed: usize,
    },

    /// The region is used in a way its flags forbid.
    #[error("region {region}: {rule}")]
    RegionMisuse {
        /// The region.
        region: RegionId,
        /// What is not allowed.
        rule: &'static str,
    },

    /// An object index that does not name an object of the region.
    #[error("region {region}: object {index} out of range (the region has {count} objects)")]
    ObjectOutOfRange {
        /// The region.
        region: RegionId,
        /// The index given.
        index: u32,
        /// How many objects the region has.
        count: u32,
    },

    /// An object handed back that is not currently allocated (double free,
    /// or an index the caller never got).
    #[error("cache {cache}: object {index} freed but not allocated")]
    NotAllocated {
        /// The cache's name.
        cache: String,
        /// The index given.
        index: u32,
    },

    /// A packet handed to a pool (or a channel over it) that is not one of
    /// that pool's packets held by the application: a token of another
    /// pool, or a packet no longer where its holder says.
    #[error("pool {pool}: packet {index} is not one of its packets held by the application")]
    ForeignPacket {
        /// The pool's name.
        pool: String,
        /// The packet's index in the pool it came from.
        index: u32,
    },

    /// Every per-worker magazine slot of the cache is taken.
    #[error("cache {cache}: all {slots} worker slots are taken")]
    NoWorkerSlot {
        /// The cache's name.
        cache: String,
        /// How many slots it has.
        slots: usize,
    },

    /// Arena parameters break one of Skywalk's creation rules that is not
    /// about a single region.
    #[error("arena {arena}: invalid parameters: {rule}")]
    InvalidArenaParams {
        /// The arena's name.
        arena: String,
        /// The rule that was broken.
        rule: &'static str,
    },

    /// The arena cannot be mapped: it is inactive or defunct (ENODEV).
    #[error("arena {arena}: not active (inactive or defunct), cannot be mapped")]
    ArenaNotActive {
        /// The arena's name.
        arena: String,
    },

    /// The mapping was already redirected (EALREADY).
    #[error("arena {arena}: mapping already redirected")]
    AlreadyRedirected {
        /// The arena's name.
        arena: String,
    },

    /// The mapping is not (or no longer) mapped (ENXIO).
    #[error("arena {arena}: not mapped")]
    NotMapped {
        /// The arena's name.
        arena: String,
    },

    /// The arena was already defuncted (EALREADY).
    #[error("arena {arena}: already defunct")]
    AlreadyDefunct {
        /// The arena's name.
        arena: String,
    },

    /// The mapping holds a live channel's rings, which a redirect would
    /// replace with zero pages under the channel (EBUSY): close the channel
    /// first.
    #[error(
        "arena {arena}: the mapping holds a live channel's rings; close the channel to redirect it"
    )]
    MappingHoldsChannel {
        /// The arena's name.
        arena: String,
    },

    /// The arena is still active, so it cannot be defuncted (EBUSY).
    #[error("arena {arena}: still active (a mapping is not redirected)")]
    ArenaActive {
        /// The arena's name.
        arena: String,
    },

    /// A hand-over message or the memfds with it were refused: malformed,
    /// out of protocol, or not what the schema says (EPROTO).
    #[error("hand-over: {what}")]
    Handover {
        /// What was wrong.
        what: String,
    },

    /// The owner refused this mapper, saying why (EACCES).
    #[error("the owner refused the mapping: {reason}")]
    MapperRefused {
        /// The owner's reason.
        reason: String,
    },

    /// The mapping was redirected by its owner: its memory reads as zeros
    /// and may no longer be used (ENXIO).
    #[error("arena {arena}: this mapping was redirected by its owner")]
    Redirected {
        /// The arena's name.
        arena: String,
    },

    /// A mapper did not answer a redirect in time and was cut off: its
    /// record is gone, its socket closed (ETIMEDOUT).
    #[error("mapper {pid} did not acknowledge the redirect within {millis} ms and was cut off")]
    MapperCutOff {
        /// The mapper's pid.
        pid: u32,
        /// How long it was given.
        millis: u64,
    },

    /// A fault injected by a test at a named creation step (ENOMEM, as the
    /// seed answers for any creation failure).
    #[error("injected failure at {step}")]
    Injected {
        /// The step that failed.
        step: &'static str,
    },

    /// A schema could not be written, or bytes offered as one were refused.
    #[error("schema: {0}")]
    Schema(#[from] crate::schema::SchemaError),

    /// A system call failed.
    #[error("{call}: {source}")]
    Sys {
        /// The call that failed.
        call: &'static str,
        /// The kernel's reason.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn sys(call: &'static str, e: rustix::io::Errno) -> Self {
        Error::Sys {
            call,
            source: e.into(),
        }
    }

    /// The errno Skywalk would return for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            Error::InvalidRegionParams { .. }
            | Error::InvalidSysctl { .. }
            | Error::InvalidMirror { .. }
            | Error::InvalidCacheParams { .. }
            | Error::ObjectOutOfRange { .. }
            | Error::NotAllocated { .. }
            | Error::ForeignPacket { .. }
            | Error::RegionMisuse { .. } => libc::EINVAL,
            Error::InvalidArenaParams { .. } | Error::Schema(_) => libc::EINVAL,
            Error::RegionExhausted { .. } | Error::Injected { .. } | Error::HugePages { .. } => {
                libc::ENOMEM
            }
            Error::ArenaNotActive { .. } => libc::ENODEV,
            Error::AlreadyRedirected { .. } | Error::AlreadyDefunct { .. } => libc::EALREADY,
            Error::NotMapped { .. } | Error::Redirected { .. } => libc::ENXIO,
            Error::Handover { .. } => libc::EPROTO,
            Error::MapperRefused { .. } => libc::EACCES,
            Error::MapperCutOff { .. } => libc::ETIMEDOUT,
            Error::ArenaActive { .. } | Error::MappingHoldsChannel { .. } => libc::EBUSY,
            Error::NoWorkerSlot { .. } => libc::EBUSY,
            Error::Sys { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}
