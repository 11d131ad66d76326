//! Worker processes: `skmemctl worker` (one worker: maps an owner's arena,
//! takes a worker slot, runs rxdrop or l2fwd on the packets lent to it) and
//! `skmemctl fwd --workers N` (the owner: each queue's channel lent to N
//! `skmemctl worker` processes it starts, with live rates for each).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams};
use skmem::lend::{ArenaOffer, OfferPolicy};
use skmem::workers::{Spread, WorkerChannel, WorkerCounters, WorkerHub};
use skmem_xdp::XdpProgram;

use crate::fwd::{FwdArgs, Mode};
use crate::thread::Placement;

/// What a worker does with the packets lent to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkMode {
    /// Look at each packet and free it.
    Rxdrop,
    /// Swap the Ethernet addresses in place and hand it back to send.
    L2fwd,
}

/// `skmemctl worker` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Maps the arena an owner offers (skmemctl fwd --workers), takes a
worker slot, and processes the packets lent to it in place until Ctrl-C,
--duration, or the owner goes. Prints `worker PID slot N` once it has a
slot, then a summary line.

Examples:
  skmemctl worker --path /run/skmem-fwd.sock --mode l2fwd"
)]
pub struct WorkerArgs {
    /// The owner's Unix socket.
    #[arg(long)]
    pub path: PathBuf,
    /// What to do with each packet.
    #[arg(long, value_enum, default_value = "l2fwd")]
    pub mode: WorkMode,
    /// Packets per burst.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    pub batch: u16,
    /// Seconds to run (0 = until Ctrl-C or the owner goes).
    #[arg(long, default_value_t = 0, value_parser = crate::check::seconds)]
    pub duration: u64,
    /// Pin this worker to a CPU.
    #[arg(long, value_name = "CPU", value_parser = crate::check::cpu)]
    pub cpu: Option<usize>,
    /// Run at SCHED_FIFO with this priority (1-99): the worker runs as soon
    /// as the owner lends it something, ahead of every SCHED_OTHER thread
    /// on its CPU (a threaded NAPI's kthread included), and sleeps when
    /// nothing is lent. Give the owner the same on the same CPU (fwd
    /// --workers --fifo does): a worker waiting for room to hand back
    /// yields only to threads of its own priority.
    #[arg(long, value_name = "PRIORITY", value_parser = crate::check::fifo)]
    pub fifo: Option<u8>,
}

/// The `skmemctl worker` arguments that place a worker as `at` says.
fn worker_args(at: Placement) -> Vec<String> {
    let mut a = Vec::new();
    if let Some(cpu) = at.cpu {
        a.extend(["--cpu".to_owned(), cpu.to_string()]);
    }
    if let Some(p) = at.fifo {
        a.extend(["--fifo".to_owned(), p.to_string()]);
    }
    a
}

/// `skmemctl worker`.
pub fn run_worker(args: WorkerArgs, stop: &'static AtomicBool) -> Result<()> {
    Placement {
        cpu: args.cpu,
        fifo: args.fifo,
    }
    .apply()?;
    let mut w = WorkerChannel::connect(&args.path)
        .with_context(|| format!("joining the owner at {}", args.path.display()))?;
    outln!("worker {} slot {}", std::process::id(), w.slot());
    let _ = std::io::stdout().flush();
    let batch = usize::from(args.batch);
    let end = (args.duration > 0).then(|| Instant::now() + Duration::from_secs(args.duration));
    let mut frames = Vec::with_capacity(batch);
    while !stop.load(Ordering::Relaxed) && end.is_none_or(|e| Instant::now() < e) {
        if w.arena().owner_gone() || w.arena().is_redirected() {
            break;
        }
        let n = match args.mode {
            WorkMode::Rxdrop => w.inspect_rx(batch, |_, _| {}),
            WorkMode::L2fwd => w.rx_burst(&mut frames, batch),
        };
        let n = match n {
            Ok(n) => n,
            // Redirected between the check and the call: done.
            Err(skmem::Error::Lend(skmem::LendError::Redirected { .. })) => break,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            w.wait(100)?;
            continue;
        }
        if args.mode == WorkMode::L2fwd {
            for f in &mut frames {
                let d = w.data_mut(f)?;
                if d.len() >= 12 {
                    for i in 0..6 {
                        d.swap(i, i + 6);
                    }
                }
            }
            while !frames.is_empty() {
                if w.tx_burst(&mut frames)? == 0 {
                    std::thread::yield_now();
                }
            }
        }
    }
    let s = w.stats();
    outln!(
        "worker {} done: {} received, {} sent, {} freed, {} bad from the owner",
        std::process::id(),
        s.received,
        s.sent,
        s.freed,
        s.bad_descs
    );
    Ok(())
}

