//! `cargo xtask`: the project's chores, written in Rust so they run the same
//! on every machine and in CI (`.ci/run` is just `cargo xtask test`).
//!
//! Run `cargo xtask --help` for the list of subcommands.

mod bench;
mod bench_mempool;
mod bench_pps;
mod cmd;
mod conformance;
mod core_alone;
mod cycles;
mod fuzz;
mod sanitize;
mod setup;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Project chores for skmem.
#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install what builds and tests need (Debian packages, rust-src, bpf-linker, bpffs/tracefs mounts).
    ///
    /// Idempotent: everything already present is only checked, which takes
    /// well under two seconds. Installing needs root; without it the missing
    /// pieces are reported and skipped.
    Setup,
    /// Run setup, then fmt, clippy, tests, doc tests, the docs (no broken
    /// links) and the core library built without the eBPF toolchain:
    /// exactly what CI checks.
    ///
    /// Stops at the first failing step and exits with that step's exit code.
    Test,
    /// Only the last step of `test`: skmem's tree holds no eBPF or benchmark
    /// crate, plain builds leave fault injection out, its modules depend one
    /// way (but for the pairs listed in `xtask/src/cycles.rs`), and it builds
    /// with no bpf-linker on PATH.
    CoreAlone,
    /// Run setup, then the kernel's AF_XDP self-test cases on skmem (root),
    /// each in SKB, DRV and DRV+busy-poll mode; print the case × mode table
    /// and rewrite it in CONFORMANCE.md (when no filter narrows the run).
    ///
    /// `cargo xtask test` runs the same cases among the workspace's tests.
    Conformance {
        /// Run only the cases whose test name contains this (e.g. `stat_`).
        filter: Option<String>,
    },
    /// Build the libFuzzer targets in `fuzz/` (schema, hand-over messages,
    /// parameters, kernel ring descriptors, a worker's hand-backs) and run
    /// each on its committed corpus (root: the descriptor targets open
    /// AF_XDP sockets in a network namespace of their own); fail on a
    /// crash, panic or hang, leaving the input in `fuzz/artifacts/`.
    ///
    /// `cargo xtask test` runs each for 20 000 inputs.
    Fuzz {
        /// Only this target.
        target: Option<String>,
        /// Inputs to run per target.
        #[arg(long, default_value_t = 1_000_000)]
        runs: u64,
        /// Merge the new inputs each run found into the committed corpus.
        #[arg(long)]
        keep: bool,
        /// Build the targets with AddressSanitizer too: a leak or an
        /// invalid access fails the input (slower).
        #[arg(long)]
        asan: bool,
    },
    /// Run the soak (root): `skmemctl soak` — l2fwd over a veth pair
    /// through a worker process with churn (workers SIGKILLed, sockets
    /// rebound, arenas redirected and defunct, the observer restarted),
    /// the books checked every cycle and RSS, descriptors and memfds
    /// sampled; fails on a frame twice, unbalanced books or growth past
    /// the bounds.
    ///
    /// `cargo xtask test` runs a 30-second form.
    Soak {
        /// Minutes to run.
        #[arg(long, default_value_t = 5)]
        minutes: u64,
    },
    /// Run the core's tests under AddressSanitizer and LeakSanitizer (on
    /// this stable toolchain), then its pure parts under Miri (with a
    /// nightly toolchain that has Miri; said and skipped without one).
    ///
    /// `cargo xtask test` runs the AddressSanitizer part.
    Sanitize {
        /// Only AddressSanitizer and LeakSanitizer.
        #[arg(long)]
        no_miri: bool,
    },
    /// Run setup, then the skmemctl demo (extra arguments are passed to skmemctl).
    Demo {
        /// Arguments handed to skmemctl unchanged.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the cache micro-benchmark (criterion, with its peers) and rewrite
    /// the table in BENCHMARKS.md from the figures it measured; then the
    /// skmem-vs-DPDK mempool comparison, written between its own markers;
    /// then the packets-per-second matrix (root), its tables and plot.
    Bench {
        /// Do not run the benchmark: rebuild the table from the last run.
        #[arg(long)]
        table_only: bool,
        /// Skip the skmem-vs-DPDK mempool comparison (`mempool` binary).
        #[arg(long)]
        no_mempool: bool,
        /// Seconds the mempool comparison may give dpdk-test.
        #[arg(long, default_value_t = 360)]
        mempool_budget: u64,
        /// Skip the packets-per-second matrix (`pps --matrix`, root).
        #[arg(long)]
        no_pps: bool,
        /// Only the packets-per-second part (no criterion, no mempool).
        #[arg(long)]
        pps_only: bool,
        /// Arguments for `pps` instead of `--matrix` (e.g. `--pps-args=--quick`).
        #[arg(long, allow_hyphen_values = true, value_delimiter = ' ')]
        pps_args: Vec<String>,
    },
}

