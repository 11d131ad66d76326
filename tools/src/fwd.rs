//! `skmemctl fwd`: rxdrop, txonly and l2fwd over AF_XDP on skmem's pool.
//!
//! One thread per queue, each with its own nexus arena and channel (with
//! `--shared-umem`, the arenas share one packet pool, registered once as
//! the UMEM of every queue's socket); the XDP program redirects every
//! queue's frames to its socket. A line of rates per second, a summary at
//! the end, JSON lines with `--json`.

mod combos;
mod live;

pub use combos::Typed;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use skmem::arena::{Arena, NexusParams};
use skmem::channel::{Adaptive, BindMode, Channel, ChannelParams, Coalesce, Waiting};
use skmem::pool::{PacketPool, PoolParams};
use skmem_netns::FrameSpec;
use skmem_xdp::{AttachMode, XdpProgram};

/// What to do with frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Receive and drop.
    Rxdrop,
    /// Transmit generated frames.
    Txonly,
    /// Receive, swap MAC addresses, send back out the same socket.
    L2fwd,
}

/// How a thread waits for work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wait {
    /// The channel's adaptive wait (the default): spin while frames keep
    /// coming, `poll()` once they stop and always on a CPU shared with the
    /// queue's NAPI thread (`skmem::channel::Waiting`).
    Adaptive,
    /// `poll()` on the socket (`--poll`).
    Poll,
    /// Busy polling (SO_PREFER_BUSY_POLL): a non-blocking `recvfrom` that
    /// runs the queue's NAPI in this thread whenever nothing arrived.
    BusyPoll,
    /// Spin on the rings.
    Spin,
    /// `poll()` with receive coalescing (`--coalesce`).
    Coalesce,
}

/// How the XDP program is attached (`--xdp-mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum XdpMode {
    /// In the driver (XDP_FLAGS_DRV_MODE); fails where the driver has no XDP.
    Native,
    /// In the stack on an skb (XDP_FLAGS_SKB_MODE): every device, slower.
    Skb,
    /// Native, and skb if native fails.
    Auto,
}

impl XdpMode {
    /// The loader's mode.
    pub fn attach_mode(self) -> AttachMode {
        match self {
            XdpMode::Native => AttachMode::Native,
            XdpMode::Skb => AttachMode::Generic,
            XdpMode::Auto => AttachMode::Auto,
        }
    }
}

/// Seconds between lines: 0.1 to an hour.
fn interval(s: &str) -> Result<f64, String> {
    let v = crate::check::seconds_f64(s)?;
    if !(0.1..=3600.0).contains(&v) {
        return Err(format!("{s} is out of range (seconds: 0.1..=3600)"));
    }
    Ok(v)
}

/// `skmemctl fwd` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  skmemctl fwd --mode rxdrop --iface veth0 --duration 10
  skmemctl fwd --mode l2fwd --iface veth0 --queue 0 --queue 1 --spin --json
  skmemctl fwd --mode rxdrop --iface veth0 --queue 0 --queue 1 --shared-umem
  skmemctl fwd --mode rxdrop --iface veth0 --coalesce 1000
  skmemctl fwd --mode l2fwd --iface veth0 --cpu 1 --fifo 1
  skmemctl fwd --mode l2fwd --iface veth0 --cpu 1 --allow-fifo 1
  skmemctl fwd --mode l2fwd --iface veth0 --workers 1 --cpu 1 --fifo 1
  skmemctl fwd --mode txonly --iface veth0 --size 64 --count 100000")]
