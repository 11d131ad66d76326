//! Observation of skmem's arenas from outside the processes that use them:
//! uprobes on the library's hooks, three tracepoints, a ring buffer of
//! events and a live-arena map kept by the probes (object `skmem-observe`,
//! built from `ebpf/src/observe.rs`).
//!
//! ```no_run
//! use std::time::Duration;
//! use skmem_xdp::observe::{ObserveTarget, Observer};
//!
//! // Every process on the host that runs a binary carrying skmem's hooks.
//! let mut obs = Observer::attach(ObserveTarget::default())?;
//! loop {
//!     for ev in obs.next_events(Duration::from_millis(500))? {
//!         println!("{}", ev.line());
//!     }
//!     for arena in obs.live_arenas()? {
//!         println!("{} {} {}", arena.pid, arena.name, arena.state);
//!     }
//! #   break;
//! }
//! # Ok::<(), skmem_xdp::observe::ObserveError>(())
//! ```
//!
//! # Which processes are observed
//!
//! Uprobes attach to a binary (an inode), not to a process: once attached,
//! every process running that binary, now or later, fires them. The
//! observer attaches to
//!
//! * every path in [`ObserveTarget::binaries`];
//! * with [`ObserveTarget::pid`], the binary of that process
//!   (`/proc/PID/exe`), with the uprobes scoped to that process and the
//!   tracepoints filtered to it;
//! * with [`ObserveTarget::scan`] (the default when no pid is given), every
//!   binary some process is running (`/proc/*/exe`) whose ELF symbol table
//!   has `skmem_hook_arena_create`; [`Observer::next_events`] rescans every
//!   [`RESCAN_INTERVAL`] for binaries not seen yet (each distinct file, by
//!   device and inode, is read once). A process that starts a new binary
//!   and creates arenas within that second is seen from its first event
//!   after the rescan; the probes then insert its arenas as they meet them
//!   (flagged `late`). Pass the binary explicitly to miss nothing.
//!
//! Hooks in a shared library (skmem built as a `cdylib`) are not found by
//! the scan; pass the library's path in `binaries`.
//!
//! # munmap behind the library's back
//!
//! The library unmaps a span first and fires its `unmap` hook right after,
//! on the same thread, so the `sys_enter_munmap` probe also sees the
//! library's own munmaps. [`Observer::next_events`] holds every munmap
//! event until the same thread's next event: an `unmap` hook of the same
//! span means it was the library's (the munmap event is dropped); anything
//! else, the process's exit, or [`MUNMAP_HOLD`] without news means it was
//! not (reported as `munmap`). Events stay in order: those after a held
//! munmap wait with it.
//!
//! # What observing costs
//!
//! The uprobes fire at the library's hooks, which run on lifecycle events
//! (create, map, unmap, redirect, defunct, bind...), never per packet: a
//! process that is not creating or mapping arenas pays nothing for them.
//! `sched_process_exit` and `xdp_exception` fire on those events only.
//! `sys_enter_munmap` is different: attaching any syscall tracepoint
//! makes *every* syscall of *every* process on the host take the kernel's
//! traced entry and exit while it is attached, whether or not the probe
//! then filters the call out. On the project's machine a trivial syscall
//! costs about 40 % more (`cargo xtask bench`, "Observation's cost to
//! a syscall" in BENCHMARKS.md): next to nothing for a spinning
//! forwarder, and by arithmetic about 2 % for one that wakes from
//! `poll(2)` for every small burst (two syscalls to a wake-up of ~9 µs
//! here), paid by every other process's syscalls too.
//! [`ObserveTarget::skip_munmap`] (`skmemctl watch --no-munmap`) leaves
//! that probe out, and with it the `munmap` events. No tracepoint outside
//! the syscall ones reports an unmap's range reliably:
//! `maple_tree:ma_write` does not trace exact-fit stores, such as the
//! hole a partial munmap leaves (kernel 6.18).
//!
//! # Pinning
//!
//! The live-arena map is pinned at `/sys/fs/bpf/skmem/arenas_PID_TOKEN`
//! (PID of the observer as it sees itself, TOKEN 64 random bits: two
//! observers in different PID namespaces may both be pid 1), mode 0600, in
//! a directory of mode 0700, so only root reads it. Before pinning, the
//! observer takes the owner mark `pin-arenas_PID_TOKEN`
//! ([`skmem::owner`]), a lock the kernel drops when the observer dies;
//! [`pinned_arenas`] reads every pin (what `skmemctl stats` shows) and
//! removes those whose mark nobody holds. Dropping the observer removes
//! its pin, then its mark.
//!
//! # Where things are
//!
//! The observer (attaching, reading the ring and the map) here; events,
//! live arenas and counters in `events`; the munmap filter in `munmap`;
//! pinning and reading pins in `pins`; finding hooked binaries in `scan`.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use aya::maps::{HashMap as BpfHashMap, MapData, PerCpuArray, RingBuf};
use aya::programs::uprobe::UProbeScope;
use aya::programs::{TracePoint, UProbe};
use aya::{include_bytes_aligned, Ebpf, EbpfLoader};
use serde::Serialize;
use skmem::owner::{self, unique_name, Owner, OwnerMark};
use tracing::{debug, info, warn};

