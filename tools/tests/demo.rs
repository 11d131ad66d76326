//! `skmemctl demo` in a short run: every frame comes back, in order, and
//! every UMEM frame is accounted for; nothing is left behind.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::process::Command;

mod common;

use common::skmemctl;

/// Runs a short `skmemctl demo ARGS` to its end, asserting it exits 0;
/// returns its stdout.
#[track_caller]
fn demo_ok(args: &[&str]) -> String {
    let out = Command::new(common::SKMEMCTL)
        .arg("demo")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_short_demo_returns_every_frame_and_leaves_nothing_behind() {
    skmem_netns::require_root!();
    let stdout = demo_ok(&["--duration", "2", "--json"]);
    let last = stdout.lines().last().unwrap();
    let summary: serde_json::Value = serde_json::from_str(last).unwrap();
    let sent = summary["sent"].as_u64().unwrap();
    assert!(sent > 1000, "{summary}");
    assert_eq!(summary["returned"].as_u64(), Some(sent));
    assert_eq!(summary["in_order_and_intact"], true);
    assert_eq!(summary["frames_accounted"], true);
    // Every line before the summary is a live tick with the frame account.
    let ticks: Vec<serde_json::Value> = stdout
        .lines()
        .rev()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!ticks.is_empty());
    for t in &ticks {
        let f = &t["frames"];
        let parts: u64 = ["pool", "staged", "app", "kernel_rx", "kernel_tx"]
            .iter()
            .map(|k| f[k].as_u64().unwrap())
            .sum();
        assert_eq!(parts, f["total"].as_u64().unwrap(), "{t}");
    }
    // Nothing of the demo's is left: no namespace of this pid's children.
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let child_prefix = "skm";
    let ours: Vec<_> = String::from_utf8_lossy(&ns.stdout)
        .lines()
        .filter(|l| l.starts_with(child_prefix))
        .filter(|l| {
            skmem_netns::pid_of_name(l.split_whitespace().next().unwrap_or(""))
                .is_some_and(|pid| std::fs::metadata(format!("/proc/{pid}")).is_err())
        })
        .map(str::to_owned)
        .collect();
    assert!(ours.is_empty(), "left behind: {ours:?}");
}

/// `skmemctl demo --workers 2`: the l2fwd runs in worker processes, the
/// busiest is SIGKILLed halfway and replaced; every frame is back or was
/// taken back from the killed worker, and every UMEM frame is accounted.
#[test]
fn a_demo_through_workers_survives_a_killed_worker() {
    skmem_netns::require_root!();
    let stdout = demo_ok(&["--duration", "4", "--workers", "2", "--json"]);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let (sent, returned, lost) = (
        summary["sent"].as_u64().unwrap(),
        summary["returned"].as_u64().unwrap(),
        summary["lost_to_workers"].as_u64().unwrap(),
    );
    assert!(sent > 1000, "{summary}");
    assert_eq!(returned + lost, sent, "{summary}");
    assert!(lost < 1024, "more lost than a worker ring holds: {summary}");
    assert_eq!(summary["frames_accounted"], true);
    assert_eq!(summary["in_order_and_intact"], true);
    let (killed, replacement) = (summary["killed"].as_u64(), summary["replacement"].as_u64());
    assert!(
        killed.is_some() && replacement.is_some() && killed != replacement,
        "{summary}"
    );
    // The probes saw the killed worker's mapping go.
    let events: Vec<&str> = summary["events_seen"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert!(
        events.iter().filter(|e| **e == "map").count() >= 4,
        "{events:?}"
    );
    // The last tick shows both slots worked by a worker.
    let tick: serde_json::Value =
        serde_json::from_str(stdout.lines().rev().nth(1).unwrap()).unwrap();
    let workers = tick["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2, "{tick}");
    assert!(
        workers.iter().all(|w| w[1].as_u64().is_some()),
        "a slot without its worker: {tick}"
    );
}

/// Namespaces named after `pid` (the harness names them `skm<pid>…`).
fn namespaces_of(pid: u32) -> Vec<String> {
    skmem_netns::harness_namespaces()
        .into_iter()
        .filter(|(_, p)| *p == pid)
        .map(|(n, _)| n)
        .collect()
}

/// Starts `skmemctl demo --duration 30 --json` and returns once its first
/// tick is out (namespaces made, traffic flowing).
fn demo_running() -> (
    std::process::Child,
    std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
) {
    use std::io::BufRead as _;
    let mut kid = Command::new(env!("CARGO_BIN_EXE_skmemctl"))
        .args(["demo", "--duration", "30", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(kid.stdout.take().unwrap()).lines();
    let first = lines.next().expect("demo printed nothing").unwrap();
    assert!(first.contains("demo_tick"), "{first}");
    (kid, lines)
}

/// SIGHUP (the terminal closed), SIGTERM and SIGINT each end the demo
/// cleanly: exit 0 with its summary, nothing of it left.
#[test]
fn every_stopping_signal_tears_the_demo_down() {
    skmem_netns::require_root!();
    for sig in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
        let (mut kid, lines) = demo_running();
        let pid = kid.id();
        assert!(
            !namespaces_of(pid).is_empty(),
            "the demo made its namespaces"
        );
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
        let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
        let status = kid.wait().unwrap();
        assert_eq!(status.code(), Some(0), "signal {sig}: {status}");
        assert!(
            rest.last().is_some_and(|l| l.contains("demo_summary")),
            "signal {sig}: no summary"
        );
        assert!(
            namespaces_of(pid).is_empty(),
            "signal {sig}: namespaces left"
        );
    }
}

/// A SIGKILLed demo cannot tear down; the next one removes what it left
/// and says so.
#[test]
fn the_next_demo_removes_what_a_sigkilled_one_left() {
    skmem_netns::require_root!();
    let (mut kid, _lines) = demo_running();
    let pid = kid.id();
    kid.kill().unwrap();
    kid.wait().unwrap();
    let left = namespaces_of(pid);
    assert!(!left.is_empty(), "SIGKILL leaves the namespaces");
    let (_, err) = skmemctl::run_ok(&["demo", "--duration", "1", "--json"]);
    assert!(
        err.contains("removed the network namespaces a dead run left") && err.contains(&left[0]),
        "{err}"
    );
    assert!(namespaces_of(pid).is_empty());
    // Its observer's pin went too (the fresh demo read the pins).
    let pins = common::left::pins_of(pid);
    assert!(pins.is_empty(), "{pins:?}");
}

/// A tmux server of the test's own (its socket named after the test
/// process), killed when the test ends.
struct Tmux(String);

impl Tmux {
    fn new(tag: &str) -> Tmux {
        Tmux(format!("skmem-test-{}-{tag}", std::process::id()))
    }

    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.0])
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]);
    }
}

