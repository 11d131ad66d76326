//! skmem's error type, and the errors of each layer it carries.
//!
//! Skywalk reports failures as errno values and guards caller input with
//! `ASSERT`s; here every such case is a variant that says what was wrong,
//! and each layer's error gives the errno Skywalk would have returned
//! (`errno()`), for callers (and eBPF events) that speak errno.
//!
//! Data flows one way: the region and the cache return their own errors
//! ([`RegionError`], [`CacheError`]) and know nothing above them; the
//! layers that compose them (pool, arena, channel, lend, workers) return
//! [`Error`], whose variants carry each layer's error ([`ArenaError`],
//! [`ChannelError`], [`LendError`] live here, beside it, so that the
//! error type names no layer that names it).

mod arena;
mod channel;
mod lend;

pub use arena::ArenaError;
pub use channel::ChannelError;
pub use lend::LendError;

pub use crate::cache::CacheError;
pub use crate::failpoint::Injected;
pub use crate::region::RegionError;
pub use crate::sys::SysError;

/// Result alias used throughout skmem.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in skmem: one variant per layer, and the
/// few failures that belong to no single layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A region refused: parameters, mirroring, exhaustion, misuse.
    #[error(transparent)]
    Region(RegionError),

    /// A cache refused: parameters, a bad free, no worker slot.
    #[error(transparent)]
    Cache(CacheError),

    /// An arena refused: parameters, or its lifecycle (map, redirect,
    /// defunct).
    #[error(transparent)]
    Arena(#[from] ArenaError),

    /// A channel refused its parameters or a call.
    #[error(transparent)]
    Channel(#[from] ChannelError),

    /// Lending an arena to another process failed: the hand-over, the
    /// owner's answer, a redirect.
    #[error(transparent)]
    Lend(#[from] LendError),

    /// A tunable's value is out of what the arenas and the kernel accept
    /// (EINVAL).
    #[error("sysctl {setting}: {rule}")]
    InvalidSysctl {
        /// The setting refused: `name=value`, or what was given for one.
        setting: String,
        /// The rule it breaks, in words.
        rule: &'static str,
    },

    /// A packet handed to a pool (or a channel over it) that is not one of
    /// that pool's packets held by the application: a token of another
    /// pool, or a packet no longer where its holder says (EINVAL).
    #[error("pool {pool}: packet {index} is not one of its packets held by the application")]
    ForeignPacket {
        /// The pool's name.
        pool: String,
        /// The packet's index in the pool it came from.
        index: u32,
    },

    /// A fault injected by a test at a named creation step (ENOMEM, as
    /// Skywalk answers for any creation failure).
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

/// A region's error, except a test's injected fault, which every layer
/// reports alike (`Error::Injected`).
impl From<RegionError> for Error {
    fn from(e: RegionError) -> Self {
        match e {
            RegionError::Injected(i) => i.into(),
            e => Error::Region(e),
        }
    }
}

/// A cache's error; the region's under it and an injected fault are
/// reported as themselves, so each failure has one variant to match.
impl From<CacheError> for Error {
    fn from(e: CacheError) -> Self {
        match e {
            CacheError::Region(e) => e.into(),
            CacheError::Injected(i) => i.into(),
            e => Error::Cache(e),
        }
    }
}

impl From<Injected> for Error {
    fn from(i: Injected) -> Self {
        Error::Injected { step: i.step }
    }
}

impl From<SysError> for Error {
    fn from(e: SysError) -> Self {
        Error::Sys {
            call: e.call,
            source: e.source,
        }
    }
}

impl Error {
    pub(crate) fn sys(call: &'static str, e: rustix::io::Errno) -> Self {
        SysError::new(call, e).into()
    }

    /// The errno Skywalk would return for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Region(e) => e.errno(),
            Error::Cache(e) => e.errno(),
            Error::Arena(e) => e.errno(),
            Error::Channel(e) => e.errno(),
            Error::Lend(e) => e.errno(),
            Error::InvalidSysctl { .. } | Error::ForeignPacket { .. } | Error::Schema(_) => {
                libc::EINVAL
            }
            Error::Injected { .. } => libc::ENOMEM,
            Error::Sys { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::region::RegionId;

    #[test]
    fn each_layers_error_keeps_its_errno_in_error() {
        let exhausted = || RegionError::Exhausted {
            region: RegionId::BufDef,
            segments: 1,
        };
        assert_eq!(exhausted().errno(), libc::ENOMEM);
        let e = Error::from(exhausted());
        assert!(matches!(e, Error::Region(RegionError::Exhausted { .. })));
        assert_eq!(e.errno(), libc::ENOMEM);
        // A region's error under a cache is matched as the region's.
        let e = Error::from(CacheError::Region(exhausted()));
        assert!(
            matches!(e, Error::Region(RegionError::Exhausted { .. })),
            "{e:?}"
        );
        let e = Error::from(CacheError::NoWorkerSlot {
            cache: "c".into(),
            slots: 2,
        });
        assert_eq!(e.errno(), libc::EBUSY);
        // An injected fault is one variant whichever layer it came through.
        let step = "region create";
        for e in [
            Error::from(RegionError::Injected(Injected { step })),
            Error::from(CacheError::Injected(Injected { step })),
            Error::from(Injected { step }),
        ] {
            assert!(
                matches!(e, Error::Injected { step: s } if s == step),
                "{e:?}"
            );
            assert_eq!(e.errno(), libc::ENOMEM);
        }
        let e = Error::from(ArenaError::NotActive { arena: "a".into() });
        assert_eq!(e.errno(), libc::ENODEV);
        let e = Error::from(LendError::MapperCutOff { pid: 1, millis: 5 });
        assert_eq!(e.errno(), libc::ETIMEDOUT);
        let e = Error::from(SysError {
            call: "mmap",
            source: std::io::Error::from_raw_os_error(libc::EPERM),
        });
        assert!(matches!(e, Error::Sys { call: "mmap", .. }));
        assert_eq!(e.errno(), libc::EPERM);
    }
}
