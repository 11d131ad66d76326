//! A scriptable mapper for the hand-over tests (`tools/tests/lend.rs`): a
//! process of its own, not a fork of the owner, that maps a lent arena and
//! tries what a mapper might do to it.
//!
//! `skmem-mapper-child PATH` connects to the owner at PATH and prints
//! `ready PID`, or `refused REASON` / `error ERRNO MESSAGE` and exits 1.
//! Then it reads one command per line and answers one line (`ok ...` or
//! `err ERRNO MESSAGE`), so a driver synchronises without sleeping:
//!
//! ```text
//! info                        -> ok SPAN_ADDR SPAN_SIZE ARENA_ID OWNER_PID REGION_COUNT
//! read REGION OFF LEN         -> ok HEX          (RemoteArena::read)
//! peek REGION OFF LEN         -> ok HEX          (straight from the span: what it shows)
//! write REGION OFF HEX        -> ok              (RemoteArena::write)
//! try REGION ROUTE            -> ok ERRNO        (0: the route worked) ROUTE is one of
//!                                mprotect | mmap-write | pwrite | truncate | add-seal;
//!                                the file routes reopen the region's memfd through
//!                                /proc/self/map_files, as an attacker would
//! redirected                  -> ok 0|1
//! wait-redirect MILLIS        -> ok 0|1
//! exit                        -> (exits 0)
//! ```
//!
//! REGION is a region's name as the schema prints it (`buf_def`, `umd`,
//! `schema`, ...).

// A helper binary of its package: it sees every dependency of the
// package, and uses few.
#![allow(unused_crate_dependencies)]

use std::io::{BufRead, Write};
use std::time::Duration;

use skmem::lend::RemoteArena;
use skmem::region::RegionId;

fn main() {
    let path = std::env::args().nth(1).unwrap_or_default();
    let mut out = std::io::stdout().lock();
    let remote = match RemoteArena::connect(&path) {
        Ok(r) => r,
        Err(skmem::Error::Lend(skmem::LendError::MapperRefused { reason })) => {
            let _ = writeln!(out, "refused {reason}");
            std::process::exit(1);
        }
        Err(e) => {
            let _ = writeln!(out, "error {} {e}", e.errno());
            std::process::exit(1);
        }
    };
    let _ = writeln!(out, "ready {}", std::process::id());
    let _ = out.flush();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let reply = match words.as_slice() {
            ["exit"] => std::process::exit(0),
            ["info"] => Ok(format!(
                "ok {} {} {} {} {}",
                remote.addr() as usize,
                remote.size(),
                remote.arena_id(),
                remote.owner_pid(),
                remote.schema().regions.len()
            )),
            ["read", r, off, len] => region(r).and_then(|id| {
                let mut buf = vec![0u8; num(len)];
                remote.read(id, num(off), &mut buf)?;
                Ok(format!("ok {}", hex(&buf)))
            }),
            ["peek", r, off, len] => region(r).and_then(|id| peek(&remote, id, num(off), num(len))),
            ["write", r, off, data] => region(r).and_then(|id| {
                remote.write(id, num(off), &unhex(data))?;
                Ok("ok".to_owned())
            }),
            ["try", r, route] => region(r).map(|id| format!("ok {}", attempt(&remote, id, route))),
            ["redirected"] => Ok(format!("ok {}", remote.is_redirected() as u8)),
            ["wait-redirect", ms] => Ok(format!(
                "ok {}",
                remote.wait_redirected(Duration::from_millis(num(ms) as u64)) as u8
            )),
            _ => Ok(format!("err 22 unknown command {line:?}")),
        };
        let text = reply.unwrap_or_else(|e| format!("err {} {e}", e.errno()));
        let _ = writeln!(out, "{text}");
        let _ = out.flush();
    }
}

fn num(s: &str) -> usize {
    s.parse().unwrap_or(0)
}

fn region(name: &str) -> skmem::Result<RegionId> {
    RegionId::ALL
        .iter()
        .copied()
        .find(|id| id.to_string() == name)
        .ok_or(skmem::Error::Region(skmem::RegionError::Misuse {
            region: RegionId::Schema,
            rule: "no region of that name",
        }))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// What the span shows at a region's `off`, read straight from memory
/// (the library's checks bypassed): zeros after a redirect.
fn peek(remote: &RemoteArena, id: RegionId, off: usize, len: usize) -> skmem::Result<String> {
    let (at, size) = remote
        .region(id)
        .ok_or(skmem::Error::Region(skmem::RegionError::Misuse {
            region: id,
            rule: "not in the span",
        }))?;
    if off.checked_add(len).is_none_or(|e| e > size) {
        return Err(skmem::Error::Region(skmem::RegionError::Misuse {
            region: id,
            rule: "past the region",
        }));
    }
    let bytes: Vec<u8> = (0..len)
        // SAFETY: inside the region's part of the span (checked), mapped
        // while `remote` lives; a guard is refused by the caller's choice
        // of region (the test never peeks one).
        .map(|i| unsafe { std::ptr::read_volatile(at.add(off + i)) })
        .collect();
    Ok(format!("ok {}", hex(&bytes)))
}

/// Tries to write region `id` (or break its memfd) by `route`; the errno
/// the attempt got, 0 when it worked.
fn attempt(remote: &RemoteArena, id: RegionId, route: &str) -> i32 {
    let Some((at, size)) = remote.region(id) else {
        return libc::ENOENT;
    };
    let errno = || std::io::Error::last_os_error().raw_os_error().unwrap_or(-1);
    if route == "mprotect" {
        // SAFETY: the region's own pages in this process's span; a refusal
        // changes nothing, and a success is what the test looks for.
        let rc = unsafe { libc::mprotect(at.cast(), size, libc::PROT_READ | libc::PROT_WRITE) };
        return if rc == 0 { 0 } else { errno() };
    }
    // The memfd behind the mapping, reopened read-write through
    // /proc/self/map_files (root may).
    let file = format!(
        "/proc/self/map_files/{:x}-{:x}",
        at as usize,
        at as usize + size
    );
    let Ok(c) = std::ffi::CString::new(file) else {
        return libc::EINVAL;
    };
    // SAFETY: a NUL-terminated path for the call's duration.
    let fd = unsafe { libc::open(c.as_ptr(), libc::O_RDWR) };
    if fd < 0 {
        return errno();
    }
    // SAFETY: `fd` was just opened and is closed below; the mapping, if
    // made, is unmapped at once; the write is of one byte from a local.
    let rc = unsafe {
        match route {
            "mmap-write" => {
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    size,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    fd,
                    0,
                );
                if p == libc::MAP_FAILED {
                    -1
                } else {
                    libc::munmap(p, size)
                }
            }
            "pwrite" => {
                let mut b = [0u8; 1];
                libc::pread(fd, b.as_mut_ptr().cast(), 1, 0);
                libc::pwrite(fd, b.as_ptr().cast(), 1, 0) as i32
            }
            "truncate" => libc::ftruncate(fd, 0),
            "add-seal" => libc::fcntl(fd, libc::F_ADD_SEALS, libc::F_SEAL_WRITE),
            _ => {
                libc::close(fd);
                return libc::EINVAL;
            }
        }
    };
    let e = if rc < 0 { errno() } else { 0 };
    // SAFETY: `fd` is ours and closed once.
    unsafe { libc::close(fd) };
    e
}
