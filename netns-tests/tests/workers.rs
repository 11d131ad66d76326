//! Workers on the data path: the owner's channel lends received packets to
//! workers that mapped its arena, they process them in place and hand them
//! back, and every frame comes back once, intact and MAC-swapped.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams};
use skmem::lend::{ArenaOffer, OfferPolicy};
use skmem::workers::{Spread, WorkerChannel, WorkerCounters, WorkerHub};
use skmem_netns::{NetnsPair, PairConfig, Side};
use skmem_xdp::AttachMode;

mod common;

const FRAMES: u64 = 4096;

fn sock(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("skmem-workers-{}-{tag}.sock", std::process::id()))
}

/// Waits for the owner to serve its offer at `path` (the socket appears
/// once it has).
fn wait_offer(path: &std::path::Path) {
    let by = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < by, "no offer");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// An owner in A's namespace: the XDP program, a nexus arena with worker
/// slots, its channel on queue 0 (copy mode, fill ring primed), the offer
/// at `path` and the hub lending to the workers. Dropped hub first.
struct Owner {
    hub: WorkerHub,
    offer: ArenaOffer,
    _arena: Arena,
    _prog: skmem_xdp::XdpProgram,
}

impl Owner {
    fn serve(ifname: &str, path: &std::path::Path, np: &NexusParams, spread: Spread) -> Owner {
        let mut prog = common::udp_redirect(ifname, AttachMode::Auto);
        let arena = Arena::create_nexus(np).unwrap();
        let mut cp = ChannelParams::new(ifname, 0);
        cp.mode = BindMode::Copy;
        let mut ch = Channel::open(&arena, &cp).unwrap();
        prog.add_socket(0, ch.fd()).unwrap();
        ch.refill().unwrap();
        let offer = ArenaOffer::serve(&arena, path, OfferPolicy::root_only()).unwrap();
        let hub = WorkerHub::new(ch, &offer, spread).unwrap();
        Owner {
            hub,
            offer,
            _arena: arena,
            _prog: prog,
        }
    }

    /// Polls until `n` workers have joined (10 s at most).
    fn await_workers(&mut self, n: usize) {
        let by = Instant::now() + Duration::from_secs(10);
        while self.hub.workers().iter().flatten().count() < n {
            assert!(Instant::now() < by, "workers did not join");
            self.hub.poll().unwrap();
            std::thread::yield_now();
        }
    }

    /// Lends and takes back until `stop` (40 s at most), sleeping on the
    /// hub when nothing moves.
    fn serve_until(&mut self, stop: &AtomicBool) {
        let deadline = Instant::now() + Duration::from_secs(40);
        while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
            if self.hub.poll().unwrap() == 0 {
                self.hub.wait(5).unwrap();
            }
        }
    }

    /// Once the workers went: polls until every frame lent came back (10
    /// s at most) and the TX ring drained, then checks the channel's books
    /// (nothing held, nothing lent) and gives each worker slot's counters.
    fn settle(&mut self) -> Vec<WorkerCounters> {
        let hub = &mut self.hub;
        let gone_by = Instant::now() + Duration::from_secs(10);
        while hub.workers().iter().flatten().count() > 0 || hub.lent() > 0 {
            assert!(
                Instant::now() < gone_by,
                "the workers' frames did not come back: {} still lent",
                hub.lent()
            );
            hub.poll().unwrap();
            std::thread::yield_now();
        }
        let settle_by = Instant::now() + Duration::from_secs(5);
        while hub.channel_mut().account().kernel_tx > 0 && Instant::now() < settle_by {
            hub.poll().unwrap();
        }
        let account = hub.channel_mut().account();
        account.check(true).unwrap();
        assert_eq!((account.app, account.lent), (0, 0), "{account:?}");
        hub.counters().to_vec()
    }
}

