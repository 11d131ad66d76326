//! `skmemctl stats` without an observer, from what processes publish
//! (`skmem::publish`), and liveness across PID namespaces (owner marks):
//! a child process's arenas as JSON, Prometheus text and a table; its
//! socket removed when it is SIGKILLed; a process and an observer in PID
//! namespaces of their own.
//!
//! Without root every test prints why and passes.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

mod common;

use common::{Kid, CHILD, SKMEMCTL};

fn root() -> bool {
    common::root("stats")
}

/// `skmemctl stats ARGS` as JSON: the one `stats` record, and stderr.
#[track_caller]
fn stats_json(args: &[&str]) -> (serde_json::Value, String) {
    let (v, err) = common::skmemctl::stats_json(args);
    assert_eq!(v["type"], "stats");
    (v, err)
}

/// The statistics socket `pid` publishes on.
fn socket_of(pid: u32) -> PathBuf {
    let name = common::left::sockets_of(pid)
        .pop()
        .unwrap_or_else(|| panic!("no socket of pid {pid} in {}", skmem::owner::RUN_DIR));
    std::path::Path::new(skmem::owner::RUN_DIR).join(name)
}

#[test]
fn stats_answers_from_what_processes_publish_without_an_observer() {
    if !root() {
        return;
    }
    let mut kid = Kid::spawn();
    let nexus = kid.ok_num("create nexus pub-stats", 0);
    kid.cmd(&format!("map {nexus}"));
    kid.ok_num("create system pub-stats", 0);
    let (total, inuse) = {
        let m = kid.cmd(&format!("mem {nexus}"));
        (m[0].parse::<u64>().unwrap(), m[1].parse::<u64>().unwrap())
    };
    let pid = kid.pid.to_string();

    let (v, _) = stats_json(&["--pid", &pid]);
    let procs = v["processes"].as_array().unwrap();
    assert_eq!(procs.len(), 1, "{v:#}");
    let p = &procs[0];
    assert_eq!(p["pid"], kid.pid);
    assert_eq!(p["own_pid"], kid.pid);
    let arenas: Vec<(&str, &str, u64)> = p["arenas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap(),
                a["state"].as_str().unwrap(),
                a["map_count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        arenas,
        [
            ("skmem.nexus.pub-stats", "ACTIVE", 1),
            ("skmem.system.pub-stats", "ACTIVE", 0)
        ]
    );
    let a = &p["arenas"][0];
    assert_eq!(a["mem_total"].as_u64(), Some(total), "{a}");
    assert_eq!(a["mem_inuse"].as_u64(), Some(inuse), "{a}");
    let caches = p["caches"].as_array().unwrap();
    assert!(
        caches.iter().any(|c| c["arena"] == "skmem.nexus.pub-stats"
            && c["obj_total"].as_u64().unwrap() > 0
            && c["magazine_rounds"].as_u64().unwrap() > 0),
        "the nexus arena's packet cache, magazines on: {caches:#?}"
    );

    // The same figures for Prometheus.
    let out = Command::new(SKMEMCTL)
        .args(["stats", "--format", "prometheus", "--pid", &pid])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let want = format!(
        "skmem_arena_mem_bytes{{pid=\"{pid}\",comm=\"skmem-arena-chi\",arena=\"skmem.nexus.pub-stats\",kind=\"nexus\",state=\"ACTIVE\"}} {total}"
    );
    assert!(text.lines().any(|l| l == want), "{want}\nnot in\n{text}");
    assert!(
        text.contains("# TYPE skmem_cache_objects_in_use gauge"),
        "{text}"
    );

    // And as a table.
    let out = Command::new(SKMEMCTL)
        .args(["stats", "--pid", &pid])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with(&format!("pid {pid} (skmem-arena-chi)")),
        "{text}"
    );
    assert!(text.contains("skmem.system.pub-stats"), "{text}");
    assert!(text.contains("IN MAGS"), "{text}");

    // SIGKILLed, it cannot remove its socket: the next reader does, says
    // so, and lists it no more.
    let socket = socket_of(kid.pid);
    kid.child.kill().unwrap();
    kid.child.wait().unwrap();
    assert!(socket.exists());
    let (v, err) = stats_json(&["--pid", &pid]);
    assert_eq!(v["processes"], serde_json::json!([]), "{v:#}");
    assert!(!socket.exists());
    assert!(
        err.contains("removed the statistics socket a dead process left")
            && err.contains(socket.to_str().unwrap()),
        "{err}"
    );
}

