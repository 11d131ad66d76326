//! Smoke test of the packets-per-second harness: `pps --quick` — every
//! layout, workload and program kind (skmem at its defaults, spinning,
//! with receive coalescing and with the probes attached, skmem's owner
//! with one and two worker processes, the peers that can run here at
//! their default and low-CPU settings, the ceilings) briefly; each must
//! have moved frames, the generator must have offered traffic, txonly's
//! frames must have reached B, and every result carries its CPU figures;
//! the latency runs must have timed round trips for every latency program
//! in both layouts, with their CPU, cells and goals; autogroup
//! scheduling is off for the run and as it was after, even when a killed
//! run left it off; libxdp's bpffs directory does not outlive the run. No assertion on speed. Needs root (skipped otherwise).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use skmem_bench::pps::peers;
use skmem_bench::pps::sched::{self, Autogroup};
use skmem_bench::pps::{self, Config, Implementation, Kind, Layout, Wait, Workload};

#[test]
fn quick_run_moves_frames_through_every_program() {
    let mut cfg = Config::quick();
    // The worker processes of skmem-w1/w2 are pps itself.
    cfg.worker_exe = Some(env!("CARGO_BIN_EXE_pps").into());
    if let Some(reason) = pps::skip_reason(&cfg) {
        skmem_netns::skip("pps_smoke", &reason);
        return;
    }
    // Autogroup scheduling: as a killed run would have left it (off, with
    // its marker), which this run must restore before turning it off for
    // itself, and back on after.
    // A marker already there was left by a run killed before this test (a
    // machine's earlier run, or an interrupted CI job): the run restores
    // the value it names first, so that is the value to end with.
    let left_by_killed_run = std::fs::read_to_string(sched::MARKER)
        .ok()
        .and_then(|m| m.split_whitespace().next().map(str::to_owned));
    let autogroup_before = left_by_killed_run.or_else(|| {
        std::fs::read_to_string(sched::SYSCTL)
            .ok()
            .map(|v| v.trim().to_owned())
    });
    if autogroup_before.as_deref() == Some("1") && !std::path::Path::new(sched::MARKER).exists() {
        let mut gone = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = gone.id();
        gone.wait().unwrap();
        std::fs::write(sched::MARKER, format!("1 {dead_pid}")).unwrap();
        std::fs::write(sched::SYSCTL, "0").unwrap();
    }
    let libxdp_state = std::path::Path::new(peers::LIBXDP_STATE_DIR);
    let libxdp_state_before = libxdp_state.exists();
    let mut log = |l: &str| eprintln!("{l}");
    let report = pps::run(&cfg, &mut log).expect("pps quick run");
    // testpmd loads its XDP program through libxdp, which makes a
    // directory in bpffs: the run removes it again if it made it.
    if !libxdp_state_before {
        assert!(
            !libxdp_state.exists(),
            "the run left {} behind",
            peers::LIBXDP_STATE_DIR
        );
    }
    eprintln!("{}", report.to_table());
    assert_eq!(
        std::fs::read_to_string(sched::SYSCTL)
            .ok()
            .map(|v| v.trim().to_owned()),
        autogroup_before
    );
    assert!(!std::path::Path::new(sched::MARKER).exists());
    let expected = match autogroup_before.as_deref() {
        Some("1") => Autogroup::TurnedOff,
        Some("0") => Autogroup::AlreadyOff,
        None => Autogroup::Absent,
        Some(other) => panic!("kernel.sched_autogroup_enabled = {other}?"),
    };
    assert_eq!(report.autogroup, expected);

    // Every program asked for either ran in every cell it has something to
    // run in, or was left out with a reason.
    let ran: Vec<Implementation> = cfg
        .implementations
        .iter()
        .copied()
        .filter(|i| !report.skipped.iter().any(|s| s.implementation == *i))
        .collect();
    for s in &report.skipped {
        assert_ne!(s.implementation.kind(), Kind::Skmem, "skmem was left out");
        assert!(!s.reason.is_empty());
    }
    assert!(ran.contains(&Implementation::Skmem));
    assert!(ran.contains(&Implementation::SkmemCoalesce));
    assert!(ran.contains(&Implementation::Ceiling));
    assert!(ran.contains(&Implementation::XskSink));
    let expected: usize = cfg
        .workloads
        .iter()
        .map(|&w| ran.iter().filter(|i| i.program(w).is_some()).count())
        .sum::<usize>()
        * cfg.layouts.len()
        * cfg.sizes.len();
    assert_eq!(report.results.len(), expected);
    assert_eq!(
        report.cells.len(),
        cfg.layouts.len() * cfg.workloads.len() * cfg.sizes.len()
    );
    assert!(report.layouts.len() == 2 && cfg.layouts.contains(&Layout::Threaded));

    for r in &report.results {
        let name = format!(
            "{} {} {} {}",
            r.layout.name(),
            r.workload.name(),
            r.size,
            r.program
        );
        assert!(r.mpps.median > 0.0, "{name}: no frames counted");
        // skmem-coalesce waits its own way in every layout, and skmem
        // at its defaults adaptively.
        assert_eq!(
            r.wait == Wait::Coalesce,
            r.implementation == Implementation::SkmemCoalesce,
            "{name}: waited with {}",
            r.wait.name()
        );
        assert_eq!(
            r.wait == Wait::Adaptive,
            r.kind == Kind::Skmem || r.kind == Kind::Control || r.kind == Kind::Probed,
            "{name}: waited with {}",
            r.wait.name()
        );
        // The CPU it cost: the whole machine's, per packet and per core.
        for (what, v) in [
            ("machine_busy_cores", r.machine_busy_cores),
            ("machine_ns_per_packet", r.machine_ns_per_packet),
            ("mpps_per_busy_core", r.mpps_per_busy_core),
        ] {
            assert!(v.is_some_and(|v| v > 0.0), "{name}: {what} = {v:?}");
        }
        if r.kind != Kind::Ceiling {
            assert!(r.prog_ns_per_packet.is_some_and(|v| v > 0.0), "{name}");
        }
        assert_eq!(r.reps_mpps.len(), cfg.reps as usize, "{name}");
        match r.workload {
            Workload::Txonly => {
                assert!(r.offered_mpps.is_none(), "{name}: a generator ran");
                assert!(r.reached_b_mpps.median > 0.0, "{name}: nothing reached B");
            }
            _ => {
                let offered = r.offered_mpps.map_or(0.0, |s| s.median);
                assert!(offered > 0.0, "{name}: nothing offered");
                let seen = r.xdp_seen_mpps.map_or(0.0, |s| s.median);
                assert!(seen > 0.0, "{name}: XDP on A saw nothing");
            }
        }
        if r.kind != Kind::Ceiling && r.workload != Workload::Txonly {
            let redirected = r.xdp_redirected_mpps.map_or(0.0, |s| s.median);
            assert!(redirected > 0.0, "{name}: XDP redirected nothing");
        }
        if r.workload == Workload::L2fwd {
            assert!(
                r.reached_b_mpps.median > 0.0,
                "{name}: nothing came back to B"
            );
        }
        if r.layout == Layout::Threaded {
            assert!(!r.napi_threads.is_empty(), "{name}: no NAPI thread pinned");
        }
        if r.implementation == Implementation::XskSink {
            // What it counts are frames the kernel copied into the UMEM and
            // then found no room for on the RX ring nobody reads.
            assert_eq!(r.counters.rx_packets, 0, "{name}: it read its RX ring");
            assert!(r.counters.xsk_rx_ring_full > 0, "{name}: nothing refused");
        }
    }
    // Every goal says how far any AF_XDP program could get in this run
    // (the sink ran for rxdrop, every sender for l2fwd's txonly bound).
    // (The workers' goals compare skmem with itself across processes: no
    // bound, the A/A control says how far apart equal programs land.)
    check_latency(&cfg, &report);
    assert!(!report.goals.is_empty());
    for g in report.goals.iter().filter(|g| {
        g.load.is_none() && !g.ratio.starts_with("workers") && !g.ratio.starts_with("probed")
    }) {
        let b = g.bound.unwrap_or_else(|| panic!("no bound for {g:?}"));
        assert!(b > 0.0 && g.reachable == Some(b >= g.target), "{g:?}");
    }
}

