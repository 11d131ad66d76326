//! Sending and receiving: the default stream, other frame sizes, one
//! packet, a UMEM headroom, sockets made and destroyed, both directions.

use skmem_netns::Side;
use skmem_xdp::XdpAction;

use super::{finish, Link, LinkSpec, PACKETS, PACKET_LEN, XDP_PACKET_HEADROOM};
use crate::exchange::{exchange, Receiver, Rx, Sender};
use crate::rig::SocketSpec;
use crate::{Case, Mode, Outcome, Step};

pub(crate) const SEND_RECEIVE: Case = Case {
    name: "SEND_RECEIVE",
    checks: "4096 packets of 64 B in 4 KiB frames arrive in order and intact",
    differs: None,
    run: send_receive,
};

pub(crate) const SEND_RECEIVE_2K_FRAME: Case = Case {
    name: "SEND_RECEIVE_2K_FRAME",
    checks: "the same in 2 KiB frames",
    differs: None,
    run: send_receive_2k_frame,
};

pub(crate) const SEND_RECEIVE_SINGLE_PKT: Case = Case {
    name: "SEND_RECEIVE_SINGLE_PKT",
    checks: "one packet arrives",
    differs: None,
    run: send_receive_single_pkt,
};

pub(crate) const UMEM_HEADROOM: Case = Case {
    name: "UMEM_HEADROOM",
    checks: "with 128 B of UMEM headroom, data starts at 128 + 256 in each frame",
    differs: None,
    run: umem_headroom,
};

pub(crate) const TEARDOWN: Case = Case {
    name: "TEARDOWN",
    checks:
        "sockets and UMEMs made and destroyed 10 times, each time carrying the stream, no fd left",
    differs: None,
    run: teardown,
};

pub(crate) const BIDIRECTIONAL: Case = Case {
    name: "BIDIRECTIONAL",
    checks: "both sockets send and receive: B to A, then A to B on the same sockets",
    differs: None,
    run: bidirectional,
};

fn send_receive(mode: Mode) -> Outcome {
    let mut link = Link::plain(mode)?;
    let s = link.stream(PACKETS, PACKET_LEN)?;
    link.send_all(&s)?;
    link.finish()
}

fn send_receive_2k_frame(mode: Mode) -> Outcome {
    let two_k = SocketSpec {
        buf_size: 2048,
        ..SocketSpec::default()
    };
    let spec = LinkSpec {
        rx: two_k.clone(),
        tx: two_k,
        ..LinkSpec::default()
    };
    let mut link = Link::new(mode, &spec, |_| {}, |_| {})?;
    let s = link.stream(PACKETS, PACKET_LEN)?;
    link.send_all(&s)?;
    link.finish()
}

fn send_receive_single_pkt(mode: Mode) -> Outcome {
    let mut link = Link::plain(mode)?;
    let s = link.stream(1, PACKET_LEN)?;
    link.send_all(&s)?;
    link.finish()
}

fn umem_headroom(mode: Mode) -> Outcome {
    let mut link = Link::new(mode, &LinkSpec::default(), |cp| cp.headroom = 128, |_| {})?;
    ensure_eq!(
        link.rx.ch.params().headroom + XDP_PACKET_HEADROOM,
        384,
        "where data starts"
    );
    // `send` checks every packet's offset in its buffer.
    let s = link.stream(PACKETS, PACKET_LEN)?;
    link.send_all(&s)?;
    link.finish()
}

/// Descriptors open in this process.
fn open_fds() -> Result<usize, crate::Verdict> {
    Ok(std::fs::read_dir("/proc/self/fd")
        .step("listing /proc/self/fd")?
        .count())
}

fn teardown(mode: Mode) -> Outcome {
    let mut link = Link::plain(mode)?;
    let mut fds_after_first = None;
    for round in 0..10 {
        if round > 0 {
            // Close both sockets and their arenas (UMEMs) first — a queue
            // takes one socket — then make new ones on the same
            // interfaces, under the same program.
            let Link {
                tx,
                rx,
                mut prog,
                rig,
                ..
            } = link;
            drop(tx);
            drop(rx);
            let spec = LinkSpec::default();
            let mut rx = rig.socket(Side::A, &spec.rx, |_| {})?;
            prog.add_socket(0, rx.ch.fd())
                .step("registering the new socket")?;
            rx.ch.refill().step("filling the new fill ring")?;
            let tx = rig.socket(Side::B, &spec.tx, |_| {})?;
            link = Link {
                tx,
                rx,
                prog,
                rig,
                metadata: false,
            };
        }
        let s = link.stream(PACKETS, PACKET_LEN)?;
        link.send_all(&s)?;
        super::finish(&mut link.tx.ch, "B")?;
        super::finish(&mut link.rx.ch, "A")?;
        let fds = open_fds()?;
        match fds_after_first {
            None => fds_after_first = Some(fds),
            Some(first) => ensure!(
                fds == first,
                "round {round}: {fds} descriptors open, {first} after the first round"
            ),
        }
    }
    link.finish()
}

fn bidirectional(mode: Mode) -> Outcome {
    let busy = |cp: &mut skmem::channel::ChannelParams| {
        cp.busy_poll = mode.busy_poll().then_some((20, 64));
    };
    let mut link = Link::new(mode, &LinkSpec::default(), |_| {}, busy)?;
    // B receives too: the program on B, B's socket in its map.
    let mut prog_b = link.rig.attach(Side::B, XdpAction::Redirect)?;
    prog_b
        .add_socket(0, link.tx.ch.fd())
        .step("registering B's socket")?;
    link.tx.ch.refill().step("filling B's fill ring")?;

    let s = link.stream(PACKETS, PACKET_LEN)?;
    link.send_all(&s)?;

    // Directions swapped, same sockets.
    let back = crate::stream::Stream::new(
        &link
            .rig
            .pair
            .frame_spec(Side::A, PACKET_LEN)
            .step("the flow A to B")?,
        PACKETS,
        PACKET_LEN,
    );
    let expect = back.expected();
    let r = exchange(
        mode,
        &prog_b,
        Sender {
            ch: &mut link.rx.ch,
            stream: &back,
            poll: false,
        },
        Receiver {
            ch: &mut link.tx.ch,
            expect: &expect,
            rx: Rx::Receive,
            offset: Some(XDP_PACKET_HEADROOM),
            metadata: false,
        },
    )?;
    ensure_eq!(r.received, PACKETS, "packets received by B");
    finish(&mut link.rx.ch, "A")?;
    link.finish()
}
