//! Errors of the harness. Each says which command, namespace, interface or
//! socket operation failed, and carries the command's stderr.

use std::io;

/// Everything the harness can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A fault injected at step `step` (tests, feature `failpoints` of
    /// skmem: [`skmem::failpoint`]).
    #[error("fault injected at {step}")]
    Injected {
        /// The step that failed.
        step: &'static str,
    },
    /// A command ran but exited unsuccessfully.
    #[error("`{cmd}` failed ({status}){}: {stderr}", ns_suffix(.ns))]
    Command {
        /// The command line, e.g. `ip -n skm123a0 link set skv123a0 up`.
        cmd: String,
        /// The namespace the command concerned, if any.
        ns: Option<String>,
        /// Exit status as printed by the OS (`exit status: 2`, `signal: 9`).
        status: String,
        /// The command's standard error, trimmed.
        stderr: String,
    },
    /// A command could not be started at all (not installed, ...).
    #[error("could not run `{cmd}`: {source}")]
    Spawn {
        /// The command line.
        cmd: String,
        /// Why it could not be started.
        #[source]
        source: io::Error,
    },
    /// An operation on a namespace (open, setns, ...) failed.
    #[error("network namespace {ns}: {op} failed: {source}")]
    Namespace {
        /// The namespace name.
        ns: String,
        /// What was attempted.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// An operation on an interface failed.
    #[error("interface {ifname} in namespace {ns}: {op} failed: {source}")]
    Interface {
        /// The interface name.
        ifname: String,
        /// The namespace the interface lives in.
        ns: String,
        /// What was attempted.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A socket operation failed.
    #[error("AF_PACKET socket on ifindex {ifindex}: {op} failed: {source}")]
    Socket {
        /// The interface index the socket is (or was to be) bound to.
        ifindex: u32,
        /// What was attempted.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A system call of the timer-lateness measurement failed.
    #[error("measuring timer lateness: {op} failed: {source}")]
    Timer {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Output of a command could not be understood.
    #[error("`{cmd}`: unexpected output ({what}): {output}")]
    Parse {
        /// The command line.
        cmd: String,
        /// What was looked for.
        what: &'static str,
        /// The output, trimmed.
        output: String,
    },
    /// A frame could not be built as asked.
    #[error(transparent)]
    Frame(#[from] crate::frame::FrameError),
    /// An skmem channel operation failed (the latency probe's).
    #[error(transparent)]
    Skmem(#[from] skmem::Error),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A thread spawned into a namespace could not be started.
    #[error("could not spawn a thread for namespace {ns}: {source}")]
    Thread {
        /// The namespace name.
        ns: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn ns_suffix(ns: &Option<String>) -> String {
    match ns {
        Some(ns) => format!(" in namespace {ns}"),
        None => String::new(),
    }
}

/// Result with the harness's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
