//! Magazines: fixed-capacity stacks of object indices (Bonwick & Adams 2001).
//!
//! A magazine is the unit objects move in between a worker and the depot.
//! Its capacity (rounds) is chosen by object size, after Skywalk's LP64
//! table: small objects are cheap to park, so they get bigger magazines.

/// Skywalk's magazine sizes (rounds) on LP64, with the largest object size
/// each is used for.
const ROUNDS_BY_SIZE: &[(usize, usize)] = &[
    (128, 158),
    (256, 142),
    (512, 126),
    (1024, 94),
    (2048, 62),
    (4096, 46),
    (8192, 30),
];

/// The magazine size for objects of `obj_size` bytes.
pub fn magazine_rounds_for(obj_size: usize) -> usize {
    ROUNDS_BY_SIZE
        .iter()
        .find(|&&(max, _)| obj_size <= max)
        .map_or(14, |&(_, rounds)| rounds)
}

/// A stack of up to `capacity` object indices.
#[derive(Debug)]
pub(crate) struct Magazine {
    rounds: usize,
    objs: Box<[u32]>,
}

impl Magazine {
    /// An empty magazine. Allocated when the cache is created, never on the
    /// data path.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            rounds: 0,
            objs: vec![0; capacity].into_boxed_slice(),
        }
    }

    #[inline(always)]
    pub(crate) fn rounds(&self) -> usize {
        self.rounds
    }

    #[inline(always)]
    pub(crate) fn is_empty(&self) -> bool {
        self.rounds == 0
    }

    #[inline(always)]
    pub(crate) fn is_full(&self) -> bool {
        self.rounds == self.objs.len()
    }

    #[inline(always)]
    pub(crate) fn pop(&mut self) -> Option<u32> {
        if self.rounds == 0 {
            return None;
        }
        self.rounds -= 1;
        Some(self.objs[self.rounds])
    }

    /// Pushes `obj`; gives it back when full.
    #[inline(always)]
    pub(crate) fn push(&mut self, obj: u32) -> Result<(), u32> {
        if self.rounds == self.objs.len() {
            return Err(obj);
        }
        self.objs[self.rounds] = obj;
        self.rounds += 1;
        Ok(())
    }

    /// Moves as many rounds as fit from the top of the magazine into `out`;
    /// returns how many.
    #[inline(always)]
    pub(crate) fn pop_into(&mut self, out: &mut [u32]) -> usize {
        let n = out.len().min(self.rounds);
        let start = self.rounds - n;
        out[..n].copy_from_slice(&self.objs[start..self.rounds]);
        self.rounds = start;
        n
    }

    /// Pushes as many of `objs` as fit; returns how many.
    #[inline(always)]
    pub(crate) fn push_from(&mut self, objs: &[u32]) -> usize {
        let n = objs.len().min(self.objs.len() - self.rounds);
        self.objs[self.rounds..self.rounds + n].copy_from_slice(&objs[..n]);
        self.rounds += n;
        n
    }

    /// The rounds, for returning them elsewhere; leaves the magazine empty.
    pub(crate) fn drain(&mut self) -> &[u32] {
        let n = self.rounds;
        self.rounds = 0;
        &self.objs[..n]
    }

    /// Room for this many more rounds.
    #[inline(always)]
    pub(crate) fn room(&self) -> usize {
        self.objs.len() - self.rounds
    }

    /// Fills the free part of the magazine through `fill`, which writes into
    /// the slice it is given and returns how many it wrote.
    pub(crate) fn fill_with(&mut self, fill: impl FnOnce(&mut [u32]) -> usize) -> usize {
        let n = fill(&mut self.objs[self.rounds..]);
        self.rounds += n;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_shrink_as_objects_grow() {
        assert_eq!(magazine_rounds_for(64), 158);
        assert_eq!(magazine_rounds_for(2048), 62);
        assert_eq!(magazine_rounds_for(1 << 20), 14);
        let sizes: Vec<_> = [64, 256, 512, 1024, 2048, 4096, 8192, 9000]
            .iter()
            .map(|&s| magazine_rounds_for(s))
            .collect();
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]));
    }

    #[test]
    fn stack_order_and_bulk_moves() {
        let mut m = Magazine::new(4);
        assert!(m.is_empty());
        assert_eq!(m.push_from(&[1, 2, 3, 4, 5]), 4);
        assert!(m.is_full());
        assert_eq!(m.push(9), Err(9));
        assert_eq!(m.pop(), Some(4));
        let mut out = [0; 8];
        assert_eq!(m.pop_into(&mut out), 3);
        assert_eq!(&out[..3], &[1, 2, 3]);
        assert_eq!(m.pop(), None);
        assert_eq!(
            m.fill_with(|s| {
                s[..2].copy_from_slice(&[7, 8]);
                2
            }),
            2
        );
        assert_eq!(m.drain(), &[7, 8]);
        assert_eq!(m.room(), 4);
    }
}
