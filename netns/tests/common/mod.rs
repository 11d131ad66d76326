//! Helpers shared by the harness's own tests: the library's leftover
//! checks, as assertions.
#![allow(dead_code)]

use std::process::Command;

use skmem_netns::{check_gone, NetnsPair, PairNames};

/// Output of a command in the root namespace (panics if it fails).
pub fn root_cmd(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Names listed by `ip netns list`.
pub fn netns_list() -> Vec<String> {
    skmem_netns::netns_list().unwrap()
}

/// Interface names of the root namespace.
pub fn root_ifnames() -> Vec<String> {
    skmem_netns::root_ifnames().unwrap()
}

/// Names of both namespaces and both interfaces of `pair`.
pub fn names(pair: &NetnsPair) -> (Vec<String>, Vec<String>) {
    let n = pair.names();
    (n.namespaces, n.interfaces)
}

/// Asserts that nothing of a pair with these names is left.
pub fn assert_gone(ns: &[String], ifs: &[String]) {
    let names = PairNames {
        namespaces: ns.to_vec(),
        interfaces: ifs.to_vec(),
    };
    if let Err(why) = check_gone(&names) {
        panic!("{why}");
    }
}
