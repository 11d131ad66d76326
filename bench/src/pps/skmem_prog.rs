//! The programs under test on skmem's [`Channel`]: rxdrop and l2fwd, the
//! loops of `skmemctl fwd`.

use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams, RxFrame};

use super::meter::Meter;
use super::{ProgCounters, ProgParams, ProgRun, Wait, Workload};

/// Opens the channel, hands its socket to `register`, then runs `workload`
/// on the schedule `start` returns.
pub fn run(
    p: &ProgParams,
    register: &mut dyn FnMut(std::os::fd::BorrowedFd<'_>) -> Result<()>,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    let mut np = NexusParams::new(p.arena_name.clone());
    np.pool.packets = p.frames as usize;
    let arena = Arena::create_nexus(&np).context("skmem arena")?;
    let mut cp = ChannelParams::new(&p.ifname, 0);
    cp.mode = BindMode::Copy;
    cp.batch = p.batch;
    cp.umem_ring_entries = p.ring_entries;
    cp.ring_entries = p.ring_entries;
    cp.tx_budget = p.tx_budget;
    let mut ch = super::retry_busy(|| {
        Channel::open(&arena, &cp).with_context(|| format!("skmem channel on {}", p.ifname))
    })?;
    register(ch.fd())?;
    let meter = start();
    let (meter, counts) = match p.workload {
        Workload::Rxdrop => rxdrop(&mut ch, p, meter, stop)?,
        Workload::L2fwd => l2fwd(&mut ch, p, meter, stop)?,
    };
    let k = ch.xsk_stats()?;
    let c = ch.counters();
    Ok(ProgRun {
        samples: meter.into_samples(),
        counters: ProgCounters {
            rx_packets: c.rx_packets,
            tx_queued: c.tx_packets,
            tx_completed: c.tx_completed,
            tx_unsent: counts,
            xsk_rx_dropped: k.rx_dropped,
            xsk_rx_ring_full: k.rx_ring_full,
            xsk_fill_ring_empty: k.rx_fill_ring_empty_descs,
        },
    })
}

fn rxdrop(
    ch: &mut Channel,
    p: &ProgParams,
    mut meter: Meter,
    stop: &AtomicBool,
) -> Result<(Meter, u64)> {
    let mut rx = vec![RxFrame::default(); p.batch];
    let mut pkts = vec![0u32; p.batch];
    let mut received = 0u64;
    while !meter.tick(received) && !stop.load(Ordering::Relaxed) {
        let n = ch.rx_burst(&mut rx)?;
        if n == 0 {
            if p.wait == Wait::Poll {
                ch.poll(super::POLL_TIMEOUT_MS)?;
            }
            continue;
        }
        for (pk, f) in pkts.iter_mut().zip(&rx[..n]) {
            *pk = f.pkt;
        }
        ch.free_rx(&pkts[..n])?;
        received += n as u64;
    }
    Ok((meter, 0))
}

fn l2fwd(
    ch: &mut Channel,
    p: &ProgParams,
    mut meter: Meter,
    stop: &AtomicBool,
) -> Result<(Meter, u64)> {
    let mut rx = vec![RxFrame::default(); p.batch];
    let mut completed = 0u64;
    let mut unsent = 0u64;
    while !meter.tick(completed) && !stop.load(Ordering::Relaxed) {
        let n = ch.rx_burst(&mut rx)?;
        if n == 0 {
            completed += ch.complete() as u64;
            if p.wait == Wait::Poll {
                ch.poll(super::POLL_TIMEOUT_MS)?;
            }
            continue;
        }
        let q = ch.reflect(&rx[..n])?;
        unsent += (n - q) as u64;
        completed += ch.complete() as u64;
    }
    // Drain what is still in flight so the channel closes quietly.
    for _ in 0..100 {
        ch.complete();
        if ch.account().kernel_tx == 0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Ok((meter, unsent))
}
