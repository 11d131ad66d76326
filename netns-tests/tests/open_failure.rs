//! Fault injection: a failure at any step of opening a channel — the
//! socket, each setsockopt, each ring's mmap, the bind, the claims on the
//! arena — undoes every step before it: no fd, no mapping, no schema ring
//! table, no slot hold, no RING or slot-descriptor object, no holder number
//! is left, and the next open succeeds.
//!
//! This binary holds one test so that nothing else in the process opens
//! files or maps memory while it counts.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::collections::BTreeSet;

use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams};
use skmem::{failpoint, Error};
use skmem_netns::{NetnsPair, PairConfig, Side};

/// (fds open, mappings, bytes mapped in all but the brk heap).
fn footprint() -> (usize, usize, usize) {
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let size = |l: &str| {
        let range = l.split_whitespace().next().unwrap();
        let (a, b) = range.split_once('-').unwrap();
        usize::from_str_radix(b, 16).unwrap() - usize::from_str_radix(a, 16).unwrap()
    };
    let lines: Vec<&str> = maps.lines().filter(|l| !l.ends_with("[heap]")).collect();
    (fds, lines.len(), lines.iter().map(|l| size(l)).sum())
}

/// What an arena lends a channel, all of which must be back after a
/// failed open: (a channel's rings in the schema, slot holds, RING /
/// TXA / RXF objects in use).
fn lent(arena: &Arena) -> (bool, bool, [u64; 3]) {
    let n = arena.nexus().unwrap();
    let in_use = |c: Option<&std::sync::Arc<skmem::cache::Cache>>| c.unwrap().stats().obj_in_use;
    (
        n.has_channel(),
        !arena.sd_idle(),
        [
            in_use(n.ring_cache()),
            in_use(n.txaksd_cache()),
            in_use(n.rxfksd_cache()),
        ],
    )
}

/// Opens with the n-th step failing, for n = 1, 2, … until the open
/// succeeds, checking after every failure that nothing is left; returns
/// the names of the steps that failed.
fn every_step_fails_cleanly(
    what: &str,
    arena: &Arena,
    open: impl Fn() -> skmem::Result<Channel>,
) -> BTreeSet<&'static str> {
    let before = (footprint(), lent(arena));
    let mut steps = BTreeSet::new();
    let mut n = 1;
    loop {
        failpoint::fail_after(n);
        match open() {
            Err(Error::Injected { step }) => {
                assert_eq!(
                    (footprint(), lent(arena)),
                    before,
                    "{what}: left behind after a failure at step {n} ({step})"
                );
                steps.insert(step);
                n += 1;
            }
            Ok(ch) => {
                failpoint::fail_after(0);
                assert_ne!(lent(arena), before.1, "{what}: a live channel shows");
                drop(ch);
                assert_eq!(
                    (footprint(), lent(arena)),
                    before,
                    "{what}: left behind after a full open and close"
                );
                return steps;
            }
            Err(e) => panic!("{what}: step {n}: unexpected error {e}"),
        }
    }
}

#[test]
fn a_failure_at_any_step_of_opening_a_channel_leaves_nothing() {
    skmem_netns::require_root!();
    let pair = NetnsPair::with_config(PairConfig::default().queues(2, 2)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    let steps = pair.in_ns(Side::A, || {
        let pool = skmem::pool::PacketPool::create(
            "openfail",
            &skmem::pool::PoolParams::default().with(|p| {
                p.packets = 512;
                p.workers = 2;
            }),
        )
        .unwrap();
        let arena = |q: u32| {
            let mut np = NexusParams::new(format!("openfail.q{q}"));
            np.rx_pool = Some(pool.clone());
            Arena::create_nexus(&np).unwrap()
        };
        let (a0, a1) = (arena(0), arena(1));
        let params = |q| {
            let mut cp = ChannelParams::new(&ifname, q);
            cp.mode = BindMode::Copy;
            cp.busy_poll = Some((20, 64));
            cp
        };
        // Once for what lives for the process (the allocator's arenas, the
        // membarrier registration), before counting.
        drop(Channel::open(&a0, &params(0)).unwrap());
        let mut steps = every_step_fails_cleanly("open", &a0, || Channel::open(&a0, &params(0)));
        // A socket sharing the first one's UMEM: its own steps too.
        let first = Channel::open(&a0, &params(0)).unwrap();
        drop(Channel::open_shared(&a1, &params(1), &first).unwrap());
        steps.extend(every_step_fails_cleanly("open_shared", &a1, || {
            Channel::open_shared(&a1, &params(1), &first)
        }));
        steps
    });
    eprintln!("{} distinct failure points: {steps:?}", steps.len());
    for step in [
        "channel holder",
        "socket(AF_XDP)",
        "XDP_UMEM_REG",
        "setsockopt(XDP ring size)",
        "XDP_MMAP_OFFSETS",
        "mmap(XDP ring)",
        "bind(AF_XDP)",
        "bind(AF_XDP, shared UMEM)",
        "XDP_OPTIONS",
        "setsockopt(busy poll)",
        "setsockopt(XDP_MAX_TX_SKB_BUDGET)",
        "arena map",
        "schema rings",
        "slot descriptors",
        "slot hold",
        "cache worker",
    ] {
        assert!(steps.contains(step), "{step} was never failed: {steps:?}");
    }
}
