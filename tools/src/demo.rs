//! `skmemctl demo`: skmem end to end on a veth pair it makes itself.
//!
//! Two network namespaces joined by a veth (names that cannot clash,
//! removed at the end, on error and on Ctrl-C). In namespace A: skmem's XDP
//! program and an AF_XDP channel on a nexus arena, forwarding every frame
//! back with its MAC addresses swapped (l2fwd). In namespace B: a generator
//! that keeps a window of frames in flight and checks that every one comes
//! back, in order and intact. An eBPF observer (uprobes on the library's
//! lifecycle hooks) watches this very process. Once a second: packets in
//! and out, where the pool's frames are, region memory in use, and the
//! lifecycle events the probes saw; at the end a summary and an exit code
//! that says whether every frame came back and was accounted.

mod display;
mod summary;

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams, FrameAccount};
use skmem_netns::{
    FrameSpec, NetnsPair, PairConfig, Receiver, RxFilter, Sender, SequenceChecker, Side,
    DEFAULT_UDP_PORT,
};
use skmem_xdp::observe::{ObserveTarget, ObservedEvent, Observer};
use skmem_xdp::{AttachMode, XdpFilter, XdpProgram};

/// `skmemctl demo` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "With --workers N, the l2fwd runs in N worker processes that map the
forwarder's arena (skmemctl worker): halfway through, the demo SIGKILLs the
busy one and starts a replacement — the frames it held come back to the
pool, the eBPF events show its mapping come and go, and the traffic
carries on through the others and then the replacement.

Examples:
  skmemctl demo                  # 20 s of l2fwd on a veth pair made for the occasion
  skmemctl demo --workers 2      # the same through worker processes, one killed halfway
  skmemctl demo --duration 5 --json"
)]
pub struct DemoArgs {
    /// Seconds of traffic (at least 1).
    #[arg(long, default_value_t = 20, value_parser = crate::check::seconds_nonzero)]
    pub duration: u64,
    /// Frames kept in flight by the generator.
    #[arg(long, default_value_t = 64, value_parser = crate::check::window)]
    pub window: u64,
    /// Frame size in bytes on the wire (60-2048).
    #[arg(long, default_value_t = 64, value_parser = crate::check::fwd_frame)]
    pub size: usize,
    /// JSON lines instead of a live display.
    #[arg(long)]
    pub json: bool,
    /// Forward through this many worker processes (one is killed halfway
    /// and replaced).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=8))]
    pub workers: u16,
}

/// What the forwarder shares with the display.
#[derive(Default)]
struct Fwd {
    rx: AtomicU64,
    tx: AtomicU64,
    account: Mutex<FrameAccount>,
    mem_inuse: AtomicU64,
    mem_total: AtomicU64,
    ready: AtomicBool,
    xdp_mode: Mutex<String>,
    /// With workers: frames the owner took back from a killed worker or
    /// dropped for a full worker ring — accounted, not forwarded.
    lost: AtomicU64,
    /// With workers: each slot's pid and counters, for the display.
    workers: Mutex<Vec<(Option<u32>, skmem::workers::WorkerCounters)>>,
    /// With workers: the socket they join on.
    socket: Mutex<Option<std::path::PathBuf>>,
}

/// Frames received but not forwarded through the workers: taken back from
/// a gone worker, dropped for a full ring, refused as bad, or received
/// while no worker was there (all in the pool again).
fn not_forwarded(hub: &skmem::workers::WorkerHub) -> u64 {
    hub.counters()
        .iter()
        .map(|w| w.reclaimed + w.dropped_full + w.bad())
        .sum::<u64>()
        + hub.no_worker()
}

