//! Fault injection in the observer: a failure at loading its programs,
//! attaching a tracepoint, pinning the live-arena map, or attaching a
//! uprobe leaves nothing behind — no pin, no owner mark, no descriptor —
//! and the next attach succeeds. A binary of its own: nothing else in the
//! process pins or opens descriptors while it counts.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod support;

use std::collections::BTreeSet;

use skmem::failpoint;
use skmem_xdp::observe::{ObserveError, ObserveTarget, Observer, PIN_DIR, PIN_PREFIX};

/// What an observer leaves while it lives: descriptors, this process's
/// pins, and the pins' owner marks.
fn footprint() -> (usize, Vec<String>, Vec<String>) {
    let fds = std::fs::read_dir("/proc/self/fd").unwrap().count();
    let mine = format!("{PIN_PREFIX}{}_", std::process::id());
    let pins = std::fs::read_dir(PIN_DIR)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with(&mine))
                .collect()
        })
        .unwrap_or_default();
    (fds, pins, skmem::owner::marks(&format!("pin-{mine}")))
}

#[test]
fn every_observer_step_fails_cleanly() {
    if !support::can_run("every_observer_step_fails_cleanly") {
        return;
    }
    // An arena first, so that this binary carries skmem's hooks and its
    // statistics thread is up before the count starts.
    let _arena = skmem::Arena::create_nexus(&skmem::NexusParams::new("observe-faults")).unwrap();
    let target = ObserveTarget {
        pid: Some(std::process::id() as i32),
        binaries: Vec::new(),
        scan: Some(false),
        ..ObserveTarget::default()
    };
    let before = footprint();
    let mut failed = BTreeSet::new();
    let mut attached = false;
    for n in 1..64 {
        failpoint::fail_after(n);
        let r = Observer::attach(target.clone());
        failpoint::fail_after(0);
        match r {
            Err(ObserveError::Injected { step }) => {
                failed.insert(step);
                assert_eq!(
                    footprint(),
                    before,
                    "left after failing at {step} (step {n})"
                );
            }
            Err(e) => panic!("{e}"),
            Ok(obs) => {
                assert_eq!(footprint().1.len(), 1, "one pin while it lives");
                drop(obs);
                attached = true;
                break;
            }
        }
    }
    assert!(attached, "the attach succeeds once no step fails");
    assert_eq!(footprint(), before, "the observer's drop leaves nothing");
    assert_eq!(
        failed,
        BTreeSet::from(["observer load", "tracepoint attach", "pin", "uprobe attach"])
    );
}
