//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skmem_netns_tests::{
    check_payload, FrameSpec, NetnsPair, Receiver, RxFilter, SendReport, Sender, SequenceChecker,
    Side, DEFAULT_UDP_PORT,
};

/// Output of a command in the root namespace (panics if it fails).
pub fn root_cmd(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names listed by `ip netns list` (first word of each line).
pub fn netns_list() -> Vec<String> {
    root_cmd("ip", &["netns", "list"])
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// Interface names of the root namespace.
pub fn root_ifnames() -> Vec<String> {
    root_cmd("ip", &["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_owned())
        .collect()
}

/// Asserts that nothing of a pair with these names is left.
pub fn assert_gone(ns: &[String], ifs: &[String]) {
    let list = netns_list();
    let links = root_ifnames();
    for n in ns {
        assert!(!list.contains(n), "namespace {n} still listed: {list:?}");
        assert!(
            !std::path::Path::new("/var/run/netns").join(n).exists(),
            "/var/run/netns/{n} still exists"
        );
    }
    for i in ifs {
        assert!(!links.contains(i), "interface {i} left in root namespace");
    }
}

/// Names of both namespaces and both interfaces of `pair`.
pub fn names(pair: &NetnsPair) -> (Vec<String>, Vec<String>) {
    (
        vec![
            pair.ns_name(Side::A).to_owned(),
            pair.ns_name(Side::B).to_owned(),
        ],
        vec![
            pair.ifname(Side::A).to_owned(),
            pair.ifname(Side::B).to_owned(),
        ],
    )
}

/// Result of [`transfer`].
#[derive(Debug)]
pub struct Transfer {
    pub report: SendReport,
    pub in_order: u64,
    pub errors: Vec<String>,
    pub rx_elapsed: Duration,
    pub socket_drops: u32,
}

/// Sends `count` frames of `size` bytes from B to A, paced by `pace`
/// (`Some(window)`, or `None` for a rate of `fps`), and checks with an
/// AF_PACKET receiver on A that they arrive intact and in order.
pub fn transfer(
    pair: &NetnsPair,
    size: usize,
    count: u64,
    window: Option<u64>,
    fps: f64,
) -> Transfer {
    let spec = pair.frame_spec(Side::B, size).unwrap();
    let mut rx = Receiver::open(pair, Side::A, RxFilter::udp_port(spec.dst_port)).unwrap();
    let tx = Sender::open(pair, Side::B).unwrap();
    let received = AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let rx_thread = s.spawn(|| {
            let start = Instant::now();
            let mut seq = SequenceChecker::new();
            let mut errors = Vec::new();
            let hard_deadline = start + Duration::from_secs(30);
            while seq.next_expected() < count && Instant::now() < hard_deadline {
                match rx.recv(Duration::from_millis(200)) {
                    Ok(Some(f)) => {
                        if let Err(e) = seq.check(f) {
                            if errors.len() < 10 {
                                errors.push(e.to_string());
                            }
                            break;
                        }
                        received.fetch_add(1, Ordering::Release);
                    }
                    // Idle: stop once the sender has finished and nothing
                    // more arrives.
                    Ok(None) if done.load(Ordering::Acquire) => break,
                    Ok(None) => {}
                    Err(e) => {
                        errors.push(e.to_string());
                        break;
                    }
                }
            }
            let (_, drops) = rx.stats().unwrap();
            (seq.next_expected(), errors, start.elapsed(), drops)
        });
        let report = match window {
            Some(w) => tx.send_paced(
                &spec,
                count,
                w,
                || received.load(Ordering::Acquire),
                Duration::from_secs(20),
            ),
            None => tx.send_rate(&spec, count, fps, Duration::from_secs(20)),
        }
        .unwrap();
        done.store(true, Ordering::Release);
        let (in_order, errors, rx_elapsed, socket_drops) = rx_thread.join().unwrap();
        Transfer {
            report,
            in_order,
            errors,
            rx_elapsed,
            socket_drops,
        }
    })
}

/// Sends `frames` frames of `spec` from B, at most `window` on the round
/// trip, and checks each one that comes back: MACs swapped, the size sent,
/// in order, payload intact. Counts them in `back`; returns the errors.
pub fn round_trip_from_b(
    pair: &NetnsPair,
    spec: &FrameSpec,
    frames: u64,
    window: u64,
    back: &AtomicU64,
) -> Vec<String> {
    round_trip(pair, spec, frames, window, back, true)
}

/// [`round_trip_from_b`] for paths that may reorder (frames spread over
/// workers round-robin): each frame must come back exactly once, in any
/// order (at most 65 536 frames: the on-wire number names each).
pub fn round_trip_from_b_any_order(
    pair: &NetnsPair,
    spec: &FrameSpec,
    frames: u64,
    window: u64,
    back: &AtomicU64,
) -> Vec<String> {
    assert!(frames <= 1 << 16);
    round_trip(pair, spec, frames, window, back, false)
}

fn round_trip(
    pair: &NetnsPair,
    spec: &FrameSpec,
    frames: u64,
    window: u64,
    back: &AtomicU64,
    ordered: bool,
) -> Vec<String> {
    let mut seen = vec![false; 1 << 16];
    let (mac_a, mac_b) = (pair.mac(Side::A), pair.mac(Side::B));
    pair.in_ns(Side::B, || {
        let mut rxb = Receiver::open_in_current_ns(
            pair.ifindex(Side::B),
            RxFilter::udp_port(DEFAULT_UDP_PORT),
        )
        .unwrap();
        let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
        let mut seq = SequenceChecker::new();
        let mut errors = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut sent = 0u64;
        while back.load(Ordering::Relaxed) < frames && Instant::now() < deadline {
            while sent < frames && sent - back.load(Ordering::Relaxed) < window {
                tx.send_frame(&spec.build(sent).unwrap()).unwrap();
                sent += 1;
            }
            if let Some(f) = rxb.recv(Duration::from_millis(200)).unwrap() {
                if f[0..6] != mac_b || f[6..12] != mac_a {
                    errors.push(format!("MACs not swapped: {:02x?}", &f[..12]));
                }
                if f.len() != spec.size {
                    errors.push(format!("{} bytes came back", f.len()));
                }
                if ordered {
                    if let Err(e) = seq.check(f) {
                        errors.push(e.to_string());
                    }
                }
                match check_payload(f) {
                    Err(e) => errors.push(e.to_string()),
                    Ok(info) if !ordered => {
                        let n = usize::from(info.packet_no);
                        if std::mem::replace(&mut seen[n], true) {
                            errors.push(format!("packet {n} came back twice"));
                        }
                    }
                    Ok(_) => {}
                }
                back.fetch_add(1, Ordering::Relaxed);
            }
        }
        errors
    })
}

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
