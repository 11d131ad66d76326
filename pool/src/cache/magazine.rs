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

/// A stack of up to `capacity` object indices. The depot moves them whole:
/// a magazine is either full or empty while it sits there.
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

    /// How many objects it holds.
    pub(crate) fn rounds(&self) -> usize {
        self.rounds
    }

    /// Loads it with `objs` (it must be empty and `objs` no longer than its
    /// capacity).
    pub(crate) fn load(&mut self, objs: &[u32]) {
        debug_assert_eq!(self.rounds, 0);
        self.objs[..objs.len()].copy_from_slice(objs);
        self.rounds = objs.len();
    }

    /// Hands out every round, leaving it empty.
    pub(crate) fn drain(&mut self) -> &[u32] {
        let n = self.rounds;
        self.rounds = 0;
        &self.objs[..n]
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
    fn load_and_drain() {
        let mut m = Magazine::new(4);
        assert_eq!(m.rounds(), 0);
        m.load(&[1, 2, 3]);
        assert_eq!(m.rounds(), 3);
        assert_eq!(m.drain(), &[1, 2, 3]);
        assert_eq!(m.rounds(), 0);
        assert_eq!(m.drain(), &[] as &[u32]);
    }
}
