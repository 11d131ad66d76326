//! Round-trip latency and CPU at equal load: after a layout's cells, for
//! each offered load (a fraction of the best peer's l2fwd rate measured in
//! that layout), every latency program forwards (l2fwd) a paced,
//! timestamped flow that the probe on B ([`skmem_netns::latency`]) sends
//! and times on return. Each run also measures the CPU it cost — at the
//! same offered load for every program, so the CPU per packet compares.
//!
//! B's counting sink is gone by then: the probe attaches skmem's XDP
//! program to B itself, redirecting the returning frames into its socket.
//!
//! Beside the programs, two floors. The in-kernel forward (`xdp-tx`, no
//! AF_XDP program) is the round trip and CPU of the probe, the veths and
//! XDP alone. And a program with a spinner's p99 must be awake when
//! nearly every frame arrives: the gaps between the probe's bursts and
//! how late this machine's timers fire (measured on the program's CPU
//! before the runs) say what that costs at the least
//! ([`SendGaps::timer_share`]); added to the in-kernel CPU it is the
//! floor under "p99 ≤ 1.1× and CPU ≤ 0.5× at once"
//! ([`LatencyCell::cpu_at_p99_bound`]).

use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams};
use skmem_netns::latency::{
    probe, timer_lateness, Histogram, ProbeCounters, ProbeParams, ProbeReport, SendGaps,
};

use super::measure::{run_one, RunCtx};
use super::run::{arena_name, prog_params, round_order, ASide};
use super::*;

/// The programs a latency round runs, in order (those the run has). The
/// ceiling, `xdp-tx`, forwards in A's XDP program with no AF_XDP program
/// at all: its round trips and CPU are the floor any program's stand on
/// (the probe's, the veths' and the kernel's share).
pub const LATENCY_PROGRAMS: [Implementation; 10] = [
    Implementation::Skmem,
    // The A/A control: skmem again in the same rounds, so each cell shows
    // what noise alone makes of skmem's ratios there.
    Implementation::SkmemAgain,
    Implementation::XskRs,
    Implementation::SkmemSpin,
    Implementation::XskRsPoll,
    Implementation::SkmemCoalesce,
    Implementation::LibxdpC,
    Implementation::LibxdpCPoll,
    Implementation::Testpmd,
    Implementation::Ceiling,
];

/// One latency run's figures (rounds merged: medians of the per-round
/// values).
#[derive(Debug, Clone, Serialize)]
pub struct LatencyResult {
    /// CPU layout.
    pub layout: Layout,
    /// Offered load, as a fraction of the best peer's l2fwd rate.
    pub load: f64,
    /// The rate the probe was asked to send, Mpps.
    pub target_mpps: f64,
    /// Program name.
    pub program: String,
    /// Which implementation.
    pub implementation: Implementation,
    /// What it is.
    pub kind: Kind,
    /// How it waited.
    pub wait: Wait,
    /// What the probe sent, Mpps.
    pub sent_mpps: f64,
    /// What the program forwarded (its TX completions), Mpps.
    pub forwarded_mpps: f64,
    /// Frames of the measured windows that never came back, as a share of
    /// those sent.
    pub lost_share: f64,
    /// Round-trip time, median, µs.
    pub p50_us: f64,
    /// Round-trip time, 99th percentile, µs.
    pub p99_us: f64,
    /// Round-trip time, 99.9th percentile, µs.
    pub p999_us: f64,
    /// Round-trip time, the largest of every round, µs.
    pub max_us: f64,
    /// Round trips recorded (all rounds).
    pub recorded: u64,
    /// The machine's busy CPUs over the window (every CPU, probe included).
    pub machine_busy_cores: Option<f64>,
    /// Frames of the measured window that came back to the probe, per
    /// second of the window, Mpps: the same count for every program,
    /// whatever the program counts itself.
    pub returned_mpps: f64,
    /// The machine's busy time per frame returned, ns.
    pub machine_ns_per_packet: Option<f64>,
    /// The program's own CPU time per frame returned, ns.
    pub prog_ns_per_packet: Option<f64>,
    /// The program's own CPU share (1.0: a whole CPU).
    pub prog_cpu_share: Option<f64>,
    /// How busy the program's CPU was (every task and softirq on it;
    /// 1.0: all the time).
    pub prog_cpu_busy: Option<f64>,
    /// Per-round p99, µs.
    pub rounds_p99_us: Vec<f64>,
    /// The median gap between the probe's bursts, µs.
    pub gap_p50_us: f64,
    /// The 1st-percentile gap, µs.
    pub gap_p01_us: f64,
    /// The least share of a CPU any forwarder must spend awake to be
    /// awake when 99 % of this run's frames arrived, from the gaps
    /// between the probe's bursts, waking for free
    /// (`SendGaps::awake_share`).
    pub awake_share_99: Option<f64>,
    /// The same for a forwarder that wakes on a timer as late as the
    /// layout's timers fired (`SendGaps::timer_share`).
    pub timer_share_99: Option<f64>,
    /// How late a 20 µs timer fired on the program's CPU, measured before
    /// the layout's latency runs: median, µs.
    pub timer_late_p50_us: Option<f64>,
    /// Its 99th percentile, µs.
    pub timer_late_p99_us: Option<f64>,
}

