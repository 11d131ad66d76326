//! Lifecycle hooks: where eBPF uprobes watch arenas and channels.
//!
//! Each event has its own `#[no_mangle] extern "C"` function (its symbol is
//! [`HookEvent::symbol`]) taking a pointer to a [`HookPayload`]. On x86-64
//! each hook is a naked function that starts with a 5-byte nop — a uprobe
//! on such an instruction is emulated cheaply (~0.5 µs a hit, against ~9 µs
//! for one on a bare `ret`) — then loads its own event code, so no two
//! hooks have the same body and the linker cannot fold them onto one
//! address. Unprobed, a hook costs a call: about a nanosecond. Hooks fire
//! on lifecycle events only; per-packet facts are counters.

use skmem_xdp_common::{HookEvent, HookPayload, HOOK_NAME_LEN};

/// Declares one hook: a naked 5-byte-nop function on x86-64, a plain
/// never-inlined one elsewhere.
macro_rules! hook {
    ($name:ident, $code:literal) => {
        #[cfg(target_arch = "x86_64")]
        #[doc = concat!("Hook `", stringify!($name), "` (event ", $code, ").")]
        #[unsafe(naked)]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(_payload: *const HookPayload) {
            // nopl 0x0(%rax,%rax,1) — the 5-byte nop uprobes like — then a
            // body unique to this hook.
            core::arch::naked_asm!(
                ".byte 0x0f, 0x1f, 0x44, 0x00, 0x00",
                concat!("mov eax, ", $code),
                "ret",
            )
        }

        #[cfg(not(target_arch = "x86_64"))]
        #[doc = concat!("Hook `", stringify!($name), "` (event ", $code, ").")]
        #[inline(never)]
        #[unsafe(no_mangle)]
        pub extern "C" fn $name(payload: *const HookPayload) {
            core::hint::black_box(($code, payload));
        }
    };
}

hook!(skmem_hook_arena_create, 1);
hook!(skmem_hook_arena_destroy, 2);
hook!(skmem_hook_arena_map, 3);
hook!(skmem_hook_arena_unmap, 4);
hook!(skmem_hook_arena_redirect, 5);
hook!(skmem_hook_arena_defunct, 6);
hook!(skmem_hook_arena_reap, 7);
hook!(skmem_hook_channel_bind, 8);
hook!(skmem_hook_channel_unbind, 9);

/// The hook of each event, in [`HookEvent::ALL`] order. `#[used]` keeps
/// every hook in the binary even if some event never fires in it.
#[used]
static HOOKS: [extern "C" fn(*const HookPayload); 9] = [
    skmem_hook_arena_create,
    skmem_hook_arena_destroy,
    skmem_hook_arena_map,
    skmem_hook_arena_unmap,
    skmem_hook_arena_redirect,
    skmem_hook_arena_defunct,
    skmem_hook_arena_reap,
    skmem_hook_channel_bind,
    skmem_hook_channel_unbind,
];

/// The hook function of `event`.
pub fn hook_fn(event: HookEvent) -> extern "C" fn(*const HookPayload) {
    HOOKS[event as usize - 1]
}

/// What an event is about.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Subject<'a> {
    pub(crate) arena_id: u64,
    pub(crate) kind: u32,
    pub(crate) name: &'a str,
    /// The arena's region memory: (total bytes, bytes in use); zeros when
    /// unknown.
    pub(crate) mem: (usize, usize),
    /// The event's number in the arena's sequence.
    pub(crate) seq: u64,
    /// The process the event is about: this one, or a mapper.
    pub(crate) pid: u32,
}

/// Fires `event`'s hook.
pub(crate) fn emit(
    event: HookEvent,
    who: Subject<'_>,
    span: (usize, usize),
    flags: u32,
    error: i32,
) {
    let mut name = [0u8; HOOK_NAME_LEN];
    let n = who.name.len().min(HOOK_NAME_LEN - 1);
    name[..n].copy_from_slice(&who.name.as_bytes()[..n]);
    let payload = HookPayload {
        arena_id: who.arena_id,
        span_addr: span.0 as u64,
        span_size: span.1 as u64,
        kind: who.kind,
        pid: who.pid,
        flags,
        error,
        name,
        mem_total: who.mem.0 as u64,
        mem_inuse: who.mem.1 as u64,
        seq: who.seq,
    };
    hook_fn(event)(&payload);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hook_is_its_own_function() {
        let addrs: std::collections::HashSet<usize> = HookEvent::ALL
            .iter()
            .map(|&e| hook_fn(e) as usize)
            .collect();
        assert_eq!(addrs.len(), HookEvent::ALL.len());
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_hook_starts_with_a_five_byte_nop() {
        for e in HookEvent::ALL {
            let p = hook_fn(e) as usize as *const u8;
            // SAFETY: reading the first 5 bytes of a function's code, which
            // is mapped readable and executable.
            let head = unsafe { std::slice::from_raw_parts(p, 5) };
            assert_eq!(head, [0x0f, 0x1f, 0x44, 0x00, 0x00], "{}", e.symbol());
        }
    }

    /// Each hook runs and returns its own event code: the body that keeps
    /// the linker from folding two hooks onto one address.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_hook_runs_and_returns_its_own_code() {
        let payload = HookPayload {
            arena_id: 7,
            span_addr: 0x1000,
            span_size: 0x2000,
            kind: 1,
            pid: std::process::id(),
            flags: 0,
            error: 0,
            name: [0; HOOK_NAME_LEN],
            mem_total: 1 << 20,
            mem_inuse: 4096,
            seq: 3,
        };
        for e in HookEvent::ALL {
            // SAFETY: the hook is `mov eax, CODE; ret` after its nop, a
            // function that returns an int in eax under the C ABI; reading
            // it as one returning u32 reads that register.
            let f: extern "C" fn(*const HookPayload) -> u32 =
                unsafe { std::mem::transmute(hook_fn(e)) };
            assert_eq!(f(&payload), e as u32, "{}", e.symbol());
        }
        // And through `emit`, which builds the payload.
        emit(
            HookEvent::ArenaReap,
            Subject {
                arena_id: 7,
                kind: 1,
                name: "skmem.nexus.test",
                mem: (1 << 20, 4096),
                seq: 3,
                pid: std::process::id(),
            },
            (0x1000, 0x2000),
            0,
            0,
        );
    }
}
