//! `pps-report`: renders a `pps --json` report for BENCHMARKS.md — the
//! tables (between the pps markers of the document) and an SVG plot.
//!
//! ```text
//! target/release/pps --matrix --json > target/pps-report.json
//! target/release/pps-report target/pps-report.json --update BENCHMARKS.md --svg bench/pps.svg
//! ```

// A thin binary over its package's library: it sees every dependency
// of the package, and uses few.
#![allow(unused_crate_dependencies)]
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Parser;
use skmem_bench::report;

/// Render a pps JSON report as markdown tables and an SVG bar chart.
#[derive(Debug, Parser)]
#[command(name = "pps-report", version)]
struct Args {
    /// The report (`pps --json` output).
    report: PathBuf,
    /// Rewrite the pps section of this markdown file (e.g. BENCHMARKS.md)
    /// instead of printing the section.
    #[arg(long)]
    update: Option<PathBuf>,
    /// Write the bar chart here (SVG).
    #[arg(long)]
    svg: Option<PathBuf>,
}

fn run(a: &Args) -> Result<()> {
    let text = std::fs::read_to_string(&a.report)
        .with_context(|| format!("reading {}", a.report.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a JSON report", a.report.display()))?;
    // The image is linked relative to the document it appears in.
    let link = match (&a.svg, &a.update) {
        (Some(svg), Some(doc)) => {
            let base = doc.parent().unwrap_or_else(|| std::path::Path::new(""));
            Some(
                svg.strip_prefix(base)
                    .unwrap_or(svg)
                    .to_string_lossy()
                    .into_owned(),
            )
        }
        (Some(svg), None) => Some(svg.to_string_lossy().into_owned()),
        _ => None,
    };
    if let Some(svg) = &a.svg {
        report::svg(&value, svg)?;
        eprintln!("pps-report: wrote {}", svg.display());
    }
    let section = report::markdown(&value, link.as_deref())?;
    match &a.update {
        Some(doc) => {
            let old = std::fs::read_to_string(doc)
                .with_context(|| format!("reading {}", doc.display()))?;
            std::fs::write(doc, report::splice(&old, &section))
                .with_context(|| format!("writing {}", doc.display()))?;
            eprintln!("pps-report: updated {}", doc.display());
        }
        None => print!("{section}"),
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(&Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pps-report: {e:#}");
            ExitCode::FAILURE
        }
    }
}
