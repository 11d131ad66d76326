//! `cargo xtask sanitize`: the core's tests under AddressSanitizer (with
//! LeakSanitizer), and its pure parts under Miri.
//!
//! AddressSanitizer needs `-Zsanitizer=address`, a nightly flag; the stable
//! toolchain carries the runtime, and `RUSTC_BOOTSTRAP=1` lets it take the
//! flag, so this runs on the one toolchain CI has. The build goes to its
//! own target directory (`target/sanitize-address`) and only the target is
//! instrumented (`--target`), not build scripts. Leaks fail the run
//! (`detect_leaks=1`), as does any invalid access.
//!
//! Miri interprets the tests that need no system call — the schema codec,
//! the hand-over messages, the tunables, the magazine and depot logic, the
//! ring index arithmetic on memory of its own — and fails on undefined
//! behaviour. It needs a nightly toolchain with the `miri` component; where
//! there is none, `sanitize` says how to add it and skips Miri.

use std::process::Command;

use anyhow::{bail, Result};

use crate::cmd;

/// The host triple: a `--target` keeps the sanitizer flags off build
/// scripts and proc macros.
pub const TRIPLE: &str = "x86_64-unknown-linux-gnu";

/// Builds `cargo`'s target (give it `--target TRIPLE`) with
/// AddressSanitizer on top of `rustflags`: the flag the stable toolchain
/// takes with `RUSTC_BOOTSTRAP=1`, and frame pointers for whole stacks.
pub fn with_address_sanitizer(cargo: &mut Command, rustflags: &str) {
    cargo.env("RUSTC_BOOTSTRAP", "1").env(
        "RUSTFLAGS",
        format!("{rustflags} -Zsanitizer=address -Cforce-frame-pointers=yes"),
    );
}

/// The unit tests Miri runs: those of the pure parts (test-name filters).
const MIRI_TESTS: &[&str] = &[
    "schema::",
    "lend::wire::",
    "sysctls::tests",
    "cache::magazine::",
    "cache::depot::",
    // The per-call fast path's entry step (the purge one needs membarrier).
    "cache::worker::tests",
    "channel::ring::tests",
    "error::tests",
];

/// The core's unit and integration tests under AddressSanitizer and
/// LeakSanitizer.
pub fn address(tally: &mut cmd::Tally) -> Result<()> {
    let target_dir = cmd::workspace_root()
        .join("target")
        .join("sanitize-address");
    let mut cargo = cmd::cargo([
        "test",
        "-p",
        "skmem",
        "--features",
        "failpoints",
        "--lib",
        "--tests",
        "--target",
        TRIPLE,
    ]);
    cargo
        .arg("--target-dir")
        .arg(&target_dir)
        // Tests fault on purpose — a guard page, a redirected or read-only
        // mapping touched in a child process that must die of SIGSEGV or
        // SIGBUS — so those signals stay the kernel's, not ASan's.
        .env(
            "ASAN_OPTIONS",
            "detect_leaks=1:abort_on_error=1:handle_segv=0:handle_sigbus=0",
        )
        .env("SKMEM_TEST_NO_SKIP", "1");
    with_address_sanitizer(&mut cargo, "");
    cmd::run_tallying("the core's tests under AddressSanitizer", &mut cargo, tally)
}

/// Is there a nightly toolchain with Miri?
fn miri_available() -> bool {
    cmd::stdout_of(
        std::process::Command::new("cargo")
            .args(["+nightly", "miri", "--version"])
            .env_remove("RUSTUP_TOOLCHAIN"),
    )
    .is_some()
}

/// The pure parts' unit tests under Miri; `Ok(false)` when no nightly
/// toolchain has Miri.
pub fn miri(tally: &mut cmd::Tally) -> Result<bool> {
    if !miri_available() {
        println!(
            "Miri: no nightly toolchain with Miri here; add one with \
             `rustup toolchain install nightly --component miri` and run \
             `cargo xtask sanitize` again"
        );
        return Ok(false);
    }
    for filter in MIRI_TESTS {
        let mut cargo = std::process::Command::new("cargo");
        cargo
            .args(["+nightly", "miri", "test", "-p", "skmem", "--lib", "--"])
            .arg(filter)
            // The dev-dependency skmem-xdp would build its eBPF objects,
            // which Miri cannot; the pure tests need none.
            .env("AYA_BUILD_SKIP", "1")
            .env_remove("RUSTUP_TOOLCHAIN")
            .current_dir(cmd::workspace_root());
        cmd::run_tallying(&format!("Miri on {filter}"), &mut cargo, tally)?;
    }
    Ok(true)
}

/// `cargo xtask sanitize`: both, then one line of what ran.
pub fn run(skip_miri: bool) -> Result<()> {
    let mut asan = cmd::Tally::default();
    address(&mut asan)?;
    let mut miri_tally = cmd::Tally::default();
    let ran_miri = !skip_miri && miri(&mut miri_tally)?;
    println!(
        "sanitize: AddressSanitizer + LeakSanitizer: {} tests passed, {} failed",
        asan.passed, asan.failed
    );
    if ran_miri {
        println!(
            "sanitize: Miri: {} tests passed, {} failed",
            miri_tally.passed, miri_tally.failed
        );
    }
    if asan.failed + miri_tally.failed > 0 {
        bail!("sanitizer findings (above)");
    }
    Ok(())
}
