//! The report as the text tables `pps` prints.

use super::*;

impl Report {
    /// The report as text tables.
    pub fn to_table(&self) -> String {
        let mut s = String::new();
        self.write_settings(&mut s);
        self.write_results(&mut s);
        self.write_cells(&mut s);
        self.write_latency(&mut s);
        self.write_goals(&mut s);
        self.write_legend(&mut s);
        s
    }

    /// The run's settings, one line per layout, and the programs left out:
    /// what the figures below were measured under.
    fn write_settings(&self, s: &mut String) {
        let c = &self.config;
        let _ = writeln!(
            s,
            "pps: AF_XDP copy mode over a veth pair (one queue a side); settings: batch {}, {} B \
             frames, UMEM {} x {} B, rings {}, TX budget {}; {} round(s) of warm-up {} s and {} x {} s; \
             programs at {}",
            c.batch,
            c.sizes
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("/"),
            c.frames,
            c.frame_size,
            c.ring_entries,
            c.tx_budget
                .map_or_else(|| "kernel default".to_owned(), |b| b.to_string()),
            c.rounds,
            c.warmup_s,
            c.reps,
            c.duration_s,
            c.prog_fifo
                .map_or_else(|| "SCHED_OTHER".to_owned(), |p| format!("SCHED_FIFO {p}"))
        );
        for l in &self.layouts {
            let _ = writeln!(
                s,
                "layout {}: {} [veth {} <- {}, MTU {}, XDP {}; {:.0} s]",
                l.layout.name(),
                l.description,
                l.ifnames[0],
                l.ifnames[1],
                l.mtu,
                l.xdp_mode,
                l.elapsed_s
            );
        }
        for k in &self.skipped {
            let _ = writeln!(s, "left out: {}: {}", k.implementation.name(), k.reason);
        }
    }

    /// The table of results: a row per program and cell, its rate and
    /// what the harness saw around it.
    fn write_results(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n{:<8} {:<6} {:>4} {:<14} {:<7} {:<8} {:>23} {:>7} {:>7} {:>7} {:>7} {:>6} {:>9} {:>9} {:>5} {:>4} {:>5} {:>6} {:>6} {:>5} {:>6} {:>9}",
            "layout",
            "work",
            "size",
            "program",
            "kind",
            "wait",
            "Mpps median (min-max)",
            "offered",
            "XDPseen",
            "redir",
            "reachB",
            "%redir",
            "ringfull",
            "fillempty",
            "napi%",
            "cpu%",
            "prog%",
            "ns/pkt",
            "napins",
            "mach",
            "m-ns/p",
            "Mpps/core"
        );
        for r in &self.results {
            write_result_row(s, r);
        }
    }

    /// The table of cells: skmem's rate beside the best peer's and the
    /// ceiling's, and each of its ratios with its per-round range.
    fn write_cells(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n{:<8} {:<6} {:>4} {:>7} {:>18} {:>19} {:>18} {:>19} {:>19} {:>19} {:>19} {:>19} {:>19}",
            "layout",
            "work",
            "size",
            "skmem",
            "best peer",
            "÷peer",
            "ceiling",
            "÷ceiling",
            "÷xsk-rs",
            "÷skmem-again (A/A)",
            "coalesce ÷peer",
            "w1 ÷skmem",
            "w2 ÷skmem"
        );
        for cl in &self.cells {
            write_cell_row(s, cl);
        }
    }

    /// The latency runs, a row per layout, load and program, then skmem
    /// against the peers per load.
    fn write_latency(&self, s: &mut String) {
        if self.latency.is_empty() {
            return;
        }
        let _ = writeln!(
            s,
            "\n{:<8} {:>4} {:>7} {:<14} {:<8} {:>7} {:>7} {:>6} {:>8} {:>8} {:>8} {:>8} {:>5} {:>6} {:>6}",
            "layout",
            "load",
            "target",
            "program",
            "wait",
            "sent",
            "fwd",
            "lost%",
            "p50us",
            "p99us",
            "p99.9us",
            "maxus",
            "mach",
            "m-ns/p",
            "ns/pkt"
        );
        for r in &self.latency {
            let _ = writeln!(
                s,
                "{:<8} {:>3.0}% {:>7.3} {:<14} {:<8} {:>7.3} {:>7.3} {:>6.2} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>5} {:>6} {:>6}",
                r.layout.name(),
                r.load * 100.0,
                r.target_mpps,
                r.program,
                r.wait.name(),
                r.sent_mpps,
                r.forwarded_mpps,
                r.lost_share * 100.0,
                r.p50_us,
                r.p99_us,
                r.p999_us,
                r.max_us,
                r.machine_busy_cores
                    .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
                ns_text(r.machine_ns_per_packet),
                ns_text(r.prog_ns_per_packet)
            );
        }
        for c in &self.latency_cells {
            let _ = writeln!(
                s,
                "{} {:.0} %: skmem p99 {} µs vs {} {} µs ({}; skmem-again {}); machine ns/pkt {} vs {} (spinning) {} ({}); in-kernel xdp-tx p99 {} µs, CPU {}; awake for 99 % of frames{}: {} of a CPU, CPU >= {}",
                c.layout.name(),
                c.load * 100.0,
                value_text(c.skmem_p99_us),
                c.best_peer.as_deref().unwrap_or("-"),
                value_text(c.best_peer_p99_us),
                value_text(c.p99_vs_best_peer),
                value_text(c.again_p99_vs_best_peer),
                ns_text(c.skmem_machine_ns),
                c.best_default_peer.as_deref().unwrap_or("-"),
                ns_text(c.best_default_peer_machine_ns),
                value_text(c.cpu_vs_best_default_peer),
                value_text(c.kernel_p99_us),
                value_text(c.kernel_cpu),
                match (c.awake_timed, c.timer_late_p50_us) {
                    (true, Some(l)) => format!(" (timers {l:.0} µs late)"),
                    _ => " (free wake-ups)".to_owned(),
                },
                c.awake_share
                    .map_or_else(|| "-".to_owned(), |a| format!("{:.0} %", a * 100.0)),
                value_text(c.cpu_at_p99_bound)
            );
        }
    }

    /// The goals, a line each, when the run has any.
    fn write_goals(&self, s: &mut String) {
        if self.goals.is_empty() {
            return;
        }
        let _ = writeln!(s, "\ngoals:");
        for g in &self.goals {
            write_goal_line(s, g);
        }
    }

    /// What each column counts, then the run's time, load and scheduling.
    fn write_legend(&self, s: &mut String) {
        let _ = writeln!(
            s,
            "\n(rates are what each program counted itself: received for rxdrop, TX-completed for \
             txonly and l2fwd, its own XDP counter for a ceiling; offered = the generator's \
             frames, XDP seen/redir = A's XDP (skmem's program, or ethtool -S while testpmd's \
             own is attached), reachB = B's XDP sink, all in the same windows; %redir = the \
             program's count as a share of what XDP redirected to it; ring full / fill empty = \
             the socket's XDP_STATISTICS over its whole run; napi% = CPU time of A's NAPI \
             kthread (threaded), cpu% = the program CPU's non-idle share, everything on it \
             included; prog% = the program's own CPU time (its thread and child processes), \
             ns/pkt = that per frame counted, napins = NAPI kthread ns per frame)\ntotal {:.1} s; loadavg before: {}, \
             after: {}; autogroup scheduling: {}",
            self.elapsed_s, self.loadavg[0], self.loadavg[1], self.autogroup
        );
    }
}

