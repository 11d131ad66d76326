//! Arenas, named after Skywalk's functions and cases: create (nexus,
//! NECP, system), mmap, munmap, mredirect, defunct, teardown, reap, stats.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod common;

use common::{peek, poke, signal_in_child};
use skmem::arena::{Arena, ArenaKind, NexusAdvisory, NexusAdvisoryKind, NexusParams};
use skmem::error::{ArenaError, RegionError};
use skmem::pool::{PacketPool, PoolParams};
use skmem::region::{RegionFlags, RegionId, RegionParams};
use skmem::schema::{SchemaArenaKind, SchemaView};
use skmem::sys::page_size;
use skmem::{stats, Error};

/// Held by the tests that walk the arena registry (`stats::arenas`,
/// `stats::snapshot_all`) and by the one that counts an arena's
/// references: a walk holds a reference to every live arena while it runs,
/// so a walk in a concurrent test made the count one higher.
static REGISTRY_WALKS: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn registry_walks() -> std::sync::MutexGuard<'static, ()> {
    REGISTRY_WALKS.lock().unwrap_or_else(|e| e.into_inner())
}

fn small(name: &str) -> NexusParams {
    let mut p = NexusParams::new(name);
    p.pool.packets = 256;
    p
}

fn rule_of(r: skmem::Result<Arena>) -> (RegionId, &'static str) {
    match r {
        Err(Error::Region(RegionError::InvalidParams { region, rule })) => (region, rule),
        other => panic!("expected RegionError::InvalidParams, got {other:?}"),
    }
}

#[test]
fn create_for_nexus_builds_every_configured_region() {
    let a = Arena::create_nexus(&small("build")).unwrap();
    assert_eq!(a.name(), "skmem.nexus.build");
    assert_eq!(a.kind(), ArenaKind::Nexus);
    assert!(a.is_active() && !a.is_defunct());
    use RegionId::*;
    assert_eq!(
        a.region_ids(),
        vec![
            GuardHead, Schema, Ring, BufDef, Umd, TxaUsd, RxfUsd, UStats, FlowAdv, GuardTail, Kmd,
            TxaKsd, RxfKsd
        ]
    );
    // Mirrors are paired.
    for id in [Umd, TxaUsd, RxfUsd] {
        assert!(
            a.region(id)
                .unwrap()
                .flags()
                .contains(RegionFlags::MIRRORED),
            "{id}"
        );
    }
    let n = a.nexus().unwrap();
    assert!(n.stats_region().is_some());
    assert_eq!(n.flowadv_obj().unwrap().1, 512);
    assert!(!n.external_pool());
    assert!(n.txaksd_cache().is_some() && n.rxfksd_cache().is_some());
}

#[test]
fn create_for_nexus_rejects_shareable_ring_region() {
    let mut p = small("x");
    p.region_mut(RegionId::Ring).flags |= RegionFlags::SHAREOK;
    assert_eq!(
        rule_of(Arena::create_nexus(&p)),
        (RegionId::Ring, "must not be SHAREOK")
    );
}

