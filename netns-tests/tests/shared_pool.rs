//! One packet pool under two channels, on two queues of a veth: each
//! channel gives back only its own frames, so one can close while the
//! other receives — with the pool registered as two UMEMs, and as one
//! shared UMEM (`XDP_SHARED_UMEM`).
//!
//! B sends two flows, each from a thread pinned to one CPU: an AF_PACKET
//! sender that bypasses the qdisc picks the TX queue of its CPU, and veth
//! hands a frame sent on B's queue i to A's queue i, so flow i reaches
//! queue i's channel.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams, FrameAccount};
use skmem::pool::{PacketPool, PoolParams};
use skmem_netns::{NetnsPair, PairConfig, Sender, SequenceChecker, Side};
use skmem_xdp::AttachMode;

mod common;

/// Frames of flow 0 (queue 0's channel, closed once it has them all).
const FLOW0: u64 = 1024;
/// Frames of flow 1 (queue 1's channel): half before queue 0's channel
/// closes, half after.
const FLOW1: u64 = 2048;

/// How queue 1's channel shares the pool with queue 0's.
#[derive(Clone, Copy, PartialEq)]
enum Share {
    /// Each socket registers the pool as its own UMEM.
    TwoUmems,
    /// One UMEM, registered by queue 0's socket (`XDP_SHARED_UMEM`).
    SharedUmem,
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes
    // inside it; sched_setaffinity reads `size_of` bytes of it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set),
            0,
            "pinning to cpu{cpu}"
        );
    }
}

/// Receives `count` frames of one flow on `ch`, each in order and intact
/// (the UDP source port says which flow); counts them in `got`.
fn receive(ch: &mut Channel, count: u64, src_port: u16, got: &AtomicU64) -> Vec<String> {
    let mut seq = SequenceChecker::new();
    let mut errors = Vec::new();
    let mut frames = Vec::with_capacity(64);
    let deadline = Instant::now() + Duration::from_secs(30);
    while seq.next_expected() < count && Instant::now() < deadline && errors.len() < 5 {
        if ch.rx_burst(&mut frames, 64).unwrap() == 0 {
            ch.poll(10).unwrap();
            continue;
        }
        for f in &frames {
            let data = ch.data(f).unwrap();
            if data.get(34..36) != Some(&src_port.to_be_bytes()[..]) {
                errors.push(format!("a frame of another flow: {:02x?}", &data[..42]));
            } else if let Err(e) = seq.check(data) {
                errors.push(e.to_string());
            }
        }
        ch.free_rx(&mut frames).unwrap();
        got.store(seq.next_expected(), Ordering::Release);
    }
    errors
}

/// Sends frames `from..to` of `spec` from the calling thread, at most 32
/// beyond what `got` says arrived.
fn send(tx: &Sender, spec: &skmem_netns::FrameSpec, from: u64, to: u64, got: &AtomicU64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut next = from;
    while next < to && Instant::now() < deadline {
        if next - got.load(Ordering::Acquire) < 32 {
            tx.send_frame(&spec.build(next).unwrap()).unwrap();
            next += 1;
        } else {
            std::thread::yield_now();
        }
    }
    // A timeout is reported by the receiver, with the kernel's counters.
    if next != to {
        eprintln!("the sender timed out at {next} of {to}");
    }
}

/// What queue 1's side saw: its frames' checks, the account just after
/// queue 0's channel closed (while its own frames were in flight), and the
/// account at the end.
struct Outcome {
    errors: Vec<String>,
    after_close: FrameAccount,
    end: FrameAccount,
    bad_descs: u64,
}

