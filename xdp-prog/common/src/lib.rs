//! Layouts shared by skmem's XDP program (`skmem-xdp-ebpf`, built for
//! `bpfel-unknown-none`) and its user-space loader (`skmem-xdp`).
//!
//! Everything here is `#[repr(C)]`, `Copy` and free of padding the compiler
//! could choose, so both sides agree on every byte. Multi-byte fields are in
//! **host byte order** (little-endian: the BPF target is `bpfel`, matching
//! the x86-64/aarch64 hosts this runs on); the program converts the
//! packet's network-order fields before comparing.
//!
//! With the `user` feature the types implement `aya::Pod`, so the loader can
//! set them as globals and read them from maps. The eBPF crate never enables
//! that feature and so never depends on aya.
#![no_std]
#![warn(missing_docs)]

/// Name of the XDP program in the object file.
pub const PROGRAM_NAME: &str = "skmem_xdp";
/// Name of the `BPF_MAP_TYPE_XSKMAP` that maps an RX queue index to an
/// AF_XDP socket.
pub const XSKS_MAP: &str = "XSKS";
/// Entries of [`XSKS_MAP`]: the highest RX queue index a socket can be
/// registered for, plus one.
pub const XSKS_MAX_ENTRIES: u32 = 64;
/// Name of the `BPF_MAP_TYPE_PERCPU_ARRAY` of `u64` counters, indexed by
/// [`XdpCounter`].
pub const COUNTERS_MAP: &str = "COUNTERS";
/// Name of the read-only global (in `.rodata`) holding the [`XdpFilter`],
/// set by the loader before the program is loaded.
pub const FILTER_GLOBAL: &str = "FILTER";
/// Name of the read-only global (in `.rodata`, a `u32`) holding the
/// [`XdpAction`] applied to matching frames, set by the loader before the
/// program is loaded.
pub const ACTION_GLOBAL: &str = "ACTION";

/// What the program does with a frame that matches the filter. Chosen
/// before load (the read-only global [`ACTION_GLOBAL`]), so the verifier
/// sees a constant and prunes the other paths.
///
/// [`XdpAction::Redirect`] is the program's purpose; the other two make it
/// the in-kernel ceilings the packets-per-second harness compares AF_XDP
/// programs against: the most a CPU can drop (rxdrop's ceiling) or send
/// back with swapped MACs (l2fwd's ceiling) without leaving XDP.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum XdpAction {
    /// Redirect to the AF_XDP socket registered for the frame's RX queue
    /// (`XDP_PASS` when none is).
    #[default]
    Redirect = 0,
    /// Drop (`XDP_DROP`), counted as [`XdpCounter::Dropped`].
    Drop = 1,
    /// Swap the Ethernet destination and source and send the frame back
    /// out of the interface it came in on (`XDP_TX`), counted as
    /// [`XdpCounter::Transmitted`]. Frames shorter than an Ethernet header
    /// are passed (and counted [`XdpCounter::Filtered`]).
    Tx = 2,
    /// Drop every other matching frame (counted as
    /// [`XdpCounter::Dropped`]) and redirect the rest as
    /// [`XdpAction::Redirect`] does: the first frame goes through, the
    /// second is dropped, and so on (the kernel's `xsk_xdp_drop`). The
    /// count is the program's, over every CPU.
    DropHalf = 3,
    /// Write [`XDP_METADATA_LEN`] bytes of metadata in front of each
    /// matching frame (`bpf_xdp_adjust_meta`) — a little-endian `u64`,
    /// the frame's number in the program's count from 0, then zeros —
    /// and redirect it (the kernel's `xsk_xdp_populate_metadata`). An
    /// AF_XDP socket receives the metadata just in front of the frame's
    /// data. A frame the helper refuses is dropped and counted
    /// [`XdpCounter::Aborted`].
    Metadata = 4,
    /// Move the end of each matching frame by [`TAIL_DELTA_GLOBAL`] bytes
    /// (`bpf_xdp_adjust_tail`: shrink when negative, grow when positive;
    /// grown bytes are zero) and redirect it (the kernel's
    /// `xsk_xdp_adjust_tail`). A frame the helper refuses is dropped,
    /// counted [`XdpCounter::Aborted`], and the helper's error kept in
    /// [`VARIANT_STATE_MAP`] slot [`STATE_TAIL_ERROR`].
    AdjustTail = 5,
}

