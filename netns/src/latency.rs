//! Round-trip latency through a forwarder: a paced, timestamped flow sent
//! from one end of a veth over an skmem [`Channel`] and timed when it
//! comes back to the same channel ([`probe`]), and the histogram it is
//! recorded in ([`Histogram`]).
//!
//! Each frame carries, right after its UDP header, a 16-byte stamp
//! ([`write_stamp`]): a magic word, a sequence number and the send time
//! (ns on `CLOCK_MONOTONIC`, from the probe's start). A forwarder that
//! swaps MAC addresses and sends the frame back (l2fwd) leaves it intact;
//! the probe reads it on return and records now − then. The UDP checksum
//! is zero ("none"), so the stamp needs no checksum update.
//!
//! The caller points the returning frames at the channel: an XDP program
//! on the probe's interface that redirects them into its socket (skmem's,
//! with a UDP-port filter). Recording allocates nothing: the histogram is
//! made before the loop and every frame's buffer is written in place.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use skmem::channel::{Channel, Frame};

use crate::frame::FrameSpec;
use crate::{Error, Result};

/// Where the stamp starts: Ethernet (14) + IPv4 (20) + UDP (8) headers.
pub const STAMP_OFFSET: usize = 42;
/// The stamp's length: magic (4), sequence (4), send time (8).
pub const STAMP_LEN: usize = 16;
/// The stamp's magic word ("SKRT").
const MAGIC: u32 = u32::from_be_bytes(*b"SKRT");
/// Offset of the UDP checksum in a frame of [`FrameSpec`].
const UDP_CSUM: usize = 40;

/// Writes a stamp (`seq`, `t_ns`) into `frame` and zeroes its UDP
/// checksum; `false` when the frame is too short to hold one.
pub fn write_stamp(frame: &mut [u8], seq: u32, t_ns: u64) -> bool {
    let Some(s) = frame.get_mut(STAMP_OFFSET..STAMP_OFFSET + STAMP_LEN) else {
        return false;
    };
    s[..4].copy_from_slice(&MAGIC.to_be_bytes());
    s[4..8].copy_from_slice(&seq.to_be_bytes());
    s[8..].copy_from_slice(&t_ns.to_be_bytes());
    frame[UDP_CSUM..UDP_CSUM + 2].fill(0);
    true
}

/// The stamp (`seq`, `t_ns`) in `frame`, or `None` when it carries none.
pub fn read_stamp(frame: &[u8]) -> Option<(u32, u64)> {
    let s = frame.get(STAMP_OFFSET..STAMP_OFFSET + STAMP_LEN)?;
    if s[..4] != MAGIC.to_be_bytes() {
        return None;
    }
    let seq = u32::from_be_bytes(s[4..8].try_into().ok()?);
    let t = u64::from_be_bytes(s[8..].try_into().ok()?);
    Some((seq, t))
}

/// Sub-buckets per power of two: 2^6 = 64, so a recorded value is known
/// to within 1/64 (1.6 %) — HdrHistogram's log-linear layout with about
/// two significant digits.
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Values below `SUB` have a bucket each; above, 64 per power of two up to
/// 2^64.
const BUCKETS: usize = SUB + (64 - SUB_BITS as usize) * SUB;

/// A histogram of nanosecond values, log-linear like HdrHistogram:
/// [`record`](Self::record) is a few instructions and never allocates;
/// quantiles are exact to within 1.6 %.
#[derive(Clone)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    total: u64,
    max: u64,
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("total", &self.total)
            .field("max", &self.max)
            .finish()
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Self::new()
    }
}

impl Histogram {
    /// An empty histogram (its one allocation, ~30 KiB).
    pub fn new() -> Self {
        Self {
            counts: Box::new([0; BUCKETS]),
            total: 0,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB as u64 {
            return v as usize;
        }
        let e = 63 - v.leading_zeros(); // >= SUB_BITS
        let shift = e - SUB_BITS;
        let sub = ((v >> shift) as usize) & (SUB - 1);
        SUB + (shift as usize) * SUB + sub
    }

    /// The smallest value of bucket `i`.
    fn low(i: usize) -> u64 {
        if i < SUB {
            return i as u64;
        }
        let shift = ((i - SUB) / SUB) as u32;
        let sub = ((i - SUB) % SUB) as u64;
        (SUB as u64 + sub) << shift
    }

    /// Records one value.
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
        self.max = self.max.max(ns);
    }

