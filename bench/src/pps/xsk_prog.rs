//! The programs under test on xsk-rs 0.11 (libxdp's xsk.c underneath):
//! its [`Umem`] and [`Socket`], libxdp's program loading inhibited (the
//! socket goes into skmem's XSKMAP instead), loops written the way its
//! `dev1_to_dev2` example and xdpsock's l2fwd do them.

use std::io::Write as _;
use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{anyhow, bail, Result};
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::meter::Meter;
use super::{ProgCounters, ProgParams, ProgRun, Wait, Workload};

/// `XDP_MAX_TX_SKB_BUDGET` (linux/if_xdp.h).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

struct Xsk {
    umem: Umem,
    fq: FillQueue,
    cq: CompQueue,
    tx: TxQueue,
    rx: RxQueue,
}

fn err<E: std::fmt::Debug>(what: &'static str) -> impl FnOnce(E) -> anyhow::Error {
    move |e| anyhow!("xsk-rs {what}: {e:?}")
}

fn open(p: &ProgParams) -> Result<(Xsk, Vec<FrameDesc>)> {
    open_with_fill(p, p.ring_entries)
}

/// [`open`] with a fill ring of `fill_entries` (the other three rings have
/// `p.ring_entries`).
fn open_with_fill(p: &ProgParams, fill_entries: u32) -> Result<(Xsk, Vec<FrameDesc>)> {
    let ring = QueueSize::new(p.ring_entries).map_err(err("ring size"))?;
    let umem_cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(p.frame_size).map_err(err("frame size"))?)
        .fill_queue_size(QueueSize::new(fill_entries).map_err(err("fill ring size"))?)
        .comp_queue_size(ring)
        .build()
        .map_err(err("UMEM config"))?;
    let sock_cfg = SocketConfig::builder()
        .rx_queue_size(ring)
        .tx_queue_size(ring)
        .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
        .bind_flags(BindFlags::XDP_COPY | BindFlags::XDP_USE_NEED_WAKEUP)
        .build();
    let count = NonZeroU32::new(p.frames).ok_or_else(|| anyhow!("no frames"))?;
    let (umem, descs) = Umem::new(umem_cfg, count, false).map_err(err("UMEM"))?;
    let ifname: Interface = p
        .ifname
        .parse()
        .map_err(|e| anyhow!("interface name {}: {e:?}", p.ifname))?;
    // SAFETY: the UMEM is not shared (fresh, one socket), so the fill and
    // completion rings come back with this socket and the double-free
    // hazard of a shared, already-bound pair does not apply; program
    // loading is inhibited anyway.
    let (tx, rx, fqcq) =
        unsafe { Socket::new(sock_cfg, &umem, &ifname, 0) }.map_err(err("socket"))?;
    let Some((fq, cq)) = fqcq else {
        bail!(
            "xsk-rs gave no fill/completion rings for {} queue 0",
            p.ifname
        );
    };
    Ok((
        Xsk {
            umem,
            fq,
            cq,
            tx,
            rx,
        },
        descs,
    ))
}

fn set_tx_budget(fd: i32, budget: u32) -> Result<()> {
    let v = budget as libc::c_int;
    // SAFETY: `fd` is the open AF_XDP socket, `v` lives across the call
    // and the length passed is its size.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            XDP_MAX_TX_SKB_BUDGET,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ENOPROTOOPT) {
            bail!("setsockopt(XDP_MAX_TX_SKB_BUDGET): {e}");
        }
    }
    Ok(())
}