/// The checks CI runs, in order: cheap ones first so they fail fast.
///
/// `--all-targets` compiles benches in test mode too, so a bench that no
/// longer builds fails CI; doc tests need their own run because
/// `--all-targets` leaves them out.
const TEST_STEPS: &[(&str, &[&str])] = &[
    ("fmt", &["fmt", "--all", "--", "--check"]),
    // The eBPF crate is its own workspace (it builds for bpfel-unknown-none),
    // so `--all` does not reach it.
    (
        "fmt-ebpf",
        &[
            "fmt",
            "--manifest-path",
            "xdp-prog/ebpf/Cargo.toml",
            "--",
            "--check",
        ],
    ),
    // The fuzz targets are their own workspace too (they build with
    // coverage instrumentation).
    (
        "fmt-fuzz",
        &["fmt", "--manifest-path", "fuzz/Cargo.toml", "--", "--check"],
    ),
    (
        "clippy",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    ),
    ("test", &["test", "--workspace", "--all-targets"]),
    ("doctest", &["test", "--workspace", "--doc"]),
    // Broken or private intra-doc links fail (RUSTDOCFLAGS, set in `test`).
    ("doc", &["doc", "--workspace", "--no-deps"]),
];

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(setup::Job::All),
        Task::Test => test(),
        Task::CoreAlone => core_alone::check(),
        Task::Demo { args } => demo(&args),
        Task::Fuzz {
            target,
            runs,
            keep,
            asan,
        } => {
            let how = if asan {
                fuzz::Build::Address
            } else {
                fuzz::Build::Plain
            };
            fuzz::run(target.as_deref(), runs, keep, how).map(|_| ())
        }
        Task::Sanitize { no_miri } => sanitize::run(no_miri),
        Task::Soak { minutes } => soak(&format!("{}", minutes * 60), true),
        Task::Conformance { filter } => (|| {
            header("setup");
            setup::run(setup::Job::Demo)?;
            conformance::run(filter.as_deref())
        })(),
        Task::Bench {
            table_only,
            no_mempool,
            mempool_budget,
            no_pps,
            pps_only,
            pps_args,
        } => (|| {
            if !pps_only {
                bench::run(table_only)?;
                if !no_mempool {
                    bench_mempool::run(table_only, mempool_budget)?;
                }
            }
            if !no_pps {
                bench_pps::run(table_only, &pps_args)?;
            }
            Ok(())
        })(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            // Hand on the failing child's own code (e.g. 101 from cargo).
            match err.downcast_ref::<cmd::Failed>() {
                Some(failed) => ExitCode::from(failed.code),
                None => ExitCode::FAILURE,
            }
        }
    }
}

/// `cargo xtask test`: setup, then every step of [`TEST_STEPS`].
///
/// Output of the steps is not captured: CI reads cargo test's closing lines
/// straight from stdout.
fn test() -> Result<()> {
    header("setup");
    setup::run(setup::Job::Test)?;
    // The steps below, then the core built alone, the fuzz targets' short
    // runs, the core's tests under AddressSanitizer and a short soak.
    let total = TEST_STEPS.len() + 4;
    let mut tally = cmd::Tally::default();
    for (i, (name, args)) in TEST_STEPS.iter().enumerate() {
        let mut cargo = cmd::cargo(*args);
        if *name == "doc" {
            cargo.env("RUSTDOCFLAGS", "-D warnings");
        }
        // What CI runs exercises everything: a test that would skip (not
        // root, a tool missing) fails instead.
        cargo.env("SKMEM_TEST_NO_SKIP", "1");
        header(&format!(
            "[{}/{total}] {name}: {}",
            i + 1,
            args_line("cargo", args)
        ));
        cmd::run_tallying(&format!("step `{name}`"), &mut cargo, &mut tally)?;
    }
    header(&format!(
        "[{}/{total}] core-alone: skmem without the eBPF toolchain",
        total - 3
    ));
    core_alone::check()?;
    header(&format!(
        "[{}/{total}] fuzz: {} inputs of each target",
        total - 2,
        fuzz::SHORT_RUNS
    ));
    fuzz::run(None, fuzz::SHORT_RUNS, false, fuzz::Build::Plain)?;
    header(&format!(
        "[{}/{total}] sanitize: the core's tests under AddressSanitizer and LeakSanitizer",
        total - 1
    ));
    sanitize::address(&mut tally)?;
    header(&format!("[{total}/{total}] soak: 30 seconds of churn"));
    soak("30", false)?;
    header(&format!("all {total} steps passed"));
    // One closing line over every test binary, so a reader (or CI) sees the
    // whole count rather than the last binary's.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        tally.passed, tally.failed, tally.ignored
    );
    Ok(())
}

/// `skmemctl soak --seconds SECONDS`, built in release mode for a long
/// soak, or as the tests built it for the short one.
fn soak(seconds: &str, release: bool) -> Result<()> {
    if release {
        header("setup");
        setup::run(setup::Job::Demo)?;
    }
    let mut args = vec!["run", "-q", "-p", "skmem-tools", "--bin", "skmemctl"];
    if release {
        args.push("--release");
    }
    args.extend(["--", "soak", "--seconds", seconds]);
    cmd::run("skmemctl soak", &mut cmd::cargo(&args))
}

/// `cargo xtask demo [ARGS...]`: setup, then skmemctl in release mode.
fn demo(args: &[String]) -> Result<()> {
    header("setup");
    // Only what the demo needs: no DPDK, libxdp or libpcap (the peers).
    setup::run(setup::Job::Demo)?;
    let mut cargo_args = vec![
        "run",
        "--release",
        "-p",
        "skmem-tools",
        "--bin",
        "skmemctl",
        "--",
        "demo",
    ];
    cargo_args.extend(args.iter().map(String::as_str));
    header(&args_line("cargo", &cargo_args));
    cmd::run("skmemctl", &mut cmd::cargo(&cargo_args))
}

/// Prints a step header so a long log shows where each step starts.
fn header(text: &str) {
    println!("==> {text}");
}

/// `program arg arg ...`, for headers.
fn args_line(program: &str, args: &[&str]) -> String {
    std::iter::once(program)
        .chain(args.iter().copied())
        .collect::<Vec<_>>()
        .join(" ")
}
