//! Packets per second: skmem's AF_XDP channel against other AF_XDP programs
//! and the in-kernel ceilings, on a veth pair between two network
//! namespaces (root only).
//!
//! One [`run`] goes through the configured CPU [`Layout`]s, each on a fresh
//! namespace pair (one RX and one TX queue per side, an MTU that lets the
//! largest frame size through). On B it attaches skmem's XDP program as a
//! counting sink ([`XdpAction::Drop`]: what reached B — txonly's and
//! l2fwd's output — is counted and dropped there). On A it attaches
//! whatever the program under test needs: skmem's XDP program redirecting
//! to the XSKMAP (skmem, xsk-rs, the libxdp C peer), the same program with
//! another action for the in-kernel ceilings (`xdp-drop`, `xdp-tx`), or
//! nothing (DPDK testpmd loads its own) — attached afresh for every program
//! run, so each starts from a new NAPI instance and page pool on A. Then for
//! each workload and frame size it runs [`Config::rounds`] rounds; a round
//! runs every program once (forward order, then reversed in the next
//! round): it starts the generator on B (not for txonly), pinned to the
//! generator CPU, and runs the program on A, pinned to the program CPU.
//! skmem's ratios are medians of per-round ratios, and `skmem-again` (skmem
//! run twice) is the A/A control that shows the machine's noise.
//!
//! Each program measures itself: after a warm-up it samples its own counter
//! at the end of each repetition (received frames for rxdrop, TX
//! completions for txonly and l2fwd; the ceilings' own XDP counters). The
//! harness samples the generator, A's XDP counters (skmem's program, or
//! `ethtool -S` while testpmd's program is attached) and B's sink at the
//! same boundaries.
//!
//! Layouts: in `default` the receiving veth's NAPI work (the XDP program
//! and the copy into the UMEM) runs on the **generator's** CPU, so rxdrop
//! mostly measures that CPU; in `threaded` A's NAPI runs in a kthread
//! pinned to the program's CPU, so the whole receive side competes with the
//! program, which waits with `poll()` there.

pub mod cpeer;
pub mod gen;
pub mod meter;
pub mod napi;
pub mod peers;
pub mod sched;
pub mod skmem_prog;
pub mod sys;
pub mod testpmd;
mod xsk_prog;

use std::fmt::Write as _;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use skmem_netns::{NetnsPair, PairConfig, Side, DEFAULT_UDP_PORT};
use skmem_xdp::{AttachMode, XdpAction, XdpFilter, XdpProgram};

use meter::{median_min_max, rates, Meter, Sample, Schedule};
use napi::NapiThread;

