//! Builds the XDP program (`ebpf/`, crate `skmem-xdp-ebpf`) for
//! `bpfel-unknown-none` with aya-build and leaves the object in `OUT_DIR`,
//! where `src/lib.rs` embeds it with `include_bytes_aligned!`.
//!
//! Needs what `cargo xtask setup` installs: the `rust-src` component (core
//! is compiled for the BPF target) and `bpf-linker` on `PATH`. The inner
//! cargo runs on the stable toolchain with `RUSTC_BOOTSTRAP=1` (set only in
//! this script's environment, so only the inner build sees it) for
//! `-Z build-std=core`; its target directory is shared by every build of
//! one profile (see `share_inner_target_dir`).
//!
//! `AYA_BUILD_SKIP=1` skips the eBPF build (e.g. on a machine without
//! bpf-linker, to run clippy); the loader then embeds an empty object and
//! `XdpProgram::attach` fails with `XdpError::ObjectMissing`.

use std::env;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use aya_build::{Package, Toolchain};

/// The eBPF crate, and the file its object is copied to in `OUT_DIR`
/// (aya-build names it after the binary target).
const EBPF_PACKAGE: &str = "skmem-xdp-ebpf";
/// The observation programs' binary target in the same package (uprobes
/// and tracepoints), copied to `OUT_DIR` under this name.
const OBSERVE_BIN: &str = "skmem-observe";
/// The traffic generator's binary target (run with `BPF_PROG_TEST_RUN` in
/// live-frames mode), copied to `OUT_DIR` under this name.
const GEN_BIN: &str = "skmem-gen";

fn main() -> Result<()> {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").context("CARGO_MANIFEST_DIR")?);
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").context("OUT_DIR")?);
    let ebpf_dir = manifest_dir.join("ebpf");
    let common_dir = manifest_dir.join("common");

    // Rebuild only when the program or the layouts it shares change (not
    // on every edit of the loader). aya-build adds `ebpf/` itself; these
    // are the files of `ebpf/` and `common/` that the inner build reads.
    for path in [
        ebpf_dir.join("src"),
        ebpf_dir.join("Cargo.toml"),
        ebpf_dir.join("Cargo.lock"),
        ebpf_dir.join(".cargo"),
        common_dir.join("src"),
        common_dir.join("Cargo.toml"),
        manifest_dir.join("build.rs"),
    ] {
        println!("cargo:rerun-if-changed={}", path.display());
    }
    println!(
        "cargo:rustc-env=SKMEM_XDP_OBJECT={}",
        out_dir.join(EBPF_PACKAGE).display()
    );

    println!(
        "cargo:rustc-env=SKMEM_OBSERVE_OBJECT={}",
        out_dir.join(OBSERVE_BIN).display()
    );
    println!(
        "cargo:rustc-env=SKMEM_GEN_OBJECT={}",
        out_dir.join(GEN_BIN).display()
    );

    // aya-build reads the same variable and skips its build.
    println!("cargo:rerun-if-env-changed=AYA_BUILD_SKIP");
    let skip = matches!(
        env::var("AYA_BUILD_SKIP").as_deref(),
        Ok("1" | "true" | "TRUE" | "True")
    );
    if skip {
        // Leave an empty object so the crate compiles; the loader reports
        // it at run time.
        std::fs::write(out_dir.join(EBPF_PACKAGE), [])?;
        std::fs::write(out_dir.join(OBSERVE_BIN), [])?;
        std::fs::write(out_dir.join(GEN_BIN), [])?;
        println!("cargo:warning=AYA_BUILD_SKIP is set: skmem-xdp embeds no XDP program");
        return Ok(());
    }
    check_bpf_linker()?;
    share_inner_target_dir(&out_dir)?;

    // The inner cargo runs in `ebpf/`, which is its own workspace root (the
    // host workspace excludes it); aya-build runs cargo in our current
    // directory, so move there.
    env::set_current_dir(&ebpf_dir).with_context(|| format!("entering {}", ebpf_dir.display()))?;
    // `-Z build-std=core` on the stable toolchain. Only this process and the
    // inner cargo it spawns see the variable.
    env::set_var("RUSTC_BOOTSTRAP", "1");
    // aya-build turns every line the inner cargo prints into a warning, and
    // cargo replays them on every later build: keep the inner cargo quiet
    // (compiler warnings and errors still come through).
    env::set_var("CARGO_TERM_QUIET", "true");
    // The same toolchain the outer build uses (rustup sets this for the
    // processes of its proxies), so no nightly is needed.
    let toolchain = env::var("RUSTUP_TOOLCHAIN").unwrap_or_else(|_| "stable".to_owned());

    let root_dir = ebpf_dir.to_str().context("non-UTF-8 path to ebpf/")?;
    aya_build::build_ebpf(
        [Package {
            name: EBPF_PACKAGE,
            root_dir,
            ..Default::default()
        }],
        Toolchain::Custom(&toolchain),
    )
    .context("building the XDP program (run `cargo xtask setup` for rust-src and bpf-linker)")
}

/// aya-build gives every `OUT_DIR` its own inner target directory, and
/// `cargo build`, `check`, `clippy` and `test` of one profile often get
/// different `OUT_DIR`s (the build script's hash depends on the features
/// unified in each run), so each would compile `core` and the program from
/// scratch (~30 s, 300 MB). Make aya-build's directory a symlink to one
/// directory per profile, `target/<profile>/skmem-xdp-ebpf.target`; cargo's
/// own lock on it serialises concurrent inner builds. Left alone when
/// `OUT_DIR` does not have the usual `<profile>/build/<pkg>-<hash>/out`
/// shape.
fn share_inner_target_dir(out_dir: &Path) -> Result<()> {
    let mut up = out_dir.ancestors();
    let (Some(_out), Some(_pkg), Some(build), Some(profile)) =
        (up.next(), up.next(), up.next(), up.next())
    else {
        return Ok(());
    };
    if build.file_name() != Some("build".as_ref()) {
        return Ok(());
    }
    let shared = profile.join("skmem-xdp-ebpf.target");
    std::fs::create_dir_all(&shared).with_context(|| format!("creating {}", shared.display()))?;
    // The directory aya-build passes as `--target-dir`.
    let link = out_dir.join("aya-build").join("target").join(EBPF_PACKAGE);
    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => return Ok(()),
        Ok(_) => std::fs::remove_dir_all(&link)
            .with_context(|| format!("removing {}", link.display()))?,
        Err(_) => {}
    }
    if let Some(parent) = link.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::os::unix::fs::symlink(&shared, &link)
        .with_context(|| format!("linking {} to {}", link.display(), shared.display()))
}

/// Fails early, with the fix, when bpf-linker is not on `PATH`: the inner
/// build's own error ("linker `bpf-linker` not found") is buried in
/// warnings.
fn check_bpf_linker() -> Result<()> {
    let path = env::var_os("PATH").unwrap_or_default();
    let found = env::split_paths(&path).any(|dir| is_executable(&dir.join("bpf-linker")));
    if !found {
        bail!(
            "bpf-linker is not on PATH: run `cargo xtask setup` (it installs bpf-linker 0.13 \
             against the toolchain's LLVM), or set AYA_BUILD_SKIP=1 to build without the \
             XDP program"
        );
    }
    Ok(())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}
