//! Sending a stream from one socket to another and checking what arrives,
//! as `xskxceiver`'s sending and receiving threads do.
//!
//! The sender runs on its own thread and keeps at most a window of
//! packets between its TX ring and the receiving end's XDP program (the
//! program's `seen` counter): a veth in copy mode silently loses a burst
//! faster than the receiving NAPI drains it, before any XDP program or
//! counter sees it (measured; see the project's notes), and the kernel's
//! sender paces itself the same way. The receiver runs on the calling
//! thread and checks every packet against the next one expected: its
//! number, its length and every byte.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skmem::channel::{Channel, Frame, FrameAccount};
use skmem_xdp::XdpProgram;

use crate::stream::{self, RxPacket, Stream};
use crate::{Mode, Outcome, Step, Verdict};

/// How long one exchange may take before the case fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Packets the sender keeps between its ring and the receiver's XDP
/// program.
pub const WINDOW: u64 = 32;

/// What the receiving socket does while the stream is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rx {
    /// Receives and checks every packet, giving each frame back; waits
    /// as the mode says when nothing is there.
    Receive,
    /// The same, but always waits in `poll(POLLIN)` before receiving,
    /// which must not time out (1 s) while packets are on their way.
    Poll,
    /// Touches nothing: no fill ring refill, no receive (the statistics
    /// cases that starve the socket).
    Untouched,
}

/// How an exchange went.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Packets received, each the one expected.
    pub received: u64,
    /// Frames the sender's channel refused before the ring.
    pub refused: u64,
}

/// The sending side of an exchange.
pub struct Sender<'a> {
    /// The sending channel.
    pub ch: &'a mut Channel,
    /// What it sends.
    pub stream: &'a Stream,
    /// Whether it waits in `poll(POLLOUT)` after each batch (which, in
    /// copy mode, transmits), and fails if that times out after 1 s.
    pub poll: bool,
}

/// The receiving side of an exchange.
pub struct Receiver<'a> {
    /// The receiving channel.
    pub ch: &'a mut Channel,
    /// What must arrive, in order.
    pub expect: &'a [RxPacket],
    /// What the channel does meanwhile.
    pub rx: Rx,
    /// Where in its buffer each packet's data must start (the UMEM
    /// headroom plus the kernel's 256 bytes), when the case checks it.
    pub offset: Option<u32>,
    /// Whether each packet carries, in front of its first frame's data,
    /// the metadata skmem's XDP program writes (`XdpAction::Metadata`):
    /// its number in the program's count, which for a fresh program is
    /// the packet's number.
    pub metadata: bool,
}

/// Sends `tx.stream` while `rx` receives it, in `mode`, paced by `prog`
/// (the program on the receiving end); fails at the first packet that is
/// not the one expected, or when the expected packets have not all
/// arrived by the [`DEADLINE`].
pub fn exchange(
    mode: Mode,
    prog: &XdpProgram,
    tx: Sender<'_>,
    rx: Receiver<'_>,
) -> Result<Report, Verdict> {
    // Packets the sender may have between itself and the receiving
    // application: half what the receiver's RX ring holds in frames (its
    // channel gives the kernel no more fill frames than that ring holds),
    // so the fill ring never runs dry while the receiver keeps up. A
    // receiver that reads nothing until the end sets no such bound.
    let rx_window = match rx.rx {
        Rx::Untouched => u64::MAX,
        Rx::Receive | Rx::Poll => {
            let longest = tx.stream.packets.iter().map(|p| p.len).max().unwrap_or(1);
            let frames = longest.div_ceil(rx.ch.rx_frame_room().max(1)) as u64;
            (u64::from(rx.ch.ring_sizes()[2]) / frames / 2).clamp(1, 256)
        }
    };
    let progress = Progress {
        prog,
        // Before the sender starts: both sides count from here.
        seen_before: prog.counters().step("reading the XDP counters")?.seen,
        queued: AtomicU64::new(0),
        done: AtomicBool::new(false),
        received: AtomicU64::new(0),
        rx_window,
        deadline: Instant::now() + DEADLINE,
    };
    let spec = tx.stream.spec.clone();
    std::thread::scope(|s| {
        let sender = std::thread::Builder::new()
            .name("conformance-tx".into())
            .spawn_scoped(s, || {
                let r = send(tx, &progress);
                progress.done.store(true, Ordering::Release);
                r
            })
            .step("starting the sending thread")?;
        let mut report = receive(mode, rx, &spec, &progress);
        let sent = sender
            .join()
            .map_err(|_| Verdict::Failed("the sending thread panicked".into()))?;
        let refused = sent?;
        if let Ok(r) = &mut report {
            r.refused = refused;
        }
        report
    })
}

