//! `skmemctl stats`: every skmem process's arenas, channels and caches,
//! from what each publishes ([`skmem::publish`]: no observer needed), and
//! the live-arena maps running observers (`skmemctl watch`, or any
//! `Observer`) pin under /sys/fs/bpf/skmem.

use anyhow::Result;
use skmem::inspect::{ProcessStats, Published};
use skmem_xdp::observe::{human_bytes, pinned_arenas, ArenaInfo, PinnedArenas};

/// How `stats` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Tables for a person.
    Table,
    /// One JSON record (`"type": "stats"`).
    Json,
    /// The Prometheus text format (published figures only).
    Prometheus,
}

/// `skmemctl stats` options.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Every process using skmem publishes its figures on a root-only socket in
/run/skmem (unless started with SKMEM_PUBLISH=0); stats asks each one, so
no observer is needed. Sockets of processes that died are removed, and
said so. When an eBPF observer runs (`skmemctl watch`), its view of every
arena is added; arenas created before it attached are marked late (*).

With --offer PATH it maps the arena an owner offers there instead (as a
mapper would) and shows its advisories: the owner's per-queue state and
each worker's (lent, handed back, dropped for a full ring, ring occupancy)
and the flows it is dropping (flow-controlled).

Examples:
  sudo skmemctl stats
  sudo skmemctl stats --pid 1234
  sudo skmemctl stats --json | jq '.processes[].channels[]'
  sudo skmemctl stats --format prometheus > /var/lib/node_exporter/skmem.prom
  sudo skmemctl stats --offer /tmp/skmemctl-fwd-1234-q0.sock"
)]
pub struct StatsArgs {
    /// JSON instead of tables (same as --format json).
    #[arg(long, conflicts_with = "format")]
    pub json: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only this process (its pid as this PID namespace numbers it).
    #[arg(long, value_name = "PID", conflicts_with = "offer")]
    pub pid: Option<u32>,
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

/// What `stats --json` prints: the published figures, then the
/// observer's view (its fields as before the published ones existed).
#[derive(Debug, serde::Serialize)]
struct StatsRecord<'a> {
    /// Every publishing process (filtered by `--pid`).
    processes: &'a [ProcessStats],
    /// Sockets of dead processes removed by this call.
    removed_sockets: &'a [std::path::PathBuf],
    /// Sockets that did not answer, with the reason.
    unanswered: &'a [(std::path::PathBuf, String)],
    /// The observers' pins read.
    pins: &'a [std::path::PathBuf],
    /// The observers' live arenas (filtered by `--pid`).
    arenas: &'a [ArenaInfo],
    /// Pins of dead observers removed by this call.
    removed: &'a [std::path::PathBuf],
}

/// Exit status of `stats`: refused (non-root) is a failure; no process
/// and no observer is not.
pub fn run(args: StatsArgs) -> Result<()> {
    if let Some(path) = &args.offer {
        if args.format == Format::Prometheus {
            return Err(crate::check::Usage(
                "--format prometheus: not with --offer (the advisories are a table or JSON)".into(),
            )
            .into());
        }
        return advisories(path, args.json || args.format == Format::Json);
    }
    let format = if args.json { Format::Json } else { args.format };
    let mut published = skmem::inspect::read_all()?;
    let mut observed = pinned_arenas()?;
    for gone in &published.removed {
        eprintln!(
            "skmemctl stats: removed the statistics socket a dead process left: {}",
            gone.display()
        );
    }
    for pin in &observed.removed {
        eprintln!(
            "skmemctl stats: removed the pin a dead observer left: {}",
            pin.display()
        );
    }
    for (path, why) in &published.unanswered {
        eprintln!("skmemctl stats: {} did not answer: {why}", path.display());
    }
    if let Some(pid) = args.pid {
        published.processes.retain(|p| p.pid == pid);
        observed.arenas.retain(|a| a.pid == pid);
    }
    match format {
        Format::Json => crate::output::json(
            "stats",
            &StatsRecord {
                processes: &published.processes,
                removed_sockets: &published.removed,
                unanswered: &published.unanswered,
                pins: &observed.pins,
                arenas: &observed.arenas,
                removed: &observed.removed,
            },
        ),
        Format::Prometheus => {
            for l in crate::prometheus::render(&published.processes).lines() {
                outln!("{l}");
            }
            Ok(())
        }
        Format::Table => {
            tables(&published, &observed, args.pid);
            Ok(())
        }
    }
}

