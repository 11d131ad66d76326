//! `cargo xtask bench`: runs the cache micro-benchmark and rewrites its
//! table in BENCHMARKS.md from criterion's own estimates, so the figures in
//! the document are always the ones the last run measured.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Context, Result};

use crate::cmd;

/// Workloads of `bench/benches/cache.rs`, in table order.
const WORKLOADS: &[&str] = &["single", "batch32", "batch64"];
/// Contenders, ours first.
const CONTENDERS: &[&str] = &[
    "skmem-magazines",
    "skmem-magazines-per-call",
    "skmem-no-magazines",
    "crossbeam-arrayqueue",
    "mutex-vec",
];
const BEGIN: &str = "<!-- BEGIN cache table: written by `cargo xtask bench` -->";
const END: &str = "<!-- END cache table -->";

/// One measured cell: objects per second (a get+put is one object).
fn rate(root: &Path, workload: &str, contender: &str, threads: u32) -> Result<Option<f64>> {
    let dir = root
        .join("target/criterion")
        .join(workload)
        .join(contender)
        .join(threads.to_string())
        .join("new");
    if !dir.exists() {
        return Ok(None);
    }
    let read = |f: &str| -> Result<serde_json::Value> {
        let p = dir.join(f);
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
    };
    let median_ns = read("estimates.json")?["median"]["point_estimate"]
        .as_f64()
        .ok_or_else(|| anyhow!("{workload}/{contender}/{threads}: no median"))?;
    let elements = read("benchmark.json")?["throughput"]["Elements"]
        .as_f64()
        .ok_or_else(|| anyhow!("{workload}/{contender}/{threads}: no element count"))?;
    Ok(Some(elements / median_ns * 1e9))
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let rustc =
        cmd::stdout_of(std::process::Command::new("rustc").arg("--version")).unwrap_or_default();
    format!("{cpu}, {cores} cores, Linux {kernel}, {}", rustc.trim())
}

/// Renders the table and the floor checks from criterion's files.
pub fn table(root: &Path) -> Result<String> {
    let mut out = String::new();
    let get = |w: &str, c: &str, t: u32| rate(root, w, c, t);
    writeln!(out, "Machine: {}.", machine())?;
    writeln!(out)?;
    writeln!(
        out,
        "| workload | threads | contender | ns per object | M objects/s | skmem-magazines ÷ this |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    let mut cells = std::collections::BTreeMap::new();
    for &w in WORKLOADS {
        for t in [1u32, 2] {
            let ours = get(w, "skmem-magazines", t)?;
            for &c in CONTENDERS {
                let Some(r) = get(w, c, t)? else { continue };
                cells.insert((w, c, t), r);
                let ratio = ours.map_or("–".into(), |o| format!("{:.2}×", o / r));
                writeln!(
                    out,
                    "| {w} | {t} | {c} | {:.2} | {:.0} | {ratio} |",
                    t as f64 * 1e9 / r,
                    r / 1e6
                )?;
            }
        }
    }
    let cell = |w: &str, c: &str, t: u32| {
        cells
            .get(&(w, c, t))
            .copied()
            .ok_or_else(|| anyhow!("no figure for {w}/{c}/{t}: run `cargo xtask bench`"))
    };
    writeln!(out)?;
    writeln!(
        out,
        "Floors from the foundation issue, checked against this run:"
    )?;
    writeln!(out)?;
    let mut check =
        |what: String, ok: bool| writeln!(out, "- {} {what}", if ok { "✅" } else { "❌" });
    let single = 1e9 / cell("single", "skmem-magazines", 1)?;
    check(
        format!("one worker, get+put of one object (in a burst): {single:.2} ns ≤ 3.5 ns"),
        single <= 3.5,
    )?;
    let per_call = 1e9 / cell("single", "skmem-magazines-per-call", 1)?;
    check(
        format!("the same with one call per object (no burst): {per_call:.2} ns ≤ 3.5 ns"),
        per_call <= 3.5,
    )?;
    let b32 = 1e9 / cell("batch32", "skmem-magazines", 1)?;
    check(
        format!("batches of 32: {b32:.2} ns per object ≤ 1 ns"),
        b32 <= 1.0,
    )?;
    for &w in WORKLOADS {
        let two = cell(w, "skmem-magazines", 2)? / cell(w, "skmem-magazines", 1)?;
        check(format!("{w}: two workers {two:.2}× one ≥ 1.8×"), two >= 1.8)?;
        for (peer, floor) in [("mutex-vec", 2.0), ("crossbeam-arrayqueue", 1.2)] {
            for t in [1u32, 2] {
                let r = cell(w, "skmem-magazines", t)? / cell(w, peer, t)?;
                check(
                    format!("{w}, {t} thread(s): {r:.2}× {peer} ≥ {floor}×"),
                    r >= floor,
                )?;
            }
        }
    }
    Ok(out)
}

/// `cargo xtask bench`: run the benchmark, then rewrite the table.
pub fn run(skip_run: bool) -> Result<()> {
    let root = cmd::workspace_root();
    if !skip_run {
        cmd::run(
            "cargo bench",
            &mut cmd::cargo(["bench", "-p", "skmem-bench", "--bench", "cache"]),
        )?;
    }
    let table = table(root)?;
    let path = root.join("BENCHMARKS.md");
    let doc =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        return Err(anyhow!("BENCHMARKS.md lacks the {BEGIN} / {END} markers"));
    };
    let new = format!("{}{BEGIN}\n{table}{}", &doc[..b], &doc[e..]);
    std::fs::write(&path, new).with_context(|| format!("writing {}", path.display()))?;
    println!("{table}");
    println!("BENCHMARKS.md updated");
    Ok(())
}