pub use skmem_xdp_common::{
    event_name, kind_name, state_name, ArenaKey, Event, HookEvent, LiveArena, ObserveConfig,
    ObserveCounter, ARENAS_MAP, EVENTS_MAP, EVENT_EXIT, EVENT_MUNMAP, EVENT_XDP_EXCEPTION,
    LIVE_FLAG_LATE, OBSERVE_CONFIG_GLOBAL, OBSERVE_COUNTERS_MAP, STATE_ACTIVE, STATE_DEFUNCT,
    STATE_INACTIVE, STATE_NONE,
};

/// The observation object built from `ebpf/src/observe.rs` (empty when
/// the build ran with `AYA_BUILD_SKIP=1`).
static OBJECT: &[u8] = include_bytes_aligned!(env!("SKMEM_OBSERVE_OBJECT"));

/// Where pins live (bpffs, mounted by `cargo xtask setup`).
pub const PIN_DIR: &str = "/sys/fs/bpf/skmem";
/// File-name prefix of the live-arena pins in [`PIN_DIR`] (bpffs refuses
/// names with dots).
pub const PIN_PREFIX: &str = "arenas_";
/// How often [`Observer::next_events`] looks for new binaries.
pub const RESCAN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest a munmap event waits for the library's `unmap` hook.
pub const MUNMAP_HOLD: Duration = Duration::from_millis(250);
/// The symbol that marks a binary as carrying skmem's hooks.
pub const MARKER_SYMBOL: &str = "skmem_hook_arena_create";

/// The program of each hook, in [`HookEvent::ALL`] order.
const HOOK_PROGRAMS: [(&str, HookEvent); 9] = [
    ("hook_create", HookEvent::ArenaCreate),
    ("hook_destroy", HookEvent::ArenaDestroy),
    ("hook_map", HookEvent::ArenaMap),
    ("hook_unmap", HookEvent::ArenaUnmap),
    ("hook_redirect", HookEvent::ArenaRedirect),
    ("hook_defunct", HookEvent::ArenaDefunct),
    ("hook_reap", HookEvent::ArenaReap),
    ("hook_bind", HookEvent::ChannelBind),
    ("hook_unbind", HookEvent::ChannelUnbind),
];

/// The tracepoint programs: (program, category, name).
const TRACEPOINTS: [(&str, &str, &str); 3] = [
    ("tp_exit", "sched", "sched_process_exit"),
    ("tp_munmap", "syscalls", "sys_enter_munmap"),
    ("tp_xdp_exception", "xdp", "xdp_exception"),
];

