//! Running the matrix: the veth pair and its namespaces, the generator, each
//! layout, cell and program in turn, with retries and interrupts.

use super::*;

pub(super) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

pub(super) fn lock<T>(m: &Mutex<T>) -> Result<MutexGuard<'_, T>> {
    m.lock().map_err(|_| anyhow!("XDP program lock poisoned"))
}

/// Process-unique numbers for arena names.
pub(super) static NEXT_ARENA: AtomicU32 = AtomicU32::new(0);

pub(super) fn arena_name(tag: &str) -> String {
    format!(
        "pps{}{tag}{}",
        std::process::id(),
        NEXT_ARENA.fetch_add(1, Ordering::Relaxed)
    )
}

/// Stops and joins the generator when dropped (also on an early return).
pub(super) struct GenGuard {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Result<u64>>>,
}

impl GenGuard {
    pub(super) fn finish(&mut self) -> Result<u64> {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.take() {
            Some(h) => h
                .join()
                .map_err(|_| anyhow!("the generator thread panicked"))?,
            None => Ok(0),
        }
    }
}

impl Drop for GenGuard {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Starts the generator in B and waits until it runs.
pub(super) fn start_generator(
    pair: &NetnsPair,
    cfg: &Config,
    size: usize,
) -> Result<(GenGuard, Arc<gen::GenCounters>)> {
    let counters = Arc::new(gen::GenCounters::default());
    let mut guard = GenGuard {
        stop: Arc::new(AtomicBool::new(false)),
        handle: None,
    };
    let gp = gen::GenParams {
        ifname: pair.ifname(Side::B).to_owned(),
        cpu: cfg.gen_cpu,
        batch: cfg.batch,
        packets: cfg.frames as usize,
        spec: pair.frame_spec(Side::B, size).context("frame spec")?,
        arena_name: arena_name("g"),
    };
    {
        let (c, s) = (Arc::clone(&counters), Arc::clone(&guard.stop));
        let kind = cfg.generator;
        guard.handle = Some(pair.spawn_in_ns(Side::B, move || match kind {
            gen::GenKind::Afxdp => gen::run(&gp, &c, &s),
            gen::GenKind::Xdp => gen::run_xdp(&gp, &c, &s),
        })?);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !counters.running.load(Ordering::Acquire) {
        if guard.handle.as_ref().is_some_and(|h| h.is_finished()) || Instant::now() > deadline {
            guard.finish().context("the generator did not start")?;
            bail!("the generator did not start");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok((guard, counters))
}

/// Why [`run`] cannot run here (not root, no `ip`, too few CPUs), or `None`.
pub fn skip_reason(cfg: &Config) -> Option<String> {
    if let Some(r) = skmem_netns::skip_reason() {
        return Some(r);
    }
    let cpus = sys::allowed_cpus();
    for c in [cfg.gen_cpu, cfg.prog_cpu] {
        if !cpus.contains(&c) {
            return Some(format!("cpu{c} is not available (allowed: {cpus:?})"));
        }
    }
    None
}

/// Runs the whole measurement; `log` gets progress lines.
pub fn run(cfg: &Config, log: &mut dyn FnMut(&str)) -> Result<Report> {
    cfg.validate()?;
    if let Some(r) = skip_reason(cfg) {
        bail!("pps needs root and two CPUs: {r}");
    }
    let t0 = Instant::now();
    let load_before = loadavg();
    // Namespaces left behind by a harness process that was killed.
    for stale in skmem_netns::cleanup_stale() {
        log(&format!("pps: removed stale {stale}"));
    }
    // Before any thread of the run exists: a task's scheduling group is
    // chosen when it is created. Restored when the guard drops, error or not.
    let (_autogroup_guard, autogroup) = sched::AutogroupGuard::turn_off(cfg.keep_autogroup, log);
    // libxdp's bpffs directory, made by a peer that loads through libxdp,
    // goes again when the run ends if the run made it.
    let _libxdp_state = peers::LibxdpStateGuard::new();
    if let sched::Autogroup::CouldNotTurnOff(e) = &autogroup {
        log(&format!(
            "pps: autogroup scheduling stays on ({e}): threaded figures will show it"
        ));
    }
    let mut skipped = Vec::new();
    let mut imps = Vec::new();
    for imp in cfg.ordered_implementations() {
        match cfg.skip_reason(imp).or_else(|| peers::skip_reason(imp)) {
            Some(reason) => {
                log(&format!("pps: leaving {} out: {reason}", imp.name()));
                skipped.push(Skipped {
                    implementation: imp,
                    reason,
                });
            }
            None => imps.push(imp),
        }
    }
    if imps.is_empty() {
        bail!("none of the programs asked for can run here");
    }
    let mut layouts = Vec::new();
    let mut results = Vec::new();
    for &layout in &cfg.layouts {
        check_interrupt()?;
        let (info, mut r) = run_layout(cfg, layout, &imps, t0, log)
            .with_context(|| format!("layout {}", layout.name()))?;
        layouts.push(info);
        results.append(&mut r);
    }
    let cells = cells(cfg, &results);
    let goals = goals(&cells);
    Ok(Report {
        config: cfg.clone(),
        layouts,
        results,
        cells,
        goals,
        skipped,
        elapsed_s: t0.elapsed().as_secs_f64(),
        loadavg: [load_before, loadavg()],
        autogroup,
    })
}

/// What is attached to A, swapped as the programs need.
pub(super) struct ASide {
    ns: String,
    ifname: String,
    filter: XdpFilter,
    /// `threaded`: the CPU A's NAPI kthreads go to.
    napi_cpu: Option<usize>,
    prog: Arc<Mutex<Option<XdpProgram>>>,
    action: Option<XdpAction>,
}

impl ASide {
    /// Attaches skmem's program with `want` (or nothing) to A, detaching
    /// what was there; in `threaded`, switches threaded NAPI on and pins
    /// the (new) kthread. Nothing changes when `want` is already there.
    pub(super) fn set(&mut self, pair: &NetnsPair, want: Option<XdpAction>) -> Result<()> {
        if self.action == want && lock(&self.prog)?.is_some() == want.is_some() {
            return Ok(());
        }
        self.renew(pair, want)
    }

    /// [`set`](Self::set), detaching and attaching even when `want` is
    /// already there: A's veth then starts from a fresh state — new NAPI
    /// instance, kthread and page pool. Every program run starts this way:
    /// without it, a run's rate depended on how long ago the last program
    /// swap (a ceiling, testpmd) reset that state — skmem run twice in the
    /// same round differed by 20 % in the threaded layout.
    pub(super) fn renew(&mut self, pair: &NetnsPair, want: Option<XdpAction>) -> Result<()> {
        let old = lock(&self.prog)?.take();
        self.action = None;
        if let Some(p) = old {
            p.detach()
                .with_context(|| format!("detaching the XDP program from {}", self.ifname))?;
        }
        if let Some(action) = want {
            let (ifname, filter) = (self.ifname.clone(), self.filter);
            let p = pair
                .in_ns(Side::A, move || {
                    XdpProgram::attach_with_action(
                        &ifname,
                        AttachMode::Native,
                        Some(filter),
                        action,
                    )
                })
                .with_context(|| {
                    format!(
                        "attaching skmem's XDP program ({action:?}) to {} (native)",
                        self.ifname
                    )
                })?;
            *lock(&self.prog)? = Some(p);
            self.action = Some(action);
            if let Some(cpu) = self.napi_cpu {
                napi::ensure(&self.ns, &self.ifname, cpu)?;
            }
        }
        Ok(())
    }
}

pub(super) fn run_layout(
    cfg: &Config,
    layout: Layout,
    imps: &[Implementation],
    t0: Instant,
    log: &mut dyn FnMut(&str),
) -> Result<(LayoutInfo, Vec<ProgramResult>)> {
    let tl = Instant::now();
    let max_size = cfg.sizes.iter().copied().max().unwrap_or(64);
    let mtu = (max_size - ETH_HLEN).max(1500) as u32;
    // Dropped last (declared first): removes namespaces and veths.
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1).mtu(mtu))
        .context("creating the namespace pair")?;
    let if_a = pair.ifname(Side::A).to_owned();
    let if_b = pair.ifname(Side::B).to_owned();
    let filter = XdpFilter::new().with_udp_dst_ports(DEFAULT_UDP_PORT, DEFAULT_UDP_PORT);
    // B's sink: counts and drops what A sends (txonly, l2fwd, xdp-tx), and
    // gives B's veth the NAPI instance XDP_TX from A needs to deliver to.
    let sink = {
        let b = if_b.clone();
        pair.in_ns(Side::B, move || {
            XdpProgram::attach_with_action(&b, AttachMode::Native, Some(filter), XdpAction::Drop)
        })
        .with_context(|| format!("attaching the counting sink to {if_b} (native)"))?
    };
    let mut a = ASide {
        ns: pair.ns_name(Side::A).to_owned(),
        ifname: if_a.clone(),
        filter,
        napi_cpu: (layout == Layout::Threaded).then_some(cfg.prog_cpu),
        prog: Arc::new(Mutex::new(None)),
        action: None,
    };
    a.set(&pair, Some(XdpAction::Redirect))?;
    let xdp_mode = lock(&a.prog)?
        .as_ref()
        .map(|p| p.mode().to_string())
        .unwrap_or_default();
    let wait = layout.wait(cfg);
    log(&format!(
        "pps: layout {}: veth {if_a} (A) <- {if_b} (B), MTU {mtu}, XDP {xdp_mode}; {}",
        layout.name(),
        layout.describe(cfg)
    ));

    let mut results = Vec::new();
    {
        let mut rig = Rig {
            cfg,
            layout,
            wait,
            t0,
            pair: &pair,
            a: &mut a,
            sink: &sink,
        };
        for &w in &cfg.workloads {
            for &size in &cfg.sizes {
                results.extend(run_cell(&mut rig, imps, w, size, log)?);
            }
        }
    }
    // Detach before the pair goes (dropping does too; this reports errors).
    if let Some(p) = lock(&a.prog)?.take() {
        p.detach().context("detaching A's XDP program")?;
    }
    sink.detach().context("detaching B's sink")?;
    drop(pair);
    Ok((
        LayoutInfo {
            layout,
            description: layout.describe(cfg),
            wait,
            ifnames: [if_a, if_b],
            mtu,
            xdp_mode,
            elapsed_s: tl.elapsed().as_secs_f64(),
        },
        results,
    ))
}

/// What every run of a layout shares: its namespace pair, A's side, B's
/// sink, and the settings.
pub(super) struct Rig<'a> {
    cfg: &'a Config,
    layout: Layout,
    wait: Wait,
    t0: Instant,
    pair: &'a NetnsPair,
    a: &'a mut ASide,
    sink: &'a XdpProgram,
}

/// One cell (workload × frame size) of a layout: `cfg.rounds` rounds, each
/// running every program once — round r in order, round r + 1 in reverse,
/// so that drift within a round favours none of them — merged per program.
pub(super) fn run_cell(
    rig: &mut Rig<'_>,
    imps: &[Implementation],
    w: Workload,
    size: usize,
    log: &mut dyn FnMut(&str),
) -> Result<Vec<ProgramResult>> {
    let (cfg, layout) = (rig.cfg, rig.layout);
    let tx_frame = rig
        .pair
        .frame_spec(Side::A, size)
        .and_then(|s| Ok(s.build(0)?))
        .context("txonly frame")?;
    let mut runs: Vec<Vec<ProgramResult>> = vec![Vec::new(); imps.len()];
    for round in 0..cfg.rounds {
        let order: Vec<usize> = if round % 2 == 0 {
            (0..imps.len()).collect()
        } else {
            (0..imps.len()).rev().collect()
        };
        for idx in order {
            let imp = imps[idx];
            check_interrupt()?;
            let Some(program) = imp.program(w) else {
                continue;
            };
            let label = if cfg.rounds > 1 {
                format!(
                    "[{} {} {size}B round {}/{}] {program}",
                    layout.name(),
                    w.name(),
                    round + 1,
                    cfg.rounds
                )
            } else {
                format!("[{} {} {size}B] {program}", layout.name(), w.name())
            };
            rig.a
                .renew(rig.pair, imp.a_side(w))
                .with_context(|| format!("{label}: preparing A"))?;
            // A failed run (the generator interrupted, a peer that did not
            // start) is tried once more before the whole run gives up.
            let r = match run_attempt(rig, imp, program, w, size, &tx_frame, &label) {
                Err(e) if !INTERRUPT.load(Ordering::Relaxed) => {
                    log(&format!("pps: {label}: failed, trying once more: {e:#}"));
                    run_attempt(rig, imp, program, w, size, &tx_frame, &label)
                }
                r => r,
            };
            let r = r?;
            log(&format!("pps: {label}: {}", r.summary()));
            runs[idx].push(r);
        }
    }
    Ok(runs
        .into_iter()
        .filter_map(ProgramResult::merge_rounds)
        .collect())
}

/// One program run: starts the generator (unless txonly), runs the
/// program, and stops the generator.
pub(super) fn run_attempt(
    rig: &Rig<'_>,
    imp: Implementation,
    program: &str,
    w: Workload,
    size: usize,
    tx_frame: &[u8],
    label: &str,
) -> Result<ProgramResult> {
    let cfg = rig.cfg;
    let generator = (w != Workload::Txonly).then_some(cfg.generator);
    let gen = match generator {
        Some(_) => Some(
            start_generator(rig.pair, cfg, size)
                .with_context(|| format!("{label}: starting the generator"))?,
        ),
        None => None,
    };
    let p = ProgParams {
        ifname: rig.a.ifname.clone(),
        workload: w,
        wait: rig.wait,
        batch: cfg.batch,
        frames: cfg.frames,
        frame_size: cfg.frame_size,
        ring_entries: cfg.ring_entries,
        // The kernel refuses a budget above the TX ring's size: every
        // program gets the same, clamped one.
        tx_budget: cfg.tx_budget.map(|b| b.min(cfg.ring_entries)),
        arena_name: arena_name("p"),
        warmup: Duration::from_secs_f64(cfg.warmup_s),
        duration: Duration::from_secs_f64(cfg.duration_s),
        reps: cfg.reps,
        pkt_size: size,
        frame: tx_frame.to_vec(),
        worker_exe: cfg.worker_exe.clone(),
    };
    let ctx = RunCtx {
        pair: rig.pair,
        a: &*rig.a,
        sink: rig.sink,
        gen: gen.as_ref().map(|(_, c)| Arc::clone(c)),
        cfg,
        layout: rig.layout,
        t0: rig.t0,
    };
    let r = run_one(&ctx, imp, program, generator, p).with_context(|| label.to_owned());
    if let Some((mut g, _)) = gen {
        g.finish()
            .with_context(|| format!("{label}: the generator failed"))?;
    }
    r
}

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
}

