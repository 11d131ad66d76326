//! Traffic from B to A through the AF_PACKET sender and receiver (needs
//! root).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod common;

use std::time::{Duration, Instant};

use skmem_netns::transfer;
use skmem_netns::{
    check_payload, FrameSpec, NetnsPair, Receiver, RxFilter, Sender, Side, DEFAULT_UDP_PORT,
};

/// A 64-byte frame from B to A and a sender on B to send it with.
fn from_b(pair: &NetnsPair) -> (FrameSpec, Sender) {
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    (spec, Sender::open(pair, Side::B).unwrap())
}

#[test]
fn paced_4096_small_frames_arrive_in_order_and_intact() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let t = transfer(&pair, 64, 4096, Some(32), 0.0);
    eprintln!("{t:?}");
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert!(t.report.complete() && !t.report.timed_out, "{:?}", t.report);
    assert_eq!(t.in_order, 4096);
    assert_eq!(t.socket_drops, 0);
}

#[test]
fn paced_mtu_sized_frames_arrive_in_order_and_intact() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let t = transfer(&pair, 1514, 2048, Some(64), 0.0);
    eprintln!("{t:?}");
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(t.in_order, 2048);
}

#[test]
fn jumbo_frames_pass_with_a_9000_mtu() {
    skmem_netns::require_root!();
    let pair = NetnsPair::with_config(skmem_netns::PairConfig::default().mtu(9000)).unwrap();
    let t = transfer(&pair, 9014, 256, Some(16), 0.0);
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(t.in_order, 256);
}

#[test]
fn rate_limited_sending_takes_at_least_the_scheduled_time() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    // 500 frames at 5000/s: ~100 ms.
    let t = transfer(&pair, 128, 500, None, 5000.0);
    eprintln!("{t:?}");
    assert!(t.errors.is_empty(), "{:?}", t.errors);
    assert_eq!(t.in_order, 500);
    assert!(
        t.report.elapsed >= Duration::from_millis(95),
        "{:?}",
        t.report
    );
    assert!(t.report.elapsed < Duration::from_secs(2), "{:?}", t.report);
}

#[test]
fn burst_sends_everything_and_a_large_buffer_receives_it() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let (spec, tx) = from_b(&pair);
    let mut rx = Receiver::open(&pair, Side::A, RxFilter::udp_port(spec.dst_port)).unwrap();
    let r = tx.send_burst(&spec, 1000, Duration::from_secs(5)).unwrap();
    assert!(r.complete(), "{r:?}");
    let mut got = 0u64;
    while let Some(f) = rx.recv(Duration::from_millis(300)).unwrap() {
        check_payload(f).unwrap();
        got += 1;
    }
    let (_, drops) = rx.stats().unwrap();
    eprintln!(
        "burst of 1000 in {:?}: received {got}, socket drops {drops}",
        r.elapsed
    );
    // No consumer limits a plain AF_PACKET socket with an 8 MiB buffer.
    assert_eq!(got + u64::from(drops), 1000);
}

#[test]
fn receiver_ignores_frames_for_other_ports_and_its_own_sends() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let to_a = pair.frame_spec(Side::B, 64).unwrap();
    let other = FrameSpec {
        dst_port: DEFAULT_UDP_PORT + 100,
        ..to_a.clone()
    };
    let mut rx = Receiver::open(&pair, Side::A, RxFilter::udp_port(to_a.dst_port)).unwrap();
    // A sender on A itself: its frames are PACKET_OUTGOING on A.
    let tx_a = Sender::open(&pair, Side::A).unwrap();
    tx_a.send_frame(&pair.frame_spec(Side::A, 64).unwrap().build(0).unwrap())
        .unwrap();
    let tx = Sender::open(&pair, Side::B).unwrap();
    tx.send_frame(&other.build(1).unwrap()).unwrap();
    tx.send_frame(&to_a.build(2).unwrap()).unwrap();
    let f = rx
        .recv(Duration::from_secs(2))
        .unwrap()
        .expect("frame to our port");
    assert_eq!(check_payload(f).unwrap().packet_no, 2);
    assert!(rx.recv(Duration::from_millis(100)).unwrap().is_none());
}

#[test]
fn paced_sender_stops_at_the_timeout_when_nothing_is_received() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let (spec, tx) = from_b(&pair);
    let t = Instant::now();
    let r = tx
        .send_paced(&spec, 100, 8, || 0, Duration::from_millis(200))
        .unwrap();
    assert_eq!(r.sent, 8, "{r:?}");
    assert!(r.timed_out && !r.complete());
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn sockets_outliving_the_pair_see_their_interface_vanish() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let (ns, ifs) = common::names(&pair);
    let (spec, tx) = from_b(&pair);
    let mut rx = Receiver::open(&pair, Side::A, RxFilter::udp_port(spec.dst_port)).unwrap();
    let t = Instant::now();
    drop(pair);
    eprintln!("drop with open sockets: {:?}", t.elapsed());
    common::assert_gone(&ns, &ifs);
    let rx_err = rx.recv(Duration::from_millis(50));
    let tx_err = tx.send_frame(&spec.build(0).unwrap());
    eprintln!("after drop: recv {rx_err:?}, send {tx_err:?}");
    assert!(tx_err.is_err(), "send on a deleted veth succeeded");
    assert!(!matches!(rx_err, Ok(Some(_))));
}

#[test]
fn invalid_pacing_is_rejected() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let (spec, tx) = from_b(&pair);
    let d = Duration::from_millis(10);
    assert!(tx.send_rate(&spec, 1, 0.0, d).is_err());
    assert!(tx.send_rate(&spec, 1, f64::NAN, d).is_err());
    assert!(tx.send_paced(&spec, 1, 0, || 0, d).is_err());
}

#[test]
fn burst_sender_stops_at_the_timeout() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let (spec, tx) = from_b(&pair);
    let t = Instant::now();
    let r = tx
        .send_burst(&spec, u64::MAX, Duration::from_millis(100))
        .unwrap();
    assert!(r.timed_out && r.sent > 0, "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}