/// The live view in a real terminal of 80 and of 132 columns (tmux): after
/// a few refreshes, every row of the screen fits the width (a wrapped row
/// would break the in-place redraw) and the block is on the screen once —
/// redrawn in place, not scrolled or left in fragments.
#[test]
fn the_live_view_fits_80_and_132_columns_and_redraws_in_place() {
    skmem_netns::require_root!();
    if Command::new("tmux").arg("-V").output().is_err() {
        eprintln!("skipped: no tmux (cargo xtask setup installs it)");
        return;
    }
    for width in [80usize, 132] {
        let tmux = Tmux::new(&width.to_string());
        let script = format!(
            "{} demo --duration 4; echo DEMO-EXIT=$?; sleep 120",
            env!("CARGO_BIN_EXE_skmemctl")
        );
        let out = tmux.cmd(&[
            "new-session",
            "-d",
            "-x",
            &width.to_string(),
            "-y",
            "50",
            "-s",
            "demo",
            &script,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The screen as the user sees it, with wrapped rows joined (-J),
        // once the demo has ended.
        let by = std::time::Instant::now() + std::time::Duration::from_secs(90);
        let screen = loop {
            let out = tmux.cmd(&["capture-pane", "-p", "-J", "-t", "demo"]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if text.contains("DEMO-EXIT=") {
                break text;
            }
            assert!(
                std::time::Instant::now() < by,
                "the demo did not end:\n{text}"
            );
            std::thread::sleep(std::time::Duration::from_millis(200));
        };
        assert!(screen.contains("DEMO-EXIT=0"), "{width} columns:\n{screen}");
        for row in screen.lines() {
            assert!(
                row.chars().count() <= width,
                "{width} columns: a row wrapped ({} chars): {row}",
                row.chars().count()
            );
        }
        let blocks = screen
            .lines()
            .filter(|l| l.contains(" sent ") && l.contains(" back "))
            .count();
        assert_eq!(
            blocks, 1,
            "{width} columns: the live block redrawn in place:\n{screen}"
        );
        let events = screen
            .lines()
            .filter(|l| l.contains("events (eBPF)"))
            .count();
        assert_eq!(events, 1, "{width} columns:\n{screen}");
    }
}
