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
