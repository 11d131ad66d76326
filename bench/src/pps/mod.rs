//! Packets per second: skmem's AF_XDP channel against xsk-rs 0.11, on a
//! veth pair between two network namespaces (root only).
//!
//! One [`run`] makes a namespace pair (one RX and one TX queue per side),
//! attaches skmem's XDP program natively to A, starts the generator
//! ([`gen`]: skmem's own copy-mode txonly on B, pinned to the generator
//! CPU, flat out for the whole run), then runs each program under test in
//! turn on A, pinned to the program CPU: rxdrop and l2fwd, on skmem's
//! [`Channel`](skmem::channel::Channel) and on xsk-rs (whose socket goes
//! into the same program's XSKMAP). Each program measures itself: after a
//! warm-up it samples its own counter at the end of each repetition
//! (received frames for rxdrop, TX completions for l2fwd); the harness
//! samples the generator's completions and the XDP program's counters at
//! the same boundaries.
//!
//! With the default layout the receiving veth's NAPI work (the XDP program
//! and the copy into the UMEM) runs on the **generator's** CPU, so rxdrop
//! mostly measures that CPU's ceiling; l2fwd (copy-mode TX on the program's
//! CPU) tells the implementations apart better.

pub mod cpeer;
pub mod gen;
pub mod meter;
mod skmem_prog;
pub mod sys;
pub mod testpmd;
mod xsk_prog;

use std::fmt::Write as _;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use skmem_netns_tests::{NetnsPair, PairConfig, Side, DEFAULT_UDP_PORT};
use skmem_xdp::{AttachMode, XdpCounters, XdpFilter, XdpProgram};

use meter::{median_min_max, rates, Meter, Sample, Schedule};

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

/// What a program under test does with frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Receive and drop (count received frames).
    Rxdrop,
    /// Swap MACs and send back out the same socket (count TX completions).
    L2fwd,
}

impl Workload {
    /// Lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Rxdrop => "rxdrop",
            Workload::L2fwd => "l2fwd",
        }
    }
}

/// Which AF_XDP implementation runs the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum Implementation {
    /// skmem's `Channel`.
    #[serde(rename = "skmem")]
    #[value(name = "skmem")]
    Skmem,
    /// xsk-rs 0.11.
    #[serde(rename = "xsk-rs")]
    #[value(name = "xsk-rs")]
    XskRs,
}

impl Implementation {
    /// Name as used in program names (`skmem`, `xsk-rs`).
    pub fn name(self) -> &'static str {
        match self {
            Implementation::Skmem => "skmem",
            Implementation::XskRs => "xsk-rs",
        }
    }
}

/// How a program under test waits when nothing arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// Busy loop on the rings.
    Spin,
    /// `poll()` on the socket when nothing arrived.
    Poll,
}

/// Settings of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// Warm-up before the first repetition, seconds.
    pub warmup_s: f64,
    /// Length of one repetition, seconds.
    pub duration_s: f64,
    /// Repetitions.
    pub reps: u32,
    /// Descriptors per ring operation (generator and programs).
    pub batch: usize,
    /// Wait mode of the programs under test.
    pub wait: Wait,
    /// Workloads to run.
    pub workloads: Vec<Workload>,
    /// Implementations to run.
    pub implementations: Vec<Implementation>,
    /// The generator on side B.
    pub generator: gen::GenKind,
    /// CPU of the generator thread.
    pub gen_cpu: usize,
    /// CPU of the program under test.
    pub prog_cpu: usize,
    /// Frame size on the wire (bytes, without FCS).
    pub pkt_size: usize,
    /// UMEM frames of every socket.
    pub frames: u32,
    /// UMEM frame (buffer) size, bytes.
    pub frame_size: u32,
    /// Entries of each of the four rings.
    pub ring_entries: u32,
    /// `XDP_MAX_TX_SKB_BUDGET` of the programs' sockets (both
    /// implementations); `None` leaves the kernel's default (32).
    pub tx_budget: Option<u32>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            warmup_s: 2.0,
            duration_s: 5.0,
            reps: 3,
            batch: 64,
            wait: Wait::Spin,
            workloads: vec![Workload::Rxdrop, Workload::L2fwd],
            implementations: vec![Implementation::Skmem, Implementation::XskRs],
            generator: gen::GenKind::Afxdp,
            gen_cpu: 0,
            prog_cpu: 1,
            pkt_size: 64,
            frames: 4096,
            frame_size: 2048,
            ring_entries: 1024,
            tx_budget: Some(1024),
        }
    }
}

