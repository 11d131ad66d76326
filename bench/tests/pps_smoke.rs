//! Smoke test of the packets-per-second harness: a quick run of every
//! program; each must have moved frames and the generator must have
//! offered traffic. No assertion on speed. Needs root (skipped otherwise).

use skmem_bench::pps::{self, Config};

#[test]
fn quick_run_moves_frames_through_every_program() {
    let cfg = Config::quick();
    if let Some(reason) = pps::skip_reason(&cfg) {
        eprintln!("SKIPPED pps_smoke: {reason}");
        return;
    }
    let mut log = |l: &str| eprintln!("{l}");
    let report = pps::run(&cfg, &mut log).expect("pps quick run");
    eprintln!("{}", report.to_table());
    assert_eq!(
        report.results.len(),
        cfg.workloads.len() * cfg.implementations.len()
    );
    assert!(report.generator_completed > 0, "the generator sent nothing");
    for r in &report.results {
        assert!(r.mpps.median > 0.0, "{}: no frames counted", r.program);
        assert!(
            r.offered_mpps.median > 0.0,
            "{}: nothing offered",
            r.program
        );
        assert!(
            r.xdp_redirected_mpps.median > 0.0,
            "{}: XDP redirected nothing",
            r.program
        );
        assert_eq!(r.reps_mpps.len(), cfg.reps as usize, "{}", r.program);
    }
    assert_eq!(report.ratios.len(), cfg.workloads.len());
}