/// Opens the UMEM and socket, hands the socket to `register`, then runs
/// `workload` on the schedule `start` returns.
pub fn run(
    p: &ProgParams,
    register: &mut dyn FnMut(BorrowedFd<'_>) -> Result<()>,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    let (mut x, mut descs) = super::retry_busy(|| open(p))?;
    let raw = x.rx.fd().as_raw_fd();
    if let Some(b) = p.tx_budget {
        set_tx_budget(raw, b)?;
    }
    if p.wait == Wait::BusyPoll {
        // SAFETY: `raw` is the socket's descriptor, open while `x` lives.
        let fd = unsafe { BorrowedFd::borrow_raw(raw) };
        super::sys::set_busy_poll(fd, super::BUSY_POLL_US, p.batch as u32)?;
    }
    // SAFETY: `raw` is the socket's descriptor, open while `x` lives, and
    // the borrow does not outlive this call.
    register(unsafe { BorrowedFd::borrow_raw(raw) })?;

    if p.workload == Workload::Txonly {
        // Every frame is a TX frame, written once (as xdpsock's txonly).
        for d in &mut descs {
            // SAFETY: the frame is this UMEM's and on no ring yet.
            let mut data = unsafe { x.umem.data_mut(d) };
            let mut c = data.cursor();
            c.zero_out();
            c.write_all(&p.frame)
                .map_err(|e| anyhow!("xsk-rs: writing the txonly frame: {e}"))?;
        }
    } else {
        // Fill the fill ring, as the examples do.
        let fill = (p.ring_entries as usize).min(descs.len());
        // SAFETY: the descriptors are this UMEM's frames, none in use yet.
        let filled = unsafe { x.fq.produce(&descs[..fill]) };
        if filled != fill {
            bail!("xsk-rs: fill ring took {filled} of {fill} frames");
        }
        descs.truncate(p.batch.max(1));
    }

    let meter = start();
    let (meter, tx_queued, tx_completed, received) = match p.workload {
        Workload::Rxdrop => rxdrop(&mut x, p, meter, stop)?,
        Workload::Txonly => txonly(&mut x, p, descs, meter, stop)?,
        Workload::L2fwd => l2fwd(&mut x, p, meter, stop)?,
    };
    let s = x.rx.fd().xdp_statistics()?;
    Ok(ProgRun {
        samples: meter.into_samples(),
        counters: ProgCounters {
            rx_packets: received,
            tx_queued,
            tx_completed,
            tx_unsent: 0,
            xsk_rx_dropped: s.rx_dropped(),
            xsk_rx_ring_full: s.rx_ring_full(),
            xsk_fill_ring_empty: s.rx_fill_ring_empty_descs(),
        },
    })
}

type Counts = (Meter, u64, u64, u64);

/// The receive bound (`xsk-sink`): a socket whose RX ring nobody reads.
///
/// Its fill ring holds twice as many frames as its RX ring, so once the RX
/// ring is full the kernel still finds a frame for every packet: it copies
/// the packet in, finds no room on the RX ring, counts `rx_ring_full` and
/// frees the frame for the next packet. A's NAPI thus does all of a
/// receive's work but the descriptor write and the wake-up, with no
/// program competing for its CPU — so no AF_XDP program on this veth can
/// receive more than this counts. The thread sleeps from boundary to
/// boundary and reads the statistic at each.
pub fn sink(
    p: &ProgParams,
    register: &mut dyn FnMut(BorrowedFd<'_>) -> Result<()>,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    let fill = sink_fill_entries(p.ring_entries);
    if p.frames < fill {
        bail!(
            "xsk-sink: {} frames cannot fill a fill ring of {fill} (twice the RX ring)",
            p.frames
        );
    }
    let (mut x, descs) = super::retry_busy(|| open_with_fill(p, fill))?;
    // SAFETY: the descriptors are this UMEM's frames, none in use yet.
    let filled = unsafe { x.fq.produce(&descs[..fill as usize]) };
    if filled != fill as usize {
        bail!("xsk-sink: the fill ring took {filled} of {fill} frames");
    }
    let raw = x.rx.fd().as_raw_fd();
    // SAFETY: `raw` is the socket's descriptor, open while `x` lives, and
    // the borrow does not outlive this call.
    register(unsafe { BorrowedFd::borrow_raw(raw) })?;
    let mut meter = start();
    for b in meter.bounds().to_vec() {
        loop {
            let now = std::time::Instant::now();
            if now >= b || stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep((b - now).min(std::time::Duration::from_millis(50)));
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
        meter.tick(x.rx.fd().xdp_statistics()?.rx_ring_full());
    }
    let s = x.rx.fd().xdp_statistics()?;
    Ok(ProgRun {
        samples: meter.into_samples(),
        counters: ProgCounters {
            // It receives nothing: every frame it counted was refused.
            rx_packets: 0,
            tx_queued: 0,
            tx_completed: 0,
            tx_unsent: 0,
            xsk_rx_dropped: s.rx_dropped(),
            xsk_rx_ring_full: s.rx_ring_full(),
            xsk_fill_ring_empty: s.rx_fill_ring_empty_descs(),
        },
    })
}

/// The sink's fill ring, and the frames it needs: twice its RX ring
/// (`ring_entries`), so frames remain for the kernel once the RX ring is
/// full.
pub fn sink_fill_entries(ring_entries: u32) -> u32 {
    ring_entries.saturating_mul(2)
}

fn rxdrop(x: &mut Xsk, p: &ProgParams, mut meter: Meter, stop: &AtomicBool) -> Result<Counts> {
    let mut descs = vec![FrameDesc::default(); p.batch];
    let mut received = 0u64;
    while !meter.tick(received) && !stop.load(Ordering::Relaxed) {
        // SAFETY: the RX ring hands out this UMEM's frames.
        let n = unsafe { x.rx.consume(&mut descs) };
        if n == 0 {
            idle(x, p.wait)?;
            continue;
        }
        received += n as u64;
        // Add the frames back to the fill queue (loop until they are).
        // SAFETY: the frames were just received and are no longer read.
        while unsafe { x.fq.produce_and_wakeup(&descs[..n], x.rx.fd_mut(), 0)? } != n {}
    }
    Ok((meter, 0, 0, received))
}

/// Nothing arrived: wait as the wait mode says (as xsk-rs's examples do).
fn idle(x: &mut Xsk, wait: Wait) -> Result<()> {
    match wait {
        // xsk-rs has no coalescing or adaptive wait (only skmem waits
        // those ways): a plain poll.
        Wait::Poll | Wait::Coalesce | Wait::Adaptive => {
            x.rx.poll(super::POLL_TIMEOUT_MS)?;
        }
        Wait::Spin => {
            if x.fq.needs_wakeup() {
                x.fq.wakeup(x.rx.fd_mut(), 0)?;
            }
        }
        Wait::BusyPoll => {
            // SAFETY: the socket's descriptor, open while `x` lives.
            let fd = unsafe { BorrowedFd::borrow_raw(x.rx.fd().as_raw_fd()) };
            super::sys::busy_poll_once(fd)?;
        }
    }
    Ok(())
}

/// Reaps completions back onto the fill ring (xdpsock's complete_tx_l2fwd).
#[inline]
fn complete(x: &mut Xsk, comp: &mut [FrameDesc], outstanding: &mut u64) -> Result<u64> {
    if *outstanding == 0 {
        return Ok(0);
    }
    if x.tx.needs_wakeup() {
        x.tx.wakeup()?;
    }
    // SAFETY: the completion ring hands back this UMEM's frames.
    let c = unsafe { x.cq.consume(comp) };
    if c > 0 {
        // SAFETY: completed frames are free again; the fill ring has room
        // for every frame in circulation (no more than its size were
        // filled at the start).
        while unsafe { x.fq.produce(&comp[..c]) } != c {}
        *outstanding -= c as u64;
    }
    Ok(c as u64)
}

fn l2fwd(x: &mut Xsk, p: &ProgParams, mut meter: Meter, stop: &AtomicBool) -> Result<Counts> {
    let mut descs = vec![FrameDesc::default(); p.batch];
    let mut comp = vec![FrameDesc::default(); p.batch];
    let (mut received, mut queued, mut completed, mut outstanding) = (0u64, 0u64, 0u64, 0u64);
    while !meter.tick(completed) && !stop.load(Ordering::Relaxed) {
        completed += complete(x, &mut comp, &mut outstanding)?;
        // SAFETY: the RX ring hands out this UMEM's frames.
        let n = unsafe { x.rx.consume(&mut descs) };
        if n == 0 {
            idle(x, p.wait)?;
            continue;
        }
        received += n as u64;
        for d in &mut descs[..n] {
            // SAFETY: the frame was just received: nobody else (kernel
            // included) touches it until it is queued for TX below.
            let mut data = unsafe { x.umem.data_mut(d) };
            let b = data.contents_mut();
            if b.len() >= 12 {
                let (dst, src) = b[..12].split_at_mut(6);
                dst.swap_with_slice(src);
            }
        }
        // Queue for TX, reaping completions while the ring is full.
        // SAFETY: the frames are ours and not on any other ring.
        while unsafe { x.tx.produce(&descs[..n]) } != n {
            completed += complete(x, &mut comp, &mut outstanding)?;
        }
        queued += n as u64;
        outstanding += n as u64;
        if x.tx.needs_wakeup() {
            x.tx.wakeup()?;
        }
    }
    // Drain what is still in flight.
    for _ in 0..100 {
        complete(x, &mut comp, &mut outstanding)?;
        if outstanding == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok((meter, queued, completed, received))
}

/// txonly (xdpsock's tx_only): frames written once, then only descriptors
/// move — free frames onto the TX ring, completions back to the free list.
/// `free` holds every frame of the UMEM, each written with the frame.
fn txonly(
    x: &mut Xsk,
    p: &ProgParams,
    mut free: Vec<FrameDesc>,
    mut meter: Meter,
    stop: &AtomicBool,
) -> Result<Counts> {
    let len = p.frame.len();
    let mut comp = vec![FrameDesc::default(); p.batch];
    let (mut queued, mut completed) = (0u64, 0u64);
    while !meter.tick(completed) && !stop.load(Ordering::Relaxed) {
        // SAFETY: the completion ring hands back this UMEM's frames.
        let c = unsafe { x.cq.consume(&mut comp) };
        for d in &mut comp[..c] {
            // The completion ring carries addresses only: restore the
            // length (the bytes are still the frame's).
            // SAFETY: a completed frame is ours again, on no ring.
            unsafe { x.umem.data_mut(d) }.cursor().set_pos(len);
        }
        free.extend_from_slice(&comp[..c]);
        completed += c as u64;
        let n = p.batch.min(free.len());
        let from = free.len() - n;
        // SAFETY: free frames belong to this UMEM and are on no ring.
        let q = unsafe { x.tx.produce(&free[from..]) };
        free.drain(from..from + q);
        queued += q as u64;
        // Copy mode transmits inside the syscall (xdpsock kicks whenever
        // frames are outstanding and the ring asks for it).
        if queued > completed && x.tx.needs_wakeup() {
            x.tx.wakeup()?;
        }
        if q == 0 && c == 0 && p.wait == Wait::Poll {
            x.tx.poll(super::POLL_TIMEOUT_MS)?;
        }
    }
    // Let what is in flight complete.
    for _ in 0..100 {
        if completed >= queued {
            break;
        }
        // SAFETY: as above.
        let c = unsafe { x.cq.consume(&mut comp) };
        completed += c as u64;
        if c == 0 {
            x.tx.wakeup()?;
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    Ok((meter, queued, completed, 0))
}