pub struct FwdArgs {
    /// rxdrop, txonly or l2fwd.
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Interface to bind.
    #[arg(long, value_parser = crate::check::iface)]
    pub iface: String,
    /// Queue(s) to bind, one thread each.
    #[arg(long = "queue", default_values_t = [0u32])]
    pub queues: Vec<u32>,
    /// Descriptors per ring operation (1-4096).
    #[arg(long, default_value_t = 64, value_parser = crate::check::batch)]
    pub batch: usize,
    /// Always wait with poll(), instead of the default adaptive wait: spin
    /// for 20 µs after frames arrived (up to 250 µs while dense bursts come
    /// close together), then poll() — and never spin where the thread
    /// shares its CPU with the queue's threaded NAPI kthread.
    #[arg(long, conflicts_with_all = ["busy_poll", "spin"])]
    pub poll: bool,
    /// Busy-poll the socket (SO_PREFER_BUSY_POLL, 20 µs, budget = batch).
    #[arg(long, conflicts_with = "spin")]
    pub busy_poll: bool,
    /// Spin on the rings without sleeping.
    #[arg(long)]
    pub spin: bool,
    /// With poll(): coalesce receive wake-ups, sleeping until about a
    /// batch of half the frames the kernel holds should have arrived, at
    /// most this many µs a sleep (more throughput and less CPU where the
    /// thread shares its CPU with NAPI, at up to that much latency).
    #[arg(long, value_name = "MAX_US", conflicts_with_all = ["busy_poll", "spin"])]
    pub coalesce: Option<u32>,
    /// Force copy mode.
    #[arg(long, conflicts_with = "zero_copy")]
    pub copy: bool,
    /// Force zero-copy mode.
    #[arg(long)]
    pub zero_copy: bool,
    /// Seconds to run (0 = until Ctrl-C).
    #[arg(long, default_value_t = 10, value_parser = crate::check::seconds)]
    pub duration: u64,
    /// Seconds between lines of rates.
    #[arg(long, default_value_t = 1.0, value_parser = interval)]
    pub interval: f64,
    /// How the XDP program is attached: native (driver), skb (generic),
    /// or auto (native, else skb).
    #[arg(long, value_enum, default_value = "auto")]
    pub xdp_mode: XdpMode,
    /// Only frames matching this go to AF_XDP, the rest to the kernel
    /// stack (so SSH keeps working on a real interface): comma-separated
    /// terms that must all hold — ipv4, ipv6, arp, ether:0xNNNN, udp, tcp,
    /// icmpv6, proto:N, udp:PORT, udp:LO-HI. Default: every frame.
    #[arg(long, value_parser = crate::check::filter)]
    pub filter: Option<skmem_xdp::XdpFilter>,
    /// txonly: frame size in bytes on the wire (60-2048).
    #[arg(long, default_value_t = combos::DEFAULT_SIZE, value_parser = crate::check::fwd_frame)]
    pub size: usize,
    /// txonly: stop after this many frames (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Packets in each arena's pool (with --shared-umem, in the one pool).
    #[arg(long, default_value_t = 4096, value_parser = crate::check::packets)]
    pub packets: usize,
    /// One packet pool for every queue, registered once as the UMEM of all
    /// their sockets (XDP_SHARED_UMEM); each queue keeps its own fill and
    /// completion rings.
    #[arg(long)]
    pub shared_umem: bool,
    /// Pin each queue's thread to a CPU: one --cpu per --queue, in order
    /// (with --workers: the queue's owner thread and its workers).
    #[arg(long = "cpu", value_name = "CPU", value_parser = crate::check::cpu)]
    pub cpus: Vec<usize>,
    /// Run the queues' threads at SCHED_FIFO with this priority (1-99).
    /// Where a thread shares its CPU with the NAPI that feeds it (threaded
    /// NAPI), NAPI then runs while the thread waits, instead of taking
    /// half the CPU and spending it on frames the thread has no fill frames
    /// for (l2fwd over a veth here: about 1.4x). The thread must sleep when
    /// idle, so not with --spin or --busy-poll. With --workers: the owner
    /// threads and their workers.
    #[arg(long, value_name = "PRIORITY", value_parser = crate::check::fifo,
          conflicts_with_all = ["busy_poll", "spin"])]
    pub fifo: Option<u8>,
    /// With the default adaptive wait: a queue's thread that finds itself
    /// sharing its CPU with the queue's threaded NAPI kthread moves itself
    /// to SCHED_FIFO with this priority (1-99) — what --fifo does, only
    /// where it helps. Off unless given.
    #[arg(long, value_name = "PRIORITY", value_parser = crate::check::fifo,
          conflicts_with_all = ["busy_poll", "spin", "poll", "coalesce", "fifo"])]
    pub allow_fifo: Option<u8>,
    /// With the default adaptive wait: how long it keeps spinning after
    /// the last frame before it sleeps in poll(), in µs, to start with and
    /// at the least (0: it never spins).
    #[arg(long, value_name = "US", default_value_t = Adaptive::default().spin_us,
          value_parser = clap::value_parser!(u32).range(0..=100_000),
          conflicts_with_all = ["busy_poll", "spin", "poll", "coalesce"])]
    pub spin_us: u32,
    /// With the default adaptive wait: the longest its spin window grows
    /// to, in µs, while bursts of a batch or more come that close together
    /// (sleeping through such gaps buys little and drops frames); at or
    /// below --spin-us the window stays fixed.
    #[arg(long, value_name = "US", default_value_t = Adaptive::default().spin_max_us,
          value_parser = clap::value_parser!(u32).range(0..=100_000),
          conflicts_with_all = ["busy_poll", "spin", "poll", "coalesce"])]
    pub spin_max_us: u32,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Lend the queue's packets to N (1-16) worker processes (`skmemctl worker`,
    /// started and restarted by this one) instead of processing them here:
    /// rxdrop or l2fwd. With several --queue, each queue gets its own N
    /// workers (one worker per queue: --workers 1). The owner waits in
    /// poll() (or spins with --spin); each queue has its own arena, so not
    /// with --busy-poll, --coalesce, --allow-fifo or --shared-umem.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=16),
          conflicts_with_all = ["busy_poll", "coalesce", "allow_fifo", "shared_umem", "spin_us",
                                "spin_max_us"])]
    pub workers: Option<u16>,
    /// With --workers: spread packets round-robin instead of by flow.
    #[arg(long, requires = "workers")]
    pub round_robin: bool,
    /// Which flags with defaults were typed on the command line (filled
    /// by [`FwdArgs::note_typed`]): a typed flag the mode would not use is
    /// refused even when its value is the default.
    #[arg(skip)]
    pub typed: Typed,
}

