//! skmem's XDP program, built for `bpfel-unknown-none` by `skmem-xdp`'s
//! build script (aya-build) and embedded in the loader.
//!
//! One program, [`skmem_xdp`]: every frame bumps `SEEN`; a frame that does
//! not match the enabled [`XdpFilter`] bumps `FILTERED` and goes to the
//! kernel stack (`XDP_PASS`), so ARP and control traffic keep working; the
//! rest are redirected to the AF_XDP socket registered in `XSKS` for the
//! frame's RX queue, with `XDP_PASS` as the fallback when none is
//! (`REDIRECTED` or `PASSED`).
//!
//! The loader may choose another action for matching frames before load
//! (the read-only global `ACTION`, an [`XdpAction`]): drop them
//! (`DROPPED`) or swap their MACs and send them back with `XDP_TX`
//! (`TRANSMITTED`) — the in-kernel ceilings of rxdrop and l2fwd — or one
//! of the variants the kernel's AF_XDP self-tests use before redirecting:
//! drop every other frame, write metadata in front of each, or move each
//! frame's end (`TAIL_DELTA`). The variants keep their count and the last
//! helper error in `VARIANT_STATE`.
//!
//! Parse policy: a frame too short for a header the filter needs does not
//! match, so it is passed (and counted `FILTERED`) rather than aborted: the
//! stack is better placed to count and drop it, and an abort would hide it
//! from `ip -s link`. Every packet read is bounds-checked against
//! `data_end` before it happens, as the verifier requires.
#![no_std]
#![no_main]

use aya_ebpf::{
    bindings::xdp_action::{XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_REDIRECT, XDP_TX},
    helpers::{bpf_xdp_adjust_meta, bpf_xdp_adjust_tail},
    macros::{map, xdp},
    maps::{Array, PerCpuArray, XskMap},
    programs::XdpContext,
};
use skmem_xdp_common::{
    XdpAction, XdpCounter, XdpFilter, ETH_P_IP, ETH_P_IPV6, IPPROTO_UDP, STATE_SEQUENCE,
    STATE_TAIL_ERROR, VARIANT_STATE_SLOTS, XDP_COUNTER_COUNT, XDP_METADATA_LEN, XSKS_MAX_ENTRIES,
};

/// RX queue index -> AF_XDP socket.
#[map]
static XSKS: XskMap = XskMap::with_max_entries(XSKS_MAX_ENTRIES, 0);

/// Per-CPU `u64` counters indexed by [`XdpCounter`].
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(XDP_COUNTER_COUNT, 0);

/// The variants' state: the frame count and the last helper error (see
/// `skmem_xdp_common::STATE_SEQUENCE`).
#[map]
static VARIANT_STATE: Array<u64> = Array::with_max_entries(VARIANT_STATE_SLOTS, 0);

/// The filter, in `.rodata`: the loader overrides it before loading, and
/// the kernel freezes it, so the verifier knows its value.
#[no_mangle]
static FILTER: XdpFilter = XdpFilter::DISABLED;

/// The [`XdpAction`] code for matching frames, in `.rodata` like
/// [`FILTER`].
#[no_mangle]
static ACTION: u32 = XdpAction::Redirect as u32;

/// [`XdpAction::AdjustTail`]'s delta, in `.rodata` like [`FILTER`].
#[no_mangle]
static TAIL_DELTA: i32 = 0;

/// The program uses no GPL-only helper; this is the crate's own licence.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 18] = *b"MIT OR Apache-2.0\0";

const ETH_HLEN: usize = 14;
const IPV4_MIN_HLEN: usize = 20;
const IPV6_HLEN: usize = 40;
/// IPv4 flags/fragment-offset field: More Fragments bit and the offset.
const IPV4_MF_OR_OFFSET: u16 = 0x3fff;

