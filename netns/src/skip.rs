//! When the harness's tests cannot run here — and whether they may skip.
//!
//! They need root and iproute2. Without them a test skips, saying why —
//! unless [`NO_SKIP_ENV`] is set (`cargo xtask test`, which CI runs as
//! root, sets it), when it fails instead: a run meant to exercise
//! everything cannot pass by skipping.

use std::process::Command;

use crate::sys;

/// Why the harness's tests cannot run here, or `None` when they can:
/// they need root (`CAP_SYS_ADMIN`, `CAP_NET_ADMIN`, `CAP_NET_RAW`) and
/// iproute2's `ip`. Computed once per process.
pub fn skip_reason() -> Option<String> {
    static REASON: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    REASON
        .get_or_init(|| {
            let euid = sys::geteuid();
            if euid != 0 {
                return Some(format!(
                    "needs root to create network namespaces (euid {euid})"
                ));
            }
            match Command::new("ip").arg("-V").output() {
                Ok(o) if o.status.success() => None,
                Ok(o) => Some(format!(
                    "`ip -V` failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )),
                Err(e) => Some(format!("iproute2 `ip` not runnable: {e}")),
            }
        })
        .clone()
}

/// Set (by `cargo xtask test`, which CI runs as root) to make every test
/// that would skip fail instead: a run that was meant to exercise
/// everything cannot pass by skipping.
pub const NO_SKIP_ENV: &str = "SKMEM_TEST_NO_SKIP";

/// A test at `place` cannot run here for `reason`: says so on stderr —
/// or, when [`NO_SKIP_ENV`] is set, fails (panics) saying so.
pub fn skip(place: &str, reason: &str) {
    skip_unless_forbidden(std::env::var_os(NO_SKIP_ENV).is_some(), place, reason);
}

/// [`skip`], told whether skipping is forbidden.
fn skip_unless_forbidden(forbidden: bool, place: &str, reason: &str) {
    if forbidden {
        panic!("{place}: would skip ({reason}), but {NO_SKIP_ENV} says this run may not skip");
    }
    eprintln!("SKIPPED {place}: {reason}");
}

/// Returns early from the calling test (printing why) when the harness
/// cannot run here; see [`skip_reason`] and [`skip`] (which fails instead
/// where skipping is not allowed). `require_root!()` returns `()`,
/// `require_root!(value)` returns `value` (e.g. `Ok(())`).
#[macro_export]
macro_rules! require_root {
    () => {
        $crate::require_root!(())
    };
    ($ret:expr) => {
        if let Some(reason) = $crate::skip_reason() {
            $crate::skip(concat!(file!(), ":", line!()), &reason);
            return $ret;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skip_says_why_and_fails_where_skipping_is_forbidden() {
        skip_unless_forbidden(false, "here", "not root");
        let r = std::panic::catch_unwind(|| skip_unless_forbidden(true, "here", "not root"));
        let msg = r.unwrap_err();
        let msg = msg.downcast_ref::<String>().unwrap();
        assert!(
            msg.contains("not root") && msg.contains(NO_SKIP_ENV),
            "{msg}"
        );
    }
}
