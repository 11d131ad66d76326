//! Ring sizes at their extremes.

use super::{Link, LinkSpec, PACKET_LEN};
use crate::rig::SocketSpec;
use crate::{Case, Mode, Outcome};

pub(crate) const HW_SW_MIN_RING_SIZE: Case = Case {
    name: "HW_SW_MIN_RING_SIZE",
    checks: "the smallest rings skmem accepts (64 entries) carry the stream in batches of 1, then of 63 (veth has no hardware rings to shrink)",
    differs: Some(
        "veth has no hardware rings (the kernel skips the case there); the software rings are taken to skmem's smallest.",
    ),
    run: hw_sw_min_ring_size,
};

pub(crate) const HW_SW_MAX_RING_SIZE: Case = Case {
    name: "HW_SW_MAX_RING_SIZE",
    checks: "8192-entry rings carry 8192 packets in batches of 2048, then of 4096, skmem's largest (veth has no hardware rings to grow)",
    differs: Some(
        "veth has no hardware rings (the kernel skips the case there); skmem's largest batch is 4096, below the kernel's second step of 8184.",
    ),
    run: hw_sw_max_ring_size,
};

/// A link whose four rings have `entries` each and whose channels move
/// `batch` descriptors a call; sends `packets` packets across.
fn rings(mode: Mode, entries: u32, batch: usize, packets: u64, pool: usize) -> Outcome {
    let sockets = SocketSpec {
        packets: pool,
        ..SocketSpec::default()
    };
    let spec = LinkSpec {
        rx: sockets.clone(),
        tx: sockets,
        ..LinkSpec::default()
    };
    let sized = |cp: &mut skmem::channel::ChannelParams| {
        cp.ring_entries = entries;
        cp.umem_ring_entries = entries;
        cp.batch = batch;
    };
    let mut link = Link::new(mode, &spec, sized, sized)?;
    ensure_eq!(link.rx.ch.ring_sizes(), [entries; 4], "A's ring sizes");
    ensure_eq!(link.tx.ch.ring_sizes(), [entries; 4], "B's ring sizes");
    let s = link.stream(packets, PACKET_LEN)?;
    link.send_all(&s)?;
    link.finish()
}

fn hw_sw_min_ring_size(mode: Mode) -> Outcome {
    rings(mode, 64, 1, 4096, 1024)?;
    rings(mode, 64, 63, 4096, 1024)
}

fn hw_sw_max_ring_size(mode: Mode) -> Outcome {
    rings(mode, 8192, 2048, 8192, 32768)?;
    rings(mode, 8192, 4096, 8192, 32768)
}
