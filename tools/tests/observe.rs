//! The eBPF observation end to end (root, real uprobes and tracepoints):
//! a child process (`skmem-arena-child`, driven line by line over its
//! stdin/stdout, no sleeps) creates, maps, redirects, unmaps, defuncts and
//! destroys arenas while an `Observer` attached to its binary watches.
//!
//! Without root every test prints why and passes.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use skmem_xdp::observe::{ArenaInfo, ObserveTarget, ObservedEvent, Observer, MUNMAP_HOLD};

mod common;

use common::skmemctl::{self, KillOnDrop};
use common::{Kid, CHILD, SKMEMCTL};

const WAIT: Duration = Duration::from_secs(10);

fn root() -> bool {
    common::root("observe")
}

fn observer() -> Observer {
    Observer::attach(ObserveTarget::binaries([PathBuf::from(CHILD)])).expect("attach")
}

/// An observer, then a scripted child it sees from its start.
fn observed_kid() -> (Observer, Kid) {
    let obs = observer();
    (obs, Kid::spawn())
}

/// Has `kid` create an arena (`create` is the child's command) and map it
/// once; returns the arena's id and the mapping's address and size.
fn create_mapped(kid: &mut Kid, create: &str) -> (u64, u64, u64) {
    let id = kid.ok_num(create, 0);
    let map = kid.cmd(&format!("map {id}"));
    (id, map[1].parse().unwrap(), map[2].parse().unwrap())
}

/// `skmemctl VERB` run as nobody (uid and gid 65534).
fn as_nobody(verb: &str) -> Output {
    use std::os::unix::process::CommandExt as _;
    Command::new(SKMEMCTL)
        .arg(verb)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap()
}

/// Collects `pid`'s events until `done` holds for one (included), failing
/// after [`WAIT`].
fn events_until(
    obs: &mut Observer,
    pid: u32,
    mut done: impl FnMut(&ObservedEvent) -> bool,
) -> Vec<ObservedEvent> {
    let start = Instant::now();
    let mut out = Vec::new();
    while start.elapsed() < WAIT {
        for ev in obs.next_events(Duration::from_millis(100)).unwrap() {
            if ev.pid != pid {
                continue;
            }
            let stop = done(&ev);
            out.push(ev);
            if stop {
                return out;
            }
        }
    }
    panic!("timed out; events so far: {out:#?}");
}

fn arenas_of(list: &[ArenaInfo], pids: &[u32]) -> Vec<(u32, String, &'static str, u32)> {
    let mut v: Vec<_> = list
        .iter()
        .filter(|a| pids.contains(&a.pid))
        .map(|a| (a.pid, a.name.clone(), a.state, a.map_count))
        .collect();
    v.sort();
    v
}

