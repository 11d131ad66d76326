//! What a run found: each program's counters and rates, the cells of the
//! matrix, the goals, and the report.

use super::*;

/// A program's own totals over its whole run (warm-up included).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProgCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames queued for TX (txonly, l2fwd).
    pub tx_queued: u64,
    /// TX completions (txonly, l2fwd).
    pub tx_completed: u64,
    /// Frames given back unsent because the TX ring was full (skmem).
    pub tx_unsent: u64,
    /// `XDP_STATISTICS` rx_dropped.
    pub xsk_rx_dropped: u64,
    /// `XDP_STATISTICS` rx_ring_full.
    pub xsk_rx_ring_full: u64,
    /// `XDP_STATISTICS` rx_fill_ring_empty_descs.
    pub xsk_fill_ring_empty: u64,
}

/// What a program under test hands back.
#[derive(Debug, Clone, Default)]
pub struct ProgRun {
    /// Its counter at each boundary (received or completed frames).
    pub samples: Vec<Sample<u64>>,
    /// Its totals.
    pub counters: ProgCounters,
}

/// What a program under test is given.
#[derive(Debug, Clone)]
pub struct ProgParams {
    /// Interface (A's end, in A's namespace).
    pub ifname: String,
    /// Workload.
    pub workload: Workload,
    /// Wait mode.
    pub wait: Wait,
    /// Batch.
    pub batch: usize,
    /// UMEM frames.
    pub frames: u32,
    /// UMEM frame size.
    pub frame_size: u32,
    /// Ring entries.
    pub ring_entries: u32,
    /// TX budget.
    pub tx_budget: Option<u32>,
    /// Arena name for skmem (unique in the process); peers may use it as a
    /// unique tag too.
    pub arena_name: String,
    /// Warm-up.
    pub warmup: Duration,
    /// Repetition length.
    pub duration: Duration,
    /// Repetitions.
    pub reps: u32,
    /// Frame size on the wire (bytes, without FCS).
    pub pkt_size: usize,
    /// A ready frame of `pkt_size` bytes from A to B (UDP to the filter's
    /// port, payload pattern of packet 0): what a txonly program sends.
    pub frame: Vec<u8>,
    /// See [`Config::worker_exe`].
    pub worker_exe: Option<std::path::PathBuf>,
}

/// Median (min–max) of a rate, in Mpps.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stat {
    /// Median.
    pub median: f64,
    /// Minimum.
    pub min: f64,
    /// Maximum.
    pub max: f64,
}

impl Stat {
    /// Of rates in packets per second.
    pub(super) fn of_pps(v: &[f64]) -> Self {
        let s = Self::of_mpps(v);
        Self {
            median: s.median / 1e6,
            min: s.min / 1e6,
            max: s.max / 1e6,
        }
    }

    /// Of rates already in Mpps (the per-repetition lists).
    pub(super) fn of_mpps(v: &[f64]) -> Self {
        let (median, min, max) = median_min_max(v);
        Self { median, min, max }
    }
}

/// Where the XDP columns of a result come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum XdpSource {
    /// skmem's XDP program's own per-CPU counters (on A for every program
    /// but testpmd).
    SkmemXdp,
    /// The veth's `ethtool -S` counters on A (`rx_queue_0_xdp_packets`,
    /// `rx_queue_0_xdp_redirect`): testpmd runs its own XDP program.
    Ethtool,
}

