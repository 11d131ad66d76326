//! Region memfds as whoever holds one finds them: the size is sealed,
//! a region mappers only read takes no new write by any route, no holder
//! can add a seal; and a segment emptied by a reap gives its pages back.
//! (The same refusals, from a separate mapper process, are in
//! `netns-tests/tests/lend.rs`.)

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::os::fd::AsRawFd;

use skmem::cache::{Cache, CacheParams};
use skmem::region::{Region, RegionFlags, RegionId, RegionParams};

/// The errno of a failed libc call returning -1 or MAP_FAILED.
/// `mmap` of the first page of `fd`, shared, with `prot`: the raw result
/// (`MAP_FAILED` and errno when refused), for the test to unmap.
///
/// # Safety
/// `fd` is an open descriptor.
unsafe fn map_page(fd: i32, prot: i32) -> *mut libc::c_void {
    // SAFETY: a fresh mapping the kernel places; no existing memory is
    // touched.
    unsafe { libc::mmap(std::ptr::null_mut(), 4096, prot, libc::MAP_SHARED, fd, 0) }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap()
}

#[test]
fn no_holder_can_resize_a_region_or_add_a_seal() {
    let r = Region::create("seal", &RegionParams::new(RegionId::BufDef, 2048, 64)).unwrap();
    let fd = r.fd().unwrap().as_raw_fd();
    let size = r.size() as i64;
    for len in [0, size / 2, size * 2] {
        // SAFETY: ftruncate on an fd this test holds; no memory involved.
        assert_eq!(unsafe { libc::ftruncate(fd, len) }, -1, "to {len}");
        assert_eq!(errno(), libc::EPERM);
    }
    // SAFETY: fcntl on an fd this test holds.
    let added = unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, libc::F_SEAL_WRITE) };
    assert_eq!(added, -1);
    assert_eq!(errno(), libc::EPERM, "F_SEAL_SEAL closes the list");
    // A writable region still maps writable.
    // SAFETY: a fresh shared mapping of the fd, unmapped at once.
    unsafe {
        let p = map_page(fd, libc::PROT_READ | libc::PROT_WRITE);
        assert_ne!(p, libc::MAP_FAILED);
        libc::munmap(p, 4096);
    }
}

#[test]
fn a_read_only_region_takes_no_new_write_by_any_route() {
    let r = Region::create("seal", &RegionParams::new(RegionId::TxaUsd, 64, 64)).unwrap();
    assert!(r.flags().contains(RegionFlags::UREADONLY));
    let fd = r.fd().unwrap().as_raw_fd();
    // SAFETY: mmap/mprotect/write on an fd this test holds; every mapping
    // made is unmapped before the block ends.
    unsafe {
        let p = map_page(fd, libc::PROT_READ | libc::PROT_WRITE);
        assert_eq!(p, libc::MAP_FAILED, "a writable mapping");
        assert_eq!(errno(), libc::EPERM);
        let p = map_page(fd, libc::PROT_READ);
        assert_ne!(p, libc::MAP_FAILED, "a read-only one is fine");
        assert_eq!(
            libc::mprotect(p, 4096, libc::PROT_READ | libc::PROT_WRITE),
            -1
        );
        assert_eq!(errno(), libc::EACCES, "mprotect to writable");
        libc::munmap(p, 4096);
        assert_eq!(
            libc::pwrite(fd, [1u8].as_ptr().cast(), 1, 0),
            -1,
            "write(2)"
        );
        assert_eq!(errno(), libc::EPERM);
        // Reopening through /proc gives a new file, the same seals.
        let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).unwrap();
        let rw = libc::open(path.as_ptr(), libc::O_RDWR);
        assert!(rw >= 0);
        assert_eq!(
            libc::pwrite(rw, [1u8].as_ptr().cast(), 1, 0),
            -1,
            "write(2) on a reopen"
        );
        libc::close(rw);
    }
    // The owner's own view, made before the seal, still writes: the slots
    // push through it.
    // SAFETY: fcntl on an fd this test holds.
    let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    assert_ne!(seals & libc::F_SEAL_FUTURE_WRITE, 0);
}

#[test]
fn an_emptied_segment_gives_its_pages_back() {
    // 64 KiB segments of 2 KiB objects, a cache over them.
    let r = Region::create(
        "punch",
        &RegionParams::new(RegionId::BufDef, 2048, 1024).with_seg_size(64 * 1024),
    )
    .unwrap();
    let seg = r.geometry().seg_size;
    let c = Cache::new(
        r.clone(),
        CacheParams::new("punch").with(|p| p.no_magazines = true),
    )
    .unwrap();
    let before = r.resident();
    // Objects of four segments, each written (so its pages exist).
    let mut objs = vec![0u32; 4 * seg / 2048];
    assert_eq!(c.alloc_batch(&mut objs), objs.len());
    for &o in &objs {
        let p = c.obj_ptr(o).unwrap();
        // SAFETY: `p` is object `o`'s first byte in the owner's read-write
        // view, and the test holds the object.
        unsafe { p.write_volatile(1) };
    }
    let touched = r.resident();
    assert!(touched >= before + 4 * seg as u64, "{before} -> {touched}");
    c.free_batch(&objs).unwrap();
    c.purge();
    assert_eq!(r.segs_in_use(), 0);
    let after = r.resident();
    assert!(after <= before, "{touched} -> {after}: the pages stayed");
}