/// Retries `f` for up to 3 s: a queue stays busy (EBUSY) for a moment
/// after the previous socket on it closed (the kernel releases its buffer
/// pool from a work queue).
pub(crate) fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match f() {
            Ok(t) => return Ok(t),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Set (by a signal handler, say) to end a [`run`] early: the programs
/// and the generator stop, the namespaces are removed, and `run` returns
/// an error.
pub static INTERRUPT: AtomicBool = AtomicBool::new(false);

fn check_interrupt() -> Result<()> {
    if INTERRUPT.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps until `until` in short steps, failing early on [`INTERRUPT`].
fn sleep_until(until: Instant) -> Result<()> {
    loop {
        check_interrupt()?;
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// `poll()` timeout of the `poll` wait mode, in ms (short, so a program
/// samples its counter close to each boundary even when idle).
pub const POLL_TIMEOUT_MS: i32 = 10;

/// Ethernet header bytes: a frame of `size` bytes on the wire (no FCS)
/// carries an IP packet of `size - 14` bytes, which the MTU must allow.
const ETH_HLEN: usize = 14;

/// Bytes the kernel keeps in front of a frame in copy-mode AF_XDP
/// (`XDP_PACKET_HEADROOM`): a frame must fit in a UMEM frame less this.
const XDP_PACKET_HEADROOM: u32 = 256;

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
    /// skmem's `Channel`.
    #[serde(rename = "skmem")]
    #[value(name = "skmem")]
    Skmem,
    /// skmem's `Channel` again, as a control: two runs of the same program
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
    /// xsk-rs 0.11 (libxdp's xsk.c underneath), in process.
    #[serde(rename = "xsk-rs")]
    #[value(name = "xsk-rs")]
    XskRs,
    /// A small C program against Debian's libxdp (xdpsock-like), as a
    /// child process.
    #[serde(rename = "libxdp-c")]
    #[value(name = "libxdp-c")]
    LibxdpC,
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
    /// `xdp-tx` for l2fwd (none for txonly).
    #[serde(rename = "ceiling")]
    #[value(name = "ceiling")]
    Ceiling,
}

impl Implementation {
    /// Every implementation, in the order a cell runs them (programs that
    /// share skmem's redirecting XDP program first, then the ceiling, then
    /// testpmd, which needs A without it: two swaps per cell).
    pub const ALL: [Implementation; 10] = [
        Implementation::Skmem,
        Implementation::XskRs,
        Implementation::SkmemAgain,
        Implementation::SkmemCoalesce,
        Implementation::SkmemW1,
        Implementation::SkmemW2,
        Implementation::LibxdpC,
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
            Implementation::SkmemW1 => "skmem-w1",
            Implementation::SkmemW2 => "skmem-w2",
            Implementation::XskRs => "xsk-rs",
            Implementation::LibxdpC => "libxdp-c",
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
            Implementation::SkmemW1 | Implementation::SkmemW2 => Kind::Workers,
            Implementation::XskRs | Implementation::LibxdpC | Implementation::Testpmd => Kind::Peer,
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
            // Coalescing moderates receive wake-ups: txonly receives nothing.
            (Implementation::SkmemCoalesce, Workload::Txonly) => None,
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
    fn a_side(self, w: Workload) -> Option<XdpAction> {
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
}

impl Wait {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Wait::Spin => "spin",
            Wait::Poll => "poll",
            Wait::BusyPoll => "busy-poll",
            Wait::Coalesce => "coalesce",
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
            ..Self::default()
        }
    }

    fn with_sizes(mut self, sizes: Vec<usize>) -> Self {
        self.sizes = sizes;
        self
    }

    fn validate(&self) -> Result<()> {
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
    fn skip_reason(&self, imp: Implementation) -> Option<String> {
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
    fn ordered_implementations(&self) -> Vec<Implementation> {
        Implementation::ALL
            .into_iter()
            .filter(|i| self.implementations.contains(i))
            .collect()
    }
}

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
    fn of_pps(v: &[f64]) -> Self {
        let s = Self::of_mpps(v);
        Self {
            median: s.median / 1e6,
            min: s.min / 1e6,
            max: s.max / 1e6,
        }
    }

    /// Of rates already in Mpps (the per-repetition lists).
    fn of_mpps(v: &[f64]) -> Self {
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
    /// The most skmem ÷ best peer can be here. For rxdrop: the receive
    /// bound ÷ best peer (median of the per-round ratios). For l2fwd:
    /// [`fastest_txonly_mpps`](Self::fastest_txonly_mpps) ÷ the best peer's
    /// fastest l2fwd round — best rounds, because the two come from
    /// different cells, run minutes apart on a host that changes speed
    /// between them: each cell's fastest round is its measure in the
    /// host's fast mode.
    pub bound_vs_best_peer: Option<f64>,
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
    /// The ratio checked: `skmem_vs_best_peer`, `skmem_vs_ceiling`, or
    /// the same for `coalesce_…` (skmem-coalesce).
    pub ratio: &'static str,
    /// The goal: the ratio must be at least this.
    pub target: f64,
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

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| anyhow!("XDP program lock poisoned"))
}

/// Process-unique numbers for arena names.
static NEXT_ARENA: AtomicU32 = AtomicU32::new(0);

fn arena_name(tag: &str) -> String {
    format!(
        "pps{}{tag}{}",
        std::process::id(),
        NEXT_ARENA.fetch_add(1, Ordering::Relaxed)
    )
}

/// Stops and joins the generator when dropped (also on an early return).
struct GenGuard {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<u64>>>,
}

impl GenGuard {
    fn finish(&mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| anyhow!("the generator thread panicked"))?,
            None => Ok(0),
        }
    }
}

impl Drop for GenGuard {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Starts the generator in B and waits until it runs.
fn start_generator(
    pair: &NetnsPair,
    cfg: &Config,
    size: usize,
) -> Result<(GenGuard, Arc<gen::GenCounters>)> {
    let counters = Arc::new(gen::GenCounters::default());
    let mut guard = GenGuard {
        stop: Arc::new(AtomicBool::new(false)),
        handle: None,
    };
    let gp = gen::GenParams {
        ifname: pair.ifname(Side::B).to_owned(),
        cpu: cfg.gen_cpu,
        batch: cfg.batch,
        packets: cfg.frames as usize,
        spec: pair.frame_spec(Side::B, size).context("frame spec")?,
        arena_name: arena_name("g"),
    };
    {
        let (c, s) = (Arc::clone(&counters), Arc::clone(&guard.stop));
        let kind = cfg.generator;
        guard.handle = Some(pair.spawn_in_ns(Side::B, move || match kind {
            gen::GenKind::Afxdp => gen::run(&gp, &c, &s),
            gen::GenKind::Xdp => gen::run_xdp(&gp, &c, &s),
        })?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !counters.running.load(Ordering::Acquire) {
        if guard.handle.as_ref().is_some_and(|h| h.is_finished()) || Instant::now() > deadline {
            guard.finish().context("the generator did not start")?;
            bail!("the generator did not start");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((guard, counters))
}

/// Why [`run`] cannot run here (not root, no `ip`, too few CPUs), or `None`.
pub fn skip_reason(cfg: &Config) -> Option<String> {
    if let Some(r) = skmem_netns::skip_reason() {
        return Some(r);
    }
    let cpus = sys::allowed_cpus();
    for c in [cfg.gen_cpu, cfg.prog_cpu] {
        if !cpus.contains(&c) {
            return Some(format!("cpu{c} is not available (allowed: {cpus:?})"));
        }
    }
    None
}

/// Runs the whole measurement; `log` gets progress lines.
pub fn run(cfg: &Config, log: &mut dyn FnMut(&str)) -> Result<Report> {
    cfg.validate()?;
    if let Some(r) = skip_reason(cfg) {
        bail!("pps needs root and two CPUs: {r}");
    }
    let t0 = Instant::now();
    let load_before = loadavg();
    // Namespaces left behind by a harness process that was killed.
    for stale in skmem_netns::cleanup_stale() {
        log(&format!("pps: removed stale {stale}"));
    }
    // Before any thread of the run exists: a task's scheduling group is
    // chosen when it is created. Restored when the guard drops, error or not.
    let (_autogroup_guard, autogroup) = sched::AutogroupGuard::turn_off(cfg.keep_autogroup, log);
    // libxdp's bpffs directory, made by a peer that loads through libxdp,
    // goes again when the run ends if the run made it.
    let _libxdp_state = peers::LibxdpStateGuard::new();
    if let sched::Autogroup::CouldNotTurnOff(e) = &autogroup {
        log(&format!(
            "pps: autogroup scheduling stays on ({e}): threaded figures will show it"
        ));
    }
    let mut skipped = Vec::new();
    let mut imps = Vec::new();
    for imp in cfg.ordered_implementations() {
        match cfg.skip_reason(imp).or_else(|| peers::skip_reason(imp)) {
            Some(reason) => {
                log(&format!("pps: leaving {} out: {reason}", imp.name()));
                skipped.push(Skipped {
                    implementation: imp,
                    reason,
                });
            }
            None => imps.push(imp),
        }
    }
    if imps.is_empty() {
        bail!("none of the programs asked for can run here");
    }
    let mut layouts = Vec::new();
    let mut results = Vec::new();
    for &layout in &cfg.layouts {
        check_interrupt()?;
        let (info, mut r) = run_layout(cfg, layout, &imps, t0, log)
            .with_context(|| format!("layout {}", layout.name()))?;
        layouts.push(info);
        results.append(&mut r);
    }
    let cells = cells(cfg, &results);
    let goals = goals(&cells);
    Ok(Report {
        config: cfg.clone(),
        layouts,
        results,
        cells,
        goals,
        skipped,
        elapsed_s: t0.elapsed().as_secs_f64(),
        loadavg: [load_before, loadavg()],
        autogroup,
    })
}

/// What is attached to A, swapped as the programs need.
struct ASide {
    ns: String,
    ifname: String,
    filter: XdpFilter,
    /// `threaded`: the CPU A's NAPI kthreads go to.
    napi_cpu: Option<usize>,
    prog: Arc<Mutex<Option<XdpProgram>>>,
    action: Option<XdpAction>,
}

impl ASide {
    /// Attaches skmem's program with `want` (or nothing) to A, detaching
    /// what was there; in `threaded`, switches threaded NAPI on and pins
    /// the (new) kthread. Nothing changes when `want` is already there.
    fn set(&mut self, pair: &NetnsPair, want: Option<XdpAction>) -> Result<()> {
        if self.action == want && lock(&self.prog)?.is_some() == want.is_some() {
            return Ok(());
        }
        self.renew(pair, want)
    }

    /// [`set`](Self::set), detaching and attaching even when `want` is
    /// already there: A's veth then starts from a fresh state — new NAPI
    /// instance, kthread and page pool. Every program run starts this way:
    /// without it, a run's rate depended on how long ago the last program
    /// swap (a ceiling, testpmd) reset that state — skmem run twice in the
    /// same round differed by 20 % in the threaded layout.
    fn renew(&mut self, pair: &NetnsPair, want: Option<XdpAction>) -> Result<()> {
        let old = lock(&self.prog)?.take();
        self.action = None;
        if let Some(p) = old {
            p.detach()
                .with_context(|| format!("detaching the XDP program from {}", self.ifname))?;
        }
        if let Some(action) = want {
            let (ifname, filter) = (self.ifname.clone(), self.filter);
            let p = pair
                .in_ns(Side::A, move || {
                    XdpProgram::attach_with_action(
                        &ifname,
                        AttachMode::Native,
                        Some(filter),
                        action,
                    )
                })
                .with_context(|| {
                    format!(
                        "attaching skmem's XDP program ({action:?}) to {} (native)",
                        self.ifname
                    )
                })?;
            *lock(&self.prog)? = Some(p);
            self.action = Some(action);
            if let Some(cpu) = self.napi_cpu {
                napi::ensure(&self.ns, &self.ifname, cpu)?;
            }
        }
        Ok(())
    }
}

fn run_layout(
    cfg: &Config,
    layout: Layout,
    imps: &[Implementation],
    t0: Instant,
    log: &mut dyn FnMut(&str),
) -> Result<(LayoutInfo, Vec<ProgramResult>)> {
    let tl = Instant::now();
    let max_size = cfg.sizes.iter().copied().max().unwrap_or(64);
    let mtu = (max_size - ETH_HLEN).max(1500) as u32;
    // Dropped last (declared first): removes namespaces and veths.
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1).mtu(mtu))
        .context("creating the namespace pair")?;
    let if_a = pair.ifname(Side::A).to_owned();
    let if_b = pair.ifname(Side::B).to_owned();
    let filter = XdpFilter::new().with_udp_dst_ports(DEFAULT_UDP_PORT, DEFAULT_UDP_PORT);
    // B's sink: counts and drops what A sends (txonly, l2fwd, xdp-tx), and
    // gives B's veth the NAPI instance XDP_TX from A needs to deliver to.
    let sink = {
        let b = if_b.clone();
        pair.in_ns(Side::B, move || {
            XdpProgram::attach_with_action(&b, AttachMode::Native, Some(filter), XdpAction::Drop)
        })
        .with_context(|| format!("attaching the counting sink to {if_b} (native)"))?
    };
    let mut a = ASide {
        ns: pair.ns_name(Side::A).to_owned(),
        ifname: if_a.clone(),
        filter,
        napi_cpu: (layout == Layout::Threaded).then_some(cfg.prog_cpu),
        prog: Arc::new(Mutex::new(None)),
        action: None,
    };
    a.set(&pair, Some(XdpAction::Redirect))?;
    let xdp_mode = lock(&a.prog)?
        .as_ref()
        .map(|p| p.mode().to_string())
        .unwrap_or_default();
    let wait = layout.wait(cfg);
    log(&format!(
        "pps: layout {}: veth {if_a} (A) <- {if_b} (B), MTU {mtu}, XDP {xdp_mode}; {}",
        layout.name(),
        layout.describe(cfg)
    ));

    let mut results = Vec::new();
    {
        let mut rig = Rig {
            cfg,
            layout,
            wait,
            t0,
            pair: &pair,
            a: &mut a,
            sink: &sink,
        };
        for &w in &cfg.workloads {
            for &size in &cfg.sizes {
                results.extend(run_cell(&mut rig, imps, w, size, log)?);
            }
        }
    }
    // Detach before the pair goes (dropping does too; this reports errors).
    if let Some(p) = lock(&a.prog)?.take() {
        p.detach().context("detaching A's XDP program")?;
    }
    sink.detach().context("detaching B's sink")?;
    drop(pair);
    Ok((
        LayoutInfo {
            layout,
            description: layout.describe(cfg),
            wait,
            ifnames: [if_a, if_b],
            mtu,
            xdp_mode,
            elapsed_s: tl.elapsed().as_secs_f64(),
        },
        results,
    ))
}

/// What every run of a layout shares: its namespace pair, A's side, B's
/// sink, and the settings.
struct Rig<'a> {
    cfg: &'a Config,
    layout: Layout,
    wait: Wait,
    t0: Instant,
    pair: &'a NetnsPair,
    a: &'a mut ASide,
    sink: &'a XdpProgram,
}

/// One cell (workload × frame size) of a layout: `cfg.rounds` rounds, each
/// running every program once — round r in order, round r + 1 in reverse,
/// so that drift within a round favours none of them — merged per program.
fn run_cell(
    rig: &mut Rig<'_>,
    imps: &[Implementation],
    w: Workload,
    size: usize,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<ProgramResult>> {
    let (cfg, layout) = (rig.cfg, rig.layout);
    let tx_frame = rig
        .pair
        .frame_spec(Side::A, size)
        .and_then(|s| Ok(s.build(0)?))
        .context("txonly frame")?;
    let mut runs: Vec<Vec<ProgramResult>> = vec![Vec::new(); imps.len()];
    for round in 0..cfg.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..imps.len()).collect()
        } else {
            (0..imps.len()).rev().collect()
        };
        for idx in order {
            let imp = imps[idx];
            check_interrupt()?;
            let Some(program) = imp.program(w) else {
                continue;
            };
            let label = if cfg.rounds > 1 {
                format!(
                    "[{} {} {size}B round {}/{}] {program}",
                    layout.name(),
                    w.name(),
                    round + 1,
                    cfg.rounds
                )
            } else {
                format!("[{} {} {size}B] {program}", layout.name(), w.name())
            };
            rig.a
                .renew(rig.pair, imp.a_side(w))
                .with_context(|| format!("{label}: preparing A"))?;
            // A failed run (the generator interrupted, a peer that did not
            // start) is tried once more before the whole run gives up.
            let r = match run_attempt(rig, imp, program, w, size, &tx_frame, &label) {
                Err(e) if !INTERRUPT.load(Ordering::Relaxed) => {
                    log(&format!("pps: {label}: failed, trying once more: {e:#}"));
                    run_attempt(rig, imp, program, w, size, &tx_frame, &label)
                }
                r => r,
            };
            let r = r?;
            log(&format!("pps: {label}: {}", r.summary()));
            runs[idx].push(r);
        }
    }
    Ok(runs
        .into_iter()
        .filter_map(ProgramResult::merge_rounds)
        .collect())
}

/// One program run: starts the generator (unless txonly), runs the
/// program, and stops the generator.
fn run_attempt(
    rig: &Rig<'_>,
    imp: Implementation,
    program: &str,
    w: Workload,
    size: usize,
    tx_frame: &[u8],
    label: &str,
) -> Result<ProgramResult> {
    let cfg = rig.cfg;
    let generator = (w != Workload::Txonly).then_some(cfg.generator);
    let gen = match generator {
        Some(_) => Some(
            start_generator(rig.pair, cfg, size)
                .with_context(|| format!("{label}: starting the generator"))?,
        ),
        None => None,
    };
    let p = ProgParams {
        ifname: rig.a.ifname.clone(),
        workload: w,
        wait: rig.wait,
        batch: cfg.batch,
        frames: cfg.frames,
        frame_size: cfg.frame_size,
        ring_entries: cfg.ring_entries,
        // The kernel refuses a budget above the TX ring's size: every
        // program gets the same, clamped one.
        tx_budget: cfg.tx_budget.map(|b| b.min(cfg.ring_entries)),
        arena_name: arena_name("p"),
        warmup: Duration::from_secs_f64(cfg.warmup_s),
        duration: Duration::from_secs_f64(cfg.duration_s),
        reps: cfg.reps,
        pkt_size: size,
        frame: tx_frame.to_vec(),
        worker_exe: cfg.worker_exe.clone(),
    };
    let ctx = RunCtx {
        pair: rig.pair,
        a: &*rig.a,
        sink: rig.sink,
        gen: gen.as_ref().map(|(_, c)| Arc::clone(c)),
        cfg,
        layout: rig.layout,
        t0: rig.t0,
    };
    let r = run_one(&ctx, imp, program, generator, p).with_context(|| label.to_owned());
    if let Some((mut g, _)) = gen {
        g.finish()
            .with_context(|| format!("{label}: the generator failed"))?;
    }
    r
}

/// A's XDP view at one boundary, from skmem's program or from ethtool.
#[derive(Debug, Clone, Copy, Default)]
struct XdpView {
    seen: u64,
    redirected: u64,
    dropped: u64,
    transmitted: u64,
}

/// The harness's samples at one boundary.
#[derive(Debug, Clone, Copy)]
struct Outside {
    gen: u64,
    xdp: XdpView,
    b: u64,
    /// CPU time of A's pinned NAPI kthreads, ns (`/proc/PID/schedstat`).
    napi_ns: u64,
    /// CPU time of the program's thread and its child processes, ns.
    prog_ns: u64,
    /// Non-idle and all jiffies of the program CPU (`/proc/stat`).
    cpu_busy: u64,
    cpu_total: u64,
}

struct RunCtx<'a> {
    pair: &'a NetnsPair,
    a: &'a ASide,
    sink: &'a XdpProgram,
    gen: Option<Arc<gen::GenCounters>>,
    cfg: &'a Config,
    layout: Layout,
    t0: Instant,
}

impl RunCtx<'_> {
    /// Samples the generator, A's XDP and B's sink. With ethtool (a child
    /// process, ~10 ms) the time is the middle of the reads.
    fn sample(
        &self,
        napi: &[NapiThread],
        prog_tid: Option<u32>,
    ) -> Result<(Sample<Outside>, XdpSource)> {
        let t1 = Instant::now();
        let napi_ns = napi.iter().map(|t| sys::task_cpu_ns(t.pid)).sum();
        let prog_ns = prog_tid.map_or(0, sys::thread_tree_cpu_ns);
        let (cpu_busy, cpu_total) = sys::cpu_jiffies(self.cfg.prog_cpu);
        let attached = lock(&self.a.prog)?
            .as_ref()
            .map(|p| p.counters())
            .transpose()?;
        let (xdp, source) = match attached {
            Some(c) => (
                XdpView {
                    seen: c.seen,
                    redirected: c.redirected,
                    dropped: c.dropped,
                    transmitted: c.transmitted,
                },
                XdpSource::SkmemXdp,
            ),
            None => {
                let s = self
                    .pair
                    .ethtool_stats(Side::A)
                    .context("ethtool -S on A")?;
                let get = |k: &str| s.get(k).copied().unwrap_or(0);
                (
                    XdpView {
                        seen: get("rx_queue_0_xdp_packets"),
                        redirected: get("rx_queue_0_xdp_redirect"),
                        dropped: get("rx_queue_0_xdp_drops"),
                        transmitted: get("rx_queue_0_xdp_tx"),
                    },
                    XdpSource::Ethtool,
                )
            }
        };
        let b = self.sink.counters()?.dropped;
        let gen = self
            .gen
            .as_ref()
            .map_or(0, |g| g.completed.load(Ordering::Relaxed));
        let t2 = Instant::now();
        Ok((
            Sample {
                at: t1 + (t2 - t1) / 2,
                value: Outside {
                    gen,
                    xdp,
                    b,
                    napi_ns,
                    prog_ns,
                    cpu_busy,
                    cpu_total,
                },
            },
            source,
        ))
    }

    /// `threaded`: switches threaded NAPI on and pins A's kthreads (again:
    /// testpmd attaches its own program, which makes a new one). Failure is
    /// reported, not fatal: the result then shows no NAPI thread.
    fn pin_napi(&self) -> Vec<NapiThread> {
        match self.a.napi_cpu {
            Some(cpu) => napi::ensure(&self.a.ns, &self.a.ifname, cpu).unwrap_or_else(|e| {
                eprintln!("pps: warning: {e:#}");
                Vec::new()
            }),
            None => Vec::new(),
        }
    }
}