/// One round of one program at one load.
#[derive(Debug, Clone)]
struct RoundFigures {
    r: ProgramResult,
    probe: ProbeReport,
    /// p50, p99, p99.9, max, ns.
    q: [u64; 4],
    /// The probe's burst gaps: p50, p1 (ns), and the awake shares
    /// (free wake-ups, timed wake-ups).
    gaps: (u64, u64, Option<f64>, Option<f64>),
}

/// Runs the latency rounds of one layout (B's sink already detached).
#[allow(clippy::too_many_arguments)]
pub(super) fn run_layout_latency(
    cfg: &Config,
    layout: Layout,
    wait: Wait,
    t0: Instant,
    pair: &NetnsPair,
    a: &mut ASide,
    imps: &[Implementation],
    best_peer_mpps: f64,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<LatencyResult>> {
    let size = cfg.sizes.iter().copied().min().unwrap_or(64);
    let progs: Vec<Implementation> = LATENCY_PROGRAMS
        .into_iter()
        .filter(|i| imps.contains(i))
        .collect();
    let mut out = Vec::new();
    // How late timers fire on the program's CPU, on a quiet machine (the
    // floor under the cost of sleeping between bursts).
    let lateness = std::thread::scope(|s| {
        s.spawn(|| -> Result<Histogram> {
            sys::pin_current_thread(cfg.prog_cpu)?;
            Ok(timer_lateness(2_000, Duration::from_micros(20))?)
        })
        .join()
        .map_err(|_| anyhow!("the timer-lateness thread panicked"))?
    })
    .context("measuring timer lateness")?;
    log(&format!(
        "pps: [{} latency] a 20 µs timer on CPU {} fires late by p50 {:.1} µs, p99 {:.1} µs",
        layout.name(),
        cfg.prog_cpu,
        lateness.quantile(0.5) as f64 / 1e3,
        lateness.quantile(0.99) as f64 / 1e3
    ));
    for &load in &cfg.latency_loads {
        let target_pps = (load * best_peer_mpps * 1e6).max(1.0) as u64;
        let mut rounds: Vec<Vec<RoundFigures>> = vec![Vec::new(); progs.len()];
        for round in 0..cfg.latency_rounds {
            for idx in round_order(round, progs.len()) {
                check_interrupt()?;
                let imp = progs[idx];
                let label = format!(
                    "[{} latency {:.0} % ({:.3} Mpps) round {}/{}] {}",
                    layout.name(),
                    load * 100.0,
                    target_pps as f64 / 1e6,
                    round + 1,
                    cfg.latency_rounds,
                    latency_name(imp)
                );
                a.renew(pair, imp.a_side(Workload::L2fwd))
                    .with_context(|| format!("{label}: preparing A"))?;
                let run = || {
                    attempt(
                        cfg, layout, wait, t0, pair, a, imp, size, target_pps, &lateness,
                    )
                };
                let f = match run() {
                    Err(e) if !INTERRUPT.load(Ordering::Relaxed) => {
                        log(&format!("pps: {label}: failed, trying once more: {e:#}"));
                        run()
                    }
                    r => r,
                }
                .with_context(|| label.clone())?;
                log(&format!(
                    "pps: {label}: sent {:.3} Mpps, forwarded {:.3}, lost {}, RTT p50 {:.1} µs, \
                     p99 {:.1} µs, p99.9 {:.1} µs; machine {} CPUs",
                    f.probe.sent_pps() / 1e6,
                    f.r.mpps.median,
                    f.probe.lost(),
                    f.q[0] as f64 / 1e3,
                    f.q[1] as f64 / 1e3,
                    f.q[2] as f64 / 1e3,
                    f.r.machine_busy_cores
                        .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}"))
                ));
                rounds[idx].push(f);
            }
        }
        for (imp, rs) in progs.iter().zip(rounds) {
            if let Some(mut m) = merge(layout, load, target_pps, cfg.latency_duration_s, *imp, &rs)
            {
                m.timer_late_p50_us = Some(lateness.quantile(0.5) as f64 / 1e3);
                m.timer_late_p99_us = Some(lateness.quantile(0.99) as f64 / 1e3);
                out.push(m);
            }
        }
    }
    Ok(out)
}