/// What the two sides of an exchange tell each other.
struct Progress<'a> {
    /// The program on the receiving end, whose `seen` counter says how
    /// many packets have reached it.
    prog: &'a XdpProgram,
    /// Its `seen` counter before the exchange.
    seen_before: u64,
    /// Valid packets the sender has queued.
    queued: AtomicU64,
    /// The sender has queued everything and seen it complete.
    done: AtomicBool,
    /// One past the number of the last packet received (0: none yet).
    received: AtomicU64,
    /// Packets the sender may have queued beyond the last one received.
    rx_window: u64,
    /// When the case fails.
    deadline: Instant,
}

impl Progress<'_> {
    /// Packets that have reached the receiving end's program.
    fn seen(&self) -> Result<u64, Verdict> {
        Ok(self.prog.counters().step("reading the XDP counters")?.seen - self.seen_before)
    }

    /// The sender is done and all it queued has met the program.
    fn all_seen(&self) -> Result<bool, Verdict> {
        Ok(
            self.done.load(Ordering::Acquire)
                && self.seen()? >= self.queued.load(Ordering::Acquire),
        )
    }
}

/// The sending thread: every packet of the stream, in order, paced; then
/// every completion. Returns the frames refused before the ring.
fn send(tx: Sender<'_>, progress: &Progress<'_>) -> Result<u64, Verdict> {
    let deadline = progress.deadline;
    let Sender { ch, stream, poll } = tx;
    let refused_before = ch.counters().tx_refused;
    let mut frames: Vec<Frame> = Vec::with_capacity(256);
    let mut next = 0;
    let mut q = 0u64;
    // Numbers of the valid packets queued, in order, and how many of them
    // the receiver is past.
    let mut numbers = Vec::with_capacity(stream.packets.len());
    let mut past = 0usize;
    while next < stream.packets.len() {
        // Room in both windows: packets queued that the receiving end's
        // program has not seen yet, and packets the receiver has not read
        // yet (or passed, when the case drops them on purpose).
        let seen = progress.seen()?;
        let upto = progress.received.load(Ordering::Acquire);
        while past < numbers.len() && numbers[past] < upto {
            past += 1;
        }
        let unread = q - past as u64;
        let room = WINDOW
            .saturating_sub(q.saturating_sub(seen))
            .min(progress.rx_window.saturating_sub(unread));
        if room == 0 {
            ch.complete();
            if Instant::now() > deadline {
                return Err(Verdict::Failed(format!(
                    "sender: {q} packets queued, the receiving XDP program saw {seen} and the receiver read {past} by the deadline ({:?})",
                    progress.prog.counters().ok()
                )));
            }
            std::thread::yield_now();
            continue;
        }
        let mut k = 0u64;
        while k < room && next < stream.packets.len() {
            let p = &stream.packets[next];
            write_packet(ch, stream, p, &mut frames)?;
            next += 1;
            if p.valid {
                k += 1;
                numbers.push(p.number);
            }
        }
        // Whole packets go in, or wait for room.
        while !frames.is_empty() {
            ch.tx_burst(&mut frames).step("tx_burst")?;
            if !frames.is_empty() {
                ch.complete();
                ch.poll_tx(10).step("poll for TX room")?;
                if Instant::now() > deadline {
                    return Err(Verdict::Failed("sender: the TX ring never had room".into()));
                }
            }
        }
        q += k;
        progress.queued.store(q, Ordering::Release);
        if poll && !ch.poll_tx(1000).step("poll(POLLOUT)")? {
            return Err(Verdict::Failed(
                "sender: poll(POLLOUT) timed out after 1 s with room coming".into(),
            ));
        }
        ch.complete();
    }
    settle(ch, deadline)?;
    Ok(ch.counters().tx_refused - refused_before)
}

