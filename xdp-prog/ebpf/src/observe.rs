//! skmem's observation programs (object `skmem-observe`), built for
//! `bpfel-unknown-none` by `skmem-xdp`'s build script and loaded by its
//! `Observer`.
//!
//! * One uprobe per library hook (`skmem_hook_*`): reads the
//!   [`HookPayload`] with `bpf_probe_read_user`, keeps the live-arena map
//!   ([`SKMEM_ARENAS`]) and the per-process table ([`SKMEM_PROCS`]) up to
//!   date, and sends an [`Event`] through the ring buffer.
//! * `sched:sched_process_exit` (last thread of a process, `group_dead`):
//!   drops the process's arenas from the live map and reports the arenas
//!   and mappings it still held.
//! * `syscalls:sys_enter_munmap`: reports an `munmap` overlapping a span the
//!   probes know is live (one hash lookup for any other process).
//! * `xdp:xdp_exception`: reported as is.
//!
//! Stack use stays far below 512 bytes: events are built in ring-buffer
//! memory, new map values in per-CPU scratch slots.
#![no_std]
#![no_main]
// Map values are passed to the helpers by reference on purpose: passing
// them by value (what clippy suggests) would copy a 168- or 640-byte value
// onto the 512-byte BPF stack.
#![allow(clippy::needless_borrows_for_generic_args)]

use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, tracepoint, uprobe},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::{ProbeContext, TracePointContext},
};
use skmem_xdp_common::{
    ArenaKey, Event, HookEvent, HookPayload, LiveArena, ObserveConfig, ObserveCounter, ProcState,
    ARENAS_MAX, EVENTS_RING_BYTES, EVENT_EXIT, EVENT_MUNMAP, EVENT_XDP_EXCEPTION, HOOK_NAME_LEN,
    LIVE_FLAG_LATE, MAPPED_PIDS_MAX, OBSERVE_COUNTER_COUNT, PROCS_MAX, PROC_ARENAS_MAX,
    PROC_SPANS_MAX, STATE_ACTIVE, STATE_DEFUNCT, STATE_INACTIVE, STATE_NONE,
};

/// Events to user space.
#[map]
static SKMEM_EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

/// Live arenas: (tgid, arena id) -> what the probes know.
#[map]
static SKMEM_ARENAS: HashMap<ArenaKey, LiveArena> = HashMap::with_max_entries(ARENAS_MAX, 0);

/// tgid -> its live arena ids and spans (for the exit and munmap probes).
#[map]
static SKMEM_PROCS: HashMap<u32, ProcState> = HashMap::with_max_entries(PROCS_MAX, 0);

/// Per-CPU counters indexed by [`ObserveCounter`].
#[map]
static SKMEM_OBS_COUNTERS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(OBSERVE_COUNTER_COUNT, 0);

/// Scratch for building a new [`LiveArena`] off the stack.
#[map]
static SCRATCH_ARENA: PerCpuArray<LiveArena> = PerCpuArray::with_max_entries(1, 0);

/// Never written: an all-zero [`ProcState`] to insert.
#[map]
static ZERO_PROC: PerCpuArray<ProcState> = PerCpuArray::with_max_entries(1, 0);

/// Set by the loader before loading (`.rodata`).
#[no_mangle]
static OBSERVE_CONFIG: ObserveConfig = ObserveConfig {
    pid: 0,
    _reserved: 0,
};

/// `bpf_probe_read_user`, `bpf_get_current_pid_tgid` and the tracepoints
/// are GPL-only helpers/attach points for tracing programs.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";

#[inline(always)]
fn count(counter: ObserveCounter) {
    if let Some(slot) = SKMEM_OBS_COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: this CPU's slot; tracing programs do not migrate.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn config_pid() -> u32 {
    // SAFETY: a POD static never written by the program; volatile so the
    // loader's value is read, not the default.
    unsafe { core::ptr::read_volatile(&OBSERVE_CONFIG.pid) }
}

/// (tgid, tid) of the current task.
#[inline(always)]
fn current() -> (u32, u32) {
    let v = bpf_get_current_pid_tgid();
    ((v >> 32) as u32, v as u32)
}