/// Errors of the observer and of [`pinned_arenas`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObserveError {
    /// A fault injected at step `step` (tests, feature `failpoints` of
    /// skmem: [`skmem::failpoint`]).
    #[error("fault injected at {step}")]
    Injected {
        /// The step that failed.
        step: &'static str,
    },
    /// Not root: loading probes and reading the pins need it (Skywalk's
    /// root-only statistics answer EPERM too).
    #[error("{what} needs root (CAP_BPF, CAP_PERFMON): operation not permitted (EPERM)")]
    NotRoot {
        /// What was attempted.
        what: &'static str,
    },
    /// This build embeds no observation object (`AYA_BUILD_SKIP`).
    #[error("skmem-xdp was built without its eBPF programs (AYA_BUILD_SKIP was set)")]
    ObjectMissing,
    /// Loading, attaching, pinning or a map operation failed.
    #[error("{op}: {reason}")]
    Bpf {
        /// What was attempted.
        op: String,
        /// The kernel's reason (whole chain, verifier log included).
        reason: String,
        /// errno, if a system call failed.
        errno: Option<i32>,
    },
    /// No process to observe, or no binary carrying skmem's hooks.
    #[error("{0}")]
    NoTarget(String),
    /// A file-system operation failed.
    #[error("{op}: {source}")]
    Io {
        /// What was attempted.
        op: String,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl ObserveError {
    /// The errno behind the error, if any (EPERM for [`ObserveError::NotRoot`]).
    pub fn errno(&self) -> Option<i32> {
        match self {
            ObserveError::NotRoot { .. } => Some(libc::EPERM),
            ObserveError::Bpf { errno, .. } => *errno,
            ObserveError::Io { source, .. } => source.raw_os_error(),
            ObserveError::ObjectMissing | ObserveError::NoTarget(_) => None,
            ObserveError::Injected { .. } => Some(libc::ENOMEM),
        }
    }
}

fn bpf_err(op: impl Into<String>, err: &(dyn std::error::Error + 'static)) -> ObserveError {
    ObserveError::Bpf {
        op: op.into(),
        reason: crate::reason(err),
        errno: crate::errno(err),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// What to observe.
#[derive(Debug, Clone, Default)]
pub struct ObserveTarget {
    /// Only this process (its binary, uprobes scoped to it, tracepoints
    /// filtered to it). `None`: every process.
    pub pid: Option<i32>,
    /// Binaries (or shared libraries) carrying skmem's hooks to attach to.
    pub binaries: Vec<PathBuf>,
    /// Also scan `/proc/*/exe` for binaries with the hooks, now and every
    /// [`RESCAN_INTERVAL`]. `None`: scan when `pid` is `None`.
    pub scan: Option<bool>,
    /// Leave the `syscalls:sys_enter_munmap` probe out: no `munmap` events
    /// (an unmap behind the library's back goes unseen), and no syscall of
    /// any process pays for syscall tracing while the observer runs (see
    /// "What observing costs" in the module docs).
    pub skip_munmap: bool,
}

impl ObserveTarget {
    /// Every process on the host (scan on).
    pub fn all() -> Self {
        Self::default()
    }

    /// Only `binaries`, no scan.
    pub fn binaries(binaries: impl IntoIterator<Item = PathBuf>) -> Self {
        Self {
            pid: None,
            binaries: binaries.into_iter().collect(),
            scan: Some(false),
            skip_munmap: false,
        }
    }

    fn scans(&self) -> bool {
        self.scan.unwrap_or(self.pid.is_none())
    }
}

mod events;
mod munmap;
mod pins;
mod scan;

pub use events::*;
use munmap::*;
pub use pins::*;
pub use scan::*;

/// The probes, loaded and attached; dropping detaches them and removes the
/// pin.
pub struct Observer {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    arenas: BpfHashMap<MapData, ArenaKey, LiveArena>,
    counters: PerCpuArray<MapData, u64>,
    pin: Option<PathBuf>,
    /// Says the pin's observer lives; released after the pin is removed.
    mark: Option<OwnerMark>,
    target: ObserveTarget,
    /// (dev, ino) of every file looked at, with or without hooks.
    seen_files: HashSet<(u64, u64)>,
    attached: Vec<PathBuf>,
    last_scan: Instant,
    held: MunmapFilter,
    realtime_offset_ns: i64,
}

impl fmt::Debug for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observer")
            .field("target", &self.target)
            .field("attached", &self.attached)
            .field("pin", &self.pin)
            .finish_non_exhaustive()
    }
}

/// One step that takes a resource: may fail in tests
/// ([`skmem::failpoint`]), never otherwise.
fn failpoint(step: &'static str) -> Result<(), ObserveError> {
    skmem::failpoint::step(step).map_err(|_| ObserveError::Injected { step })
}

fn clock_ns(clock: libc::clockid_t) -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

impl Observer {
    /// Loads the probes, attaches the tracepoints and the uprobes to the
    /// target's binaries, and pins the live-arena map. Needs root.
    pub fn attach(target: ObserveTarget) -> Result<Observer, ObserveError> {
        if !is_root() {
            return Err(ObserveError::NotRoot {
                what: "observing skmem with eBPF",
            });
        }
        if OBJECT.is_empty() {
            return Err(ObserveError::ObjectMissing);
        }
        let config = ObserveConfig {
            pid: target.pid.map_or(0, |p| p as u32),
            _reserved: 0,
        };
        failpoint("observer load")?;
        let mut ebpf = EbpfLoader::new()
            .override_global(OBSERVE_CONFIG_GLOBAL, &config, true)
            .load(OBJECT)
            .map_err(|e| bpf_err("loading the observation programs", &e))?;
        for (name, _) in HOOK_PROGRAMS {
            let prog: &mut UProbe = program(&mut ebpf, name)?;
            prog.load()
                .map_err(|e| bpf_err(format!("loading {name}"), &e))?;
        }
        for (name, category, tp) in TRACEPOINTS {
            if target.skip_munmap && category == "syscalls" {
                continue;
            }
            let prog: &mut TracePoint = program(&mut ebpf, name)?;
            prog.load()
                .map_err(|e| bpf_err(format!("loading {name}"), &e))?;
            failpoint("tracepoint attach")?;
            prog.attach(category, tp)
                .map_err(|e| bpf_err(format!("attaching {name} to {category}:{tp}"), &e))?;
        }
        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name).ok_or_else(|| ObserveError::Bpf {
                op: format!("opening map {name}"),
                reason: "not in the object".into(),
                errno: None,
            })
        };
        let events =
            RingBuf::try_from(take(&mut ebpf, EVENTS_MAP)?).map_err(|e| bpf_err(EVENTS_MAP, &e))?;
        let arenas_map = take(&mut ebpf, ARENAS_MAP)?;
        let counters = PerCpuArray::try_from(take(&mut ebpf, OBSERVE_COUNTERS_MAP)?)
            .map_err(|e| bpf_err(OBSERVE_COUNTERS_MAP, &e))?;

        failpoint("pin")?;
        let (pin, mark) = pin_map(&arenas_map)?;
        let arenas = BpfHashMap::try_from(arenas_map).map_err(|e| bpf_err(ARENAS_MAP, &e))?;

        let mut obs = Observer {
            ebpf,
            events,
            arenas,
            counters,
            pin: Some(pin),
            mark: Some(mark),
            target: target.clone(),
            seen_files: HashSet::new(),
            attached: Vec::new(),
            last_scan: Instant::now(),
            held: MunmapFilter::default(),
            realtime_offset_ns: clock_ns(libc::CLOCK_REALTIME) - clock_ns(libc::CLOCK_MONOTONIC),
        };
        let mut explicit = target.binaries.clone();
        if let Some(pid) = target.pid {
            let exe = PathBuf::from(format!("/proc/{pid}/exe"));
            if fs::metadata(&exe).is_err() {
                return Err(ObserveError::NoTarget(format!("no process with pid {pid}")));
            }
            explicit.push(exe);
        }
        for path in &explicit {
            let meta = fs::metadata(path).map_err(|source| ObserveError::Io {
                op: format!("reading {}", path.display()),
                source,
            })?;
            if !has_hooks(path) {
                return Err(ObserveError::NoTarget(format!(
                    "{} has no `{MARKER_SYMBOL}` symbol: not linked with skmem (or stripped)",
                    path.display()
                )));
            }
            obs.seen_files.insert((meta.dev(), meta.ino()));
            obs.attach_binary(path)?;
        }
        if target.scans() {
            obs.rescan();
        }
        info!(attached = ?obs.attached, pin = ?obs.pin, "observer attached");
        Ok(obs)
    }

    fn attach_binary(&mut self, path: &Path) -> Result<(), ObserveError> {
        let scope = match self
            .target
            .pid
            .and_then(|p| std::num::NonZeroU32::new(p as u32))
        {
            Some(pid) => UProbeScope::OneProcess(pid),
            None => UProbeScope::AllProcesses,
        };
        for (name, event) in HOOK_PROGRAMS {
            failpoint("uprobe attach")?;
            let prog: &mut UProbe = program(&mut self.ebpf, name)?;
            prog.attach(event.symbol(), path, scope).map_err(|e| {
                bpf_err(
                    format!("attaching {name} to {}:{}", path.display(), event.symbol()),
                    &e,
                )
            })?;
        }
        debug!(path = %path.display(), "uprobes attached");
        self.attached.push(path.to_owned());
        Ok(())
    }

    /// Looks for binaries with skmem's hooks among the running processes'
    /// and attaches to the new ones. Done by [`Observer::next_events`] every
    /// [`RESCAN_INTERVAL`] when the target scans.
    pub fn rescan(&mut self) {
        self.last_scan = Instant::now();
        for (exe, key) in running_binaries() {
            if !self.seen_files.insert(key) {
                continue;
            }
            if !has_hooks(&exe) {
                continue;
            }
            // Prefer the file's own path (for display) when it still names
            // the same file.
            let path = fs::read_link(&exe)
                .ok()
                .filter(|p| {
                    fs::metadata(p)
                        .map(|m| (m.dev(), m.ino()) == key)
                        .unwrap_or(false)
                })
                .unwrap_or(exe);
            if let Err(e) = self.attach_binary(&path) {
                warn!(path = %path.display(), error = %e, "attaching to a binary with skmem hooks failed");
            } else {
                info!(path = %path.display(), "found a binary with skmem hooks");
            }
        }
    }

    /// The binaries the uprobes are attached to.
    pub fn binaries(&self) -> &[PathBuf] {
        &self.attached
    }

    /// Where the live-arena map is pinned.
    pub fn pin_path(&self) -> Option<&Path> {
        self.pin.as_deref()
    }

    /// The events that arrived, waiting up to `timeout` for the first one.
    /// Rescans for binaries when due. Empty on timeout.
    pub fn next_events(&mut self, timeout: Duration) -> Result<Vec<ObservedEvent>, ObserveError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.target.scans() && self.last_scan.elapsed() >= RESCAN_INTERVAL {
                self.rescan();
            }
            self.drain();
            let out = self.held.release(Instant::now());
            if !out.is_empty() {
                return Ok(out);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(out);
            }
            let mut wait = deadline - now;
            if let Some(until) = self.held.next_deadline() {
                wait = wait.min(until.saturating_duration_since(now) + Duration::from_millis(1));
            }
            if self.target.scans() {
                wait = wait.min(RESCAN_INTERVAL.saturating_sub(self.last_scan.elapsed()));
            }
            self.wait_readable(wait)?;
        }
    }

    fn wait_readable(&self, wait: Duration) -> Result<(), ObserveError> {
        let mut pfd = libc::pollfd {
            fd: self.events.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = wait.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, ms.max(1)) };
        if r < 0 {
            let err = io::Error::last_os_error();
            if err.kind() != io::ErrorKind::Interrupted {
                return Err(ObserveError::Io {
                    op: "polling the event ring buffer".into(),
                    source: err,
                });
            }
        }
        Ok(())
    }

    /// Moves every record out of the ring buffer into `held`, resolving
    /// pending munmaps.
    fn drain(&mut self) {
        while let Some(item) = self.events.next() {
            if item.len() < std::mem::size_of::<Event>() {
                continue;
            }
            // SAFETY: the record holds at least an Event, which is POD;
            // read_unaligned copes with any alignment.
            let raw: Event = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
            drop(item);
            let ev = ObservedEvent::decode(&raw, self.realtime_offset_ns);
            self.held.push(ev, Instant::now());
        }
    }

    /// Every arena in the live map, by pid then id.
    pub fn live_arenas(&self) -> Result<Vec<ArenaInfo>, ObserveError> {
        read_arenas(&self.arenas)
    }

    /// The observation counters, summed over CPUs.
    pub fn counters(&self) -> Result<ObserveCounters, ObserveError> {
        let read = |c: ObserveCounter| -> Result<u64, ObserveError> {
            let v = self
                .counters
                .get(&(c as u32), 0)
                .map_err(|e| bpf_err(format!("reading counter {c:?}"), &e))?;
            Ok(v.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok(ObserveCounters {
            ring_full: read(ObserveCounter::RingFull)?,
            read_failed: read(ObserveCounter::ReadFailed)?,
            table_full: read(ObserveCounter::TableFull)?,
        })
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        if let Some(pin) = self.pin.take() {
            if let Err(e) = fs::remove_file(&pin) {
                warn!(pin = %pin.display(), error = %e, "removing the pin failed");
            }
            // The last observer out removes the directory too; while another
            // observer's pin is in it, this fails harmlessly.
            if let Some(dir) = pin.parent() {
                let _ = fs::remove_dir(dir);
            }
        }
        drop(self.mark.take());
    }
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, ObserveError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let prog = ebpf.program_mut(name).ok_or_else(|| ObserveError::Bpf {
        op: format!("finding program {name}"),
        reason: "not in the object".into(),
        errno: None,
    })?;
    prog.try_into().map_err(|e| bpf_err(name.to_owned(), &e))
}

fn read_arenas(
    map: &BpfHashMap<MapData, ArenaKey, LiveArena>,
) -> Result<Vec<ArenaInfo>, ObserveError> {
    let mut out = Vec::new();
    for entry in map.iter() {
        match entry {
            Ok((_, v)) => out.push(ArenaInfo::from_live(&v)),
            // An entry deleted while iterating: skip it.
            Err(aya::maps::MapError::KeyNotFound) => continue,
            Err(e) => return Err(bpf_err(format!("reading {ARENAS_MAP}"), &e)),
        }
    }
    out.sort_by_key(|a| (a.pid, a.arena_id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(human_bytes(100), "100B");
        assert_eq!(human_bytes(2 << 20), "2MiB");
        assert_eq!(human_bytes(1536), "1.5KiB");
        assert_eq!(utc_time(3_723_000_001_000), "01:02:03.000001");
        assert_eq!(errno_name(19), "ENODEV (19)");
    }

    fn ev(code: u32, pid: u32, tid: u32, span: u64) -> ObservedEvent {
        // SAFETY: Event is POD; all zeros is valid.
        let mut raw: Event = unsafe { std::mem::zeroed() };
        raw.code = code;
        raw.pid = pid;
        raw.tid = tid;
        raw.span_addr = span;
        ObservedEvent::decode(&raw, 0)
    }

    #[test]
    fn library_munmaps_are_dropped_others_reported_in_order() {
        let unmap = HookEvent::ArenaUnmap as u32;
        let map = HookEvent::ArenaMap as u32;
        let t = Instant::now();
        let mut f = MunmapFilter::default();
        // The library's own: munmap then unmap of the same span, same tid.
        f.push(ev(EVENT_MUNMAP, 1, 1, 0x1000), t);
        f.push(ev(map, 2, 2, 0), t);
        assert!(f.release(t).is_empty(), "waits behind the pending munmap");
        f.push(ev(unmap, 1, 1, 0x1000), t);
        let out: Vec<_> = f.release(t).iter().map(|e| e.event).collect();
        assert_eq!(out, ["map", "unmap"]);
        // Behind the back: the same thread goes on with something else.
        f.push(ev(EVENT_MUNMAP, 1, 1, 0x2000), t);
        f.push(ev(map, 1, 1, 0x3000), t);
        let out: Vec<_> = f.release(t).iter().map(|e| e.event).collect();
        assert_eq!(out, ["munmap", "map"]);
        // Or nothing comes: released after the hold.
        f.push(ev(EVENT_MUNMAP, 1, 1, 0x2000), t);
        assert!(f.release(t).is_empty());
        assert_eq!(f.release(t + MUNMAP_HOLD).len(), 1);
        // Or the process exits.
        f.push(ev(EVENT_MUNMAP, 1, 1, 0x2000), t);
        f.push(ev(EVENT_EXIT, 1, 5, 0), t);
        assert_eq!(f.release(t).len(), 2);
        assert!(ev(EVENT_MUNMAP, 1, 1, 1)
            .details()
            .contains("behind the library's back"));
    }
}
