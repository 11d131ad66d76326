//! UMEM registration options of a channel, over a real veth: unaligned
//! chunks (a truncated, non-power-of-two buffer pool as the UMEM) and TX
//! metadata (checksum offload computed by the kernel in copy mode).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams, TxMetadata, TX_METADATA_SIZE};
use skmem::error::{ChannelError, RegionError};
use skmem::Error;
use skmem_netns::{
    check_payload, frame::ipv4_checksum, NetnsPair, PairConfig, Receiver, RxFilter, Side,
    DEFAULT_UDP_PORT,
};
use skmem_xdp::AttachMode;

mod common;
use skmem_netns::round_trip_from_b;

fn pair() -> NetnsPair {
    NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap()
}

/// A nexus arena whose buffers are `buf_size` bytes, not rounded up.
fn truncated_arena(name: &str, packets: usize, buf_size: usize) -> Arena {
    let mut np = NexusParams::new(name);
    np.pool.packets = packets;
    np.pool.buf_size = buf_size;
    np.truncated_buf = true;
    Arena::create_nexus(&np).unwrap()
}

#[test]
fn aligned_chunks_refuse_a_non_power_of_two_pool_with_a_typed_error() {
    // Parameters are checked before the interface is looked at.
    let arena = truncated_arena("unalignedparams", 256, 3000);
    let mut cp = ChannelParams::new("lo", 0);
    let e = Channel::open(&arena, &cp).unwrap_err();
    assert!(
        matches!(e, Error::Channel(ChannelError::InvalidParams { rule, .. }) if rule.contains("power-of-two")),
        "{e}"
    );
    for bad in [4, 12, 256, 1504] {
        cp.unaligned_chunks = true;
        cp.tx_metadata_len = bad;
        let e = Channel::open(&arena, &cp).unwrap_err();
        assert!(
            matches!(e, Error::Channel(ChannelError::InvalidParams { rule, .. }) if rule.contains("TX metadata")),
            "{bad}: {e}"
        );
    }
}

/// Unaligned chunks: 3000-byte buffers (chunks straddle 4 KiB pages) with
/// 128 bytes of headroom; 1400-byte frames go B → A → B through skmem's
/// XDP program and an l2fwd loop, so RX addresses (offset in the top 16
/// bits), TX addresses and completions are all decoded.
#[test]
fn unaligned_chunks_of_3000_byte_buffers_carry_every_frame_both_ways() {
    skmem_netns::require_root!();
    const FRAMES: u64 = 2048;
    let pair = pair();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::B, 1400).unwrap();
    let back = AtomicU64::new(0);
    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);

    let ((account, offsets_seen, bad), errors) = std::thread::scope(|s| {
        let fwd = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut prog = common::udp_redirect(&ifname, AttachMode::Auto);
                let arena = truncated_arena("unaligned", 1024, 3000);
                let mut cp = ChannelParams::new(&ifname, 0);
                cp.mode = BindMode::Copy;
                cp.unaligned_chunks = true;
                cp.headroom = 128;
                let mut ch = Channel::open(&arena, &cp).unwrap();
                // Truncated: rounded to the region's alignment, not to a
                // power of two.
                let buf_size = ch.pool().buf_size() as u64;
                assert!((3000..3072).contains(&buf_size), "{buf_size}");
                prog.add_socket(0, ch.fd()).unwrap();
                ch.refill().unwrap();
                ready.store(true, Ordering::Release);
                let mut offsets = std::collections::BTreeSet::new();
                common::reflect_until(&mut ch, &stop, |ch, rx| {
                    for f in rx {
                        // A plain UMEM address inside the frame's own buffer.
                        let off = u64::from(f.offset);
                        assert_eq!(
                            ch.frame_addr(f) - off,
                            u64::from(f.packet().get()) * buf_size
                        );
                        assert!(off + u64::from(f.len) <= buf_size, "{f:?}");
                        assert_eq!(ch.data(f).unwrap().len(), f.len as usize);
                        offsets.insert(off);
                    }
                });
                (common::settle(&mut ch), offsets, ch.counters().bad_descs)
            })
        });
        common::drive(fwd, &ready, &stop, || {
            round_trip_from_b(&pair, &spec, FRAMES, 32, &back)
        })
    });
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
    assert_eq!(back.load(Ordering::Relaxed), FRAMES);
    assert_eq!(bad, 0);
    // The data sits behind the headroom (and the kernel's XDP headroom),
    // the same offset in every chunk.
    assert_eq!(offsets_seen.len(), 1, "{offsets_seen:?}");
    assert!(*offsets_seen.first().unwrap() >= 128);
    account.check(true).unwrap();
    assert_eq!(account.app, 0);
}

