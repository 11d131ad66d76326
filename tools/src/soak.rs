//! `skmemctl soak`: l2fwd over a veth pair between two network namespaces
//! made for the run, through a worker process, for as long as asked, while
//! everything that can come and go does, on a schedule:
//!
//! * the worker is SIGKILLed and a new one started (every cycle);
//! * the socket is unbound and bound again, over a new nexus arena (every
//!   second cycle);
//! * an arena is mapped, redirected, defuncted and made again (every
//!   cycle);
//! * the eBPF observer is stopped and attached again (every third cycle).
//!
//! Traffic of random sizes (60 to 1500 bytes) goes from B through A's
//! worker and back. After each cycle the owner's books must balance (every
//! frame of the UMEM in exactly one place, none lent to a dead worker);
//! no frame may come back twice. This process's RSS, open descriptors and
//! memfds are sampled every few seconds and printed as a curve; after the
//! first cycles (the warm-up) they must stay flat within stated bounds.
//! Any failure, a resource growing past its bound included, exits non-zero.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Serialize;
use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, ChannelParams};
use skmem::lend::{ArenaOffer, OfferPolicy};
use skmem::workers::{Spread, WorkerHub};
use skmem::Channel;
use skmem_netns::{NetnsPair, PairConfig, Receiver, RxFilter, Sender, Side};
use skmem_xdp::{AttachMode, XdpFilter, XdpProgram};

use crate::thread::Placement;
use crate::workers::{spawn_worker, WorkMode, WorkerProc};

/// How long a cycle lasts: one worker's life.
const CYCLE: Duration = Duration::from_millis(1500);
/// Samples taken before this are the warm-up, not held to the bounds;
/// the windows compared after it span several cycles.
const WARM_UP: Duration = Duration::from_secs(8);
/// How much each resource may grow after the warm-up.
const RSS_BOUND_KIB: u64 = 16 * 1024;
const FD_BOUND: i64 = 4;
const MEMFD_BOUND: i64 = 0;
/// Frames B sends per millisecond (about 4 000 a second).
const FRAMES_PER_MS: u64 = 4;

/// `skmemctl soak`'s flags.
#[derive(clap::Args, Debug)]
#[command(after_help = "Examples:
  skmemctl soak --seconds 30
  skmemctl soak --seconds 300 --json")]
