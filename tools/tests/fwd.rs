//! `skmemctl fwd` against a veth in namespaces the test made, as a user
//! runs it: rxdrop with receive coalescing on A while `skmemctl fwd --mode
//! txonly` sends from B. Every frame A's XDP program redirected was received or counted
//! as a kernel drop, the frames are accounted, and coalescing slept.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use skmem_netns_tests::{NetnsPair, PairConfig, Side};

const FRAMES: u64 = 1_000_000;

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: skmemctl fwd needs root (namespaces, XDP)");
        return false;
    }
    true
}

/// Kills the child if the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn rxdrop_with_coalescing_receives_or_counts_every_redirected_frame() {
    if !root() {
        return;
    }
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    // Pinned, as a user pins a receiver: left to the scheduler, a thread
    // that sleeps is soon placed on the sender's CPU, which A's NAPI keeps
    // busy, and drops what arrives while it waits for that CPU.
    let mut fwd = KillOnDrop(
        Command::new("ip")
            .args(["netns", "exec", pair.ns_name(Side::A)])
            .args(["taskset", "-c", "1"])
            .arg(env!("CARGO_BIN_EXE_skmemctl"))
            .args(["fwd", "--mode", "rxdrop", "--iface", pair.ifname(Side::A)])
            .args(["--coalesce", "1000", "--duration", "30", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(fwd.0.stdout.take().unwrap()).lines();
    // The first line of rates comes once the socket is bound and in the
    // XSKMAP: from then on every frame reaching A is redirected to it.
    // (Only the per-second lines carry `elapsed_s`; the summary does not.)
    let first = lines.next().expect("fwd printed nothing").unwrap();
    assert!(first.contains("elapsed_s"), "{first}");

    // B sends with skmemctl's own AF_XDP txonly, pinned to the other CPU:
    // a steady 0.4–0.9 Mpps here, fast enough that coalescing sleeps (half
    // of 1024 frames arrive within its 1 ms bound). (`skmemctl gen
    // --rate` paces in bursts of rate/100 frames at full speed, which no
    // sleeping receiver absorbs with 1024 frames.)
    let count = FRAMES.to_string();
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
    assert_eq!(sent["tx_packets"].as_u64(), Some(FRAMES), "{sent}");

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
    assert!(
        summary["wakeups"]["coalesced_sleeps"].as_u64().unwrap() > 0,
        "{summary}"
    );
}
