//! Measuring one program run: the program under test on its own thread in
//! A, the harness's samples of the generator, A's XDP and B's sink at the
//! boundaries the program announces, and the result made of both.

use super::run::{lock, ASide};
use super::*;

/// A's XDP view at one boundary, from skmem's program or from ethtool.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct XdpView {
    seen: u64,
    redirected: u64,
    dropped: u64,
    transmitted: u64,
}

/// The harness's samples at one boundary.
#[derive(Debug, Clone, Copy)]
pub(super) struct Outside {
    gen: u64,
    xdp: XdpView,
    b: u64,
    /// CPU time of A's pinned NAPI kthreads, ns (`/proc/PID/schedstat`).
    napi_ns: u64,
    /// CPU time of the program's thread and its child processes, ns.
    prog_ns: u64,
    /// Non-idle and all jiffies of the program CPU (`/proc/stat`).
    cpu_busy: u64,
    cpu_total: u64,
    /// The same for the whole machine (every CPU: NAPI, softirqs, the
    /// generator and everything else included).
    all_busy: u64,
    all_total: u64,
}

/// What a program run is measured with: the layout's pair, A's side and
/// B's sink, the generator's counters (none for txonly), and the settings.
pub(super) struct RunCtx<'a> {
    pub(super) pair: &'a NetnsPair,
    pub(super) a: &'a ASide,
    /// B's counting sink (none in latency runs: the probe's program is
    /// there instead).
    pub(super) sink: Option<&'a XdpProgram>,
    pub(super) gen: Option<Arc<gen::GenCounters>>,
    /// The latency probe on B, told to record over the measured windows
    /// only.
    pub(super) probe: Option<Arc<skmem_netns::latency::ProbeCounters>>,
    pub(super) cfg: &'a Config,
    pub(super) layout: Layout,
    pub(super) t0: Instant,
}

impl RunCtx<'_> {
    /// Samples the generator, A's XDP and B's sink. With ethtool (a child
    /// process, ~10 ms) the time is the middle of the reads.
    pub(super) fn sample(
        &self,
        napi: &[NapiThread],
        prog_tid: Option<u32>,
    ) -> Result<(Sample<Outside>, XdpSource)> {
        let t1 = Instant::now();
        let napi_ns = napi.iter().map(|t| sys::task_cpu_ns(t.pid)).sum();
        let prog_ns = prog_tid.map_or(0, sys::thread_tree_cpu_ns);
        let (cpu_busy, cpu_total) = sys::cpu_jiffies(self.cfg.prog_cpu);
        let (all_busy, all_total) = sys::machine_jiffies();
        let attached = lock(&self.a.prog)?
            .as_ref()
            .map(|p| p.counters())
            .transpose()?;
        let (xdp, source) = match attached {
            Some(c) => (
                XdpView {
                    seen: c.seen,
                    redirected: c.redirected,
                    dropped: c.dropped,
                    transmitted: c.transmitted,
                },
                XdpSource::SkmemXdp,
            ),
            None => {
                let s = self
                    .pair
                    .ethtool_stats(Side::A)
                    .context("ethtool -S on A")?;
                let get = |k: &str| s.get(k).copied().unwrap_or(0);
                (
                    XdpView {
                        seen: get("rx_queue_0_xdp_packets"),
                        redirected: get("rx_queue_0_xdp_redirect"),
                        dropped: get("rx_queue_0_xdp_drops"),
                        transmitted: get("rx_queue_0_xdp_tx"),
                    },
                    XdpSource::Ethtool,
                )
            }
        };
        let b = match self.sink {
            Some(sink) => sink.counters()?.dropped,
            None => 0,
        };
        let gen = self
            .gen
            .as_ref()
            .map_or(0, |g| g.completed.load(Ordering::Relaxed));
        let t2 = Instant::now();
        Ok((
            Sample {
                at: t1 + (t2 - t1) / 2,
                value: Outside {
                    gen,
                    xdp,
                    b,
                    napi_ns,
                    prog_ns,
                    cpu_busy,
                    cpu_total,
                    all_busy,
                    all_total,
                },
            },
            source,
        ))
    }

    /// Samples the outside at each boundary of `s`, sleeping until each:
    /// the same windows the program counts itself in.
    fn sample_bounds(
        &self,
        s: &Schedule,
        napi: &[NapiThread],
        prog_tid: Option<u32>,
    ) -> Result<(Vec<Sample<Outside>>, XdpSource)> {
        let mut outside = Vec::new();
        let mut source = XdpSource::SkmemXdp;
        for (i, &b) in s.bounds.iter().enumerate() {
            sleep_until(b)?;
            let (smp, src) = self.sample(napi, prog_tid)?;
            source = src;
            outside.push(smp);
            if let Some(p) = &self.probe {
                // Record from the first boundary to the last.
                p.hold.store(i + 1 == s.bounds.len(), Ordering::Relaxed);
            }
        }
        Ok((outside, source))
    }

    /// `threaded`: switches threaded NAPI on and pins A's kthreads (again:
    /// testpmd attaches its own program, which makes a new one). Failure is
    /// reported, not fatal: the result then shows no NAPI thread.
    pub(super) fn pin_napi(&self) -> Vec<NapiThread> {
        match self.a.napi_cpu {
            Some(cpu) => napi::ensure(&self.a.ns, &self.a.ifname, cpu).unwrap_or_else(|e| {
                eprintln!("pps: warning: {e:#}");
                Vec::new()
            }),
            None => Vec::new(),
        }
    }
}

