//! Regions: segments, statistics, mirroring, views and their protections.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod common;

use common::{peek, poke, signal_in_child};
use skmem::cache::{Cache, CacheParams};
use skmem::error::{CacheError, RegionError};
use skmem::region::{Region, RegionFlags, RegionId, RegionParams, View};
use skmem::sys::{page_size, Protection};

fn buffers(count: usize) -> RegionParams {
    RegionParams::new(RegionId::BufDef, 2048, count)
}

#[test]
fn segments_are_handed_out_lowest_first_and_accounted() {
    let r = Region::create("t", &buffers(64)).unwrap();
    let g = *r.geometry();
    assert_eq!(g.seg_count, 4);
    assert_eq!(r.name(), "t.buf_def");
    assert_eq!(r.alloc_segment().unwrap(), 0);
    assert_eq!(r.alloc_segment().unwrap(), 1);
    let st = r.stats();
    assert_eq!(st.segs_in_use, 2);
    assert_eq!(st.mem_inuse, 2 * g.seg_size);
    assert_eq!(st.mem_total, 4 * g.seg_size);
    assert_eq!(st.seg_allocs, 2);
    r.free_segment(0).unwrap();
    assert_eq!(r.alloc_segment().unwrap(), 0);
    let st = r.stats();
    assert_eq!((st.seg_allocs, st.seg_frees, st.segs_in_use), (3, 1, 2));
}

#[test]
fn exhausted_region_says_so_with_enomem() {
    let r = Region::create("t", &buffers(16)).unwrap();
    assert_eq!(r.geometry().seg_count, 1);
    r.alloc_segment().unwrap();
    let e = r.alloc_segment().unwrap_err();
    assert!(
        matches!(
            e,
            RegionError::Exhausted {
                region: RegionId::BufDef,
                segments: 1
            }
        ),
        "{e}"
    );
    assert_eq!(e.errno(), libc::ENOMEM);
}

#[test]
fn freeing_a_free_or_unknown_segment_is_refused() {
    let r = Region::create("t", &buffers(16)).unwrap();
    assert!(matches!(r.free_segment(0), Err(RegionError::Misuse { .. })));
    assert!(matches!(
        r.free_segment(99),
        Err(RegionError::Misuse { .. })
    ));
    assert_eq!(r.stats().seg_frees, 0);
}

#[test]
fn invalid_params_create_nothing_and_name_the_region() {
    let p = RegionParams::new(RegionId::Kmd, 128, 0);
    let e = Region::create("t", &p).unwrap_err();
    assert!(e.to_string().contains("region kmd"), "{e}");
    assert_eq!(e.errno(), libc::EINVAL);
}

#[test]
fn every_region_has_its_own_uuid() {
    let a = Region::create("t", &buffers(16)).unwrap();
    let b = Region::create("t", &buffers(16)).unwrap();
    assert_ne!(a.uuid(), b.uuid());
    assert_eq!(a.stats().uuid, a.uuid());
}

fn mirror_pair(count: usize) -> (std::sync::Arc<Region>, std::sync::Arc<Region>) {
    let kmd = Region::create(
        "t",
        &RegionParams::new(RegionId::Kmd, 192, count).with_workers(1),
    )
    .unwrap();
    let umd = Region::create(
        "t",
        &RegionParams::new(RegionId::Umd, 192, count)
            .with_workers(1)
            .with_flags(RegionFlags::MMAPOK),
    )
    .unwrap();
    (kmd, umd)
}

#[test]
fn mirrored_objects_share_index_and_lifetime() {
    let (kmd, umd) = mirror_pair(100);
    Region::mirror(&kmd, umd.clone()).unwrap();
    assert!(umd.flags().contains(RegionFlags::MIRRORED));
    assert!(!kmd.flags().contains(RegionFlags::MIRRORED));

    let cache = Cache::new(kmd.clone(), CacheParams::new("kmd")).unwrap();
    let objs: Vec<u32> = (0..40).map(|_| cache.alloc().unwrap()).collect();
    assert_eq!(kmd.segs_in_use(), umd.segs_in_use());
    assert!(kmd.segs_in_use() > 0);
    for &o in &objs {
        // Object i sits at the same offset in master and mirror.
        let off_k = kmd.obj_ptr(o).unwrap() as usize - kmd.base() as usize;
        let off_u = umd.obj_ptr(o).unwrap() as usize - umd.base() as usize;
        assert_eq!(off_k, off_u);
        assert_eq!(off_k, o as usize * kmd.geometry().obj_size);
    }
    for o in objs {
        cache.free(o).unwrap();
    }
    cache.purge();
    assert_eq!(kmd.segs_in_use(), 0);
    assert_eq!(umd.segs_in_use(), 0);
    assert_eq!(umd.stats().seg_allocs, kmd.stats().seg_allocs);
}

#[test]
fn a_mirror_is_never_allocated_directly() {
    let (kmd, umd) = mirror_pair(100);
    Region::mirror(&kmd, umd.clone()).unwrap();
    assert!(matches!(
        umd.alloc_segment(),
        Err(RegionError::Misuse {
            region: RegionId::Umd,
            ..
        })
    ));
    let e = Cache::new(umd, CacheParams::new("umd")).unwrap_err();
    assert!(matches!(e, CacheError::InvalidParams { .. }), "{e}");
}

