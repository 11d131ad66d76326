//! Small helpers the layers share, kept here so that no layer has to
//! reach into another for them (the core's modules depend one way).

use std::sync::{Mutex, MutexGuard};

/// Takes `m`'s lock. A panic while holding one of the core's locks cannot
/// leave the protected state half-updated in a way later users could not
/// cope with, so a poisoned lock is simply taken over.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

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

/// The magazine size for objects of `obj_size` bytes: what a cache's
/// magazines hold, and what a region reserves per worker for them.
pub fn magazine_rounds_for(obj_size: usize) -> usize {
    ROUNDS_BY_SIZE
        .iter()
        .find(|&&(max, _)| obj_size <= max)
        .map_or(14, |&(_, rounds)| rounds)
}

/// Runs a loom model (the lock-free protocols' models: `cache::model`,
/// `channel::ring_model`) over every interleaving with at most three
/// preemptions, so the search ends in seconds; returns how many it ran.
#[cfg(test)]
pub(crate) fn loom_explore(model: impl Fn() + Sync + Send + 'static) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let runs = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        counted.fetch_add(1, Ordering::Relaxed);
        model();
    });
    runs.load(Ordering::Relaxed)
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
}
