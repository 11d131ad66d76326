//! The packet pool: packets, buffers, buflets, metadata, and bad input.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::collections::HashSet;

use skmem::error::RegionError;
use skmem::pool::{BufIndex, PacketIndex, PacketPool, PoolParams, UserMeta, META_SIZE};
use skmem::region::{RegionFlags, RegionId};
use skmem::Error;

fn params(packets: usize) -> PoolParams {
    PoolParams::default().with(|p| {
        p.packets = packets;
        p.workers = 1;
    })
}

#[test]
fn single_buffer_pools_bind_buffer_i_to_packet_i_both_ways_in_o1() {
    let pool = PacketPool::create("p", &params(256)).unwrap();
    assert!(!pool.on_demand());
    assert_eq!(pool.buf_size(), 2048);
    let bufs = pool.region(RegionId::BufDef).unwrap();
    assert_eq!(bufs.geometry().obj_count, pool.packet_count());
    // Bound for life (and pinned whole as a UMEM): every segment in use.
    assert_eq!(bufs.segs_in_use(), bufs.geometry().seg_count as u64);
    let mut w = pool.worker().unwrap();
    let mut seen = HashSet::new();
    let mut held = Vec::new();
    for _ in 0..300 {
        let p = w.alloc().unwrap();
        assert!(seen.insert(p.index()));
        let addr = pool.buf_addr(&p).unwrap();
        assert_eq!(addr, u64::from(p.index().get()) * 2048);
        assert_eq!(pool.packet_of_addr(addr).unwrap(), p.index());
        // Any byte inside the buffer (headroom, data) names the same packet.
        assert_eq!(pool.packet_of_addr(addr + 2047).unwrap(), p.index());
        assert_eq!(
            pool.buffers(&p).unwrap(),
            vec![BufIndex::new(p.index().get())]
        );
        assert_eq!(pool.meta(&p).unwrap().buf_addr, addr);
        held.push(p);
    }
    assert_eq!(pool.packets_in_use(), 300);
    for p in held {
        w.free(p).unwrap();
    }
    assert_eq!(pool.packets_in_use(), 0);
}

#[test]
fn addresses_and_ranges_from_outside_are_refused_not_trusted() {
    let pool = PacketPool::create("bad", &params(64)).unwrap();
    let end = pool.region(RegionId::BufDef).unwrap().size() as u64;
    assert!(matches!(
        pool.packet_of_addr(end),
        Err(Error::Region(RegionError::ObjectOutOfRange { .. }))
    ));
    assert!(pool.packet_of_addr(u64::MAX).is_err());
    assert!(pool.state(PacketIndex::new(u32::MAX)).is_err());
    let mut w = pool.worker().unwrap();
    let mut p = w.alloc().unwrap();
    assert!(pool.write_buffer(&mut p, 2040, &[0; 16]).is_err());
    assert!(pool.write_buffer(&mut p, usize::MAX, &[0; 1]).is_err());
    assert!(pool.read_buffer(&p, 2048, &mut [0; 1]).is_err());
    w.free(p).unwrap();
}

#[test]
fn a_packet_of_another_pool_is_refused_counted_and_handed_back() {
    let a = PacketPool::create("a", &params(64)).unwrap();
    let b = PacketPool::create("b", &params(64)).unwrap();
    let (mut wa, mut wb) = (a.worker().unwrap(), b.worker().unwrap());
    let mut pa = wa.alloc().unwrap();
    // Same index in both pools, different pools: b refuses a's packet.
    assert!(matches!(
        b.buffer_mut(&mut pa),
        Err(Error::ForeignPacket { .. })
    ));
    assert!(b.meta(&pa).is_err());
    let refused = wb.free(pa).unwrap_err();
    assert!(
        matches!(refused.error, Error::ForeignPacket { .. }),
        "{refused}"
    );
    assert_eq!(b.refused_frees(), 3);
    assert_eq!(b.packets_in_use(), 0);
    // Handed back whole: its own pool takes it.
    wa.free(refused.item).unwrap();
    assert_eq!(a.packets_in_use(), 0);
    // A batch frees its own and keeps the foreigners.
    let mut batch = Vec::new();
    wa.alloc_batch(&mut batch, 3);
    wb.alloc_batch(&mut batch, 2);
    assert!(matches!(
        wb.free_batch(&mut batch),
        Err(Error::ForeignPacket { .. })
    ));
    assert_eq!(batch.len(), 3, "a's three stay the caller's");
    assert_eq!(b.packets_in_use(), 0);
    wa.free_batch(&mut batch).unwrap();
    assert!(batch.is_empty());
    assert_eq!(a.packets_in_use(), 0);
}

#[test]
fn metadata_round_trips_and_is_reset_for_a_fresh_packet() {
    let pool = PacketPool::create("meta", &params(64)).unwrap();
    let mut w = pool.worker().unwrap();
    let mut p = w.alloc().unwrap();
    let m = UserMeta {
        len: 60,
        data_off: 256,
        buf_addr: pool.buf_addr(&p).unwrap(),
        flags: 1,
        nfrags: 0,
        timestamp_ns: 123_456_789,
    };
    pool.set_meta(&mut p, &m).unwrap();
    assert_eq!(pool.meta(&p).unwrap(), m);
    // The metadata lives in UMD, the user-visible mirror of KMD.
    let umd = pool.region(RegionId::Umd).unwrap();
    assert!(umd.flags().contains(RegionFlags::MIRRORED));
    assert_eq!(umd.geometry().obj_size, META_SIZE);
    let first = p.index();
    w.free(p).unwrap();
    pool.metadata_cache().purge();
    drop(w);
    pool.reap(true);
    let mut w = pool.worker().unwrap();
    let q = w.alloc().unwrap();
    assert_eq!(q.index(), first, "lowest object first after a purge");
    assert_eq!(pool.meta(&q).unwrap().len, 0, "constructed afresh");
    w.free(q).unwrap();
}

