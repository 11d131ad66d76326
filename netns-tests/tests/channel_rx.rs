//! AF_XDP RX and l2fwd on skmem's pool, with skmem's XDP program
//! redirecting to the channel: every frame arrives in order and intact,
//! and every UMEM frame is accounted for at the end.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skmem::arena::Arena;
use skmem::channel::{Channel, ChannelParams, Coalesce, XdpDesc};
use skmem::pool::{BufIndex, PacketIndex, PacketState};
use skmem::schema::RingKind;
use skmem_netns::{NetnsPair, PairConfig, Sender, SequenceChecker, Side};
use skmem_xdp::{AttachMode, AttachedMode};

mod common;

const FRAMES: u64 = 4096;

/// One RX queue per side, so every frame lands on the socket's queue.
fn pair() -> NetnsPair {
    NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap()
}

fn open_with(
    ifname: &str,
    packets: usize,
    tweak: impl FnOnce(&mut ChannelParams),
) -> (Arena, Channel) {
    common::copy_channel(&format!("{ifname}q0"), ifname, packets, tweak)
}

/// How the receiving loop waits when nothing arrived.
#[derive(Clone, Copy, PartialEq)]
enum Wait {
    Poll,
    BusyPoll,
    /// `poll` with receive coalescing.
    Coalesce,
}

#[test]
fn coalescing_without_a_longest_wait_is_refused_with_a_typed_error() {
    let e = common::open_refused("coalesce0", |cp| cp.coalesce = Some(Coalesce::new(0)));
    assert!(
        matches!(&e, skmem::Error::Channel(skmem::ChannelError::InvalidParams { rule, .. }) if rule.contains("coalescing")),
        "{e}"
    );
}

#[test]
fn rxdrop_receives_4096_frames_in_order_and_intact() {
    skmem_netns::require_root!();
    rxdrop_4096(Wait::Poll, Recv::Burst);
}

#[test]
fn rxdrop_busy_polling_receives_4096_frames_in_order_and_intact() {
    skmem_netns::require_root!();
    rxdrop_4096(Wait::BusyPoll, Recv::Burst);
}

#[test]
fn rxdrop_coalescing_receives_4096_frames_in_order_and_intact() {
    skmem_netns::require_root!();
    rxdrop_4096(Wait::Coalesce, Recv::Burst);
}

/// How the receiving loop takes frames.
#[derive(Clone, Copy, PartialEq)]
enum Recv {
    /// `rx_burst`, read with `rx_data`, then `free_rx`.
    Burst,
    /// `inspect_rx`: shown in place and given straight back.
    Inspect,
}

#[test]
fn inspect_rx_shows_4096_frames_in_order_and_intact_and_keeps_none() {
    skmem_netns::require_root!();
    rxdrop_4096(Wait::Poll, Recv::Inspect);
}

