//! `skmemctl stats --format prometheus`: the published figures in the
//! Prometheus text exposition format (version 0.0.4), for node_exporter's
//! textfile collector or a scrape.
//!
//! Every metric family is written once, `# HELP` and `# TYPE` first, then
//! all its samples: the format requires a family's samples together.

use std::fmt::Write as _;

use skmem::inspect::ProcessStats;

/// A metric family being filled.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, u64)>,
}

/// A label value escaped as the format wants (`\\`, `\"`, `\n`).
fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// `{a="x",b="y"}`.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

/// The families, in print order.
struct Families(Vec<Family>);

impl Families {
    fn add(&mut self, name: &'static str, labels: String, value: u64) {
        let f = self
            .0
            .iter_mut()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("metric {name} is not declared"));
        f.samples.push((labels, value));
    }
}

const FAMILIES: &[(&str, &str, &str)] = &[
    (
        "skmem_arena_mem_bytes",
        "gauge",
        "Bytes of the arena's regions.",
    ),
    (
        "skmem_arena_mem_inuse_bytes",
        "gauge",
        "Bytes in use in the arena's regions.",
    ),
    (
        "skmem_arena_map_size_bytes",
        "gauge",
        "Size of one mapping of the arena (0 when unmapped).",
    ),
    (
        "skmem_arena_mappings",
        "gauge",
        "Live mappings of the arena, the owner's and mappers'.",
    ),
    (
        "skmem_arena_mappings_redirected",
        "gauge",
        "Mappings redirected to zero pages.",
    ),
    (
        "skmem_channel_rx_packets_total",
        "counter",
        "Frames the channel received.",
    ),
    (
        "skmem_channel_rx_bytes_total",
        "counter",
        "Bytes the channel received.",
    ),
    (
        "skmem_channel_tx_packets_total",
        "counter",
        "Frames the channel queued for transmission.",
    ),
    (
        "skmem_channel_tx_bytes_total",
        "counter",
        "Bytes the channel queued for transmission.",
    ),
    (
        "skmem_channel_tx_completed_total",
        "counter",
        "Transmissions the kernel completed.",
    ),
    (
        "skmem_channel_bad_descriptors_total",
        "counter",
        "Descriptors from the kernel naming a frame not where the ring says (dropped).",
    ),
    (
        "skmem_channel_tx_refused_total",
        "counter",
        "Frames refused for transmission (not held, or too long).",
    ),
    (
        "skmem_channel_wakeups_total",
        "counter",
        "Syscalls made to wake the kernel.",
    ),
    (
        "skmem_xsk_rx_dropped_total",
        "counter",
        "XDP_STATISTICS rx_dropped: frames the kernel dropped (no room, bad headroom).",
    ),
    (
        "skmem_xsk_rx_invalid_descs_total",
        "counter",
        "XDP_STATISTICS rx_invalid_descs: invalid fill descriptors.",
    ),
    (
        "skmem_xsk_tx_invalid_descs_total",
        "counter",
        "XDP_STATISTICS tx_invalid_descs: invalid TX descriptors.",
    ),
    (
        "skmem_xsk_rx_ring_full_total",
        "counter",
        "XDP_STATISTICS rx_ring_full: frames dropped for a full RX ring.",
    ),
    (
        "skmem_xsk_rx_fill_ring_empty_total",
        "counter",
        "XDP_STATISTICS rx_fill_ring_empty_descs: times the fill ring was empty.",
    ),
    (
        "skmem_xsk_tx_ring_empty_total",
        "counter",
        "XDP_STATISTICS tx_ring_empty_descs: times the TX ring was empty.",
    ),
    (
        "skmem_cache_objects",
        "gauge",
        "Objects of the cache's region.",
    ),
    (
        "skmem_cache_objects_in_use",
        "gauge",
        "Objects held by users.",
    ),
    (
        "skmem_cache_objects_in_magazines",
        "gauge",
        "Objects parked in magazines (per-CPU and depot).",
    ),
    (
        "skmem_cache_objects_free_in_slabs",
        "gauge",
        "Objects free in the slab layer.",
    ),
    (
        "skmem_cache_depot_full_magazines",
        "gauge",
        "Full magazines in the depot.",
    ),
    (
        "skmem_cache_depot_empty_magazines",
        "gauge",
        "Empty magazines in the depot.",
    ),
    (
        "skmem_cache_depot_contention_total",
        "counter",
        "Times the depot lock was contended.",
    ),
    (
        "skmem_cache_purges_total",
        "counter",
        "Purges of the cache.",
    ),
    ("skmem_cache_reaps_total", "counter", "Reaps of the cache."),
];

/// The exposition text for `processes`.
pub fn render(processes: &[ProcessStats]) -> String {
    let mut fams = Families::declared();
    for p in processes {
        let pid = p.pid.to_string();
        fams.add_arenas(p, &pid);
        fams.add_channels(p, &pid);
        fams.add_caches(p, &pid);
    }
    fams.text()
}

impl Families {
    /// Every family of [`FAMILIES`], with no sample yet.
    fn declared() -> Families {
        Families(
            FAMILIES
                .iter()
                .map(|&(name, kind, help)| Family {
                    name,
                    kind,
                    help,
                    samples: Vec::new(),
                })
                .collect(),
        )
    }

