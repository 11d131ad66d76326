//! The goals table's last column for the latency goals: what bounds each
//! (the least CPU measured, the in-kernel forward's p99, the awake floor)
//! and, for p99, what the A/A control showed.

use serde_json::Value;

/// For a latency load's CPU goal: the least machine CPU per frame any
/// program reached at that load (over the goal's denominator), and which.
pub(super) fn least_cpu(g: &Value, latency: &[Value], cells: &[Value]) -> Option<String> {
    if g["ratio"].as_str() != Some("cpu_vs_best_default_peer") {
        return None;
    }
    let here = |v: &Value| v["layout"] == g["layout"] && v["load"] == g["load"];
    let denominator = cells
        .iter()
        .find(|c| here(c))?
        .get("best_default_peer_machine_ns")?
        .as_f64()?;
    let least = latency
        .iter()
        .filter(|r| here(r) && r["kind"].as_str() != Some("ceiling"))
        .filter_map(|r| Some((r["machine_ns_per_packet"].as_f64()?, r["program"].as_str()?)))
        .min_by(|a, b| a.0.total_cmp(&b.0))?;
    let kernel = cells
        .iter()
        .find(|c| here(c))
        .and_then(|c| c["kernel_cpu"].as_f64())
        .map(|k| format!("; in-kernel xdp-tx, no program: {k:.2}×"))
        .unwrap_or_default();
    (denominator > 0.0).then(|| {
        format!(
            "least measured: {:.2}× ({}){kernel}",
            least.0 / denominator,
            least.1
        )
    })
}

/// For a latency load's p99 goal: the in-kernel forward's p99 (the probe,
/// the veths and XDP, no program) over the best peer's — how close the
/// best peer already was to the floor under every program.
pub(super) fn kernel_p99(g: &Value, cells: &[Value]) -> Option<String> {
    if g["ratio"].as_str() != Some("p99_vs_best_peer") {
        return None;
    }
    let c = cell_of(g, cells)?;
    let (kernel, best) = (
        c["kernel_p99_us"].as_f64()?,
        c["best_peer_p99_us"].as_f64()?,
    );
    (best > 0.0).then(|| {
        format!(
            "in-kernel xdp-tx, no program: p99 {kernel:.0} µs, {:.2}× the best peer's",
            kernel / best
        )
    })
}

/// For a latency load's p99 goal, after the twin: the A/A control
/// measured in the same rounds — skmem-again's p99 over the best peer's,
/// and skmem's over skmem-again's per round. Empty in reports without it
/// (before session 23).
pub(super) fn again_p99(g: &Value, cells: &[Value]) -> String {
    if g["ratio"].as_str() != Some("p99_vs_best_peer") {
        return String::new();
    }
    let Some(c) = cell_of(g, cells) else {
        return String::new();
    };
    let Some(again) = c["again_p99_vs_best_peer"].as_f64() else {
        return String::new();
    };
    let rounds: Vec<f64> = c["skmem_vs_again_p99_rounds"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let spread = match (
        rounds.iter().copied().reduce(f64::min),
        rounds.iter().copied().reduce(f64::max),
    ) {
        (Some(lo), Some(hi)) => format!(" (skmem ÷ it per round {lo:.2}–{hi:.2}×)"),
        _ => String::new(),
    };
    format!("; skmem-again (A/A): {again:.2}×{spread}")
}

/// For a latency load's CPU-at-p99 goal: the floor under any program that
/// meets the p99 goal — the least share of a CPU spent awake to meet 99 %
/// of the probe's frames, plus the least the other CPU was busy, never
/// below the in-kernel forward's CPU — or why none is claimed.
pub(super) fn awake_floor(g: &Value, cells: &[Value]) -> Option<String> {
    if g["ratio"].as_str() != Some("cpu_at_p99_vs_best_default_peer") {
        return None;
    }
    let c = cell_of(g, cells)?;
    let share = c["awake_share"].as_f64()?;
    let how = match (c["awake_timed"].as_bool(), c["timer_late_p50_us"].as_f64()) {
        (Some(true), Some(l)) => format!(", waking on timers {l:.0} µs late"),
        _ => String::new(),
    };
    let Some(bound) = c["cpu_at_p99_bound"].as_f64() else {
        return Some(format!(
            "awake for 99 % of the frames{how}: {:.0} % of a CPU — but a program met \
             the p99 goal with its CPU idler than that: no floor",
            share * 100.0
        ));
    };
    let out_of_reach = if bound > g["target"].as_f64()? {
        " — out of reach"
    } else {
        ""
    };
    let other = c["other_cpus_ns"]
        .as_f64()
        .zip(c["best_default_peer_machine_ns"].as_f64())
        .filter(|(_, d)| *d > 0.0)
        .map_or_else(|| "–".to_owned(), |(o, d)| format!("{:.2}×", o / d));
    Some(format!(
        "awake for 99 % of the frames{how}: ≥ {:.0} % of a CPU, the other CPU ≥ {other}: \
         ≥ {bound:.2}×{out_of_reach}",
        share * 100.0,
    ))
}

/// The latency cell a latency goal was read from (its layout and load).
fn cell_of<'a>(g: &Value, cells: &'a [Value]) -> Option<&'a Value> {
    cells
        .iter()
        .find(|c| c["layout"] == g["layout"] && c["load"] == g["load"])
}
