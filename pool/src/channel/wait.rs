//! Waiting when nothing arrived ([`Channel::wait`](super::Channel::wait)):
//! the choice between spinning, sleeping in `poll(2)` and receive
//! coalescing, made by the channel unless the application fixes it.
//!
//! Why adaptive by default: each fixed choice loses somewhere.
//! - **Spinning** answers a frame within a ring read, but costs a whole
//!   core whatever the rate, and on a CPU it shares with the NAPI thread
//!   that feeds it (threaded NAPI pinned there) it keeps that thread off
//!   the CPU: the fill ring runs dry and the kernel drops.
//! - **`poll(2)`** costs nothing when idle, but on every NAPI flush it
//!   costs a wake-up — two context switches on a shared CPU — and adds the
//!   wake-up's latency to the first frame of each batch.
//! - **Coalescing** ([`Coalesce`](super::Coalesce)) wakes once a batch,
//!   which is what a CPU shared with NAPI needs, at the price of up to its
//!   sleep in latency.
//!
//! So [`Adaptive`] decides at each wait, from two things it can observe:
//! - **Is the queue's NAPI thread confined to CPUs this thread may run
//!   on?** (threaded NAPI: a kthread `napi/IFNAME-ID` whose CPU affinity
//!   is a subset of the waiting thread's.) Then the two share a CPU: the
//!   channel never spins, it **sleeps in `poll(2)`** (coalescing, if
//!   [`ChannelParams::coalesce`](super::ChannelParams::coalesce) asks for
//!   it), and, only if the application allowed it ([`Adaptive::fifo`]),
//!   moves the waiting thread to `SCHED_FIFO`, so that it runs the moment
//!   it has work and NAPI runs whenever it sleeps, instead of the two
//!   splitting the CPU in time slices.
//! - **Otherwise, did frames arrive within the spin window, and has
//!   spinning been paying off?** Then more are coming: **spin** (or
//!   busy-poll, if
//!   [`ChannelParams::busy_poll`](super::ChannelParams::busy_poll) is
//!   set) — a wait that costs no syscall. Once the window passes without
//!   a frame, **sleep in `poll(2)`**. Spinning pays off when frames come
//!   while the thread spins, or come a batch or more at a time after a
//!   sleep; when four sleeps in a row are each woken for fewer than a
//!   batch — bursts farther apart than the window — the thread stops
//!   spinning after frames at all (each window would be spent for
//!   nothing), until four batches are caught again. A channel with sparse
//!   traffic then pays one wake-up per burst instead of a window per
//!   burst, and a busy one never sleeps.
//! - **How long the window is.** It starts at [`Adaptive::spin_us`] (20
//!   µs) and follows the gaps between dense bursts: a sleep that ended
//!   within [`Adaptive::spin_max_us`] (250 µs) with a batch or more to
//!   receive means the traffic is heavy and bursty — a sender that
//!   transmits in runs, a NAPI that flushes in budgets — and that the
//!   sleep bought little: the thread slept through a gap it could have
//!   spun through, and paid a wake-up (its own and the waker's) for it.
//!   The window then grows to half as much again as the gap (window plus
//!   sleep), up to `spin_max_us`, so the next gap is spun through. A
//!   sleep woken for fewer than a batch, or longer than `spin_max_us`,
//!   halves it back towards `spin_us`. Measured on this project's 2-vCPU
//!   machine with a generator whose frames come in bursts 50–150 µs apart
//!   (`skmemctl gen` flat out, 2 M frames, rxdrop, NAPI on the other
//!   CPU): with the window fixed at 20 µs the receiver slept every
//!   100–3000 frames and the kernel dropped 0.5–38 % for an empty fill
//!   ring (11 runs, median 4 %); widening, it slept 17–68 times a run and
//!   dropped 0.7–3.7 % (9 runs, median 1.8 %), as spinning did (0–4.5 %,
//!   8 runs). Sleeps beside NAPI (where the thread never spins) and
//!   sparse traffic (fewer than a batch a wake) never widen it: at 10 %
//!   of the peers' l2fwd rate the pps harness measured CPU per packet
//!   within 4 % of the `poll()` peers'. To fix the window, set
//!   `spin_max_us` to `spin_us` (`skmemctl fwd --spin-max-us`).
//!
//! Why not coalesce beside NAPI by default: in the pps harness's
//! threaded layout on this project's 2-vCPU machine, `poll(2)` received
//! as much as the peers' best and coalescing 0.78× of it (two runs), and
//! coalescing's sleeps cost latency at moderate loads (p99 1.0 ms against
//! 0.16-0.39 ms at half the peers' l2fwd rate) and, with long sleeps,
//! frames (11-15 % lost at 90 %). It stays a choice: set
//! [`ChannelParams::coalesce`](super::ChannelParams::coalesce).
//!
//! The NAPI check reads `/proc` — the thread list once every two seconds
//! while no NAPI thread is known (every ten while one is), the known
//! threads' affinity every quarter of a second — never on the per-packet
//! path. Interface names are per network namespace and kthread names are
//! not: a same-named interface in another namespace with threaded NAPI
//! counts too. Override: [`Waiting::Spin`] or [`Waiting::Poll`] (with or
//! without [`ChannelParams::coalesce`](super::ChannelParams::coalesce)).

