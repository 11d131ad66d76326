//! Descriptors: the kernel's table of valid and invalid TX descriptors,
//! which skmem checks before they reach the ring, and the TX ring's
//! consumer moving one budget per `sendto`.

use super::{Link, LinkSpec, PACKET_LEN};
use crate::exchange::Rx;
use crate::rig::SocketSpec;
use crate::stream::{Frag, Stream, TxPacket, ACROSS_PAGE};
use crate::{Case, Mode, Outcome, Step};

pub(crate) const ALIGNED_INV_DESC: Case = Case {
    name: "ALIGNED_INV_DESC",
    checks: "of the kernel's 10 descriptors (offset 0, straddling a buffer's start or end, past it, 9001 B), the 5 valid arrive; skmem refuses and counts the rest before the ring",
    differs: Some(
        "A skmem frame is a buffer and an offset in it, so the kernel's UMEM start and end are a buffer's; skmem refuses the invalid descriptors before the TX ring (counted by reason) where the kernel counts them in tx_invalid_descs.",
    ),
    run: aligned_inv_desc,
};

pub(crate) const ALIGNED_INV_DESC_2K_FRAME_SIZE: Case = Case {
    name: "ALIGNED_INV_DESC_2K_FRAME_SIZE",
    checks: "the same table in 2 KiB buffers: the descriptor straddling 2 KiB becomes invalid too",
    differs: Some("As ALIGNED_INV_DESC."),
    run: aligned_inv_desc_2k,
};

pub(crate) const ALIGNED_INV_DESC_MULTI_BUFF: Case = Case {
    name: "ALIGNED_INV_DESC_MULTI_BUFF",
    checks: "MTU 9000, the kernel's 15 multi-buffer descriptors: packets with an empty, out-of-buffer or 9001 B fragment or an unknown option are refused whole (counted by reason) and the next descriptor starts a new packet; the 3 valid packets (one of 8192 B in two frames) arrive",
    differs: Some(
        "skmem numbers the packets it sends 0..8 where the kernel numbers descriptors, so the valid ones are 0, 5 and 7 here (0, 10 and 13 in the kernel's table); skmem refuses the invalid ones before the TX ring.",
    ),
    run: aligned_inv_desc_multi_buff,
};

pub(crate) const TOO_MANY_FRAGS: Case = Case {
    name: "TOO_MANY_FRAGS",
    checks: "MTU 9000: a packet of MAX_FRAGS (18) frames arrives whole; a chain whose 18th frame still says more is refused there, and the packet after it arrives",
    differs: None,
    run: too_many_frags,
};

pub(crate) const TX_QUEUE_CONSUMER: Case = Case {
    name: "TX_QUEUE_CONSUMER",
    checks: "33 packets in one sendto: the kernel's default budget consumes exactly 32, skmem's budget (the TX ring) all 33; all arrive",
    differs: None,
    run: tx_queue_consumer,
};

/// The kernel's table (`testapp_invalid_desc`) for buffers of `frame`
/// bytes, as (offset in the buffer, length, valid). A UMEM address names
/// a buffer and an offset in it; skmem's frames always do, so "the UMEM's
/// start" and "end" are a buffer's.
fn table(frame: u32, unaligned: bool) -> [(u32, u32, bool); 10] {
    [
        // Address 0 is valid.
        (0, 64, true),
        (0, 64, true),
        // Straddles the start (offset -2).
        (0u32.wrapping_sub(2), 64, false),
        // Too long.
        (0, 9001, false),
        // Ends exactly at the end.
        (frame - 64, 64, true),
        // Past the end.
        (frame, 64, false),
        // Straddles the end.
        (frame - 32, 64, false),
        // Straddles 4 KiB: past the end of a 4 KiB buffer (or a 2 KiB
        // one); with unaligned chunks, across a 4 KiB page boundary inside
        // its buffer, which is valid.
        if unaligned {
            (ACROSS_PAGE, 64, true)
        } else {
            (0x1000 - 32, 64, 0x1000 + 32 <= frame)
        },
        // Straddles 2 KiB: inside a 4 KiB buffer, across a 2 KiB one's end.
        (0x800 - 32, 64, 0x800 + 32 <= frame),
        // A last valid packet, so something is received after the rest.
        (0, 64, true),
    ]
}