/// What one program run measured: the program's own counter and the
/// harness's samples at the same boundaries.
struct Measured {
    own: Vec<Sample<u64>>,
    counters: ProgCounters,
    outside: Vec<Sample<Outside>>,
    source: XdpSource,
    napi_threads: Vec<NapiThread>,
}

impl Measured {
    /// Fails unless the run measured a window and the program sampled
    /// every boundary the harness did.
    fn check_windows(&self) -> Result<()> {
        if self.outside.len() < 2 {
            bail!("no measured window (the run stopped before its first repetition ended)");
        }
        if self.own.len() != self.outside.len() {
            bail!(
                "the program sampled {} of {} boundaries (stopped early?)",
                self.own.len(),
                self.outside.len()
            );
        }
        Ok(())
    }

    /// The per-window rates of one of the harness's counters.
    fn outside_rates(&self, f: fn(&Outside) -> u64) -> Vec<f64> {
        let v: Vec<Sample<u64>> = self
            .outside
            .iter()
            .map(|s| Sample {
                at: s.at,
                value: f(&s.value),
            })
            .collect();
        rates(&v)
    }

    /// Where the CPU time went over the measured windows (none of the
    /// program's own for the ceiling, which has no program).
    fn cpu_use(&self, imp: Implementation) -> CpuUse {
        let (outside, own) = (&self.outside, &self.own);
        let (first, last) = (outside[0].value, outside[outside.len() - 1].value);
        let window_s = outside[outside.len() - 1]
            .at
            .duration_since(outside[0].at)
            .as_secs_f64();
        let napi_cpu_share = (!self.napi_threads.is_empty() && window_s > 0.0)
            .then(|| last.napi_ns.saturating_sub(first.napi_ns) as f64 / 1e9 / window_s);
        let own_in_windows = own[own.len() - 1].value.saturating_sub(own[0].value);
        let per_packet = |ns: u64| (own_in_windows > 0).then(|| ns as f64 / own_in_windows as f64);
        let prog_ns = last.prog_ns.saturating_sub(first.prog_ns);
        let napi_ns = last.napi_ns.saturating_sub(first.napi_ns);
        let (prog_cpu_share, prog_ns_per_packet) = if imp == Implementation::Ceiling {
            (None, None)
        } else {
            (
                (window_s > 0.0).then(|| prog_ns as f64 / 1e9 / window_s),
                per_packet(prog_ns),
            )
        };
        let napi_ns_per_packet = if self.napi_threads.is_empty() {
            None
        } else {
            per_packet(napi_ns)
        };
        let prog_cpu_busy = {
            let total = last.cpu_total.saturating_sub(first.cpu_total);
            (total > 0).then(|| last.cpu_busy.saturating_sub(first.cpu_busy) as f64 / total as f64)
        };
        // The machine's busy time, in CPUs: busy jiffies over all jiffies
        // (every CPU's), times the CPUs; per frame the program counted.
        let all_total = last.all_total.saturating_sub(first.all_total);
        let machine_busy_cores = (all_total > 0 && window_s > 0.0).then(|| {
            last.all_busy.saturating_sub(first.all_busy) as f64 / all_total as f64
                * sys::cpu_count() as f64
        });
        let machine_ns_per_packet =
            machine_busy_cores.and_then(|c| per_packet((c * window_s * 1e9) as u64));
        CpuUse {
            napi_cpu_share,
            prog_cpu_busy,
            prog_cpu_share,
            prog_ns_per_packet,
            napi_ns_per_packet,
            machine_busy_cores,
            machine_ns_per_packet,
        }
    }
}

