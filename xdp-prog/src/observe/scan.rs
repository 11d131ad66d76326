//! Finding the binaries that carry skmem's hooks: every running one
//! (`/proc/*/exe`), read once each.

use super::*;

/// `/proc/PID/exe` of every process, with the (dev, ino) of the file.
pub(super) fn running_binaries() -> Vec<(PathBuf, (u64, u64))> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        if !name.as_encoded_bytes().iter().all(u8::is_ascii_digit) {
            continue;
        }
        let exe = entry.path().join("exe");
        // Kernel threads have no exe; processes may be gone.
        if let Ok(meta) = fs::metadata(&exe) {
            out.push((exe, (meta.dev(), meta.ino())));
        }
    }
    out
}

/// Whether the ELF file at `path` defines [`MARKER_SYMBOL`].
pub fn has_hooks(path: &Path) -> bool {
    use object::{Object as _, ObjectSymbol as _};
    let mut magic = [0u8; 4];
    let ok = fs::File::open(path)
        .and_then(|mut f| io::Read::read_exact(&mut f, &mut magic))
        .is_ok();
    if !ok || magic != *b"\x7fELF" {
        return false;
    }
    let Ok(data) = fs::read(path) else {
        return false;
    };
    let Ok(file) = object::File::parse(&*data) else {
        return false;
    };
    file.symbols()
        .chain(file.dynamic_symbols())
        .any(|s| s.is_definition() && s.name() == Ok(MARKER_SYMBOL))
}
