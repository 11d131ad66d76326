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
        }
    }

    fn scans(&self) -> bool {
        self.scan.unwrap_or(self.pid.is_none())
    }
}

/// One event, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObservedEvent {
    /// Wall-clock time, ns since the Unix epoch.
    pub time_unix_ns: u64,
    /// `create`, `destroy`, `map`, `unmap`, `redirect`, `defunct`, `reap`,
    /// `bind`, `unbind`, `exit`, `munmap`, `xdp-exception`.
    pub event: &'static str,
    /// The event code (see [`event_name`]).
    pub code: u32,
    /// tgid.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Arena id (0: none).
    pub arena_id: u64,
    /// Arena name (empty: none).
    pub arena: String,
    /// `nexus`, `necp`, `system` (`?` when no arena).
    pub kind: &'static str,
    /// Span base.
    pub span_addr: u64,
    /// Span size.
    pub span_size: u64,
    /// Hook flags.
    pub flags: u32,
    /// Hook errno (0: success).
    pub error: i32,
    /// The arena's state after the event (`-`: gone).
    pub state: &'static str,
    /// The arena's live mappings after the event.
    pub map_count: u32,
    /// Hooks: total bytes of the arena's regions at the event (0 for
    /// destroy and for the other events).
    pub mem_total: u64,
    /// Hooks: bytes in use in the arena's regions at the event.
    pub mem_inuse: u64,
    /// Hooks: the event's number in its arena's sequence (create is 0):
    /// consecutive for an arena unless events were lost.
    pub seq: u64,
    /// Hooks about a mapping another process holds (a mapper the owner,
    /// `pid`, lends the arena to): the mapper's pid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mapper_pid: Option<u32>,
    /// Exit: live arenas the process still had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_arenas: Option<u32>,
    /// Exit: live mappings the process still had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_mappings: Option<u32>,
    /// munmap: address asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub munmap_addr: Option<u64>,
    /// munmap: length asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub munmap_len: Option<u64>,
    /// xdp_exception: program id, action, ifindex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xdp_prog_id: Option<u32>,
    /// xdp_exception: action code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xdp_act: Option<u32>,
    /// xdp_exception: interface index.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xdp_ifindex: Option<i32>,
    /// The raw record.
    #[serde(skip)]
    pub raw: Event,
}

fn name_str(name: &[u8]) -> String {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

fn errno_name(e: i32) -> String {
    let known = match e {
        libc::ENODEV => "ENODEV",
        libc::EALREADY => "EALREADY",
        libc::EBUSY => "EBUSY",
        libc::ENXIO => "ENXIO",
        libc::EINVAL => "EINVAL",
        libc::ENOMEM => "ENOMEM",
        libc::EPERM => "EPERM",
        libc::ENOSPC => "ENOSPC",
        _ => "",
    };
    if known.is_empty() {
        format!("errno {e}")
    } else {
        format!("{known} ({e})")
    }
}

fn xdp_act_name(act: u32) -> &'static str {
    match act {
        0 => "ABORTED",
        1 => "DROP",
        2 => "PASS",
        3 => "TX",
        4 => "REDIRECT",
        _ => "?",
    }
}

impl ObservedEvent {
    /// Decodes a raw record; `realtime_offset_ns` is CLOCK_REALTIME minus
    /// CLOCK_MONOTONIC.
    pub fn decode(raw: &Event, realtime_offset_ns: i64) -> Self {
        let exit = raw.code == EVENT_EXIT;
        let munmap = raw.code == EVENT_MUNMAP;
        let xdp = raw.code == EVENT_XDP_EXCEPTION;
        ObservedEvent {
            time_unix_ns: (raw.time_ns as i64).saturating_add(realtime_offset_ns) as u64,
            event: event_name(raw.code),
            code: raw.code,
            pid: raw.pid,
            tid: raw.tid,
            arena_id: raw.arena_id,
            arena: name_str(&raw.name),
            kind: kind_name(raw.kind),
            span_addr: raw.span_addr,
            span_size: raw.span_size,
            flags: raw.flags,
            error: raw.error,
            state: state_name(raw.state),
            map_count: raw.map_count,
            mem_total: raw.mem_total,
            mem_inuse: raw.mem_inuse,
            seq: raw.seq,
            mapper_pid: (raw.subject_pid != 0 && raw.subject_pid != raw.pid)
                .then_some(raw.subject_pid),
            exit_arenas: exit.then_some(raw.exit_arenas),
            exit_mappings: exit.then_some(raw.exit_mappings),
            munmap_addr: munmap.then_some(raw.munmap_addr),
            munmap_len: munmap.then_some(raw.munmap_len),
            xdp_prog_id: xdp.then_some(raw.xdp_prog_id),
            xdp_act: xdp.then_some(raw.xdp_act),
            xdp_ifindex: xdp.then_some(raw.xdp_ifindex),
            raw: *raw,
        }
    }

