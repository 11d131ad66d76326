//! The socket's statistics (`XDP_STATISTICS`): each counter made to move
//! by the kernel's recipe, and read back exactly.

use super::{Link, LinkSpec, PACKETS, PACKET_LEN, XDP_PACKET_HEADROOM};
use crate::exchange::Rx;
use crate::rig::SocketSpec;
use crate::stream::Stream;
use crate::{Case, Mode, Outcome, Step};

pub(crate) const STAT_RX_DROPPED: Case = Case {
    name: "STAT_RX_DROPPED",
    checks: "every other packet is longer than a frame's room after a large headroom: rx_dropped counts exactly those, the rest arrive",
    differs: Some(
        "skmem keeps a headroom below half a frame, so the room is made small with 2 KiB frames and 896 B of headroom (odd packets 1024 B) instead of 4 KiB frames and 3648 B (odd packets 256 B).",
    ),
    run: stat_rx_dropped,
};

pub(crate) const STAT_TX_INVALID: Case = Case {
    name: "STAT_TX_INVALID",
    checks: "every other packet is 9001 B: skmem refuses exactly those before the ring (tx_refused, so the kernel's tx_invalid_descs stays 0), the rest arrive",
    differs: Some(
        "skmem refuses a 9001 B frame before the TX ring (tx_refused, reason overrun); the kernel's case counts it in tx_invalid_descs, which here stays 0.",
    ),
    run: stat_tx_invalid,
};

pub(crate) const STAT_RX_FULL: Case = Case {
    name: "STAT_RX_FULL",
    checks: "1536 packets to a 1024-entry RX ring nobody reads: the ring never overflows (rx_ring_full 0), the 512 beyond it are dropped and counted as the fill ring runs dry, the first 1024 arrive",
    differs: Some(
        "skmem never gives the kernel more frames than the RX ring holds, so an unread RX ring cannot overflow: the kernel drops the excess as the fill ring runs dry (rx_fill_ring_empty_descs 512) and rx_ring_full stays 0. The kernel's case moves rx_ring_full by handing frames back to the fill ring while they still sit in the RX ring, which skmem's channel does not allow.",
    ),
    run: stat_rx_full,
};

pub(crate) const STAT_FILL_EMPTY: Case = Case {
    name: "STAT_FILL_EMPTY",
    checks: "1536 packets to a fill ring given 1024 frames once: rx_fill_ring_empty_descs counts the 512 beyond them, the first 1024 arrive",
    differs: None,
    run: stat_fill_empty,
};

fn stat_rx_dropped(mode: Mode) -> Outcome {
    // skmem keeps most of a frame for data (headroom below half), so the
    // kernel's recipe — a headroom leaving 192 B of a 4 KiB frame, odd
    // packets of 256 B — becomes: 2 KiB frames with 896 B of headroom
    // leave 2048 - 256 - 896 = 896 B, odd packets of 1024 B.
    const HEADROOM: u32 = 896;
    const LONG: usize = 1024;
    let two_k = SocketSpec {
        buf_size: 2048,
        ..SocketSpec::default()
    };
    let spec = LinkSpec {
        rx: two_k.clone(),
        tx: two_k,
        ..LinkSpec::default()
    };
    let mut link = Link::new(mode, &spec, |cp| cp.headroom = HEADROOM, |_| {})?;
    let room = link.rx.ch.rx_frame_room();
    ensure_eq!(
        room,
        2048 - (XDP_PACKET_HEADROOM + HEADROOM) as usize,
        "a frame's room"
    );
    ensure!(LONG > room, "odd packets fit");
    let mut s: Stream = link.stream(PACKETS, PACKET_LEN)?;
    for p in s.packets.iter_mut().filter(|p| p.number % 2 == 1) {
        p.len = LONG;
        p.frags[0].len = LONG as u32;
    }
    // Sent, but dropped by the receiving socket.
    let expect: Vec<_> = s
        .expected()
        .into_iter()
        .filter(|p| p.number % 2 == 0)
        .collect();
    let r = link.send(&s, &expect, Rx::Receive)?;
    ensure_eq!(r.received, PACKETS / 2, "packets received");
    let k = link.rx.ch.xsk_stats().step("A's XDP_STATISTICS")?;
    ensure_eq!(k.rx_dropped, PACKETS / 2, "rx_dropped");
    link.finish()
}

fn stat_tx_invalid(mode: Mode) -> Outcome {
    let mut link = Link::plain(mode)?;
    let mut s = link.stream(PACKETS, PACKET_LEN)?;
    for p in s.packets.iter_mut().filter(|p| p.number % 2 == 1) {
        p.len = 9001;
        p.frags[0].len = 9001;
        p.valid = false;
    }
    let r = link.send(&s, &s.expected(), Rx::Receive)?;
    ensure_eq!(r.received, PACKETS / 2, "packets received");
    ensure_eq!(
        r.refused,
        PACKETS / 2,
        "frames skmem refused before the ring"
    );
    let why = link.tx.ch.tx_refusals();
    ensure_eq!(
        why.overrun,
        PACKETS / 2,
        format!("refused as overruns ({why:?})")
    );
    let k = link.tx.ch.xsk_stats().step("B's XDP_STATISTICS")?;
    ensure_eq!(k.tx_invalid_descs, 0, "invalid descriptors the kernel saw");
    link.finish()
}

/// Sends 1536 packets to a socket that touches nothing until they have
/// all met the program, then receives what it kept: the first 1024.
fn starve(
    mode: Mode,
    tweak: impl FnOnce(&mut skmem::channel::ChannelParams) + Send,
) -> Result<(Link, skmem::channel::XskStats), crate::Verdict> {
    const SENT: u64 = 1536;
    const KEPT: u64 = 1024;
    let mut link = Link::new(mode, &LinkSpec::default(), tweak, |_| {})?;
    let s = link.stream(SENT, PACKET_LEN)?;
    let expect: Vec<_> = s.expected().into_iter().take(KEPT as usize).collect();
    let r = link.send(&s, &expect, Rx::Untouched)?;
    ensure_eq!(r.received, KEPT, "packets received");
    let k = link.rx.ch.xsk_stats().step("A's XDP_STATISTICS")?;
    Ok((link, k))
}

fn stat_rx_full(mode: Mode) -> Outcome {
    // The channel gives the kernel at most an RX ring's worth of frames
    // (1024, though the fill ring holds 2048), all of which end in the RX
    // ring: once it is full, the fill ring is empty, and the kernel, which
    // takes a fill frame before it looks for room in the RX ring, drops
    // the rest for want of a frame.
    let (link, k) = starve(mode, |cp| {
        cp.ring_entries = 1024;
        cp.umem_ring_entries = 2048;
    })?;
    ensure_eq!(k.rx_ring_full, 0, format!("rx_ring_full ({k:?})"));
    ensure_eq!(k.rx_fill_ring_empty_descs, 512, "rx_fill_ring_empty_descs");
    ensure_eq!(k.rx_dropped, 512, "rx_dropped");
    link.finish()
}

fn stat_fill_empty(mode: Mode) -> Outcome {
    // A fill ring of 1024 entries, filled once, and an RX ring with room
    // for twice that: the fill ring runs dry first.
    let (link, k) = starve(mode, |cp| {
        cp.ring_entries = 2048;
        cp.umem_ring_entries = 1024;
    })?;
    ensure_eq!(k.rx_fill_ring_empty_descs, 512, "rx_fill_ring_empty_descs");
    ensure_eq!(k.rx_ring_full, 0, "rx_ring_full");
    link.finish()
}
