//! What can go wrong with an arena itself: its parameters and its
//! lifecycle (map, redirect, defunct), with Skywalk's errno for each.

/// An arena's own failures; those of its regions and caches are
/// `Error::Region` and `Error::Cache`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArenaError {
    /// Arena parameters break one of Skywalk's creation rules that is not
    /// about a single region (EINVAL).
    #[error("arena {arena}: invalid parameters: {rule}")]
    InvalidParams {
        /// The arena's name.
        arena: String,
        /// The rule that was broken.
        rule: &'static str,
    },

    /// The arena cannot be mapped: it is inactive or defunct (ENODEV).
    #[error("arena {arena}: not active (inactive or defunct), cannot be mapped")]
    NotActive {
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
    Active {
        /// The arena's name.
        arena: String,
    },
}

impl ArenaError {
    /// The errno Skywalk would return for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            ArenaError::InvalidParams { .. } => libc::EINVAL,
            ArenaError::NotActive { .. } => libc::ENODEV,
            ArenaError::AlreadyRedirected { .. } | ArenaError::AlreadyDefunct { .. } => {
                libc::EALREADY
            }
            ArenaError::NotMapped { .. } => libc::ENXIO,
            ArenaError::MappingHoldsChannel { .. } | ArenaError::Active { .. } => libc::EBUSY,
        }
    }
}