    /// The hook event, for hook events.
    pub fn hook(&self) -> Option<HookEvent> {
        HookEvent::from_u32(self.code)
    }

    /// Event-specific details for display, e.g. `span=0x7f..+2.1MiB` or
    /// `refused: ENODEV (19)`.
    pub fn details(&self) -> String {
        let mut d = Vec::new();
        let span = || format!("span={:#x}+{}", self.span_addr, human_bytes(self.span_size));
        match self.code {
            EVENT_EXIT => {
                d.push(format!(
                    "process gone with {} live arena(s), {} mapping(s)",
                    self.raw.exit_arenas, self.raw.exit_mappings
                ));
                if self.span_addr != 0 {
                    d.push(span());
                }
            }
            EVENT_MUNMAP => {
                d.push(format!(
                    "munmap({:#x}, {}) behind the library's back",
                    self.raw.munmap_addr, self.raw.munmap_len
                ));
                d.push(span());
            }
            EVENT_XDP_EXCEPTION => d.push(format!(
                "prog_id={} action={} ifindex={}",
                self.raw.xdp_prog_id,
                xdp_act_name(self.raw.xdp_act),
                self.raw.xdp_ifindex
            )),
            _ => {
                if self.span_size != 0 {
                    d.push(span());
                }
                if let Some(m) = self.mapper_pid {
                    d.push(format!("mapper={m}"));
                }
                match self.hook() {
                    Some(HookEvent::ArenaRedirect) if self.error == 0 && self.flags & 1 != 0 => {
                        d.push("arena now inactive".into())
                    }
                    Some(HookEvent::ArenaUnmap) => {
                        if self.flags & 2 != 0 {
                            d.push("mapper gone".into());
                        }
                        if self.flags & 1 != 0 {
                            d.push("arena now inactive".into());
                        }
                    }
                    Some(HookEvent::ArenaReap) => {
                        d.push(if self.flags & 1 != 0 { "purge" } else { "trim" }.into())
                    }
                    Some(HookEvent::ChannelBind) => d.push(format!(
                        "queue={} zero-copy={}",
                        self.flags >> 1,
                        self.flags & 1 != 0
                    )),
                    Some(HookEvent::ChannelUnbind) => d.push(format!("queue={}", self.flags >> 1)),
                    _ => {}
                }
                if self.error != 0 {
                    d.push(format!("refused: {}", errno_name(self.error)));
                }
            }
        }
        if self.code != EVENT_XDP_EXCEPTION {
            d.push(format!("state={} maps={}", self.state, self.map_count));
        }
        d.join(" ")
    }

    /// One line: time (UTC), pid, arena, event, details.
    pub fn line(&self) -> String {
        let arena = if self.arena.is_empty() {
            "-".to_owned()
        } else {
            format!("{}#{}", self.arena, self.arena_id)
        };
        format!(
            "{} pid={:<7} {:<32} {:<13} {}",
            utc_time(self.time_unix_ns),
            self.pid,
            arena,
            self.event,
            self.details()
        )
    }
}

/// `HH:MM:SS.uuuuuu` (UTC) of a Unix time in ns.
pub fn utc_time(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let micros = (unix_ns % 1_000_000_000) / 1000;
    let day = secs % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        day / 3600,
        day / 60 % 60,
        day % 60,
        micros
    )
}

/// `1.5MiB`, `12KiB`, `100B`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n}B")
    } else if v.fract() == 0.0 {
        format!("{v:.0}{}", UNITS[u])
    } else {
        format!("{v:.1}{}", UNITS[u])
    }
}

/// A live arena, as the probes keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArenaInfo {
    /// Owner's pid (tgid).
    pub pid: u32,
    /// Process-unique id.
    pub arena_id: u64,
    /// `skmem.KIND.NAME`.
    pub name: String,
    /// `nexus`, `necp`, `system`.
    pub kind: &'static str,
    /// `ACTIVE`, `INACTIVE`, `DEFUNCT`.
    pub state: &'static str,
    /// Live mappings.
    pub map_count: u32,
    /// Size of a mapping (0 with none).
    pub map_size: u64,
    /// Total bytes of the arena's regions, as its owner published them at
    /// its last hook event.
    pub mem_total: u64,
    /// Bytes in use in the arena's regions, as of the same event.
    pub mem_inuse: u64,
    /// Pids holding mappings (one per mapping, at most 8).
    pub mapped_pids: Vec<u32>,
    /// Last event seen.
    pub last_event: &'static str,
    /// First seen after its creation (the observer attached late): counts
    /// start from then.
    pub late: bool,
}