/// The forwarder's loop with workers: the owner lends, the workers (other
/// processes, started by the display thread) swap and hand back.
fn forward_through_workers(
    ch: Channel,
    arena: &Arena,
    workers: usize,
    fwd: &Fwd,
    stop: &AtomicBool,
) -> Result<FrameAccount> {
    use skmem::lend::{ArenaOffer, OfferPolicy};
    use skmem::workers::{Spread, WorkerHub};
    let path = std::env::temp_dir().join(format!("skmemctl-demo-{}.sock", std::process::id()));
    let offer = ArenaOffer::serve(arena, &path, OfferPolicy::root_only())?;
    let mut hub = WorkerHub::new(ch, &offer, Spread::FlowHash)?;
    *fwd.socket.lock().unwrap_or_else(|e| e.into_inner()) = Some(path);
    // Ready once every worker has joined.
    let mut last = Instant::now() - Duration::from_secs(1);
    while !stop.load(Ordering::Acquire) {
        if hub.poll()? == 0 {
            hub.wait(10)?;
        } else if hub.behind() {
            // A worker's turn on the CPU before its ring fills.
            std::thread::yield_now();
        }
        let joined = hub.workers().iter().flatten().count();
        if joined == workers {
            fwd.ready.store(true, Ordering::Release);
        }
        if last.elapsed() >= Duration::from_millis(250) {
            last = Instant::now();
            let c = hub.channel().counters();
            fwd.rx.store(c.rx_packets, Ordering::Relaxed);
            fwd.tx.store(c.tx_packets, Ordering::Relaxed);
            let per = hub.counters();
            fwd.lost.store(not_forwarded(&hub), Ordering::Relaxed);
            *fwd.workers.lock().unwrap_or_else(|e| e.into_inner()) =
                hub.workers().into_iter().zip(per.iter().copied()).collect();
            *fwd.account.lock().unwrap_or_else(|e| e.into_inner()) = hub.channel_mut().account();
            let (total, inuse) = arena.mem_stats();
            fwd.mem_inuse.store(inuse as u64, Ordering::Relaxed);
            fwd.mem_total.store(total as u64, Ordering::Relaxed);
        }
    }
    // The workers are told to go by the display; what they held comes back.
    let deadline = Instant::now() + Duration::from_secs(5);
    while (hub.lent() > 0 || hub.channel_mut().account().kernel_tx > 0) && Instant::now() < deadline
    {
        hub.poll()?;
        std::thread::yield_now();
    }
    fwd.lost.store(not_forwarded(&hub), Ordering::Relaxed);
    let account = hub.channel_mut().account();
    *fwd.account.lock().unwrap_or_else(|e| e.into_inner()) = account;
    drop(hub);
    drop(offer);
    Ok(account)
}

fn forward(pair: &NetnsPair, fwd: &Fwd, stop: &AtomicBool, workers: usize) -> Result<FrameAccount> {
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || -> Result<FrameAccount> {
        let filter = XdpFilter::new().with_udp_dst_ports(DEFAULT_UDP_PORT, DEFAULT_UDP_PORT);
        let mut prog = XdpProgram::attach(&ifname, AttachMode::Auto, Some(filter))
            .with_context(|| format!("attaching skmem's XDP program to {ifname}"))?;
        *fwd.xdp_mode.lock().unwrap_or_else(|e| e.into_inner()) = prog.mode().to_string();
        let mut np = NexusParams::new(format!("demo.{ifname}")).with_worker_slots(workers);
        np.pool.packets = 4096;
        let arena = Arena::create_nexus(&np)?;
        let mut cp = ChannelParams::new(&ifname, 0);
        cp.mode = BindMode::Auto;
        let mut ch = Channel::open(&arena, &cp)?;
        prog.add_socket(0, ch.fd())?;
        // Frames on the fill ring before the generator starts: one that
        // arrived first would find none, and be dropped.
        ch.refill()?;
        if workers > 0 {
            return forward_through_workers(ch, &arena, workers, fwd, stop);
        }
        fwd.ready.store(true, Ordering::Release);
        let mut rx = Vec::with_capacity(64);
        let mut last = Instant::now();
        while !stop.load(Ordering::Acquire) {
            ch.complete();
            let n = ch.rx_burst(&mut rx, 64)?;
            if n > 0 {
                let q = ch.reflect(&mut rx)?;
                fwd.rx.fetch_add(n as u64, Ordering::Relaxed);
                fwd.tx.fetch_add(q as u64, Ordering::Relaxed);
            } else {
                ch.poll(10)?;
            }
            if last.elapsed() >= Duration::from_millis(250) {
                last = Instant::now();
                *fwd.account.lock().unwrap_or_else(|e| e.into_inner()) = ch.account();
                let (total, inuse) = arena.mem_stats();
                fwd.mem_inuse.store(inuse as u64, Ordering::Relaxed);
                fwd.mem_total.store(total as u64, Ordering::Relaxed);
                ch.publish_stats()?;
            }
        }
        // Let the last completions come home, then account.
        let deadline = Instant::now() + Duration::from_secs(2);
        while ch.account().kernel_tx > 0 && Instant::now() < deadline {
            ch.complete();
            std::thread::yield_now();
        }
        let account = ch.account();
        *fwd.account.lock().unwrap_or_else(|e| e.into_inner()) = account;
        Ok(account)
    })
}

