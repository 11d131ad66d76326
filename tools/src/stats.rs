//! `skmemctl stats`: every live arena on the host, from the live-arena maps
//! the running observers (`skmemctl watch`, or any `Observer`) pin under
//! /sys/fs/bpf/skmem.

use anyhow::Result;
use skmem_xdp::observe::{human_bytes, pinned_arenas, ArenaInfo};

/// `skmemctl stats` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads the live-arena maps pinned (root-only, mode 0600) by running
observers; start one first, e.g. `skmemctl watch &`. Arenas created before
the observer attached show up at their next event, marked late (*).

With --offer PATH it maps the arena an owner offers there instead (as a
mapper would) and shows its advisories: the owner's per-queue state and
each worker's (lent, handed back, dropped for a full ring, ring occupancy)
and the flows it is dropping (flow-controlled).

Examples:
  sudo skmemctl stats
  sudo skmemctl stats --json | jq '.arenas[] | select(.state == \"DEFUNCT\")'
  sudo skmemctl stats --offer /tmp/skmemctl-fwd-1234-q0.sock"
)]
pub struct StatsArgs {
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Show the advisories of the arena offered at this socket.
    #[arg(long, value_name = "PATH")]
    pub offer: Option<std::path::PathBuf>,
}

/// `skmemctl stats --offer PATH`.
fn advisories(path: &std::path::Path, json: bool) -> Result<()> {
    use anyhow::Context;
    let remote = skmem::lend::RemoteArena::connect(path)
        .with_context(|| format!("mapping the arena offered at {}", path.display()))?;
    let (nexus, flows) = skmem::workers::advisories(&remote)?;
    if json {
        let v = serde_json::json!({
            "type": "advisories",
            "arena": remote.schema().name,
            "owner_pid": remote.owner_pid(),
            "nexus": nexus,
            "flows": flows,
        });
        outln!("{v}");
        return Ok(());
    }
    outln!(
        "{} (owner pid {})",
        remote.schema().name,
        remote.owner_pid()
    );
    match nexus {
        None => outln!("  no nexus advisory (an arena without worker slots)"),
        Some(n) => {
            outln!(
                "  owner: {} received, {} sent, {} with no worker",
                n.rx_packets,
                n.tx_packets,
                n.no_worker
            );
            outln!(
                "  {:<5} {:>8} {:>12} {:>12} {:>10} {:>10} {:>8} {:>6}",
                "SLOT",
                "PID",
                "LENT",
                "BACK",
                "DROPPED",
                "RECLAIMED",
                "IN RING",
                "BAD"
            );
            for (i, w) in n.slots.iter().enumerate() {
                let pid = if w.pid == 0 {
                    "-".to_owned()
                } else {
                    w.pid.to_string()
                };
                outln!(
                    "  {:<5} {:>8} {:>12} {:>12} {:>10} {:>10} {:>8} {:>6}",
                    i,
                    pid,
                    w.lent,
                    w.back,
                    w.dropped_full,
                    w.reclaimed,
                    w.occupancy,
                    w.bad
                );
            }
        }
    }
    if flows.is_empty() {
        outln!("  no flow advisories");
    }
    for f in &flows {
        outln!(
            "  flow {:08x} -> slot {}: {} dropped{}",
            f.flow,
            f.slot,
            f.drops,
            if f.controlled { ", CONTROLLED now" } else { "" }
        );
    }
    Ok(())
}

/// Exit status of `stats`: refused (non-root) is a failure, no observer is
/// not.
pub fn run(args: StatsArgs) -> Result<()> {
    if let Some(path) = &args.offer {
        return advisories(path, args.json);
    }
    let found = pinned_arenas()?;
    if args.json {
        crate::output::json("arenas", &found)?;
        return Ok(());
    }
    if found.pins.is_empty() {
        outln!(
            "no skmem observer is running (nothing pinned under {}): start `skmemctl watch` \
             (as root) to track arenas",
            skmem_xdp::observe::PIN_DIR
        );
        return Ok(());
    }
    if found.arenas.is_empty() {
        outln!(
            "no live skmem arenas ({} observer(s) running)",
            found.pins.len()
        );
        return Ok(());
    }
    print!("{}", table(&found.arenas));
    Ok(())
}

fn table(arenas: &[ArenaInfo]) -> String {
    let mut s = format!(
        "{:<8} {:<5} {:<36} {:<7} {:<9} {:>5} {:>9} {:>19}  {}\n",
        "PID",
        "ID",
        "ARENA",
        "KIND",
        "STATE",
        "MAPS",
        "MAPSIZE",
        "MEM (INUSE/TOTAL)",
        "MAPPED PIDS"
    );
    for a in arenas {
        let pids: Vec<String> = a.mapped_pids.iter().map(u32::to_string).collect();
        s.push_str(&format!(
            "{:<8} {:<5} {:<36} {:<7} {:<9} {:>5} {:>9} {:>19}  {}\n",
            a.pid,
            format!("{}{}", a.arena_id, if a.late { "*" } else { "" }),
            a.name,
            a.kind,
            a.state,
            a.map_count,
            human_bytes(a.map_size),
            mem(a),
            if pids.is_empty() {
                "-".into()
            } else {
                pids.join(",")
            }
        ));
    }
    s
}

/// `IN_USE/TOTAL` in human units, e.g. `1.2MiB/9.1MiB`.
fn mem(a: &ArenaInfo) -> String {
    format!("{}/{}", human_bytes(a.mem_inuse), human_bytes(a.mem_total))
}
