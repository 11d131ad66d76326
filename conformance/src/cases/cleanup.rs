//! XDP_PROG_CLEANUP: the program's XSKMAP entry handed from one socket to
//! another while the stream flows.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use skmem::channel::Channel;
use skmem_netns::Side;
use skmem_xdp::{XdpAction, XdpProgram};

use super::{finish, PACKETS, PACKET_LEN};
use crate::rig::{Rig, Socket, SocketSpec};
use crate::stream::Stream;
use crate::{Case, Mode, Outcome, Step, Verdict};

pub(crate) const XDP_PROG_CLEANUP: Case = Case {
    name: "XDP_PROG_CLEANUP",
    checks: "while the stream flows, the queue's socket leaves the program's XSKMAP and closes, and a new socket takes the entry: the first got packets from 0 in order, the second the rest from where it came in, in order, the program passed exactly the packets in between, and no frame of either UMEM is lost",
    differs: Some(
        "The kernel's case swaps the XSKMAP entry to a second socket sharing the first's UMEM on the same queue, both open. skmem's channels each own their fill and completion rings, so two cannot share a queue: the entry goes to a socket opened on the queue once the first has closed, and the program passes (and counts) what arrives in between.",
    ),
    run: xdp_prog_cleanup,
};

/// Packets the first socket takes before the swap.
const SWAP_AT: u64 = 1024;

/// What the sender and the receiver share.
struct Flow<'a> {
    /// The program on A: its counters pace the sender; its map changes.
    prog: &'a Mutex<XdpProgram>,
    /// Its `seen` counter before the stream.
    seen_before: u64,
    /// Packets received, by either socket.
    received: AtomicU64,
    /// The sender has sent everything and seen it complete.
    done: AtomicBool,
    /// The receiver is swapping sockets: the sender holds back new packets
    /// (those already on their way meet the gap), so that the stream does
    /// not all pass while no socket is registered.
    swapping: AtomicBool,
    /// When the case fails.
    deadline: Instant,
}

impl Flow<'_> {
    fn prog(&self) -> MutexGuard<'_, XdpProgram> {
        self.prog.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn counters(&self) -> Result<skmem_xdp::XdpCounters, Verdict> {
        self.prog().counters().step("XDP counters")
    }
}

