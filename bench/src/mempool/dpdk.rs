//! DPDK's side: Debian's `dpdk-test` running `mempool_perf_autotest` as a
//! child, its result lines parsed as they arrive.
//!
//! The test's order is fixed (DPDK 22.11, `app/test/test_mempool_perf.c`):
//! four pools — without cache, the default mempool ops without cache, with
//! a cache of 512, with a user-owned cache — each run on 1, 2 and "all"
//! cores (2 again here), each of those over get bulk × put bulk ∈
//! {1, 4, 8, 32}² × n_keep ∈ {32, 128, 512}, equal bulks replayed with
//! compile-time sizes: 720 cases of 5 s, about an hour, the cached ones
//! starting ~30 min in. To reach them within minutes the child is run with
//! a small preloaded library (`dpdk_clock.c`) that divides the TSC rate
//! the test reads, so that each case lasts `seconds` instead of 5 s; the
//! reported rates are scaled back. The test's loop and DPDK's mempool code
//! are untouched. The run stops (kill, reap, remove its runtime directory)
//! once every requested case has been printed, or when the budget runs out.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use serde::Serialize;

use super::Case;

/// The preloaded clock divider; see the module docs.
const CLOCK_SHIM: &str = include_str!("dpdk_clock.c");
/// DPDK's `TIME_S`: seconds its test measures each case for.
pub const DPDK_TIME_S: f64 = 5.0;

/// Which pool of the test a line belongs to, from the `start performance
/// test ...` line before it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Before any phase line.
    Unknown,
    /// `(without cache)`: `rte_mempool_create` with cache size 0.
    NoCache,
    /// `for OPS (without cache)`: the default mempool ops, no cache.
    DefaultOps(String),
    /// `(with cache)`: cache size 512 (`RTE_MEMPOOL_CACHE_MAX_SIZE`).
    Cache,
    /// `(with user-owned cache)`: the cache-less pool through a cache the
    /// test creates itself.
    UserCache,
}

/// One parsed result line of `mempool_perf_autotest`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    /// The pool it measured.
    pub phase: Phase,
    /// `cache=`: per-lcore cache size.
    pub cache_size: u32,
    /// `cores=`.
    pub cores: u32,
    /// `n_get_bulk=`.
    pub get: u32,
    /// `n_put_bulk=`.
    pub put: u32,
    /// `n_keep=`.
    pub keep: u32,
    /// `constant_n=1`: bulk sizes were compile-time constants.
    pub constant: bool,
    /// `rate_persec=` as printed.
    pub rate_printed: u64,
    /// Objects per second: the printed rate times the clock divisor.
    pub rate: f64,
}

impl Line {
    /// The case of our matrix this line measured: the cache-less pool is
    /// cache off, the pool with a cache of 512 is cache on; the other two
    /// pools have no counterpart.
    pub fn case(&self) -> Option<Case> {
        let cache = match self.phase {
            Phase::NoCache => false,
            Phase::Cache => true,
            _ => return None,
        };
        Some(Case {
            cache,
            cores: self.cores,
            get: self.get,
            put: self.put,
            keep: self.keep,
        })
    }
}

/// Reads `mempool_perf_autotest` output a line at a time.
#[derive(Debug)]
pub struct Parser {
    phase: Phase,
    divisor: f64,
}

impl Parser {
    /// A parser for a run whose clock was divided by `divisor` (1 for an
    /// unmodified run).
    pub fn new(divisor: f64) -> Self {
        Parser {
            phase: Phase::Unknown,
            divisor,
        }
    }

    /// Takes one line of output; returns the result it carries, if any.
    /// Phase lines update the parser; anything else is ignored.
    pub fn feed(&mut self, line: &str) -> Result<Option<Line>> {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("start performance test") {
            self.phase = if rest.contains("user-owned cache") {
                Phase::UserCache
            } else if let Some(ops) = rest.trim().strip_prefix("for ") {
                Phase::DefaultOps(ops.split_whitespace().next().unwrap_or("").to_owned())
            } else if rest.contains("(with cache)") {
                Phase::Cache
            } else if rest.contains("(without cache)") {
                Phase::NoCache
            } else {
                bail!("unknown phase line `{line}`");
            };
            return Ok(None);
        }
        if !line.starts_with("mempool_autotest ") || !line.contains("rate_persec=") {
            return Ok(None);
        }
        let value = |key: &str| -> Result<u64> {
            let v = line
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                .ok_or_else(|| anyhow!("no `{key}=` in `{line}`"))?;
            v.parse()
                .with_context(|| format!("`{key}={v}` in `{line}` is not a number"))
        };
        let small = |key: &str| -> Result<u32> {
            u32::try_from(value(key)?).with_context(|| format!("`{key}` out of range in `{line}`"))
        };
        let rate_printed = value("rate_persec")?;
        Ok(Some(Line {
            phase: self.phase.clone(),
            cache_size: small("cache")?,
            cores: small("cores")?,
            get: small("n_get_bulk")?,
            put: small("n_put_bulk")?,
            keep: small("n_keep")?,
            constant: value("constant_n")? != 0,
            rate_printed,
            rate: rate_printed as f64 * self.divisor,
        }))
    }
}

