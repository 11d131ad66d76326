//! Huge pages reserved for a test, and given back.
//!
//! A pool on huge pages needs free ones (`vm.nr_hugepages`, a sysctl of
//! the whole machine). [`HugePages::reserve`] adds as many as a test needs
//! and its drop takes them away again. So that a run killed before its
//! drop does not leave them reserved for good, each reservation holds an
//! owner mark whose name says how many pages it added
//! (`hugepages-N-RANDOM`): [`cleanup_stale_huge_pages`] — run by every
//! reservation first, and by [`crate::cleanup_stale`]'s callers — takes
//! back the pages of every mark whose process is gone, and says so.

use std::io;

use skmem::owner::{self, Owner, OwnerMark};

/// The machine's huge page count (2 MiB pages).
const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";

/// Prefix of the reservations' owner marks.
const MARK_PREFIX: &str = "hugepages-";

/// Huge pages this process added to the machine's pool; taken away again
/// when dropped.
#[derive(Debug)]
pub struct HugePages {
    added: usize,
    _mark: OwnerMark,
}

fn read_count(path: &str) -> io::Result<usize> {
    std::fs::read_to_string(path)?
        .trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {e}")))
}

/// Huge pages free and not promised to a mapping: `HugePages_Free` less
/// `HugePages_Rsvd` from `/proc/meminfo` (a shared mapping reserves its
/// pages when made, and they leave `Free` only when touched).
pub fn free_huge_pages() -> io::Result<usize> {
    let meminfo = std::fs::read_to_string("/proc/meminfo")?;
    let field = |name: &str| -> io::Result<usize> {
        meminfo
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no {name} in /proc/meminfo"),
                )
            })
    };
    Ok(field("HugePages_Free:")?.saturating_sub(field("HugePages_Rsvd:")?))
}

/// Moves the machine's huge page count by `delta` (never below 0).
fn adjust(delta: isize) -> io::Result<()> {
    let now = read_count(NR_HUGEPAGES)?;
    let want = now.saturating_add_signed(delta);
    std::fs::write(NR_HUGEPAGES, want.to_string())
}

impl HugePages {
    /// Adds `n` free huge pages to the machine's pool, or says why it
    /// cannot (not root, no huge page support, memory too fragmented to
    /// find them).
    pub fn reserve(n: usize) -> Result<HugePages, String> {
        for msg in cleanup_stale_huge_pages() {
            eprintln!("skmem-netns: {msg}");
        }
        let mark = OwnerMark::take(&owner::unique_name(&format!("{MARK_PREFIX}{n}-")))
            .map_err(|e| format!("no owner mark for the huge page reservation: {e}"))?;
        let free = free_huge_pages().map_err(|e| format!("reading /proc/meminfo: {e}"))?;
        adjust(n as isize).map_err(|e| format!("writing {NR_HUGEPAGES}: {e}"))?;
        let reserved = HugePages {
            added: n,
            _mark: mark,
        };
        // The kernel may find fewer than asked (fragmented memory).
        let now = free_huge_pages().map_err(|e| format!("reading /proc/meminfo: {e}"))?;
        if now < free + n {
            return Err(format!(
                "the kernel found {} of the {n} huge pages asked for",
                now.saturating_sub(free)
            ));
        }
        Ok(reserved)
    }

    /// Huge pages added.
    pub fn added(&self) -> usize {
        self.added
    }
}

impl Drop for HugePages {
    fn drop(&mut self) {
        if let Err(e) = adjust(-(self.added as isize)) {
            eprintln!("skmem-netns: giving back {} huge pages: {e}", self.added);
        }
    }
}

/// Takes back the huge pages of every reservation whose process died
/// before giving them back; returns what it did, a line each.
pub fn cleanup_stale_huge_pages() -> Vec<String> {
    let mut done = Vec::new();
    for mark in owner::marks(MARK_PREFIX) {
        if !matches!(owner::owner_of(&mark), Ok(Some(Owner::Gone))) {
            continue;
        }
        let n: Option<usize> = mark[MARK_PREFIX.len()..]
            .split('-')
            .next()
            .and_then(|n| n.parse().ok());
        if let Some(n) = n {
            match adjust(-(n as isize)) {
                Ok(()) => done.push(format!(
                    "gave back {n} huge pages a killed run had reserved ({mark})"
                )),
                Err(e) => {
                    done.push(format!("giving back the {n} huge pages of {mark}: {e}"));
                    continue;
                }
            }
        }
        let _ = owner::remove_orphan(&mark);
    }
    done
}
