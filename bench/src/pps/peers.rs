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

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use anyhow::Result;

use super::meter::Meter;
use super::{cpeer, testpmd, Implementation, ProgParams, ProgRun};

/// Why `imp` cannot run here, or `None`. Only the peers can be missing.
pub fn skip_reason(imp: Implementation) -> Option<String> {
    match imp {
        Implementation::LibxdpC | Implementation::LibxdpCPoll => cpeer::skip_reason(),
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

/// libxdp's state directory in bpffs. libxdp makes it (for its lock and
/// its dispatcher pins) the first time a peer loads an XDP program through
/// it — DPDK's `net_af_xdp` does — and never removes it.
pub const LIBXDP_STATE_DIR: &str = "/sys/fs/bpf/xdp";

/// Removes [`LIBXDP_STATE_DIR`] when the last guard of this process drops,
/// if the directory did not exist when the first was made and is empty by
/// then: a run leaves bpffs as it found it. Guards may overlap (tests run
/// peers in parallel): while one is held, the directory stays, since a
/// peer starting meanwhile may be about to lock it. A directory that still
/// holds pins is left, and said so: something of libxdp's outlived its
/// peer.
pub struct LibxdpStateGuard {
    dir: PathBuf,
}

/// Per directory: guards alive, and whether the directory was absent when
/// the first of them was made.
static HOLDERS: Mutex<BTreeMap<PathBuf, (usize, bool)>> = Mutex::new(BTreeMap::new());

impl LibxdpStateGuard {
    /// Notes whether libxdp's state directory exists now (unless another
    /// guard already did).
    pub fn new() -> Self {
        Self::at(LIBXDP_STATE_DIR)
    }

    fn at(dir: impl Into<PathBuf>) -> Self {
        let dir = dir.into();
        let mut holders = HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        let absent = !dir.exists();
        holders.entry(dir.clone()).or_insert((0, absent)).0 += 1;
        LibxdpStateGuard { dir }
    }
}

impl Drop for LibxdpStateGuard {
    fn drop(&mut self) {
        let mut holders = HOLDERS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(entry) = holders.get_mut(&self.dir) else {
            return;
        };
        entry.0 -= 1;
        if entry.0 > 0 {
            return;
        }
        let made_by_run = entry.1;
        holders.remove(&self.dir);
        if !made_by_run || !self.dir.exists() {
            return;
        }
        // remove_dir fails on a directory that is not empty: that is the
        // check that nothing of libxdp's is still pinned there.
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!(
                "pps: libxdp left state behind in {} ({e}); left as it is",
                self.dir.display()
            );
        }
    }
}

impl Default for LibxdpStateGuard {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::LibxdpStateGuard;

    fn scratch(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("skmem-libxdp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_directory_the_run_made_is_removed_when_empty() {
        let d = scratch("made");
        let g = LibxdpStateGuard::at(&d);
        std::fs::create_dir(&d).unwrap();
        drop(g);
        assert!(!d.exists());
    }

    #[test]
    fn a_directory_that_was_there_before_is_kept() {
        let d = scratch("before");
        std::fs::create_dir(&d).unwrap();
        let g = LibxdpStateGuard::at(&d);
        drop(g);
        assert!(d.exists());
        std::fs::remove_dir(&d).unwrap();
    }

    #[test]
    fn a_directory_still_holding_state_is_kept() {
        let d = scratch("pinned");
        let g = LibxdpStateGuard::at(&d);
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("dispatch-7-13"), b"").unwrap();
        drop(g);
        assert!(d.join("dispatch-7-13").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn the_directory_stays_while_another_guard_holds_it() {
        let d = scratch("overlap");
        let first = LibxdpStateGuard::at(&d);
        std::fs::create_dir(&d).unwrap();
        let second = LibxdpStateGuard::at(&d);
        drop(first);
        assert!(d.exists(), "removed while a guard still held it");
        drop(second);
        assert!(!d.exists());
    }
}
