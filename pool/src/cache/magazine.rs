//! Magazines: fixed-capacity stacks of object indices (Bonwick & Adams 2001).
//!
//! A magazine is the unit objects move in between a worker and the depot.
//! Its capacity (rounds) is chosen by object size, after Skywalk's LP64
//! table: small objects are cheap to park, so they get bigger magazines.

pub use crate::util::magazine_rounds_for;

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