    /// Records `n` equal values.
    #[inline]
    pub fn record_n(&mut self, ns: u64, n: u64) {
        if n == 0 {
            return;
        }
        self.counts[Self::index(ns)] += n;
        self.total += n;
        self.max = self.max.max(ns);
    }

    /// Every bucket, lowest first: (smallest value, the next bucket's
    /// smallest, count).
    fn buckets(&self) -> impl Iterator<Item = (u64, u64, u64)> + '_ {
        self.counts.iter().enumerate().map(|(i, &c)| {
            // The last bucket ends at 2^64, one past u64::MAX.
            let hi = if i + 1 < BUCKETS {
                Self::low(i + 1)
            } else {
                u64::MAX
            };
            (Self::low(i), hi, c)
        })
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.total
    }

    /// The largest value recorded (exact).
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0..=1): the middle of the bucket that
    /// holds it (at most the maximum); 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let (lo, hi) = (Self::low(i), Self::low(i + 1));
                return (lo + (hi - lo) / 2).min(self.max);
            }
        }
        self.max
    }

    /// Empties it.
    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.total = 0;
        self.max = 0;
    }
}

/// The gaps between the probe's bursts in the recorded window, and the
/// least CPU any forwarder must spend to be awake when they arrive
/// ([`awake_share`](Self::awake_share)).
///
/// A forwarder asleep when a burst arrives adds its wake-up to every
/// frame of that burst (on this kind of VM tens of µs, more than the
/// round trip of a forwarder that spins), so a p99 near a spinner's needs
/// it awake for 99 % of the frames. Being awake costs CPU for as long as
/// the gap it waits in lasts; these gaps say how much, at the least.
#[derive(Debug, Clone, Default)]
pub struct SendGaps {
    /// One value per burst: ns since the burst before.
    bursts: Histogram,
    /// The same gaps, once per frame of the burst.
    frames: Histogram,
    /// The gaps' exact sum, ns: the time the bursts span.
    total_ns: u64,
}

impl SendGaps {
    /// No gaps yet (two histograms' allocations).
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a burst of `frames` frames sent `gap_ns` after the one
    /// before. Allocates nothing.
    #[inline]
    pub fn record(&mut self, gap_ns: u64, frames: u64) {
        self.bursts.record(gap_ns);
        self.frames.record_n(gap_ns, frames);
        self.total_ns += gap_ns;
    }

    /// Bursts recorded.
    pub fn bursts(&self) -> u64 {
        self.bursts.count()
    }

    /// The gap at quantile `q` of the bursts, ns.
    pub fn quantile(&self, q: f64) -> u64 {
        self.bursts.quantile(q)
    }

