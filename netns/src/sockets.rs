//! Offer sockets a killed run left in the temporary directory: an
//! `ArenaOffer` listens on a path named after its maker's pid, and a run
//! killed with SIGKILL cannot unlink it.

use std::os::unix::fs::FileTypeExt as _;
use std::path::PathBuf;

/// Removes the Unix sockets in the temporary directory whose name is one
/// of `prefixes`, the maker's pid, anything, and `.sock`, and whose
/// process is gone; returns their paths. A pid is not proof either way (a
/// maker in another PID namespace numbers itself differently, and pids are
/// reused): a socket whose pid is no process here is probed as the offer
/// itself probes a stale path, and removed only when nothing listens on
/// it (ECONNREFUSED). A live maker's socket here is never touched.
pub fn cleanup_stale_sockets(prefixes: &[&str]) -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let mut gone = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some(rest) = prefixes.iter().find_map(|p| name.strip_prefix(p)) else {
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
