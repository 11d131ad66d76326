//! Small helpers around `std::process::Command`.
//!
//! Every child is spawned directly (no shell strings), so arguments never
//! need quoting and a failure can name exactly the program that failed.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{self, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{anyhow, Context, Result};

/// A child process that ran but did not succeed.
///
/// Carried through `anyhow` so that `main` can exit with the child's own
/// code: CI and scripts then see exactly what `cargo test` & co. returned.
#[derive(Debug)]
pub struct Failed {
    /// What was being done, e.g. "step `clippy` (cargo clippy ...)".
    pub what: String,
    /// The exit code to hand on (128 + signal number if killed by a signal).
    pub code: u8,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed with exit code {}", self.what, self.code)
    }
}

impl std::error::Error for Failed {}

/// Maps an exit status to the code a shell would report, so nothing is lost.
fn exit_code(status: ExitStatus) -> u8 {
    match (status.code(), status.signal()) {
        // Codes outside 1..=255 cannot come from a Unix process; clamp anyway.
        (Some(code), _) => u8::try_from(code).unwrap_or(1).max(1),
        (None, Some(signal)) => u8::try_from(128 + signal).unwrap_or(255),
        (None, None) => 1,
    }
}

/// Renders a command line for messages, e.g. `cargo fmt --all -- --check`.
pub fn display(cmd: &Command) -> String {
    let mut words = vec![cmd.get_program().to_string_lossy().into_owned()];
    words.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    words.join(" ")
}

/// Runs `cmd` with the terminal's stdin/stdout/stderr, so its output reaches
/// the user (and CI's log parser) byte for byte.
///
/// `what` names the action in the error if the command fails.
pub fn run(what: &str, cmd: &mut Command) -> Result<()> {
    // Our own header lines are buffered; flush them so they come before the
    // child's output and not after it.
    io::stdout().flush().ok();
    let status = cmd
        .status()
        .with_context(|| format!("{what}: could not start `{}`", display(cmd)))?;
    succeeded(what, cmd, status)
}

/// Turns a finished child's status into `Ok` or a [`Failed`] error.
fn succeeded(what: &str, cmd: &Command, status: ExitStatus) -> Result<()> {
    if status.success() {
        Ok(())
    } else {
        Err(Failed {
            what: format!("{what} (`{}`)", display(cmd)),
            code: exit_code(status),
        }
        .into())
    }
}

/// Tests counted from cargo test's `test result:` lines.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Tests ignored (skipped).
    pub ignored: u64,
}

impl Tally {
    /// Adds the counts of one `test result: ok. 3 passed; 0 failed; 1 ignored; ...` line.
    pub fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(what), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// Like [`run`], but reads the child's stdout line by line — echoing every
/// line unchanged — to tally cargo test's results.
pub fn run_tallying(what: &str, cmd: &mut Command, tally: &mut Tally) -> Result<()> {
    use std::io::BufRead;
    io::stdout().flush().ok();
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("{what}: could not start `{}`", display(cmd)))?;
    let stdout = child.stdout.take().context("child stdout")?;
    let mut out = io::stdout().lock();
    for line in io::BufReader::new(stdout).lines() {
        let line = line.context("reading the child's output")?;
        tally.add_line(&line);
        writeln!(out, "{line}").ok();
        out.flush().ok();
    }
    drop(out);
    let status = child.wait().context("waiting for the child")?;
    succeeded(what, cmd, status)
}

/// Runs `cmd` quietly and returns its stdout if it exited successfully.
///
/// `None` means "not usable": the program is absent, failed, or printed
/// something that is not UTF-8. Checks use this to decide whether to install.
pub fn stdout_of(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if out.status.success() {
        String::from_utf8(out.stdout).ok()
    } else {
        None
    }
}

/// `$CARGO_HOME/bin`, or `~/.cargo/bin`: where `cargo install` puts binaries.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    match std::env::var_os("CARGO_HOME") {
        Some(home) if !home.is_empty() => Some(PathBuf::from(home).join("bin")),
        _ => std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo/bin")),
    }
}

/// `PATH` with the cargo bin dir in front if it was missing.
///
/// The eBPF build finds `bpf-linker` through `PATH`; a CI shell that did not
/// source `~/.cargo/env` would otherwise miss the copy `setup` installed.
pub fn path_with_cargo_bin() -> OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(bin) = cargo_bin_dir() else {
        return path;
    };
    if std::env::split_paths(&path).any(|p| p == bin) {
        return path;
    }
    std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path))).unwrap_or(path)
}

/// The workspace root: the parent of this crate's manifest directory.
///
/// Taken from the compile-time path so that `cargo xtask` works from any
/// subdirectory; every command below runs there.
pub fn workspace_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one level below the workspace root")
}

/// Cargo's target directory for the workspace at `root`
/// (`$CARGO_TARGET_DIR` when set).
pub fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Builds the binaries `bins` of `package` with `--release`; `what` names
/// the step in an error.
pub fn build_release_bins(what: &str, package: &str, bins: &[&str]) -> Result<()> {
    let mut build = cargo(["build", "--release", "-p", package]);
    for bin in bins {
        build.args(["--bin", bin]);
    }
    run(what, &mut build)
}

/// Runs `cmd`, a program that reports on stdout and says its progress on
/// stderr (inherited); returns the report. `name` names the program in
/// errors.
pub fn report_of(name: &str, cmd: &mut Command) -> Result<Vec<u8>> {
    println!("==> {}", display(cmd));
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("running {name}"))?;
    if !out.status.success() {
        return Err(anyhow!("{name} failed ({})", out.status));
    }
    Ok(out.stdout)
}

/// A `cargo` command in the workspace root with the `PATH` fix above.
///
/// Uses `$CARGO` (set by `cargo run`) so the same toolchain that built xtask
/// also runs the chores, even when several are installed.
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let program = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(workspace_root())
        .env("PATH", path_with_cargo_bin());
    cmd
}

#[cfg(test)]
mod tally_tests {
    use super::Tally;

    #[test]
    fn tally_adds_cargo_test_result_lines() {
        let mut t = Tally::default();
        t.add_line("test result: ok. 13 passed; 0 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.00s");
        t.add_line(
            "test result: FAILED. 1 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        t.add_line("running 3 tests");
        assert_eq!(
            t,
            Tally {
                passed: 14,
                failed: 3,
                ignored: 2
            }
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_child_hands_on_its_exit_code() {
        let err = run("step `false`", &mut Command::new("false")).unwrap_err();
        let failed = err.downcast_ref::<Failed>().expect("a Failed error");
        assert_eq!(failed.code, 1);
        assert!(failed.to_string().starts_with("step `false` (`false`)"));
    }

    #[test]
    fn succeeding_child_is_ok() {
        run("step `true`", &mut Command::new("true")).unwrap();
    }

    #[test]
    fn missing_program_is_not_usable() {
        assert_eq!(
            stdout_of(&mut Command::new("/nonexistent/xtask-probe")),
            None
        );
    }
}
