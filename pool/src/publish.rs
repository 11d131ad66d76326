//! What a process publishes so that `skmemctl stats` can read it without
//! an observer (as `dpdk-proc-info` reads a DPDK process).
//!
//! When a process creates its first arena, skmem starts one thread
//! (`skmem-stats`) that listens on a Unix socket in [`RUN_DIR`]
//! (`stats-PID-TOKEN.sock`, mode 0600 in a 0700 root directory: root-only,
//! as Skywalk's statistics sysctls are). Each connection gets one JSON
//! document, a [`ProcessStats`] taken at that moment — the arenas, the
//! channels (skmem's counters and the kernel's `XDP_STATISTICS`) and the
//! caches — and is closed. Nothing is computed until someone asks: the
//! thread sleeps in `accept` and the packet path never sees it.
//!
//! The socket doubles as the process's liveness: a dead process's socket
//! refuses connections, so [`read_all`] removes it and says so, and the
//! reader learns the process's pid from the kernel (`SO_PEERCRED`), as its
//! own PID namespace numbers it — a forwarder in a container is shown with
//! the pid the host can act on. The file is removed at exit (`atexit`); a
//! SIGKILLed process's file is removed by the next reader or publisher.
//!
//! Set `SKMEM_PUBLISH=0` to publish nothing. A process that cannot create
//! [`RUN_DIR`] (not root) publishes nothing either, and says so at debug
//! level.

use std::io::{self, Read as _, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Once, OnceLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use crate::arena::registry::ArenaStats;
use crate::cache::CacheStats;
use crate::channel::registry::ChannelStats;
use crate::owner::{retry_gone_dir, run_dir, unique_name, RUN_DIR};

/// The environment variable that turns publishing off (`0`).
pub const ENV_PUBLISH: &str = "SKMEM_PUBLISH";
/// Version of the [`ProcessStats`] document.
pub const VERSION: u32 = 1;
/// File-name prefix of the statistics sockets in [`RUN_DIR`].
pub const SOCKET_PREFIX: &str = "stats-";
/// How long a reader waits for one process's answer.
const READ_TIMEOUT: Duration = Duration::from_secs(2);

static START: Once = Once::new();
static SOCKET: OnceLock<PathBuf> = OnceLock::new();

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
    pub arenas: Vec<ArenaSummary>,
    /// Its live channels, oldest first.
    pub channels: Vec<ChannelStats>,
    /// The caches of its arenas.
    pub caches: Vec<CacheSummary>,
}

/// An arena, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArenaSummary {
    /// `skmem.KIND.NAME`.
    pub name: String,
    /// Process-unique id.
    pub id: u64,
    /// `nexus`, `necp` or `system`.
    pub kind: String,
    /// `ACTIVE`, `INACTIVE` or `DEFUNCT`.
    pub state: String,
    /// Size of a mapping (0 when unmapped).
    pub map_size: usize,
    /// Live mappings.
    pub map_count: usize,
    /// Mappings redirected to zero pages.
    pub map_redirected: usize,
    /// Pids holding mappings (at most [`crate::arena::registry::MAPPED_PIDS_MAX`]).
    pub mapped_pids: Vec<i32>,
    /// Bytes of the regions held.
    pub mem_total: usize,
    /// Bytes in use in them.
    pub mem_inuse: usize,
}

impl From<&ArenaStats> for ArenaSummary {
    fn from(a: &ArenaStats) -> Self {
        let state = if a.defunct {
            "DEFUNCT"
        } else if a.active {
            "ACTIVE"
        } else {
            "INACTIVE"
        };
        ArenaSummary {
            name: a.name.clone(),
            id: a.id,
            kind: a.kind.name().to_owned(),
            state: state.to_owned(),
            map_size: a.map_size,
            map_count: a.map_count,
            map_redirected: a.map_redirected,
            mapped_pids: a.mapped_pids.clone(),
            mem_total: a.mem_total,
            mem_inuse: a.mem_inuse,
        }
    }
}

/// A cache, as published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSummary {
    /// The arena holding it.
    pub arena: String,
    /// Cache name.
    pub name: String,
    /// Object size.
    pub obj_size: usize,
    /// Objects in its region.
    pub obj_total: u64,
    /// Objects held by users.
    pub obj_in_use: u64,
    /// Objects parked in magazines (per-CPU workers' and the depot's).
    pub obj_in_magazines: u64,
    /// Objects free in the slab layer.
    pub obj_free_in_slabs: u64,
    /// Rounds per magazine (0: the magazine layer is off).
    pub magazine_rounds: usize,
    /// Full magazines in the depot.
    pub depot_full: u64,
    /// Empty magazines in the depot.
    pub depot_empty: u64,
    /// Times the depot lock was contended.
    pub depot_contention: u64,
    /// Purges so far.
    pub purges: u64,
    /// Reaps so far.
    pub reaps: u64,
}

impl CacheSummary {
    fn of(arena: &str, c: &CacheStats) -> Self {
        CacheSummary {
            arena: arena.to_owned(),
            name: c.name.clone(),
            obj_size: c.obj_size,
            obj_total: c.obj_total,
            obj_in_use: c.obj_in_use,
            obj_in_magazines: c.obj_in_magazines,
            obj_free_in_slabs: c.obj_free_in_slabs,
            magazine_rounds: if c.magazines { c.magazine_rounds } else { 0 },
            depot_full: c.depot_full,
            depot_empty: c.depot_empty,
            depot_contention: c.depot_contention,
            purges: c.purges,
            reaps: c.reaps,
        }
    }
}

