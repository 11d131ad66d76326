//! What a run measures and how: the workloads, the programs compared, the
//! CPU layouts, the waiting modes, and the whole configuration.

use super::*;

/// What a program under test does with frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Receive and drop (count received frames).
    Rxdrop,
    /// Send [`ProgParams::frame`] as fast as possible (count TX
    /// completions); the generator does not run.
    Txonly,
    /// Swap MACs and send back out the same socket (count TX completions).
    L2fwd,
}

impl Workload {
    /// Every workload, in matrix order.
    pub const ALL: [Workload; 3] = [Workload::Rxdrop, Workload::Txonly, Workload::L2fwd];

    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Rxdrop => "rxdrop",
            Workload::Txonly => "txonly",
            Workload::L2fwd => "l2fwd",
        }
    }
}

/// Which program runs the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Implementation {
    /// skmem's `Channel` at its defaults: the adaptive wait
    /// ([`skmem::channel::Waiting::Adaptive`]) in every layout.
    #[serde(rename = "skmem")]
    #[value(name = "skmem")]
    Skmem,
    /// skmem's `Channel` at its defaults again, as a control: two runs of the same program
    /// in the same rounds show how far apart identical programs land on
    /// this machine (the A/A spread any ratio must be read against).
    #[serde(rename = "skmem-again")]
    #[value(name = "skmem-again")]
    SkmemAgain,
    /// skmem's `Channel` with receive coalescing
    /// ([`skmem::channel::Coalesce`]): the same loops, waiting in the
    /// `coalesce` mode whatever the layout — skmem as tuned, beside skmem
    /// waiting exactly as the peers do.
    #[serde(rename = "skmem-coalesce")]
    #[value(name = "skmem-coalesce")]
    SkmemCoalesce,
    /// skmem's `Channel` spinning, as the peers do by default: what the
    /// adaptive default is weighed against.
    #[serde(rename = "skmem-spin")]
    #[value(name = "skmem-spin")]
    SkmemSpin,
    /// skmem at its defaults with every eBPF probe of `skmemctl watch`
    /// attached (the lifecycle uprobes on this binary and the kernel
    /// tracepoints), its events read as `watch` reads them: rxdrop only,
    /// the probes' cost beside `skmem`.
    #[serde(rename = "skmem-probed")]
    #[value(name = "skmem-probed")]
    SkmemProbed,
    /// skmem's channel owned by this process, the packets lent to one
    /// worker process that maps its arena ([`skmem::workers`]): the worker
    /// drops (rxdrop) or swaps and hands back (l2fwd), both processes on
    /// the program CPU — the cost of the isolation, beside `skmem`.
    #[serde(rename = "skmem-w1")]
    #[value(name = "skmem-w1")]
    SkmemW1,
    /// The same with two worker processes (round-robin).
    #[serde(rename = "skmem-w2")]
    #[value(name = "skmem-w2")]
    SkmemW2,
    /// xsk-rs 0.11 (libxdp's xsk.c underneath), in process, spinning as
    /// its examples do.
    #[serde(rename = "xsk-rs")]
    #[value(name = "xsk-rs")]
    XskRs,
    /// xsk-rs waiting in `poll()`: its low-CPU setting.
    #[serde(rename = "xsk-rs-poll")]
    #[value(name = "xsk-rs-poll")]
    XskRsPoll,
    /// A small C program against Debian's libxdp (xdpsock-like), as a
    /// child process, spinning as xdpsock does by default.
    #[serde(rename = "libxdp-c")]
    #[value(name = "libxdp-c")]
    LibxdpC,
    /// The C peer waiting in `poll()` (xdpsock's `-p`): its low-CPU
    /// setting.
    #[serde(rename = "libxdp-c-poll")]
    #[value(name = "libxdp-c-poll")]
    LibxdpCPoll,
    /// DPDK 22.11 `dpdk-testpmd` with `net_af_xdp`, as a child process
    /// (loads its own XDP program on A).
    #[serde(rename = "testpmd")]
    #[value(name = "testpmd")]
    Testpmd,
    /// The receive bound, rxdrop only: an AF_XDP socket whose RX ring
    /// nobody reads, with frames to spare on its fill ring, so A's NAPI
    /// copies every packet into the UMEM and then finds no room (counted
    /// as `rx_ring_full`) — all of a receive's kernel work, with the CPU to
    /// itself: more than any AF_XDP program can receive on this veth.
    #[serde(rename = "xsk-sink")]
    #[value(name = "xsk-sink")]
    XskSink,
    /// The in-kernel ceiling of the workload: `xdp-drop` for rxdrop,
    /// `xdp-tx` for l2fwd (none for txonly); in the latency runs, `xdp-tx`
    /// is the floor of round trip and CPU under every program's.
    #[serde(rename = "ceiling")]
    #[value(name = "ceiling")]
    Ceiling,
}

