//! `pps`: packets per second of skmem's AF_XDP channel against xsk-rs, on
//! a veth pair between two network namespaces. Must run as root.
//!
//! ```text
//! sudo target/release/pps --quick
//! sudo target/release/pps --warmup 2 --duration 5 --reps 3 --wait poll --json
//! ```

use std::process::ExitCode;

use clap::Parser;
use skmem_bench::pps::gen::GenKind;
use skmem_bench::pps::{self, Config, Implementation, Wait, Workload};

/// Packets per second: skmem vs xsk-rs 0.11 (rxdrop, l2fwd) over veth.
#[derive(Debug, Parser)]
#[command(name = "pps", version)]
struct Args {
    /// Warm-up 0.5 s, one repetition of 1 s (the whole run takes < 60 s).
    #[arg(long)]
    quick: bool,
    /// Warm-up before the first repetition, seconds.
    #[arg(long)]
    warmup: Option<f64>,
    /// Length of one repetition, seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Repetitions.
    #[arg(long)]
    reps: Option<u32>,
    /// Descriptors per ring operation.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// How a program waits when nothing arrived.
    #[arg(long, value_enum, default_value_t = Wait::Spin)]
    wait: Wait,
    /// Workloads, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Workload::Rxdrop, Workload::L2fwd])]
    workloads: Vec<Workload>,
    /// Programs, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Implementation::Skmem, Implementation::XskRs])]
    programs: Vec<Implementation>,
    /// The generator on side B: skmem's AF_XDP txonly, or XDP live frames
    /// (BPF_PROG_TEST_RUN, as xdp-trafficgen).
    #[arg(long = "gen", value_enum, default_value_t = GenKind::Afxdp)]
    generator: GenKind,
    /// CPU of the generator.
    #[arg(long, default_value_t = 0)]
    gen_cpu: usize,
    /// CPU of the program under test.
    #[arg(long, default_value_t = 1)]
    prog_cpu: usize,
    /// XDP_MAX_TX_SKB_BUDGET for both implementations' sockets (0: leave
    /// the kernel's default of 32).
    #[arg(long, default_value_t = 1024)]
    tx_budget: u32,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

extern "C" fn on_signal(_: libc::c_int) {
    pps::INTERRUPT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// SIGINT/SIGTERM end the run cleanly (threads stopped, namespaces removed).
fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is
        // async-signal-safe; `signal` is given a valid handler address.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

fn main() -> ExitCode {
    let a = Args::parse();
    install_signal_handlers();
    let mut cfg = if a.quick {
        Config::quick()
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
    cfg.batch = a.batch;
    cfg.wait = a.wait;
    cfg.workloads = a.workloads;
    cfg.implementations = a.programs;
    cfg.generator = a.generator;
    cfg.gen_cpu = a.gen_cpu;
    cfg.prog_cpu = a.prog_cpu;
    cfg.tx_budget = (a.tx_budget > 0).then_some(a.tx_budget);

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
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pps: {e:#}");
            ExitCode::FAILURE
        }
    }
}
