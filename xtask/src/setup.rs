//! `cargo xtask setup`: install what the build and the tests need.
//!
//! CI runs on a fresh clone of a Debian 12 machine that may have none of it,
//! and nothing installed by hand survives a change of machine, so the
//! project's own code must install everything. Each item is checked first
//! and installed only when absent, so a second run is a quick no-op that
//! prints one `ok:` line per item.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cmd;

/// What a setup is for: each job installs what it needs and no more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Job {
    /// `cargo xtask demo`: build skmemctl (with the eBPF program) and run
    /// the demo.
    Demo,
    /// `cargo xtask test`: the whole workspace, its peers and every test.
    Test,
    /// `cargo xtask setup` and `bench`: everything, profiling tools too.
    All,
}

/// Debian packages, each with the first job that needs it (every later job
/// needs it too); a missing one fails setup.
const PACKAGES: &[(&str, Job)] = &[
    // `ip netns` and veth pairs: the demo and the network-namespace tests
    // build their topology with it.
    ("iproute2", Job::Demo),
    // Per-queue XDP counters (`ethtool -S`) that tests and the demo read.
    ("ethtool", Job::Demo),
    // Needed by the bundled libxdp build of xsk-rs (the comparison peer).
    ("m4", Job::Test),
    // xsk-rs builds its bundled libxdp with clang and bindgen (libclang).
    ("clang", Job::Test),
    ("libclang-dev", Job::Test),
    // libbpf/libxdp builds link libelf and zlib and find them via pkg-config.
    ("libelf-dev", Job::Test),
    ("zlib1g-dev", Job::Test),
    ("pkg-config", Job::Test),
    // xsk-rs's bundled libxdp includes <pcap/dlt.h>.
    ("libpcap-dev", Job::Test),
    // The libxdp C peer of the pps harness (bench/csrc, built by
    // bench/build.rs) links Debian's libxdp and libbpf.
    ("libxdp-dev", Job::Test),
    ("libbpf-dev", Job::Test),
    // Ordinary traffic beside AF_XDP in the `fwd --filter` test: ping
    // and an HTTP transfer across the veth reach the kernel stack.
    ("iputils-ping", Job::Test),
    ("curl", Job::Test),
    // A terminal of a chosen width for the demo's live-view test.
    ("tmux", Job::Test),
    // libFuzzer (C++), built by libfuzzer-sys for the fuzz targets.
    ("g++", Job::Test),
];

/// Debian packages that are nice to have: if one cannot be installed (e.g.
/// its name differs on this release), setup only warns, and records it so
/// that later runs do not try again (see [`UNAVAILABLE`]).
const OPTIONAL_PACKAGES: &[(&str, Job)] = &[
    // DPDK 22.11 peers: `dpdk-testpmd` with net_af_xdp in the pps harness,
    // `dpdk-test` (mempool_perf_autotest) beside the pool benchmark. Both
    // are skipped with a message when absent.
    ("dpdk", Job::Test),
    ("dpdk-dev", Job::Test),
    // `perf` for profiling the benchmarks; nothing in CI depends on it.
    ("linux-perf", Job::All),
];

/// Where setup records optional packages that could not be installed, one
/// name a line (under the workspace's `target/`, so `cargo clean` retries).
const UNAVAILABLE: &str = "target/xtask/optional-packages-unavailable";