#[test]
fn lifecycle_events_arrive_in_order_with_their_fields() {
    if !root() {
        return;
    }
    let (mut obs, mut kid) = observed_kid();
    let pid = kid.pid;
    let id = kid.ok_num("create nexus obs-life", 0);
    let m0 = kid.cmd(&format!("map {id}"));
    let m1 = kid.cmd(&format!("map {id}"));
    assert_eq!(m1[2], m0[2], "every span of an arena has its size");
    let size: u64 = m0[2].parse().unwrap();
    let addr0: u64 = m0[1].parse().unwrap();
    assert_eq!(kid.cmd("redirect 0"), ["0"]);
    assert_eq!(kid.cmd("redirect 1"), ["1"], "last active mapping");
    let refused = kid.cmd(&format!("map {id}"));
    assert!(refused[0].starts_with("err 19 "), "{refused:?}");
    kid.cmd(&format!("reap {id} purge"));
    kid.cmd(&format!("defunct {id}"));
    // The live map, mid-way: DEFUNCT with two mappings by the child.
    let live = obs.live_arenas().unwrap();
    let a = live
        .iter()
        .find(|a| a.pid == pid && a.arena_id == id)
        .expect("arena in the live map");
    assert_eq!(
        (a.name.as_str(), a.kind, a.state, a.map_count, a.map_size),
        ("skmem.nexus.obs-life", "nexus", "DEFUNCT", 2, size)
    );
    assert_eq!(a.mapped_pids, [pid, pid]);
    assert!(!a.late);
    // Its region totals, refreshed by the defunct hook (which released
    // memory): what the child's `Arena::mem_stats` says now.
    let mem = kid.cmd(&format!("mem {id}"));
    assert_eq!(
        (a.mem_total, a.mem_inuse),
        (mem[0].parse().unwrap(), mem[1].parse().unwrap()),
        "{mem:?}"
    );
    kid.cmd("unmap 0");
    kid.cmd("unmap 1");
    kid.cmd(&format!("drop {id}"));

    let evs = events_until(&mut obs, pid, |e| e.event == "destroy");
    let got: Vec<(&str, u32, i32, &str, u32)> = evs
        .iter()
        .map(|e| (e.event, e.flags, e.error, e.state, e.map_count))
        .collect();
    assert_eq!(
        got,
        [
            ("create", 0, 0, "ACTIVE", 0),
            ("map", 0, 0, "ACTIVE", 1),
            ("map", 0, 0, "ACTIVE", 2),
            ("redirect", 0, 0, "ACTIVE", 2),
            ("redirect", 1, 0, "INACTIVE", 2),
            ("map", 0, libc::ENODEV, "INACTIVE", 2),
            ("reap", 1, 0, "INACTIVE", 2),
            ("defunct", 0, 0, "DEFUNCT", 2),
            ("unmap", 0, 0, "DEFUNCT", 1),
            ("unmap", 0, 0, "DEFUNCT", 0),
            ("destroy", 0, 0, "-", 0),
        ],
        "{evs:#?}"
    );
    for e in &evs {
        assert_eq!(e.arena, "skmem.nexus.obs-life");
        assert_eq!(e.arena_id, id);
        assert_eq!(e.kind, "nexus");
        assert_eq!(e.pid, pid);
    }
    assert_eq!((evs[1].span_addr, evs[1].span_size), (addr0, size));
    assert_eq!(evs[2].span_size, size);
    assert_eq!(evs[5].span_size, 0, "a refused map has no span");
    assert!(evs[0].mem_total > 0, "create carries the totals");
    assert!(evs[7].mem_total <= evs[6].mem_total, "defunct releases");
    assert_eq!(evs[10].mem_total, 0, "destroy has nothing left");
    assert!(evs
        .windows(2)
        .all(|w| w[0].time_unix_ns <= w[1].time_unix_ns));
    assert!(
        obs.live_arenas().unwrap().iter().all(|a| a.pid != pid),
        "destroyed arenas leave the live map"
    );
    kid.finish();
    let c = obs.counters().unwrap();
    assert_eq!((c.ring_full, c.read_failed), (0, 0));
}

#[test]
fn sigkill_of_a_mapper_reports_its_exit_and_clears_its_arenas() {
    if !root() {
        return;
    }
    let (mut obs, mut kid) = observed_kid();
    let pid = kid.pid;
    let (_, addr, size) = create_mapped(&mut kid, "create system obs-kill");
    let necp = kid.ok_num("create necp obs-kill-flows", 0);
    let live = obs.live_arenas().unwrap();
    assert_eq!(
        arenas_of(&live, &[pid]),
        [
            (pid, "skmem.necp.obs-kill-flows".into(), "ACTIVE", 0),
            (pid, "skmem.system.obs-kill".into(), "ACTIVE", 1),
        ]
    );
    let _ = necp;
    kid.child.kill().unwrap(); // SIGKILL
    kid.child.wait().unwrap();
    let evs = events_until(&mut obs, pid, |e| e.event == "exit");
    let exit = evs.last().unwrap();
    assert_eq!(exit.exit_arenas, Some(2), "{exit:#?}");
    assert_eq!(exit.exit_mappings, Some(1));
    assert_eq!(exit.arena, "skmem.system.obs-kill", "the mapped arena");
    assert_eq!((exit.span_addr, exit.span_size), (addr, size));
    assert_eq!(exit.state, "-");
    assert!(
        evs.iter().all(|e| e.event != "munmap"),
        "the kernel's teardown is not an munmap: {evs:#?}"
    );
    assert!(
        obs.live_arenas().unwrap().iter().all(|a| a.pid != pid),
        "the dead process's arenas left the live map"
    );
}

