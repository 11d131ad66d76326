//! What the owner tells its workers (Skywalk's flow and nexus
//! advisories): the flows it had to drop because their worker's ring was
//! full, and its per-queue state — both in regions mapped read-only into
//! every worker, so a worker can back off.
//!
//! ## FLOWADV: one 16-byte entry per flow bucket (little-endian `u32`s)
//!
//! | offset | what |
//! |---|---|
//! | 0 | the flow's hash (its low 32 bits; the bucket is the hash modulo the entries) |
//! | 4 | the worker slot + 1 (0: unused) in bits 0–15, flags in bits 16–31: [`FLOW_CONTROLLED`] |
//! | 8 | packets of the flow dropped for that worker |
//! | 12 | sequence count: odd while the owner rewrites the entry |
//!
//! The owner sets an entry when it drops a packet because the worker's
//! ring is full, and clears the worker's entries once its ring is half
//! empty again.
//!
//! ## NEXUSADV: the owner's per-queue state (little-endian)
//!
//! | offset | what |
//! |---|---|
//! | 0 | sequence count `u64` (odd while rewritten; see [`crate::schema`]) |
//! | 8 | layout version `u32` ([`NEXUS_ADVISORY_VERSION`]), 12: slots `u32` |
//! | 16 | packets received `u64`, 24: sent `u64`, 32: received with no worker `u64`, 40: 0 |
//! | 48 + 48 × slot | lent `u64`, handed back `u64`, dropped (ring full) `u64`, reclaimed `u64`, ring occupancy `u32`, worker pid `u32`, bad descriptors `u64` |

use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, LendError, Result};
use crate::region::{Region, RegionId};

/// A flow advisory's flag: the owner is dropping this flow's packets.
pub const FLOW_CONTROLLED: u32 = 1;
/// Bytes of one flow advisory entry.
const ENTRY: usize = 16;
/// The NEXUSADV layout version.
pub const NEXUS_ADVISORY_VERSION: u32 = 1;
use crate::schema::objects::nexus_advisory::{
    bytes as nexus_bytes, HEADER as NEXUS_HEADER, SLOT as NEXUS_SLOT,
};
/// How long a reader waits for a writer.
const PATIENCE: Duration = Duration::from_secs(1);

/// One flow advisory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FlowAdvisory {
    /// The flow's hash (low 32 bits).
    pub flow: u32,
    /// The worker slot the flow goes to.
    pub slot: u32,
    /// Is the owner dropping the flow's packets now?
    pub controlled: bool,
    /// Packets of the flow dropped so far.
    pub drops: u32,
}

/// One worker slot's state, as the owner last published it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SlotAdvisory {
    /// Frames lent.
    pub lent: u64,
    /// Frames handed back (sent or freed).
    pub back: u64,
    /// Frames dropped because the worker's ring was full.
    pub dropped_full: u64,
    /// Frames taken back from gone workers.
    pub reclaimed: u64,
    /// Descriptors in the worker's ring, not yet taken.
    pub occupancy: u32,
    /// The worker's pid (0: none).
    pub pid: u32,
    /// Bad descriptors handed back.
    pub bad: u64,
}

/// The owner's per-queue state, as last published.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct NexusAdvisoryState {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Packets received with no worker to take them.
    pub no_worker: u64,
    /// Each slot's state.
    pub slots: Vec<SlotAdvisory>,
}

impl NexusAdvisoryState {
    /// The object's bytes, sequence count `seq` included (into `out`,
    /// reused: no allocation once it is large enough).
    pub fn encode(&self, seq: u64, out: &mut Vec<u8>) {
        out.clear();
        let u64s = |out: &mut Vec<u8>, v: &[u64]| {
            v.iter()
                .for_each(|w| out.extend_from_slice(&w.to_le_bytes()))
        };
        u64s(out, &[seq]);
        out.extend_from_slice(&NEXUS_ADVISORY_VERSION.to_le_bytes());
        out.extend_from_slice(&(self.slots.len() as u32).to_le_bytes());
        u64s(out, &[self.rx_packets, self.tx_packets, self.no_worker, 0]);
        for s in &self.slots {
            u64s(out, &[s.lent, s.back, s.dropped_full, s.reclaimed]);
            out.extend_from_slice(&s.occupancy.to_le_bytes());
            out.extend_from_slice(&s.pid.to_le_bytes());
            u64s(out, &[s.bad]);
        }
    }

