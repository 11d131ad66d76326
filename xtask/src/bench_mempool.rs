//! `cargo xtask bench`, second part: skmem's cache against DPDK's mempool
//! (the `mempool` binary of `skmem-bench`, which runs `dpdk-test` itself)
//! and the AF_XDP ring batch bench's figures (criterion's, from the
//! `cargo bench` run before). Both tables go between the mempool markers
//! in BENCHMARKS.md.
//!
//! The binary's JSON is kept in `target/mempool/last.json`, so
//! `--table-only` can rebuild the section without measuring.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

use anyhow::{anyhow, Context, Result};
use serde_json::Value;

use crate::cmd::{self, target_dir};

const BEGIN: &str = "<!-- BEGIN mempool: written by `cargo xtask bench` -->";
const END: &str = "<!-- END mempool -->";
/// Ring bench contenders, ours first (`bench/benches/ring.rs`).
const RING_CONTENDERS: &[&str] = &["skmem-ring", "crossbeam-arrayqueue"];
const RING_BATCHES: &[u32] = &[1, 8, 32, 64];

/// Builds and runs the comparison; returns its JSON report.
fn measure(root: &Path, dpdk_budget: u64) -> Result<String> {
    cmd::build_release_bins(
        "building the mempool benchmark",
        "skmem-bench",
        &["mempool"],
    )?;
    let bin = target_dir(root).join("release/mempool");
    let report = cmd::report_of(
        &bin.display().to_string(),
        Command::new(&bin)
            .args(["--json", "--dpdk-budget", &dpdk_budget.to_string()])
            .current_dir(root),
    )?;
    String::from_utf8(report).context("the mempool report is not UTF-8")
}

fn mops(v: &Value) -> String {
    v.as_f64()
        .map_or("–".to_owned(), |r| format!("{:.0}", r / 1e6))
}

/// The comparison table from the binary's JSON report.
fn mempool_table(report: &Value, date: &str) -> Result<String> {
    let mut out = String::new();
    let secs = report["seconds_per_case"].as_f64().unwrap_or(0.0);
    // Magazine size matters for reading the n_keep ≥ 128 rows: a worker
    // holds two magazines, DPDK's per-lcore cache 512 objects (flushing at
    // 768).
    let rounds = report["skmem"]
        .as_array()
        .and_then(|v| {
            v.iter()
                .filter_map(|m| m["magazine_rounds"].as_u64())
                .find(|&r| r > 0)
        })
        .map_or("–".to_owned(), |r| r.to_string());
    writeln!(
        out,
        "### skmem's cache vs DPDK's mempool (`mempool_perf_autotest` shape)"
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Run {date}, `target/release/mempool` ({secs} s per case, skmem objects of {} B — a \
         packet's metadata, its 2 KiB buffer bound to it, as skmem's packet pool cycles them; \
         DPDK's of 2048 B; pools of {} objects). M objects got and put back per second, summed over cores (DPDK's \
         `rate_persec`). skmem: {}; cache on = magazines of {rounds} rounds, two per worker \
         (the same 512 objects as DPDK's per-lcore cache; skmem's own rule gives 32-B objects \
         158 rounds, Skywalk's largest magazine, which holds 316 — too few to keep 512 per core \
         without the depot's lock: `mempool --magazine-rounds 0` shows it), off = the slab \
         layer under its mutex.",
        report["obj_size"],
        report["pool_objects"],
        report["skmem_api"].as_str().unwrap_or("?"),
    )?;
    match (&report["dpdk"], report["dpdk_absent"].as_str()) {
        (Value::Object(d), _) => {
            writeln!(
                out,
                "DPDK: `{}` (constant_n=0 lines; {} s; {}).",
                d.get("command").and_then(Value::as_str).unwrap_or("?"),
                d.get("elapsed")
                    .and_then(Value::as_f64)
                    .map_or("?".into(), |e| format!("{e:.0}")),
                d.get("stopped").and_then(Value::as_str).unwrap_or("?"),
            )?;
            if let Some(missing) = d.get("missing").and_then(Value::as_array) {
                if !missing.is_empty() {
                    let names: Vec<&str> = missing.iter().filter_map(Value::as_str).collect();
                    writeln!(out, "DPDK did not reach: {}.", names.join(", "))?;
                }
            }
        }
        (_, Some(why)) => writeln!(out, "DPDK: not run ({why}).")?,
        _ => {}
    }
    writeln!(out)?;
    writeln!(
        out,
        "| cache | cores | get/put bulk | n_keep | skmem M/s | DPDK M/s | skmem ÷ DPDK |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    let rows = report["rows"]
        .as_array()
        .ok_or_else(|| anyhow!("the mempool report has no rows"))?;
    for r in rows {
        let c = &r["case"];
        let ratio = r["ratio"]
            .as_f64()
            .map_or("–".to_owned(), |x| format!("{x:.2}×"));
        writeln!(
            out,
            "| {} | {} | {}/{} | {} | {} | {} | {ratio} |",
            if c["cache"].as_bool() == Some(true) {
                "on"
            } else {
                "off"
            },
            c["cores"],
            c["get"],
            c["put"],
            c["keep"],
            mops(&r["skmem"]),
            mops(&r["dpdk"]),
        )?;
    }
    Ok(out)
}

/// Criterion's median rate for one ring benchmark, elements per second.
fn ring_rate(root: &Path, group: &str, contender: &str, batch: u32) -> Result<Option<f64>> {
    let dir = target_dir(root)
        .join("criterion")
        .join(group)
        .join(contender)
        .join(batch.to_string())
        .join("new");
    let read = |f: &str| -> Result<Option<Value>> {
        let p = dir.join(f);
        if !p.exists() {
            return Ok(None);
        }
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("parsing {}", p.display()))
    };
    let (Some(est), Some(bench)) = (read("estimates.json")?, read("benchmark.json")?) else {
        return Ok(None);
    };
    let median = est["median"]["point_estimate"].as_f64();
    let elements = bench["throughput"]["Elements"].as_f64();
    Ok(median.zip(elements).map(|(ns, n)| n / ns * 1e9))
}

