//! Owner marks: files that say whether the process that made something is
//! still alive, in a way that survives PID namespaces and pid reuse.
//!
//! Things that outlive a SIGKILLed process (an observer's pinned map, a
//! test's network namespaces) must be recognisable as orphans by the next
//! run. A pid in the name is not enough: a process in its own PID namespace
//! calls itself pid 1, and pids are reused. Instead the maker takes a
//! POSIX write lock (`fcntl(F_SETLK)`) on a mark file under
//! [`RUN_DIR`]`/owners`; the kernel drops the lock when the process dies,
//! however it dies. Anyone asking (`F_GETLK`) learns whether the lock is
//! held and by which pid *as seen from the asker's PID namespace*.
//!
//! POSIX locks are per process and are released when the process closes
//! *any* descriptor of the file, so a process never opens its own marks to
//! ask about them: [`owner_of`] answers from the list this process holds.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::util::lock;

/// Where skmem keeps what it publishes for other processes (tmpfs, a
/// root-only directory): owner marks and the statistics sockets of
/// [`publish`](crate::publish).
pub const RUN_DIR: &str = "/run/skmem";

/// The marks this process holds, by name.
static HELD: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// [`RUN_DIR`], created root-only (mode 0700) when missing.
pub fn run_dir() -> io::Result<PathBuf> {
    private_dir(Path::new(RUN_DIR))
}

fn private_dir(dir: &Path) -> io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    Ok(dir.to_owned())
}

fn owners_dir() -> io::Result<PathBuf> {
    private_dir(&run_dir()?.join("owners"))
}

/// Removes [`RUN_DIR`] and its `owners` directory if they are empty, so
/// that nothing of skmem's stays once its last process is gone. Another
/// process may be about to create a file there, so the makers retry when
/// the directory vanishes under them.
pub fn tidy_run_dir() {
    let _ = std::fs::remove_dir(Path::new(RUN_DIR).join("owners"));
    let _ = std::fs::remove_dir(RUN_DIR);
}

/// Runs `make` (which creates a file under [`RUN_DIR`]) again if the
/// directory vanished under it: the last process out ([`tidy_run_dir`])
/// may remove it between our `create_dir_all` and our `open`.
pub(crate) fn retry_gone_dir<T>(mut make: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    let mut tries = 0;
    loop {
        match make() {
            Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 5 => tries += 1,
            r => return r,
        }
    }
}

/// A mark name is one path component of letters, digits, `.`, `_`, `-`.
fn check_name(name: &str) -> io::Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("owner mark name {name:?}: letters, digits, '.', '_' and '-' only"),
        ))
    }
}

/// A held mark: the lock lives as long as this value (or the process).
/// Dropping it removes the file.
#[derive(Debug)]
pub struct OwnerMark {
    name: String,
    path: PathBuf,
    file: Option<File>,
}

/// `fcntl(fd, cmd, &flock)` over the whole file.
fn fcntl_lock(file: &File, cmd: libc::c_int, kind: libc::c_short) -> io::Result<libc::flock> {
    // SAFETY: an all-zero flock is valid (start 0, len 0 = whole file).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: `file` is an open descriptor for the call's duration and
    // `fl` a valid flock the kernel reads and (F_GETLK) writes.
    let r = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl) };
    if r == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(fl)
}

impl OwnerMark {
    /// Takes the mark `name`. Fails with `AlreadyExists` when a live
    /// process holds it.
    pub fn take(name: &str) -> io::Result<OwnerMark> {
        check_name(name)?;
        if lock(&HELD).iter().any(|n| n == name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("owner mark {name} is already held by this process"),
            ));
        }
        let (path, file) = retry_gone_dir(|| {
            let path = owners_dir()?.join(name);
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .mode(0o600)
                .custom_flags(libc::O_CLOEXEC)
                .open(&path)?;
            Ok((path, file))
        })?;
        match fcntl_lock(&file, libc::F_SETLK, libc::F_WRLCK as libc::c_short) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("owner mark {name} is held by a live process"),
                ));
            }
            Err(e) => return Err(e),
        }
        lock(&HELD).push(name.to_owned());
        Ok(OwnerMark {
            name: name.to_owned(),
            path,
            file: Some(file),
        })
    }

    /// The mark's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for OwnerMark {
    fn drop(&mut self) {
        // Unlinked while still locked: nobody can find it free in between.
        let _ = std::fs::remove_file(&self.path);
        drop(self.file.take());
        lock(&HELD).retain(|n| n != &self.name);
        tidy_run_dir();
    }
}