#[test]
fn create_for_nexus_enforces_every_flag_rule_of_skywalk() {
    let _walks = registry_walks();
    use RegionId::*;
    type Edit = fn(&mut NexusParams);
    let cases: Vec<(Edit, RegionId, &str)> = vec![
        (
            |p| p.region_mut(GuardHead).flags -= RegionFlags::GUARD,
            GuardHead,
            "GUARD",
        ),
        (
            |p| p.region_mut(GuardTail).flags -= RegionFlags::GUARD,
            GuardTail,
            "GUARD",
        ),
        (
            |p| p.region_mut(Schema).flags -= RegionFlags::UREADONLY,
            Schema,
            "UREADONLY",
        ),
        (
            |p| p.region_mut(FlowAdv).flags -= RegionFlags::UREADONLY,
            FlowAdv,
            "UREADONLY",
        ),
        (
            |p| p.region_mut(NexusAdv).flags -= RegionFlags::UREADONLY,
            NexusAdv,
            "UREADONLY",
        ),
        (
            |p| p.region_mut(TxaUsd).flags -= RegionFlags::UREADONLY,
            TxaUsd,
            "must be UREADONLY",
        ),
        (|p| p.user_packet_pool = true, TxaUsd, "must be writable"),
        (
            |p| p.region_mut(Ring).flags -= RegionFlags::MMAPOK,
            Ring,
            "MMAPOK",
        ),
        (
            |p| p.region_mut(BufDef).flags -= RegionFlags::MMAPOK,
            BufDef,
            "MMAPOK",
        ),
        (
            |p| p.region_mut(UStats).flags -= RegionFlags::MMAPOK,
            UStats,
            "MMAPOK",
        ),
        (
            |p| p.region_mut(Kmd).flags |= RegionFlags::MMAPOK,
            Kmd,
            "must not be MMAPOK",
        ),
        (
            |p| p.region_mut(TxaKsd).flags |= RegionFlags::MMAPOK,
            TxaKsd,
            "must not be MMAPOK",
        ),
        (
            |p| p.region_mut(KStats).flags |= RegionFlags::MMAPOK,
            KStats,
            "must not be MMAPOK",
        ),
        (
            |p| p.region_mut(BufDef).flags -= RegionFlags::SHAREOK,
            BufDef,
            "must be SHAREOK",
        ),
        (
            |p| p.region_mut(TxBufLarge).flags -= RegionFlags::SHAREOK,
            TxBufLarge,
            "must be SHAREOK",
        ),
        (
            |p| p.region_mut(Umd).flags |= RegionFlags::SHAREOK,
            Umd,
            "must not be SHAREOK",
        ),
        (
            |p| p.region_mut(Kmd).flags |= RegionFlags::SHAREOK,
            Kmd,
            "must not be SHAREOK",
        ),
        (
            |p| p.region_mut(Schema).flags -= RegionFlags::NOREDIRECT,
            Schema,
            "NOREDIRECT",
        ),
        (
            |p| p.region_mut(GuardTail).flags -= RegionFlags::NOREDIRECT,
            GuardTail,
            "NOREDIRECT",
        ),
        (|p| p.region_mut(KStats).obj_count = 1, KStats, "no KSTATS"),
        (
            |p| p.region_mut(Sysctls).obj_count = 1,
            Sysctls,
            "not for a nexus arena",
        ),
        (
            |p| p.region_mut(NexusAdv).obj_count = 1,
            NexusAdv,
            "without a nexus advisory",
        ),
        (
            |p| p.region_mut(UStats).flags -= RegionFlags::MONOLITHIC,
            UStats,
            "MONOLITHIC",
        ),
        (
            |p| p.region_mut(Ring).obj_count = 0,
            Ring,
            "configured empty",
        ),
        (
            |p| p.region_mut(RxfKsd).obj_count = 0,
            RxfKsd,
            "configured empty",
        ),
    ];
    for (edit, region, words) in cases {
        let mut p = small("rules");
        edit(&mut p);
        let (r, rule) = rule_of(Arena::create_nexus(&p));
        assert_eq!(r, region, "{rule}");
        assert!(rule.contains(words), "{region}: {rule:?} lacks {words:?}");
    }
    assert!(stats::arenas()
        .iter()
        .all(|a| a.name() != "skmem.nexus.rules"));
}

#[test]
fn create_for_nexus_checks_the_nexus_advisory() {
    let mut p = small("adv");
    let mut adv = NexusAdvisory::new("adv", NexusAdvisoryKind::Flowswitch, 128).unwrap();
    adv.version = 99;
    p.nexus_advisory = Some(adv.clone());
    let (r, rule) = rule_of(Arena::create_nexus(&p));
    assert_eq!(r, RegionId::NexusAdv);
    assert!(rule.contains("version"));
    adv.version = NexusAdvisoryKind::Flowswitch.current_version();
    p.nexus_advisory = Some(adv.clone());
    let a = Arena::create_nexus(&p).unwrap();
    assert_eq!(
        a.region(RegionId::NexusAdv).unwrap().uuid(),
        adv.region.uuid()
    );
    assert!(a.nexus().unwrap().nexus_advisory().is_some());
}

#[test]
fn external_pools_are_shared_never_copied() {
    let pool =
        PacketPool::create("shared", &PoolParams::default().with(|p| p.packets = 256)).unwrap();
    let mut p = small("ext1");
    p.rx_pool = Some(pool.clone());
    let a = Arena::create_nexus(&p).unwrap();
    p.name = "ext2".into();
    let b = Arena::create_nexus(&p).unwrap();
    let buf = pool.region(RegionId::BufDef).unwrap().uuid();
    assert_eq!(a.region(RegionId::BufDef).unwrap().uuid(), buf);
    assert_eq!(b.region(RegionId::BufDef).unwrap().uuid(), buf);
    assert!(a.nexus().unwrap().external_pool());
    drop(a);
    // The pool lives on in the other arena and with its creator.
    assert_eq!(b.region(RegionId::BufDef).unwrap().uuid(), buf);
}