impl XdpAction {
    /// The value of [`ACTION_GLOBAL`] for this action.
    pub const fn code(self) -> u32 {
        self as u32
    }
}

/// Bytes of metadata [`XdpAction::Metadata`] writes in front of a frame
/// (the kernel's `struct xdp_info`, 32-byte aligned).
pub const XDP_METADATA_LEN: u32 = 32;

/// Name of the read-only global holding [`XdpAction::AdjustTail`]'s delta
/// (an `i32`).
pub const TAIL_DELTA_GLOBAL: &str = "TAIL_DELTA";

/// Name of the array of `u64`s where the program's variants keep their
/// state (see the `STATE_*` slots).
pub const VARIANT_STATE_MAP: &str = "VARIANT_STATE";
/// Slot of [`VARIANT_STATE_MAP`]: the count [`XdpAction::DropHalf`] and
/// [`XdpAction::Metadata`] number frames by.
pub const STATE_SEQUENCE: u32 = 0;
/// Slot of [`VARIANT_STATE_MAP`]: the last error of
/// `bpf_xdp_adjust_tail` ([`XdpAction::AdjustTail`]), as the helper
/// returned it (a negative errno) in the low 32 bits; 0 when none.
pub const STATE_TAIL_ERROR: u32 = 1;
/// Slots of [`VARIANT_STATE_MAP`].
pub const VARIANT_STATE_SLOTS: u32 = 2;

/// EtherType of IPv4 (host order).
pub const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6 (host order).
pub const ETH_P_IPV6: u16 = 0x86DD;
/// EtherType of ARP (host order).
pub const ETH_P_ARP: u16 = 0x0806;
/// IP protocol number of TCP.
pub const IPPROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;
/// IP protocol number of ICMPv6.
pub const IPPROTO_ICMPV6: u8 = 58;

/// Index of a counter in the per-CPU [`COUNTERS_MAP`] array.
///
/// Every frame the program sees bumps [`XdpCounter::Seen`] and exactly one
/// of the others, so `seen == redirected + passed + filtered + aborted +
/// dropped + transmitted` (summed over CPUs, when no frame is in flight).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum XdpCounter {
    /// Every frame the program ran on.
    Seen = 0,
    /// Frames `bpf_redirect_map` sent to the AF_XDP socket registered for
    /// their RX queue (the action was `XDP_REDIRECT`).
    Redirected = 1,
    /// Frames that matched the filter (or the filter is off) but had no
    /// socket registered for their RX queue, so they went to the kernel
    /// stack (`XDP_PASS`, the fallback action of the redirect).
    Passed = 2,
    /// Frames that did not match an enabled filter (including frames too
    /// short to parse the headers the filter looks at): `XDP_PASS`.
    Filtered = 3,
    /// Frames the program answered with `XDP_ABORTED`. The program has no
    /// abort path today (short or malformed frames are passed, not aborted;
    /// see [`XdpCounter::Filtered`]); kept so the layout does not change if
    /// one is added.
    Aborted = 4,
    /// Frames dropped by [`XdpAction::Drop`].
    Dropped = 5,
    /// Frames sent back by [`XdpAction::Tx`] (`XDP_TX`; the driver may
    /// still drop them if the peer cannot take them).
    Transmitted = 6,
}

impl XdpCounter {
    /// Every counter, in index order.
    pub const ALL: [XdpCounter; XDP_COUNTER_COUNT as usize] = [
        XdpCounter::Seen,
        XdpCounter::Redirected,
        XdpCounter::Passed,
        XdpCounter::Filtered,
        XdpCounter::Aborted,
        XdpCounter::Dropped,
        XdpCounter::Transmitted,
    ];

