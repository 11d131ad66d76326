//! The mempool comparison: skmem's side runs and gives sane rates; the
//! parser reads real `dpdk-test` output. No speed is asserted.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use skmem_bench::mempool::dpdk::{self, Parser, Phase};
use skmem_bench::mempool::{self, skmem, Case};

/// Captured from Debian's dpdk-test 22.11.11 on this project's 2-vCPU
/// machine (`DPDK_TEST=mempool_perf_autotest dpdk-test -l 0,1 --main-lcore
/// 0 --no-huge -m 1024 --no-pci`), unmodified clock; EAL lines included.
const CAPTURED_NOCACHE: &str = "\
EAL: Detected CPU lcores: 2
EAL: Detected NUMA nodes: 1
APP: HPET is not enabled, using TSC as default timer
RTE>>mempool_perf_autotest
start performance test (without cache)
mempool_autotest cache=0 cores=1 n_get_bulk=1 n_put_bulk=1 n_keep=32 constant_n=0 rate_persec=42401792
mempool_autotest cache=0 cores=1 n_get_bulk=1 n_put_bulk=1 n_keep=32 constant_n=1 rate_persec=43030937
mempool_autotest cache=0 cores=1 n_get_bulk=1 n_put_bulk=1 n_keep=128 constant_n=0 rate_persec=42939187
mempool_autotest cache=0 cores=1 n_get_bulk=1 n_put_bulk=4 n_keep=32 constant_n=0 rate_persec=63950028
";

/// Captured the same way with the clock divided by 10 (0.5 s cases, the
/// `mempool` binary's default): the ends of the cache-less and default-ops
/// phases and the start of the cached one.
const CAPTURED_CACHE: &str = "\
mempool_autotest cache=0 cores=2 n_get_bulk=32 n_put_bulk=32 n_keep=512 constant_n=1 rate_persec=1389362
start performance test for ring_mp_mc (without cache)
mempool_autotest cache=0 cores=1 n_get_bulk=1 n_put_bulk=1 n_keep=32 constant_n=0 rate_persec=865075
mempool_autotest cache=0 cores=2 n_get_bulk=32 n_put_bulk=32 n_keep=512 constant_n=1 rate_persec=2398617
start performance test (with cache)
mempool_autotest cache=512 cores=1 n_get_bulk=1 n_put_bulk=1 n_keep=32 constant_n=0 rate_persec=5373952
mempool_autotest cache=512 cores=1 n_get_bulk=1 n_put_bulk=1 n_keep=32 constant_n=1 rate_persec=6658457
mempool_autotest cache=512 cores=1 n_get_bulk=1 n_put_bulk=1 n_keep=128 constant_n=0 rate_persec=6003097
";

#[test]
fn parser_reads_captured_nocache_lines() {
    let mut p = Parser::new(1.0);
    let lines: Vec<_> = CAPTURED_NOCACHE
        .lines()
        .filter_map(|l| p.feed(l).expect("parses"))
        .collect();
    assert_eq!(lines.len(), 4);
    let first = &lines[0];
    assert_eq!(first.phase, Phase::NoCache);
    assert_eq!(
        (
            first.cache_size,
            first.cores,
            first.get,
            first.put,
            first.keep
        ),
        (0, 1, 1, 1, 32)
    );
    assert!(!first.constant && lines[1].constant);
    assert_eq!(first.rate_printed, 42_401_792);
    assert_eq!(first.rate, 42_401_792.0);
    assert_eq!(
        first.case(),
        Some(Case {
            cache: false,
            cores: 1,
            get: 1,
            put: 1,
            keep: 32
        })
    );
    assert_eq!((lines[3].get, lines[3].put), (1, 4));
}

#[test]
fn parser_reads_captured_cache_lines_and_scales() {
    let mut p = Parser::new(10.0);
    let lines: Vec<_> = CAPTURED_CACHE
        .lines()
        .filter_map(|l| p.feed(l).expect("parses"))
        .collect();
    assert_eq!(lines.len(), 6);
    // Before any phase line the phase is unknown: no case of ours.
    assert_eq!(lines[0].phase, Phase::Unknown);
    assert_eq!(lines[0].case(), None);
    assert_eq!(lines[1].phase, Phase::DefaultOps("ring_mp_mc".into()));
    assert_eq!(lines[3].rate, 53_739_520.0);
    // The default-ops phase maps to no case of ours; the cached one does.
    assert!(lines
        .iter()
        .any(|l| matches!(l.phase, Phase::DefaultOps(_)) && l.case().is_none()));
    let cached: Vec<_> = lines.iter().filter(|l| l.phase == Phase::Cache).collect();
    assert!(!cached.is_empty());
    for l in cached {
        assert_eq!(l.cache_size, 512);
        assert!(l.case().is_some_and(|c| c.cache));
        assert_eq!(l.rate, l.rate_printed as f64 * 10.0);
    }
}

#[test]
fn parser_rejects_a_garbled_result() {
    let mut p = Parser::new(1.0);
    let bad = "mempool_autotest cache=0 cores=x n_get_bulk=1 n_put_bulk=1 n_keep=32 \
               constant_n=0 rate_persec=5";
    assert!(p.feed(bad).is_err());
    // Lines that are not results are skipped.
    assert!(p.feed("mempool is not full").unwrap().is_none());
}

