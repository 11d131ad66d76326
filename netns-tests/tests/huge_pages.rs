//! A pool on huge pages (`PoolParams::huge_pages`): its buffer region is
//! backed by 2 MiB pages in the owner's view and in every span (on a huge
//! page there), a machine without free ones refuses it with a typed error,
//! and the pages a test reserves go back when it ends.

// A test target sees every dependency of its package; whether the package
// uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use skmem::arena::{Arena, NexusParams};
use skmem::region::{RegionFlags, RegionId};
use skmem::sys::HUGE_PAGE_SIZE;
use skmem_netns::{free_huge_pages, HugePages};

/// The kernel page size backing the mapping that contains `addr`, from
/// `/proc/self/smaps` (in KiB).
fn kernel_page_kib(addr: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut inside = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((lo, hi)) = range.split_once('-') {
                if let (Ok(lo), Ok(hi)) =
                    (usize::from_str_radix(lo, 16), usize::from_str_radix(hi, 16))
                {
                    inside = (lo..hi).contains(&addr);
                    continue;
                }
            }
        }
        if inside {
            if let Some(v) = line.strip_prefix("KernelPageSize:") {
                return v.trim().trim_end_matches("kB").trim().parse().ok();
            }
        }
    }
    None
}

/// The machine's huge page count is one for all: the tests take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn params(name: &str) -> NexusParams {
    let mut np = NexusParams::new(name);
    np.pool.packets = 1024;
    np.pool.buf_size = 2048;
    np.pool.huge_pages = true;
    np
}

#[test]
fn a_pool_on_huge_pages_maps_on_huge_pages_and_gives_them_back() {
    skmem_netns::require_root!();
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // With none free, creation is refused with a typed error, not a fault.
    if free_huge_pages().unwrap() == 0 {
        let e = Arena::create_nexus(&params("huge.none")).unwrap_err();
        assert!(
            matches!(e, skmem::Error::Region(skmem::RegionError::HugePages { region: RegionId::BufDef, needed }) if needed >= 1),
            "{e}"
        );
        assert_eq!(e.errno(), libc::ENOMEM);
    }
    let free_before = free_huge_pages().unwrap();
    let pages = match HugePages::reserve(4) {
        Ok(p) => p,
        Err(why) => return skmem_netns::skip("huge pages", &why),
    };
    assert_eq!(free_huge_pages().unwrap(), free_before + 4);
    {
        let arena = Arena::create_nexus(&params("huge")).unwrap();
        let r = arena.region(RegionId::BufDef).unwrap();
        assert!(r.flags().contains(RegionFlags::HUGETLB));
        // 1024 buffers of 2 KiB (and the caches' reserve) in whole huge
        // pages, reserved by the owner's view.
        let used = r.size() / HUGE_PAGE_SIZE;
        assert_eq!(r.size() % HUGE_PAGE_SIZE, 0);
        assert!((1..=2).contains(&used), "{used}");
        assert_eq!(free_huge_pages().unwrap(), free_before + 4 - used);
        // In a span, the region sits on a huge page, on huge pages.
        let m = arena.map().unwrap();
        let off = arena.region_offset(RegionId::BufDef);
        assert_eq!(m.addr() as usize % HUGE_PAGE_SIZE, 0);
        assert_eq!(off % HUGE_PAGE_SIZE, 0);
        assert_eq!(kernel_page_kib(m.addr() as usize + off), Some(2048));
        // The other regions stay on ordinary pages.
        assert_eq!(
            kernel_page_kib(m.addr() as usize + arena.region_offset(RegionId::Schema)),
            Some(4)
        );
        // The schema says where, as a mapper reads it.
        let schema = m.schema().unwrap();
        let bufs = schema
            .regions
            .iter()
            .find(|e| e.id == RegionId::BufDef)
            .unwrap();
        assert_eq!(bufs.offset as usize, off);
        assert!(bufs.flags.contains(RegionFlags::HUGETLB));
    }
    assert_eq!(
        free_huge_pages().unwrap(),
        free_before + 4,
        "the arena gave its page back"
    );
    drop(pages);
    assert_eq!(
        free_huge_pages().unwrap(),
        free_before,
        "the test gave its pages back"
    );
}

#[test]
fn the_pages_a_killed_run_reserved_are_given_back_by_the_next() {
    skmem_netns::require_root!();
    let _turn = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // What a run SIGKILLed while holding 3 pages leaves: the pages added,
    // and its mark, which nobody holds any more.
    let before: usize = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    std::fs::write("/proc/sys/vm/nr_hugepages", (before + 3).to_string()).unwrap();
    let mark = skmem::owner::unique_name("hugepages-3-");
    let dir = skmem::owner::run_dir().unwrap().join("owners");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&mark), b"").unwrap();
    let done = skmem_netns::cleanup_stale_huge_pages();
    assert!(
        done.iter()
            .any(|d| d.contains("gave back 3 huge pages") && d.contains(&mark)),
        "{done:?}"
    );
    let after: usize = std::fs::read_to_string("/proc/sys/vm/nr_hugepages")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(after, before);
    assert!(!dir.join(&mark).exists());
}
