//! The pps harness's out-of-process peers, end to end on a veth pair
//! (root only; skipped otherwise):
//! - the libxdp C peer receives through skmem's XDP program (rxdrop),
//!   returns frames to B with swapped MACs (l2fwd) and sends frames that
//!   reach B (txonly);
//! - DPDK testpmd counts the frames B sends (rxonly) and sends frames that
//!   reach B (txonly); skipped when testpmd is not installed.
//!
//! Counts and time are bounded; nothing about speed is asserted. The
//! namespaces, XDP programs, child processes and libxdp's bpffs directory
//! are gone at the end, also when an assertion fails (their owners clean
//! up on drop, and the peers reap their children on every path).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use skmem_bench::pps::meter::{Meter, Schedule};
use skmem_bench::pps::{cpeer, peers, testpmd, ProgParams, ProgRun, Wait, Workload};
use skmem_netns::{
    NetnsPair, PairConfig, Receiver, RxFilter, Sender, SequenceChecker, Side, DEFAULT_UDP_PORT,
};
use skmem_xdp::{AttachMode, XdpFilter, XdpProgram};

/// Skips (with the reason printed) unless root and the C peer is built.
macro_rules! require_cpeer {
    () => {
        skmem_netns::require_root!();
        if let Some(r) = cpeer::skip_reason() {
            skmem_netns::skip(concat!(file!(), ":", line!()), &r);
            return;
        }
    };
}

fn pair() -> NetnsPair {
    NetnsPair::with_config(PairConfig::default().queues(1, 1)).expect("namespace pair")
}

fn params(pair: &NetnsPair, workload: Workload, schedule: (f64, f64, u32)) -> ProgParams {
    let mut p = params_for(pair.ifname(Side::A), workload);
    p.frame = pair
        .frame_spec(Side::A, 64)
        .and_then(|s| Ok(s.build(0)?))
        .expect("A-to-B frame");
    p.warmup = Duration::from_secs_f64(schedule.0);
    p.duration = Duration::from_secs_f64(schedule.1);
    p.reps = schedule.2;
    p
}

/// rxdrop over `frames` frames, with rings that hold every frame of the
/// test: pacing follows XDP, not the peer, and a peer starved of CPU for a
/// moment (a loaded machine) would otherwise run its fill ring dry and
/// drop frames.
fn rxdrop_holding(pair: &NetnsPair, frames: u64) -> ProgParams {
    let mut p = params(pair, Workload::Rxdrop, (0.2, 1.0, 2));
    p.ring_entries = frames as u32;
    p.frames = 2 * frames as u32;
    p
}

/// Sets the flag when dropped while armed: a test failing on B's side
/// stops its peer at once instead of letting it run its schedule out.
struct StopOnPanic<'a>(&'a AtomicBool, bool);

impl Drop for StopOnPanic<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.store(true, Ordering::Relaxed);
        }
    }
}

/// skmem's XDP program on A, redirecting the harness's UDP flow to the
/// XSKMAP (as the harness attaches it for the C peer).
fn attach_skmem(pair: &NetnsPair) -> XdpProgram {
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || {
        let filter = XdpFilter::new().with_udp_dst_ports(DEFAULT_UDP_PORT, DEFAULT_UDP_PORT);
        XdpProgram::attach(&ifname, AttachMode::Native, Some(filter)).expect("attach on A")
    })
}

/// Runs the C peer with its socket added to `prog`'s XSKMAP (queue 0).
fn cpeer_through(
    prog: &Mutex<XdpProgram>,
    p: &ProgParams,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    let mut register = |fd: BorrowedFd<'_>| -> Result<()> {
        prog.lock()
            .unwrap()
            .add_socket(0, fd)
            .context("adding the C peer's socket to the XSKMAP")
    };
    cpeer::run(p, &mut register, start, stop)
}

