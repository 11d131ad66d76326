//! Packets per second: skmem's AF_XDP channel against other AF_XDP programs
//! and the in-kernel ceilings, on a veth pair between two network
//! namespaces (root only).
//!
//! One [`run`] goes through the configured CPU [`Layout`]s, each on a fresh
//! namespace pair (one RX and one TX queue per side, an MTU that lets the
//! largest frame size through). On B it attaches skmem's XDP program as a
//! counting sink ([`XdpAction::Drop`]: what reached B — txonly's and
//! l2fwd's output — is counted and dropped there). On A it attaches
//! whatever the program under test needs: skmem's XDP program redirecting
//! to the XSKMAP (skmem, xsk-rs, the libxdp C peer), the same program with
//! another action for the in-kernel ceilings (`xdp-drop`, `xdp-tx`), or
//! nothing (DPDK testpmd loads its own) — attached afresh for every program
//! run, so each starts from a new NAPI instance and page pool on A. Then for
//! each workload and frame size it runs [`Config::rounds`] rounds; a round
//! runs every program once (forward order, then reversed in the next
//! round): it starts the generator on B (not for txonly), pinned to the
//! generator CPU, and runs the program on A, pinned to the program CPU.
//! skmem's ratios are medians of per-round ratios, and `skmem-again` (skmem
//! run twice) is the A/A control that shows the machine's noise.
//!
//! Each program measures itself: after a warm-up it samples its own counter
//! at the end of each repetition (received frames for rxdrop, TX
//! completions for txonly and l2fwd; the ceilings' own XDP counters). The
//! harness samples the generator, A's XDP counters (skmem's program, or
//! `ethtool -S` while testpmd's program is attached) and B's sink at the
//! same boundaries.
//!
//! Layouts: in `default` the receiving veth's NAPI work (the XDP program
//! and the copy into the UMEM) runs on the **generator's** CPU, so rxdrop
//! mostly measures that CPU; in `threaded` A's NAPI runs in a kthread
//! pinned to the program's CPU, so the whole receive side competes with the
//! program, which waits with `poll()` there.
//!
//! Where things are: the configuration (workloads, programs, layouts,
//! waiting) in `config`; running the matrix in `run`; measuring one
//! program run in `measure`; what it found in `results`; medians, paired
//! ratios, cells and goals in `analysis`; what parity looks like through
//! the run's noise in `parity`; the text tables in `render`;
//! each peer program in its own module.

pub mod cpeer;
pub mod gen;
pub mod meter;
pub mod napi;
pub mod peers;
pub mod probes;
pub mod sched;
pub mod skmem_prog;
pub mod sys;
pub mod testpmd;
mod xsk_prog;

mod analysis;
mod config;
pub mod latency;
mod measure;
pub mod parity;
mod render;
mod results;
mod run;

pub use analysis::*;
pub use config::*;
pub use results::*;
pub use run::*;

use std::fmt::Write as _;
use std::os::fd::BorrowedFd;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde::Serialize;
use skmem_netns::{NetnsPair, PairConfig, Side, DEFAULT_UDP_PORT};
use skmem_xdp::{AttachMode, XdpAction, XdpFilter, XdpProgram};

use meter::{median_min_max, rates, Meter, Sample, Schedule};
use napi::NapiThread;
use parity::TwinBand;