/// One program run under the probe.
#[allow(clippy::too_many_arguments)]
fn attempt(
    cfg: &Config,
    layout: Layout,
    wait: Wait,
    t0: Instant,
    pair: &NetnsPair,
    a: &ASide,
    imp: Implementation,
    size: usize,
    target_pps: u64,
    lateness: &Histogram,
) -> Result<RoundFigures> {
    let counters = Arc::new(ProbeCounters::default());
    // Nothing is recorded until the program's first measured boundary.
    counters.hold.store(true, Ordering::Relaxed);
    let stop = Arc::new(AtomicBool::new(false));
    let params = ProbeParams {
        spec: pair.frame_spec(Side::B, size).context("probe frames")?,
        rate_pps: target_pps,
        batch: cfg.batch,
        warmup: Duration::ZERO,
        drain: Duration::from_millis(100),
    };
    let handle = {
        let (c, s) = (Arc::clone(&counters), Arc::clone(&stop));
        let ifname = pair.ifname(Side::B).to_owned();
        let cpu = cfg.gen_cpu;
        let ring = cfg.ring_entries;
        let name = arena_name("l");
        pair.spawn_in_ns(
            Side::B,
            move || -> Result<(ProbeReport, [u64; 4], SendGaps)> {
                sys::pin_current_thread(cpu)?;
                let filter =
                    XdpFilter::new().with_udp_dst_ports(DEFAULT_UDP_PORT, DEFAULT_UDP_PORT);
                let mut prog = XdpProgram::attach_with_action(
                    &ifname,
                    AttachMode::Native,
                    Some(filter),
                    XdpAction::Redirect,
                )
                .with_context(|| format!("attaching the probe's XDP program to {ifname}"))?;
                let arena = Arena::create_nexus(&NexusParams::new(name)).context("probe arena")?;
                let mut cp = ChannelParams::new(&ifname, 0);
                cp.mode = BindMode::Copy;
                cp.batch = params.batch;
                cp.ring_entries = ring;
                cp.umem_ring_entries = ring;
                let mut ch = retry_busy(|| {
                    Channel::open(&arena, &cp).with_context(|| format!("probe channel on {ifname}"))
                })?;
                prog.add_socket(0, ch.fd())?;
                let mut hist = Histogram::new();
                let mut gaps = SendGaps::new();
                let r = probe(&mut ch, &params, &mut hist, &mut gaps, &c, &s);
                drop(ch);
                prog.detach().context("detaching the probe's XDP program")?;
                let r = r?;
                Ok((
                    r,
                    [
                        hist.quantile(0.5),
                        hist.quantile(0.99),
                        hist.quantile(0.999),
                        hist.max(),
                    ],
                    gaps,
                ))
            },
        )?
    };
    // The probe stops whatever happens below.
    struct StopProbe(Arc<AtomicBool>);
    impl Drop for StopProbe {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let guard = StopProbe(Arc::clone(&stop));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !counters.running.load(Ordering::Acquire) {
        if handle.is_finished() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let measured = if counters.running.load(Ordering::Acquire) {
        let tx_frame = pair
            .frame_spec(Side::A, size)
            .and_then(|s| Ok(s.build(0)?))
            .context("txonly frame")?;
        let mut p = prog_params(cfg, a, wait, Workload::L2fwd, size, &tx_frame);
        p.duration = Duration::from_secs_f64(cfg.latency_duration_s);
        p.reps = 1;
        let ctx = RunCtx {
            pair,
            a,
            sink: None,
            gen: None,
            probe: Some(Arc::clone(&counters)),
            cfg,
            layout,
            t0,
        };
        Some(run_one(&ctx, imp, latency_name(imp), None, p))
    } else {
        None
    };
    drop(guard);
    let probed = handle
        .join()
        .map_err(|_| anyhow!("the probe thread panicked"))?;
    let Some(measured) = measured else {
        probed.context("the probe did not start")?;
        bail!("the probe did not start within 10 s");
    };
    let r = measured?;
    let (probe, q, g) = probed.context("the probe failed")?;
    let gaps = (
        g.quantile(0.5),
        g.quantile(0.01),
        g.awake_share(0.99),
        g.timer_share(0.99, lateness),
    );
    Ok(RoundFigures { r, probe, q, gaps })
}

/// A latency program's name: the ceiling's is its l2fwd program's.
fn latency_name(imp: Implementation) -> &'static str {
    imp.program(Workload::L2fwd).unwrap_or(imp.name())
}

/// The rounds of one program at one load as one result: medians of the
/// per-round figures (the maximum: the largest).
///
/// CPU is divided by the frames that came back to the probe in the
/// measured window (`window_s` long), not by what the program says it
/// forwarded: one count for every program (testpmd's own counters, for
/// one, span more than the window).
fn merge(
    layout: Layout,
    load: f64,
    target_pps: u64,
    window_s: f64,
    imp: Implementation,
    rs: &[RoundFigures],
) -> Option<LatencyResult> {
    let first = rs.first()?;
    let returned_pps = |f: &RoundFigures| f.probe.recorded as f64 / window_s.max(1e-9);
    let per_returned = |f: &RoundFigures, cores: Option<f64>| {
        let pps = returned_pps(f);
        cores.filter(|_| pps > 0.0).map(|c| c * 1e9 / pps)
    };
    let med = |f: &dyn Fn(&RoundFigures) -> f64| {
        let v: Vec<f64> = rs.iter().map(f).collect();
        median_min_max(&v).0
    };
    let med_opt = |f: &dyn Fn(&RoundFigures) -> Option<f64>| {
        let v: Vec<f64> = rs.iter().filter_map(f).collect();
        (!v.is_empty()).then(|| median_min_max(&v).0)
    };
    Some(LatencyResult {
        layout,
        load,
        target_mpps: target_pps as f64 / 1e6,
        program: latency_name(imp).to_owned(),
        implementation: imp,
        kind: imp.kind(),
        wait: first.r.wait,
        sent_mpps: med(&|f| f.probe.sent_pps() / 1e6),
        forwarded_mpps: med(&|f| f.r.mpps.median),
        lost_share: med(&|f| f.probe.lost() as f64 / f.probe.window_sent.max(1) as f64),
        p50_us: med(&|f| f.q[0] as f64 / 1e3),
        p99_us: med(&|f| f.q[1] as f64 / 1e3),
        p999_us: med(&|f| f.q[2] as f64 / 1e3),
        max_us: rs.iter().map(|f| f.q[3] as f64 / 1e3).fold(0.0, f64::max),
        recorded: rs.iter().map(|f| f.probe.recorded).sum(),
        machine_busy_cores: med_opt(&|f| f.r.machine_busy_cores),
        returned_mpps: med(&|f| returned_pps(f) / 1e6),
        machine_ns_per_packet: med_opt(&|f| per_returned(f, f.r.machine_busy_cores)),
        prog_ns_per_packet: med_opt(&|f| per_returned(f, f.r.prog_cpu_share)),
        prog_cpu_share: med_opt(&|f| f.r.prog_cpu_share),
        prog_cpu_busy: med_opt(&|f| f.r.prog_cpu_busy),
        rounds_p99_us: rs.iter().map(|f| f.q[1] as f64 / 1e3).collect(),
        gap_p50_us: med(&|f| f.gaps.0 as f64 / 1e3),
        gap_p01_us: med(&|f| f.gaps.1 as f64 / 1e3),
        awake_share_99: med_opt(&|f| f.gaps.2),
        timer_share_99: med_opt(&|f| f.gaps.3),
        timer_late_p50_us: None,
        timer_late_p99_us: None,
    })
}

/// The best peer's l2fwd rate in `layout` at the smallest frame size,
/// Mpps: what the latency loads are fractions of.
pub(super) fn best_peer_l2fwd(
    cfg: &Config,
    layout: Layout,
    results: &[ProgramResult],
) -> Option<f64> {
    let size = cfg.sizes.iter().copied().min()?;
    results
        .iter()
        .filter(|r| {
            r.layout == layout
                && r.workload == Workload::L2fwd
                && r.size == size
                && r.kind == Kind::Peer
        })
        .map(|r| r.mpps.median)
        .max_by(f64::total_cmp)
}

/// The p99 goal: skmem's p99 at most this many times the best peer's.
pub const P99_GOAL: f64 = 1.1;

/// How far below an awake share a CPU's measured busy share may fall
/// before a run counts as having slept (`/proc/stat` is read in jiffies,
/// and a spinner is preempted now and then).
const BUSY_TOLERANCE: f64 = 0.05;

/// skmem against the peers at one load of one layout.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyCell {
    /// Layout.
    pub layout: Layout,
    /// Offered load (fraction of the best peer's l2fwd rate).
    pub load: f64,
    /// The probe's target rate, Mpps.
    pub target_mpps: f64,
    /// skmem's p99 at its defaults, µs.
    pub skmem_p99_us: Option<f64>,
    /// The peer row with the lowest p99 (any setting).
    pub best_peer: Option<String>,
    /// Its p99, µs.
    pub best_peer_p99_us: Option<f64>,
    /// skmem's p99 over that peer's.
    pub p99_vs_best_peer: Option<f64>,
    /// What a program exactly as good as that peer would show as
    /// `p99_vs_best_peer` through this load's round-to-round noise
    /// ([`parity::twin_vs_best_peer`]): above 1.0 where peers tie.
    pub twin_p99_vs_best_peer: Option<TwinBand>,
    /// skmem-again's p99 (the same code, run again in the same rounds:
    /// the A/A control) over the best peer's — what the noise of this
    /// load made of `p99_vs_best_peer`, measured rather than drawn.
    pub again_p99_vs_best_peer: Option<f64>,
    /// skmem's p99 over skmem-again's, round by round (the A/A spread).
    pub skmem_vs_again_p99_rounds: Vec<f64>,
    /// skmem's machine CPU per forwarded frame, ns.
    pub skmem_machine_ns: Option<f64>,
    /// The peer at its default setting (spinning) with the lowest machine
    /// CPU per frame.
    pub best_default_peer: Option<String>,
    /// Its machine CPU per forwarded frame, ns.
    pub best_default_peer_machine_ns: Option<f64>,
    /// skmem's machine CPU per frame over that peer's.
    pub cpu_vs_best_default_peer: Option<f64>,
    /// skmem's forwarded rate, Mpps (equal load: it should match the
    /// peer's).
    pub skmem_forwarded_mpps: Option<f64>,
    /// That peer's forwarded rate, Mpps.
    pub best_default_peer_forwarded_mpps: Option<f64>,
    /// The least machine CPU per frame any AF_XDP program of the run
    /// reached at this load (any setting, skmem's included), over the
    /// same denominator as `cpu_vs_best_default_peer`: how low the ratio
    /// was shown to go here.
    pub cpu_bound: Option<f64>,
    /// The in-kernel forward's (`xdp-tx`, no AF_XDP program) p99, µs: the
    /// round trip of the probe, the veths and XDP alone.
    pub kernel_p99_us: Option<f64>,
    /// Its machine CPU per frame over the same denominator as
    /// `cpu_vs_best_default_peer`: what the probe and the kernel cost with
    /// no program at all — the floor under every program's ratio.
    pub kernel_cpu: Option<f64>,
    /// The least share of a CPU a program must spend awake to meet 99 %
    /// of the frames, waking on a timer as late as this machine's fire
    /// (`LatencyResult::timer_share_99`; waking for free,
    /// `awake_share_99`, when lateness was not measured), over the runs
    /// here whose p99 met the p99 goal (the in-kernel forward's included):
    /// the cheapest the probe's gaps allowed.
    pub awake_share: Option<f64>,
    /// Whether `awake_share` counts the timer's lateness.
    pub awake_timed: bool,
    /// How late a 20 µs timer fired (median), µs.
    pub timer_late_p50_us: Option<f64>,
    /// The least the other CPUs were busy (the probe, NAPI, softirqs)
    /// in any run here, program or in-kernel, per frame, ns.
    pub other_cpus_ns: Option<f64>,
    /// The floor under the CPU ratio of any program that meets the p99
    /// goal, over the same denominator as `cpu_vs_best_default_peer`:
    /// its own CPU busy for `awake_share` of the time plus the least the
    /// other CPUs were busy in any run (`other_cpus_ns`), and never below
    /// the in-kernel forward's machine CPU. Above 0.5, no program can
    /// meet both goals at this load on this machine.
    ///
    /// Only claimed where the runs bear it out: when no program met the
    /// p99 goal with its CPU less busy than the awake share demands
    /// (beside a threaded NAPI a sleeper's p99 is the best there is, and
    /// meets it).
    pub cpu_at_p99_bound: Option<f64>,
}