#[test]
fn split_pools_only_for_owner_only_arenas() {
    let mk = |n: &str, owner_only| {
        PacketPool::create(
            n,
            &PoolParams::default().with(|p| {
                p.packets = 256;
                p.owner_only = owner_only;
            }),
        )
        .unwrap()
    };
    let mut p = small("split");
    p.rx_pool = Some(mk("rx", false));
    p.tx_pool = Some(mk("tx", false));
    let e = Arena::create_nexus(&p).unwrap_err();
    assert!(e.to_string().contains("split RX/TX pools"), "{e}");

    let mut p = small("split2");
    p.owner_only = true;
    p.rx_pool = Some(mk("rx2", true));
    p.tx_pool = Some(mk("tx2", true));
    let a = Arena::create_nexus(&p).unwrap();
    use RegionId::*;
    for id in [RxBufDef, TxBufDef, RxKmd, TxKmd] {
        assert!(a.region(id).is_some(), "{id}");
    }
    for id in [BufDef, Kmd, Umd, Schema, Ring, GuardHead] {
        assert!(a.region(id).is_none(), "{id}");
    }

    let mut p = small("oo");
    p.rx_pool = Some(mk("oo", true));
    let e = Arena::create_nexus(&p).unwrap_err();
    assert!(e.to_string().contains("owner-only pool"), "{e}");
}

#[test]
fn mmap_gives_one_span_with_the_schema_after_the_head_guard() {
    let a = Arena::create_nexus(&small("span")).unwrap();
    let m = a.map().unwrap();
    assert_eq!(m.size(), a.span_size());
    assert_eq!(a.map_count(), 1);
    assert_eq!(a.map_size(), m.size());
    assert_eq!(a.mapped_pids(), vec![std::process::id() as i32]);
    let page = page_size();
    let (schema_at, schema_len) = m.region(RegionId::Schema).unwrap();
    assert_eq!(schema_at as usize - m.addr() as usize, page);

    // Every region sits at region_offset(id), back to back, in id order.
    let mut expect = 0;
    for id in a.region_ids() {
        let r = a.region(id).unwrap();
        if !r.flags().contains(RegionFlags::MMAPOK) {
            assert!(m.region(id).is_none());
            continue;
        }
        let (p, len) = m.region(id).unwrap();
        assert_eq!(p as usize - m.addr() as usize, expect, "{id}");
        assert_eq!(a.region_offset(id), expect, "{id}");
        assert_eq!(len, r.size());
        expect += len;
    }
    assert_eq!(expect, m.size());

    // The schema describes the span; a mapper needs nothing else.
    let mut bytes = vec![0u8; schema_len];
    m.read_region(RegionId::Schema, 0, &mut bytes).unwrap();
    let v = SchemaView::parse(&bytes, m.size() as u64).unwrap();
    assert_eq!(v.kind(), SchemaArenaKind::Nexus);
    assert_eq!(v.name(), "skmem.nexus.span");
    for e in v.regions() {
        let (p, len) = m.region(e.id).unwrap();
        assert_eq!(p as usize - m.addr() as usize, e.offset as usize);
        assert_eq!(len, e.size as usize);
        assert_eq!(e.uuid, *a.region(e.id).unwrap().uuid().as_bytes());
    }

    // Guards fault, read-only regions refuse writes, buffers are shared.
    let head = m.addr();
    assert_eq!(
        signal_in_child(|| {
            peek(head);
        }),
        Some(libc::SIGSEGV)
    );
    let tail = m.region(RegionId::GuardTail).unwrap().0;
    assert_eq!(
        signal_in_child(|| {
            peek(tail);
        }),
        Some(libc::SIGSEGV)
    );
    assert_eq!(signal_in_child(|| poke(schema_at)), Some(libc::SIGSEGV));
    let txausd = m.region(RegionId::TxaUsd).unwrap().0;
    assert_eq!(signal_in_child(|| poke(txausd)), Some(libc::SIGSEGV));
    let pool = a.nexus().unwrap().rx_pool().unwrap().clone();
    let mut w = pool.worker().unwrap();
    let mut pkt = w.alloc().unwrap();
    pool.write_buffer(&mut pkt, 0, b"hello").unwrap();
    let mut got = [0u8; 5];
    m.read_region(
        RegionId::BufDef,
        pool.buf_addr(&pkt).unwrap() as usize,
        &mut got,
    )
    .unwrap();
    assert_eq!(&got, b"hello");
    w.free(pkt).unwrap();
}

