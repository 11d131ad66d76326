//! `cargo xtask fuzz`: the libFuzzer targets in `fuzz/`, built with
//! coverage instrumentation and run on their committed corpus.
//!
//! No `cargo fuzz` is needed: this is what it does, with stable flags —
//! `-Cpasses=sancov-module` and the sanitizer-coverage options LLVM takes,
//! for the target only (`--target`, so build scripts and proc macros stay
//! plain), and libFuzzer itself from `libfuzzer-sys`. Each run reads the
//! corpus (`fuzz/corpus/TARGET`) and the inputs of crashes once found and
//! fixed (`fuzz/regressions/TARGET`), writes what it discovers to a
//! scratch directory (merged into the corpus with `--keep`), and fails on
//! a crash, a panic or a hang, leaving the input in
//! `fuzz/artifacts/TARGET/`. With `--asan` the targets are built with
//! AddressSanitizer too, and libFuzzer's leak check fails an input that
//! leaks.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cmd;
use crate::sanitize::{self, TRIPLE};

/// The targets, as `fuzz/Cargo.toml` names them.
pub const TARGETS: &[&str] = &["schema", "handover", "params", "descriptors", "worker"];

/// Runs each target gets in `cargo xtask test`: seconds, not minutes.
pub const SHORT_RUNS: u64 = 20_000;

/// Coverage instrumentation, as cargo-fuzz sets it (no sanitizer).
const RUSTFLAGS: &str = "-Cpasses=sancov-module \
    -Cllvm-args=-sanitizer-coverage-level=4 \
    -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
    -Cllvm-args=-sanitizer-coverage-pc-table \
    -Cllvm-args=-sanitizer-coverage-trace-compares \
    --cfg fuzzing";

/// What one target's run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The target.
    pub target: String,
    /// Inputs executed.
    pub runs: u64,
    /// Seconds the run took (libFuzzer's count).
    pub seconds: u64,
    /// Edges covered at the end.
    pub coverage: u64,
}

/// How the targets are built: coverage only, or also AddressSanitizer
/// (with LeakSanitizer: libFuzzer then fails an input that leaks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Build {
    /// Coverage instrumentation only: the fastest runs.
    Plain,
    /// Coverage and AddressSanitizer (`-Zsanitizer=address`, which the
    /// stable toolchain takes with `RUSTC_BOOTSTRAP=1`).
    Address,
}

/// Builds every target.
fn build(fuzz: &Path, how: Build) -> Result<PathBuf> {
    let mut cargo = cmd::cargo([
        "build",
        "--release",
        "--bins",
        "--target",
        TRIPLE,
        "--manifest-path",
    ]);
    cargo.arg(fuzz.join("Cargo.toml"));
    // One target directory per build: switching does not rebuild all.
    let target_dir = fuzz.join("target").join(match how {
        Build::Plain => "plain",
        Build::Address => "address",
    });
    cargo.arg("--target-dir").arg(&target_dir);
    match how {
        Build::Plain => {
            cargo.env("RUSTFLAGS", RUSTFLAGS);
        }
        Build::Address => sanitize::with_address_sanitizer(&mut cargo, RUSTFLAGS),
    }
    cmd::run("building the fuzz targets", &mut cargo)?;
    Ok(target_dir.join(TRIPLE).join("release"))
}

/// Reads libFuzzer's closing lines: `Done N runs in S second(s)` and the
/// last `cov: N`.
fn outcome(target: &str, log: &str) -> Option<Outcome> {
    let done = log.lines().rev().find(|l| l.starts_with("Done "))?;
    let mut words = done.split_whitespace();
    let runs = words.nth(1)?.parse().ok()?;
    let seconds = words.nth(2)?.parse().ok()?;
    let coverage = log
        .lines()
        .rev()
        .find_map(|l| l.split("cov: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Some(Outcome {
        target: target.to_owned(),
        runs,
        seconds,
        coverage,
    })
}

/// Runs `target` for `runs` inputs; with `keep`, merges what it found into
/// the committed corpus.
fn run_one(bin: &Path, fuzz: &Path, target: &str, runs: u64, keep: bool) -> Result<Outcome> {
    let corpus = fuzz.join("corpus").join(target);
    let regressions = fuzz.join("regressions").join(target);
    let artifacts = fuzz.join("artifacts").join(target);
    std::fs::create_dir_all(&artifacts)?;
    let scratch = std::env::temp_dir().join(format!("skmem-fuzz-{target}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let mut run = Command::new(bin.join(target));
    run.arg(&scratch).arg(&corpus);
    if regressions.is_dir() {
        run.arg(&regressions);
    }
    run.arg(format!("-runs={runs}"))
        .arg("-max_len=4096")
        .arg("-timeout=10")
        .arg("-rss_limit_mb=1024")
        .arg(format!("-artifact_prefix={}/", artifacts.display()));
    let out = run
        .output()
        .with_context(|| format!("starting fuzz target {target}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        let _ = std::fs::remove_dir_all(&scratch);
        bail!(
            "fuzz target {target} failed: the input is in {}; once fixed, copy it to {} so every run tries it again\n{}",
            artifacts.display(),
            regressions.display(),
            tail.join("\n")
        );
    }
    if keep {
        let mut merge = Command::new(bin.join(target));
        merge.arg("-merge=1").arg(&corpus).arg(&scratch);
        cmd::run(&format!("merging {target}'s new inputs"), &mut merge)?;
    }
    let _ = std::fs::remove_dir_all(&scratch);
    outcome(target, &log).with_context(|| format!("fuzz target {target}: no closing line"))
}

/// Builds the targets and runs `only` (or every one) for `runs` inputs
/// each; prints one line per target.
pub fn run(only: Option<&str>, runs: u64, keep: bool, how: Build) -> Result<Vec<Outcome>> {
    let targets: Vec<&str> = match only {
        Some(t) if TARGETS.contains(&t) => vec![t],
        Some(t) => bail!(
            "no fuzz target {t:?}: the targets are {}",
            TARGETS.join(", ")
        ),
        None => TARGETS.to_vec(),
    };
    let fuzz = cmd::workspace_root().join("fuzz");
    let bin = build(&fuzz, how)?;
    let mut outcomes = Vec::new();
    for t in targets {
        let o = run_one(&bin, &fuzz, t, runs, keep)?;
        println!(
            "fuzz {:<11} {:>9} runs in {:>4} s, {} edges covered, 0 crashes{}",
            o.target,
            o.runs,
            o.seconds,
            o.coverage,
            if how == Build::Address {
                ", 0 leaks or invalid accesses (AddressSanitizer)"
            } else {
                ""
            }
        );
        outcomes.push(o);
    }
    Ok(outcomes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libfuzzers_closing_lines_give_runs_seconds_and_coverage() {
        let log = "#1000000\tDONE   cov: 284 ft: 469 corp: 125/112Kb lim: 4096 exec/s: 1000000 rss: 27Mb\nDone 1000000 runs in 1 second(s)\n";
        let o = outcome("schema", log).unwrap();
        assert_eq!((o.runs, o.seconds, o.coverage), (1_000_000, 1, 284));
        assert_eq!(outcome("schema", "no closing line"), None);
    }
}
