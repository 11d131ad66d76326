//! Several sockets over one UMEM.

use skmem_netns::Side;
use skmem_xdp::XdpAction;

use super::{finish, PACKETS, PACKET_LEN, XDP_PACKET_HEADROOM};
use crate::exchange::{exchange, Receiver, Rx, Sender};
use crate::rig::{Rig, SocketSpec};
use crate::stream::Stream;
use crate::{Case, Mode, Outcome, Step};

pub(crate) const XDP_SHARED_UMEM: Case = Case {
    name: "XDP_SHARED_UMEM",
    checks: "two sockets on one UMEM (one pool) per end, on two devices: each receives exactly its half of the stream (even, odd), in order",
    differs: Some(
        "skmem shares a UMEM between sockets of different queues or devices, each with its own fill and completion rings; the kernel's case shares one queue (and its rings) and steers by MAC. Two devices here: generic XDP on a veth sees every frame on queue 0, so queues could not steer in SKB mode.",
    ),
    run: xdp_shared_umem,
};

fn xdp_shared_umem(mode: Mode) -> Outcome {
    // skmem shares a UMEM between sockets of different queues or devices
    // (each with its own fill and completion rings); the kernel's case
    // puts both on queue 0 of one device, sharing those rings, and steers
    // by MAC. Here a second veth pair between the same namespaces steers:
    // each device's program sends what arrives to its one socket. (Two
    // queues of one veth would not do in SKB mode: generic XDP sees every
    // frame a veth forwards on queue 0.)
    let rig = Rig::new(mode, 1500)?;
    let (a1, b1) = rig.second_veth()?;
    let a0 = rig.ifname(Side::A);
    let mut prog0 = rig.attach(Side::A, XdpAction::Redirect)?;
    let mut prog1 = rig.attach_on(Side::A, &a1, XdpAction::Redirect)?;
    let shared = SocketSpec {
        workers: 2,
        ..SocketSpec::default()
    };
    let rx0 = rig.socket(Side::A, &shared, |_| {})?;
    let (mut rx0, mut rx1) = rig.shared_socket(Side::A, &a1, rx0, 0, |_| {})?;
    prog0
        .add_socket(0, rx0.ch.fd())
        .step("registering the first socket")?;
    prog1
        .add_socket(0, rx1.ch.fd())
        .step("registering the second socket")?;
    rx0.ch.refill().step("filling the first fill ring")?;
    rx1.ch.refill().step("filling the second fill ring")?;
    let tx0 = rig.socket(Side::B, &shared, |_| {})?;
    let (mut tx0, mut tx1) = rig.shared_socket(Side::B, &b1, tx0, 0, |_| {})?;
    ensure!(
        std::sync::Arc::ptr_eq(rx0.ch.pool(), rx1.ch.pool()),
        "A's sockets have one pool"
    );
    ensure!(a0 != a1, "two devices");

    let spec = rig.spec(PACKET_LEN)?;
    let half = |parity: u64| {
        let mut s = Stream::new(&spec, PACKETS, PACKET_LEN);
        s.packets.retain(|p| p.number % 2 == parity);
        s
    };
    for (parity, prog, tx, rx) in [
        (0, &prog0, &mut tx0, &mut rx0),
        (1, &prog1, &mut tx1, &mut rx1),
    ] {
        let s = half(parity);
        let expect = s.expected();
        let r = exchange(
            mode,
            prog,
            Sender {
                ch: &mut tx.ch,
                stream: &s,
                poll: false,
            },
            Receiver {
                ch: &mut rx.ch,
                expect: &expect,
                rx: Rx::Receive,
                offset: Some(XDP_PACKET_HEADROOM),
                metadata: false,
            },
        )?;
        ensure_eq!(
            r.received,
            PACKETS / 2,
            format!("packets received by socket {parity}")
        );
    }
    // Nothing of either half reached the other socket.
    let mut stray = Vec::new();
    for (i, rx) in [(0, &mut rx0), (1, &mut rx1)] {
        let n = rx.ch.rx_burst(&mut stray, 64).step("rx_burst")?;
        ensure_eq!(n, 0, format!("packets left on socket {i}"));
    }
    finish(&mut tx1.ch, "B's second socket")?;
    finish(&mut tx0.ch, "B's first socket")?;
    finish(&mut rx1.ch, "A's second socket")?;
    finish(&mut rx0.ch, "A's first socket")?;
    Ok(())
}