const ETH_HLEN: usize = 14;
const IPV4_HLEN: usize = 20;

/// The UDP checksum over the pseudo-header and segment of an IPv4 frame:
/// 0 when the checksum in place is right.
fn udp_verify(frame: &[u8]) -> u16 {
    let ip = &frame[ETH_HLEN..ETH_HLEN + IPV4_HLEN];
    let udp = &frame[ETH_HLEN + IPV4_HLEN..];
    let mut v = Vec::with_capacity(12 + udp.len());
    v.extend_from_slice(&ip[12..20]);
    v.extend_from_slice(&[0, ip[9]]);
    v.extend_from_slice(&(udp.len() as u16).to_be_bytes());
    v.extend_from_slice(udp);
    ipv4_checksum(&v)
}

/// The pseudo-header sum (folded, not inverted) a `CHECKSUM_PARTIAL`
/// frame carries in its checksum field.
fn pseudo_seed(frame: &[u8]) -> u16 {
    let ip = &frame[ETH_HLEN..ETH_HLEN + IPV4_HLEN];
    let udp_len = (frame.len() - ETH_HLEN - IPV4_HLEN) as u16;
    let mut v = Vec::with_capacity(12);
    v.extend_from_slice(&ip[12..20]);
    v.extend_from_slice(&[0, ip[9]]);
    v.extend_from_slice(&udp_len.to_be_bytes());
    !ipv4_checksum(&v)
}