#[test]
fn buffers_carry_bytes() {
    let pool = PacketPool::create("bytes", &params(64)).unwrap();
    let mut w = pool.worker().unwrap();
    let mut p = w.alloc().unwrap();
    pool.write_buffer(&mut p, 100, b"abc").unwrap();
    let mut out = [0u8; 3];
    pool.read_buffer(&p, 100, &mut out).unwrap();
    assert_eq!(&out, b"abc");
    pool.buffer_mut(&mut p).unwrap()[2047] = 7;
    assert_eq!(pool.buffer(&p).unwrap()[2047], 7);
    assert_eq!(pool.buffer(&p).unwrap().len(), 2048);
    w.free(p).unwrap();
}

#[test]
fn on_demand_pools_chain_buflets_up_to_max_frags() {
    let pool = PacketPool::create(
        "od",
        &params(64).with(|p| {
            p.max_frags = 3;
            p.buffers = 128;
        }),
    )
    .unwrap();
    assert!(pool.on_demand());
    for id in [RegionId::Kbft, RegionId::Ubft] {
        assert!(pool.region(id).is_some(), "{id}");
    }
    let mut w = pool.worker().unwrap();
    let mut p = w.alloc().unwrap();
    assert!(
        pool.buf_addr(&p).is_err(),
        "no buffer until one is attached"
    );
    let b0 = pool.attach_buffer(&mut p).unwrap();
    let b1 = pool.attach_buffer(&mut p).unwrap();
    let b2 = pool.attach_buffer(&mut p).unwrap();
    assert_eq!(pool.buffers(&p).unwrap(), vec![b0, b1, b2]);
    let e = pool.attach_buffer(&mut p).unwrap_err();
    assert!(e.to_string().contains("max_frags"), "{e}");
    for b in [b0, b1, b2] {
        assert_eq!(
            pool.packet_of_addr(pool.buf_addr_of(b) + 7).unwrap(),
            p.index()
        );
    }
    assert_eq!(pool.buf_addr(&p).unwrap(), pool.buf_addr_of(b0));
    pool.write_buffer(&mut p, 0, b"head").unwrap();
    let bufs = pool.region(RegionId::BufDef).unwrap().clone();
    w.free(p).unwrap();
    // Freed buffers belong to nobody.
    assert!(pool.packet_of_addr(pool.buf_addr_of(b1)).is_err());
    pool.reap(true);
    drop(w);
    pool.reap(true);
    assert_eq!(bufs.segs_in_use(), 0);
}

#[test]
fn owner_only_pools_have_nothing_user_visible() {
    let pool = PacketPool::create("oo", &params(64).with(|p| p.owner_only = true)).unwrap();
    assert!(pool.region(RegionId::Umd).is_none());
    for r in pool.regions() {
        assert!(!r.flags().contains(RegionFlags::MMAPOK), "{}", r.name());
    }
}

#[test]
fn large_buffers_come_from_their_own_region() {
    let pool = PacketPool::create(
        "large",
        &params(64).with(|p| {
            p.large_buf_size = 16384;
            p.large_buffers = 8;
        }),
    )
    .unwrap();
    let r = pool.region(RegionId::BufLarge).unwrap();
    assert!(r.flags().contains(RegionFlags::SHAREOK));
    let b = pool.alloc_large().unwrap();
    pool.free_large(b).unwrap();
    assert!(pool.free_large(b).is_err());
    let plain = PacketPool::create("plain", &params(64)).unwrap();
    assert!(plain.alloc_large().is_none());
    assert!(plain.free_large(0).is_err());
}

#[test]
fn truncated_buffers_need_not_be_powers_of_two() {
    let e = PacketPool::create("t", &params(64).with(|p| p.buf_size = 3000)).unwrap_err();
    assert!(e.to_string().contains("power of two"), "{e}");
    let pool = PacketPool::create(
        "t",
        &params(64).with(|p| {
            p.buf_size = 3000;
            p.truncated_buf = true;
        }),
    )
    .unwrap();
    assert_eq!(pool.buf_size(), 3008, "cache-line rounded only");
}

#[test]
fn every_invalid_pool_parameter_is_named() {
    let cases: Vec<(PoolParams, &str)> = vec![
        (params(0), "at least one packet"),
        (params(8).with(|p| p.buf_size = 256), "512 B to 32 KiB"),
        (params(8).with(|p| p.buf_size = 65536), "512 B to 32 KiB"),
        (params(8).with(|p| p.max_frags = 0), "max_frags"),
        (params(8).with(|p| p.max_frags = 65), "max_frags"),
        (
            params(8).with(|p| p.buffers = 9),
            "buffers must equal packets",
        ),
        (
            params(8).with(|p| {
                p.buffers = 4;
                p.max_frags = 2;
            }),
            "at least one buffer per packet",
        ),
        (
            params(8).with(|p| p.large_buffers = 4),
            "both a size and a count",
        ),
        (
            params(8).with(|p| {
                p.large_buf_size = 1024;
                p.large_buffers = 4;
            }),
            "larger than default",
        ),
    ];
    for (p, words) in cases {
        let e = PacketPool::create("bad", &p).unwrap_err();
        assert!(
            matches!(e, Error::Region(RegionError::InvalidParams { .. })),
            "{e}"
        );
        assert!(e.to_string().contains(words), "{e} lacks {words:?}");
    }
}
