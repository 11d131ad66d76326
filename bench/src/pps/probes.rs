//! `skmem-probed`: every eBPF probe of `skmemctl watch` attached while a
//! program runs — the lifecycle uprobes on this executable (skmem's hooks
//! are in it) and the kernel tracepoints — and their events read as
//! `watch` reads them, so the matrix shows what observation costs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use skmem_xdp::observe::{ObserveTarget, Observer};

/// The probes, attached, and the thread reading their events; dropping it
/// stops the thread and detaches them.
pub struct Watch {
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<Result<u64>>>,
}

impl Watch {
    /// Attaches the probes to this executable and starts reading events.
    pub fn attach() -> Result<Watch> {
        let exe = std::env::current_exe().context("this executable's path")?;
        let mut obs = Observer::attach(ObserveTarget::binaries([exe]))
            .context("attaching skmemctl watch's probes")?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = Arc::clone(&stop);
        let reader = std::thread::Builder::new()
            .name("pps-watch".into())
            .spawn(move || -> Result<u64> {
                let mut events = 0u64;
                while !s.load(Ordering::Relaxed) {
                    events += obs
                        .next_events(Duration::from_millis(100))
                        .map_err(|e| anyhow!("reading the probes' events: {e}"))?
                        .len() as u64;
                }
                Ok(events)
            })
            .context("starting the probes' reader")?;
        Ok(Watch {
            stop,
            reader: Some(reader),
        })
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            // A reader that failed loses events, not frames: say so and
            // go on (the run's figures stand).
            match r.join() {
                Ok(Ok(_events)) => {}
                Ok(Err(e)) => eprintln!("pps: skmem-probed: {e:#}"),
                Err(_) => eprintln!("pps: skmem-probed: the probes' reader panicked"),
            }
        }
    }
}