/// One program's row of the results table.
fn write_result_row(s: &mut String, r: &ProgramResult) {
    let _ = writeln!(
        s,
        "{:<8} {:<6} {:>4} {:<14} {:<7} {:<8} {:>7.3} ({:>6.3}-{:>6.3}) {:>7} {:>7} {:>7} {:>7.3} {:>6} {:>9} {:>9} {:>5} {:>4} {:>5} {:>6} {:>6} {:>5} {:>6} {:>9}",
        r.layout.name(),
        r.workload.name(),
        r.size,
        r.program,
        kind_name(r.kind),
        r.wait.name(),
        r.mpps.median,
        r.mpps.min,
        r.mpps.max,
        median_text(r.offered_mpps),
        median_text(r.xdp_seen_mpps),
        median_text(r.xdp_redirected_mpps),
        r.reached_b_mpps.median,
        r.share_of_redirected
            .map_or_else(|| "-".to_owned(), |v| format!("{:.1}", 100.0 * v)),
        r.counters.xsk_rx_ring_full,
        r.counters.xsk_fill_ring_empty,
        percent_text(r.napi_cpu_share),
        percent_text(r.prog_cpu_busy),
        percent_text(r.prog_cpu_share),
        ns_text(r.prog_ns_per_packet),
        ns_text(r.napi_ns_per_packet),
        r.machine_busy_cores
            .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
        ns_text(r.machine_ns_per_packet),
        value_text(r.mpps_per_busy_core)
    );
}

