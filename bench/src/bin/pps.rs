//! `pps`: packets per second of skmem's AF_XDP channel against other
//! AF_XDP programs (xsk-rs, a libxdp C program, DPDK testpmd) and the
//! in-kernel ceilings, on a veth pair between two network namespaces. Must
//! run as root.
//!
//! ```text
//! sudo target/release/pps --quick
//! sudo target/release/pps --matrix --json > pps.json
//! sudo target/release/pps --warmup 2 --duration 5 --reps 3 --wait poll --json
//! sudo target/release/pps --layouts threaded --workloads rxdrop --programs skmem,ceiling --gen xdp
//! sudo target/release/pps --workloads l2fwd --programs skmem,xsk-rs --latency-loads 0.1,0.5
//! ```

// A thin binary over its package's library: it sees every dependency
// of the package, and uses few.
#![allow(unused_crate_dependencies)]
use std::process::ExitCode;

use clap::Parser;
use skmem_bench::pps::gen::GenKind;
use skmem_bench::pps::{self, Config, Implementation, Layout, Wait, Workload};

/// Packets per second over veth: skmem vs xsk-rs, libxdp C, DPDK testpmd
/// and the XDP ceilings (rxdrop, txonly, l2fwd).
#[derive(Debug, Parser)]
#[command(name = "pps", version)]
struct Args {
    /// Quick: every layout, workload and program kind at 64 B, warm-up
    /// 0.3 s, one repetition of 0.7 s (the whole run takes < 2 min).
    #[arg(long, conflicts_with = "matrix")]
    quick: bool,
    /// The matrix: layouts default,threaded x workloads rxdrop,txonly,l2fwd
    /// x sizes 64,1500 x every program, live-frames generator, 5 rounds of
    /// warm-up 0.5 s and 1 x 1.2 s (about 14 minutes). Other flags override
    /// its settings.
    #[arg(long)]
    matrix: bool,
    /// Warm-up before the first repetition, seconds.
    #[arg(long)]
    warmup: Option<f64>,
    /// Length of one repetition, seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Repetitions per round.
    #[arg(long)]
    reps: Option<u32>,
    /// Rounds: every program of a cell runs once per round, in alternating
    /// order; skmem's ratios are the medians of its per-round ratios.
    #[arg(long)]
    rounds: Option<u32>,
    /// Descriptors per ring operation.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// How programs wait when nothing arrived, in the `default` layout
    /// (`threaded` always uses poll).
    #[arg(long, value_enum)]
    wait: Option<Wait>,
    /// CPU layouts, comma-separated: default (A's NAPI on the generator's
    /// CPU), threaded (A's NAPI kthread pinned to the program's CPU).
    #[arg(long, value_enum, value_delimiter = ',')]
    layouts: Option<Vec<Layout>>,
    /// Workloads, comma-separated [default: rxdrop,l2fwd].
    #[arg(long, value_enum, value_delimiter = ',')]
    workloads: Option<Vec<Workload>>,
    /// Programs, comma-separated; `ceiling` is xdp-drop for rxdrop and
    /// xdp-tx for l2fwd [default: skmem,xsk-rs].
    #[arg(long, value_enum, value_delimiter = ',')]
    programs: Option<Vec<Implementation>>,
    /// Frame sizes on the wire in bytes (no FCS), comma-separated [default: 64].
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// The generator on side B: skmem's AF_XDP txonly, or XDP live frames
    /// (BPF_PROG_TEST_RUN, as xdp-trafficgen) [default: afxdp; xdp with
    /// --quick and --matrix].
    #[arg(long = "gen", value_enum)]
    generator: Option<GenKind>,
    /// CPU of the generator.
    #[arg(long, default_value_t = 0)]
    gen_cpu: usize,
    /// CPU of the program under test.
    #[arg(long, default_value_t = 1)]
    prog_cpu: usize,
    /// UMEM frames of every program's socket.
    #[arg(long, default_value_t = 4096)]
    frames: u32,
    /// Entries of each of the four rings of every program's socket.
    #[arg(long, default_value_t = 1024)]
    ring_entries: u32,
    /// XDP_MAX_TX_SKB_BUDGET for the skmem and xsk-rs sockets (0: leave
    /// the kernel's default of 32).
    #[arg(long, default_value_t = 1024)]
    tx_budget: u32,
    /// Leave autogroup scheduling on if the machine has it on. By default
    /// the run turns it off, then back on: with it on, the program under
    /// test shares a scheduling group with the generator, and on its CPU
    /// weighs a fraction of a thread against A's NAPI kthread.
    #[arg(long)]
    keep_autogroup: bool,
    /// Run every program's thread (and the processes it starts) at
    /// SCHED_FIFO with this priority (1-99). In the threaded layout the
    /// program then runs whenever it has work and A's NAPI kthread in its
    /// waits, instead of the two splitting the CPU (and NAPI spending its
    /// half on frames the program has no fill frames for). Programs must
    /// sleep: with the default layout, --wait poll; testpmd is left out.
    #[arg(long, value_name = "PRIORITY")]
    prog_fifo: Option<u8>,
    /// Round-trip latency after each layout's cells: offered loads as
    /// fractions of the best peer's l2fwd rate there (0 for none)
    /// [default: none; 0.5 with --quick; 0.1,0.5,0.9 with --matrix].
    #[arg(long, value_delimiter = ',')]
    latency_loads: Option<Vec<f64>>,
    /// Rounds of the latency runs [default: 1; 5 with --matrix].
    #[arg(long)]
    latency_rounds: Option<u32>,
    /// Measured seconds of each latency run [default: 2; 0.5 with --quick].
    #[arg(long)]
    latency_duration: Option<f64>,
    /// Print the report as JSON instead of tables.
    #[arg(long)]
    json: bool,
}

