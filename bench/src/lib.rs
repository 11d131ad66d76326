//! skmem's benchmarks: the Criterion micro-benchmarks live in `benches/`;
//! this library holds the packets-per-second harness ([`pps`]) that the
//! `pps` binary and the smoke test drive, and the comparison with DPDK's
//! mempool ([`mempool`]) behind the `mempool` binary, and the rendering of
//! a pps report for BENCHMARKS.md ([`report`], the `pps-report` binary).

#![warn(missing_docs)]

pub mod mempool;
pub mod pps;
pub mod report;