#[test]
fn mredirect_reads_zero_where_skywalk_redirects_and_keeps_the_schema() {
    let a = Arena::create_nexus(&small("redir")).unwrap();
    let m = a.map().unwrap();
    let pool = a.nexus().unwrap().rx_pool().unwrap().clone();
    let mut w = pool.worker().unwrap();
    let mut pkt = w.alloc().unwrap();
    pool.write_buffer(&mut pkt, 0, b"payload").unwrap();
    let addr = pool.buf_addr(&pkt).unwrap() as usize;
    let schema_len = m.region(RegionId::Schema).unwrap().1;
    let mut before = vec![0u8; schema_len];
    m.read_region(RegionId::Schema, 0, &mut before).unwrap();

    let need_defunct = m.redirect().unwrap();
    assert!(need_defunct, "the only mapping was redirected");
    assert!(m.is_redirected());
    let mut got = [0xFFu8; 7];
    m.read_region(RegionId::BufDef, addr, &mut got).unwrap();
    assert_eq!(got, [0; 7]);
    // The owner still sees its bytes: only the mapping was redirected.
    let mut own = [0u8; 7];
    pool.read_buffer(&pkt, 0, &mut own).unwrap();
    assert_eq!(&own, b"payload");
    let mut after = vec![0u8; schema_len];
    m.read_region(RegionId::Schema, 0, &mut after).unwrap();
    assert_eq!(before, after, "the schema is NOREDIRECT");
    // Protections are kept: a read-only region still refuses a write.
    let txausd = m.region(RegionId::TxaUsd).unwrap().0;
    assert_eq!(signal_in_child(|| poke(txausd)), Some(libc::SIGSEGV));
    // A writable region now writes into a private zero page.
    let umd = m.region(RegionId::Umd).unwrap().0;
    assert_eq!(signal_in_child(|| poke(umd)), None);
}

#[test]
fn mredirect_twice_is_ealready() {
    let a = Arena::create_nexus(&small("twice")).unwrap();
    let m = a.map().unwrap();
    m.redirect().unwrap();
    let e = m.redirect().unwrap_err();
    assert!(
        matches!(e, Error::Arena(ArenaError::AlreadyRedirected { .. })),
        "{e}"
    );
    assert_eq!(e.errno(), libc::EALREADY);
}

#[test]
fn mredirect_of_an_unmapped_mapping_is_enxio() {
    let a = Arena::create_nexus(&small("enxio")).unwrap();
    let mut m = a.map().unwrap();
    m.unmap();
    assert!(!m.is_mapped());
    let e = m.redirect().unwrap_err();
    assert_eq!(e.errno(), libc::ENXIO);
    assert_eq!(a.map_count(), 0);
    assert_eq!(a.map_size(), 0);
}

#[test]
fn mmap_of_an_inactive_or_defunct_arena_is_enodev() {
    let a = Arena::create_nexus(&small("enodev")).unwrap();
    let m = a.map().unwrap();
    assert!(m.redirect().unwrap());
    assert!(!a.is_active());
    let e = a.map().unwrap_err();
    assert_eq!(e.errno(), libc::ENODEV);
    a.defunct().unwrap();
    assert_eq!(a.map().unwrap_err().errno(), libc::ENODEV);
}

#[test]
fn defunct_while_active_is_ebusy() {
    let a = Arena::create_nexus(&small("busy")).unwrap();
    let e = a.defunct().unwrap_err();
    assert_eq!(e.errno(), libc::EBUSY);
    let m = a.map().unwrap();
    assert_eq!(a.defunct().unwrap_err().errno(), libc::EBUSY);
    drop(m);
    // Unmapping without redirect leaves the arena active.
    assert!(a.is_active());
}

