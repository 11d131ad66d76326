//! How to test a forwarder of your own on a veth pair: the program under
//! test runs in namespace A (here a thread with a plain AF_PACKET socket
//! that sends every frame back with its MACs swapped — put your own
//! program there, as a thread with `NetnsPair::in_ns`, or a process with
//! `ip netns exec <pair.ns_name(Side::A)> your-binary`), B sends a paced
//! flow and checks each frame that comes back, and once the pair is
//! dropped nothing of it is left.

// A test target sees every dependency of its package; whether the package
// uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use skmem_netns::{
    check_gone, round_trip_from_b, NetnsPair, PairConfig, Receiver, RxFilter, Sender, Side,
    DEFAULT_UDP_PORT,
};

/// "Your program": swaps the MACs of every frame of the flow and sends it
/// back, until told to stop.
fn reflector(pair: &NetnsPair, stop: &AtomicBool, ready: &AtomicBool) -> u64 {
    let ifindex = pair.ifindex(Side::A);
    let mut rx = Receiver::open_in_current_ns(ifindex, RxFilter::udp_port(DEFAULT_UDP_PORT))
        .expect("a receiving socket on A");
    let tx = Sender::open_in_current_ns(ifindex).expect("a sending socket on A");
    ready.store(true, Ordering::Release);
    let mut forwarded = 0;
    while !stop.load(Ordering::Acquire) {
        if let Some(mut f) = rx.recv_frame(Duration::from_millis(50)).expect("recv") {
            let (dst, src) = f[..12].split_at_mut(6);
            dst.swap_with_slice(src);
            tx.send_frame(&f).expect("send");
            forwarded += 1;
        }
    }
    forwarded
}

#[test]
fn a_forwarder_of_your_own_returns_every_frame_and_the_pair_leaves_nothing() {
    skmem_netns::require_root!();
    const FRAMES: u64 = 1000;
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let names = pair.names();
    let spec = pair.frame_spec(Side::B, 128).unwrap();
    let (stop, ready, back) = (
        AtomicBool::new(false),
        AtomicBool::new(false),
        AtomicU64::new(0),
    );
    let (forwarded, errors) = std::thread::scope(|s| {
        let program = s.spawn(|| pair.in_ns(Side::A, || reflector(&pair, &stop, &ready)));
        while !ready.load(Ordering::Acquire) && !program.is_finished() {
            std::thread::yield_now();
        }
        // At most 32 frames on the round trip at once; each one that
        // comes back is checked: MACs swapped, size, order, payload.
        let errors = round_trip_from_b(&pair, &spec, FRAMES, 32, &back);
        stop.store(true, Ordering::Release);
        (program.join().unwrap(), errors)
    });
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(back.load(Ordering::Relaxed), FRAMES);
    assert_eq!(forwarded, FRAMES);
    drop(pair);
    check_gone(&names).unwrap();
}