/// A program run's CPU figures, as [`ProgramResult`] reports them.
struct CpuUse {
    napi_cpu_share: Option<f64>,
    prog_cpu_busy: Option<f64>,
    prog_cpu_share: Option<f64>,
    prog_ns_per_packet: Option<f64>,
    napi_ns_per_packet: Option<f64>,
    machine_busy_cores: Option<f64>,
    machine_ns_per_packet: Option<f64>,
}

/// The wait mode `imp` runs with where the layout's programs wait as
/// `wait` (skmem-w1/w2 and the sink; every other program waits its own
/// way in every layout).
pub(super) fn wait_of(imp: Implementation, wait: Wait) -> Wait {
    match imp {
        // skmem at its defaults.
        Implementation::Skmem | Implementation::SkmemAgain | Implementation::SkmemProbed => {
            Wait::Adaptive
        }
        Implementation::SkmemCoalesce => Wait::Coalesce,
        // The peers as their users run them: their examples spin, and
        // testpmd's PMD always polls its rings (busy_budget=0 only turns
        // the kernel's busy polling off) ...
        Implementation::SkmemSpin
        | Implementation::XskRs
        | Implementation::LibxdpC
        | Implementation::Testpmd => Wait::Spin,
        // ... and at their low-CPU setting.
        Implementation::XskRsPoll | Implementation::LibxdpCPoll => Wait::Poll,
        Implementation::SkmemW1
        | Implementation::SkmemW2
        | Implementation::XskSink
        | Implementation::Ceiling => wait,
    }
}

/// One run of `imp` (`program`) in a cell: measures it and makes its
/// result of the program's own counts and the harness's samples.
pub(super) fn run_one(
    ctx: &RunCtx<'_>,
    imp: Implementation,
    program: &str,
    generator: Option<gen::GenKind>,
    p: ProgParams,
) -> Result<ProgramResult> {
    let workload = p.workload;
    let wait = wait_of(imp, p.wait);
    // The programs read their wait mode from the parameters (testpmd's
    // runner reads none).
    let p = ProgParams { wait, ..p };
    let size = p.pkt_size;
    let m = if imp == Implementation::Ceiling {
        measure_ceiling(ctx, &p)?
    } else {
        run_program(ctx, imp, p)?
    };
    m.check_windows()?;

    let own_rates = rates(&m.own);
    let offered = m.outside_rates(|o| o.gen);
    let redirected = m.outside_rates(|o| o.xdp.redirected);
    let (own_sum, redir_sum) = (
        own_rates.iter().sum::<f64>(),
        redirected.iter().sum::<f64>(),
    );
    let through_socket = workload != Workload::Txonly && imp != Implementation::Ceiling;
    let cpu = m.cpu_use(imp);
    Ok(ProgramResult {
        layout: ctx.layout,
        wait,
        generator,
        workload,
        size,
        program: program.to_owned(),
        implementation: imp,
        kind: imp.kind(),
        reps_mpps: own_rates.iter().map(|r| r / 1e6).collect(),
        mpps: Stat::of_pps(&own_rates),
        offered_mpps: generator.map(|_| Stat::of_pps(&offered)),
        xdp_source: m.source,
        xdp_seen_mpps: Some(Stat::of_pps(&m.outside_rates(|o| o.xdp.seen))),
        xdp_redirected_mpps: Some(Stat::of_pps(&redirected)),
        reached_b_mpps: Stat::of_pps(&m.outside_rates(|o| o.b)),
        reps_offered_mpps: if generator.is_some() {
            offered.iter().map(|r| r / 1e6).collect()
        } else {
            Vec::new()
        },
        reps_redirected_mpps: redirected.iter().map(|r| r / 1e6).collect(),
        reps_seen_mpps: m
            .outside_rates(|o| o.xdp.seen)
            .iter()
            .map(|r| r / 1e6)
            .collect(),
        reps_reached_b_mpps: m.outside_rates(|o| o.b).iter().map(|r| r / 1e6).collect(),
        rounds_mpps: vec![median_min_max(&own_rates).0 / 1e6],
        share_of_redirected: (through_socket && redir_sum > 0.0).then(|| own_sum / redir_sum),
        napi_threads: m.napi_threads,
        napi_cpu_share: cpu.napi_cpu_share,
        prog_cpu_busy: cpu.prog_cpu_busy,
        prog_cpu_share: cpu.prog_cpu_share,
        prog_ns_per_packet: cpu.prog_ns_per_packet,
        napi_ns_per_packet: cpu.napi_ns_per_packet,
        machine_busy_cores: cpu.machine_busy_cores,
        machine_ns_per_packet: cpu.machine_ns_per_packet,
        mpps_per_busy_core: cpu
            .machine_busy_cores
            .filter(|&c| c > 0.0)
            .map(|c| median_min_max(&own_rates).0 / 1e6 / c),
        counters: m.counters,
        wall_s: ctx.t0.elapsed().as_secs_f64(),
    })
}