    /// The counter's index in [`COUNTERS_MAP`].
    #[inline(always)]
    pub const fn index(self) -> u32 {
        self as u32
    }
}

/// Number of counters: the `max_entries` of [`COUNTERS_MAP`].
pub const XDP_COUNTER_COUNT: u32 = 7;

/// Which frames the XDP program hands to AF_XDP: the rest go to the kernel
/// stack (`XDP_PASS`), so ARP and other control traffic keep working.
///
/// Set as the read-only global [`FILTER_GLOBAL`] before the program is
/// loaded; the verifier then sees constants and prunes the unused checks.
///
/// All multi-byte fields are in host byte order. Each criterion is a
/// wildcard when 0; a frame matches when every non-wildcard criterion holds:
///
/// - `ethertype`: the outer EtherType equals it (VLAN tags are not skipped,
///   so a tagged frame's EtherType is 0x8100 or 0x88A8);
/// - `ip_proto`: the frame is IPv4 or IPv6 and its protocol (IPv6: the fixed
///   header's next header; extension headers are not walked) equals it;
/// - `udp_port_lo` / `udp_port_hi`: the frame is unfragmented IPv4 or IPv6
///   UDP and its destination port is `>= udp_port_lo` (0: no lower bound)
///   and `<= udp_port_hi` (0: no upper bound). IPv4 fragments never match,
///   so a fragmented datagram goes whole to the stack, which reassembles it.
///
/// A frame too short for a header a criterion needs does not match (it is
/// counted as filtered and passed, never aborted). With `enabled == 0` the
/// filter is off and every frame is offered to AF_XDP.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct XdpFilter {
    /// Non-zero: the filter applies. Zero: every frame matches.
    pub enabled: u8,
    /// IP protocol (e.g. [`IPPROTO_UDP`]); 0 = any (and non-IP frames allowed).
    pub ip_proto: u8,
    /// EtherType in host order (e.g. [`ETH_P_IP`]); 0 = any.
    pub ethertype: u16,
    /// Lowest UDP destination port, host order; 0 = no lower bound.
    pub udp_port_lo: u16,
    /// Highest UDP destination port, host order; 0 = no upper bound.
    pub udp_port_hi: u16,
}

// The layout both sides rely on: 8 bytes, no implicit padding.
const _: () = {
    assert!(core::mem::size_of::<XdpFilter>() == 8);
    assert!(core::mem::align_of::<XdpFilter>() == 2);
    assert!(core::mem::offset_of!(XdpFilter, enabled) == 0);
    assert!(core::mem::offset_of!(XdpFilter, ip_proto) == 1);
    assert!(core::mem::offset_of!(XdpFilter, ethertype) == 2);
    assert!(core::mem::offset_of!(XdpFilter, udp_port_lo) == 4);
    assert!(core::mem::offset_of!(XdpFilter, udp_port_hi) == 6);
};

impl XdpFilter {
    /// The filter switched off: every frame is offered to AF_XDP.
    pub const DISABLED: XdpFilter = XdpFilter {
        enabled: 0,
        ip_proto: 0,
        ethertype: 0,
        udp_port_lo: 0,
        udp_port_hi: 0,
    };

    /// An enabled filter with every criterion a wildcard (matches every
    /// frame); narrow it with the `with_*` methods.
    pub const fn new() -> Self {
        XdpFilter {
            enabled: 1,
            ..Self::DISABLED
        }
    }

    /// Only frames with this EtherType (host order, e.g. [`ETH_P_IP`]).
    pub const fn with_ethertype(mut self, ethertype: u16) -> Self {
        self.ethertype = ethertype;
        self
    }

    /// Only IPv4/IPv6 frames carrying this protocol (e.g. [`IPPROTO_UDP`]).
    pub const fn with_ip_proto(mut self, ip_proto: u8) -> Self {
        self.ip_proto = ip_proto;
        self
    }

