//! Where and how skmemctl's worker threads run: pinned to a CPU, and at
//! `SCHED_FIFO` when asked.

use anyhow::{bail, Context, Result};

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) -> Result<()> {
    if cpu >= rustix::thread::CpuSet::MAX_CPU {
        bail!("--cpu {cpu} is out of range");
    }
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).with_context(|| format!("pinning to cpu{cpu}"))
}

/// Runs the calling thread at `SCHED_FIFO` with `priority` (1–99, which
/// `fwd` checks before it starts any thread; the kernel refuses others):
/// it then runs whenever it is runnable, ahead of every `SCHED_OTHER`
/// thread on its CPU — a threaded NAPI's kthread included.
pub fn run_fifo(priority: u8) -> Result<()> {
    set_scheduler(libc::SCHED_FIFO, priority)
        .with_context(|| format!("sched_setscheduler(SCHED_FIFO, {priority})"))
}

/// Returns the calling thread to `SCHED_OTHER` (after [`run_fifo`]).
pub fn run_other() -> Result<()> {
    set_scheduler(libc::SCHED_OTHER, 0).context("sched_setscheduler(SCHED_OTHER)")
}

/// `sched_setscheduler` of the calling thread.
fn set_scheduler(policy: libc::c_int, priority: u8) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: `param` is a valid `sched_param` that outlives the call; pid
    // 0 names the calling thread.
    if unsafe { libc::sched_setscheduler(0, policy, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Where and how a thread runs: `--cpu` and `--fifo`. `fwd` applies it to
/// each queue's thread (with `--workers`, the owner thread, which passes
/// it on to the workers it starts).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Placement {
    pub(crate) cpu: Option<usize>,
    pub(crate) fifo: Option<u8>,
}

impl Placement {
    /// Applies it to the calling thread.
    pub(crate) fn apply(self) -> Result<()> {
        if let Some(cpu) = self.cpu {
            pin(cpu)?;
        }
        if let Some(p) = self.fifo {
            run_fifo(p)?;
        }
        Ok(())
    }
}

/// The calling thread's scheduling policy, as its name.
pub fn policy() -> &'static str {
    // SAFETY: no arguments but the calling thread's pid (0).
    match unsafe { libc::sched_getscheduler(0) } {
        libc::SCHED_FIFO => "SCHED_FIFO",
        libc::SCHED_RR => "SCHED_RR",
        libc::SCHED_OTHER => "SCHED_OTHER",
        libc::SCHED_BATCH => "SCHED_BATCH",
        libc::SCHED_IDLE => "SCHED_IDLE",
        _ => "other",
    }
}
