//! `skmemctl fwd`'s live lines: the queues' rates summed, every
//! `--interval`, while the run lasts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;

use super::{FwdArgs, QueueThread, Shared};

/// One line of rates.
#[derive(Debug, Serialize)]
struct Line {
    elapsed_s: f64,
    rx_pps: f64,
    tx_pps: f64,
    rx_bps: f64,
    tx_bps: f64,
    rx_dropped: u64,
    fill_ring_empty: u64,
    frames_in_use: u64,
}

/// The live lines, every `--interval`, until the duration ends, Ctrl-C,
/// every thread is done, or the interface changes (returned, to be said
/// after the summary as the run's error).
pub(super) fn watch(
    args: &FwdArgs,
    link: &crate::link::Link,
    shared: &[Arc<Shared>],
    handles: &[QueueThread],
    start: Instant,
    stop: &AtomicBool,
) -> Result<Option<crate::link::LinkChange>> {
    let mut last = (0u64, 0u64, 0u64, 0u64);
    let mut tick = Instant::now();
    let mut link_change = None;
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
        if let Err(change) = link.check() {
            link_change = Some(change);
        }
        let done = link_change.is_some()
            || args.duration > 0 && start.elapsed() >= Duration::from_secs(args.duration);
        let finished = handles.iter().all(|h| h.is_finished());
        if tick.elapsed() >= Duration::from_secs_f64(args.interval) || done || finished {
            let dt = tick.elapsed().as_secs_f64();
            tick = Instant::now();
            let sum = |f: fn(&Shared) -> u64| shared.iter().map(|s| f(s)).sum::<u64>();
            let now = (
                sum(|s| s.rx.load(Ordering::Relaxed)),
                sum(|s| s.tx.load(Ordering::Relaxed)),
                sum(|s| s.rx_bytes.load(Ordering::Relaxed)),
                sum(|s| s.tx_bytes.load(Ordering::Relaxed)),
            );
            let line = Line {
                elapsed_s: start.elapsed().as_secs_f64(),
                rx_pps: (now.0 - last.0) as f64 / dt,
                tx_pps: (now.1 - last.1) as f64 / dt,
                rx_bps: (now.2 - last.2) as f64 * 8.0 / dt,
                tx_bps: (now.3 - last.3) as f64 * 8.0 / dt,
                rx_dropped: sum(|s| s.dropped.load(Ordering::Relaxed)),
                fill_ring_empty: sum(|s| s.fill_empty.load(Ordering::Relaxed)),
                frames_in_use: sum(|s| s.in_use.load(Ordering::Relaxed)),
            };
            last = now;
            say_line(args, &line)?;
        }
        if done || finished {
            break;
        }
    }
    Ok(link_change)
}

/// One live line: JSON, or two lines of at most 80 columns.
fn say_line(args: &FwdArgs, line: &Line) -> Result<()> {
    if args.json {
        return crate::output::json("fwd_rate", line);
    }
    use crate::units::{gbits, mpps};
    outln!(
        "{:>6.1}s rx {} {}  tx {} {}\n        dropped {} fill-empty {} in use {}",
        line.elapsed_s,
        mpps(line.rx_pps),
        gbits(line.rx_bps),
        mpps(line.tx_pps),
        gbits(line.tx_bps),
        line.rx_dropped,
        line.fill_ring_empty,
        line.frames_in_use
    );
    Ok(())
}
