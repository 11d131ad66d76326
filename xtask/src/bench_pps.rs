//! `cargo xtask bench`, third part: the packets-per-second matrix (`pps
//! --matrix`, root: namespaces, veth, XDP) and its rendering into
//! BENCHMARKS.md — tables between the pps markers and the bar chart
//! `bench/pps.svg` (both by `pps-report`).
//!
//! The report is kept in `target/pps/last.json`, so `--table-only` can
//! render again without measuring.

use std::process::Command;

use anyhow::{anyhow, Context, Result};

use crate::cmd::{self, target_dir};

/// Runs `pps` with `pps_args` (default: `--matrix`) unless `table_only`,
/// then renders the last report.
pub fn run(table_only: bool, pps_args: &[String]) -> Result<()> {
    let root = cmd::workspace_root();
    cmd::build_release_bins(
        "building the pps harness and its report renderer",
        "skmem-bench",
        &["pps", "pps-report"],
    )?;
    let release = target_dir(root).join("release");
    let saved = target_dir(root).join("pps/last.json");
    if !table_only {
        let mut c = Command::new(release.join("pps"));
        if pps_args.is_empty() {
            c.arg("--matrix");
        } else {
            c.args(pps_args);
        }
        c.arg("--json").current_dir(root);
        let report = cmd::report_of("pps", &mut c)?;
        std::fs::create_dir_all(saved.parent().unwrap_or(root))?;
        std::fs::write(&saved, &report).with_context(|| format!("writing {}", saved.display()))?;
    } else if !saved.exists() {
        return Err(anyhow!(
            "no saved pps report at {}: run `cargo xtask bench` without --table-only first",
            saved.display()
        ));
    }
    cmd::run(
        "rendering the pps report",
        Command::new(release.join("pps-report"))
            .arg(&saved)
            .args(["--update", "BENCHMARKS.md", "--svg", "bench/pps.svg"])
            .current_dir(root),
    )
}