/// Runs `peer` on a thread in A's namespace while `b_side` runs in B's
/// (once the peer's schedule has started); returns both results.
fn with_peer<T: Send>(
    pair: &NetnsPair,
    peer: impl FnOnce(&mut dyn FnMut() -> Meter, &AtomicBool) -> Result<ProgRun> + Send,
    p: &ProgParams,
    b_side: impl FnOnce(Instant) -> T + Send,
) -> (Result<ProgRun>, Option<T>) {
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Instant>();
    std::thread::scope(|s| {
        let runner = s.spawn(|| {
            pair.in_ns(Side::A, || {
                let mut start = || {
                    let sched = Schedule::starting_now(p.warmup, p.duration, p.reps);
                    let _ = tx.send(sched.end());
                    Meter::new(&sched)
                };
                peer(&mut start, &stop)
            })
        });
        let mut guard = StopOnPanic(&stop, true);
        // Start-up (testpmd's EAL in particular) takes a few seconds.
        let b = rx
            .recv_timeout(Duration::from_secs(90))
            .ok()
            .map(|end| pair.in_ns(Side::B, || b_side(end)));
        // Not started: no point waiting for it. Started: let it finish.
        guard.1 = b.is_none();
        drop(guard);
        (runner.join().expect("peer thread panicked"), b)
    })
}

fn check_samples(run: &ProgRun, p: &ProgParams) {
    assert_eq!(run.samples.len(), p.reps as usize + 1, "{:?}", run.samples);
    for w in run.samples.windows(2) {
        assert!(w[1].at > w[0].at, "{:?}", run.samples);
        assert!(w[1].value >= w[0].value, "{:?}", run.samples);
    }
}

#[test]
fn cpeer_rxdrop_receives_through_skmem_xdp() {
    require_cpeer!();
    const FRAMES: u64 = 4096;
    let pair = pair();
    let prog = Mutex::new(attach_skmem(&pair));
    let p = rxdrop_holding(&pair, FRAMES);
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    let redirected = || prog.lock().unwrap().counters().unwrap().redirected;
    let (run, sent) = with_peer(
        &pair,
        |start, stop| cpeer_through(&prog, &p, start, stop),
        &p,
        |end| {
            // Paced on what XDP redirected: a burst would be lost on veth
            // before XDP runs (veth's 256-frame ring to the peer overflows).
            let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
            let left = end.saturating_duration_since(Instant::now());
            tx.send_paced(&spec, FRAMES, 32, redirected, left.mul_f64(0.8))
                .unwrap()
        },
    );
    let run = run.expect("C peer rxdrop");
    let sent = sent.expect("the peer never started its schedule");
    eprintln!("rxdrop: sent {sent:?}, peer {:?}", run.counters);
    assert!(sent.complete(), "{sent:?}");
    let xdp = prog.lock().unwrap().counters().unwrap();
    assert_eq!(xdp.redirected, FRAMES, "{xdp:?}");
    let c = run.counters;
    // Every frame XDP redirected was received (with rings this size none
    // can be lost; if one were, the socket's drop counters would say why).
    assert_eq!(
        c.rx_packets + c.xsk_rx_dropped + c.xsk_rx_ring_full,
        xdp.redirected,
        "{c:?}"
    );
    assert_eq!(c.rx_packets, FRAMES, "{c:?}");
    check_samples(&run, &p);
    assert!(run.samples.last().unwrap().value <= c.rx_packets);
}

#[test]
fn cpeer_l2fwd_returns_frames_with_swapped_macs() {
    require_cpeer!();
    const FRAMES: u64 = 2048;
    let pair = pair();
    let prog = Mutex::new(attach_skmem(&pair));
    let p = params(&pair, Workload::L2fwd, (0.2, 1.5, 2));
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    let (mac_a, mac_b) = (pair.mac(Side::A), pair.mac(Side::B));
    let mut rxb = Receiver::open(&pair, Side::B, RxFilter::udp_port(DEFAULT_UDP_PORT)).unwrap();
    let back = AtomicU64::new(0);
    let (run, errors) = with_peer(
        &pair,
        |start, stop| cpeer_through(&prog, &p, start, stop),
        &p,
        |end| {
            let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
            let mut seq = SequenceChecker::new();
            let mut errors = Vec::new();
            let mut sent = 0u64;
            // Leave the peer time to return the last frames before its
            // schedule ends.
            let deadline = end - Duration::from_millis(300);
            while back.load(Ordering::Relaxed) < FRAMES && Instant::now() < deadline {
                // At most 32 frames on the round trip.
                while sent < FRAMES && sent - back.load(Ordering::Relaxed) < 32 {
                    tx.send_frame(&spec.build(sent).unwrap()).unwrap();
                    sent += 1;
                }
                if let Some(f) = rxb.recv(Duration::from_millis(100)).unwrap() {
                    if f[0..6] != mac_b || f[6..12] != mac_a {
                        errors.push(format!("MACs not swapped: {:02x?}", &f[..12]));
                    }
                    if let Err(e) = seq.check(f) {
                        errors.push(e.to_string());
                    }
                    back.fetch_add(1, Ordering::Relaxed);
                }
            }
            errors
        },
    );
    let run = run.expect("C peer l2fwd");
    let errors = errors.expect("the peer never started its schedule");
    let back = back.load(Ordering::Relaxed);
    eprintln!("l2fwd: {back} of {FRAMES} back, peer {:?}", run.counters);
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
    assert_eq!(back, FRAMES, "{:?}", run.counters);
    let c = run.counters;
    assert!(c.rx_packets >= FRAMES && c.tx_completed >= FRAMES, "{c:?}");
    assert_eq!(c.tx_queued, c.tx_completed, "{c:?}");
    check_samples(&run, &p);
}

