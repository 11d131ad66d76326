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
//! offer ARENA_ID PATH             -> ok   (lends the arena to mappers at PATH, root only)
//! wait-mappers N                  -> ok   (until N mappers have mapped, 10 s at most)
//! redirect-mapper PID             -> ok INACTIVE(0|1)
//! stress NAME OPS THREADS         -> ok ARENA_ID  (THREADS threads map, redirect, unmap,
//!                                    reap and defunct one new 256-packet nexus arena at random,
//!                                    OPS verbs in all; then every mapping goes and the arena is
//!                                    destroyed)
//! exit                            -> (exits 0)
//! ```

// A helper binary of its package: it sees every dependency of the
// package, and uses few.
#![allow(unused_crate_dependencies)]

use std::collections::HashMap;
use std::io::{BufRead, Write};

use skmem::arena::{Arena, ArenaMapping, NexusParams};
use skmem::region::{RegionFlags, RegionId, RegionParams};

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut child = Child::default();
    writeln!(out, "ready {}", std::process::id()).unwrap();
    out.flush().unwrap();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let text = match child.answer(&line) {
            Ok(s) => s,
            Err(e) => format!("err {} {e}", e.errno()),
        };
        writeln!(out, "{text}").unwrap();
        out.flush().unwrap();
    }
}

/// What the driver's commands made. The fields drop in this order at the
/// end: the offer, then the mappings, then the arenas they map.
#[derive(Default)]
struct Child {
    offer: Option<skmem::lend::ArenaOffer>,
    /// By map index; an unmapped one leaves its index empty.
    maps: Vec<Option<ArenaMapping>>,
    arenas: HashMap<u64, Arena>,
}

impl Child {
    /// The reply to one command line (an `Err` is said as `err ERRNO ...`).
    fn answer(&mut self, line: &str) -> skmem::Result<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> u64 { words.get(i).and_then(|w| w.parse().ok()).unwrap_or(0) };
        match words.first().copied() {
            Some("create") => {
                let name = words.get(2).copied().unwrap_or("child");
                self.create(words.get(1).copied(), name)
            }
            Some("map") => self.map(num(1)),
            Some("redirect") => match self.mapping(num(1)) {
                Some(m) => m
                    .redirect()
                    .map(|inactive| format!("ok {}", inactive as u8)),
                None => Ok("err 2 no such mapping".into()),
            },
            Some("unmap") => {
                if let Some(slot) = self.maps.get_mut(num(1) as usize) {
                    drop(slot.take());
                }
                Ok("ok".into())
            }
            Some("munmap") => Ok(self.munmap(num(1))),
            Some("defunct") => match self.arenas.get(&num(1)) {
                Some(a) => a.defunct().map(|()| "ok".into()),
                None => Ok("err 2 no such arena".into()),
            },
            Some("reap") => match self.arenas.get(&num(1)) {
                Some(a) => {
                    a.reap(words.get(2) == Some(&"purge"));
                    Ok("ok".into())
                }
                None => Ok("err 2 no such arena".into()),
            },
            Some("mem") => match self.arenas.get(&num(1)) {
                Some(a) => {
                    let (total, inuse) = a.mem_stats();
                    Ok(format!("ok {total} {inuse}"))
                }
                None => Ok("err 2 no such arena".into()),
            },
            Some("drop") => {
                self.arenas.remove(&num(1));
                Ok("ok".into())
            }
            Some("offer") => self.offer(num(1), words.get(2).copied()),
            Some("wait-mappers") => Ok(self.wait_mappers(num(1) as usize)),
            Some("redirect-mapper") => match &self.offer {
                Some(o) => o.redirect(num(1) as u32).map(|i| format!("ok {}", i as u8)),
                None => Ok("err 2 no offer".into()),
            },
            Some("stress") => {
                let name = words.get(1).copied().unwrap_or("stress");
                stress(name, num(2), num(3).max(1) as usize)
            }
            Some("exit") => std::process::exit(0),
            _ => Ok(format!("err 22 unknown command {line:?}")),
        }
    }

    /// `create KIND NAME`: a nexus, NECP or (any other kind) system arena,
    /// kept under its id.
    fn create(&mut self, kind: Option<&str>, name: &str) -> skmem::Result<String> {
        let r = match kind {
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
            self.arenas.insert(id, a);
            format!("ok {id}")
        })
    }

    /// `map ARENA_ID`: a new mapping of the arena, kept at the next index.
    fn map(&mut self, arena: u64) -> skmem::Result<String> {
        match self.arenas.get(&arena) {
            Some(a) => a.map().map(|m| {
                let s = format!("ok {} {} {}", self.maps.len(), m.addr() as usize, m.size());
                self.maps.push(Some(m));
                s
            }),
            None => Ok("err 2 no such arena".into()),
        }
    }

    /// The live mapping at `index`, if there is one.
    fn mapping(&self, index: u64) -> Option<&ArenaMapping> {
        self.maps.get(index as usize).and_then(Option::as_ref)
    }

    /// `munmap MAP_INDEX`: the mapping's span unmapped behind the
    /// library's back.
    fn munmap(&self, index: u64) -> String {
        match self.mapping(index) {
            Some(m) => {
                // SAFETY: deliberately pulls the span out from under the
                // library (the test of the munmap probe); nothing reads it
                // afterwards.
                let r = unsafe { libc::munmap(m.addr().cast(), m.size()) };
                format!("ok {r}")
            }
            None => "err 2 no such mapping".into(),
        }
    }

    /// `offer ARENA_ID [PATH]`: the arena lent to mappers at `path`.
    fn offer(&mut self, arena: u64, path: Option<&str>) -> skmem::Result<String> {
        match self.arenas.get(&arena) {
            Some(a) => skmem::lend::ArenaOffer::serve(
                a,
                path.unwrap_or("/tmp/skmem-child.sock"),
                skmem::lend::OfferPolicy::root_only(),
            )
            .map(|o| {
                self.offer = Some(o);
                "ok".to_owned()
            }),
            None => Ok("err 2 no such arena".into()),
        }
    }

    /// `wait-mappers N`: until `n` mappers have mapped the offered arena,
    /// 10 s at most.
    fn wait_mappers(&self, n: usize) -> String {
        match &self.offer {
            Some(o) => {
                let done = o.wait_until(std::time::Duration::from_secs(10), |m, _| m.len() == n);
                if done {
                    "ok".into()
                } else {
                    "err 110 timed out".into()
                }
            }
            None => "err 2 no offer".into(),
        }
    }
}

