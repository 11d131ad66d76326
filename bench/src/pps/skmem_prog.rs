//! The programs under test on skmem's [`Channel`]: rxdrop, txonly and
//! l2fwd, the loops of `skmemctl fwd`.

use anyhow::{bail, Context, Result};
use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams, Coalesce, Waiting};
use skmem::lend::{ArenaOffer, OfferPolicy};
use skmem::region::RegionId;
use skmem::workers::{Spread, WorkerHub};
use std::sync::atomic::{AtomicBool, Ordering};

use super::meter::Meter;
use super::{ProgCounters, ProgParams, ProgRun, Wait, Workload};

/// Opens the channel, hands its socket to `register`, then runs `workload`
/// on the schedule `start` returns.
pub fn run(
    p: &ProgParams,
    register: &mut dyn FnMut(std::os::fd::BorrowedFd<'_>) -> Result<()>,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    let arena = Arena::create_nexus(&nexus_params(p, 0)).context("skmem arena")?;
    let mut cp = channel_params(p);
    match p.wait {
        Wait::BusyPoll => cp.busy_poll = Some((super::BUSY_POLL_US, p.batch as u32)),
        Wait::Coalesce => cp.coalesce = Some(Coalesce::new(super::COALESCE_MAX_US)),
        Wait::Spin | Wait::Poll => {}
        // The library's default, untouched.
        Wait::Adaptive => {}
    }
    if p.wait != Wait::Adaptive {
        // Fixed waits: `idle` below does the waiting itself.
        cp.waiting = Waiting::Poll;
    }
    let mut ch = super::retry_busy(|| {
        Channel::open(&arena, &cp).with_context(|| format!("skmem channel on {}", p.ifname))
    })?;
    register(ch.fd())?;
    if p.workload == Workload::Txonly {
        write_all_buffers(&mut ch, &p.frame)?;
    }
    let meter = start();
    let (meter, counts) = match p.workload {
        Workload::Rxdrop => rxdrop(&mut ch, p, meter, stop)?,
        Workload::Txonly => txonly(&mut ch, p, meter, stop)?,
        Workload::L2fwd => l2fwd(&mut ch, p, meter, stop)?,
    };
    let k = ch.xsk_stats()?;
    let c = ch.counters();
    Ok(ProgRun {
        samples: meter.into_samples(),
        counters: ProgCounters {
            rx_packets: c.rx_packets,
            tx_queued: c.tx_packets,
            tx_completed: c.tx_completed,
            tx_unsent: counts,
            xsk_rx_dropped: k.rx_dropped,
            xsk_rx_ring_full: k.rx_ring_full,
            xsk_fill_ring_empty: k.rx_fill_ring_empty_descs,
        },
    })
}

fn rxdrop(
    ch: &mut Channel,
    p: &ProgParams,
    mut meter: Meter,
    stop: &AtomicBool,
) -> Result<(Meter, u64)> {
    let mut received = 0u64;
    // A drop program keeps no frame: each is shown in place and goes
    // straight back to the fill ring (what xsk-rs's loop does with the
    // descriptors it consumed), checked once on the way.
    while !meter.tick(received) && !stop.load(Ordering::Relaxed) {
        let n = ch.inspect_rx(p.batch, |_, _| {})?;
        if n == 0 {
            idle(ch, p.wait)?;
            continue;
        }
        received += n as u64;
    }
    Ok((meter, 0))
}

fn l2fwd(
    ch: &mut Channel,
    p: &ProgParams,
    mut meter: Meter,
    stop: &AtomicBool,
) -> Result<(Meter, u64)> {
    let mut rx = Vec::with_capacity(p.batch);
    let mut completed = 0u64;
    let mut unsent = 0u64;
    while !meter.tick(completed) && !stop.load(Ordering::Relaxed) {
        let n = ch.rx_burst(&mut rx, p.batch)?;
        if n == 0 {
            completed += ch.complete() as u64;
            idle(ch, p.wait)?;
            continue;
        }
        let q = ch.reflect(&mut rx)?;
        unsent += (n - q) as u64;
        completed += ch.complete() as u64;
    }
    drain(ch);
    Ok((meter, unsent))
}

/// Nothing arrived: wait as the wait mode says.
fn idle(ch: &mut Channel, wait: Wait) -> Result<()> {
    match wait {
        // The channel decides: spin, poll() or coalesce.
        Wait::Adaptive => {
            ch.wait(super::POLL_TIMEOUT_MS)?;
        }
        // With coalescing configured, the channel's poll sleeps when
        // traffic is fast enough.
        Wait::Poll | Wait::Coalesce => {
            ch.poll(super::POLL_TIMEOUT_MS)?;
        }
        Wait::BusyPoll => ch.busy_poll()?,
        Wait::Spin => {}
    }
    Ok(())
}

/// Writes `frame` into every buffer the pool hands out, once, so the
/// txonly loop only moves descriptors (as xdpsock's txonly does).
fn write_all_buffers(ch: &mut Channel, frame: &[u8]) -> Result<()> {
    let count = ch.pool().packet_count() as usize;
    let mut all = Vec::with_capacity(count);
    ch.alloc_tx(&mut all, count);
    if all.is_empty() {
        bail!("skmem txonly: the pool gave no packet");
    }
    for f in &mut all {
        ch.set_data(f, frame).context("writing the txonly frame")?;
    }
    ch.free(&mut all)?;
    Ok(())
}

/// Sends the ready frame as fast as the socket takes it; counts TX
/// completions. Returns the frames allocated but refused by a full TX ring.
fn txonly(
    ch: &mut Channel,
    p: &ProgParams,
    mut meter: Meter,
    stop: &AtomicBool,
) -> Result<(Meter, u64)> {
    let len = p.frame.len() as u32;
    let mut tx = Vec::with_capacity(p.batch);
    let (mut completed, mut unsent) = (0u64, 0u64);
    while !meter.tick(completed) && !stop.load(Ordering::Relaxed) {
        let c = ch.complete();
        completed += c as u64;
        let n = ch.alloc_tx(&mut tx, p.batch);
        let mut q = 0;
        if n > 0 {
            // Every buffer already holds the frame: only its length is set.
            for f in &mut tx {
                f.len = len;
            }
            q = ch.tx_burst(&mut tx)?;
            if !tx.is_empty() {
                unsent += tx.len() as u64;
                ch.free(&mut tx)?;
            }
        }
        if q == 0 && c == 0 && p.wait == Wait::Poll {
            // Nothing moved: wait until the socket can take more (in copy
            // mode the poll itself transmits what the TX ring holds).
            ch.poll_tx(super::POLL_TIMEOUT_MS)?;
        }
    }
    drain(ch);
    Ok((meter, unsent))
}

/// Lets what is still in flight complete so the channel closes quietly.
fn drain(ch: &mut Channel) {
    for _ in 0..100 {
        ch.complete();
        if ch.account().kernel_tx == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// The arena of a skmem run: `p.frames` packets, RING objects large enough
/// for `p.ring_entries`-entry rings (a page for the indices, 16 bytes a
/// descriptor; 1024 entries by default), `workers` worker slots with rings
/// of the same size.
fn nexus_params(p: &ProgParams, workers: usize) -> NexusParams {
    let mut np = NexusParams::new(p.arena_name.clone());
    if workers > 0 {
        np = np.with_worker_slots(workers);
        np.worker_ring_entries = p.ring_entries;
    }
    np.pool.packets = p.frames as usize;
    let ring = np.region_mut(RegionId::Ring);
    ring.obj_size = ring
        .obj_size
        .max(skmem::sys::page_size() + p.ring_entries as usize * 16);
    np
}

/// The channel of a skmem run on queue 0, copy mode, the run's ring sizes,
/// batch and TX budget.
fn channel_params(p: &ProgParams) -> ChannelParams {
    let mut cp = ChannelParams::new(&p.ifname, 0);
    cp.mode = BindMode::Copy;
    cp.batch = p.batch;
    cp.umem_ring_entries = p.ring_entries;
    cp.ring_entries = p.ring_entries;
    cp.tx_budget = p.tx_budget;
    cp
}

/// The start of a workers run's offer socket name in the temporary
/// directory, before the pid of the `pps` that made it.
pub const OFFER_PREFIX: &str = "skmem-pps-";

/// The hidden first argument that makes `pps` a worker process of
/// [`run_workers`].
pub const WORKER_ARG: &str = "__skmem-worker";

/// The owner with `n` worker processes: the channel's packets are lent to
/// them ([`skmem::workers::WorkerHub`], round-robin), they drop (rxdrop) or
/// swap and hand back (l2fwd). The workers are this executable again
/// ([`worker_main`]), pinned to the program CPU `cpu` with the owner.
pub fn run_workers(
    p: &ProgParams,
    n: usize,
    cpu: usize,
    register: &mut dyn FnMut(std::os::fd::BorrowedFd<'_>) -> Result<()>,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    if p.workload == Workload::Txonly {
        bail!("workers process received packets: no txonly");
    }
    let arena = Arena::create_nexus(&nexus_params(p, n)).context("skmem arena")?;
    let cp = channel_params(p);
    let mut ch = super::retry_busy(|| {
        Channel::open(&arena, &cp).with_context(|| format!("skmem channel on {}", p.ifname))
    })?;
    register(ch.fd())?;
    ch.refill()?;
    let path = std::env::temp_dir().join(format!(
        "{OFFER_PREFIX}{}-{}.sock",
        std::process::id(),
        p.arena_name
    ));
    let offer = ArenaOffer::serve(&arena, &path, OfferPolicy::root_only())?;
    let mut hub = WorkerHub::new(ch, &offer, Spread::RoundRobin)?;
    let workers = spawn_workers(p, n, cpu, &path)?;
    await_workers(&mut hub, n)?;
    let meter = start();
    let meter = serve_workers(&mut hub, p, meter, stop)?;
    drop(workers);
    Ok(ProgRun {
        samples: meter.into_samples(),
        counters: hub_counters(&hub)?,
    })
}

/// The worker processes of a run, killed and reaped when dropped (also
/// on an early return).
struct Workers(Vec<std::process::Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `n` worker processes that connect to the offer at `path`, each
/// told the workload, the wait mode, the CPU and the batch.
fn spawn_workers(p: &ProgParams, n: usize, cpu: usize, path: &std::path::Path) -> Result<Workers> {
    let exe = match &p.worker_exe {
        Some(e) => e.clone(),
        None => std::env::current_exe().context("finding pps itself")?,
    };
    let mode = if p.workload == Workload::Rxdrop {
        "rxdrop"
    } else {
        "l2fwd"
    };
    let spin = if p.wait == Wait::Spin { "spin" } else { "wait" };
    let mut workers = Workers(Vec::new());
    for _ in 0..n {
        workers.0.push(
            std::process::Command::new(&exe)
                .arg(WORKER_ARG)
                .arg(path)
                .args([mode, spin, &cpu.to_string(), &p.batch.to_string()])
                .stdin(std::process::Stdio::null())
                .spawn()
                .context("starting a worker process")?,
        );
    }
    Ok(workers)
}

/// Polls the hub until all `n` workers have joined (at most 10 s): the
/// measurement starts with every worker there.
fn await_workers(hub: &mut WorkerHub, n: usize) -> Result<()> {
    let joined_by = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while hub.workers().iter().flatten().count() < n {
        if std::time::Instant::now() > joined_by {
            bail!("the worker processes did not join");
        }
        hub.poll()?;
        std::thread::yield_now();
    }
    Ok(())
}

/// The owner's loop: lends what arrives and takes back what the workers
/// hand back, counting what they are done with (freed for rxdrop, TX
/// completions for l2fwd) until the schedule ends.
fn serve_workers(
    hub: &mut WorkerHub,
    p: &ProgParams,
    mut meter: Meter,
    stop: &AtomicBool,
) -> Result<Meter> {
    let done = |hub: &WorkerHub| -> u64 {
        match p.workload {
            Workload::Rxdrop => hub.counters().iter().map(|c| c.freed).sum(),
            _ => hub.channel().counters().tx_completed,
        }
    };
    while !meter.tick(done(hub)) && !stop.load(Ordering::Relaxed) {
        let moved = hub.poll()?;
        if moved > 0 && hub.behind() {
            // The workers share this CPU: their turn before their rings
            // fill.
            std::thread::yield_now();
        } else if moved == 0 {
            match p.wait {
                // The owner shares the CPU with its workers: a turn for
                // them rather than a spin.
                Wait::Spin => std::thread::yield_now(),
                _ => {
                    hub.wait(super::POLL_TIMEOUT_MS)?;
                }
            }
        }
    }
    Ok(meter)
}

/// The counters of a workers run: the channel's, the socket's, and what
/// the workers could not hand on.
fn hub_counters(hub: &WorkerHub) -> Result<ProgCounters> {
    let k = hub.channel().xsk_stats()?;
    let c = hub.channel().counters();
    let unsent = hub
        .counters()
        .iter()
        .map(|w| w.tx_full + w.dropped_full)
        .sum();
    Ok(ProgCounters {
        rx_packets: c.rx_packets,
        tx_queued: c.tx_packets,
        tx_completed: c.tx_completed,
        tx_unsent: unsent,
        xsk_rx_dropped: k.rx_dropped,
        xsk_rx_ring_full: k.rx_ring_full,
        xsk_fill_ring_empty: k.rx_fill_ring_empty_descs,
    })
}

/// A worker process of [`run_workers`]: `SOCKET rxdrop|l2fwd spin|wait CPU
/// BATCH`. Runs until the owner goes (or a signal ends it).
pub fn worker_main(args: &[String]) -> Result<()> {
    use skmem::workers::WorkerChannel;
    let [path, mode, wait, cpu, batch] = args else {
        bail!("usage: {WORKER_ARG} SOCKET rxdrop|l2fwd spin|wait CPU BATCH");
    };
    super::sys::pin_current_thread(cpu.parse()?)?;
    let batch: usize = batch.parse()?;
    let spin = wait == "spin";
    let mut w = WorkerChannel::connect(path)?;
    let mut frames = Vec::with_capacity(batch);
    while !w.arena().owner_gone() && !w.arena().is_redirected() {
        let n = if mode == "rxdrop" {
            w.inspect_rx(batch, |_, _| {})?
        } else {
            w.rx_burst(&mut frames, batch)?
        };
        if n == 0 {
            if spin {
                std::thread::yield_now();
            } else {
                w.wait(super::POLL_TIMEOUT_MS)?;
            }
            continue;
        }
        if mode != "rxdrop" {
            for f in &mut frames {
                let d = w.data_mut(f)?;
                for i in 0..6 {
                    d.swap(i, i + 6);
                }
            }
            while !frames.is_empty() {
                if w.tx_burst(&mut frames)? == 0 {
                    std::thread::yield_now();
                }
            }
        }
    }
    Ok(())
}