    /// Reads the state from untrusted bytes (a whole copy).
    pub fn decode(b: &[u8]) -> Result<NexusAdvisoryState> {
        let bad = |what: &str| {
            Error::Lend(LendError::Handover {
                what: format!("nexus advisory: {what}"),
            })
        };
        let u32_at = |at: usize| {
            b.get(at..at + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or_else(|| bad("shorter than its fields"))
        };
        let u64_at = |at: usize| {
            b.get(at..at + 8)
                .map(|s| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(s);
                    u64::from_le_bytes(w)
                })
                .ok_or_else(|| bad("shorter than its fields"))
        };
        if u32_at(8)? != NEXUS_ADVISORY_VERSION {
            return Err(bad("another layout version"));
        }
        let slots = u32_at(12)? as usize;
        if slots > crate::schema::SCHEMA_MAX_WORKERS {
            return Err(bad("more slots than exist"));
        }
        let mut s = NexusAdvisoryState {
            rx_packets: u64_at(16)?,
            tx_packets: u64_at(24)?,
            no_worker: u64_at(32)?,
            slots: Vec::with_capacity(slots),
        };
        for i in 0..slots {
            let at = NEXUS_HEADER + NEXUS_SLOT * i;
            s.slots.push(SlotAdvisory {
                lent: u64_at(at)?,
                back: u64_at(at + 8)?,
                dropped_full: u64_at(at + 16)?,
                reclaimed: u64_at(at + 24)?,
                occupancy: u32_at(at + 32)?,
                pid: u32_at(at + 36)?,
                bad: u64_at(at + 40)?,
            });
        }
        Ok(s)
    }
}

/// The owner's writer of FLOWADV.
#[derive(Debug)]
pub(crate) struct FlowAdvisories {
    region: Arc<Region>,
    entries: usize,
}

impl FlowAdvisories {
    pub(crate) fn new(region: Arc<Region>, entries: usize) -> Option<Self> {
        (entries > 0).then_some(Self { region, entries })
    }

