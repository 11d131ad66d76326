//! skmem's benchmarks: the Criterion micro-benchmarks live in `benches/`;
//! this library holds the packets-per-second harness ([`pps`]) that the
//! `pps` binary and the smoke test drive.

#![warn(missing_docs)]

pub mod pps;