/// TX metadata: frames leave with only the pseudo-header sum in their UDP
/// checksum and a checksum request in their metadata; the kernel
/// (`XDP_UMEM_TX_SW_CSUM`, copy mode) completes it, so B receives valid
/// checksums. The same frames sent without metadata arrive with the seed
/// still in place — the kernel, not the test, did the work.
#[test]
fn tx_metadata_checksum_requests_are_completed_by_the_kernel() {
    skmem_netns::require_root!();
    const FRAMES: u64 = 256;
    let pair = pair();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::A, 200).unwrap();
    let mut rxb = Receiver::open(&pair, Side::B, RxFilter::udp_port(DEFAULT_UDP_PORT)).unwrap();
    let received = AtomicU64::new(0);

    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut valid = [0u64; 2];
            let mut seen = 0u64;
            let deadline = Instant::now() + Duration::from_secs(20);
            while seen < 2 * FRAMES && Instant::now() < deadline {
                if let Some(f) = rxb.recv(Duration::from_millis(200)).unwrap() {
                    let with_metadata = (seen < FRAMES) as usize;
                    let udp = &f[ETH_HLEN + IPV4_HLEN..];
                    if udp[6..8] != [0, 0] && udp_verify(f) == 0 {
                        valid[1 - with_metadata] += 1;
                    }
                    check_payload(f).unwrap();
                    seen += 1;
                    received.store(seen, Ordering::Release);
                }
            }
            (seen, valid)
        });

        let account = pair.in_ns(Side::A, || {
            let (_arena, mut ch) = common::copy_channel("txmeta", &ifname, 256, |cp| {
                cp.tx_metadata_len = TX_METADATA_SIZE;
                cp.tx_sw_csum = true;
            });
            // Room for the metadata in front of the data.
            let offset = 64u32;
            let mut one = Vec::with_capacity(1);
            for round in 0..2u64 {
                for i in 0..FRAMES {
                    let no = round * FRAMES + i;
                    while ch.alloc_tx(&mut one, 1) == 0 {
                        ch.complete();
                    }
                    let mut frame = spec.build(no).unwrap();
                    let seed = pseudo_seed(&frame);
                    frame[ETH_HLEN + IPV4_HLEN + 6..ETH_HLEN + IPV4_HLEN + 8]
                        .copy_from_slice(&seed.to_be_bytes());
                    one[0].offset = offset;
                    ch.set_data(&mut one[0], &frame).unwrap();
                    let sent = if round == 0 {
                        let meta = TxMetadata {
                            checksum: Some(((ETH_HLEN + IPV4_HLEN) as u16, 6)),
                            ..Default::default()
                        };
                        ch.write_tx_metadata(&mut one[0], &meta).unwrap();
                        ch.tx_burst_with_metadata(&mut one).unwrap()
                    } else {
                        ch.tx_burst(&mut one).unwrap()
                    };
                    assert_eq!(sent, 1);
                    // Keep the receiver within reach: a window of 32.
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while no + 1 > received.load(Ordering::Acquire) + 32
                        && Instant::now() < deadline
                    {
                        ch.complete();
                        std::thread::yield_now();
                    }
                }
            }
            // Metadata that does not fit in front of the data is refused,
            // counted and the frame is not lost.
            assert_eq!(ch.alloc_tx(&mut one, 1), 1);
            one[0].offset = 8;
            one[0].len = 64;
            let e = ch
                .write_tx_metadata(&mut one[0], &TxMetadata::default())
                .unwrap_err();
            assert!(
                matches!(e, Error::Region(RegionError::Misuse { .. })),
                "{e}"
            );
            let refused = ch.counters().tx_refused;
            assert_eq!(ch.tx_burst_with_metadata(&mut one).unwrap(), 1);
            assert!(one.is_empty());
            assert_eq!(ch.counters().tx_refused, refused + 1);
            assert_eq!(ch.counters().tx_packets, 2 * FRAMES);
            common::settle(&mut ch)
        });
        let (seen, valid) = reader.join().unwrap();
        assert_eq!(seen, 2 * FRAMES);
        assert_eq!(valid[0], FRAMES, "every frame with a checksum request");
        assert!(
            valid[1] < FRAMES / 16,
            "frames without metadata keep the seed: {} of {FRAMES} valid",
            valid[1]
        );
        account.check(true).unwrap();
        assert_eq!(account.app, 0);
        assert_eq!(account.kernel_tx, 0);
    });
}

#[test]
fn tx_metadata_needs_a_channel_that_registered_it() {
    skmem_netns::require_root!();
    let pair = pair();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || {
        let (_arena, mut ch) = common::copy_channel("nometa", &ifname, 64, |_| {});
        let mut one = Vec::new();
        assert_eq!(ch.alloc_tx(&mut one, 1), 1);
        one[0].offset = 64;
        one[0].len = 64;
        let e = ch
            .write_tx_metadata(&mut one[0], &TxMetadata::default())
            .unwrap_err();
        assert!(
            matches!(e, Error::Channel(ChannelError::InvalidParams { .. })),
            "{e}"
        );
        assert!(ch.tx_burst_with_metadata(&mut one).is_err());
        // Nothing moved: the packet is still the application's.
        assert_eq!((one.len(), ch.account().app), (1, 1));
        ch.free(&mut one).unwrap();
        ch.account().check(true).unwrap();
    });
}