    /// Only unfragmented UDP frames whose destination port is in
    /// `lo..=hi` (0 for `lo` or `hi`: that side is unbounded). Also sets
    /// the IP protocol to UDP.
    pub const fn with_udp_dst_ports(mut self, lo: u16, hi: u16) -> Self {
        self.ip_proto = IPPROTO_UDP;
        self.udp_port_lo = lo;
        self.udp_port_hi = hi;
        self
    }

    /// True when the filter is on.
    pub const fn is_enabled(&self) -> bool {
        self.enabled != 0
    }

    /// True when the UDP destination port range constrains anything.
    pub const fn has_port_range(&self) -> bool {
        self.udp_port_lo != 0 || self.udp_port_hi != 0
    }

    /// True when `port` (host order) is inside the port range, wildcards
    /// included.
    #[inline(always)]
    pub const fn port_in_range(&self, port: u16) -> bool {
        (self.udp_port_lo == 0 || port >= self.udp_port_lo)
            && (self.udp_port_hi == 0 || port <= self.udp_port_hi)
    }
}

#[cfg(feature = "user")]
mod user {
    // SAFETY: `XdpFilter` is `#[repr(C)]`, `Copy`, made only of integers
    // (every bit pattern is valid) and has no padding (checked by the
    // const assertions above), so it may be viewed as and built from bytes.
    unsafe impl aya::Pod for super::XdpFilter {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_dense() {
        for (i, c) in XdpCounter::ALL.iter().enumerate() {
            assert_eq!(c.index() as usize, i);
        }
    }

    #[test]
    fn port_range_wildcards() {
        let any = XdpFilter::new();
        assert!(any.is_enabled() && !any.has_port_range());
        assert!(any.port_in_range(0) && any.port_in_range(65535));
        let f = XdpFilter::new().with_udp_dst_ports(1000, 2000);
        assert_eq!(f.ip_proto, IPPROTO_UDP);
        assert!(!f.port_in_range(999) && f.port_in_range(1000));
        assert!(f.port_in_range(2000) && !f.port_in_range(2001));
        let lo = XdpFilter::new().with_udp_dst_ports(5000, 0);
        assert!(!lo.port_in_range(4999) && lo.port_in_range(65535));
        let hi = XdpFilter::new().with_udp_dst_ports(0, 10);
        assert!(hi.port_in_range(1) && !hi.port_in_range(11));
        assert!(!XdpFilter::DISABLED.is_enabled());
        assert_eq!(XdpFilter::default(), XdpFilter::DISABLED);
    }
}

/// The lifecycle events the library announces through its hooks (one
/// `#[no_mangle]` function per event, probed with uprobes).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HookEvent {
    /// An arena was created (ACTIVE, registered).
    ArenaCreate = 1,
    /// An arena's last reference went: torn down, unregistered.
    ArenaDestroy = 2,
    /// A mapping was made (or refused: `error` set).
    ArenaMap = 3,
    /// A mapping was unmapped; `flags` bit 0 = it was the last one not
    /// redirected, so the arena became inactive (its postponed defunct
    /// follows); bit 1 = the mapper holding it is gone (exited, closed its
    /// socket, or was cut off) rather than having unmapped.
    ArenaUnmap = 4,
    /// A mapping was redirected (or refused); `flags` bit 0 = the arena
    /// became inactive.
    ArenaRedirect = 5,
    /// An arena was defuncted (or refused).
    ArenaDefunct = 6,
    /// An arena's caches were reaped; `flags` bit 0 = purge.
    ArenaReap = 7,
    /// A channel bound an AF_XDP socket; `flags` = queue << 1 | zero-copy.
    ChannelBind = 8,
    /// A channel closed its socket; `flags` = queue << 1.
    ChannelUnbind = 9,
}