fn rxdrop_4096(wait: Wait, recv: Recv) {
    let pair = pair();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    let received = AtomicU64::new(0);
    let sender_done = AtomicBool::new(false);

    // The socket and program live on A's thread; B sends, paced by what A
    // has received (copy-mode AF_XDP drops bursts silently: see the notes).
    let (account, counters, xdp, errors) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut prog = common::udp_redirect(&ifname, AttachMode::Native);
                assert_eq!(prog.mode(), AttachedMode::Native);
                let (_arena, mut ch) = open_with(&ifname, 2048, |cp| {
                    match wait {
                        Wait::BusyPoll => cp.busy_poll = Some((20, 64)),
                        // A target below the sender's window of 32, so the
                        // paced traffic is fast enough to sleep for.
                        Wait::Coalesce => {
                            cp.coalesce = Some(Coalesce::new(2000).with(|c| c.target_frames = 16))
                        }
                        Wait::Poll => {}
                    }
                });
                prog.add_socket(0, ch.fd()).unwrap();
                // Frames on the fill ring before B sends: the first to
                // arrive would otherwise find none, and be dropped.
                ch.refill().unwrap();
                received.store(u64::MAX - FRAMES, Ordering::Release); // ready
                let mut busy_polls = 0u64;
                let mut seq = SequenceChecker::new();
                let mut errors = Vec::new();
                let mut frames = Vec::with_capacity(64);
                let deadline = Instant::now() + Duration::from_secs(20);
                let mut got = 0u64;
                while got < FRAMES && Instant::now() < deadline {
                    let n = if recv == Recv::Inspect {
                        ch.inspect_rx(64, |_, data| {
                            if let Err(e) = seq.check(data) {
                                errors.push(e.to_string());
                            }
                        })
                        .unwrap()
                    } else {
                        ch.rx_burst(&mut frames, 64).unwrap()
                    };
                    if n > 0 && recv == Recv::Inspect {
                        got += n as u64;
                        received.store(got, Ordering::Release);
                        continue;
                    }
                    if n == 0 {
                        if wait == Wait::BusyPoll {
                            ch.busy_poll().unwrap();
                            busy_polls += 1;
                        } else if sender_done.load(Ordering::Acquire) {
                            ch.poll(50).unwrap();
                        } else {
                            ch.poll(10).unwrap();
                        }
                        continue;
                    }
                    for f in &frames {
                        let data = ch.data(f).expect("a frame just received is ours");
                        if let Err(e) = seq.check(data) {
                            errors.push(e.to_string());
                        }
                    }
                    ch.free_rx(&mut frames).unwrap();
                    assert!(frames.is_empty(), "every frame given back");
                    got += n as u64;
                    received.store(got, Ordering::Release);
                }
                let xdp = prog.counters().unwrap();
                // The counters reach the arena's USTATS object, which a
                // mapper reads from its span.
                ch.publish_stats().unwrap();
                let mut word = [0u8; 8];
                ch.mapping()
                    .read_region(skmem::region::RegionId::UStats, 0, &mut word)
                    .unwrap();
                assert_eq!(u64::from_le_bytes(word), ch.counters().rx_packets);
                assert_eq!(ch.counters().busy_polls, busy_polls);
                // What `skmemctl stats` reads: this process's published
                // view of the channel, asked over its statistics socket
                // and answered from another thread while the channel lives.
                let published = skmem::inspect::read_all().unwrap();
                let me = published
                    .processes
                    .iter()
                    .find(|p| p.pid == std::process::id())
                    .expect("this process publishes (root)");
                let seen = me
                    .channels
                    .iter()
                    .find(|c| c.ifname == ifname)
                    .unwrap_or_else(|| panic!("{ifname} in {:#?}", me.channels));
                assert_eq!(seen.counters, ch.counters());
                assert_eq!(seen.xdp, Some(ch.xsk_stats().unwrap()));
                assert!(me.arenas.iter().any(|a| a.name == seen.arena));
                // Coalescing slept; without it, nothing does.
                assert_eq!(
                    ch.counters().coalesced_sleeps > 0,
                    wait == Wait::Coalesce,
                    "{:?}",
                    ch.counters()
                );
                (common::settle(&mut ch), ch.counters(), xdp, errors)
            })
        });
        while received.load(Ordering::Acquire) == 0 {
            std::thread::yield_now();
        }
        pair.in_ns(Side::B, || {
            let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
            let mut seen = || {
                let r = received.load(Ordering::Acquire);
                if r > FRAMES {
                    0
                } else {
                    r
                }
            };
            let report = tx
                .send_paced(&spec, FRAMES, 32, &mut seen, Duration::from_secs(20))
                .unwrap();
            assert!(report.complete(), "{report:?}");
        });
        sender_done.store(true, Ordering::Release);
        a.join().unwrap()
    });
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(counters.rx_packets, FRAMES);
    assert_eq!(counters.bad_descs, 0);
    assert_eq!(xdp.redirected, FRAMES);
    account.check(true).unwrap();
    assert_eq!(account.app, 0);
    assert_eq!(account.kernel_tx, 0);
    assert_eq!(account.kernel_rx, account.fill_ring + account.rx_ring);
}

#[test]
fn l2fwd_returns_every_frame_with_swapped_macs() {
    skmem_netns::require_root!();
    l2fwd_4096(None);
}

#[test]
fn l2fwd_coalescing_returns_every_frame_with_swapped_macs() {
    skmem_netns::require_root!();
    // A target below the round trip's window of 32.
    let sleeps = l2fwd_4096(Some(Coalesce::new(2000).with(|c| c.target_frames = 16)));
    assert!(sleeps > 0);
}

/// In copy mode only this thread's syscalls send what the TX ring holds:
/// a coalescing channel with frames waiting there polls (which sends
/// them) instead of sleeping, even when its rate estimate says sleep.
#[test]
fn coalescing_never_sleeps_on_frames_waiting_to_be_sent() {
    skmem_netns::require_root!();
    let pair = pair();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    let ready = AtomicBool::new(false);
    let (before, after, sleeps) = std::thread::scope(|s| {
        let a = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut prog = common::udp_redirect(&ifname, AttachMode::Native);
                // A 64-entry TX ring and a budget of 32: one sendto sends
                // half of a full ring.
                let (_arena, mut ch) = open_with(&ifname, 512, |cp| {
                    cp.ring_entries = 64;
                    cp.umem_ring_entries = 64;
                    cp.tx_budget = Some(32);
                    cp.coalesce = Some(Coalesce::new(100_000).with(|c| c.target_frames = 1));
                });
                prog.add_socket(0, ch.fd()).unwrap();
                // The fill ring is fed by the first receive call: feed it
                // now, or B's frames can arrive to an empty one and be
                // dropped (B sends only once).
                assert!(ch.refill().unwrap() >= 32);
                ready.store(true, Ordering::Release);
                // Receive B's 32 frames: the poll that wakes for them gives
                // the moderator its first estimate, which would now say
                // sleep (one frame at a burst's rate is a short sleep).
                let mut rx = Vec::with_capacity(64);
                let mut got = 0;
                let deadline = Instant::now() + Duration::from_secs(10);
                while got < 32 && Instant::now() < deadline {
                    let n = ch.rx_burst(&mut rx, 64).unwrap();
                    if n == 0 {
                        ch.poll(10).unwrap();
                        continue;
                    }
                    ch.free_rx(&mut rx).unwrap();
                    got += n;
                }
                assert_eq!(got, 32);
                common::queue_fresh_frames(&mut ch, 64, 60);
                let before = ch.account().tx_ring;
                let sleeps = ch.counters().coalesced_sleeps;
                ch.poll(10).unwrap();
                let after = ch.account().tx_ring;
                (before, after, ch.counters().coalesced_sleeps - sleeps)
            })
        });
        while !ready.load(Ordering::Acquire) {
            std::thread::yield_now();
        }
        pair.in_ns(Side::B, || {
            let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
            for i in 0..32 {
                tx.send_frame(&spec.build(i).unwrap()).unwrap();
            }
        });
        a.join().unwrap()
    });
    // The premise: the first sendto left half the frames in the TX ring.
    assert_eq!(before, 32);
    assert_eq!(sleeps, 0, "slept with frames waiting to be sent");
    assert_eq!(after, 0, "the poll did not send them");
}

