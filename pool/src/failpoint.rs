//! Fault injection for creation paths, for tests: with the `failpoints`
//! feature (off in every build but the tests that ask for it), a test arms
//! a countdown with `fail_after`; every creation step calls `step`, and
//! the n-th one fails with [`Injected`] (`Error::Injected` to a caller). Tests prove with it that a
//! failure at any step releases everything built before it. Without the
//! feature a step is nothing at all.

/// The failure a test injected at a creation step (callers see ENOMEM,
/// as Skywalk answers any creation failure).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("injected failure at {step}")]
pub struct Injected {
    /// The step that failed.
    pub step: &'static str,
}

/// Result of a creation step.
pub type Result<T, E = Injected> = std::result::Result<T, E>;

#[cfg(feature = "failpoints")]
mod armed {
    use std::cell::Cell;

    use super::{Injected, Result};

    thread_local! {
        static COUNTDOWN: Cell<u32> = const { Cell::new(0) };
        static STEPS: Cell<u32> = const { Cell::new(0) };
    }

    /// Makes the `n`-th creation step from now (1-based) fail on this
    /// thread; 0 disarms.
    pub fn fail_after(n: u32) {
        COUNTDOWN.with(|c| c.set(n));
        STEPS.with(|s| s.set(0));
    }

    /// Creation steps passed on this thread since the last
    /// [`fail_after`].
    pub fn steps_taken() -> u32 {
        STEPS.with(|s| s.get())
    }

    /// One creation step named `name`: fails when the countdown reaches
    /// it.
    pub(crate) fn step(name: &'static str) -> Result<()> {
        STEPS.with(|s| s.set(s.get() + 1));
        COUNTDOWN.with(|c| match c.get() {
            0 => Ok(()),
            1 => {
                c.set(0);
                Err(Injected { step: name })
            }
            n => {
                c.set(n - 1);
                Ok(())
            }
        })
    }
}

#[cfg(feature = "failpoints")]
pub use armed::{fail_after, steps_taken};

/// One creation step named `name`: may fail (feature `failpoints`). The
/// core's own steps, and those of crates built on it (skmem-xdp's loader:
/// loading the program, attaching it, each XSKMAP insert), share the
/// countdown.
#[inline(always)]
pub fn step(name: &'static str) -> Result<()> {
    #[cfg(feature = "failpoints")]
    return armed::step(name);
    #[cfg(not(feature = "failpoints"))]
    {
        let _ = name;
        Ok(())
    }
}