/// Allocates and writes the frames of packet `p` onto `frames`.
fn write_packet(
    ch: &mut Channel,
    stream: &Stream,
    p: &crate::stream::TxPacket,
    frames: &mut Vec<Frame>,
) -> Result<(), Verdict> {
    let bytes = stream.bytes(p.number, p.len);
    let n = p.frags.len();
    let mut at = 0usize;
    // Frames whose buffer holds no 4 KiB boundary, set aside while an
    // ACROSS_PAGE fragment looks for one that does.
    let mut unsuitable = Vec::new();
    for (i, frag) in p.frags.iter().enumerate() {
        let f = loop {
            if ch.alloc_tx(frames, 1) != 1 {
                return Err(Verdict::Failed(format!(
                    "sender: the pool had no frame for packet {}",
                    p.number
                )));
            }
            let mut f = frames.pop().expect("just allocated");
            if frag.offset != stream::ACROSS_PAGE {
                f.offset = frag.offset;
                break f;
            }
            match across_page(ch, &mut f, frag.len) {
                Some(offset) => {
                    f.offset = offset;
                    break f;
                }
                None if unsuitable.len() < 64 => unsuitable.push(f),
                None => {
                    return Err(Verdict::Failed(
                        "sender: 64 buffers in a row hold no 4 KiB boundary".into(),
                    ))
                }
            }
        };
        frames.push(f);
        let f = frames.last_mut().expect("just pushed");
        f.len = frag.len;
        f.set_more(i + 1 < n);
        f.options |= frag.options;
        let from = at.min(bytes.len());
        let to = (at + frag.len as usize).min(bytes.len());
        at += frag.len as usize;
        // An invalid frame may not fit its buffer: write what does.
        let offset = f.offset as usize;
        let buf = ch.buffer_mut(f).step("a TX frame's buffer")?;
        let start = offset.min(buf.len());
        let fits = (to - from).min(buf.len() - start);
        buf[start..start + fits].copy_from_slice(&bytes[from..from + fits]);
    }
    ch.free(&mut unsuitable).step("freeing frames set aside")?;
    Ok(())
}

/// The offset in `f`'s buffer that puts `len` bytes across a 4 KiB page
/// boundary inside it, half on each side; `None` when the buffer holds no
/// such boundary with room on both sides.
fn across_page(ch: &Channel, f: &mut Frame, len: u32) -> Option<u32> {
    const PAGE: u64 = 4096;
    f.offset = 0;
    let base = ch.frame_addr(f);
    let to_boundary = match base % PAGE {
        0 => PAGE,
        r => PAGE - r,
    };
    let half = u64::from(len / 2);
    let size = ch.pool().buf_size() as u64;
    (to_boundary >= half && to_boundary - half + u64::from(len) <= size)
        .then(|| (to_boundary - half) as u32)
}

/// Drains completions until the kernel holds none of `ch`'s TX frames.
pub fn settle(ch: &mut Channel, deadline: Instant) -> Result<FrameAccount, Verdict> {
    loop {
        ch.complete();
        let a = ch.account();
        if a.kernel_tx == 0 {
            return Ok(a);
        }
        if Instant::now() > deadline {
            return Err(Verdict::Failed(format!(
                "{} TX frames never completed: {a:?}",
                a.kernel_tx
            )));
        }
        ch.kick_tx().step("TX wakeup")?;
        std::thread::yield_now();
    }
}

/// The receiving loop: see [`exchange`].
fn receive(
    mode: Mode,
    rx: Receiver<'_>,
    spec: &skmem_netns::FrameSpec,
    progress: &Progress<'_>,
) -> Result<Report, Verdict> {
    let Receiver {
        ch,
        expect,
        rx,
        offset,
        metadata,
    } = rx;
    let mut checker = Checker {
        spec,
        expect,
        offset,
        metadata,
        packet: Vec::new(),
        received: 0,
    };
    // Polls in a row that found nothing after every packet met the
    // program: what has not arrived by then is not coming.
    let mut idle = 0;
    let mut frames: Vec<Frame> = Vec::with_capacity(64);
    let max = 64.max(skmem::channel::MAX_FRAGS);
    loop {
        let received = checker.received;
        // Finished when the sender is, its every packet has reached the
        // program, and everything expected has arrived.
        if received == expect.len() as u64 && progress.all_seen()? {
            return Ok(Report {
                received,
                refused: 0,
            });
        }
        if Instant::now() > progress.deadline {
            let c = progress.prog.counters().step("reading the XDP counters")?;
            fail!(
                "{received} of {} packets arrived by the deadline (sender queued {}, done {}; XDP {c:?}; socket {:?})",
                expect.len(),
                progress.queued.load(Ordering::Acquire),
                progress.done.load(Ordering::Acquire),
                ch.xsk_stats().ok(),
            );
        }
        // Untouched until the sender is done and its packets have all
        // met the program; then what the socket kept is received.
        if rx == Rx::Untouched && !progress.all_seen()? {
            std::thread::yield_now();
            continue;
        }
        if rx == Rx::Poll && !ch.poll(1000).step("poll(POLLIN)")? && received < expect.len() as u64
        {
            fail!(
                "poll(POLLIN) timed out after 1 s with {received} of {} packets received",
                expect.len()
            );
        }
        if ch.rx_burst(&mut frames, max).step("rx_burst")? == 0 {
            wait(mode, ch, progress, &mut idle, received, expect.len())?;
            continue;
        }
        for f in &frames {
            if let Some(number) = checker.frame(ch, f, progress)? {
                progress.received.store(number + 1, Ordering::Release);
            }
        }
        ch.free_rx(&mut frames).step("free_rx")?;
    }
}