impl HookEvent {
    /// Every event, in code order.
    pub const ALL: [HookEvent; 9] = [
        HookEvent::ArenaCreate,
        HookEvent::ArenaDestroy,
        HookEvent::ArenaMap,
        HookEvent::ArenaUnmap,
        HookEvent::ArenaRedirect,
        HookEvent::ArenaDefunct,
        HookEvent::ArenaReap,
        HookEvent::ChannelBind,
        HookEvent::ChannelUnbind,
    ];

    /// The hook function's symbol, which uprobes attach to.
    pub const fn symbol(self) -> &'static str {
        match self {
            HookEvent::ArenaCreate => "skmem_hook_arena_create",
            HookEvent::ArenaDestroy => "skmem_hook_arena_destroy",
            HookEvent::ArenaMap => "skmem_hook_arena_map",
            HookEvent::ArenaUnmap => "skmem_hook_arena_unmap",
            HookEvent::ArenaRedirect => "skmem_hook_arena_redirect",
            HookEvent::ArenaDefunct => "skmem_hook_arena_defunct",
            HookEvent::ArenaReap => "skmem_hook_arena_reap",
            HookEvent::ChannelBind => "skmem_hook_channel_bind",
            HookEvent::ChannelUnbind => "skmem_hook_channel_unbind",
        }
    }

    /// `create`, `map`, ... for display.
    pub const fn name(self) -> &'static str {
        match self {
            HookEvent::ArenaCreate => "create",
            HookEvent::ArenaDestroy => "destroy",
            HookEvent::ArenaMap => "map",
            HookEvent::ArenaUnmap => "unmap",
            HookEvent::ArenaRedirect => "redirect",
            HookEvent::ArenaDefunct => "defunct",
            HookEvent::ArenaReap => "reap",
            HookEvent::ChannelBind => "bind",
            HookEvent::ChannelUnbind => "unbind",
        }
    }

    /// The event with code `v`.
    pub const fn from_u32(v: u32) -> Option<HookEvent> {
        match v {
            1 => Some(HookEvent::ArenaCreate),
            2 => Some(HookEvent::ArenaDestroy),
            3 => Some(HookEvent::ArenaMap),
            4 => Some(HookEvent::ArenaUnmap),
            5 => Some(HookEvent::ArenaRedirect),
            6 => Some(HookEvent::ArenaDefunct),
            7 => Some(HookEvent::ArenaReap),
            8 => Some(HookEvent::ChannelBind),
            9 => Some(HookEvent::ChannelUnbind),
            _ => None,
        }
    }
}

/// Bytes of an arena name in a [`HookPayload`] (NUL-padded).
pub const HOOK_NAME_LEN: usize = 64;

/// What every hook receives (its only argument is a pointer to one): the
/// arena, the process, the span, how it went, the arena's region memory
/// totals, and the event's number in the arena's sequence. 128 bytes, no
/// padding.
///
/// The library fires a hook under the arena's lock, with what was true
/// under it: an arena's events reach the probes in the order its state
/// changed, numbered 0, 1, 2, … (`seq`), so an observer can tell a lost
/// event from a late one.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HookPayload {
    /// Process-unique arena id.
    pub arena_id: u64,
    /// Span base address of the mapping concerned (0 when none).
    pub span_addr: u64,
    /// Span size (0 when none).
    pub span_size: u64,
    /// Arena kind: 1 nexus, 2 NECP, 3 system (the schema's codes).
    pub kind: u32,
    /// Process id of the caller.
    pub pid: u32,
    /// Event-specific flags (see [`HookEvent`]).
    pub flags: u32,
    /// 0 on success, else the errno the operation returned.
    pub error: i32,
    /// The arena's name, NUL-padded UTF-8.
    pub name: [u8; HOOK_NAME_LEN],
    /// Total bytes of the regions the arena holds at the event (0 when
    /// unknown, e.g. on destroy).
    pub mem_total: u64,
    /// Bytes of the segments in use in those regions.
    pub mem_inuse: u64,
    /// The event's number in its arena's sequence (create is 0).
    pub seq: u64,
}

const _: () = assert!(core::mem::size_of::<HookPayload>() == 128);