/// Who holds a mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    /// A live process holds it: its pid in the asker's PID namespace
    /// (`None` when the holder is not visible from there).
    Alive(Option<u32>),
    /// Nobody: its maker died without removing it.
    Gone,
}

/// Who holds the mark `name`; `None` when there is no such mark.
pub fn owner_of(name: &str) -> io::Result<Option<Owner>> {
    check_name(name)?;
    if lock(&HELD).iter().any(|n| n == name) {
        return Ok(Some(Owner::Alive(Some(std::process::id()))));
    }
    let path = Path::new(RUN_DIR).join("owners").join(name);
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(&path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let fl = fcntl_lock(&file, libc::F_GETLK, libc::F_WRLCK as libc::c_short)?;
    if fl.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(Some(Owner::Gone));
    }
    Ok(Some(Owner::Alive(
        u32::try_from(fl.l_pid).ok().filter(|&p| p > 0),
    )))
}

/// Removes a mark nobody holds (after [`owner_of`] said [`Owner::Gone`]).
/// A mark a live process holds is left alone.
pub fn remove_orphan(name: &str) -> io::Result<bool> {
    if owner_of(name)? != Some(Owner::Gone) {
        return Ok(false);
    }
    match std::fs::remove_file(Path::new(RUN_DIR).join("owners").join(name)) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Removes the mark `name` this process holds without its [`OwnerMark`]
/// (one forgotten, or held by a value that will never be dropped): for a
/// process's own clean-up at exit. The file goes; the lock goes with the
/// process.
pub fn discard(name: &str) -> io::Result<()> {
    check_name(name)?;
    lock(&HELD).retain(|n| n != name);
    let r = match std::fs::remove_file(Path::new(RUN_DIR).join("owners").join(name)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    tidy_run_dir();
    r
}

/// The names of every mark starting with `prefix` (held or not).
pub fn marks(prefix: &str) -> Vec<String> {
    let Ok(dir) = std::fs::read_dir(Path::new(RUN_DIR).join("owners")) else {
        return Vec::new();
    };
    let mut v: Vec<String> = dir
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix))
        .collect();
    v.sort();
    v
}

/// A name no other process will pick: `prefix` and 64 random bits.
pub fn unique_name(prefix: &str) -> String {
    let mut b = [0u8; 8];
    // getrandom(2) never fails for 8 bytes once the pool is initialised;
    // the fallback (time and pid) is still unique enough for a name.
    let got = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty()).unwrap_or(0);
    if got != b.len() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        b = (t ^ u64::from(std::process::id()) << 40).to_le_bytes();
    }
    format!("{prefix}{:016x}", u64::from_le_bytes(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn names_are_one_safe_component() {
        for bad in ["", ".x", "a/b", "a b", "../x"] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        check_name("pin-arenas_1_abc.0").unwrap();
        assert_ne!(unique_name("x-"), unique_name("x-"));
    }

    #[test]
    fn a_held_mark_is_alive_and_goes_with_its_holder() {
        if !root() {
            eprintln!("skipped: needs root to write {RUN_DIR}");
            return;
        }
        let name = unique_name("test-");
        assert_eq!(owner_of(&name).unwrap(), None);
        let mark = OwnerMark::take(&name).unwrap();
        assert_eq!(
            owner_of(&name).unwrap(),
            Some(Owner::Alive(Some(std::process::id())))
        );
        assert_eq!(
            OwnerMark::take(&name).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        assert!(!remove_orphan(&name).unwrap(), "a live mark is kept");
        drop(mark);
        assert_eq!(owner_of(&name).unwrap(), None, "dropping removes the file");
    }
}
