//! `skmemctl fwd` against a veth in namespaces the test made, as a user
//! runs it, while `skmemctl fwd --mode txonly` sends from B: rxdrop with
//! receive coalescing on A (every frame A's XDP program redirected was
//! received or counted as a kernel drop, the frames are accounted, and
//! coalescing slept), and l2fwd pinned at `SCHED_FIFO` (it forwards, says
//! how its thread ran, and refuses scheduling options it cannot honour).

use std::io::{BufRead, BufReader, Lines};
use std::process::{ChildStdout, Command, Stdio};

use skmem_netns_tests::{NetnsPair, PairConfig, Side};

const FRAMES: u64 = 1_000_000;

/// The tests pin to the same two CPUs and measure drops: one at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: skmemctl fwd needs root (namespaces, XDP)");
        return false;
    }
    true
}

/// The test's turn (see [`ONE_AT_A_TIME`]) and a pair with one queue a
/// side; `None` (skipped, saying why) without root. The pair is removed
/// before the turn ends.
fn serial_pair() -> Option<(std::sync::MutexGuard<'static, ()>, NetnsPair)> {
    if !root() {
        return None;
    }
    let serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    Some((serial, pair))
}

/// Kills the child if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `skmemctl fwd --iface A --duration 30 --json` with `args` on A
/// and returns once its first line of rates is out: the socket is bound and
/// in the XSKMAP, so every frame reaching A from then on is redirected.
fn start_fwd(pair: &NetnsPair, args: &[&str]) -> (KillOnDrop, Lines<BufReader<ChildStdout>>) {
    let mut fwd = KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", pair.ns_name(Side::A)])
            .arg(env!("CARGO_BIN_EXE_skmemctl"))
            .args(["fwd", "--iface", pair.ifname(Side::A)])
            .args(["--duration", "30", "--json"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(fwd.0.stdout.take().unwrap()).lines();
    // (Only the per-second lines carry `elapsed_s`; the summary does not.)
    let first = lines.next().expect("fwd printed nothing").unwrap();
    assert!(first.contains("elapsed_s"), "{first}");
    (fwd, lines)
}

/// Sends `frames` from B with skmemctl's own AF_XDP txonly, pinned to
/// cpu0: a steady 0.4–0.9 Mpps here. (`skmemctl gen --rate` paces in
/// bursts of rate/100 frames at full speed, which no sleeping receiver
/// absorbs with 1024 frames.)
fn send_from_b(pair: &NetnsPair, frames: u64) {
    let count = frames.to_string();
    let tx = pair
        .exec_ok(
            Side::B,
            "taskset",
            [
                "-c",
                "0",
                env!("CARGO_BIN_EXE_skmemctl"),
                "fwd",
                "--mode",
                "txonly",
                "--iface",
                pair.ifname(Side::B),
                "--count",
                &count,
                "--duration",
                "30",
                "--json",
            ],
        )
        .unwrap();
    let sent: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&tx.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(sent["tx_packets"].as_u64(), Some(frames), "{sent}");
}

/// Stops `fwd` as Ctrl-C does and returns its summary.
fn stop_fwd(mut fwd: KillOnDrop, lines: Lines<BufReader<ChildStdout>>) -> serde_json::Value {
    // SAFETY: kill has no memory preconditions; the pid is our child's
    // (`ip netns exec` execs skmemctl in place).
    assert_eq!(unsafe { libc::kill(fwd.0.id() as i32, libc::SIGINT) }, 0);
    let summary: serde_json::Value = lines
        .map(|l| l.unwrap())
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .find(|v| v.get("frames_accounted").is_some())
        .expect("no summary");
    assert!(fwd.0.wait().unwrap().success());
    eprintln!("fwd: {summary}");
    summary
}

#[test]
fn rxdrop_with_coalescing_receives_or_counts_every_redirected_frame() {
    let Some((_serial, pair)) = serial_pair() else {
        return;
    };
    // Pinned, as a user pins a receiver: left to the scheduler, a thread
    // that sleeps is soon placed on the sender's CPU, which A's NAPI keeps
    // busy, and drops what arrives while it waits for that CPU. Coalescing
    // sleeps when half of 1024 frames arrive within its 1 ms bound, which
    // B's steady rate does.
    let (fwd, lines) = start_fwd(
        &pair,
        &["--mode", "rxdrop", "--cpu", "1", "--coalesce", "1000"],
    );
    send_from_b(&pair, FRAMES);
    let summary = stop_fwd(fwd, lines);

    let rx = summary["rx_packets"].as_u64().unwrap();
    let dropped = summary["rx_dropped"].as_u64().unwrap();
    let redirected = summary["xdp_redirected"].as_u64().unwrap();
    assert_eq!(redirected, FRAMES, "{summary}");
    assert_eq!(rx + dropped, redirected, "{summary}");
    // Coalescing must not trade frames for sleep: the kernel's drops
    // (fill ring empty) stay a small fraction.
    assert!(dropped * 100 < FRAMES, "{summary}");
    assert_eq!(summary["frames_accounted"], true, "{summary}");
    assert_eq!(summary["wait"], "coalesce", "{summary}");
    assert_eq!(
        summary["policy"],
        serde_json::json!(["SCHED_OTHER"]),
        "{summary}"
    );
    assert!(
        summary["wakeups"]["coalesced_sleeps"].as_u64().unwrap() > 0,
        "{summary}"
    );
}

#[test]
fn l2fwd_pinned_at_fifo_forwards_and_says_how_its_thread_ran() {
    let Some((_serial, pair)) = serial_pair() else {
        return;
    };
    let fwd_with = |extra: &[&str]| {
        let mut args = vec!["fwd", "--mode", "l2fwd", "--iface", pair.ifname(Side::A)];
        args.extend_from_slice(extra);
        pair.exec(Side::A, env!("CARGO_BIN_EXE_skmemctl"), args)
            .unwrap()
    };
    // What it cannot honour is refused, saying why, before it attaches.
    for (extra, why, code) in [
        (&["--cpu", "0", "--cpu", "1"][..], "give one per --queue", 1),
        (&["--fifo", "0"][..], "1..=99", 1),
        // A thread that never sleeps at SCHED_FIFO would starve its CPU.
        (&["--fifo", "1", "--spin"][..], "cannot be used with", 2),
    ] {
        let out = fwd_with(extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{extra:?}: {err}");
        assert!(err.contains(why), "{extra:?}: {err}");
    }

    let (fwd, lines) = start_fwd(&pair, &["--mode", "l2fwd", "--cpu", "1", "--fifo", "1"]);
    send_from_b(&pair, FRAMES / 4);
    let summary = stop_fwd(fwd, lines);
    assert_eq!(
        summary["policy"],
        serde_json::json!(["SCHED_FIFO"]),
        "{summary}"
    );
    let rx = summary["rx_packets"].as_u64().unwrap();
    let tx = summary["tx_packets"].as_u64().unwrap();
    let dropped = summary["rx_dropped"].as_u64().unwrap();
    assert_eq!(
        rx + dropped,
        summary["xdp_redirected"].as_u64().unwrap(),
        "{summary}"
    );
    assert!(tx > 0 && tx <= rx, "{summary}");
    assert_eq!(summary["frames_accounted"], true, "{summary}");
}