/// A worker thread's loop: l2fwd in place until `stop`.
fn l2fwd_worker(path: &std::path::Path, stop: &AtomicBool) -> u64 {
    let mut w = WorkerChannel::connect(path).unwrap();
    let mut frames = Vec::with_capacity(64);
    let mut done = 0;
    while !stop.load(Ordering::Acquire) {
        if w.rx_burst(&mut frames, 64).unwrap() == 0 {
            w.wait(5).unwrap();
            continue;
        }
        for f in &mut frames {
            let d = w.data_mut(f).unwrap();
            for i in 0..6 {
                d.swap(i, i + 6);
            }
        }
        done += frames.len() as u64;
        while !frames.is_empty() {
            w.tx_burst(&mut frames).unwrap();
        }
    }
    done
}

/// l2fwd of FRAMES frames from B through `workers` worker threads; the
/// owner's counters per slot.
fn l2fwd_through(workers: usize, spread: Spread, tag: &str) -> Vec<WorkerCounters> {
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    let path = sock(tag);
    let back = AtomicU64::new(0);
    let ready = AtomicBool::new(false);
    let stop_workers = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let (counters, errors, per_worker) = std::thread::scope(|s| {
        let owner = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut np = NexusParams::new(format!("wk{tag}")).with_worker_slots(workers);
                np.pool.packets = 2048;
                let mut owner = Owner::serve(&ifname, &path, &np, spread);
                owner.await_workers(workers);
                ready.store(true, Ordering::Release);
                owner.serve_until(&stop);
                // The workers go: whatever they held comes back.
                owner.settle()
            })
        });
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    wait_offer(&path);
                    l2fwd_worker(&path, &stop_workers)
                })
            })
            .collect();
        while !ready.load(Ordering::Acquire) {
            assert!(
                !owner.is_finished(),
                "the owner stopped before it was ready"
            );
            std::thread::yield_now();
        }
        let errors = if spread == Spread::RoundRobin {
            skmem_netns::round_trip_from_b_any_order(&pair, &spec, FRAMES, 32, &back)
        } else {
            skmem_netns::round_trip_from_b(&pair, &spec, FRAMES, 32, &back)
        };
        stop_workers.store(true, Ordering::Release);
        let per_worker: Vec<u64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        stop.store(true, Ordering::Release);
        (owner.join().unwrap(), errors, per_worker)
    });
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
    assert_eq!(back.load(Ordering::Relaxed), FRAMES);
    assert_eq!(per_worker.iter().sum::<u64>(), FRAMES, "{per_worker:?}");
    for c in &counters {
        assert_eq!(c.bad(), 0, "{c:?}");
        assert_eq!(c.joins, 1);
        assert_eq!(c.lent, c.sent + c.freed + c.reclaimed, "{c:?}");
    }
    assert_eq!(counters.iter().map(|c| c.sent).sum::<u64>(), FRAMES);
    counters
}

#[test]
fn l2fwd_through_one_worker_returns_every_frame_once_swapped() {
    skmem_netns::require_root!();
    l2fwd_through(1, Spread::FlowHash, "one");
}

#[test]
fn l2fwd_through_two_workers_round_robin_uses_both() {
    skmem_netns::require_root!();
    let c = l2fwd_through(2, Spread::RoundRobin, "rr");
    assert!(c.iter().all(|c| c.lent > FRAMES / 4), "{c:?}");
}

#[test]
fn l2fwd_through_two_workers_by_flow_keeps_the_flow_on_one() {
    skmem_netns::require_root!();
    // The harness sends one UDP flow: one worker gets all of it.
    let c = l2fwd_through(2, Spread::FlowHash, "flow");
    let mut lent: Vec<u64> = c.iter().map(|c| c.lent).collect();
    lent.sort_unstable();
    assert_eq!(lent, [0, FRAMES], "{c:?}");
}

