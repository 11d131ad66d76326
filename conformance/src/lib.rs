//! The Linux kernel's AF_XDP self-test cases (`test_xsk`, run by
//! `xskxceiver` on a veth pair) reproduced on skmem: every case that
//! applies to a userspace pool, through skmem's public API — a nexus
//! arena's pool as the UMEM, a [`Channel`](skmem::channel::Channel) per
//! socket, skmem's XDP program — in the three modes the kernel runs them
//! in ([`Mode`]).
//!
//! Each case sends a stream of packets from an AF_XDP socket on one end of
//! a fresh veth pair (B) to a socket on the other (A) and checks what the
//! kernel's case checks: the content and order of every packet (the
//! payload words numbered `packet << 16 | word`, as the kernel's are), the
//! exact statistics counter, and at the end that every UMEM frame of both
//! channels is in exactly one place ([`FrameAccount`]).
//!
//! Where the pieces are: the modes and the case table here; the veth pair,
//! its XDP program and channels in [`rig`]; packet streams in [`stream`];
//! sending and receiving a stream in [`exchange`]; the cases in `cases`,
//! grouped as the kernel's file groups them; the result table in [`table`].
//!
//! [`FrameAccount`]: skmem::channel::FrameAccount

#![warn(missing_docs)]
// The harness (a dev-dependency) is the test target's, not the library's.
#![cfg_attr(test, allow(unused_crate_dependencies))]

use std::fmt;

pub use cases::CASES;

/// How the kernel runs its cases: the XDP program's attach mode, and how
/// the receiving socket waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Generic XDP (`XDP_FLAGS_SKB_MODE`): the program runs on socket
    /// buffers, after the stack has built them.
    Skb,
    /// Native XDP (`XDP_FLAGS_DRV_MODE`): veth runs the program in its
    /// NAPI poll, before any socket buffer exists.
    Drv,
    /// Native XDP with busy polling: the receiving socket prefers busy
    /// polling (`SO_PREFER_BUSY_POLL`, 20 µs, budget 64) and, instead of
    /// sleeping in `poll`, runs the queue's NAPI itself in `recvfrom`.
    BusyPoll,
}

impl Mode {
    /// Every mode, in the table's column order.
    pub const ALL: [Mode; 3] = [Mode::Skb, Mode::Drv, Mode::BusyPoll];

    /// The suffix of the case's test name (`send_receive_drv`).
    pub fn suffix(self) -> &'static str {
        match self {
            Mode::Skb => "skb",
            Mode::Drv => "drv",
            Mode::BusyPoll => "busy_poll",
        }
    }

    /// The table's column heading.
    pub fn heading(self) -> &'static str {
        match self {
            Mode::Skb => "SKB",
            Mode::Drv => "DRV",
            Mode::BusyPoll => "DRV+busy",
        }
    }

    /// The XDP attach mode.
    pub fn attach(self) -> skmem_xdp::AttachMode {
        match self {
            Mode::Skb => skmem_xdp::AttachMode::Generic,
            Mode::Drv | Mode::BusyPoll => skmem_xdp::AttachMode::Native,
        }
    }

    /// Whether the receiving socket busy-polls.
    pub fn busy_poll(self) -> bool {
        self == Mode::BusyPoll
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.heading())
    }
}

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Something the kernel's case checks did not hold.
    Failed(String),
    /// This machine lacks what the case needs (the reason says what).
    Skipped(String),
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Failed(why) => write!(f, "failed: {why}"),
            Verdict::Skipped(why) => write!(f, "skipped: {why}"),
        }
    }
}

/// What a case returns: `Ok` when it passed.
pub type Outcome = Result<(), Verdict>;

/// Fails the case with a formatted message.
#[macro_export]
macro_rules! fail {
    ($($arg:tt)*) => {
        return Err($crate::Verdict::Failed(format!($($arg)*)))
    };
}

/// Fails the case unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)*) => {
        if !$cond {
            $crate::fail!($($arg)*);
        }
    };
}

/// Fails the case unless `left == right`, saying what each was.
#[macro_export]
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $what:expr) => {{
        let (l, r) = (&$left, &$right);
        if l != r {
            $crate::fail!("{}: {:?}, expected {:?}", $what, l, r);
        }
    }};
}

// The modules come after the macros above, which they use.
mod cases;
pub mod exchange;
pub mod rig;
pub mod stream;
pub mod table;

/// Turns any error into a failed case, naming the step that failed.
pub trait Step<T> {
    /// The value, or a [`Verdict::Failed`] saying `what` failed and why.
    fn step(self, what: &str) -> Result<T, Verdict>;
}

impl<T, E: fmt::Display> Step<T> for Result<T, E> {
    fn step(self, what: &str) -> Result<T, Verdict> {
        self.map_err(|e| Verdict::Failed(format!("{what}: {e}")))
    }
}

/// One of the kernel's cases.
#[derive(Clone, Copy)]
pub struct Case {
    /// The kernel's name (`STAT_FILL_EMPTY`).
    pub name: &'static str,
    /// What it checks, in a line.
    pub checks: &'static str,
    /// Where skmem's case differs from the kernel's, and why (`None`:
    /// it does what the kernel's does).
    pub differs: Option<&'static str>,
    /// Runs it in a mode.
    pub run: fn(Mode) -> Outcome,
}

impl Case {
    /// The test's name in `mode`: the case in lower case with the mode's
    /// suffix (`stat_fill_empty_drv`).
    pub fn test_name(&self, mode: Mode) -> String {
        format!("{}_{}", self.name.to_ascii_lowercase(), mode.suffix())
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish()
    }
}

/// Runs `case` in `mode`, as a verdict even if it panics (a panic is a
/// failure, with its message), after checking this process may make
/// network namespaces.
pub fn run(case: &Case, mode: Mode) -> Outcome {
    if let Some(reason) = skmem_netns::skip_reason() {
        return Err(Verdict::Skipped(reason));
    }
    match std::panic::catch_unwind(|| (case.run)(mode)) {
        Ok(outcome) => outcome,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "a panic without a message".to_owned());
            Err(Verdict::Failed(format!("panicked: {msg}")))
        }
    }
}