/// How to run `dpdk-test`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The binary.
    pub binary: PathBuf,
    /// Lcores (`-l`), main lcore first.
    pub lcores: Vec<usize>,
    /// Seconds of real time per case (DPDK's own is 5).
    pub seconds: f64,
    /// Give up after this long.
    pub budget: Duration,
    /// Print the child's output as it arrives (to stderr).
    pub echo: bool,
}

/// What a run saw.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// The command line.
    pub command: String,
    /// How the clock was divided (1: unmodified).
    pub clock_divisor: f64,
    /// Every result line, in order.
    pub lines: Vec<Line>,
    /// Requested cases it did not reach.
    pub missing: Vec<String>,
    /// Wall time of the run, seconds.
    pub elapsed: f64,
    /// Why it stopped.
    pub stopped: String,
}

/// `dpdk-test` on `PATH`, or why not.
pub fn find_binary() -> std::result::Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("dpdk-test"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            "dpdk-test is not on PATH (Debian's `dpdk-dev` package; `cargo xtask setup` \
             installs it where it can)"
                .to_owned()
        })
}

/// DPDK's runtime directory for a file prefix: `/var/run/dpdk/PREFIX` for
/// root, else under `$XDG_RUNTIME_DIR` or `/tmp`.
fn runtime_dir(prefix: &str) -> PathBuf {
    let base = if rustix::process::geteuid().is_root() {
        PathBuf::from("/var/run")
    } else {
        std::env::var_os("XDG_RUNTIME_DIR").map_or_else(|| PathBuf::from("/tmp"), PathBuf::from)
    };
    base.join("dpdk").join(prefix)
}