/// One arena, `threads` threads doing `ops` of its lifecycle verbs at
/// random between them (a xorshift per thread: no dependency, and each
/// thread's own sequence), in two halves: in the first the threads keep
/// the arena active (a redirect or an unmap that would leave no mapping
/// active is not made), in the second anything goes. Then whatever is
/// left is redirected and the arena defuncted (if it is not yet), every
/// mapping unmapped and the arena destroyed: its life always ends with one
/// defunct. At most 12 mappings live at once (the probes track 16 spans a
/// process). Returns `ok ARENA_ID`.
fn stress(name: &str, ops: u64, threads: usize) -> skmem::Result<String> {
    let mut p = NexusParams::new(name);
    p.pool.packets = 256;
    let arena = Arena::create_nexus(&p)?;
    let id = arena.id();
    let maps = std::sync::Mutex::new(Vec::<ArenaMapping>::new());
    let left = std::sync::atomic::AtomicI64::new(ops as i64);
    let half = (ops / 2) as i64;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (arena, maps, left) = (&arena, &maps, &left);
            s.spawn(move || {
                let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
                let mut next = move || {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x
                };
                let lock = || maps.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    let n = left.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    if n <= 0 {
                        break;
                    }
                    let careful = n > half;
                    let r = next();
                    // Would losing mapping `i`'s activity leave none active?
                    let last_active = |v: &[ArenaMapping], i: usize| {
                        !v[i].is_redirected()
                            && v.iter()
                                .enumerate()
                                .all(|(j, m)| j == i || m.is_redirected())
                    };
                    match r % 20 {
                        0..=6 => {
                            if lock().len() < 12 {
                                if let Ok(m) = arena.map() {
                                    lock().push(m);
                                }
                            }
                        }
                        7..=10 => {
                            let v = lock();
                            if !v.is_empty() {
                                let i = (r >> 8) as usize % v.len();
                                if !(careful && last_active(&v, i)) {
                                    let _ = v[i].redirect();
                                }
                            }
                        }
                        11..=17 => {
                            let gone = {
                                let mut v = lock();
                                let n = v.len();
                                let i = (r >> 8) as usize % n.max(1);
                                (n > 0 && !(careful && last_active(&v, i)))
                                    .then(|| v.swap_remove(i))
                            };
                            drop(gone);
                        }
                        18 => arena.reap(r & 1 << 40 != 0),
                        _ => {
                            let _ = arena.defunct();
                        }
                    }
                }
            });
        }
    });
    let mut maps = maps.into_inner().unwrap_or_else(|e| e.into_inner());
    if !arena.is_defunct() {
        if maps.is_empty() && arena.is_active() {
            maps.push(arena.map()?);
        }
        for m in &maps {
            if !m.is_redirected() {
                m.redirect()?;
            }
        }
        arena.defunct()?;
    }
    drop(maps);
    drop(arena);
    Ok(format!("ok {id}"))
}
