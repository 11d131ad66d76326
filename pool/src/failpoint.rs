//! Fault injection for creation paths (tests only; costs a thread-local
//! read per creation step, nothing on the data path).
//!
//! A test arms a countdown with [`fail_after`]; every creation step calls
//! `step`, and the n-th one fails with [`Error::Injected`]. Tests prove
//! with it that a failure at any step releases everything built before it.

use std::cell::Cell;

use crate::error::{Error, Result};

thread_local! {
    static COUNTDOWN: Cell<u32> = const { Cell::new(0) };
    static STEPS: Cell<u32> = const { Cell::new(0) };
}

/// Makes the `n`-th creation step from now (1-based) fail on this thread;
/// 0 disarms.
#[doc(hidden)]
pub fn fail_after(n: u32) {
    COUNTDOWN.with(|c| c.set(n));
    STEPS.with(|s| s.set(0));
}

/// Creation steps passed on this thread since the last [`fail_after`].
#[doc(hidden)]
pub fn steps_taken() -> u32 {
    STEPS.with(|s| s.get())
}

/// One creation step named `name`: fails when the countdown reaches it.
pub(crate) fn step(name: &'static str) -> Result<()> {
    STEPS.with(|s| s.set(s.get() + 1));
    COUNTDOWN.with(|c| match c.get() {
        0 => Ok(()),
        1 => {
            c.set(0);
            Err(Error::Injected { step: name })
        }
        n => {
            c.set(n - 1);
            Ok(())
        }
    })
}