/// Counts frames B receives on the harness's flow until `end` (plus a
/// little); returns (all matching frames, frames equal to `frame` in their
/// first `frame.len()` bytes, if given).
fn count_at_b(rxb: &mut Receiver, end: Instant, frame: Option<&[u8]>) -> (u64, u64) {
    let (mut n, mut equal) = (0u64, 0u64);
    let until = end + Duration::from_millis(500);
    while Instant::now() < until {
        if let Some(f) = rxb.recv(Duration::from_millis(50)).unwrap() {
            n += 1;
            if frame.is_some_and(|x| f.len() >= x.len() && &f[..x.len()] == x) {
                equal += 1;
            }
        }
    }
    (n, equal)
}

#[test]
fn cpeer_txonly_frames_reach_b() {
    require_cpeer!();
    let pair = pair();
    let p = params(&pair, Workload::L2fwd, (0.1, 0.5, 1));
    // The workload by name: the C peer knows txonly even where the
    // harness's `Workload` does not name it yet.
    let Some(p) = txonly(p) else {
        return;
    };
    let mut rxb = Receiver::open(&pair, Side::B, RxFilter::udp_port(DEFAULT_UDP_PORT)).unwrap();
    let (run, at_b) = with_peer(
        &pair,
        |start, stop| {
            // Sending needs no XDP program on A and no XSKMAP entry.
            let mut register = |_: BorrowedFd<'_>| Ok(());
            cpeer::run(&p, &mut register, start, stop)
        },
        &p,
        |end| count_at_b(&mut rxb, end, Some(&p.frame)),
    );
    let run = run.expect("C peer txonly");
    let (n, equal) = at_b.expect("the peer never started its schedule");
    eprintln!(
        "txonly: B got {n} ({equal} intact), peer {:?}",
        run.counters
    );
    let c = run.counters;
    assert!(c.tx_completed > 0 && c.tx_queued >= c.tx_completed, "{c:?}");
    assert!(n > 0, "no frame reached B");
    assert!(
        n <= c.tx_completed,
        "B got more than the peer sent: {n} > {c:?}"
    );
    assert_eq!(equal, n, "frames changed on the way");
    check_samples(&run, &p);
}

/// `p` with the txonly workload; `None` (skipped, saying why) if the
/// harness has none.
fn txonly(mut p: ProgParams) -> Option<ProgParams> {
    use clap::ValueEnum as _;
    let Ok(workload) = Workload::from_str("txonly", true) else {
        skmem_netns::skip("peers", "the harness has no txonly workload in this build");
        return None;
    };
    p.workload = workload;
    Some(p)
}

/// Skips (with the reason printed) unless root, testpmd and two CPUs;
/// otherwise testpmd's two CPUs and a guard of libxdp's bpffs directory.
fn testpmd_cpus() -> Option<((usize, usize), peers::LibxdpStateGuard)> {
    if let Some(r) = skmem_netns::skip_reason().or_else(testpmd::skip_reason) {
        skmem_netns::skip("testpmd", &r);
        return None;
    }
    let cpus = skmem_bench::pps::sys::allowed_cpus();
    if cpus.len() < 2 {
        skmem_netns::skip("testpmd", &format!("needs two CPUs, has {cpus:?}"));
        return None;
    }
    // testpmd's net_af_xdp makes libxdp's bpffs directory; it goes when
    // the last test that may have made it ends.
    Some(((cpus[0], cpus[1]), peers::LibxdpStateGuard::new()))
}

