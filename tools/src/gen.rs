//! `skmemctl gen`: a fast traffic generator that transmits from XDP.
//!
//! It runs skmem's `skmem_gen` program with `BPF_PROG_RUN` in live-frames
//! mode ([`skmem_xdp::gen::Generator`], how xdp-trafficgen works): the
//! kernel sends the prepared frame out of the interface `repeat` times per
//! run without a socket, an skb or a copy from user space. One UDP frame
//! is built from the command line (MACs, IPv4 addresses, ports, size) and
//! sent over and over — every copy is the same frame (packet number 0 in
//! its payload pattern). Rates are printed each second; `--rate` paces the
//! runs, `--count`/`--duration` bound them.
//!
//! A veth can take frames redirected into it only when its peer has an
//! XDP program attached (or GRO on); otherwise the kernel drops them
//! silently. What the program ran on is what was offered to the
//! interface: the receiver's counters say what arrived.
//!
//! `--latency` measures round trips instead: an skmem AF_XDP channel sends
//! evenly paced, timestamped frames and receives them back from a
//! forwarder on the far end (`skmem_netns::latency`), and the summary
//! gives RTT percentiles.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Serialize;
use skmem_netns::{parse_mac, FrameSpec, DEFAULT_UDP_PORT};
use skmem_xdp::gen::{Generator, MAX_BATCH, MAX_FRAME};

/// `skmemctl gen` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  skmemctl gen --iface veth1 --dst-mac 02:00:00:00:00:01 --duration 10
  skmemctl gen --iface veth1 --dst-mac 02:00:00:00:00:01 --size 1500 --rate 100000 --count 1000000 --json
  ip netns exec B skmemctl gen --iface vethB --dst-mac $(ip netns exec A cat /sys/class/net/vethA/address) --cpu 0
  skmemctl gen --iface veth1 --dst-mac 02:00:00:00:00:01 --latency --rate 100000 --duration 5")]
pub struct GenArgs {
    /// Interface the frames go out of.
    #[arg(long, value_parser = crate::check::iface)]
    pub iface: String,
    /// Destination MAC (the receiver's); default: broadcast.
    #[arg(long, value_parser = mac_arg)]
    pub dst_mac: Option<[u8; 6]>,
    /// Source MAC; default: the interface's own.
    #[arg(long, value_parser = mac_arg)]
    pub src_mac: Option<[u8; 6]>,
    /// Source IPv4 address.
    #[arg(long, default_value = "10.0.0.2")]
    pub src_ip: Ipv4Addr,
    /// Destination IPv4 address.
    #[arg(long, default_value = "10.0.0.1")]
    pub dst_ip: Ipv4Addr,
    /// UDP source port.
    #[arg(long, default_value_t = DEFAULT_UDP_PORT)]
    pub src_port: u16,
    /// UDP destination port (skmem's XDP filter matches it by default).
    #[arg(long, default_value_t = DEFAULT_UDP_PORT)]
    pub dst_port: u16,
    /// Frame size in bytes, Ethernet header included, FCS excluded.
    #[arg(long, default_value_t = 64, value_parser = gen_frame)]
    pub size: usize,
    /// Frames per kernel batch (1..=256).
    #[arg(long, default_value_t = 64, value_parser = gen_batch)]
    pub batch: u32,
    /// Frames per second (0 = as fast as the kernel goes). Paced per run
    /// of a hundredth of a second's worth, each sent at full speed: the
    /// receiver sees bursts of rate/100 frames (each run has a fixed cost
    /// of milliseconds in the kernel, so runs cannot be much shorter).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Stop after this many frames (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub count: u64,
    /// Seconds to run (0 = until Ctrl-C or --count).
    #[arg(long, default_value_t = 10, value_parser = crate::check::seconds)]
    pub duration: u64,
    /// Frames per BPF_PROG_RUN call when not paced (each call has a fixed
    /// set-up cost in the kernel; larger runs amortize it but notice
    /// Ctrl-C, --count and --duration later). Paced by --rate, a run is
    /// rate/100 frames instead, so not with --rate.
    #[arg(long, default_value_t = 65_536, conflicts_with = "rate")]
    pub run_frames: u32,
    /// Pin the generator to this CPU.
    #[arg(long, value_parser = crate::check::cpu)]
    pub cpu: Option<usize>,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Measure round-trip latency through a forwarder on the far end
    /// (l2fwd: MACs swapped, sent back): frames go out of an skmem AF_XDP
    /// channel on --iface queue 0, evenly paced at --rate, each stamped
    /// with its send time; skmem's XDP program on --iface redirects those
    /// that come back (UDP --dst-port) into the same channel, and the
    /// summary gives p50/p99/p99.9/max round-trip times and the frames
    /// lost. Needs --rate.
    #[arg(long, requires = "rate", conflicts_with_all = ["count", "run_frames"])]
    pub latency: bool,
    /// With --latency: seconds at the start whose frames are sent but not
    /// recorded (the forwarder's warm-up).
    #[arg(long, default_value_t = 1.0, requires = "latency",
          value_parser = crate::check::seconds_f64)]
    pub warmup: f64,
}

