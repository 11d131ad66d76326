//! `skmemctl offer` and `skmemctl map`: an owner that lends a nexus arena
//! on a Unix socket, and a mapper that maps it from another process — the
//! two halves of [`skmem::lend`], to run in two terminals.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use skmem::arena::{Arena, NexusParams};
use skmem::lend::{ArenaOffer, MapperInfo, OfferPolicy, RemoteArena};
use skmem::region::RegionFlags;

/// `skmemctl offer` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Lends a nexus arena to mapper processes until Ctrl-C. Type commands on
stdin: `redirect PID` (or `redirect all`) asks a mapper to redirect its
span to zero pages; `defunct` gives the memory back once every mapping is
redirected; `mappers` lists who maps it.

The tunables (--sysctl NAME=VALUE) are the process's sysctls: they set the
arena's defaults and every mapper reads them, read-only. Names:
ring_entries umem_ring_entries batch need_wakeup busy_poll_us
busy_poll_budget packets buf_size slot_descs max_flows guard_pages
max_mappers redirect_timeout_ms ready_timeout_ms

Examples:
  skmemctl offer --path /run/skmem-demo.sock
  skmemctl offer --path /tmp/lent.sock --allow-uid 1000 --packets 1024
  skmemctl offer --path /tmp/lent.sock --sysctl batch=32 --sysctl max_mappers=2"
)]
pub struct OfferArgs {
    /// Unix socket to serve on (made by the offer, removed when it ends).
    #[arg(long)]
    pub path: PathBuf,
    /// Packets in the arena's pool (default: the `packets` sysctl).
    #[arg(long, value_parser = crate::check::packets)]
    pub packets: Option<usize>,
    /// Also let this uid map (root always may).
    #[arg(long = "allow-uid", value_name = "UID")]
    pub allow_uids: Vec<u32>,
    /// Seconds a mapper has to answer a redirect before it is cut off
    /// (default: the `redirect_timeout_ms` sysctl).
    #[arg(long, value_parser = crate::check::seconds_f64)]
    pub redirect_timeout: Option<f64>,
    /// Set a tunable before the arena is made (repeatable).
    #[arg(long = "sysctl", value_name = "NAME=VALUE")]
    pub sysctls: Vec<String>,
    /// Seconds to run (0 = until Ctrl-C or end of input).
    #[arg(long, default_value_t = 0.0, value_parser = crate::check::seconds_f64)]
    pub duration: f64,
}

/// `skmemctl map` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Maps an arena another process offers (skmemctl offer), prints what it
sees, and waits until the owner redirects it, says goodbye, or Ctrl-C.

Examples:
  skmemctl map --path /run/skmem-demo.sock"
)]
pub struct MapArgs {
    /// The owner's Unix socket.
    #[arg(long)]
    pub path: PathBuf,
    /// Seconds to wait (0 = until the owner redirects or goes, or Ctrl-C).
    #[arg(long, default_value_t = 0.0, value_parser = crate::check::seconds_f64)]
    pub duration: f64,
}

/// A deadline `secs` from now, or none for 0.
fn deadline(secs: f64) -> Option<Instant> {
    (secs > 0.0).then(|| Instant::now() + Duration::from_secs_f64(secs))
}

/// `skmemctl offer`.
pub fn run_offer(args: OfferArgs, stop: &'static AtomicBool) -> Result<()> {
    if args
        .redirect_timeout
        .is_some_and(|t| !(0.01..=3600.0).contains(&t))
    {
        bail!("--redirect-timeout: give 0.01 to 3600 seconds");
    }
    if !args.sysctls.is_empty() {
        let mut tuned = skmem::sysctls::current();
        for a in &args.sysctls {
            tuned.set_from_str(a).context("--sysctl")?;
        }
        skmem::sysctls::tune(|s| *s = tuned).context("--sysctl")?;
    }
    let mut np = NexusParams::new("offer");
    if let Some(packets) = args.packets {
        np.pool.packets = packets;
    }
    let arena = Arena::create_nexus(&np).context("creating the arena")?;
    let mut policy = OfferPolicy::root_only();
    if let Some(t) = args.redirect_timeout {
        policy = policy.redirect_timeout(Duration::from_secs_f64(t));
    }
    for &uid in &args.allow_uids {
        policy = policy.allow_uid(uid);
    }
    let offer = ArenaOffer::serve(&arena, &args.path, policy)
        .with_context(|| format!("offering the arena at {}", args.path.display()))?;
    outln!(
        "offering {} ({:.1} MiB span, {} regions) at {}",
        arena.name(),
        arena.span_size() as f64 / f64::from(1 << 20),
        arena.region_ids().len(),
        args.path.display()
    );
    print_sysctls(&skmem::sysctls::current());
    outln!("commands: redirect PID | redirect all | defunct | mappers (Ctrl-C to stop)");
    let lines = stdin_lines();
    let end = deadline(args.duration);
    let mut last: Vec<MapperInfo> = Vec::new();
    let mut input_open = true;
    while !stop.load(Ordering::Relaxed) && end.is_none_or(|d| Instant::now() < d) {
        offer.wait_until(Duration::from_millis(200), |m, _| m != last.as_slice());
        let now = offer.mappers();
        report_changes(&last, &now, &arena);
        last = now;
        match lines.try_recv() {
            Ok(line) => command(&line, &offer, &arena),
            Err(mpsc::TryRecvError::Disconnected) if input_open => {
                // End of input: keep serving until Ctrl-C or --duration.
                input_open = false;
            }
            Err(_) => {}
        }
    }
    let c = offer.counters();
    outln!(
        "offer ends: {} mapped, {} refused, {} gone, {} cut off; arena {}",
        c.accepted,
        c.refused,
        c.gone,
        c.cut_off,
        state(&arena)
    );
    Ok(())
}

