//! Fault injection in making a pair: a failure at creating either
//! namespace, the veth, or bringing either end up leaves nothing — no
//! namespace of this process, no interface in the root namespace — and
//! the next pair is made. A binary of its own: nothing else in the process
//! makes namespaces while it counts them.

// A test target sees every dependency of its package; whether the package
// uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::collections::BTreeSet;

use skmem::failpoint;
use skmem_netns::{harness_namespaces, root_ifnames, Error, NetnsPair};

/// This process's harness namespaces.
fn mine() -> Vec<String> {
    let me = std::process::id();
    harness_namespaces()
        .into_iter()
        .filter(|(_, pid)| *pid == me)
        .map(|(n, _)| n)
        .collect()
}

#[test]
fn every_setup_step_fails_cleanly() {
    skmem_netns::require_root!();
    let links = root_ifnames().unwrap();
    let mut failed = Vec::new();
    let mut made = None;
    for n in 1..20 {
        failpoint::fail_after(n);
        let r = NetnsPair::new();
        failpoint::fail_after(0);
        match r {
            Err(Error::Injected { step }) => {
                failed.push(step);
                assert_eq!(
                    mine(),
                    Vec::<String>::new(),
                    "namespaces left after failing at {step}"
                );
                assert_eq!(
                    root_ifnames().unwrap(),
                    links,
                    "interfaces left after failing at {step}"
                );
            }
            Err(e) => panic!("{e}"),
            Ok(pair) => {
                made = Some(pair);
                break;
            }
        }
    }
    let pair = made.expect("a pair once no step fails");
    let names = pair.names();
    drop(pair);
    skmem_netns::check_gone(&names).unwrap();
    // Both namespaces, the veth, both ends up.
    assert_eq!(
        failed,
        ["netns add", "netns add", "veth add", "link up", "link up"]
    );
    assert_eq!(
        failed.iter().collect::<BTreeSet<_>>().len(),
        3,
        "three distinct steps"
    );
}