/// A hostile worker's hand-backs: an address past the UMEM, every frame
/// not lent to it, one of its own twice, one with data past its buffer,
/// one with a fragment flag. Returns how many frames it was lent.
fn hostile_worker(path: &std::path::Path) -> u64 {
    use skmem::channel::{XdpDesc, XDP_PKT_CONTD};
    use skmem::workers::FREE;
    let mut w = WorkerChannel::connect(path).unwrap();
    let umem = w.arena().region(skmem::region::RegionId::BufDef).unwrap().1 as u64;
    let mut own = Vec::new();
    let by = Instant::now() + Duration::from_secs(20);
    while own.len() < 4 {
        assert!(Instant::now() < by, "the hostile worker got no frames");
        if w.rx_burst(&mut own, 64).unwrap() == 0 {
            w.wait(5).unwrap();
        }
    }
    let desc = |addr, len, options| XdpDesc { addr, len, options };
    let bufs: Vec<u64> = own.iter().map(|f| f.addr() & !2047).collect();
    let mut bad = vec![desc(umem + 100, 64, FREE)];
    bad.extend(
        (0..umem)
            .step_by(2048)
            .filter(|b| !bufs.contains(b))
            .map(|b| desc(b, 60, FREE)),
    );
    bad.push(desc(own[0].addr(), own[0].len, FREE));
    bad.push(desc(own[0].addr(), own[0].len, FREE));
    bad.push(desc(own[1].addr(), 4096, FREE));
    bad.push(desc(own[2].addr(), own[2].len, XDP_PKT_CONTD));
    let mut rest = &bad[..];
    while !rest.is_empty() {
        let n = w.hand_back_raw(rest).unwrap();
        rest = &rest[n..];
        if n == 0 {
            std::thread::yield_now();
        }
    }
    let mut honest: Vec<_> = own.drain(3..).collect();
    while !honest.is_empty() {
        w.free(&mut honest).unwrap();
    }
    w.stats().received
}

/// A hostile worker beside an honest one: each bad descriptor is counted
/// against the hostile one, the honest one forwards throughout, and every
/// frame is accounted for at the end.
#[test]
fn a_hostile_workers_bad_descriptors_are_counted_and_hurt_no_one_else() {
    skmem_netns::require_root!();
    use skmem_netns::{Receiver, RxFilter, Sender, DEFAULT_UDP_PORT};
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    let path = sock("hostile");
    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    let stop_good = AtomicBool::new(false);
    let (counters, returned, good) = std::thread::scope(|s| {
        let owner = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut np = NexusParams::new("wkhostile").with_worker_slots(2);
                np.pool.packets = 2048;
                let mut owner = Owner::serve(&ifname, &path, &np, Spread::RoundRobin);
                owner.await_workers(2);
                ready.store(true, Ordering::Release);
                owner.serve_until(&stop);
                owner.settle()
            })
        });
        let good = s.spawn(|| {
            wait_offer(&path);
            l2fwd_worker(&path, &stop_good)
        });
        let hostile = s.spawn(|| {
            wait_offer(&path);
            hostile_worker(&path)
        });
        while !ready.load(Ordering::Acquire) {
            assert!(
                !owner.is_finished(),
                "the owner stopped before it was ready"
            );
            std::thread::yield_now();
        }
        // B sends 2048 frames, 32 at a time, and takes what comes back
        // until the path is quiet.
        let returned = pair.in_ns(Side::B, || {
            let mut rx = Receiver::open_in_current_ns(
                pair.ifindex(Side::B),
                RxFilter::udp_port(DEFAULT_UDP_PORT),
            )
            .unwrap();
            let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
            let mut back = 0u64;
            for round in 0..64u64 {
                for i in 0..32 {
                    tx.send_frame(&spec.build(round * 32 + i).unwrap()).unwrap();
                }
                while let Some(f) = rx.recv(Duration::from_millis(20)).unwrap() {
                    assert!(skmem_netns::check_payload(f).is_ok());
                    back += 1;
                }
            }
            while rx.recv(Duration::from_millis(200)).unwrap().is_some() {
                back += 1;
            }
            back
        });
        let lent_hostile = hostile.join().unwrap();
        assert!(lent_hostile >= 4);
        stop_good.store(true, Ordering::Release);
        let good = good.join().unwrap();
        stop.store(true, Ordering::Release);
        (owner.join().unwrap(), returned, good)
    });
    let (hostile, honest): (Vec<&WorkerCounters>, Vec<&WorkerCounters>) =
        counters.iter().partition(|c| c.bad() > 0);
    assert_eq!((hostile.len(), honest.len()), (1, 1), "{counters:?}");
    let (h, g) = (hostile[0], honest[0]);
    assert_eq!(h.bad_range, 1, "{h:?}");
    assert!(h.bad_not_lent + h.bad_other_worker > 1000, "{h:?}");
    assert_eq!((h.bad_twice, h.bad_length, h.bad_chain), (1, 1, 1), "{h:?}");
    // The honest worker forwarded throughout, and all it sent came back.
    assert_eq!(g.sent, good);
    assert_eq!(returned, good);
    assert!(good > 1000, "the honest worker forwarded only {good}");
}

