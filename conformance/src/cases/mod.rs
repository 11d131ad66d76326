//! The cases, grouped as the kernel's `test_xsk.c` groups them: plain
//! send and receive (`basic`), waiting in `poll` (`poll`), descriptors
//! skmem must refuse (`desc`), the statistics counters (`stats`), several
//! sockets (`sockets`), XDP program variants (`xdp`), multi-buffer
//! (`multi`), unaligned chunks on huge pages (`unaligned`)
//! and ring sizes (`rings`).
//!
//! Each case builds a [`Link`] (or more), sends a stream across it with
//! [`exchange`], checks what the kernel's case checks, and ends with
//! [`Link::finish`]: every frame of both channels accounted for.

mod basic;
mod cleanup;
mod desc;
mod multi;
mod poll;
mod rings;
mod sockets;
mod stats;
mod unaligned;
mod xdp;

use std::time::Instant;

use skmem::channel::{Channel, ChannelParams};
use skmem_netns::Side;
use skmem_xdp::{XdpAction, XdpProgram};

use crate::exchange::{self, exchange, Receiver, Report, Rx, Sender};
use crate::rig::{Rig, Socket, SocketSpec};
use crate::stream::{RxPacket, Stream};
use crate::{Case, Mode, Outcome, Step, Verdict};

/// Every case, in the kernel's order.
pub static CASES: &[Case] = &[
    basic::SEND_RECEIVE,
    basic::SEND_RECEIVE_2K_FRAME,
    basic::SEND_RECEIVE_SINGLE_PKT,
    poll::POLL_RX,
    poll::POLL_TX,
    poll::POLL_RXQ_FULL,
    poll::POLL_TXQ_FULL,
    unaligned::SEND_RECEIVE_UNALIGNED,
    desc::ALIGNED_INV_DESC,
    desc::ALIGNED_INV_DESC_2K_FRAME_SIZE,
    unaligned::UNALIGNED_INV_DESC,
    unaligned::UNALIGNED_INV_DESC_4001_FRAME_SIZE,
    basic::UMEM_HEADROOM,
    basic::TEARDOWN,
    basic::BIDIRECTIONAL,
    stats::STAT_RX_DROPPED,
    stats::STAT_TX_INVALID,
    stats::STAT_RX_FULL,
    stats::STAT_FILL_EMPTY,
    cleanup::XDP_PROG_CLEANUP,
    xdp::XDP_DROP_HALF,
    sockets::XDP_SHARED_UMEM,
    xdp::XDP_METADATA_COPY,
    xdp::XDP_METADATA_COPY_MULTI_BUFF,
    multi::SEND_RECEIVE_9K_PACKETS,
    unaligned::SEND_RECEIVE_UNALIGNED_9K_PACKETS,
    desc::ALIGNED_INV_DESC_MULTI_BUFF,
    unaligned::UNALIGNED_INV_DESC_MULTI_BUFF,
    desc::TOO_MANY_FRAGS,
    rings::HW_SW_MIN_RING_SIZE,
    rings::HW_SW_MAX_RING_SIZE,
    xdp::XDP_ADJUST_TAIL_SHRINK,
    xdp::XDP_ADJUST_TAIL_SHRINK_MULTI_BUFF,
    xdp::XDP_ADJUST_TAIL_GROW,
    xdp::XDP_ADJUST_TAIL_GROW_MULTI_BUFF,
    desc::TX_QUEUE_CONSUMER,
];

/// The kernel's default stream: 4096 packets of 64 bytes.
pub(crate) const PACKETS: u64 = 4096;
/// The kernel's default packet length.
pub(crate) const PACKET_LEN: usize = 64;
/// The kernel's `XDP_PACKET_HEADROOM`: where in its buffer a received
/// frame's data starts, after the UMEM headroom.
pub(crate) const XDP_PACKET_HEADROOM: u32 = 256;

/// One direction of a case: B's socket sends to A's, through skmem's XDP
/// program on A.
pub(crate) struct Link {
    /// The sending socket (on B).
    pub tx: Socket,
    /// The receiving socket (on A), registered for queue 0.
    pub rx: Socket,
    /// The program on A.
    pub prog: XdpProgram,
    /// The pair; dropped last.
    pub rig: Rig,
    /// Whether A's receiver checks the metadata in front of each packet.
    pub metadata: bool,
}

/// How to build a [`Link`].
pub(crate) struct LinkSpec {
    pub mtu: u32,
    pub rx: SocketSpec,
    pub tx: SocketSpec,
    pub action: XdpAction,
    /// With [`XdpAction::AdjustTail`]: how far each frame's end moves.
    pub tail_delta: i32,
    /// Whether A's receiver checks the metadata the program wrote.
    pub metadata: bool,
}

