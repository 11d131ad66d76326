//! Helpers shared by skmem's integration tests.
#![allow(dead_code)]

pub mod schema;

/// Runs `touch` in a forked child and returns the signal that killed it,
/// or `None` if it exited normally. `touch` must only touch memory (the
/// child of a multi-threaded process may call nothing that locks).
pub fn signal_in_child(touch: impl FnOnce()) -> Option<i32> {
    // SAFETY: after fork the child runs only `touch` (memory accesses) and
    // async-signal-safe calls (setrlimit, _exit); the parent only waits.
    unsafe {
        let pid = libc::fork();
        assert!(pid >= 0, "fork failed");
        if pid == 0 {
            // No core file for the expected crash.
            let zero = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &zero);
            touch();
            libc::_exit(0);
        }
        let mut status = 0;
        assert_eq!(libc::waitpid(pid, &mut status, 0), pid);
        if libc::WIFSIGNALED(status) {
            Some(libc::WTERMSIG(status))
        } else {
            assert_eq!(libc::WEXITSTATUS(status), 0);
            None
        }
    }
}

/// Writes one byte at `p` the compiler cannot elide.
pub fn poke(p: *mut u8) {
    // SAFETY: deliberately possibly-invalid: only called in a forked child
    // (see `signal_in_child`) or on memory the caller knows is writable.
    unsafe { std::ptr::write_volatile(p, 0xAB) }
}

/// Reads one byte at `p` the compiler cannot elide.
pub fn peek(p: *const u8) -> u8 {
    // SAFETY: as for `poke`.
    unsafe { std::ptr::read_volatile(p) }
}