/// One cell's row of the ratios table.
fn write_cell_row(s: &mut String, cl: &Cell) {
    let _ = writeln!(
        s,
        "{:<8} {:<6} {:>4} {:>7} {:>18} {:>19} {:>18} {:>19} {:>19} {:>19} {:>19} {:>19} {:>19}",
        cl.layout.name(),
        cl.workload.name(),
        cl.size,
        value_text(cl.skmem_mpps),
        format!(
            "{} {}",
            cl.best_peer.as_deref().unwrap_or("-"),
            value_text(cl.best_peer_mpps)
        ),
        with_range(cl.skmem_vs_best_peer, &cl.skmem_vs_best_peer_rounds),
        format!(
            "{} {}",
            cl.ceiling.as_deref().unwrap_or("-"),
            value_text(cl.ceiling_mpps)
        ),
        with_range(cl.skmem_vs_ceiling, &cl.skmem_vs_ceiling_rounds),
        with_range(cl.skmem_vs_xsk_rs, &cl.skmem_vs_xsk_rs_rounds),
        with_range(cl.skmem_vs_skmem_again, &cl.skmem_vs_skmem_again_rounds),
        with_range(cl.coalesce_vs_best_peer, &cl.coalesce_vs_best_peer_rounds),
        with_range(cl.workers1_vs_skmem, &cl.workers1_vs_skmem_rounds),
        with_range(cl.workers2_vs_skmem, &cl.workers2_vs_skmem_rounds)
    );
}

/// One goal: its ratio against the target, whether it was met, and how
/// far any program could get here.
fn write_goal_line(s: &mut String, g: &Goal) {
    let _ = writeln!(
        s,
        "  {} {} {}: {} {} {:.2}: {} {}{}{}",
        g.layout.name(),
        g.workload.name(),
        match g.load {
            Some(l) => format!("{:.0} % load", l * 100.0),
            None => format!("{} B", g.size),
        },
        g.ratio,
        if g.at_most { "<=" } else { ">=" },
        g.target,
        value_text(g.value),
        match g.met {
            Some(true) => "✅ met",
            Some(false) => "❌ NOT met",
            None => "n/a",
        },
        match (g.bound, g.reachable, g.at_most) {
            (Some(b), Some(false), false) => {
                format!(" (out of reach here: no AF_XDP program can exceed {b:.2})")
            }
            (Some(b), Some(false), true) => {
                format!(" (out of reach here: no AF_XDP program can go below {b:.2})")
            }
            (Some(b), _, false) => format!(" (at most {b:.2} here)"),
            (Some(b), _, true) => format!(" (at least {b:.2} here)"),
            _ => String::new(),
        },
        twin_text(g)
    );
}

/// For a goal against the best peer: what a program as good as the best
/// peer would have shown here, and where skmem's ratio lies against it.
fn twin_text(g: &Goal) -> String {
    match (g.twin, g.value) {
        (Some(t), Some(v)) => format!(
            "; a twin of the best peer: {:.2} (5-95 %: {:.2}-{:.2}), so {}",
            t.p50,
            t.p05,
            t.p95,
            t.verdict(v, g.at_most)
        ),
        _ => String::new(),
    }
}

/// The kind column's word for a result's [`Kind`].
fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Skmem => "skmem",
        Kind::Peer => "peer",
        Kind::Ceiling => "ceiling",
        Kind::Bound => "bound",
        Kind::Control => "control",
        Kind::Tuned => "tuned",
        Kind::Variant => "variant",
        Kind::Probed => "probed",
        Kind::Workers => "workers",
    }
}

/// A rate's median in Mpps, or `-` where the rate does not apply.
fn median_text(x: Option<Stat>) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{:.3}", x.median))
}

/// A share as a whole percentage, or `-` where it does not apply.
fn percent_text(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{:.0}", 100.0 * x))
}

/// Nanoseconds per frame, whole, or `-` where they do not apply.
fn ns_text(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_owned(), |x| format!("{x:.0}"))
}

