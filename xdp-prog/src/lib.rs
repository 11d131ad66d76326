//! skmem's eBPF side: the XDP redirect program, the lifecycle uprobes and
//! tracepoints, the `#[repr(C)]` layouts both sides share, and the aya
//! loader.
//!
//! Placeholder: the programs land with the AF_XDP data-path issue and the
//! observation issue. `cargo xtask setup` already installs the toolchain they
//! need (rust-src, bpf-linker 0.13 against the toolchain's LLVM).
