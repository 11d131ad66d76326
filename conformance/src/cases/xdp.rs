//! skmem's XDP program variants, as the kernel's cases load theirs:
//! dropping every other packet, writing metadata in front of each, and
//! moving each packet's end.

use skmem_xdp::XdpAction;

use super::{Link, LinkSpec, PACKETS, PACKET_LEN};
use crate::exchange::Rx;
use crate::stream::{RxPacket, Stream};
use crate::{Case, Mode, Outcome, Step, Verdict};

pub(crate) const XDP_DROP_HALF: Case = Case {
    name: "XDP_DROP_HALF",
    checks: "the program drops every other packet: the even-numbered 2048 arrive, in order, and the program counts 2048 dropped",
    differs: None,
    run: xdp_drop_half,
};

pub(crate) const XDP_METADATA_COPY: Case = Case {
    name: "XDP_METADATA_COPY",
    checks: "the program writes its count in 32 B of metadata in front of each packet; the channel reads it in front of each received frame, equal to the packet's number",
    differs: None,
    run: xdp_metadata_copy,
};

pub(crate) const XDP_METADATA_COPY_MULTI_BUFF: Case = Case {
    name: "XDP_METADATA_COPY_MULTI_BUFF",
    checks: "the same on multi-buffer sockets (MTU 9000)",
    differs: None,
    run: xdp_metadata_copy_multi_buff,
};

pub(crate) const XDP_ADJUST_TAIL_SHRINK: Case = Case {
    name: "XDP_ADJUST_TAIL_SHRINK",
    checks: "the program cuts 4 B off each of 64 packets of 128 B: 124 B arrive, the first 124 bytes sent",
    differs: None,
    run: xdp_adjust_tail_shrink,
};

pub(crate) const XDP_ADJUST_TAIL_SHRINK_MULTI_BUFF: Case = Case {
    name: "XDP_ADJUST_TAIL_SHRINK_MULTI_BUFF",
    checks: "MTU 9000: the program cuts 4096 B off each of 64 packets of 6144 B: 2048 B arrive",
    differs: None,
    run: xdp_adjust_tail_shrink_multi_buff,
};

pub(crate) const XDP_ADJUST_TAIL_GROW: Case = Case {
    name: "XDP_ADJUST_TAIL_GROW",
    checks: "the program adds 4 B to each of 64 packets of 128 B: 132 B arrive, the 128 sent first",
    differs: None,
    run: xdp_adjust_tail_grow,
};

pub(crate) const XDP_ADJUST_TAIL_GROW_MULTI_BUFF: Case = Case {
    name: "XDP_ADJUST_TAIL_GROW_MULTI_BUFF",
    checks: "MTU 9000: the program adds 2047 B to each of 64 packets of 6144 B (inside the last fragment): 8191 B arrive",
    differs: None,
    run: xdp_adjust_tail_grow_multi_buff,
};

fn xdp_drop_half(mode: Mode) -> Outcome {
    let spec = LinkSpec {
        action: XdpAction::DropHalf,
        ..LinkSpec::default()
    };
    let mut link = Link::new(mode, &spec, |_| {}, |_| {})?;
    let s = link.stream(PACKETS, PACKET_LEN)?;
    let expect: Vec<RxPacket> = s
        .expected()
        .into_iter()
        .filter(|p| p.number % 2 == 0)
        .collect();
    let r = link.send(&s, &expect, Rx::Receive)?;
    ensure_eq!(r.received, PACKETS / 2, "packets received");
    let c = link.prog.counters().step("the XDP counters")?;
    ensure_eq!(c.dropped, PACKETS / 2, "packets the program dropped");
    let v = link.prog.variant_state().step("the program's state")?;
    ensure_eq!(v.sequence, PACKETS, "packets the program counted");
    link.finish()
}