/// One worker process of `fwd --workers`.
pub(crate) struct WorkerProc {
    child: Child,
}

impl WorkerProc {
    /// SIGKILLs the worker (no chance to hand anything back) and reaps it.
    pub(crate) fn kill_now(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        // Reaped already (`kill_now`): its pid may belong to another
        // process by now, so nothing is sent.
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        // SAFETY: kill has no memory preconditions; the pid is our child's
        // (not yet waited for, so not reused).
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let by = Instant::now() + Duration::from_secs(2);
        while Instant::now() < by {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl WorkMode {
    /// The name on the command line.
    fn name(self) -> &'static str {
        match self {
            WorkMode::Rxdrop => "rxdrop",
            WorkMode::L2fwd => "l2fwd",
        }
    }
}

/// The `-v` flags that give a child `skmemctl` this process's log level
/// (`RUST_LOG`, when set, reaches it through the environment and decides
/// there as here).
pub(crate) fn verbosity() -> &'static [&'static str] {
    use tracing::level_filters::LevelFilter;
    match LevelFilter::current() {
        LevelFilter::TRACE => &["-vvv"],
        LevelFilter::DEBUG => &["-vv"],
        LevelFilter::INFO => &["-v"],
        _ => &[],
    }
}

/// Starts a `skmemctl worker` on `path`.
pub(crate) fn spawn_worker(
    path: &Path,
    mode: WorkMode,
    batch: usize,
    at: Placement,
) -> Result<WorkerProc> {
    let exe = std::env::current_exe().context("finding skmemctl itself")?;
    let child = Command::new(exe)
        .args(verbosity())
        .args(["worker", "--path"])
        .arg(path)
        .args(["--mode", mode.name(), "--batch", &batch.to_string()])
        .args(worker_args(at))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting a worker process")?;
    Ok(WorkerProc { child })
}

/// One line of `fwd --workers` rates.
#[derive(Debug, Serialize)]
struct Line {
    /// The queue, when `fwd --workers` owns several.
    #[serde(skip_serializing_if = "Option::is_none")]
    queue: Option<u32>,
    elapsed_s: f64,
    rx_pps: f64,
    tx_pps: f64,
    no_worker: u64,
    workers: Vec<WorkerLine>,
}

#[derive(Debug, Serialize)]
struct WorkerLine {
    slot: usize,
    pid: Option<u32>,
    lent_pps: f64,
    back_pps: f64,
    dropped_full: u64,
    bad: u64,
    reclaimed: u64,
    joins: u64,
}

/// The end of a `fwd --workers` run, one per queue.
#[derive(Debug, Serialize)]
struct Summary {
    mode: Mode,
    iface: String,
    queue: u32,
    workers: usize,
    seconds: f64,
    rx_packets: u64,
    tx_packets: u64,
    no_worker: u64,
    per_worker: Vec<WorkerCounters>,
    frames_accounted: bool,
    /// What stopped the run early (the interface went away or changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_by: Option<String>,
    /// The CPU the owner thread and its workers were pinned to (`--cpu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    cpu: Option<usize>,
    /// The owner thread's and its workers' scheduling policy
    /// (`SCHED_FIFO` with `--fifo`).
    policy: &'static str,
}

/// One queue of `fwd --workers`: its own arena, channel, offer and hub,
/// and the worker processes lent to.
struct QueueOwner {
    queue: u32,
    path: PathBuf,
    hub: WorkerHub,
    // Dropped after the hub: the offer serves the arena the hub's channel
    // lives in.
    _offer: ArenaOffer,
    _arena: Arena,
}

/// `skmemctl fwd --workers N`: the owner of each `--queue`, each lending
/// its channel to N worker processes it starts (and restarts, when one
/// dies): one worker per queue with `--workers 1`, several on one queue
/// with one `--queue`. Each queue runs in its own thread.
pub fn run_fwd(args: &FwdArgs, workers: u16, stop: &'static AtomicBool) -> Result<()> {
    let mode = work_mode(args.mode)?;
    let n = usize::from(workers);
    let spread = if args.round_robin {
        Spread::RoundRobin
    } else {
        Spread::FlowHash
    };
    let mut prog = XdpProgram::attach(&args.iface, args.xdp_mode.attach_mode(), args.filter)
        .with_context(|| format!("attaching the XDP program to {}", args.iface))?;
    let mut owners = Vec::new();
    for &q in &args.queues {
        owners.push(open_owner(args, &mut prog, (q, n), mode, spread)?);
    }
    let results = run_owners(args, &mut owners, (mode, n), stop);
    // Torn down in order: each hub before its offer and arena, then the
    // XDP program.
    drop(owners);
    drop(prog);
    report(results, mode, args.json)
}

/// What the workers do for `fwd`'s `--mode`: txonly is refused, as workers
/// process received packets.
fn work_mode(mode: Mode) -> Result<WorkMode> {
    match mode {
        Mode::Rxdrop => Ok(WorkMode::Rxdrop),
        Mode::L2fwd => Ok(WorkMode::L2fwd),
        Mode::Txonly => Err(crate::check::Usage(
            "--workers: rxdrop or l2fwd (workers process received packets)".into(),
        )
        .into()),
    }
}

/// Queue `q`'s owner: a nexus arena with a worker slot per worker, its
/// channel registered in `prog`'s XSKMAP and its fill ring filled, the
/// arena offered on a socket of its own, and the hub that lends to the
/// workers who join there.
fn open_owner(
    args: &FwdArgs,
    prog: &mut XdpProgram,
    (q, n): (u32, usize),
    mode: WorkMode,
    spread: Spread,
) -> Result<QueueOwner> {
    let mut np = NexusParams::new(format!("{}q{q}", args.iface)).with_worker_slots(n);
    np.pool.packets = args.packets;
    let arena = Arena::create_nexus(&np)?;
    let mut cp = ChannelParams::new(&args.iface, q);
    cp.mode = if args.copy {
        BindMode::Copy
    } else if args.zero_copy {
        BindMode::ZeroCopy
    } else {
        BindMode::Auto
    };
    cp.batch = args.batch;
    let mut ch = Channel::open(&arena, &cp)
        .with_context(|| format!("binding an AF_XDP socket to {} queue {q}", args.iface))?;
    prog.add_socket(q, ch.fd())?;
    ch.refill()?;
    let path = std::env::temp_dir().join(format!("skmemctl-fwd-{}-q{q}.sock", std::process::id()));
    let offer = ArenaOffer::serve(&arena, &path, OfferPolicy::root_only())?;
    let hub = WorkerHub::new(ch, &offer, spread)?;
    if !args.json {
        eprintln!(
            "skmemctl fwd: {} on {} queue {q}, {n} worker process{} ({})\n  socket {}",
            mode.name(),
            args.iface,
            if n == 1 { "" } else { "es" },
            match spread {
                Spread::FlowHash => "flow hash",
                Spread::RoundRobin => "round-robin",
            },
            path.display()
        );
    }
    Ok(QueueOwner {
        queue: q,
        path,
        hub,
        _offer: offer,
        _arena: arena,
    })
}

/// Each queue's owner loop on a thread of its own, until the run ends;
/// their summaries (or errors) in queue order.
fn run_owners(
    args: &FwdArgs,
    owners: &mut [QueueOwner],
    (mode, n): (WorkMode, usize),
    stop: &'static AtomicBool,
) -> Vec<Result<Summary>> {
    let many = owners.len() > 1;
    std::thread::scope(|s| {
        let mut results = Vec::new();
        let mut threads = Vec::new();
        for (i, o) in owners.iter_mut().enumerate() {
            let q = o.queue;
            let at = Placement {
                cpu: args.cpus.get(i).copied(),
                fifo: args.fifo,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("fwd-q{q}"))
                .spawn_scoped(s, move || run_queue(args, o, (mode, at), n, many, stop));
            match spawned {
                Ok(t) => threads.push(t),
                Err(e) => {
                    // The queues already running stop and give back what
                    // they hold; the error is the run's.
                    stop.store(true, Ordering::Relaxed);
                    results.push(Err(anyhow::Error::new(e)
                        .context(format!("starting the owner thread of queue {q}"))));
                    break;
                }
            }
        }
        for t in threads {
            results.push(
                t.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a queue's owner thread panicked"))),
            );
        }
        results
    })
}

/// Each queue's summary, then the run's outcome: the first queue's error,
/// else what stopped the run, else the queues whose frames are not all
/// accounted for.
fn report(results: Vec<Result<Summary>>, mode: WorkMode, json: bool) -> Result<()> {
    let mut bad = Vec::new();
    let mut stopped_by = None;
    let mut failed = None;
    for r in results {
        let summary = match r {
            Ok(s) => s,
            Err(e) => {
                failed.get_or_insert(e);
                continue;
            }
        };
        print_summary(&summary, mode, json)?;
        if !summary.frames_accounted {
            bad.push(summary.queue);
        }
        stopped_by = stopped_by.or(summary.stopped_by);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if let Some(why) = stopped_by {
        bail!(why);
    }
    if !bad.is_empty() {
        bail!("frames not accounted for on queue(s) {bad:?}");
    }
    Ok(())
}

/// One queue's owner loop: lends, takes back, restarts dead workers,
/// prints its lines; at the end takes every frame back.
fn run_queue(
    args: &FwdArgs,
    o: &mut QueueOwner,
    (mode, at): (WorkMode, Placement),
    n: usize,
    many: bool,
    stop: &AtomicBool,
) -> Result<Summary> {
    let q = o.queue;
    let hub = &mut o.hub;
    // The owner where its workers will be: on a CPU shared with a threaded
    // NAPI, SCHED_FIFO lets owner and workers run the moment they have
    // work and NAPI in their waits (see BENCHMARKS.md, worker processes).
    at.apply()?;
    let policy = crate::thread::policy();
    let mut procs = (0..n)
        .map(|_| spawn_worker(&o.path, mode, args.batch, at))
        .collect::<Result<Vec<_>>>()?;
    let started = Instant::now();
    // 0: until Ctrl-C.
    let end = (args.duration > 0).then(|| started + Duration::from_secs(args.duration));
    let mut last = (
        Instant::now(),
        hub.channel().counters(),
        hub.counters().to_vec(),
    );
    let every = Duration::from_secs_f64(args.interval);
    let mut next_line = Instant::now() + every;
    // The interface, looked at every 100 ms: gone or changed ends the run.
    let link = crate::link::Link::of(&args.iface)?;
    let mut next_look = Instant::now();
    let mut stopped_by = None;
    while !stop.load(Ordering::Relaxed) && end.is_none_or(|end| Instant::now() < end) {
        if Instant::now() >= next_look {
            next_look += Duration::from_millis(100);
            if let Err(change) = link.check() {
                stopped_by = Some(change.to_string());
                stop.store(true, Ordering::Relaxed);
                break;
            }
        }
        let moved = hub.poll()?;
        if moved == 0 && !args.spin {
            hub.wait(50)?;
        } else if hub.behind() {
            // A worker's ring is half full: its turn on the CPU before
            // the ring fills and packets are dropped for it.
            std::thread::yield_now();
        }
        // A worker that died is restarted: its frames are back already.
        // Not when the run is ending: a Ctrl-C in the terminal reaches the
        // workers too (one process group), and they end with it.
        for p in &mut procs {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                eprintln!(
                    "skmemctl fwd: worker {} of queue {q} ended ({status}); starting another",
                    p.child.id()
                );
                *p = spawn_worker(&o.path, mode, args.batch, at)?;
            }
        }
        if Instant::now() >= next_line {
            next_line += every;
            let now = (
                Instant::now(),
                hub.channel().counters(),
                hub.counters().to_vec(),
            );
            print_line(&last, &now, hub, started, many.then_some(q), args.json);
            last = now;
        }
    }
    drop(procs);
    // The workers are gone: every frame they held comes back. The drain
    // polls and yields; at SCHED_FIFO that would keep NAPI off this CPU.
    if at.fifo.is_some() {
        crate::thread::run_other()?;
    }
    let by = Instant::now() + Duration::from_secs(5);
    while (hub.lent() > 0 || hub.channel_mut().account().kernel_tx > 0) && Instant::now() < by {
        hub.poll()?;
        std::thread::yield_now();
    }
    let account = hub.channel_mut().account();
    let c = hub.channel().counters();
    let summary = Summary {
        mode: args.mode,
        iface: args.iface.clone(),
        queue: q,
        workers: n,
        seconds: started.elapsed().as_secs_f64(),
        rx_packets: c.rx_packets,
        tx_packets: c.tx_packets,
        no_worker: hub.no_worker(),
        per_worker: hub.counters().to_vec(),
        frames_accounted: account.check(true).is_ok() && account.lent == 0,
        stopped_by,
        cpu: at.cpu,
        policy,
    };
    if !summary.frames_accounted {
        tracing::warn!(queue = q, ?account, "frames not accounted for");
    }
    Ok(summary)
}

/// A queue's summary: a `workers_summary` record, or lines.
fn print_summary(summary: &Summary, mode: WorkMode, json: bool) -> Result<()> {
    if json {
        return crate::output::json("workers_summary", summary);
    }
    let n = summary.workers;
    outln!(
        "{} on queue {} through {n} worker{} in {:.1} s: {} received, {} sent",
        mode.name(),
        summary.queue,
        if n == 1 { "" } else { "s" },
        summary.seconds,
        summary.rx_packets,
        summary.tx_packets,
    );
    outln!(
        "frames {}",
        if summary.frames_accounted {
            "all accounted for"
        } else {
            "NOT all accounted for"
        }
    );
    match summary.cpu {
        Some(cpu) => outln!("owner and workers: {} on cpu{cpu}", summary.policy),
        None => outln!("owner and workers: {}", summary.policy),
    }
    for (i, w) in summary.per_worker.iter().enumerate() {
        outln!(
            "  slot {i}: lent {}, sent {}, freed {}, reclaimed {}",
            w.lent,
            w.sent,
            w.freed,
            w.reclaimed
        );
        outln!(
            "          joins {}, dropped (ring full) {}, bad {}",
            w.joins,
            w.dropped_full,
            w.bad()
        );
    }
    Ok(())
}

type Snapshot = (
    Instant,
    skmem::channel::ChannelCounters,
    Vec<WorkerCounters>,
);

/// One block of rates; `queue` names the queue when there are several.
fn print_line(
    last: &Snapshot,
    now: &Snapshot,
    hub: &WorkerHub,
    started: Instant,
    queue: Option<u32>,
    json: bool,
) {
    let dt = now.0.duration_since(last.0).as_secs_f64().max(1e-9);
    let pids = hub.workers();
    let line = Line {
        queue,
        elapsed_s: now.0.duration_since(started).as_secs_f64(),
        rx_pps: (now.1.rx_packets - last.1.rx_packets) as f64 / dt,
        tx_pps: (now.1.tx_packets - last.1.tx_packets) as f64 / dt,
        no_worker: hub.no_worker(),
        workers: now
            .2
            .iter()
            .zip(&last.2)
            .enumerate()
            .map(|(slot, (n, l))| WorkerLine {
                slot,
                pid: pids.get(slot).copied().flatten(),
                lent_pps: (n.lent - l.lent) as f64 / dt,
                back_pps: ((n.sent + n.freed) - (l.sent + l.freed)) as f64 / dt,
                dropped_full: n.dropped_full,
                bad: n.bad(),
                reclaimed: n.reclaimed,
                joins: n.joins,
            })
            .collect(),
    };
    if json {
        if let Err(e) = crate::output::json("workers_rate", &line) {
            tracing::warn!(error = %e, "a line not written");
        }
        return;
    }
    // One block, printed at once: the queues' threads do not interleave.
    let who = queue.map_or("owner".to_owned(), |q| format!("q{q:<4}"));
    use crate::units::mpps;
    let mut block = format!(
        "{:>6.1}s {who} rx {}  tx {}",
        line.elapsed_s,
        mpps(line.rx_pps),
        mpps(line.tx_pps)
    );
    for w in &line.workers {
        let pid = w.pid.map_or("-".to_owned(), |p| p.to_string());
        block.push_str(&format!(
            "\n  w{} pid {:>7} lent {} back {} drop {} bad {} reclaimed {}",
            w.slot,
            pid,
            mpps(w.lent_pps),
            mpps(w.back_pps),
            w.dropped_full,
            w.bad,
            w.reclaimed
        ));
    }
    outln!("{block}");
}
