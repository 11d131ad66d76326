//! The system arena means something: the process's tunables live in the
//! SYSCTLS region, the owner's defaults are read from it, and a mapper
//! reads them — live — from the region every hand-over lends it.
//!
//! One test function: tuning is process-wide, and the test harness would
//! otherwise run other tests' defaults against it.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use skmem::arena::{Arena, NexusParams};
use skmem::channel::ChannelParams;
use skmem::error::LendError;
use skmem::lend::{ArenaOffer, OfferPolicy, RemoteArena};
use skmem::pool::PoolParams;
use skmem::region::RegionId;
use skmem::sysctls::{self, Sysctls};
use skmem::Error;

/// This test's own uid (root under CI): the offer allows it.
fn uid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

#[test]
fn the_owners_defaults_and_every_mapper_follow_the_tunables() {
    let d = Sysctls::default();
    assert_eq!(sysctls::current(), d);

    // A refused value changes nothing.
    let e = sysctls::tune(|s| s.ring_entries = 1000).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidSysctl { setting, .. } if setting == "ring_entries=1000"),
        "{e}"
    );
    assert_eq!(e.errno(), libc::EINVAL);
    assert_eq!(sysctls::current(), d);

    let tuned = sysctls::tune(|s| {
        s.ring_entries = 2048;
        s.umem_ring_entries = 4096;
        s.batch = 32;
        s.need_wakeup = 0;
        s.busy_poll_us = 50;
        s.packets = 1024;
        s.slot_descs = 128;
        s.max_flows = 64;
        s.guard_pages = 2;
        s.max_mappers = 1;
        s.redirect_timeout_ms = 250;
    })
    .unwrap();
    assert_eq!(sysctls::current(), tuned);

    // The owner's defaults are read from it.
    let c = ChannelParams::new("veth0", 0);
    assert_eq!(
        (c.ring_entries, c.umem_ring_entries, c.batch, c.need_wakeup),
        (2048, 4096, 32, false)
    );
    assert_eq!(c.busy_poll, Some((50, d.busy_poll_budget)));
    assert_eq!(c.tx_budget, Some(2048));
    assert_eq!(PoolParams::default().packets, 1024);
    let p = OfferPolicy::root_only();
    assert_eq!(
        (p.max_mappers, p.redirect_timeout),
        (1, Duration::from_millis(250))
    );
    let arena = Arena::create_nexus(&NexusParams::new("sysctls")).unwrap();
    let page = skmem::sys::page_size();
    let m = arena.map().unwrap();
    let (_, guard) = m.region(RegionId::GuardHead).unwrap();
    assert_eq!(guard, 2 * page);
    let pool = arena.nexus().unwrap().rx_pool().unwrap().clone();
    assert!(
        pool.packet_count() >= 1024 && pool.packet_count() < 4096,
        "{}",
        pool.packet_count()
    );
    let (_, flowadv) = arena.nexus().unwrap().flowadv_obj().unwrap();
    assert_eq!(flowadv, 64, "64 flow advisories, not 512");
    let n = NexusParams::new("x");
    assert_eq!(n.region(RegionId::TxaUsd).obj_count, 1);
    assert!(n.region(RegionId::Ring).obj_size >= 4096 * 16);

    // The system arena's SYSCTLS region holds what is in force.
    let system = Arena::create_system("sysctls").unwrap();
    assert_eq!(system.system().unwrap().sysctls(), tuned);
    let sm = system.map().unwrap();
    let mut bytes = vec![0u8; Sysctls::SIZE];
    sm.read_region(RegionId::Sysctls, 0, &mut bytes).unwrap();
    assert_eq!(Sysctls::decode(&bytes).unwrap(), tuned);

    // A mapper reads them from the region the hand-over lent it, live.
    let path = std::env::temp_dir().join(format!("skmem-sysctls-{}.sock", std::process::id()));
    let offer =
        ArenaOffer::serve(&arena, &path, OfferPolicy::root_only().allow_uid(uid())).unwrap();
    let remote = RemoteArena::connect(offer.path()).unwrap();
    assert_eq!(remote.sysctls().unwrap(), tuned);
    // The limit is the tunable's: one mapper at a time.
    let e = RemoteArena::connect(offer.path()).unwrap_err();
    assert!(
        matches!(&e, Error::Lend(LendError::MapperRefused { reason }) if reason.contains("at most 1")),
        "{e}"
    );

    // Readers never see half a change: two consistent settings flip while
    // the mapper reads; every read is one or the other.
    let a = tuned;
    let b = Sysctls {
        ring_entries: 512,
        batch: 16,
        ..tuned
    };
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..2000 {
                let next = if i % 2 == 0 { b } else { a };
                sysctls::tune(|t| *t = next).unwrap();
            }
            stop.store(true, Ordering::Release);
        });
        let mut reads = 0u32;
        while !stop.load(Ordering::Acquire) || reads == 0 {
            let seen = remote.sysctls().unwrap();
            assert!(seen == a || seen == b, "a torn read: {seen:?}");
            reads += 1;
        }
    });
    sysctls::tune(|t| *t = b).unwrap();
    assert_eq!(remote.sysctls().unwrap(), b, "the mapper's view is live");
    // Still readable once redirected (SYSCTLS is never redirected).
    assert!(
        !offer.redirect(std::process::id()).unwrap(),
        "the owner's own mapping is still active"
    );
    assert!(remote.wait_redirected(Duration::from_secs(5)));
    assert_eq!(remote.sysctls().unwrap(), b);
    drop(remote);
    drop(offer);
    sysctls::tune(|t| *t = d).unwrap();
}