/// Multi-buffer (`XDP_USE_SG`): with MTU 9000, 9000-byte frames from B
/// arrive on A's 2 KiB-buffer channel as chains of frames (all but the
/// last with `more`), rx_burst never splits a chain, and l2fwd sends each
/// chain back as one packet: B receives every frame whole, in order,
/// intact, with swapped MACs.
#[test]
fn multi_buffer_jumbo_frames_arrive_as_chains_and_go_back_whole() {
    skmem_netns::require_root!();
    const FRAMES: u64 = 512;
    const SIZE: usize = 9000;
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1).mtu(9000)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::B, SIZE).unwrap();
    let back = AtomicU64::new(0);
    let ready = AtomicBool::new(false);
    let stop = AtomicBool::new(false);

    let ((account, chains, bad), errors) = std::thread::scope(|s| {
        let fwd = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut prog = common::udp_redirect(&ifname, AttachMode::Auto);
                let (_arena, mut ch) = common::copy_channel("multibuf", &ifname, 2048, |cp| {
                    cp.multi_buffer = true;
                });
                // Too little room for a whole packet is refused.
                let mut small = Vec::new();
                assert!(ch.rx_burst(&mut small, 4).is_err());
                prog.add_socket(0, ch.fd()).unwrap();
                ch.refill().unwrap();
                ready.store(true, Ordering::Release);
                let mut chains = std::collections::BTreeMap::<usize, u64>::new();
                common::reflect_until(&mut ch, &stop, |_, rx| {
                    // Whole packets only: the last frame ends one.
                    assert!(!rx[rx.len() - 1].more(), "rx_burst split a packet");
                    let mut len = 0;
                    for f in rx {
                        len += 1;
                        if !f.more() {
                            *chains.entry(len).or_default() += 1;
                            len = 0;
                        }
                    }
                });
                (common::settle(&mut ch), chains, ch.counters().bad_descs)
            })
        });
        common::drive(fwd, &ready, &stop, || {
            round_trip_from_b(&pair, &spec, FRAMES, 8, &back)
        })
    });
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
    assert_eq!(back.load(Ordering::Relaxed), FRAMES);
    assert_eq!(bad, 0);
    // 9000 bytes do not fit a 2 KiB buffer: every packet was a chain.
    assert_eq!(chains.values().sum::<u64>(), FRAMES, "{chains:?}");
    assert!(chains.keys().all(|&k| k >= 5), "{chains:?}");
    account.check(true).unwrap();
    assert_eq!(account.app, 0);
}

/// TX packets are sent whole or refused whole, delimited as the kernel
/// delimits them: a bad frame ends its packet (refused, with the frames
/// before it), and the next frame starts a new one; an unended chain, and
/// any `more` on a single-buffer channel, is refused. Refused frames go
/// back to the fill path, counted by reason; nothing is lost.
#[test]
fn malformed_tx_chains_are_refused_whole_and_nothing_is_lost() {
    skmem_netns::require_root!();
    // A queue per case: a queue stays busy for a moment after its socket
    // closes.
    let pair = NetnsPair::with_config(PairConfig::default().queues(2, 2).mtu(9000)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || {
        for (queue, multi_buffer) in [(0, true), (1, false)] {
            let mut np = NexusParams::new(format!("chains{multi_buffer}"));
            np.pool.packets = 256;
            let arena = Arena::create_nexus(&np).unwrap();
            let mut cp = ChannelParams::new(&ifname, queue);
            cp.mode = BindMode::Copy;
            cp.multi_buffer = multi_buffer;
            let mut ch = Channel::open(&arena, &cp).unwrap();
            let mut frames = Vec::new();
            assert_eq!(ch.alloc_tx(&mut frames, 6), 6);
            // A chain whose second frame overruns its buffer (which ends
            // it), a frame that starts the next packet, a frame with an
            // option the kernel does not know, then a chain that never
            // ends.
            for (f, (len, more, options)) in frames.iter_mut().zip([
                (100, true, 0),
                (100_000, true, 0),
                (100, false, 0),
                (100, false, 0x100),
                (100, true, 0),
                (100, true, 0),
            ]) {
                f.len = len;
                f.options = options;
                f.set_more(more);
            }
            assert_eq!(ch.tx_burst(&mut frames).unwrap(), 6);
            assert!(frames.is_empty());
            let c = ch.counters();
            assert_eq!(c.tx_refused, 5);
            assert_eq!(c.tx_packets, 1, "the frame after the bad one went out");
            let why = ch.tx_refusals();
            assert_eq!(why.total(), 5, "{why:?}");
            assert_eq!(why.options, 1, "{why:?}");
            if multi_buffer {
                // The overrun sinks the frame before it too.
                assert_eq!((why.overrun, why.chain), (2, 2), "{why:?}");
            } else {
                // Every `more` is refused on its own.
                assert_eq!((why.overrun, why.chain), (1, 3), "{why:?}");
            }
            let a = common::settle(&mut ch);
            assert_eq!(a.app, 0, "{a:?}");
            assert_eq!(a.kernel_tx, 0);
            a.check(true).unwrap();
            // A well-formed chain goes out whole on a multi-buffer channel;
            // on a single-buffer one its first frame is refused and the
            // last goes out alone.
            assert_eq!(ch.alloc_tx(&mut frames, 2), 2);
            frames[0].len = 100;
            frames[0].set_more(true);
            frames[1].len = 100;
            assert_eq!(ch.tx_burst(&mut frames).unwrap(), 2);
            assert_eq!(ch.counters().tx_packets, 3 - u64::from(!multi_buffer));
            common::settle(&mut ch).check(true).unwrap();
        }
    });
}