/// A worker that falls behind: its ring fills, the owner drops for it and
/// says so in the flow advisory (its flow controlled) and the nexus
/// advisory (its drops, its ring's occupancy, its pid); once it catches
/// up the flow is no longer controlled.
#[test]
fn a_worker_that_falls_behind_reads_its_flow_controlled_then_released() {
    skmem_netns::require_root!();
    use skmem_netns::Sender;
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    let path = sock("adv");
    let ready = AtomicBool::new(false);
    let sent = AtomicBool::new(false);
    let stop = AtomicBool::new(false);
    // The owner stops whatever happens here (a failed assertion too).
    struct StopOnDrop<'a>(&'a AtomicBool);
    impl Drop for StopOnDrop<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Release);
        }
    }
    std::thread::scope(|s| {
        let owner = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut np = NexusParams::new("wkadv").with_worker_slots(1);
                np.pool.packets = 4096;
                np.worker_ring_entries = 256;
                let mut owner = Owner::serve(&ifname, &path, &np, Spread::FlowHash);
                let hub = &mut owner.hub;
                let deadline = Instant::now() + Duration::from_secs(40);
                // Whether the hub said the worker was behind while its
                // ring was full.
                let mut behind_when_full = false;
                while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                    if hub.workers()[0].is_some() {
                        ready.store(true, Ordering::Release);
                    }
                    if hub.poll().unwrap() == 0 {
                        hub.wait(2).unwrap();
                    }
                    if hub.counters()[0].dropped_full > 0 && hub.lent() >= 256 {
                        behind_when_full |= hub.behind();
                    }
                }
                // The worker went: nobody is behind.
                while hub.workers()[0].is_some() && Instant::now() < deadline {
                    hub.poll().unwrap();
                    hub.wait(2).unwrap();
                }
                (hub.counters()[0], behind_when_full, hub.behind())
            })
        });
        let _stop = StopOnDrop(&stop);
        wait_offer(&path);
        let mut w = WorkerChannel::connect(&path).unwrap();
        while !ready.load(Ordering::Acquire) {
            assert!(!owner.is_finished());
            std::thread::yield_now();
        }
        s.spawn(|| {
            pair.in_ns(Side::B, || {
                let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
                for i in 0..1024 {
                    tx.send_frame(&spec.build(i).unwrap()).unwrap();
                }
            });
            sent.store(true, Ordering::Release);
        });
        // The worker reads nothing: its ring (256) fills, the rest drops.
        let by = Instant::now() + Duration::from_secs(20);
        let (nexus, flows) = loop {
            let (nexus, flows) = w.advisories().unwrap();
            let nexus = nexus.expect("a worker arena has a nexus advisory");
            if sent.load(Ordering::Acquire) && nexus.slots[0].dropped_full > 0 && !flows.is_empty()
            {
                break (nexus, flows);
            }
            assert!(Instant::now() < by, "no advisory: {nexus:?} {flows:?}");
            std::thread::yield_now();
        };
        assert_eq!(nexus.slots.len(), 1);
        assert_eq!(nexus.slots[0].pid, std::process::id());
        assert!(nexus.slots[0].occupancy > 0, "{nexus:?}");
        assert_eq!(flows.len(), 1, "one flow: {flows:?}");
        assert!(
            flows[0].controlled && flows[0].drops > 0 && flows[0].slot == 0,
            "{flows:?}"
        );
        // It catches up: the flow is released.
        let mut frames = Vec::new();
        loop {
            let (_, flows) = w.advisories().unwrap();
            if flows.iter().all(|f| !f.controlled) {
                assert!(flows[0].drops > 0, "the drops stay counted");
                break;
            }
            assert!(Instant::now() < by, "the flow stayed controlled: {flows:?}");
            w.rx_burst(&mut frames, 64).unwrap();
            while !frames.is_empty() {
                w.free(&mut frames).unwrap();
            }
        }
        drop(w);
        stop.store(true, Ordering::Release);
        let (c, behind_when_full, behind_after) = owner.join().unwrap();
        assert!(
            c.dropped_full > 0 && c.lent + c.dropped_full >= 1024 - 64,
            "{c:?}"
        );
        assert!(behind_when_full, "a full ring is a worker behind");
        assert!(!behind_after, "no worker, nobody behind");
    });
}