/// The result of one program in one cell.
///
/// JSON field names are stable: `layout`, `wait`, `generator`, `workload`,
/// `size`, `program`, `implementation`, `kind`, the rates (`mpps`,
/// `offered_mpps`, `xdp_seen_mpps`, `xdp_redirected_mpps`,
/// `reached_b_mpps`: each `{median, min, max}` in Mpps, or `null` where it
/// does not apply), the per-repetition lists, `share_of_redirected`,
/// `napi_threads`, the [`ProgCounters`] fields (flattened) and `wall_s`.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramResult {
    /// CPU layout (`default`, `threaded`).
    pub layout: Layout,
    /// How the program waited (`spin`, `poll`; testpmd always spins).
    pub wait: Wait,
    /// The generator on B (`xdp`, `afxdp`), `null` for txonly (none runs).
    pub generator: Option<gen::GenKind>,
    /// Workload (`rxdrop`, `txonly`, `l2fwd`).
    pub workload: Workload,
    /// Frame size on the wire, bytes (no FCS).
    pub size: usize,
    /// Program: `skmem`, `xsk-rs`, `libxdp-c`, `testpmd`, `xdp-drop`,
    /// `xdp-tx`.
    pub program: String,
    /// Implementation (`ceiling` for `xdp-drop`/`xdp-tx`).
    pub implementation: Implementation,
    /// `skmem`, `peer` or `ceiling`.
    pub kind: Kind,
    /// The program's rate per repetition, Mpps.
    pub reps_mpps: Vec<f64>,
    /// The program's own rate, Mpps: received (rxdrop), TX-completed
    /// (txonly, l2fwd), dropped / sent back by the ceiling's XDP program.
    pub mpps: Stat,
    /// The generator's rate in the same windows (what it handed to B's
    /// veth), Mpps; `null` for txonly.
    pub offered_mpps: Option<Stat>,
    /// Where the XDP columns come from.
    pub xdp_source: XdpSource,
    /// Frames XDP on A ran on, Mpps.
    pub xdp_seen_mpps: Option<Stat>,
    /// Frames XDP on A redirected to an AF_XDP socket, Mpps (0 for the
    /// ceilings).
    pub xdp_redirected_mpps: Option<Stat>,
    /// Frames that reached B's XDP sink (txonly's and l2fwd's output), Mpps.
    pub reached_b_mpps: Stat,
    /// The generator's rate per repetition, Mpps (empty for txonly).
    pub reps_offered_mpps: Vec<f64>,
    /// XDP redirected per repetition, Mpps.
    pub reps_redirected_mpps: Vec<f64>,
    /// XDP seen per repetition, Mpps.
    pub reps_seen_mpps: Vec<f64>,
    /// Reached B per repetition, Mpps.
    pub reps_reached_b_mpps: Vec<f64>,
    /// The program's median per round, Mpps (one entry per round, in
    /// order): what skmem's paired ratios are computed from.
    pub rounds_mpps: Vec<f64>,
    /// rxdrop and l2fwd through a socket: the program's count over the
    /// measured windows as a share of what XDP redirected to its socket in
    /// the same windows (1.0: nothing lost); `null` otherwise.
    pub share_of_redirected: Option<f64>,
    /// `threaded`: A's NAPI kthreads, pinned during the warm-up.
    pub napi_threads: Vec<NapiThread>,
    /// `threaded`: the CPU time A's NAPI kthreads got over the measured
    /// windows, as a share of the windows' length (1.0: a whole CPU).
    pub napi_cpu_share: Option<f64>,
    /// The program CPU's non-idle share over the measured windows (all
    /// work on it, other processes' included; `/proc/stat`).
    pub prog_cpu_busy: Option<f64>,
    /// The CPU time the program's thread (and its child processes: the C
    /// peer, testpmd) got over the measured windows, as a share of their
    /// length; `null` for the ceilings.
    pub prog_cpu_share: Option<f64>,
    /// That CPU time per frame the program counted, ns: its cost per
    /// packet, which other load on the machine does not inflate the way it
    /// does the rates (softirq work done in its context, such as copy-mode
    /// TX into the veth, included).
    pub prog_ns_per_packet: Option<f64>,
    /// `threaded`: the NAPI kthreads' CPU time per frame counted, ns (XDP,
    /// the copy into the UMEM).
    pub napi_ns_per_packet: Option<f64>,
    /// The whole machine's busy time over the measured windows, in CPUs
    /// (every CPU's non-idle share from `/proc/stat`, summed: the program,
    /// NAPI and softirqs, the generator, everything else).
    pub machine_busy_cores: Option<f64>,
    /// That busy time per frame the program counted, ns: what a packet
    /// costs the machine, all of it.
    pub machine_ns_per_packet: Option<f64>,
    /// The program's rate per busy CPU of the machine, Mpps.
    pub mpps_per_busy_core: Option<f64>,
    /// The program's totals over its whole run (warm-up included).
    #[serde(flatten)]
    pub counters: ProgCounters,
    /// Seconds from the start of the run to the end of this program's
    /// run, set-up included.
    pub wall_s: f64,
}

