//! Several sockets over one UMEM.

use skmem_netns::Side;
use skmem_xdp::XdpAction;

use super::{finish, PACKETS, PACKET_LEN, XDP_PACKET_HEADROOM};
use crate::exchange::{exchange, Receiver, Rx, Sender};
use crate::rig::{Rig, SocketSpec};
use crate::stream::Stream;
use crate::{Case, Mode, Outcome, Step, Verdict};

pub(crate) const XDP_SHARED_UMEM: Case = Case {
    name: "XDP_SHARED_UMEM",
    checks: "two sockets on one UMEM (one pool) per end, on two devices: each receives exactly its half of the stream (even, odd), in order",
    differs: Some(
        "skmem shares a UMEM between sockets of different queues or devices, each with its own fill and completion rings; the kernel's case shares one queue (and its rings) and steers by MAC. Two devices here: generic XDP on a veth sees every frame on queue 0, so queues could not steer in SKB mode.",
    ),
    run: xdp_shared_umem,
};

fn xdp_shared_umem(mode: Mode) -> Outcome {
    // skmem shares a UMEM between sockets of different queues or devices
    // (each with its own fill and completion rings); the kernel's case
    // puts both on queue 0 of one device, sharing those rings, and steers
    // by MAC. Here a second veth pair between the same namespaces steers:
    // each device's program sends what arrives to its one socket. (Two
    // queues of one veth would not do in SKB mode: generic XDP sees every
    // frame a veth forwards on queue 0.)
    let rig = Rig::new(mode, 1500)?;
    let (a1, b1) = rig.second_veth()?;
    let a0 = rig.ifname(Side::A);
    let mut prog0 = rig.attach(Side::A, XdpAction::Redirect)?;
    let mut prog1 = rig.attach_on(Side::A, &a1, XdpAction::Redirect)?;
    let shared = SocketSpec {
        workers: 2,
        ..SocketSpec::default()
    };
    let rx0 = rig.socket(Side::A, &shared, |_| {})?;
    let (mut rx0, mut rx1) = rig.shared_socket(Side::A, &a1, rx0, 0, |_| {})?;
    prog0
        .add_socket(0, rx0.ch.fd())
        .step("registering the first socket")?;
    prog1
        .add_socket(0, rx1.ch.fd())
        .step("registering the second socket")?;
    rx0.ch.refill().step("filling the first fill ring")?;
    rx1.ch.refill().step("filling the second fill ring")?;
    let tx0 = rig.socket(Side::B, &shared, |_| {})?;
    let (mut tx0, mut tx1) = rig.shared_socket(Side::B, &b1, tx0, 0, |_| {})?;
    ensure!(
        std::sync::Arc::ptr_eq(rx0.ch.pool(), rx1.ch.pool()),
        "A's sockets have one pool"
    );
    ensure!(a0 != a1, "two devices");

    let spec = rig.spec(PACKET_LEN)?;
    let half = |parity: u64| {
        let mut s = Stream::new(&spec, PACKETS, PACKET_LEN);
        s.packets.retain(|p| p.number % 2 == parity);
        s
    };
    for (parity, prog, tx, rx) in [
        (0, &prog0, &mut tx0, &mut rx0),
        (1, &prog1, &mut tx1, &mut rx1),
    ] {
        let s = half(parity);
        let expect = s.expected();
        let r = exchange(
            mode,
            prog,
            Sender {
                ch: &mut tx.ch,
                stream: &s,
                poll: false,
            },
            Receiver {
                ch: &mut rx.ch,
                expect: &expect,
                rx: Rx::Receive,
                offset: Some(XDP_PACKET_HEADROOM),
                metadata: false,
            },
        )?;
        ensure_eq!(
            r.received,
            PACKETS / 2,
            format!("packets received by socket {parity}")
        );
    }
    // Nothing of either half reached the other socket.
    let mut stray = Vec::new();
    for (i, rx) in [(0, &mut rx0), (1, &mut rx1)] {
        let n = rx.ch.rx_burst(&mut stray, 64).step("rx_burst")?;
        ensure_eq!(n, 0, format!("packets left on socket {i}"));
    }
    finish(&mut tx1.ch, "B's second socket")?;
    finish(&mut tx0.ch, "B's first socket")?;
    finish(&mut rx1.ch, "A's second socket")?;
    finish(&mut rx0.ch, "A's first socket")?;
    Ok(())
}