/// Frames sent by the generator in B and frames that came back.
#[derive(Default)]
struct Flow {
    sent: AtomicU64,
    back: AtomicU64,
}

/// The generator, in B: sends the flow (at most `--window` frames on the
/// round trip) until the duration ends or Ctrl-C, and checks each frame
/// that comes back — MACs swapped, in order (with workers, in order with
/// gaps where a killed worker's frames were taken back), intact. Returns
/// what was wrong (at most ten).
fn generate(
    pair: &NetnsPair,
    spec: &FrameSpec,
    args: &DemoArgs,
    fwd: &Fwd,
    flow: &Flow,
    stop: &AtomicBool,
    start: Instant,
) -> Result<Vec<String>> {
    let (mac_a, mac_b) = (pair.mac(Side::A), pair.mac(Side::B));
    pair.in_ns(Side::B, || -> Result<Vec<String>> {
        let mut rxb = Receiver::open_in_current_ns(
            pair.ifindex(Side::B),
            RxFilter::udp_port(DEFAULT_UDP_PORT),
        )?;
        let tx = Sender::open_in_current_ns(pair.ifindex(Side::B))?;
        // Quiet receives in a row after sending stopped.
        let mut quiet = 0u32;
        let waited_out = |q: &mut u32| {
            *q += 1;
            *q >= if args.workers > 0 { 3 } else { 1 }
        };
        let mut seq = SequenceChecker::new();
        // With workers, frames a killed worker held are taken back
        // by the owner, not forwarded: the rest must come back in
        // order, with gaps where those were.
        let mut last_no: Option<u16> = None;
        let mut errors = Vec::new();
        let end = start + Duration::from_secs(args.duration);
        let mut n = 0u64;
        let gone = || flow.back.load(Ordering::Relaxed) + fwd.lost.load(Ordering::Relaxed);
        loop {
            let sending = Instant::now() < end && !stop.load(Ordering::Relaxed);
            while sending && n.saturating_sub(gone()) < args.window {
                tx.send_frame(&spec.build(n)?)?;
                n += 1;
                flow.sent.store(n, Ordering::Relaxed);
            }
            if !sending && gone() >= n {
                break;
            }
            match rxb.recv(Duration::from_millis(200))? {
                Some(f) => {
                    if f[0..6] != mac_b || f[6..12] != mac_a {
                        errors.push("a frame came back without its MACs swapped".into());
                    }
                    if args.workers == 0 {
                        if let Err(e) = seq.check(f) {
                            errors.push(e.to_string());
                        }
                    } else {
                        match skmem_netns::check_payload(f) {
                            Err(e) => errors.push(e.to_string()),
                            Ok(info) => {
                                let ahead = last_no.map_or(1, |l| info.packet_no.wrapping_sub(l));
                                if !(1..32768).contains(&ahead) {
                                    errors.push(format!(
                                        "packet {} came back after {:?}",
                                        info.packet_no, last_no
                                    ));
                                }
                                last_no = Some(info.packet_no);
                            }
                        }
                    }
                    flow.back.fetch_add(1, Ordering::Relaxed);
                }
                // Nothing for 200 ms after sending stopped: the rest
                // is lost; say so rather than wait forever (the
                // owner's count of what it took back lags 250 ms).
                None if !sending && waited_out(&mut quiet) => {
                    errors.push(format!(
                        "{} frames did not come back",
                        n.saturating_sub(gone())
                    ));
                    break;
                }
                None => {}
            }
            errors.truncate(10);
        }
        Ok(errors)
    })
}

/// `skmemctl demo`.
pub fn run(args: DemoArgs, stop: &'static AtomicBool) -> Result<()> {
    let live = !args.json && std::io::stdout().is_terminal();
    crate::stale::remove("demo");
    // Watch ourselves with eBPF before any arena exists, so every
    // lifecycle event is seen.
    let mut probes = Probes {
        observer: attach_observer(),
        seen: Vec::new(),
    };
    let (pair, spec) = setup(&args)?;
    let demo = Demo {
        args: &args,
        pair: &pair,
        spec,
        fwd: Fwd::default(),
        flow: Flow::default(),
        stop,
        start: Instant::now(),
    };
    // With workers: the one killed halfway, and its replacement.
    let mut killed: (Option<u32>, Option<u32>) = (None, None);
    let (account, gen) = demo.traffic(&mut probes, &mut killed, live);
    let account = account?;
    let errors = gen?;
    // The channel's unbind and the arena's unmap and destroy come last.
    probes.drain();
    let summary = demo.summary(&account, errors, &probes, killed);
    drop(pair);
    summary::say_summary(&args, &summary, &account, probes.observer.is_some())?;
    summary::verdict(&args, &summary)
}