#[test]
fn skmem_cases_give_nonzero_rates() {
    let settings = skmem::Settings {
        seconds: 0.05,
        pool_objects: mempool::pool_size(2),
        magazine_rounds: None,
        obj_size: mempool::PACKET_OBJ_SIZE,
        cpus: vec![0, 1],
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cores = if cpus >= 2 { "*" } else { "1" };
    let cases = mempool::select(&format!("*/{cores}/4x1/32,on/1/32x32/512")).unwrap();
    for case in cases {
        let m = skmem::run_case(case, &settings).expect("case runs");
        assert_eq!(m.per_core.len(), case.cores as usize);
        assert!(
            m.per_core.iter().all(|&r| r.is_finite() && r > 0.0),
            "{m:?}"
        );
        assert!(m.region_objects as usize >= settings.pool_objects);
        assert_eq!(m.magazine_rounds > 0, case.cache);
    }
}

#[test]
fn rows_join_both_sides() {
    let case = Case {
        cache: true,
        cores: 1,
        get: 1,
        put: 1,
        keep: 32,
    };
    let mut p = Parser::new(1.0);
    p.feed("start performance test (with cache)").unwrap();
    let line = p
        .feed(
            "mempool_autotest cache=512 cores=1 n_get_bulk=1 n_put_bulk=1 n_keep=32 \
             constant_n=0 rate_persec=200000000",
        )
        .unwrap()
        .unwrap();
    let m = skmem::Measured {
        case,
        rate: 300e6,
        per_core: vec![300e6],
        region_objects: 2048,
        magazine_rounds: 62,
    };
    let rows = mempool::rows(&[case], &[m], &[line]);
    assert_eq!(rows[0].ratio, Some(1.5));
    assert!(mempool::table(&rows).contains("| on | 1 | 1/1 | 32 | 300 | 200 | 1.50× |"));
}

/// A stand-in for `dpdk-test` in a fresh directory: a script that prints
/// `output`, then runs `then` (`exit 3`, `exec sleep 30`).
fn fake_dpdk_test(tag: &str, output: &str, then: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("skmem-fake-dpdk-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dpdk-test");
    let script =
        format!("#!/bin/sh\ncat <<'END'\n{output}END\necho \"EAL: from stderr\" >&2\n{then}\n");
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Runs the stand-in with 0.5 s cases (the clock divided by 10).
fn run_fake(binary: &std::path::Path, want: &[Case]) -> anyhow::Result<dpdk::Run> {
    let settings = dpdk::Settings {
        binary: binary.to_owned(),
        lcores: vec![0],
        seconds: 0.5,
        budget: std::time::Duration::from_secs(20),
        echo: false,
    };
    let run = dpdk::run(&settings, want);
    if let Some(dir) = binary.parent() {
        let _ = std::fs::remove_dir_all(dir);
    }
    run
}

fn case(cache: bool, cores: u32, keep: u32) -> Case {
    Case {
        cache,
        cores,
        get: 1,
        put: 1,
        keep,
    }
}

#[test]
fn dpdk_run_stops_once_every_requested_case_was_printed() {
    let output = format!("{CAPTURED_NOCACHE}{CAPTURED_CACHE}");
    let binary = fake_dpdk_test("all", &output, "exec sleep 30");
    let t0 = std::time::Instant::now();
    let run = run_fake(&binary, &[case(false, 1, 32), case(true, 1, 128)]).expect("runs");
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(15),
        "waited for the child"
    );
    assert_eq!(run.stopped, "every requested case was printed");
    assert!(run.missing.is_empty(), "{:?}", run.missing);
    assert_eq!(run.clock_divisor, 10.0);
    assert!(
        run.command.starts_with(
            "DPDK_TEST=mempool_perf_autotest SKMEM_DPDK_TSC_DIV=10 LD_PRELOAD=dpdk_clock.so "
        ),
        "{}",
        run.command
    );
    assert!(
        run.command.contains(
            " -l 0 --main-lcore 0 --no-huge -m 1024 --no-pci --file-prefix skmem-mempool-"
        ),
        "{}",
        run.command
    );
    assert_eq!(run.lines.len(), 10);
    let cached = run.lines.last().unwrap();
    assert_eq!((cached.phase.clone(), cached.keep), (Phase::Cache, 128));
    assert_eq!(cached.rate, 60_030_970.0);
}

#[test]
fn dpdk_run_reports_the_cases_a_finished_child_did_not_reach() {
    let binary = fake_dpdk_test("exit", CAPTURED_NOCACHE, "exit 0");
    let run = run_fake(&binary, &[case(false, 1, 128), case(true, 2, 512)]).expect("runs");
    assert_eq!(run.stopped, "dpdk-test exited (exit status: 0)");
    assert_eq!(run.missing, ["on/2/1x1/512"]);
    assert_eq!(run.lines.len(), 4);
}

#[test]
fn dpdk_run_without_a_result_is_an_error_with_the_last_output() {
    let binary = fake_dpdk_test("none", "EAL: Detected CPU lcores: 2\n", "exit 3");
    let e = run_fake(&binary, &[case(false, 1, 32)]).unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("exited (exit status: 3) without a result line"),
        "{e}"
    );
    assert!(
        e.contains("EAL: Detected CPU lcores: 2") && e.contains("EAL: from stderr"),
        "{e}"
    );
}