fn inv_desc(mode: Mode, frame: u32) -> Outcome {
    let sockets = SocketSpec {
        buf_size: frame as usize,
        ..SocketSpec::default()
    };
    let spec = LinkSpec {
        rx: sockets.clone(),
        tx: sockets,
        ..LinkSpec::default()
    };
    let link = Link::new(mode, &spec, |_| {}, |_| {})?;
    let want: &[u64] = if frame > 0x800 {
        &[0, 1, 4, 8, 9]
    } else {
        &[0, 1, 4, 9]
    };
    inv_desc_table(link, frame, false, want)
}

/// Sends the kernel's table for buffers of `frame` bytes across `link`:
/// the packets numbered `want` must arrive, the rest be refused before
/// the ring, as overruns.
pub(super) fn inv_desc_table(mut link: Link, frame: u32, unaligned: bool, want: &[u64]) -> Outcome {
    let mut s: Stream = link.stream(0, PACKET_LEN)?;
    for (number, (offset, len, valid)) in table(frame, unaligned).into_iter().enumerate() {
        s.packets.push(TxPacket {
            number: number as u64,
            len: len as usize,
            frags: vec![Frag {
                offset,
                len,
                options: 0,
            }],
            valid,
        });
    }
    let expect = s.expected();
    let numbers: Vec<u64> = expect.iter().map(|p| p.number).collect();
    ensure_eq!(numbers, want, "the valid descriptors of the kernel's table");
    send_table(&mut link, &s)?;
    // Every invalid descriptor of the table lies outside its buffer.
    let why = link.tx.ch.tx_refusals();
    ensure_eq!(
        why.overrun,
        s.invalid_frames(),
        format!("refused as overruns ({why:?})")
    );
    link.finish()
}

fn aligned_inv_desc(mode: Mode) -> Outcome {
    inv_desc(mode, 4096)
}

fn aligned_inv_desc_2k(mode: Mode) -> Outcome {
    inv_desc(mode, 2048)
}

/// Queues 33 packets in one `tx_burst` (one `sendto`) on a link whose
/// sender has `budget`; returns the entries the kernel left in the TX
/// ring, after checking every packet arrives.
fn consume_33(mode: Mode, budget: Option<u32>) -> Result<u64, crate::Verdict> {
    const N: u64 = 33;
    let mut link = Link::new(
        mode,
        &LinkSpec::default(),
        |_| {},
        |cp| {
            cp.tx_budget = budget;
            // One sendto per tx_burst, whatever the ring's flag says.
            cp.need_wakeup = false;
        },
    )?;
    let s = link.stream(N, PACKET_LEN)?;
    let mut frames = Vec::new();
    for p in &s.packets {
        ensure_eq!(link.tx.ch.alloc_tx(&mut frames, 1), 1, "a frame");
        let f = frames.last_mut().expect("just allocated");
        link.tx
            .ch
            .set_data(f, &s.bytes(p.number, p.len))
            .step("writing a frame")?;
    }
    link.tx.ch.tx_burst(&mut frames).step("tx_burst")?;
    ensure!(frames.is_empty(), "33 frames did not fit the TX ring");
    let left = link.tx.ch.account().tx_ring;
    // The rest go out as the sender settles; A receives all 33.
    let none = link.stream(0, PACKET_LEN)?;
    let r = link.send(&none, &s.expected(), Rx::Receive)?;
    ensure_eq!(r.received, N, "packets received");
    link.finish()?;
    Ok(left)
}

fn tx_queue_consumer(mode: Mode) -> Outcome {
    // The kernel's budget: one sendto transmits 32 descriptors.
    let left = consume_33(mode, None)?;
    ensure_eq!(
        left,
        1,
        "TX entries left after one sendto with the kernel's budget of 32"
    );
    // skmem's default budget is the whole TX ring.
    let left = consume_33(
        mode,
        Some(skmem::channel::ChannelParams::new("x", 0).ring_entries),
    )?;
    ensure_eq!(
        left,
        0,
        "TX entries left after one sendto with skmem's budget"
    );
    Ok(())
}

/// A multi-buffer link (MTU 9000) carrying `packets`, of which the valid
/// must arrive and the invalid be refused before the ring.
pub(super) fn multi_buffer_table(
    mode: Mode,
    spec: &LinkSpec,
    tweak: impl Fn(&mut skmem::channel::ChannelParams) + Send + Copy,
    packets: Vec<TxPacket>,
) -> Result<Link, crate::Verdict> {
    let mut link = Link::new(mode, spec, tweak, tweak)?;
    let mut s: Stream = link.stream(0, PACKET_LEN)?;
    s.packets = packets;
    send_table(&mut link, &s)?;
    Ok(link)
}

