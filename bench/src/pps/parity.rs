//! What parity looks like through this run's noise: the ratio a program
//! exactly as fast as the best peer would show against "the best peer".
//!
//! The rate goal compares skmem with the *best* of several peers, and the
//! best is picked on the same noisy rounds it is then compared on; each
//! round of each program is off by the host's noise of the moment. So
//! even a program exactly as fast as the best peer shows a ratio that
//! scatters around 1.0 — a little below it where peers tie (the winner's
//! curse). [`twin_vs_best_peer`] measures that scatter for a cell: it
//! replays the cell many times in simulation — the peers at their
//! measured medians, a *twin* at the best peer's median, each round of
//! each program off by a deviation drawn from the cell's own
//! ([`round_noise`]: how far each program's rounds strayed from its own
//! level and the round's) — picks the best peer the way the analysis
//! does, and takes the twin's ratio the way the goal does. A measured
//! ratio inside the twin's band is parity, as far as the run can tell;
//! one below it is slower than parity.

use super::meter::median_min_max;
use super::Kind;

/// How many simulated runs make a band (deterministic: a fixed seed).
const DRAWS: usize = 4000;

/// The twin's ratio to the best peer over the simulated runs.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TwinBand {
    /// 5th percentile.
    pub p05: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
}

impl TwinBand {
    /// Whether a measured ratio lies within the band (parity, as far as
    /// the run can tell).
    pub fn holds(&self, ratio: f64) -> bool {
        ratio >= self.p05 && ratio <= self.p95
    }

    /// Where a measured ratio lies against the band, in words, for a goal
    /// whose ratio must be high (rates) or low (`at_most`: round trips).
    pub fn verdict(&self, ratio: f64, at_most: bool) -> &'static str {
        match (self.holds(ratio), ratio < self.p05, at_most) {
            (true, _, _) => "at parity",
            (false, true, true) => "better than parity",
            (false, true, false) => "below parity",
            (false, false, true) => "worse than parity",
            (false, false, false) => "above parity",
        }
    }
}

/// How a goal picks its best peer and takes its ratio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Rates: the peer with the highest median is the best, and the
    /// ratio is the median of the per-round ratios.
    Highest,
    /// Round trips: the peer with the lowest median is the best, and the
    /// ratio is that of the medians.
    Lowest,
}

/// The cell's noise: each program's per-round deviation (natural log of
/// the rate) from its own mean and from the round's mean, pooled over
/// the programs — what is left once a program's speed and the host's
/// mood in each round are taken out — scaled up for the two means fitted
/// to the same data. `programs` holds per-round rates (Mpps, rounds in
/// order); programs with another number of rounds than the first, or a
/// rate that is not positive, are left out. `None` with fewer than two
/// programs or two rounds left.
pub fn round_noise(programs: &[&[f64]]) -> Option<Vec<f64>> {
    let rounds = programs.first()?.len();
    let logs: Vec<Vec<f64>> = programs
        .iter()
        .filter(|p| p.len() == rounds && p.iter().all(|&x| x.is_finite() && x > 0.0))
        .map(|p| p.iter().map(|x| x.ln()).collect())
        .collect();
    let n = logs.len();
    if n < 2 || rounds < 2 {
        return None;
    }
    let own: Vec<f64> = logs
        .iter()
        .map(|p| p.iter().sum::<f64>() / rounds as f64)
        .collect();
    let round_mean: Vec<f64> = (0..rounds)
        .map(|r| logs.iter().zip(&own).map(|(p, m)| p[r] - m).sum::<f64>() / n as f64)
        .collect();
    // Residuals of a two-way fit have (n-1)(r-1) degrees of freedom for
    // n·r values: scaling by the root of the ratio makes their spread
    // that of the noise itself.
    let scale = ((n * rounds) as f64 / ((n - 1) * (rounds - 1)) as f64).sqrt();
    Some(
        logs.iter()
            .zip(&own)
            .flat_map(|(p, m)| {
                p.iter()
                    .zip(&round_mean)
                    .map(move |(x, rm)| (x - m - rm) * scale)
            })
            .collect(),
    )
}

