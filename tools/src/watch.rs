//! `skmemctl watch`: every arena event on the host (or of one process),
//! live, from the eBPF probes.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use skmem_xdp::observe::{ObserveTarget, Observer};

/// `skmemctl watch` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Output: one line per event (UTC time, pid, arena#id, event, details):
  05:41:02.118734 pid=4242    skmem.nexus.veth0q0#1            create        state=ACTIVE maps=0
  05:41:02.119021 pid=4242    skmem.nexus.veth0q0#1            map           span=0x7f3a1c000000+9.1MiB state=ACTIVE maps=1

Processes are found by scanning /proc/*/exe every second for binaries that
define skmem_hook_arena_create (uprobes then fire for every process running
them); --binary attaches to a binary before any process runs it, so nothing
is missed. While it runs, `skmemctl stats` (root) lists the live arenas.

The munmap probe (a syscall tracepoint) makes every syscall on the host take
the kernel's traced path while watch runs: about 100 ns more each on the
project's machine. --no-munmap leaves it out, and with it the munmap events.

Examples:
  skmemctl watch
  skmemctl watch --pid 4242 --json
  skmemctl watch --no-munmap
  skmemctl watch --binary ./target/release/myapp --duration 30"
)]
pub struct WatchArgs {
    /// Only this process (its binary, uprobes scoped to it).
    #[arg(long)]
    pub pid: Option<i32>,
    /// Attach to this binary (or shared library) too; repeatable.
    #[arg(long = "binary")]
    pub binaries: Vec<PathBuf>,
    /// Do not scan /proc for binaries with skmem's hooks (only --binary/--pid).
    #[arg(long)]
    pub no_scan: bool,
    /// Leave out the munmap probe: no `munmap` events (an unmap behind the
    /// library's back goes unseen), and syscalls no longer pay for syscall
    /// tracing while watch runs (every syscall of every process does
    /// otherwise).
    #[arg(long)]
    pub no_munmap: bool,
    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
    /// Stop after this many seconds (default: until Ctrl-C).
    #[arg(long, value_parser = crate::check::seconds_f64)]
    pub duration: Option<f64>,
}

pub fn run(args: WatchArgs, stop: &AtomicBool) -> Result<()> {
    crate::stale::remove("watch");
    let target = ObserveTarget {
        pid: args.pid,
        binaries: args.binaries.clone(),
        scan: Some(!args.no_scan && args.pid.is_none()),
        skip_munmap: args.no_munmap,
    };
    let mut obs = Observer::attach(target).context("attaching the probes")?;
    let deadline = args
        .duration
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut out = std::io::stdout().lock();
    if !args.json {
        let bins: Vec<String> = obs
            .binaries()
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        eprintln!(
            "watching {} (binaries: {}){}; Ctrl-C to stop",
            args.pid
                .map_or("every process".to_owned(), |p| format!("pid {p}")),
            if bins.is_empty() {
                "none yet, rescanning every second".to_owned()
            } else {
                bins.join(", ")
            },
            if args.no_munmap {
                ", no munmap probe"
            } else {
                ""
            }
        );
    }
    while !stop.load(Ordering::Relaxed) {
        let mut wait = Duration::from_millis(200);
        if let Some(d) = deadline {
            let now = Instant::now();
            if now >= d {
                break;
            }
            wait = wait.min(d - now);
        }
        for ev in obs.next_events(wait)? {
            let line = if args.json {
                crate::output::record("event", &ev)?
            } else {
                ev.line()
            };
            // A closed pipe (`| head`) ends the watch quietly.
            if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                return Ok(());
            }
        }
    }
    let c = obs.counters()?;
    if c.ring_full + c.read_failed + c.table_full != 0 {
        eprintln!(
            "skmemctl watch: lost events: {} (ring full), {} (unreadable payload), {} (tables full)",
            c.ring_full, c.read_failed, c.table_full
        );
    }
    Ok(())
}
