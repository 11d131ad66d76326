//! The tunables that govern every arena of a process (Skywalk's sysctls),
//! kept in the process-wide SYSCTLS region.
//!
//! Skywalk's tasks read the kernel's sysctls from the system arena, mapped
//! read-only into each of them; here the owner process is the kernel. Its
//! tunables live in one object of the SYSCTLS region, and the owner's own
//! defaults are read from it — [`ChannelParams::new`](crate::channel::ChannelParams::new),
//! [`NexusParams::new`](crate::arena::NexusParams::new),
//! [`PoolParams::default`](crate::pool::PoolParams::default),
//! [`OfferPolicy::root_only`](crate::lend::OfferPolicy::root_only) — so what
//! a mapper reads there (every hand-over sends the region, sealed
//! read-only) is exactly what governs the arenas it maps.
//!
//! [`tune`] changes them for the whole process; values are checked first
//! ([`Error::InvalidSysctl`]). Readers never see half a change: the object
//! is written under a sequence count, as the schema is.
//!
//! ## Layout (little-endian)
//!
//! | offset | field |
//! |---|---|
//! | 0 | magic `b"SKSYSCTL"` |
//! | 8 | layout version `u32` ([`SYSCTLS_VERSION`]) |
//! | 12 | bytes of the encoding `u32` |
//! | 16 | sequence count `u64` (odd while being rewritten) |
//! | 24 | one `u32` per tunable, in the order of [`Sysctls::NAMES`] |

use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::sync::Arc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::error::{Error, LendError, Result};
use crate::region::{Region, RegionId, RegionParams};

/// The first eight bytes of the object.
const MAGIC: [u8; 8] = *b"SKSYSCTL";
/// The layout version this module writes and reads.
pub const SYSCTLS_VERSION: u32 = 1;
/// Offset of the sequence count.
const SEQ: usize = 16;
/// Offset of the first tunable.
const FIELDS: usize = 24;
/// Number of tunables.
const COUNT: usize = 14;
/// How long a reader waits for a writer to finish.
const PATIENCE: Duration = Duration::from_secs(1);

/// The tunables (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Sysctls {
    /// Entries of a channel's RX and TX rings (a power of two).
    pub ring_entries: u32,
    /// Entries of a channel's fill and completion rings (a power of two).
    pub umem_ring_entries: u32,
    /// Descriptors a channel moves per call.
    pub batch: u32,
    /// Waiting mode: 1 = NEED_WAKEUP (a syscall only when the kernel asks),
    /// 0 = a wakeup on every call.
    pub need_wakeup: u32,
    /// Busy polling: microseconds per poll (0 = off).
    pub busy_poll_us: u32,
    /// Busy polling: packets per poll.
    pub busy_poll_budget: u32,
    /// Packets of a pool.
    pub packets: u32,
    /// Bytes of a default buffer (a power of two, 2048 up to a page).
    pub buf_size: u32,
    /// Slot descriptors per path of a nexus arena.
    pub slot_descs: u32,
    /// Flow advisory entries of a nexus arena.
    pub max_flows: u32,
    /// Guard pages at each end of a span.
    pub guard_pages: u32,
    /// Most mappers one offer serves at once.
    pub max_mappers: u32,
    /// Milliseconds a mapper has to answer a redirect before it is cut off.
    pub redirect_timeout_ms: u32,
    /// Milliseconds a welcomed mapper has to say it has mapped.
    pub ready_timeout_ms: u32,
}

impl Default for Sysctls {
    /// Skywalk's flowswitch defaults where it has them (4096 packets of
    /// 2 KiB, 512 flow advisories, one guard page), AF_XDP's common ring
    /// sizes and batch otherwise.
    fn default() -> Self {
        Self {
            ring_entries: 1024,
            umem_ring_entries: 1024,
            batch: 64,
            need_wakeup: 1,
            busy_poll_us: 0,
            busy_poll_budget: 64,
            packets: 4096,
            buf_size: 2048,
            slot_descs: 256,
            max_flows: 512,
            guard_pages: 1,
            max_mappers: 64,
            redirect_timeout_ms: 1000,
            ready_timeout_ms: 5000,
        }
    }
}

impl Sysctls {
    /// Bytes of the encoding.
    pub const SIZE: usize = FIELDS + COUNT * 4;

    /// The tunables' names, in layout order.
    pub const NAMES: [&'static str; COUNT] = [
        "ring_entries",
        "umem_ring_entries",
        "batch",
        "need_wakeup",
        "busy_poll_us",
        "busy_poll_budget",
        "packets",
        "buf_size",
        "slot_descs",
        "max_flows",
        "guard_pages",
        "max_mappers",
        "redirect_timeout_ms",
        "ready_timeout_ms",
    ];

