//! `skmemctl stats`: every live arena on the host, from the live-arena maps
//! the running observers (`skmemctl watch`, or any `Observer`) pin under
//! /sys/fs/bpf/skmem.

use anyhow::Result;
use skmem_xdp::observe::{human_bytes, pinned_arenas, ArenaInfo, ObserveError};

/// `skmemctl stats` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Reads the live-arena maps pinned (root-only, mode 0600) by running
observers; start one first, e.g. `skmemctl watch &`. Arenas created before
the observer attached show up at their next event, marked late (*).

Examples:
  sudo skmemctl stats
  sudo skmemctl stats --json | jq '.arenas[] | select(.state == \"DEFUNCT\")'"
)]
pub struct StatsArgs {
    /// JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Exit status of `stats`: refused (non-root) is a failure, no observer is
/// not.
pub fn run(args: StatsArgs) -> Result<()> {
    let found = match pinned_arenas() {
        Ok(f) => f,
        Err(e @ ObserveError::NotRoot { .. }) => {
            anyhow::bail!("{e}: the live arena statistics are root-only, run it with sudo")
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
        return Ok(());
    }
    if found.pins.is_empty() {
        println!(
            "no skmem observer is running (nothing pinned under {}): start `skmemctl watch` \
             (as root) to track arenas",
            skmem_xdp::observe::PIN_DIR
        );
        return Ok(());
    }
    if found.arenas.is_empty() {
        println!(
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
