//! The generator on side B, flat out: skmem's own AF_XDP txonly ([`run`],
//! the default), or XDP live frames ([`run_xdp`], `--gen xdp`).
//!
//! AF_XDP: every buffer of the pool is written once before the loop (one
//! frame of the flow each), so the loop only allocates, queues descriptors
//! and reaps completions.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams};
use skmem_netns::FrameSpec;
use skmem_xdp::gen::{Generator, MAX_BATCH};

use super::sys::pin_current_thread;

/// Counters the generator publishes.
#[derive(Debug, Default)]
pub struct GenCounters {
    /// Frames queued on the TX ring.
    pub queued: AtomicU64,
    /// Frames the kernel completed (transmitted): the offered load.
    pub completed: AtomicU64,
    /// Set once the socket is bound and the loop runs.
    pub running: AtomicBool,
}

/// Which generator runs on side B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GenKind {
    /// skmem's own copy-mode AF_XDP txonly ([`run`]).
    Afxdp,
    /// XDP live frames: `BPF_PROG_TEST_RUN` of a program returning
    /// `XDP_TX`, as xdp-trafficgen does ([`run_xdp`]).
    Xdp,
}

impl GenKind {
    /// Name as given on the command line.
    pub fn name(self) -> &'static str {
        match self {
            GenKind::Afxdp => "afxdp",
            GenKind::Xdp => "xdp",
        }
    }
}

/// How the generator runs.
#[derive(Debug, Clone)]
pub struct GenParams {
    /// Interface (in the calling thread's namespace).
    pub ifname: String,
    /// CPU to pin to.
    pub cpu: usize,
    /// Descriptors per burst.
    pub batch: usize,
    /// Packets (UMEM frames) in the pool.
    pub packets: usize,
    /// The flow to send.
    pub spec: FrameSpec,
    /// Arena name (unique in the process).
    pub arena_name: String,
}

/// Runs the txonly loop until `stop`; returns the frames completed.
pub fn run(p: &GenParams, counters: &GenCounters, stop: &AtomicBool) -> Result<u64> {
    pin_current_thread(p.cpu)?;
    let mut np = NexusParams::new(p.arena_name.clone());
    np.pool.packets = p.packets;
    let arena = Arena::create_nexus(&np).context("generator arena")?;
    let mut cp = ChannelParams::new(&p.ifname, 0);
    cp.mode = BindMode::Copy;
    cp.batch = p.batch;
    let mut ch =
        Channel::open(&arena, &cp).with_context(|| format!("generator channel on {}", p.ifname))?;

    // Write every buffer once: take all the packets, write, give them back.
    let mut all = Vec::with_capacity(p.packets);
    ch.alloc_tx(&mut all, p.packets);
    if all.is_empty() {
        bail!("the generator's pool gave no packet");
    }
    let mut frame = vec![0u8; p.spec.size];
    for (i, f) in all.iter_mut().enumerate() {
        let len = p
            .spec
            .write(i as u64, &mut frame)
            .map_err(|e| anyhow!("building frame {i}: {e}"))?;
        ch.set_data(f, &frame[..len])?;
    }
    ch.free(&mut all)?;
    let len = p.spec.size as u32;

    let mut tx = Vec::with_capacity(p.batch);
    let (mut queued, mut completed) = (0u64, 0u64);
    counters.running.store(true, Ordering::Release);
    while !stop.load(Ordering::Relaxed) {
        let c = ch.complete() as u64;
        if c > 0 {
            completed += c;
            counters.completed.store(completed, Ordering::Relaxed);
        }
        if ch.alloc_tx(&mut tx, p.batch) == 0 {
            continue;
        }
        // Every buffer already holds a frame: only its length is set.
        for f in &mut tx {
            f.len = len;
        }
        let q = ch.tx_burst(&mut tx)?;
        ch.free(&mut tx)?;
        queued += q as u64;
        counters.queued.store(queued, Ordering::Relaxed);
    }
    // Let the last completions come home so the channel closes quietly.
    for _ in 0..100 {
        completed += ch.complete() as u64;
        if ch.account().kernel_tx == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    counters.completed.store(completed, Ordering::Relaxed);
    Ok(completed)
}

/// Frames per `BPF_PROG_TEST_RUN` call of [`run_xdp`]: about 10 ms at the
/// rates seen here, so `stop` is noticed quickly.
const XDP_REPEAT: u32 = 65_536;

/// Runs the XDP live-frames generator until `stop`: the same frame (packet
/// 0 of the flow) `XDP_REPEAT` times per call, `batch` (at most
/// [`MAX_BATCH`]) per kernel batch. Returns the frames sent; `queued` and
/// `completed` both count what the kernel offered to the interface.
pub fn run_xdp(p: &GenParams, counters: &GenCounters, stop: &AtomicBool) -> Result<u64> {
    pin_current_thread(p.cpu)?;
    // A signal that lands on this thread mid-run ends BPF_PROG_RUN with
    // EINTR and loses the count of the frames sent — SIGCHLD from a peer
    // process exiting (testpmd, the C peer), say. Let other threads take
    // them.
    super::sys::block_signals()?;
    let mut frame = vec![0u8; p.spec.size];
    let len = p
        .spec
        .write(0, &mut frame)
        .map_err(|e| anyhow!("building the frame: {e}"))?;
    let gen = Generator::new(&p.ifname, &frame[..len])
        .with_context(|| format!("XDP generator on {}", p.ifname))?;
    let batch = (p.batch as u32).clamp(1, MAX_BATCH);
    let mut sent = 0u64;
    counters.running.store(true, Ordering::Release);
    while !stop.load(Ordering::Relaxed) {
        sent += gen.run(XDP_REPEAT, batch)?;
        counters.queued.store(sent, Ordering::Relaxed);
        counters.completed.store(sent, Ordering::Relaxed);
    }
    Ok(sent)
}
