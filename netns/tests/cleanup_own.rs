//! `cleanup_own_process` removes every namespace of this process. It gets a
//! test binary of its own: in a shared one it would remove the pairs of
//! tests running in parallel.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod common;

use skmem_netns::{cleanup_own_process, NetnsPair, Side};

#[test]
fn cleanup_own_process_removes_pairs_that_were_never_dropped() {
    skmem_netns::require_root!();
    let pair = NetnsPair::new().unwrap();
    let (ns, ifs) = common::names(&pair);
    assert!(pair.ns_path(Side::A).exists());
    // Simulates a pair whose Drop never ran.
    std::mem::forget(pair);
    let removed = cleanup_own_process();
    for n in &ns {
        assert!(removed.contains(n), "{n} not in {removed:?}");
        // Its owner mark too: nothing of the pair outlives the process.
        let mark = format!("netns-{n}");
        assert_eq!(skmem::owner::owner_of(&mark).unwrap(), None, "{mark}");
    }
    common::assert_gone(&ns, &ifs);
}