/// The ceiling's run: no program thread, the harness samples alone.
fn measure_ceiling(ctx: &RunCtx<'_>, p: &ProgParams) -> Result<Measured> {
    // The ceiling is A's XDP program itself: its counters are its own.
    let s = Schedule::starting_now(p.warmup, p.duration, p.reps);
    let napi_threads = ctx.pin_napi();
    let (outside, source) = ctx.sample_bounds(&s, &napi_threads, None)?;
    let own: Vec<Sample<u64>> = outside
        .iter()
        .map(|s| Sample {
            at: s.at,
            value: if p.workload == Workload::L2fwd {
                s.value.xdp.transmitted
            } else {
                s.value.xdp.dropped
            },
        })
        .collect();
    Ok(Measured {
        own,
        counters: ProgCounters::default(),
        outside,
        source,
        napi_threads,
    })
}

/// Sets its flag when dropped: stops the program thread whatever happens
/// while it runs.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Runs a program under test on its own thread in A, pinned to the program
/// CPU, sampling the outside at the boundaries it announces.
fn run_program(ctx: &RunCtx<'_>, imp: Implementation, p: ProgParams) -> Result<Measured> {
    let stop = Arc::new(AtomicBool::new(false));
    let launched = spawn_program(ctx, imp, p, &stop)?;
    // Stop the program thread whatever happens below.
    let guard = StopOnDrop(Arc::clone(&stop));

    let schedule = await_schedule(&launched)?;
    let mut outside = Vec::new();
    let mut source = XdpSource::SkmemXdp;
    let mut napi_threads = Vec::new();
    if let Some(s) = &schedule {
        // In the warm-up: threaded NAPI and the pinning, again (testpmd's
        // own XDP program made a new NAPI instance).
        napi_threads = ctx.pin_napi();
        let prog_tid = launched.tid.try_recv().ok();
        (outside, source) = ctx.sample_bounds(s, &napi_threads, prog_tid)?;
        // The program stops itself after the last boundary; give it a
        // bounded grace period, then tell it to.
        let grace = s.end() + Duration::from_secs(5);
        while !launched.handle.is_finished() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(guard);
    let run = launched
        .handle
        .join()
        .map_err(|_| anyhow!("the program thread panicked"))??;
    if schedule.is_none() {
        bail!("the program under test did not start within 30 s");
    }
    Ok(Measured {
        own: run.samples,
        counters: run.counters,
        outside,
        source,
        napi_threads,
    })
}

/// A program thread just started, and what it announces.
struct Launched {
    handle: JoinHandle<Result<ProgRun>>,
    /// Its schedule, sent once it runs.
    schedule: mpsc::Receiver<Schedule>,
    /// Its thread id, for its CPU time.
    tid: mpsc::Receiver<u32>,
}

/// Starts `imp`'s program on its own thread in A, pinned to the program
/// CPU (at `SCHED_FIFO` if the settings say so); it stops when `stop` is
/// set.
fn spawn_program(
    ctx: &RunCtx<'_>,
    imp: Implementation,
    p: ProgParams,
    stop: &Arc<AtomicBool>,
) -> Result<Launched> {
    let (sched_tx, sched_rx) = mpsc::channel::<Schedule>();
    let (tid_tx, tid_rx) = mpsc::channel::<u32>();
    let (prog, stop) = (Arc::clone(&ctx.a.prog), Arc::clone(stop));
    let cpus = (ctx.cfg.gen_cpu, ctx.cfg.prog_cpu);
    let fifo = ctx.cfg.prog_fifo;
    let handle = ctx.pair.spawn_in_ns(Side::A, move || -> Result<ProgRun> {
        sys::pin_current_thread(cpus.1)?;
        if let Some(priority) = fifo {
            sched::run_fifo(priority)?;
        }
        let _ = tid_tx.send(rustix::thread::gettid().as_raw_nonzero().get() as u32);
        let mut register = |fd: BorrowedFd<'_>| -> Result<()> {
            lock(&prog)?
                .as_mut()
                .ok_or_else(|| anyhow!("no XDP program on A to register the socket in"))?
                .add_socket(0, fd)
                .context("adding the socket to the XSKMAP")
        };
        let mut start = || {
            let s = Schedule::starting_now(p.warmup, p.duration, p.reps);
            let m = Meter::new(&s);
            let _ = sched_tx.send(s);
            m
        };
        run_under_test(imp, &p, cpus, &mut register, &mut start, &stop)
    })?;
    Ok(Launched {
        handle,
        schedule: sched_rx,
        tid: tid_rx,
    })
}