impl Config {
    /// Quick mode: warm-up 0.5 s, one repetition of 1 s.
    pub fn quick() -> Self {
        Self {
            warmup_s: 0.5,
            duration_s: 1.0,
            reps: 1,
            ..Self::default()
        }
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
        if self.batch == 0 || self.batch > self.ring_entries as usize {
            bail!("--batch must be 1..={}", self.ring_entries);
        }
        if self.workloads.is_empty() || self.implementations.is_empty() {
            bail!("nothing to run: no workload or no program");
        }
        if self.gen_cpu == self.prog_cpu {
            bail!("the generator and the program under test need different CPUs");
        }
        Ok(())
    }

    /// One line naming the CPU layout.
    pub fn layout(&self) -> String {
        format!(
            "{k} generator on cpu{g} (its TX, and A's veth NAPI: XDP program + copy into the UMEM, run there), \
             program under test on cpu{p}{d}",
            k = self.generator.name(),
            g = self.gen_cpu,
            p = self.prog_cpu,
            d = if (self.gen_cpu, self.prog_cpu) == (0, 1) {
                " (default layout)"
            } else {
                ""
            }
        )
    }
}

/// A program's own totals over its whole run (warm-up included).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProgCounters {
    /// Frames received.
    pub rx_packets: u64,
    /// Frames queued for TX (l2fwd).
    pub tx_queued: u64,
    /// TX completions (l2fwd).
    pub tx_completed: u64,
    /// Received frames given back unsent because the TX ring was full
    /// (skmem l2fwd).
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
    /// Arena name for skmem.
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
    fn of_pps(v: &[f64]) -> Self {
        let (median, min, max) = median_min_max(v);
        Self {
            median: median / 1e6,
            min: min / 1e6,
            max: max / 1e6,
        }
    }
}

/// The result of one program under test.
#[derive(Debug, Clone, Serialize)]
pub struct ProgramResult {
    /// `skmem-rxdrop`, `xsk-rs-l2fwd`, ...
    pub program: String,
    /// Implementation.
    pub implementation: Implementation,
    /// Workload.
    pub workload: Workload,
    /// The program's own rate per repetition, Mpps.
    pub reps_mpps: Vec<f64>,
    /// The program's rate: received (rxdrop) or forwarded and completed (l2fwd), Mpps.
    pub mpps: Stat,
    /// The generator's TX completions in the same windows, Mpps.
    pub offered_mpps: Stat,
    /// Frames the XDP program saw, Mpps.
    pub xdp_seen_mpps: Stat,
    /// Frames the XDP program redirected to the socket, Mpps.
    pub xdp_redirected_mpps: Stat,
    /// The generator's rate per repetition, Mpps.
    pub reps_offered_mpps: Vec<f64>,
    /// XDP redirected per repetition, Mpps.
    pub reps_redirected_mpps: Vec<f64>,
    /// The program's count over the measured windows as a share of what
    /// XDP redirected to its socket in the same windows (1.0: nothing lost).
    pub share_of_redirected: f64,
    /// Totals over the program's whole run (warm-up included).
    #[serde(flatten)]
    pub counters: ProgCounters,
    /// Seconds from start to the end of the program's run, set-up included.
    pub wall_s: f64,
}