fn run_one(
    ctx: &RunCtx<'_>,
    imp: Implementation,
    program: &str,
    generator: Option<gen::GenKind>,
    p: ProgParams,
) -> Result<ProgramResult> {
    let workload = p.workload;
    // testpmd's PMD always polls its rings (busy_budget=0 only turns the
    // kernel's busy polling off).
    let wait = match imp {
        Implementation::Testpmd => Wait::Spin,
        Implementation::SkmemCoalesce => Wait::Coalesce,
        _ => p.wait,
    };
    // The programs read their wait mode from the parameters (testpmd's
    // runner reads none).
    let p = ProgParams { wait, ..p };
    let size = p.pkt_size;
    let mut outside = Vec::new();
    let mut source = XdpSource::SkmemXdp;
    let mut napi_threads = Vec::new();
    let (own, counters) = if imp == Implementation::Ceiling {
        // The ceiling is A's XDP program itself: its counters are its own.
        let s = Schedule::starting_now(p.warmup, p.duration, p.reps);
        napi_threads = ctx.pin_napi();
        for &b in &s.bounds {
            sleep_until(b)?;
            let (smp, src) = ctx.sample(&napi_threads, None)?;
            source = src;
            outside.push(smp);
        }
        let own: Vec<Sample<u64>> = outside
            .iter()
            .map(|s| Sample {
                at: s.at,
                value: if workload == Workload::L2fwd {
                    s.value.xdp.transmitted
                } else {
                    s.value.xdp.dropped
                },
            })
            .collect();
        (own, ProgCounters::default())
    } else {
        let run = run_program(ctx, imp, p, &mut outside, &mut source, &mut napi_threads)?;
        (run.samples, run.counters)
    };
    if outside.len() < 2 {
        bail!("no measured window (the run stopped before its first repetition ended)");
    }
    if own.len() != outside.len() {
        bail!(
            "the program sampled {} of {} boundaries (stopped early?)",
            own.len(),
            outside.len()
        );
    }

    let own_rates = rates(&own);
    let pick = |f: fn(&Outside) -> u64| -> Vec<f64> {
        let v: Vec<Sample<u64>> = outside
            .iter()
            .map(|s| Sample {
                at: s.at,
                value: f(&s.value),
            })
            .collect();
        rates(&v)
    };
    let offered = pick(|o| o.gen);
    let redirected = pick(|o| o.xdp.redirected);
    let (own_sum, redir_sum) = (
        own_rates.iter().sum::<f64>(),
        redirected.iter().sum::<f64>(),
    );
    let through_socket = workload != Workload::Txonly && imp != Implementation::Ceiling;
    let (first, last) = (outside[0].value, outside[outside.len() - 1].value);
    let window_s = outside[outside.len() - 1]
        .at
        .duration_since(outside[0].at)
        .as_secs_f64();
    let napi_cpu_share = (!napi_threads.is_empty() && window_s > 0.0)
        .then(|| last.napi_ns.saturating_sub(first.napi_ns) as f64 / 1e9 / window_s);
    let own_in_windows = own[own.len() - 1].value.saturating_sub(own[0].value);
    let per_packet = |ns: u64| (own_in_windows > 0).then(|| ns as f64 / own_in_windows as f64);
    let prog_ns = last.prog_ns.saturating_sub(first.prog_ns);
    let napi_ns = last.napi_ns.saturating_sub(first.napi_ns);
    let (prog_cpu_share, prog_ns_per_packet) = if imp == Implementation::Ceiling {
        (None, None)
    } else {
        (
            (window_s > 0.0).then(|| prog_ns as f64 / 1e9 / window_s),
            per_packet(prog_ns),
        )
    };
    let napi_ns_per_packet = if napi_threads.is_empty() {
        None
    } else {
        per_packet(napi_ns)
    };
    let prog_cpu_busy = {
        let total = last.cpu_total.saturating_sub(first.cpu_total);
        (total > 0).then(|| last.cpu_busy.saturating_sub(first.cpu_busy) as f64 / total as f64)
    };
    Ok(ProgramResult {
        layout: ctx.layout,
        wait,
        generator,
        workload,
        size,
        program: program.to_owned(),
        implementation: imp,
        kind: imp.kind(),
        reps_mpps: own_rates.iter().map(|r| r / 1e6).collect(),
        mpps: Stat::of_pps(&own_rates),
        offered_mpps: generator.map(|_| Stat::of_pps(&offered)),
        xdp_source: source,
        xdp_seen_mpps: Some(Stat::of_pps(&pick(|o| o.xdp.seen))),
        xdp_redirected_mpps: Some(Stat::of_pps(&redirected)),
        reached_b_mpps: Stat::of_pps(&pick(|o| o.b)),
        reps_offered_mpps: if generator.is_some() {
            offered.iter().map(|r| r / 1e6).collect()
        } else {
            Vec::new()
        },
        reps_redirected_mpps: redirected.iter().map(|r| r / 1e6).collect(),
        reps_seen_mpps: pick(|o| o.xdp.seen).iter().map(|r| r / 1e6).collect(),
        reps_reached_b_mpps: pick(|o| o.b).iter().map(|r| r / 1e6).collect(),
        rounds_mpps: vec![median_min_max(&own_rates).0 / 1e6],
        share_of_redirected: (through_socket && redir_sum > 0.0).then(|| own_sum / redir_sum),
        napi_threads,
        napi_cpu_share,
        prog_cpu_busy,
        prog_cpu_share,
        prog_ns_per_packet,
        napi_ns_per_packet,
        counters,
        wall_s: ctx.t0.elapsed().as_secs_f64(),
    })
}

