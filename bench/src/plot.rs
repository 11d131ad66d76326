//! The pps plot in BENCHMARKS.md: ratio panels, one per CPU layout.
//!
//! Absolute Mpps span two orders of magnitude between rxdrop and l2fwd and
//! move with the host between runs; the answer a reader wants is the ratio
//! measured in the same run. Each panel has one group per cell (workload ×
//! frame size) and in it one bar per ratio the cell has — skmem ÷ the best
//! peer, skmem with coalescing ÷ the best peer, owner + 1 and + 2 worker
//! processes ÷ skmem — at the median of the per-round ratios, a whisker
//! over their range, the value written above it, a line at 1.0 and, in
//! grey behind each group, the A/A band: the range of skmem ÷ skmem-again
//! (two identical runs), inside which a ratio says nothing.

use std::path::Path;

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use serde_json::Value;

/// The ratios a panel shows: the cell's key, the legend's name, a colour.
const SERIES: [(&str, &str, RGBColor); 4] = [
    (
        "skmem_vs_best_peer",
        "skmem ÷ best peer",
        RGBColor(0x1f, 0x77, 0xb4),
    ),
    (
        "coalesce_vs_best_peer",
        "skmem-coalesce ÷ best peer",
        RGBColor(0x9e, 0xc5, 0xe8),
    ),
    (
        "workers1_vs_skmem",
        "owner + 1 worker ÷ skmem",
        RGBColor(0x2c, 0xa0, 0x2c),
    ),
    (
        "workers2_vs_skmem",
        "owner + 2 workers ÷ skmem",
        RGBColor(0x98, 0xdf, 0x8a),
    ),
];

/// A ratio with the range of its rounds.
#[derive(Debug, Clone, Copy)]
struct Ratio {
    median: f64,
    lo: f64,
    hi: f64,
}

/// `cell[key]` and the range of `cell[key_rounds]` (the median alone
/// when there is one round).
fn ratio(cell: &Value, key: &str) -> Option<Ratio> {
    let median = cell[key].as_f64().filter(|x| x.is_finite())?;
    let rounds: Vec<f64> = cell[format!("{key}_rounds")]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    let lo = rounds.iter().copied().fold(median, f64::min);
    let hi = rounds.iter().copied().fold(median, f64::max);
    Some(Ratio { median, lo, hi })
}

/// The cells of `layout`, in the order the report has them.
fn cells_of<'a>(report: &'a Value, layout: &str) -> Vec<&'a Value> {
    report["cells"]
        .as_array()
        .map(|a| a.iter().filter(|c| c["layout"] == layout).collect())
        .unwrap_or_default()
}