/// The set-up: two namespaces joined by a veth (said on stderr), and the
/// generator's frames from B.
fn setup(args: &DemoArgs) -> Result<(NetnsPair, FrameSpec)> {
    eprintln!("skmemctl demo: creating two network namespaces joined by a veth pair…");
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1))
        .context("creating the namespaces (needs root and iproute2)")?;
    let spec = pair.frame_spec(Side::B, args.size)?;
    eprintln!(
        "  {} ({}) ⇄ {} ({})\n  l2fwd over AF_XDP in {}, generator in {}",
        pair.ifname(Side::A),
        pair.ns_name(Side::A),
        pair.ifname(Side::B),
        pair.ns_name(Side::B),
        pair.ns_name(Side::A),
        pair.ns_name(Side::B)
    );
    Ok((pair, spec))
}

/// The eBPF observer on this process (if it attached) and the lifecycle
/// events it has seen.
struct Probes {
    observer: Option<Observer>,
    seen: Vec<ObservedEvent>,
}

impl Probes {
    /// The events of the next `wait`; without an observer, a sleep as long
    /// (the display's pace either way).
    fn wait(&mut self, wait: Duration) {
        match self.observer.as_mut() {
            Some(o) => self.seen.extend(o.next_events(wait).unwrap_or_default()),
            None => std::thread::sleep(wait),
        }
    }

    /// The events that come in the next half second, once the traffic is
    /// over.
    fn drain(&mut self) {
        if let Some(o) = self.observer.as_mut() {
            let until = Instant::now() + Duration::from_millis(500);
            while Instant::now() < until {
                self.seen.extend(
                    o.next_events(Duration::from_millis(100))
                        .unwrap_or_default(),
                );
            }
        }
    }
}

/// What the stages of one run share: its options, its pair, the flow's
/// frames, the forwarder's and the generator's counts, and the clock.
struct Demo<'a> {
    args: &'a DemoArgs,
    pair: &'a NetnsPair,
    spec: FrameSpec,
    fwd: Fwd,
    flow: Flow,
    stop: &'static AtomicBool,
    start: Instant,
}

impl Demo<'_> {
    /// The traffic: the forwarder in A and the generator in B on threads
    /// of their own, the display (and the workers) on this one until the
    /// generator is done; then the workers, the generator and the
    /// forwarder end, in that order. The forwarder's frame account and
    /// the generator's errors.
    fn traffic(
        &self,
        probes: &mut Probes,
        killed: &mut (Option<u32>, Option<u32>),
        live: bool,
    ) -> (Result<FrameAccount>, Result<Vec<String>>) {
        let fwd_stop = AtomicBool::new(false);
        let fwd_done = AtomicBool::new(false);
        std::thread::scope(|s| {
            let fwd_done = &fwd_done;
            // A thread that cannot start (no memory for its stack) is the run's
            // error, not a panic: what started is stopped and torn down.
            let not_started = |what: &str, e: std::io::Error| {
                anyhow::Error::new(e).context(format!("starting the {what} thread"))
            };
            let fwd_thread = std::thread::Builder::new()
                .name("demo-fwd".into())
                .spawn_scoped(s, || {
                    let workers = usize::from(self.args.workers);
                    let r = forward(self.pair, &self.fwd, &fwd_stop, workers);
                    fwd_done.store(true, Ordering::Release);
                    r
                });
            let fwd_thread = match fwd_thread {
                Ok(t) => t,
                Err(e) => return (Err(not_started("forwarder", e)), Ok(Vec::new())),
            };
            let gen = std::thread::Builder::new()
                .name("demo-gen".into())
                .spawn_scoped(s, || -> Result<Vec<String>> {
                    wait_ready(&self.fwd, fwd_done)?;
                    generate(
                        self.pair, &self.spec, self.args, &self.fwd, &self.flow, self.stop,
                        self.start,
                    )
                });
            let gen = match gen {
                Ok(t) => t,
                Err(e) => {
                    fwd_stop.store(true, Ordering::Release);
                    let _ = fwd_thread.join();
                    return (Err(not_started("generator", e)), Ok(Vec::new()));
                }
            };
            let procs = self.display(&gen, probes, killed, live);
            end_workers(procs);
            let gen = gen
                .join()
                .map_err(|_| anyhow::anyhow!("the generator panicked"));
            fwd_stop.store(true, Ordering::Release);
            let account = fwd_thread
                .join()
                .map_err(|_| anyhow::anyhow!("the forwarder panicked"))
                .and_then(|r| r);
            (account, gen.and_then(|r| r))
        })
    }

    /// The display, until the generator is done (and, with workers, their
    /// processes: started once the forwarder offers its arena, one killed
    /// and replaced halfway). Returns the worker processes, still running.
    fn display(
        &self,
        gen: &std::thread::ScopedJoinHandle<'_, Result<Vec<String>>>,
        probes: &mut Probes,
        killed: &mut (Option<u32>, Option<u32>),
        live: bool,
    ) -> Vec<std::process::Child> {
        let mut last = (0u64, 0u64, Instant::now());
        let mut lines = 0;
        let mut procs: Vec<std::process::Child> = Vec::new();
        let half = self.start + Duration::from_secs(self.args.duration) / 2;
        while !gen.is_finished() {
            if self.args.workers > 0 {
                if let Err(e) = tend_workers(self.args, &self.fwd, &mut procs, half, killed) {
                    eprintln!("skmemctl demo: {e:#}");
                    self.stop.store(true, Ordering::Relaxed);
                }
            }
            probes.wait(Duration::from_millis(100));
            if last.2.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let tick = self.tick(probes, &mut last);
            display::show(&tick, self.args.json, live, &mut lines);
        }
        procs
    }
}