/// Sends a table's stream across `link`: its valid packets arrive, its
/// invalid frames are refused before the ring, and the kernel sees none.
fn send_table(link: &mut Link, s: &Stream) -> Outcome {
    let expect = s.expected();
    let r = link.send(s, &expect, Rx::Receive)?;
    ensure_eq!(r.received, expect.len() as u64, "packets received");
    ensure_eq!(
        r.refused,
        s.invalid_frames(),
        "frames skmem refused before the ring"
    );
    let k = link.tx.ch.xsk_stats().step("B's XDP_STATISTICS")?;
    ensure_eq!(k.tx_invalid_descs, 0, "invalid descriptors the kernel saw");
    Ok(())
}

/// The multi-buffer link of the aligned cases: MTU 9000, 4 KiB frames.
fn jumbo() -> LinkSpec {
    LinkSpec {
        mtu: 9000,
        ..LinkSpec::default()
    }
}

/// Sets multi-buffer on a channel.
fn sg(cp: &mut skmem::channel::ChannelParams) {
    cp.multi_buffer = true;
}

/// Packet `number` of the frames `frags` (offset, length, options), valid
/// or not.
fn packet(number: u64, frags: &[(u32, u32, u32)], valid: bool) -> TxPacket {
    TxPacket {
        number,
        len: frags.iter().map(|f| f.1 as usize).sum(),
        frags: frags
            .iter()
            .map(|&(offset, len, options)| Frag {
                offset,
                len,
                options,
            })
            .collect(),
        valid,
    }
}

/// The kernel's multi-buffer table (`testapp_invalid_desc_mb`) for
/// buffers of `frame` bytes, its rows grouped into the packets they make;
/// `more` is set on every frame but a packet's last.
pub(super) fn mb_table(frame: u32) -> Vec<TxPacket> {
    const L: u32 = 3072;
    // A whole buffer (4 KiB in the kernel's table).
    let m = frame.min(4096);
    vec![
        // A first valid packet.
        packet(0, &[(0, 64, 0)], true),
        // A zero-length fragment.
        packet(1, &[(0, L, 0), (0, L, 0), (0, 0, 0)], false),
        // The second fragment past its buffer (the kernel's UMEM end).
        packet(2, &[(0, L, 0), (frame, L, 0)], false),
        // A 9001 B fragment in the middle.
        packet(3, &[(0, L, 0), (0, 9001, 0)], false),
        // An unknown option.
        packet(4, &[(0, L, 0), (0, L, 0xfffe)], false),
        // Two whole buffers (8192 B with 4 KiB ones).
        packet(5, &[(0, m, 0), (0, m, 0)], true),
        // A small fragment straddling its buffer's start (offset -32).
        packet(6, &[(0, L, 0), (0u32.wrapping_sub(32), 64, 0)], false),
        // A last valid packet.
        packet(7, &[(0, 64, 0)], true),
    ]
}

/// The end of a multi-buffer table's case: the refused frames by reason —
/// the zero-length fragment's packet (3 frames), the three packets with a
/// fragment out of its buffer (2 each), the unknown option's (2) — then
/// the frame accounting.
pub(super) fn mb_table_refusals(link: Link) -> Outcome {
    let why = link.tx.ch.tx_refusals();
    ensure_eq!(
        (why.empty, why.overrun, why.options),
        (3, 6, 2),
        format!("refusals (empty, overrun, options) ({why:?})")
    );
    link.finish()
}

fn aligned_inv_desc_multi_buff(mode: Mode) -> Outcome {
    mb_table_refusals(multi_buffer_table(mode, &jumbo(), sg, mb_table(4096))?)
}

fn too_many_frags(mode: Mode) -> Outcome {
    let max = skmem::channel::MAX_FRAGS;
    let whole = vec![(0, 64, 0); max];
    // Every frame says more, the last too: the MAX_FRAGS-th ends it.
    let mut endless = whole.clone();
    endless[max - 1].2 = skmem::channel::XDP_PKT_CONTD;
    let packets = vec![
        packet(0, &[(0, 64, 0)], true),
        packet(1, &whole, true),
        packet(2, &endless, false),
        packet(3, &[(0, 64, 0)], true),
    ];
    let link = multi_buffer_table(mode, &jumbo(), sg, packets)?;
    let why = link.tx.ch.tx_refusals();
    ensure_eq!(
        why.chain,
        max as u64,
        format!("refused as chains ({why:?})")
    );
    link.finish()
}
