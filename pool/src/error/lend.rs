//! What can go wrong lending an arena to another process: the hand-over
//! on the Unix socket, the owner's answer, and a redirect.

/// Failures of an offer, a remote mapping or a worker joining one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LendError {
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
}

impl LendError {
    /// The errno Skywalk would return for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            LendError::Handover { .. } => libc::EPROTO,
            LendError::MapperRefused { .. } => libc::EACCES,
            LendError::Redirected { .. } => libc::ENXIO,
            LendError::MapperCutOff { .. } => libc::ETIMEDOUT,
        }
    }
}
