//! The live-arena map pinned in bpffs, its owner mark, and reading every
//! observer's pin (removing those of dead observers).

use super::*;

/// The owner mark of the pin named `file_name`.
pub(super) fn mark_of(file_name: &str) -> String {
    format!("pin-{file_name}")
}

pub(super) fn pin_map(map: &aya::maps::Map) -> Result<(PathBuf, OwnerMark), ObserveError> {
    let dir = Path::new(PIN_DIR);
    let io_err = |op: String| move |source| ObserveError::Io { op, source };
    let bpffs = Path::new("/sys/fs/bpf");
    if !is_bpffs(bpffs) {
        return Err(ObserveError::NoTarget(
            "bpffs is not mounted at /sys/fs/bpf: run `cargo xtask setup` or \
             `mount -t bpf bpf /sys/fs/bpf`"
                .into(),
        ));
    }
    fs::create_dir_all(dir).map_err(io_err(format!("creating {PIN_DIR}")))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(io_err(format!("chmod 0700 {PIN_DIR}")))?;
    let name = unique_name(&format!("{PIN_PREFIX}{}_", std::process::id()));
    // The mark first: a reader that finds the pin finds its mark held.
    let mark = OwnerMark::take(&mark_of(&name))
        .map_err(io_err(format!("taking the owner mark of {name}")))?;
    let path = dir.join(&name);
    map.pin(&path)
        .map_err(|e| bpf_err(format!("pinning {ARENAS_MAP} at {}", path.display()), &e))?;
    if let Err(e) = fs::set_permissions(&path, fs::Permissions::from_mode(0o600)) {
        let _ = fs::remove_file(&path);
        return Err(ObserveError::Io {
            op: format!("chmod 0600 {}", path.display()),
            source: e,
        });
    }
    Ok((path, mark))
}

pub(super) fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: zeroed statfs is a valid out-buffer; `c` is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let r = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    const BPF_FS_MAGIC: i64 = 0xcafe4a11;
    r == 0 && st.f_type as i64 == BPF_FS_MAGIC
}

/// What [`pinned_arenas`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PinnedArenas {
    /// The live pins read (one per running observer).
    pub pins: Vec<PathBuf>,
    /// Every live arena, merged over the pins (an arena seen by two
    /// observers is listed once), by pid then id.
    pub arenas: Vec<ArenaInfo>,
    /// Pins of observers that died without cleaning up (SIGKILL), removed
    /// by this call.
    pub removed: Vec<PathBuf>,
}

/// Whether the observer that pinned `name` lives: its owner mark is held.
/// A pin without a mark (made before marks existed) is judged by the pid
/// in its name, which is right only outside PID namespaces.
pub(super) fn observer_alive(name: &str) -> bool {
    match owner::owner_of(&mark_of(name)) {
        Ok(Some(Owner::Alive(_))) => true,
        Ok(Some(Owner::Gone)) => false,
        Ok(None) | Err(_) => name
            .strip_prefix(PIN_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_none_or(|pid| Path::new(&format!("/proc/{pid}")).exists()),
    }
}

/// Reads every pinned live-arena map (one per running observer), removing
/// the pins of observers that died without cleaning up. Root only: a
/// non-root caller gets [`ObserveError::NotRoot`] (EPERM).
pub fn pinned_arenas() -> Result<PinnedArenas, ObserveError> {
    if !is_root() {
        return Err(ObserveError::NotRoot {
            what: "reading skmem's live arena statistics",
        });
    }
    let mut out = PinnedArenas::default();
    let dir = match fs::read_dir(PIN_DIR) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(source) => {
            return Err(ObserveError::Io {
                op: format!("listing {PIN_DIR}"),
                source,
            })
        }
    };
    let mut seen = HashSet::new();
    let mut paths: Vec<PathBuf> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PIN_PREFIX))
        })
        .collect();
    paths.sort();
    for path in paths {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !observer_alive(name) {
            debug!(pin = %path.display(), "removing the pin of a dead observer");
            if fs::remove_file(&path).is_ok() {
                let _ = owner::remove_orphan(&mark_of(name));
                out.removed.push(path);
            }
            continue;
        }
        let data = match MapData::from_pin(&path) {
            Ok(d) => d,
            Err(e) => {
                // Removed between listing and opening: its observer stopped.
                if crate::errno(&e) == Some(libc::ENOENT) {
                    continue;
                }
                return Err(bpf_err(format!("opening {}", path.display()), &e));
            }
        };
        let map = BpfHashMap::<_, ArenaKey, LiveArena>::try_from(aya::maps::Map::HashMap(data))
            .map_err(|e| bpf_err(format!("opening {}", path.display()), &e))?;
        for a in read_arenas(&map)? {
            if seen.insert((a.pid, a.arena_id)) {
                out.arenas.push(a);
            }
        }
        out.pins.push(path);
    }
    out.arenas.sort_by_key(|a| (a.pid, a.arena_id));
    Ok(out)
}