fn two_channels_one_pool(share: Share) -> Outcome {
    let pair = NetnsPair::with_config(PairConfig::default().queues(2, 2)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec0 = pair.frame_spec(Side::B, 64).unwrap();
    let spec1 = skmem_netns::FrameSpec {
        src_port: spec0.src_port + 2,
        ..spec0.clone()
    };
    let (got0, got1) = (AtomicU64::new(0), AtomicU64::new(0));
    let ready = AtomicBool::new(false);
    let closed = AtomicBool::new(false);

    std::thread::scope(|s| {
        let a = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut prog = common::udp_redirect(&ifname, AttachMode::Native);
                // One pool, a worker slot per channel; an arena (port) per
                // queue over it.
                let pool = PacketPool::create(
                    "shared",
                    &PoolParams::default().with(|p| {
                        p.packets = 2048;
                        p.workers = 2;
                    }),
                )
                .unwrap();
                let arena = |q: u32| {
                    let mut np = NexusParams::new(format!("shared.q{q}"));
                    np.rx_pool = Some(Arc::clone(&pool));
                    Arena::create_nexus(&np).unwrap()
                };
                let (a0, a1) = (arena(0), arena(1));
                let params = |q| {
                    let mut cp = ChannelParams::new(&ifname, q);
                    cp.mode = BindMode::Copy;
                    cp
                };
                let mut c0 = Channel::open(&a0, &params(0)).unwrap();
                let mut c1 = match share {
                    Share::TwoUmems => Channel::open(&a1, &params(1)).unwrap(),
                    Share::SharedUmem => Channel::open_shared(&a1, &params(1), &c0).unwrap(),
                };
                prog.add_socket(0, c0.fd()).unwrap();
                prog.add_socket(1, c1.fd()).unwrap();
                c0.refill().unwrap();
                c1.refill().unwrap();
                // Each sees the other's frames as another holder's.
                let a = c1.account();
                assert_eq!(a.others, c0.account().kernel_rx, "{a:?}");
                a.check(true).unwrap();
                ready.store(true, Ordering::Release);
                let (got0, got1, closed, spec1) = (&got0, &got1, &closed, &spec1);
                std::thread::scope(|t| {
                    let r1 = t.spawn(move || {
                        let mut errors = receive(&mut c1, FLOW1 / 2, spec1.src_port, got1);
                        while !closed.load(Ordering::Acquire) {
                            std::thread::yield_now();
                        }
                        // Queue 0's channel has closed; queue 1's frames are
                        // still in its rings.
                        let after_close = c1.account();
                        errors.extend(receive_rest(&mut c1, spec1, got1));
                        Outcome {
                            errors,
                            after_close,
                            end: common::settle(&mut c1),
                            bad_descs: c1.counters().bad_descs,
                        }
                    });
                    let errors0 = receive(&mut c0, FLOW0, spec0.src_port, got0);
                    // Closed while queue 1 receives: its socket goes, and
                    // only its own frames go back to the pool.
                    drop(c0);
                    prog.remove_socket(0).unwrap();
                    closed.store(true, Ordering::Release);
                    let mut outcome = r1.join().unwrap();
                    outcome.errors.extend(errors0);
                    outcome
                })
            })
        });
        while !ready.load(Ordering::Acquire) && !a.is_finished() {
            std::thread::yield_now();
        }
        let b = |cpu: usize, spec: &skmem_netns::FrameSpec, got: &AtomicU64, count: u64| {
            pair.in_ns(Side::B, || {
                pin(cpu);
                let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
                if cpu == 0 {
                    send(&tx, spec, 0, count, got);
                } else {
                    send(&tx, spec, 0, count / 2, got);
                    // The second half waits for queue 0's channel to close
                    // and for queue 1's receiver to have taken the whole
                    // first half: a frame of the second half sent earlier
                    // would be taken by the first half's last burst.
                    while !closed.load(Ordering::Acquire) || got.load(Ordering::Acquire) < count / 2
                    {
                        std::thread::yield_now();
                    }
                    send(&tx, spec, count / 2, count, got);
                }
            })
        };
        std::thread::scope(|t| {
            t.spawn(|| b(0, &spec0, &got0, FLOW0));
            t.spawn(|| b(1, &spec1, &got1, FLOW1));
        });
        let mut outcome = a.join().unwrap();
        if !outcome.errors.is_empty() {
            // Where a lost frame went: the veths' own counters (per queue:
            // XDP redirects, drops, the peer's TX drops) and the stacks'
            // UDP counters (a frame the XDP program passed on).
            for side in [Side::A, Side::B] {
                let ifname = pair.ifname(side).to_owned();
                outcome
                    .errors
                    .push(pair.in_ns(side, || kernel_view(&ifname)));
            }
        }
        outcome
    })
}

/// `ethtool -S` (non-zero lines) and the UDP counters of the current
/// network namespace.
fn kernel_view(ifname: &str) -> String {
    let ethtool = std::process::Command::new("ethtool")
        .args(["-S", ifname])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_else(|e| format!("ethtool: {e}"));
    let nonzero: Vec<&str> = ethtool
        .lines()
        .filter(|l| !l.trim_end().ends_with(": 0"))
        .collect();
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
    format!("{ifname}: {} | {}", nonzero.join(" "), udp.join(" "))
}