/// Waits for more as the mode says; once every packet sent has met the
/// program, a few quiet polls end the wait with what is missing.
fn wait(
    mode: Mode,
    ch: &mut Channel,
    progress: &Progress<'_>,
    idle: &mut u32,
    received: u64,
    expected: usize,
) -> Outcome {
    if progress.all_seen()? {
        *idle += 1;
        if *idle > 5 {
            fail!(
                "{received} of {expected} packets arrived; every packet sent has met the program and nothing more came (XDP {:?}; socket {:?})",
                progress.prog.counters().ok(),
                ch.xsk_stats().ok(),
            );
        }
        ch.poll(100).step("poll")?;
    } else if mode.busy_poll() {
        ch.busy_poll().step("busy poll")?;
    } else {
        ch.poll(10).step("poll")?;
    }
    Ok(())
}

/// Checks received frames against the packets expected, in order: where
/// each packet's data starts, its metadata, then (once its last frame is
/// in) its length and every byte.
struct Checker<'a> {
    spec: &'a skmem_netns::FrameSpec,
    expect: &'a [RxPacket],
    offset: Option<u32>,
    metadata: bool,
    /// The bytes of the packet being received (its frames so far).
    packet: Vec<u8>,
    /// Packets received and found right.
    received: u64,
}

impl Checker<'_> {
    /// Takes frame `f`; the number of the packet it completes, if it
    /// does.
    fn frame(
        &mut self,
        ch: &Channel,
        f: &Frame,
        progress: &Progress<'_>,
    ) -> Result<Option<u64>, Verdict> {
        let i = self.received as usize;
        if self.packet.is_empty() {
            self.first_frame(ch, f, i)?;
        }
        self.packet
            .extend_from_slice(ch.data(f).step("a received frame's data")?);
        if f.more() {
            return Ok(None);
        }
        let Some(want) = self.expect.get(i) else {
            fail!(
                "packet {} arrived ({} bytes) after the {} expected",
                i + 1,
                self.packet.len(),
                self.expect.len()
            );
        };
        if let Err(why) = check(self.spec, want, &self.packet) {
            fail!(
                "packet {i} (number {}): {why}; XDP {:?}; socket {:?}; channel {:?}",
                want.number,
                progress.prog.counters().ok(),
                ch.xsk_stats().ok(),
                ch.counters()
            );
        }
        self.packet.clear();
        self.received += 1;
        Ok(Some(want.number))
    }

    /// The checks on a packet's first frame: where its data starts, and
    /// the metadata in front of it.
    fn first_frame(&self, ch: &Channel, f: &Frame, i: usize) -> Outcome {
        if let Some(want) = self.offset {
            ensure!(
                f.offset == want,
                "packet {i} starts at offset {} of its buffer, expected {want}",
                f.offset
            );
        }
        if self.metadata {
            let meta = ch
                .metadata(f, skmem_xdp::XDP_METADATA_LEN as usize)
                .step("a received frame's metadata")?;
            let count = u64::from_le_bytes(meta[..8].try_into().expect("8 bytes"));
            if let Some(want) = self.expect.get(i) {
                ensure!(
                    count == want.number,
                    "packet {i} (number {}) carries metadata count {count}",
                    want.number
                );
            }
        }
        Ok(())
    }
}

/// Is `got` the packet `want`? Its length, then every byte sent that it
/// still carries, word by word as the kernel's validator compares them.
pub fn check(spec: &skmem_netns::FrameSpec, want: &RxPacket, got: &[u8]) -> Result<(), String> {
    if got.len() != want.len {
        let number = skmem_netns::check_payload(got)
            .map(|i| format!(", packet number {}", i.packet_no))
            .unwrap_or_default();
        return Err(format!(
            "{} bytes, expected {}{number}",
            got.len(),
            want.len
        ));
    }
    let sent = stream::bytes(spec, want.number, want.sent_len);
    let n = sent.len().min(got.len());
    if let Some(at) = (0..n).find(|&k| sent[k] != got[k]) {
        let word = |b: &[u8]| {
            let w = at & !3;
            let end = (w + 4).min(n);
            format!("{:02x?}", &b[w..end])
        };
        return Err(format!(
            "byte {at} differs: word {} is {}, expected {} (wrong packet or corrupted)",
            at / 4,
            word(got),
            word(&sent)
        ));
    }
    Ok(())
}