pub(crate) const XDP_PROG_CLEANUP: Case = Case {
    name: "XDP_PROG_CLEANUP",
    checks: "while the stream flows, the queue's socket leaves the program's XSKMAP and closes, and a new socket takes the entry: the first got packets from 0 in order, the second the rest from where it came in, in order, the program passed exactly the packets in between, and no frame of either UMEM is lost",
    differs: Some(
        "The kernel's case swaps the XSKMAP entry to a second socket sharing the first's UMEM on the same queue, both open. skmem's channels each own their fill and completion rings, so two cannot share a queue: the entry goes to a socket opened on the queue once the first has closed, and the program passes (and counts) what arrives in between.",
    ),
    run: xdp_prog_cleanup,
};

fn xdp_prog_cleanup(mode: Mode) -> Outcome {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Mutex;
    use std::time::Instant;

    /// Packets the first socket takes before the swap.
    const SWAP_AT: u64 = 1024;
    let rig = Rig::new(mode, 1500)?;
    let prog = Mutex::new(rig.attach(Side::A, XdpAction::Redirect)?);
    let lock = || prog.lock().unwrap_or_else(|p| p.into_inner());
    let mut rx0 = rig.socket(Side::A, &SocketSpec::default(), |_| {})?;
    lock()
        .add_socket(0, rx0.ch.fd())
        .step("registering the first socket")?;
    rx0.ch.refill().step("filling the first fill ring")?;
    // The queue's socket: the first, then (after it closes) the second.
    let mut rx = Some(rx0);
    let mut tx = rig.socket(Side::B, &SocketSpec::default(), |_| {})?;
    let s = Stream::new(&rig.spec(PACKET_LEN)?, PACKETS, PACKET_LEN);
    let deadline = Instant::now() + crate::exchange::DEADLINE;
    let received = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let seen_before = lock().counters().step("XDP counters")?.seen;

    let (got0, got1) = std::thread::scope(|sc| {
        let sender = sc.spawn(|| -> Result<(), Verdict> {
            // Paced as `exchange` paces: by what the program has seen, and
            // by what is received or passed (the packets of the gap).
            let mut frames = Vec::new();
            for (q, p) in (0u64..).zip(&s.packets) {
                loop {
                    let c = lock().counters().step("XDP counters")?;
                    let seen = c.seen - seen_before;
                    let resolved = received.load(Ordering::Acquire) + c.passed;
                    if q - seen.min(q) < 32 && q - resolved.min(q) < 256 {
                        break;
                    }
                    if Instant::now() > deadline {
                        return Err(Verdict::Failed(format!("sender: stuck at {q} ({c:?})")));
                    }
                    tx.ch.complete();
                    std::thread::yield_now();
                }
                ensure_eq!(tx.ch.alloc_tx(&mut frames, 1), 1, "a TX frame");
                let f = frames.last_mut().expect("just allocated");
                tx.ch
                    .set_data(f, &s.bytes(p.number, p.len))
                    .step("writing a frame")?;
                while !frames.is_empty() {
                    tx.ch.tx_burst(&mut frames).step("tx_burst")?;
                    tx.ch.complete();
                }
            }
            crate::exchange::settle(&mut tx.ch, deadline)?;
            done.store(true, Ordering::Release);
            Ok(())
        });
        let receive = |ch: &mut skmem::channel::Channel,
                       numbers: &mut Vec<u64>,
                       until: &dyn Fn(&[u64]) -> Result<bool, Verdict>|
         -> Outcome {
            let mut frames = Vec::new();
            while !until(numbers)? {
                if Instant::now() > deadline {
                    fail!("{} packets received by the deadline", numbers.len());
                }
                if ch.rx_burst(&mut frames, 64).step("rx_burst")? == 0 {
                    if mode.busy_poll() {
                        ch.busy_poll().step("busy poll")?;
                    } else {
                        ch.poll(10).step("poll")?;
                    }
                    continue;
                }
                for f in &frames {
                    let data = ch.data(f).step("a frame's data")?;
                    let info = skmem_netns::check_payload(data)
                        .map_err(|e| Verdict::Failed(format!("a received packet: {e}")))?;
                    numbers.push(u64::from(info.packet_no));
                    received.fetch_add(1, Ordering::AcqRel);
                }
                ch.free_rx(&mut frames).step("free_rx")?;
            }
            Ok(())
        };
        let mut run = || -> Result<(Vec<u64>, Vec<u64>), Verdict> {
            let mut got0 = Vec::new();
            let first = &mut rx.as_mut().expect("the first socket").ch;
            receive(first, &mut got0, &|n| Ok(n.len() as u64 >= SWAP_AT))?;
            // The swap, while the sender runs: the first socket leaves the
            // map (the program passes what comes now), takes what the
            // program redirected to it before, and closes, its frames all
            // accounted for; a new one on the same queue takes the entry.
            lock()
                .remove_socket(0)
                .step("taking the first socket out of the map")?;
            receive(first, &mut got0, &|n| {
                Ok(n.len() as u64 >= lock().counters().step("XDP counters")?.redirected)
            })?;
            finish(first, "the first socket")?;
            // Closed before the second binds: a queue takes one socket.
            rx = None;
            let second = rx.insert(rig.socket(Side::A, &SocketSpec::default(), |_| {})?);
            second.ch.refill().step("filling the new fill ring")?;
            lock()
                .add_socket(0, second.ch.fd())
                .step("registering the new socket")?;
            let mut got1 = Vec::new();
            receive(&mut second.ch, &mut got1, &|n| {
                if !done.load(Ordering::Acquire) {
                    return Ok(false);
                }
                let c = lock().counters().step("XDP counters")?;
                Ok(c.seen - seen_before >= PACKETS
                    && (got0.len() + n.len()) as u64 + c.passed >= PACKETS)
            })?;
            Ok((got0, got1))
        };
        let r = run();
        let sent = sender
            .join()
            .map_err(|_| Verdict::Failed("the sending thread panicked".into()))?;
        sent?;
        r
    })?;
    // The first socket: 0..n0 in order, n0 at least SWAP_AT (it took what
    // the program had redirected to it when it left the map).
    let n0 = got0.len() as u64;
    ensure!(n0 >= SWAP_AT, "the first socket got {n0} packets");
    ensure!(
        got0.iter().copied().eq(0..n0),
        "the first socket's packets are not 0..{n0} in order"
    );
    // The second: a run in order from where it came in to the end.
    let first = *got1
        .first()
        .ok_or_else(|| Verdict::Failed("the second socket got nothing".into()))?;
    ensure!(
        got1.iter().copied().eq(first..PACKETS),
        "the second socket's packets are not {first}..{PACKETS} in order"
    );
    // In between, the program found no socket and passed each packet.
    let c = lock().counters().step("XDP counters")?;
    ensure_eq!(
        c.passed,
        first - n0,
        "packets passed while no socket was registered"
    );
    ensure_eq!(c.redirected, n0 + got1.len() as u64, "packets redirected");
    finish(&mut tx.ch, "B")?;
    let mut second = rx.ok_or_else(|| Verdict::Failed("no second socket".into()))?;
    finish(&mut second.ch, "the second socket")
}