impl ArenaInfo {
    /// Decodes a map entry.
    pub fn from_live(v: &LiveArena) -> Self {
        ArenaInfo {
            pid: v.pid,
            arena_id: v.arena_id,
            name: name_str(&v.name),
            kind: kind_name(v.kind),
            state: state_name(v.state),
            map_count: v.map_count,
            map_size: v.map_size,
            mem_total: v.mem_total,
            mem_inuse: v.mem_inuse,
            mapped_pids: v.pids.iter().copied().filter(|&p| p != 0).collect(),
            last_event: event_name(v.last_event),
            late: v.flags & LIVE_FLAG_LATE != 0,
        }
    }
}

/// Observation counters summed over CPUs (see [`ObserveCounter`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ObserveCounters {
    /// Events lost: ring buffer full.
    pub ring_full: u64,
    /// Hook payloads that could not be read.
    pub read_failed: u64,
    /// Map updates that failed for lack of room.
    pub table_full: u64,
}

/// A munmap or other event waiting for its verdict (see the module docs).
struct Held {
    ev: ObservedEvent,
    /// Munmap not yet resolved: until then it and all later events wait.
    pending_until: Option<Instant>,
    /// The library's own munmap: dropped.
    drop: bool,
}

/// Holds munmap events until the library's `unmap` hook (or anything else
/// from the same thread, the process's exit or [`MUNMAP_HOLD`]) tells
/// whether they were the library's own; keeps every event in order.
#[derive(Default)]
struct MunmapFilter {
    held: VecDeque<Held>,
}

impl MunmapFilter {
    fn push(&mut self, ev: ObservedEvent, now: Instant) {
        if ev.code == EVENT_MUNMAP {
            self.held.push_back(Held {
                ev,
                pending_until: Some(now + MUNMAP_HOLD),
                drop: false,
            });
            return;
        }
        let library_unmap = ev.hook() == Some(HookEvent::ArenaUnmap) && ev.error == 0;
        for h in self.held.iter_mut() {
            if h.pending_until.is_none() || h.ev.pid != ev.pid {
                continue;
            }
            if ev.code == EVENT_EXIT {
                h.pending_until = None;
            } else if h.ev.tid == ev.tid {
                h.pending_until = None;
                if library_unmap && ev.span_addr == h.ev.span_addr {
                    h.drop = true;
                }
            }
        }
        self.held.push_back(Held {
            ev,
            pending_until: None,
            drop: false,
        });
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.held.front().and_then(|h| h.pending_until)
    }

    fn release(&mut self, now: Instant) -> Vec<ObservedEvent> {
        let mut out = Vec::new();
        while let Some(front) = self.held.front() {
            if front.pending_until.is_some_and(|t| now < t) {
                break;
            }
            let h = self.held.pop_front().expect("front exists");
            if !h.drop {
                out.push(h.ev);
            }
        }
        out
    }
}

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
            let prog: &mut TracePoint = program(&mut ebpf, name)?;
            prog.load()
                .map_err(|e| bpf_err(format!("loading {name}"), &e))?;
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

/// The owner mark of the pin named `file_name`.
fn mark_of(file_name: &str) -> String {
    format!("pin-{file_name}")
}

fn pin_map(map: &aya::maps::Map) -> Result<(PathBuf, OwnerMark), ObserveError> {
    let dir = Path::new(PIN_DIR);
    let io_err = |op: String| move |source| ObserveError::Io { op, source };
    let bpffs = Path::new("/sys/fs/bpf");
    if !is_bpffs(bpffs) {
        return Err(ObserveError::NoTarget(
            "bpffs is not mounted at /sys/fs/bpf: run `cargo xtask setup` or \
             `mount -t bpf bpf /sys/fs/bpf`"
                .into(),
        ));
    }
    fs::create_dir_all(dir).map_err(io_err(format!("creating {PIN_DIR}")))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("chmod 0700 {PIN_DIR}")))?;
    let name = unique_name(&format!("{PIN_PREFIX}{}_", std::process::id()));
    // The mark first: a reader that finds the pin finds its mark held.
    let mark = OwnerMark::take(&mark_of(&name))
        .map_err(io_err(format!("taking the owner mark of {name}")))?;
    let path = dir.join(&name);
    map.pin(&path)
        .map_err(|e| bpf_err(format!("pinning {ARENAS_MAP} at {}", path.display()), &e))?;
    if let Err(e) = fs::set_permissions(&path, fs::Permissions::from_mode(0o600)) {
        let _ = fs::remove_file(&path);
        return Err(ObserveError::Io {
            op: format!("chmod 0600 {}", path.display()),
            source: e,
        });
    }
    Ok((path, mark))
}

fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: zeroed statfs is a valid out-buffer; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    r == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// `/proc/PID/exe` of every process, with the (dev, ino) of the file.
fn running_binaries() -> Vec<(PathBuf, (u64, u64))> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let exe = entry.path().join("exe");
        // Kernel threads have no exe; processes may be gone.
        if let Ok(meta) = fs::metadata(&exe) {
            out.push((exe, (meta.dev(), meta.ino())));
        }
    }
    out
}

/// Whether the ELF file at `path` defines [`MARKER_SYMBOL`].
pub fn has_hooks(path: &Path) -> bool {
    use object::{Object as _, ObjectSymbol as _};
    let mut magic = [0u8; 4];
    let ok = fs::File::open(path)
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut magic))
        .is_ok();
    if !ok || magic != *b"\x7fELF" {
        return false;
    }
    let Ok(data) = fs::read(path) else {
        return false;
    };
    let Ok(file) = object::File::parse(&*data) else {
        return false;
    };
    file.symbols()
        .chain(file.dynamic_symbols())
        .any(|s| s.is_definition() && s.name() == Ok(MARKER_SYMBOL))
}

/// What [`pinned_arenas`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PinnedArenas {
    /// The live pins read (one per running observer).
    pub pins: Vec<PathBuf>,
    /// Every live arena, merged over the pins (an arena seen by two
    /// observers is listed once), by pid then id.
    pub arenas: Vec<ArenaInfo>,
    /// Pins of observers that died without cleaning up (SIGKILL), removed
    /// by this call.
    pub removed: Vec<PathBuf>,
}

/// Whether the observer that pinned `name` lives: its owner mark is held.
/// A pin without a mark (made before marks existed) is judged by the pid
/// in its name, which is right only outside PID namespaces.
fn observer_alive(name: &str) -> bool {
    match owner::owner_of(&mark_of(name)) {
        Ok(Some(Owner::Alive(_))) => true,
        Ok(Some(Owner::Gone)) => false,
        Ok(None) | Err(_) => name
            .strip_prefix(PIN_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_none_or(|pid| Path::new(&format!("/proc/{pid}")).exists()),
    }
}

/// Reads every pinned live-arena map (one per running observer), removing
/// the pins of observers that died without cleaning up. Root only: a
/// non-root caller gets [`ObserveError::NotRoot`] (EPERM).
pub fn pinned_arenas() -> Result<PinnedArenas, ObserveError> {
    if !is_root() {
        return Err(ObserveError::NotRoot {
            what: "reading skmem's live arena statistics",
        });
    }
    let mut out = PinnedArenas::default();
    let dir = match fs::read_dir(PIN_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(ObserveError::Io {
                op: format!("listing {PIN_DIR}"),
                source,
            })
        }
    };
    let mut seen = HashSet::new();
    let mut paths: Vec<PathBuf> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PIN_PREFIX))
        })
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !observer_alive(name) {
            debug!(pin = %path.display(), "removing the pin of a dead observer");
            if fs::remove_file(&path).is_ok() {
                let _ = owner::remove_orphan(&mark_of(name));
                out.removed.push(path);
            }
            continue;
        }
        let data = match MapData::from_pin(&path) {
            Ok(d) => d,
            Err(e) => {
                // Removed between listing and opening: its observer stopped.
                if crate::errno(&e) == Some(libc::ENOENT) {
                    continue;
                }
                return Err(bpf_err(format!("opening {}", path.display()), &e));
            }
        };
        let map = BpfHashMap::<_, ArenaKey, LiveArena>::try_from(aya::maps::Map::HashMap(data))
            .map_err(|e| bpf_err(format!("opening {}", path.display()), &e))?;
        for a in read_arenas(&map)? {
            if seen.insert((a.pid, a.arena_id)) {
                out.arenas.push(a);
            }
        }
        out.pins.push(path);
    }
    out.arenas.sort_by_key(|a| (a.pid, a.arena_id));
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