/// The band a program exactly as good as the best of `peers` would show
/// as "÷ best peer" in this cell, the best picked and the ratio taken as
/// `pick` says. `peers` holds each peer's per-round figures (rates or
/// round trips, rounds in order, all of equal length); `noise` the
/// cell's per-round deviations ([`round_noise`], natural logs). `None`
/// without a peer, two rounds or any noise.
pub fn twin_vs_best_peer(peers: &[Vec<f64>], noise: &[f64], pick: Pick) -> Option<TwinBand> {
    let rounds = peers.first()?.len();
    if rounds < 2
        || peers.iter().any(|p| p.len() != rounds)
        || noise.is_empty()
        || noise.iter().any(|e| !e.is_finite())
    {
        return None;
    }
    let levels: Vec<f64> = peers.iter().map(|p| median_min_max(p).0).collect();
    if levels.iter().any(|&l| !(l.is_finite() && l > 0.0)) {
        return None;
    }
    let best_level = match pick {
        Pick::Highest => levels.iter().copied().fold(f64::MIN, f64::max),
        Pick::Lowest => levels.iter().copied().fold(f64::MAX, f64::min),
    };
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut draw = |level: f64| level * noise[rng.below(noise.len())].exp();
    let mut sims = Vec::with_capacity(peers.len());
    let mut twin = vec![0.0; rounds];
    let mut ratios = Vec::with_capacity(DRAWS);
    let mut per_round = vec![0.0; rounds];
    for _ in 0..DRAWS {
        sims.clear();
        for &level in &levels {
            sims.push((0..rounds).map(|_| draw(level)).collect::<Vec<f64>>());
        }
        for t in &mut twin {
            *t = draw(best_level);
        }
        // The best peer and the ratio as the analysis takes them.
        let by_median =
            |a: &&Vec<f64>, b: &&Vec<f64>| median_min_max(a).0.total_cmp(&median_min_max(b).0);
        let ratio = match pick {
            Pick::Highest => {
                let best = sims.iter().max_by(by_median)?;
                for ((r, t), b) in per_round.iter_mut().zip(&twin).zip(best) {
                    *r = t / b;
                }
                median_min_max(&per_round).0
            }
            Pick::Lowest => {
                let best = sims.iter().min_by(by_median)?;
                median_min_max(&twin).0 / median_min_max(best).0
            }
        };
        ratios.push(ratio);
    }
    ratios.sort_by(f64::total_cmp);
    let at = |q: f64| ratios[((ratios.len() - 1) as f64 * q).round() as usize];
    Some(TwinBand {
        p05: at(0.05),
        p50: at(0.5),
        p95: at(0.95),
    })
}

/// The band of one cell (or latency load) from its programs' kinds and
/// per-round figures: every program but the in-kernel ceiling (whose
/// noise is its own) says how noisy the cell was, the peers with a full
/// set of rounds are who could be the best. `None` without a peer or
/// without noise to draw from.
pub(super) fn cell_twin<'a>(
    rows: impl Iterator<Item = (Kind, &'a [f64])>,
    pick: Pick,
) -> Option<TwinBand> {
    let rows: Vec<(Kind, &[f64])> = rows.collect();
    let all: Vec<&[f64]> = rows
        .iter()
        .filter(|(k, _)| *k != Kind::Ceiling)
        .map(|(_, r)| *r)
        .collect();
    let noise = round_noise(&all)?;
    let rounds = rows
        .iter()
        .filter(|(k, _)| *k == Kind::Peer)
        .map(|(_, r)| r.len())
        .max()?;
    let peers: Vec<Vec<f64>> = rows
        .iter()
        .filter(|(k, r)| *k == Kind::Peer && r.len() == rounds)
        .map(|(_, r)| r.to_vec())
        .collect();
    twin_vs_best_peer(&peers, &noise, pick)
}

