//! The statistics socket: what a process publishes so that `skmemctl
//! stats` can read it without an observer (as `dpdk-proc-info` reads a
//! DPDK process). [`crate::inspect`] is the reading side.
//!
//! When a process creates its first arena, skmem starts one thread
//! (`skmem-stats`) that listens on a Unix socket in [`RUN_DIR`]
//! (`stats-PID-TOKEN.sock`, mode 0600 in a 0700 root directory: root-only,
//! as Skywalk's statistics sysctls are). Each connection gets one JSON
//! document taken at that moment and is closed: a header (version, pids,
//! `comm`) and the sections the layers provide — the arena registry its
//! arenas and caches, the channel registry its channels (skmem's counters
//! and the kernel's `XDP_STATISTICS`). The layers hand their sections in
//! (`provide`), so this module names none of them. Nothing is computed
//! until someone asks: the thread sleeps in `accept` and the packet path
//! never sees it.
//!
//! The socket doubles as the process's liveness: a dead process's socket
//! refuses connections, so a reader removes it and says so, and learns the
//! process's pid from the kernel (`SO_PEERCRED`), as its own PID namespace
//! numbers it — a forwarder in a container is shown with the pid the host
//! can act on. The file is removed at exit (`atexit`); a SIGKILLed
//! process's file is removed by the next reader or publisher.
//!
//! Set `SKMEM_PUBLISH=0` to publish nothing. A process that cannot create
//! [`RUN_DIR`] (not root) publishes nothing either, and says so at debug
//! level.

use std::io::{self, Write as _};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once, OnceLock};
use std::time::Duration;

use tracing::{debug, info};

use crate::owner::{retry_gone_dir, run_dir, unique_name, RUN_DIR};
use crate::util::lock;

/// The environment variable that turns publishing off (`0`).
pub const ENV_PUBLISH: &str = "SKMEM_PUBLISH";
/// Version of the statistics document.
pub const VERSION: u32 = 1;
/// File-name prefix of the statistics sockets in [`RUN_DIR`].
pub const SOCKET_PREFIX: &str = "stats-";
/// How long either side waits for the other.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(2);

/// A layer's part of the document: its keys and values, taken when asked.
pub(crate) type Section = fn() -> serde_json::Map<String, serde_json::Value>;

static START: Once = Once::new();
static SOCKET: OnceLock<PathBuf> = OnceLock::new();
static SECTIONS: Mutex<Vec<Section>> = Mutex::new(Vec::new());

/// Adds `section` to what this process publishes (once; a section given
/// again is kept once), and starts publishing.
pub(crate) fn provide(section: Section) {
    {
        let mut all = lock(&SECTIONS);
        if !all.iter().any(|s| std::ptr::fn_addr_eq(*s, section)) {
            all.push(section);
        }
    }
    start();
}

/// The document this process publishes, taken now: the header, then every
/// section provided so far.
pub(crate) fn document() -> serde_json::Value {
    let pid = std::process::id();
    let mut doc = serde_json::Map::new();
    doc.insert("version".into(), VERSION.into());
    doc.insert("pid".into(), pid.into());
    doc.insert("own_pid".into(), pid.into());
    doc.insert("comm".into(), comm().into());
    let sections: Vec<Section> = lock(&SECTIONS).clone();
    for s in sections {
        doc.extend(s());
    }
    serde_json::Value::Object(doc)
}

/// This process's name (`/proc/self/comm`).
pub(crate) fn comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .map(|s| s.trim_end().to_owned())
        .unwrap_or_default()
}

/// Where this process publishes, once it does.
pub fn socket_path() -> Option<&'static Path> {
    SOCKET.get().map(PathBuf::as_path)
}

/// Starts publishing (once per process; later calls do nothing). The
/// first arena's registration starts it.
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

pub(crate) fn answer(c: &mut UnixStream) -> io::Result<()> {
    // The directory is root-only already; the check says so again for a
    // socket someone moved.
    let (_, uid) = peer(c)?;
    let me = rustix::process::geteuid().as_raw();
    if !(uid == 0 || uid == me) {
        return Err(io::Error::from(io::ErrorKind::PermissionDenied));
    }
    c.set_write_timeout(Some(TIMEOUT))?;
    let body = serde_json::to_vec(&document()).map_err(io::Error::other)?;
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

/// The statistics sockets in `dir`, sorted.
pub(crate) fn sockets(dir: &Path) -> Vec<PathBuf> {
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

/// The peer's pid, as this PID namespace numbers it (0 when it is not
/// visible from here: a reader in a parent namespace, seen by a publisher
/// in a child one), and its uid.
pub(crate) fn peer(c: &UnixStream) -> io::Result<(u32, u32)> {
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