    /// The least share of one CPU a forwarder must spend awake to be
    /// awake when a share `catch` (0..=1) of the frames arrives, knowing
    /// how the gaps are distributed but not how long the next will be;
    /// `None` with no gaps.
    ///
    /// Time is measured from the burst before. Being awake in a slice of
    /// the gaps (one histogram bucket) catches the frames whose gap ends
    /// there and costs the slice's width for every gap that lasts past it
    /// (those still waiting; the gaps ending inside it are left out, so
    /// the cost is a floor). The cheapest cover is a fractional knapsack:
    /// slices by frames caught per ns, best first, until `catch` of the
    /// frames are in. Waking up, the forwarder's own work and the jitter
    /// the veth adds to the gaps are left out too: a real forwarder's cost
    /// is higher, never lower — unless it can tell one gap from the next
    /// better than their distribution does.
    pub fn awake_share(&self, catch: f64) -> Option<f64> {
        if self.total_ns == 0 || self.frames.count() == 0 {
            return None;
        }
        let need = catch.clamp(0.0, 1.0) * self.frames.count() as f64;
        // (frames caught, ns awake over all gaps) per slice; bursts that
        // last past a slice are those of the buckets above it.
        let buckets: Vec<(u64, u64, u64, u64)> = self
            .bursts
            .buckets()
            .zip(self.frames.buckets())
            .map(|((lo, hi, b), (_, _, f))| (lo, hi, b, f))
            .collect();
        let mut later = 0u64;
        let mut slices: Vec<(f64, f64)> = Vec::with_capacity(buckets.len());
        for &(lo, hi, b, f) in buckets.iter().rev() {
            slices.push((f as f64, (hi - lo) as f64 * later as f64));
            later += b;
        }
        // Free slices (no gap lasts past them) first, then by frames per ns.
        slices.retain(|s| s.0 > 0.0);
        slices.sort_by(|a, b| (b.0 * a.1).total_cmp(&(a.0 * b.1)));
        let (mut got, mut cost) = (0.0, 0.0);
        for (frames, ns) in slices {
            if got >= need {
                break;
            }
            let take = ((need - got) / frames).min(1.0);
            got += frames * take;
            cost += ns * take;
        }
        Some(cost / self.total_ns as f64)
    }

    /// The least share of one CPU a forwarder that wakes on a timer must
    /// spend to be awake when a share `catch` of the frames arrives, when
    /// a timer asked for `t` fires at `t` plus a draw from `lateness` (see
    /// [`timer_lateness`]); `None` with no gaps or no lateness recorded.
    ///
    /// The schedules weighed: after each burst, sleep on a timer for `s`,
    /// then spin until the next burst — or spin throughout — and, per gap,
    /// any mix of two of them. A frame is caught when the timer fired
    /// before it came (`s + X ≤ G`); one that comes earlier finds the
    /// forwarder asleep. Spinning costs `G − s − X` of each gap. Every
    /// bucket is read on the forwarder's side (gaps at their longest for
    /// catching and shortest for the cost, lateness the other way round),
    /// and waking itself is free, so the share is a floor for such
    /// schedules. Unlike [`awake_share`](Self::awake_share), a forwarder
    /// cannot be awake just where frames are likely: on a machine whose
    /// timers fire tens of µs late, that costs most of each gap.
    pub fn timer_share(&self, catch: f64, lateness: &Histogram) -> Option<f64> {
        if self.total_ns == 0 || self.frames.count() == 0 || lateness.count() == 0 {
            return None;
        }
        let gaps: Vec<(u64, u64, u64, u64)> = self
            .bursts
            .buckets()
            .zip(self.frames.buckets())
            .filter(|((_, _, b), _)| *b > 0)
            .map(|((lo, hi, b), (_, _, f))| (lo, hi, b, f))
            .collect();
        let late: Vec<(u64, u64, f64)> = lateness
            .buckets()
            .filter(|b| b.2 > 0)
            .map(|(lo, hi, c)| (lo, hi, c as f64 / lateness.count() as f64))
            .collect();
        let frames = self.frames.count() as f64;
        let total = self.total_ns as f64;
        // (catch, cost) of sleeping `s` after each burst.
        let point = |s: u64| {
            let (mut caught, mut cost) = (0.0, 0.0);
            for &(g_lo, g_hi, b, f) in &gaps {
                for &(x_lo, x_hi, p) in &late {
                    if s + x_lo <= g_hi {
                        caught += f as f64 * p;
                    }
                    cost += b as f64 * p * g_lo.saturating_sub(s + x_hi) as f64;
                }
            }
            (caught / frames, cost / total)
        };
        let longest = gaps.last().map_or(0, |g| g.1);
        const STEPS: u64 = 200;
        let mut points: Vec<(f64, f64)> = (0..=STEPS).map(|i| point(longest * i / STEPS)).collect();
        // Spinning throughout catches everything and costs every gap.
        points.push((1.0, 1.0));
        let need = catch.clamp(0.0, 1.0);
        let mut best = f64::INFINITY;
        for &(c1, k1) in &points {
            if c1 >= need {
                best = best.min(k1);
                continue;
            }
            // Mixed with a schedule that catches more, per gap, in the
            // proportion that meets `need`.
            for &(c2, k2) in points.iter().filter(|p| p.0 >= need) {
                let w = (need - c1) / (c2 - c1);
                best = best.min(k1 + w * (k2 - k1));
            }
        }
        Some(best.min(1.0))
    }
}

