//! What the observer reports: events as the probes saw them, decoded and
//! rendered, the live arenas, and the probes' own counters.

use super::*;

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

pub(super) fn name_str(name: &[u8]) -> String {
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

pub(super) fn errno_name(e: i32) -> String {
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

pub(super) fn xdp_act_name(act: u32) -> &'static str {
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