impl FwdArgs {
    fn wait(&self) -> Wait {
        if self.busy_poll {
            Wait::BusyPoll
        } else if self.spin {
            Wait::Spin
        } else if self.coalesce.is_some() {
            Wait::Coalesce
        } else if self.poll {
            Wait::Poll
        } else {
            Wait::Adaptive
        }
    }
}

/// Counters a worker thread shares with the reporter.
#[derive(Default)]
struct Shared {
    rx: std::sync::atomic::AtomicU64,
    tx: std::sync::atomic::AtomicU64,
    rx_bytes: std::sync::atomic::AtomicU64,
    tx_bytes: std::sync::atomic::AtomicU64,
    dropped: std::sync::atomic::AtomicU64,
    fill_empty: std::sync::atomic::AtomicU64,
    in_use: std::sync::atomic::AtomicU64,
}

/// The end-of-run summary.
#[derive(Debug, Serialize)]
struct Summary {
    mode: Mode,
    iface: String,
    queues: Vec<u32>,
    xdp_mode: String,
    zero_copy: bool,
    seconds: f64,
    rx_packets: u64,
    /// Frames received on each queue, in `queues` order.
    rx_per_queue: Vec<u64>,
    tx_packets: u64,
    rx_pps: f64,
    tx_pps: f64,
    rx_dropped: u64,
    /// Why the socket dropped frames, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    dropped_reason: Option<String>,
    /// What stopped the run early (the interface went away or changed).
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped_by: Option<String>,
    xdp_seen: u64,
    xdp_redirected: u64,
    frames_accounted: bool,
    /// One pool and UMEM for every queue (`--shared-umem`).
    shared_umem: bool,
    wait: Wait,
    /// Each queue's thread's scheduling policy (`SCHED_OTHER`, or
    /// `SCHED_FIFO` with `--fifo`).
    policy: Vec<&'static str>,
    /// The CPU each queue's thread was pinned to (`--cpu`), in `queues`
    /// order.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cpus: Vec<usize>,
    wakeups: Wakeups,
}