impl Implementation {
    /// Every implementation, in the order a cell runs them (programs that
    /// share skmem's redirecting XDP program first, then the ceiling, then
    /// testpmd, which needs A without it: two swaps per cell).
    pub const ALL: [Implementation; 14] = [
        Implementation::Skmem,
        Implementation::XskRs,
        Implementation::SkmemAgain,
        Implementation::XskRsPoll,
        Implementation::SkmemCoalesce,
        Implementation::SkmemSpin,
        Implementation::SkmemProbed,
        Implementation::SkmemW1,
        Implementation::SkmemW2,
        Implementation::LibxdpC,
        Implementation::LibxdpCPoll,
        Implementation::XskSink,
        Implementation::Ceiling,
        Implementation::Testpmd,
    ];

    /// Name as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Skmem => "skmem",
            Implementation::SkmemAgain => "skmem-again",
            Implementation::SkmemCoalesce => "skmem-coalesce",
            Implementation::SkmemSpin => "skmem-spin",
            Implementation::SkmemProbed => "skmem-probed",
            Implementation::SkmemW1 => "skmem-w1",
            Implementation::SkmemW2 => "skmem-w2",
            Implementation::XskRs => "xsk-rs",
            Implementation::XskRsPoll => "xsk-rs-poll",
            Implementation::LibxdpC => "libxdp-c",
            Implementation::LibxdpCPoll => "libxdp-c-poll",
            Implementation::Testpmd => "testpmd",
            Implementation::XskSink => "xsk-sink",
            Implementation::Ceiling => "ceiling",
        }
    }

    /// What it is.
    pub fn kind(self) -> Kind {
        match self {
            Implementation::Skmem => Kind::Skmem,
            Implementation::SkmemAgain => Kind::Control,
            Implementation::SkmemCoalesce => Kind::Tuned,
            Implementation::SkmemSpin => Kind::Variant,
            Implementation::SkmemProbed => Kind::Probed,
            Implementation::SkmemW1 | Implementation::SkmemW2 => Kind::Workers,
            Implementation::XskRs
            | Implementation::XskRsPoll
            | Implementation::LibxdpC
            | Implementation::LibxdpCPoll
            | Implementation::Testpmd => Kind::Peer,
            Implementation::XskSink => Kind::Bound,
            Implementation::Ceiling => Kind::Ceiling,
        }
    }

    /// The program's name for workload `w` (`xdp-drop`, `xdp-tx` for the
    /// ceiling), or `None` when it has nothing to run for `w`.
    pub fn program(self, w: Workload) -> Option<&'static str> {
        match (self, w) {
            (Implementation::Ceiling, Workload::Rxdrop) => Some("xdp-drop"),
            (Implementation::Ceiling, Workload::L2fwd) => Some("xdp-tx"),
            (Implementation::Ceiling, Workload::Txonly) => None,
            // Coalescing moderates receive wake-ups: txonly receives
            // nothing, and a sender's wait is not what these rows compare.
            (
                Implementation::SkmemCoalesce
                | Implementation::SkmemSpin
                | Implementation::XskRsPoll
                | Implementation::LibxdpCPoll,
                Workload::Txonly,
            ) => None,
            // The probes' cost: one cell pair (rxdrop).
            (Implementation::SkmemProbed, Workload::Rxdrop) => Some("skmem-probed"),
            (Implementation::SkmemProbed, _) => None,
            // Workers process received packets.
            (Implementation::SkmemW1 | Implementation::SkmemW2, Workload::Txonly) => None,
            // A bound on receiving; l2fwd's is the fastest txonly.
            (Implementation::XskSink, Workload::Rxdrop) => Some("xsk-sink"),
            (Implementation::XskSink, _) => None,
            _ => Some(self.name()),
        }
    }

    /// What A needs attached while this runs `w`: skmem's program with
    /// this action, or nothing.
    pub(super) fn a_side(self, w: Workload) -> Option<XdpAction> {
        match (self, w) {
            (Implementation::Testpmd, _) => None,
            (Implementation::Ceiling, Workload::L2fwd) => Some(XdpAction::Tx),
            (Implementation::Ceiling, _) => Some(XdpAction::Drop),
            _ => Some(XdpAction::Redirect),
        }
    }
}