use std::time::{Duration, Instant};

/// How [`Channel::wait`](super::Channel::wait) waits (see the module
/// docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Waiting {
    /// Decide at each wait (the default).
    Adaptive(Adaptive),
    /// Never sleep: refill the fill ring and return (busy-poll instead,
    /// if [`ChannelParams::busy_poll`](super::ChannelParams::busy_poll) is
    /// set). A whole core, the lowest latency; starves a NAPI thread that
    /// shares the CPU.
    Spin,
    /// Always [`Channel::poll`](super::Channel::poll): `poll(2)`, or
    /// receive coalescing if
    /// [`ChannelParams::coalesce`](super::ChannelParams::coalesce) is set.
    Poll,
}

impl Default for Waiting {
    fn default() -> Self {
        Waiting::Adaptive(Adaptive::default())
    }
}

/// The adaptive wait's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Adaptive {
    /// How long after the last frame arrived a wait spins rather than
    /// sleeps, µs, to start with and at the least (default 20, the
    /// kernel's usual busy-poll time). 0: never spin.
    pub spin_us: u32,
    /// The longest the spin window grows to while dense bursts come close
    /// together, µs (default 250; at or below `spin_us`: the window stays
    /// at `spin_us`). See the module docs.
    pub spin_max_us: u32,
    /// `SCHED_FIFO` priority the waiting thread takes once it is found to
    /// share its CPU with the queue's NAPI thread; `None` (the default)
    /// leaves its scheduling alone. Needs `CAP_SYS_NICE`; refused, the
    /// channel logs it and goes on as before. A FIFO thread that never
    /// sleeps would keep everything else off its CPU: only the adaptive
    /// wait, which always sleeps on a shared CPU, should be given it.
    pub fifo: Option<u8>,
}

impl Default for Adaptive {
    fn default() -> Self {
        Self {
            spin_us: 20,
            spin_max_us: 250,
            fifo: None,
        }
    }
}

impl Adaptive {
    /// These settings, changed by `f` (the struct is `#[non_exhaustive]`):
    /// `Adaptive::default().with(|a| a.fifo = Some(1))`.
    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

/// What one wait does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Return at once (or busy-poll).
    Spin,
    /// Sleep in `poll(2)` (coalescing, if configured).
    Sleep,
}

/// The adaptive wait's state: when frames last arrived, and whether the
/// queue's NAPI thread shares this thread's CPU. The decision is pure
/// ([`decide`](Self::decide)), so it is tested without a socket.
#[derive(Debug)]
pub(crate) struct AdaptiveState {
    pub(crate) cfg: Adaptive,
    /// The received count at the last wait, and when it last changed.
    last_rx: u64,
    last_arrival: Option<Instant>,
    /// What the last wait did.
    last_choice: Choice,
    /// How long a wait spins after the last arrival now, between
    /// `cfg.spin_us` and `cfg.spin_max_us`; and the longest it has been.
    window: Duration,
    widest: Duration,
    /// When the current run of sleeps began (cleared at the wake-up that
    /// found frames), and how long the last such run lasted, until the
    /// next decision reads it.
    asleep_since: Option<Instant>,
    last_sleep: Option<Duration>,
    /// Whether spinning pays off, 0..=[`PAYOFF_MAX`]: up when frames came
    /// while the thread spun (or came dense after a sleep: a batch or
    /// more), down when a sleep had to be woken for a few. Spinning is
    /// chosen only at [`PAYOFF_SPIN`] or more.
    payoff: u8,
    pub(crate) napi: NapiWatch,
    /// Whether `cfg.fifo` was tried (once).
    pub(crate) fifo_tried: bool,
}

