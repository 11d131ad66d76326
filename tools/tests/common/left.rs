//! What a run may leave on the machine, looked up by the tests that kill
//! runs or break their interfaces: XDP programs, observer pins, statistics
//! sockets.

use skmem_netns::{NetnsPair, Side};

/// The `ip -d link` lines of `side`'s namespace that show an XDP program
/// (empty when there is none).
pub fn xdp_attached(pair: &NetnsPair, side: Side) -> String {
    let out = pair.exec_ok(side, "ip", ["-d", "link", "show"]).unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines()
        .filter(|l| l.contains("xdp") && l.contains("prog"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Names in `dir` starting with `prefix`.
fn named(dir: &str, prefix: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

/// The live-arena pins of observer `pid` in bpffs.
pub fn pins_of(pid: u32) -> Vec<String> {
    named(skmem_xdp::observe::PIN_DIR, &format!("arenas_{pid}_"))
}

/// The statistics sockets of process `pid` in /run/skmem.
pub fn sockets_of(pid: u32) -> Vec<String> {
    named(skmem::owner::RUN_DIR, &format!("stats-{pid}-"))
}