/// Runs `imp`'s loop on this thread: `register` puts its socket in A's
/// XSKMAP, `start` starts the schedule.
fn run_under_test(
    imp: Implementation,
    p: &ProgParams,
    cpus: (usize, usize),
    register: &mut dyn FnMut(BorrowedFd<'_>) -> Result<()>,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    // The socket is closed when each returns: the kernel takes it
    // out of the map.
    match imp {
        Implementation::Skmem
        | Implementation::SkmemAgain
        | Implementation::SkmemCoalesce
        | Implementation::SkmemSpin => skmem_prog::run(p, register, start, stop),
        Implementation::SkmemProbed => {
            let _watch = probes::Watch::attach()?;
            skmem_prog::run(p, register, start, stop)
        }
        Implementation::SkmemW1 => skmem_prog::run_workers(p, 1, cpus.1, register, start, stop),
        Implementation::SkmemW2 => skmem_prog::run_workers(p, 2, cpus.1, register, start, stop),
        Implementation::XskRs | Implementation::XskRsPoll => {
            xsk_prog::run(p, register, start, stop)
        }
        Implementation::XskSink => xsk_prog::sink(p, register, start, stop),
        Implementation::LibxdpC | Implementation::LibxdpCPoll => {
            peers::run_cpeer(p, register, start, stop)
        }
        Implementation::Testpmd => peers::run_testpmd(p, cpus, start, stop),
        Implementation::Ceiling => bail!("the ceiling has no program thread"),
    }
}

/// Waits for the program's schedule: set-up (testpmd's EAL, say) may take
/// a while; the program announces its schedule once it runs. `None` when
/// it did not within 30 s, or ended first.
fn await_schedule(launched: &Launched) -> Result<Option<Schedule>> {
    let mut schedule = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while schedule.is_none() && Instant::now() < deadline && !launched.handle.is_finished() {
        check_interrupt()?;
        schedule = launched
            .schedule
            .recv_timeout(Duration::from_millis(50))
            .ok();
    }
    if schedule.is_none() {
        // A program that fails before its schedule sent nothing: a late
        // send is still in the channel.
        schedule = launched.schedule.try_recv().ok();
    }
    Ok(schedule)
}