/// The channels' syscalls and sleeps over the run, summed.
#[derive(Debug, Default, Serialize)]
struct Wakeups {
    /// Syscalls made because a ring asked for one (NEED_WAKEUP).
    kernel_wakeups: u64,
    /// Busy-poll syscalls (`--busy-poll`).
    busy_polls: u64,
    /// Sleeps of receive coalescing (`--coalesce`).
    coalesced_sleeps: u64,
    /// Waits in poll() for something to receive.
    polls: u64,
    /// The widest the adaptive wait's spin window became, µs (the widest
    /// of the queues'; only with the adaptive wait).
    #[serde(skip_serializing_if = "Option::is_none")]
    spin_window_us: Option<u64>,
}

/// txonly's frame: a broadcast IPv4/UDP frame (10.0.0.1:9000 to
/// 10.0.0.2:9001) of `size` bytes from `src_mac`, its payload the kernel
/// self-test pattern of packet 0 — built by the frame builder the demo,
/// `gen` and the tests use.
fn template(src_mac: [u8; 6], size: usize) -> Result<Vec<u8>> {
    let spec = FrameSpec::new(
        src_mac,
        [0xff; 6],
        Ipv4Addr::new(10, 0, 0, 1),
        Ipv4Addr::new(10, 0, 0, 2),
        9000,
        9001,
        size,
    )?;
    Ok(spec.build(0)?)
}

fn mac_of(iface: &str) -> [u8; 6] {
    let text =
        std::fs::read_to_string(format!("/sys/class/net/{iface}/address")).unwrap_or_default();
    let mut mac = [0u8; 6];
    for (m, h) in mac.iter_mut().zip(text.trim().split(':')) {
        *m = u8::from_str_radix(h, 16).unwrap_or(0);
    }
    mac
}

