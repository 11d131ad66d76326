//! The depot: full and empty magazines shared by all workers of a cache.
//!
//! Workers come here only when their own magazines run dry or overflow, so
//! one mutex (in [`super::Cache`]) is enough. The depot tracks the fewest full
//! magazines it held since the last reap — Bonwick's working-set minimum:
//! those magazines were never needed, so reap may give them back.

use super::magazine::Magazine;

#[derive(Debug)]
pub(crate) struct Depot {
    full: Vec<Magazine>,
    empty: Vec<Magazine>,
    /// Fewest full magazines since the last reap.
    full_min: usize,
    /// Times the lock was found taken.
    pub(crate) contention: u64,
}

impl Depot {
    /// A depot with `magazines` empty magazines of `rounds` each. The cache
    /// makes enough that the data path never allocates one.
    pub(crate) fn new(magazines: usize, rounds: usize) -> Self {
        Self {
            full: Vec::with_capacity(magazines),
            empty: (0..magazines).map(|_| Magazine::new(rounds)).collect(),
            full_min: 0,
            contention: 0,
        }
    }

    /// A full magazine, if any.
    pub(crate) fn take_full(&mut self) -> Option<Magazine> {
        let m = self.full.pop();
        self.full_min = self.full_min.min(self.full.len());
        m
    }

    /// Takes back a full magazine.
    pub(crate) fn put_full(&mut self, m: Magazine) {
        self.full.push(m);
    }

    /// An empty magazine, if any.
    pub(crate) fn take_empty(&mut self) -> Option<Magazine> {
        self.empty.pop()
    }

    /// Takes back an empty magazine.
    pub(crate) fn put_empty(&mut self, m: Magazine) {
        self.empty.push(m);
    }

    /// Empties every full magazine into `out`.
    pub(crate) fn drain_all(&mut self, out: &mut Vec<u32>) {
        while let Some(mut m) = self.full.pop() {
            out.extend_from_slice(m.drain());
            self.empty.push(m);
        }
        self.full_min = 0;
    }

    /// Empties the full magazines unused since the last reap into `out`,
    /// and starts a new working-set interval.
    pub(crate) fn reap(&mut self, out: &mut Vec<u32>) {
        for _ in 0..self.full_min.min(self.full.len()) {
            if let Some(mut m) = self.full.pop() {
                out.extend_from_slice(m.drain());
                self.empty.push(m);
            }
        }
        self.full_min = self.full.len();
    }

    /// (full magazines, empty magazines, working-set minimum, rounds held).
    pub(crate) fn counts(&self) -> (usize, usize, usize, usize) {
        let rounds = self.full.iter().map(Magazine::rounds).sum();
        (self.full.len(), self.empty.len(), self.full_min, rounds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A full magazine of `objs`, taken from and given back to `d`.
    fn fill(d: &mut Depot, objs: &[u32]) {
        let mut m = d.take_empty().expect("an empty magazine");
        m.load(objs);
        d.put_full(m);
    }

    #[test]
    fn reap_gives_back_only_the_full_magazines_unused_since_the_last() {
        let mut d = Depot::new(4, 2);
        fill(&mut d, &[1, 2]);
        fill(&mut d, &[3, 4]);
        fill(&mut d, &[5, 6]);
        let mut out = Vec::new();
        // A first reap only starts the interval: the minimum was 0.
        d.reap(&mut out);
        assert!(out.is_empty());
        assert_eq!(d.counts(), (3, 1, 3, 6));
        // One full magazine used and given back: two were never needed,
        // and two go (from the top: which ones does not matter).
        let m = d.take_full().expect("a full magazine");
        d.put_full(m);
        d.reap(&mut out);
        out.sort_unstable();
        assert_eq!(out, [3, 4, 5, 6]);
        assert_eq!(d.counts(), (1, 3, 1, 2));
        // Everything else on a purge, and every magazine is empty again.
        let mut rest = Vec::new();
        d.drain_all(&mut rest);
        assert_eq!(rest, [1, 2]);
        assert_eq!(d.counts(), (0, 4, 0, 0));
    }
}