#[test]
fn munmap_behind_the_librarys_back_is_reported_and_its_own_are_not() {
    if !root() {
        return;
    }
    let (mut obs, mut kid) = observed_kid();
    let pid = kid.pid;
    let (id, addr, size) = create_mapped(&mut kid, "create system obs-munmap");
    // A second mapping unmapped by the library: no munmap report.
    kid.cmd(&format!("map {id}"));
    kid.cmd("unmap 1");
    assert_eq!(kid.cmd("munmap 0"), ["0"]);
    let evs = events_until(&mut obs, pid, |e| e.event == "munmap");
    let names: Vec<&str> = evs.iter().map(|e| e.event).collect();
    assert_eq!(names, ["create", "map", "map", "unmap", "munmap"]);
    let m = evs.last().unwrap();
    assert_eq!((m.munmap_addr, m.munmap_len), (Some(addr), Some(size)));
    assert_eq!((m.span_addr, m.span_size), (addr, size));
    assert_eq!(m.arena, "skmem.system.obs-munmap");
    assert_eq!(m.arena_id, id);
    // The library's own unmap of that span later: reported as unmap only.
    kid.cmd("unmap 0");
    kid.cmd(&format!("drop {id}"));
    let evs = events_until(&mut obs, pid, |e| e.event == "destroy");
    let names: Vec<&str> = evs.iter().map(|e| e.event).collect();
    assert_eq!(names, ["unmap", "destroy"]);
    // Nothing held back either.
    let start = Instant::now();
    while start.elapsed() < MUNMAP_HOLD * 2 {
        let late = obs.next_events(Duration::from_millis(50)).unwrap();
        assert!(late.iter().all(|e| e.pid != pid), "{late:#?}");
    }
    kid.finish();
}

/// `skip_munmap` leaves the syscall tracepoint out: an munmap behind the
/// library's back goes unreported, the lifecycle and the exit still are.
#[test]
fn without_the_munmap_probe_the_rest_is_still_seen() {
    if !root() {
        return;
    }
    let target = ObserveTarget {
        skip_munmap: true,
        ..ObserveTarget::binaries([PathBuf::from(CHILD)])
    };
    let mut obs = Observer::attach(target).expect("attach");
    let mut kid = Kid::spawn();
    let pid = kid.pid;
    create_mapped(&mut kid, "create system obs-nomunmap");
    assert_eq!(kid.cmd("munmap 0"), ["0"]);
    // With the probe, this create would release the held munmap first.
    kid.ok_num("create necp obs-nomunmap-flows", 0);
    let evs = events_until(&mut obs, pid, |e| {
        e.event == "create" && e.arena.contains("necp")
    });
    let names: Vec<&str> = evs.iter().map(|e| e.event).collect();
    assert_eq!(names, ["create", "map", "create"]);
    kid.child.kill().unwrap();
    kid.child.wait().unwrap();
    let evs = events_until(&mut obs, pid, |e| e.event == "exit");
    assert_eq!(evs.last().unwrap().exit_arenas, Some(2), "{evs:#?}");
    assert!(evs.iter().all(|e| e.event != "munmap"), "{evs:#?}");
}