#[test]
fn testpmd_rxonly_counts_frames() {
    let Some((cpus, _libxdp_state)) = testpmd_cpus() else {
        return;
    };
    const FRAMES: u64 = 4096;
    let pair = pair();
    let p = rxdrop_holding(&pair, FRAMES);
    let spec = pair.frame_spec(Side::B, 64).unwrap();
    let (run, sent) = with_peer(
        &pair,
        |start, stop| testpmd::run(&p, cpus, start, stop),
        &p,
        |end| {
            // testpmd's XDP program counts nothing we can read cheaply:
            // pace by rate instead, well below what it drops at.
            let tx = Sender::open_in_current_ns(pair.ifindex(Side::B)).unwrap();
            let left = end.saturating_duration_since(Instant::now());
            tx.send_rate(&spec, FRAMES, 20_000.0, left.mul_f64(0.8))
                .unwrap()
        },
    );
    let run = run.expect("testpmd rxonly");
    let sent = sent.expect("testpmd never started its schedule");
    eprintln!("testpmd rxonly: sent {sent:?}, testpmd {:?}", run.counters);
    assert!(sent.complete(), "{sent:?}");
    let c = run.counters;
    assert!(c.rx_packets <= FRAMES, "more than was sent: {c:?}");
    assert!(c.rx_packets >= FRAMES * 9 / 10, "{c:?}");
    check_samples(&run, &p);
    assert!(run.samples.last().unwrap().value <= c.rx_packets);
}

#[test]
fn testpmd_txonly_frames_reach_b() {
    let Some((cpus, _libxdp_state)) = testpmd_cpus() else {
        return;
    };
    let pair = pair();
    let Some(p) = txonly(params(&pair, Workload::Rxdrop, (0.1, 0.5, 1))) else {
        return;
    };
    let mut rxb = Receiver::open(&pair, Side::B, RxFilter::udp_port(DEFAULT_UDP_PORT)).unwrap();
    let (run, at_b) = with_peer(
        &pair,
        |start, stop| testpmd::run(&p, cpus, start, stop),
        &p,
        // testpmd builds its own frames: only the flow (UDP port) matches.
        |end| count_at_b(&mut rxb, end, None),
    );
    let run = run.expect("testpmd txonly");
    let (n, _) = at_b.expect("testpmd never started its schedule");
    eprintln!("testpmd txonly: B got {n}, testpmd {:?}", run.counters);
    let c = run.counters;
    assert!(c.tx_completed > 0, "{c:?}");
    assert!(n > 0, "no frame of the flow reached B");
    check_samples(&run, &p);
}

/// Processes whose command line contains `needle` (live ones: a zombie's
/// command line is empty), and zombie children of this process named
/// `comm`.
fn leftovers(needle: &str, comm: &str) -> Vec<String> {
    let me = std::process::id().to_string();
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            found.push(format!("{name}: {}", String::from_utf8_lossy(&cmdline)));
        }
        // "pid (comm) state ppid ..."
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        if let Some((head, tail)) = stat.rsplit_once(") ") {
            let mut f = tail.split(' ');
            let (state, ppid) = (f.next(), f.next());
            if head.ends_with(&format!("({comm}")) && state == Some("Z") && ppid == Some(&me) {
                found.push(format!("{name}: zombie {comm}"));
            }
        }
    }
    found
}

/// A peer that fails at start-up: the error says why, and its process is
/// gone (reaped) when `run` returns.
fn check_failure(run: Result<ProgRun>, expect: &str, needle: &str, comm: &str) {
    let e = format!("{:#}", run.expect_err("a peer on a missing interface"));
    eprintln!("error as reported: {e}");
    assert!(e.contains(expect), "{e}");
    // A zombie of a test running alongside lives for microseconds, until
    // its owner reaps it: look twice before calling it ours.
    let first = leftovers(needle, comm);
    if !first.is_empty() {
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(leftovers(needle, comm), Vec::<String>::new());
    }
}