#[test]
fn mirroring_checks_pair_geometry_and_state() {
    let rule = |r: Result<(), RegionError>| match r {
        Err(RegionError::InvalidMirror { rule, .. }) => rule,
        other => panic!("expected InvalidMirror, got {other:?}"),
    };
    // Not a pair.
    let kmd = Region::create("t", &RegionParams::new(RegionId::Kmd, 192, 100)).unwrap();
    let ubft = Region::create("t", &RegionParams::new(RegionId::Ubft, 192, 100)).unwrap();
    assert!(rule(Region::mirror(&kmd, ubft)).contains("not a master/mirror pair"));
    // Different geometry.
    let umd = Region::create("t", &RegionParams::new(RegionId::Umd, 256, 100)).unwrap();
    assert!(rule(Region::mirror(&kmd, umd)).contains("geometries differ"));
    // Already in use.
    let (kmd, umd) = mirror_pair(100);
    let s = kmd.alloc_segment().unwrap();
    assert!(rule(Region::mirror(&kmd, umd.clone())).contains("in use"));
    kmd.free_segment(s).unwrap();
    // Twice.
    Region::mirror(&kmd, umd.clone()).unwrap();
    assert!(rule(Region::mirror(&kmd, umd)).contains("already mirrored"));
}

#[test]
fn a_region_backs_one_cache() {
    let r = Region::create("t", &buffers(16)).unwrap();
    let _c = Cache::new(r.clone(), CacheParams::new("a")).unwrap();
    assert!(matches!(
        Cache::new(r, CacheParams::new("b")),
        Err(CacheError::InvalidParams { .. })
    ));
}

#[test]
fn a_user_view_shares_bytes_with_the_owner() {
    let r = Region::create(
        "t",
        &RegionParams::new(RegionId::Umd, 256, 16)
            .with_flags(RegionFlags::MMAPOK | RegionFlags::NOMAGAZINES),
    )
    .unwrap();
    let view = r.map_view(View::User).unwrap();
    assert_eq!(view.protection(), Protection::ReadWrite);
    assert_eq!(view.len(), r.size());
    let owner = r.obj_ptr(3).unwrap();
    poke(owner);
    assert_eq!(peek(view.as_ptr().wrapping_add(3 * 256)), 0xAB);
    poke(view.as_ptr());
    assert_eq!(peek(r.base()), 0xAB);
}

#[test]
fn a_ureadonly_view_refuses_a_write() {
    let r = Region::create("t", &RegionParams::new(RegionId::TxaUsd, 64, 64)).unwrap();
    assert!(r.flags().contains(RegionFlags::UREADONLY));
    let view = r.map_view(View::User).unwrap();
    assert_eq!(view.protection(), Protection::Read);
    poke(r.base()); // the owner may write
    assert_eq!(peek(view.as_ptr()), 0xAB); // the mapper sees it
    let p = view.as_ptr();
    assert_eq!(signal_in_child(|| poke(p)), Some(libc::SIGSEGV));
    // A read from the child is fine.
    assert_eq!(
        signal_in_child(|| {
            peek(p);
        }),
        None
    );
}

#[test]
fn a_guard_page_faults_on_any_access() {
    let r = Region::create("t", &RegionParams::new(RegionId::GuardHead, page_size(), 1)).unwrap();
    assert!(r.fd().is_none());
    assert!(matches!(r.alloc_segment(), Err(RegionError::Misuse { .. })));
    let p = r.base();
    assert_eq!(
        signal_in_child(|| {
            peek(p);
        }),
        Some(libc::SIGSEGV)
    );
    let view = r.map_view(View::User).unwrap();
    assert_eq!(view.protection(), Protection::None);
    let q = view.as_ptr();
    assert_eq!(signal_in_child(|| poke(q)), Some(libc::SIGSEGV));
}

#[test]
fn kreadonly_makes_the_owner_view_read_only() {
    let r = Region::create(
        "t",
        &RegionParams::new(RegionId::Intrinsic, 64, 64)
            .with_flags(RegionFlags::KREADONLY | RegionFlags::NOMAGAZINES),
    )
    .unwrap();
    let p = r.base();
    assert_eq!(signal_in_child(|| poke(p)), Some(libc::SIGSEGV));
}

#[test]
fn region_fds_and_mappings_are_released_on_drop() {
    // Other tests run concurrently in this process: count only our memfd.
    let owner = format!("fdtest{}", std::process::id());
    let tag = format!("memfd:skmem.{owner}.buf_def");
    let fds = || {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|l| l.to_string_lossy().contains(&tag))
            .count()
    };
    let maps = || {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .filter(|l| l.contains(&tag))
            .count()
    };
    let r = Region::create(&owner, &buffers(4096)).unwrap();
    let v = r.map_view(View::User).unwrap();
    assert_eq!(fds(), 1);
    assert_eq!(maps(), 2, "owner view and user view");
    drop(v);
    assert_eq!(maps(), 1);
    drop(r);
    assert_eq!(fds(), 0);
    assert_eq!(maps(), 0);
}
