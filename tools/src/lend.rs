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

Examples:
  skmemctl offer --path /run/skmem-demo.sock
  skmemctl offer --path /tmp/lent.sock --allow-uid 1000 --packets 1024"
)]
pub struct OfferArgs {
    /// Unix socket to serve on (made by the offer, removed when it ends).
    #[arg(long)]
    pub path: PathBuf,
    /// Packets in the arena's pool.
    #[arg(long, default_value_t = 4096)]
    pub packets: usize,
    /// Also let this uid map (root always may).
    #[arg(long = "allow-uid", value_name = "UID")]
    pub allow_uids: Vec<u32>,
    /// Seconds a mapper has to answer a redirect before it is cut off.
    #[arg(long, default_value_t = 1.0)]
    pub redirect_timeout: f64,
    /// Seconds to run (0 = until Ctrl-C or end of input).
    #[arg(long, default_value_t = 0.0)]
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
    #[arg(long, default_value_t = 0.0)]
    pub duration: f64,
}

/// A deadline `secs` from now, or none for 0.
fn deadline(secs: f64) -> Option<Instant> {
    (secs > 0.0).then(|| Instant::now() + Duration::from_secs_f64(secs))
}

/// `skmemctl offer`.
pub fn run_offer(args: OfferArgs, stop: &'static AtomicBool) -> Result<()> {
    if !(0.01..=3600.0).contains(&args.redirect_timeout) {
        bail!("--redirect-timeout: give 0.01 to 3600 seconds");
    }
    let mut np = NexusParams::new("offer");
    np.pool.packets = args.packets;
    let arena = Arena::create_nexus(&np).context("creating the arena")?;
    let mut policy =
        OfferPolicy::root_only().redirect_timeout(Duration::from_secs_f64(args.redirect_timeout));
    for &uid in &args.allow_uids {
        policy = policy.allow_uid(uid);
    }
    let offer = ArenaOffer::serve(&arena, &args.path, policy)
        .with_context(|| format!("offering the arena at {}", args.path.display()))?;
    println!(
        "offering {} ({:.1} MiB span, {} regions) at {}",
        arena.name(),
        arena.span_size() as f64 / f64::from(1 << 20),
        arena.region_ids().len(),
        args.path.display()
    );
    println!("commands: redirect PID | redirect all | defunct | mappers (Ctrl-C to stop)");
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
    println!(
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
            None => println!(
                "mapper {} (uid {}) mapped its span at {:#x}; mapped pids now {:?}",
                m.pid,
                m.uid,
                m.span_addr,
                arena.mapped_pids()
            ),
            Some(b) if m.redirected && !b.redirected => {
                println!("mapper {} redirected; arena {}", m.pid, state(arena))
            }
            _ => {}
        }
    }
    for b in before {
        if !now.iter().any(|m| m.pid == b.pid) {
            println!(
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
                println!(
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
                println!("redirect: no such mapper ({who})");
            }
            for pid in pids {
                // A success shows as the mapper's change, below.
                if let Err(e) = offer.redirect(pid) {
                    println!("redirect {pid}: {e}");
                }
            }
        }
        ["defunct"] => match arena.defunct() {
            Ok(()) => println!(
                "defunct: the owner let go; it holds {} (the schema)",
                human(arena.mem_total())
            ),
            Err(e) => println!("defunct: {e}"),
        },
        _ => println!("commands: redirect PID | redirect all | defunct | mappers"),
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

/// `skmemctl map`.
pub fn run_map(args: MapArgs, stop: &'static AtomicBool) -> Result<()> {
    let remote = RemoteArena::connect(&args.path)
        .with_context(|| format!("mapping the arena offered at {}", args.path.display()))?;
    let s = remote.schema();
    println!(
        "mapped {}, arena {} of pid {}",
        s.name,
        remote.arena_id(),
        remote.owner_pid()
    );
    println!(
        "span {:#x}+{}, schema version {}",
        remote.addr() as usize,
        human(remote.size()),
        skmem::schema::SCHEMA_VERSION
    );
    println!(
        "  {:<12} {:>10} {:>10}  {:<10}",
        "REGION", "OFFSET", "BYTES", "ACCESS"
    );
    for r in &s.regions {
        let access = if r.flags.contains(RegionFlags::GUARD) {
            "none"
        } else if r.flags.contains(RegionFlags::UREADONLY) {
            "read"
        } else {
            "read-write"
        };
        println!(
            "  {:<12} {:>#10x} {:>10}  {access}",
            r.id.to_string(),
            r.offset,
            r.size
        );
    }
    let _ = std::io::stdout().flush();
    let end = deadline(args.duration);
    let mut told = false;
    while !stop.load(Ordering::Relaxed) && end.is_none_or(|d| Instant::now() < d) {
        if remote.wait_redirected(Duration::from_millis(200)) && !told {
            told = true;
            let mut word = [0u8; 8];
            let refused = remote.read(skmem::region::RegionId::BufDef, 0, &mut word);
            println!("redirected by the owner: the buffers read as zeros");
            if let Err(e) = refused {
                println!("  a read now fails (errno {})", e.errno());
            }
            if let Ok(schema) = remote.current_schema() {
                println!("  the schema still reads: {}", schema.name);
            }
            println!("(the span stays mapped until Ctrl-C: the pages go with it)");
        }
        if remote.owner_gone() {
            println!("the owner stopped lending; the span stays mapped until this process ends");
            return Ok(());
        }
    }
    Ok(())
}