/// How late a timer fires on the calling thread: `samples` sleeps of
/// `request` each in `ppoll(2)` at 1 µs of timer slack (what skmem's
/// timed waits ask for), each recorded as the ns it overran. The thread's
/// slack is put back afterwards. On a VM this is the hypervisor's timer
/// path, tens of µs; on bare metal a few.
pub fn timer_lateness(samples: usize, request: Duration) -> Result<Histogram> {
    use rustix::thread::{current_timer_slack, set_current_timer_slack};
    let io = |op: &'static str| {
        move |e: rustix::io::Errno| Error::Timer {
            op,
            source: e.into(),
        }
    };
    let before = current_timer_slack().map_err(io("PR_GET_TIMERSLACK"))?;
    set_current_timer_slack(std::num::NonZeroU64::new(1_000)).map_err(io("PR_SET_TIMERSLACK"))?;
    let mut h = Histogram::new();
    let t = timespec(request);
    let want = request.as_nanos() as u64;
    for _ in 0..samples {
        let start = Instant::now();
        match rustix::event::poll(&mut [], Some(&t)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(io("ppoll")(e)),
        }
        h.record((start.elapsed().as_nanos() as u64).saturating_sub(want));
    }
    set_current_timer_slack(std::num::NonZeroU64::new(before)).map_err(io("PR_SET_TIMERSLACK"))?;
    Ok(h)
}

/// How [`probe`] sends.
#[derive(Debug, Clone)]
pub struct ProbeParams {
    /// The flow (its size is the frame size; at least
    /// `STAMP_OFFSET + STAMP_LEN` bytes).
    pub spec: FrameSpec,
    /// Frames per second, sent evenly (in batches of at most `batch`).
    pub rate_pps: u64,
    /// Most frames per TX or RX call.
    pub batch: usize,
    /// Frames sent before this much time has passed are not recorded
    /// (the forwarder's and the kernel's warm-up).
    pub warmup: Duration,
    /// After `stop`, how long to wait for frames still in flight.
    pub drain: Duration,
}

/// Counters [`probe`] publishes while it runs (for another thread).
#[derive(Debug, Default)]
pub struct ProbeCounters {
    /// Frames queued for sending.
    pub sent: AtomicU64,
    /// Stamped frames that came back.
    pub returned: AtomicU64,
    /// Set once the loop runs.
    pub running: AtomicBool,
    /// While set, frames sent are not in the recorded window: another
    /// thread marks the window (a benchmark's measured one) by clearing
    /// it, then setting it again.
    pub hold: AtomicBool,
}

/// What a [`probe`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeReport {
    /// Frames sent.
    pub sent: u64,
    /// Stamped frames that came back.
    pub returned: u64,
    /// Frames that came back without a stamp of this probe (not counted).
    pub foreign: u64,
    /// Frames sent in the recorded window: after the warm-up, while
    /// [`ProbeCounters::hold`] was clear.
    pub window_sent: u64,
    /// Of those, how many came back (and were recorded).
    pub recorded: u64,
    /// Seconds from the first frame to `stop`.
    pub seconds: f64,
}

impl ProbeReport {
    /// Frames sent per second.
    pub fn sent_pps(&self) -> f64 {
        self.sent as f64 / self.seconds.max(1e-9)
    }

    /// Frames of the recorded window lost: sent and never returned.
    pub fn lost(&self) -> u64 {
        self.window_sent.saturating_sub(self.recorded)
    }
}

/// The probe sleeps between sends for at least this long (it sends what
/// fell due meanwhile together), so that on a small machine it leaves its
/// CPU to the softirqs that run there (a veth's NAPI runs on the sending
/// CPU): a probe that spins makes the kernel defer them to `ksoftirqd`,
/// which then waits out the probe's time slice — milliseconds of latency
/// that are the probe's, not the forwarder's.
pub const MIN_GAP: Duration = Duration::from_micros(50);