/// A link whose program writes metadata, both ends multi-buffer when `sg`.
fn metadata(mode: Mode, sg: bool) -> Outcome {
    let spec = LinkSpec {
        mtu: if sg { 9000 } else { 1500 },
        action: XdpAction::Metadata,
        metadata: true,
        ..LinkSpec::default()
    };
    let tweak = move |cp: &mut skmem::channel::ChannelParams| cp.multi_buffer = sg;
    let mut link = Link::new(mode, &spec, tweak, tweak)?;
    let s = link.stream(PACKETS, PACKET_LEN)?;
    link.send_all(&s)?;
    let v = link.prog.variant_state().step("the program's state")?;
    ensure_eq!(v.sequence, PACKETS, "packets the program counted");
    link.finish()
}

fn xdp_metadata_copy(mode: Mode) -> Outcome {
    metadata(mode, false)
}

fn xdp_metadata_copy_multi_buff(mode: Mode) -> Outcome {
    metadata(mode, true)
}

/// Sends 64 packets of `len` bytes through a program moving their end by
/// `delta`; multi-buffer (MTU 9000, 4 KiB TX frames) when `sg`.
fn adjust_tail(mode: Mode, len: usize, delta: i32, sg: bool) -> Outcome {
    const N: u64 = 64;
    let spec = LinkSpec {
        mtu: if sg { 9000 } else { 1500 },
        action: XdpAction::AdjustTail,
        tail_delta: delta,
        ..LinkSpec::default()
    };
    let tweak = move |cp: &mut skmem::channel::ChannelParams| cp.multi_buffer = sg;
    let mut link = Link::new(mode, &spec, tweak, tweak)?;
    let base = link.stream(0, len)?;
    let s = Stream::fragmented(&base.spec, N, len, 4096);
    let expect: Vec<RxPacket> = s
        .expected()
        .into_iter()
        .map(|p| RxPacket {
            len: (p.sent_len as i64 + i64::from(delta)) as usize,
            ..p
        })
        .collect();
    let sent = link.send(&s, &expect, Rx::Receive);
    // The kernel's case skips where the helper cannot move a tail; and a
    // tail cannot grow where the frame has no room behind it.
    let v = link.prog.variant_state().step("the program's state")?;
    let c = link.prog.counters().step("the XDP counters")?;
    if v.tail_error == Some(EOPNOTSUPP) {
        return Err(Verdict::Skipped(format!(
            "the kernel cannot grow a multi-buffer frame received on veth in {mode} mode (bpf_xdp_adjust_tail({delta}): EOPNOTSUPP)"
        )));
    }
    if delta > 0 && v.tail_error == Some(EINVAL) {
        return Err(Verdict::Skipped(format!(
            "veth gives a frame sent by a copy-mode socket no room behind it in {mode} mode: bpf_xdp_adjust_tail({delta}) failed (EINVAL) on {} of {} frames (the kernel's CI skips this case too)",
            c.aborted, c.seen
        )));
    }
    let r = sent.map_err(|v2| match v2 {
        Verdict::Failed(why) => Verdict::Failed(format!("{why}; program state {v:?}")),
        v2 => v2,
    })?;
    ensure_eq!(r.received, N, "packets received");
    ensure_eq!(v.tail_error, None, "the helper's last error");
    link.finish()
}

/// `EOPNOTSUPP` on Linux.
const EOPNOTSUPP: i32 = 95;
/// `EINVAL` on Linux.
const EINVAL: i32 = 22;

fn xdp_adjust_tail_shrink(mode: Mode) -> Outcome {
    adjust_tail(mode, 128, -4, false)
}

fn xdp_adjust_tail_shrink_multi_buff(mode: Mode) -> Outcome {
    adjust_tail(mode, 6144, -4096, true)
}

fn xdp_adjust_tail_grow(mode: Mode) -> Outcome {
    adjust_tail(mode, 128, 4, false)
}

fn xdp_adjust_tail_grow_multi_buff(mode: Mode) -> Outcome {
    adjust_tail(mode, 6144, 2047, true)
}
