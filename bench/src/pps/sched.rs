//! The harness's threads scheduled as a deployment's would be: autogroup
//! scheduling off for the run.
//!
//! With autogroup (`kernel.sched_autogroup_enabled`, on in Debian's
//! kernels) all the tasks of a session share one scheduling group, and
//! the group's weight is split between CPUs by how busy its tasks are on
//! each. The generator — standing in for another machine — and the program
//! under test are threads (or children) of this one process: on the
//! program's CPU the program then weighs about its share of the group's
//! CPU time (a seventh of a thread's, against a generator busy all the
//! time), while A's NAPI kthread, outside any group, weighs a whole
//! thread's. In the threaded layout the program, having used more than
//! that small share, waits out the kthread's slices, and the fill ring runs
//! dry meanwhile: 22–27 % of what XDP redirected was dropped for want of
//! fill frames, against 3 % with autogroup off. A program deployed on its
//! own has its group's whole weight, so the harness turns autogroup off
//! for the run (each thread created meanwhile is then scheduled on its own
//! weight) and back on after, and the report says so.
//!
//! A run killed before it could restore the setting leaves a marker file
//! saying what to restore; the next run restores it first.
//!
//! On request (`--prog-fifo`), the program under test runs at
//! `SCHED_FIFO` ([`run_fifo`]), as a forwarder deployed beside the NAPI
//! that feeds it may be: see [`super::Config::prog_fifo`].

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// The kernel's switch.
pub const SYSCTL: &str = "/proc/sys/kernel/sched_autogroup_enabled";
/// Written while a run has autogroup off: the value to restore, then the
/// run's pid.
pub const MARKER: &str = "/run/skmem-pps-autogroup";
/// The owner mark of the run that wrote [`MARKER`].
const OWNER_MARK: &str = "pps-autogroup";

/// What a run did about autogroup scheduling (in a report: the sentence
/// its `Display` writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Autogroup {
    /// Turned off for the run, restored after.
    TurnedOff,
    /// Already off (by the machine's settings, or by another run).
    AlreadyOff,
    /// Left on, as asked (`--keep-autogroup`).
    KeptOn,
    /// Left on: turning it off failed (the reason).
    CouldNotTurnOff(String),
    /// This kernel has no autogroup scheduling.
    Absent,
}

impl std::fmt::Display for Autogroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Autogroup::TurnedOff => f.write_str("off for the run (restored after)"),
            Autogroup::AlreadyOff => f.write_str("off (already)"),
            Autogroup::KeptOn => f.write_str("on (kept, as asked)"),
            Autogroup::CouldNotTurnOff(e) => write!(f, "on (could not turn it off: {e})"),
            Autogroup::Absent => f.write_str("not in this kernel"),
        }
    }
}

impl Serialize for Autogroup {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Restores autogroup scheduling when dropped, if this run turned it off.
#[derive(Debug)]
pub struct AutogroupGuard {
    /// The value to write back, when this run changed it.
    restore: Option<String>,
    /// Says this run lives while it holds the sysctl (see [`stale_marker`]).
    _mark: Option<skmem::owner::OwnerMark>,
}

impl AutogroupGuard {
    /// Turns autogroup scheduling off unless `keep` (first restoring what
    /// a killed run left behind); says what it did.
    pub fn turn_off(keep: bool, log: &mut dyn FnMut(&str)) -> (Self, Autogroup) {
        let none = Self {
            restore: None,
            _mark: None,
        };
        if !Path::new(SYSCTL).exists() {
            return (none, Autogroup::Absent);
        }
        if let Some(value) = stale_marker() {
            match write_sysctl(&value).and_then(|()| remove_marker()) {
                Ok(()) => log(&format!(
                    "pps: restored kernel.sched_autogroup_enabled = {value}, left off by a killed run"
                )),
                Err(e) => log(&format!("pps: could not restore what a killed run left: {e:#}")),
            }
        }
        if keep {
            return (none, Autogroup::KeptOn);
        }
        let now = match std::fs::read_to_string(SYSCTL) {
            Ok(v) => v.trim().to_owned(),
            Err(e) => return (none, Autogroup::CouldNotTurnOff(e.to_string())),
        };
        if now == "0" {
            return (none, Autogroup::AlreadyOff);
        }
        let marker = format!("{now} {}", std::process::id());
        // The owner mark says, across PID namespaces, whether this run still
        // lives; the pid in the marker is for runs that predate marks.
        let mark = skmem::owner::OwnerMark::take(OWNER_MARK).ok();
        let turned = std::fs::write(MARKER, marker)
            .with_context(|| format!("writing {MARKER}"))
            .and_then(|()| write_sysctl("0"));
        match turned {
            Ok(()) => (
                Self {
                    restore: Some(now),
                    _mark: mark,
                },
                Autogroup::TurnedOff,
            ),
            Err(e) => {
                let _ = remove_marker();
                (none, Autogroup::CouldNotTurnOff(format!("{e:#}")))
            }
        }
    }
}

impl Drop for AutogroupGuard {
    fn drop(&mut self) {
        if let Some(v) = self.restore.take() {
            if let Err(e) = write_sysctl(&v).and_then(|()| remove_marker()) {
                eprintln!("pps: could not restore kernel.sched_autogroup_enabled = {v}: {e:#}");
            }
        }
    }
}

fn write_sysctl(value: &str) -> Result<()> {
    std::fs::write(SYSCTL, value).with_context(|| format!("writing {value} to {SYSCTL}"))
}

fn remove_marker() -> Result<()> {
    match std::fs::remove_file(MARKER) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {MARKER}"))
        }
        _ => Ok(()),
    }
}

/// The value a killed run left to restore: its marker, when the process
/// that wrote it is gone (a live one is another run, still using it).
fn stale_marker() -> Option<String> {
    let text = std::fs::read_to_string(MARKER).ok()?;
    let mut words = text.split_whitespace();
    let value = words.next()?.to_owned();
    let pid: u32 = words.next()?.parse().ok()?;
    let alive = match skmem::owner::owner_of(OWNER_MARK) {
        Ok(Some(skmem::owner::Owner::Alive(_))) => true,
        Ok(Some(skmem::owner::Owner::Gone)) => {
            let _ = skmem::owner::remove_orphan(OWNER_MARK);
            false
        }
        Ok(None) | Err(_) => Path::new(&format!("/proc/{pid}")).exists(),
    };
    (!alive && (value == "0" || value == "1")).then_some(value)
}

/// Runs the calling thread at `SCHED_FIFO` with `priority` (1–99): ahead
/// of every `SCHED_OTHER` thread on its CPU whenever it is runnable; the
/// processes it starts inherit it.
pub fn run_fifo(priority: u8) -> Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: `param` is a valid `sched_param` that outlives the call; pid
    // 0 names the calling thread.
    let r = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if r != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("sched_setscheduler(SCHED_FIFO, {priority})"));
    }
    Ok(())
}