    /// Rewrites entry `i` under its sequence count with `write`.
    fn rewrite(
        &self,
        i: usize,
        write: impl FnOnce(&crate::region::Obj<'_>, usize) -> Result<()>,
    ) -> Result<()> {
        let obj = self.region.obj(0)?;
        let e = i * ENTRY;
        let seq = obj.load_u32(e + 12)?;
        obj.store_u32(e + 12, seq | 1)?;
        // The odd count before the words: a reader that sees a new word
        // sees the odd count, or a changed one, and copies again.
        fence(Ordering::Release);
        write(&obj, e)?;
        fence(Ordering::Release);
        Ok(obj.store_u32(e + 12, (seq | 1).wrapping_add(1))?)
    }

    /// The owner dropped a packet of flow `flow` for worker `slot`.
    pub(crate) fn dropped(&self, flow: u64, slot: usize) -> Result<()> {
        let i = (flow % self.entries as u64) as usize;
        let (flow, tag) = (flow as u32, slot as u32 + 1);
        self.rewrite(i, |obj, e| {
            let same = obj.load_u32(e)? == flow && obj.load_u32(e + 4)? & 0xffff == tag;
            let drops = if same {
                obj.load_u32(e + 8)?.saturating_add(1)
            } else {
                1
            };
            obj.store_u32(e, flow)?;
            obj.store_u32(e + 4, tag | FLOW_CONTROLLED << 16)?;
            Ok(obj.store_u32(e + 8, drops)?)
        })
    }

    /// Worker `slot` caught up: its flows are no longer controlled.
    pub(crate) fn caught_up(&self, slot: usize) -> Result<()> {
        let tag = slot as u32 + 1;
        for i in 0..self.entries {
            let w = self.region.obj(0)?.load_u32(i * ENTRY + 4)?;
            if w & 0xffff == tag && (w >> 16) & FLOW_CONTROLLED != 0 {
                self.rewrite(i, |obj, e| Ok(obj.store_u32(e + 4, tag)?))?;
            }
        }
        Ok(())
    }
}

/// Copies `len` bytes at `base` whose sequence count is the `u32` or
/// `u64` at `seq` (8-aligned `u64` when `wide`), between two equal, even
/// reads of it.
///
/// # Safety
/// `base..base+len` must be mapped readable for the call's duration, and
/// 8-aligned.
unsafe fn seq_copy(base: *const u8, len: usize, seq: usize, wide: bool) -> Result<Vec<u8>> {
    let read_seq = || -> u64 {
        if wide {
            // SAFETY: the caller's contract; `seq + 8 <= len` and 8-aligned
            // (checked by the callers' layouts).
            unsafe { AtomicU64::from_ptr(base.add(seq).cast_mut().cast()) }.load(Ordering::Acquire)
        } else {
            // SAFETY: as above, a 4-aligned `u32`.
            u64::from(
                unsafe { AtomicU32::from_ptr(base.add(seq).cast_mut().cast()) }
                    .load(Ordering::Acquire),
            )
        }
    };
    let started = Instant::now();
    let mut out = vec![0u8; len];
    loop {
        let before = read_seq();
        if before.is_multiple_of(2) {
            for (i, chunk) in out.chunks_exact_mut(4).enumerate() {
                // SAFETY: the caller's contract: word i lies in the range,
                // 4-aligned (the base is 8-aligned, len a multiple of 4).
                let w = unsafe { AtomicU32::from_ptr(base.add(i * 4).cast_mut().cast()) }
                    .load(Ordering::Relaxed);
                chunk.copy_from_slice(&w.to_ne_bytes());
            }
            fence(Ordering::Acquire);
            if read_seq() == before {
                return Ok(out);
            }
        }
        if started.elapsed() > PATIENCE {
            return Err(Error::Lend(LendError::Handover {
                what: "an advisory still being rewritten after 1 s".into(),
            }));
        }
        std::thread::yield_now();
    }
}

/// The advisories as a mapper reads them from its span.
pub(crate) fn read(
    remote: &crate::lend::RemoteArena,
) -> Result<(Option<NexusAdvisoryState>, Vec<FlowAdvisory>)> {
    let nexus = match remote.region(RegionId::NexusAdv) {
        Some((base, size)) if size >= NEXUS_HEADER && (base as usize).is_multiple_of(8) => {
            let slots = remote.schema().workers.len();
            let len = nexus_bytes(slots).min(size) / 8 * 8;
            // SAFETY: NEXUSADV's part of the span, `size` bytes readable
            // while `remote` lives (the borrow outlasts the call); `len`
            // is within it and a multiple of 8.
            let bytes = unsafe { seq_copy(base, len, 0, true) }?;
            // All zero until the owner's first publication.
            if bytes.iter().all(|&b| b == 0) {
                None
            } else {
                Some(NexusAdvisoryState::decode(&bytes)?)
            }
        }
        _ => None,
    };
    let mut flows = Vec::new();
    if let Some((base, size)) = remote.region(RegionId::FlowAdv) {
        if (base as usize).is_multiple_of(8) {
            for i in 0..size / ENTRY {
                // SAFETY: entry i of FLOWADV's part of the span, readable
                // while `remote` lives; its count is its last word.
                let e = unsafe { seq_copy(base.add(i * ENTRY), ENTRY, 12, false) }?;
                let word = |at: usize| u32::from_ne_bytes([e[at], e[at + 1], e[at + 2], e[at + 3]]);
                let (flow, tag_flags, drops) =
                    (word(0), u32::from_le(word(4)), u32::from_le(word(8)));
                if tag_flags & 0xffff == 0 {
                    continue;
                }
                flows.push(FlowAdvisory {
                    flow: u32::from_le(flow),
                    slot: (tag_flags & 0xffff) - 1,
                    controlled: (tag_flags >> 16) & FLOW_CONTROLLED != 0,
                    drops,
                });
            }
        }
    }
    Ok((nexus, flows))
}