#[test]
fn defunct_twice_is_ealready() {
    let a = Arena::create_nexus(&small("dd")).unwrap();
    let m = a.map().unwrap();
    m.redirect().unwrap();
    a.defunct().unwrap();
    let e = a.defunct().unwrap_err();
    assert!(
        matches!(e, Error::Arena(ArenaError::AlreadyDefunct { .. })),
        "{e}"
    );
    assert_eq!(e.errno(), libc::EALREADY);
}

#[test]
fn defunct_releases_pool_stats_rings_and_slot_descriptors_but_keeps_schema_and_guards() {
    let a = Arena::create_nexus(&small("teardown")).unwrap();
    let m = a.map().unwrap();
    let (total_before, _) = a.mem_stats();
    m.redirect().unwrap();
    a.defunct().unwrap();
    assert!(a.is_defunct());
    use RegionId::*;
    assert_eq!(a.region_ids(), vec![GuardHead, Schema, GuardTail]);
    let n = a.nexus().unwrap();
    assert!(n.rx_pool().is_none() && n.stats_region().is_none() && n.flowadv_obj().is_none());
    assert!(n.ring_cache().is_none() && n.txaksd_cache().is_none());
    assert!(n.schema_cache().is_some());
    assert!(a.mem_total() < total_before / 10);
    // The redirected mapping still reads its (kept) schema.
    let mut magic = [0u8; 8];
    m.read_region(Schema, 0, &mut magic).unwrap();
    assert_eq!(&magic, b"SKMEMSCH");
}

#[test]
fn defunct_keeps_slot_descriptors_while_a_no_idle_count_holds_them() {
    let a = Arena::create_nexus(&small("noidle")).unwrap();
    assert!(a.sd_idle());
    let holds = [
        a.hold_slot_descriptors().unwrap(),
        a.hold_slot_descriptors().unwrap(),
    ];
    assert!(!a.sd_idle());
    let m = a.map().unwrap();
    m.redirect().unwrap();
    a.defunct().unwrap();
    use RegionId::*;
    for id in [TxaUsd, RxfUsd, TxaKsd, RxfKsd] {
        assert!(a.region(id).is_some(), "{id} kept");
    }
    assert!(a.region(BufDef).is_none());
    drop(holds);
    assert!(a.sd_idle());
    let necp = Arena::create_necp(
        "noidle",
        &RegionParams::new(RegionId::UStats, 64, 8)
            .with_flags(RegionFlags::MMAPOK | RegionFlags::NOMAGAZINES),
        &RegionParams::new(RegionId::KStats, 64, 8),
    )
    .unwrap();
    assert!(necp.hold_slot_descriptors().is_err());
}

#[test]
fn munmap_of_last_unredirected_mapping_defuncts() {
    let a = Arena::create_nexus(&small("postponed")).unwrap();
    let m1 = a.map().unwrap();
    let m2 = a.map().unwrap();
    assert_eq!(a.map_count(), 2);
    assert!(!m1.redirect().unwrap(), "another mapping is still active");
    assert!(a.is_active());
    drop(m2);
    assert!(!a.is_active());
    assert!(a.is_defunct(), "the postponed defunct ran at unmap");
    assert_eq!(a.map_count(), 1);
    drop(m1);
    assert_eq!(a.map_count(), 0);
}

#[test]
fn munmap_of_a_redirected_mapping_only_drops_the_count() {
    let a = Arena::create_nexus(&small("rdrcount")).unwrap();
    let m1 = a.map().unwrap();
    let m2 = a.map().unwrap();
    m1.redirect().unwrap();
    drop(m1);
    assert!(a.is_active() && !a.is_defunct());
    // Now m2 is the only mapping; redirecting it makes the arena inactive.
    assert!(m2.redirect().unwrap());
}

#[test]
fn the_last_release_destroys_and_unregisters() {
    let _walks = registry_walks();
    let a = Arena::create_nexus(&small("lastref")).unwrap();
    let id = a.id();
    assert!(stats::arenas().iter().any(|x| x.id() == id));
    let b = a.retain();
    assert_eq!(a.refcount(), 2);
    let m = a.map().unwrap();
    assert_eq!(a.refcount(), 3, "a mapping holds a reference");
    assert!(!b.release());
    drop(m);
    assert!(stats::arenas().iter().any(|x| x.id() == id));
    assert!(a.release());
    assert!(stats::arenas().iter().all(|x| x.id() != id));
}