impl Default for LinkSpec {
    fn default() -> Self {
        Self {
            mtu: 1500,
            rx: SocketSpec::default(),
            tx: SocketSpec::default(),
            action: XdpAction::Redirect,
            tail_delta: 0,
            metadata: false,
        }
    }
}

impl Link {
    /// A fresh pair in `mode`, the program on A, A's socket registered
    /// and its fill ring filled, B's socket open; `rx_tweak` and
    /// `tx_tweak` adjust each channel's parameters.
    pub fn new(
        mode: Mode,
        spec: &LinkSpec,
        rx_tweak: impl FnOnce(&mut ChannelParams) + Send,
        tx_tweak: impl FnOnce(&mut ChannelParams) + Send,
    ) -> Result<Link, Verdict> {
        let rig = Rig::new(mode, spec.mtu)?;
        let mut prog = match spec.action {
            XdpAction::AdjustTail => rig.attach_adjusting_tail(Side::A, spec.tail_delta)?,
            action => rig.attach(Side::A, action)?,
        };
        let mut rx = rig.socket(Side::A, &spec.rx, rx_tweak)?;
        prog.add_socket(0, rx.ch.fd())
            .step("registering A's socket in the XSKMAP")?;
        let tx = rig.socket(Side::B, &spec.tx, tx_tweak)?;
        rx.ch.refill().step("filling A's fill ring")?;
        Ok(Link {
            tx,
            rx,
            prog,
            rig,
            metadata: spec.metadata,
        })
    }

    /// The default link of `mode`: 4 KiB frames, MTU 1500, redirect.
    pub fn plain(mode: Mode) -> Result<Link, Verdict> {
        Self::new(mode, &LinkSpec::default(), |_| {}, |_| {})
    }

    /// The flow of `len`-byte packets from B to A.
    pub fn stream(&self, count: u64, len: usize) -> Result<Stream, Verdict> {
        Ok(Stream::new(&self.rig.spec(PACKET_LEN)?, count, len))
    }

    /// Sends `stream` from B, and A receives `expect` (`rx` says how).
    pub fn send(
        &mut self,
        stream: &Stream,
        expect: &[RxPacket],
        rx: Rx,
    ) -> Result<Report, Verdict> {
        self.send_polling(stream, expect, rx, false)
    }

    /// [`send`](Self::send), the sender waiting in `poll(POLLOUT)` after
    /// each batch when `poll_tx`.
    pub fn send_polling(
        &mut self,
        stream: &Stream,
        expect: &[RxPacket],
        rx: Rx,
        poll_tx: bool,
    ) -> Result<Report, Verdict> {
        let offset = self.rx.ch.params().headroom + XDP_PACKET_HEADROOM;
        exchange(
            self.rig.mode,
            &self.prog,
            Sender {
                ch: &mut self.tx.ch,
                stream,
                poll: poll_tx,
            },
            Receiver {
                ch: &mut self.rx.ch,
                expect,
                rx,
                offset: Some(offset),
                metadata: self.metadata,
            },
        )
    }

    /// Sends `stream` and expects every valid packet of it, unchanged.
    pub fn send_all(&mut self, stream: &Stream) -> Result<Report, Verdict> {
        let expect = stream.expected();
        let r = self.send(stream, &expect, Rx::Receive)?;
        ensure_eq!(r.received, expect.len() as u64, "packets received");
        Ok(r)
    }

    /// The end of every case: both channels settled, and every frame of
    /// each in exactly one place.
    pub fn finish(mut self) -> Outcome {
        finish(&mut self.tx.ch, "B")?;
        finish(&mut self.rx.ch, "A")
    }
}

/// The frame-accounting check of one channel: nothing left in its TX
/// path, every frame in exactly one place, none held by the case.
pub(crate) fn finish(ch: &mut Channel, side: &str) -> Outcome {
    let deadline = Instant::now() + exchange::DEADLINE;
    let account = exchange::settle(ch, deadline)?;
    account
        .check(true)
        .map_err(|why| Verdict::Failed(format!("{side}'s frames: {why} ({account:?})")))?;
    ensure_eq!(
        account.app,
        0,
        format!("{side}'s frames still held by the case")
    );
    let c = ch.counters();
    ensure_eq!(
        c.bad_descs,
        0,
        format!("{side}'s bad descriptors from the kernel")
    );
    Ok(())
}
