//! One object of a region, through the owner's view: the one place where
//! an object index becomes bytes.
//!
//! Metadata, buflets, slot descriptors, statistics, the schema and the
//! tunables are all fields at fixed offsets inside objects of some region.
//! Every read and write of such a field goes through [`Obj`], which checks
//! the object index against the region, the field against the object, the
//! field's alignment, and a write against the view's protection — so a
//! wrong index or offset is a [`RegionError`], never a stray access.
//!
//! Words are read and written with relaxed atomics: objects live in shared
//! memory that other threads (and, for user-visible regions, other
//! processes) may touch at any time, and an atomic access is the one kind
//! Rust defines for that. On x86-64 each is a plain `mov`. Integers are
//! little-endian, the layout every mapper reads.

use std::marker::PhantomData;
use std::sync::atomic::{fence, AtomicU16, AtomicU32, AtomicU64, Ordering};

use super::{Region, RegionError, RegionId, Result};

/// Object `index` of a region, borrowed from the region (whose owner view
/// stays mapped while the borrow lives).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Obj<'r> {
    /// First byte of the object in the owner's view.
    ptr: *mut u8,
    /// Bytes of the object.
    len: usize,
    /// Whether the owner's view may be written (not KREADONLY).
    writable: bool,
    region: RegionId,
    _view: PhantomData<&'r Region>,
}

/// A region's objects through the owner's view: the table an object index
/// is looked up in. `Copy` and small, so a per-packet loop takes it into
/// locals once and keeps it in registers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Objects<'r> {
    /// Start of the owner's view.
    base: *mut u8,
    obj_size: usize,
    count: u32,
    writable: bool,
    region: RegionId,
    _view: PhantomData<&'r Region>,
}

impl Region {
    /// The region's objects (none for a guard).
    #[inline]
    pub(crate) fn objects(&self) -> Objects<'_> {
        Objects {
            base: self.owner_view.as_ptr(),
            obj_size: self.geom.obj_size,
            count: if self.is_guard() {
                0
            } else {
                self.geom.obj_count
            },
            writable: self.owner_view.protection() == crate::sys::Protection::ReadWrite,
            region: self.id(),
            _view: PhantomData,
        }
    }

    /// Object `index`, or [`RegionError::ObjectOutOfRange`].
    #[inline]
    pub(crate) fn obj(&self, index: u32) -> Result<Obj<'_>> {
        self.objects().get(index)
    }
}

impl<'r> Objects<'r> {
    /// Object `index`, or [`RegionError::ObjectOutOfRange`].
    #[inline(always)]
    pub(crate) fn get(&self, index: u32) -> Result<Obj<'r>> {
        if index >= self.count {
            return Err(RegionError::ObjectOutOfRange {
                region: self.region,
                index,
                count: self.count,
            });
        }
        Ok(Obj {
            // Plain arithmetic, no access: index < obj_count, and
            // obj_count × obj_size ≤ the view's length.
            ptr: self.base.wrapping_add(index as usize * self.obj_size),
            len: self.obj_size,
            writable: self.writable,
            region: self.region,
            _view: PhantomData,
        })
    }
}

impl<'r> Obj<'r> {
    /// Bytes of the object.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The address of byte `off` (clamped to the object), for a prefetch
    /// hint: an address only, never read or written through.
    #[inline(always)]
    pub(crate) fn addr(&self, off: usize) -> *const u8 {
        self.ptr.wrapping_add(off.min(self.len)).cast_const()
    }

    /// The address of `n` bytes at `off`, checked: inside the object,
    /// aligned to `align`, and writable when `write` is asked.
    #[inline(always)]
    fn at(&self, off: usize, n: usize, align: usize, write: bool) -> Result<*mut u8> {
        let inside = off.checked_add(n).is_some_and(|end| end <= self.len);
        if !inside {
            return Err(self.misuse("field outside the object"));
        }
        let p = self.ptr.wrapping_add(off);
        if !(p as usize).is_multiple_of(align) {
            return Err(self.misuse("field not aligned to its size"));
        }
        if write && !self.writable {
            return Err(self.misuse("the owner's view of this region is read-only"));
        }
        Ok(p)
    }

    fn misuse(&self, rule: &'static str) -> RegionError {
        RegionError::Misuse {
            region: self.region,
            rule,
        }
    }

    /// The `u16` at `off`.
    #[inline]
    pub(crate) fn store_u16(&self, off: usize, v: u16) -> Result<()> {
        let p = self.at(off, 2, 2, true)?;
        // SAFETY: `p..p+2` lies inside this object of the region's owner
        // view, which is mapped read-write while `'r` lives (the borrow of
        // the region), and is 2-aligned (all checked by `at`).
        unsafe { AtomicU16::from_ptr(p.cast()) }.store(v.to_le(), Ordering::Relaxed);
        Ok(())
    }

