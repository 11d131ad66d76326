//! What a dead run left behind, removed at the start of the next one.
//!
//! A run killed with SIGKILL cannot tear down: its network namespaces
//! (`skm<pid>…`) and its observer's pinned map (`/sys/fs/bpf/skmem/
//! arenas_<pid>_…`) and its statistics socket (`/run/skmem/stats-…`)
//! stay, and so do the offer sockets of `fwd --workers`, `demo --workers`
//! and `soak` in the temporary directory. The next `demo`, `fwd` or
//! `watch` removes those whose process is gone and says so on stderr.

/// The names of the offer sockets skmemctl makes in the temporary
/// directory, each followed by the pid of the process that made it.
const OFFER_PREFIXES: [&str; 3] = ["skmemctl-fwd-", "skmemctl-demo-", "skmem-soak-"];

/// Removes dead runs' namespaces and observer pins; prints what went.
pub fn remove(cmd: &str) {
    let namespaces = skmem_netns::cleanup_stale();
    if !namespaces.is_empty() {
        eprintln!(
            "skmemctl {cmd}: removed the network namespaces a dead run left: {}",
            namespaces.join(", ")
        );
    }
    for socket in skmem::publish::remove_dead() {
        eprintln!(
            "skmemctl {cmd}: removed the statistics socket a dead process left: {}",
            socket.display()
        );
    }
    for socket in skmem_netns::cleanup_stale_sockets(&OFFER_PREFIXES) {
        eprintln!(
            "skmemctl {cmd}: removed the offer socket a dead run left: {}",
            socket.display()
        );
    }
    // Reading the pins removes those of dead observers (root only: a
    // refusal here is reported by the command itself later).
    if let Ok(found) = skmem_xdp::observe::pinned_arenas() {
        for pin in &found.removed {
            eprintln!(
                "skmemctl {cmd}: removed the pin a dead observer left: {}",
                pin.display()
            );
        }
    }
}
