//! `skmemctl fwd --workers`: l2fwd through worker processes, one of them
//! stopped, then SIGKILLed mid-traffic: its frames come back (nothing
//! lost from the accounting), the owner keeps forwarding for the other
//! worker throughout, and the replacement it starts forwards again.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use skmem_netns::{NetnsPair, PairConfig, Side};

mod common;

use common::skmemctl::{self, KillOnDrop};

fn root() -> bool {
    common::netns_ready("skmemctl fwd --workers")
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory preconditions.
    let r = unsafe { libc::kill(pid as i32, sig) };
    assert_eq!(r, 0, "kill {pid} {sig}");
}

/// A worker's part of one line of rates.
#[derive(Debug, Clone, Copy)]
struct W {
    pid: Option<u32>,
    back: f64,
    dropped_full: u64,
    reclaimed: u64,
    joins: u64,
}

fn workers_of(line: &serde_json::Value) -> Vec<W> {
    line["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| W {
            pid: w["pid"].as_u64().map(|p| p as u32),
            back: w["back_pps"].as_f64().unwrap(),
            dropped_full: w["dropped_full"].as_u64().unwrap(),
            reclaimed: w["reclaimed"].as_u64().unwrap(),
            joins: w["joins"].as_u64().unwrap(),
        })
        .collect()
}

/// Starts `skmemctl fwd --copy --json ARGS` on A as the owner; returns it
/// (killed if the test fails) and a reader of its next JSON record.
fn start_owner(pair: &NetnsPair, args: &[&str]) -> (KillOnDrop, impl FnMut() -> serde_json::Value) {
    let fwd_a = ["fwd", "--iface", pair.ifname(Side::A), "--copy", "--json"];
    let (owner, mut lines) = skmemctl::spawn_in(pair, Side::A, &[&fwd_a[..], args].concat());
    let next = move || -> serde_json::Value {
        let l = lines.next().expect("fwd ended early").unwrap();
        serde_json::from_str(&l).unwrap()
    };
    (owner, next)
}

/// Sends 20 000 frames from B (`fwd --mode txonly --count`) on `queues`
/// (B's TX queue i reaches A's RX queue i) and waits for it to finish.
fn send_from_b(pair: &NetnsPair, queues: &[&str]) {
    let mut args = vec!["fwd", "--iface", pair.ifname(Side::B), "--mode", "txonly"];
    for q in queues {
        args.extend(["--queue", q]);
    }
    args.extend(["--copy", "--count", "20000", "--duration", "30", "--json"]);
    let tx = pair
        .exec_ok(Side::B, env!("CARGO_BIN_EXE_skmemctl"), args)
        .unwrap();
    assert!(tx.status.success());
}

/// A rxdrop queue's `workers_summary`: every frame accounted for, and its
/// first worker was lent frames and freed every one.
fn assert_every_lent_frame_freed(s: &serde_json::Value) {
    assert_eq!(s["frames_accounted"], true, "{s}");
    let w = &s["per_worker"][0];
    let (lent, freed) = (w["lent"].as_u64().unwrap(), w["freed"].as_u64().unwrap());
    assert!(lent > 0, "the worker got nothing: {s}");
    assert_eq!(lent, freed, "every frame lent was freed: {s}");
}