pub struct SoakArgs {
    /// Seconds to run (at least 20: a warm-up, then two windows to
    /// compare).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(20..=86_400))]
    pub seconds: u64,
    /// Seconds between resource samples.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=60))]
    pub sample: u64,
    /// One JSON object a sample and one for the verdict, instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What the churn did.
#[derive(Debug, Default, Serialize)]
struct Churn {
    cycles: u64,
    workers_killed: u64,
    rebinds: u64,
    arenas_redirected_and_defunct: u64,
    observer_restarts: u64,
    /// Books checked (after each cycle and at the end), all balanced.
    accounting_checks: u64,
    /// Descriptors the hub refused from workers (a killed worker's ring may
    /// hold a half-written one; counted, never a lost frame).
    refused_hand_backs: u64,
}

/// One resource sample of this process.
#[derive(Debug, Clone, Copy, Serialize)]
struct Sample {
    elapsed_s: f64,
    rss_kib: u64,
    fds: u64,
    memfds: u64,
    frames_back: u64,
}

/// The run's verdict.
#[derive(Debug, Serialize)]
struct Verdict {
    seconds: f64,
    churn: Churn,
    frames_sent: u64,
    frames_back: u64,
    frames_twice: u64,
    rss_growth_kib: i64,
    fd_growth: i64,
    memfd_growth: i64,
    passed: bool,
}

/// `skmemctl soak`.
pub fn run(args: SoakArgs, stop: &'static AtomicBool) -> Result<()> {
    if rustix::process::geteuid().as_raw() != 0 {
        return Err(crate::check::Usage(
            "soak makes network namespaces and attaches XDP programs: run it as root".into(),
        )
        .into());
    }
    // One malloc arena for every thread: threads come and go with the
    // churn (workers' joins, the observer's), and per-thread arenas would
    // keep what each freed, a growth that is the allocator's, not a leak.
    // SAFETY: mallopt takes no pointer; called before the run's threads.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1))
        .context("making the veth pair")?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let done = AtomicBool::new(false);
    let (sent, back, twice) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let start = Instant::now();
    let (churn, samples) = std::thread::scope(|s| -> Result<(Churn, Vec<Sample>)> {
        let owner = s.spawn(|| {
            let r = pair
                .try_in_ns(Side::A, || forward(&pair, deadline, stop))
                .map_err(anyhow::Error::from)
                .and_then(|r| r);
            done.store(true, Ordering::Release);
            r
        });
        let sender = s.spawn(|| send(&pair, &done, &sent));
        let receiver = s.spawn(|| receive(&pair, &done, &back, &twice));
        let samples = sample_until(&args, &done, &back, start);
        let joined = |what: &str, r: std::thread::Result<Result<()>>| {
            r.map_err(|_| anyhow::anyhow!("the {what} thread panicked"))?
                .with_context(|| format!("the {what}"))
        };
        let churn = owner
            .join()
            .map_err(|_| anyhow::anyhow!("the forwarding thread panicked"))??;
        joined("sender", sender.join())?;
        joined("receiver", receiver.join())?;
        Ok((churn, samples))
    })?;
    verdict(
        &args,
        churn,
        &samples,
        start,
        [&sent, &back, &twice].map(|a| a.load(Ordering::Relaxed)),
    )
}

/// The owner's side, in A: the XDP program for the run, and cycle after
/// cycle the churn; returns what it did.
fn forward(pair: &NetnsPair, deadline: Instant, stop: &AtomicBool) -> Result<Churn> {
    let ifname = pair.ifname(Side::A).to_owned();
    let filter = XdpFilter::new()
        .with_udp_dst_ports(skmem_netns::DEFAULT_UDP_PORT, skmem_netns::DEFAULT_UDP_PORT);
    let mut prog = XdpProgram::attach(&ifname, AttachMode::Auto, Some(filter))
        .context("attaching the XDP program")?;
    let mut churn = Churn::default();
    let mut owner = Owner::open(&ifname, &mut prog, 0)?;
    let mut observer = None;
    while Instant::now() < deadline && !stop.load(Ordering::Relaxed) {
        churn.cycles += 1;
        owner.serve(CYCLE)?;
        owner.kill_worker()?;
        owner.start_worker()?;
        churn.workers_killed += 1;
        if churn.cycles % 2 == 0 {
            churn.refused_hand_backs += owner.refused();
            owner.close(&mut prog)?;
            churn.accounting_checks += 1;
            owner = Owner::open(&ifname, &mut prog, churn.cycles)?;
            churn.rebinds += 1;
        }
        redirect_and_defunct(churn.cycles)?;
        churn.arenas_redirected_and_defunct += 1;
        if churn.cycles % 3 == 0 {
            // Stopped (dropped) before the next is attached.
            drop(observer.take());
            observer = Some(
                skmem_xdp::observe::Observer::attach(Default::default())
                    .context("attaching the observer")?,
            );
            churn.observer_restarts += 1;
        }
    }
    churn.refused_hand_backs += owner.refused();
    owner.close(&mut prog)?;
    churn.accounting_checks += 1;
    Ok(churn)
}

/// One owner: a nexus arena with a worker slot, its channel on queue 0,
/// the offer and the hub, and the worker process it lends to.
struct Owner {
    worker: Option<WorkerProc>,
    hub: WorkerHub,
    path: std::path::PathBuf,
    _offer: ArenaOffer,
    _arena: Arena,
}

impl Owner {
    fn open(ifname: &str, prog: &mut XdpProgram, n: u64) -> Result<Owner> {
        let np = NexusParams::new(format!("soak{n}"))
            .with_worker_slots(1)
            .with(|p| p.pool.packets = 2048);
        let arena = Arena::create_nexus(&np)?;
        let mut cp = ChannelParams::new(ifname, 0);
        cp.mode = BindMode::Copy;
        let mut ch = Channel::open(&arena, &cp).context("binding the AF_XDP socket")?;
        prog.add_socket(0, ch.fd())?;
        ch.refill()?;
        let path = std::env::temp_dir().join(format!("skmem-soak-{}-{n}.sock", std::process::id()));
        let offer = ArenaOffer::serve(&arena, &path, OfferPolicy::root_only())?;
        let hub = WorkerHub::new(ch, &offer, Spread::RoundRobin)?;
        let worker = Some(spawn_worker(
            &path,
            WorkMode::L2fwd,
            64,
            Placement::default(),
        )?);
        Ok(Owner {
            worker,
            hub,
            path,
            _offer: offer,
            _arena: arena,
        })
    }

