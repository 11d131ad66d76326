//! Unaligned chunks (`XDP_UMEM_UNALIGNED_CHUNK_FLAG`): buffers of any
//! size, packets placed across 4 KiB page boundaries — on huge pages, as
//! the kernel's cases run them (and as chunks larger than a page need).

use skmem_netns::HugePages;

use super::desc::{inv_desc_table, mb_table, mb_table_refusals, multi_buffer_table};
use super::{Link, LinkSpec, PACKETS, PACKET_LEN};
use crate::rig::SocketSpec;
use crate::stream::{Stream, ACROSS_PAGE};
use crate::{Case, Mode, Outcome, Verdict};

pub(crate) const SEND_RECEIVE_UNALIGNED: Case = Case {
    name: "SEND_RECEIVE_UNALIGNED",
    checks: "unaligned 3072 B chunks on huge pages: every odd packet lies across a 4 KiB page boundary; all 4096 arrive in order and intact",
    differs: Some(
        "A skmem frame stays inside its buffer, so odd packets straddle a 4 KiB page boundary inside a 3072 B buffer rather than the boundary between two 4 KiB chunks (offset -32) as the kernel's do; the kernel refuses chunks above 4 KiB in unaligned mode here.",
    ),
    run: send_receive_unaligned,
};

pub(crate) const SEND_RECEIVE_UNALIGNED_9K_PACKETS: Case = Case {
    name: "SEND_RECEIVE_UNALIGNED_9K_PACKETS",
    checks: "unaligned 3072 B chunks on huge pages, MTU 9000: 4096 packets of 9000 B leave as chains of 3 frames and arrive whole",
    differs: None,
    run: send_receive_unaligned_9k_packets,
};

pub(crate) const UNALIGNED_INV_DESC: Case = Case {
    name: "UNALIGNED_INV_DESC",
    checks: "the kernel's 10 descriptors on unaligned 3072 B chunks: the one straddling a 4 KiB page boundary becomes valid; 6 arrive, the rest are refused before the ring",
    differs: Some(
        "3072 B chunks, and the descriptor straddling 4 KiB does so inside its buffer (the kernel's crosses from one 4 KiB chunk into the next); skmem refuses the invalid ones before the ring.",
    ),
    run: unaligned_inv_desc,
};

pub(crate) const UNALIGNED_INV_DESC_4001_FRAME_SIZE: Case = Case {
    name: "UNALIGNED_INV_DESC_4001_FRAME_SIZE",
    checks: "the same table on unaligned 4001 B chunks: 6 arrive, the rest are refused before the ring",
    differs: Some(
        "The descriptor straddling 4 KiB does so inside its 4001 B buffer (the kernel's runs from one chunk into the next).",
    ),
    run: unaligned_inv_desc_4001,
};

pub(crate) const UNALIGNED_INV_DESC_MULTI_BUFF: Case = Case {
    name: "UNALIGNED_INV_DESC_MULTI_BUFF",
    checks: "the kernel's multi-buffer table on unaligned 3072 B chunks, MTU 9000: the 3 valid packets arrive, the rest are refused whole",
    differs: Some(
        "The kernel accepts a fragment at offset -32 in unaligned mode (it reaches into the chunk before); a skmem frame stays inside its buffer, so that packet is refused, and 3 packets arrive where the kernel's case expects 4.",
    ),
    run: unaligned_inv_desc_multi_buff,
};

/// Huge pages for two pools of `packets` buffers of `buf_size`, with room
/// to spare; a skip when the machine cannot give them.
fn huge_pages(packets: usize, buf_size: usize) -> Result<HugePages, Verdict> {
    let per_pool = (packets * buf_size).div_ceil(skmem::sys::HUGE_PAGE_SIZE) + 2;
    let n = 2 * per_pool;
    HugePages::reserve(n).map_err(|why| {
        Verdict::Skipped(format!("this machine cannot reserve {n} huge pages: {why}"))
    })
}

/// Both ends on unaligned chunks of `buf_size` on huge pages.
fn unaligned_spec(buf_size: usize, packets: usize, mtu: u32) -> LinkSpec {
    let s = SocketSpec {
        packets,
        buf_size,
        truncated: true,
        huge_pages: true,
        ..SocketSpec::default()
    };
    LinkSpec {
        mtu,
        rx: s.clone(),
        tx: s,
        ..LinkSpec::default()
    }
}

fn unaligned_tweak(sg: bool) -> impl Fn(&mut skmem::channel::ChannelParams) + Send + Copy {
    move |cp| {
        cp.unaligned_chunks = true;
        cp.multi_buffer = sg;
    }
}

fn send_receive_unaligned(mode: Mode) -> Outcome {
    const BUF: usize = 3072;
    const POOL: usize = 2048;
    let _pages = huge_pages(POOL, BUF)?;
    let spec = unaligned_spec(BUF, POOL, 1500);
    let t = unaligned_tweak(false);
    let mut link = Link::new(mode, &spec, t, t)?;
    let mut s = link.stream(PACKETS, PACKET_LEN)?;
    for p in s.packets.iter_mut().filter(|p| p.number % 2 == 1) {
        p.frags[0].offset = ACROSS_PAGE;
    }
    link.send_all(&s)?;
    link.finish()
}

fn send_receive_unaligned_9k_packets(mode: Mode) -> Outcome {
    const BUF: usize = 3072;
    const POOL: usize = 2048;
    let _pages = huge_pages(POOL, BUF)?;
    let spec = unaligned_spec(BUF, POOL, 9000);
    let t = unaligned_tweak(true);
    let mut link = Link::new(mode, &spec, t, t)?;
    let base = link.stream(0, 9000)?;
    let s = Stream::fragmented(&base.spec, PACKETS, 9000, BUF);
    ensure_eq!(s.packets[0].frags.len(), 3, "TX frames of a 9000 B packet");
    link.send_all(&s)?;
    link.finish()
}

fn unaligned_inv_desc(mode: Mode) -> Outcome {
    const BUF: usize = 3072;
    let _pages = huge_pages(2048, BUF)?;
    let spec = unaligned_spec(BUF, 2048, 1500);
    let t = unaligned_tweak(false);
    let link = Link::new(mode, &spec, t, t)?;
    inv_desc_table(link, BUF as u32, true, &[0, 1, 4, 7, 8, 9])
}

fn unaligned_inv_desc_4001(mode: Mode) -> Outcome {
    const BUF: usize = 4001;
    let _pages = huge_pages(1024, BUF)?;
    let spec = unaligned_spec(BUF, 1024, 1500);
    let t = unaligned_tweak(false);
    let link = Link::new(mode, &spec, t, t)?;
    inv_desc_table(link, BUF as u32, true, &[0, 1, 4, 7, 8, 9])
}

fn unaligned_inv_desc_multi_buff(mode: Mode) -> Outcome {
    const BUF: usize = 3072;
    let _pages = huge_pages(2048, BUF)?;
    let spec = unaligned_spec(BUF, 2048, 9000);
    let t = unaligned_tweak(true);
    mb_table_refusals(multi_buffer_table(mode, &spec, t, mb_table(BUF as u32))?)
}
