//! Running code and commands inside a pair's namespaces (needs root).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod common;

use std::os::unix::fs::MetadataExt;

use skmem_netns::{NetnsPair, Side};

fn ifindex_here(name: &str) -> Option<u32> {
    skmem_netns::ifindex_in_current_ns(name).ok()
}

#[test]
fn in_ns_runs_on_a_thread_inside_the_namespace() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let (a, b) = (pair.ifname(Side::A), pair.ifname(Side::B));
    let ns_ino = std::fs::metadata(pair.ns_path(Side::A)).unwrap().ino();
    let (inside_ino, seen_a, seen_b) = pair.in_ns(Side::A, || {
        let ino = std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
        (ino, ifindex_here(a), ifindex_here(b))
    });
    assert_eq!(inside_ino, ns_ino, "thread is not in namespace A");
    assert_eq!(seen_a, Some(pair.ifindex(Side::A)));
    assert_eq!(seen_b, None, "B's end visible in A");
    // The calling thread never moved.
    let root_ino = std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino();
    assert_ne!(root_ino, ns_ino);
    assert_eq!(
        ifindex_here(a),
        None,
        "A's end visible in the root namespace"
    );
    assert_eq!(ifindex_here(b), None);
    let seen_b_in_b = pair.in_ns(Side::B, || ifindex_here(b));
    assert_eq!(seen_b_in_b, Some(pair.ifindex(Side::B)));
}

#[test]
fn in_ns_closures_may_borrow_and_return_values() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let mut log = Vec::new();
    let n = pair.in_ns(Side::B, || {
        log.push("ran");
        42
    });
    assert_eq!((n, log), (42, vec!["ran"]));
}

#[test]
fn spawned_thread_stays_in_the_namespace() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let name = pair.ifname(Side::B).to_owned();
    let h = pair
        .spawn_in_ns(Side::B, move || {
            std::thread::sleep(std::time::Duration::from_millis(10));
            ifindex_here(&name)
        })
        .unwrap();
    assert_eq!(h.join().unwrap(), Some(pair.ifindex(Side::B)));
}

#[test]
fn exec_runs_the_command_in_the_namespace() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let out = pair.exec(Side::A, "ip", ["-o", "link", "show"]).unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(pair.ifname(Side::A)), "{text}");
    assert!(!text.contains(pair.ifname(Side::B)), "{text}");
    // Only lo and the veth end live there.
    assert_eq!(text.lines().count(), 2, "{text}");
    // A failing command is reported, not hidden.
    let out = pair
        .exec(Side::A, "ip", ["link", "show", "dev", "nonexistent0"])
        .unwrap();
    assert!(!out.status.success());
    let err = pair
        .exec_ok(Side::A, "ip", ["link", "show", "dev", "nonexistent0"])
        .unwrap_err()
        .to_string();
    assert!(err.contains(pair.ns_name(Side::A)), "{err}");
    assert!(err.contains("nonexistent0"), "{err}");
}
