//! `pps` ended by a signal half-way — SIGHUP (the terminal closed),
//! SIGTERM and SIGINT — stops cleanly: it exits (not killed by the
//! signal), its namespaces are gone and autogroup scheduling is as it
//! was. Needs root (skipped otherwise).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use skmem_bench::pps::{self, sched, Config};

/// The network namespaces that exist now.
fn namespaces() -> String {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_signal_half_way_ends_the_run_and_leaves_nothing() {
    if let Some(reason) = pps::skip_reason(&Config::quick()) {
        skmem_netns::skip("pps_signals", &reason);
        return;
    }
    for sig in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
        // A marker left by a killed run names the value that run found,
        // which this one restores first: that is the value to end with.
        let autogroup_before = std::fs::read_to_string(sched::MARKER)
            .ok()
            .and_then(|m| m.split_whitespace().next().map(str::to_owned))
            .unwrap_or_else(|| {
                std::fs::read_to_string(sched::SYSCTL)
                    .unwrap()
                    .trim()
                    .to_owned()
            });
        let mut child = Command::new(env!("CARGO_BIN_EXE_pps"))
            .args([
                "--layouts",
                "default",
                "--workloads",
                "rxdrop",
                "--sizes",
                "64",
            ])
            .args(["--programs", "skmem", "--rounds", "20"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        // The layout's line comes once its namespaces exist: the signal
        // lands with the run under way (20 rounds take far longer).
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            let n = stderr.read_line(&mut line).unwrap();
            assert!(n > 0, "signal {sig}: pps ended before its layout started");
            if line.starts_with("pps: layout default:") {
                break;
            }
        }
        // SAFETY: plain kill(2) of our own child, which has not been
        // waited for, so its pid is still its own.
        assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
        // Drain the rest so the child never blocks on a full pipe.
        let rest: Vec<String> = stderr.lines().map_while(Result::ok).collect();
        let status = child.wait().unwrap();
        assert_eq!(
            status.signal(),
            None,
            "signal {sig}: pps was killed, not stopped: {rest:?}"
        );
        assert!(
            !status.success(),
            "signal {sig}: an interrupted run is a failure"
        );
        let left = namespaces();
        assert!(
            !left.contains(&format!("skm{pid}")),
            "signal {sig}: namespaces left: {left}"
        );
        assert_eq!(
            std::fs::read_to_string(sched::SYSCTL).unwrap().trim(),
            autogroup_before,
            "signal {sig}: autogroup not restored"
        );
    }
}
