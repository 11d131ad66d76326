//! Creating and removing namespace pairs (needs root; skipped otherwise).

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod common;

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::Instant;

use common::{assert_gone, names, netns_list, root_ifnames};
use skmem_netns::{
    cleanup_stale, names_for, pid_of_name, Error, NetnsPair, PairConfig, Side, MAX_IFNAME,
};

#[test]
fn dropping_a_pair_removes_both_namespaces_and_the_veth() {
    skmem_netns::require_root!();
    let t = Instant::now();
    let pair = NetnsPair::new().unwrap();
    let created = t.elapsed();
    let (ns, ifs) = names(&pair);
    let list = netns_list();
    assert!(list.contains(&ns[0]) && list.contains(&ns[1]), "{list:?}");
    // Nothing is created in the root namespace, not even transiently visible.
    let links = root_ifnames();
    assert!(!links.contains(&ifs[0]) && !links.contains(&ifs[1]));
    let t = Instant::now();
    drop(pair);
    eprintln!("create {created:?}, drop {:?}", t.elapsed());
    assert_gone(&ns, &ifs);
}

#[test]
fn a_panicking_test_body_still_removes_its_pair() {
    skmem_netns::require_root!();
    let seen: Mutex<Option<(Vec<String>, Vec<String>)>> = Mutex::new(None);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let pair = NetnsPair::new().unwrap();
        *seen.lock().unwrap() = Some(names(&pair));
        // The pair is alive here...
        assert!(netns_list().contains(&pair.ns_name(Side::A).to_owned()));
        panic!("test body fails while the pair is alive");
    }));
    assert!(r.is_err());
    let (ns, ifs) = seen.into_inner().unwrap().expect("body ran");
    assert_gone(&ns, &ifs);
}

#[test]
fn a_panic_inside_in_ns_propagates_and_the_pair_is_removed() {
    skmem_netns::require_root!();
    let seen = Mutex::new(None);
    let r = catch_unwind(AssertUnwindSafe(|| {
        let pair = NetnsPair::new().unwrap();
        *seen.lock().unwrap() = Some(names(&pair));
        pair.in_ns(Side::B, || panic!("boom inside the namespace"));
    }));
    let payload = r.unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>().copied(),
        Some("boom inside the namespace")
    );
    let (ns, ifs) = seen.into_inner().unwrap().unwrap();
    assert_gone(&ns, &ifs);
}

#[test]
fn failed_creation_reports_the_command_and_leaves_nothing() {
    skmem_netns::require_root!();
    // veth refuses 0 RX queues, so `ip link add` fails after both
    // namespaces exist.
    let err = NetnsPair::with_config(PairConfig::default().queues(0, 4)).unwrap_err();
    eprintln!("{err}");
    let Error::Command {
        cmd, ns, stderr, ..
    } = &err
    else {
        panic!("unexpected error {err:?}");
    };
    assert!(cmd.starts_with("ip -n skm"), "{cmd}");
    assert!(cmd.contains("numrxqueues 0"), "{cmd}");
    assert!(!stderr.is_empty());
    let ns_a = ns.clone().expect("namespace named");
    assert!(err.to_string().contains(&ns_a), "{err}");
    let me = std::process::id();
    let n = ns_a
        .strip_prefix(&format!("skm{me}a"))
        .expect("A's name")
        .to_owned();
    let ns_b = format!("skm{me}b{n}");
    let ifs = [format!("skv{me}a{n}"), format!("skv{me}b{n}")];
    assert_gone(&[ns_a, ns_b], &ifs);
}

