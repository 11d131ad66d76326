//! What a dead run left behind, removed at the start of the next one.
//!
//! A run killed with SIGKILL cannot tear down: its network namespaces
//! (`skm<pid>…`) and its observer's pinned map (`/sys/fs/bpf/skmem/
//! arenas_<pid>_…`) and its statistics socket (`/run/skmem/stats-…`)
//! stay, and so do the offer sockets of `fwd --workers`, `demo --workers`
//! and `soak` in the temporary directory. The next `demo`, `fwd` or
//! `watch` removes those whose process is gone and says so on stderr.

use std::os::unix::fs::FileTypeExt as _;
use std::path::PathBuf;

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
    for socket in dead_offer_sockets() {
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

/// Removes the offer sockets in the temporary directory whose process is
/// gone; returns their paths. A pid is not proof either way (a maker in
/// another PID namespace numbers itself differently, and pids are
/// reused): a socket whose pid is no process here is probed as the offer
/// itself probes a stale path, and removed only when nothing listens on
/// it (ECONNREFUSED). A live maker's socket here is never touched.
fn dead_offer_sockets() -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let mut gone = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some(rest) = OFFER_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) else {
            continue;
        };
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        let Ok(pid) = rest[..digits].parse::<u32>() else {
            continue;
        };
        let is_socket = entry.file_type().is_ok_and(|t| t.is_socket());
        let maker_here = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !is_socket || !name.ends_with(".sock") || maker_here || !refused(&entry.path()) {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            gone.push(entry.path());
        }
    }
    gone
}

/// Whether a connection to the offer socket at `path` is refused: nothing
/// listens there any more.
fn refused(path: &std::path::Path) -> bool {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    let Ok(addr) = SocketAddrUnix::new(path) else {
        return false;
    };
    let Ok(probe) = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    ) else {
        return false;
    };
    rustix::net::connect(&probe, &addr) == Err(rustix::io::Errno::CONNREFUSED)
}
