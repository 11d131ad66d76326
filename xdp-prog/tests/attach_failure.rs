//! Fault injection in the loader: a failure at loading the program,
//! attaching it to the interface, or inserting a socket in its map leaves
//! nothing behind — no XDP program on the interface, no descriptor — and
//! the next attempt succeeds.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod support;

use std::collections::BTreeSet;

use skmem::failpoint;
use skmem_xdp::{AttachMode, XdpError, XdpProgram};
use support::{Queues, VethPair};

/// Descriptors open in this process.
fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn every_loader_step_fails_cleanly() {
    if !support::can_run("every_loader_step_fails_cleanly") {
        return;
    }
    let q = Queues { rx: 1, tx: 1 };
    let pair = VethPair::with_queues(q, q);
    let ifname = pair.a.clone();
    let (_arena, ch) = pair
        .in_a(|| {
            let arena = skmem::Arena::create_nexus(&skmem::NexusParams::new("xdp-faults"))?;
            let mut cp = skmem::ChannelParams::new(&ifname, 0);
            cp.mode = skmem::BindMode::Copy;
            let ch = skmem::Channel::open(&arena, &cp)?;
            Ok::<_, skmem::Error>((arena, ch))
        })
        .expect("AF_XDP channel");
    let before = fds();
    let mut failed = BTreeSet::new();
    // Loading and attaching, inside A's namespace (the countdown is the
    // thread's).
    let mut prog = None;
    for n in 1..10 {
        let r = pair.in_a(|| {
            failpoint::fail_after(n);
            let r = XdpProgram::attach(&ifname, AttachMode::Native, None);
            failpoint::fail_after(0);
            r
        });
        match r {
            Err(XdpError::Injected { step }) => {
                failed.insert(step);
                assert_eq!(
                    pair.xdp_on_a(),
                    None,
                    "a program left after failing at {step}"
                );
                assert_eq!(fds(), before, "descriptors left after failing at {step}");
            }
            Err(e) => panic!("{e}"),
            Ok(p) => {
                prog = Some(p);
                break;
            }
        }
    }
    let mut prog = prog.expect("the attach succeeds once no step fails");
    assert!(pair.xdp_on_a().is_some());
    // The map insert.
    failpoint::fail_after(1);
    match prog.add_socket(0, ch.fd()) {
        Err(XdpError::Injected { step }) => {
            failed.insert(step);
        }
        r => panic!("{r:?}"),
    }
    prog.add_socket(0, ch.fd()).unwrap();
    assert_eq!(
        failed,
        BTreeSet::from(["XDP program load", "XDP attach", "XSKMAP insert"])
    );
    // Detached on drop: nothing of it stays on the interface.
    drop(prog);
    assert_eq!(pair.xdp_on_a(), None);
}
