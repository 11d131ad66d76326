//! A data-path thread's handle on a pool: packets come and go through the
//! metadata cache's magazines, as tokens.

use std::sync::Arc;

use super::packet::raw_indices_mut;
use super::{Packet, PacketIndex, PacketPool, Refused, Tag};
use crate::cache::CacheWorker;
use crate::error::Result;

/// A data-path thread's handle on a pool: see the module docs.
#[derive(Debug)]
pub struct PoolWorker {
    pool: Arc<PacketPool>,
    kmd: CacheWorker,
}

/// Packets moved to or from the cache per step of a batch: the size of the
/// stack array the indices pass through.
const STEP: usize = 64;

impl PoolWorker {
    pub(super) fn new(pool: Arc<PacketPool>, kmd: CacheWorker) -> Self {
        Self { pool, kmd }
    }

    /// The pool.
    pub fn pool(&self) -> &Arc<PacketPool> {
        &self.pool
    }

    /// Allocates one packet (with its buffer in a single-buffer pool).
    pub fn alloc(&mut self) -> Option<Packet> {
        let pkt = PacketIndex::new(self.kmd.alloc()?);
        self.pool.states.set(pkt, Tag::APP);
        Some(Packet::issue(pkt, self.pool.id()))
    }

    /// Allocates up to `n` packets onto `out`; returns how many. `out`
    /// only grows past its capacity if `n` asks it to.
    pub fn alloc_batch(&mut self, out: &mut Vec<Packet>, n: usize) -> usize {
        let mut step = [PacketIndex::default(); STEP];
        let mut done = 0;
        while done < n {
            let want = (n - done).min(STEP);
            let got = self.alloc_as(&mut step[..want], Tag::APP);
            out.extend(
                step[..got]
                    .iter()
                    .map(|&p| Packet::issue(p, self.pool.id())),
            );
            done += got;
            if got < want {
                break;
            }
        }
        done
    }

    /// Frees one packet (and its on-demand buffers). A packet of another
    /// pool is refused, counted, and handed back.
    pub fn free(&mut self, pkt: Packet) -> std::result::Result<(), Refused<Packet>> {
        let idx = match self.pool.check_ours(&pkt) {
            Ok(i) => i,
            Err(error) => return Err(Refused { error, item: pkt }),
        };
        self.pool.release_buflets(idx);
        self.pool.states.set(pkt.retire(), Tag::FREE);
        // The cache took this object out; only this worker gives it back.
        if let Err(e) = self.kmd.free(idx.get()) {
            tracing::error!(pool = %self.pool.name, error = %e, "metadata object refused by its cache");
        }
        Ok(())
    }

    /// Frees every packet of `pkts` that belongs to this pool; the others
    /// stay in `pkts`, counted, and the first refusal is returned.
    pub fn free_batch(&mut self, pkts: &mut Vec<Packet>) -> Result<()> {
        let mut first_err = None;
        let pool = self.pool.clone();
        let mut burst = self.kmd.burst();
        pkts.retain(|p| match pool.check_ours(p) {
            Ok(idx) => {
                pool.release_buflets(idx);
                pool.states.set(idx, Tag::FREE);
                if let Err(e) = burst.free(idx.get()) {
                    tracing::error!(pool = %pool.name, error = %e, "metadata object refused by its cache");
                }
                false
            }
            Err(e) => {
                first_err.get_or_insert(e);
                true
            }
        });
        first_err.map_or(Ok(()), Err)
    }

    /// Allocates up to `out.len()` packets straight into tag `to`.
    pub(crate) fn alloc_as(&mut self, out: &mut [PacketIndex], to: Tag) -> usize {
        let n = self.kmd.alloc_batch(raw_indices_mut(out));
        for &p in &out[..n] {
            self.pool.states.set(p, to);
        }
        n
    }

    /// Returns `pkts`, each tagged `from`, to the pool; the ones not tagged
    /// so are refused and counted. Returns how many were freed.
    pub(crate) fn free_from(&mut self, pkts: &[PacketIndex], from: Tag) -> usize {
        let mut freed = 0;
        let mut burst = self.kmd.burst();
        for &p in pkts {
            if !self.pool.states.transition(p, from, Tag::FREE) {
                self.pool.count_refused();
                continue;
            }
            self.pool.release_buflets(p);
            if burst.free(p.get()).is_ok() {
                freed += 1;
            }
        }
        freed
    }
}
