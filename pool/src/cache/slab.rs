//! The slab layer: objects cut from region segments, one slab per segment.
//!
//! Every operation is O(1) per object: each slab keeps a stack of its free
//! objects in one flat array, slabs with free objects are on an intrusive
//! list (most recently freed-into first), and a bitmap of allocated objects
//! catches double frees — the slab layer is where bad input from outside the
//! process is finally caught. A slab whose objects are all free stays
//! (empty) until reap or purge destroys it, so a steady alloc/free does not
//! create and destroy slabs back to back.
//!
//! The layer is not thread-safe by itself; the cache keeps it behind a mutex.

use std::sync::Arc;

use super::error::{CacheError, Result};
use crate::region::{Region, RegionError};

const NIL: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slab {
    live: bool,
    nfree: u32,
    prev: u32,
    next: u32,
}

/// Counters of the slab layer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct SlabStats {
    /// Slabs created (segments taken from the region).
    pub slab_create: u64,
    /// Slabs destroyed (segments given back).
    pub slab_destroy: u64,
    /// Objects handed out by the slab layer.
    pub slab_alloc: u64,
    /// Objects given back to the slab layer.
    pub slab_free: u64,
    /// Allocations the region could not satisfy.
    pub slab_alloc_fail: u64,
    /// Frees refused (double free, out of range).
    pub slab_free_refused: u64,
    /// Live slabs with some objects in use.
    pub slab_partial: u64,
    /// Live slabs with no object in use.
    pub slab_empty: u64,
}

#[derive(Debug)]
pub(crate) struct SlabLayer {
    region: Arc<Region>,
    per_slab: u32,
    obj_count: u32,
    slabs: Vec<Slab>,
    /// Slab `s`'s free objects are `free[s*per_slab .. s*per_slab+nfree]`.
    free: Vec<u32>,
    /// One bit per object: handed out by this layer.
    allocated: Vec<u64>,
    /// Head of the list of live slabs with at least one free object.
    head: u32,
    /// Free objects in live slabs.
    live_free: u64,
    live_slabs: u64,
    stats: SlabStats,
}

impl SlabLayer {
    pub(crate) fn new(region: Arc<Region>) -> Self {
        let g = *region.geometry();
        let nslabs = g.seg_count as usize;
        Self {
            region,
            per_slab: g.objs_per_seg,
            obj_count: g.obj_count,
            slabs: vec![
                Slab {
                    live: false,
                    nfree: 0,
                    prev: NIL,
                    next: NIL,
                };
                nslabs
            ],
            free: vec![0; g.obj_count as usize],
            allocated: vec![0; (g.obj_count as usize).div_ceil(64)],
            head: NIL,
            live_free: 0,
            live_slabs: 0,
            stats: SlabStats::default(),
        }
    }

    fn unlink(&mut self, s: u32) {
        let Slab { prev, next, .. } = self.slabs[s as usize];
        if prev == NIL {
            self.head = next;
        } else {
            self.slabs[prev as usize].next = next;
        }
        if next != NIL {
            self.slabs[next as usize].prev = prev;
        }
        self.slabs[s as usize].prev = NIL;
        self.slabs[s as usize].next = NIL;
    }

    fn push_front(&mut self, s: u32) {
        self.slabs[s as usize].prev = NIL;
        self.slabs[s as usize].next = self.head;
        if self.head != NIL {
            self.slabs[self.head as usize].prev = s;
        }
        self.head = s;
    }

    /// Takes a segment from the region and makes it a slab of free objects.
    fn create_slab(&mut self) -> Result<u32> {
        let seg = self.region.alloc_segment()?;
        let base = seg * self.per_slab;
        let start = base as usize;
        // Reverse order so pops hand out the lowest index first.
        for (i, slot) in self.free[start..start + self.per_slab as usize]
            .iter_mut()
            .enumerate()
        {
            *slot = base + self.per_slab - 1 - i as u32;
        }
        let slab = &mut self.slabs[seg as usize];
        slab.live = true;
        slab.nfree = self.per_slab;
        self.push_front(seg);
        self.live_free += self.per_slab as u64;
        self.live_slabs += 1;
        self.stats.slab_create += 1;
        Ok(seg)
    }

