//! AF_XDP TX on skmem's pool: frames sent by a channel on side A arrive at
//! side B in order and intact, and every UMEM frame is accounted for.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use skmem::channel::{RxFrame, TxFrame};
use skmem::schema::RingKind;
use skmem_netns_tests::{NetnsPair, Receiver, RxFilter, SequenceChecker, Side, DEFAULT_UDP_PORT};

mod common;

const FRAMES: u64 = 4096;

#[test]
fn txonly_frames_reach_the_peer_in_order_and_every_frame_is_accounted() {
    skmem_netns_tests::require_root!();
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
        let pool = ch.pool().clone();
        let mut next = 0u64;
        let mut pkts = [0u32; 32];
        let deadline = Instant::now() + Duration::from_secs(20);
        while next < FRAMES && Instant::now() < deadline {
            ch.complete();
            let in_flight = next - sent_seen.load(Ordering::Relaxed);
            let want = (FRAMES - next).min(32).min(64u64.saturating_sub(in_flight)) as usize;
            if want == 0 {
                std::thread::yield_now();
                continue;
            }
            let n = ch.alloc_tx(&mut pkts[..want]);
            let mut frames = Vec::with_capacity(n);
            for (i, &p) in pkts[..n].iter().enumerate() {
                let (ptr, len) = pool.buffer_ptr(p).unwrap();
                // SAFETY: packet p is ours (just allocated), its buffer is
                // `len` bytes of the pool's UMEM.
                let buf = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
                let size = spec.write(next + i as u64, buf).unwrap();
                frames.push(TxFrame {
                    pkt: p,
                    offset: 0,
                    len: size as u32,
                    more: false,
                });
            }
            let q = ch.tx_burst(&frames).unwrap();
            ch.free(&pkts[q..n]);
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
        matches!(&e, skmem::Error::InvalidArenaParams { rule, .. } if rule.contains("TX budget")),
        "{e}"
    );
}

/// The default budget (1024) on a 256-entry TX ring: the kernel refuses a
/// budget above the ring's size, so the channel clamps it — and sends.
#[test]
fn a_tx_budget_above_the_tx_ring_is_clamped_and_the_channel_sends() {
    skmem_netns_tests::require_root!();
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

#[test]
fn bad_tx_frames_are_refused_counted_and_never_lost() {
    skmem_netns_tests::require_root!();
    let pair = NetnsPair::new().unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, move || {
        let (_arena, mut ch) = common::copy_channel("badtx", &ifname, 256, |_| {});
        let mut pkts = [0u32; 2];
        assert_eq!(ch.alloc_tx(&mut pkts), 2);
        let buf = ch.pool().buf_size() as u32;
        let frames = [
            // Overruns its buffer: refused, given back to the fill path.
            TxFrame {
                pkt: pkts[0],
                offset: buf - 10,
                len: 64,
                more: false,
            },
            // Never handed to the application: refused, nothing moves.
            TxFrame {
                pkt: 12345,
                offset: 0,
                len: 64,
                more: false,
            },
            // Empty: refused, given back.
            TxFrame {
                pkt: pkts[1],
                offset: 0,
                len: 0,
                more: false,
            },
        ];
        ch.tx_burst(&frames).unwrap();
        // Nothing was queued: the TX ring has room at once.
        assert!(ch.poll_tx(0).unwrap(), "an empty TX ring is writable");
        let c = ch.counters();
        assert_eq!(c.tx_refused, 3);
        assert_eq!(c.tx_packets, 0);
        let a = ch.account();
        assert_eq!(a.app, 0, "{a:?}");
        assert_eq!(a.kernel_tx, 0);
        a.check(true).unwrap();
    });
}

#[test]
fn reflect_refuses_lying_frames_swaps_the_rest_and_loses_none() {
    skmem_netns_tests::require_root!();
    let pair = NetnsPair::new().unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, move || {
        let (_arena, mut ch) = common::copy_channel("reflect", &ifname, 256, |_| {});
        let pool = ch.pool().clone();
        let mut pkts = [0u32; 2];
        assert_eq!(ch.alloc_tx(&mut pkts), 2);
        let mut frame = [0u8; 64];
        frame[..6].fill(0xd5); // destination
        frame[6..12].fill(0x5a); // source
        pool.write_buffer(pkts[0], 0, &frame).unwrap();
        let buf = pool.buf_size() as u64;
        let at = |pkt: u32, off: u64, len: u32| RxFrame {
            pkt,
            addr: pool.buf_addr_of(pkt) + off,
            len,
            options: 0,
        };
        let frames = [
            at(pkts[0], 0, 64),
            // The same packet again: no longer the application's once the
            // first is queued, so refused (never sent twice).
            at(pkts[0], 0, 64),
            // Never handed to the application.
            RxFrame {
                pkt: 200,
                addr: pool.buf_addr_of(200),
                len: 64,
                options: 0,
            },
            // Overruns its buffer: refused, given back to the fill path.
            at(pkts[1], buf - 10, 64),
        ];
        assert_eq!(ch.reflect(&frames).unwrap(), frames.len());
        let c = ch.counters();
        assert_eq!((c.tx_packets, c.tx_refused), (1, 3), "{c:?}");
        let deadline = Instant::now() + Duration::from_secs(5);
        while ch.account().kernel_tx > 0 && Instant::now() < deadline {
            ch.complete();
            std::thread::yield_now();
        }
        assert_eq!(ch.counters().tx_completed, 1);
        let mut sent = [0u8; 12];
        pool.read_buffer(pkts[0], 0, &mut sent).unwrap();
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
    skmem_netns_tests::require_root!();
    let pair = NetnsPair::new().unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || {
        let (_arena, mut ch) = common::copy_channel("forgecq", &ifname, 256, |_| {});
        let mut held = [0u32; 1];
        assert_eq!(ch.alloc_tx(&mut held), 1);
        let pool = ch.pool().clone();
        let forged = [
            pool.buf_addr(held[0]).unwrap(),
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
        assert_eq!(ch.free(&held), 1);
        ch.account().check(true).unwrap();
    });
}
