//! Flows a test sends across a pair and checks, end to end, with plain
//! AF_PACKET sockets — so a test of any program on the pair (skmem's
//! forwarder, or your own) says whether every frame got through intact:
//!
//! - [`transfer`]: B sends, A receives; every frame in order and intact.
//! - [`round_trip_from_b`]: B sends, the program under test on A sends
//!   each frame back with its MACs swapped (an l2fwd), B checks each.
//!
//! These are test helpers: a harness failure (a socket that cannot open)
//! panics, as an assertion would; what the program under test got wrong
//! is returned.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::{
    check_payload, FrameSpec, NetnsPair, Receiver, RxFilter, SendReport, Sender, SequenceChecker,
    Side, DEFAULT_UDP_PORT,
};

/// Result of [`transfer`].
#[derive(Debug)]
pub struct Transfer {
    /// What the sender sent.
    pub report: SendReport,
    /// Frames that arrived intact and in order, from the first.
    pub in_order: u64,
    /// What went wrong (at most ten).
    pub errors: Vec<String>,
    /// How long the receiver ran.
    pub rx_elapsed: Duration,
    /// Frames the receiving socket dropped (its buffer was full).
    pub socket_drops: u32,
}

/// Sends `count` frames of `size` bytes from B to A, paced by `window`
/// (`Some(frames in flight)`, or `None` for a rate of `fps`), and checks
/// with an AF_PACKET receiver on A that they arrive intact and in order.
///
/// # Panics
/// When a socket cannot be opened or a send fails (harness errors).
pub fn transfer(
    pair: &NetnsPair,
    size: usize,
    count: u64,
    window: Option<u64>,
    fps: f64,
) -> Transfer {
    let spec = pair.frame_spec(Side::B, size).unwrap();
    let mut rx = Receiver::open(pair, Side::A, RxFilter::udp_port(spec.dst_port)).unwrap();
    let tx = Sender::open(pair, Side::B).unwrap();
    let received = AtomicU64::new(0);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let rx_thread = s.spawn(|| {
            let start = Instant::now();
            let mut seq = SequenceChecker::new();
            let mut errors = Vec::new();
            let hard_deadline = start + Duration::from_secs(30);
            while seq.next_expected() < count && Instant::now() < hard_deadline {
                match rx.recv(Duration::from_millis(200)) {
                    Ok(Some(f)) => {
                        if let Err(e) = seq.check(f) {
                            if errors.len() < 10 {
                                errors.push(e.to_string());
                            }
                            break;
                        }
                        received.fetch_add(1, Ordering::Release);
                    }
                    // Idle: stop once the sender has finished and nothing
                    // more arrives.
                    Ok(None) if done.load(Ordering::Acquire) => break,
                    Ok(None) => {}
                    Err(e) => {
                        errors.push(e.to_string());
                        break;
                    }
                }
            }
            let (_, drops) = rx.stats().unwrap();
            (seq.next_expected(), errors, start.elapsed(), drops)
        });
        let report = match window {
            Some(w) => tx.send_paced(
                &spec,
                count,
                w,
                || received.load(Ordering::Acquire),
                Duration::from_secs(20),
            ),
            None => tx.send_rate(&spec, count, fps, Duration::from_secs(20)),
        }
        .unwrap();
        done.store(true, Ordering::Release);
        let (in_order, errors, rx_elapsed, socket_drops) = rx_thread.join().unwrap();
        Transfer {
            report,
            in_order,
            errors,
            rx_elapsed,
            socket_drops,
        }
    })
}

/// Sends `frames` frames of `spec` from B, at most `window` on the round
/// trip, and checks each one that comes back: MACs swapped, the size sent,
/// in order, payload intact. Counts them in `back` (which another thread
/// may watch); returns the errors. Gives up after 30 s.
///
/// # Panics
/// When a socket cannot be opened or a send fails (harness errors).
pub fn round_trip_from_b(
    pair: &NetnsPair,
    spec: &FrameSpec,
    frames: u64,
    window: u64,
    back: &AtomicU64,
) -> Vec<String> {
    round_trip(pair, spec, frames, window, back, true)
}

/// [`round_trip_from_b`] for paths that may reorder (frames spread over
/// workers round-robin): each frame must come back exactly once, in any
/// order (at most 65 536 frames: the on-wire number names each).
pub fn round_trip_from_b_any_order(
    pair: &NetnsPair,
    spec: &FrameSpec,
    frames: u64,
    window: u64,
    back: &AtomicU64,
) -> Vec<String> {
    assert!(frames <= 1 << 16);
    round_trip(pair, spec, frames, window, back, false)
}

fn round_trip(
    pair: &NetnsPair,
    spec: &FrameSpec,
    frames: u64,
    window: u64,
    back: &AtomicU64,
    ordered: bool,
) -> Vec<String> {
    let mut seen = vec![false; 1 << 16];
    let (mac_a, mac_b) = (pair.mac(Side::A), pair.mac(Side::B));
    pair.in_ns(Side::B, || {
        let mut rxb = Receiver::open_in_current_ns(
            pair.ifindex(Side::B),
            RxFilter::udp_port(DEFAULT_UDP_PORT),
        )
        .unwrap();
        let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
        let mut seq = SequenceChecker::new();
        let mut errors = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut sent = 0u64;
        while back.load(Ordering::Relaxed) < frames && Instant::now() < deadline {
            while sent < frames && sent - back.load(Ordering::Relaxed) < window {
                tx.send_frame(&spec.build(sent).unwrap()).unwrap();
                sent += 1;
            }
            if let Some(f) = rxb.recv(Duration::from_millis(200)).unwrap() {
                if f[0..6] != mac_b || f[6..12] != mac_a {
                    errors.push(format!("MACs not swapped: {:02x?}", &f[..12]));
                }
                if f.len() != spec.size {
                    errors.push(format!("{} bytes came back", f.len()));
                }
                if ordered {
                    if let Err(e) = seq.check(f) {
                        errors.push(e.to_string());
                    }
                }
                match check_payload(f) {
                    Err(e) => errors.push(e.to_string()),
                    Ok(info) if !ordered => {
                        let n = usize::from(info.packet_no);
                        if std::mem::replace(&mut seen[n], true) {
                            errors.push(format!("packet {n} came back twice"));
                        }
                    }
                    Ok(_) => {}
                }
                back.fetch_add(1, Ordering::Relaxed);
            }
        }
        errors
    })
}