/// The ring table from criterion's files (empty when the bench never ran).
fn ring_table(root: &Path) -> Result<String> {
    let mut out = String::new();
    let mut any = false;
    let mut body = String::new();
    for &batch in RING_BATCHES {
        let ours = [
            ring_rate(root, "ring-1thread", RING_CONTENDERS[0], batch)?,
            ring_rate(root, "ring-2thread", RING_CONTENDERS[0], batch)?,
        ];
        for &c in RING_CONTENDERS {
            let one = ring_rate(root, "ring-1thread", c, batch)?;
            let two = ring_rate(root, "ring-2thread", c, batch)?;
            any |= one.is_some() || two.is_some();
            let m = |v: Option<f64>| v.map_or("–".to_owned(), |r| format!("{:.0}", r / 1e6));
            let ratio = |o: Option<f64>, t: Option<f64>| {
                o.zip(t)
                    .map_or("–".to_owned(), |(o, t)| format!("{:.2}×", o / t))
            };
            writeln!(
                body,
                "| {batch} | {c} | {} | {} | {} | {} |",
                m(one),
                ratio(ours[0], one),
                m(two),
                ratio(ours[1], two),
            )?;
        }
    }
    if !any {
        return Ok(out);
    }
    writeln!(out, "### AF_XDP ring batch operations")?;
    writeln!(out)?;
    writeln!(
        out,
        "`bench/benches/ring.rs` (criterion medians): skmem's ring producer/consumer \
         (`pool/src/channel/ring.rs`, compiled into the bench) on ring memory laid out as \
         the kernel's, 1024 entries of 8-byte addresses, beside `crossbeam_queue::ArrayQueue<u64>` \
         (one element per call: it has no batch operations). 1 thread: enqueue a batch, then \
         dequeue it. 2 threads: producer on cpu0, consumer on cpu1. M elements/s."
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "| batch | contender | 1 thread | skmem ÷ this | 2 threads | skmem ÷ this |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|")?;
    out.push_str(&body);
    Ok(out)
}