/// A small deterministic generator (xorshift64*): the band must come out
/// the same from the same report.
struct XorShift(u64);

impl XorShift {
    /// A uniform index below `n` (> 0).
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        // The high bits are the good ones; n is tiny, so the bias of a
        // plain modulo of them is negligible.
        ((x >> 32) % n as u64) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUNDS: usize = 5;

    /// A noisy host: single runs off by up to about ±10 %.
    const NOISY: [f64; 6] = [-0.1, -0.06, -0.02, 0.02, 0.06, 0.1];

    fn flat(level: f64) -> Vec<f64> {
        vec![level; ROUNDS]
    }

    #[test]
    fn without_noise_a_twin_is_exactly_at_parity() {
        let b = twin_vs_best_peer(&[flat(3.0), flat(2.5)], &[0.0; 4], Pick::Highest).unwrap();
        assert_eq!(
            b,
            TwinBand {
                p05: 1.0,
                p50: 1.0,
                p95: 1.0
            }
        );
        assert!(b.holds(1.0) && !b.holds(0.99));
    }

    #[test]
    fn one_peer_alone_leaves_a_twin_at_parity_on_average() {
        let b = twin_vs_best_peer(&[flat(3.0)], &NOISY, Pick::Highest).unwrap();
        assert!((b.p50 - 1.0).abs() < 0.02, "{b:?}");
        assert!(
            b.p05 < 0.97 && b.p95 > 1.03,
            "the band shows the noise: {b:?}"
        );
    }

    #[test]
    fn peers_that_tie_pull_a_twin_below_parity() {
        let one = twin_vs_best_peer(&[flat(3.0)], &NOISY, Pick::Highest).unwrap();
        let four = twin_vs_best_peer(&vec![flat(3.0); 4], &NOISY, Pick::Highest).unwrap();
        assert!(four.p50 < 0.98, "the winner's curse: {four:?}");
        assert!(four.p50 < one.p50 && four.p95 < one.p95);
    }

    #[test]
    fn a_peer_far_ahead_is_picked_every_time() {
        // The others are 40 % behind: the noise never makes one of them
        // the best, so they change nothing.
        let alone = twin_vs_best_peer(&[flat(3.0)], &NOISY, Pick::Highest).unwrap();
        let ahead =
            twin_vs_best_peer(&[flat(3.0), flat(1.8), flat(1.8)], &NOISY, Pick::Highest).unwrap();
        // Other draws from the same generator: equal but for sampling.
        assert!((alone.p50 - ahead.p50).abs() < 0.01, "{alone:?} {ahead:?}");
        assert!((alone.p05 - ahead.p05).abs() < 0.02, "{alone:?} {ahead:?}");
    }

    #[test]
    fn a_run_without_rounds_or_noise_has_no_band() {
        assert_eq!(twin_vs_best_peer(&[], &NOISY, Pick::Highest), None);
        assert_eq!(twin_vs_best_peer(&[vec![3.0]], &NOISY, Pick::Highest), None);
        assert_eq!(twin_vs_best_peer(&[flat(3.0)], &[], Pick::Highest), None);
        assert_eq!(
            twin_vs_best_peer(&[flat(3.0)], &[0.1, f64::NAN], Pick::Highest),
            None
        );
        assert_eq!(
            twin_vs_best_peer(&[flat(3.0), vec![1.0; 4]], &NOISY, Pick::Highest),
            None
        );
        assert_eq!(twin_vs_best_peer(&[flat(0.0)], &NOISY, Pick::Highest), None);
    }

