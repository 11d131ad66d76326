//! The eBPF observation end to end (root, real uprobes and tracepoints):
//! a child process (`skmem-arena-child`, driven line by line over its
//! stdin/stdout, no sleeps) creates, maps, redirects, unmaps, defuncts and
//! destroys arenas while an `Observer` attached to its binary watches.
//!
//! Without root every test prints why and passes.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use skmem_xdp::observe::{ArenaInfo, ObserveTarget, ObservedEvent, Observer, MUNMAP_HOLD};

const CHILD: &str = env!("CARGO_BIN_EXE_skmem-arena-child");
const SKMEMCTL: &str = env!("CARGO_BIN_EXE_skmemctl");
const WAIT: Duration = Duration::from_secs(10);

fn root() -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        eprintln!("skipped: needs root (uprobes, tracepoints, bpffs)");
    }
    root
}

fn observer() -> Observer {
    Observer::attach(ObserveTarget::binaries([PathBuf::from(CHILD)])).expect("attach")
}

/// The scripted child.
struct Kid {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pid: u32,
}

impl Kid {
    fn spawn() -> Kid {
        let mut child = Command::new(CHILD)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn child");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let pid = line
            .strip_prefix("ready ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("child said {line:?}"));
        assert_eq!(pid, child.id());
        Kid {
            child,
            stdin,
            stdout,
            pid,
        }
    }

    /// Sends one command; returns the words of its `ok` answer (or the
    /// whole `err` line as the single word).
    fn cmd(&mut self, line: &str) -> Vec<String> {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        let answer = answer.trim();
        match answer.strip_prefix("ok") {
            Some(rest) => rest.split_whitespace().map(str::to_owned).collect(),
            None => vec![answer.to_owned()],
        }
    }

    fn ok_num(&mut self, line: &str, i: usize) -> u64 {
        let words = self.cmd(line);
        words
            .get(i)
            .and_then(|w| w.parse().ok())
            .unwrap_or_else(|| panic!("{line}: {words:?}"))
    }

    fn finish(mut self) {
        writeln!(self.stdin, "exit").ok();
        self.child.wait().unwrap();
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    let mut obs = observer();
    let mut kid = Kid::spawn();
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
    let mut obs = observer();
    let mut kid = Kid::spawn();
    let pid = kid.pid;
    let sys = kid.ok_num("create system obs-kill", 0);
    let map = kid.cmd(&format!("map {sys}"));
    let (addr, size): (u64, u64) = (map[1].parse().unwrap(), map[2].parse().unwrap());
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
    let mut obs = observer();
    let mut kid = Kid::spawn();
    let pid = kid.pid;
    let id = kid.ok_num("create system obs-munmap", 0);
    let map = kid.cmd(&format!("map {id}"));
    let (addr, size): (u64, u64) = (map[1].parse().unwrap(), map[2].parse().unwrap());
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

#[test]
fn stats_lists_exactly_the_live_arenas_of_two_processes() {
    if !root() {
        return;
    }
    let obs = observer();
    let mut a = Kid::spawn();
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

    let out = Command::new(SKMEMCTL)
        .args(["stats", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
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
    use std::os::unix::process::CommandExt as _;
    let out = Command::new(SKMEMCTL)
        .arg("stats")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("EPERM") && err.contains("root"), "{err}");
    let out = Command::new(SKMEMCTL)
        .arg("watch")
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
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