// ---------------------------------------------------------------------------
// Observation (`skmem-observe` object): uprobes on the hooks, tracepoints,
// the event ring buffer and the live-arena map.
// ---------------------------------------------------------------------------

/// Name of the `BPF_MAP_TYPE_RINGBUF` carrying [`Event`]s to user space.
pub const EVENTS_MAP: &str = "SKMEM_EVENTS";
/// Bytes of [`EVENTS_MAP`] (a power of two, a multiple of the page size).
pub const EVENTS_RING_BYTES: u32 = 1 << 20;
/// Name of the `BPF_MAP_TYPE_HASH` of live arenas: [`ArenaKey`] ->
/// [`LiveArena`]. Pinned by the loader for `skmemctl stats`.
pub const ARENAS_MAP: &str = "SKMEM_ARENAS";
/// Entries of [`ARENAS_MAP`].
pub const ARENAS_MAX: u32 = 8192;
/// Name of the `BPF_MAP_TYPE_HASH` of processes with live arenas or spans:
/// tgid (`u32`) -> [`ProcState`]. The `munmap` and exit tracepoints look
/// here first, so for every other process on the host they cost one
/// failed hash lookup.
pub const PROCS_MAP: &str = "SKMEM_PROCS";
/// Entries of [`PROCS_MAP`].
pub const PROCS_MAX: u32 = 1024;
/// Name of the per-CPU array of `u64` observation counters, indexed by
/// [`ObserveCounter`].
pub const OBSERVE_COUNTERS_MAP: &str = "SKMEM_OBS_COUNTERS";
/// Name of the read-only global holding the [`ObserveConfig`].
pub const OBSERVE_CONFIG_GLOBAL: &str = "OBSERVE_CONFIG";
/// Arenas of one process the exit tracepoint can clean up.
pub const PROC_ARENAS_MAX: usize = 32;
/// Live spans of one process the `munmap` filter knows.
pub const PROC_SPANS_MAX: usize = 16;
/// Mapped pids kept per arena (Skywalk's `SK_STATS_ARENA_MAPPED_PID_MAX`).
pub const MAPPED_PIDS_MAX: usize = 8;

/// Event code of a process exit (`sched:sched_process_exit`, last thread of
/// a process that had live arenas or mappings).
pub const EVENT_EXIT: u32 = 10;
/// Event code of an `munmap` overlapping a live span
/// (`syscalls:sys_enter_munmap`).
pub const EVENT_MUNMAP: u32 = 11;
/// Event code of `xdp:xdp_exception`.
pub const EVENT_XDP_EXCEPTION: u32 = 12;

/// `event` for display: the [`HookEvent::name`]s, then `exit`, `munmap`,
/// `xdp-exception`.
pub const fn event_name(code: u32) -> &'static str {
    match code {
        EVENT_EXIT => "exit",
        EVENT_MUNMAP => "munmap",
        EVENT_XDP_EXCEPTION => "xdp-exception",
        _ => match HookEvent::from_u32(code) {
            Some(e) => e.name(),
            None => "unknown",
        },
    }
}

/// Arena state in [`LiveArena::state`] and [`Event::state`].
pub const STATE_NONE: u32 = 0;
/// Mappable; not every mapping redirected.
pub const STATE_ACTIVE: u32 = 1;
/// Every mapping redirected (a redirect with flags bit 0).
pub const STATE_INACTIVE: u32 = 2;
/// Defuncted.
pub const STATE_DEFUNCT: u32 = 3;

/// `ACTIVE`, `INACTIVE`, `DEFUNCT`, or `-` ([`STATE_NONE`]: gone).
pub const fn state_name(state: u32) -> &'static str {
    match state {
        STATE_ACTIVE => "ACTIVE",
        STATE_INACTIVE => "INACTIVE",
        STATE_DEFUNCT => "DEFUNCT",
        _ => "-",
    }
}

