//! A scriptable skmem user for the observation tests (`tools/tests/observe.rs`)
//! and for trying `skmemctl watch`/`stats` by hand.
//!
//! Reads one command per line on stdin and answers one line on stdout
//! (`ok ...` or `err ERRNO MESSAGE`), so a driver can synchronise with it
//! without sleeping. Prints `ready PID` first.
//!
//! ```text
//! create nexus|necp|system NAME   -> ok ARENA_ID
//! map ARENA_ID                    -> ok MAP_INDEX ADDR SIZE
//! redirect MAP_INDEX              -> ok INACTIVE(0|1)
//! unmap MAP_INDEX                 -> ok
//! munmap MAP_INDEX                -> ok   (libc::munmap of the span, behind the library's back)
//! defunct ARENA_ID                -> ok
//! reap ARENA_ID [purge]           -> ok
//! mem ARENA_ID                    -> ok TOTAL INUSE   (`Arena::mem_stats`, bytes)
//! drop ARENA_ID                   -> ok   (releases the test's reference: destroy once unmapped)
//! exit                            -> (exits 0)
//! ```

use std::collections::HashMap;
use std::io::{BufRead, Write};

use skmem::arena::{Arena, ArenaMapping, NexusParams};
use skmem::region::{RegionFlags, RegionId, RegionParams};

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut arenas: HashMap<u64, Arena> = HashMap::new();
    let mut maps: Vec<Option<ArenaMapping>> = Vec::new();
    writeln!(out, "ready {}", std::process::id()).unwrap();
    out.flush().unwrap();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> u64 { words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0) };
        let reply = match words.first().copied() {
            Some("create") => {
                let name = words.get(2).copied().unwrap_or("child");
                let r = match words.get(1).copied() {
                    Some("nexus") => Arena::create_nexus(&NexusParams::new(name)),
                    Some("necp") => Arena::create_necp(
                        name,
                        &RegionParams::new(RegionId::UStats, 128, 64).with_flags(
                            RegionFlags::MMAPOK | RegionFlags::UREADONLY | RegionFlags::NOMAGAZINES,
                        ),
                        &RegionParams::new(RegionId::KStats, 128, 64),
                    ),
                    _ => Arena::create_system(name),
                };
                r.map(|a| {
                    let id = a.id();
                    arenas.insert(id, a);
                    format!("ok {id}")
                })
            }
            Some("map") => match arenas.get(&num(1)) {
                Some(a) => a.map().map(|m| {
                    let s = format!("ok {} {} {}", maps.len(), m.addr() as usize, m.size());
                    maps.push(Some(m));
                    s
                }),
                None => Ok("err 2 no such arena".into()),
            },
            Some("redirect") => match maps.get(num(1) as usize).and_then(Option::as_ref) {
                Some(m) => m
                    .redirect()
                    .map(|inactive| format!("ok {}", inactive as u8)),
                None => Ok("err 2 no such mapping".into()),
            },
            Some("unmap") => {
                if let Some(slot) = maps.get_mut(num(1) as usize) {
                    drop(slot.take());
                }
                Ok("ok".into())
            }
            Some("munmap") => match maps.get(num(1) as usize).and_then(Option::as_ref) {
                Some(m) => {
                    // SAFETY: deliberately pulls the span out from under the
                    // library (the test of the munmap probe); nothing reads it
                    // afterwards.
                    let r = unsafe { libc::munmap(m.addr().cast(), m.size()) };
                    Ok(format!("ok {r}"))
                }
                None => Ok("err 2 no such mapping".into()),
            },
            Some("defunct") => match arenas.get(&num(1)) {
                Some(a) => a.defunct().map(|()| "ok".into()),
                None => Ok("err 2 no such arena".into()),
            },
            Some("reap") => match arenas.get(&num(1)) {
                Some(a) => {
                    a.reap(words.get(2) == Some(&"purge"));
                    Ok("ok".into())
                }
                None => Ok("err 2 no such arena".into()),
            },
            Some("mem") => match arenas.get(&num(1)) {
                Some(a) => {
                    let (total, inuse) = a.mem_stats();
                    Ok(format!("ok {total} {inuse}"))
                }
                None => Ok("err 2 no such arena".into()),
            },
            Some("drop") => {
                arenas.remove(&num(1));
                Ok("ok".into())
            }
            Some("exit") => std::process::exit(0),
            _ => Ok(format!("err 22 unknown command {line:?}")),
        };
        let text = match reply {
            Ok(s) => s,
            Err(e) => format!("err {} {e}", e.errno()),
        };
        writeln!(out, "{text}").unwrap();
        out.flush().unwrap();
    }
}
