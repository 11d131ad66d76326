//! `mempool`: skmem's object cache against DPDK's mempool, in the shape of
//! DPDK 22.11's `mempool_perf_autotest`, both measured in one invocation
//! (DPDK first, then skmem, back to back).
//!
//! ```text
//! target/release/mempool                         # default cases, both sides
//! target/release/mempool --cases 'on/*/*/*' --seconds 1 --json
//! target/release/mempool --no-dpdk --cases '*/*/*/*'
//! ```

// A thin binary over its package's library: it sees every dependency
// of the package, and uses few.
#![allow(unused_crate_dependencies)]
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use serde::Serialize;
use skmem_bench::mempool::{self, dpdk, skmem, Case};

/// skmem's cache vs DPDK's mempool (objects cycled per second, summed over
/// cores, as DPDK's `rate_persec`).
#[derive(Debug, Parser)]
#[command(name = "mempool", version)]
struct Args {
    /// Cases, comma-separated patterns `cache/cores/GETxPUT/keep`, each part
    /// a value or `*`: cache on|off, cores 1|2, bulks 1|4|32, keep
    /// 32|128|512. `*/*/*/*` is the whole matrix.
    #[arg(long, default_value = mempool::DEFAULT_CASES)]
    cases: String,
    /// Measured seconds per case, on both sides. DPDK's own is 5; for
    /// shorter cases a preloaded shim divides the TSC rate dpdk-test reads
    /// by 5 / seconds, and its printed rates are multiplied back.
    #[arg(long, default_value_t = 0.5)]
    seconds: f64,
    /// Give dpdk-test at most this many seconds (its order is fixed: with
    /// 0.5 s cases, its cached 2-core cases are done ~4 min in).
    #[arg(long, default_value_t = 480)]
    dpdk_budget: u64,
    /// Skip DPDK; report skmem alone.
    #[arg(long)]
    no_dpdk: bool,
    /// The dpdk-test binary (default: found on PATH).
    #[arg(long)]
    dpdk_test: Option<std::path::PathBuf>,
    /// Rounds per skmem magazine: by default 256, so that a worker's two
    /// magazines hold 512 objects like DPDK's per-lcore cache in the test
    /// (which flushes above 768); 0 takes skmem's own rule for the object
    /// size (158 rounds for 32 B).
    #[arg(long, default_value_t = mempool::MATCHED_ROUNDS)]
    magazine_rounds: usize,
    /// Bytes per skmem cache object: 32 (default) is what skmem's packet
    /// pool cycles per packet — its metadata object, the 2 KiB buffer
    /// bound to it; 2048 makes a cache of 2 KiB objects, like DPDK's.
    #[arg(long, default_value_t = mempool::PACKET_OBJ_SIZE)]
    object_size: usize,
    /// Echo dpdk-test's output to stderr as it arrives.
    #[arg(long)]
    echo: bool,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    seconds_per_case: f64,
    pool_objects: usize,
    obj_size: usize,
    skmem_api: &'static str,
    skmem: Vec<skmem::Measured>,
    dpdk: Option<dpdk::Run>,
    dpdk_absent: Option<String>,
    rows: Vec<mempool::Row>,
    elapsed: f64,
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(a: Args) -> Result<()> {
    let t0 = Instant::now();
    let cases = mempool::select(&a.cases)?;
    anyhow::ensure!(
        a.seconds > 0.0 && (a.no_dpdk || a.seconds <= dpdk::DPDK_TIME_S),
        "--seconds must be positive, and at most DPDK's own {} s unless --no-dpdk",
        dpdk::DPDK_TIME_S
    );
    let cores = cases.iter().map(|c| c.cores as usize).max().unwrap_or(1);
    let cpus: Vec<usize> = (0..cores).collect();
    // DPDK's MEMPOOL_SIZE counts the lcores it was started with (-l 0,1).
    let pool_objects = mempool::pool_size(2);
    let say = |s: &str| {
        if !a.json {
            println!("{s}");
        }
    };

    let (dpdk_run, dpdk_absent) = if a.no_dpdk {
        (None, Some("--no-dpdk".to_owned()))
    } else {
        match a.dpdk_test.clone().map_or_else(dpdk::find_binary, Ok) {
            Err(why) => {
                eprintln!("DPDK side skipped: {why}");
                (None, Some(why))
            }
            Ok(binary) => {
                let s = dpdk::Settings {
                    binary,
                    lcores: vec![0, 1],
                    seconds: a.seconds,
                    budget: Duration::from_secs(a.dpdk_budget),
                    echo: a.echo,
                };
                eprintln!(
                    "dpdk-test: mempool_perf_autotest, {} s per case, budget {} s ...",
                    a.seconds, a.dpdk_budget
                );
                let r = dpdk::run(&s, &cases).context("running dpdk-test")?;
                eprintln!(
                    "dpdk-test: {} result lines in {:.0} s; {}",
                    r.lines.len(),
                    r.elapsed,
                    r.stopped
                );
                (Some(r), None)
            }
        }
    };

    let settings = skmem::Settings {
        seconds: a.seconds,
        pool_objects,
        magazine_rounds: (a.magazine_rounds > 0).then_some(a.magazine_rounds),
        obj_size: a.object_size,
        cpus,
    };
    let mut measured = Vec::with_capacity(cases.len());
    for (i, &case) in cases.iter().enumerate() {
        let m = skmem::run_case(case, &settings)?;
        eprintln!(
            "skmem [{}/{}] {case}: {:.1} M objects/s",
            i + 1,
            cases.len(),
            m.rate / 1e6
        );
        measured.push(m);
    }

    let dpdk_lines: &[dpdk::Line] = dpdk_run.as_ref().map_or(&[], |r| &r.lines);
    let rows = mempool::rows(&cases, &measured, dpdk_lines);
    let report = Report {
        seconds_per_case: a.seconds,
        pool_objects,
        obj_size: a.object_size,
        skmem_api: skmem::API,
        skmem: measured,
        dpdk: dpdk_run,
        dpdk_absent,
        rows,
        elapsed: t0.elapsed().as_secs_f64(),
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(());
    }
    say(&describe(&report, &cases));
    say(&mempool::table(&report.rows));
    Ok(())
}

/// The lines above the table: what ran and how.
fn describe(r: &Report, cases: &[Case]) -> String {
    let rounds = r
        .skmem
        .iter()
        .find(|m| m.magazine_rounds > 0)
        .map_or("–".to_owned(), |m| m.magazine_rounds.to_string());
    let sizes = r.skmem.iter().map(|m| m.region_objects);
    let region = match (sizes.clone().min(), sizes.max()) {
        (Some(lo), Some(hi)) if lo != hi => format!("{lo}–{hi}"),
        (Some(lo), _) => lo.to_string(),
        _ => "–".to_owned(),
    };
    let mut s = format!(
        "{} cases, {} s each, skmem objects of {} B (32: a packet's metadata, its 2 KiB buffer bound to it), pool of {} objects (DPDK's MEMPOOL_SIZE; skmem's \
         region rounds up to {region}). Rates: objects got and put back per second, summed \
         over cores (DPDK's rate_persec).\n\
         skmem: {}; cache on = per-worker magazines of {rounds} rounds (two per worker), \
         off = the slab layer; one pinned thread per core (cpu0, cpu1), each with its own \
         CacheWorker.\n",
        cases.len(),
        r.seconds_per_case,
        r.obj_size,
        r.pool_objects,
        skmem::API,
    );
    match (&r.dpdk, &r.dpdk_absent) {
        (Some(d), _) => {
            s += &format!(
                "DPDK: `{}` — cache on = its pool with a per-lcore cache of 512, off = its \
                 cache-less pool; constant_n=0 lines; {} result lines in {:.0} s ({}).\n",
                d.command,
                d.lines.len(),
                d.elapsed,
                d.stopped
            );
            if !d.missing.is_empty() {
                s += &format!(
                    "DPDK did not reach: {} (raise --dpdk-budget).\n",
                    d.missing.join(", ")
                );
            }
        }
        (None, Some(why)) => s += &format!("DPDK: not run ({why}).\n"),
        (None, None) => {}
    }
    s += &format!("Total {:.0} s.\n", r.elapsed);
    s
}