/// The owner redirects a worker that holds frames: the worker's span goes
/// to zero pages and its next call is an error, not a crash; every frame
/// lent to it comes back to the owner.
#[test]
fn a_redirected_worker_errs_and_its_frames_come_back() {
    skmem_netns::require_root!();
    use skmem_netns::Sender;
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    let path = sock("redirect");
    // How many frames the worker holds (0: not yet), and whether the
    // owner has seen its frames come back.
    let held = std::sync::atomic::AtomicUsize::new(0);
    let back = AtomicBool::new(false);
    std::thread::scope(|s| {
        let owner = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut np = NexusParams::new("wkredir").with_worker_slots(1);
                np.pool.packets = 2048;
                let mut owner = Owner::serve(&ifname, &path, &np, Spread::FlowHash);
                let hub = &mut owner.hub;
                // The worker holds what it took: wait for its count.
                let by = Instant::now() + Duration::from_secs(20);
                let held = loop {
                    hub.poll().unwrap();
                    match held.load(Ordering::Acquire) {
                        0 => assert!(Instant::now() < by, "the worker never held its frames"),
                        n => break n,
                    }
                    std::thread::yield_now();
                };
                assert_eq!(hub.lent() as usize, held);
                assert!(
                    !owner.offer.redirect(std::process::id()).unwrap(),
                    "the channel's mapping stays"
                );
                let by = Instant::now() + Duration::from_secs(10);
                while hub.lent() > 0 || hub.workers()[0].is_some() {
                    assert!(Instant::now() < by, "still lent: {}", hub.lent());
                    hub.poll().unwrap();
                    std::thread::yield_now();
                }
                back.store(true, Ordering::Release);
                let account = hub.channel_mut().account();
                account.check(true).unwrap();
                assert_eq!(account.lent, 0);
                hub.counters()[0]
            })
        });
        wait_offer(&path);
        let mut w = WorkerChannel::connect(&path).unwrap();
        pair.in_ns(Side::B, || {
            let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
            for i in 0..64 {
                tx.send_frame(&spec.build(i).unwrap()).unwrap();
            }
        });
        let mut frames = Vec::new();
        let by = Instant::now() + Duration::from_secs(10);
        while frames.len() < 64 {
            assert!(Instant::now() < by, "only {} frames came", frames.len());
            if w.rx_burst(&mut frames, 64).unwrap() == 0 {
                w.wait(5).unwrap();
            }
        }
        held.store(frames.len(), Ordering::Release);
        while !back.load(Ordering::Acquire) {
            assert!(!owner.is_finished(), "the owner stopped");
            std::thread::yield_now();
        }
        assert!(w.arena().is_redirected());
        let e = w.rx_burst(&mut frames, 64).unwrap_err();
        assert!(
            matches!(e, skmem::Error::Lend(skmem::LendError::Redirected { .. })),
            "{e}"
        );
        assert!(matches!(
            w.data(&frames[0]),
            Err(skmem::Error::Lend(skmem::LendError::Redirected { .. }))
        ));
        assert!(matches!(
            w.tx_burst(&mut frames),
            Err(skmem::Error::Lend(skmem::LendError::Redirected { .. }))
        ));
        let c = owner.join().unwrap();
        assert_eq!((c.lent, c.reclaimed), (64, 64), "{c:?}");
    });
}