    /// The `u32` at `off`.
    #[inline]
    pub(crate) fn load_u32(&self, off: usize) -> Result<u32> {
        let p = self.at(off, 4, 4, false)?;
        // SAFETY: as in `store_u16`, readable and 4-aligned.
        Ok(u32::from_le(
            unsafe { AtomicU32::from_ptr(p.cast()) }.load(Ordering::Relaxed),
        ))
    }

    /// Writes the `u32` at `off`.
    #[inline]
    pub(crate) fn store_u32(&self, off: usize, v: u32) -> Result<()> {
        let p = self.at(off, 4, 4, true)?;
        // SAFETY: as in `store_u16`, 4-aligned.
        unsafe { AtomicU32::from_ptr(p.cast()) }.store(v.to_le(), Ordering::Relaxed);
        Ok(())
    }

    /// The `u64` at `off`.
    #[inline]
    pub(crate) fn load_u64(&self, off: usize) -> Result<u64> {
        let p = self.at(off, 8, 8, false)?;
        // SAFETY: as in `store_u16`, readable and 8-aligned.
        Ok(u64::from_le(
            unsafe { AtomicU64::from_ptr(p.cast()) }.load(Ordering::Relaxed),
        ))
    }

    /// Writes the `u64` at `off`.
    #[inline]
    pub(crate) fn store_u64(&self, off: usize, v: u64) -> Result<()> {
        let p = self.at(off, 8, 8, true)?;
        // SAFETY: as in `store_u16`, 8-aligned.
        unsafe { AtomicU64::from_ptr(p.cast()) }.store(v.to_le(), Ordering::Relaxed);
        Ok(())
    }

    /// Rewrites the object's first `bytes.len()` bytes under the sequence
    /// lock whose count is the `u64` at `seq` (inside `bytes`, which hold
    /// its new, even value): the count goes odd, the other words are
    /// written, the count takes its new value — so a reader that copies the
    /// bytes between two equal, even reads of the count has a whole copy
    /// (see [`crate::schema`]). Words are written with atomic stores: a
    /// concurrent reader races with nothing.
    pub(crate) fn publish(&self, seq: usize, bytes: &[u8]) -> Result<()> {
        if !bytes.len().is_multiple_of(8) || !seq.is_multiple_of(8) {
            return Err(self.misuse("a sequence-locked object is written in whole words"));
        }
        let word = |at: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(w)
        };
        let next = bytes
            .get(seq..seq + 8)
            .map(|_| word(seq))
            .filter(|n| n.is_multiple_of(2) && *n > 0)
            .ok_or_else(|| self.misuse("the sequence count must be even and inside the bytes"))?;
        // Checks the whole range once (inside, aligned, writable).
        self.at(0, bytes.len(), 8, true)?;
        self.store_u64(seq, next - 1)?;
        fence(Ordering::Release);
        for at in (0..bytes.len()).step_by(8).filter(|&at| at != seq) {
            self.store_u64(at, word(at))?;
        }
        let p = self.at(seq, 8, 8, true)?;
        // SAFETY: as in `store_u16`, 8-aligned; Release: the words above
        // are visible to whoever sees the new count.
        unsafe { AtomicU64::from_ptr(p.cast()) }.store(next.to_le(), Ordering::Release);
        Ok(())
    }

    /// Copies bytes of the object at `off` into `out`.
    ///
    /// A plain copy: for objects nobody writes meanwhile (the tests' view
    /// of an object; the library reads under sequence locks or by words).
    #[cfg(test)]
    pub(crate) fn read(&self, off: usize, out: &mut [u8]) -> Result<()> {
        let p = self.at(off, out.len(), 1, false)?;
        // SAFETY: `p..p+len` lies inside this object of the readable owner
        // view (checked by `at`); `out` is a separate Rust slice, so the
        // ranges do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    /// Sets every byte of the object to `byte`.
    pub(crate) fn fill(&self, byte: u8) -> Result<()> {
        let p = self.at(0, self.len, 1, true)?;
        // SAFETY: the whole object, in the writable owner view (`at`).
        unsafe { std::ptr::write_bytes(p, byte, self.len) };
        Ok(())
    }

    /// `n` bytes at `off` as a slice.
    ///
    /// # Safety
    /// Nobody may write those bytes while the slice lives: the caller holds
    /// the object (an owning token, a `&mut` of its holder) for `'a`.
    #[inline(always)]
    pub(crate) unsafe fn slice<'a>(&self, off: usize, n: usize) -> Result<&'a [u8]>
    where
        'r: 'a,
    {
        let p = self.at(off, n, 1, false)?;
        // SAFETY: inside the object, readable and mapped for `'r` (`at`);
        // unchanged for `'a`: the caller's contract.
        Ok(unsafe { std::slice::from_raw_parts(p, n) })
    }

    /// `n` bytes at `off` as a mutable slice.
    ///
    /// # Safety
    /// Nobody else may read or write those bytes while the slice lives:
    /// the caller holds the object exclusively for `'a`.
    #[inline(always)]
    pub(crate) unsafe fn slice_mut<'a>(&self, off: usize, n: usize) -> Result<&'a mut [u8]>
    where
        'r: 'a,
    {
        let p = self.at(off, n, 1, true)?;
        // SAFETY: inside the object, writable and mapped for `'r` (`at`);
        // exclusive for `'a`: the caller's contract.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, n) })
    }
}

