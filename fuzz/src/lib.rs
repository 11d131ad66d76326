//! What the fuzz targets that drive a real channel share: a network
//! namespace of the process's own, and the kernel's side of a channel's
//! rings.

use std::sync::atomic::AtomicU32;

use skmem::channel::Channel;
use skmem::schema::{RingInfo, RingKind};

/// Moves the calling thread (libFuzzer runs every input on it) into a new
/// network namespace — gone with the process, so a crash leaves nothing —
/// and brings its loopback up. Without root, says so and exits: the
/// target cannot run.
pub fn private_loopback(target: &str) {
    // SAFETY: unshare takes no pointer; it changes only this thread's
    // network namespace.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        eprintln!(
            "{target}: needs root for a network namespace and an AF_XDP socket: {}",
            std::io::Error::last_os_error()
        );
        std::process::exit(2);
    }
    let up = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .expect("ip (iproute2) runs");
    assert!(up.success(), "ip link set lo up");
}

/// Where ring `kind` of `ch` is in its span, as its schema says.
pub fn ring(ch: &Channel, kind: RingKind) -> RingInfo {
    ch.mapping()
        .schema()
        .expect("the channel's schema")
        .ring(kind)
        .expect("the ring")
}

/// Ring `kind`'s consumer (or producer) index, as the kernel's side of
/// the ring sees it.
pub fn index(ch: &Channel, kind: RingKind, consumer: bool) -> &AtomicU32 {
    let r = ring(ch, kind);
    let at = if consumer { r.consumer } else { r.producer };
    // SAFETY: the schema places the index, a 4-aligned u32, in this ring
    // inside the span the channel keeps mapped for as long as it lives.
    unsafe { &*ch.mapping().addr().add(at as usize).cast::<AtomicU32>() }
}