fn mac_arg(s: &str) -> Result<[u8; 6], String> {
    parse_mac(s).ok_or_else(|| format!("`{s}` is not a MAC address (aa:bb:cc:dd:ee:ff)"))
}

/// One second's line.
#[derive(Debug, Serialize)]
struct Tick {
    elapsed_s: f64,
    pps: f64,
    bps: f64,
    sent: u64,
}

/// The end of a run.
#[derive(Debug, Serialize)]
struct Summary {
    summary: bool,
    iface: String,
    size: usize,
    sent: u64,
    elapsed_s: f64,
    pps: f64,
    /// The kernel's mean time per frame over the last run, ns.
    kernel_ns_per_frame: f64,
}

/// A generator frame: 60 bytes (the Ethernet minimum without FCS) to
/// [`MAX_FRAME`] (live-frames mode takes one page).
fn gen_frame(s: &str) -> Result<usize, String> {
    crate::check::in_range(s, crate::check::MIN_FRAME, MAX_FRAME, "frame bytes")
}

/// Frames per BPF_PROG_RUN batch.
fn gen_batch(s: &str) -> Result<u32, String> {
    crate::check::in_range(s, 1, MAX_BATCH, "frames")
}

/// The interface's own MAC, from sysfs of the calling thread's namespace.
fn iface_mac(iface: &str) -> Result<[u8; 6]> {
    let path = format!("/sys/class/net/{iface}/address");
    let s = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_mac(s.trim()).with_context(|| format!("{path} holds no MAC"))
}