/// One cell of the matrix (layout × workload × size) and skmem's ratios.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Layout.
    pub layout: Layout,
    /// Workload.
    pub workload: Workload,
    /// Frame size, bytes.
    pub size: usize,
    /// skmem's median, Mpps.
    pub skmem_mpps: Option<f64>,
    /// The peer with the highest median.
    pub best_peer: Option<String>,
    /// Its median, Mpps.
    pub best_peer_mpps: Option<f64>,
    /// skmem ÷ best peer (the median of the per-round ratios; with one
    /// round, the ratio of the medians). Likewise the other ratios.
    pub skmem_vs_best_peer: Option<f64>,
    /// The per-round ratios behind it, in round order (empty with one
    /// round). Likewise `skmem_vs_ceiling_rounds`, `skmem_vs_xsk_rs_rounds`.
    pub skmem_vs_best_peer_rounds: Vec<f64>,
    /// The ceiling's program (`xdp-drop`, `xdp-tx`).
    pub ceiling: Option<String>,
    /// Its median, Mpps.
    pub ceiling_mpps: Option<f64>,
    /// skmem ÷ ceiling.
    pub skmem_vs_ceiling: Option<f64>,
    /// Per round.
    pub skmem_vs_ceiling_rounds: Vec<f64>,
    /// skmem ÷ xsk-rs.
    pub skmem_vs_xsk_rs: Option<f64>,
    /// Per round.
    pub skmem_vs_xsk_rs_rounds: Vec<f64>,
    /// skmem ÷ skmem run again (the A/A control): 1.0 but for noise, so
    /// its per-round range is the spread to read the other ratios against.
    pub skmem_vs_skmem_again: Option<f64>,
    /// Per round.
    pub skmem_vs_skmem_again_rounds: Vec<f64>,
    /// skmem with receive coalescing (`skmem-coalesce`), median Mpps.
    pub coalesce_mpps: Option<f64>,
    /// skmem-w1 ÷ skmem (paired by round): the owner and one worker
    /// process against the single-process program.
    pub workers1_vs_skmem: Option<f64>,
    /// Its per-round values.
    pub workers1_vs_skmem_rounds: Vec<f64>,
    /// skmem-w2 ÷ skmem (paired by round).
    pub workers2_vs_skmem: Option<f64>,
    /// Its per-round values.
    pub workers2_vs_skmem_rounds: Vec<f64>,
    /// skmem-coalesce ÷ best peer.
    pub coalesce_vs_best_peer: Option<f64>,
    /// Per round.
    pub coalesce_vs_best_peer_rounds: Vec<f64>,
    /// skmem-coalesce ÷ ceiling.
    pub coalesce_vs_ceiling: Option<f64>,
    /// Per round.
    pub coalesce_vs_ceiling_rounds: Vec<f64>,
    /// The receive bound (`xsk-sink`, rxdrop), median Mpps: more than any
    /// AF_XDP program can receive here.
    pub bound_mpps: Option<f64>,
    /// The receive bound ÷ ceiling: the most any AF_XDP program's ratio
    /// to the ceiling can be.
    pub bound_vs_ceiling: Option<f64>,
    /// Per round.
    pub bound_vs_ceiling_rounds: Vec<f64>,
    /// For l2fwd: the fastest txonly round of any AF_XDP program in the
    /// same layout and size, Mpps. Forwarding sends every frame it
    /// receives, through the same copy-mode TX path, on the same CPU, so
    /// no program forwards faster than the fastest program only sends.
    pub fastest_txonly_mpps: Option<f64>,
    /// skmem over the most any AF_XDP program reached in this cell: the
    /// receive bound (`xsk-sink`, paired by round) for rxdrop, the fastest
    /// txonly round for l2fwd (medians).
    pub skmem_vs_bound: Option<f64>,
    /// Per-round values of `skmem_vs_bound` (rxdrop).
    pub skmem_vs_bound_rounds: Vec<f64>,
    /// skmem with every probe of `skmemctl watch` attached over skmem
    /// without (`skmem-probed` ÷ `skmem`).
    pub probed_vs_skmem: Option<f64>,
    /// Per-round values of `probed_vs_skmem`.
    pub probed_vs_skmem_rounds: Vec<f64>,
    /// skmem at its defaults over skmem spinning (`skmem` ÷ `skmem-spin`).
    pub skmem_vs_spin: Option<f64>,
    /// Per-round values of `skmem_vs_spin`.
    pub skmem_vs_spin_rounds: Vec<f64>,
    /// The most skmem ÷ best peer can be here. For rxdrop: the receive
    /// bound ÷ best peer (median of the per-round ratios). For l2fwd:
    /// [`fastest_txonly_mpps`](Self::fastest_txonly_mpps) ÷ the best peer's
    /// fastest l2fwd round — best rounds, because the two come from
    /// different cells, run minutes apart on a host that changes speed
    /// between them: each cell's fastest round is its measure in the
    /// host's fast mode.
    pub bound_vs_best_peer: Option<f64>,
    /// What a program exactly as fast as the best peer would show as
    /// `skmem_vs_best_peer` here, through this cell's noise
    /// ([`parity::twin_vs_best_peer`]): its 5th, 50th and 95th
    /// percentiles, a little below 1.0 where peers tie.
    pub twin_vs_best_peer: Option<TwinBand>,
}