/// The latency cells of a run.
pub(super) fn latency_cells(results: &[LatencyResult]) -> Vec<LatencyCell> {
    let mut keys: Vec<(Layout, f64, f64)> = Vec::new();
    for r in results {
        if !keys.iter().any(|k| k.0 == r.layout && k.1 == r.load) {
            keys.push((r.layout, r.load, r.target_mpps));
        }
    }
    keys.into_iter()
        .map(|(layout, load, target_mpps)| {
            let here: Vec<&LatencyResult> = results
                .iter()
                .filter(|r| r.layout == layout && r.load == load)
                .collect();
            let skmem = here.iter().find(|r| r.kind == Kind::Skmem);
            let kernel = here.iter().find(|r| r.kind == Kind::Ceiling);
            let again = here.iter().find(|r| r.kind == Kind::Control);
            let best = here
                .iter()
                .filter(|r| r.kind == Kind::Peer && r.recorded > 0)
                .min_by(|a, b| a.p99_us.total_cmp(&b.p99_us));
            // A peer that recorded nothing cannot be the best.
            let twin = parity::cell_twin(
                here.iter()
                    .filter(|r| r.kind != Kind::Peer || r.recorded > 0)
                    .map(|r| (r.kind, &r.rounds_p99_us[..])),
                parity::Pick::Lowest,
            );
            let best_default = here
                .iter()
                .filter(|r| r.kind == Kind::Peer && r.wait == Wait::Spin)
                .filter(|r| r.machine_ns_per_packet.is_some())
                .min_by(|a, b| {
                    a.machine_ns_per_packet
                        .unwrap_or(f64::MAX)
                        .total_cmp(&b.machine_ns_per_packet.unwrap_or(f64::MAX))
                });
            // The runs that met the p99 goal, and the cheapest gaps among
            // them: the least share of a CPU a program must be awake for
            // 99 % of their frames.
            let met = |r: &&&LatencyResult| {
                best.is_some_and(|b| r.recorded > 0 && r.p99_us <= P99_GOAL * b.p99_us)
            };
            let awake = here
                .iter()
                .filter(met)
                .filter(|r| r.returned_mpps > 0.0)
                .filter_map(|r| Some((r.timer_share_99.or(r.awake_share_99)?, r.returned_mpps)))
                .min_by(|a, b| a.0.total_cmp(&b.0));
            // A program that met the goal with its CPU idle more than the
            // share allows shows that frames can find it asleep here and
            // still be in time: then there is no floor to claim.
            let refuted = awake.is_some_and(|(share, _)| {
                here.iter()
                    .filter(met)
                    .filter(|r| r.kind != Kind::Ceiling)
                    .any(|r| r.prog_cpu_busy.is_some_and(|b| b < share - BUSY_TOLERANCE))
            });
            // The other CPUs' work per frame, the least of any run.
            let other_cpus_ns = here
                .iter()
                .filter(|r| r.returned_mpps > 0.0)
                .filter_map(|r| {
                    let other = r.machine_busy_cores? - r.prog_cpu_busy?;
                    Some(other.max(0.0) * 1e3 / r.returned_mpps)
                })
                .min_by(f64::total_cmp);
            let kernel_ns = kernel.and_then(|k| k.machine_ns_per_packet);
            let cpu_at_p99_bound = match (awake, other_cpus_ns, kernel_ns) {
                (Some((share, mpps)), Some(other), Some(k)) if !refuted => ratio(
                    Some((share * 1e3 / mpps + other).max(k)),
                    best_default.and_then(|r| r.machine_ns_per_packet),
                ),
                _ => None,
            };
            LatencyCell {
                layout,
                load,
                target_mpps,
                skmem_p99_us: skmem.map(|r| r.p99_us),
                best_peer: best.map(|r| r.program.clone()),
                best_peer_p99_us: best.map(|r| r.p99_us),
                p99_vs_best_peer: ratio(skmem.map(|r| r.p99_us), best.map(|r| r.p99_us)),
                twin_p99_vs_best_peer: twin,
                again_p99_vs_best_peer: ratio(
                    again.filter(|r| r.recorded > 0).map(|r| r.p99_us),
                    best.map(|r| r.p99_us),
                ),
                skmem_vs_again_p99_rounds: match (skmem, again) {
                    (Some(a), Some(b)) if a.rounds_p99_us.len() == b.rounds_p99_us.len() => {
                        per_round_ratios(&a.rounds_p99_us, &b.rounds_p99_us)
                    }
                    _ => Vec::new(),
                },
                skmem_machine_ns: skmem.and_then(|r| r.machine_ns_per_packet),
                best_default_peer: best_default.map(|r| r.program.clone()),
                best_default_peer_machine_ns: best_default.and_then(|r| r.machine_ns_per_packet),
                cpu_vs_best_default_peer: ratio(
                    skmem.and_then(|r| r.machine_ns_per_packet),
                    best_default.and_then(|r| r.machine_ns_per_packet),
                ),
                skmem_forwarded_mpps: skmem.map(|r| r.forwarded_mpps),
                best_default_peer_forwarded_mpps: best_default.map(|r| r.forwarded_mpps),
                cpu_bound: ratio(
                    here.iter()
                        .filter(|r| r.kind != Kind::Ceiling)
                        .filter_map(|r| r.machine_ns_per_packet)
                        .min_by(f64::total_cmp),
                    best_default.and_then(|r| r.machine_ns_per_packet),
                ),
                kernel_p99_us: kernel.filter(|r| r.recorded > 0).map(|r| r.p99_us),
                kernel_cpu: ratio(
                    kernel.and_then(|r| r.machine_ns_per_packet),
                    best_default.and_then(|r| r.machine_ns_per_packet),
                ),
                awake_share: awake.map(|a| a.0),
                awake_timed: here.iter().any(|r| r.timer_share_99.is_some()),
                timer_late_p50_us: here.iter().find_map(|r| r.timer_late_p50_us),
                other_cpus_ns,
                cpu_at_p99_bound,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run at 10 % load in the default layout, 0.1 Mpps back, its
    /// program's CPU `busy`.
    fn run(
        imp: Implementation,
        wait: Wait,
        p99_us: f64,
        machine_ns: f64,
        busy: f64,
        awake: f64,
    ) -> LatencyResult {
        LatencyResult {
            layout: Layout::Default,
            load: 0.1,
            target_mpps: 0.1,
            program: latency_name(imp).to_owned(),
            implementation: imp,
            kind: imp.kind(),
            wait,
            sent_mpps: 0.1,
            forwarded_mpps: 0.1,
            lost_share: 0.0,
            p50_us: p99_us / 2.0,
            p99_us,
            p999_us: p99_us * 2.0,
            max_us: p99_us * 3.0,
            recorded: 100_000,
            machine_busy_cores: Some(machine_ns * 0.1e6 / 1e9),
            returned_mpps: 0.1,
            machine_ns_per_packet: Some(machine_ns),
            prog_ns_per_packet: None,
            prog_cpu_share: None,
            prog_cpu_busy: Some(busy),
            rounds_p99_us: vec![p99_us],
            gap_p50_us: 55.0,
            gap_p01_us: 20.0,
            awake_share_99: Some(awake / 2.0),
            timer_share_99: Some(awake),
            timer_late_p50_us: Some(25.0),
            timer_late_p99_us: Some(45.0),
        }
    }

    #[test]
    fn the_floor_under_cpu_at_p99_takes_the_cheapest_gaps_of_the_runs_that_met_p99() {
        let mut results = vec![
            run(
                Implementation::Skmem,
                Wait::Adaptive,
                100.0,
                7_000.0,
                0.3,
                0.50,
            ),
            run(Implementation::XskRs, Wait::Spin, 50.0, 12_000.0, 1.0, 0.60),
            // Cheap gaps, but a p99 above 1.1× the best: not counted.
            run(
                Implementation::XskRsPoll,
                Wait::Poll,
                110.0,
                6_000.0,
                0.2,
                0.20,
            ),
            run(
                Implementation::Ceiling,
                Wait::Spin,
                45.0,
                1_200.0,
                0.02,
                0.55,
            ),
        ];
        let cells = latency_cells(&results);
        let c = &cells[0];
        assert_eq!(c.best_peer.as_deref(), Some("xsk-rs"));
        assert_eq!(c.awake_share, Some(0.55));
        // The other CPU: at the least 0.10 busy CPUs (xdp-tx's 0.12 less
        // its 0.02 on the program's CPU) over 0.1 Mpps, 1000 ns a frame.
        assert!((c.other_cpus_ns.unwrap() - 1_000.0).abs() < 1e-6, "{c:?}");
        // 0.55 of a CPU over 0.1 Mpps (5500 ns) and the other CPU's
        // 1000 ns, over the spinning peer's 12000 ns.
        let b = c.cpu_at_p99_bound.unwrap();
        assert!((b - 6_500.0 / 12_000.0).abs() < 1e-9, "{b}");
        let goals = super::super::analysis::latency_goals(&cells);
        let both = goals
            .iter()
            .find(|g| g.ratio == "cpu_at_p99_vs_best_default_peer")
            .unwrap();
        // skmem's CPU (7000 / 12000) is not ≤ 0.5, nor its p99 ≤ 1.1×;
        // and the floor says no program could have had both.
        assert_eq!((both.met, both.reachable), (Some(false), Some(false)));
        // Without the in-kernel run there is no floor.
        assert_eq!(latency_cells(&results[..3])[0].cpu_at_p99_bound, None);
        // A program that met the p99 goal with its CPU mostly idle shows
        // that sleeping was in time here: no floor is claimed.
        results[0].p99_us = 52.0;
        let c = &latency_cells(&results)[0];
        assert_eq!(c.awake_share, Some(0.5));
        assert_eq!(c.cpu_at_p99_bound, None);
    }

    #[test]
    fn the_a_a_control_shows_what_noise_makes_of_the_p99_ratio() {
        let mut skmem = run(
            Implementation::Skmem,
            Wait::Adaptive,
            300.0,
            7_000.0,
            0.3,
            0.5,
        );
        skmem.rounds_p99_us = vec![300.0, 200.0];
        let mut again = run(
            Implementation::SkmemAgain,
            Wait::Adaptive,
            150.0,
            7_000.0,
            0.3,
            0.5,
        );
        again.rounds_p99_us = vec![150.0, 400.0];
        let peer = run(
            Implementation::XskRsPoll,
            Wait::Poll,
            100.0,
            6_000.0,
            0.2,
            0.2,
        );
        let c = &latency_cells(&[skmem, again, peer])[0];
        // The control is never the best peer, however low its p99.
        assert_eq!(c.best_peer.as_deref(), Some("xsk-rs-poll"));
        assert_eq!(c.p99_vs_best_peer, Some(3.0));
        assert_eq!(c.again_p99_vs_best_peer, Some(1.5));
        assert_eq!(c.skmem_vs_again_p99_rounds, vec![2.0, 0.5]);
    }
}