#[test]
fn configuration_is_applied_to_both_ends() {
    skmem_netns::require_root!();
    let mut cfg = PairConfig::default().mtu(9000).addrs(
        Ipv4Addr::new(10, 77, 0, 1),
        Ipv4Addr::new(10, 77, 0, 2),
        24,
    );
    cfg.a.mac = Some([0x02, 0x5a, 0, 0, 0, 0x0a]);
    cfg.b.rx_queues = 2;
    cfg.b.tx_queues = 3;
    let pair = NetnsPair::with_config(cfg).unwrap();
    assert_eq!(pair.mac(Side::A), [0x02, 0x5a, 0, 0, 0, 0x0a]);
    assert_ne!(pair.mac(Side::B), [0; 6]);
    assert_ne!(pair.mac(Side::A), pair.mac(Side::B));
    for side in [Side::A, Side::B] {
        let ifname = pair.ifname(side);
        let sysfs = format!("/sys/class/net/{ifname}");
        let show = pair
            .exec_ok(side, "ip", ["-o", "addr", "show", "dev", ifname])
            .unwrap();
        let show = String::from_utf8_lossy(&show.stdout);
        let ip = pair.ipv4(side).unwrap();
        assert!(show.contains(&format!("inet {ip}/24")), "{show}");
        assert!(!show.contains("inet6"), "IPv6 address on {ifname}: {show}");
        let v6 = pair
            .exec_ok(
                side,
                "sysctl",
                ["-n", &format!("net.ipv6.conf.{ifname}.disable_ipv6")],
            )
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&v6.stdout).trim(), "1");
        let cat = |f: &str| {
            let o = pair.exec_ok(side, "cat", [format!("{sysfs}/{f}")]).unwrap();
            String::from_utf8_lossy(&o.stdout).trim().to_owned()
        };
        assert_eq!(cat("mtu"), "9000");
        assert_eq!(cat("operstate"), "up");
        assert_eq!(cat("ifindex"), pair.ifindex(side).to_string());
        let queues = pair
            .exec_ok(side, "ls", [format!("{sysfs}/queues")])
            .unwrap();
        let queues = String::from_utf8_lossy(&queues.stdout);
        let rx = queues
            .split_whitespace()
            .filter(|q| q.starts_with("rx-"))
            .count();
        let tx = queues
            .split_whitespace()
            .filter(|q| q.starts_with("tx-"))
            .count();
        let want = match side {
            Side::A => (4, 4),
            Side::B => (2, 3),
        };
        assert_eq!((rx, tx), want, "{side} queues: {queues}");
    }
    let stats = pair.ethtool_stats(Side::A).unwrap();
    assert!(stats.contains_key("peer_ifindex"), "{stats:?}");
    assert_eq!(stats["peer_ifindex"], u64::from(pair.ifindex(Side::B)));
}

#[test]
fn names_are_unique_and_fit_in_ifnamsiz() {
    skmem_netns::require_root!();
    let pairs: Vec<NetnsPair> = (0..3).map(|_| NetnsPair::new().unwrap()).collect();
    let mut all = HashSet::new();
    let me = std::process::id();
    for p in &pairs {
        for side in [Side::A, Side::B] {
            for n in [p.ns_name(side), p.ifname(side)] {
                assert!(n.len() <= MAX_IFNAME, "{n}");
                assert!(n.contains(&me.to_string()), "{n}");
                assert_eq!(pid_of_name(n), Some(me));
                assert!(all.insert(n.to_owned()), "{n} used twice");
            }
        }
    }
    // Every name, even for the largest pid, fits.
    let (ns, ifs) = names_for(4_194_304, u32::MAX);
    assert!(ns.iter().chain(&ifs).all(|n| n.len() <= MAX_IFNAME));
}

#[test]
fn cleanup_stale_removes_dead_processes_namespaces_only() {
    skmem_netns::require_root!();
    let dead = {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        pid
    };
    let (dead_ns, _) = names_for(dead, 12_345);
    let (live_ns, _) = names_for(std::process::id(), 36 * 36 * 36 * 36 - 1);
    for n in [&dead_ns[0], &live_ns[0]] {
        common::root_cmd("ip", &["netns", "add", n]);
    }
    let removed = cleanup_stale();
    let list = netns_list();
    let live_kept = list.contains(&live_ns[0]);
    common::root_cmd("ip", &["netns", "del", &live_ns[0]]);
    assert!(removed.contains(&dead_ns[0]), "{removed:?}");
    assert!(!list.contains(&dead_ns[0]));
    assert!(live_kept, "namespace of a live process removed");
    assert!(!removed
        .iter()
        .any(|n| pid_of_name(n) == Some(std::process::id())));
}
