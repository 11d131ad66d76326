//! The measurement schedule, and the meter a program under test keeps to
//! sample its own counter at the schedule's boundaries.

use std::time::{Duration, Instant};

/// When to sample: the end of the warm-up, then the end of each repetition.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// Boundaries: `reps + 1` instants, the first at the end of the warm-up.
    pub bounds: Vec<Instant>,
}

impl Schedule {
    /// A schedule starting now.
    pub fn starting_now(warmup: Duration, duration: Duration, reps: u32) -> Self {
        let start = Instant::now() + warmup;
        Self {
            bounds: (0..=reps).map(|k| start + duration * k).collect(),
        }
    }

    /// The last boundary.
    pub fn end(&self) -> Instant {
        *self
            .bounds
            .last()
            .expect("a schedule has at least one boundary")
    }
}

/// One sample: when, and the counter(s) at that moment.
#[derive(Debug, Clone, Copy)]
pub struct Sample<T> {
    /// When the sample was taken.
    pub at: Instant,
    /// The counter value(s).
    pub value: T,
}

/// Samples a counter at the schedule's boundaries, from inside the loop
/// that advances it: [`Meter::tick`] costs one clock read.
#[derive(Debug)]
pub struct Meter {
    bounds: Vec<Instant>,
    next: usize,
    samples: Vec<Sample<u64>>,
}

impl Meter {
    /// A meter for `schedule`.
    pub fn new(schedule: &Schedule) -> Self {
        Self {
            bounds: schedule.bounds.clone(),
            next: 0,
            samples: Vec::with_capacity(schedule.bounds.len()),
        }
    }

    /// Records `count` if a boundary has passed; `true` once the last one has.
    #[inline]
    pub fn tick(&mut self, count: u64) -> bool {
        let now = Instant::now();
        if now >= self.bounds[self.next] {
            self.samples.push(Sample {
                at: now,
                value: count,
            });
            self.next += 1;
        }
        self.next == self.bounds.len()
    }

    /// The boundaries this meter samples at (for programs in another
    /// process, which sample on their own clock).
    pub fn bounds(&self) -> &[Instant] {
        &self.bounds
    }

    /// The samples taken so far.
    pub fn into_samples(self) -> Vec<Sample<u64>> {
        self.samples
    }
}

/// Rates between consecutive samples, in packets per second.
pub fn rates(samples: &[Sample<u64>]) -> Vec<f64> {
    samples
        .windows(2)
        .map(|w| {
            let dt = w[1].at.duration_since(w[0].at).as_secs_f64();
            if dt > 0.0 {
                w[1].value.wrapping_sub(w[0].value) as f64 / dt
            } else {
                0.0
            }
        })
        .collect()
}

/// Median, minimum and maximum (zeros for an empty slice).
pub fn median_min_max(v: &[f64]) -> (f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0);
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    (median, s[0], s[n - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median_min_max(&[3.0, 1.0, 2.0]), (2.0, 1.0, 3.0));
        assert_eq!(median_min_max(&[4.0, 1.0, 2.0, 3.0]), (2.5, 1.0, 4.0));
        assert_eq!(median_min_max(&[]), (0.0, 0.0, 0.0));
    }

    #[test]
    fn rates_between_samples() {
        let t = Instant::now();
        let s = [
            Sample { at: t, value: 0 },
            Sample {
                at: t + Duration::from_millis(500),
                value: 1000,
            },
        ];
        assert_eq!(rates(&s), vec![2000.0]);
    }
}