/// `unshare --pid --fork --mount-proc` and `args`: a process in its own PID
/// namespace, killed with the namespace when `unshare` is killed.
fn in_pid_namespace(args: &[&str]) -> Command {
    let mut c = Command::new("unshare");
    c.args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .args(args);
    c
}

/// The pid, in this namespace, of a process that calls itself `own` in
/// the innermost PID namespace and descends from `ancestor`.
fn host_pid_of(ancestor: u32, own: u32) -> u32 {
    let status =
        |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let children = |pid: u32| -> Vec<u32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let mut todo = children(ancestor);
    while let Some(pid) = todo.pop() {
        let nspid = status(pid)
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:").map(str::to_owned))
            .unwrap_or_default();
        if nspid.split_whitespace().last() == Some(&own.to_string())
            && nspid.split_whitespace().count() > 1
        {
            return pid;
        }
        todo.extend(children(pid));
    }
    panic!("no descendant of {ancestor} is pid {own} in its namespace");
}

#[test]
fn a_process_in_its_own_pid_namespace_is_shown_by_its_host_pid() {
    if !root() {
        return;
    }
    let mut kid = Kid::spawn_by(in_pid_namespace(&[CHILD]));
    assert_eq!(kid.pid, 1, "the child is its namespace's init");
    kid.ok_num("create system pidns-stats", 0);
    let host = host_pid_of(kid.child.id(), 1);
    let (v, _) = stats_json(&["--pid", &host.to_string()]);
    let p = &v["processes"][0];
    assert_eq!(p["pid"], host, "{v:#}");
    assert_eq!(p["own_pid"], 1, "{v:#}");
    assert_eq!(p["arenas"][0]["name"], "skmem.system.pidns-stats", "{v:#}");
}

#[test]
fn an_observer_in_its_own_pid_namespace_is_judged_by_its_lock_not_its_pid() {
    if !root() {
        return;
    }
    let pins = || -> Vec<PathBuf> {
        std::fs::read_dir(skmem_xdp::observe::PIN_DIR)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    let before = pins();
    let mut watch = in_pid_namespace(&[SKMEMCTL, "watch"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // `watch` says "watching ..." on stderr once attached and pinned.
    let mut err = BufReader::new(watch.stderr.take().unwrap());
    let mut first = String::new();
    while !first.starts_with("watching") {
        first.clear();
        assert_ne!(err.read_line(&mut first).unwrap(), 0, "watch ended early");
    }
    let pin = pins()
        .into_iter()
        .find(|p| {
            !before.contains(p)
                && p.file_name()
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .starts_with("arenas_1_")
        })
        .unwrap_or_else(|| panic!("no pin of pid 1 after {first:?}: {:?}", pins()));

    // Pid 1 is alive on the host too, and is not the observer: the lock
    // says the observer lives, and the pin is kept.
    let (v, _) = stats_json(&[]);
    assert!(
        v["pins"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == pin.to_str()),
        "{v:#}"
    );
    assert!(pin.exists());

    // Killed with its namespace, it leaves the pin: the next reader sees
    // the lock free, removes the pin and its mark, and says so.
    watch.kill().unwrap();
    watch.wait().unwrap();
    assert!(pin.exists(), "SIGKILL leaves the pin");
    let (v, err) = stats_json(&[]);
    assert!(!pin.exists(), "{v:#}");
    assert!(
        v["removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p.as_str() == pin.to_str()),
        "{v:#}"
    );
    assert!(
        err.contains("removed the pin a dead observer left"),
        "{err}"
    );
    let mark = format!("pin-{}", pin.file_name().unwrap().to_str().unwrap());
    assert_eq!(
        skmem::owner::owner_of(&mark).unwrap(),
        None,
        "the mark went too"
    );
}
