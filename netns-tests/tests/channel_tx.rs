//! AF_XDP TX on skmem's pool: frames sent by a channel on side A arrive at
//! side B in order and intact, and every UMEM frame is accounted for.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skmem::channel::Frame;
use skmem::pool::{PacketPool, PoolParams};
use skmem::region::RegionId;
use skmem::schema::RingKind;
use skmem_netns::{NetnsPair, Receiver, RxFilter, SequenceChecker, Side, DEFAULT_UDP_PORT};

mod common;

const FRAMES: u64 = 4096;

#[test]
fn txonly_frames_reach_the_peer_in_order_and_every_frame_is_accounted() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let spec = pair.frame_spec(Side::A, 64).unwrap();

    // The receiver on B counts what arrived; the sender keeps at most a
    // window of frames in flight beyond that.
    let received = Arc::new(AtomicU64::new(0));
    let mut rx = Receiver::open(&pair, Side::B, RxFilter::udp_port(DEFAULT_UDP_PORT)).unwrap();
    let got = received.clone();
    let reader = std::thread::spawn(move || {
        let mut seq = SequenceChecker::new();
        let mut errors = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while got.load(Ordering::Relaxed) < FRAMES && Instant::now() < deadline {
            match rx.recv(Duration::from_millis(200)) {
                Ok(Some(frame)) => {
                    if let Err(e) = seq.check(frame) {
                        errors.push(e.to_string());
                    }
                    got.fetch_add(1, Ordering::Relaxed);
                }
                Ok(None) => {}
                Err(e) => {
                    errors.push(e.to_string());
                    break;
                }
            }
        }
        errors
    });

    let ifname = pair.ifname(Side::A).to_owned();
    let sent_seen = received.clone();
    let account = pair.in_ns(Side::A, move || {
        let (_arena, mut ch) = common::copy_channel("txonly", &ifname, 1024, |_| {});
        assert!(!ch.zero_copy());
        let mut next = 0u64;
        let mut frames = Vec::with_capacity(32);
        let deadline = Instant::now() + Duration::from_secs(20);
        while next < FRAMES && Instant::now() < deadline {
            ch.complete();
            let in_flight = next - sent_seen.load(Ordering::Relaxed);
            let want = (FRAMES - next).min(32).min(64u64.saturating_sub(in_flight)) as usize;
            if want == 0 {
                std::thread::yield_now();
                continue;
            }
            ch.alloc_tx(&mut frames, want);
            for (i, f) in frames.iter_mut().enumerate() {
                // Built in place, in the frame's own buffer.
                let size = spec
                    .write(next + i as u64, ch.buffer_mut(f).unwrap())
                    .unwrap();
                f.len = size as u32;
            }
            let q = ch.tx_burst(&mut frames).unwrap();
            ch.free(&mut frames).unwrap();
            next += q as u64;
        }
        // Let every completion come home.
        let deadline = Instant::now() + Duration::from_secs(5);
        while ch.account().kernel_tx > 0 && Instant::now() < deadline {
            ch.complete();
            std::thread::yield_now();
        }
        let c = ch.counters();
        assert_eq!(c.tx_packets, FRAMES);
        assert_eq!(c.tx_completed, FRAMES);
        assert_eq!(c.bad_descs, 0);
        ch.account()
    });
    let errors = reader.join().unwrap();
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(received.load(Ordering::Relaxed), FRAMES);
    account.check(true).unwrap();
    assert_eq!(account.kernel_tx, 0);
    assert_eq!(account.app, 0);
    assert_eq!(account.pool + account.staged, account.total);
}

#[test]
fn a_tx_budget_below_32_is_refused_with_a_typed_error() {
    let e = common::open_refused("txbudget16", |cp| cp.tx_budget = Some(16));
    assert!(
        matches!(&e, skmem::Error::Channel(skmem::ChannelError::InvalidParams { rule, .. }) if rule.contains("TX budget")),
        "{e}"
    );
}

/// The default budget (1024) on a 256-entry TX ring: the kernel refuses a
/// budget above the ring's size, so the channel clamps it — and sends.
#[test]
fn a_tx_budget_above_the_tx_ring_is_clamped_and_the_channel_sends() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || {
        let (_arena, mut ch) = common::copy_channel("txbudget256", &ifname, 512, |cp| {
            cp.ring_entries = 256;
            cp.umem_ring_entries = 256;
            assert!(cp.tx_budget.is_some_and(|b| b > 256));
        });
        common::queue_fresh_frames(&mut ch, 64, 60);
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut done = 0;
        while done < 64 && Instant::now() < deadline {
            done += ch.complete();
            if done < 64 {
                ch.kick_tx().unwrap();
                std::thread::yield_now();
            }
        }
        assert_eq!(done, 64);
        ch.account().check(true).unwrap();
    });
}

