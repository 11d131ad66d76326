//! Receive coalescing: interrupt moderation, done by the channel, for a
//! thread that waits ([`ChannelParams::coalesce`](super::ChannelParams::coalesce)).
//!
//! Why: a thread waiting in `poll(2)` on an AF_XDP socket is woken at
//! every NAPI flush — on a veth, every 64 frames or so. When that thread
//! shares its CPU with the NAPI thread (threaded NAPI, or a busy single
//! core), every wake-up costs two context switches and a `poll`, and
//! interrupts NAPI as often. A NIC moderates its interrupts for the same
//! reason (`ethtool -C … rx-usecs`, adaptive-rx); copy mode on a veth has
//! nothing like it.
//!
//! So the channel moderates: it sleeps for as long as `target` frames
//! should take to arrive — at most [`Coalesce::max_wait_us`] — and measures
//! the arrival rate from what each sleep brought. The first estimate comes
//! from the frames received after a poll returned. When traffic is too slow
//! for the target to arrive within that bound, or a sleep brought nothing,
//! it waits in `poll(2)` as before, so an idle channel costs nothing and a
//! slow one adds no latency. A sleep that ran the kernel out of fill frames
//! saw fewer frames than arrived; the rate estimate then doubles, so the
//! next sleep is at most half as long.

use std::time::{Duration, Instant};

/// How a channel coalesces its receive wake-ups (see the module docs).
///
/// What it costs: up to `max_wait_us` of latency, and a burst larger than
/// the frames the kernel holds beyond the target (by default half of
/// them) that arrives while the thread sleeps is dropped by the kernel
/// (counted: fill ring empty) — size the rings for the bursts you expect.
/// Pin the thread: left to the scheduler, a thread that sleeps may be
/// placed on the CPU that runs the interface's NAPI and wait there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Coalesce {
    /// The longest a single sleep may last, µs: the most coalescing adds to
    /// a frame's wait. Traffic too slow to bring `target_frames` within it
    /// is waited for with `poll(2)`.
    pub max_wait_us: u32,
    /// Frames to find waiting after a sleep; 0 means half of what the
    /// kernel holds for RX at the time (the rest is headroom for bursts,
    /// so the fill ring does not run dry while the thread sleeps).
    pub target_frames: u32,
}

impl Coalesce {
    /// Sleeps of at most `max_wait_us`, aiming at half of the frames the
    /// kernel holds.
    pub fn new(max_wait_us: u32) -> Self {
        Self {
            max_wait_us,
            target_frames: 0,
        }
    }
}

/// What the channel should do in a wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Sleep this long, then look at the RX ring.
    Sleep(Duration),
    /// Wait in `poll(2)` (the rate is unknown, too slow, or zero).
    Poll,
}

/// Shortest sleep worth a syscall: below it the wait would be all overhead.
const MIN_SLEEP: Duration = Duration::from_micros(2);

/// The rate estimate and the decision it leads to. Pure: given the times
/// and the counts it is told, it decides, so it is tested without a socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Moderator {
    cfg: Coalesce,
    /// Frames per nanosecond, smoothed; 0 while unknown or idle.
    rate: f64,
    /// When the last poll returned and the received count then: the first
    /// estimate is what was received from then to the next wait.
    last_poll: Option<(Instant, u64)>,
}

impl Moderator {
    pub(crate) fn new(cfg: Coalesce) -> Self {
        Self {
            cfg,
            rate: 0.0,
            last_poll: None,
        }
    }

    /// A wait begins at `now`, with `received` frames received in all (a
    /// running count) and `held` frames held by the kernel for RX (the
    /// most that can arrive before the fill ring runs dry): how to wait.
    pub(crate) fn next(&mut self, now: Instant, received: u64, held: u32) -> Wait {
        if self.rate == 0.0 {
            if let Some((then, before)) = self.last_poll {
                let got = received.saturating_sub(before);
                let ns = now.saturating_duration_since(then).as_nanos().max(1) as f64;
                self.rate = got as f64 / ns;
            }
        }
        let target = match self.cfg.target_frames {
            0 => held / 2,
            t => t.min(held),
        };
        let ns = f64::from(target) / self.rate;
        if self.rate <= 0.0 || target == 0 || ns > f64::from(self.cfg.max_wait_us) * 1e3 {
            // Unknown, idle or too slow: poll, and estimate afresh from
            // what arrives after it (see `polled`).
            self.rate = 0.0;
            self.last_poll = None;
            return Wait::Poll;
        }
        self.last_poll = None;
        Wait::Sleep(Duration::from_nanos(ns as u64).max(MIN_SLEEP))
    }

    /// The poll that [`next`](Self::next) asked for returned at `now`,
    /// with `received` frames received in all. The frames received from
    /// here to the next wait, over that time, are the first estimate:
    /// counted from the poll's *end*, so a burst after a quiet spell is not
    /// diluted by the quiet. It is rough — frames that queued during the
    /// poll make it high, an application slower than the traffic makes it
    /// low — and the first sleep measures the rate itself.
    pub(crate) fn polled(&mut self, now: Instant, received: u64) {
        self.last_poll = Some((now, received));
    }

    /// A sleep of `slept` brought `arrived` frames while the kernel held
    /// `held`.
    pub(crate) fn slept(&mut self, slept: Duration, arrived: u32, held: u32) {
        if arrived == 0 {
            // Traffic stopped: the next wait polls.
            self.rate = 0.0;
            return;
        }
        let sample = f64::from(arrived) / slept.as_nanos().max(1) as f64;
        self.rate = if arrived >= held - held / 16 {
            // The fill ring (nearly) ran dry: more arrived than could be
            // seen. Assume at least twice the estimate.
            (self.rate * 2.0).max(sample)
        } else {
            (self.rate + sample) / 2.0
        };
    }
}