fn xdp_prog_cleanup(mode: Mode) -> Outcome {
    let rig = Rig::new(mode, 1500)?;
    let prog = Mutex::new(rig.attach(Side::A, XdpAction::Redirect)?);
    let mut first = rig.socket(Side::A, &SocketSpec::default(), |_| {})?;
    prog.lock()
        .unwrap_or_else(|p| p.into_inner())
        .add_socket(0, first.ch.fd())
        .step("registering the first socket")?;
    first.ch.refill().step("filling the first fill ring")?;
    let mut tx = rig.socket(Side::B, &SocketSpec::default(), |_| {})?;
    let s = Stream::new(&rig.spec(PACKET_LEN)?, PACKETS, PACKET_LEN);
    let seen_before = prog
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .counters()
        .step("XDP counters")?
        .seen;
    let flow = Flow {
        prog: &prog,
        seen_before,
        received: AtomicU64::new(0),
        done: AtomicBool::new(false),
        swapping: AtomicBool::new(false),
        deadline: Instant::now() + crate::exchange::DEADLINE,
    };
    let (got0, got1, mut second) = std::thread::scope(|sc| {
        let sender = sc.spawn(|| send(&mut tx, &s, &flow));
        let r = swap_while_receiving(mode, &rig, first, &flow);
        sender
            .join()
            .map_err(|_| Verdict::Failed("the sending thread panicked".into()))??;
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
    let start = *got1
        .first()
        .ok_or_else(|| Verdict::Failed("the second socket got nothing".into()))?;
    ensure!(
        got1.iter().copied().eq(start..PACKETS),
        "the second socket's packets are not {start}..{PACKETS} in order"
    );
    // In between, the program found no socket and passed each packet.
    let c = flow.counters()?;
    ensure_eq!(
        c.passed,
        start - n0,
        "packets passed while no socket was registered"
    );
    ensure_eq!(c.redirected, n0 + got1.len() as u64, "packets redirected");
    finish(&mut tx.ch, "B")?;
    finish(&mut second.ch, "the second socket")
}

/// The sender: every packet in order, paced as `exchange` paces — by what
/// the program has seen, and by what is received or passed (the packets
/// of the gap) — then every completion.
fn send(tx: &mut Socket, s: &Stream, flow: &Flow<'_>) -> Outcome {
    let mut frames = Vec::new();
    for (q, p) in (0u64..).zip(&s.packets) {
        loop {
            let c = flow.counters()?;
            let seen = c.seen - flow.seen_before;
            let resolved = flow.received.load(Ordering::Acquire) + c.passed;
            if q - seen.min(q) < 32
                && q - resolved.min(q) < 256
                && !flow.swapping.load(Ordering::Acquire)
            {
                break;
            }
            if Instant::now() > flow.deadline {
                fail!("sender: stuck at {q} ({c:?})");
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
    crate::exchange::settle(&mut tx.ch, flow.deadline)?;
    flow.done.store(true, Ordering::Release);
    Ok(())
}

/// The receiver, with the swap while the sender runs: the first socket
/// takes SWAP_AT packets, leaves the map (the program passes what comes
/// now: the packets already on their way, the sender holding back new
/// ones), takes what the program redirected to it before, and closes, its
/// frames all accounted for; a new one on the same queue takes the entry
/// and the rest. Returns both sockets' packet numbers and the new socket.
fn swap_while_receiving(
    mode: Mode,
    rig: &Rig,
    mut first: Socket,
    flow: &Flow<'_>,
) -> Result<(Vec<u64>, Vec<u64>, Socket), Verdict> {
    let mut got0 = Vec::new();
    receive(mode, &mut first.ch, &mut got0, flow, &|n| {
        Ok(n.len() as u64 >= SWAP_AT)
    })?;
    flow.swapping.store(true, Ordering::Release);
    flow.prog()
        .remove_socket(0)
        .step("taking the first socket out of the map")?;
    receive(mode, &mut first.ch, &mut got0, flow, &|n| {
        Ok(n.len() as u64 >= flow.counters()?.redirected)
    })?;
    finish(&mut first.ch, "the first socket")?;
    // Closed before the second binds: a queue takes one socket.
    drop(first);
    let mut second = rig.socket(Side::A, &SocketSpec::default(), |_| {})?;
    second.ch.refill().step("filling the new fill ring")?;
    flow.prog()
        .add_socket(0, second.ch.fd())
        .step("registering the new socket")?;
    flow.swapping.store(false, Ordering::Release);
    let mut got1 = Vec::new();
    let taken = got0.len() as u64;
    receive(mode, &mut second.ch, &mut got1, flow, &|n| {
        if !flow.done.load(Ordering::Acquire) {
            return Ok(false);
        }
        let c = flow.counters()?;
        Ok(c.seen - flow.seen_before >= PACKETS && taken + n.len() as u64 + c.passed >= PACKETS)
    })?;
    Ok((got0, got1, second))
}

/// Receives onto `numbers` (each packet checked intact, its number kept)
/// until `until` says so, waiting as the mode says.
fn receive(
    mode: Mode,
    ch: &mut Channel,
    numbers: &mut Vec<u64>,
    flow: &Flow<'_>,
    until: &dyn Fn(&[u64]) -> Result<bool, Verdict>,
) -> Outcome {
    let mut frames = Vec::new();
    while !until(numbers)? {
        if Instant::now() > flow.deadline {
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
            flow.received.fetch_add(1, Ordering::AcqRel);
        }
        ch.free_rx(&mut frames).step("free_rx")?;
    }
    Ok(())
}
