//! Crash recovery: skmemctl killed with SIGKILL at random moments — during
//! start-up, traffic or teardown — leaves nothing that stops the next run
//! on the same interface or namespace, and the next run says what it
//! cleaned up. The moments come from a seed printed at the start, so a
//! failing sequence can be replayed (`SKMEM_CRASH_SEED=N`).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::process::{Command, Stdio};
use std::time::Duration;

use skmem_netns::{NetnsPair, PairConfig, Side};

mod common;

use common::left::{pins_of, sockets_of, xdp_attached};
use common::skmemctl;

/// The tests kill processes that pin nothing but share the machine: one
/// at a time, so each one's moments are its own.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A small deterministic generator (xorshift64*), seeded per test.
struct Moments(u64);

impl Moments {
    fn new(test: &str) -> Moments {
        let seed = std::env::var("SKMEM_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            })
            | 1;
        eprintln!("{test}: SKMEM_CRASH_SEED={seed}");
        Moments(seed)
    }

    /// A moment in `0..max_ms` milliseconds.
    fn next(&mut self, max_ms: u64) -> Duration {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        Duration::from_millis(self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % max_ms)
    }
}

/// SIGKILLs `child` after `after` (the moment is the test's input, not a
/// wait for anything) and reaps it.
fn kill_after(mut child: std::process::Child, after: Duration) {
    std::thread::sleep(after);
    let _ = child.kill();
    child.wait().unwrap();
}

#[test]
fn fwd_killed_at_random_moments_never_stops_the_next_run() {
    if !common::netns_ready("crash") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let mut moments = Moments::new("fwd");
    let mut killed = Vec::new();
    for round in 0..8 {
        let fwd = skmemctl::in_ns(&pair, Side::A)
            .args(["fwd", "--mode", "l2fwd", "--iface", pair.ifname(Side::A)])
            .args(["--duration", "5", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        killed.push(fwd.id());
        // Anywhere from before the XDP attach to well into the traffic.
        let at = moments.next(400);
        kill_after(fwd, at);
        // The kernel took the XDP link down with the process, whenever it
        // died: nothing is attached that would make the next run's attach
        // fail with EBUSY.
        assert_eq!(
            xdp_attached(&pair, Side::A),
            "",
            "round {round}, killed at {at:?}"
        );
    }
    // The next run starts, forwards, accounts every frame and exits 0; it
    // removed the statistics sockets the killed runs left.
    let (summary, _) = skmemctl::succeeds(skmemctl::in_ns(&pair, Side::A).args([
        "fwd",
        "--mode",
        "l2fwd",
        "--iface",
        pair.ifname(Side::A),
        "--duration",
        "1",
        "--json",
    ]));
    assert!(summary.contains("\"frames_accounted\":true"), "{summary}");
    for pid in killed {
        assert_eq!(sockets_of(pid), Vec::<String>::new(), "pid {pid}");
    }
    assert_eq!(xdp_attached(&pair, Side::A), "");
}

#[test]
fn demo_killed_at_random_moments_is_cleaned_by_the_next_demo() {
    if !common::netns_ready("crash") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut moments = Moments::new("demo");
    let mut killed = Vec::new();
    for _ in 0..4 {
        let demo = Command::new(env!("CARGO_BIN_EXE_skmemctl"))
            .args(["demo", "--duration", "5", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        killed.push(demo.id());
        // From before its namespaces exist to the middle of its traffic.
        kill_after(demo, moments.next(2000));
    }
    let left_before: Vec<String> = skmem_netns::harness_namespaces()
        .into_iter()
        .filter(|(_, p)| killed.contains(p))
        .map(|(n, _)| n)
        .collect();
    let (stdout, err) = skmemctl::run_ok(&["demo", "--duration", "1", "--json"]);
    assert!(stdout.contains("\"frames_accounted\":true"), "{stdout}");
    // Nothing of the killed runs is left: namespaces, pins, sockets.
    let left: Vec<(String, u32)> = skmem_netns::harness_namespaces()
        .into_iter()
        .filter(|(_, p)| killed.contains(p))
        .collect();
    assert_eq!(left, [], "{err}");
    let pins: Vec<String> = killed.iter().flat_map(|p| pins_of(*p)).collect();
    assert_eq!(pins, Vec::<String>::new(), "{err}");
    for pid in &killed {
        assert_eq!(sockets_of(*pid), Vec::<String>::new(), "pid {pid}");
    }
    // What it removed, it said, by name.
    for ns in &left_before {
        assert!(
            err.contains("removed the network namespaces a dead run left") && err.contains(ns),
            "{ns}: {err}"
        );
    }
}

#[test]
fn watch_killed_at_random_moments_leaves_no_pin_that_stops_the_next_watch() {
    if !common::netns_ready("crash") {
        return;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut moments = Moments::new("watch");
    let mut killed = Vec::new();
    for _ in 0..6 {
        let watch = Command::new(env!("CARGO_BIN_EXE_skmemctl"))
            .args(["watch", "--no-scan", "--duration", "5", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = watch.id();
        killed.push(pid);
        // From before its programs load to well after they are pinned.
        let at = moments.next(1500);
        std::thread::sleep(at);
        kill_after(watch, Duration::ZERO);
    }
    // Each observer removes what dead ones left when it starts, so a
    // killed one may already have removed its predecessors' pins: what
    // is left now is what the next one must remove.
    let left = killed.iter().flat_map(|p| pins_of(*p)).count();
    // The next observer starts, runs and exits 0, removing the pins the
    // killed ones left, and says so.
    let (_, err) = skmemctl::run_ok(&["watch", "--no-scan", "--duration", "1", "--json"]);
    let pins: Vec<String> = killed.iter().flat_map(|p| pins_of(*p)).collect();
    assert_eq!(pins, Vec::<String>::new(), "{err}");
    if left > 0 {
        assert!(
            err.contains("removed"),
            "pins of dead observers, said: {err}"
        );
    }
}