fn tables(published: &Published, observed: &PinnedArenas, pid: Option<u32>) {
    let whom = pid.map_or(String::new(), |p| format!(" with pid {p}"));
    if published.processes.is_empty() {
        outln!("no skmem process{whom} is publishing statistics");
    }
    for p in &published.processes {
        process(p);
    }
    if observed.pins.is_empty() {
        return;
    }
    outln!("");
    if observed.arenas.is_empty() {
        outln!(
            "eBPF observers ({}): no live arenas{whom}",
            observed.pins.len()
        );
        return;
    }
    outln!(
        "eBPF observers ({}), every arena they saw:",
        observed.pins.len()
    );
    for l in table(&observed.arenas).lines() {
        outln!("{l}");
    }
}

/// One process's tables.
fn process(p: &ProcessStats) {
    let ns = if p.own_pid != p.pid {
        format!(", pid {} in its own PID namespace", p.own_pid)
    } else {
        String::new()
    };
    outln!("pid {} ({}){ns}", p.pid, p.comm);
    outln!(
        "  {:<28} {:<6} {:<8} {:>4} {:>8} {:>17}",
        "ARENA",
        "KIND",
        "STATE",
        "MAPS",
        "MAPSIZE",
        "MEM (INUSE/TOTAL)"
    );
    for a in &p.arenas {
        outln!(
            "  {:<28} {:<6} {:<8} {:>4} {:>8} {:>17}",
            a.name,
            a.kind,
            a.state,
            a.map_count,
            human_bytes(a.map_size as u64),
            format!(
                "{}/{}",
                human_bytes(a.mem_inuse as u64),
                human_bytes(a.mem_total as u64)
            )
        );
    }
    if !p.channels.is_empty() {
        outln!(
            "  {:<18} {:>10} {:>10} {:>8} {:>10} {:>8} {:>7}",
            "CHANNEL",
            "RX",
            "TX",
            "DROPPED",
            "FILL-EMPTY",
            "INVALID",
            "BAD"
        );
    }
    for c in &p.channels {
        let k = c.xdp.unwrap_or_default();
        let name = format!(
            "{}:{} {}",
            c.ifname,
            c.queue,
            if c.zero_copy { "zc" } else { "copy" }
        );
        outln!(
            "  {:<18} {:>10} {:>10} {:>8} {:>10} {:>8} {:>7}",
            name,
            c.counters.rx_packets,
            c.counters.tx_packets,
            k.rx_dropped + k.rx_ring_full,
            k.rx_fill_ring_empty_descs,
            format!("{}/{}", k.rx_invalid_descs, k.tx_invalid_descs),
            c.counters.bad_descs + c.counters.tx_refused
        );
    }
    if !p.caches.is_empty() {
        outln!(
            "  {:<34} {:>9} {:>9} {:>9} {:>11}",
            "CACHE",
            "IN USE",
            "IN MAGS",
            "FREE",
            "DEPOT F/E"
        );
    }
    for c in &p.caches {
        outln!(
            "  {:<34} {:>9} {:>9} {:>9} {:>11}",
            c.name,
            c.obj_in_use,
            c.obj_in_magazines,
            c.obj_free_in_slabs,
            format!("{}/{}", c.depot_full, c.depot_empty)
        );
    }
}

/// The observers' view, one arena a row (the kind is in the name).
fn table(arenas: &[ArenaInfo]) -> String {
    let mut s = format!(
        "{:<6} {:<3} {:<26} {:<8} {:>4} {:>17}  {}\n",
        "PID", "ID", "ARENA", "STATE", "MAPS", "MEM (INUSE/TOTAL)", "MAPPED BY"
    );
    for a in arenas {
        let pids: Vec<String> = a.mapped_pids.iter().map(u32::to_string).collect();
        s.push_str(&format!(
            "{:<6} {:<3} {:<26} {:<8} {:>4} {:>17}  {}\n",
            a.pid,
            format!("{}{}", a.arena_id, if a.late { "*" } else { "" }),
            a.name,
            a.state,
            a.map_count,
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
