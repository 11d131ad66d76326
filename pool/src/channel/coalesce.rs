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
//! So the channel moderates: it estimates the arrival rate from the frames
//! received between two waits and the time between them, and sleeps for
//! as long as `target` frames take to arrive — at most
//! [`Coalesce::max_wait_us`]. When traffic is too slow for the target to
//! fill within that bound, or stops, it waits in `poll(2)` as before, so an
//! idle channel costs nothing and a slow one adds no latency. A sleep that
//! overran (the kernel ran out of fill frames, and the count reached what
//! the kernel held) under-estimates the rate; the next sleep is then half
//! as long, so the estimate cannot run away.

use std::time::{Duration, Instant};

/// How a channel coalesces its receive wake-ups (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
/// of the waits and the running count of received frames, it decides, so
/// it is tested without a socket.
#[derive(Debug, Clone)]
pub(crate) struct Moderator {
    cfg: Coalesce,
    /// Frames per nanosecond, smoothed; 0 while unknown or idle.
    rate: f64,
    /// When the last wait began, and the received count then.
    last: Option<(Instant, u64)>,
}

impl Moderator {
    pub(crate) fn new(cfg: Coalesce) -> Self {
        Self {
            cfg,
            rate: 0.0,
            last: None,
        }
    }

    /// A wait begins at `now`, with `received` frames received in all
    /// (a running count) and `held` frames held by the kernel for RX (the
    /// most that can arrive before the fill ring runs dry): how to wait.
    pub(crate) fn next(&mut self, now: Instant, received: u64, held: u32) -> Wait {
        if let Some((then, before)) = self.last {
            let got = received.saturating_sub(before);
            let ns = now.saturating_duration_since(then).as_nanos().max(1) as f64;
            self.rate = if got == 0 {
                // Nothing since the last wait: traffic stopped. Wait in
                // poll(2), which wakes on the next frame.
                0.0
            } else {
                let sample = got as f64 / ns;
                if self.rate == 0.0 {
                    sample
                } else {
                    (self.rate + sample) / 2.0
                }
            };
        }
        self.last = Some((now, received));
        let target = match self.cfg.target_frames {
            0 => held / 2,
            t => t.min(held),
        };
        if self.rate <= 0.0 || target == 0 {
            return Wait::Poll;
        }
        // A sleep that overran saw at most `held` frames, an under-estimate
        // of the rate: with the default target (half of `held`) the next
        // sleep is then at most half the last cycle, so it shrinks until
        // the count stops hitting the ceiling.
        let ns = f64::from(target) / self.rate;
        if ns > f64::from(self.cfg.max_wait_us) * 1e3 {
            return Wait::Poll;
        }
        Wait::Sleep(Duration::from_nanos(ns as u64).max(MIN_SLEEP))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const US: Duration = Duration::from_micros(1);

    fn sleep_us(w: Wait) -> f64 {
        match w {
            Wait::Sleep(d) => d.as_secs_f64() * 1e6,
            Wait::Poll => panic!("expected a sleep, got poll"),
        }
    }

    #[test]
    fn the_first_wait_polls_then_sleeps_for_the_target_at_the_measured_rate() {
        let mut m = Moderator::new(Coalesce::new(1000));
        let t0 = Instant::now();
        assert_eq!(m.next(t0, 0, 1024), Wait::Poll);
        // 100 frames in 50 µs: 2 frames/µs; half of 1024 takes 256 µs.
        let s = sleep_us(m.next(t0 + 50 * US, 100, 1024));
        assert!((s - 256.0).abs() < 1.0, "{s}");
    }

    #[test]
    fn steady_traffic_converges_on_the_target() {
        let mut m = Moderator::new(Coalesce {
            max_wait_us: 1000,
            target_frames: 300,
        });
        let mut now = Instant::now();
        let mut received = 0u64;
        m.next(now, received, 1024);
        // 3 frames/µs; each cycle is the sleep plus 20 µs of work.
        let mut sleep = 10.0;
        for _ in 0..20 {
            let cycle = sleep + 20.0;
            now += Duration::from_secs_f64(cycle / 1e6);
            received += (3.0 * cycle) as u64;
            sleep = sleep_us(m.next(now, received, 1024));
        }
        assert!((sleep - 100.0).abs() < 2.0, "{sleep}");
    }

    #[test]
    fn traffic_too_slow_for_the_bound_and_no_traffic_wait_in_poll() {
        let mut m = Moderator::new(Coalesce::new(200));
        let t0 = Instant::now();
        m.next(t0, 0, 1024);
        // 10 frames in 1 ms: 512 frames would take 51 ms.
        assert_eq!(m.next(t0 + 1000 * US, 10, 1024), Wait::Poll);
        // Fast again, then nothing at all since the last wait.
        sleep_us(m.next(t0 + 1100 * US, 1010, 1024));
        assert_eq!(m.next(t0 + 1200 * US, 1010, 1024), Wait::Poll);
    }

    #[test]
    fn a_sleep_that_overran_is_followed_by_a_shorter_one() {
        let mut m = Moderator::new(Coalesce::new(5000));
        let mut now = Instant::now();
        m.next(now, 0, 1024);
        // The true rate is 10 frames/µs, but only the 1024 frames the
        // kernel held ever arrive: each cycle sees 1024.
        now += 1000 * US;
        let mut last = sleep_us(m.next(now, 1024, 1024));
        let mut received = 1024;
        for _ in 0..10 {
            now += Duration::from_secs_f64(last / 1e6);
            received += (10.0 * last).min(1024.0) as u64;
            let s = sleep_us(m.next(now, received, 1024));
            assert!(s <= last * 0.99 || s <= 52.0, "{s} after {last}");
            last = s;
        }
        // Settles where 512 frames arrive in a sleep: 51.2 µs.
        assert!((last - 51.2).abs() < 2.0, "{last}");
    }

    #[test]
    fn a_target_above_what_the_kernel_holds_is_clamped_and_short_sleeps_have_a_floor() {
        let mut m = Moderator::new(Coalesce {
            max_wait_us: 1000,
            target_frames: 4096,
        });
        let t0 = Instant::now();
        m.next(t0, 0, 512);
        // 1000 frames/µs: the 512 frames held take 0.5 µs.
        assert_eq!(m.next(t0 + US, 1000, 512), Wait::Sleep(MIN_SLEEP));
        // Nothing held (everything with the application): poll.
        assert_eq!(m.next(t0 + 2 * US, 2000, 0), Wait::Poll);
    }
}
