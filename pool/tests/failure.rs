//! Fault injection: a failure at any step of creating an arena releases
//! everything built before it — no memfd, no mapping left behind.
//!
//! This binary holds one test so that nothing else in the process opens
//! files or maps memory while it counts.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use skmem::arena::{Arena, NexusAdvisory, NexusAdvisoryKind, NexusParams};
use skmem::region::{RegionFlags, RegionId, RegionParams};
use skmem::{failpoint, Error};

/// (skmem memfds open, skmem mappings, bytes they map, bytes mapped in
/// all but the brk heap). The last catches anonymous mappings (guards,
/// span reservations) on kernels that cannot label them `[anon:skmem]`.
fn footprint() -> (usize, usize, usize, usize) {
    let fds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|l| l.to_string_lossy().contains("memfd:skmem."))
        .count();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let size = |l: &str| {
        let range = l.split_whitespace().next().unwrap();
        let (a, b) = range.split_once('-').unwrap();
        usize::from_str_radix(b, 16).unwrap() - usize::from_str_radix(a, 16).unwrap()
    };
    let ours: Vec<usize> = maps
        .lines()
        .filter(|l| l.contains("memfd:skmem.") || l.contains("[anon:skmem]"))
        .map(size)
        .collect();
    let all: usize = maps
        .lines()
        .filter(|l| !l.ends_with("[heap]"))
        .map(size)
        .sum();
    (fds, ours.len(), ours.iter().sum(), all)
}

/// Creates with the n-th step failing, for n = 1, 2, ... until creation
/// succeeds; checks the footprint after every failure. Returns the number
/// of steps.
fn every_step_fails_cleanly(what: &str, create: impl Fn() -> skmem::Result<Arena>) -> u32 {
    let before = footprint();
    let mut n = 1;
    loop {
        failpoint::fail_after(n);
        match create() {
            Err(Error::Injected { step }) => {
                assert_eq!(
                    footprint(),
                    before,
                    "{what}: leak after a failure at step {n} ({step})"
                );
                n += 1;
            }
            Ok(arena) => {
                failpoint::fail_after(0);
                let m = arena.map().unwrap();
                assert_ne!(footprint(), before, "{what}: a live mapping shows");
                drop(m);
                drop(arena);
                assert_eq!(
                    footprint(),
                    before,
                    "{what}: leak after a full create and destroy"
                );
                return n - 1;
            }
            Err(e) => panic!("{what}: step {n}: unexpected error {e}"),
        }
    }
}

#[test]
fn a_failure_at_any_creation_step_releases_everything() {
    // The process-wide SYSCTLS region lives for the whole process, and the
    // allocator keeps what it grew: make both before counting.
    drop(Arena::create_system("warmup").unwrap());
    let mut warm = NexusParams::new("warm");
    warm.pool.packets = 512;
    warm.pool.max_frags = 4;
    drop(Arena::create_nexus(&warm).unwrap().map().unwrap());
    let anon_names = {
        let m = skmem::sys::Mapping::inaccessible(4096).unwrap();
        let named = std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .contains("[anon:skmem]");
        drop(m);
        named
    };
    println!("anonymous mappings named: {anon_names}");

    let mut p = NexusParams::new("fail");
    p.pool.packets = 512;
    p.pool.max_frags = 4;
    p.pool.large_buf_size = 16384;
    p.pool.large_buffers = 16;
    let steps = every_step_fails_cleanly("nexus", || {
        let mut p = p.clone();
        p.nexus_advisory = Some(NexusAdvisory::new("fail", NexusAdvisoryKind::Netif, 256)?);
        Arena::create_nexus(&p)
    });
    // Regions (pool 8, advisory, slot descriptors 4, others 6), caches,
    // singletons, finalize.
    assert!(steps >= 20, "only {steps} steps");

    let u = RegionParams::new(RegionId::UStats, 64, 64)
        .with_flags(RegionFlags::MMAPOK | RegionFlags::NOMAGAZINES);
    let k = RegionParams::new(RegionId::KStats, 64, 64);
    let steps = every_step_fails_cleanly("necp", || Arena::create_necp("fail", &u, &k));
    assert_eq!(steps, 4, "two regions, a cache, finalize");

    let steps = every_step_fails_cleanly("system", || Arena::create_system("fail"));
    assert_eq!(steps, 1, "finalize");
}