/// Runs a program under test on its own thread in A, pinned to the program
/// CPU, sampling the outside at the boundaries it announces.
fn run_program(
    ctx: &RunCtx<'_>,
    imp: Implementation,
    p: ProgParams,
    outside: &mut Vec<Sample<Outside>>,
    source: &mut XdpSource,
    napi_threads: &mut Vec<NapiThread>,
) -> Result<ProgRun> {
    let stop = Arc::new(AtomicBool::new(false));
    let (sched_tx, sched_rx) = mpsc::channel::<Schedule>();
    let (tid_tx, tid_rx) = mpsc::channel::<u32>();
    let handle = {
        let (prog, stop) = (Arc::clone(&ctx.a.prog), Arc::clone(&stop));
        let cpus = (ctx.cfg.gen_cpu, ctx.cfg.prog_cpu);
        let fifo = ctx.cfg.prog_fifo;
        ctx.pair.spawn_in_ns(Side::A, move || -> Result<ProgRun> {
            sys::pin_current_thread(cpus.1)?;
            if let Some(priority) = fifo {
                sched::run_fifo(priority)?;
            }
            let _ = tid_tx.send(rustix::thread::gettid().as_raw_nonzero().get() as u32);
            let mut register = |fd: BorrowedFd<'_>| -> Result<()> {
                lock(&prog)?
                    .as_mut()
                    .ok_or_else(|| anyhow!("no XDP program on A to register the socket in"))?
                    .add_socket(0, fd)
                    .context("adding the socket to the XSKMAP")
            };
            let mut start = || {
                let s = Schedule::starting_now(p.warmup, p.duration, p.reps);
                let m = Meter::new(&s);
                let _ = sched_tx.send(s);
                m
            };
            // The socket is closed when each returns: the kernel takes it
            // out of the map.
            match imp {
                Implementation::Skmem
                | Implementation::SkmemAgain
                | Implementation::SkmemCoalesce => {
                    skmem_prog::run(&p, &mut register, &mut start, &stop)
                }
                Implementation::SkmemW1 => {
                    skmem_prog::run_workers(&p, 1, cpus.1, &mut register, &mut start, &stop)
                }
                Implementation::SkmemW2 => {
                    skmem_prog::run_workers(&p, 2, cpus.1, &mut register, &mut start, &stop)
                }
                Implementation::XskRs => xsk_prog::run(&p, &mut register, &mut start, &stop),
                Implementation::XskSink => xsk_prog::sink(&p, &mut register, &mut start, &stop),
                Implementation::LibxdpC => peers::run_cpeer(&p, &mut register, &mut start, &stop),
                Implementation::Testpmd => peers::run_testpmd(&p, cpus, &mut start, &stop),
                Implementation::Ceiling => bail!("the ceiling has no program thread"),
            }
        })?
    };
    // Stop the program thread whatever happens below.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let guard = StopOnDrop(Arc::clone(&stop));

    // Set-up (testpmd's EAL, say) may take a while; the program announces
    // its schedule once it runs.
    let mut schedule = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while schedule.is_none() && Instant::now() < deadline && !handle.is_finished() {
        check_interrupt()?;
        schedule = sched_rx.recv_timeout(Duration::from_millis(50)).ok();
    }
    if schedule.is_none() {
        // A program that fails before its schedule sent nothing: a late
        // send is still in the channel.
        schedule = sched_rx.try_recv().ok();
    }
    if let Some(s) = &schedule {
        // In the warm-up: threaded NAPI and the pinning, again (testpmd's
        // own XDP program made a new NAPI instance).
        *napi_threads = ctx.pin_napi();
        let prog_tid = tid_rx.try_recv().ok();
        for &b in &s.bounds {
            sleep_until(b)?;
            let (smp, src) = ctx.sample(napi_threads, prog_tid)?;
            *source = src;
            outside.push(smp);
        }
        // The program stops itself after the last boundary; give it a
        // bounded grace period, then tell it to.
        let grace = s.end() + Duration::from_secs(5);
        while !handle.is_finished() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(guard);
    let run = handle
        .join()
        .map_err(|_| anyhow!("the program thread panicked"))??;
    if schedule.is_none() {
        bail!("the program under test did not start within 30 s");
    }
    Ok(run)
}

