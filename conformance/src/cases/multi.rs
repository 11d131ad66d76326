//! Multi-buffer (`XDP_USE_SG`): packets larger than a frame, sent and
//! received as chains of frames.

use super::{Link, LinkSpec, PACKETS};
use crate::stream::Stream;
use crate::{Case, Mode, Outcome};

pub(crate) const SEND_RECEIVE_9K_PACKETS: Case = Case {
    name: "SEND_RECEIVE_9K_PACKETS",
    checks: "MTU 9000: 4096 packets of 9000 B leave as chains of 4 KiB frames and arrive whole, in order and intact, as chains of 3840 B",
    differs: None,
    run: send_receive_9k_packets,
};

/// The kernel's jumbo packet.
const JUMBO: usize = 9000;

fn send_receive_9k_packets(mode: Mode) -> Outcome {
    let spec = LinkSpec {
        mtu: 9000,
        ..LinkSpec::default()
    };
    let sg = |cp: &mut skmem::channel::ChannelParams| cp.multi_buffer = true;
    let mut link = Link::new(mode, &spec, sg, sg)?;
    let base = link.stream(0, JUMBO)?;
    let s = Stream::fragmented(&base.spec, PACKETS, JUMBO, 4096);
    ensure_eq!(s.packets[0].frags.len(), 3, "TX frames of a 9000 B packet");
    link.send_all(&s)?;
    link.finish()
}