impl AdaptiveState {
    pub(crate) fn new(cfg: Adaptive, ifname: &str) -> Self {
        Self {
            cfg,
            last_rx: 0,
            last_arrival: None,
            last_choice: Choice::Spin,
            window: micros(cfg.spin_us),
            widest: micros(cfg.spin_us),
            asleep_since: None,
            last_sleep: None,
            payoff: PAYOFF_MAX,
            napi: NapiWatch::new(ifname),
            fifo_tried: false,
        }
    }

    /// A wait at `now`, with `received` frames received in all (a running
    /// count), `batch` the frames one receive takes, and `shares_napi`
    /// from the NAPI check: how to wait.
    pub(crate) fn decide(
        &mut self,
        now: Instant,
        received: u64,
        batch: usize,
        shares_napi: bool,
    ) -> Choice {
        if received != self.last_rx {
            // Frames came since the last wait: did spinning catch them, or
            // did a sleep have to be woken for them?
            let came = received.wrapping_sub(self.last_rx);
            let caught = self.last_choice == Choice::Spin || came >= batch as u64;
            self.payoff = if caught {
                (self.payoff + 1).min(PAYOFF_MAX)
            } else {
                self.payoff.saturating_sub(1)
            };
            self.last_rx = received;
            self.last_arrival = Some(now);
            // Beside NAPI the thread never spins: its sleeps say nothing
            // about a window it does not use.
            if let Some(slept) = self.last_sleep.take().filter(|_| !shares_napi) {
                self.fit_window(slept, came >= batch as u64);
            }
        }
        let choice = match self.last_arrival {
            _ if shares_napi || self.payoff < PAYOFF_SPIN => Choice::Sleep,
            Some(t) if now.saturating_duration_since(t) < self.window => Choice::Spin,
            _ => Choice::Sleep,
        };
        if choice == Choice::Sleep && self.asleep_since.is_none() {
            self.asleep_since = Some(now);
        }
        self.last_choice = choice;
        choice
    }

    /// A sleep returned at `now` with frames to receive: it ends the run
    /// of sleeps (a sleep that timed out is followed by another), whose
    /// length the next decision reads.
    pub(crate) fn woke(&mut self, now: Instant) {
        if let Some(t) = self.asleep_since.take() {
            self.last_sleep = Some(now.saturating_duration_since(t));
        }
    }

    /// The spin window after a run of sleeps that lasted `slept` and was
    /// woken for a batch or more (`dense`) or not (see the module docs).
    fn fit_window(&mut self, slept: Duration, dense: bool) {
        let floor = micros(self.cfg.spin_us);
        let ceiling = micros(self.cfg.spin_max_us).max(floor);
        if dense && slept <= ceiling {
            // The gap was the window that ran out plus the sleep.
            let gap = self.window + slept;
            self.window = self.window.max((gap + gap / 2).min(ceiling));
            if self.window > self.widest {
                self.widest = self.window;
                tracing::trace!(window_us = self.window.as_micros(), "spin window widened");
            }
        } else {
            self.window = (self.window / 2).max(floor);
        }
    }

    /// The longest the spin window has been.
    pub(crate) fn widest(&self) -> Duration {
        self.widest
    }
}

fn micros(us: u32) -> Duration {
    Duration::from_micros(u64::from(us))
}

/// The most [`AdaptiveState::payoff`] counts up to, and where spinning
/// starts: after four sleeps in a row each woken for fewer than a batch,
/// the thread stops spinning (traffic comes in bursts farther apart than
/// the window: spinning would only pay for the window after each), and
/// after four batches caught it starts again.
const PAYOFF_MAX: u8 = 8;
const PAYOFF_SPIN: u8 = 4;

