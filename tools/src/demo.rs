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

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
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
    /// Seconds of traffic.
    #[arg(long, default_value_t = 20, value_parser = crate::check::seconds)]
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

/// One line of the display.
#[derive(Debug, Serialize)]
struct Tick {
    elapsed_s: f64,
    events: Vec<String>,
    sent: u64,
    returned: u64,
    fwd_rx_pps: f64,
    fwd_tx_pps: f64,
    frames: FrameAccount,
    region_mem_inuse: u64,
    region_mem_total: u64,
    /// With workers: (slot, pid, lent, handed back, reclaimed).
    workers: Vec<(usize, Option<u32>, u64, u64, u64)>,
}

/// The end of the run.
#[derive(Debug, Serialize)]
struct Summary {
    seconds: f64,
    sent: u64,
    returned: u64,
    in_order_and_intact: bool,
    frames_accounted: bool,
    xdp_mode: String,
    events_seen: Vec<String>,
    errors: Vec<String>,
    /// With workers: frames taken back from the killed worker or dropped
    /// for a full ring (in the pool again, not forwarded).
    lost_to_workers: u64,
    /// With workers: the worker killed halfway, and its replacement.
    killed: Option<u32>,
    replacement: Option<u32>,
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
    say_summary(&args, &summary, &account, probes.observer.is_some())?;
    verdict(&args, &summary)
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
            show(&tick, self.args.json, live, &mut lines);
        }
        procs
    }

    /// One refresh of the display: the forwarder's rates since `last` (its
    /// counts then, and when), which becomes now.
    fn tick(&self, probes: &Probes, last: &mut (u64, u64, Instant)) -> Tick {
        let fwd = &self.fwd;
        let dt = last.2.elapsed().as_secs_f64();
        let (rx, tx) = (
            fwd.rx.load(Ordering::Relaxed),
            fwd.tx.load(Ordering::Relaxed),
        );
        let tick = Tick {
            elapsed_s: self.start.elapsed().as_secs_f64(),
            events: probes
                .seen
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(ObservedEvent::line)
                .collect(),
            sent: self.flow.sent.load(Ordering::Relaxed),
            returned: self.flow.back.load(Ordering::Relaxed),
            fwd_rx_pps: (rx - last.0) as f64 / dt,
            fwd_tx_pps: (tx - last.1) as f64 / dt,
            frames: *fwd.account.lock().unwrap_or_else(|e| e.into_inner()),
            region_mem_inuse: fwd.mem_inuse.load(Ordering::Relaxed),
            region_mem_total: fwd.mem_total.load(Ordering::Relaxed),
            workers: fwd
                .workers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .enumerate()
                .map(|(i, (pid, c))| (i, *pid, c.lent, c.sent + c.freed, c.reclaimed))
                .collect(),
        };
        *last = (rx, tx, Instant::now());
        tick
    }

    /// The report of the run, from the forwarder's final `account`, the
    /// generator's `errors`, the events the probes saw and, with workers,
    /// the one `killed` and its replacement.
    fn summary(
        &self,
        account: &FrameAccount,
        errors: Vec<String>,
        probes: &Probes,
        killed: (Option<u32>, Option<u32>),
    ) -> Summary {
        Summary {
            seconds: self.start.elapsed().as_secs_f64(),
            sent: self.flow.sent.load(Ordering::Relaxed),
            returned: self.flow.back.load(Ordering::Relaxed),
            in_order_and_intact: errors.is_empty(),
            frames_accounted: account.check(true).is_ok(),
            xdp_mode: self
                .fwd
                .xdp_mode
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            events_seen: probes.seen.iter().map(|e| e.event.to_owned()).collect(),
            errors,
            lost_to_workers: self.fwd.lost.load(Ordering::Relaxed),
            killed: killed.0,
            replacement: killed.1,
        }
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

/// The demo's verdict: an error unless every frame came back (or was taken
/// back from a worker), in order and intact, every frame was accounted and,
/// with workers, the killed one was replaced.
fn verdict(args: &DemoArgs, summary: &Summary) -> Result<()> {
    let all_back = summary.sent == summary.returned + summary.lost_to_workers;
    let replaced = args.workers == 0 || summary.replacement.is_some();
    if !all_back || !summary.in_order_and_intact || !summary.frames_accounted || !replaced {
        bail!("the demo found a problem (see above)");
    }
    Ok(())
}

/// The summary: JSON, or what a reader of 80 columns sees.
fn say_summary(
    args: &DemoArgs,
    summary: &Summary,
    account: &FrameAccount,
    observed: bool,
) -> Result<()> {
    if args.json {
        return crate::output::json("demo_summary", summary);
    }
    outln!();
    outln!(
        "summary ({:.1} s, XDP {}):",
        summary.seconds,
        summary.xdp_mode
    );
    outln!("  frames sent      {}", summary.sent);
    if args.workers > 0 {
        outln!(
            "  frames returned  {} + {} {}\n    (+ taken back from the killed worker or dropped for a full ring)",
            summary.returned,
            summary.lost_to_workers,
            tick_mark(summary.sent == summary.returned + summary.lost_to_workers)
        );
        if let (Some(k), Some(r)) = (summary.killed, summary.replacement) {
            outln!("  worker {k} SIGKILLed halfway; worker {r} took its slot");
        }
    } else {
        outln!(
            "  frames returned  {} {}",
            summary.returned,
            tick_mark(summary.sent == summary.returned)
        );
    }
    outln!(
        "  in order, intact {}",
        tick_mark(summary.in_order_and_intact)
    );
    outln!(
        "  frames accounted {} (pool {} + slots {} + app {} + lent {}\n    + kernel RX {} + kernel TX {} = {})",
        tick_mark(summary.frames_accounted),
        account.pool,
        account.staged,
        account.app,
        account.lent,
        account.kernel_rx,
        account.kernel_tx,
        account.total
    );
    if observed {
        let seen = if summary.events_seen.is_empty() {
            "none".to_owned()
        } else {
            wrap(&summary.events_seen.join(", "), 40, "\n    ")
        };
        outln!("  lifecycle events the probes saw: {seen}");
    }
    for e in &summary.errors {
        outln!("  error: {e}");
    }
    outln!("  namespaces and veth removed");
    Ok(())
}

/// The eBPF observer on this process, or `None` (said on stderr) when it
/// cannot attach: the demo goes on without it.
fn attach_observer() -> Option<Observer> {
    match Observer::attach(ObserveTarget {
        pid: Some(std::process::id() as i32),
        binaries: Vec::new(),
        scan: Some(false),
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

fn tick_mark(ok: bool) -> &'static str {
    if ok {
        "✓"
    } else {
        "✗"
    }
}

/// `text` cut at spaces into lines of at most `width` characters (a word
/// longer than that stays whole), joined by `sep`.
fn wrap(text: &str, width: usize, sep: &str) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split(' ') {
        let last = lines.last_mut().expect("never empty");
        if !last.is_empty() && last.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_owned());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines.join(sep)
}

/// The width of the terminal on stdout, if it is one.
fn terminal_columns() -> Option<usize> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

fn show(t: &Tick, json: bool, live: bool, lines: &mut usize) {
    if json {
        if let Err(e) = crate::output::json("demo_tick", t) {
            tracing::warn!(error = %e, "a tick not written");
        }
        return;
    }
    let f = &t.frames;
    // Every line fits 80 columns; narrower terminals cut them (below).
    let mut text = vec![
        format!(
            "{:>5.1}s sent {:>9} back {:>9} | l2fwd in {} out {}",
            t.elapsed_s,
            t.sent,
            t.returned,
            crate::units::mpps(t.fwd_rx_pps),
            crate::units::mpps(t.fwd_tx_pps)
        ),
        format!(
            "  frames: pool {:>5} slots {:>4} fill+RX {:>5} app {:>3} TX+cq {:>4} of {}",
            f.pool, f.staged, f.kernel_rx, f.app, f.kernel_tx, f.total
        ),
        format!(
            "  regions: {:.1} MiB in use of {:.1} MiB",
            t.region_mem_inuse as f64 / (1 << 20) as f64,
            t.region_mem_total as f64 / (1 << 20) as f64
        ),
    ];
    for (slot, pid, lent, back, reclaimed) in &t.workers {
        text.push(format!(
            "  worker {slot}: pid {:>7} lent {lent:>9} back {back:>9} reclaimed {reclaimed:>5}",
            pid.map_or("-".to_owned(), |p| p.to_string())
        ));
    }
    text.push("  events (eBPF):".to_owned());
    for i in 0..3 {
        text.push(format!(
            "    {}",
            t.events.get(i).map_or("", String::as_str)
        ));
    }
    if live {
        // A line longer than the terminal wraps, and the redraw (which
        // moves up one row per line) would then land on the wrong rows:
        // cut every line to the width, read again at every refresh so a
        // resized window (SIGWINCH) is followed.
        let cols = terminal_columns().unwrap_or(80);
        for l in &mut text {
            if l.chars().count() >= cols {
                *l = l.chars().take(cols.saturating_sub(1)).collect();
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if live && *lines > 0 {
        // Redraw in place: up as many lines as last time, clear each.
        let _ = write!(out, "\x1b[{}A", *lines);
    }
    for l in &text {
        if live {
            let _ = writeln!(out, "\x1b[2K{l}");
        } else {
            let _ = writeln!(out, "{l}");
        }
    }
    *lines = text.len();
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::wrap;

    #[test]
    fn wrap_cuts_at_spaces_within_the_width() {
        let w = wrap("create, map, bind, map, unmap, unbind, destroy", 20, "\n");
        for line in w.lines() {
            assert!(line.chars().count() <= 20, "{line}");
        }
        assert_eq!(
            w.replace('\n', " "),
            "create, map, bind, map, unmap, unbind, destroy"
        );
        assert_eq!(
            wrap("averyveryverylongword x", 5, "|"),
            "averyveryverylongword|x"
        );
    }
}