/// Runs one queue's loop until `stop`.
fn run_queue(
    mut ch: Channel,
    args: &FwdArgs,
    shared: &Shared,
    stop: &AtomicBool,
) -> Result<Channel> {
    let batch = args.batch;
    let mut rx = Vec::with_capacity(batch);
    let mut tx = Vec::with_capacity(batch);
    let frame = template(mac_of(&args.iface), args.size)?;
    let wait = args.wait();
    let mut sent_total = 0u64;
    let mut last_publish = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        match args.mode {
            Mode::Rxdrop | Mode::L2fwd => {
                // rxdrop keeps no frame: each is shown in place and goes
                // straight back to the fill ring.
                let mut dropped_bytes = 0u64;
                let n = if args.mode == Mode::Rxdrop {
                    ch.inspect_rx(batch, |f, _| dropped_bytes += u64::from(f.len))?
                } else {
                    ch.rx_burst(&mut rx, batch)?
                };
                if n == 0 {
                    if args.mode == Mode::L2fwd {
                        ch.complete();
                    }
                    // The channel waits as its parameters say (adaptive,
                    // poll — coalescing inside when asked — spin, or
                    // busy-poll: the kernel busy-polls only in a syscall).
                    ch.wait(100)?;
                    // Idle or not, the kernel's counters are read every
                    // half second: drops with no traffic received (frames
                    // too long for a buffer) show up live.
                    publish(&mut ch, shared, &mut last_publish)?;
                    continue;
                }
                let bytes: u64 = if args.mode == Mode::Rxdrop {
                    dropped_bytes
                } else {
                    rx.iter().map(|f| u64::from(f.len)).sum()
                };
                shared.rx.fetch_add(n as u64, Ordering::Relaxed);
                shared.rx_bytes.fetch_add(bytes, Ordering::Relaxed);
                if args.mode == Mode::L2fwd {
                    let q = ch.reflect(&mut rx)?;
                    shared.tx.fetch_add(q as u64, Ordering::Relaxed);
                    shared.tx_bytes.fetch_add(bytes, Ordering::Relaxed);
                    ch.complete();
                }
            }
            Mode::Txonly => {
                ch.complete();
                let mut want = batch;
                if args.count > 0 {
                    want = want.min((args.count - sent_total) as usize);
                    if want == 0 {
                        break;
                    }
                }
                ch.alloc_tx(&mut tx, want);
                for f in &mut tx {
                    ch.set_data(f, &frame)?;
                }
                let q = ch.tx_burst(&mut tx)?;
                ch.free(&mut tx)?;
                sent_total += q as u64;
                shared.tx.fetch_add(q as u64, Ordering::Relaxed);
                shared
                    .tx_bytes
                    .fetch_add(q as u64 * frame.len() as u64, Ordering::Relaxed);
                if q == 0 && wait != Wait::Spin && wait != Wait::BusyPoll {
                    std::thread::yield_now();
                }
            }
        }
        publish(&mut ch, shared, &mut last_publish)?;
    }
    // Let the last completions come home before accounting.
    for _ in 0..100 {
        if ch.complete() == 0 && ch.account().kernel_tx == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(ch)
}

/// The Ethernet header an MTU does not count.
const ETH_HLEN: usize = 14;

/// Every half second: the kernel's counters and the frames in use into
/// `shared` (the live lines), and the channel's counters into USTATS.
fn publish(ch: &mut Channel, shared: &Shared, last: &mut Instant) -> Result<()> {
    if last.elapsed() < Duration::from_millis(500) {
        return Ok(());
    }
    *last = Instant::now();
    if let Ok(k) = ch.xsk_stats() {
        shared.dropped.store(k.rx_dropped, Ordering::Relaxed);
        shared
            .fill_empty
            .store(k.rx_fill_ring_empty_descs, Ordering::Relaxed);
    }
    shared.in_use.store(
        ch.pool().packet_count() as u64 - ch.account().pool,
        Ordering::Relaxed,
    );
    ch.publish_stats()?;
    Ok(())
}