/// l2fwd of 4096 frames from B and back; returns coalescing's sleeps.
fn l2fwd_4096(coalesce: Option<Coalesce>) -> u64 {
    let pair = pair();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    let back = AtomicU64::new(0);
    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);

    let ((account, sleeps), errors) = std::thread::scope(|s| {
        let fwd = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut prog = common::udp_redirect(&ifname, AttachMode::Auto);
                let (_arena, mut ch) = open_with(&ifname, 2048, |cp| cp.coalesce = coalesce);
                prog.add_socket(0, ch.fd()).unwrap();
                ch.refill().unwrap();
                ready.store(true, Ordering::Release);
                common::reflect_until(&mut ch, &stop, |_, _| {});
                (common::settle(&mut ch), ch.counters().coalesced_sleeps)
            })
        });
        // Keep at most 32 frames on the round trip.
        common::drive(fwd, &ready, &stop, || {
            skmem_netns::round_trip_from_b(&pair, &spec, FRAMES, 32, &back)
        })
    });
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
    assert_eq!(back.load(Ordering::Relaxed), FRAMES);
    account.check(true).unwrap();
    assert_eq!(account.app, 0);
    sleeps
}

/// Descriptors forged into the RX ring are counted as bad and never
/// handed out, by either receive path: one names a frame the application
/// already holds (it would be handed out twice), one an address past the
/// UMEM (no frame at all), one a frame the kernel holds but with data
/// running past its buffer (that frame goes back to the fill path).
/// Nothing is lost: the frames all add up after.
#[test]
fn forged_rx_descriptors_are_counted_and_never_handed_out() {
    skmem_netns::require_root!();
    let pair = pair();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || {
        let (_arena, mut ch) = open_with(&ifname, 256, |_| {});
        let mut held = Vec::new();
        assert_eq!(ch.alloc_tx(&mut held, 1), 1);
        let pool = ch.pool().clone();
        let held_addr = ch.frame_addr(&held[0]);
        let past_end = u64::from(pool.packet_count()) * pool.buf_size() as u64;
        let forged = [
            XdpDesc {
                addr: held_addr,
                len: 64,
                options: 0,
            },
            XdpDesc {
                addr: past_end,
                len: 64,
                options: 0,
            },
        ];
        let mut frames = Vec::new();
        for recv in [Recv::Burst, Recv::Inspect] {
            ch.refill().unwrap();
            let in_fill = (0..pool.packet_count())
                .map(PacketIndex::new)
                .find(|&p| pool.state(p).unwrap() == PacketState::Fill)
                .unwrap();
            let too_long = XdpDesc {
                addr: pool.buf_addr_of(BufIndex::new(in_fill.get())),
                len: pool.buf_size() as u32 + 1,
                options: 0,
            };
            common::forge_ring(&ch, RingKind::Rx, &[forged[0], forged[1], too_long]);
            let before = ch.counters();
            let mut shown = 0;
            let n = match recv {
                Recv::Burst => ch.rx_burst(&mut frames, 64).unwrap(),
                Recv::Inspect => ch.inspect_rx(64, |_, _| shown += 1).unwrap(),
            };
            assert_eq!((n, shown), (0, 0));
            let after = ch.counters();
            assert_eq!(after.bad_descs - before.bad_descs, 3);
            assert_eq!(after.rx_packets, before.rx_packets);
            // Taken from the kernel's side and given back to the fill
            // path: rx_burst stages it for the next refill, inspect_rx puts
            // it straight on the fill ring.
            let back = match recv {
                Recv::Burst => PacketState::Staged,
                Recv::Inspect => PacketState::Fill,
            };
            assert_eq!(pool.state(in_fill).unwrap(), back);
            // The forged entries were consumed: the ring is empty again.
            assert_eq!(ch.account().rx_ring, 0);
        }
        // The held frame is still the application's alone. (The frames the
        // forged descriptors said were received are still in the fill ring
        // too, which is why the rings are not checked against the states:
        // no receiver can tell such a lie from a delivery.)
        let account = ch.account();
        assert_eq!(account.app, 1);
        account.check(false).unwrap();
        ch.free(&mut held).unwrap();
        assert!(held.is_empty());
        ch.account().check(false).unwrap();
    });
}