/// The bpf-linker release the eBPF crate is built with. Newer releases need
/// a newer Rust; older ones do not know the toolchain's LLVM.
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The Rust release skmem is tested on (rust-toolchain.toml names the
/// channel, `stable`: see the comment there).
const TESTED_RUST: &str = "1.95.";

/// What `bpf-linker --version` must start with to count as installed.
const BPF_LINKER_VERSION_PREFIX: &str = "bpf-linker 0.13";

/// The LLVM major version bpf-linker is built against: it must be the one
/// the Rust toolchain ships, since bpf-linker links the toolchain's libLLVM
/// (Debian 12 has no LLVM 22 of its own).
const BPF_LINKER_LLVM_MAJOR: u32 = 22;

/// A pseudo filesystem the eBPF tests need mounted.
struct Mount {
    /// Where it must be mounted.
    target: &'static str,
    /// Its type as `/proc/mounts` names it (and `mount -t` takes it).
    fstype: &'static str,
    /// The source argument for `mount`.
    source: &'static str,
}

const MOUNTS: &[Mount] = &[
    // bpffs: pinning maps and programs so tests can inspect them.
    Mount {
        target: "/sys/fs/bpf",
        fstype: "bpf",
        source: "bpf",
    },
    // tracefs: tracepoints (xdp:*, syscalls:*) and uprobes attach through it.
    Mount {
        target: "/sys/kernel/tracing",
        fstype: "tracefs",
        source: "nodev",
    },
];

/// Checks every item `job` needs and installs what is missing.
pub fn run(job: Job) -> Result<()> {
    let started = Instant::now();
    let root = is_root();
    if !root {
        println!(
            "note: not running as root: missing Debian packages and mounts are \
             reported but not installed (run `sudo cargo xtask setup`)"
        );
    }
    debian_packages(root, job)?;
    rust_src()?;
    bpf_linker()?;
    mounts(root)?;
    println!("setup done in {:.2} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// True when the effective user is root, read from `/proc/self/status` so no
/// libc binding is needed for one number.
fn is_root() -> bool {
    let Ok(status) = fs::read_to_string("/proc/self/status") else {
        return false;
    };
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        // Fields are real, effective, saved, filesystem uid.
        .and_then(|uids| uids.split_whitespace().nth(1))
        == Some("0")
}

/// The packages of `list` that `job` needs.
fn for_job(list: &[(&'static str, Job)], job: Job) -> Vec<&'static str> {
    list.iter()
        .filter(|(_, first)| *first <= job)
        .map(|(name, _)| *name)
        .collect()
}

/// The workspace root (xtask lives one level below it).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Optional packages an earlier run could not install.
fn unavailable() -> Vec<String> {
    fs::read_to_string(workspace_root().join(UNAVAILABLE))
        .map(|s| s.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Installs the missing packages of [`PACKAGES`] and [`OPTIONAL_PACKAGES`]
/// that `job` needs.
fn debian_packages(root: bool, job: Job) -> Result<()> {
    let packages = for_job(PACKAGES, job);
    if cmd::stdout_of(Command::new("dpkg-query").arg("--version")).is_none() {
        println!(
            "skipped: Debian packages (no dpkg-query: not a Debian system; \
             install the equivalents of {} by hand)",
            packages.join(", ")
        );
        return Ok(());
    }
    let required = missing_packages(&packages, "");
    // Optional packages an earlier run could not install are said once
    // more, not tried again (no `apt-get update` on every run for them).
    let known_unavailable = unavailable();
    let optional: Vec<&str> = missing_packages(&for_job(OPTIONAL_PACKAGES, job), " (optional)")
        .into_iter()
        .filter(|name| {
            let known = known_unavailable.iter().any(|u| u == name);
            if known {
                println!(
                    "skipped: optional package {name}: not installable on an earlier run \
                     (remove {UNAVAILABLE} to try again)"
                );
            }
            !known
        })
        .collect();
    if required.is_empty() && optional.is_empty() {
        return Ok(());
    }
    if !root {
        let all: Vec<&str> = required.iter().chain(&optional).copied().collect();
        println!(
            "skipped: installing Debian packages {} needs root",
            all.join(" ")
        );
        return Ok(());
    }
    // One `apt-get update` for both lists: it is the slow part, and a fresh
    // machine's package lists may be empty.
    cmd::run("apt-get update", &mut apt_get(&["update"]))?;
    if !required.is_empty() {
        apt_install(&required)?;
    }
    if !optional.is_empty() {
        // Separate from the required ones so that a missing optional package
        // cannot stop the required ones from installing.
        if let Err(err) = apt_install(&optional) {
            println!("warning: optional packages not installed: {err:#}");
            // Those still missing are recorded, not retried on every run.
            let still = missing_packages(&optional, " (optional)");
            let path = workspace_root().join(UNAVAILABLE);
            let mut all = unavailable();
            all.extend(still.iter().map(|s| (*s).to_owned()));
            if let Some(dir) = path.parent() {
                let _ = fs::create_dir_all(dir);
            }
            if let Err(e) = fs::write(&path, all.join("\n") + "\n") {
                println!("warning: could not record {}: {e}", path.display());
            }
        }
    }
    Ok(())
}

/// Prints one line per package and returns those not installed.
fn missing_packages(names: &[&'static str], note: &str) -> Vec<&'static str> {
    let mut missing = Vec::new();
    for &name in names {
        let status = cmd::stdout_of(Command::new("dpkg-query").args(["-W", "-f=${Status}", name]));
        // Anything else (absent, removed with config left, half-installed)
        // needs an install.
        if status.as_deref() == Some("install ok installed") {
            println!("ok: Debian package {name}{note}");
        } else {
            println!("installing: Debian package {name}{note}");
            missing.push(name);
        }
    }
    missing
}

/// `apt-get install` without prompts or recommended extras.
fn apt_install(names: &[&str]) -> Result<()> {
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(names);
    cmd::run(
        &format!("installing {}", names.join(" ")),
        &mut apt_get(&args),
    )
}

/// `apt-get -q ARGS` that never waits for an answer on stdin (CI has none).
fn apt_get(args: &[&str]) -> Command {
    let mut command = Command::new("apt-get");
    command
        .arg("-q")
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive");
    command
}

/// The eBPF crate is built for `bpfel-unknown-none`, which has no prebuilt
/// standard library: `core` is compiled from the toolchain's sources.
fn rust_src() -> Result<()> {
    let what = "rustup component rust-src";
    match cmd::stdout_of(Command::new("rustup").args(["component", "list", "--installed"])) {
        Some(list) if list.lines().any(|line| line.starts_with("rust-src")) => {
            println!("ok: {what}");
            Ok(())
        }
        Some(_) => {
            println!("installing: {what}");
            cmd::run(
                "installing rust-src",
                Command::new("rustup").args(["component", "add", "rust-src"]),
            )
        }
        None => {
            // No rustup (e.g. a distribution toolchain): accept sources
            // that are already in place, otherwise say what is missing.
            let src = sysroot()?.join("lib/rustlib/src/rust/library");
            if src.is_dir() {
                println!("ok: rust-src ({})", src.display());
                Ok(())
            } else {
                bail!(
                    "rust-src is missing ({} does not exist) and rustup is not \
                     available to install it",
                    src.display()
                )
            }
        }
    }
}

/// bpf-linker links the eBPF object; the version must match the toolchain.
fn bpf_linker() -> Result<()> {
    let what = format!("bpf-linker {BPF_LINKER_VERSION}");
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let release = cmd::stdout_of(Command::new(rustc).arg("-vV")).and_then(|v| {
        v.lines()
            .find_map(|l| l.strip_prefix("release: ").map(str::to_owned))
    });
    if let Some(r) = release.filter(|r| !r.starts_with(TESTED_RUST)) {
        println!(
            "note: rustc {r}; skmem is tested on {TESTED_RUST} (rust-toolchain.toml asks for \
             stable, which this machine's toolchain is)"
        );
    }
    let toolchain = toolchain_llvm();
    let mut force = false;
    if let Some(found) = find_bpf_linker() {
        let linked = linked_llvm(&found);
        match (&linked, &toolchain) {
            (Some(l), Some(t)) if same_llvm(l, t) => {
                println!("ok: {what} ({}, LLVM {l})", where_is(&found));
                return Ok(());
            }
            // Unknown either way: nothing says it is wrong.
            (_, None) => {
                println!("ok: {what} ({})", where_is(&found));
                return Ok(());
            }
            (_, Some(t)) => {
                println!(
                    "rebuilding: {what} loads LLVM {}, the toolchain has LLVM {t} \
                     (the toolchain changed since bpf-linker was built)",
                    linked.as_deref().unwrap_or("(none: its libLLVM is gone)")
                );
                force = true;
            }
        }
    } else {
        println!("installing: {what} (cargo install, about 70 s on 2 cores)");
    }
    install_bpf_linker(force)?;
    let Some(found) = find_bpf_linker() else {
        bail!(
            "bpf-linker was installed but `bpf-linker --version` still does not \
             print `{BPF_LINKER_VERSION_PREFIX}…`"
        );
    };
    println!("ok: {what} ({})", where_is(&found));
    if !on_path(&found) {
        println!(
            "note: {} is not on PATH; `cargo xtask` adds it for its own \
             commands, plain `cargo build` needs it added",
            found.parent().unwrap_or(&found).display()
        );
    }
    Ok(())
}

/// The first `bpf-linker` of the right version: on `PATH`, then in the cargo
/// bin dir (where `cargo install` puts it even if `PATH` lacks that dir).
fn find_bpf_linker() -> Option<PathBuf> {
    let candidates = std::iter::once(PathBuf::from("bpf-linker"))
        .chain(cmd::cargo_bin_dir().map(|dir| dir.join("bpf-linker")));
    candidates.into_iter().find(|program| {
        cmd::stdout_of(Command::new(program).arg("--version"))
            .is_some_and(|v| v.trim().starts_with(BPF_LINKER_VERSION_PREFIX))
    })
}

/// The LLVM `major.minor` the toolchain's rustc was built with, from
/// `rustc -vV` (`LLVM version: 22.1.2`).
fn toolchain_llvm() -> Option<String> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = cmd::stdout_of(Command::new(rustc).arg("-vV"))?;
    let version = out.lines().find_map(|l| l.strip_prefix("LLVM version: "))?;
    Some(version.split('.').take(2).collect::<Vec<_>>().join("."))
}

/// The LLVM version a bpf-linker binary loads: the one in the soname of
/// the libLLVM `ldd` resolves for it (`libLLVM.so.22.1-rust-1.95.0-stable`
/// gives `22.1`). `None` when ldd finds no libLLVM it can load.
fn linked_llvm(program: &Path) -> Option<String> {
    let path = if program.components().count() == 1 {
        std::env::split_paths(&std::env::var_os("PATH")?)
            .map(|d| d.join(program))
            .find(|p| p.is_file())?
    } else {
        program.to_owned()
    };
    llvm_of_ldd(&cmd::stdout_of(Command::new("ldd").arg(path))?)
}

/// What [`linked_llvm`] reads from ldd's output.
fn llvm_of_ldd(ldd: &str) -> Option<String> {
    let line = ldd.lines().find(|l| l.contains("libLLVM"))?;
    if line.contains("not found") {
        return None;
    }
    let name = line.split_whitespace().next()?;
    let version = name
        .strip_prefix("libLLVM.so.")
        .or_else(|| name.strip_prefix("libLLVM-"))?;
    Some(
        version
            .split('-')
            .next()?
            .trim_end_matches(".so")
            .to_owned(),
    )
}

/// Whether the LLVM bpf-linker loads is the toolchain's: equal, or the
/// same major when the soname names only that.
fn same_llvm(linked: &str, toolchain: &str) -> bool {
    linked == toolchain || toolchain.split('.').next() == Some(linked)
}

/// "on PATH" for a bare program name, else its full path.
fn where_is(program: &Path) -> String {
    if program.components().count() == 1 {
        "on PATH".to_string()
    } else {
        program.display().to_string()
    }
}

/// True if `program` is a bare name (found via `PATH`) or lies in a `PATH` dir.
fn on_path(program: &Path) -> bool {
    match program.parent() {
        None => true,
        Some(dir) if dir.as_os_str().is_empty() => true,
        Some(dir) => std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|p| p == dir)),
    }
}

/// Builds bpf-linker against the Rust toolchain's own libLLVM.
///
/// A plain `cargo install bpf-linker` fails with "unable to find library
/// -lLLVM": Debian 12 has no LLVM 22, and the toolchain ships its libLLVM
/// only under a versioned name. So we give the build an LLVM prefix whose
/// `lib/libLLVM.so` points at the toolchain's copy, and bake an rpath to
/// the sysroot into the binary so it still finds libLLVM once the prefix
/// is gone.
fn install_bpf_linker(force: bool) -> Result<()> {
    let sysroot = sysroot()?;
    let sysroot_lib = sysroot.join("lib");
    let libllvm = toolchain_libllvm(&sysroot_lib)?;

    let prefix = TempDir::new("xtask-llvm-prefix")?;
    let prefix_lib = prefix.path().join("lib");
    fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    std::os::unix::fs::symlink(&libllvm, prefix_lib.join("libLLVM.so")).with_context(|| {
        format!(
            "linking {} into {}",
            libllvm.display(),
            prefix_lib.display()
        )
    })?;

    let feature = format!("llvm-{BPF_LINKER_LLVM_MAJOR}");
    let mut install = cmd::cargo([
        "install",
        "bpf-linker",
        "--version",
        BPF_LINKER_VERSION,
        "--locked",
        "--no-default-features",
        "--features",
        &feature,
    ]);
    if force {
        install.arg("--force");
    }
    install
        .env("LLVM_PREFIX", prefix.path())
        // llvm-sys reads its own variable first; set both spellings the
        // 22.x series has used so it cannot pick some other LLVM.
        .env("LLVM_SYS_221_PREFIX", prefix.path())
        .env("LLVM_SYS_220_PREFIX", prefix.path())
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=-Wl,-rpath,{}", sysroot_lib.display()),
        )
        // Would take precedence over RUSTFLAGS and drop the rpath.
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    cmd::run("installing bpf-linker", &mut install)
}

/// The toolchain's libLLVM in `$sysroot/lib`, checked against the LLVM
/// version bpf-linker is built for.
fn toolchain_libllvm(sysroot_lib: &Path) -> Result<PathBuf> {
    let entries =
        fs::read_dir(sysroot_lib).with_context(|| format!("listing {}", sysroot_lib.display()))?;
    let mut names: Vec<String> = entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("libLLVM.so.") || name.starts_with("libLLVM-"))
        .collect();
    // Prefer `libLLVM.so.22.1-rust-…` (the soname) over `libLLVM-22-rust-….so`.
    names.sort_by_key(|name| (!name.starts_with("libLLVM.so."), name.clone()));
    let Some(name) = names.first() else {
        bail!(
            "no libLLVM.so.* or libLLVM-* in {}: this Rust toolchain does not \
             ship a shared libLLVM, so bpf-linker cannot be built against it",
            sysroot_lib.display()
        );
    };
    let major: Option<u32> = name
        .trim_start_matches("libLLVM.so.")
        .trim_start_matches("libLLVM-")
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|digits| digits.parse().ok());
    if major != Some(BPF_LINKER_LLVM_MAJOR) {
        bail!(
            "the Rust toolchain ships {name}, but bpf-linker {BPF_LINKER_VERSION} is \
             built here for LLVM {BPF_LINKER_LLVM_MAJOR}: update BPF_LINKER_VERSION \
             and BPF_LINKER_LLVM_MAJOR in xtask/src/setup.rs together with the toolchain"
        );
    }
    Ok(sysroot_lib.join(name))
}

/// `rustc --print sysroot`: where the toolchain keeps libLLVM and rust-src.
fn sysroot() -> Result<PathBuf> {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out = cmd::stdout_of(Command::new(rustc).args(["--print", "sysroot"]))
        .context("`rustc --print sysroot` failed")?;
    Ok(PathBuf::from(out.trim()))
}

/// Mounts bpffs and tracefs where they are missing.
fn mounts(root: bool) -> Result<()> {
    let table = fs::read_to_string("/proc/mounts").context("reading /proc/mounts")?;
    for mount in MOUNTS {
        let what = format!("{} on {}", mount.fstype, mount.target);
        // Fields: source, target, fstype, options, dump, pass.
        let present = table.lines().any(|line| {
            let mut fields = line.split_whitespace().skip(1);
            fields.next() == Some(mount.target) && fields.next() == Some(mount.fstype)
        });
        if present {
            println!("ok: {what}");
        } else if !root {
            println!("skipped: mounting {what} needs root");
        } else {
            println!("installing: {what} (mount)");
            cmd::run(
                &format!("mounting {what}"),
                Command::new("mount").args(["-t", mount.fstype, mount.source, mount.target]),
            )?;
        }
    }
    Ok(())
}

/// A directory under the system temp dir, removed (with its contents) on drop,
/// so a failed install does not leave the fake LLVM prefix behind.
struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Result<Self> {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", std::process::id()));
        // A leftover from a crashed run with the same pid is safe to replace.
        let _ = fs::remove_dir_all(&path);
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake `$sysroot/lib` holding empty files with the given names.
    fn fake_lib(files: &[&str]) -> TempDir {
        let dir = TempDir::new(&format!("xtask-test-lib-{}", files.join("+"))).unwrap();
        for name in files {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        dir
    }

    #[test]
    fn libllvm_soname_is_preferred_over_dashed_name() {
        let lib = fake_lib(&[
            "libLLVM-22-rust-1.95.0-stable.so",
            "libLLVM.so.22.1-rust-1.95.0-stable",
            "librustc_driver-0.so",
        ]);
        let found = toolchain_libllvm(lib.path()).unwrap();
        assert_eq!(
            found.file_name().unwrap(),
            "libLLVM.so.22.1-rust-1.95.0-stable"
        );
    }

    #[test]
    fn libllvm_dashed_name_is_accepted_alone() {
        let lib = fake_lib(&["libLLVM-22-rust-1.95.0-stable.so"]);
        assert!(toolchain_libllvm(lib.path()).is_ok());
    }

    #[test]
    fn libllvm_of_another_major_is_refused() {
        let lib = fake_lib(&["libLLVM.so.23.1-rust-1.99.0-stable"]);
        let err = toolchain_libllvm(lib.path()).unwrap_err().to_string();
        assert!(err.contains("BPF_LINKER_LLVM_MAJOR"), "{err}");
    }

    #[test]
    fn missing_libllvm_is_an_error() {
        let lib = fake_lib(&["librustc_driver-0.so"]);
        let err = toolchain_libllvm(lib.path()).unwrap_err().to_string();
        assert!(err.contains("no libLLVM"), "{err}");
    }

    #[test]
    fn the_llvm_bpf_linker_loads_is_read_from_ldd() {
        let ok = "\tlinux-vdso.so.1 (0x00007ffc)\n\tlibLLVM.so.22.1-rust-1.95.0-stable => \
                  /root/.rustup/toolchains/stable/lib/libLLVM.so.22.1-rust-1.95.0-stable (0x7f)\n";
        assert_eq!(llvm_of_ldd(ok).as_deref(), Some("22.1"));
        let dashed =
            "\tlibLLVM-21-rust-1.90.0-stable.so => /x/libLLVM-21-rust-1.90.0-stable.so (0x7f)\n";
        assert_eq!(llvm_of_ldd(dashed).as_deref(), Some("21"));
        // The toolchain it was built against was removed by an update.
        let gone = "\tlibLLVM.so.22.1-rust-1.95.0-stable => not found\n";
        assert_eq!(llvm_of_ldd(gone), None);
        assert_eq!(llvm_of_ldd("\tlibc.so.6 => /lib/libc.so.6\n"), None);
    }

    #[test]
    fn a_toolchain_with_another_llvm_means_a_rebuild() {
        assert!(same_llvm("22.1", "22.1"));
        assert!(same_llvm("22", "22.1"));
        assert!(!same_llvm("22.1", "22.2"));
        assert!(!same_llvm("21", "22.1"));
        assert!(toolchain_llvm().is_some_and(|v| v.contains('.')));
    }

    #[test]
    fn bare_program_name_counts_as_on_path() {
        assert!(on_path(Path::new("bpf-linker")));
        assert_eq!(where_is(Path::new("bpf-linker")), "on PATH");
    }
}

#[cfg(test)]
mod job_tests {
    use super::*;

    #[test]
    fn the_demo_installs_only_what_it_needs() {
        let demo = for_job(PACKAGES, Job::Demo);
        assert!(demo.contains(&"iproute2"));
        for peer in ["libxdp-dev", "libpcap-dev", "clang", "tmux"] {
            assert!(!demo.contains(&peer), "{peer}");
        }
        assert!(for_job(OPTIONAL_PACKAGES, Job::Demo).is_empty(), "no DPDK");
        let test = for_job(PACKAGES, Job::Test);
        assert!(test.contains(&"libxdp-dev") && test.contains(&"tmux"));
        assert!(for_job(OPTIONAL_PACKAGES, Job::Test).contains(&"dpdk"));
        assert!(!for_job(OPTIONAL_PACKAGES, Job::Test).contains(&"linux-perf"));
        assert!(for_job(OPTIONAL_PACKAGES, Job::All).contains(&"linux-perf"));
    }
}
