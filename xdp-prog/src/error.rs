//! The crate's error type, [`XdpError`], and how a failure's kernel reason
//! and errno are dug out of the chain of causes that aya and the system
//! calls return.

use std::error::Error as StdError;
use std::io;

use crate::AttachedMode;

/// What went wrong. Every variant that comes from a system call carries the
/// kernel's reason in its message (the whole chain of causes, including the
/// verifier log for a load) and its errno in [`XdpError::errno`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum XdpError {
    /// A fault injected at step `step` (tests, feature `failpoints` of
    /// skmem: [`skmem::failpoint`]).
    #[error("fault injected at {step}")]
    Injected {
        /// The step that failed.
        step: &'static str,
    },

    /// The name cannot be an interface name: empty, longer than 15 bytes or
    /// containing a NUL byte.
    #[error("{iface:?} is not a valid network interface name")]
    InvalidInterfaceName {
        /// The name given.
        iface: String,
    },
    /// `if_nametoindex` found no such interface (in this thread's network
    /// namespace).
    #[error("network interface `{iface}` not found: {reason}")]
    InterfaceNotFound {
        /// The name given.
        iface: String,
        /// The kernel's error (usually `ENODEV`).
        reason: io::Error,
    },
    /// This build of skmem-xdp embeds no XDP program (`AYA_BUILD_SKIP` was
    /// set when it was built).
    #[error("skmem-xdp was built without its XDP program (AYA_BUILD_SKIP was set)")]
    ObjectMissing,
    /// Creating the maps or loading the program into the kernel failed.
    #[error("loading the XDP program for `{iface}` failed: {reason}")]
    Load {
        /// The interface it was meant for.
        iface: String,
        /// The kernel's reason (with the verifier log, if any).
        reason: String,
        /// The errno of the failing call, if one failed.
        errno: Option<i32>,
    },
    /// Attaching in one mode failed.
    #[error("attaching XDP to `{iface}` (ifindex {ifindex}) in {mode} mode failed: {reason}")]
    Attach {
        /// The interface.
        iface: String,
        /// Its index.
        ifindex: u32,
        /// The mode tried.
        mode: AttachedMode,
        /// The kernel's reason.
        reason: String,
        /// The errno of the failing call (e.g. `ENOSPC`, `EBUSY`).
        errno: Option<i32>,
    },
    /// [`AttachMode::Auto`](crate::AttachMode::Auto): both native and
    /// generic attach failed.
    #[error("attaching XDP to `{iface}` failed in auto mode: {native}; then {generic}")]
    AutoAttach {
        /// The interface.
        iface: String,
        /// Why native failed (an [`XdpError::Attach`]).
        native: Box<XdpError>,
        /// Why generic failed (an [`XdpError::Attach`]).
        generic: Box<XdpError>,
    },
    /// An operation on one of the program's maps failed.
    #[error("{op} on map {map} of the XDP program on `{iface}` failed: {reason}")]
    Map {
        /// The interface the program is attached to.
        iface: String,
        /// The map's name ([`XSKS_MAP`](crate::XSKS_MAP),
        /// [`COUNTERS_MAP`](crate::COUNTERS_MAP) or
        /// [`VARIANT_STATE_MAP`](crate::VARIANT_STATE_MAP)).
        map: &'static str,
        /// What was attempted, e.g. `"registering the socket of queue 3"`.
        op: String,
        /// The kernel's reason.
        reason: String,
        /// The errno of the failing call, if one failed.
        errno: Option<i32>,
    },
}

impl XdpError {
    /// The kernel's errno behind the error, if a system call failed. For
    /// [`XdpError::AutoAttach`] it is the generic attempt's (the last one).
    pub fn errno(&self) -> Option<i32> {
        match self {
            XdpError::InterfaceNotFound { reason, .. } => reason.raw_os_error(),
            XdpError::Load { errno, .. }
            | XdpError::Attach { errno, .. }
            | XdpError::Map { errno, .. } => *errno,
            XdpError::AutoAttach { generic, .. } => generic.errno(),
            XdpError::InvalidInterfaceName { .. } | XdpError::ObjectMissing => None,
            XdpError::Injected { .. } => Some(libc::ENOMEM),
        }
    }
}

/// The whole chain of causes of `err`, joined with `": "`, so a message
/// that hides its source (aya's "`bpf_link_create` failed") still shows the
/// kernel's reason.
pub(crate) fn reason(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        // Some wrappers already print their source; do not say it twice.
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// The first OS error code in the chain of causes of `err`.
pub(crate) fn errno(err: &(dyn StdError + 'static)) -> Option<i32> {
    let mut cause = Some(err);
    while let Some(c) = cause {
        if let Some(code) = c
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(code);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] io::Error);

    #[test]
    fn reason_walks_the_chain_and_finds_errno() {
        let err = Outer(io::Error::from_raw_os_error(libc::ENOSPC));
        let text = reason(&err);
        assert!(text.starts_with("outer: "), "{text}");
        assert!(text.contains("os error 28"), "{text}");
        assert_eq!(errno(&err), Some(libc::ENOSPC));
        assert_eq!(errno(&io::Error::other("no code")), None);
    }
}
