//! Reading what skmem processes publish ([`crate::publish`]): every
//! process's statistics, as `skmemctl stats` shows them.
//!
//! [`read_all`] asks each statistics socket in [`RUN_DIR`] for its
//! document, removes the sockets of processes that died (they refuse
//! connections), and gives each process's pid as the kernel numbers it for
//! the reader (`SO_PEERCRED`). [`snapshot`] is this process's own document.

use std::io::{self, Read as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use crate::arena::published::{ArenaSummary, CacheSummary};
use crate::channel::registry::ChannelStats;
use crate::owner::RUN_DIR;
use crate::publish::{peer, sockets, TIMEOUT, VERSION};

/// One process's statistics, as its `skmem-stats` thread answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// [`VERSION`].
    pub version: u32,
    /// The process's pid as the reader's PID namespace numbers it (from
    /// `SO_PEERCRED`; the publisher fills in its own view).
    pub pid: u32,
    /// The pid the process knows itself by (differs inside a PID
    /// namespace).
    pub own_pid: u32,
    /// `/proc/self/comm`.
    pub comm: String,
    /// Its live arenas, oldest first.
    #[serde(default)]
    pub arenas: Vec<ArenaSummary>,
    /// Its live channels, oldest first.
    #[serde(default)]
    pub channels: Vec<ChannelStats>,
    /// The caches of its arenas.
    #[serde(default)]
    pub caches: Vec<CacheSummary>,
}

/// This process's statistics now: the document its statistics socket
/// would answer.
pub fn snapshot() -> ProcessStats {
    let (arenas, caches) = crate::arena::published::summaries();
    let pid = std::process::id();
    ProcessStats {
        version: VERSION,
        pid,
        own_pid: pid,
        comm: crate::publish::comm(),
        arenas,
        channels: crate::channel::registry::channels(),
        caches,
    }
}

/// What [`read_all`] found.
#[derive(Debug, Default)]
pub struct Published {
    /// Every publishing process that answered, by pid.
    pub processes: Vec<ProcessStats>,
    /// Sockets of processes that died without removing them (SIGKILL),
    /// removed by this call.
    pub removed: Vec<PathBuf>,
    /// Sockets that did not answer, and why (a process stopped in a
    /// debugger, or one answering too slowly).
    pub unanswered: Vec<(PathBuf, String)>,
}

/// Errors of [`read_all`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Not allowed to read [`RUN_DIR`] (root-only).
    #[error("reading the statistics in {RUN_DIR} (root-only): {0}")]
    Permission(#[source] io::Error),
    /// Listing [`RUN_DIR`] failed otherwise.
    #[error("listing {RUN_DIR}: {0}")]
    Io(#[source] io::Error),
}

/// Asks every publishing process on the host for its statistics, removing
/// the sockets of dead ones.
pub fn read_all() -> Result<Published, ReadError> {
    read_dir(Path::new(RUN_DIR))
}

fn read_dir(dir: &Path) -> Result<Published, ReadError> {
    let mut out = Published::default();
    match std::fs::read_dir(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Err(ReadError::Permission(e))
        }
        Err(e) => return Err(ReadError::Io(e)),
    }
    for path in sockets(dir) {
        match ask(&path) {
            Ok(p) => out.processes.push(p),
            Err(e) if e.raw_os_error() == Some(libc::ECONNREFUSED) => {
                if std::fs::remove_file(&path).is_ok() {
                    out.removed.push(path);
                }
            }
            // Gone between listing and connecting: it exited cleanly.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => out.unanswered.push((path, e.to_string())),
        }
    }
    out.processes.sort_by_key(|p| p.pid);
    Ok(out)
}

/// One process's answer, with its pid as the kernel gives it to us.
fn ask(path: &Path) -> io::Result<ProcessStats> {
    let mut c = UnixStream::connect(path)?;
    c.set_read_timeout(Some(TIMEOUT))?;
    let (pid, _) = peer(&c)?;
    let mut body = Vec::new();
    c.read_to_end(&mut body)?;
    let mut p: ProcessStats =
        serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    if p.version != VERSION {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "statistics version {} (this reader knows {VERSION})",
                p.version
            ),
        ));
    }
    p.pid = pid;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::os::unix::net::UnixListener;

    use super::*;
    use crate::owner::unique_name;
    use crate::publish::{answer, SOCKET_PREFIX};

    #[test]
    fn a_refusing_socket_is_removed_and_a_live_one_answers() {
        let dir = std::env::temp_dir().join(unique_name("skmem-publish-test-"));
        std::fs::create_dir(&dir).unwrap();
        // A socket whose listener is gone: what a SIGKILLed process leaves.
        let dead = dir.join(format!("{SOCKET_PREFIX}1-dead.sock"));
        drop(UnixListener::bind(&dead).unwrap());
        // A live one, answered by this thread.
        let live = dir.join(format!("{SOCKET_PREFIX}2-live.sock"));
        let l = UnixListener::bind(&live).unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            answer(&mut c).unwrap();
        });
        let found = read_dir(&dir).unwrap();
        server.join().unwrap();
        assert_eq!(found.removed, vec![dead.clone()]);
        assert!(!dead.exists());
        assert_eq!(found.processes.len(), 1, "{found:?}");
        let p = &found.processes[0];
        assert_eq!(p.pid, std::process::id(), "pid from SO_PEERCRED");
        assert_eq!(p.version, VERSION);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_wrong_version_is_refused_with_a_reason() {
        let dir = std::env::temp_dir().join(unique_name("skmem-publish-test-"));
        std::fs::create_dir(&dir).unwrap();
        let path = dir.join(format!("{SOCKET_PREFIX}3-old.sock"));
        let l = UnixListener::bind(&path).unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut p = snapshot();
            p.version = 99;
            c.write_all(&serde_json::to_vec(&p).unwrap()).unwrap();
        });
        let found = read_dir(&dir).unwrap();
        server.join().unwrap();
        assert!(found.processes.is_empty());
        assert_eq!(found.unanswered.len(), 1);
        assert!(found.unanswered[0].1.contains("version 99"), "{found:?}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