/// `free_rx` gives frames straight to the fill ring while it has room and
/// stages the rest on the RX-free slots; either way every frame is
/// accounted for and a frame the application does not hold is refused.
#[test]
fn free_rx_fills_the_fill_ring_first_then_stages() {
    skmem_netns::require_root!();
    let pair = pair();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || {
        let (_arena, mut ch) = common::copy_channel("freerx", &ifname, 2048, |cp| {
            cp.umem_ring_entries = 1024;
        });
        // Nothing has filled the fill ring yet: 64 freed frames go
        // straight onto it.
        let mut held = Vec::new();
        assert_eq!(ch.alloc_tx(&mut held, 64), 64);
        let empty = ch.account();
        assert_eq!(empty.fill_ring, 0, "{empty:?}");
        ch.free_rx(&mut held).unwrap();
        assert!(held.is_empty());
        let a = ch.account();
        assert_eq!(
            (a.fill_ring, a.kernel_rx, a.staged),
            (64, 64, empty.staged),
            "{a:?}"
        );
        a.check(true).unwrap();
        // Hold 64 more, then top the fill ring up to full.
        assert_eq!(ch.alloc_tx(&mut held, 64), 64);
        ch.refill().unwrap();
        let before = ch.account();
        assert_eq!(before.fill_ring, 1024, "{before:?}");
        // The fill ring is full: all 64 are staged.
        ch.free_rx(&mut held).unwrap();
        let a = ch.account();
        assert_eq!(a.app, 0);
        assert_eq!(a.staged, before.staged + 64, "{a:?}");
        a.check(true).unwrap();
        // A frame of another pool is refused and stays the caller's;
        // nothing moves.
        let other = skmem::pool::PacketPool::create(
            "freerx.other",
            &skmem::pool::PoolParams::default().with(|p| {
                p.packets = 64;
                p.workers = 1;
            }),
        )
        .unwrap();
        let mut w = other.worker().unwrap();
        held.push(skmem::channel::Frame::from_packet(w.alloc().unwrap()));
        assert!(matches!(
            ch.free_rx(&mut held),
            Err(Error::ForeignPacket { .. })
        ));
        assert_eq!(held.len(), 1);
        assert_eq!(ch.account(), a);
        w.free(held.pop().unwrap().into_packet()).unwrap();
        // The kernel never holds more RX frames than the RX ring has room
        // for, so excess traffic is dropped before the kernel copies it.
        ch.refill().unwrap();
        assert!(ch.account().kernel_rx <= u64::from(ch.ring_sizes()[2]));
    });
}