/// Watches whether the NAPI kthreads of an interface (`napi/IFNAME-ID`,
/// threaded NAPI) are confined to CPUs the calling thread may run on.
#[derive(Debug)]
pub(crate) struct NapiWatch {
    prefix: String,
    kthreads: Vec<i32>,
    next_scan: Option<Instant>,
    next_check: Option<Instant>,
    shares: bool,
}

/// How often the known kthreads' affinity is read again.
const CHECK_EVERY: Duration = Duration::from_millis(250);
/// How often `/proc` is scanned for kthreads while none is known, and
/// while some are (threaded NAPI switched on later, or a new instance).
const SCAN_NONE: Duration = Duration::from_secs(2);
const SCAN_SOME: Duration = Duration::from_secs(10);

impl NapiWatch {
    pub(crate) fn new(ifname: &str) -> Self {
        Self {
            prefix: format!("napi/{ifname}-"),
            kthreads: Vec::new(),
            next_scan: None,
            next_check: None,
            shares: false,
        }
    }

    /// Whether a NAPI thread of the interface shares the calling thread's
    /// CPU, as last checked; checks again when it is time to.
    pub(crate) fn shares(&mut self, now: Instant) -> bool {
        if self.next_check.is_some_and(|t| now < t) {
            return self.shares;
        }
        self.next_check = Some(now + CHECK_EVERY);
        if self.next_scan.is_none_or(|t| now >= t) {
            self.kthreads = napi_kthreads(&self.prefix);
            let every = if self.kthreads.is_empty() {
                SCAN_NONE
            } else {
                SCAN_SOME
            };
            self.next_scan = Some(now + every);
        }
        let was = self.shares;
        self.shares = self.check();
        if self.shares != was {
            tracing::debug!(
                napi = %self.prefix,
                shares = self.shares,
                "the queue's NAPI thread and this thread {} a CPU: the channel waits by {}",
                if self.shares { "share" } else { "no longer share" },
                if self.shares { "poll() alone" } else { "spinning, then poll()" }
            );
        }
        self.shares
    }

    /// Reads the known kthreads' affinity against the calling thread's;
    /// forgets kthreads that are gone.
    fn check(&mut self) -> bool {
        let Ok(ours) = rustix::thread::sched_getaffinity(None) else {
            return false;
        };
        let mut shares = false;
        let had = !self.kthreads.is_empty();
        self.kthreads.retain(|&pid| {
            let Some(p) = rustix::process::Pid::from_raw(pid) else {
                return false;
            };
            match rustix::thread::sched_getaffinity(Some(p)) {
                Ok(theirs) => {
                    shares |= confined(&theirs, &ours);
                    true
                }
                Err(_) => false,
            }
        });
        if had && self.kthreads.is_empty() {
            // Gone (their NAPI instance was deleted): scan at the next check.
            self.next_scan = None;
        }
        shares
    }
}

/// Whether every CPU `theirs` allows is one `ours` allows (and it allows
/// at least one): a thread confined so cannot be moved off our CPUs.
fn confined(theirs: &rustix::thread::CpuSet, ours: &rustix::thread::CpuSet) -> bool {
    let mut any = false;
    for cpu in 0..rustix::thread::CpuSet::MAX_CPU {
        if theirs.is_set(cpu) {
            if !ours.is_set(cpu) {
                return false;
            }
            any = true;
        }
    }
    any
}

/// Pids of the kthreads whose name starts with `prefix` (kthread names in
/// `/proc/PID/comm` are not cut to 15 bytes).
fn napi_kthreads(prefix: &str) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim_end().starts_with(prefix))
        })
        .collect()
}

