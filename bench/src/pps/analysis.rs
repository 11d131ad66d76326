//! From rounds to figures: medians and ranges, ratios paired round by round
//! so drift cancels, the cells and the goals.

use super::*;

impl ProgCounters {
    pub(super) fn add(&mut self, o: &ProgCounters) {
        self.rx_packets += o.rx_packets;
        self.tx_queued += o.tx_queued;
        self.tx_completed += o.tx_completed;
        self.tx_unsent += o.tx_unsent;
        self.xsk_rx_dropped += o.xsk_rx_dropped;
        self.xsk_rx_ring_full += o.xsk_rx_ring_full;
        self.xsk_fill_ring_empty += o.xsk_fill_ring_empty;
    }
}

/// The mean of the values present (`None` when none is).
pub(super) fn mean_of(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (sum, n) = v.flatten().fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

impl ProgramResult {
    /// One program's rounds of one cell as one result: the repetitions of
    /// every round together (medians over all of them), the per-round
    /// medians kept for the paired ratios, CPU shares and costs averaged
    /// (the windows are equally long), counters summed. `None` for no
    /// round.
    pub(super) fn merge_rounds(rounds: Vec<ProgramResult>) -> Option<ProgramResult> {
        let mut it = rounds.into_iter();
        let mut m = it.next()?;
        let rest: Vec<ProgramResult> = it.collect();
        if rest.is_empty() {
            return Some(m);
        }
        let all = std::iter::once(&m).chain(&rest);
        let shares = |f: fn(&ProgramResult) -> Option<f64>| mean_of(all.clone().map(f));
        let (napi_cpu_share, prog_cpu_busy, prog_cpu_share) = (
            shares(|r| r.napi_cpu_share),
            shares(|r| r.prog_cpu_busy),
            shares(|r| r.prog_cpu_share),
        );
        let (prog_ns_per_packet, napi_ns_per_packet) = (
            shares(|r| r.prog_ns_per_packet),
            shares(|r| r.napi_ns_per_packet),
        );
        for r in &rest {
            m.reps_mpps.extend(&r.reps_mpps);
            m.reps_offered_mpps.extend(&r.reps_offered_mpps);
            m.reps_redirected_mpps.extend(&r.reps_redirected_mpps);
            m.reps_seen_mpps.extend(&r.reps_seen_mpps);
            m.reps_reached_b_mpps.extend(&r.reps_reached_b_mpps);
            m.rounds_mpps.extend(&r.rounds_mpps);
            m.counters.add(&r.counters);
            m.wall_s = m.wall_s.max(r.wall_s);
        }
        let stat = Stat::of_mpps;
        m.mpps = stat(&m.reps_mpps);
        m.offered_mpps = m.offered_mpps.map(|_| stat(&m.reps_offered_mpps));
        m.xdp_seen_mpps = m.xdp_seen_mpps.map(|_| stat(&m.reps_seen_mpps));
        m.xdp_redirected_mpps = m.xdp_redirected_mpps.map(|_| stat(&m.reps_redirected_mpps));
        m.reached_b_mpps = stat(&m.reps_reached_b_mpps);
        // Equal windows: sums of rates are proportional to counts.
        let redir: f64 = m.reps_redirected_mpps.iter().sum();
        m.share_of_redirected = m
            .share_of_redirected
            .and_then(|_| (redir > 0.0).then(|| m.reps_mpps.iter().sum::<f64>() / redir));
        m.napi_cpu_share = napi_cpu_share;
        m.prog_cpu_busy = prog_cpu_busy;
        m.prog_cpu_share = prog_cpu_share;
        m.prog_ns_per_packet = prog_ns_per_packet;
        m.napi_ns_per_packet = napi_ns_per_packet;
        Some(m)
    }

    /// One line: rate, offered, XDP redirected, reached B.
    pub fn summary(&self) -> String {
        let opt =
            |s: Option<Stat>| s.map_or_else(|| "-".to_owned(), |s| format!("{:.3}", s.median));
        format!(
            "{:.3} Mpps ({:.3}-{:.3}), offered {}, XDP redirected {}, reached B {:.3}",
            self.mpps.median,
            self.mpps.min,
            self.mpps.max,
            opt(self.offered_mpps),
            opt(self.xdp_redirected_mpps),
            self.reached_b_mpps.median
        )
    }
}

/// A ratio with the range of its per-round ratios: `0.990 (0.970-1.010)`.
pub fn with_range(v: Option<f64>, rounds: &[f64]) -> String {
    match v {
        None => "-".to_owned(),
        Some(v) if rounds.len() > 1 => {
            let (_, lo, hi) = median_min_max(rounds);
            format!("{v:.3} ({lo:.2}-{hi:.2})")
        }
        Some(v) => format!("{v:.3}"),
    }
}

pub(super) fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// `a[r] ÷ b[r]` for each round both have, rounds where `b` is 0 left
/// out: the pairs a ratio's median and range are read from.
pub(super) fn per_round_ratios(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter()
        .zip(b)
        .filter(|(_, &y)| y > 0.0)
        .map(|(x, y)| x / y)
        .collect()
}

/// skmem ÷ another program and the per-round ratios it comes from: with
/// several rounds, the median of the per-round ratios (each pair measured
/// seconds apart); with one, the ratio of the medians (and no list).
pub(super) fn paired_ratio(
    a: Option<&ProgramResult>,
    b: Option<&ProgramResult>,
) -> (Option<f64>, Vec<f64>) {
    let (Some(a), Some(b)) = (a, b) else {
        return (None, Vec::new());
    };
    if a.rounds_mpps.len() > 1 && a.rounds_mpps.len() == b.rounds_mpps.len() {
        let per_round = per_round_ratios(&a.rounds_mpps, &b.rounds_mpps);
        let median = (!per_round.is_empty()).then(|| median_min_max(&per_round).0);
        (median, per_round)
    } else {
        (ratio(Some(a.mpps.median), Some(b.mpps.median)), Vec::new())
    }
}

/// skmem's ratios per layout × workload × size.
pub(super) fn cells(cfg: &Config, results: &[ProgramResult]) -> Vec<Cell> {
    let mut out = Vec::new();
    for &layout in &cfg.layouts {
        for &workload in &cfg.workloads {
            for &size in &cfg.sizes {
                let here: Vec<&ProgramResult> = results
                    .iter()
                    .filter(|r| r.layout == layout && r.workload == workload && r.size == size)
                    .collect();
                if here.is_empty() {
                    continue;
                }
                let of = |k: Kind| here.iter().copied().find(|r| r.kind == k);
                let best = here
                    .iter()
                    .filter(|r| r.kind == Kind::Peer)
                    .max_by(|a, b| a.mpps.median.total_cmp(&b.mpps.median));
                let ceiling = here.iter().find(|r| r.kind == Kind::Ceiling);
                let skmem = of(Kind::Skmem);
                let xsk = here
                    .iter()
                    .copied()
                    .find(|r| r.implementation == Implementation::XskRs);
                let (vs_best, vs_best_rounds) = paired_ratio(skmem, best.copied());
                let (vs_ceiling, vs_ceiling_rounds) = paired_ratio(skmem, ceiling.copied());
                let (vs_xsk, vs_xsk_rounds) = paired_ratio(skmem, xsk);
                let (vs_again, vs_again_rounds) = paired_ratio(skmem, of(Kind::Control));
                let tuned = of(Kind::Tuned);
                let bound = of(Kind::Bound);
                let (bound_vs_ceiling, bound_vs_ceiling_rounds) =
                    paired_ratio(bound, ceiling.copied());
                let fastest_txonly = (workload == Workload::L2fwd)
                    .then(|| {
                        results
                            .iter()
                            .filter(|r| {
                                r.layout == layout
                                    && r.workload == Workload::Txonly
                                    && r.size == size
                                    && r.kind != Kind::Ceiling
                            })
                            .map(|r| r.mpps.max)
                            .max_by(f64::total_cmp)
                    })
                    .flatten();
                let bound_vs_best_peer = match workload {
                    // Best rounds: see `Cell::bound_vs_best_peer`.
                    Workload::L2fwd => ratio(fastest_txonly, best.map(|r| r.mpps.max)),
                    _ => paired_ratio(bound, best.copied()).0,
                };
                let (tuned_vs_best, tuned_vs_best_rounds) = paired_ratio(tuned, best.copied());
                let by_imp =
                    |i: Implementation| here.iter().copied().find(|r| r.implementation == i);
                let (w1, w1_rounds) = paired_ratio(by_imp(Implementation::SkmemW1), skmem);
                let (w2, w2_rounds) = paired_ratio(by_imp(Implementation::SkmemW2), skmem);
                let (tuned_vs_ceiling, tuned_vs_ceiling_rounds) =
                    paired_ratio(tuned, ceiling.copied());
                let (skmem_vs_bound, skmem_vs_bound_rounds) = match workload {
                    Workload::Rxdrop => paired_ratio(skmem, bound),
                    Workload::L2fwd => (
                        ratio(skmem.map(|r| r.mpps.median), fastest_txonly),
                        Vec::new(),
                    ),
                    Workload::Txonly => (None, Vec::new()),
                };
                let (probed_vs_skmem, probed_vs_skmem_rounds) =
                    paired_ratio(by_imp(Implementation::SkmemProbed), skmem);
                let twin = parity::cell_twin(
                    here.iter().map(|r| (r.kind, &r.rounds_mpps[..])),
                    parity::Pick::Highest,
                );
                let (skmem_vs_spin, skmem_vs_spin_rounds) =
                    paired_ratio(skmem, by_imp(Implementation::SkmemSpin));
                out.push(Cell {
                    layout,
                    workload,
                    size,
                    skmem_mpps: skmem.map(|r| r.mpps.median),
                    best_peer: best.map(|r| r.program.clone()),
                    best_peer_mpps: best.map(|r| r.mpps.median),
                    skmem_vs_best_peer: vs_best,
                    skmem_vs_best_peer_rounds: vs_best_rounds,
                    ceiling: ceiling.map(|r| r.program.clone()),
                    ceiling_mpps: ceiling.map(|r| r.mpps.median),
                    skmem_vs_ceiling: vs_ceiling,
                    skmem_vs_ceiling_rounds: vs_ceiling_rounds,
                    skmem_vs_xsk_rs: vs_xsk,
                    skmem_vs_xsk_rs_rounds: vs_xsk_rounds,
                    skmem_vs_skmem_again: vs_again,
                    skmem_vs_skmem_again_rounds: vs_again_rounds,
                    coalesce_mpps: tuned.map(|r| r.mpps.median),
                    workers1_vs_skmem: w1,
                    workers1_vs_skmem_rounds: w1_rounds,
                    workers2_vs_skmem: w2,
                    workers2_vs_skmem_rounds: w2_rounds,
                    coalesce_vs_best_peer: tuned_vs_best,
                    coalesce_vs_best_peer_rounds: tuned_vs_best_rounds,
                    coalesce_vs_ceiling: tuned_vs_ceiling,
                    coalesce_vs_ceiling_rounds: tuned_vs_ceiling_rounds,
                    bound_mpps: bound.map(|r| r.mpps.median),
                    bound_vs_ceiling,
                    bound_vs_ceiling_rounds,
                    bound_vs_best_peer,
                    fastest_txonly_mpps: fastest_txonly,
                    skmem_vs_bound,
                    skmem_vs_bound_rounds,
                    probed_vs_skmem,
                    probed_vs_skmem_rounds,
                    skmem_vs_spin,
                    skmem_vs_spin_rounds,
                    twin_vs_best_peer: twin,
                });
            }
        }
    }
    out
}

/// The goals of a matrix cell (issue 24's, and issue 19's for workers):
/// in rxdrop and l2fwd, every layout and size, skmem at its defaults
/// ≥ 1.0× the best peer at the peer's best setting and ≥ 0.9× the most
/// any AF_XDP program reached in the cell; with the probes attached
/// ≥ 0.98× without; owner + one worker ≥ 0.95× (rxdrop) / 0.9× (l2fwd)
/// single-process skmem.
pub(super) fn goals(cells: &[Cell]) -> Vec<Goal> {
    let mut out = Vec::new();
    for c in cells {
        // `bound`: what no AF_XDP program's ratio can exceed in this cell.
        let mut goal = |ratio: &str, target: f64, value: Option<f64>, bound: Option<f64>| {
            let twin = (ratio == "skmem_vs_best_peer")
                .then_some(c.twin_vs_best_peer)
                .flatten();
            out.push(Goal {
                layout: c.layout,
                workload: c.workload,
                size: c.size,
                ratio: ratio.to_owned(),
                load: None,
                target,
                at_most: false,
                value,
                met: value.map(|v| v >= target),
                bound,
                reachable: bound.map(|b| b >= target),
                twin,
            });
        };
        if c.workload != Workload::Txonly {
            goal(
                "skmem_vs_best_peer",
                1.0,
                c.skmem_vs_best_peer,
                c.bound_vs_best_peer,
            );
            goal("skmem_vs_bound", 0.9, c.skmem_vs_bound, Some(1.0));
        }
        if c.probed_vs_skmem.is_some() {
            goal("probed_vs_skmem", 0.98, c.probed_vs_skmem, None);
        }
        // Owner + one worker process against the single-process program
        // (issue 19's floors), in every layout: no bound is known beyond
        // the A/A spread the cell reports.
        let target = match c.workload {
            Workload::Rxdrop => Some(0.95),
            Workload::L2fwd => Some(0.9),
            Workload::Txonly => None,
        };
        if let (Some(t), Some(_)) = (target, c.workers1_vs_skmem) {
            goal("workers1_vs_skmem", t, c.workers1_vs_skmem, None);
        }
    }
    out
}

/// The CPU goal: skmem's machine CPU per frame at most this many times
/// the best spinning peer's.
pub const CPU_GOAL: f64 = 0.5;

/// The goals at each latency load: skmem's p99 RTT ≤ 1.1× the best
/// peer's (any setting); its machine CPU per forwarded frame ≤ 0.5× the
/// best peer's at the peer's default setting (spinning); and both at once
/// ("efficiency without paying in latency"), bounded by what being awake
/// for 99 % of the frames costs at the least
/// ([`latency::LatencyCell::cpu_at_p99_bound`]).
pub(super) fn latency_goals(cells: &[latency::LatencyCell]) -> Vec<Goal> {
    let mut out = Vec::new();
    for c in cells {
        let mut goal = |ratio: &str,
                        target: f64,
                        value: Option<f64>,
                        met: Option<bool>,
                        bound: Option<f64>,
                        twin: Option<TwinBand>| {
            out.push(Goal {
                layout: c.layout,
                workload: Workload::L2fwd,
                size: 0,
                ratio: ratio.to_owned(),
                load: Some(c.load),
                target,
                at_most: true,
                value,
                met,
                bound,
                // At most: reachable when the bound is below the target.
                reachable: bound.map(|b| b <= target),
                twin,
            });
        };
        let p99_met = c.p99_vs_best_peer.map(|v| v <= latency::P99_GOAL);
        let cpu_met = c.cpu_vs_best_default_peer.map(|v| v <= CPU_GOAL);
        goal(
            "p99_vs_best_peer",
            latency::P99_GOAL,
            c.p99_vs_best_peer,
            p99_met,
            None,
            c.twin_p99_vs_best_peer,
        );
        goal(
            "cpu_vs_best_default_peer",
            CPU_GOAL,
            c.cpu_vs_best_default_peer,
            cpu_met,
            c.cpu_bound,
            None,
        );
        goal(
            "cpu_at_p99_vs_best_default_peer",
            CPU_GOAL,
            c.cpu_vs_best_default_peer,
            p99_met.zip(cpu_met).map(|(p, c)| p && c),
            c.cpu_at_p99_bound,
            None,
        );
    }
    out
}