/// A rate or ratio to three places, or `-` where there is none.
fn value_text(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One round of `imp` in the threaded layout, rxdrop 64 B, at `mpps`.
    fn result(imp: Implementation, mpps: f64) -> ProgramResult {
        let stat = |x: f64| Stat {
            median: x,
            min: 0.9 * x,
            max: 1.1 * x,
        };
        ProgramResult {
            mpps: stat(mpps),
            offered_mpps: Some(stat(8.0)),
            xdp_seen_mpps: Some(stat(7.5)),
            xdp_redirected_mpps: Some(stat(2.0 * mpps)),
            reps_offered_mpps: vec![8.0],
            reps_seen_mpps: vec![7.5],
            napi_cpu_share: Some(0.42),
            prog_cpu_share: Some(0.5),
            prog_ns_per_packet: Some(123.4),
            counters: ProgCounters {
                xsk_rx_ring_full: 17,
                xsk_fill_ring_empty: 3,
                ..ProgCounters::default()
            },
            wall_s: 1.0,
            ..super::super::tests::round(imp, mpps)
        }
    }

    /// Two rounds of skmem, xsk-rs and the ceiling in one cell, with the
    /// cells and goals the analysis makes of them.
    fn report() -> Report {
        let config = Config {
            layouts: vec![Layout::Threaded],
            workloads: vec![Workload::Rxdrop],
            sizes: vec![64],
            rounds: 2,
            ..Config::matrix()
        };
        let rounds = |imp, v: [f64; 2]| {
            ProgramResult::merge_rounds(v.iter().map(|&x| result(imp, x)).collect())
                .unwrap_or_else(|| panic!("no rounds of {imp:?}"))
        };
        let mut ceiling = rounds(Implementation::Ceiling, [6.0, 6.0]);
        ceiling.offered_mpps = None;
        ceiling.share_of_redirected = None;
        ceiling.prog_cpu_share = None;
        ceiling.prog_ns_per_packet = None;
        ceiling.napi_ns_per_packet = Some(55.0);
        let results = vec![
            rounds(Implementation::Skmem, [2.2, 2.0]),
            rounds(Implementation::XskRs, [2.0, 2.0]),
            rounds(Implementation::SkmemAgain, [2.0, 2.1]),
            ceiling,
        ];
        let cells = cells(&config, &results);
        let mut goals = goals(&cells);
        goals.push(Goal {
            layout: Layout::Threaded,
            workload: Workload::Rxdrop,
            size: 64,
            ratio: "skmem_vs_xsk_rs".to_owned(),
            load: None,
            target: 1.2,
            at_most: false,
            value: None,
            met: None,
            bound: Some(0.6),
            reachable: Some(false),
            twin: None,
        });
        Report {
            layouts: vec![LayoutInfo {
                layout: Layout::Threaded,
                description: "NAPI on the program CPU".to_owned(),
                wait: Wait::Poll,
                ifnames: ["skA".to_owned(), "skB".to_owned()],
                mtu: 1500,
                xdp_mode: "native".to_owned(),
                elapsed_s: 12.3,
            }],
            results,
            cells,
            latency: Vec::new(),
            latency_cells: Vec::new(),
            goals,
            skipped: vec![Skipped {
                implementation: Implementation::Testpmd,
                reason: "not installed".to_owned(),
            }],
            elapsed_s: 42.0,
            loadavg: ["0.10".to_owned(), "0.20".to_owned()],
            autogroup: sched::Autogroup::TurnedOff,
            config,
        }
    }

    #[test]
    fn table_has_settings_rows_ratios_and_goals() {
        let t = report().to_table();
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].starts_with(
                "pps: AF_XDP copy mode over a veth pair (one queue a side); settings: batch 64, \
                 64 B frames, UMEM 4096 x 2048 B, rings 1024, TX budget 1024; 2 round(s) of \
                 warm-up 0.5 s and 1 x 1.2 s; programs at SCHED_OTHER"
            ),
            "{t}"
        );
        for line in [
            "layout threaded: NAPI on the program CPU [veth skA <- skB, MTU 1500, XDP native; 12 s]",
            "left out: testpmd: not installed",
            "layout   work   size program        kind    wait       Mpps median (min-max) \
             offered XDPseen   redir  reachB %redir  ringfull fillempty napi% cpu% prog% \
             ns/pkt napins  mach m-ns/p Mpps/core",
            "threaded rxdrop   64 skmem          skmem   poll       2.100 ( 2.000- 2.200)   \
             8.000   7.500   4.200   0.000   50.0        34         6    42  100    50    123      \
             -  1.50    660     1.467",
            "threaded rxdrop   64 ceiling        ceiling poll       6.000 ( 6.000- 6.000)       \
             -   7.500  12.000   0.000      -        34         6    42  100     -      -     55  \
             1.50   1800     4.000",
            "goals:",
            "total 42.0 s; loadavg before: 0.10, after: 0.20; autogroup scheduling: off for \
             the run (restored after)",
        ] {
            assert!(lines.contains(&line), "no line `{line}` in:\n{t}");
        }
        let cell = lines
            .iter()
            .find(|l| l.starts_with("threaded rxdrop   64   2.100"))
            .unwrap_or_else(|| panic!("no cell row in:\n{t}"));
        assert!(cell.contains("xsk-rs 2.000"), "{cell}");
        assert!(cell.contains("1.050 (1.00-1.10)"), "{cell}");
        assert!(cell.contains("ceiling 6.000"), "{cell}");
        for goal in [
            "  threaded rxdrop 64 B: skmem_vs_best_peer >= 1.00: 1.050 ✅ met; a twin of the \
             best peer: 1.00 (5-95 %: 0.92-1.10), so at parity",
            "  threaded rxdrop 64 B: skmem_vs_xsk_rs >= 1.20: - n/a (out of reach here: no \
             AF_XDP program can exceed 0.60)",
        ] {
            assert!(lines.contains(&goal), "no goal `{goal}` in:\n{t}");
        }
    }
}