/// Receives flow 1's second half on `ch` (packets FLOW1/2..FLOW1).
fn receive_rest(ch: &mut Channel, spec: &skmem_netns::FrameSpec, got: &AtomicU64) -> Vec<String> {
    let mut seq = SequenceChecker::starting_at(FLOW1 / 2);
    let mut errors = Vec::new();
    let mut frames = Vec::with_capacity(64);
    let deadline = Instant::now() + Duration::from_secs(30);
    while seq.next_expected() < FLOW1 && Instant::now() < deadline && errors.len() < 5 {
        if ch.rx_burst(&mut frames, 64).unwrap() == 0 {
            ch.poll(10).unwrap();
            continue;
        }
        for f in &frames {
            let data = ch.data(f).unwrap();
            if data.get(34..36) != Some(&spec.src_port.to_be_bytes()[..]) {
                errors.push("a frame of another flow".into());
            } else if let Err(e) = seq.check(data) {
                errors.push(e.to_string());
            }
        }
        ch.free_rx(&mut frames).unwrap();
        got.store(seq.next_expected(), Ordering::Release);
    }
    if seq.next_expected() < FLOW1 {
        errors.push(format!(
            "only {} of {FLOW1} frames; kernel {:?}; account {:?}; counters {:?}",
            seq.next_expected(),
            ch.xsk_stats(),
            ch.account(),
            ch.counters()
        ));
    }
    errors
}

fn check(o: &Outcome) {
    assert!(o.errors.is_empty(), "{:?}", o.errors);
    assert_eq!(
        o.bad_descs, 0,
        "a frame given back by the closed channel came back as a lie"
    );
    // Queue 0's channel is gone and took none of queue 1's frames: nothing
    // is another holder's, and queue 1's rings hold exactly its frames.
    for a in [&o.after_close, &o.end] {
        assert_eq!(a.others, 0, "{a:?}");
        a.check(true).unwrap();
    }
    assert_eq!(o.end.app, 0);
}

#[test]
fn closing_one_of_two_channels_on_one_pool_leaves_the_others_frames() {
    skmem_netns::require_root!();
    check(&two_channels_one_pool(Share::TwoUmems));
}

#[test]
fn shared_umem_carries_both_queues_and_survives_closing_the_first_socket() {
    skmem_netns::require_root!();
    check(&two_channels_one_pool(Share::SharedUmem));
}

#[test]
fn a_shared_umem_refuses_another_pool_the_same_queue_and_other_options() {
    skmem_netns::require_root!();
    let pair = NetnsPair::with_config(PairConfig::default().queues(2, 2)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || {
        let (first_arena, first) = common::copy_channel("share.first", &ifname, 512, |_| {});
        let pool = first.pool().clone();
        let over = |name: &str| {
            let mut np = NexusParams::new(name);
            np.rx_pool = Some(pool.clone());
            Arena::create_nexus(&np).unwrap()
        };
        let rule = |e: skmem::Error| match e {
            skmem::Error::Channel(skmem::ChannelError::InvalidParams { rule, .. }) => rule,
            e => panic!("{e}"),
        };
        let mut cp = ChannelParams::new(&ifname, 1);
        cp.mode = BindMode::Copy;
        // Another pool.
        let mut np = NexusParams::new("share.other");
        np.pool.packets = 512;
        let other = Arena::create_nexus(&np).unwrap();
        let e = Channel::open_shared(&other, &cp, &first).unwrap_err();
        assert!(rule(e).contains("one pool"));
        // The first channel's own queue.
        let a = over("share.same");
        let mut same = cp.clone();
        same.queue = 0;
        assert!(rule(Channel::open_shared(&a, &same, &first).unwrap_err()).contains("another queue"));
        // Other bind or UMEM options than the first socket's.
        let mut opts = cp.clone();
        opts.headroom = 256;
        assert!(rule(Channel::open_shared(&a, &opts, &first).unwrap_err()).contains("UMEM options"));
        let mut mode = cp.clone();
        mode.need_wakeup = false;
        assert!(rule(Channel::open_shared(&a, &mode, &first).unwrap_err()).contains("binds as"));
        // The first arena has its channel already.
        assert!(rule(Channel::open(&first_arena, &cp).unwrap_err()).contains("already has a channel"));
        // And the refusals took nothing: the second channel opens.
        let second = Channel::open_shared(&a, &cp, &first).unwrap();
        drop(second);
        drop(first);
    });
}