/// The implementation kind of a result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// skmem itself.
    Skmem,
    /// Another AF_XDP program (xsk-rs, libxdp C, testpmd).
    Peer,
    /// An XDP program doing the workload without leaving the kernel.
    Ceiling,
    /// The most any AF_XDP program can do here (`xsk-sink`).
    Bound,
    /// skmem run a second time (`skmem-again`): the A/A control.
    Control,
    /// skmem with a setting no peer has (`skmem-coalesce`): reported
    /// beside skmem's own ratios, never in place of them.
    Tuned,
    /// skmem with a fixed wait the peers also have (`skmem-spin`): what
    /// the adaptive default is weighed against.
    Variant,
    /// skmem with every eBPF probe of `skmemctl watch` attached
    /// (`skmem-probed`): the probes' cost, beside `skmem`.
    Probed,
    /// skmem's owner with worker processes (`skmem-w1`, `skmem-w2`):
    /// compared with single-process skmem.
    Workers,
}

/// Where the receive side's work runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// A's veth NAPI (XDP program, copy into the UMEM) runs on the
    /// generator's CPU, in the softirq of the sender; programs wait as
    /// [`Config::wait`] says.
    Default,
    /// Threaded NAPI on A, its kthread pinned to the program's CPU: the
    /// whole receive side runs there, so programs wait with `poll()` (a
    /// spinning program would starve the NAPI thread).
    Threaded,
}

impl Layout {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Default => "default",
            Layout::Threaded => "threaded",
        }
    }

    /// The wait mode programs use in this layout.
    pub fn wait(self, cfg: &Config) -> Wait {
        match self {
            Layout::Default => cfg.wait,
            Layout::Threaded => Wait::Poll,
        }
    }

    /// The layout in words.
    pub fn describe(self, cfg: &Config) -> String {
        let (g, p) = (cfg.gen_cpu, cfg.prog_cpu);
        match self {
            Layout::Default => format!(
                "default: {k} generator on cpu{g}, and A's veth NAPI (XDP program + copy into the \
                 UMEM) runs there too, in the generator's softirq; program under test on cpu{p}, \
                 wait {w}",
                k = cfg.generator.name(),
                w = self.wait(cfg).name()
            ),
            Layout::Threaded => format!(
                "threaded: {k} generator alone on cpu{g}; A's NAPI threaded, its kthread pinned \
                 to cpu{p} with the program under test, which waits with poll() (spinning would \
                 starve the NAPI thread)",
                k = cfg.generator.name()
            ),
        }
    }
}

/// How a program under test waits when nothing arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// Busy loop on the rings.
    Spin,
    /// `poll()` on the socket when nothing arrived.
    Poll,
    /// Busy polling: the socket has `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`
    /// (20 µs) and `SO_BUSY_POLL_BUDGET` (the batch), and the
    /// program makes a non-blocking `recvfrom` when nothing arrived — the
    /// kernel then runs A's NAPI in the program's thread (xdpsock's
    /// `--busy-poll`).
    BusyPoll,
    /// `poll()` with skmem's receive coalescing: sleep until a batch should
    /// have arrived (at most [`COALESCE_MAX_US`]), poll when traffic is too
    /// slow for that. Only `skmem-coalesce` waits this way, whatever the
    /// layout; no peer library has it.
    #[value(skip)]
    Coalesce,
    /// skmem's adaptive default ([`skmem::channel::Waiting::Adaptive`]):
    /// spin while frames keep coming, `poll()` once they stop, coalesce on
    /// a CPU shared with the NAPI kthread. Only skmem waits this way.
    #[value(skip)]
    Adaptive,
}

impl Wait {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::Poll => "poll",
            Wait::BusyPoll => "busy-poll",
            Wait::Coalesce => "coalesce",
            Wait::Adaptive => "adaptive",
        }
    }
}

/// `SO_BUSY_POLL` of the `busy-poll` wait mode, µs.
pub const BUSY_POLL_US: u32 = 20;

/// The longest sleep of the `coalesce` wait mode, µs
/// ([`skmem::channel::Coalesce::max_wait_us`]).
pub const COALESCE_MAX_US: u32 = 1000;