impl ProgCounters {
    fn add(&mut self, o: &ProgCounters) {
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
fn mean_of(v: impl Iterator<Item = Option<f64>>) -> Option<f64> {
    let (sum, n) = v.flatten().fold((0.0, 0u32), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| sum / f64::from(n))
}

impl ProgramResult {
    /// One program's rounds of one cell as one result: the repetitions of
    /// every round together (medians over all of them), the per-round
    /// medians kept for the paired ratios, CPU shares and costs averaged
    /// (the windows are equally long), counters summed. `None` for no
    /// round.
    fn merge_rounds(rounds: Vec<ProgramResult>) -> Option<ProgramResult> {
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

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some(a / b),
        _ => None,
    }
}

/// skmem ÷ another program and the per-round ratios it comes from: with
/// several rounds, the median of the per-round ratios (each pair measured
/// seconds apart); with one, the ratio of the medians (and no list).
fn paired_ratio(a: Option<&ProgramResult>, b: Option<&ProgramResult>) -> (Option<f64>, Vec<f64>) {
    let (Some(a), Some(b)) = (a, b) else {
        return (None, Vec::new());
    };
    if a.rounds_mpps.len() > 1 && a.rounds_mpps.len() == b.rounds_mpps.len() {
        let per_round: Vec<f64> = a
            .rounds_mpps
            .iter()
            .zip(&b.rounds_mpps)
            .filter(|(_, &y)| y > 0.0)
            .map(|(x, y)| x / y)
            .collect();
        let median = (!per_round.is_empty()).then(|| median_min_max(&per_round).0);
        (median, per_round)
    } else {
        (ratio(Some(a.mpps.median), Some(b.mpps.median)), Vec::new())
    }
}

/// skmem's ratios per layout × workload × size.
fn cells(cfg: &Config, results: &[ProgramResult]) -> Vec<Cell> {
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
                });
            }
        }
    }
    out
}

