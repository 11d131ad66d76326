//! The live-frames generator (`skmem_xdp::gen`) on a veth pair in
//! namespaces of the test's own (root): the generator sends from end `b`,
//! skmem's XDP program on end `a` (no socket) sees and passes every frame.
//! Without root the test prints why and passes.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod support;

use std::time::Instant;

use skmem_xdp::gen::{GenError, Generator};
use skmem_xdp::{AttachMode, XdpCounters, XdpProgram};
use support::frames::{self, Macs};
use support::{wait_until, VethPair};

/// Every frame the generator reports sent arrives on the peer: seen ==
/// passed == sent. Prints the rate (no assertion on it).
#[test]
fn generator_frames_all_arrive() {
    if !support::can_run("generator_frames_all_arrive") {
        return;
    }
    let pair = VethPair::new();
    let a = pair.a.clone();
    // Native XDP on `a` also lets `b` take redirected frames (veth's
    // ndo_xdp_xmit needs its peer's NAPI).
    let prog = pair
        .in_a(move || XdpProgram::attach(&a, AttachMode::Native, None))
        .unwrap_or_else(|e| panic!("attach: {e}"));
    let m = Macs {
        dst: pair.mac_a,
        src: pair.mac_b,
    };
    let frame = frames::udp4(m, 9, 0);

    const N: u32 = 100_000;
    let b = pair.b.clone();
    let (sent, elapsed, kernel_ns) = support::in_netns(&pair.ns_b.name, move || {
        // Bad arguments fail cleanly.
        assert!(matches!(
            Generator::new(&b, &[0; 4]),
            Err(GenError::FrameSize { len: 4 })
        ));
        let gen = Generator::new(&b, &frame).unwrap_or_else(|e| panic!("generator: {e}"));
        // As root the program is anchored in the XDP dispatcher (a private
        // namespace's loopback), so runs skip the dispatcher rebuild.
        assert!(gen.anchored());
        assert!(matches!(
            gen.run(1, 0),
            Err(GenError::BatchSize { batch: 0 })
        ));
        assert_eq!(gen.run(0, 64).unwrap(), 0);
        let start = Instant::now();
        let (sent, per_frame) = gen.run_timed(N, 64).unwrap_or_else(|e| panic!("run: {e}"));
        (sent, start.elapsed(), per_frame.as_nanos())
    });
    assert_eq!(sent, u64::from(N));
    let mpps = sent as f64 / elapsed.as_secs_f64() / 1e6;
    eprintln!(
        "generator: {sent} frames in {elapsed:?} = {mpps:.2} Mpps \
         (kernel: {kernel_ns} ns/frame; receiver passes to the stack)"
    );

    wait_until(
        || prog.counters().unwrap().seen >= sent,
        "XDP to see every frame",
    );
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(
        prog.counters().unwrap(),
        XdpCounters {
            seen: sent,
            passed: sent,
            ..XdpCounters::default()
        }
    );
}