    fn fields_mut(&mut self) -> [&mut u32; COUNT] {
        [
            &mut self.ring_entries,
            &mut self.umem_ring_entries,
            &mut self.batch,
            &mut self.need_wakeup,
            &mut self.busy_poll_us,
            &mut self.busy_poll_budget,
            &mut self.packets,
            &mut self.buf_size,
            &mut self.slot_descs,
            &mut self.max_flows,
            &mut self.guard_pages,
            &mut self.max_mappers,
            &mut self.redirect_timeout_ms,
            &mut self.ready_timeout_ms,
        ]
    }

    /// Every tunable with its name, in layout order.
    pub fn entries(&self) -> [(&'static str, u32); COUNT] {
        let mut copy = *self;
        let values = copy.fields_mut().map(|v| *v);
        std::array::from_fn(|i| (Self::NAMES[i], values[i]))
    }

    /// Sets the tunable called `name` (checked by [`validate`](Self::validate)
    /// when tuned, not here).
    pub fn set(&mut self, name: &str, value: u32) -> Result<()> {
        let i =
            Self::NAMES
                .iter()
                .position(|n| *n == name)
                .ok_or_else(|| Error::InvalidSysctl {
                    setting: format!("{name}={value}"),
                    rule: "no tunable has this name",
                })?;
        *self.fields_mut()[i] = value;
        Ok(())
    }

    /// Sets a tunable from `name=value`, as a command line gives it.
    pub fn set_from_str(&mut self, assignment: &str) -> Result<()> {
        let bad = |rule| Error::InvalidSysctl {
            setting: format!("{assignment:?}"),
            rule,
        };
        let (name, value) = assignment
            .split_once('=')
            .ok_or_else(|| bad("expected NAME=VALUE"))?;
        let value = value
            .trim()
            .parse::<u32>()
            .map_err(|_| bad("the value is not a 32-bit unsigned number"))?;
        self.set(name.trim(), value)
    }

    /// Checks every tunable against what the arenas and the kernel accept.
    pub fn validate(&self) -> Result<()> {
        let page = crate::sys::page_size() as u32;
        let rules: [(&'static str, u32, bool, &'static str); COUNT] = [
            (
                "ring_entries",
                self.ring_entries,
                self.ring_entries.is_power_of_two() && (64..=1 << 16).contains(&self.ring_entries),
                "a power of two from 64 to 65536",
            ),
            (
                "umem_ring_entries",
                self.umem_ring_entries,
                self.umem_ring_entries.is_power_of_two()
                    && (64..=1 << 16).contains(&self.umem_ring_entries),
                "a power of two from 64 to 65536",
            ),
            (
                "batch",
                self.batch,
                (1..=self.ring_entries.min(self.umem_ring_entries)).contains(&self.batch),
                "from 1 to the smaller ring's entries",
            ),
            (
                "need_wakeup",
                self.need_wakeup,
                self.need_wakeup <= 1,
                "0 or 1",
            ),
            (
                "busy_poll_us",
                self.busy_poll_us,
                self.busy_poll_us <= 1_000_000,
                "at most 1000000",
            ),
            (
                "busy_poll_budget",
                self.busy_poll_budget,
                (1..=1024).contains(&self.busy_poll_budget),
                "from 1 to 1024",
            ),
            (
                "packets",
                self.packets,
                (64..=1 << 24).contains(&self.packets),
                "from 64 to 16777216",
            ),
            (
                "buf_size",
                self.buf_size,
                self.buf_size.is_power_of_two() && (2048..=page).contains(&self.buf_size),
                "a power of two from 2048 to a page (an AF_XDP chunk)",
            ),
            (
                "slot_descs",
                self.slot_descs,
                (1..=1 << 16).contains(&self.slot_descs),
                "from 1 to 65536",
            ),
            (
                "max_flows",
                self.max_flows,
                (1..=1 << 20).contains(&self.max_flows),
                "from 1 to 1048576",
            ),
            (
                "guard_pages",
                self.guard_pages,
                (1..=64).contains(&self.guard_pages),
                "from 1 to 64",
            ),
            (
                "max_mappers",
                self.max_mappers,
                (1..=4096).contains(&self.max_mappers),
                "from 1 to 4096",
            ),
            (
                "redirect_timeout_ms",
                self.redirect_timeout_ms,
                (1..=600_000).contains(&self.redirect_timeout_ms),
                "from 1 to 600000",
            ),
            (
                "ready_timeout_ms",
                self.ready_timeout_ms,
                (1..=600_000).contains(&self.ready_timeout_ms),
                "from 1 to 600000",
            ),
        ];
        match rules.into_iter().find(|r| !r.2) {
            None => Ok(()),
            Some((name, value, _, rule)) => Err(Error::InvalidSysctl {
                setting: format!("{name}={value}"),
                rule,
            }),
        }
    }

    /// The encoding (see the [module docs](self)), with a sequence count
    /// of 0: what the SYSCTLS object holds when nobody is rewriting it.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        self.encode(0)
    }