/// `skmemctl fwd`: checks, then the XDP program and a channel per queue,
/// a thread per queue, the live lines until the duration ends (or Ctrl-C,
/// or the interface changes), and the summary.
pub fn run(args: FwdArgs, stop: &'static AtomicBool) -> Result<()> {
    combos::check(&args)?;
    let (link, memory) = preflight(&args)?;
    crate::stale::remove("fwd");
    if let Some(n) = args.workers {
        return crate::workers::run_fwd(&args, n, stop);
    }
    let mut prog = XdpProgram::attach(&args.iface, args.xdp_mode.attach_mode(), args.filter)
        .with_context(|| format!("attaching the XDP program to {}", args.iface))?;
    let xdp_mode = format!("{:?}", prog.mode());
    let channels = open_channels(&args, &mut prog)?;
    let zero_copy = channels.iter().all(|c| c.zero_copy());
    let rx_room = channels.first().map_or(0, Channel::rx_frame_room);
    say_start(&args, &link, &xdp_mode, zero_copy, rx_room, memory);
    let shared: Vec<Arc<Shared>> = channels
        .iter()
        .map(|_| Arc::new(Shared::default()))
        .collect();
    let start = Instant::now();
    let args = Arc::new(args);
    let handles = spawn_queues(&args, channels, &shared, stop)?;
    let link_change = live::watch(&args, &link, &shared, &handles, start, stop)?;
    stop.store(true, Ordering::Relaxed);
    let joined = join_queues(handles)?;
    let secs = start.elapsed().as_secs_f64();
    let sum = |f: fn(&Shared) -> u64| shared.iter().map(|s| f(s)).sum::<u64>();
    let xdp = prog.counters()?;
    let summary = Summary {
        mode: args.mode,
        iface: args.iface.clone(),
        queues: args.queues.clone(),
        xdp_mode,
        zero_copy,
        seconds: secs,
        rx_packets: sum(|s| s.rx.load(Ordering::Relaxed)),
        rx_per_queue: shared
            .iter()
            .map(|s| s.rx.load(Ordering::Relaxed))
            .collect(),
        tx_packets: sum(|s| s.tx.load(Ordering::Relaxed)),
        rx_pps: sum(|s| s.rx.load(Ordering::Relaxed)) as f64 / secs,
        tx_pps: sum(|s| s.tx.load(Ordering::Relaxed)) as f64 / secs,
        rx_dropped: joined.dropped,
        dropped_reason: (joined.dropped > 0).then(|| drop_reason(&link, rx_room)),
        stopped_by: link_change.as_ref().map(ToString::to_string),
        xdp_seen: xdp.seen,
        xdp_redirected: xdp.redirected,
        frames_accounted: joined.accounted,
        shared_umem: args.shared_umem,
        wait: args.wait(),
        policy: joined.policy,
        cpus: args.cpus.clone(),
        wakeups: joined.wakeups,
    };
    say_summary(&args, &summary)?;
    if let Some(change) = link_change {
        return Err(change.into());
    }
    if !summary.frames_accounted {
        bail!("frame accounting failed");
    }
    Ok(())
}

/// What only the machine can say, before anything is attached: the queues
/// exist, txonly's frames fit the MTU, the pools fit in memory (one per
/// queue, or one for all with --shared-umem). The link (watched while the
/// run lasts) and the pools' memory.
fn preflight(args: &FwdArgs) -> Result<(crate::link::Link, usize)> {
    crate::check::queues(&args.iface, &args.queues)?;
    let link = crate::link::Link::of(&args.iface)
        .with_context(|| format!("reading {}'s index and MTU", args.iface))?;
    if args.mode == Mode::Txonly && args.size > link.mtu() as usize + ETH_HLEN {
        return Err(crate::check::Usage(format!(
            "--size {}: at most {} bytes on {} (MTU {} + the {ETH_HLEN}-byte Ethernet header); \
             the device drops longer frames",
            args.size,
            link.mtu() as usize + ETH_HLEN,
            args.iface,
            link.mtu()
        ))
        .into());
    }
    let pools = if args.shared_umem {
        1
    } else {
        args.queues.len()
    };
    let memory = crate::check::pool_memory(args.packets, pools)?;
    Ok((link, memory))
}