/// Frags-aware (`xdp.frags`, `BPF_F_XDP_HAS_FRAGS`): it attaches to
/// interfaces whose MTU needs multi-buffer frames and can hand those to
/// AF_XDP sockets bound with `XDP_USE_SG`. Headers are read from the first
/// buffer only, which always holds them.
#[xdp(frags)]
pub fn skmem_xdp(ctx: XdpContext) -> u32 {
    count(XdpCounter::Seen);
    // SAFETY: FILTER is a plain-old-data static that is never written by
    // this program; the volatile read stops the compiler from folding its
    // compile-time default, so the value the loader wrote is used.
    let filter = unsafe { core::ptr::read_volatile(&FILTER) };
    if filter.enabled != 0 && !matches(&ctx, &filter) {
        count(XdpCounter::Filtered);
        return XDP_PASS;
    }
    // SAFETY: as for FILTER.
    let action = unsafe { core::ptr::read_volatile(&ACTION) };
    if action == XdpAction::Drop as u32 {
        count(XdpCounter::Dropped);
        return XDP_DROP;
    }
    if action == XdpAction::Tx as u32 {
        return reflect(&ctx);
    }
    if action == XdpAction::DropHalf as u32 && next_in_sequence() % 2 == 1 {
        count(XdpCounter::Dropped);
        return XDP_DROP;
    }
    if action == XdpAction::Metadata as u32 && !write_metadata(&ctx) {
        count(XdpCounter::Aborted);
        return XDP_DROP;
    }
    if action == XdpAction::AdjustTail as u32 && !adjust_tail(&ctx) {
        count(XdpCounter::Aborted);
        return XDP_DROP;
    }
    // Fallback action in the low bits of flags: XDP_PASS when no socket is
    // registered for this queue.
    let action = match XSKS.redirect(ctx.rx_queue_index(), u64::from(XDP_PASS)) {
        Ok(action) | Err(action) => action,
    };
    count(match action {
        XDP_REDIRECT => XdpCounter::Redirected,
        XDP_ABORTED => XdpCounter::Aborted,
        _ => XdpCounter::Passed,
    });
    action
}

/// [`XdpAction::Tx`]: swaps the Ethernet destination and source and sends
/// the frame back (`XDP_TX`).
#[inline(always)]
fn reflect(ctx: &XdpContext) -> u32 {
    let start = ctx.data();
    if start + ETH_HLEN > ctx.data_end() {
        count(XdpCounter::Filtered);
        return XDP_PASS;
    }
    // SAFETY: the first ETH_HLEN bytes were just checked to lie inside the
    // frame, which the program may write; `[u8; 6]` has alignment 1.
    unsafe {
        let dst = start as *mut [u8; 6];
        let src = (start + 6) as *mut [u8; 6];
        core::ptr::swap(dst, src);
    }
    count(XdpCounter::Transmitted);
    XDP_TX
}

/// The frame's number in the variants' count, from 0.
///
/// A plain read and write, as the kernel's own program counts (BPF has an
/// atomic add, but Rust's BPF target offers no fetching one): exact while
/// the frames of a flow meet the program one at a time — one queue's NAPI
/// in native mode, the sending CPU's backlog in generic mode — which is
/// how the conformance cases send them.
#[inline(always)]
fn next_in_sequence() -> u64 {
    match VARIANT_STATE.get_ptr_mut(STATE_SEQUENCE) {
        // SAFETY: the map returned a valid, 8-aligned pointer to its slot,
        // which lives as long as the program.
        Some(slot) => unsafe {
            let n = *slot;
            *slot = n + 1;
            n
        },
        None => 0,
    }
}

/// [`XdpAction::Metadata`]: makes room for the metadata in front of the
/// frame and writes the frame's number there; false if the helper refused.
#[inline(always)]
fn write_metadata(ctx: &XdpContext) -> bool {
    // SAFETY: the helper takes the program's own context, as the kernel
    // passed it; it only moves `data_meta`.
    let err = unsafe { bpf_xdp_adjust_meta(ctx.ctx, -(XDP_METADATA_LEN as i32)) };
    if err != 0 {
        return false;
    }
    let meta = ctx.metadata();
    if meta + XDP_METADATA_LEN as usize > ctx.data() {
        return false;
    }
    let n = next_in_sequence();
    // SAFETY: `meta .. meta + XDP_METADATA_LEN` was just checked to lie
    // below `data`, in the metadata area the helper made, which the
    // program may write; `[u8; N]` has alignment 1.
    unsafe {
        let p = meta as *mut [u8; XDP_METADATA_LEN as usize];
        let mut bytes = [0u8; XDP_METADATA_LEN as usize];
        let le = n.to_le_bytes();
        let mut i = 0;
        while i < 8 {
            bytes[i] = le[i];
            i += 1;
        }
        *p = bytes;
    }
    true
}

