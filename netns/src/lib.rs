//! Integration tests on veth pairs between network namespaces (needs
//! root): skmem's own tests, `skmemctl`'s demo and generator — and yours,
//! for a forwarder, load balancer or capture tool of your own. Nothing a
//! test makes outlives it: a pair is removed when dropped (also while a
//! test panics), and what a killed run left is removed by the next
//! ([`cleanup_stale`], [`cleanup_stale_huge_pages`],
//! [`cleanup_stale_sockets`]); [`check_gone`]
//! proves it in a test.
//!
//! - [`NetnsPair`]: two fresh network namespaces joined by a veth pair,
//!   IPv6 off, both ends up, removed again on drop (also on panic);
//!   [`NetnsPair::in_ns`] runs code on a thread inside a namespace,
//!   [`NetnsPair::exec`] runs a command there.
//! - [`FrameSpec`]: Ethernet/IPv4/UDP frames whose payload carries the
//!   kernel AF_XDP self-test pattern; [`check_payload`] and
//!   [`SequenceChecker`] verify what arrives.
//! - [`HugePages`]: huge pages reserved for a test (`vm.nr_hugepages`),
//!   given back when dropped — or by the next run, if this one is killed.
//! - [`Sender`]: an AF_PACKET generator, paced by a window of frames in
//!   flight, by a rate, or unpaced; [`Receiver`]: a plain AF_PACKET
//!   receiver with an EtherType/UDP-port filter.
//! - Flows checked end to end: [`transfer`] (B to A, every frame intact
//!   and in order) and [`round_trip_from_b`] (through an l2fwd on A and
//!   back); `tests/own_program.rs` tests a forwarder of a user's with it.
//! - [`latency`]: round-trip latency through a forwarder — a paced,
//!   timestamped flow over an skmem channel and a no-allocation histogram.
//! - [`check_gone`]: a dropped pair left nothing (no namespace, no veth).
//!
//! ```no_run
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use std::time::Duration;
//! use skmem_netns::*;
//!
//! skmem_netns::require_root!(Ok(()));
//! let pair = NetnsPair::new()?;
//! let spec = pair.frame_spec(Side::B, 64)?;
//! let mut rx = Receiver::open(&pair, Side::A, RxFilter::udp_port(spec.dst_port))?;
//! let tx = Sender::open(&pair, Side::B)?;
//! let received = AtomicU64::new(0);
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         let mut seq = SequenceChecker::new();
//!         while let Ok(Some(f)) = rx.recv(Duration::from_secs(1)) {
//!             seq.check(f).unwrap();
//!             received.fetch_add(1, Ordering::Relaxed);
//!         }
//!     });
//!     let r = tx
//!         .send_paced(&spec, 4096, 32, || received.load(Ordering::Relaxed), Duration::from_secs(10))
//!         .unwrap();
//!     assert!(r.complete());
//! });
//! # Ok::<(), skmem_netns::Error>(())
//! ```

#![warn(missing_docs)]
// The unit-test build of a library sees its package's dev-dependencies,
// which the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod error;
mod flows;
pub mod frame;
mod hugepages;
pub mod latency;
mod leftovers;
mod netns;
mod packet;
mod skip;
mod sockets;
mod sys;

pub use error::{Error, Result};
pub use flows::{round_trip_from_b, round_trip_from_b_any_order, transfer, Transfer};
pub use frame::{
    check_payload, FrameError, FrameInfo, FrameSpec, PayloadError, SequenceChecker, SequenceError,
};
pub use hugepages::{cleanup_stale_huge_pages, free_huge_pages, HugePages};
pub use leftovers::{check_gone, netns_list, root_ifnames, PairNames};
pub use netns::{
    cleanup_own_process, cleanup_stale, format_mac, harness_namespaces, names_for, parse_mac,
    pid_of_name, NetnsPair, PairConfig, Side, SideConfig, IF_PREFIX, MAX_IFNAME, NETNS_DIR,
    NS_PREFIX,
};
pub use packet::{Pacing, Receiver, RxFilter, SendReport, Sender, DEFAULT_RCVBUF};
pub use skip::{skip, skip_reason, NO_SKIP_ENV};
pub use sockets::cleanup_stale_sockets;

/// Interface index of `name` in the calling thread's network namespace
/// (inside [`NetnsPair::in_ns`]: the namespace's own numbering, where both
/// veth ends of a fresh pair are usually ifindex 2).
pub fn ifindex_in_current_ns(name: &str) -> std::io::Result<u32> {
    sys::if_nametoindex(name)
}

/// UDP port the harness's flows use by default (destination; the source
/// port is one above).
pub const DEFAULT_UDP_PORT: u16 = 4791;

impl NetnsPair {
    /// A flow of `size`-byte frames from `from` to its peer, with the
    /// pair's MACs, the configured IPv4 addresses (or 10.11.0.{1,2} when
    /// none are set: they only exist inside this pair's namespaces) and
    /// [`DEFAULT_UDP_PORT`].
    pub fn frame_spec(&self, from: Side, size: usize) -> Result<FrameSpec> {
        let default_ip = |s: Side| match s {
            Side::A => std::net::Ipv4Addr::new(10, 11, 0, 1),
            Side::B => std::net::Ipv4Addr::new(10, 11, 0, 2),
        };
        let to = from.peer();
        Ok(FrameSpec::new(
            self.mac(from),
            self.mac(to),
            self.ipv4(from).unwrap_or_else(|| default_ip(from)),
            self.ipv4(to).unwrap_or_else(|| default_ip(to)),
            DEFAULT_UDP_PORT + 1,
            DEFAULT_UDP_PORT,
            size,
        )?)
    }
}
