//! `skmemctl`: the command-line face of skmem.
//!
//! Exit codes: 0 success; 1 failure (the message says what to do); 2 bad
//! command line (clap's).

mod demo;
mod fwd;
mod gen;
mod lend;
mod stats;
mod thread;
mod watch;
mod workers;

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Parser, Subcommand};

/// Set by SIGINT/SIGTERM/SIGHUP: every loop checks it and winds down
/// cleanly.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

fn install_signal_handlers() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only stores
        // to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, on_signal as *const () as libc::sighandler_t) };
    }
}

/// skmem's command-line tool.
#[derive(Parser)]
#[command(
    name = "skmemctl",
    version,
    about = "skmem: an AF_XDP packet buffer pool on Skywalk's memory model"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// The tour: l2fwd over AF_XDP on a veth pair made for the occasion, live.
    Demo(demo::DemoArgs),
    /// Forward packets over AF_XDP on skmem's pool: rxdrop, txonly, l2fwd.
    Fwd(fwd::FwdArgs),
    /// Send UDP frames fast from XDP (BPF_PROG_RUN live frames; root).
    Gen(gen::GenArgs),
    /// Watch arena events live (eBPF uprobes and tracepoints; root).
    Watch(watch::WatchArgs),
    /// List every live arena on the host (from the observers' pinned map; root).
    Stats(stats::StatsArgs),
    /// Lend a nexus arena to mapper processes on a Unix socket (the owner).
    Offer(lend::OfferArgs),
    /// Map an arena another process offers (the mapper).
    Map(lend::MapArgs),
    /// Process the packets an owner lends (skmemctl fwd --workers): one worker.
    Worker(workers::WorkerArgs),
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKMEM_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    install_signal_handlers();
    let result = match cli.cmd {
        Cmd::Demo(args) => {
            if !is_root() {
                eprintln!("skmemctl demo needs root (it creates network namespaces and attaches XDP): run it with sudo");
                return ExitCode::FAILURE;
            }
            demo::run(args, &STOP)
        }
        Cmd::Fwd(args) => {
            if !is_root() {
                eprintln!("skmemctl fwd needs root (CAP_NET_ADMIN, CAP_BPF): run it with sudo");
                return ExitCode::FAILURE;
            }
            fwd::run(args, &STOP)
        }
        Cmd::Gen(args) => {
            if !is_root() {
                eprintln!("skmemctl gen needs root (CAP_BPF, CAP_NET_ADMIN): run it with sudo");
                return ExitCode::FAILURE;
            }
            gen::run(args, &STOP)
        }
        Cmd::Watch(args) => {
            if !is_root() {
                eprintln!(
                    "skmemctl watch needs root (CAP_BPF, CAP_PERFMON): operation not permitted \
                     (EPERM); run it with sudo"
                );
                return ExitCode::FAILURE;
            }
            watch::run(args, &STOP)
        }
        Cmd::Stats(args) => stats::run(args),
        Cmd::Offer(args) => lend::run_offer(args, &STOP),
        Cmd::Map(args) => lend::run_map(args, &STOP),
        Cmd::Worker(args) => workers::run_worker(args, &STOP),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skmemctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}