extern "C" fn on_signal(_: libc::c_int) {
    pps::INTERRUPT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// SIGINT, SIGTERM and SIGHUP (the terminal closed) end the run cleanly:
/// threads stopped, namespaces removed, autogroup scheduling restored.
fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; `signal` is given a valid handler address.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

fn main() -> ExitCode {
    // A worker process of the skmem-w1/w2 programs (this executable again).
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some(pps::skmem_prog::WORKER_ARG) {
        return match pps::skmem_prog::worker_main(&argv[2..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pps worker: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let a = Args::parse();
    install_signal_handlers();
    let mut cfg = if a.quick {
        Config::quick()
    } else if a.matrix {
        Config::matrix()
    } else {
        Config::default()
    };
    if let Some(w) = a.warmup {
        cfg.warmup_s = w;
    }
    if let Some(d) = a.duration {
        cfg.duration_s = d;
    }
    if let Some(r) = a.reps {
        cfg.reps = r;
    }
    if let Some(r) = a.rounds {
        cfg.rounds = r;
    }
    cfg.batch = a.batch;
    if let Some(w) = a.wait {
        cfg.wait = w;
    }
    if let Some(l) = a.layouts {
        cfg.layouts = l;
    }
    if let Some(w) = a.workloads {
        cfg.workloads = w;
    }
    if let Some(p) = a.programs {
        cfg.implementations = p;
    }
    if let Some(s) = a.sizes {
        cfg.sizes = s;
    }
    if let Some(g) = a.generator {
        cfg.generator = g;
    }
    cfg.gen_cpu = a.gen_cpu;
    cfg.prog_cpu = a.prog_cpu;
    cfg.tx_budget = (a.tx_budget > 0).then_some(a.tx_budget);
    cfg.frames = a.frames;
    cfg.ring_entries = a.ring_entries;
    cfg.keep_autogroup = a.keep_autogroup;
    if let Some(l) = a.latency_loads {
        cfg.latency_loads = l.into_iter().filter(|&x| x > 0.0).collect();
    }
    if let Some(r) = a.latency_rounds {
        cfg.latency_rounds = r;
    }
    if let Some(d) = a.latency_duration {
        cfg.latency_duration_s = d;
    }
    cfg.prog_fifo = a.prog_fifo;

    if let Some(reason) = pps::skip_reason(&cfg) {
        eprintln!("pps: cannot run: {reason}");
        eprintln!("pps: it creates network namespaces and attaches XDP programs; run it as root");
        return ExitCode::from(2);
    }
    let mut log = |l: &str| eprintln!("{l}");
    match pps::run(&cfg, &mut log) {
        Ok(report) => {
            if a.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(j) => println!("{j}"),
                    Err(e) => {
                        eprintln!("pps: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                print!("{}", report.to_table());
            }
            eprintln!("pps: whole run {:.1} s", report.elapsed_s);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pps: {e:#}");
            ExitCode::FAILURE
        }
    }
}
