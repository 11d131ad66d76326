//! `skmemctl gen` over a real veth: every frame it reports sent reaches
//! the peer's XDP program, `--rate` paces, `--latency` times round trips
//! through `skmemctl fwd --mode l2fwd` on the peer, bad options fail
//! cleanly.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::time::Instant;

use skmem_netns::{format_mac, NetnsPair, PairConfig, Side, DEFAULT_UDP_PORT};
use skmem_xdp::{AttachMode, XdpAction, XdpFilter, XdpProgram};

mod common;

use common::skmemctl;

fn root() -> bool {
    common::netns_ready("skmemctl gen")
}

fn gen(pair: &NetnsPair, extra: &[&str]) -> std::process::Output {
    let mac_a = format_mac(pair.mac(Side::A));
    let mut args = vec![
        "gen",
        "--iface",
        pair.ifname(Side::B),
        "--dst-mac",
        &mac_a,
        "--json",
    ];
    args.extend_from_slice(extra);
    skmemctl::run_in(pair, Side::B, &args)
}

fn summary(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(s["summary"], true, "{s}");
    s
}

#[test]
fn every_frame_gen_sends_reaches_the_peers_xdp_program() {
    if !root() {
        return;
    }
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let if_a = pair.ifname(Side::A).to_owned();
    // An XDP program on A takes the redirected frames (a veth needs one)
    // and drops and counts those of the generator's flow.
    let filter = XdpFilter::new().with_udp_dst_ports(DEFAULT_UDP_PORT, DEFAULT_UDP_PORT);
    let prog = pair.in_ns(Side::A, || {
        XdpProgram::attach_with_action(&if_a, AttachMode::Native, Some(filter), XdpAction::Drop)
            .unwrap()
    });
    let out = gen(&pair, &["--count", "100000", "--size", "1500"]);
    let s = summary(&out);
    eprintln!("gen: {s}");
    assert_eq!(s["sent"].as_u64(), Some(100_000), "{s}");
    assert_eq!(s["size"].as_u64(), Some(1500));
    let c = prog.counters().unwrap();
    assert_eq!(c.dropped, 100_000, "{c:?}");
    drop(prog);
}

#[test]
fn rate_paces_the_generator() {
    if !root() {
        return;
    }
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let if_a = pair.ifname(Side::A).to_owned();
    let prog = pair.in_ns(Side::A, || {
        XdpProgram::attach_with_action(&if_a, AttachMode::Native, None, XdpAction::Drop).unwrap()
    });
    // 30 000 frames at 100 000 per second take at least 0.3 s (bounded
    // below by the pacing; above, only by the machine).
    let t = Instant::now();
    let s = summary(&gen(&pair, &["--count", "30000", "--rate", "100000"]));
    assert_eq!(s["sent"].as_u64(), Some(30_000));
    assert!(s["elapsed_s"].as_f64().unwrap() >= 0.29, "{s}");
    assert!(t.elapsed().as_secs_f64() >= 0.29);
    assert!(prog.counters().unwrap().dropped >= 30_000);
}

#[test]
fn latency_times_round_trips_through_an_l2fwd_on_the_peer() {
    if !root() {
        return;
    }
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    // The forwarder on A: swaps MACs and sends every frame back to B.
    let (fwd, mut lines) = skmemctl::spawn_in(
        &pair,
        Side::A,
        &[
            "fwd",
            "--mode",
            "l2fwd",
            "--iface",
            pair.ifname(Side::A),
            "--cpu",
            "1",
            "--duration",
            "30",
            "--json",
        ],
    );
    // Its first line of rates: the socket is bound and in the XSKMAP.
    let first = lines.next().expect("fwd printed nothing").unwrap();
    assert!(first.contains("elapsed_s"), "{first}");
    let out = gen(
        &pair,
        &[
            "--latency",
            "--rate",
            "20000",
            "--duration",
            "2",
            "--warmup",
            "0.5",
            "--cpu",
            "0",
        ],
    );
    drop(fwd);
    let s = summary(&out);
    eprintln!("gen --latency: {s}");
    // About 40 000 frames at 20 000 a second over 2 s, nearly all back
    // (how many is the machine's to say: a forwarder that never sent
    // back, or a probe that never read, would record none).
    let sent = s["sent"].as_u64().unwrap();
    assert!((30_000..=42_000).contains(&sent), "{s}");
    let (window, recorded) = (
        s["window_sent"].as_u64().unwrap(),
        s["recorded"].as_u64().unwrap(),
    );
    assert!(window > 0 && window < sent, "the warm-up was recorded: {s}");
    assert!(recorded * 10 >= window * 9, "{s}");
    assert_eq!(s["lost"].as_u64(), Some(window - recorded), "{s}");
    assert_eq!(s["foreign"].as_u64(), Some(0), "{s}");
    let q = |k: &str| s[k].as_f64().unwrap();
    assert!(
        q("p50_us") > 0.0
            && q("p50_us") <= q("p99_us")
            && q("p99_us") <= q("p999_us")
            && q("p999_us") <= q("max_us"),
        "{s}"
    );
    // The gaps between bursts were recorded, and what they imply is a
    // share of one CPU.
    assert!((0.0..=1.0).contains(&q("awake_share_99")), "{s}");
    assert!((0.0..=1.0).contains(&q("timer_share_99")), "{s}");
    assert!(q("timer_late_p50_us") > 0.0, "{s}");
    // Bad combinations are refused before anything is attached.
    for (args, says) in [
        (&["--latency"][..], "--rate"),
        (
            &["--latency", "--rate", "1000", "--count", "5"][..],
            "--count",
        ),
        (&["--warmup", "1"][..], "--latency"),
    ] {
        let out = gen(&pair, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

#[test]
fn bad_options_fail_with_a_message() {
    if !root() {
        return;
    }
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    for (args, says) in [
        (&["--batch", "0"][..], "--batch"),
        (&["--size", "9000"][..], "--size"),
        (&["--size", "10"][..], "--size"),
    ] {
        let out = gen(&pair, args);
        // A bad command line: exit 2, as clap's own errors.
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // An interface that is not there (in B's namespace) is named.
    let out = skmemctl::run_in(
        &pair,
        Side::B,
        ["gen", "--iface", "nosuchif0", "--count", "1"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuchif0"));
}