pub(super) struct RunCtx<'a> {
    pair: &'a NetnsPair,
    a: &'a ASide,
    sink: &'a XdpProgram,
    gen: Option<Arc<gen::GenCounters>>,
    cfg: &'a Config,
    layout: Layout,
    t0: Instant,
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
        let b = self.sink.counters()?.dropped;
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
                },
            },
            source,
        ))
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

pub(super) fn run_one(
    ctx: &RunCtx<'_>,
    imp: Implementation,
    program: &str,
    generator: Option<gen::GenKind>,
    p: ProgParams,
) -> Result<ProgramResult> {
    let workload = p.workload;
    // testpmd's PMD always polls its rings (busy_budget=0 only turns the
    // kernel's busy polling off).
    let wait = match imp {
        Implementation::Testpmd => Wait::Spin,
        Implementation::SkmemCoalesce => Wait::Coalesce,
        _ => p.wait,
    };
    // The programs read their wait mode from the parameters (testpmd's
    // runner reads none).
    let p = ProgParams { wait, ..p };
    let size = p.pkt_size;
    let mut outside = Vec::new();
    let mut source = XdpSource::SkmemXdp;
    let mut napi_threads = Vec::new();
    let (own, counters) = if imp == Implementation::Ceiling {
        // The ceiling is A's XDP program itself: its counters are its own.
        let s = Schedule::starting_now(p.warmup, p.duration, p.reps);
        napi_threads = ctx.pin_napi();
        for &b in &s.bounds {
            sleep_until(b)?;
            let (smp, src) = ctx.sample(&napi_threads, None)?;
            source = src;
            outside.push(smp);
        }
        let own: Vec<Sample<u64>> = outside
            .iter()
            .map(|s| Sample {
                at: s.at,
                value: if workload == Workload::L2fwd {
                    s.value.xdp.transmitted
                } else {
                    s.value.xdp.dropped
                },
            })
            .collect();
        (own, ProgCounters::default())
    } else {
        let run = run_program(ctx, imp, p, &mut outside, &mut source, &mut napi_threads)?;
        (run.samples, run.counters)
    };
    if outside.len() < 2 {
        bail!("no measured window (the run stopped before its first repetition ended)");
    }
    if own.len() != outside.len() {
        bail!(
            "the program sampled {} of {} boundaries (stopped early?)",
            own.len(),
            outside.len()
        );
    }

    let own_rates = rates(&own);
    let pick = |f: fn(&Outside) -> u64| -> Vec<f64> {
        let v: Vec<Sample<u64>> = outside
            .iter()
            .map(|s| Sample {
                at: s.at,
                value: f(&s.value),
            })
            .collect();
        rates(&v)
    };
    let offered = pick(|o| o.gen);
    let redirected = pick(|o| o.xdp.redirected);
    let (own_sum, redir_sum) = (
        own_rates.iter().sum::<f64>(),
        redirected.iter().sum::<f64>(),
    );
    let through_socket = workload != Workload::Txonly && imp != Implementation::Ceiling;
    let (first, last) = (outside[0].value, outside[outside.len() - 1].value);
    let window_s = outside[outside.len() - 1]
        .at
        .duration_since(outside[0].at)
        .as_secs_f64();
    let napi_cpu_share = (!napi_threads.is_empty() && window_s > 0.0)
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
    let napi_ns_per_packet = if napi_threads.is_empty() {
        None
    } else {
        per_packet(napi_ns)
    };
    let prog_cpu_busy = {
        let total = last.cpu_total.saturating_sub(first.cpu_total);
        (total > 0).then(|| last.cpu_busy.saturating_sub(first.cpu_busy) as f64 / total as f64)
    };
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
        xdp_source: source,
        xdp_seen_mpps: Some(Stat::of_pps(&pick(|o| o.xdp.seen))),
        xdp_redirected_mpps: Some(Stat::of_pps(&redirected)),
        reached_b_mpps: Stat::of_pps(&pick(|o| o.b)),
        reps_offered_mpps: if generator.is_some() {
            offered.iter().map(|r| r / 1e6).collect()
        } else {
            Vec::new()
        },
        reps_redirected_mpps: redirected.iter().map(|r| r / 1e6).collect(),
        reps_seen_mpps: pick(|o| o.xdp.seen).iter().map(|r| r / 1e6).collect(),
        reps_reached_b_mpps: pick(|o| o.b).iter().map(|r| r / 1e6).collect(),
        rounds_mpps: vec![median_min_max(&own_rates).0 / 1e6],
        share_of_redirected: (through_socket && redir_sum > 0.0).then(|| own_sum / redir_sum),
        napi_threads,
        napi_cpu_share,
        prog_cpu_busy,
        prog_cpu_share,
        prog_ns_per_packet,
        napi_ns_per_packet,
        counters,
        wall_s: ctx.t0.elapsed().as_secs_f64(),
    })
}