/// This process's statistics now.
pub fn snapshot() -> ProcessStats {
    let arenas = crate::arena::registry::snapshot_all();
    let pid = std::process::id();
    ProcessStats {
        version: VERSION,
        pid,
        own_pid: pid,
        comm: std::fs::read_to_string("/proc/self/comm")
            .map(|s| s.trim_end().to_owned())
            .unwrap_or_default(),
        arenas: arenas.iter().map(ArenaSummary::from).collect(),
        channels: crate::channel::registry::channels(),
        caches: arenas
            .iter()
            .flat_map(|a| a.caches.iter().map(|c| CacheSummary::of(&a.name, c)))
            .collect(),
    }
}

/// Where this process publishes, once it does.
pub fn socket_path() -> Option<&'static Path> {
    SOCKET.get().map(PathBuf::as_path)
}

/// Starts publishing (once per process; later calls do nothing). Called
/// when the first arena is created.
pub fn start() {
    START.call_once(|| {
        if std::env::var_os(ENV_PUBLISH).is_some_and(|v| v == "0") {
            debug!("{ENV_PUBLISH}=0: not publishing statistics");
            return;
        }
        match listen() {
            Ok(path) => debug!(socket = %path.display(), "publishing statistics"),
            Err(e) => debug!(error = %e, "not publishing statistics (skmemctl stats will not list this process)"),
        }
    });
}

extern "C" fn remove_at_exit() {
    if let Some(p) = SOCKET.get() {
        let _ = std::fs::remove_file(p);
        crate::owner::tidy_run_dir();
    }
}

fn listen() -> io::Result<PathBuf> {
    if let Ok(dir) = run_dir() {
        for gone in remove_stale(&dir) {
            info!(socket = %gone.display(), "removed the statistics socket of a process that died");
        }
    }
    let name = unique_name(&format!("{SOCKET_PREFIX}{}-", std::process::id()));
    let (path, listener) = retry_gone_dir(|| {
        let path = run_dir()?.join(format!("{name}.sock"));
        let listener = UnixListener::bind(&path)?;
        Ok((path, listener))
    })?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let spawned = std::thread::Builder::new()
        .name("skmem-stats".into())
        .spawn(move || serve(listener));
    if let Err(e) = spawned {
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    let _ = SOCKET.set(path.clone());
    // SAFETY: `remove_at_exit` is a plain extern "C" fn that only reads a
    // OnceLock and unlinks a file; it is safe to run during exit.
    unsafe { libc::atexit(remove_at_exit) };
    Ok(path)
}

fn serve(listener: UnixListener) {
    for conn in listener.incoming() {
        match conn {
            Ok(mut c) => {
                if let Err(e) = answer(&mut c) {
                    debug!(error = %e, "answering a statistics request failed");
                }
            }
            Err(e) => debug!(error = %e, "accepting a statistics request failed"),
        }
    }
}

fn answer(c: &mut UnixStream) -> io::Result<()> {
    // The directory is root-only already; the check says so again for a
    // socket someone moved.
    let (_, uid) = peer(c)?;
    let me = rustix::process::geteuid().as_raw();
    if !(uid == 0 || uid == me) {
        return Err(io::Error::from(io::ErrorKind::PermissionDenied));
    }
    c.set_write_timeout(Some(READ_TIMEOUT))?;
    let body = serde_json::to_vec(&snapshot()).map_err(io::Error::other)?;
    c.write_all(&body)
}

/// Removes the statistics sockets of processes that died without removing
/// them (SIGKILL); returns their paths.
pub fn remove_dead() -> Vec<PathBuf> {
    remove_stale(Path::new(RUN_DIR))
}

/// Removes the sockets in `dir` whose process is gone (they refuse
/// connections); returns their paths.
fn remove_stale(dir: &Path) -> Vec<PathBuf> {
    let mut gone = Vec::new();
    for path in sockets(dir) {
        if let Err(e) = UnixStream::connect(&path) {
            if e.raw_os_error() == Some(libc::ECONNREFUSED) && std::fs::remove_file(&path).is_ok() {
                gone.push(path);
            }
        }
    }
    gone
}

fn sockets(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(SOCKET_PREFIX) && n.ends_with(".sock"))
        })
        .collect();
    v.sort();
    v
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
    c.set_read_timeout(Some(READ_TIMEOUT))?;
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

/// The peer's pid, as this PID namespace numbers it (0 when it is not
/// visible from here: a reader in a parent namespace, seen by a publisher
/// in a child one), and its uid.
fn peer(c: &UnixStream) -> io::Result<(u32, u32)> {
    // SAFETY: an all-zero ucred is a valid out-buffer.
    let mut cred: libc::ucred = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `c` is an open socket for the call's duration; `cred` and
    // `len` are valid and `len` is `cred`'s size.
    let r = unsafe {
        libc::getsockopt(
            c.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok((u32::try_from(cred.pid).unwrap_or(0), cred.uid))
}

#[cfg(test)]
mod tests {
    use super::*;

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