#[test]
fn reap_and_purge_return_parked_packets_to_the_region() {
    let a = Arena::create_nexus(&small("reap")).unwrap();
    let pool = a.nexus().unwrap().rx_pool().unwrap().clone();
    let mut w = pool.worker().unwrap();
    let mut pkts = Vec::new();
    assert_eq!(w.alloc_batch(&mut pkts, 200), 200);
    w.free_batch(&mut pkts).unwrap();
    let inuse = a.mem_inuse();
    assert!(pool.metadata_cache().stats().obj_in_magazines > 0);
    a.reap(true);
    assert_eq!(pool.metadata_cache().stats().obj_in_magazines, 0);
    assert!(a.mem_inuse() < inuse);
    a.reap(false);
}

#[test]
fn mem_total_counts_every_region_and_metadata_stays_under_five_percent() {
    let a = Arena::create_nexus(&NexusParams::new("overhead")).unwrap();
    let total = a.mem_total();
    let bufs = a.region(RegionId::BufDef).unwrap().size();
    let overhead = (total - bufs) as f64 / bufs as f64;
    assert!(
        overhead <= 0.05,
        "metadata overhead {:.2}%",
        overhead * 100.0
    );
    let sum: usize = a
        .region_ids()
        .iter()
        .map(|&id| a.region(id).unwrap().size())
        .sum();
    assert_eq!(total, sum);
}

#[test]
fn create_for_necp_mirrors_kstats_into_read_only_ustats() {
    let u = RegionParams::new(RegionId::UStats, 128, 64)
        .with_flags(RegionFlags::MMAPOK | RegionFlags::UREADONLY | RegionFlags::NOMAGAZINES);
    let k = RegionParams::new(RegionId::KStats, 128, 64);
    let a = Arena::create_necp("flows", &u, &k).unwrap();
    assert_eq!(a.name(), "skmem.necp.flows");
    assert_eq!(a.region_ids(), vec![RegionId::UStats, RegionId::KStats]);
    let i = a.alloc_flow_stats().unwrap();
    let j = a.alloc_flow_stats().unwrap();
    assert_ne!(i, j);
    assert_eq!(
        a.region(RegionId::UStats).unwrap().segs_in_use(),
        a.region(RegionId::KStats).unwrap().segs_in_use()
    );
    let m = a.map().unwrap();
    let (p, _) = m.region(RegionId::UStats).unwrap();
    assert_eq!(signal_in_child(|| poke(p)), Some(libc::SIGSEGV));
    a.free_flow_stats(i).unwrap();
    assert!(a.free_flow_stats(i).is_err());
    drop(m);

    // Skywalk's checks.
    let bad = |u: &RegionParams, k: &RegionParams| Arena::create_necp("bad", u, k).unwrap_err();
    let e = bad(&RegionParams::new(RegionId::KStats, 128, 64), &k);
    assert!(e.to_string().contains("must be USTATS"), "{e}");
    let e = bad(&u.clone().with_flags(RegionFlags::NOMAGAZINES), &k);
    assert!(e.to_string().contains("MMAPOK"), "{e}");
    let e = bad(&u, &k.clone().with_flags(RegionFlags::SHAREOK));
    assert!(e.to_string().contains("SHAREOK"), "{e}");
    let e = bad(&u, &RegionParams::new(RegionId::KStats, 256, 64));
    assert!(e.to_string().contains("geometries differ"), "{e}");
    let e = bad(&u, &RegionParams::new(RegionId::KStats, 128, 0));
    assert!(e.to_string().contains("object count is 0"), "{e}");
    assert!(Arena::create_nexus(&small("n"))
        .unwrap()
        .alloc_flow_stats()
        .is_err());
}

#[test]
fn create_for_system_retains_the_one_sysctls_region() {
    let a = Arena::create_system("one").unwrap();
    let b = Arena::create_system("two").unwrap();
    assert_eq!(a.name(), "skmem.system.one");
    let ua = a.region(RegionId::Sysctls).unwrap().uuid();
    assert_eq!(ua, b.region(RegionId::Sysctls).unwrap().uuid());
    let s = a.system().unwrap().sysctls();
    assert_eq!(s.buf_size, 2048);
    let m = a.map().unwrap();
    let (p, len) = m.region(RegionId::Sysctls).unwrap();
    assert!(len >= skmem::arena::Sysctls::SIZE);
    assert_eq!(signal_in_child(|| poke(p)), Some(libc::SIGSEGV));
    // NOREDIRECT: a redirect leaves the tunables readable.
    assert!(m.redirect().unwrap());
    let mut bytes = vec![0u8; skmem::arena::Sysctls::SIZE];
    m.read_region(RegionId::Sysctls, 0, &mut bytes).unwrap();
    assert_eq!(skmem::arena::Sysctls::decode(&bytes).unwrap(), s);
    a.defunct().unwrap();
    assert!(
        a.region(RegionId::Sysctls).is_some(),
        "nothing to tear down on defunct"
    );
}