/// `skmemctl watch --no-munmap` says so once attached, then prints the
/// lifecycle but not an munmap behind the library's back.
#[test]
fn watch_no_munmap_says_so_and_prints_no_munmap() {
    if !root() {
        return;
    }
    let mut kid = Kid::spawn();
    let mut watch = KillOnDrop(
        Command::new(SKMEMCTL)
            .args(["watch", "--pid", &kid.pid.to_string(), "--no-munmap"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The banner comes once the probes are attached (after a line about
    // any pin a killed observer left).
    // (Kept open to the end: a closed stderr would fail watch's writes.)
    let mut err = BufReader::new(watch.0.stderr.take().unwrap()).lines();
    let banner = err
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.starts_with("watching"))
        .expect("no banner before watch's stderr closed");
    assert!(
        banner.starts_with("watching pid") && banner.contains(", no munmap probe;"),
        "{banner}"
    );
    create_mapped(&mut kid, "create system obs-cli-nomunmap");
    assert_eq!(kid.cmd("munmap 0"), ["0"]);
    kid.ok_num("create necp obs-cli-nomunmap-flows", 0);
    let (tx, rx) = std::sync::mpsc::channel();
    let out = BufReader::new(watch.0.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut events = Vec::new();
    loop {
        let line = rx.recv_timeout(WAIT).expect("skmemctl watch went quiet");
        // "TIME pid=N ARENA#ID EVENT details"
        let f: Vec<&str> = line.split_whitespace().collect();
        events.push(f[3].to_owned());
        if f[3] == "create" && f[2].starts_with("skmem.necp.") {
            break;
        }
    }
    assert_eq!(events, ["create", "map", "create"]);
    kid.finish();
    drop(err);
}

#[test]
fn stats_lists_exactly_the_live_arenas_of_two_processes() {
    if !root() {
        return;
    }
    let (obs, mut a) = observed_kid();
    let mut b = Kid::spawn();
    let nexus = a.ok_num("create nexus obs-stats-a", 0);
    a.cmd(&format!("map {nexus}"));
    let sys = a.ok_num("create system obs-stats-a", 0);
    let gone = a.ok_num("create system obs-stats-gone", 0);
    a.cmd(&format!("drop {gone}"));
    let flows = b.ok_num("create necp obs-stats-b", 0);
    b.cmd(&format!("map {flows}"));
    b.cmd("redirect 0");
    let _ = sys;

    let (json, _) = skmemctl::stats_json(&[]);
    let pins = json["pins"].as_array().unwrap();
    assert!(pins
        .iter()
        .any(|p| p.as_str() == obs.pin_path().and_then(|p| p.to_str())));
    let listed: Vec<ArenaInfoJson> = json["arenas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| [a.pid, b.pid].contains(&(v["pid"].as_u64().unwrap() as u32)))
        .map(|v| {
            (
                v["pid"].as_u64().unwrap() as u32,
                v["name"].as_str().unwrap().to_owned(),
                v["state"].as_str().unwrap().to_owned(),
                v["map_count"].as_u64().unwrap() as u32,
            )
        })
        .collect();
    let mut want = vec![
        (
            a.pid,
            "skmem.nexus.obs-stats-a".to_owned(),
            "ACTIVE".to_owned(),
            1,
        ),
        (
            a.pid,
            "skmem.system.obs-stats-a".to_owned(),
            "ACTIVE".to_owned(),
            0,
        ),
        (
            b.pid,
            "skmem.necp.obs-stats-b".to_owned(),
            "INACTIVE".to_owned(),
            1,
        ),
    ];
    want.sort();
    let mut got = listed;
    got.sort();
    assert_eq!(got, want);

    // The nexus arena's region totals, as the child published them with its
    // last hook (the map), equal what the child's `Arena::mem_stats` says.
    let (total, inuse) = {
        let m = a.cmd(&format!("mem {nexus}"));
        let n = |i: usize| -> u64 { m[i].parse().unwrap_or_else(|_| panic!("mem: {m:?}")) };
        (n(0), n(1))
    };
    assert!(total > 0, "a nexus arena has regions");
    let entry = json["arenas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["pid"].as_u64() == Some(u64::from(a.pid)) && v["arena_id"].as_u64() == Some(nexus)
        })
        .expect("the nexus arena in stats --json");
    let listed_total = entry["mem_total"].as_u64().expect("mem_total");
    let listed_inuse = entry["mem_inuse"].as_u64().expect("mem_inuse");
    assert_ne!(listed_total, 0, "{entry:#}");
    assert_eq!(listed_total, total, "{entry:#}");
    assert_eq!(listed_inuse, inuse, "{entry:#}");

    // The table form names them too.
    let out = Command::new(SKMEMCTL).arg("stats").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("skmem.necp.obs-stats-b"), "{text}");
    assert!(text.contains("INACTIVE"), "{text}");
    assert!(text.contains("MEM"), "{text}");
    let nexus_row = text
        .lines()
        .find(|l| l.contains("skmem.nexus.obs-stats-a"))
        .unwrap_or_else(|| panic!("{text}"));
    let mem_col = format!(
        "{}/{}",
        skmem_xdp::observe::human_bytes(inuse),
        skmem_xdp::observe::human_bytes(total)
    );
    assert!(nexus_row.contains(&mem_col), "{mem_col} in {nexus_row}");

    // After both exit (without destructors: the exit probe cleans up),
    // none of theirs is left; the pin goes with the observer.
    let pids = [a.pid, b.pid];
    a.finish();
    b.finish();
    assert_eq!(arenas_of(&obs.live_arenas().unwrap(), &pids), []);
    let pin = obs.pin_path().unwrap().to_owned();
    assert!(pin.exists());
    drop(obs);
    assert!(!pin.exists());
}

type ArenaInfoJson = (u32, String, String, u32);

#[test]
fn stats_and_watch_refuse_non_root_with_eperm() {
    if !root() {
        return;
    }
    let out = as_nobody("stats");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("EPERM") && err.contains("root"), "{err}");
    let out = as_nobody("watch");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("EPERM"));
}

#[test]
fn an_arena_created_before_the_observer_is_picked_up_late() {
    if !root() {
        return;
    }
    let mut kid = Kid::spawn();
    let pid = kid.pid;
    let id = kid.ok_num("create system obs-late", 0);
    let mut obs = observer();
    assert!(obs.live_arenas().unwrap().iter().all(|a| a.pid != pid));
    kid.cmd(&format!("map {id}"));
    let live = obs.live_arenas().unwrap();
    let a = live
        .iter()
        .find(|a| a.pid == pid)
        .expect("inserted by the map probe");
    assert_eq!(
        (a.name.as_str(), a.state, a.map_count),
        ("skmem.system.obs-late", "ACTIVE", 1)
    );
    assert!(a.late);
    let evs = events_until(&mut obs, pid, |e| e.event == "map");
    assert_eq!(evs.len(), 1);
    kid.finish();
}

/// What the arena is, replayed from the events alone.
#[derive(Debug, Default)]
struct Replay {
    active: bool,
    defunct: bool,
    /// Live mappings by span address: redirected?
    maps: std::collections::HashMap<u64, bool>,
}

impl Replay {
    fn state(&self) -> &'static str {
        match (self.active, self.defunct) {
            (_, true) => "DEFUNCT",
            (true, false) => "ACTIVE",
            (false, false) => "INACTIVE",
        }
    }

    /// Applies one event, checking that what it says could happen in the
    /// state the events before it left.
    fn apply(&mut self, e: &serde_json::Value) {
        let field = |k: &str| e[k].as_i64().unwrap_or(-1);
        let (event, error, flags) = (e["event"].as_str().unwrap(), field("error"), field("flags"));
        let span = e["span_addr"].as_u64().unwrap();
        let errno = |n: i32| i64::from(n);
        match (event, error) {
            ("create", 0) => self.active = true,
            ("map", 0) => {
                assert!(
                    self.active && !self.defunct,
                    "mapped while {}: {e}",
                    self.state()
                );
                assert!(self.maps.insert(span, false).is_none(), "{e}");
            }
            ("map", x) if x == errno(libc::ENODEV) => {
                assert!(!self.active || self.defunct, "refused while active: {e}")
            }
            ("redirect", 0) => {
                assert_eq!(self.maps.insert(span, true), Some(false), "{e}");
                let all = self.maps.values().all(|&r| r);
                assert_eq!(flags & 1 == 1, all, "{e}");
                if all {
                    self.active = false;
                }
            }
            ("redirect", x) if x == errno(libc::EALREADY) => {
                assert_eq!(self.maps.get(&span), Some(&true), "{e}")
            }
            ("unmap", 0) => {
                let redirected = self.maps.remove(&span).expect("unmap of a live mapping");
                let left = self.maps.len();
                let left_redirected = self.maps.values().filter(|&&r| r).count();
                let postponed = !redirected && left_redirected != 0 && left_redirected == left;
                assert_eq!(flags & 1 == 1, postponed, "{e}");
                if postponed {
                    self.active = false;
                }
            }
            ("defunct", 0) => {
                assert!(
                    !self.active && !self.defunct,
                    "defunct while {}: {e}",
                    self.state()
                );
                self.defunct = true;
            }
            ("defunct", x) if x == errno(libc::EBUSY) => assert!(self.active, "{e}"),
            ("defunct", x) if x == errno(libc::EALREADY) => assert!(self.defunct, "{e}"),
            ("reap", 0) | ("destroy", 0) => {}
            _ => panic!("an event the state machine has no place for: {e}"),
        }
        if event != "destroy" {
            // The probes' own live map agrees, event by event.
            assert_eq!(e["state"], self.state(), "{e}");
            assert_eq!(e["map_count"].as_u64(), Some(self.maps.len() as u64), "{e}");
        }
    }
}

