//! Running the matrix: the veth pair and its namespaces, the generator, each
//! layout, cell and program in turn, with retries and interrupts.

use super::measure::{run_one, RunCtx};
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
    // And the offer sockets of its skmem-w1/w2 runs.
    for socket in skmem_netns::cleanup_stale_sockets(&[super::skmem_prog::OFFER_PREFIX]) {
        log(&format!(
            "pps: removed the offer socket a dead run left: {}",
            socket.display()
        ));
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
    let mut latency = Vec::new();
    for &layout in &cfg.layouts {
        check_interrupt()?;
        let (info, mut r, mut l) = run_layout(cfg, layout, &imps, t0, log)
            .with_context(|| format!("layout {}", layout.name()))?;
        layouts.push(info);
        results.append(&mut r);
        latency.append(&mut l);
    }
    let cells = cells(cfg, &results);
    let latency_cells = latency::latency_cells(&latency);
    let mut goals = goals(&cells);
    goals.extend(latency_goals(&latency_cells));
    Ok(Report {
        config: cfg.clone(),
        layouts,
        results,
        cells,
        latency,
        latency_cells,
        goals,
        skipped,
        elapsed_s: t0.elapsed().as_secs_f64(),
        loadavg: [load_before, loadavg()],
        autogroup,
    })
}

/// What is attached to A, swapped as the programs need.
pub(super) struct ASide {
    pub(super) ns: String,
    pub(super) ifname: String,
    filter: XdpFilter,
    /// `threaded`: the CPU A's NAPI kthreads go to.
    pub(super) napi_cpu: Option<usize>,
    pub(super) prog: Arc<Mutex<Option<XdpProgram>>>,
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
) -> Result<(LayoutInfo, Vec<ProgramResult>, Vec<latency::LatencyResult>)> {
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
    sink.detach().context("detaching B's sink")?;
    // Latency at loads the best peer's l2fwd rate here sets; the probe
    // puts its own program on B.
    let mut lat = Vec::new();
    if !cfg.latency_loads.is_empty() {
        match latency::best_peer_l2fwd(cfg, layout, &results) {
            Some(best) if best > 0.0 => {
                lat = latency::run_layout_latency(
                    cfg, layout, wait, t0, &pair, &mut a, imps, best, log,
                )?;
            }
            _ => log(&format!(
                "pps: layout {}: no latency runs: they need a peer's l2fwd rate at the smallest \
                 frame size (run l2fwd with a peer)",
                layout.name()
            )),
        }
    }
    // Detach before the pair goes (dropping does too; this reports errors).
    if let Some(p) = lock(&a.prog)?.take() {
        p.detach().context("detaching A's XDP program")?;
    }
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
        lat,
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
        let order = round_order(round, imps.len());
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

/// What a program run is told: the settings, A's interface, the layout's
/// wait (which [`wait_of`](super::measure::wait_of) turns into the
/// program's own), the workload and frame size.
pub(super) fn prog_params(
    cfg: &Config,
    a: &ASide,
    wait: Wait,
    w: Workload,
    size: usize,
    tx_frame: &[u8],
) -> ProgParams {
    ProgParams {
        ifname: a.ifname.clone(),
        workload: w,
        wait,
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
    }
}

/// The order of `n` programs in round `round`: forward in even rounds,
/// reversed in odd ones, so that drift within a round favours none.
pub(super) fn round_order(round: u32, n: usize) -> Vec<usize> {
    if round.is_multiple_of(2) {
        (0..n).collect()
    } else {
        (0..n).rev().collect()
    }
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
    let p = prog_params(cfg, rig.a, rig.wait, w, size, tx_frame);
    let ctx = RunCtx {
        pair: rig.pair,
        a: &*rig.a,
        sink: Some(rig.sink),
        gen: gen.as_ref().map(|(_, c)| Arc::clone(c)),
        probe: None,
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