/// A frame of a second pool (the only frame safe code can hand a channel
/// that it did not hand out).
fn stranger(name: &str) -> (std::sync::Arc<PacketPool>, Frame) {
    let pool = PacketPool::create(
        name,
        &PoolParams::default().with(|p| {
            p.packets = 64;
            p.workers = 1;
        }),
    )
    .unwrap();
    let pkt = pool.worker().unwrap().alloc().unwrap();
    let mut f = Frame::from_packet(pkt);
    f.len = 64;
    (pool, f)
}

#[test]
fn bad_tx_frames_are_refused_counted_and_never_lost() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, move || {
        let (_arena, mut ch) = common::copy_channel("badtx", &ifname, 256, |_| {});
        let mut frames = Vec::new();
        assert_eq!(ch.alloc_tx(&mut frames, 2), 2);
        let buf = ch.pool().buf_size() as u32;
        // Overruns its buffer: refused, given back to the fill path.
        frames[0].offset = buf - 10;
        frames[0].len = 64;
        // Empty: refused, given back.
        frames[1].len = 0;
        // Another pool's: refused, and left with the caller.
        let (other, f) = stranger("badtx.other");
        frames.insert(1, f);
        let e = ch.tx_burst(&mut frames).unwrap_err();
        assert!(matches!(e, skmem::Error::ForeignPacket { .. }), "{e}");
        assert_eq!(frames.len(), 1, "the stranger stays the caller's");
        assert!(
            other.buffer(frames[0].as_packet()).is_ok(),
            "and is other's"
        );
        // Nothing was queued: the TX ring has room at once.
        assert!(ch.poll_tx(0).unwrap(), "an empty TX ring is writable");
        let c = ch.counters();
        assert_eq!(c.tx_refused, 3);
        assert_eq!(c.tx_packets, 0);
        let a = ch.account();
        assert_eq!(a.app, 0, "{a:?}");
        assert_eq!(a.kernel_tx, 0);
        a.check(true).unwrap();
        // The stranger goes home whole.
        other
            .worker()
            .unwrap()
            .free(frames.pop().unwrap().into_packet())
            .unwrap();
        assert_eq!(other.packets_in_use(), 0);
    });
}

#[test]
fn reflect_refuses_bad_frames_swaps_the_rest_and_loses_none() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, move || {
        let (_arena, mut ch) = common::copy_channel("reflect", &ifname, 256, |_| {});
        let mut frames = Vec::new();
        assert_eq!(ch.alloc_tx(&mut frames, 2), 2);
        let mut frame = [0u8; 64];
        frame[..6].fill(0xd5); // destination
        frame[6..12].fill(0x5a); // source
        ch.set_data(&mut frames[0], &frame).unwrap();
        let sent_at = ch.frame_addr(&frames[0]) as usize;
        // Overruns its buffer: refused, given back to the fill path.
        frames[1].offset = ch.pool().buf_size() as u32 - 10;
        frames[1].len = 64;
        // Another pool's: refused, left with the caller.
        let (_other, f) = stranger("reflect.other");
        frames.insert(1, f);
        let e = ch.reflect(&mut frames).unwrap_err();
        assert!(matches!(e, skmem::Error::ForeignPacket { .. }), "{e}");
        assert_eq!(frames.len(), 1, "only the stranger is left");
        let c = ch.counters();
        assert_eq!((c.tx_packets, c.tx_refused), (1, 2), "{c:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while ch.account().kernel_tx > 0 && Instant::now() < deadline {
            ch.complete();
            std::thread::yield_now();
        }
        assert_eq!(ch.counters().tx_completed, 1);
        let mut sent = [0u8; 12];
        ch.mapping()
            .read_region(RegionId::BufDef, sent_at, &mut sent)
            .unwrap();
        assert_eq!(sent[..6], [0x5a; 6], "destination is the old source");
        assert_eq!(sent[6..], [0xd5; 6], "source is the old destination");
        let a = ch.account();
        assert_eq!((a.app, a.kernel_tx), (0, 0), "{a:?}");
        a.check(true).unwrap();
    });
}

/// Entries forged into the completion ring are counted as bad, not as
/// completions: one names a frame the application holds (never sent), one
/// an address past the UMEM. The held frame stays the application's and
/// nothing is lost.
#[test]
fn forged_completions_are_counted_and_free_nothing() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || {
        let (_arena, mut ch) = common::copy_channel("forgecq", &ifname, 256, |_| {});
        let mut held = Vec::new();
        assert_eq!(ch.alloc_tx(&mut held, 1), 1);
        let pool = ch.pool().clone();
        let forged = [
            ch.frame_addr(&held[0]),
            u64::from(pool.packet_count()) * pool.buf_size() as u64,
        ];
        common::forge_ring(&ch, RingKind::Completion, &forged);
        let before = ch.counters();
        assert_eq!(ch.complete(), 0);
        let after = ch.counters();
        assert_eq!(after.bad_descs - before.bad_descs, 2);
        assert_eq!(after.tx_completed, before.tx_completed);
        let account = ch.account();
        assert_eq!((account.app, account.completion_ring), (1, 0));
        account.check(true).unwrap();
        ch.free(&mut held).unwrap();
        ch.account().check(true).unwrap();
    });
}