/// `nexus`, `necp`, `system` for the payload's kind codes.
pub const fn kind_name(kind: u32) -> &'static str {
    match kind {
        1 => "nexus",
        2 => "necp",
        3 => "system",
        _ => "?",
    }
}

/// [`LiveArena::flags`] bit: the probes first saw this arena after its
/// creation (the observer attached late), so its counts start from then.
pub const LIVE_FLAG_LATE: u32 = 1;

/// Per-CPU counters of the observation programs.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObserveCounter {
    /// Events lost because the ring buffer was full.
    RingFull = 0,
    /// Hook payloads `bpf_probe_read_user` could not read.
    ReadFailed = 1,
    /// Map updates that failed (a table full: arenas, processes, a
    /// process's arena or span slots).
    TableFull = 2,
}

/// Number of [`ObserveCounter`]s.
pub const OBSERVE_COUNTER_COUNT: u32 = 3;

/// Set by the loader before loading (read-only global
/// [`OBSERVE_CONFIG_GLOBAL`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ObserveConfig {
    /// Only this tgid (0: every process).
    pub pid: u32,
    /// Reserved, 0.
    pub _reserved: u32,
}

/// Key of [`ARENAS_MAP`]: arena ids are unique per process only.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ArenaKey {
    /// tgid of the process that owns the arena.
    pub pid: u32,
    /// Reserved, 0.
    pub _pad: u32,
    /// The arena's process-unique id.
    pub arena_id: u64,
}

/// Value of [`ARENAS_MAP`]: an arena as the probes know it. 168 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveArena {
    /// The arena's id.
    pub arena_id: u64,
    /// Owner's tgid.
    pub pid: u32,
    /// 1 nexus, 2 NECP, 3 system.
    pub kind: u32,
    /// [`STATE_ACTIVE`], [`STATE_INACTIVE`] or [`STATE_DEFUNCT`].
    pub state: u32,
    /// Live mappings.
    pub map_count: u32,
    /// Size of a mapping (0 with no mapping).
    pub map_size: u64,
    /// `bpf_ktime_get_ns` of the create hook (or of the first event seen).
    pub created_ns: u64,
    /// `bpf_ktime_get_ns` of the last event.
    pub updated_ns: u64,
    /// Code of the last event.
    pub last_event: u32,
    /// [`LIVE_FLAG_LATE`].
    pub flags: u32,
    /// Pids holding mappings, one slot per mapping (0 = free slot).
    pub pids: [u32; MAPPED_PIDS_MAX],
    /// `skmem.KIND.NAME`, NUL-padded.
    pub name: [u8; HOOK_NAME_LEN],
    /// Total bytes of the arena's regions, as of the last hook event.
    pub mem_total: u64,
    /// Bytes in use in the arena's regions, as of the last hook event.
    pub mem_inuse: u64,
}

/// One live span in [`ProcState`].
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SpanSlot {
    /// Base address (0 = free slot).
    pub addr: u64,
    /// Bytes.
    pub size: u64,
    /// The arena mapped there.
    pub arena_id: u64,
}

/// Value of [`PROCS_MAP`]: what the tracepoints need about one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcState {
    /// Ids of its live arenas (0 = free slot).
    pub arenas: [u64; PROC_ARENAS_MAX],
    /// Its live spans.
    pub spans: [SpanSlot; PROC_SPANS_MAX],
}

