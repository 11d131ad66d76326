//! Turns a `pps --json` report into what BENCHMARKS.md shows: tables of
//! medians and ratios per CPU layout, the goals, and the plot of the
//! ratios ([`crate::plot`]: plotters, SVG backend, no fonts or system
//! libraries needed).
//!
//! It reads the report as plain JSON (the field names documented on
//! [`crate::pps::ProgramResult`], [`crate::pps::Cell`], [`crate::pps::Goal`])
//! so a report saved by an older harness still renders.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{anyhow, Result};
use serde::Deserialize;
use serde_json::Value;

use crate::pps::parity::TwinBand;

mod latency_notes;
use latency_notes::{again_p99, awake_floor, kernel_p99, least_cpu};

/// The programs in the order tables and the plot show them.
pub const PROGRAMS: [&str; 14] = [
    "skmem",
    "skmem-again",
    "skmem-spin",
    "skmem-coalesce",
    "skmem-probed",
    "skmem-w1",
    "skmem-w2",
    "xsk-rs",
    "xsk-rs-poll",
    "libxdp-c",
    "libxdp-c-poll",
    "testpmd",
    "xsk-sink",
    "ceiling",
];

/// Start and end markers of the generated section in BENCHMARKS.md.
pub const BEGIN: &str = "<!-- BEGIN pps: written by `cargo xtask bench --pps` -->";
/// See [`BEGIN`].
pub const END: &str = "<!-- END pps -->";

/// One result, as much of it as the report shows.
#[derive(Debug, Clone)]
struct Row {
    layout: String,
    workload: String,
    size: u64,
    implementation: String,
    median: f64,
    min: f64,
    max: f64,
    wait: String,
    /// The whole machine's busy time per packet counted, ns.
    machine_ns: Option<f64>,
    /// Mpps per busy CPU of the machine.
    per_core: Option<f64>,
}

fn rows(report: &Value) -> Result<Vec<Row>> {
    let results = report["results"]
        .as_array()
        .ok_or_else(|| anyhow!("the report has no `results` array"))?;
    results
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap_or("?").to_owned();
            let m = &r["mpps"];
            Ok(Row {
                layout: s("layout"),
                workload: s("workload"),
                size: r["size"].as_u64().unwrap_or(64),
                implementation: s("implementation"),
                median: m["median"]
                    .as_f64()
                    .ok_or_else(|| anyhow!("a result without mpps.median: {r}"))?,
                min: m["min"].as_f64().unwrap_or(f64::NAN),
                max: m["max"].as_f64().unwrap_or(f64::NAN),
                wait: s("wait"),
                machine_ns: r["machine_ns_per_packet"].as_f64(),
                per_core: r["mpps_per_busy_core"].as_f64(),
            })
        })
        .collect()
}

/// A cell of the matrix: layout, workload, frame size.
type CellKey = (String, String, u64);

