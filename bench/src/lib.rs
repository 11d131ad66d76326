//! skmem's benchmarks: the Criterion micro-benchmarks live in `benches/`;
//! this library holds the packets-per-second harness ([`pps`]) that the
//! `pps` binary and the smoke test drive, and the comparison with DPDK's
//! mempool ([`mempool`]) behind the `mempool` binary, and the rendering of
//! a pps report for BENCHMARKS.md ([`report`], the `pps-report` binary).

#![warn(missing_docs)]
// The unit-test build of a library sees its package's dev-dependencies,
// which the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

pub mod mempool;
pub mod plot;
pub mod pps;
pub mod report;
