//! What a channel refuses: parameters and calls that do not fit the
//! channel as it was opened.

/// A channel's own failures; the socket's system calls are `Error::Sys`,
/// a packet not the application's is `Error::ForeignPacket`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The channel's parameters, or a call's, break one of its rules
    /// (EINVAL).
    #[error("channel on {channel}: {rule}")]
    InvalidParams {
        /// The arena (or interface) the channel is on.
        channel: String,
        /// The rule that was broken.
        rule: &'static str,
    },
}

impl ChannelError {
    /// The errno Skywalk would return for this failure.
    pub fn errno(&self) -> i32 {
        match self {
            ChannelError::InvalidParams { .. } => libc::EINVAL,
        }
    }
}