/// Builds the clock shim in `dir` with the system C compiler.
fn build_shim(dir: &Path) -> Result<PathBuf> {
    let src = dir.join("dpdk_clock.c");
    let so = dir.join("dpdk_clock.so");
    std::fs::write(&src, CLOCK_SHIM).with_context(|| format!("writing {}", src.display()))?;
    let out = Command::new("cc")
        .args(["-O2", "-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .arg("-ldl")
        .output()
        .context("running cc to build the dpdk-test clock shim")?;
    ensure!(
        out.status.success(),
        "cc failed building the clock shim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(so)
}

/// The child and what must be undone when it stops.
struct Guard {
    child: Child,
    runtime: PathBuf,
    scratch: PathBuf,
}

impl Drop for Guard {
    fn drop(&mut self) {
        // Killing an already-exited child fails harmlessly; reaping it is
        // what matters.
        let _ = self.child.kill();
        let _ = self.child.wait();
        // DPDK leaves its multi-process socket and config files behind when
        // killed; nothing else uses this unique prefix.
        let _ = std::fs::remove_dir_all(&self.runtime);
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

/// Forwards a pipe's lines into `tx` until it closes.
fn forward(pipe: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}

/// Runs `dpdk-test`'s `mempool_perf_autotest` until every case in `want`
/// has been printed (the first occurrence of each; `constant_n=0`) or the
/// budget runs out.
pub fn run(s: &Settings, want: &[Case]) -> Result<Run> {
    ensure!(
        s.seconds > 0.0 && s.seconds <= DPDK_TIME_S,
        "DPDK's case time must be in (0, {DPDK_TIME_S}] s"
    );
    ensure!(!s.lcores.is_empty(), "no lcores for dpdk-test");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("skmem-mempool-{}-{stamp}", std::process::id());
    let scratch = std::env::temp_dir().join(&prefix);
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let divisor = DPDK_TIME_S / s.seconds;
    let shim = clock_shim(&scratch, divisor)?;
    let (mut cmd, command) = dpdk_command(s, &prefix, shim.as_deref(), divisor);
    let t0 = Instant::now();
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting `{command}`"))?;
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().context("dpdk-test stdout")?;
    let stderr = child.stderr.take().context("dpdk-test stderr")?;
    let mut guard = Guard {
        child,
        runtime: runtime_dir(&prefix),
        scratch,
    };
    forward(stdout, tx.clone());
    forward(stderr, tx);

    let mut progress = Progress {
        parser: Parser::new(divisor),
        lines: Vec::new(),
        tail: Vec::new(),
        pending: want.to_vec(),
        echo: s.echo,
        t0,
    };
    let stopped = progress.watch(&rx, &mut guard.child, s.budget, &command)?;
    drop(guard);
    Ok(Run {
        command,
        clock_divisor: divisor,
        lines: progress.lines,
        missing: progress.pending.iter().map(Case::to_string).collect(),
        elapsed: t0.elapsed().as_secs_f64(),
        stopped,
    })
}

/// The clock shim for a run whose clock is divided by `divisor`, built in
/// `scratch`; `None` when it cannot be built and the run does without it.
/// On an error `scratch` is removed.
fn clock_shim(scratch: &Path, divisor: f64) -> Result<Option<PathBuf>> {
    match build_shim(scratch) {
        Ok(so) => Ok(Some(so)),
        Err(e) if divisor == 1.0 => {
            // Unscaled, the shim is only there for line buffering, which
            // coreutils' stdbuf also gives.
            eprintln!("note: {e:#}; using stdbuf for line buffering");
            Ok(None)
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(scratch);
            Err(e.context("the clock shim is needed for cases shorter than 5 s"))
        }
    }
}

/// The `dpdk-test` command of a run (the shim preloaded, or line-buffered
/// by stdbuf without it), and its command line as the report shows it.
fn dpdk_command(
    s: &Settings,
    prefix: &str,
    shim: Option<&Path>,
    divisor: f64,
) -> (Command, String) {
    let lcores = s
        .lcores
        .iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let mut cmd = match shim {
        Some(_) => Command::new(&s.binary),
        None => {
            let mut c = Command::new("stdbuf");
            c.arg("-oL").arg(&s.binary);
            c
        }
    };
    cmd.args(["-l", &lcores, "--main-lcore", &s.lcores[0].to_string()])
        .args([
            "--no-huge",
            "-m",
            "1024",
            "--no-pci",
            "--file-prefix",
            prefix,
        ])
        .env("DPDK_TEST", "mempool_perf_autotest")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(so) = shim {
        cmd.env("LD_PRELOAD", so)
            .env("SKMEM_DPDK_TSC_DIV", divisor.to_string());
    }
    let command = format!(
        "DPDK_TEST=mempool_perf_autotest{} {}",
        if shim.is_some() {
            format!(" SKMEM_DPDK_TSC_DIV={divisor} LD_PRELOAD=dpdk_clock.so")
        } else {
            String::new()
        },
        std::iter::once(cmd.get_program())
            .chain(cmd.get_args())
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    (cmd, command)
}

/// What a run has read of the child's output, and the requested cases
/// it still waits for.
struct Progress {
    parser: Parser,
    /// Every result line, in order.
    lines: Vec<Line>,
    /// The last lines of output: what the child said before it exited
    /// without a result.
    tail: Vec<String>,
    pending: Vec<Case>,
    /// The child's output is echoed: no progress lines of our own.
    echo: bool,
    t0: Instant,
}

impl Progress {
    /// Reads the child's lines from `rx` until every requested case was
    /// printed, `budget` (from the start) runs out or the child exits;
    /// returns why it stopped.
    fn watch(
        &mut self,
        rx: &mpsc::Receiver<String>,
        child: &mut Child,
        budget: Duration,
        command: &str,
    ) -> Result<String> {
        let deadline = self.t0 + budget;
        loop {
            if self.pending.is_empty() {
                return Ok("every requested case was printed".to_owned());
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(format!("budget of {:.0} s ran out", budget.as_secs_f64()));
            }
            match rx.recv_timeout(left) {
                Ok(text) => self.take(text)?,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Both pipes closed: the child is gone.
                    let status = child.wait().context("reaping dpdk-test")?;
                    if self.lines.is_empty() {
                        bail!(
                            "`{command}` exited ({status}) without a result line; its last output:\n{}",
                            self.tail.join("\n")
                        );
                    }
                    return Ok(format!("dpdk-test exited ({status})"));
                }
            }
        }
    }

    /// Takes one line of output: keeps it in the tail, parses it, and
    /// reports progress.
    fn take(&mut self, text: String) -> Result<()> {
        if self.echo {
            eprintln!("dpdk| {text}");
        }
        self.tail.push(text.clone());
        if self.tail.len() > 20 {
            self.tail.remove(0);
        }
        let before = self.parser.phase.clone();
        if let Some(line) = self.parser.feed(&text)? {
            self.tick_off(&line);
            self.lines.push(line);
        } else if self.parser.phase != before && !self.echo {
            // Progress through the fixed order, so a long wait is
            // visibly the phases we do not use.
            eprintln!(
                "dpdk-test [{:.0} s] {text}",
                self.t0.elapsed().as_secs_f64()
            );
        }
        Ok(())
    }

    /// Crosses off the requested case `line` measured, if it is one
    /// (bulk sizes not compile-time constants).
    fn tick_off(&mut self, line: &Line) {
        if line.constant {
            return;
        }
        if let Some(c) = line.case().filter(|c| self.pending.contains(c)) {
            self.pending.retain(|&p| p != c);
            if !self.echo {
                eprintln!(
                    "dpdk-test [{:.0} s] {c}: {:.1} M objects/s ({} to go)",
                    self.t0.elapsed().as_secs_f64(),
                    line.rate / 1e6,
                    self.pending.len()
                );
            }
        }
    }
}