#[test]
fn a_worker_killed_mid_traffic_loses_no_frame_and_its_replacement_forwards() {
    if !root() {
        return;
    }
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let bin = env!("CARGO_BIN_EXE_skmemctl");
    // The eBPF observer on skmemctl: it sees the workers' mappings of the
    // owner's arena come and go.
    let mut obs =
        skmem_xdp::observe::Observer::attach(skmem_xdp::observe::ObserveTarget::binaries([
            std::path::PathBuf::from(bin),
        ]))
        .unwrap();
    let (mut owner, mut next) = start_owner(
        &pair,
        &[
            "--mode",
            "l2fwd",
            "--workers",
            "2",
            "--round-robin",
            "--duration",
            "60",
        ],
    );
    // Both workers joined.
    let by = Instant::now() + Duration::from_secs(20);
    let mut line = next();
    while workers_of(&line).iter().any(|w| w.pid.is_none()) {
        assert!(Instant::now() < by, "workers did not join: {line}");
        line = next();
    }
    let _traffic = KillOnDrop(
        skmemctl::in_ns(&pair, Side::B)
            .arg("fwd")
            .args([
                "--iface",
                pair.ifname(Side::B),
                "--mode",
                "txonly",
                "--copy",
            ])
            .args(["--duration", "40", "--json"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Traffic through both.
    while !workers_of(&line).iter().all(|w| w.back > 0.0) {
        assert!(
            Instant::now() < by,
            "no traffic through both workers: {line}"
        );
        line = next();
    }
    let victim = workers_of(&line)[0].pid.unwrap();
    // `skmemctl stats --offer` maps the arena and reads the owner's
    // advisory: both workers, by pid, with what was lent to them.
    let sock = std::env::temp_dir().join(format!("skmemctl-fwd-{}-q0.sock", owner.0.id()));
    let out = Command::new(bin)
        .args(["stats", "--json", "--offer"])
        .arg(&sock)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let adv: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(adv["type"], "advisories", "{adv}");
    let slots = adv["nexus"]["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 2, "{adv}");
    assert_eq!(slots[0]["pid"].as_u64(), Some(u64::from(victim)), "{adv}");
    // Stopped, it holds what was lent to it and its ring fills.
    signal(victim, libc::SIGSTOP);
    let full_at = workers_of(&line)[0].dropped_full;
    while workers_of(&line)[0].dropped_full == full_at {
        assert!(
            Instant::now() < by + Duration::from_secs(10),
            "w0's ring never filled: {line}"
        );
        line = next();
    }
    // The other worker kept forwarding meanwhile.
    assert!(workers_of(&line)[1].back > 0.0, "{line}");
    signal(victim, libc::SIGKILL);
    // Its frames come back, and a replacement joins the slot and forwards.
    let by = Instant::now() + Duration::from_secs(20);
    loop {
        let w = workers_of(&line);
        if w[0].joins == 2 && w[0].pid.is_some_and(|p| p != victim) && w[0].back > 0.0 {
            assert!(
                w[0].reclaimed > 0,
                "nothing lent to the killed worker came back: {line}"
            );
            assert!(w[1].back > 0.0, "{line}");
            break;
        }
        assert!(Instant::now() < by, "no replacement forwarding: {line}");
        line = next();
    }
    // Ctrl-C: the summary says every frame is accounted for.
    signal(owner.0.id(), libc::SIGINT);
    let summary = loop {
        let l = next();
        if l.get("frames_accounted").is_some() {
            break l;
        }
    };
    assert_eq!(summary["frames_accounted"], true, "{summary}");
    let per = summary["per_worker"].as_array().unwrap();
    assert_eq!(per[0]["joins"], 2, "{summary}");
    assert!(per[0]["reclaimed"].as_u64().unwrap() > 0, "{summary}");
    for w in per {
        assert_eq!(w["bad_range"], 0);
        assert_eq!(w["bad_not_lent"], 0);
    }
    let owner_pid = owner.0.id();
    assert!(owner.0.wait().unwrap().success());
    // The watch's view: the killed worker's map, then its mapping gone
    // (unmapped as a mapper that died), against the owner's arena.
    let mut seen = Vec::new();
    let by = Instant::now() + Duration::from_secs(10);
    while Instant::now() < by {
        let evs = obs.next_events(Duration::from_millis(100)).unwrap();
        if evs.is_empty() && !seen.is_empty() {
            break;
        }
        seen.extend(
            evs.into_iter()
                .filter(|e| e.pid == owner_pid && e.mapper_pid == Some(victim)),
        );
    }
    let kinds: Vec<&str> = seen.iter().map(|e| e.event).collect();
    assert_eq!(kinds, ["map", "unmap"], "{seen:#?}");
    assert!(seen[1].line().contains("mapper gone"), "{}", seen[1].line());
}

/// `fwd --workers 1` on two queues: one worker per queue, each queue with
/// its own arena and hub; both forward, and each queue's frames are all
/// accounted for at the end.
#[test]
fn one_worker_per_queue_on_two_queues() {
    if !root() {
        return;
    }
    let pair = NetnsPair::with_config(PairConfig::default().queues(2, 2)).unwrap();
    let (mut owner, mut next) = start_owner(
        &pair,
        &[
            "--mode",
            "rxdrop",
            "--queue",
            "0",
            "--queue",
            "1",
            "--workers",
            "1",
            "--duration",
            "60",
            "--interval",
            "0.2",
        ],
    );
    // Each queue's worker joined: a rate line per queue with its pid.
    let by = Instant::now() + Duration::from_secs(20);
    let mut joined = [None, None];
    while joined.iter().any(Option::is_none) {
        assert!(Instant::now() < by, "workers did not join: {joined:?}");
        let line = next();
        let q = line["queue"].as_u64().expect("a queue on every line") as usize;
        joined[q] = workers_of(&line)[0].pid;
    }
    assert_ne!(joined[0], joined[1], "a worker process per queue");
    // Traffic on both queues.
    send_from_b(&pair, &["0", "1"]);
    signal(owner.0.id(), libc::SIGINT);
    let mut summaries = Vec::new();
    while summaries.len() < 2 {
        let l = next();
        if l["type"] == "workers_summary" {
            summaries.push(l);
        }
    }
    assert!(owner.0.wait().unwrap().success());
    summaries.sort_by_key(|s| s["queue"].as_u64());
    for (q, s) in summaries.iter().enumerate() {
        assert_eq!(s["queue"].as_u64(), Some(q as u64), "{s}");
        assert_every_lent_frame_freed(s);
    }
}

#[test]
fn the_owner_stops_with_an_error_when_its_interface_is_deleted() {
    if !root() {
        return;
    }
    let pair = NetnsPair::with_config(PairConfig::default()).unwrap();
    let a = pair.ifname(Side::A).to_owned();
    let (mut owner, mut next) = start_owner(
        &pair,
        &[
            "--mode",
            "rxdrop",
            "--workers",
            "1",
            "--duration",
            "0",
            "--interval",
            "0.2",
        ],
    );
    // Running with its worker: a line of rates is out.
    let first = next();
    assert_eq!(first["type"], "workers_rate", "{first}");
    pair.exec_ok(Side::A, "ip", ["link", "del", &a]).unwrap();
    // It stops on its own (--duration 0 would run forever), says why in
    // its summary, and exits 1: no false success.
    let summary = std::iter::repeat_with(&mut next)
        .take(200)
        .find(|v| v["type"] == "workers_summary")
        .expect("no summary");
    assert!(
        summary["stopped_by"]
            .as_str()
            .is_some_and(|s| s.contains(&format!("interface {a} went away"))),
        "{summary}"
    );
    assert_eq!(summary["frames_accounted"], true, "{summary}");
    assert_eq!(owner.0.wait().unwrap().code(), Some(1));
}

/// A thread's CPUs and scheduling policy, from /proc: (`Cpus_allowed_list`,
/// policy number, real-time priority).
fn placement(task: &str) -> (String, u64, u64) {
    let status = std::fs::read_to_string(format!("{task}/status")).unwrap();
    let cpus = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .unwrap()
        .trim()
        .to_owned();
    let stat = std::fs::read_to_string(format!("{task}/stat")).unwrap();
    // Fields after the command name's closing parenthesis start at field 3
    // (state): rt_priority is field 40, policy field 41.
    let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    (cpus, f[38].parse().unwrap(), f[37].parse().unwrap())
}

/// `fwd --workers 1 --cpu 0 --fifo 1`: the queue's owner thread and the
/// worker it starts both run pinned to cpu0 at SCHED_FIFO 1 (the lever
/// BENCHMARKS.md gives for a CPU shared with a threaded NAPI), forward
/// with every frame accounted for, and the summary says where they ran.
#[test]
fn cpu_and_fifo_place_the_owner_and_its_workers() {
    if !root() {
        return;
    }
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let (mut owner, mut next) = start_owner(
        &pair,
        &[
            "--mode",
            "rxdrop",
            "--workers",
            "1",
            "--cpu",
            "0",
            "--fifo",
            "1",
            "--duration",
            "60",
            "--interval",
            "0.2",
        ],
    );
    let by = Instant::now() + Duration::from_secs(20);
    let worker = loop {
        if let Some(pid) = workers_of(&next())[0].pid {
            break pid;
        }
        assert!(Instant::now() < by, "the worker did not join");
    };
    const SCHED_FIFO: u64 = 1;
    assert_eq!(
        placement(&format!("/proc/{worker}")),
        ("0".to_owned(), SCHED_FIFO, 1),
        "the worker"
    );
    let owner_thread = std::fs::read_dir(format!("/proc/{}/task", owner.0.id()))
        .unwrap()
        .map(|t| t.unwrap().path())
        .find(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "fwd-q0"))
        .expect("the queue's owner thread");
    assert_eq!(
        placement(owner_thread.to_str().unwrap()),
        ("0".to_owned(), SCHED_FIFO, 1),
        "the owner thread"
    );
    send_from_b(&pair, &[]);
    signal(owner.0.id(), libc::SIGINT);
    let summary = std::iter::repeat_with(&mut next)
        .take(1000)
        .find(|v| v["type"] == "workers_summary")
        .expect("no summary");
    assert!(owner.0.wait().unwrap().success());
    assert_eq!(summary["policy"], "SCHED_FIFO", "{summary}");
    assert_eq!(summary["cpu"], 0, "{summary}");
    assert_every_lent_frame_freed(&summary);
}

/// `skmemctl -v fwd --workers 1`: the workers it starts log at its level
/// (their "worker slot taken" is info; without `-v` passed on they would
/// log warnings only).
#[test]
fn verbose_reaches_the_workers() {
    if !root() {
        return;
    }
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let out = skmemctl::in_ns(&pair, Side::A)
        .env_remove("RUST_LOG")
        .args(["-v", "fwd", "--iface", pair.ifname(Side::A), "--copy"])
        .args(["--mode", "rxdrop", "--workers", "1", "--duration", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("worker slot taken"), "{err}");
}

/// Ctrl-C in a terminal signals the whole process group: the owner and
/// its workers. The workers end with the run; the owner does not restart
/// them ("starting another"), and says every frame is accounted for.
#[test]
fn ctrl_c_to_the_process_group_ends_owner_and_workers_without_restarts() {
    if !root() {
        return;
    }
    use std::io::BufRead as _;
    use std::os::unix::process::CommandExt as _;
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let mut owner = KillOnDrop(
        skmemctl::in_ns(&pair, Side::A)
            .args(["fwd", "--iface", pair.ifname(Side::A), "--copy", "--json"])
            .args(["--mode", "l2fwd", "--workers", "2", "--duration", "60"])
            .args(["--interval", "0.2"])
            .process_group(0)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut lines = std::io::BufReader::new(owner.0.stdout.take().unwrap()).lines();
    let stderr = owner.0.stderr.take().unwrap();
    let err = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap());
    let by = Instant::now() + Duration::from_secs(20);
    loop {
        let line: serde_json::Value =
            serde_json::from_str(&lines.next().expect("fwd ended early").unwrap()).unwrap();
        if workers_of(&line).iter().all(|w| w.pid.is_some()) {
            break;
        }
        assert!(Instant::now() < by, "the workers did not join: {line}");
    }
    // SAFETY: kill has no memory preconditions; the group is the owner's
    // (process_group(0) made it its leader).
    let r = unsafe { libc::kill(-(owner.0.id() as i32), libc::SIGINT) };
    assert_eq!(r, 0);
    let summary: serde_json::Value = lines
        .map(|l| serde_json::from_str::<serde_json::Value>(&l.unwrap()).unwrap())
        .find(|v| v["type"] == "workers_summary")
        .expect("no summary");
    assert!(owner.0.wait().unwrap().success());
    let err = err.join().unwrap();
    assert!(!err.contains("starting another"), "{err}");
    assert_eq!(summary["frames_accounted"], true, "{summary}");
    for w in summary["per_worker"].as_array().unwrap() {
        assert_eq!(w["joins"], 1, "{summary}");
    }
}

/// A `fwd --workers` killed with SIGKILL leaves its offer socket in the
/// temporary directory; the next `fwd`, `demo` or `watch` removes it and
/// says so, and leaves a live process's socket alone.
#[test]
fn a_dead_runs_offer_socket_is_removed_by_the_next_run() {
    if !common::root("skmemctl watch") {
        return;
    }
    // A pid that was a process and is no more.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead = gone.id();
    gone.wait().unwrap();
    let dir = std::env::temp_dir();
    let left = dir.join(format!("skmemctl-fwd-{dead}-q0.sock"));
    let live = dir.join(format!("skmemctl-fwd-{}-q0.sock", std::process::id()));
    for p in [&left, &live] {
        let _ = std::fs::remove_file(p);
        // Bound and dropped: the socket file stays, as a killed run's does.
        drop(std::os::unix::net::UnixListener::bind(p).unwrap());
    }
    // A pid that is no process here, but a live listener on its socket
    // (a maker in another PID namespace): probed, and left alone.
    let elsewhere = dir.join(format!("skmemctl-fwd-{dead}-q1.sock"));
    let _ = std::fs::remove_file(&elsewhere);
    let listener = {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let fd = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        rustix::net::bind(&fd, &SocketAddrUnix::new(&elsewhere).unwrap()).unwrap();
        rustix::net::listen(&fd, 4).unwrap();
        fd
    };
    let out = Command::new(env!("CARGO_BIN_EXE_skmemctl"))
        .args(["watch", "--no-munmap", "--duration", "1"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    let _ = std::fs::remove_file(&live);
    let kept = elsewhere.exists();
    drop(listener);
    let _ = std::fs::remove_file(&elsewhere);
    assert!(kept, "a listened-on socket was removed: {err}");
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "removed the offer socket a dead run left: {}",
            left.display()
        )),
        "{err}"
    );
    assert!(!left.exists(), "{err}");
    assert!(!err.contains(&live.display().to_string()), "{err}");
}