/// Runs a program under test on its own thread in A, pinned to the program
/// CPU, sampling the outside at the boundaries it announces.
pub(super) fn run_program(
    ctx: &RunCtx<'_>,
    imp: Implementation,
    p: ProgParams,
    outside: &mut Vec<Sample<Outside>>,
    source: &mut XdpSource,
    napi_threads: &mut Vec<NapiThread>,
) -> Result<ProgRun> {
    let stop = Arc::new(AtomicBool::new(false));
    let (sched_tx, sched_rx) = mpsc::channel::<Schedule>();
    let (tid_tx, tid_rx) = mpsc::channel::<u32>();
    let handle = {
        let (prog, stop) = (Arc::clone(&ctx.a.prog), Arc::clone(&stop));
        let cpus = (ctx.cfg.gen_cpu, ctx.cfg.prog_cpu);
        let fifo = ctx.cfg.prog_fifo;
        ctx.pair.spawn_in_ns(Side::A, move || -> Result<ProgRun> {
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
            // The socket is closed when each returns: the kernel takes it
            // out of the map.
            match imp {
                Implementation::Skmem
                | Implementation::SkmemAgain
                | Implementation::SkmemCoalesce => {
                    skmem_prog::run(&p, &mut register, &mut start, &stop)
                }
                Implementation::SkmemW1 => {
                    skmem_prog::run_workers(&p, 1, cpus.1, &mut register, &mut start, &stop)
                }
                Implementation::SkmemW2 => {
                    skmem_prog::run_workers(&p, 2, cpus.1, &mut register, &mut start, &stop)
                }
                Implementation::XskRs => xsk_prog::run(&p, &mut register, &mut start, &stop),
                Implementation::XskSink => xsk_prog::sink(&p, &mut register, &mut start, &stop),
                Implementation::LibxdpC => peers::run_cpeer(&p, &mut register, &mut start, &stop),
                Implementation::Testpmd => peers::run_testpmd(&p, cpus, &mut start, &stop),
                Implementation::Ceiling => bail!("the ceiling has no program thread"),
            }
        })?
    };
    // Stop the program thread whatever happens below.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let guard = StopOnDrop(Arc::clone(&stop));

    // Set-up (testpmd's EAL, say) may take a while; the program announces
    // its schedule once it runs.
    let mut schedule = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while schedule.is_none() && Instant::now() < deadline && !handle.is_finished() {
        check_interrupt()?;
        schedule = sched_rx.recv_timeout(Duration::from_millis(50)).ok();
    }
    if schedule.is_none() {
        // A program that fails before its schedule sent nothing: a late
        // send is still in the channel.
        schedule = sched_rx.try_recv().ok();
    }
    if let Some(s) = &schedule {
        // In the warm-up: threaded NAPI and the pinning, again (testpmd's
        // own XDP program made a new NAPI instance).
        *napi_threads = ctx.pin_napi();
        let prog_tid = tid_rx.try_recv().ok();
        for &b in &s.bounds {
            sleep_until(b)?;
            let (smp, src) = ctx.sample(napi_threads, prog_tid)?;
            *source = src;
            outside.push(smp);
        }
        // The program stops itself after the last boundary; give it a
        // bounded grace period, then tell it to.
        let grace = s.end() + Duration::from_secs(5);
        while !handle.is_finished() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    drop(guard);
    let run = handle
        .join()
        .map_err(|_| anyhow!("the program thread panicked"))??;
    if schedule.is_none() {
        bail!("the program under test did not start within 30 s");
    }
    Ok(run)
}
