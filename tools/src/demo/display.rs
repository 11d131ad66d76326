//! `skmemctl demo`'s live display: once a second, the packets in and out,
//! where the pool's frames are, region memory in use, the workers and the
//! last lifecycle events the probes saw — drawn in place on a terminal, as
//! lines otherwise, or as JSON.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Instant;

use serde::Serialize;
use skmem::channel::FrameAccount;
use skmem_xdp::observe::ObservedEvent;

use super::{Demo, Probes};

/// One line of the display.
#[derive(Debug, Serialize)]
pub(super) struct Tick {
    elapsed_s: f64,
    events: Vec<String>,
    sent: u64,
    returned: u64,
    fwd_rx_pps: f64,
    fwd_tx_pps: f64,
    frames: FrameAccount,
    region_mem_inuse: u64,
    region_mem_total: u64,
    /// With workers: (slot, pid, lent, handed back, reclaimed).
    workers: Vec<(usize, Option<u32>, u64, u64, u64)>,
}

impl Demo<'_> {
    /// One refresh of the display: the forwarder's rates since `last` (its
    /// counts then, and when), which becomes now.
    pub(super) fn tick(&self, probes: &Probes, last: &mut (u64, u64, Instant)) -> Tick {
        let fwd = &self.fwd;
        let dt = last.2.elapsed().as_secs_f64();
        let (rx, tx) = (
            fwd.rx.load(Ordering::Relaxed),
            fwd.tx.load(Ordering::Relaxed),
        );
        let tick = Tick {
            elapsed_s: self.start.elapsed().as_secs_f64(),
            events: probes
                .seen
                .iter()
                .rev()
                .take(3)
                .rev()
                .map(ObservedEvent::line)
                .collect(),
            sent: self.flow.sent.load(Ordering::Relaxed),
            returned: self.flow.back.load(Ordering::Relaxed),
            fwd_rx_pps: (rx - last.0) as f64 / dt,
            fwd_tx_pps: (tx - last.1) as f64 / dt,
            frames: *fwd.account.lock().unwrap_or_else(|e| e.into_inner()),
            region_mem_inuse: fwd.mem_inuse.load(Ordering::Relaxed),
            region_mem_total: fwd.mem_total.load(Ordering::Relaxed),
            workers: fwd
                .workers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .enumerate()
                .map(|(i, (pid, c))| (i, *pid, c.lent, c.sent + c.freed, c.reclaimed))
                .collect(),
        };
        *last = (rx, tx, Instant::now());
        tick
    }
}

/// The width of the terminal on stdout, if it is one.
fn terminal_columns() -> Option<usize> {
    let ws = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (ws.ws_col > 0).then_some(usize::from(ws.ws_col))
}

/// One tick: a JSON line, or the display's lines (redrawn in place when
/// `live`, each cut to the terminal's width).
pub(super) fn show(t: &Tick, json: bool, live: bool, lines: &mut usize) {
    if json {
        if let Err(e) = crate::output::json("demo_tick", t) {
            tracing::warn!(error = %e, "a tick not written");
        }
        return;
    }
    let f = &t.frames;
    // Every line fits 80 columns; narrower terminals cut them (below).
    let mut text = vec![
        format!(
            "{:>5.1}s sent {:>9} back {:>9} | l2fwd in {} out {}",
            t.elapsed_s,
            t.sent,
            t.returned,
            crate::units::mpps(t.fwd_rx_pps),
            crate::units::mpps(t.fwd_tx_pps)
        ),
        format!(
            "  frames: pool {:>5} slots {:>4} fill+RX {:>5} app {:>3} TX+cq {:>4} of {}",
            f.pool, f.staged, f.kernel_rx, f.app, f.kernel_tx, f.total
        ),
        format!(
            "  regions: {:.1} MiB in use of {:.1} MiB",
            t.region_mem_inuse as f64 / (1 << 20) as f64,
            t.region_mem_total as f64 / (1 << 20) as f64
        ),
    ];
    for (slot, pid, lent, back, reclaimed) in &t.workers {
        text.push(format!(
            "  worker {slot}: pid {:>7} lent {lent:>9} back {back:>9} reclaimed {reclaimed:>5}",
            pid.map_or("-".to_owned(), |p| p.to_string())
        ));
    }
    text.push("  events (eBPF):".to_owned());
    for i in 0..3 {
        text.push(format!(
            "    {}",
            t.events.get(i).map_or("", String::as_str)
        ));
    }
    if live {
        // A line longer than the terminal wraps, and the redraw (which
        // moves up one row per line) would then land on the wrong rows:
        // cut every line to the width, read again at every refresh so a
        // resized window (SIGWINCH) is followed.
        let cols = terminal_columns().unwrap_or(80);
        for l in &mut text {
            if l.chars().count() >= cols {
                *l = l.chars().take(cols.saturating_sub(1)).collect();
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if live && *lines > 0 {
        // Redraw in place: up as many lines as last time, clear each.
        let _ = write!(out, "\x1b[{}A", *lines);
    }
    for l in &text {
        if live {
            let _ = writeln!(out, "\x1b[2K{l}");
        } else {
            let _ = writeln!(out, "{l}");
        }
    }
    *lines = text.len();
    let _ = out.flush();
}