/// Retries `f` for up to 3 s: a queue stays busy (EBUSY) for a moment
/// after the previous socket on it closed (the kernel releases its buffer
/// pool from a work queue).
pub(crate) fn retry_busy<T>(mut f: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        match f() {
            Ok(t) => return Ok(t),
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Set (by a signal handler, say) to end a [`run`] early: the programs
/// and the generator stop, the namespaces are removed, and `run` returns
/// an error.
pub static INTERRUPT: AtomicBool = AtomicBool::new(false);

fn check_interrupt() -> Result<()> {
    if INTERRUPT.load(Ordering::Relaxed) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps until `until` in short steps, failing early on [`INTERRUPT`].
fn sleep_until(until: Instant) -> Result<()> {
    loop {
        check_interrupt()?;
        let now = Instant::now();
        if now >= until {
            return Ok(());
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
}

/// `poll()` timeout of the `poll` wait mode, in ms (short, so a program
/// samples its counter close to each boundary even when idle).
pub const POLL_TIMEOUT_MS: i32 = 10;

/// Ethernet header bytes: a frame of `size` bytes on the wire (no FCS)
/// carries an IP packet of `size - 14` bytes, which the MTU must allow.
const ETH_HLEN: usize = 14;

/// Bytes the kernel keeps in front of a frame in copy-mode AF_XDP
/// (`XDP_PACKET_HEADROOM`): a frame must fit in a UMEM frame less this.
const XDP_PACKET_HEADROOM: u32 = 256;

#[cfg(test)]
mod tests {
    use super::*;

    /// One round's result of `imp` at `mpps` (one repetition) in the
    /// threaded layout, rxdrop 64 B: the result the tests here and the
    /// rendering's start from.
    pub(super) fn round(imp: Implementation, mpps: f64) -> ProgramResult {
        let stat = Stat {
            median: mpps,
            min: mpps,
            max: mpps,
        };
        ProgramResult {
            layout: Layout::Threaded,
            wait: Wait::Poll,
            generator: Some(gen::GenKind::Xdp),
            workload: Workload::Rxdrop,
            size: 64,
            program: imp.name().to_owned(),
            implementation: imp,
            kind: imp.kind(),
            reps_mpps: vec![mpps],
            mpps: stat,
            offered_mpps: Some(stat),
            xdp_source: XdpSource::SkmemXdp,
            xdp_seen_mpps: Some(stat),
            xdp_redirected_mpps: Some(stat),
            reached_b_mpps: Stat::default(),
            reps_offered_mpps: vec![mpps],
            reps_redirected_mpps: vec![2.0 * mpps],
            reps_seen_mpps: vec![mpps],
            reps_reached_b_mpps: vec![0.0],
            rounds_mpps: vec![mpps],
            share_of_redirected: Some(0.5),
            napi_threads: Vec::new(),
            napi_cpu_share: Some(0.8),
            prog_cpu_busy: Some(1.0),
            prog_cpu_share: Some(mpps / 10.0),
            prog_ns_per_packet: Some(100.0 * mpps),
            napi_ns_per_packet: None,
            machine_busy_cores: Some(1.5),
            machine_ns_per_packet: Some(300.0 * mpps),
            mpps_per_busy_core: Some(mpps / 1.5),
            counters: ProgCounters {
                rx_packets: 10,
                ..ProgCounters::default()
            },
            wall_s: mpps,
        }
    }

    #[test]
    fn rounds_merge_into_one_result_with_per_round_medians() {
        let m = ProgramResult::merge_rounds(vec![
            round(Implementation::Skmem, 1.0),
            round(Implementation::Skmem, 3.0),
            round(Implementation::Skmem, 2.0),
        ])
        .unwrap();
        assert_eq!(m.reps_mpps, [1.0, 3.0, 2.0]);
        assert_eq!(m.rounds_mpps, [1.0, 3.0, 2.0]);
        assert!((m.mpps.median - 2.0).abs() < 1e-9);
        assert!((m.mpps.min - 1.0).abs() < 1e-9 && (m.mpps.max - 3.0).abs() < 1e-9);
        assert_eq!(m.counters.rx_packets, 30);
        assert!((m.prog_cpu_share.unwrap() - 0.2).abs() < 1e-9);
        assert!((m.share_of_redirected.unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(m.napi_ns_per_packet, None);
        assert!((m.wall_s - 3.0).abs() < 1e-9);
        assert!(ProgramResult::merge_rounds(Vec::new()).is_none());
    }

    #[test]
    fn ratios_pair_rounds_so_drift_cancels() {
        // The machine halves its speed over the run: each round's pair
        // sees the same conditions, and skmem is 10 % ahead in every one.
        let merge = |imp, v: &[f64]| {
            ProgramResult::merge_rounds(v.iter().map(|&x| round(imp, x)).collect()).unwrap()
        };
        let skmem = merge(Implementation::Skmem, &[4.4, 3.3, 2.2]);
        let peer = merge(Implementation::XskRs, &[4.0, 3.0, 2.0]);
        let (r, per_round) = paired_ratio(Some(&skmem), Some(&peer));
        assert!((r.unwrap() - 1.1).abs() < 1e-9);
        assert_eq!(per_round.len(), 3);
        assert_eq!(with_range(r, &per_round), "1.100 (1.10-1.10)");
        // One round: the ratio of the medians, no list.
        let (r, per_round) = paired_ratio(
            Some(&round(Implementation::Skmem, 3.0)),
            Some(&round(Implementation::XskRs, 2.0)),
        );
        assert!((r.unwrap() - 1.5).abs() < 1e-9 && per_round.is_empty());
        assert_eq!(paired_ratio(None, Some(&peer)).0, None);
    }

    #[test]
    fn fifo_programs_must_sleep_and_the_sink_needs_spare_frames() {
        let threaded = Config {
            layouts: vec![Layout::Threaded],
            prog_fifo: Some(1),
            ..Config::matrix()
        };
        threaded.validate().unwrap();
        let spinning = Config {
            layouts: vec![Layout::Default],
            wait: Wait::Spin,
            ..threaded.clone()
        };
        let e = spinning.validate().unwrap_err().to_string();
        assert!(e.contains("--wait poll"), "{e}");
        Config {
            wait: Wait::Poll,
            ..spinning
        }
        .validate()
        .unwrap();
        for p in [0, 100] {
            let c = Config {
                prog_fifo: Some(p),
                ..threaded.clone()
            };
            assert!(c.validate().is_err(), "priority {p}");
        }
        // testpmd spins: left out at SCHED_FIFO, run otherwise.
        assert!(threaded.skip_reason(Implementation::Testpmd).is_some());
        assert!(Config::matrix()
            .skip_reason(Implementation::Testpmd)
            .is_none());
        // The sink's fill ring holds twice the RX ring.
        let tight = Config {
            frames: 1024,
            ring_entries: 1024,
            ..Config::matrix()
        };
        assert!(tight.skip_reason(Implementation::XskSink).is_some());
        assert!(Config::matrix()
            .skip_reason(Implementation::XskSink)
            .is_none());
    }

    #[test]
    fn goals_say_how_far_any_program_could_get() {
        let at = |layout, workload, imp, mpps| ProgramResult {
            layout,
            workload,
            ..round(imp, mpps)
        };
        let rxdrop = |imp, mpps| at(Layout::Threaded, Workload::Rxdrop, imp, mpps);
        // Two rounds of the default layout, one in a slow host mode: the
        // l2fwd bound compares each cell's fastest round.
        let rounds = |workload, imp, v: [f64; 2]| {
            ProgramResult::merge_rounds(
                v.iter()
                    .map(|&x| at(Layout::Default, workload, imp, x))
                    .collect(),
            )
            .unwrap()
        };
        let results = vec![
            rxdrop(Implementation::Skmem, 2.0),
            rxdrop(Implementation::XskRs, 2.0),
            rxdrop(Implementation::XskSink, 3.0),
            rxdrop(Implementation::Ceiling, 6.0),
            rounds(Workload::L2fwd, Implementation::Skmem, [0.9, 0.45]),
            rounds(Workload::L2fwd, Implementation::XskRs, [1.0, 0.5]),
            rounds(Workload::Txonly, Implementation::Skmem, [1.1, 0.2]),
            rounds(Workload::Txonly, Implementation::XskRs, [1.05, 0.2]),
        ];
        let cfg = Config {
            layouts: vec![Layout::Default, Layout::Threaded],
            sizes: vec![64],
            ..Config::matrix()
        };
        let cells = cells(&cfg, &results);
        let goals = goals(&cells);
        let find = |layout, workload, ratio| {
            goals
                .iter()
                .find(|g| g.layout == layout && g.workload == workload && g.ratio == ratio)
                .unwrap_or_else(|| panic!("no goal {ratio} in {goals:?}"))
        };
        // Receiving: skmem at 2.0 is at parity with the peer (the sink's
        // 3.0 over the peer's 2.0 is the most any program gets: 1.5×), and
        // 0.67× the sink, short of 0.9×.
        let g = find(Layout::Threaded, Workload::Rxdrop, "skmem_vs_best_peer");
        assert_eq!((g.met, g.reachable), (Some(true), Some(true)));
        assert!((g.bound.unwrap() - 1.5).abs() < 1e-9);
        let g = find(Layout::Threaded, Workload::Rxdrop, "skmem_vs_bound");
        assert_eq!(g.met, Some(false));
        assert!((g.value.unwrap() - 2.0 / 3.0).abs() < 1e-9, "{g:?}");
        // Forwarding: the fastest sender (1.1) over the best peer's l2fwd
        // (1.0), each at its best round, bounds skmem ÷ peer at 1.1 —
        // parity is within reach. (Their medians, 0.65 over 0.75, would
        // have said 0.87.) skmem's median (0.675) over the fastest
        // sender's best round is its share of the bound.
        let g = find(Layout::Default, Workload::L2fwd, "skmem_vs_best_peer");
        assert_eq!((g.met, g.reachable), (Some(false), Some(true)));
        assert!((g.bound.unwrap() - 1.1).abs() < 1e-9, "{g:?}");
        let g = find(Layout::Default, Workload::L2fwd, "skmem_vs_bound");
        assert!((g.value.unwrap() - 0.675 / 1.1).abs() < 1e-9, "{g:?}");
        // No goal for txonly.
        assert!(!goals.iter().any(|g| g.workload == Workload::Txonly));
        // Without the bound's runs, nothing is claimed.
        let cells = super::cells(&cfg, &results[..2]);
        let g = &super::goals(&cells)[0];
        assert_eq!((g.bound, g.reachable), (None, None));
    }
}