/// The project's goals: threaded-NAPI `poll()` rxdrop ≥ 1.05× the best
/// peer and ≥ 0.75× the XDP-drop ceiling; l2fwd (both layouts) ≥ 1.2× the
/// best peer. Each comes with the most its ratio can be here (see
/// [`Goal::bound`]).
fn goals(cells: &[Cell]) -> Vec<Goal> {
    let mut out = Vec::new();
    for c in cells {
        // `bound`: what no AF_XDP program's ratio can exceed in this cell.
        let mut goal =
            |ratio: &'static str, target: f64, value: Option<f64>, bound: Option<f64>| {
                out.push(Goal {
                    layout: c.layout,
                    workload: c.workload,
                    size: c.size,
                    ratio,
                    target,
                    value,
                    met: value.map(|v| v >= target),
                    bound,
                    reachable: bound.map(|b| b >= target),
                });
            };
        // Each goal is checked for skmem waiting as the peers do, and for
        // skmem-coalesce where it ran (a wait mode no peer has: reported
        // beside, never instead).
        let tuned = c.coalesce_mpps.is_some();
        match (c.layout, c.workload) {
            (Layout::Threaded, Workload::Rxdrop) => {
                let (vs_best, vs_ceiling) = (c.bound_vs_best_peer, c.bound_vs_ceiling);
                goal("skmem_vs_best_peer", 1.05, c.skmem_vs_best_peer, vs_best);
                goal("skmem_vs_ceiling", 0.75, c.skmem_vs_ceiling, vs_ceiling);
                if tuned {
                    goal(
                        "coalesce_vs_best_peer",
                        1.05,
                        c.coalesce_vs_best_peer,
                        vs_best,
                    );
                    goal(
                        "coalesce_vs_ceiling",
                        0.75,
                        c.coalesce_vs_ceiling,
                        vs_ceiling,
                    );
                }
            }
            (_, Workload::L2fwd) => {
                goal(
                    "skmem_vs_best_peer",
                    1.2,
                    c.skmem_vs_best_peer,
                    c.bound_vs_best_peer,
                );

                if tuned {
                    goal(
                        "coalesce_vs_best_peer",
                        1.2,
                        c.coalesce_vs_best_peer,
                        c.bound_vs_best_peer,
                    );
                }
            }
            _ => {}
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

impl Report {
    /// The report as text tables.
    pub fn to_table(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "pps: AF_XDP copy mode over a veth pair (one queue a side); settings: batch {}, {} B \
             frames, UMEM {} x {} B, rings {}, TX budget {}; {} round(s) of warm-up {} s and {} x {} s; \
             programs at {}",
            c.batch,
            c.sizes
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("/"),
            c.frames,
            c.frame_size,
            c.ring_entries,
            c.tx_budget
                .map_or_else(|| "kernel default".to_owned(), |b| b.to_string()),
            c.rounds,
            c.warmup_s,
            c.reps,
            c.duration_s,
            c.prog_fifo
                .map_or_else(|| "SCHED_OTHER".to_owned(), |p| format!("SCHED_FIFO {p}"))
        );
        for l in &self.layouts {
            let _ = writeln!(
                s,
                "layout {}: {} [veth {} <- {}, MTU {}, XDP {}; {:.0} s]",
                l.layout.name(),
                l.description,
                l.ifnames[0],
                l.ifnames[1],
                l.mtu,
                l.xdp_mode,
                l.elapsed_s
            );
        }
        for k in &self.skipped {
            let _ = writeln!(s, "left out: {}: {}", k.implementation.name(), k.reason);
        }
        let _ = writeln!(
            s,
            "\n{:<8} {:<6} {:>4} {:<9} {:<7} {:<4} {:>23} {:>7} {:>7} {:>7} {:>7} {:>6} {:>9} {:>9} {:>5} {:>4} {:>5} {:>6} {:>6}",
            "layout",
            "work",
            "size",
            "program",
            "kind",
            "wait",
            "Mpps median (min-max)",
            "offered",
            "XDPseen",
            "redir",
            "reachB",
            "%redir",
            "ringfull",
            "fillempty",
            "napi%",
            "cpu%",
            "prog%",
            "ns/pkt",
            "napins"
        );
        let opt =
            |x: Option<Stat>| x.map_or_else(|| "-".to_owned(), |x| format!("{:.3}", x.median));
        let pct =
            |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{:.0}", 100.0 * x));
        let ns = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"));
        for r in &self.results {
            let kind = match r.kind {
                Kind::Skmem => "skmem",
                Kind::Peer => "peer",
                Kind::Ceiling => "ceiling",
                Kind::Bound => "bound",
                Kind::Control => "control",
                Kind::Tuned => "tuned",
                Kind::Workers => "workers",
            };
            let _ = writeln!(
                s,
                "{:<8} {:<6} {:>4} {:<9} {:<7} {:<4} {:>7.3} ({:>6.3}-{:>6.3}) {:>7} {:>7} {:>7} {:>7.3} {:>6} {:>9} {:>9} {:>5} {:>4} {:>5} {:>6} {:>6}",
                r.layout.name(),
                r.workload.name(),
                r.size,
                r.program,
                kind,
                r.wait.name(),
                r.mpps.median,
                r.mpps.min,
                r.mpps.max,
                opt(r.offered_mpps),
                opt(r.xdp_seen_mpps),
                opt(r.xdp_redirected_mpps),
                r.reached_b_mpps.median,
                r.share_of_redirected
                    .map_or_else(|| "-".to_owned(), |v| format!("{:.1}", 100.0 * v)),
                r.counters.xsk_rx_ring_full,
                r.counters.xsk_fill_ring_empty,
                pct(r.napi_cpu_share),
                pct(r.prog_cpu_busy),
                pct(r.prog_cpu_share),
                ns(r.prog_ns_per_packet),
                ns(r.napi_ns_per_packet)
            );
        }
        let x = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
        let _ = writeln!(
            s,
            "\n{:<8} {:<6} {:>4} {:>7} {:>18} {:>19} {:>18} {:>19} {:>19} {:>19} {:>19} {:>19} {:>19}",
            "layout",
            "work",
            "size",
            "skmem",
            "best peer",
            "÷peer",
            "ceiling",
            "÷ceiling",
            "÷xsk-rs",
            "÷skmem-again (A/A)",
            "coalesce ÷peer",
            "w1 ÷skmem",
            "w2 ÷skmem"
        );
        for cl in &self.cells {
            let _ = writeln!(
                s,
                "{:<8} {:<6} {:>4} {:>7} {:>18} {:>19} {:>18} {:>19} {:>19} {:>19} {:>19} {:>19} {:>19}",
                cl.layout.name(),
                cl.workload.name(),
                cl.size,
                x(cl.skmem_mpps),
                format!(
                    "{} {}",
                    cl.best_peer.as_deref().unwrap_or("-"),
                    x(cl.best_peer_mpps)
                ),
                with_range(cl.skmem_vs_best_peer, &cl.skmem_vs_best_peer_rounds),
                format!(
                    "{} {}",
                    cl.ceiling.as_deref().unwrap_or("-"),
                    x(cl.ceiling_mpps)
                ),
                with_range(cl.skmem_vs_ceiling, &cl.skmem_vs_ceiling_rounds),
                with_range(cl.skmem_vs_xsk_rs, &cl.skmem_vs_xsk_rs_rounds),
                with_range(cl.skmem_vs_skmem_again, &cl.skmem_vs_skmem_again_rounds),
                with_range(cl.coalesce_vs_best_peer, &cl.coalesce_vs_best_peer_rounds),
                with_range(cl.workers1_vs_skmem, &cl.workers1_vs_skmem_rounds),
                with_range(cl.workers2_vs_skmem, &cl.workers2_vs_skmem_rounds)
            );
        }
        if !self.goals.is_empty() {
            let _ = writeln!(s, "\ngoals:");
            for g in &self.goals {
                let _ = writeln!(
                    s,
                    "  {} {} {} B: {} >= {:.2}: {} {}{}",
                    g.layout.name(),
                    g.workload.name(),
                    g.size,
                    g.ratio,
                    g.target,
                    x(g.value),
                    match g.met {
                        Some(true) => "met",
                        Some(false) => "NOT met",
                        None => "n/a",
                    },
                    match (g.bound, g.reachable) {
                        (Some(b), Some(false)) => {
                            format!(" (out of reach here: no AF_XDP program can exceed {b:.2})")
                        }
                        (Some(b), _) => format!(" (at most {b:.2} here)"),
                        _ => String::new(),
                    }
                );
            }
        }
        let _ = writeln!(
            s,
            "\n(rates are what each program counted itself: received for rxdrop, TX-completed for \
             txonly and l2fwd, its own XDP counter for a ceiling; offered = the generator's \
             frames, XDP seen/redir = A's XDP (skmem's program, or ethtool -S while testpmd's \
             own is attached), reachB = B's XDP sink, all in the same windows; %redir = the \
             program's count as a share of what XDP redirected to it; ring full / fill empty = \
             the socket's XDP_STATISTICS over its whole run; napi% = CPU time of A's NAPI \
             kthread (threaded), cpu% = the program CPU's non-idle share, everything on it \
             included; prog% = the program's own CPU time (its thread and child processes), \
             ns/pkt = that per frame counted, napins = NAPI kthread ns per frame)\ntotal {:.1} s; loadavg before: {}, \
             after: {}; autogroup scheduling: {}",
            self.elapsed_s, self.loadavg[0], self.loadavg[1], self.autogroup
        );
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One round's result of `imp` at `mpps` (one repetition).
    fn round(imp: Implementation, mpps: f64) -> ProgramResult {
        let stat = Stat {
            median: mpps,
            min: mpps,
            max: mpps,
        };
        ProgramResult {
            layout: Layout::Threaded,
            wait: Wait::Poll,
            generator: Some(gen::GenKind::Xdp),
            workload: Workload::Rxdrop,
            size: 64,
            program: imp.name().to_owned(),
            implementation: imp,
            kind: imp.kind(),
            reps_mpps: vec![mpps],
            mpps: stat,
            offered_mpps: Some(stat),
            xdp_source: XdpSource::SkmemXdp,
            xdp_seen_mpps: Some(stat),
            xdp_redirected_mpps: Some(stat),
            reached_b_mpps: Stat::default(),
            reps_offered_mpps: vec![mpps],
            reps_redirected_mpps: vec![2.0 * mpps],
            reps_seen_mpps: vec![mpps],
            reps_reached_b_mpps: vec![0.0],
            rounds_mpps: vec![mpps],
            share_of_redirected: Some(0.5),
            napi_threads: Vec::new(),
            napi_cpu_share: Some(0.8),
            prog_cpu_busy: Some(1.0),
            prog_cpu_share: Some(mpps / 10.0),
            prog_ns_per_packet: Some(100.0 * mpps),
            napi_ns_per_packet: None,
            counters: ProgCounters {
                rx_packets: 10,
                ..ProgCounters::default()
            },
            wall_s: mpps,
        }
    }

    #[test]
    fn rounds_merge_into_one_result_with_per_round_medians() {
        let m = ProgramResult::merge_rounds(vec![
            round(Implementation::Skmem, 1.0),
            round(Implementation::Skmem, 3.0),
            round(Implementation::Skmem, 2.0),
        ])
        .unwrap();
        assert_eq!(m.reps_mpps, [1.0, 3.0, 2.0]);
        assert_eq!(m.rounds_mpps, [1.0, 3.0, 2.0]);
        assert!((m.mpps.median - 2.0).abs() < 1e-9);
        assert!((m.mpps.min - 1.0).abs() < 1e-9 && (m.mpps.max - 3.0).abs() < 1e-9);
        assert_eq!(m.counters.rx_packets, 30);
        assert!((m.prog_cpu_share.unwrap() - 0.2).abs() < 1e-9);
        assert!((m.share_of_redirected.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(m.napi_ns_per_packet, None);
        assert!((m.wall_s - 3.0).abs() < 1e-9);
        assert!(ProgramResult::merge_rounds(Vec::new()).is_none());
    }

    #[test]
    fn ratios_pair_rounds_so_drift_cancels() {
        // The machine halves its speed over the run: each round's pair
        // sees the same conditions, and skmem is 10 % ahead in every one.
        let merge = |imp, v: &[f64]| {
            ProgramResult::merge_rounds(v.iter().map(|&x| round(imp, x)).collect()).unwrap()
        };
        let skmem = merge(Implementation::Skmem, &[4.4, 3.3, 2.2]);
        let peer = merge(Implementation::XskRs, &[4.0, 3.0, 2.0]);
        let (r, per_round) = paired_ratio(Some(&skmem), Some(&peer));
        assert!((r.unwrap() - 1.1).abs() < 1e-9);
        assert_eq!(per_round.len(), 3);
        assert_eq!(with_range(r, &per_round), "1.100 (1.10-1.10)");
        // One round: the ratio of the medians, no list.
        let (r, per_round) = paired_ratio(
            Some(&round(Implementation::Skmem, 3.0)),
            Some(&round(Implementation::XskRs, 2.0)),
        );
        assert!((r.unwrap() - 1.5).abs() < 1e-9 && per_round.is_empty());
        assert_eq!(paired_ratio(None, Some(&peer)).0, None);
    }

    #[test]
    fn fifo_programs_must_sleep_and_the_sink_needs_spare_frames() {
        let threaded = Config {
            layouts: vec![Layout::Threaded],
            prog_fifo: Some(1),
            ..Config::matrix()
        };
        threaded.validate().unwrap();
        let spinning = Config {
            layouts: vec![Layout::Default],
            wait: Wait::Spin,
            ..threaded.clone()
        };
        let e = spinning.validate().unwrap_err().to_string();
        assert!(e.contains("--wait poll"), "{e}");
        Config {
            wait: Wait::Poll,
            ..spinning
        }
        .validate()
        .unwrap();
        for p in [0, 100] {
            let c = Config {
                prog_fifo: Some(p),
                ..threaded.clone()
            };
            assert!(c.validate().is_err(), "priority {p}");
        }
        // testpmd spins: left out at SCHED_FIFO, run otherwise.
        assert!(threaded.skip_reason(Implementation::Testpmd).is_some());
        assert!(Config::matrix()
            .skip_reason(Implementation::Testpmd)
            .is_none());
        // The sink's fill ring holds twice the RX ring.
        let tight = Config {
            frames: 1024,
            ring_entries: 1024,
            ..Config::matrix()
        };
        assert!(tight.skip_reason(Implementation::XskSink).is_some());
        assert!(Config::matrix()
            .skip_reason(Implementation::XskSink)
            .is_none());
    }

    #[test]
    fn goals_say_how_far_any_program_could_get() {
        let at = |layout, workload, imp, mpps| ProgramResult {
            layout,
            workload,
            ..round(imp, mpps)
        };
        let rxdrop = |imp, mpps| at(Layout::Threaded, Workload::Rxdrop, imp, mpps);
        // Two rounds of the default layout, one in a slow host mode: the
        // l2fwd bound compares each cell's fastest round.
        let rounds = |workload, imp, v: [f64; 2]| {
            ProgramResult::merge_rounds(
                v.iter()
                    .map(|&x| at(Layout::Default, workload, imp, x))
                    .collect(),
            )
            .unwrap()
        };
        let results = vec![
            rxdrop(Implementation::Skmem, 2.0),
            rxdrop(Implementation::XskRs, 2.0),
            rxdrop(Implementation::XskSink, 3.0),
            rxdrop(Implementation::Ceiling, 6.0),
            rounds(Workload::L2fwd, Implementation::Skmem, [0.9, 0.45]),
            rounds(Workload::L2fwd, Implementation::XskRs, [1.0, 0.5]),
            rounds(Workload::Txonly, Implementation::Skmem, [1.1, 0.2]),
            rounds(Workload::Txonly, Implementation::XskRs, [1.05, 0.2]),
        ];
        let cfg = Config {
            layouts: vec![Layout::Default, Layout::Threaded],
            sizes: vec![64],
            ..Config::matrix()
        };
        let cells = cells(&cfg, &results);
        let goals = goals(&cells);
        let find = |layout, workload, ratio| {
            goals
                .iter()
                .find(|g| g.layout == layout && g.workload == workload && g.ratio == ratio)
                .unwrap_or_else(|| panic!("no goal {ratio} in {goals:?}"))
        };
        // Receiving: the sink gets 3.0 of the ceiling's 6.0, so 0.75× the
        // ceiling is out of any program's reach; 1.05× the peer is not.
        let g = find(Layout::Threaded, Workload::Rxdrop, "skmem_vs_ceiling");
        assert_eq!((g.met, g.reachable), (Some(false), Some(false)));
        assert!((g.bound.unwrap() - 0.5).abs() < 1e-9);
        let g = find(Layout::Threaded, Workload::Rxdrop, "skmem_vs_best_peer");
        assert_eq!((g.met, g.reachable), (Some(false), Some(true)));
        assert!((g.bound.unwrap() - 1.5).abs() < 1e-9);
        // Forwarding: the fastest sender (1.1) over the best peer's l2fwd
        // (1.0), each at its best round, is below 1.2. (Their medians,
        // 0.65 over 0.75, would have said 0.87.)
        let g = find(Layout::Default, Workload::L2fwd, "skmem_vs_best_peer");
        assert_eq!(g.reachable, Some(false));
        assert!((g.bound.unwrap() - 1.1).abs() < 1e-9, "{g:?}");
        // Without the bound's runs, nothing is claimed.
        let cells = super::cells(&cfg, &results[..2]);
        let g = &super::goals(&cells)[0];
        assert_eq!((g.bound, g.reachable), (None, None));
    }
}