/// A nexus arena and a channel for each queue, each registered in `prog`'s
/// map; with --shared-umem, one pool (a worker slot per channel) and one
/// UMEM, which the first channel registers.
fn open_channels(args: &FwdArgs, prog: &mut XdpProgram) -> Result<Vec<Channel>> {
    let mode = if args.copy {
        BindMode::Copy
    } else if args.zero_copy {
        BindMode::ZeroCopy
    } else {
        BindMode::Auto
    };
    let pool = if args.shared_umem {
        let params = PoolParams::default().with(|p| {
            p.packets = args.packets;
            p.workers = args.queues.len();
        });
        Some(PacketPool::create(
            &format!("{}.shared", args.iface),
            &params,
        )?)
    } else {
        None
    };
    let mut channels: Vec<Channel> = Vec::new();
    for &q in &args.queues {
        let mut np = NexusParams::new(format!("{}q{q}", args.iface));
        np.pool.packets = args.packets;
        np.rx_pool = pool.clone();
        let arena = Arena::create_nexus(&np)?;
        let mut cp = ChannelParams::new(&args.iface, q);
        cp.mode = mode;
        cp.batch = args.batch;
        if args.busy_poll {
            cp.busy_poll = Some((20, args.batch as u32));
        }
        cp.coalesce = args.coalesce.map(Coalesce::new);
        cp.waiting = match args.wait() {
            Wait::Adaptive => Waiting::Adaptive(Adaptive::default().with(|a| {
                a.fifo = args.allow_fifo;
                a.spin_us = args.spin_us;
                a.spin_max_us = args.spin_max_us;
            })),
            Wait::Poll | Wait::Coalesce => Waiting::Poll,
            Wait::Spin | Wait::BusyPoll => Waiting::Spin,
        };
        let ch = match (&pool, channels.first()) {
            (Some(_), Some(first)) => Channel::open_shared(&arena, &cp, first),
            _ => Channel::open(&arena, &cp),
        }
        .with_context(|| format!("binding an AF_XDP socket to {} queue {q}", args.iface))?;
        prog.add_socket(q, ch.fd())?;
        channels.push(ch);
    }
    Ok(channels)
}

/// The start line (and the warning when the MTU allows frames longer than
/// a frame holds), on stderr.
fn say_start(
    args: &FwdArgs,
    link: &crate::link::Link,
    xdp_mode: &str,
    zero_copy: bool,
    rx_room: usize,
    memory: usize,
) {
    let longest = link.mtu() as usize + ETH_HLEN;
    if args.mode != Mode::Txonly && longest > rx_room {
        eprintln!(
            "skmemctl fwd: {} allows {longest}-byte frames, a frame here holds {rx_room}: \
             longer ones are dropped by the socket (counted in dropped)",
            args.iface
        );
    }
    if args.json {
        return;
    }
    eprintln!(
        "skmemctl fwd: {} on {} queue{} {}, XDP {}, {} mode{}, pools about {}",
        format!("{:?}", args.mode).to_lowercase(),
        args.iface,
        if args.queues.len() == 1 { "" } else { "s" },
        args.queues
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(","),
        xdp_mode.to_lowercase(),
        if zero_copy { "zero-copy" } else { "copy" },
        if args.shared_umem {
            ", one shared UMEM"
        } else {
            ""
        },
        skmem_xdp::observe::human_bytes(memory as u64),
    );
}

/// A queue's thread: gives back its channel and its scheduling policy.
type QueueThread = std::thread::JoinHandle<Result<(Channel, &'static str)>>;

/// A thread per queue running [`run_queue`], pinned and scheduled as the
/// flags say. If one cannot start, those started stop and are joined (the
/// channels, arenas and XDP program then go on the way out).
fn spawn_queues(
    args: &Arc<FwdArgs>,
    channels: Vec<Channel>,
    shared: &[Arc<Shared>],
    stop: &'static AtomicBool,
) -> Result<Vec<QueueThread>> {
    let mut handles = Vec::new();
    for (i, (ch, sh)) in channels.into_iter().zip(shared).enumerate() {
        let (a, sh) = (args.clone(), sh.clone());
        let q = args.queues[i];
        let spawned = std::thread::Builder::new().name(format!("fwd-q{q}")).spawn(
            move || -> Result<(Channel, &'static str)> {
                crate::thread::Placement {
                    cpu: a.cpus.get(i).copied(),
                    fifo: a.fifo,
                }
                .apply()?;
                let ch = run_queue(ch, &a, &sh, stop)?;
                // Read at the end: the adaptive wait may have changed it.
                Ok((ch, crate::thread::policy()))
            },
        );
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => {
                stop.store(true, Ordering::Relaxed);
                for h in handles {
                    let _ = h.join();
                }
                return Err(
                    anyhow::Error::new(e).context(format!("starting the thread of queue {q}"))
                );
            }
        }
    }
    Ok(handles)
}