/// `skmemctl watch --json` on a child whose threads map, redirect, unmap,
/// reap and defunct one arena concurrently: every event arrives, numbered
/// 0, 1, 2, … in arrival order, each one possible in the state the ones
/// before it left (with the probes' live map agreeing), and the memory
/// figures change only where the state says they do.
#[test]
fn concurrent_lifecycle_events_reach_watch_in_order_and_replay_as_skywalks_state_machine() {
    if !root() {
        return;
    }
    let mut kid = Kid::spawn();
    let mut watch = KillOnDrop(
        Command::new(SKMEMCTL)
            .args(["watch", "--pid", &kid.pid.to_string(), "--json"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let out = BufReader::new(watch.0.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    let next = |until: &mut dyn FnMut(&serde_json::Value) -> bool| {
        let mut got = Vec::new();
        loop {
            let v = rx.recv_timeout(WAIT).expect("skmemctl watch went quiet");
            let stop = until(&v);
            got.push(v);
            if stop {
                return got;
            }
        }
    };
    // Attached once it reports a marker's creation: one a second until then.
    for n in 0.. {
        assert!(n < 10, "skmemctl watch never attached");
        let marker = kid.ok_num(&format!("create system obs-marker{n}"), 0);
        match rx.recv_timeout(Duration::from_secs(1)) {
            Ok(v) if v["event"] == "create" && v["arena_id"] == marker => break,
            _ => {}
        }
    }
    let id = kid.ok_num("stress obs-stress 4000 4", 0);
    let evs: Vec<serde_json::Value> = next(&mut |v| v["event"] == "destroy" && v["arena_id"] == id)
        .into_iter()
        .filter(|v| v["arena_id"] == id)
        .collect();
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(watch.0.id() as i32, libc::SIGINT) };
    assert!(watch.0.wait().unwrap().success());
    kid.finish();

    // A verb on a thread that found no mapping to act on fires nothing.
    assert!(evs.len() > 1000, "{} events", evs.len());
    let mut replay = Replay::default();
    let (mut mem, mut defuncts) = (None, 0);
    for (i, e) in evs.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(i as u64), "lost or reordered: {e}");
        replay.apply(e);
        // One figure per state: the totals move at the defunct only.
        let total = e["mem_total"].as_u64().unwrap();
        if e["event"] == "destroy" {
            assert_eq!(total, 0);
        } else if e["event"] == "defunct" && e["error"] == 0 {
            assert!(total < mem.unwrap(), "a defunct releases memory: {e}");
            mem = Some(total);
            defuncts += 1;
        } else {
            assert_eq!(*mem.get_or_insert(total), total, "{e}");
        }
    }
    let count = |ev: &str, ok: bool| {
        evs.iter()
            .filter(|e| e["event"] == ev && (e["error"] == 0) == ok)
            .count()
    };
    eprintln!(
        "{} events: {} maps ({} refused), {} redirects ({} refused), {} unmaps, {} defuncts ({} refused)",
        evs.len(),
        count("map", true),
        count("map", false),
        count("redirect", true),
        count("redirect", false),
        count("unmap", true),
        defuncts,
        count("defunct", false)
    );
    // The run went through the whole machine.
    assert!(count("map", true) > 10 && count("redirect", true) > 10 && count("unmap", true) > 10);
    assert_eq!(defuncts, 1, "the arena was defuncted once");
}

/// A mapper the owner lends to shows up as itself: `watch` reports its
/// map, redirect and going against the owner's arena, naming its pid, and
/// `stats` lists it among the mapped pids beside the owner.
#[test]
fn a_lent_arenas_mapper_is_seen_by_watch_and_stats() {
    if !root() {
        return;
    }
    let (mut obs, mut kid) = observed_kid();
    let owner = kid.pid;
    let id = kid.ok_num("create nexus obs-lent", 0);
    kid.cmd(&format!("map {id}"));
    let path = std::env::temp_dir().join(format!("skmem-obs-{}.sock", std::process::id()));
    let path = path.to_str().unwrap().to_owned();
    assert_eq!(kid.cmd(&format!("offer {id} {path}")), Vec::<String>::new());
    let mut mapper = Command::new(env!("CARGO_BIN_EXE_skmem-mapper-child"))
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(mapper.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.starts_with("ready"), "{first}");
    let mpid = mapper.id();
    kid.cmd("wait-mappers 1");

    let (json, _) = skmemctl::stats_json(&[]);
    let arena = json["arenas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["pid"] == owner && a["arena_id"] == id)
        .unwrap_or_else(|| panic!("{json}"))
        .clone();
    let mut pids: Vec<u64> = arena["mapped_pids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .collect();
    pids.sort();
    let mut want = vec![u64::from(owner), u64::from(mpid)];
    want.sort();
    assert_eq!(pids, want, "{arena}");

    assert_eq!(kid.cmd(&format!("redirect-mapper {mpid}")), ["0"]);
    // SAFETY: kill has no memory preconditions; the pid is our child's.
    unsafe { libc::kill(mpid as i32, libc::SIGKILL) };
    let _ = mapper.wait();
    let evs = events_until(&mut obs, owner, |e| {
        e.event == "unmap" && e.mapper_pid == Some(mpid)
    });
    let lent: Vec<(&str, u32)> = evs
        .iter()
        .filter(|e| e.mapper_pid == Some(mpid))
        .map(|e| (e.event, e.flags))
        .collect();
    assert_eq!(
        lent,
        [("map", 0), ("redirect", 0), ("unmap", 2)],
        "{evs:#?}"
    );
    let gone = evs.last().unwrap();
    assert_eq!(gone.arena_id, id);
    assert!(gone.line().contains(&format!("mapper={mpid}")) && gone.line().contains("mapper gone"));
    // The owner's own events carry no mapper.
    assert!(evs
        .iter()
        .any(|e| e.event == "map" && e.mapper_pid.is_none()));
    kid.finish();
    let _ = std::fs::remove_file(&path);
}