    /// Lends and takes back for `how_long`, checking the books as it goes.
    fn serve(&mut self, how_long: Duration) -> Result<()> {
        let until = Instant::now() + how_long;
        let mut checked = Instant::now();
        while Instant::now() < until {
            if self.hub.poll()? == 0 {
                self.hub.wait(5)?;
            }
            if checked.elapsed() >= Duration::from_millis(250) {
                checked = Instant::now();
                self.books(false)?;
            }
        }
        Ok(())
    }

    /// Starts a worker process.
    fn start_worker(&mut self) -> Result<()> {
        self.worker = Some(spawn_worker(
            &self.path,
            WorkMode::L2fwd,
            64,
            Placement::default(),
        )?);
        Ok(())
    }

    /// SIGKILLs the worker and waits until the hub took back all it held.
    fn kill_worker(&mut self) -> Result<()> {
        if let Some(w) = self.worker.take() {
            w.kill_now();
        }
        let by = Instant::now() + Duration::from_secs(10);
        while self.hub.workers().iter().flatten().count() > 0 || self.hub.lent() > 0 {
            if Instant::now() > by {
                bail!(
                    "a killed worker's frames did not come back: {} lent",
                    self.hub.lent()
                );
            }
            self.hub.poll()?;
            self.hub.wait(5)?;
        }
        self.books(false)
    }

    /// Descriptors the hub refused from its workers so far.
    fn refused(&self) -> u64 {
        self.hub.counters().iter().map(|c| c.bad()).sum()
    }

    /// Every frame of the UMEM in exactly one place (and, `quiet`, none in
    /// flight).
    fn books(&mut self, quiet: bool) -> Result<()> {
        let account = self.hub.channel_mut().account();
        account
            .check(quiet)
            .map_err(|e| anyhow::anyhow!("the owner's books do not balance: {e} ({account:?})"))
    }