/// A project goal checked against a cell.
#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    /// Layout.
    pub layout: Layout,
    /// Workload.
    pub workload: Workload,
    /// Frame size, bytes.
    pub size: usize,
    /// The ratio checked: `skmem_vs_best_peer`, `skmem_vs_bound`,
    /// `probed_vs_skmem`, `workers1_vs_skmem`; at a latency load,
    /// `p99_vs_best_peer` and `cpu_vs_best_default_peer`.
    pub ratio: String,
    /// The latency runs' offered load the goal is checked at (fraction of
    /// the best peer's l2fwd rate), if it is one of theirs.
    pub load: Option<f64>,
    /// The goal: the ratio must be at least this (at most, with
    /// `at_most`).
    pub target: f64,
    /// The ratio must be at most the target (latency, CPU).
    pub at_most: bool,
    /// The ratio measured (`null`: a side is missing).
    pub value: Option<f64>,
    /// Whether it was met (`null`: not measurable).
    pub met: Option<bool>,
    /// The most the ratio can be on this machine, from the same run: the
    /// receive bound (`xsk-sink`) or, for l2fwd, the fastest txonly, over
    /// the ratio's denominator (`null`: the run lacks the bound).
    pub bound: Option<f64>,
    /// Whether the goal is within that bound (`false`: no AF_XDP program
    /// can meet it here).
    pub reachable: Option<bool>,
    /// For `skmem_vs_best_peer` and `p99_vs_best_peer`: the band a
    /// program exactly as good as the best peer would show (the cell's
    /// [`twin_vs_best_peer`](Cell::twin_vs_best_peer), the latency cell's
    /// `twin_p99_vs_best_peer`); a value inside it is parity as far as the
    /// run can tell.
    pub twin: Option<TwinBand>,
}

/// A program left out of the run.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    /// The implementation.
    pub implementation: Implementation,
    /// Why.
    pub reason: String,
}

/// One layout's set-up.
#[derive(Debug, Clone, Serialize)]
pub struct LayoutInfo {
    /// The layout.
    pub layout: Layout,
    /// In words.
    pub description: String,
    /// Wait mode of the programs (testpmd always spins).
    pub wait: Wait,
    /// Veth names (A, B).
    pub ifnames: [String; 2],
    /// MTU of both ends.
    pub mtu: u32,
    /// XDP attach mode on A and B.
    pub xdp_mode: String,
    /// Seconds this layout took, set-up included.
    pub elapsed_s: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Settings.
    pub config: Config,
    /// The layouts run, in order.
    pub layouts: Vec<LayoutInfo>,
    /// One entry per program per cell, in the order run.
    pub results: Vec<ProgramResult>,
    /// skmem's ratios per cell.
    pub cells: Vec<Cell>,
    /// Round-trip latency and CPU at equal load, per layout, load and
    /// program.
    pub latency: Vec<latency::LatencyResult>,
    /// skmem against the peers at each load.
    pub latency_cells: Vec<latency::LatencyCell>,
    /// The project's goals, per cell they apply to.
    pub goals: Vec<Goal>,
    /// Programs left out (a peer that cannot run here).
    pub skipped: Vec<Skipped>,
    /// Seconds the whole run took.
    pub elapsed_s: f64,
    /// `/proc/loadavg` before and after the run: other work on the same
    /// CPUs (a compiler, say) skews every figure.
    pub loadavg: [String; 2],
    /// What the run did about autogroup scheduling (see [`sched`]).
    pub autogroup: sched::Autogroup,
}