/// Settings of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Warm-up before the first repetition, seconds.
    pub warmup_s: f64,
    /// Length of one repetition, seconds.
    pub duration_s: f64,
    /// Repetitions per round.
    pub reps: u32,
    /// Rounds: each runs every program of a cell once (warm-up, then
    /// `reps` repetitions), in alternating order. skmem's ratios are the
    /// median of its per-round ratios — pairs measured seconds apart — so
    /// drift on a shared machine over a run cancels.
    pub rounds: u32,
    /// Descriptors per ring operation (generator and programs).
    pub batch: usize,
    /// Wait mode of the programs in the `default` layout (`threaded`
    /// always polls).
    pub wait: Wait,
    /// CPU layouts, each on a fresh pair.
    pub layouts: Vec<Layout>,
    /// Workloads to run.
    pub workloads: Vec<Workload>,
    /// Programs to run (peers that cannot run here are left out, see
    /// [`Report::skipped`]).
    pub implementations: Vec<Implementation>,
    /// Frame sizes on the wire (bytes, without FCS).
    pub sizes: Vec<usize>,
    /// The generator on side B.
    pub generator: gen::GenKind,
    /// CPU of the generator thread.
    pub gen_cpu: usize,
    /// CPU of the program under test.
    pub prog_cpu: usize,
    /// UMEM frames of every socket.
    pub frames: u32,
    /// UMEM frame (buffer) size, bytes.
    pub frame_size: u32,
    /// Entries of each of the four rings.
    pub ring_entries: u32,
    /// `XDP_MAX_TX_SKB_BUDGET` of the programs' sockets (skmem and
    /// xsk-rs); `None` leaves the kernel's default (32).
    pub tx_budget: Option<u32>,
    /// Leave autogroup scheduling as the machine has it, rather than
    /// turning it off for the run (see [`sched`]).
    pub keep_autogroup: bool,
    /// Run every program's thread (and the processes it starts) at
    /// `SCHED_FIFO` with this priority instead of `SCHED_OTHER`. On a CPU
    /// it shares with A's NAPI kthread (the threaded layout) the program
    /// then runs whenever it has work, and NAPI in its waits, instead of
    /// the two splitting the CPU: NAPI no longer spends CPU on frames the
    /// program has no fill frames for. Programs must sleep (`poll`):
    /// testpmd, which spins, is left out.
    pub prog_fifo: Option<u8>,
    /// The executable the skmem-w1/w2 programs start as worker processes
    /// (it must handle [`skmem_prog::WORKER_ARG`]): `pps` itself when
    /// `None`; a test that runs the harness in process gives `pps`'s path.
    #[serde(skip)]
    pub worker_exe: Option<std::path::PathBuf>,
    /// Round-trip latency ([`latency`]): offered loads as fractions of the
    /// best peer's l2fwd rate in the layout (smallest frame size), run
    /// after the layout's cells; empty: none.
    pub latency_loads: Vec<f64>,
    /// Rounds of the latency runs (each runs every program once per load).
    pub latency_rounds: u32,
    /// Measured seconds of one latency run (after `warmup_s`).
    pub latency_duration_s: f64,
}

impl Default for Config {
    /// skmem and xsk-rs, rxdrop and l2fwd, 64 B, the `default` layout, the
    /// AF_XDP generator, spin; warm-up 2 s, 3 × 5 s.
    fn default() -> Self {
        Self {
            warmup_s: 2.0,
            duration_s: 5.0,
            reps: 3,
            rounds: 1,
            batch: 64,
            wait: Wait::Spin,
            layouts: vec![Layout::Default],
            workloads: vec![Workload::Rxdrop, Workload::L2fwd],
            implementations: vec![Implementation::Skmem, Implementation::XskRs],
            sizes: vec![64],
            generator: gen::GenKind::Afxdp,
            gen_cpu: 0,
            prog_cpu: 1,
            frames: 4096,
            frame_size: 2048,
            ring_entries: 1024,
            tx_budget: Some(1024),
            keep_autogroup: false,
            prog_fifo: None,
            worker_exe: None,
            latency_loads: Vec::new(),
            latency_rounds: 1,
            latency_duration_s: 2.0,
        }
    }
}

impl Config {
    /// Quick mode: every layout, workload and program kind, 64 B frames,
    /// the live-frames generator; warm-up 0.3 s, one repetition of 0.7 s
    /// (the whole run takes well under 2 minutes).
    pub fn quick() -> Self {
        Self {
            warmup_s: 0.3,
            duration_s: 0.7,
            reps: 1,
            rounds: 1,
            latency_loads: vec![0.5],
            latency_rounds: 1,
            latency_duration_s: 0.5,
            ..Self::matrix()
        }
        .with_sizes(vec![64])
    }

