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
use skmem_netns_tests::{NetnsPair, PairConfig, Side};
use skmem_xdp::AttachMode;

mod common;

const FRAMES: u64 = 4096;

fn sock(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("skmem-workers-{}-{tag}.sock", std::process::id()))
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
                let mut prog = common::udp_redirect(&ifname, AttachMode::Auto);
                let mut np = NexusParams::new(format!("wk{tag}")).with_worker_slots(workers);
                np.pool.packets = 2048;
                let arena = Arena::create_nexus(&np).unwrap();
                let mut cp = ChannelParams::new(&ifname, 0);
                cp.mode = BindMode::Copy;
                let mut ch = Channel::open(&arena, &cp).unwrap();
                prog.add_socket(0, ch.fd()).unwrap();
                ch.refill().unwrap();
                let offer = ArenaOffer::serve(&arena, &path, OfferPolicy::root_only()).unwrap();
                let mut hub = WorkerHub::new(ch, &offer, spread).unwrap();
                let joined_by = Instant::now() + Duration::from_secs(10);
                while hub.workers().iter().flatten().count() < workers {
                    assert!(Instant::now() < joined_by, "workers did not join");
                    hub.poll().unwrap();
                    std::thread::yield_now();
                }
                ready.store(true, Ordering::Release);
                let deadline = Instant::now() + Duration::from_secs(40);
                while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
                    if hub.poll().unwrap() == 0 {
                        hub.wait(5).unwrap();
                    }
                }
                // The workers go: whatever they held comes back.
                let gone_by = Instant::now() + Duration::from_secs(10);
                while hub.workers().iter().flatten().count() > 0 || hub.lent() > 0 {
                    assert!(
                        Instant::now() < gone_by,
                        "the workers' frames did not come back"
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
            })
        });
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    // The offer's socket appears once the owner has served it.
                    let by = Instant::now() + Duration::from_secs(10);
                    while !path.exists() {
                        assert!(Instant::now() < by, "no offer");
                        std::thread::sleep(Duration::from_millis(5));
                    }
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
            common::round_trip_from_b_any_order(&pair, &spec, FRAMES, 32, &back)
        } else {
            common::round_trip_from_b(&pair, &spec, FRAMES, 32, &back)
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
    skmem_netns_tests::require_root!();
    l2fwd_through(1, Spread::FlowHash, "one");
}

#[test]
fn l2fwd_through_two_workers_round_robin_uses_both() {
    skmem_netns_tests::require_root!();
    let c = l2fwd_through(2, Spread::RoundRobin, "rr");
    assert!(c.iter().all(|c| c.lent > FRAMES / 4), "{c:?}");
}

#[test]
fn l2fwd_through_two_workers_by_flow_keeps_the_flow_on_one() {
    skmem_netns_tests::require_root!();
    // The harness sends one UDP flow: one worker gets all of it.
    let c = l2fwd_through(2, Spread::FlowHash, "flow");
    let mut lent: Vec<u64> = c.iter().map(|c| c.lent).collect();
    lent.sort_unstable();
    assert_eq!(lent, [0, FRAMES], "{c:?}");
}
