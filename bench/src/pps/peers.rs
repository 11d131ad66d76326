//! The integration point of the out-of-process peers: the C rxdrop/txonly/
//! l2fwd against Debian's libxdp (`cpeer`, program `libxdp-c`) and DPDK's
//! `dpdk-testpmd` with `net_af_xdp` (`testpmd`). Both run as child
//! processes of the program thread (already in A's namespace and pinned;
//! the child inherits both).
//!
//! Their interfaces:
//!
//! ```text
//! cpeer::skip_reason() -> Option<String>
//! cpeer::run(p, register, start, stop) -> Result<ProgRun>
//! testpmd::skip_reason() -> Option<String>
//! testpmd::run(p, (main lcore, forwarding lcore), start, stop) -> Result<ProgRun>
//! ```
//!
//! A peer whose [`skip_reason`] is `Some` (not built, not installed) is
//! left out of the run with that reason.

use std::os::fd::BorrowedFd;
use std::sync::atomic::AtomicBool;

use anyhow::Result;

use super::meter::Meter;
use super::{cpeer, testpmd, Implementation, ProgParams, ProgRun};

/// Why `imp` cannot run here, or `None`. Only the peers can be missing.
pub fn skip_reason(imp: Implementation) -> Option<String> {
    match imp {
        Implementation::LibxdpC => cpeer::skip_reason(),
        Implementation::Testpmd => testpmd::skip_reason(),
        _ => None,
    }
}

/// Runs the libxdp C peer (registers its socket through `register`).
pub fn run_cpeer(
    p: &ProgParams,
    register: &mut dyn FnMut(BorrowedFd<'_>) -> Result<()>,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    cpeer::run(p, register, start, stop)
}

/// Runs DPDK testpmd on lcores `cpus` (it loads its own XDP program on A).
pub fn run_testpmd(
    p: &ProgParams,
    cpus: (usize, usize),
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    testpmd::run(p, cpus, start, stop)
}
