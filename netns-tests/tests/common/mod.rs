//! Helpers shared by the integration tests.
#![allow(dead_code)]

use skmem_netns::DEFAULT_UDP_PORT;

/// Opens a copy-mode channel on queue 0 of `ifname`, over a fresh nexus
/// arena called `name` with `packets` packets; `tweak` adjusts the channel
/// parameters first.
pub fn copy_channel(
    name: &str,
    ifname: &str,
    packets: usize,
    tweak: impl FnOnce(&mut skmem::channel::ChannelParams),
) -> (skmem::arena::Arena, skmem::channel::Channel) {
    let mut np = skmem::arena::NexusParams::new(name);
    np.pool.packets = packets;
    let arena = skmem::arena::Arena::create_nexus(&np).unwrap();
    let mut cp = skmem::channel::ChannelParams::new(ifname, 0);
    cp.mode = skmem::channel::BindMode::Copy;
    tweak(&mut cp);
    let ch = skmem::channel::Channel::open(&arena, &cp).unwrap();
    (arena, ch)
}

/// Drains `ch`'s completions until the kernel holds no TX frame of it (5 s
/// at most), then accounts for its frames.
pub fn settle(ch: &mut skmem::channel::Channel) -> skmem::channel::FrameAccount {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while ch.account().kernel_tx > 0 && std::time::Instant::now() < deadline {
        ch.complete();
        std::thread::yield_now();
    }
    ch.account()
}

/// Reflects what `ch` receives back out of the interface (l2fwd on one
/// port) until `stop` (30 s at most); `inspect` sees each burst before it
/// goes. Sleeps in `poll` when nothing came.
pub fn reflect_until(
    ch: &mut skmem::channel::Channel,
    stop: &std::sync::atomic::AtomicBool,
    mut inspect: impl FnMut(&skmem::channel::Channel, &[skmem::channel::Frame]),
) {
    let mut rx = Vec::with_capacity(64);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !stop.load(std::sync::atomic::Ordering::Acquire) && std::time::Instant::now() < deadline {
        ch.complete();
        if ch.rx_burst(&mut rx, 64).unwrap() == 0 {
            ch.poll(5).unwrap();
            continue;
        }
        inspect(ch, &rx);
        ch.reflect(&mut rx).unwrap();
        assert!(rx.is_empty(), "reflect takes every frame");
    }
}

/// Once the forwarder thread `fwd` says it is `ready` (it must not end
/// first: a set-up failure there fails here, not by waiting forever), runs
/// `traffic`, then stops the forwarder and joins it.
pub fn drive<T, E>(
    fwd: std::thread::ScopedJoinHandle<'_, T>,
    ready: &std::sync::atomic::AtomicBool,
    stop: &std::sync::atomic::AtomicBool,
    traffic: impl FnOnce() -> E,
) -> (T, E) {
    use std::sync::atomic::Ordering;
    while !ready.load(Ordering::Acquire) && !fwd.is_finished() {
        std::thread::yield_now();
    }
    assert!(ready.load(Ordering::Acquire), "the forwarder did not start");
    let out = traffic();
    stop.store(true, Ordering::Release);
    (fwd.join().unwrap(), out)
}

/// Attaches skmem's XDP program to `ifname` (in the current namespace),
/// redirecting the harness's UDP flow (`DEFAULT_UDP_PORT`) and passing the
/// rest.
pub fn udp_redirect(ifname: &str, mode: skmem_xdp::AttachMode) -> skmem_xdp::XdpProgram {
    let filter = skmem_xdp::XdpFilter::new().with_udp_dst_ports(DEFAULT_UDP_PORT, DEFAULT_UDP_PORT);
    skmem_xdp::XdpProgram::attach(ifname, mode, Some(filter)).unwrap()
}

/// The error opening a channel on "lo" over a fresh 256-packet nexus
/// arena `name` gives once `tweak` has set a bad parameter (parameters are
/// checked before the interface is looked at, so no root is needed).
pub fn open_refused(
    name: &str,
    tweak: impl FnOnce(&mut skmem::channel::ChannelParams),
) -> skmem::Error {
    let mut np = skmem::arena::NexusParams::new(name);
    np.pool.packets = 256;
    let arena = skmem::arena::Arena::create_nexus(&np).unwrap();
    let mut cp = skmem::channel::ChannelParams::new("lo", 0);
    tweak(&mut cp);
    skmem::channel::Channel::open(&arena, &cp).unwrap_err()
}

/// Takes `n` frames for TX and queues them all, `len` bytes each from the
/// start of their buffers (whatever the buffers hold).
pub fn queue_fresh_frames(ch: &mut skmem::channel::Channel, n: usize, len: u32) {
    let mut frames = Vec::new();
    assert_eq!(ch.alloc_tx(&mut frames, n), n);
    for f in &mut frames {
        f.len = len;
    }
    assert_eq!(ch.tx_burst(&mut frames).unwrap(), n);
}

/// Writes `entries` into ring `kind` of `ch` and publishes them, as
/// another process mapping the arena could: the ring is found through the
/// span's schema. `T` is the ring's descriptor (`XdpDesc` for RX and TX, a
/// `u64` UMEM address for fill and completion). Only for rings the kernel
/// is not writing meanwhile (no traffic on the channel's queue).
pub fn forge_ring<T: Copy>(
    ch: &skmem::channel::Channel,
    kind: skmem::schema::RingKind,
    entries: &[T],
) {
    use std::sync::atomic::{AtomicU32, Ordering};
    let m = ch.mapping();
    // Read as a mapper reads it: whole, under its sequence lock.
    let ring = m.schema().unwrap().ring(kind).unwrap();
    assert_eq!(ring.desc_size as usize, std::mem::size_of::<T>());
    let base = m.addr();
    // SAFETY: the schema's producer offset is a 4-aligned u32 inside the
    // span, in a ring this channel mapped there and keeps mapped.
    let producer = unsafe { &*base.add(ring.producer as usize).cast::<AtomicU32>() };
    let mut prod = producer.load(Ordering::Acquire);
    for e in entries {
        let slot = (prod & (ring.entries - 1)) as usize;
        // SAFETY: the slot is inside the ring's descriptor array (masked
        // by its size), which the schema places inside the span; the
        // kernel writes no slot of this ring meanwhile (the caller's
        // promise).
        unsafe {
            base.add(ring.desc as usize + slot * ring.desc_size as usize)
                .cast::<T>()
                .write_unaligned(*e)
        };
        prod = prod.wrapping_add(1);
    }
    producer.store(prod, Ordering::Release);
}
