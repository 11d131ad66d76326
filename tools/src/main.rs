//! `skmemctl`: the command-line face of skmem.
//!
//! Its subcommands (`stats`, `watch`, `fwd`, `demo`) land with their issues;
//! today it reports what the library provides.

fn main() {
    println!("skmemctl {} (skmem library)", env!("CARGO_PKG_VERSION"));
    println!("available now: regions and caches with per-worker magazines (library only)");
    println!("not yet: stats, watch, fwd, demo");
}