/// Fills every field of a reserved event with zeros, then the common ones.
///
/// # Safety
/// `ev` points at a reserved ring-buffer record of `Event`'s size.
#[inline(always)]
unsafe fn init_event(ev: *mut Event, code: u32, tgid: u32, tid: u32) {
    unsafe {
        core::ptr::write_bytes(ev as *mut u8, 0, core::mem::size_of::<Event>());
        (*ev).time_ns = bpf_ktime_get_ns();
        (*ev).code = code;
        (*ev).pid = tgid;
        (*ev).tid = tid;
    }
}

// ----------------------------------------------------------------- hooks

#[uprobe]
pub fn hook_create(ctx: ProbeContext) -> u32 {
    on_hook(&ctx, HookEvent::ArenaCreate)
}

#[uprobe]
pub fn hook_destroy(ctx: ProbeContext) -> u32 {
    on_hook(&ctx, HookEvent::ArenaDestroy)
}

#[uprobe]
pub fn hook_map(ctx: ProbeContext) -> u32 {
    on_hook(&ctx, HookEvent::ArenaMap)
}

#[uprobe]
pub fn hook_unmap(ctx: ProbeContext) -> u32 {
    on_hook(&ctx, HookEvent::ArenaUnmap)
}

#[uprobe]
pub fn hook_redirect(ctx: ProbeContext) -> u32 {
    on_hook(&ctx, HookEvent::ArenaRedirect)
}

#[uprobe]
pub fn hook_defunct(ctx: ProbeContext) -> u32 {
    on_hook(&ctx, HookEvent::ArenaDefunct)
}

#[uprobe]
pub fn hook_reap(ctx: ProbeContext) -> u32 {
    on_hook(&ctx, HookEvent::ArenaReap)
}

#[uprobe]
pub fn hook_bind(ctx: ProbeContext) -> u32 {
    on_hook(&ctx, HookEvent::ChannelBind)
}

#[uprobe]
pub fn hook_unbind(ctx: ProbeContext) -> u32 {
    on_hook(&ctx, HookEvent::ChannelUnbind)
}