impl Coalesce {
    /// These parameters, changed by `f`: how to set a few fields, the
    /// struct being `#[non_exhaustive]` (a field added later is not a
    /// breaking change) — `Coalesce::new(2000).with(|c| c.target_frames = 16)`.
    pub fn with(mut self, f: impl FnOnce(&mut Self)) -> Self {
        f(&mut self);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    fn sleep_of(w: Wait) -> Duration {
        match w {
            Wait::Sleep(d) => d,
            Wait::Poll => panic!("expected a sleep, got poll"),
        }
    }

    fn us(d: Duration) -> f64 {
        d.as_secs_f64() * 1e6
    }

    /// Traffic at `per_us` frames a µs into a kernel holding `held`: how
    /// many a sleep of `d` brings (never more than `held`).
    fn arrivals(per_us: f64, d: Duration, held: u32) -> u32 {
        ((per_us * us(d)) as u32).min(held)
    }

    #[test]
    fn the_first_wait_polls_then_sleeps_for_the_target_at_the_rate_after_the_poll() {
        let mut m = Moderator::new(Coalesce::new(1000));
        let t0 = Instant::now();
        assert_eq!(m.next(t0, 0, 1024), Wait::Poll);
        // The poll returned after a quiet millisecond; then 100 frames in
        // 50 µs: 2 frames/µs; half of 1024 takes 256 µs.
        m.polled(t0 + 1000 * US, 0);
        let s = us(sleep_of(m.next(t0 + 1050 * US, 100, 1024)));
        assert!((s - 256.0).abs() < 1.0, "{s}");
    }

    #[test]
    fn sleeps_converge_on_the_target_whatever_the_work_between_them() {
        let mut m = Moderator::new(Coalesce {
            max_wait_us: 1000,
            target_frames: 300,
        });
        let mut now = Instant::now();
        let mut received = 0;
        m.next(now, received, 1024);
        m.polled(now, received);
        // A slow first estimate: 1 frame/µs over a cycle padded by 200 µs
        // of work. The true rate is 3 frames/µs.
        now += 300 * US;
        received += 300;
        let mut d = sleep_of(m.next(now, received, 1024));
        for _ in 0..12 {
            let a = arrivals(3.0, d, 1024);
            m.slept(d, a, 1024);
            // 500 µs of work before the next wait: not counted as waiting.
            now += d + 500 * US;
            received += u64::from(a);
            d = sleep_of(m.next(now, received, 1024));
        }
        assert!((us(d) - 100.0).abs() < 2.0, "{d:?}");
    }

    #[test]
    fn traffic_too_slow_for_the_bound_and_a_sleep_that_brought_nothing_poll() {
        let mut m = Moderator::new(Coalesce::new(200));
        let t0 = Instant::now();
        m.next(t0, 0, 1024);
        m.polled(t0, 0);
        // 10 frames in 1 ms: 512 frames would take 51 ms.
        assert_eq!(m.next(t0 + 1000 * US, 10, 1024), Wait::Poll);
        m.polled(t0 + 1000 * US, 10);
        // Fast since that poll: a sleep; it brings nothing: poll again.
        let d = sleep_of(m.next(t0 + 1100 * US, 1010, 1024));
        m.slept(d, 0, 1024);
        assert_eq!(m.next(t0 + 1300 * US, 1010, 1024), Wait::Poll);
    }

    #[test]
    fn sleeps_that_ran_the_fill_ring_dry_shrink_until_they_do_not() {
        let mut m = Moderator::new(Coalesce::new(5000));
        let t0 = Instant::now();
        m.next(t0, 0, 1024);
        m.polled(t0, 0);
        // A first estimate of 0.5 frames/µs; the truth is 10: every sleep
        // until the estimate catches up sees only the 1024 frames held.
        let mut d = sleep_of(m.next(t0 + 2000 * US, 1000, 1024));
        assert!((us(d) - 1024.0).abs() < 1.0, "{d:?}");
        let mut shrinking = 0;
        for _ in 0..10 {
            let a = arrivals(10.0, d, 1024);
            m.slept(d, a, 1024);
            let next = sleep_of(m.next(t0, 0, 1024));
            if a >= 1024 {
                assert!(us(next) <= us(d) / 2.0 + 0.01, "{next:?} after {d:?}");
                shrinking += 1;
            }
            d = next;
        }
        assert!(shrinking >= 3, "{shrinking}");
        // Settles where 512 frames arrive in a sleep: 51.2 µs.
        assert!((us(d) - 51.2).abs() < 1.0, "{d:?}");
    }

    #[test]
    fn a_target_above_what_the_kernel_holds_is_clamped_and_short_sleeps_have_a_floor() {
        let mut m = Moderator::new(Coalesce {
            max_wait_us: 1000,
            target_frames: 4096,
        });
        let t0 = Instant::now();
        m.next(t0, 0, 512);
        m.polled(t0, 0);
        // 1000 frames/µs: the 512 frames held take 0.5 µs.
        assert_eq!(m.next(t0 + US, 1000, 512), Wait::Sleep(MIN_SLEEP));
        // Nothing held (everything with the application): poll.
        assert_eq!(m.next(t0 + 2 * US, 2000, 0), Wait::Poll);
    }
}
