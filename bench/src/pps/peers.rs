//! The integration point of the out-of-process peers: the C rxdrop/txonly/
//! l2fwd against Debian's libxdp (`cpeer`, program `libxdp-c`) and DPDK's
//! `dpdk-testpmd` with `net_af_xdp` (`testpmd`). Both run as child
//! processes of the program thread (already in A's namespace and pinned;
//! the child inherits both).
//!
//! Expected interfaces (written separately):
//!
//! ```text
//! cpeer::skip_reason() -> Option<String>
//! cpeer::run(p, register, start, stop) -> Result<ProgRun>
//! testpmd::skip_reason() -> Option<String>
//! testpmd::run(p, (main lcore, forwarding lcore), start, stop) -> Result<ProgRun>
//! ```
//!
//! Until those modules are in the tree, [`skip_reason`] says so and the
//! harness leaves the two programs out of the run.

use std::os::fd::BorrowedFd;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Result};

use super::meter::Meter;
use super::{Implementation, ProgParams, ProgRun};

/// Why `imp` cannot run here, or `None`. Only the peers can be missing.
pub fn skip_reason(imp: Implementation) -> Option<String> {
    match imp {
        Implementation::LibxdpC => {
            Some("the libxdp C peer (bench/src/pps/cpeer.rs) is not in this build".to_owned())
        }
        Implementation::Testpmd => {
            Some("the DPDK testpmd peer (bench/src/pps/testpmd.rs) is not in this build".to_owned())
        }
        _ => None,
    }
}

/// Runs the libxdp C peer (registers its socket through `register`).
pub fn run_cpeer(
    _p: &ProgParams,
    _register: &mut dyn FnMut(BorrowedFd<'_>) -> Result<()>,
    _start: &mut dyn FnMut() -> Meter,
    _stop: &AtomicBool,
) -> Result<ProgRun> {
    bail!("the libxdp C peer is not in this build")
}

/// Runs DPDK testpmd on lcores `cpus` (it loads its own XDP program on A).
pub fn run_testpmd(
    _p: &ProgParams,
    _cpus: (usize, usize),
    _start: &mut dyn FnMut() -> Meter,
    _stop: &AtomicBool,
) -> Result<ProgRun> {
    bail!("the DPDK testpmd peer is not in this build")
}