    /// The encoding, sequence count `seq` included.
    fn encode(&self, seq: u64) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[..8].copy_from_slice(&MAGIC);
        b[8..12].copy_from_slice(&SYSCTLS_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(Self::SIZE as u32).to_le_bytes());
        b[SEQ..SEQ + 8].copy_from_slice(&seq.to_le_bytes());
        for (i, (_, v)) in self.entries().into_iter().enumerate() {
            b[FIELDS + 4 * i..FIELDS + 4 * i + 4].copy_from_slice(&v.to_le_bytes());
        }
        b
    }

    /// Reads tunables from untrusted bytes (a whole object, as the
    /// sequence lock let it be copied): the magic, layout version and size
    /// are checked, and every value must pass [`validate`](Self::validate).
    pub fn decode(bytes: &[u8]) -> Result<Sysctls> {
        let bad = |what: &str| {
            Error::Lend(LendError::Handover {
                what: format!("sysctls: {what}"),
            })
        };
        if bytes.get(..8) != Some(&MAGIC[..]) {
            return Err(bad("not a sysctls object (bad magic)"));
        }
        let u32_at = |at: usize| -> Result<u32> {
            bytes
                .get(at..at + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or_else(|| bad("shorter than its fields"))
        };
        let version = u32_at(8)?;
        if version != SYSCTLS_VERSION {
            return Err(bad(&format!(
                "layout version {version}, this side reads {SYSCTLS_VERSION}"
            )));
        }
        if u32_at(12)? as usize != Self::SIZE {
            return Err(bad("a size that is not this layout's"));
        }
        let mut s = Sysctls::default();
        for (i, f) in s.fields_mut().into_iter().enumerate() {
            *f = u32_at(FIELDS + 4 * i)?;
        }
        s.validate().map_err(|e| bad(&e.to_string()))?;
        Ok(s)
    }

    /// The ring-wait settings as [`ChannelParams`](crate::channel::ChannelParams)
    /// holds them: busy polling (µs, budget) when on.
    pub fn busy_poll(&self) -> Option<(u32, u32)> {
        (self.busy_poll_us > 0).then_some((self.busy_poll_us, self.busy_poll_budget))
    }
}

/// Copies the `Sysctls::SIZE` bytes at `base` under their sequence lock.
///
/// # Safety
/// `base..base+len` must be mapped readable for the call's duration.
pub(crate) unsafe fn copy_at(base: *const u8, len: usize) -> Result<[u8; Sysctls::SIZE]> {
    if len < Sysctls::SIZE || !(base as usize).is_multiple_of(8) {
        return Err(Error::Lend(LendError::Handover {
            what: format!("sysctls: an object of {len} bytes is too small"),
        }));
    }
    let word = |i: usize| {
        // SAFETY: `i * 8 + 8 <= SIZE <= len`, so the word lies inside the
        // readable range (the caller's contract) and is 8-aligned (checked;
        // SIZE is a multiple of 8). Atomic: the owner writes these words
        // with atomic stores (`Obj::publish`), so the two never race.
        unsafe { AtomicU64::from_ptr(base.add(i * 8).cast_mut().cast()) }
    };
    const WORDS: usize = Sysctls::SIZE / 8;
    let started = Instant::now();
    let mut out = [0u8; Sysctls::SIZE];
    loop {
        let before = word(SEQ / 8).load(Ordering::Acquire);
        if before.is_multiple_of(2) {
            for i in 0..WORDS {
                let w = word(i).load(Ordering::Relaxed).to_ne_bytes();
                out[i * 8..i * 8 + 8].copy_from_slice(&w);
            }
            fence(Ordering::Acquire);
            if word(SEQ / 8).load(Ordering::Relaxed) == before {
                return Ok(out);
            }
        }
        if started.elapsed() > PATIENCE {
            return Err(Error::Lend(LendError::Handover {
                what: format!(
                    "sysctls: still being rewritten after {PATIENCE:?} (sequence {before})"
                ),
            }));
        }
        std::thread::yield_now();
    }
}

/// The process's SYSCTLS region and the lock its writers take.
struct Store {
    region: Arc<Region>,
    writer: Mutex<()>,
}

/// The process-wide store, created (with the defaults) on first use.
fn store() -> Result<&'static Store> {
    static STORE: OnceLock<Store> = OnceLock::new();
    if let Some(s) = STORE.get() {
        return Ok(s);
    }
    let region = Region::create("system", &RegionParams::new(RegionId::Sysctls, 128, 1))?;
    region.alloc_segment()?;
    region.obj(0)?.publish(SEQ, &Sysctls::default().encode(2))?;
    // A racing thread may have won; use whichever was stored.
    Ok(STORE.get_or_init(|| Store {
        region,
        writer: Mutex::new(()),
    }))
}