fn today() -> String {
    cmd::stdout_of(Command::new("date").args(["-u", "+%Y-%m-%d"]))
        .map_or_else(|| "?".to_owned(), |d| d.trim().to_owned())
}

/// Runs the comparison (unless `skip_run`: then the last report is reused)
/// and rewrites the mempool section of BENCHMARKS.md.
pub fn run(skip_run: bool, dpdk_budget: u64) -> Result<()> {
    let root = cmd::workspace_root();
    let saved = target_dir(root).join("mempool/last.json");
    if skip_run && !saved.exists() {
        // Nothing measured yet: leave the section as it is.
        println!(
            "no mempool report at {} yet: its section is left as it is",
            saved.display()
        );
        return Ok(());
    }
    // Saved as {"date": ..., "report": ...} so a rebuilt table keeps its date.
    let saved_json: Value = if skip_run {
        let text = std::fs::read_to_string(&saved).with_context(|| {
            format!(
                "reading {} (run `cargo xtask bench` once first)",
                saved.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", saved.display()))?
    } else {
        let report: Value = serde_json::from_str(&measure(root, dpdk_budget)?)
            .context("parsing the mempool report")?;
        let v = serde_json::json!({ "date": today(), "report": report });
        if let Some(dir) = saved.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&saved, v.to_string())
            .with_context(|| format!("writing {}", saved.display()))?;
        v
    };
    let report = &saved_json["report"];
    let date = saved_json["date"].as_str().unwrap_or("?");
    let mut section = mempool_table(report, date)?;
    let ring = ring_table(root)?;
    if !ring.is_empty() {
        section.push('\n');
        section.push_str(&ring);
    }
    let path = root.join("BENCHMARKS.md");
    let doc =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let new = rewrite(&doc, &section)?;
    std::fs::write(&path, new).with_context(|| format!("writing {}", path.display()))?;
    println!("{section}");
    println!("BENCHMARKS.md updated (mempool section)");
    Ok(())
}

/// `doc` with everything between the mempool markers replaced by `section`.
fn rewrite(doc: &str, section: &str) -> Result<String> {
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        return Err(anyhow!("BENCHMARKS.md lacks the {BEGIN} / {END} markers"));
    };
    if e < b {
        return Err(anyhow!("BENCHMARKS.md has {END} before {BEGIN}"));
    }
    Ok(format!("{}{BEGIN}\n{section}{}", &doc[..b], &doc[e..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_from_a_report_and_markers_rewritten() {
        let report = serde_json::json!({
            "seconds_per_case": 0.5,
            "obj_size": 2048,
            "pool_objects": 2047,
            "skmem_api": "bursts",
            "dpdk": {"command": "dpdk-test", "elapsed": 250.0, "stopped": "done",
                     "missing": ["on/2/1x1/512"]},
            "dpdk_absent": null,
            "rows": [
                {"case": {"cache": true, "cores": 2, "get": 4, "put": 32, "keep": 128},
                 "skmem": 3.0e8, "dpdk": 2.0e8, "ratio": 1.5},
                {"case": {"cache": false, "cores": 1, "get": 1, "put": 1, "keep": 32},
                 "skmem": 1.0e7, "dpdk": null, "ratio": null}
            ]
        });
        let t = mempool_table(&report, "2026-11-26").unwrap();
        assert!(
            t.contains("| on | 2 | 4/32 | 128 | 300 | 200 | 1.50× |"),
            "{t}"
        );
        assert!(t.contains("| off | 1 | 1/1 | 32 | 10 | – | – |"), "{t}");
        assert!(t.contains("DPDK did not reach: on/2/1x1/512."), "{t}");

        let doc = format!("# B\n\nprose\n{BEGIN}\nold\n{END}\ntail\n");
        let new = rewrite(&doc, "new\n").unwrap();
        assert_eq!(new, format!("# B\n\nprose\n{BEGIN}\nnew\n{END}\ntail\n"));
        assert!(rewrite("no markers", "x").is_err());
    }
}