#[test]
fn stats_list_live_arenas_with_their_mappings() {
    let _walks = registry_walks();
    let a = Arena::create_nexus(&small("stats")).unwrap();
    let maps: Vec<_> = (0..9).map(|_| a.map().unwrap()).collect();
    let s = a.stats();
    assert_eq!(s.name, "skmem.nexus.stats");
    assert_eq!(s.kind, ArenaKind::Nexus);
    assert_eq!(s.map_count, 9);
    assert_eq!(s.mapped_pids.len(), stats::MAPPED_PIDS_MAX);
    assert_eq!(s.map_size, maps[0].size());
    assert_eq!(s.region_uuids.len(), a.region_ids().len());
    assert_eq!(s.mem_total, a.mem_total());
    assert!(s
        .caches
        .iter()
        .any(|c| c.name == "kmd.stats" && c.magazines));
    assert!(s
        .caches
        .iter()
        .any(|c| c.name == "ring.stats" && !c.magazines));
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"kind\":\"nexus\""));
    assert!(stats::snapshot_all()
        .iter()
        .any(|x| x.name == "skmem.nexus.stats"));
}

#[test]
fn a_name_too_long_for_the_schema_is_refused() {
    let e = Arena::create_nexus(&small(&"n".repeat(60))).unwrap_err();
    assert!(
        matches!(e, Error::Arena(ArenaError::InvalidParams { .. })),
        "{e}"
    );
}

#[test]
fn worker_slots_are_rings_of_their_own_in_the_ring_region_recorded_in_the_schema() {
    let p = small("workers").with_worker_slots(3);
    let a = Arena::create_nexus(&p).unwrap();
    let m = a.map().unwrap();
    let schema = m.schema().unwrap();
    assert_eq!(schema.workers.len(), 3);
    let ring = schema
        .regions
        .iter()
        .find(|r| r.id == RegionId::Ring)
        .unwrap();
    let mut objs = Vec::new();
    for w in &schema.workers {
        for r in [w.to_worker, w.from_worker] {
            assert_eq!(r.entries, p.worker_ring_entries);
            assert_eq!(r.desc_size, 16);
            // Inside RING, on an object boundary, ending inside the object.
            let off = r.producer - ring.offset;
            assert!(r.producer >= ring.offset && off % ring.obj_size == 0);
            assert!(r.desc + u64::from(r.entries) * 16 <= r.producer + ring.obj_size);
            objs.push(off / ring.obj_size);
        }
    }
    objs.sort_unstable();
    objs.dedup();
    assert_eq!(objs.len(), 6, "each ring has an object of its own");
    // The mapper may write them (the worker produces into one of each
    // pair), and they start empty.
    let w0 = schema.workers[0].from_worker;
    let mut idx = [0u8; 4];
    m.read_region(
        RegionId::Ring,
        (w0.producer - ring.offset) as usize,
        &mut idx,
    )
    .unwrap();
    assert_eq!(idx, [0; 4]);

    // The rules: room in RING, at most 16 slots, no slots without a span.
    let mut bad = small("workers-bad");
    bad.worker_slots = 2;
    let e = Arena::create_nexus(&bad).unwrap_err();
    assert!(
        matches!(e, Error::Arena(ArenaError::InvalidParams { .. })),
        "{e}"
    );
    let e = Arena::create_nexus(&small("workers-many").with_worker_slots(17)).unwrap_err();
    assert!(e.to_string().contains("at most 16"), "{e}");
    let mut owner_only = small("workers-owner").with_worker_slots(1);
    owner_only.owner_only = true;
    assert!(Arena::create_nexus(&owner_only).is_err());
    let mut odd = small("workers-odd").with_worker_slots(1);
    odd.worker_ring_entries = 100;
    assert!(Arena::create_nexus(&odd).is_err());
}