/// The latency part of the same kind of run: checked on its own report
/// fields by [`check_latency`], called from the quick run above.
fn check_latency(cfg: &Config, report: &pps::Report) {
    let ran = |i: Implementation| !report.skipped.iter().any(|s| s.implementation == i);
    for &layout in &cfg.layouts {
        for &load in &cfg.latency_loads {
            for imp in pps::latency::LATENCY_PROGRAMS
                .into_iter()
                .filter(|&i| ran(i))
            {
                let r = report
                    .latency
                    .iter()
                    .find(|r| r.layout == layout && r.load == load && r.implementation == imp)
                    .unwrap_or_else(|| {
                        panic!("no latency run of {} in {}", imp.name(), layout.name())
                    });
                let name = format!("latency {} {} {}", layout.name(), load, r.program);
                assert!(r.sent_mpps > 0.0, "{name}: the probe sent nothing");
                assert!(r.recorded > 0, "{name}: no round trip recorded");
                assert!(
                    r.p50_us > 0.0
                        && r.p50_us <= r.p99_us
                        && r.p99_us <= r.p999_us
                        && r.p999_us <= r.max_us,
                    "{name}: quantiles out of order: {r:?}"
                );
                assert!((0.0..=1.0).contains(&r.lost_share), "{name}: {r:?}");
                assert!(r.machine_ns_per_packet.is_some_and(|v| v > 0.0), "{name}");
                // The probe's gaps were recorded, and what being awake for
                // them costs is a share of one CPU.
                assert!(
                    r.gap_p50_us > 0.0 && r.gap_p01_us <= r.gap_p50_us,
                    "{name}: {r:?}"
                );
                for share in [r.awake_share_99, r.timer_share_99] {
                    assert!(
                        share.is_some_and(|a| (0.0..=1.0).contains(&a)),
                        "{name}: {r:?}"
                    );
                }
                // Timers were measured on the program's CPU: they fire late.
                assert!(
                    r.timer_late_p50_us.is_some_and(|l| l > 0.0),
                    "{name}: {r:?}"
                );
            }
            let c = report
                .latency_cells
                .iter()
                .find(|c| c.layout == layout && c.load == load)
                .expect("a latency cell");
            assert!(c.p99_vs_best_peer.is_some(), "{c:?}");
            assert!(c.cpu_vs_best_default_peer.is_some(), "{c:?}");
            if ran(Implementation::Ceiling) {
                // The in-kernel forward is the floor beside the goals.
                assert!(c.kernel_p99_us.is_some_and(|v| v > 0.0), "{c:?}");
                assert!(c.kernel_cpu.is_some_and(|v| v > 0.0), "{c:?}");
                // Being awake for the frames costs a share of a CPU; where
                // the runs bear out a floor under CPU at p99, it is no
                // lower than the in-kernel forward's.
                assert!(c.awake_share.is_some(), "{c:?}");
                let (k, b) = (c.kernel_cpu.unwrap(), c.cpu_at_p99_bound);
                assert!(b.is_none_or(|b| b >= k - 1e-9), "{c:?}");
            }
            for ratio in [
                "p99_vs_best_peer",
                "cpu_vs_best_default_peer",
                "cpu_at_p99_vs_best_default_peer",
            ] {
                assert!(
                    report.goals.iter().any(|g| g.layout == layout
                        && g.load == Some(load)
                        && g.ratio == ratio
                        && g.at_most
                        && g.met.is_some()),
                    "no goal {ratio} at {load} in {}",
                    layout.name()
                );
            }
        }
    }
}