/// [`XdpAction::AdjustTail`]: moves the frame's end by `TAIL_DELTA`;
/// false (the helper's error kept) if the helper refused.
#[inline(always)]
fn adjust_tail(ctx: &XdpContext) -> bool {
    // SAFETY: as for FILTER.
    let delta = unsafe { core::ptr::read_volatile(&TAIL_DELTA) };
    // SAFETY: the helper takes the program's own context, as the kernel
    // passed it; it only moves the frame's end.
    let err = unsafe { bpf_xdp_adjust_tail(ctx.ctx, delta) };
    if err == 0 {
        return true;
    }
    if let Some(slot) = VARIANT_STATE.get_ptr_mut(STATE_TAIL_ERROR) {
        // SAFETY: a valid pointer to the map's slot (as above); a racing
        // writer would write an error too, and either will do.
        unsafe { *slot = u64::from(err as u32) };
    }
    false
}

#[inline(always)]
fn count(counter: XdpCounter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter.index()) {
        // SAFETY: the map returned a valid pointer to this CPU's slot; XDP
        // runs with migration disabled, so no other program instance writes
        // this CPU's slot concurrently.
        unsafe { *slot += 1 };
    }
}

/// The `N` bytes at `offset` in the frame, if the frame holds them.
#[inline(always)]
fn bytes_at<const N: usize>(ctx: &XdpContext, offset: usize) -> Option<[u8; N]> {
    let start = ctx.data();
    let end = ctx.data_end();
    if start + offset + N > end {
        return None;
    }
    // SAFETY: `start + offset .. start + offset + N` was just checked to lie
    // inside the frame; `[u8; N]` has alignment 1.
    Some(unsafe { *((start + offset) as *const [u8; N]) })
}

/// Whether the frame matches `filter` (which is enabled). See
/// [`XdpFilter`] for the semantics of each field.
#[inline(always)]
fn matches(ctx: &XdpContext, filter: &XdpFilter) -> bool {
    let Some(eth) = bytes_at::<ETH_HLEN>(ctx, 0) else {
        return false;
    };
    let ethertype = u16::from_be_bytes([eth[12], eth[13]]);
    if filter.ethertype != 0 && ethertype != filter.ethertype {
        return false;
    }
    let wants_ports = filter.has_port_range();
    if filter.ip_proto == 0 && !wants_ports {
        return true;
    }
    // Protocol, offset of the L4 header, and whether this is a fragment.
    let (proto, l4, fragment) = match ethertype {
        ETH_P_IP => {
            let Some(ip) = bytes_at::<IPV4_MIN_HLEN>(ctx, ETH_HLEN) else {
                return false;
            };
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            if ihl < IPV4_MIN_HLEN {
                return false;
            }
            let frag = u16::from_be_bytes([ip[6], ip[7]]) & IPV4_MF_OR_OFFSET != 0;
            (ip[9], ETH_HLEN + ihl, frag)
        }
        ETH_P_IPV6 => {
            let Some(ip) = bytes_at::<IPV6_HLEN>(ctx, ETH_HLEN) else {
                return false;
            };
            (ip[6], ETH_HLEN + IPV6_HLEN, false)
        }
        _ => return false,
    };
    if filter.ip_proto != 0 && proto != filter.ip_proto {
        return false;
    }
    if !wants_ports {
        return true;
    }
    if proto != IPPROTO_UDP || fragment {
        return false;
    }
    let Some(udp) = bytes_at::<4>(ctx, l4) else {
        return false;
    };
    filter.port_in_range(u16::from_be_bytes([udp[2], udp[3]]))
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // No panic path survives optimisation; if one did, this loop would make
    // the verifier reject the program rather than let it misbehave.
    loop {}
}
