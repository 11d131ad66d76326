//! Waiting in `poll(2)`: for packets to receive, for room to send, and
//! the timeouts when neither comes.

use skmem_netns::Side;

use super::{Link, PACKETS, PACKET_LEN};
use crate::exchange::Rx;
use crate::{Case, Mode, Outcome, Step};

pub(crate) const POLL_RX: Case = Case {
    name: "POLL_RX",
    checks: "the receiver waits in poll(POLLIN) before every receive; it never times out while packets come",
    differs: None,
    run: poll_rx,
};

pub(crate) const POLL_TX: Case = Case {
    name: "POLL_TX",
    checks: "the sender waits in poll(POLLOUT) after every batch; it never times out",
    differs: None,
    run: poll_tx,
};

pub(crate) const POLL_RXQ_FULL: Case = Case {
    name: "POLL_RXQ_FULL",
    checks: "poll(POLLIN) times out when nothing is sent, and the socket counts nothing",
    differs: Some(
        "The kernel's case kills its only thread right after starting it; here the receiving socket polls with nothing sent and must time out.",
    ),
    run: poll_rxq_full,
};

pub(crate) const POLL_TXQ_FULL: Case = Case {
    name: "POLL_TXQ_FULL",
    checks: "poll(POLLOUT) times out while the TX ring is full and the device cannot drain it; then every frame goes out",
    differs: Some(
        "The kernel's case kills its only thread right after starting it; here the sending device is down, so the full TX ring cannot drain and poll(POLLOUT) must time out, then the device comes up and every frame arrives.",
    ),
    run: poll_txq_full,
};

fn poll_rx(mode: Mode) -> Outcome {
    let mut link = Link::plain(mode)?;
    let s = link.stream(PACKETS, PACKET_LEN)?;
    let r = link.send(&s, &s.expected(), Rx::Poll)?;
    ensure_eq!(r.received, PACKETS, "packets received");
    link.finish()
}

fn poll_tx(mode: Mode) -> Outcome {
    let mut link = Link::plain(mode)?;
    let s = link.stream(PACKETS, PACKET_LEN)?;
    let r = link.send_polling(&s, &s.expected(), Rx::Receive, true)?;
    ensure_eq!(r.received, PACKETS, "packets received");
    link.finish()
}

fn poll_rxq_full(mode: Mode) -> Outcome {
    let mut link = Link::plain(mode)?;
    let readable = link.rx.ch.poll(100).step("poll(POLLIN)")?;
    ensure!(!readable, "poll(POLLIN) said readable with nothing sent");
    // (Its TX counters may move: in copy mode poll(2) also drives TX.)
    let k = link.rx.ch.xsk_stats().step("XDP_STATISTICS")?;
    let rx = [
        k.rx_dropped,
        k.rx_invalid_descs,
        k.rx_ring_full,
        k.rx_fill_ring_empty_descs,
    ];
    ensure_eq!(rx, [0; 4], "the socket's RX statistics");
    ensure_eq!(link.rx.ch.counters().rx_packets, 0, "packets received");
    link.finish()
}

fn poll_txq_full(mode: Mode) -> Outcome {
    // A small TX ring, so filling it takes one batch.
    const RING: u32 = 64;
    let mut link = Link::new(
        mode,
        &super::LinkSpec::default(),
        |_| {},
        |cp| {
            cp.ring_entries = RING;
            cp.umem_ring_entries = RING;
        },
    )?;
    let ifname = link.rig.ifname(Side::B);
    let set = |state: &str| {
        link.rig
            .pair
            .exec_ok(Side::B, "ip", ["link", "set", ifname.as_str(), state])
            .map(|_| ())
            .step(&format!("ip link set {ifname} {state}"))
    };
    // The device is down: the kernel cannot transmit, and the ring stays
    // full however often it is asked to.
    set("down")?;
    let s = link.stream(u64::from(RING), PACKET_LEN)?;
    let mut frames = Vec::new();
    for p in &s.packets {
        let n = link.tx.ch.alloc_tx(&mut frames, 1);
        ensure_eq!(n, 1, "a frame for packet");
        let f = frames.last_mut().expect("just allocated");
        let bytes = s.bytes(p.number, p.len);
        link.tx.ch.set_data(f, &bytes).step("writing a frame")?;
    }
    link.tx.ch.tx_burst(&mut frames).step("tx_burst")?;
    ensure!(
        frames.is_empty(),
        "{} frames found no room in an empty ring",
        frames.len()
    );
    let writable = link.tx.ch.poll_tx(100).step("poll(POLLOUT)")?;
    ensure!(
        !writable,
        "poll(POLLOUT) said writable with the TX ring full and the device down"
    );
    ensure_eq!(
        link.tx.ch.account().tx_ring,
        u64::from(RING),
        "entries left in the TX ring"
    );
    // Up again: the next poll transmits, and A receives all of them.
    set("up")?;
    let none = link.stream(0, PACKET_LEN)?;
    let r = link.send(&none, &s.expected(), Rx::Receive)?;
    ensure_eq!(
        r.received,
        u64::from(RING),
        "packets received once the device is up"
    );
    link.finish()
}