/// Until the forwarder is ready (its frames on the fill ring): an error if
/// it stopped before.
fn wait_ready(fwd: &Fwd, fwd_done: &AtomicBool) -> Result<()> {
    while !fwd.ready.load(Ordering::Acquire) {
        if fwd_done.load(Ordering::Acquire) {
            bail!("the forwarder stopped before it was ready");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

/// The tear-down of the worker processes: each told to go (SIGTERM), then
/// each waited for.
fn end_workers(mut procs: Vec<std::process::Child>) {
    for p in &mut procs {
        // SAFETY: kill has no memory preconditions; the pid is our
        // child's, not yet waited for.
        unsafe { libc::kill(p.id() as i32, libc::SIGTERM) };
    }
    for p in &mut procs {
        let _ = p.wait();
    }
}

/// The eBPF observer on this process, or `None` (said on stderr) when it
/// cannot attach: the demo goes on without it.
fn attach_observer() -> Option<Observer> {
    match Observer::attach(ObserveTarget {
        pid: Some(std::process::id() as i32),
        binaries: Vec::new(),
        scan: Some(false),
        ..ObserveTarget::default()
    }) {
        Ok(o) => Some(o),
        Err(e) => {
            eprintln!(
                "skmemctl demo: the eBPF observer could not attach ({e}); going on without it"
            );
            None
        }
    }
}

/// With workers: starts them once the forwarder offers its arena, and at
/// `half` SIGKILLs the busiest and starts its replacement (`killed`: the
/// two pids).
fn tend_workers(
    args: &DemoArgs,
    fwd: &Fwd,
    procs: &mut Vec<std::process::Child>,
    half: Instant,
    killed: &mut (Option<u32>, Option<u32>),
) -> Result<()> {
    let Some(path) = fwd.socket.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
        return Ok(());
    };
    let spawn = || -> Result<std::process::Child> {
        std::process::Command::new(std::env::current_exe()?)
            .args(crate::workers::verbosity())
            .args(["worker", "--mode", "l2fwd", "--path"])
            .arg(&path)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting a worker process")
    };
    while procs.len() < usize::from(args.workers) {
        procs.push(spawn()?);
    }
    if killed.0.is_none() && Instant::now() >= half {
        // The busiest worker: the one lent the most.
        let busiest = fwd
            .workers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(|(pid, c)| pid.map(|p| (c.lent, p)))
            .max()
            .map(|(_, p)| p);
        if let Some(pid) = busiest {
            if let Some(i) = procs.iter().position(|c| c.id() == pid) {
                procs[i].kill().context("SIGKILL of a worker")?;
                let _ = procs[i].wait();
                procs[i] = spawn()?;
                *killed = (Some(pid), Some(procs[i].id()));
            }
        }
    }
    Ok(())
}
