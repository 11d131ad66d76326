//! Builds the C peer of the pps harness (`csrc/xdpsock_peer.c`, an
//! xdpsock-like program on libxdp) into an executable in OUT_DIR and hands
//! its path to the crate as `SKMEM_XDPSOCK_PEER`.
//!
//! Without libxdp/libbpf (headers or libraries) the crate still builds: a
//! warning is printed, `SKMEM_XDPSOCK_PEER` is empty, and
//! `pps::cpeer::skip_reason()` says what to install.

use std::path::PathBuf;

const SOURCE: &str = "csrc/xdpsock_peer.c";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed=build.rs");
    // Where Debian's libxdp-dev puts it: installing the package later
    // reruns this (while it is missing, Cargo reruns this every build, and
    // a failing compile is quick).
    println!("cargo:rerun-if-changed=/usr/include/xdp/xsk.h");
    let path = match build_peer() {
        Ok(path) => path.display().to_string(),
        Err(why) => {
            for line in why.lines().take(12) {
                println!("cargo:warning={line}");
            }
            println!(
                "cargo:warning=the libxdp C peer of the pps harness is not built: \
                 install libxdp-dev libbpf-dev (cargo xtask setup)"
            );
            String::new()
        }
    };
    println!("cargo:rustc-env=SKMEM_XDPSOCK_PEER={path}");
}

/// Compiles and links the peer; the error is the compiler's message.
fn build_peer() -> Result<PathBuf, String> {
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?,
    );
    let exe = out_dir.join("xdpsock_peer");
    // cc's choice of compiler (CC, the target's default) with its default
    // flags; this is a host executable the harness runs, not a library.
    let compiler = cc::Build::new()
        .try_get_compiler()
        .map_err(|e| format!("no C compiler: {e}"))?;
    let mut cmd = compiler.to_command();
    cmd.args(["-O2", "-Wall", "-Wextra", "-o"])
        .arg(&exe)
        .arg(manifest.join(SOURCE))
        .args(["-lxdp", "-lbpf"]);
    let out = cmd
        .output()
        .map_err(|e| format!("running {:?}: {e}", cmd.get_program()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!(
            "compiling {SOURCE} failed ({}):\n{stderr}",
            out.status
        ));
    }
    // The C file is meant to compile warning-free: show any warning.
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        println!("cargo:warning={line}");
    }
    Ok(exe)
}