/// The process-wide SYSCTLS region (the system arena retains it; every
/// hand-over sends it).
pub(crate) fn region() -> Result<Arc<Region>> {
    Ok(store()?.region.clone())
}

/// Reads the tunables of region `r` (the SYSCTLS object) under their
/// sequence lock.
fn read_region(r: &Region) -> Result<Sysctls> {
    let obj = r.obj(0)?;
    // SAFETY: `obj` borrows the region, whose owner view stays mapped
    // readable while the borrow lives; `obj.len()` bytes from its start
    // are the object's.
    let bytes = unsafe { copy_at(obj.addr(0), obj.len()) }?;
    Sysctls::decode(&bytes)
}

/// The tunables now in force in this process. When the region cannot be
/// made (out of memfds), the compiled-in defaults, logged.
pub fn current() -> Sysctls {
    match store().and_then(|s| read_region(&s.region)) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "SYSCTLS unreadable; using the compiled-in defaults");
            Sysctls::default()
        }
    }
}

/// Changes the process's tunables: `change` edits a copy of the current
/// ones, which are checked and then published to the SYSCTLS region (and
/// so to every mapper). Defaults read afterwards follow; arenas and
/// channels already made keep what they were made with.
///
/// ```
/// let s = skmem::sysctls::tune(|s| s.batch = 32)?;
/// assert_eq!(skmem::channel::ChannelParams::new("veth0", 0).batch, 32);
/// # skmem::sysctls::tune(|t| *t = skmem::sysctls::Sysctls::default())?;
/// # Ok::<(), skmem::Error>(())
/// ```
pub fn tune(change: impl FnOnce(&mut Sysctls)) -> Result<Sysctls> {
    let store = store()?;
    let _writer = store.writer.lock().unwrap_or_else(|p| p.into_inner());
    let obj = store.region.obj(0)?;
    let mut s = read_region(&store.region)?;
    change(&mut s);
    s.validate()?;
    let seq = obj.load_u64(SEQ)?;
    obj.publish(SEQ, &s.encode(seq + 2))?;
    tracing::info!(sysctls = ?s, "tunables changed");
    Ok(s)
}

/// Maps the SYSCTLS memfd a mapper was lent, read-only, and checks that it
/// holds tunables.
pub(crate) fn map_lent(fd: std::os::fd::BorrowedFd<'_>) -> Result<crate::sys::Mapping> {
    let len = rustix::fs::fstat(fd)
        .map_err(|e| Error::sys("fstat(lent sysctls)", e))?
        .st_size;
    let len = usize::try_from(len).unwrap_or(0);
    if !(Sysctls::SIZE..=1 << 20).contains(&len) {
        return Err(Error::Lend(LendError::Handover {
            what: format!("sysctls: a memfd of {len} bytes"),
        }));
    }
    let m = crate::sys::Mapping::shared(fd, len, crate::sys::Protection::Read)?;
    read_lent(&m)?;
    Ok(m)
}

/// Reads the tunables from a lent SYSCTLS view ([`map_lent`]'s).
pub(crate) fn read_lent(m: &crate::sys::Mapping) -> Result<Sysctls> {
    // SAFETY: `m` maps `m.len()` bytes readable while borrowed, which
    // outlasts the call.
    let bytes = unsafe { copy_at(m.as_ptr(), m.len()) }?;
    Sysctls::decode(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_round_trip() {
        let d = Sysctls::default();
        d.validate().unwrap();
        assert_eq!(Sysctls::decode(&d.encode(2)).unwrap(), d);
        assert_eq!(Sysctls::SIZE % 8, 0);
    }

    #[test]
    fn damaged_bytes_and_bad_values_are_typed_errors() {
        let good = Sysctls::default().encode(2);
        let mut cases = vec![good[..10].to_vec(), good[..Sysctls::SIZE - 1].to_vec()];
        for at in [0, 8, 12] {
            let mut b = good.to_vec();
            b[at] ^= 0x40;
            cases.push(b);
        }
        let mut zero_batch = good.to_vec();
        zero_batch[FIELDS + 8..FIELDS + 12].fill(0);
        cases.push(zero_batch);
        for c in cases {
            assert!(
                matches!(
                    Sysctls::decode(&c),
                    Err(Error::Lend(LendError::Handover { .. }))
                ),
                "{c:?}"
            );
        }
        let mut s = Sysctls::default();
        assert!(s.set("no_such", 1).is_err());
        s.set_from_str("ring_entries=1000").unwrap();
        let e = s.validate().unwrap_err();
        assert!(
            matches!(&e, Error::InvalidSysctl { setting, .. } if setting == "ring_entries=1000"),
            "{e}"
        );
        assert!(s.set_from_str("batch").is_err());
        assert!(s.set_from_str("batch=-1").is_err());
    }
}