    /// The samples of each arena of process `p`.
    fn add_arenas(&mut self, p: &ProcessStats, pid: &str) {
        for a in &p.arenas {
            let l = labels(&[
                ("pid", pid),
                ("comm", &p.comm),
                ("arena", &a.name),
                ("kind", &a.kind),
                ("state", &a.state),
            ]);
            self.add("skmem_arena_mem_bytes", l.clone(), a.mem_total as u64);
            self.add("skmem_arena_mem_inuse_bytes", l.clone(), a.mem_inuse as u64);
            self.add("skmem_arena_map_size_bytes", l.clone(), a.map_size as u64);
            self.add("skmem_arena_mappings", l.clone(), a.map_count as u64);
            self.add(
                "skmem_arena_mappings_redirected",
                l,
                a.map_redirected as u64,
            );
        }
    }

    /// The samples of each channel of process `p`: its own counters, and
    /// the kernel's XDP_STATISTICS where it has them.
    fn add_channels(&mut self, p: &ProcessStats, pid: &str) {
        for c in &p.channels {
            let queue = c.queue.to_string();
            let l = labels(&[
                ("pid", pid),
                ("comm", &p.comm),
                ("arena", &c.arena),
                ("ifname", &c.ifname),
                ("queue", &queue),
            ]);
            let n = &c.counters;
            for (name, v) in [
                ("skmem_channel_rx_packets_total", n.rx_packets),
                ("skmem_channel_rx_bytes_total", n.rx_bytes),
                ("skmem_channel_tx_packets_total", n.tx_packets),
                ("skmem_channel_tx_bytes_total", n.tx_bytes),
                ("skmem_channel_tx_completed_total", n.tx_completed),
                ("skmem_channel_bad_descriptors_total", n.bad_descs),
                ("skmem_channel_tx_refused_total", n.tx_refused),
                ("skmem_channel_wakeups_total", n.wakeups),
            ] {
                self.add(name, l.clone(), v);
            }
            if let Some(k) = &c.xdp {
                for (name, v) in [
                    ("skmem_xsk_rx_dropped_total", k.rx_dropped),
                    ("skmem_xsk_rx_invalid_descs_total", k.rx_invalid_descs),
                    ("skmem_xsk_tx_invalid_descs_total", k.tx_invalid_descs),
                    ("skmem_xsk_rx_ring_full_total", k.rx_ring_full),
                    (
                        "skmem_xsk_rx_fill_ring_empty_total",
                        k.rx_fill_ring_empty_descs,
                    ),
                    ("skmem_xsk_tx_ring_empty_total", k.tx_ring_empty_descs),
                ] {
                    self.add(name, l.clone(), v);
                }
            }
        }
    }

    /// The samples of each cache of process `p`.
    fn add_caches(&mut self, p: &ProcessStats, pid: &str) {
        for c in &p.caches {
            let l = labels(&[
                ("pid", pid),
                ("comm", &p.comm),
                ("arena", &c.arena),
                ("cache", &c.name),
            ]);
            for (name, v) in [
                ("skmem_cache_objects", c.obj_total),
                ("skmem_cache_objects_in_use", c.obj_in_use),
                ("skmem_cache_objects_in_magazines", c.obj_in_magazines),
                ("skmem_cache_objects_free_in_slabs", c.obj_free_in_slabs),
                ("skmem_cache_depot_full_magazines", c.depot_full),
                ("skmem_cache_depot_empty_magazines", c.depot_empty),
                ("skmem_cache_depot_contention_total", c.depot_contention),
                ("skmem_cache_purges_total", c.purges),
                ("skmem_cache_reaps_total", c.reaps),
            ] {
                self.add(name, l.clone(), v);
            }
        }
    }

    /// The families that have samples, each header first, then its samples.
    fn text(&self) -> String {
        let mut out = String::new();
        for f in self.0.iter().filter(|f| !f.samples.is_empty()) {
            let _ = writeln!(out, "# HELP {} {}", f.name, f.help);
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind);
            for (l, v) in &f.samples {
                let _ = writeln!(out, "{}{l} {v}", f.name);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(escape("x\ny"), "x\\ny");
        assert_eq!(labels(&[("a", "1"), ("b", "q\"")]), r#"{a="1",b="q\""}"#);
    }

    #[test]
    fn each_family_is_declared_once_before_its_samples() {
        let mut p = skmem::inspect::snapshot();
        p.comm = "with \"quotes\"".into();
        p.arenas.push(skmem::inspect::ArenaSummary {
            name: "skmem.system.x".into(),
            id: 1,
            kind: "system".into(),
            state: "ACTIVE".into(),
            map_size: 4096,
            map_count: 1,
            map_redirected: 0,
            mapped_pids: vec![1],
            mem_total: 8192,
            mem_inuse: 4096,
        });
        let text = render(&[p.clone(), p]);
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let mut unique = types.clone();
        unique.dedup();
        assert_eq!(types, unique, "{text}");
        // Two processes' samples sit together under one header.
        let mut lines = text
            .lines()
            .skip_while(|l| !l.contains("TYPE skmem_arena_mem_bytes"));
        lines.next();
        let (a, b) = (lines.next().unwrap(), lines.next().unwrap());
        assert!(
            a.starts_with("skmem_arena_mem_bytes{") && a.ends_with(" 8192"),
            "{a}"
        );
        assert!(b.starts_with("skmem_arena_mem_bytes{"), "{b}");
        assert!(a.contains(r#"comm="with \"quotes\"""#), "{a}");
    }
}