/// One record of [`EVENTS_MAP`]. 192 bytes.
///
/// Common fields describe the event's process and arena; `state` and
/// `map_count` are the arena's as the live map has them *after* the event
/// ([`STATE_NONE`] once it is gone). The tail fields are per event:
/// `exit_*` for [`EVENT_EXIT`], `munmap_*` for [`EVENT_MUNMAP`], `xdp_*`
/// for [`EVENT_XDP_EXCEPTION`] (0 otherwise).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    /// `bpf_ktime_get_ns` (CLOCK_MONOTONIC).
    pub time_ns: u64,
    /// [`HookEvent`] code (1..=9), [`EVENT_EXIT`], [`EVENT_MUNMAP`] or
    /// [`EVENT_XDP_EXCEPTION`].
    pub code: u32,
    /// tgid of the process.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Arena kind (0 when no arena).
    pub kind: u32,
    /// Arena id (0 when no arena).
    pub arena_id: u64,
    /// Span base (hooks: the payload's; exit: a live span; munmap: the
    /// live span hit).
    pub span_addr: u64,
    /// Span size.
    pub span_size: u64,
    /// The hook's flags.
    pub flags: u32,
    /// The hook's errno (0 = success).
    pub error: i32,
    /// Arena state after the event.
    pub state: u32,
    /// Arena's live mappings after the event.
    pub map_count: u32,
    /// Arena name, NUL-padded.
    pub name: [u8; HOOK_NAME_LEN],
    /// Exit: live arenas the process still had.
    pub exit_arenas: u32,
    /// Exit: live mappings (spans) it still had.
    pub exit_mappings: u32,
    /// munmap: the address asked.
    pub munmap_addr: u64,
    /// munmap: the length asked.
    pub munmap_len: u64,
    /// xdp_exception: program id.
    pub xdp_prog_id: u32,
    /// xdp_exception: the action (0 ABORTED, 1 DROP, 2 PASS, 3 TX, 4 REDIRECT).
    pub xdp_act: u32,
    /// xdp_exception: interface index.
    pub xdp_ifindex: i32,
    /// Reserved, 0.
    /// Hooks: the process the event is about (the payload's pid): the
    /// owner for its own mappings, the mapper for one it lends to; else 0.
    pub subject_pid: u32,
    /// Hooks: the arena's total region bytes (the payload's); else 0.
    pub mem_total: u64,
    /// Hooks: the arena's region bytes in use (the payload's); else 0.
    pub mem_inuse: u64,
    /// Hooks: the event's number in its arena's sequence (the payload's);
    /// else 0.
    pub seq: u64,
}

const _: () = {
    assert!(core::mem::size_of::<ArenaKey>() == 16);
    assert!(core::mem::size_of::<LiveArena>() == 168);
    assert!(core::mem::offset_of!(LiveArena, pids) == 56);
    assert!(core::mem::offset_of!(LiveArena, name) == 88);
    assert!(core::mem::offset_of!(LiveArena, mem_total) == 152);
    assert!(core::mem::offset_of!(LiveArena, mem_inuse) == 160);
    assert!(core::mem::size_of::<SpanSlot>() == 24);
    assert!(core::mem::size_of::<ProcState>() == 640);
    assert!(core::mem::size_of::<Event>() == 192);
    assert!(core::mem::offset_of!(Event, seq) == 184);
    assert!(core::mem::offset_of!(Event, name) == 64);
    assert!(core::mem::offset_of!(Event, exit_arenas) == 128);
    assert!(core::mem::offset_of!(Event, xdp_prog_id) == 152);
    assert!(core::mem::offset_of!(Event, mem_total) == 168);
    assert!(core::mem::offset_of!(Event, mem_inuse) == 176);
    assert!(core::mem::size_of::<ObserveConfig>() == 8);
    assert!(core::mem::offset_of!(HookPayload, kind) == 24);
    assert!(core::mem::offset_of!(HookPayload, name) == 40);
    assert!(core::mem::offset_of!(HookPayload, mem_total) == 104);
    assert!(core::mem::offset_of!(HookPayload, mem_inuse) == 112);
    assert!(core::mem::offset_of!(HookPayload, seq) == 120);
};

#[cfg(feature = "user")]
mod user_observe {
    // SAFETY: every type here is `#[repr(C)]`, `Copy`, made only of
    // integers and integer arrays (every bit pattern is valid), with
    // explicit padding fields (checked by the const assertions above).
    unsafe impl aya::Pod for super::ArenaKey {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::LiveArena {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ProcState {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::ObserveConfig {}
    // SAFETY: as above.
    unsafe impl aya::Pod for super::Event {}
}