#[inline(always)]
fn on_hook(ctx: &ProbeContext, event: HookEvent) -> u32 {
    let (tgid, tid) = current();
    let want = config_pid();
    if want != 0 && want != tgid {
        return 0;
    }
    let Some(ptr) = ctx.arg::<u64>(0) else {
        return 0;
    };
    // SAFETY: reading user memory through the helper, which faults safely.
    let p: HookPayload = match unsafe { bpf_probe_read_user(ptr as *const HookPayload) } {
        Ok(p) => p,
        Err(_) => {
            count(ObserveCounter::ReadFailed);
            return 0;
        }
    };
    let now = unsafe { bpf_ktime_get_ns() };
    let (state, map_count) = update_live(event, tgid, &p, now);

    let Some(mut entry) = SKMEM_EVENTS.reserve::<Event>(0) else {
        count(ObserveCounter::RingFull);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: `ev` is the reserved record, written field by field.
    unsafe {
        init_event(ev, event as u32, tgid, tid);
        (*ev).kind = p.kind;
        (*ev).arena_id = p.arena_id;
        (*ev).span_addr = p.span_addr;
        (*ev).span_size = p.span_size;
        (*ev).flags = p.flags;
        (*ev).error = p.error;
        (*ev).state = state;
        (*ev).map_count = map_count;
        (*ev).name = p.name;
        (*ev).mem_total = p.mem_total;
        (*ev).mem_inuse = p.mem_inuse;
        (*ev).seq = p.seq;
        (*ev).subject_pid = p.pid;
    }
    entry.submit(0);
    0
}

/// The live arena of `key`, inserted (as ACTIVE, or DEFUNCT for a defunct
/// event, flagged [`LIVE_FLAG_LATE`] unless `event` is its creation) when
/// the probes had not seen it.
#[inline(always)]
fn live_entry(
    key: &ArenaKey,
    event: HookEvent,
    p: &HookPayload,
    now: u64,
) -> Option<*mut LiveArena> {
    if let Some(e) = SKMEM_ARENAS.get_ptr_mut(key) {
        return Some(e);
    }
    let s = SCRATCH_ARENA.get_ptr_mut(0)?;
    let create = matches!(event, HookEvent::ArenaCreate);
    // SAFETY: this CPU's scratch slot, fully rewritten here.
    unsafe {
        (*s).arena_id = p.arena_id;
        (*s).pid = key.pid;
        (*s).kind = p.kind;
        (*s).state = if matches!(event, HookEvent::ArenaDefunct) && p.error == 0 {
            STATE_DEFUNCT
        } else {
            STATE_ACTIVE
        };
        (*s).map_count = 0;
        (*s).map_size = 0;
        (*s).created_ns = now;
        (*s).updated_ns = now;
        (*s).last_event = event as u32;
        (*s).flags = if create { 0 } else { LIVE_FLAG_LATE };
        (*s).pids = [0; MAPPED_PIDS_MAX];
        (*s).name = p.name;
        (*s).mem_total = p.mem_total;
        (*s).mem_inuse = p.mem_inuse;
        if SKMEM_ARENAS.insert(key, &*s, BPF_NOEXIST as u64).is_err() {
            // Raced with another CPU (then the lookup finds it) or full.
            if let Some(e) = SKMEM_ARENAS.get_ptr_mut(key) {
                return Some(e);
            }
            count(ObserveCounter::TableFull);
            return None;
        }
    }
    proc_add_arena(key.pid, p.arena_id);
    SKMEM_ARENAS.get_ptr_mut(key)
}

/// Applies a hook event to the live map; returns the arena's state and
/// map count afterwards.
#[inline(always)]
fn update_live(event: HookEvent, tgid: u32, p: &HookPayload, now: u64) -> (u32, u32) {
    let key = ArenaKey {
        pid: tgid,
        _pad: 0,
        arena_id: p.arena_id,
    };
    if matches!(event, HookEvent::ArenaDestroy) {
        let _ = SKMEM_ARENAS.remove(&key);
        proc_remove_arena(tgid, p.arena_id);
        return (STATE_NONE, 0);
    }
    let Some(e) = live_entry(&key, event, p, now) else {
        return (STATE_NONE, 0);
    };
    // SAFETY: `e` points at the map's value for `key`; fields are plain
    // integers. Updates are not atomic, and need not be: the library fires
    // an arena's hooks under the arena's lock, one at a time.
    unsafe {
        if p.error == 0 {
            match event {
                HookEvent::ArenaMap => {
                    (*e).map_count += 1;
                    (*e).map_size = p.span_size;
                    // The mapper: this process, or one it lends to.
                    for i in 0..MAPPED_PIDS_MAX {
                        if (*e).pids[i] == 0 {
                            (*e).pids[i] = p.pid;
                            break;
                        }
                    }
                    // A span in this process's address space only.
                    if p.pid == tgid {
                        proc_add_span(tgid, p.span_addr, p.span_size, p.arena_id);
                    }
                }
                HookEvent::ArenaUnmap => {
                    if (*e).map_count > 0 {
                        (*e).map_count -= 1;
                    }
                    if (*e).map_count == 0 {
                        (*e).map_size = 0;
                    }
                    for i in 0..MAPPED_PIDS_MAX {
                        if (*e).pids[i] == p.pid {
                            (*e).pids[i] = 0;
                            break;
                        }
                    }
                    if p.pid == tgid {
                        proc_remove_span(tgid, p.span_addr);
                    }
                    if p.flags & 1 != 0 && (*e).state == STATE_ACTIVE {
                        (*e).state = STATE_INACTIVE;
                    }
                }
                HookEvent::ArenaRedirect if p.flags & 1 != 0 && (*e).state == STATE_ACTIVE => {
                    (*e).state = STATE_INACTIVE;
                }
                HookEvent::ArenaDefunct => (*e).state = STATE_DEFUNCT,
                _ => {}
            }
        }
        // The owner's region totals as of this event (refused ones too:
        // the payload always carries the current figures).
        (*e).mem_total = p.mem_total;
        (*e).mem_inuse = p.mem_inuse;
        (*e).updated_ns = now;
        (*e).last_event = event as u32;
        ((*e).state, (*e).map_count)
    }
}

// ------------------------------------------------------- per-process table

#[inline(always)]
fn proc_get_or_insert(tgid: u32) -> Option<*mut ProcState> {
    if let Some(ps) = SKMEM_PROCS.get_ptr_mut(tgid) {
        return Some(ps);
    }
    let zero = ZERO_PROC.get_ptr(0)?;
    // SAFETY: `zero` is a map value pointer to an all-zero ProcState.
    let _ = SKMEM_PROCS.insert(tgid, unsafe { &*zero }, BPF_NOEXIST as u64);
    let ps = SKMEM_PROCS.get_ptr_mut(tgid);
    if ps.is_none() {
        count(ObserveCounter::TableFull);
    }
    ps
}

#[inline(always)]
fn proc_add_arena(tgid: u32, id: u64) {
    let Some(ps) = proc_get_or_insert(tgid) else {
        return;
    };
    // SAFETY: `ps` is the map's value for `tgid`.
    unsafe {
        for i in 0..PROC_ARENAS_MAX {
            if (*ps).arenas[i] == 0 {
                (*ps).arenas[i] = id;
                return;
            }
        }
    }
    count(ObserveCounter::TableFull);
}

#[inline(always)]
fn proc_remove_arena(tgid: u32, id: u64) {
    let Some(ps) = SKMEM_PROCS.get_ptr_mut(tgid) else {
        return;
    };
    // SAFETY: as above.
    unsafe {
        for i in 0..PROC_ARENAS_MAX {
            if (*ps).arenas[i] == id {
                (*ps).arenas[i] = 0;
                return;
            }
        }
    }
}

#[inline(always)]
fn proc_add_span(tgid: u32, addr: u64, size: u64, id: u64) {
    if addr == 0 {
        return;
    }
    let Some(ps) = proc_get_or_insert(tgid) else {
        return;
    };
    // SAFETY: as above.
    unsafe {
        for i in 0..PROC_SPANS_MAX {
            if (*ps).spans[i].addr == 0 {
                (*ps).spans[i].size = size;
                (*ps).spans[i].arena_id = id;
                (*ps).spans[i].addr = addr;
                return;
            }
        }
    }
    count(ObserveCounter::TableFull);
}

#[inline(always)]
fn proc_remove_span(tgid: u32, addr: u64) {
    if addr == 0 {
        return;
    }
    let Some(ps) = SKMEM_PROCS.get_ptr_mut(tgid) else {
        return;
    };
    // SAFETY: as above.
    unsafe {
        for i in 0..PROC_SPANS_MAX {
            if (*ps).spans[i].addr == addr {
                (*ps).spans[i].addr = 0;
                return;
            }
        }
    }
}

// ------------------------------------------------------------ tracepoints

/// `sched_process_exit`: `group_dead` at offset 32 says the whole process
/// is gone (this is its last thread).
const EXIT_GROUP_DEAD: usize = 32;
/// `sys_enter_munmap`: `addr` and `len`.
const MUNMAP_ADDR: usize = 16;
const MUNMAP_LEN: usize = 24;
/// `xdp_exception`: `prog_id`, `act`, `ifindex`.
const XDP_PROG_ID: usize = 8;
const XDP_ACT: usize = 12;
const XDP_IFINDEX: usize = 16;

#[tracepoint(category = "sched", name = "sched_process_exit")]
pub fn tp_exit(ctx: TracePointContext) -> u32 {
    // SAFETY: reading the tracepoint record at the offsets of its format.
    let group_dead: u8 = unsafe { ctx.read_at(EXIT_GROUP_DEAD) }.unwrap_or(0);
    if group_dead == 0 {
        return 0;
    }
    let (tgid, tid) = current();
    let Some(ps) = SKMEM_PROCS.get_ptr(tgid) else {
        return 0;
    };
    // The first live span tells which arena the process had mapped. The
    // counters are never branched on inside the loops, so the verifier can
    // prune states that differ only in them (no path explosion).
    let mut mappings = 0u32;
    let mut span_addr = 0u64;
    let mut span_size = 0u64;
    let mut span_arena = 0u64;
    // SAFETY: `ps` is the map's value for `tgid`.
    unsafe {
        for i in 0..PROC_SPANS_MAX {
            let s = (*ps).spans[i];
            if s.addr != 0 {
                if span_addr == 0 {
                    span_addr = s.addr;
                    span_size = s.size;
                    span_arena = s.arena_id;
                }
                mappings += 1;
            }
        }
    }
    let mut arenas = 0u32;
    let mut first_arena = 0u64;
    // SAFETY: as above.
    unsafe {
        for i in 0..PROC_ARENAS_MAX {
            let id = (*ps).arenas[i];
            if id != 0 {
                if first_arena == 0 {
                    first_arena = id;
                }
                arenas += 1;
            }
        }
    }
    let about = if span_arena != 0 {
        span_arena
    } else {
        first_arena
    };
    if about != 0 || span_addr != 0 {
        if let Some(mut entry) = SKMEM_EVENTS.reserve::<Event>(0) {
            let ev = entry.as_mut_ptr();
            let key = ArenaKey {
                pid: tgid,
                _pad: 0,
                arena_id: about,
            };
            // SAFETY: the reserved record; `a` is a map value.
            unsafe {
                init_event(ev, EVENT_EXIT, tgid, tid);
                (*ev).arena_id = about;
                (*ev).span_addr = span_addr;
                (*ev).span_size = span_size;
                (*ev).exit_arenas = arenas;
                (*ev).exit_mappings = mappings;
                if let Some(a) = SKMEM_ARENAS.get_ptr(&key) {
                    (*ev).kind = (*a).kind;
                    (*ev).name = (*a).name;
                    (*ev).map_count = (*a).map_count;
                }
                // The process is gone, and its arenas with it.
                (*ev).state = STATE_NONE;
            }
            entry.submit(0);
        } else {
            count(ObserveCounter::RingFull);
        }
    }
    // SAFETY: as above.
    unsafe {
        for i in 0..PROC_ARENAS_MAX {
            let id = (*ps).arenas[i];
            if id != 0 {
                let _ = SKMEM_ARENAS.remove(&ArenaKey {
                    pid: tgid,
                    _pad: 0,
                    arena_id: id,
                });
            }
        }
    }
    let _ = SKMEM_PROCS.remove(tgid);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_munmap")]
pub fn tp_munmap(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    let Some(ps) = SKMEM_PROCS.get_ptr(tgid) else {
        return 0;
    };
    // SAFETY: reading the tracepoint record at the offsets of its format.
    let (addr, len) = unsafe {
        (
            ctx.read_at::<u64>(MUNMAP_ADDR).unwrap_or(0),
            ctx.read_at::<u64>(MUNMAP_LEN).unwrap_or(0),
        )
    };
    let end = addr.saturating_add(len);
    let mut hit = PROC_SPANS_MAX;
    // SAFETY: `ps` is the map's value for `tgid`.
    unsafe {
        for i in 0..PROC_SPANS_MAX {
            let s = (*ps).spans[i];
            if s.addr != 0 && addr < s.addr.saturating_add(s.size) && end > s.addr {
                hit = i;
                break;
            }
        }
    }
    if hit >= PROC_SPANS_MAX {
        return 0;
    }
    // SAFETY: `hit` < PROC_SPANS_MAX.
    let s = unsafe { (*ps).spans[hit] };
    let Some(mut entry) = SKMEM_EVENTS.reserve::<Event>(0) else {
        count(ObserveCounter::RingFull);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    let key = ArenaKey {
        pid: tgid,
        _pad: 0,
        arena_id: s.arena_id,
    };
    // SAFETY: the reserved record; `a` is a map value.
    unsafe {
        init_event(ev, EVENT_MUNMAP, tgid, tid);
        (*ev).arena_id = s.arena_id;
        (*ev).span_addr = s.addr;
        (*ev).span_size = s.size;
        (*ev).munmap_addr = addr;
        (*ev).munmap_len = len;
        if let Some(a) = SKMEM_ARENAS.get_ptr(&key) {
            (*ev).kind = (*a).kind;
            (*ev).name = (*a).name;
            (*ev).state = (*a).state;
            (*ev).map_count = (*a).map_count;
        }
    }
    entry.submit(0);
    0
}

#[tracepoint(category = "xdp", name = "xdp_exception")]
pub fn tp_xdp_exception(ctx: TracePointContext) -> u32 {
    let (tgid, tid) = current();
    // SAFETY: reading the tracepoint record at the offsets of its format.
    let (prog_id, act, ifindex) = unsafe {
        (
            ctx.read_at::<u32>(XDP_PROG_ID).unwrap_or(0),
            ctx.read_at::<u32>(XDP_ACT).unwrap_or(0),
            ctx.read_at::<i32>(XDP_IFINDEX).unwrap_or(0),
        )
    };
    let Some(mut entry) = SKMEM_EVENTS.reserve::<Event>(0) else {
        count(ObserveCounter::RingFull);
        return 0;
    };
    let ev = entry.as_mut_ptr();
    // SAFETY: the reserved record.
    unsafe {
        init_event(ev, EVENT_XDP_EXCEPTION, tgid, tid);
        (*ev).xdp_prog_id = prog_id;
        (*ev).xdp_act = act;
        (*ev).xdp_ifindex = ifindex;
    }
    entry.submit(0);
    0
}

const _: () = assert!(HOOK_NAME_LEN == 64);

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
