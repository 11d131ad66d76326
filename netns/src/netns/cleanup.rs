//! What a killed process left: the harness's namespaces whose maker is
//! gone, found by their names and owner marks, and removed by the next
//! run (or by the process itself at its end).

use std::path::Path;

use skmem::owner::Owner;

use super::{delete_ns, ns_path, pid_of_name, warn, NETNS_DIR, NS_PREFIX};

/// Lists the namespaces in [`NETNS_DIR`] that have the harness's name shape,
/// with the pid in their name.
pub fn harness_namespaces() -> Vec<(String, u32)> {
    let Ok(dir) = std::fs::read_dir(NETNS_DIR) else {
        return Vec::new();
    };
    let mut v: Vec<(String, u32)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(NS_PREFIX))
        .filter_map(|n| pid_of_name(&n).map(|p| (n, p)))
        .collect();
    v.sort();
    v
}

/// Whether a process `pid` exists (in this process's PID namespace).
fn pid_running(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The prefix of the namespaces' owner marks.
const MARK_PREFIX: &str = "netns-";

/// The owner mark of namespace `ns`.
pub(super) fn mark_of(ns: &str) -> String {
    format!("{MARK_PREFIX}{ns}")
}

/// Whether the process that made namespace `name` lives: its owner mark is
/// held. A namespace without a mark is judged by the pid in its name.
fn maker_running(name: &str, pid: u32) -> bool {
    match skmem::owner::owner_of(&mark_of(name)) {
        Ok(Some(Owner::Alive(_))) => true,
        Ok(Some(Owner::Gone)) => false,
        Ok(None) | Err(_) => pid_running(pid),
    }
}

/// Removes harness namespaces (`skm<pid>…`) whose process is no longer
/// running, left behind by a test process that was killed before its
/// `Drop`s ran. Namespaces of live processes, including this one, are kept.
/// Returns the names removed; failures are logged, not returned.
pub fn cleanup_stale() -> Vec<String> {
    let mut removed = Vec::new();
    for (name, pid) in harness_namespaces() {
        if maker_running(&name, pid) {
            continue;
        }
        match delete_ns(&name) {
            Ok(()) => {
                let _ = skmem::owner::remove_orphan(&mark_of(&name));
                removed.push(name)
            }
            Err(e) => warn(&format!("removing stale namespace {name}: {e}")),
        }
    }
    if !removed.is_empty() {
        tracing::info!("removed stale namespaces {removed:?}");
    }
    // Marks whose namespace is gone and whose maker died (a process that
    // deleted its namespaces at exit without dropping its pairs, or was
    // killed after they went).
    for mark in skmem::owner::marks(MARK_PREFIX) {
        let ns = &mark[MARK_PREFIX.len()..];
        if !ns_path(ns).exists() {
            let _ = skmem::owner::remove_orphan(&mark);
        }
    }
    removed
}

/// Removes every harness namespace named with *this* process's pid. Only for
/// the end of a test binary (or a crash handler): it also removes the
/// namespaces of [`NetnsPair`](super::NetnsPair)s that are still alive in other threads.
/// Returns the names removed.
pub fn cleanup_own_process() -> Vec<String> {
    let me = std::process::id();
    let mut removed = Vec::new();
    for (name, pid) in harness_namespaces() {
        if pid != me {
            continue;
        }
        match delete_ns(&name) {
            Ok(()) => {
                // Its pair will never be dropped: its mark goes now.
                let _ = skmem::owner::discard(&mark_of(&name));
                removed.push(name)
            }
            Err(e) => warn(&format!("removing namespace {name}: {e}")),
        }
    }
    removed
}