/// The cells in the order they were run.
fn cells(rows: &[Row]) -> Vec<CellKey> {
    let mut out: Vec<CellKey> = Vec::new();
    for r in rows {
        let k = (r.layout.clone(), r.workload.clone(), r.size);
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

fn ratio(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "–".to_owned(), |x| format!("{x:.2}×"))
}

/// A cell's ratio `key` with the range of its per-round ratios
/// (`key_rounds`) when the run had several rounds: `0.99× (0.97–1.01)`.
fn ranged(cell: &Value, key: &str) -> String {
    let rounds: Vec<f64> = cell[format!("{key}_rounds")]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let lo = rounds.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = rounds.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match cell[key].as_f64() {
        Some(x) if rounds.len() > 1 => format!("{x:.2}× ({lo:.2}–{hi:.2})"),
        _ => ratio(&cell[key]),
    }
}

/// The markdown section: settings, one table per layout, the goals.
pub fn markdown(report: &Value, svg_name: Option<&str>) -> Result<String> {
    let rows = rows(report)?;
    let mut s = String::new();
    write_settings(&mut s, report)?;
    write_layouts(&mut s, report)?;
    if let Some(name) = svg_name {
        writeln!(s, "![pps per workload and program]({name})\n")?;
    }
    let columns = Columns::of(&rows);
    let all_cells = cells(&rows);
    let cell_info = report["cells"].as_array().cloned().unwrap_or_default();
    for layout in layouts(&all_cells) {
        writeln!(s, "#### {layout} layout — Mpps, median (min–max)\n")?;
        writeln!(s, "{}", columns.head()?)?;
        for cell in all_cells.iter().filter(|(l, _, _)| l == layout) {
            let (l, w, size) = cell;
            let info = cell_info.iter().find(|ci| {
                ci["layout"].as_str() == Some(l)
                    && ci["workload"].as_str() == Some(w)
                    && ci["size"].as_u64() == Some(*size)
            });
            writeln!(s, "{}", columns.row(&rows, cell, info)?)?;
        }
        writeln!(s)?;
    }
    for layout in layouts(&all_cells) {
        write_cpu_table(&mut s, &columns, &rows, &all_cells, layout)?;
    }
    write_latency(&mut s, report)?;
    write_goals(&mut s, report)?;
    write_skipped(&mut s, report)?;
    write_wait_note(&mut s, &rows)?;
    Ok(s)
}

/// The paragraph of the run's settings: what the tables were measured
/// under.
fn write_settings(s: &mut String, report: &Value) -> Result<()> {
    let c = &report["config"];
    writeln!(
        s,
        "Run of {} (`pps --matrix`): {} round(s), each running every program of a cell in turn \
         (alternating order) with warm-up {} s and {} × {} s; ratios are medians of the per-round \
         ratios (range in brackets); batch {}, \
         generator `{}` on cpu{}, programs on cpu{}{}; autogroup scheduling {}; whole run {:.0} s; \
         loadavg before {}, after {}.\n",
        report["date"].as_str().unwrap_or("the date in the commit"),
        c["rounds"].as_u64().unwrap_or(1),
        c["warmup_s"],
        c["reps"],
        c["duration_s"],
        c["batch"],
        c["generator"].as_str().unwrap_or("?"),
        c["gen_cpu"],
        c["prog_cpu"],
        c["prog_fifo"]
            .as_u64()
            .map(|p| format!(" at SCHED_FIFO {p}"))
            .unwrap_or_default(),
        // Reports from before the harness turned it off say nothing: it
        // was on.
        report["autogroup"].as_str().unwrap_or("on"),
        report["elapsed_s"].as_f64().unwrap_or(0.0),
        report["loadavg"][0].as_str().unwrap_or("?"),
        report["loadavg"][1].as_str().unwrap_or("?"),
    )?;
    Ok(())
}

/// A bullet per CPU layout: its wait mode, XDP mode and description.
fn write_layouts(s: &mut String, report: &Value) -> Result<()> {
    if let Some(layouts) = report["layouts"].as_array() {
        for l in layouts {
            writeln!(
                s,
                "- **{}** (wait: {}, XDP {}): {}",
                l["layout"].as_str().unwrap_or("?"),
                l["wait"].as_str().unwrap_or("?"),
                l["xdp_mode"].as_str().unwrap_or("?"),
                l["description"].as_str().unwrap_or("")
            )?;
        }
        writeln!(s)?;
    }
    Ok(())
}

/// The layouts in the order their cells were run: a table each.
fn layouts(cells: &[CellKey]) -> Vec<&String> {
    let mut out: Vec<&String> = Vec::new();
    for (l, _, _) in cells {
        if !out.contains(&l) {
            out.push(l);
        }
    }
    out
}

/// The columns every layout's table has: a rate per program that ran,
/// skmem's four ratios, and the ratios of the programs that ran only
/// sometimes.
struct Columns {
    /// The programs that ran, in [`PROGRAMS`] order.
    present: Vec<&'static str>,
    /// skmem with receive coalescing, where it ran: beside skmem's own
    /// ratios (a wait mode no peer has), never in their place.
    tuned: bool,
    /// Owner + worker processes against single-process skmem: each
    /// program that ran, with its ratio's key in a cell.
    workers: Vec<(&'static str, &'static str)>,
    /// Other ratios of programs that ran only sometimes: (program, head,
    /// the ratio's key in a cell).
    extra: Vec<(&'static str, &'static str)>,
}

impl Columns {
    /// The columns for the programs among `rows`.
    fn of(rows: &[Row]) -> Self {
        let present: Vec<&'static str> = PROGRAMS
            .iter()
            .copied()
            .filter(|p| rows.iter().any(|r| r.implementation == *p))
            .collect();
        let tuned = present.contains(&"skmem-coalesce");
        let workers = [
            ("skmem-w1", "workers1_vs_skmem"),
            ("skmem-w2", "workers2_vs_skmem"),
        ]
        .into_iter()
        .filter(|(p, _)| present.contains(p))
        .collect();
        let extra = [
            ("skmem-spin", "skmem ÷ skmem-spin", "skmem_vs_spin"),
            ("skmem-probed", "skmem-probed ÷ skmem", "probed_vs_skmem"),
        ]
        .into_iter()
        .filter(|(p, _, _)| present.contains(p))
        .map(|(_, h, k)| (h, k))
        .collect();
        Columns {
            present,
            tuned,
            workers,
            extra,
        }
    }

    /// The table's head and its rule line.
    fn head(&self) -> Result<String> {
        let mut head = "| workload | size |".to_owned();
        let mut rule = "|---|---|".to_owned();
        for p in &self.present {
            write!(head, " {p} |")?;
            rule.push_str("---|");
        }
        head.push_str(
            " skmem ÷ best peer | skmem ÷ bound | skmem ÷ xsk-rs | skmem ÷ ceiling | skmem ÷ skmem-again (A/A) |",
        );
        rule.push_str("---|---|---|---|---|");
        for (h, _) in &self.extra {
            write!(head, " {h} |")?;
            rule.push_str("---|");
        }
        if self.tuned {
            head.push_str(" skmem-coalesce ÷ best peer |");
            rule.push_str("---|");
        }
        for (p, _) in &self.workers {
            write!(head, " {p} ÷ skmem |")?;
            rule.push_str("---|");
        }
        Ok(format!("{head}\n{rule}"))
    }

    /// One cell's row: each program's rate, then the cell's ratios from
    /// `info` (the report's entry for the cell, if it has one).
    fn row(&self, rows: &[Row], cell: &CellKey, info: Option<&Value>) -> Result<String> {
        let (l, w, size) = cell;
        let mut line = format!("| {w} | {size} B |");
        for p in &self.present {
            match rows.iter().find(|r| {
                &r.layout == l && &r.workload == w && r.size == *size && r.implementation == *p
            }) {
                Some(r) => write!(line, " {:.3} ({:.3}–{:.3}) |", r.median, r.min, r.max)?,
                None => line.push_str(" – |"),
            }
        }
        self.write_ratios(&mut line, info)?;
        Ok(line)
    }

    /// A row's ratio columns, `–` each where the cell has no entry.
    fn write_ratios(&self, line: &mut String, info: Option<&Value>) -> Result<()> {
        match info {
            Some(ci) => write!(
                line,
                " {}{} | {} | {} | {} | {} |",
                ranged(ci, "skmem_vs_best_peer"),
                ci["best_peer"]
                    .as_str()
                    .map(|p| format!(" {p}"))
                    .unwrap_or_default(),
                ranged(ci, "skmem_vs_bound"),
                ranged(ci, "skmem_vs_xsk_rs"),
                ranged(ci, "skmem_vs_ceiling"),
                ranged(ci, "skmem_vs_skmem_again")
            )?,
            None => line.push_str(" – | – | – | – | – |"),
        }
        for (_, key) in &self.extra {
            match info {
                Some(ci) => write!(line, " {} |", ranged(ci, key))?,
                None => line.push_str(" – |"),
            }
        }
        if self.tuned {
            match info {
                Some(ci) => write!(line, " {} |", ranged(ci, "coalesce_vs_best_peer"))?,
                None => line.push_str(" – |"),
            }
        }
        for (_, key) in &self.workers {
            match info {
                Some(ci) => write!(line, " {} |", ranged(ci, key))?,
                None => line.push_str(" – |"),
            }
        }
        Ok(())
    }
}

/// The goals table, when the report has goals: each ratio against its
/// target, and how far any AF_XDP program could get.
fn write_goals(s: &mut String, report: &Value) -> Result<()> {
    let Some(goals) = report["goals"].as_array().filter(|g| !g.is_empty()) else {
        return Ok(());
    };
    writeln!(s, "#### Goals (this run)\n")?;
    writeln!(
        s,
        "| layout | workload | size / load | ratio | goal | this run | | how far any program got here |"
    )?;
    writeln!(s, "|---|---|---|---|---|---|---|---|")?;
    let cells = report["cells"].as_array().cloned().unwrap_or_default();
    let latency = report["latency"].as_array().cloned().unwrap_or_default();
    let latency_cells = report["latency_cells"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for g in goals {
        // skmem ÷ bound: the best peer's own share of the bound says how
        // far any program got (the bound itself is 1.0 by definition).
        let peer_share = (g["ratio"].as_str() == Some("skmem_vs_bound"))
            .then(|| {
                let c = cells.iter().find(|c| {
                    c["layout"] == g["layout"]
                        && c["workload"] == g["workload"]
                        && c["size"] == g["size"]
                })?;
                let bound = match c["workload"].as_str() {
                    Some("l2fwd") => c["fastest_txonly_mpps"].as_f64(),
                    _ => c["bound_mpps"].as_f64(),
                }?;
                let best = c["best_peer_mpps"].as_f64()?;
                (bound > 0.0).then(|| {
                    format!(
                        "best peer ({}): {:.2}×",
                        c["best_peer"].as_str().unwrap_or("?"),
                        best / bound
                    )
                })
            })
            .flatten()
            .or_else(|| least_cpu(g, &latency, &latency_cells))
            .or_else(|| kernel_p99(g, &latency_cells))
            .or_else(|| awake_floor(g, &latency_cells));
        writeln!(
            s,
            "| {} | {} | {} | {} | {} {} | {} | {} | {} |",
            g["layout"].as_str().unwrap_or("?"),
            g["workload"].as_str().unwrap_or("?"),
            match g["load"].as_f64() {
                Some(l) => format!("{:.0} % load", l * 100.0),
                None => format!("{} B", g["size"]),
            },
            g["ratio"].as_str().unwrap_or("?"),
            if g["at_most"].as_bool() == Some(true) {
                "≤"
            } else {
                "≥"
            },
            g["target"],
            ratio(&g["value"]),
            match g["met"].as_bool() {
                Some(true) => "✅",
                Some(false) => "❌",
                None => "–",
            },
            match (peer_share, g["reachable"].as_bool()) {
                (Some(p), _) => p,
                (None, Some(false)) => format!("{} — out of reach", ratio(&g["bound"])),
                (None, Some(true)) => ratio(&g["bound"]),
                (None, None) => "–".to_owned(),
            } + &twin_note(g)
                + &again_p99(g, &latency_cells)
        )?;
    }
    writeln!(s)?;
    Ok(())
}

/// For a goal against the best peer (rates, p99): the band a program
/// exactly as good as the best peer would have shown (`goal.twin`, in
/// reports since session 18), and where skmem's ratio lies against it.
fn twin_note(g: &Value) -> String {
    let Ok(t) = TwinBand::deserialize(&g["twin"]) else {
        return String::new();
    };
    let at_most = g["at_most"].as_bool() == Some(true);
    let verdict = g["value"]
        .as_f64()
        .map(|v| format!(": {}", t.verdict(v, at_most)))
        .unwrap_or_default();
    format!(
        "; a twin of the best peer: {:.2}× ({:.2}–{:.2}){verdict}",
        t.p50, t.p05, t.p95
    )
}

/// One layout's CPU table: for each cell and program, the whole machine's
/// busy time per packet counted (ns) and the rate per busy CPU (Mpps).
fn write_cpu_table(
    s: &mut String,
    columns: &Columns,
    rows: &[Row],
    all_cells: &[CellKey],
    layout: &str,
) -> Result<()> {
    writeln!(
        s,
        "#### {layout} layout — CPU: the whole machine's busy ns per packet (Mpps per busy CPU)\n"
    )?;
    let mut head = "| workload | size |".to_owned();
    let mut rule = "|---|---|".to_owned();
    for p in &columns.present {
        write!(head, " {p} |")?;
        rule.push_str("---|");
    }
    writeln!(s, "{head}\n{rule}")?;
    for (l, w, size) in all_cells.iter().filter(|(l, _, _)| l == layout) {
        let mut line = format!("| {w} | {size} B |");
        for p in &columns.present {
            let r = rows.iter().find(|r| {
                &r.layout == l && &r.workload == w && r.size == *size && r.implementation == *p
            });
            match r.and_then(|r| Some((r.machine_ns?, r.per_core?))) {
                Some((ns, pc)) => write!(line, " {ns:.0} ({pc:.2}) |")?,
                None => line.push_str(" – |"),
            }
        }
        writeln!(s, "{line}")?;
    }
    writeln!(s)?;
    Ok(())
}

/// The latency runs: a table per layout of each load and program's
/// round-trip times and CPU, then skmem against the peers per load.
fn write_latency(s: &mut String, report: &Value) -> Result<()> {
    let Some(lat) = report["latency"].as_array().filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let mut layouts: Vec<&str> = Vec::new();
    for r in lat {
        let l = r["layout"].as_str().unwrap_or("?");
        if !layouts.contains(&l) {
            layouts.push(l);
        }
    }
    let us = |v: &Value| {
        v.as_f64()
            .map_or_else(|| "–".to_owned(), |x| format!("{x:.1}"))
    };
    let num = |v: &Value, d: usize| {
        v.as_f64()
            .map_or_else(|| "–".to_owned(), |x| format!("{x:.d$}"))
    };
    for layout in layouts {
        writeln!(
            s,
            "#### {layout} layout — l2fwd round trips (µs) and CPU at equal offered load\n"
        )?;
        writeln!(
            s,
            "| load | program | wait | sent Mpps | forwarded Mpps | lost | p50 | p99 | p99.9 | max | machine CPUs | machine ns/pkt | program ns/pkt |"
        )?;
        writeln!(s, "|---|---|---|---|---|---|---|---|---|---|---|---|---|")?;
        for r in lat.iter().filter(|r| r["layout"].as_str() == Some(layout)) {
            writeln!(
                s,
                "| {:.0} % ({} Mpps) | {} | {} | {} | {} | {} % | {} | {} | {} | {} | {} | {} | {} |",
                r["load"].as_f64().unwrap_or(0.0) * 100.0,
                num(&r["target_mpps"], 3),
                r["program"].as_str().unwrap_or("?"),
                r["wait"].as_str().unwrap_or("?"),
                num(&r["sent_mpps"], 3),
                num(&r["forwarded_mpps"], 3),
                r["lost_share"]
                    .as_f64()
                    .map_or_else(|| "–".to_owned(), |x| format!("{:.2}", x * 100.0)),
                us(&r["p50_us"]),
                us(&r["p99_us"]),
                us(&r["p999_us"]),
                us(&r["max_us"]),
                num(&r["machine_busy_cores"], 2),
                num(&r["machine_ns_per_packet"], 0),
                num(&r["prog_ns_per_packet"], 0),
            )?;
        }
        writeln!(s)?;
    }
    Ok(())
}

/// A line per program the run left out, and why.
fn write_skipped(s: &mut String, report: &Value) -> Result<()> {
    if let Some(skipped) = report["skipped"].as_array().filter(|v| !v.is_empty()) {
        for k in skipped {
            writeln!(
                s,
                "- not run: {} — {}",
                k["implementation"].as_str().unwrap_or("?"),
                k["reason"].as_str().unwrap_or("?")
            )?;
        }
        writeln!(s)?;
    }
    Ok(())
}

/// A note where results spun and polled: the tables do not say which.
fn write_wait_note(s: &mut String, rows: &[Row]) -> Result<()> {
    let waits: Vec<String> = rows.iter().map(|r| r.wait.clone()).collect();
    if waits.iter().any(|w| w == "spin") && waits.iter().any(|w| w == "poll") {
        writeln!(
            s,
            "(How each program waited: skmem `adaptive`, skmem-coalesce `coalesce`, the `-poll` \
             rows `poll()`, the rest spin — skmem-w1/w2 and xsk-sink as their layout says: \
             spin in default, poll in threaded. Each result's wait is in the JSON report.)\n"
        )?;
    }
    Ok(())
}

/// Writes the plot: ratio panels, one per layout ([`crate::plot`]).
pub fn svg(report: &Value, path: &Path) -> Result<()> {
    crate::plot::ratios(report, path)
}

/// Replaces the text between [`BEGIN`] and [`END`] in `doc` with `section`;
/// appends the markers and the section when `doc` has none.
pub fn splice(doc: &str, section: &str) -> String {
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{BEGIN}\n{section}{}", &doc[..b], &doc[e..])
        }
        _ => format!("{doc}\n{BEGIN}\n{section}{END}\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Value {
        serde_json::json!({
            "config": {"warmup_s": 1.0, "reps": 3, "duration_s": 2.0, "batch": 64,
                       "generator": "xdp", "gen_cpu": 0, "prog_cpu": 1},
            "layouts": [{"layout": "threaded", "wait": "poll", "xdp_mode": "native",
                         "description": "NAPI on the program CPU"}],
            "results": [
                {"layout": "threaded", "workload": "rxdrop", "size": 64, "implementation": "skmem",
                 "wait": "poll", "mpps": {"median": 2.0, "min": 1.9, "max": 2.1},
                 "machine_ns_per_packet": 612.4, "mpps_per_busy_core": 1.25},
                {"layout": "threaded", "workload": "rxdrop", "size": 64, "implementation": "xsk-rs",
                 "wait": "poll", "mpps": {"median": 1.0, "min": 0.9, "max": 1.1}},
                {"layout": "threaded", "workload": "rxdrop", "size": 64, "implementation": "ceiling",
                 "wait": "poll", "mpps": {"median": 4.0, "min": 3.9, "max": 4.1}},
                {"layout": "threaded", "workload": "rxdrop", "size": 64,
                 "implementation": "skmem-coalesce", "wait": "coalesce",
                 "mpps": {"median": 3.0, "min": 2.9, "max": 3.1}}
            ],
            "cells": [{"layout": "threaded", "workload": "rxdrop", "size": 64,
                       "skmem_vs_best_peer": 2.0, "best_peer": "xsk-rs", "skmem_vs_ceiling": 0.5,
                       "skmem_vs_xsk_rs": 2.0, "skmem_vs_xsk_rs_rounds": [1.9, 2.0, 2.2],
                       "coalesce_vs_best_peer": 3.0, "best_peer_mpps": 1.0,
                       "bound_mpps": 4.0}],
            "goals": [{"layout": "threaded", "workload": "rxdrop", "size": 64,
                       "ratio": "skmem / best peer", "target": 1.05, "value": 2.0, "met": true},
                      {"layout": "threaded", "workload": "rxdrop", "size": 64,
                       "ratio": "skmem_vs_ceiling", "target": 0.75, "value": 0.5, "met": false,
                       "bound": 0.6, "reachable": false},
                      {"layout": "threaded", "workload": "rxdrop", "size": 64,
                       "ratio": "skmem_vs_bound", "target": 0.9, "value": 0.5, "met": false,
                       "bound": 1.0, "reachable": true},
                      {"layout": "threaded", "workload": "l2fwd", "size": 64,
                       "ratio": "skmem_vs_best_peer", "target": 1.0, "value": 0.95,
                       "met": false, "bound": 1.2, "reachable": true,
                       "twin": {"p05": 0.9, "p50": 0.97, "p95": 1.04}},
                      {"layout": "threaded", "workload": "l2fwd", "load": 0.5,
                       "ratio": "p99_vs_best_peer", "target": 1.1, "at_most": true,
                       "value": 1.2, "met": false,
                       "twin": {"p05": 0.8, "p50": 0.95, "p95": 1.1}},
                      {"layout": "threaded", "workload": "l2fwd", "load": 0.5,
                       "ratio": "cpu_vs_best_default_peer", "target": 0.5, "at_most": true,
                       "value": 0.8, "met": false, "bound": 0.7, "reachable": false},
                      {"layout": "threaded", "workload": "l2fwd", "load": 0.5,
                       "ratio": "cpu_at_p99_vs_best_default_peer", "target": 0.5,
                       "at_most": true, "value": 0.8, "met": false, "bound": 0.65,
                       "reachable": false}],
            "latency_cells": [{"layout": "threaded", "load": 0.5, "best_peer_p99_us": 50.0,
                               "again_p99_vs_best_peer": 1.05,
                               "skmem_vs_again_p99_rounds": [0.9, 1.4, 1.1],
                               "best_default_peer_machine_ns": 3000.0,
                               "kernel_p99_us": 40.0, "kernel_cpu": 0.25,
                               "awake_share": 0.4, "cpu_at_p99_bound": 0.65,
                               "other_cpus_ns": 750.0,
                               "awake_timed": true, "timer_late_p50_us": 24.6}],
            "latency": [{"layout": "threaded", "load": 0.5, "target_mpps": 0.5,
                         "program": "skmem", "wait": "adaptive", "sent_mpps": 0.499,
                         "forwarded_mpps": 0.498, "lost_share": 0.001, "p50_us": 12.34,
                         "p99_us": 56.7, "p999_us": 89.0, "max_us": 120.0,
                         "machine_busy_cores": 1.23, "machine_ns_per_packet": 2470.0,
                         "prog_ns_per_packet": 900.0},
                        {"layout": "threaded", "load": 0.5, "target_mpps": 0.5,
                         "program": "xdp-tx", "kind": "ceiling", "wait": "spin",
                         "sent_mpps": 0.5, "forwarded_mpps": 0.5, "lost_share": 0.0,
                         "p50_us": 10.0, "p99_us": 40.0, "p999_us": 45.0, "max_us": 50.0,
                         "machine_busy_cores": 0.38, "machine_ns_per_packet": 750.0}],
            "skipped": [{"implementation": "testpmd", "reason": "not installed"}],
            "elapsed_s": 42.0, "loadavg": ["0.1", "0.2"]
        })
    }

    #[test]
    fn markdown_has_every_program_ratio_and_goal() {
        let md = markdown(&sample(), Some("pps.svg")).unwrap();
        assert!(
            md.contains(
                "| rxdrop | 64 B | 2.000 (1.900–2.100) | 3.000 (2.900–3.100) | 1.000 (0.900–1.100) | 4.000"
            ),
            "{md}"
        );
        assert!(
            md.contains("2.00× xsk-rs | – | 2.00× (1.90–2.20) | 0.50× | – | 3.00× |"),
            "{md}"
        );
        assert!(md.contains("| ≥ 1.05 | 2.00× | ✅ | – |"), "{md}");
        assert!(
            md.contains("| ≥ 0.75 | 0.50× | ❌ | 0.60× — out of reach |"),
            "{md}"
        );
        assert!(md.contains("not run: testpmd — not installed"), "{md}");
        // skmem ÷ bound says how far the best peer got.
        assert!(
            md.contains("| ≥ 0.9 | 0.50× | ❌ | best peer (xsk-rs): 0.25× |"),
            "{md}"
        );
        // Below 1.0 but inside what a twin of the best peer shows: parity.
        assert!(
            md.contains(
                "| ≥ 1.0 | 0.95× | ❌ | 1.20×; a twin of the best peer: 0.97× (0.90–1.04): at parity |"
            ),
            "{md}"
        );
        // The CPU table: machine ns per packet (Mpps per busy CPU).
        assert!(md.contains("| rxdrop | 64 B | 612 (1.25) | – |"), "{md}");
        // The latency table.
        assert!(
            md.contains(
                "| 50 % (0.500 Mpps) | skmem | adaptive | 0.499 | 0.498 | 0.10 % | 12.3 | 56.7 \
                 | 89.0 | 120.0 | 1.23 | 2470 | 900 |"
            ),
            "{md}"
        );
        // The latency goals, beside the floor the in-kernel forward
        // measured (the least CPU is an AF_XDP program's, not xdp-tx's).
        assert!(
            md.contains(
                "| ≤ 1.1 | 1.20× | ❌ | in-kernel xdp-tx, no program: p99 40 µs, 0.80× the best \
                 peer's; a twin of the best peer: 0.95× (0.80–1.10): worse than parity; \
                 skmem-again (A/A): 1.05× (skmem ÷ it per round 0.90–1.40×) |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| ≤ 0.5 | 0.80× | ❌ | least measured: 0.82× (skmem); in-kernel xdp-tx, no program: 0.25× |"
            ),
            "{md}"
        );
        // Both at once: the floor being awake for the frames puts under
        // any program that meets the p99 goal.
        assert!(
            md.contains(
                "| ≤ 0.5 | 0.80× | ❌ | awake for 99 % of the frames, waking on timers 25 µs late: \
                 ≥ 40 % of a CPU, the other CPU ≥ 0.25×: ≥ 0.65× — out of reach |"
            ),
            "{md}"
        );
        assert!(md.contains("![pps per workload and program](pps.svg)"));
    }

    #[test]
    fn svg_draws_the_ratio_panels() {
        let dir = std::env::temp_dir().join(format!("skmem-report-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pps.svg");
        svg(&sample(), &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(text.starts_with("<svg"), "{}", &text[..80.min(text.len())]);
        // The cell's ratios, in its layout's panel.
        assert!(text.contains("threaded layout") && text.contains("2.00"));
    }

    #[test]
    fn splice_replaces_or_appends_the_section() {
        let doc = format!("a\n{BEGIN}\nold\n{END}\nz\n");
        assert_eq!(
            splice(&doc, "new\n"),
            format!("a\n{BEGIN}\nnew\n{END}\nz\n")
        );
        assert!(splice("a\n", "new\n").ends_with(&format!("{BEGIN}\nnew\n{END}\n")));
    }

    #[test]
    fn a_report_without_results_is_an_error() {
        assert!(markdown(&serde_json::json!({}), None).is_err());
        assert!(svg(
            &serde_json::json!({"results": []}),
            Path::new("/nonexistent/x.svg")
        )
        .is_err());
    }
}