#[cfg(test)]
mod tests {
    use crate::region::RegionError;
    use crate::region::{Region, RegionFlags, RegionId, RegionParams};

    fn region(flags: Option<RegionFlags>) -> std::sync::Arc<Region> {
        let mut p = RegionParams::new(RegionId::Kmd, 64, 16);
        if let Some(f) = flags {
            p = p.with_flags(f);
        }
        Region::create("obj-test", &p).unwrap()
    }

    #[test]
    fn words_round_trip_little_endian() {
        let r = region(None);
        let o = r.obj(3).unwrap();
        o.store_u32(4, 0x0102_0304).unwrap();
        o.store_u64(8, u64::MAX - 1).unwrap();
        o.store_u16(2, 0xbeef).unwrap();
        assert_eq!(o.load_u32(4).unwrap(), 0x0102_0304);
        assert_eq!(o.load_u64(8).unwrap(), u64::MAX - 1);
        let mut b = [0u8; 4];
        o.read(4, &mut b).unwrap();
        assert_eq!(b, [4, 3, 2, 1]);
        // Object 3 is at 3 × 64 bytes in the owner's view.
        let mut other = [0u8; 4];
        r.obj(2).unwrap().read(4, &mut other).unwrap();
        assert_eq!(other, [0; 4], "a neighbour is untouched");
    }

    #[test]
    fn an_index_past_the_region_is_out_of_range() {
        let r = region(None);
        let count = r.geometry().obj_count;
        assert!(matches!(
            r.obj(count),
            Err(RegionError::ObjectOutOfRange { index, .. }) if index == count
        ));
        assert!(r.obj(u32::MAX).is_err());
    }

    #[test]
    fn a_field_outside_the_object_or_misaligned_is_refused() {
        let r = region(None);
        let o = r.obj(0).unwrap();
        assert!(o.load_u32(61).is_err(), "ends past the object");
        assert!(o.load_u64(60).is_err());
        assert!(
            o.store_u32(usize::MAX - 1, 1).is_err(),
            "overflowing offset"
        );
        assert!(o.load_u32(2).is_err(), "misaligned");
        assert!(o.store_u64(4, 1).is_err(), "misaligned");
        assert!(o.read(0, &mut [0; 65]).is_err());
        // SAFETY: nobody else touches this region.
        assert!(unsafe { o.slice(1, 64) }.is_err());
        // SAFETY: as above.
        unsafe { o.slice_mut(60, 4) }.unwrap().fill(7);
        // SAFETY: as above.
        assert_eq!(unsafe { o.slice(60, 4) }.unwrap(), &[7; 4]);
    }

    #[test]
    fn a_publish_leaves_an_even_count_and_refuses_odd_or_ragged_input() {
        let r = region(None);
        let o = r.obj(1).unwrap();
        let mut bytes = [0u8; 32];
        bytes[8..16].copy_from_slice(&4u64.to_le_bytes());
        bytes[16] = 9;
        o.publish(8, &bytes).unwrap();
        assert_eq!(o.load_u64(8).unwrap(), 4);
        assert_eq!(o.load_u64(16).unwrap(), 9);
        bytes[8] = 5;
        assert!(o.publish(8, &bytes).is_err(), "an odd count");
        assert!(o.publish(8, &bytes[..12]).is_err(), "not whole words");
        assert!(o.publish(32, &bytes).is_err(), "the count outside");
        assert_eq!(o.load_u64(8).unwrap(), 4, "nothing written");
    }

    #[test]
    fn a_read_only_owner_view_refuses_writes() {
        let r = region(Some(
            RegionFlags::template(RegionId::Kmd) | RegionFlags::KREADONLY,
        ));
        let o = r.obj(0).unwrap();
        assert_eq!(o.load_u32(0).unwrap(), 0);
        assert!(matches!(o.store_u32(0, 1), Err(RegionError::Misuse { .. })));
        assert!(o.fill(1).is_err());
        // SAFETY: nobody else touches this region.
        assert!(unsafe { o.slice_mut(0, 1) }.is_err());
        assert!(o.publish(0, &[2, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }
}