/// What the queues' threads give back when joined.
struct Joined {
    /// Every channel's frames in exactly one place.
    accounted: bool,
    wakeups: Wakeups,
    /// The kernel's final drop count (the threads publish theirs only
    /// twice a second).
    dropped: u64,
    policy: Vec<&'static str>,
}

/// Joins the queues' threads and checks each channel's frame accounting.
fn join_queues(handles: Vec<QueueThread>) -> Result<Joined> {
    let mut j = Joined {
        accounted: true,
        wakeups: Wakeups::default(),
        dropped: 0,
        policy: Vec::new(),
    };
    for h in handles {
        let (mut ch, p) = h
            .join()
            .map_err(|_| anyhow::anyhow!("a forwarding thread panicked"))??;
        j.policy.push(p);
        if let Err(e) = ch.account().check(false) {
            eprintln!("frame accounting failed: {e}");
            j.accounted = false;
        }
        j.dropped += ch.xsk_stats()?.rx_dropped;
        let c = ch.counters();
        j.wakeups.kernel_wakeups += c.wakeups;
        j.wakeups.busy_polls += c.busy_polls;
        j.wakeups.coalesced_sleeps += c.coalesced_sleeps;
        j.wakeups.polls += c.polls;
        let window = ch.spin_window().map(|w| w.as_micros() as u64);
        j.wakeups.spin_window_us = j.wakeups.spin_window_us.max(window);
    }
    Ok(j)
}

/// The summary: JSON, or the lines a reader of 80 columns sees.
fn say_summary(args: &FwdArgs, summary: &Summary) -> Result<()> {
    if args.json {
        return crate::output::json("fwd_summary", summary);
    }
    outln!(
        "summary: {:.1} s, rx {} ({}), tx {} ({})\n  dropped {}, XDP saw {} redirected {}, frames accounted: {}",
        summary.seconds,
        summary.rx_packets,
        crate::units::mpps(summary.rx_pps).trim_start(),
        summary.tx_packets,
        crate::units::mpps(summary.tx_pps).trim_start(),
        summary.rx_dropped,
        summary.xdp_seen,
        summary.xdp_redirected,
        if summary.frames_accounted { "yes" } else { "NO" }
    );
    if let Some(us) = summary.wakeups.spin_window_us {
        outln!(
            "adaptive wait: {} sleeps in poll(), spin window up to {us} µs",
            summary.wakeups.polls
        );
    }
    if args.coalesce.is_some() {
        outln!(
            "coalescing: {} sleeps ({:.0} frames a sleep)",
            summary.wakeups.coalesced_sleeps,
            summary.rx_packets as f64 / summary.wakeups.coalesced_sleeps.max(1) as f64
        );
    }
    if args.fifo.is_some() || args.allow_fifo.is_some() || !args.cpus.is_empty() {
        let threads: Vec<String> = summary
            .queues
            .iter()
            .zip(&summary.policy)
            .enumerate()
            .map(|(i, (q, p))| match args.cpus.get(i) {
                Some(cpu) => format!("queue {q} {p} on cpu{cpu}"),
                None => format!("queue {q} {p}"),
            })
            .collect();
        outln!("threads: {}", threads.join(", "));
    }
    if let Some(why) = &summary.dropped_reason {
        outln!("  dropped: {why}");
    }
    Ok(())
}

/// Why the socket drops frames: no free frame on the fill ring, or — when
/// the MTU allows frames longer than a frame's room — frames too long.
fn drop_reason(link: &crate::link::Link, rx_room: usize) -> String {
    let longest = link.mtu() as usize + ETH_HLEN;
    if longest > rx_room {
        format!("frames over {rx_room} bytes (the MTU allows {longest}), or an empty fill ring")
    } else {
        "the fill ring was empty (fill-empty): the program fell behind".to_owned()
    }
}