/// Moves the calling thread to `SCHED_FIFO` at `priority`.
pub(crate) fn run_fifo(priority: u8) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: i32::from(priority),
    };
    // SAFETY: `param` is a valid `sched_param` that outlives the call; pid
    // 0 names the calling thread.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::thread::CpuSet;

    const US: Duration = Duration::from_micros(1);

    fn set(cpus: &[usize]) -> CpuSet {
        let mut s = CpuSet::new();
        for &c in cpus {
            s.set(c);
        }
        s
    }

    #[test]
    fn spins_while_frames_keep_coming_then_polls() {
        let mut a = AdaptiveState::new(Adaptive::default(), "x");
        let t0 = Instant::now();
        // Nothing received yet: sleep.
        assert_eq!(a.decide(t0, 0, 64, false), Choice::Sleep);
        // Frames arrived: spin for the window after the wait that saw them.
        assert_eq!(a.decide(t0 + US, 64, 64, false), Choice::Spin);
        assert_eq!(a.decide(t0 + 15 * US, 64, 64, false), Choice::Spin);
        assert_eq!(a.decide(t0 + 21 * US, 64, 64, false), Choice::Sleep);
        // More frames (a batch, after the sleep) restart the window.
        assert_eq!(a.decide(t0 + 30 * US, 128, 64, false), Choice::Spin);
        assert_eq!(a.decide(t0 + 49 * US, 128, 64, false), Choice::Spin);
        assert_eq!(a.decide(t0 + 51 * US, 128, 64, false), Choice::Sleep);
    }

    /// Bursts of `n` frames every `gap`: the waits of `rounds` bursts
    /// (the first wait after each burst, then one a window later), and
    /// how many of them spun.
    fn bursts(a: &mut AdaptiveState, n: u64, gap: Duration, rounds: u32) -> u32 {
        let (mut now, mut rx, mut spun) = (Instant::now(), 0u64, 0);
        for _ in 0..rounds {
            rx += n;
            if a.decide(now, rx, 64, false) == Choice::Spin {
                spun += 1;
                // The window runs out before the next burst: sleep.
                assert_eq!(a.decide(now + 21 * US, rx, 64, false), Choice::Sleep);
            }
            now += gap;
        }
        spun
    }

    #[test]
    fn sparse_bursts_stop_the_spinning_and_dense_ones_bring_it_back() {
        let mut a = AdaptiveState::new(Adaptive::default(), "x");
        // A few frames every 100 µs: every sleep is woken for a few. After
        // four, the thread sleeps at once.
        let spun = bursts(&mut a, 8, 100 * US, 20);
        assert!(spun <= 5, "{spun}");
        assert_eq!(bursts(&mut a, 8, 100 * US, 10), 0);
        // A batch or more after each sleep: spinning pays again.
        let spun = bursts(&mut a, 200, 100 * US, 20);
        assert!(spun >= 15, "{spun}");
        // Frames caught while spinning keep it spinning.
        let t = Instant::now();
        let mut rx = 10_000;
        for i in 0..50u32 {
            rx += 3;
            assert_eq!(a.decide(t + i * 5 * US, rx, 64, false), Choice::Spin);
        }
    }

    /// One burst after a sleep: the thread slept at `asleep` (the window
    /// having run out), woke `slept` later and received `came` frames; the
    /// decision right after.
    fn wake(a: &mut AdaptiveState, asleep: Instant, slept: Duration, came: u64) -> Choice {
        let rx = a.last_rx;
        assert_eq!(a.decide(asleep, rx, 64, false), Choice::Sleep);
        a.woke(asleep + slept);
        a.decide(asleep + slept + US, rx + came, 64, false)
    }

    #[test]
    fn dense_bursts_close_together_widen_the_window_and_sparse_ones_narrow_it() {
        let mut a = AdaptiveState::new(Adaptive::default(), "x");
        let t0 = Instant::now();
        assert_eq!(a.decide(t0, 200, 64, false), Choice::Spin);
        assert_eq!(a.decide(t0 + 21 * US, 200, 64, false), Choice::Sleep);
        // Woken 60 µs later for a batch: the gap was 20 + 60 µs, and the
        // window becomes half as much again, 120 µs.
        a.woke(t0 + 81 * US);
        let t1 = t0 + 82 * US;
        assert_eq!(a.decide(t1, 400, 64, false), Choice::Spin);
        assert_eq!(a.window, 120 * US);
        assert_eq!(a.decide(t1 + 100 * US, 400, 64, false), Choice::Spin);
        assert_eq!(a.decide(t1 + 121 * US, 400, 64, false), Choice::Sleep);
        // Another gap of 120 + 100 µs: up to the ceiling, 250 µs, and no
        // further.
        a.woke(t1 + 221 * US);
        assert_eq!(a.decide(t1 + 222 * US, 600, 64, false), Choice::Spin);
        assert_eq!(a.window, 250 * US);
        assert_eq!(a.widest(), 250 * US);
        // A sleep woken for a few frames halves it, to no less than 20 µs.
        let mut t = t1 + 500 * US;
        for want in [125, 62, 31, 20] {
            assert_eq!(wake(&mut a, t, 50 * US, 3), Choice::Spin);
            assert_eq!(a.window.as_micros(), want);
            t += 1000 * US;
        }
        // So does a batch after a sleep longer than the ceiling: bursts too
        // far apart to spin through.
        a.window = 200 * US;
        assert_eq!(wake(&mut a, t, 300 * US, 100), Choice::Spin);
        assert_eq!(a.window, 100 * US);
        assert_eq!(a.widest(), 250 * US);
    }

    #[test]
    fn a_run_of_sleeps_counts_from_the_first_and_a_fixed_window_stays() {
        let mut a = AdaptiveState::new(Adaptive::default(), "x");
        let t0 = Instant::now();
        assert_eq!(a.decide(t0, 0, 64, false), Choice::Sleep);
        // Idle: the sleep times out (no wake-up with frames) and another
        // follows; frames come 30 µs into the second, 1 s after the first.
        assert_eq!(a.decide(t0 + 1_000_000 * US, 0, 64, false), Choice::Sleep);
        a.woke(t0 + 1_000_030 * US);
        assert_eq!(a.decide(t0 + 1_000_031 * US, 200, 64, false), Choice::Spin);
        assert_eq!(a.window, 20 * US, "traffic starting after idle is no gap");

        // spin_max_us at spin_us: the window never moves.
        let fixed = Adaptive::default().with(|a| a.spin_max_us = 20);
        let mut a = AdaptiveState::new(fixed, "x");
        assert_eq!(a.decide(t0, 200, 64, false), Choice::Spin);
        assert_eq!(wake(&mut a, t0 + 21 * US, 40 * US, 200), Choice::Spin);
        assert_eq!(a.window, 20 * US);
        assert_eq!(a.widest(), 20 * US);
    }

    #[test]
    fn a_cpu_shared_with_napi_never_spins() {
        let mut a = AdaptiveState::new(Adaptive::default(), "x");
        let t0 = Instant::now();
        assert_eq!(a.decide(t0, 64, 64, true), Choice::Sleep);
        // Woken soon for a batch: no window widens that is never used.
        a.woke(t0 + 30 * US);
        assert_eq!(a.decide(t0 + 31 * US, 128, 64, true), Choice::Sleep);
        assert_eq!(a.widest(), 20 * US);
        // No longer shared: spinning, since a batch just came.
        assert_eq!(a.decide(t0 + 32 * US, 192, 64, false), Choice::Spin);
    }

    #[test]
    fn a_zero_window_never_spins() {
        let mut a = AdaptiveState::new(Adaptive::default().with(|a| a.spin_us = 0), "x");
        let t0 = Instant::now();
        assert_eq!(a.decide(t0, 64, 64, false), Choice::Sleep);
    }

    #[test]
    fn confinement_is_a_non_empty_subset() {
        assert!(confined(&set(&[1]), &set(&[1])));
        assert!(confined(&set(&[1]), &set(&[0, 1])));
        // A kthread free to run on cpu0 escapes a thread pinned to cpu1.
        assert!(!confined(&set(&[0, 1]), &set(&[1])));
        assert!(!confined(&set(&[0]), &set(&[1])));
        assert!(!confined(&set(&[]), &set(&[1])));
    }

    #[test]
    fn no_napi_thread_means_no_sharing_and_no_rescan_before_its_time() {
        let mut w = NapiWatch::new("no-such-interface-skmem");
        let t0 = Instant::now();
        assert!(!w.shares(t0));
        assert_eq!(w.next_scan, Some(t0 + SCAN_NONE));
        // Within the check interval the answer is cached.
        assert!(!w.shares(t0 + US));
        assert_eq!(w.next_check, Some(t0 + CHECK_EVERY));
    }
}