/// Runs the generator until `stop`, `--count` or `--duration`.
pub fn run(args: GenArgs, stop: &AtomicBool) -> Result<()> {
    // The interface exists here (its queue count does not matter).
    crate::check::iface_queues(&args.iface)?;
    if let Some(cpu) = args.cpu {
        crate::thread::pin(cpu)?;
    }
    let src_mac = match args.src_mac {
        Some(m) => m,
        None => iface_mac(&args.iface)?,
    };
    let spec = FrameSpec::new(
        src_mac,
        args.dst_mac.unwrap_or([0xff; 6]),
        args.src_ip,
        args.dst_ip,
        args.src_port,
        args.dst_port,
        args.size,
    )
    .context("--size")?;
    if args.latency {
        return latency(&args, spec, stop);
    }
    let frame = spec.build(0)?;
    let gen = Generator::new(&args.iface, &frame)
        .with_context(|| format!("loading the generator for {}", args.iface))?;

    let t0 = Instant::now();
    let end = (args.duration > 0).then(|| t0 + Duration::from_secs(args.duration));
    // Each run sets up the kernel's page pool of live frames (a fixed cost
    // of milliseconds), so runs are long: 65 536 frames flat out (~10-20 ms
    // here), or a hundredth of a second's worth when paced.
    let per_run: u64 = if args.rate > 0 {
        (args.rate / 100).max(1)
    } else {
        u64::from(args.run_frames.max(1))
    };
    let (mut sent, mut last_ns) = (0u64, 0f64);
    let (mut tick_at, mut tick_sent) = (t0 + Duration::from_secs(1), 0u64);
    while !stop.load(Ordering::Relaxed) && end.is_none_or(|e| Instant::now() < e) {
        if args.count > 0 && sent >= args.count {
            break;
        }
        let mut n = per_run;
        if args.count > 0 {
            n = n.min(args.count - sent);
        }
        let (done, per_frame) = gen
            .run_timed(n.min(u32::MAX as u64) as u32, args.batch)
            .context("live-frames run")?;
        sent += done;
        last_ns = per_frame.as_nanos() as f64;
        if args.rate > 0 {
            // Pace: this run's share of a second, then the next.
            let due = t0 + Duration::from_secs_f64(sent as f64 / args.rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        if Instant::now() >= tick_at {
            let dt = 1.0 + (Instant::now() - tick_at).as_secs_f64();
            print_tick(&args, t0, sent, (sent - tick_sent) as f64 / dt)?;
            tick_at = Instant::now() + Duration::from_secs(1);
            tick_sent = sent;
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let s = Summary {
        summary: true,
        iface: args.iface.clone(),
        size: args.size,
        sent,
        elapsed_s: elapsed,
        pps: sent as f64 / elapsed.max(1e-9),
        kernel_ns_per_frame: last_ns,
    };
    if args.json {
        crate::output::json("gen_summary", &s)?;
    } else {
        outln!(
            "sent {} frames of {} B out of {} in {:.2} s: {:.3} Mpps (kernel: {:.1} ns per frame)",
            s.sent,
            s.size,
            s.iface,
            s.elapsed_s,
            s.pps / 1e6,
            s.kernel_ns_per_frame
        );
    }
    Ok(())
}

/// One second's line: `sent` so far since `t0`, at `pps`.
fn print_tick(args: &GenArgs, t0: Instant, sent: u64, pps: f64) -> Result<()> {
    let t = &Tick {
        elapsed_s: t0.elapsed().as_secs_f64(),
        pps,
        bps: pps * args.size as f64 * 8.0,
        sent,
    };
    if args.json {
        crate::output::json("gen_rate", t)?;
    } else {
        outln!(
            "{:>6.1}s {} {}  sent {}",
            t.elapsed_s,
            crate::units::mpps(t.pps),
            crate::units::gbits(t.bps),
            t.sent
        );
    }
    Ok(())
}

/// `--latency`'s summary.
#[derive(Debug, Serialize)]
struct LatencySummary {
    summary: bool,
    iface: String,
    size: usize,
    rate: u64,
    sent: u64,
    sent_pps: f64,
    returned: u64,
    lost: u64,
    foreign: u64,
    window_sent: u64,
    recorded: u64,
    p50_us: f64,
    p99_us: f64,
    p999_us: f64,
    max_us: f64,
    /// The least share of a CPU a forwarder must spend awake to be awake
    /// when 99 % of these frames arrive (`SendGaps::awake_share`).
    awake_share_99: Option<f64>,
    /// The same for a forwarder woken by timers as late as this thread's
    /// fired, measured after the run (`SendGaps::timer_share`).
    timer_share_99: Option<f64>,
    /// How late those timers fired (median), µs.
    timer_late_p50_us: f64,
}

/// `--latency`: the paced, stamped probe of `skmem_netns::latency` on an
/// skmem channel, until `stop` or `--duration`.
fn latency(args: &GenArgs, spec: FrameSpec, stop: &AtomicBool) -> Result<()> {
    use skmem::arena::{Arena, NexusParams};
    use skmem::channel::{Channel, ChannelParams};
    use skmem_netns::latency::{
        probe, timer_lateness, Histogram, ProbeCounters, ProbeParams, SendGaps,
    };
    use skmem_xdp::{AttachMode, XdpFilter, XdpProgram};

    if args.rate == 0 {
        anyhow::bail!("--latency needs --rate above 0 (frames per second)");
    }
    let mut prog = XdpProgram::attach(
        &args.iface,
        AttachMode::Auto,
        Some(XdpFilter::new().with_udp_dst_ports(args.dst_port, args.dst_port)),
    )
    .with_context(|| format!("attaching skmem's XDP program to {}", args.iface))?;
    let arena = Arena::create_nexus(&NexusParams::new(format!(
        "lat{}{}",
        std::process::id(),
        args.iface
    )))?;
    let mut cp = ChannelParams::new(&args.iface, 0);
    cp.batch = args.batch as usize;
    let mut ch = Channel::open(&arena, &cp)
        .with_context(|| format!("binding an AF_XDP socket to {} queue 0", args.iface))?;
    prog.add_socket(0, ch.fd())?;

    let p = ProbeParams {
        spec,
        rate_pps: args.rate,
        batch: args.batch as usize,
        warmup: Duration::from_secs_f64(args.warmup),
        drain: Duration::from_millis(100),
    };
    let counters = ProbeCounters::default();
    let done = AtomicBool::new(false);
    let mut hist = Histogram::new();
    let mut gaps = SendGaps::new();
    let report = std::thread::scope(|s| -> Result<_> {
        // The clock and the live lines on another thread; the probe, which
        // sleeps only in `ppoll` on its socket, keeps this one.
        let ticker = s.spawn(|| -> Result<()> {
            let t0 = Instant::now();
            let end = (args.duration > 0).then(|| t0 + Duration::from_secs(args.duration));
            let mut tick_at = t0 + Duration::from_secs(1);
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) && end.is_none_or(|e| Instant::now() < e) {
                std::thread::sleep(Duration::from_millis(20));
                if Instant::now() >= tick_at {
                    let sent = counters.sent.load(Ordering::Relaxed);
                    print_tick(args, t0, sent, (sent - last) as f64)?;
                    last = sent;
                    tick_at += Duration::from_secs(1);
                }
            }
            done.store(true, Ordering::Relaxed);
            Ok(())
        });
        let r = probe(&mut ch, &p, &mut hist, &mut gaps, &counters, &done);
        done.store(true, Ordering::Relaxed);
        ticker
            .join()
            .map_err(|_| anyhow::anyhow!("the ticker thread panicked"))??;
        Ok(r?)
    })?;
    drop(ch);
    prog.detach()?;
    // How late a timer fires here: what sleeping between the bursts
    // would cost a forwarder (a tenth of a second).
    let late = timer_lateness(2_000, Duration::from_micros(20))?;
    let us = |ns: u64| ns as f64 / 1e3;
    let s = LatencySummary {
        summary: true,
        iface: args.iface.clone(),
        size: args.size,
        rate: args.rate,
        sent: report.sent,
        sent_pps: report.sent_pps(),
        returned: report.returned,
        lost: report.lost(),
        foreign: report.foreign,
        window_sent: report.window_sent,
        recorded: report.recorded,
        p50_us: us(hist.quantile(0.5)),
        p99_us: us(hist.quantile(0.99)),
        p999_us: us(hist.quantile(0.999)),
        max_us: us(hist.max()),
        awake_share_99: gaps.awake_share(0.99),
        timer_share_99: gaps.timer_share(0.99, &late),
        timer_late_p50_us: us(late.quantile(0.5)),
    };
    if args.json {
        crate::output::json("gen_latency", &s)?;
    } else {
        outln!(
            "sent {} frames ({:.3} Mpps), {} came back; after the warm-up {} sent, {} lost; \
             RTT p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs{}",
            s.sent,
            s.sent_pps / 1e6,
            s.returned,
            s.window_sent,
            s.lost,
            s.p50_us,
            s.p99_us,
            s.p999_us,
            s.max_us,
            match (s.awake_share_99, s.timer_share_99) {
                (Some(a), Some(t)) => format!(
                    "\nawake for 99 % of them, a forwarder spins >= {:.0} % of a CPU;\n\
                     >= {:.0} % if timers wake it (they fire {:.0} µs late here)",
                    a * 100.0,
                    t * 100.0,
                    s.timer_late_p50_us
                ),
                _ => String::new(),
            }
        );
    }
    Ok(())
}
