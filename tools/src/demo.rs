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
use skmem_netns_tests::{
    NetnsPair, PairConfig, Receiver, RxFilter, Sender, SequenceChecker, Side, DEFAULT_UDP_PORT,
};
use skmem_xdp::observe::{ObserveTarget, ObservedEvent, Observer};
use skmem_xdp::{AttachMode, XdpFilter, XdpProgram};

/// `skmemctl demo` options.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  skmemctl demo                  # 20 s of l2fwd on a veth pair made for the occasion
  skmemctl demo --duration 5 --json")]
pub struct DemoArgs {
    /// Seconds of traffic.
    #[arg(long, default_value_t = 20)]
    pub duration: u64,
    /// Frames kept in flight by the generator.
    #[arg(long, default_value_t = 64)]
    pub window: u64,
    /// Frame size in bytes.
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// JSON lines instead of a live display.
    #[arg(long)]
    pub json: bool,
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
}

fn forward(pair: &NetnsPair, fwd: &Fwd, stop: &AtomicBool) -> Result<FrameAccount> {
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || -> Result<FrameAccount> {
        let filter = XdpFilter::new().with_udp_dst_ports(DEFAULT_UDP_PORT, DEFAULT_UDP_PORT);
        let mut prog = XdpProgram::attach(&ifname, AttachMode::Auto, Some(filter))
            .with_context(|| format!("attaching skmem's XDP program to {ifname}"))?;
        *fwd.xdp_mode.lock().unwrap_or_else(|e| e.into_inner()) = prog.mode().to_string();
        let mut np = NexusParams::new(format!("demo.{ifname}"));
        np.pool.packets = 4096;
        let arena = Arena::create_nexus(&np)?;
        let mut cp = ChannelParams::new(&ifname, 0);
        cp.mode = BindMode::Auto;
        let mut ch = Channel::open(&arena, &cp)?;
        prog.add_socket(0, ch.fd())?;
        // Frames on the fill ring before the generator starts: one that
        // arrived first would find none, and be dropped.
        ch.refill()?;
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

/// `skmemctl demo`.
pub fn run(args: DemoArgs, stop: &'static AtomicBool) -> Result<()> {
    if args.window == 0 || args.window > 1024 {
        bail!("--window must be 1..=1024");
    }
    let live = !args.json && std::io::stdout().is_terminal();
    // Watch ourselves with eBPF before any arena exists, so every
    // lifecycle event is seen.
    let mut observer = match Observer::attach(ObserveTarget {
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
    };
    let mut seen: Vec<ObservedEvent> = Vec::new();
    eprintln!("skmemctl demo: creating two network namespaces joined by a veth pair…");
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1))
        .context("creating the namespaces (needs root and iproute2)")?;
    let spec = pair.frame_spec(Side::B, args.size)?;
    let (mac_a, mac_b) = (pair.mac(Side::A), pair.mac(Side::B));
    eprintln!(
        "  {} ({}) ⇄ {} ({}): l2fwd over AF_XDP in {}, generator in {}",
        pair.ifname(Side::A),
        pair.ns_name(Side::A),
        pair.ifname(Side::B),
        pair.ns_name(Side::B),
        pair.ns_name(Side::A),
        pair.ns_name(Side::B)
    );
    let fwd = Fwd::default();
    let fwd_stop = AtomicBool::new(false);
    let fwd_done = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let back = AtomicU64::new(0);
    let start = Instant::now();
    let (account, gen) = std::thread::scope(|s| {
        let fwd_done = &fwd_done;
        let fwd_thread = s.spawn(|| {
            let r = forward(&pair, &fwd, &fwd_stop);
            fwd_done.store(true, Ordering::Release);
            r
        });
        let gen = s.spawn(|| -> Result<Vec<String>> {
            while !fwd.ready.load(Ordering::Acquire) {
                if fwd_done.load(Ordering::Acquire) {
                    bail!("the forwarder stopped before it was ready");
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            pair.in_ns(Side::B, || -> Result<Vec<String>> {
                let mut rxb = Receiver::open_in_current_ns(
                    pair.ifindex(Side::B),
                    RxFilter::udp_port(DEFAULT_UDP_PORT),
                )?;
                let tx = Sender::open_in_current_ns(pair.ifindex(Side::B))?;
                let mut seq = SequenceChecker::new();
                let mut errors = Vec::new();
                let end = start + Duration::from_secs(args.duration);
                let mut n = 0u64;
                loop {
                    let sending = Instant::now() < end && !stop.load(Ordering::Relaxed);
                    while sending && n - back.load(Ordering::Relaxed) < args.window {
                        tx.send_frame(&spec.build(n)?)?;
                        n += 1;
                        sent.store(n, Ordering::Relaxed);
                    }
                    if !sending && back.load(Ordering::Relaxed) == n {
                        break;
                    }
                    match rxb.recv(Duration::from_millis(200))? {
                        Some(f) => {
                            if f[0..6] != mac_b || f[6..12] != mac_a {
                                errors.push("a frame came back without its MACs swapped".into());
                            }
                            if let Err(e) = seq.check(f) {
                                errors.push(e.to_string());
                            }
                            back.fetch_add(1, Ordering::Relaxed);
                        }
                        // Nothing for 200 ms after sending stopped: the rest
                        // is lost; say so rather than wait forever.
                        None if !sending => {
                            errors.push(format!(
                                "{} frames did not come back",
                                n - back.load(Ordering::Relaxed)
                            ));
                            break;
                        }
                        None => {}
                    }
                    errors.truncate(10);
                }
                Ok(errors)
            })
        });
        // The display.
        let mut last = (0u64, 0u64, Instant::now());
        let mut lines = 0;
        while !gen.is_finished() {
            match observer.as_mut() {
                Some(o) => seen.extend(
                    o.next_events(Duration::from_millis(100))
                        .unwrap_or_default(),
                ),
                None => std::thread::sleep(Duration::from_millis(100)),
            }
            if last.2.elapsed() < Duration::from_secs(1) {
                continue;
            }
            let dt = last.2.elapsed().as_secs_f64();
            let (rx, tx) = (
                fwd.rx.load(Ordering::Relaxed),
                fwd.tx.load(Ordering::Relaxed),
            );
            let tick = Tick {
                elapsed_s: start.elapsed().as_secs_f64(),
                events: seen
                    .iter()
                    .rev()
                    .take(3)
                    .rev()
                    .map(ObservedEvent::line)
                    .collect(),
                sent: sent.load(Ordering::Relaxed),
                returned: back.load(Ordering::Relaxed),
                fwd_rx_pps: (rx - last.0) as f64 / dt,
                fwd_tx_pps: (tx - last.1) as f64 / dt,
                frames: *fwd.account.lock().unwrap_or_else(|e| e.into_inner()),
                region_mem_inuse: fwd.mem_inuse.load(Ordering::Relaxed),
                region_mem_total: fwd.mem_total.load(Ordering::Relaxed),
            };
            last = (rx, tx, Instant::now());
            show(&tick, args.json, live, &mut lines);
        }
        let gen = gen
            .join()
            .map_err(|_| anyhow::anyhow!("the generator panicked"));
        fwd_stop.store(true, Ordering::Release);
        let account = fwd_thread
            .join()
            .map_err(|_| anyhow::anyhow!("the forwarder panicked"))
            .and_then(|r| r);
        (account, gen.and_then(|r| r))
    });
    let account = account?;
    let errors = gen?;
    // The channel's unbind and the arena's unmap and destroy come last.
    if let Some(o) = observer.as_mut() {
        let until = Instant::now() + Duration::from_millis(500);
        while Instant::now() < until {
            seen.extend(
                o.next_events(Duration::from_millis(100))
                    .unwrap_or_default(),
            );
        }
    }
    let summary = Summary {
        seconds: start.elapsed().as_secs_f64(),
        sent: sent.load(Ordering::Relaxed),
        returned: back.load(Ordering::Relaxed),
        in_order_and_intact: errors.is_empty(),
        frames_accounted: account.check(true).is_ok(),
        xdp_mode: fwd
            .xdp_mode
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone(),
        events_seen: seen.iter().map(|e| e.event.to_owned()).collect(),
        errors,
    };
    drop(pair);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!();
        println!(
            "summary ({:.1} s, XDP {}):",
            summary.seconds, summary.xdp_mode
        );
        println!("  frames sent      {}", summary.sent);
        println!(
            "  frames returned  {} {}",
            summary.returned,
            tick_mark(summary.sent == summary.returned)
        );
        println!(
            "  in order, intact {}",
            tick_mark(summary.in_order_and_intact)
        );
        println!(
            "  frames accounted {} (pool {} + slots {} + app {} + kernel RX {} + kernel TX {} = {})",
            tick_mark(summary.frames_accounted),
            account.pool,
            account.staged,
            account.app,
            account.kernel_rx,
            account.kernel_tx,
            account.total
        );
        if observer.is_some() {
            println!(
                "  lifecycle events the probes saw: {}",
                if summary.events_seen.is_empty() {
                    "none".to_owned()
                } else {
                    summary.events_seen.join(", ")
                }
            );
        }
        for e in &summary.errors {
            println!("  error: {e}");
        }
        println!("  namespaces and veth removed");
    }
    if summary.sent != summary.returned || !summary.in_order_and_intact || !summary.frames_accounted
    {
        bail!("the demo found a problem (see above)");
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

fn show(t: &Tick, json: bool, live: bool, lines: &mut usize) {
    if json {
        if let Ok(s) = serde_json::to_string(t) {
            println!("{s}");
        }
        return;
    }
    let f = &t.frames;
    let mut text = vec![
        format!(
            "{:>5.1}s  sent {:>9}  returned {:>9}  l2fwd in {:>8.0} pps  out {:>8.0} pps",
            t.elapsed_s, t.sent, t.returned, t.fwd_rx_pps, t.fwd_tx_pps
        ),
        format!(
            "        frames: pool {:>5}  slots {:>4}  fill+RX {:>5}  app {:>3}  TX+completion {:>4}  (of {})",
            f.pool, f.staged, f.kernel_rx, f.app, f.kernel_tx, f.total
        ),
        format!(
            "        regions: {:.1} MiB in use of {:.1} MiB",
            t.region_mem_inuse as f64 / (1 << 20) as f64,
            t.region_mem_total as f64 / (1 << 20) as f64
        ),
        "        events (eBPF):".to_owned(),
    ];
    for i in 0..3 {
        text.push(format!(
            "          {}",
            t.events.get(i).map_or("", String::as_str)
        ));
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