fn state(arena: &Arena) -> &'static str {
    if arena.is_defunct() {
        "DEFUNCT"
    } else if arena.is_active() {
        "ACTIVE"
    } else {
        "INACTIVE"
    }
}

/// Lines typed on stdin, from a thread (the loop must not block on them).
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(|l| l.ok()) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn report_changes(before: &[MapperInfo], now: &[MapperInfo], arena: &Arena) {
    for m in now {
        match before.iter().find(|b| b.pid == m.pid) {
            None => outln!(
                "mapper {} (uid {}) mapped its span at {:#x}; mapped pids now {:?}",
                m.pid,
                m.uid,
                m.span_addr,
                arena.mapped_pids()
            ),
            Some(b) if m.redirected && !b.redirected => {
                outln!("mapper {} redirected; arena {}", m.pid, state(arena))
            }
            _ => {}
        }
    }
    for b in before {
        if !now.iter().any(|m| m.pid == b.pid) {
            outln!(
                "mapper {} gone; mapped pids now {:?}; arena {}",
                b.pid,
                arena.mapped_pids(),
                state(arena)
            );
        }
    }
}

fn command(line: &str, offer: &ArenaOffer, arena: &Arena) {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [] => {}
        ["mappers"] => {
            for m in offer.mappers() {
                outln!(
                    "  pid {} uid {} span {:#x}{}",
                    m.pid,
                    m.uid,
                    m.span_addr,
                    if m.redirected { " (redirected)" } else { "" }
                );
            }
        }
        ["redirect", who] => {
            let pids: Vec<u32> = match *who {
                "all" => offer.mappers().iter().map(|m| m.pid).collect(),
                pid => pid.parse().into_iter().collect(),
            };
            if pids.is_empty() {
                outln!("redirect: no such mapper ({who})");
            }
            for pid in pids {
                // A success shows as the mapper's change, below.
                if let Err(e) = offer.redirect(pid) {
                    outln!("redirect {pid}: {e}");
                }
            }
        }
        ["defunct"] => match arena.defunct() {
            Ok(()) => outln!(
                "defunct: the owner let go; it holds {} (the schema)",
                human(arena.mem_total())
            ),
            Err(e) => outln!("defunct: {e}"),
        },
        _ => outln!("commands: redirect PID | redirect all | defunct | mappers"),
    }
    let _ = std::io::stdout().flush();
}

fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
    } else {
        format!("{:.1} KiB", bytes as f64 / 1024.0)
    }
}

/// Prints the tunables, as many `name=value` as fit an 80-column line.
fn print_sysctls(s: &skmem::sysctls::Sysctls) {
    let mut line = String::from("sysctls:");
    for (name, value) in s.entries() {
        let item = format!(" {name}={value}");
        if line.len() + item.len() > 78 {
            outln!("{line}");
            line = String::from("        ");
        }
        line.push_str(&item);
    }
    outln!("{line}");
}

/// `skmemctl map`.
pub fn run_map(args: MapArgs, stop: &'static AtomicBool) -> Result<()> {
    let remote = RemoteArena::connect(&args.path)
        .with_context(|| format!("mapping the arena offered at {}", args.path.display()))?;
    let s = remote.schema();
    outln!(
        "mapped {}, arena {} of pid {}",
        s.name,
        remote.arena_id(),
        remote.owner_pid()
    );
    outln!(
        "span {:#x}+{}, schema version {}",
        remote.addr() as usize,
        human(remote.size()),
        skmem::schema::SCHEMA_VERSION
    );
    outln!(
        "  {:<12} {:>10} {:>10}  {:<10}",
        "REGION",
        "OFFSET",
        "BYTES",
        "ACCESS"
    );
    for r in &s.regions {
        let access = if r.flags.contains(RegionFlags::GUARD) {
            "none"
        } else if r.flags.contains(RegionFlags::UREADONLY) {
            "read"
        } else {
            "read-write"
        };
        outln!(
            "  {:<12} {:>#10x} {:>10}  {access}",
            r.id.to_string(),
            r.offset,
            r.size
        );
    }
    print_sysctls(&remote.sysctls().context("reading the owner's sysctls")?);
    let _ = std::io::stdout().flush();
    let end = deadline(args.duration);
    let mut told = false;
    while !stop.load(Ordering::Relaxed) && end.is_none_or(|d| Instant::now() < d) {
        if remote.wait_redirected(Duration::from_millis(200)) && !told {
            told = true;
            let mut word = [0u8; 8];
            let refused = remote.read(skmem::region::RegionId::BufDef, 0, &mut word);
            outln!("redirected by the owner: the buffers read as zeros");
            if let Err(e) = refused {
                outln!("  a read now fails (errno {})", e.errno());
            }
            if let Ok(schema) = remote.current_schema() {
                outln!("  the schema still reads: {}", schema.name);
            }
            outln!("(the span stays mapped until Ctrl-C: the pages go with it)");
        }
        if remote.owner_gone() {
            outln!("the owner stopped lending; the span stays mapped until this process ends");
            return Ok(());
        }
    }
    Ok(())
}