    /// Hands out up to `out.len()` objects; returns how many. Fewer means
    /// the region is exhausted.
    pub(crate) fn alloc_into(&mut self, out: &mut [u32]) -> usize {
        let mut done = 0;
        while done < out.len() {
            let s = if self.head != NIL {
                self.head
            } else {
                match self.create_slab() {
                    Ok(s) => s,
                    Err(_) => {
                        self.stats.slab_alloc_fail += 1;
                        break;
                    }
                }
            };
            let slab = self.slabs[s as usize];
            let take = (out.len() - done).min(slab.nfree as usize);
            let top = s as usize * self.per_slab as usize + slab.nfree as usize;
            for (dst, &obj) in out[done..done + take]
                .iter_mut()
                .zip(self.free[top - take..top].iter().rev())
            {
                *dst = obj;
                self.allocated[obj as usize / 64] |= 1 << (obj % 64);
            }
            done += take;
            let nfree = slab.nfree - take as u32;
            self.slabs[s as usize].nfree = nfree;
            if nfree == 0 {
                self.unlink(s);
            }
            self.live_free -= take as u64;
        }
        self.stats.slab_alloc += done as u64;
        done
    }

    /// Takes back one object; refuses objects out of range or not handed out.
    pub(crate) fn free(&mut self, obj: u32, cache: &str) -> Result<()> {
        if obj >= self.obj_count {
            self.stats.slab_free_refused += 1;
            return Err(CacheError::Region(RegionError::ObjectOutOfRange {
                region: self.region.id(),
                index: obj,
                count: self.obj_count,
            }));
        }
        let (word, bit) = (obj as usize / 64, 1u64 << (obj % 64));
        if self.allocated[word] & bit == 0 {
            self.stats.slab_free_refused += 1;
            return Err(CacheError::NotAllocated {
                cache: cache.to_owned(),
                index: obj,
            });
        }
        self.allocated[word] &= !bit;
        let s = obj / self.per_slab;
        let slab = self.slabs[s as usize];
        self.free[s as usize * self.per_slab as usize + slab.nfree as usize] = obj;
        self.slabs[s as usize].nfree = slab.nfree + 1;
        if slab.nfree == 0 {
            self.push_front(s);
        }
        self.live_free += 1;
        self.stats.slab_free += 1;
        Ok(())
    }

    /// Gives every fully free slab's segment back to the region; returns how
    /// many slabs were destroyed.
    pub(crate) fn destroy_empty(&mut self) -> usize {
        let mut destroyed = 0;
        let mut s = self.head;
        while s != NIL {
            let next = self.slabs[s as usize].next;
            if self.slabs[s as usize].nfree == self.per_slab {
                self.unlink(s);
                self.slabs[s as usize].live = false;
                self.slabs[s as usize].nfree = 0;
                if let Err(e) = self.region.free_segment(s) {
                    // Cannot happen: the slab owned this segment. Keep going
                    // rather than leak the rest.
                    tracing::error!(region = self.region.name(), seg = s, error = %e, "segment refused on slab destroy");
                }
                self.live_free -= self.per_slab as u64;
                self.live_slabs -= 1;
                self.stats.slab_destroy += 1;
                destroyed += 1;
            }
            s = next;
        }
        destroyed
    }

    /// Free objects: in live slabs plus all of every segment not yet a slab.
    pub(crate) fn free_objects(&self) -> u64 {
        let unused_segs = self.slabs.len() as u64 - self.live_slabs;
        self.live_free + unused_segs * self.per_slab as u64
    }

    /// Is object `obj` currently handed out by this layer?
    pub(crate) fn is_allocated(&self, obj: u32) -> bool {
        obj < self.obj_count && self.allocated[obj as usize / 64] & (1 << (obj % 64)) != 0
    }

    pub(crate) fn stats(&self) -> SlabStats {
        let mut st = self.stats;
        let empty = self
            .slabs
            .iter()
            .filter(|s| s.live && s.nfree == self.per_slab)
            .count() as u64;
        st.slab_empty = empty;
        st.slab_partial = self.live_slabs - empty;
        st
    }
}
