//! Defunct gives the memory back: the owner drops every memfd and view of
//! the regions Skywalk releases at once, and the pages go when the last
//! view of them (a redirected mapping) is unmapped — for a nexus arena and
//! for an NECP arena.
//!
//! This binary holds one test so that nothing else in the process opens
//! memfds while it counts.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::os::unix::fs::MetadataExt;

use skmem::arena::{Arena, NexusParams};
use skmem::region::{RegionFlags, RegionId, RegionParams};

/// (skmem memfds this process holds, bytes of memory they hold, skmem
/// mappings in /proc/self/maps).
fn held() -> (usize, u64, usize) {
    let mut fds = 0;
    let mut bytes = 0;
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        if link.to_string_lossy().contains("memfd:skmem.") {
            fds += 1;
            // stat through the link: the memfd itself.
            bytes += std::fs::metadata(e.path()).map_or(0, |m| m.blocks() * 512);
        }
    }
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("memfd:skmem."))
        .count();
    (fds, bytes, maps)
}

/// Shmem of /proc/meminfo, bytes: where memfd pages are counted.
fn shmem() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = info.lines().find(|l| l.starts_with("Shmem:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn defunct_releases_the_owners_memfds_and_the_pages_go_with_the_last_view() {
    // The process-wide SYSCTLS region lives as long as the process: made
    // before counting.
    skmem::sysctls::current();
    let base = held();

    // A nexus arena whose 8 MiB of buffers all hold data.
    let mut np = NexusParams::new("defunct-mem");
    np.pool.packets = 4096;
    let arena = Arena::create_nexus(&np).unwrap();
    let pool = arena.nexus().unwrap().rx_pool().unwrap().clone();
    let mut w = pool.worker().unwrap();
    let mut pkts = Vec::new();
    w.alloc_batch(&mut pkts, 4096);
    for p in &mut pkts {
        pool.buffer_mut(p).unwrap().fill(0x5a);
    }
    w.free_batch(&mut pkts).unwrap();
    drop((w, pool));
    let live = held();
    let buffers = 4096 * 2048;
    assert!(live.0 > base.0 + 8, "{live:?}");
    assert!(live.1 >= base.1 + buffers, "{live:?}");

    // A mapper's view (in-process here) holds the pages after the owner
    // lets go.
    let m = arena.map().unwrap();
    let shmem_mapped = shmem();
    assert!(m.redirect().unwrap());
    arena.defunct().unwrap();
    let after = held();
    // The owner keeps the schema only (guards have no memfd).
    assert_eq!(after.0, base.0 + 1, "memfds left: {after:?}");
    assert!(after.1 < base.1 + 64 * 1024, "{after:?}");
    assert_eq!(
        arena.region_ids(),
        [RegionId::GuardHead, RegionId::Schema, RegionId::GuardTail]
    );
    drop(m);
    // The redirected mapping was the last view: the pages are gone. Shmem
    // is machine-wide, so allow for others' churn: most of 8 MiB.
    let freed = shmem_mapped.saturating_sub(shmem());
    assert!(freed >= buffers * 3 / 4, "{freed} bytes freed");
    drop(arena);
    assert_eq!(held(), base);

    // NECP: the statistics regions and their cache go.
    let necp = Arena::create_necp(
        "defunct-mem",
        &RegionParams::new(RegionId::UStats, 128, 4096)
            .with_flags(RegionFlags::MMAPOK | RegionFlags::UREADONLY | RegionFlags::NOMAGAZINES),
        &RegionParams::new(RegionId::KStats, 128, 4096),
    )
    .unwrap();
    let flow = necp.alloc_flow_stats().unwrap();
    necp.free_flow_stats(flow).unwrap();
    assert_eq!(held().0, base.0 + 2);
    let m = necp.map().unwrap();
    assert!(m.redirect().unwrap());
    necp.defunct().unwrap();
    assert_eq!(held().0, base.0, "USTATS and KSTATS released");
    assert!(necp.region(RegionId::KStats).is_none() && necp.region(RegionId::UStats).is_none());
    assert!(matches!(
        necp.alloc_flow_stats(),
        Err(skmem::Error::Arena(
            skmem::ArenaError::AlreadyDefunct { .. }
        ))
    ));
    drop(m);
    drop(necp);
    assert_eq!(held(), base);
}