    /// The matrix: layouts {default, threaded} × workloads {rxdrop, txonly,
    /// l2fwd} × sizes {64, 1500} × every program, with the live-frames
    /// generator; 5 rounds of warm-up 0.5 s and 1 × 1.2 s (400 program
    /// runs, about 14 minutes here).
    pub fn matrix() -> Self {
        Self {
            warmup_s: 0.5,
            duration_s: 1.2,
            reps: 1,
            rounds: 5,
            layouts: vec![Layout::Default, Layout::Threaded],
            workloads: Workload::ALL.to_vec(),
            implementations: Implementation::ALL.to_vec(),
            sizes: vec![64, 1500],
            generator: gen::GenKind::Xdp,
            latency_loads: vec![0.1, 0.5, 0.9],
            // A p99 from three rounds on this host is one stall away
            // from another: five make its median, and the twin's band,
            // hold still.
            latency_rounds: 5,
            latency_duration_s: 2.0,
            ..Self::default()
        }
    }

    pub(super) fn with_sizes(mut self, sizes: Vec<usize>) -> Self {
        self.sizes = sizes;
        self
    }

    pub(super) fn validate(&self) -> Result<()> {
        if !(self.warmup_s >= 0.0 && self.warmup_s <= 600.0) {
            bail!("--warmup must be 0..=600 s");
        }
        if !(self.duration_s > 0.0 && self.duration_s <= 600.0) {
            bail!("--duration must be in (0, 600] s");
        }
        if self.reps == 0 || self.reps > 100 {
            bail!("--reps must be 1..=100");
        }
        if self.rounds == 0 || self.rounds > 100 {
            bail!("--rounds must be 1..=100");
        }
        if self.batch == 0 || self.batch > self.ring_entries as usize {
            bail!("--batch must be 1..={}", self.ring_entries);
        }
        if self.workloads.is_empty() || self.implementations.is_empty() {
            bail!("nothing to run: no workload or no program");
        }
        if self.layouts.is_empty() || self.sizes.is_empty() {
            bail!("nothing to run: no layout or no frame size");
        }
        let max = (self.frame_size - XDP_PACKET_HEADROOM) as usize;
        if let Some(s) = self.sizes.iter().find(|&&s| !(60..=max).contains(&s)) {
            bail!("frame size {s} B: must be 60..={max} (a UMEM frame less the XDP headroom)");
        }
        if !self.ring_entries.is_power_of_two() || self.frames < self.ring_entries {
            bail!(
                "--ring-entries must be a power of two and at most --frames ({} and {})",
                self.ring_entries,
                self.frames
            );
        }
        if self.latency_loads.iter().any(|l| !(*l > 0.0 && *l <= 2.0)) {
            bail!("--latency-loads: fractions of the best peer's l2fwd rate, in (0, 2]");
        }
        if self.latency_rounds == 0 || self.latency_rounds > 100 {
            bail!("--latency-rounds must be 1..=100");
        }
        if !(self.latency_duration_s > 0.0 && self.latency_duration_s <= 600.0) {
            bail!("--latency-duration must be in (0, 600] s");
        }
        if self.gen_cpu == self.prog_cpu {
            bail!("the generator and the program under test need different CPUs");
        }
        if let Some(p) = self.prog_fifo {
            if !(1..=99).contains(&p) {
                bail!("--prog-fifo: a SCHED_FIFO priority is 1..=99");
            }
            if self.layouts.contains(&Layout::Default)
                && matches!(self.wait, Wait::Spin | Wait::BusyPoll)
            {
                bail!(
                    "--prog-fifo needs programs that sleep: with --wait {} a program at \
                     SCHED_FIFO would keep everything else off its CPU (use --wait poll, or \
                     --layouts threaded)",
                    self.wait.name()
                );
            }
        }
        Ok(())
    }

    /// Why these settings leave `imp` out, if they do.
    pub(super) fn skip_reason(&self, imp: Implementation) -> Option<String> {
        match imp {
            Implementation::XskSink
                if self.frames < xsk_prog::sink_fill_entries(self.ring_entries) =>
            {
                Some(format!(
                    "its fill ring holds twice the RX ring's frames: needs --frames >= {}",
                    xsk_prog::sink_fill_entries(self.ring_entries)
                ))
            }
            // Its PMD polls without sleeping: at SCHED_FIFO it would keep
            // everything else off its CPU.
            Implementation::Testpmd if self.prog_fifo.is_some() => {
                Some("it spins, which at SCHED_FIFO would starve its CPU".to_owned())
            }
            _ => None,
        }
    }

    /// The implementations to run, in cell order ([`Implementation::ALL`]).
    pub(super) fn ordered_implementations(&self) -> Vec<Implementation> {
        Implementation::ALL
            .into_iter()
            .filter(|i| self.implementations.contains(i))
            .collect()
    }
}