/// Sends `p.spec` frames on `ch` at `p.rate_pps` until `stop`, each
/// stamped, and records in `hist` the round-trip time of every one that
/// comes back to `ch` (sent after the warm-up), and in `gaps` the gaps
/// between its bursts in the same window. Between sends it sleeps in
/// `ppoll(2)` on the socket, woken by returning frames (see [`MIN_GAP`]):
/// a frame's time includes the probe's wake-up, the same for every
/// forwarder measured.
pub fn probe(
    ch: &mut Channel,
    p: &ProbeParams,
    hist: &mut Histogram,
    gaps: &mut SendGaps,
    counters: &ProbeCounters,
    stop: &AtomicBool,
) -> Result<ProbeReport> {
    if p.spec.size < STAMP_OFFSET + STAMP_LEN {
        return Err(Error::InvalidArgument(format!(
            "a stamped frame needs at least {} bytes, not {}",
            STAMP_OFFSET + STAMP_LEN,
            p.spec.size
        )));
    }
    if p.rate_pps == 0 || p.batch == 0 {
        return Err(Error::InvalidArgument(
            "the probe needs a rate and a batch above zero".to_owned(),
        ));
    }
    let template = p.spec.build(0)?;
    let mut tx: Vec<Frame> = Vec::with_capacity(p.batch);
    let mut rx: Vec<Frame> = Vec::with_capacity(p.batch);
    let t0 = Instant::now();
    let warmup_ns = p.warmup.as_nanos() as u64;
    let ns_per_frame = 1e9 / p.rate_pps as f64;
    let mut r = ProbeReport {
        sent: 0,
        returned: 0,
        foreign: 0,
        window_sent: 0,
        recorded: 0,
        seconds: 0.0,
    };
    counters.running.store(true, Ordering::Release);
    let mut drain_until = None;
    // The recorded window's sequence numbers: [first, first + window_sent).
    let mut window_first: Option<u64> = None;
    let mut window_closed = false;
    // When the burst before was sent, ns from t0.
    let mut last_burst: Option<u64> = None;
    loop {
        let now_ns = t0.elapsed().as_nanos() as u64;
        match drain_until {
            None if stop.load(Ordering::Relaxed) => {
                r.seconds = now_ns as f64 / 1e9;
                drain_until = Some(now_ns + p.drain.as_nanos() as u64);
            }
            Some(end) if now_ns >= end || r.returned >= r.sent => break,
            _ => {}
        }
        ch.complete();
        if drain_until.is_none() {
            // Frames due by now, evenly spaced from the start.
            let due = (now_ns as f64 / ns_per_frame) as u64;
            let want = due.saturating_sub(r.sent).min(p.batch as u64) as usize;
            if !window_closed {
                let open = now_ns >= warmup_ns && !counters.hold.load(Ordering::Relaxed);
                match (window_first, open) {
                    (None, true) => window_first = Some(r.sent),
                    (Some(_), false) => window_closed = true,
                    _ => {}
                }
            }
            if want > 0 && ch.alloc_tx(&mut tx, want) > 0 {
                for (i, f) in tx.iter_mut().enumerate() {
                    ch.set_data(f, &template)?;
                    let stamp_t = t0.elapsed().as_nanos() as u64;
                    write_stamp(ch.data_mut(f)?, (r.sent + i as u64) as u32, stamp_t);
                }
                let q = ch.tx_burst(&mut tx)?;
                ch.free(&mut tx)?;
                r.sent += q as u64;
                if window_first.is_some() && !window_closed {
                    r.window_sent += q as u64;
                    if let (Some(before), true) = (last_burst, q > 0) {
                        gaps.record(now_ns.saturating_sub(before), q as u64);
                    }
                }
                if q > 0 {
                    last_burst = Some(now_ns);
                }
                counters.sent.store(r.sent, Ordering::Relaxed);
            }
        }
        if ch.rx_burst(&mut rx, p.batch)? == 0 {
            // Nothing back: sleep until the next send is due (at least
            // MIN_GAP away) or a frame returns.
            let now = t0.elapsed().as_nanos() as u64;
            let next = ((r.sent + 1) as f64 * ns_per_frame) as u64;
            let gap = next
                .saturating_sub(now)
                .max(MIN_GAP.as_nanos() as u64)
                .min(MIN_GAP.as_nanos() as u64 * 20);
            ch.refill()?;
            wait_readable(ch, Duration::from_nanos(gap))?;
        } else {
            let now = t0.elapsed().as_nanos() as u64;
            for f in &rx {
                match read_stamp(ch.data(f)?) {
                    Some((seq, then)) if then <= now => {
                        r.returned += 1;
                        // In the window? (Sequence numbers are the low 32
                        // bits of the count sent.)
                        let in_window = window_first.is_some_and(|first| {
                            let off = seq.wrapping_sub(first as u32);
                            u64::from(off) < r.window_sent
                        });
                        if in_window {
                            hist.record(now - then);
                            r.recorded += 1;
                        }
                    }
                    _ => r.foreign += 1,
                }
            }
            ch.free_rx(&mut rx)?;
            counters.returned.store(r.returned, Ordering::Relaxed);
        }
    }
    Ok(r)
}