/// Writes the ratio panels of `report` to `path` (SVG).
pub fn ratios(report: &Value, path: &Path) -> Result<()> {
    let mut layouts: Vec<&str> = Vec::new();
    for c in report["cells"].as_array().into_iter().flatten() {
        if let Some(l) = c["layout"].as_str() {
            if !layouts.contains(&l) {
                layouts.push(l);
            }
        }
    }
    if layouts.is_empty() {
        return Err(anyhow!("nothing to plot: the report has no cells"));
    }
    // Only the series some cell has, so the legend lists what is drawn.
    let series: Vec<_> = SERIES
        .iter()
        .filter(|(key, _, _)| {
            report["cells"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| ratio(c, key).is_some())
        })
        .collect();
    let top = report["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| {
            SERIES
                .iter()
                .filter_map(|(k, _, _)| ratio(c, k).map(|r| r.hi))
                .chain(ratio(c, "skmem_vs_skmem_again").map(|r| r.hi))
        })
        .fold(1.2f64, f64::max)
        * 1.12;
    let (width, panel_h, legend_h) = (1000u32, 330u32, 36u32);
    let height = legend_h + panel_h * layouts.len() as u32;
    let root = SVGBackend::new(path, (width, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (legend, panels) = root.split_vertically(legend_h);
    // The legend on its own strip: it never covers a bar or a label.
    let mut x = 10i32;
    for (_, name, colour) in &series {
        legend
            .draw(&Rectangle::new([(x, 12), (x + 14, 24)], colour.filled()))
            .map_err(|e| anyhow!("{e}"))?;
        legend
            .draw(&Text::new(
                name.to_string(),
                (x + 18, 12),
                ("sans-serif", 13),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        // About 6.5 px a character at this size.
        x += 30 + (13 * name.chars().count() as i32) / 2;
    }
    legend
        .draw(&Rectangle::new(
            [(x, 12), (x + 14, 24)],
            RGBColor(0xdd, 0xdd, 0xdd).filled(),
        ))
        .map_err(|e| anyhow!("{e}"))?;
    legend
        .draw(&Text::new(
            "A/A band (skmem ÷ skmem-again)",
            (x + 18, 12),
            ("sans-serif", 13),
        ))
        .map_err(|e| anyhow!("{e}"))?;
    for (area, layout) in panels.split_evenly((layouts.len(), 1)).iter().zip(&layouts) {
        panel(area, layout, &cells_of(report, layout), &series, top)?;
    }
    root.present()
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A point of the whole picture in `area`'s own pixels (the chart gives
/// the former, the area draws in the latter).
fn local(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    (x, y): (i32, i32),
) -> (i32, i32) {
    let (bx, by) = area.get_base_pixel();
    (x - bx, y - by)
}

/// One layout's panel.
fn panel(
    area: &DrawingArea<SVGBackend<'_>, plotters::coord::Shift>,
    layout: &str,
    cells: &[&Value],
    series: &[&(&str, &str, RGBColor)],
    top: f64,
) -> Result<()> {
    let n = cells.len().max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{layout} layout: ratios measured in the same run (median of rounds, whisker: range)"),
            ("sans-serif", 15),
        )
        .margin(10)
        .x_label_area_size(28)
        .y_label_area_size(44)
        .build_cartesian_2d(0f64..n as f64, 0f64..top)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(0)
        .y_desc("ratio")
        .y_label_formatter(&|y| format!("{y:.1}×"))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    // The A/A band behind each group, then the line at 1.0.
    let bands = cells.iter().enumerate().filter_map(|(i, c)| {
        let aa = ratio(c, "skmem_vs_skmem_again")?;
        Some(Rectangle::new(
            [(i as f64 + 0.04, aa.lo), (i as f64 + 0.96, aa.hi)],
            RGBColor(0xdd, 0xdd, 0xdd).filled(),
        ))
    });
    chart.draw_series(bands).map_err(|e| anyhow!("{e}"))?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(0.0, 1.0), (n as f64, 1.0)],
            BLACK.stroke_width(1),
        )))
        .map_err(|e| anyhow!("{e}"))?;
    let k = series.len().max(1) as f64;
    let bar = 0.8 / k;
    for (ci, cell) in cells.iter().enumerate() {
        for (si, (key, _, colour)) in series.iter().enumerate() {
            let Some(r) = ratio(cell, key) else {
                continue;
            };
            let x0 = ci as f64 + 0.1 + si as f64 * bar;
            let xm = x0 + bar * 0.45;
            chart
                .draw_series([Rectangle::new(
                    [(x0, 0.0), (x0 + bar * 0.9, r.median)],
                    colour.filled(),
                )])
                .map_err(|e| anyhow!("{e}"))?;
            chart
                .draw_series([PathElement::new(
                    vec![(xm, r.lo), (xm, r.hi)],
                    BLACK.stroke_width(1),
                )])
                .map_err(|e| anyhow!("{e}"))?;
            let (px, py) = local(area, chart.backend_coord(&(xm, r.hi)));
            area.draw(&Text::new(
                format!("{:.2}", r.median),
                (px - 12, py - 14),
                ("sans-serif", 11),
            ))
            .map_err(|e| anyhow!("{e}"))?;
        }
        // The cell's name under its group.
        let name = format!(
            "{} {} B",
            cell["workload"].as_str().unwrap_or("?"),
            cell["size"].as_u64().unwrap_or(0)
        );
        let (px, py) = local(area, chart.backend_coord(&(ci as f64 + 0.5, 0.0)));
        area.draw(&Text::new(
            name.clone(),
            (px - 3 * name.len() as i32, py + 8),
            ("sans-serif", 12),
        ))
        .map_err(|e| anyhow!("{e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panel_per_layout_with_bars_bands_and_values() {
        let report = serde_json::json!({
            "cells": [
                {"layout": "default", "workload": "rxdrop", "size": 64,
                 "skmem_vs_best_peer": 0.96, "skmem_vs_best_peer_rounds": [0.95, 1.01],
                 "skmem_vs_skmem_again": 0.99, "skmem_vs_skmem_again_rounds": [0.95, 1.04],
                 "workers1_vs_skmem": 1.0},
                {"layout": "threaded", "workload": "l2fwd", "size": 1500,
                 "skmem_vs_best_peer": 0.95}
            ]
        });
        let dir = std::env::temp_dir().join(format!("skmem-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("pps.svg");
        ratios(&report, &path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(text.starts_with("<svg"));
        for want in [
            "default layout",
            "threaded layout",
            "0.96",
            "1.00",
            "rxdrop 64 B",
            "l2fwd 1500 B",
            "A/A band",
            "owner + 1 worker",
        ] {
            assert!(text.contains(want), "{want} missing");
        }
        // Coalescing is in no cell: not in the legend either.
        assert!(!text.contains("skmem-coalesce"));
    }

    #[test]
    fn a_report_without_cells_is_an_error() {
        let path = std::env::temp_dir().join("skmem-plot-none.svg");
        assert!(ratios(&serde_json::json!({"cells": []}), &path).is_err());
    }
}
