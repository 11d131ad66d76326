//! skmem's benchmarks live in `benches/`; this crate's library part will hold
//! the packets-per-second harness.
