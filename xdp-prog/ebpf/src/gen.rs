//! skmem's traffic generator program (object `skmem-gen`), built for
//! `bpfel-unknown-none` by `skmem-xdp`'s build script and run by
//! `skmem_xdp::gen::Generator` with `BPF_PROG_TEST_RUN` in live-frames mode
//! (`BPF_F_TEST_XDP_LIVE_FRAMES`): never attached to an interface.
//!
//! The program returns `XDP_TX` for every frame. In live-frames mode the
//! kernel turns `XDP_TX` into a redirect to the `ingress_ifindex` given in
//! the test run's context, so each run transmits the prepared frame out of
//! that interface (through its `ndo_xdp_xmit`).
#![no_std]
#![no_main]

use aya_ebpf::{bindings::xdp_action::XDP_TX, macros::xdp, programs::XdpContext};

/// The program uses no GPL-only helper; this is the crate's own licence.
#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 18] = *b"MIT OR Apache-2.0\0";

/// Transmits every frame unchanged.
#[xdp]
pub fn skmem_gen(_ctx: XdpContext) -> u32 {
    XDP_TX
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}