/// skmem / xsk-rs for one workload.
#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// Workload.
    pub workload: Workload,
    /// skmem's median, Mpps.
    pub skmem_mpps: f64,
    /// xsk-rs's median, Mpps.
    pub xsk_rs_mpps: f64,
    /// skmem / xsk-rs.
    pub ratio: f64,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Settings.
    pub config: Config,
    /// The CPU layout, in words.
    pub layout: String,
    /// The XDP attach mode on A.
    pub xdp_mode: String,
    /// Veth names (A, B).
    pub ifnames: [String; 2],
    /// One entry per program, in the order run.
    pub results: Vec<ProgramResult>,
    /// skmem / xsk-rs per workload (where both ran).
    pub ratios: Vec<Ratio>,
    /// Frames the generator completed over the whole run.
    pub generator_completed: u64,
    /// Seconds the whole run took.
    pub elapsed_s: f64,
    /// `/proc/loadavg` before and after the run: other work on the same
    /// CPUs (a compiler, say) skews every figure.
    pub loadavg: [String; 2],
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
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

/// Why [`run`] cannot run here (not root, no `ip`, too few CPUs), or `None`.
pub fn skip_reason(cfg: &Config) -> Option<String> {
    if let Some(r) = skmem_netns_tests::skip_reason() {
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
    for stale in skmem_netns_tests::cleanup_stale() {
        log(&format!("pps: removed stale {stale}"));
    }
    // Dropped last (declared first): removes namespaces and veths.
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1))
        .context("creating the namespace pair")?;
    let if_a = pair.ifname(Side::A).to_owned();
    let if_b = pair.ifname(Side::B).to_owned();
    let filter = XdpFilter::new().with_udp_dst_ports(DEFAULT_UDP_PORT, DEFAULT_UDP_PORT);
    let prog = pair
        .in_ns(Side::A, || {
            XdpProgram::attach(&if_a, AttachMode::Native, Some(filter))
        })
        .with_context(|| format!("attaching skmem's XDP program to {if_a} (native)"))?;
    let xdp_mode = prog.mode().to_string();
    let prog = Arc::new(Mutex::new(prog));
    let spec = pair
        .frame_spec(Side::B, cfg.pkt_size)
        .context("frame spec")?;
    let pid = std::process::id();
    let tx_frame = pair
        .frame_spec(Side::A, cfg.pkt_size)
        .and_then(|s| Ok(s.build(0)?))
        .context("txonly frame")?;

    // The generator, for the whole run.
    let gen_counters = Arc::new(gen::GenCounters::default());
    let mut generator = GenGuard {
        stop: Arc::new(AtomicBool::new(false)),
        handle: None,
    };
    let gp = gen::GenParams {
        ifname: if_b.clone(),
        cpu: cfg.gen_cpu,
        batch: cfg.batch,
        packets: cfg.frames as usize,
        spec,
        arena_name: format!("pps{pid}gen"),
    };
    {
        let (c, s) = (Arc::clone(&gen_counters), Arc::clone(&generator.stop));
        let kind = cfg.generator;
        generator.handle = Some(pair.spawn_in_ns(Side::B, move || match kind {
            gen::GenKind::Afxdp => gen::run(&gp, &c, &s),
            gen::GenKind::Xdp => gen::run_xdp(&gp, &c, &s),
        })?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gen_counters.running.load(Ordering::Acquire) {
        if generator.handle.as_ref().is_some_and(|h| h.is_finished()) || Instant::now() > deadline {
            generator.finish().context("the generator did not start")?;
            bail!("the generator did not start");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    log(&format!(
        "pps: veth {if_a} (A, XDP {xdp_mode}) <- {if_b} (B); {}",
        cfg.layout()
    ));

    let mut results = Vec::new();
    for &w in &cfg.workloads {
        for &imp in &cfg.implementations {
            check_interrupt()?;
            let name = format!("{}-{}", imp.name(), w.name());
            log(&format!("pps: running {name} ..."));
            let p = ProgParams {
                ifname: if_a.clone(),
                workload: w,
                wait: cfg.wait,
                batch: cfg.batch,
                frames: cfg.frames,
                frame_size: cfg.frame_size,
                ring_entries: cfg.ring_entries,
                tx_budget: cfg.tx_budget,
                arena_name: format!("pps{pid}{}", results.len()),
                warmup: Duration::from_secs_f64(cfg.warmup_s),
                duration: Duration::from_secs_f64(cfg.duration_s),
                reps: cfg.reps,
                pkt_size: cfg.pkt_size,
                frame: tx_frame.clone(),
            };
            let r = run_one(&pair, &prog, &gen_counters, cfg, imp, p, t0)
                .with_context(|| name.clone())?;
            log(&format!(
                "pps: {name}: {:.3} Mpps ({:.3}–{:.3}), offered {:.3}, XDP redirected {:.3}",
                r.mpps.median,
                r.mpps.min,
                r.mpps.max,
                r.offered_mpps.median,
                r.xdp_redirected_mpps.median
            ));
            results.push(r);
        }
    }
    let generator_completed = generator.finish()?;
    drop(generator);
    drop(prog);
    drop(pair);

    let mut ratios = Vec::new();
    for &w in &cfg.workloads {
        let med = |imp| {
            results
                .iter()
                .find(|r| r.workload == w && r.implementation == imp)
                .map(|r| r.mpps.median)
        };
        if let (Some(s), Some(x)) = (med(Implementation::Skmem), med(Implementation::XskRs)) {
            ratios.push(Ratio {
                workload: w,
                skmem_mpps: s,
                xsk_rs_mpps: x,
                ratio: if x > 0.0 { s / x } else { f64::NAN },
            });
        }
    }
    Ok(Report {
        config: cfg.clone(),
        layout: cfg.layout(),
        xdp_mode,
        ifnames: [if_a, if_b],
        results,
        ratios,
        generator_completed,
        elapsed_s: t0.elapsed().as_secs_f64(),
        loadavg: [load_before, loadavg()],
    })
}

/// The harness's samples at one boundary.
#[derive(Debug, Clone, Copy)]
struct Outside {
    gen: u64,
    xdp: XdpCounters,
}

fn run_one(
    pair: &NetnsPair,
    prog: &Arc<Mutex<XdpProgram>>,
    gen_counters: &Arc<gen::GenCounters>,
    cfg: &Config,
    imp: Implementation,
    p: ProgParams,
    t0: Instant,
) -> Result<ProgramResult> {
    let stop = Arc::new(AtomicBool::new(false));
    let (sched_tx, sched_rx) = mpsc::channel::<Schedule>();
    let workload = p.workload;
    let handle = {
        let (prog, stop, cpu) = (Arc::clone(prog), Arc::clone(&stop), cfg.prog_cpu);
        pair.spawn_in_ns(Side::A, move || -> Result<ProgRun> {
            sys::pin_current_thread(cpu)?;
            let mut register = |fd: BorrowedFd<'_>| -> Result<()> {
                prog.lock()
                    .map_err(|_| anyhow!("XDP program lock poisoned"))?
                    .add_socket(0, fd)
                    .context("adding the socket to the XSKMAP")
            };
            let mut start = || {
                let s = Schedule::starting_now(p.warmup, p.duration, p.reps);
                let m = Meter::new(&s);
                let _ = sched_tx.send(s);
                m
            };
            let run = match imp {
                Implementation::Skmem => skmem_prog::run(&p, &mut register, &mut start, &stop),
                Implementation::XskRs => xsk_prog::run(&p, &mut register, &mut start, &stop),
            };
            // The socket is closed by now: the kernel took it out of the map.
            run
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

    let sample = || -> Result<Sample<Outside>> {
        let xdp = prog
            .lock()
            .map_err(|_| anyhow!("XDP program lock poisoned"))?
            .counters()?;
        let gen = gen_counters.completed.load(Ordering::Relaxed);
        Ok(Sample {
            at: Instant::now(),
            value: Outside { gen, xdp },
        })
    };
    let mut outside = Vec::new();
    let schedule = sched_rx.recv_timeout(Duration::from_secs(30)).ok();
    if let Some(s) = &schedule {
        for &b in &s.bounds {
            sleep_until(b)?;
            outside.push(sample()?);
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
    if run.samples.len() != outside.len() {
        bail!(
            "the program sampled {} of {} boundaries (stopped early?)",
            run.samples.len(),
            outside.len()
        );
    }

    let own = rates(&run.samples);
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
    let (own_sum, redir_sum) = (own.iter().sum::<f64>(), redirected.iter().sum::<f64>());
    Ok(ProgramResult {
        reps_offered_mpps: offered.iter().map(|r| r / 1e6).collect(),
        reps_redirected_mpps: redirected.iter().map(|r| r / 1e6).collect(),
        share_of_redirected: if redir_sum > 0.0 {
            own_sum / redir_sum
        } else {
            0.0
        },
        program: format!("{}-{}", imp.name(), workload.name()),
        implementation: imp,
        workload,
        reps_mpps: own.iter().map(|r| r / 1e6).collect(),
        mpps: Stat::of_pps(&own),
        offered_mpps: Stat::of_pps(&offered),
        xdp_seen_mpps: Stat::of_pps(&pick(|o| o.xdp.seen)),
        xdp_redirected_mpps: Stat::of_pps(&redirected),
        counters: run.counters,
        wall_s: t0.elapsed().as_secs_f64(),
    })
}

impl Report {
    /// The report as a text table.
    pub fn to_table(&self) -> String {
        let c = &self.config;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "pps: AF_XDP copy mode over veth {} <- {}, skmem's XDP program ({}) on A for every program",
            self.ifnames[0], self.ifnames[1], self.xdp_mode
        );
        let _ = writeln!(s, "CPU layout: {}", self.layout);
        let _ = writeln!(
            s,
            "settings: batch {}, wait {:?}, {} B frames, UMEM {} x {} B, rings {}, TX budget {}; \
             warm-up {} s, {} x {} s",
            c.batch,
            c.wait,
            c.pkt_size,
            c.frames,
            c.frame_size,
            c.ring_entries,
            c.tx_budget
                .map_or_else(|| "kernel default".to_owned(), |b| b.to_string()),
            c.warmup_s,
            c.reps,
            c.duration_s
        );
        let _ = writeln!(
            s,
            "\n{:<15} {:>26} {:>6} {:>9} {:>9} {:>10} {:>10} {:>10}",
            "program",
            "Mpps median (min-max)",
            "%redir",
            "offered",
            "XDP seen",
            "redirected",
            "ring full",
            "TX unsent"
        );
        for r in &self.results {
            let _ = writeln!(
                s,
                "{:<15} {:>8.3} ({:>6.3}-{:>6.3})    {:>6.1} {:>9.3} {:>9.3} {:>10.3} {:>10} {:>10}",
                r.program,
                r.mpps.median,
                r.mpps.min,
                r.mpps.max,
                100.0 * r.share_of_redirected,
                r.offered_mpps.median,
                r.xdp_seen_mpps.median,
                r.xdp_redirected_mpps.median,
                r.counters.xsk_rx_ring_full,
                r.counters.tx_unsent
            );
        }
        if !self.ratios.is_empty() {
            let _ = writeln!(s, "\nskmem / xsk-rs (medians):");
            for r in &self.ratios {
                let _ = writeln!(
                    s,
                    "  {:<7} {:.3} / {:.3} = {:.3}",
                    r.workload.name(),
                    r.skmem_mpps,
                    r.xsk_rs_mpps,
                    r.ratio
                );
            }
        }
        let _ = writeln!(
            s,
            "\n(rates are what each program counted itself: received for rxdrop, TX-completed \
             for l2fwd; %redir = the program's count as a share of what XDP redirected to its socket, summed over the windows; offered = the generator's TX completions, XDP columns = skmem's XDP \
             program counters, all in the same windows; ring full = the socket's rx_ring_full \
             over its whole run)\ntotal {:.1} s; loadavg before: {}, after: {}",
            self.elapsed_s, self.loadavg[0], self.loadavg[1]
        );
        s
    }
}