    /// Unbinds: the socket leaves the XDP program's map, the worker goes,
    /// what it held comes back, the TX ring drains, the books balance with
    /// nothing in flight; then channel, offer and arena go.
    fn close(mut self, prog: &mut XdpProgram) -> Result<()> {
        prog.remove_socket(0)?;
        self.kill_worker()?;
        let by = Instant::now() + Duration::from_secs(10);
        loop {
            self.hub.poll()?;
            let a = self.hub.channel_mut().account();
            if a.kernel_tx == 0 && self.hub.lent() == 0 && self.hub.workers()[0].is_none() {
                break;
            }
            if Instant::now() > by {
                bail!("the owner did not settle: {a:?}");
            }
            self.hub.wait(5)?;
        }
        self.books(true)
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // The offer's socket file; the worker process goes with its handle.
        let _ = std::fs::remove_file(&self.path);
    }
}

/// An arena mapped, the mapping redirected to zero pages, the arena
/// defuncted (its memory given back), then dropped: made again next cycle.
fn redirect_and_defunct(n: u64) -> Result<()> {
    let arena = Arena::create_nexus(&NexusParams::new(format!("soak-lent{n}")).with(|p| {
        p.pool.packets = 256;
    }))?;
    let mapping = arena.map()?;
    if !mapping.redirect()? {
        bail!("the mapping of {} was not redirected", arena.name());
    }
    arena.defunct()?;
    drop(mapping);
    Ok(())
}

/// B's sender: frames of random sizes, numbered, about
/// [`FRAMES_PER_MS`] a millisecond, until the run is done.
fn send(pair: &NetnsPair, done: &AtomicBool, sent: &AtomicU64) -> Result<()> {
    pair.try_in_ns(Side::B, || -> Result<()> {
        let tx = Sender::open_in_current_ns(pair.ifindex(Side::B))?;
        let spec = pair.frame_spec(Side::B, 60)?;
        let mut n = 0u64;
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        while !done.load(Ordering::Acquire) {
            for _ in 0..FRAMES_PER_MS {
                // xorshift: sizes from 60 to 1500 bytes.
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let size = 60 + (rng % 1441) as usize;
                tx.send_frame(&spec.with_size(size)?.build(n)?)?;
                n += 1;
            }
            sent.store(n, Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    })?
}

/// B's receiver: what comes back through A, each frame once.
fn receive(pair: &NetnsPair, done: &AtomicBool, back: &AtomicU64, twice: &AtomicU64) -> Result<()> {
    pair.try_in_ns(Side::B, || -> Result<()> {
        let mut rx = Receiver::open_in_current_ns(
            pair.ifindex(Side::B),
            RxFilter::udp_port(skmem_netns::DEFAULT_UDP_PORT),
        )?;
        // The full number last seen in each of the 65 536 on-wire slots: a
        // frame whose number (unwrapped against the highest seen) is
        // already there came back twice.
        let mut seen = vec![u64::MAX; 1 << 16];
        let mut highest = 0u64;
        while !done.load(Ordering::Acquire) {
            let Some(f) = rx.recv(Duration::from_millis(100))? else {
                continue;
            };
            let Ok(info) = skmem_netns::check_payload(f) else {
                continue;
            };
            let low = u64::from(info.packet_no);
            let mut full = (highest & !0xffff) | low;
            if full + 0x8000 < highest {
                full += 0x1_0000;
            } else if full > highest + 0x8000 && full >= 0x1_0000 {
                full -= 0x1_0000;
            }
            highest = highest.max(full);
            if std::mem::replace(&mut seen[low as usize], full) == full {
                twice.fetch_add(1, Ordering::Relaxed);
            }
            back.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })?
}

/// Resource samples every `--sample` seconds until the run is done,
/// printed as they come.
fn sample_until(
    args: &SoakArgs,
    done: &AtomicBool,
    back: &AtomicU64,
    start: Instant,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut next = Instant::now();
    while !done.load(Ordering::Acquire) {
        if Instant::now() >= next {
            next += Duration::from_secs(args.sample.max(1));
            let s = Sample {
                elapsed_s: start.elapsed().as_secs_f64(),
                rss_kib: rss_kib(),
                fds: fds().0,
                memfds: fds().1,
                frames_back: back.load(Ordering::Relaxed),
            };
            say_sample(args, &s);
            samples.push(s);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    samples
}

/// This process's resident memory, KiB (`VmRSS`).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// This process's open descriptors, and how many of them are memfds.
fn fds() -> (u64, u64) {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return (0, 0);
    };
    let mut n = (0, 0);
    for e in dir.flatten() {
        n.0 += 1;
        if std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("/memfd:")) {
            n.1 += 1;
        }
    }
    n
}

fn say_sample(args: &SoakArgs, s: &Sample) {
    if args.json {
        let _ = crate::output::json("soak_sample", s);
        return;
    }
    outln!(
        "{:>7.1}s  rss {:>7} KiB  fds {:>4}  memfds {:>3}  frames back {:>9}",
        s.elapsed_s,
        s.rss_kib,
        s.fds,
        s.memfds,
        s.frames_back
    );
}

/// How much RSS (KiB), descriptors and memfds grew after the warm-up.
fn growth_after_warm_up(samples: &[Sample]) -> Result<[i64; 3]> {
    // The churn is periodic (a worker's descriptors come and go, the
    // observer's maps are re-made; loading the observer parses the
    // kernel's BTF, a passing peak), so one sample may catch any phase:
    // the first window after the warm-up and the last window (each a few
    // cycles long) are compared by their median, which a leak raises and
    // a passing peak or the teardown's dip does not.
    let end = samples.last().map_or(0.0, |s| s.elapsed_s);
    let warm = WARM_UP.as_secs_f64();
    let width = ((end - warm) / 2.0).min(12.0);
    let first: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.elapsed_s >= warm && s.elapsed_s < warm + width)
        .collect();
    let last: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.elapsed_s > end - width)
        .collect();
    if first.is_empty() || last.is_empty() {
        bail!("too few resource samples to compare (run longer, or sample more often)");
    }
    let growth = |f: fn(&Sample) -> u64| median(&last, f) - median(&first, f);
    Ok([
        growth(|s| s.rss_kib),
        growth(|s| s.fds),
        growth(|s| s.memfds),
    ])
}

/// The median of `f` over a window of samples (the upper of the middle
/// two when they are even); 0 for none.
fn median(w: &[&Sample], f: fn(&Sample) -> u64) -> i64 {
    let mut v: Vec<u64> = w.iter().map(|s| f(s)).collect();
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0) as i64
}

/// The verdict: growth after the warm-up against the bounds, frames twice,
/// the churn; an error when anything is off.
fn verdict(
    args: &SoakArgs,
    churn: Churn,
    samples: &[Sample],
    start: Instant,
    [sent, back, twice]: [u64; 3],
) -> Result<()> {
    let [rss, fds, memfds] = growth_after_warm_up(samples)?;
    let v = Verdict {
        seconds: start.elapsed().as_secs_f64(),
        frames_sent: sent,
        frames_back: back,
        frames_twice: twice,
        rss_growth_kib: rss,
        fd_growth: fds,
        memfd_growth: memfds,
        passed: false,
        churn,
    };
    let mut failures = Vec::new();
    if v.frames_twice > 0 {
        failures.push(format!("{} frames came back twice", v.frames_twice));
    }
    if v.frames_back == 0 {
        failures.push("no frame came back".to_owned());
    }
    if v.rss_growth_kib > RSS_BOUND_KIB as i64 {
        failures.push(format!(
            "RSS grew {} KiB (bound {RSS_BOUND_KIB})",
            v.rss_growth_kib
        ));
    }
    if v.fd_growth > FD_BOUND {
        failures.push(format!(
            "descriptors grew by {} (bound {FD_BOUND})",
            v.fd_growth
        ));
    }
    if v.memfd_growth > MEMFD_BOUND {
        failures.push(format!(
            "memfds grew by {} (bound {MEMFD_BOUND})",
            v.memfd_growth
        ));
    }
    let v = Verdict {
        passed: failures.is_empty(),
        ..v
    };
    say_verdict(args, &v)?;
    if !failures.is_empty() {
        bail!("soak failed: {}", failures.join("; "));
    }
    Ok(())
}

fn say_verdict(args: &SoakArgs, v: &Verdict) -> Result<()> {
    if args.json {
        return crate::output::json("soak_verdict", v);
    }
    let c = &v.churn;
    outln!(
        "soak: {:.0} s, {} cycles: {} workers killed, {} rebinds, {} arenas redirected\n  \
         and defunct, {} observer restarts; books balanced {} times\n  \
         frames: {} sent, {} back, {} twice; refused hand-backs {}\n  \
         growth after the {} s warm-up: RSS {} KiB (bound {}), fds {} (bound {}),\n  \
         memfds {} (bound {})\n  \
         {}",
        v.seconds,
        c.cycles,
        c.workers_killed,
        c.rebinds,
        c.arenas_redirected_and_defunct,
        c.observer_restarts,
        c.accounting_checks,
        v.frames_sent,
        v.frames_back,
        v.frames_twice,
        c.refused_hand_backs,
        WARM_UP.as_secs(),
        v.rss_growth_kib,
        RSS_BOUND_KIB,
        v.fd_growth,
        FD_BOUND,
        v.memfd_growth,
        MEMFD_BOUND,
        if v.passed { "passed" } else { "FAILED" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sample every 2 s over 32 s, RSS from `rss(t)`.
    fn samples(rss: impl Fn(f64) -> u64) -> Vec<Sample> {
        (0..=16u32)
            .map(|i| {
                let t = f64::from(i) * 2.0;
                Sample {
                    elapsed_s: t,
                    rss_kib: rss(t),
                    fds: 60,
                    memfds: 13,
                    frames_back: u64::from(i),
                }
            })
            .collect()
    }

    #[test]
    fn a_passing_peak_is_not_growth_and_a_leak_is() {
        // Flat after the warm-up but for one sample caught mid-peak (an
        // observer parsing the kernel's BTF): no growth.
        let peak = samples(|t| if t == 28.0 { 126_000 } else { 45_000 });
        assert_eq!(growth_after_warm_up(&peak).unwrap(), [0, 0, 0]);
        // A leak raises every later sample: 2 MiB a second.
        let leak = samples(|t| 45_000 + (t * 2048.0) as u64);
        let [rss, fds, memfds] = growth_after_warm_up(&leak).unwrap();
        assert!(rss > RSS_BOUND_KIB as i64, "{rss}");
        assert_eq!((fds, memfds), (0, 0));
        // Too short to have two windows.
        assert!(growth_after_warm_up(&samples(|_| 1)[..4]).is_err());
    }
}