/// `d` as `ppoll(2)`'s timeout.
fn timespec(d: Duration) -> rustix::time::Timespec {
    rustix::time::Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

/// Sleeps until `ch`'s socket is readable or `d` has passed.
fn wait_readable(ch: &Channel, d: Duration) -> Result<()> {
    let fd = ch.fd();
    let mut fds = [rustix::event::PollFd::new(
        &fd,
        rustix::event::PollFlags::IN,
    )];
    let t = timespec(d);
    match rustix::event::poll(&mut fds, Some(&t)) {
        Ok(_) | Err(rustix::io::Errno::INTR) => Ok(()),
        Err(e) => Err(Error::Socket {
            ifindex: 0,
            op: "ppoll on the probe's socket",
            source: e.into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_survives_a_mac_swap_and_a_foreign_frame_has_none() {
        let mut f = vec![0xAAu8; 64];
        assert!(write_stamp(&mut f, 7, 123_456_789));
        assert_eq!(&f[UDP_CSUM..UDP_CSUM + 2], &[0, 0]);
        let (dst, src) = f.split_at_mut(6);
        dst.swap_with_slice(&mut src[..6]);
        assert_eq!(read_stamp(&f), Some((7, 123_456_789)));
        assert_eq!(read_stamp(&[0u8; 64]), None);
        assert_eq!(read_stamp(&[0u8; 50]), None);
        assert!(!write_stamp(&mut [0u8; 57], 1, 1));
    }

    #[test]
    fn gaps_that_can_be_foreseen_cost_nothing_and_spread_ones_cost_most_of_a_cpu() {
        assert_eq!(SendGaps::new().awake_share(0.99), None);
        // Every burst 50 µs after the one before: wake at 50 µs, no spin.
        let mut even = SendGaps::new();
        for _ in 0..1000 {
            even.record(50_000, 5);
        }
        assert_eq!(even.awake_share(0.99), Some(0.0));
        // Half at 20 µs, half at 80 µs: awake for one bucket at 20 µs
        // (256 ns wide there) while half the gaps last past it.
        let mut two = SendGaps::new();
        for _ in 0..500 {
            two.record(20_000, 1);
            two.record(80_000, 1);
        }
        let share = two.awake_share(0.99).unwrap();
        // (Taking 490 of its 500 frames is enough for 99 %.)
        assert!((share - 0.98 * 256.0 / 100_000.0).abs() < 1e-9, "{share}");
        // Spread evenly over 10..90 µs: nothing tells the next gap, so
        // the forwarder must be awake from about the 1 % gap (10.8 µs) to
        // the end of each: (50 - 10.8) / 50 of the time.
        let mut spread = SendGaps::new();
        for i in 0..80_000u64 {
            spread.record(10_000 + i, 1);
        }
        let share = spread.awake_share(0.99).unwrap();
        assert!((share - 0.784).abs() < 0.02, "{share}");
        assert!(spread.awake_share(0.5).unwrap() < share);
        assert_eq!(spread.awake_share(0.0), Some(0.0));
        assert_eq!(spread.bursts(), 80_000);
        // Frames, not bursts, are what must be caught: big late bursts
        // and small early ones make the early ones cheap to miss.
        let mut weighted = SendGaps::new();
        for i in 0..1000u64 {
            weighted.record(10_000 + i * 80, if i < 20 { 1 } else { 50 });
        }
        let w = weighted.awake_share(0.99).unwrap();
        let mut flat = SendGaps::new();
        for i in 0..1000u64 {
            flat.record(10_000 + i * 80, 1);
        }
        assert!(w < flat.awake_share(0.99).unwrap(), "{w}");
    }

    #[test]
    fn a_late_timer_leaves_little_to_sleep_through_when_gaps_spread() {
        let mut late = Histogram::new();
        late.record_n(20_000, 1000);
        assert_eq!(SendGaps::new().timer_share(0.99, &late), None);
        // Even 50 µs gaps: sleep 30 µs, the timer fires at 50, no spin.
        let mut even = SendGaps::new();
        for _ in 0..1000 {
            even.record(50_000, 5);
        }
        assert!(even.timer_share(0.99, &late).unwrap() < 0.01);
        assert_eq!(even.timer_share(0.99, &Histogram::new()), None);
        // Gaps spread over 10..90 µs and a timer 20 µs late: sleeping at
        // all misses the 12.5 % of gaps under 20 µs, so 99 % takes
        // spinning through 92 % of the gaps and sleeping (then spinning
        // from 20 µs on: 30.6 of 50 µs) through the rest — 0.97 of a
        // CPU, where free wake-ups would need 0.78.
        let mut spread = SendGaps::new();
        for i in 0..80_000u64 {
            spread.record(10_000 + i, 1);
        }
        let timer = spread.timer_share(0.99, &late).unwrap();
        assert!((timer - 0.969).abs() < 0.02, "{timer}");
        assert!(timer > spread.awake_share(0.99).unwrap());
        // At 80 % nothing forces a spin throughout: sleep 6 µs, wake at
        // 26, spin on (64² / 160 of 50 µs: 0.51, a mix a shade less).
        let some = spread.timer_share(0.8, &late).unwrap();
        assert!((some - 0.51).abs() < 0.02, "{some}");
    }

    #[test]
    fn timers_fire_late_never_early() {
        let h = timer_lateness(50, Duration::from_micros(20)).unwrap();
        assert_eq!(h.count(), 50);
        assert!(h.quantile(0.5) > 0 && h.max() >= h.quantile(0.5));
        // The thread's slack is back where it was (50 µs by default).
        let slack = rustix::thread::current_timer_slack().unwrap();
        assert_ne!(slack, 1_000);
    }

    #[test]
    fn quantiles_are_within_the_bucket_precision() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 10);
        }
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.max(), 1_000_000);
        for (q, want) in [(0.5, 500_000.0), (0.99, 990_000.0), (0.999, 999_000.0)] {
            let got = h.quantile(q) as f64;
            assert!(
                (got - want).abs() / want < 1.0 / 64.0,
                "q{q}: {got} vs {want}"
            );
        }
        // Small values are exact.
        let mut s = Histogram::new();
        for v in [3, 3, 3, 40] {
            s.record(v);
        }
        assert_eq!(s.quantile(0.5), 3);
        assert_eq!(s.quantile(1.0), 40);
        s.reset();
        assert_eq!((s.count(), s.quantile(0.5)), (0, 0));
    }

    #[test]
    fn every_value_lands_in_the_bucket_that_holds_it() {
        for v in [0u64, 1, 63, 64, 65, 127, 128, 1000, 1 << 40, u64::MAX] {
            let i = Histogram::index(v);
            assert!(i < BUCKETS, "{v}");
            assert!(Histogram::low(i) <= v, "{v}");
            if i + 1 < BUCKETS {
                assert!(v < Histogram::low(i + 1), "{v}");
            }
        }
    }
}