#[test]
fn cpeer_failure_is_reported_and_the_child_reaped() {
    if let Some(r) = cpeer::skip_reason() {
        skmem_netns::skip("cpeer", &r);
        return;
    }
    let ifname = format!("nosuch{}", std::process::id() % 100_000);
    let mut p = params_for(&ifname, Workload::Rxdrop);
    p.reps = 1;
    let stop = AtomicBool::new(false);
    let mut register = |_: BorrowedFd<'_>| -> Result<()> { panic!("no socket to register") };
    let mut start = || -> Meter { panic!("no schedule to start") };
    let run = cpeer::run(&p, &mut register, &mut start, &stop);
    check_failure(run, "xsk_socket__create", &ifname, "xdpsock_peer");
}

#[test]
fn testpmd_failure_is_reported_and_the_child_reaped() {
    let Some((cpus, _libxdp_state)) = testpmd_cpus() else {
        return;
    };
    let ifname = format!("nosuch{}", std::process::id() % 100_000 + 1);
    let p = params_for(&ifname, Workload::Rxdrop);
    let stop = AtomicBool::new(false);
    let mut start = || -> Meter { panic!("no schedule to start") };
    let run = testpmd::run(&p, cpus, &mut start, &stop);
    check_failure(run, "testpmd", &ifname, "dpdk-testpmd");
}

/// The settings of every test here (the only place that lists
/// `ProgParams`' fields), on an interface that need not exist.
fn params_for(ifname: &str, workload: Workload) -> ProgParams {
    ProgParams {
        ifname: ifname.to_owned(),
        workload,
        wait: Wait::Poll,
        batch: 64,
        frames: 4096,
        frame_size: 2048,
        ring_entries: 1024,
        tx_budget: None,
        arena_name: format!("peers{}", std::process::id()),
        warmup: Duration::from_millis(100),
        duration: Duration::from_millis(500),
        reps: 1,
        pkt_size: 64,
        frame: vec![0; 64],
        worker_exe: None,
    }
}

/// `stop` set in the middle of a long schedule: the peer ends within a
/// bounded time and hands back the samples it took.
fn check_stop(
    run: impl FnOnce(&ProgParams, &mut dyn FnMut() -> Meter, &AtomicBool) -> Result<ProgRun> + Send,
    p: &ProgParams,
) {
    let stop = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<()>();
    let t0 = Instant::now();
    let out = std::thread::scope(|s| {
        let h = s.spawn(|| {
            let mut start = || {
                let _ = tx.send(());
                Meter::new(&Schedule::starting_now(p.warmup, p.duration, p.reps))
            };
            run(p, &mut start, &stop)
        });
        let started = rx.recv_timeout(Duration::from_secs(90)).is_ok();
        if started {
            // Past the warm-up's boundary, well before the next one.
            std::thread::sleep(p.warmup + Duration::from_millis(300));
        }
        stop.store(true, Ordering::Relaxed);
        let started_at = Instant::now();
        let r = h.join().expect("peer thread panicked");
        (started, r, started_at.elapsed())
    });
    let (started, run, took) = out;
    assert!(started, "the peer never started its schedule");
    let run = run.expect("a stopped run still reports");
    eprintln!(
        "stopped after {took:?} (run {:?}): {:?}",
        t0.elapsed(),
        run.samples
    );
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(run.samples.len(), 1, "{:?}", run.samples);
}

#[test]
fn cpeer_stop_ends_the_run_early() {
    require_cpeer!();
    let pair = pair();
    let prog = Mutex::new(attach_skmem(&pair));
    let p = params(&pair, Workload::L2fwd, (0.2, 60.0, 2));
    pair.in_ns(Side::A, || {
        check_stop(|p, start, stop| cpeer_through(&prog, p, start, stop), &p)
    });
}

#[test]
fn testpmd_stop_ends_the_run_early() {
    let Some((cpus, _libxdp_state)) = testpmd_cpus() else {
        return;
    };
    let pair = pair();
    let p = params(&pair, Workload::L2fwd, (0.2, 60.0, 2));
    pair.in_ns(Side::A, || {
        check_stop(|p, start, stop| testpmd::run(p, cpus, start, stop), &p)
    });
}
