//! The core library builds where the eBPF toolchain is not: what someone
//! who runs `cargo add skmem` gets. `cargo xtask test` proves it twice:
//! the dependency tree holds none of the eBPF or benchmark crates, and a
//! build of `skmem` alone succeeds with no `bpf-linker` reachable.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::cmd;

/// Crates that must not be in the core's tree: the aya loader and its
/// build (bpf-linker, rust-src), and the benchmarks' peers (bindgen,
/// clang, libpcap, a C compiler).
const NOT_IN_THE_CORE: &[&str] = &["aya", "aya-build", "aya-obj", "xsk-rs", "cc", "bindgen"];

/// The crate names in `cargo tree --prefix none` output.
fn crate_names(tree: &str) -> Vec<&str> {
    tree.lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect()
}

/// `PATH` without any directory that holds a `bpf-linker`.
fn path_without_bpf_linker() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let kept: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("bpf-linker").exists())
        .collect();
    std::env::join_paths(kept).unwrap_or_default()
}

/// Runs both checks.
pub fn check() -> Result<()> {
    for features in [&[][..], &["--no-default-features"][..]] {
        let mut tree = cmd::cargo([
            "tree",
            "-p",
            "skmem",
            "-e",
            "normal,build",
            "--prefix",
            "none",
        ]);
        tree.args(features);
        let out = cmd::stdout_of(&mut tree).context("`cargo tree -p skmem` failed")?;
        let names = crate_names(&out);
        if names.is_empty() {
            bail!("`cargo tree -p skmem` listed nothing");
        }
        let found: Vec<&&str> = NOT_IN_THE_CORE
            .iter()
            .filter(|c| names.contains(c))
            .collect();
        if !found.is_empty() {
            bail!("skmem {features:?} depends on {found:?}: the core must build without them");
        }
        println!(
            "ok: skmem {} has {} crates, none of {NOT_IN_THE_CORE:?}",
            if features.is_empty() {
                "(default features)"
            } else {
                "--no-default-features"
            },
            names.len()
        );
    }
    // Fault injection is for tests: a plain build of skmem (and of
    // skmemctl, which users run) leaves it out.
    for package in ["skmem", "skmem-tools"] {
        let mut tree = cmd::cargo([
            "tree",
            "-p",
            package,
            "-e",
            "normal,build,features",
            "-i",
            "skmem",
            "--prefix",
            "none",
        ]);
        let out = cmd::stdout_of(&mut tree).context("`cargo tree -e features` failed")?;
        if out.contains("skmem feature \"failpoints\"") {
            bail!("a plain build of {package} compiles skmem's failpoints in");
        }
    }
    println!("ok: plain builds of skmem and skmemctl have no failpoints");
    crate::cycles::check(cmd::workspace_root())?;
    // The toolchain's own cargo and rustc, by absolute path: the rustup
    // proxies live beside bpf-linker in ~/.cargo/bin, which goes.
    let cargo = std::env::var_os("CARGO").context("CARGO is not set (run through cargo xtask)")?;
    let bin = Path::new(&cargo)
        .parent()
        .context("CARGO has no directory")?
        .to_owned();
    let path = path_without_bpf_linker();
    if std::env::split_paths(&path).any(|d| d.join("bpf-linker").exists()) {
        bail!("bpf-linker is still reachable");
    }
    let mut build = cmd::cargo(["build", "-p", "skmem", "--no-default-features", "--lib"]);
    build
        .env("PATH", &path)
        .env("RUSTC", bin.join("rustc"))
        .env_remove("RUSTC_WRAPPER");
    cmd::run("building skmem without bpf-linker on PATH", &mut build)?;
    println!("ok: skmem builds with no bpf-linker on PATH");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crate_names_are_the_first_word_of_each_line() {
        let tree = "skmem v0.1.0 (/work/pool)\nbitflags v2.13.2\nserde v1.0.1 (*)\n";
        assert_eq!(crate_names(tree), ["skmem", "bitflags", "serde"]);
        assert!(!crate_names(tree).contains(&"aya"));
    }
}