    #[test]
    fn round_trips_pick_the_lowest_and_a_twin_lands_above_it() {
        let one = twin_vs_best_peer(&[flat(100.0)], &NOISY, Pick::Lowest).unwrap();
        assert!((one.p50 - 1.0).abs() < 0.02, "{one:?}");
        let four = twin_vs_best_peer(&vec![flat(100.0); 4], &NOISY, Pick::Lowest).unwrap();
        assert!(four.p50 > 1.02, "the winner's curse, upside down: {four:?}");
        // A slower peer does not set the level: 50 µs is the best.
        let mixed = twin_vs_best_peer(&[flat(50.0), flat(500.0)], &NOISY, Pick::Lowest).unwrap();
        assert!((mixed.p50 - 1.0).abs() < 0.02, "{mixed:?}");
        assert_eq!(four.verdict(four.p95 * 1.1, true), "worse than parity");
        assert_eq!(four.verdict(four.p05 * 0.9, true), "better than parity");
        assert_eq!(four.verdict(four.p50, true), "at parity");
        assert_eq!(four.verdict(four.p05 * 0.9, false), "below parity");
    }

    #[test]
    fn speed_and_the_hosts_mood_are_not_noise() {
        // Two programs, one 1.5× the other, both slowed by the same
        // factor in each round: nothing is left over.
        let host = [1.0, 0.7, 1.1, 0.9, 1.0];
        let a: Vec<f64> = host.iter().map(|h| 2.0 * h).collect();
        let b: Vec<f64> = host.iter().map(|h| 3.0 * h).collect();
        let noise = round_noise(&[&a, &b]).unwrap();
        assert_eq!(noise.len(), 10);
        assert!(noise.iter().all(|e| e.abs() < 1e-12), "{noise:?}");
        // One round of one program off by 20 %: that is noise.
        let mut c = b.clone();
        c[2] *= 1.2;
        let noise = round_noise(&[&a, &c]).unwrap();
        let worst = noise.iter().fold(0.0_f64, |m, e| m.max(e.abs()));
        assert!(worst > 0.05, "{noise:?}");
    }

    #[test]
    fn noise_needs_two_programs_and_two_rounds() {
        assert_eq!(round_noise(&[]), None);
        assert_eq!(round_noise(&[&[1.0, 2.0]]), None);
        assert_eq!(round_noise(&[&[1.0], &[2.0]]), None);
        // A program with a missing round or a zero rate is left out.
        assert_eq!(round_noise(&[&[1.0, 2.0], &[1.0], &[0.0, 1.0]]), None);
        assert_eq!(
            round_noise(&[&[1.0, 2.0], &[1.0, 2.1], &[1.0]]).map(|n| n.len()),
            Some(4)
        );
    }

    #[test]
    fn a_cell_draws_noise_from_every_program_but_the_ceiling() {
        let host = [1.0, 0.7, 1.1, 0.9, 1.0];
        let at = |level: f64| -> Vec<f64> { host.iter().map(|h| level * h).collect() };
        let (skmem, peer) = (at(2.0), at(2.1));
        // The ceiling's own wild rounds are not the programs' noise.
        let ceiling = [9.0, 3.0, 8.0, 2.0, 9.0];
        let rows = [
            (Kind::Skmem, &skmem[..]),
            (Kind::Peer, &peer[..]),
            (Kind::Ceiling, &ceiling[..]),
        ];
        let b = cell_twin(rows.into_iter(), Pick::Highest).unwrap();
        assert_eq!(
            b,
            TwinBand {
                p05: 1.0,
                p50: 1.0,
                p95: 1.0
            }
        );
        // Without a peer there is nobody to be the best.
        assert_eq!(cell_twin(rows[..1].iter().copied(), Pick::Highest), None);
    }

    #[test]
    fn the_band_is_the_same_every_time() {
        let peers = [flat(3.0), flat(2.9), flat(2.7)];
        assert_eq!(
            twin_vs_best_peer(&peers, &NOISY, Pick::Highest),
            twin_vs_best_peer(&peers, &NOISY, Pick::Highest)
        );
    }
}
