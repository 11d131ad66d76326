//! skmemctl's conventions, as xdp-tools and bpftool users expect them:
//! bad values refused with exit 2 naming the flag and its range before
//! anything is attached, errors as JSON under `--json`, EPERM said with
//! the capability needed, shell completions and a man page from the clap
//! definitions.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::process::{Command, Output};

const SKMEMCTL: &str = env!("CARGO_BIN_EXE_skmemctl");

fn run(args: &[&str]) -> Output {
    Command::new(SKMEMCTL).args(args).output().unwrap()
}

/// skmemctl run as nobody (uid and gid 65534); the caller is root.
fn as_nobody(args: &[&str]) -> Output {
    use std::os::unix::process::CommandExt as _;
    Command::new(SKMEMCTL)
        .args(args)
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// XDP programs attached to loopback (nothing may be, after a refusal).
fn xdp_on_lo() -> String {
    let o = Command::new("ip")
        .args(["-d", "link", "show", "lo"])
        .output();
    o.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

#[test]
fn bad_values_exit_2_naming_the_flag_and_its_range() {
    let cases: &[(&[&str], &str)] = &[
        (
            &["fwd", "--mode", "rxdrop", "--iface", "lo", "--batch", "0"],
            "--batch",
        ),
        (
            &["fwd", "--mode", "rxdrop", "--iface", "lo", "--fifo", "100"],
            "1..=99",
        ),
        (
            &["fwd", "--mode", "txonly", "--iface", "lo", "--size", "10"],
            "60..=2048",
        ),
        (
            &[
                "fwd", "--mode", "txonly", "--iface", "lo", "--size", "100000",
            ],
            "--size",
        ),
        (
            &["fwd", "--mode", "rxdrop", "--iface", "lo", "--packets", "0"],
            "--packets",
        ),
        (
            &[
                "fwd",
                "--mode",
                "rxdrop",
                "--iface",
                "lo",
                "--packets",
                "100000000",
            ],
            "--packets",
        ),
        (
            &["fwd", "--mode", "rxdrop", "--iface", "lo", "--cpu", "99999"],
            "--cpu",
        ),
        (
            &[
                "fwd",
                "--mode",
                "rxdrop",
                "--iface",
                "lo",
                "--interval",
                "0",
            ],
            "--interval",
        ),
        (
            &[
                "fwd",
                "--mode",
                "rxdrop",
                "--iface",
                "lo",
                "--xdp-mode",
                "warp",
            ],
            "--xdp-mode",
        ),
        (
            &["gen", "--iface", "lo", "--duration", "18446744073709551615"],
            "--duration",
        ),
        (&["gen", "--iface", "../../x"], "not an interface name"),
        (&["gen", "--iface", "lo", "--size", "10"], "--size"),
        (&["watch", "--duration", "inf"], "--duration"),
        (
            &["demo", "--duration", "18446744073709551615"],
            "--duration",
        ),
        (&["demo", "--window", "0"], "--window"),
        (
            &[
                "fwd",
                "--mode",
                "rxdrop",
                "--iface",
                "lo",
                "--workers",
                "1",
                "--busy-poll",
            ],
            "--busy-poll",
        ),
        (
            &[
                "fwd",
                "--mode",
                "rxdrop",
                "--iface",
                "lo",
                "--workers",
                "1",
                "--shared-umem",
            ],
            "--shared-umem",
        ),
        (
            &[
                "fwd",
                "--mode",
                "rxdrop",
                "--iface",
                "lo",
                "--poll",
                "--spin-us",
                "5",
            ],
            "--spin-us",
        ),
        (
            &[
                "fwd",
                "--mode",
                "rxdrop",
                "--iface",
                "lo",
                "--spin-us",
                "200000",
            ],
            "--spin-us",
        ),
        (
            &[
                "fwd",
                "--mode",
                "rxdrop",
                "--iface",
                "lo",
                "--spin",
                "--spin-max-us",
                "500",
            ],
            "--spin-max-us",
        ),
        (
            &[
                "fwd",
                "--mode",
                "txonly",
                "--iface",
                "lo",
                "--spin-max-us",
                "500",
            ],
            "--spin-max-us: rxdrop or l2fwd only",
        ),
        // Flags the run would not use are refused, not ignored — typed with
        // their default value too.
        (
            &[
                "fwd",
                "--mode",
                "txonly",
                "--iface",
                "lo",
                "--spin-us",
                "20",
            ],
            "--spin-us: rxdrop or l2fwd only",
        ),
        (
            &[
                "fwd",
                "--mode",
                "txonly",
                "--iface",
                "lo",
                "--spin-max-us",
                "250",
            ],
            "--spin-max-us: rxdrop or l2fwd only",
        ),
        (
            &["fwd", "--mode", "rxdrop", "--iface", "lo", "--count", "0"],
            "--count: txonly only",
        ),
        (
            &["fwd", "--mode", "l2fwd", "--iface", "lo", "--size", "64"],
            "--size: txonly only",
        ),
        (
            &["fwd", "--mode", "rxdrop", "--iface", "lo", "--count", "10"],
            "--count: txonly only",
        ),
        (
            &["fwd", "--mode", "l2fwd", "--iface", "lo", "--size", "100"],
            "--size: txonly only",
        ),
        (
            &["fwd", "--mode", "txonly", "--iface", "lo", "--poll"],
            "--poll: rxdrop or l2fwd only",
        ),
        (
            &["fwd", "--mode", "txonly", "--iface", "lo", "--fifo", "1"],
            "--fifo: rxdrop or l2fwd only",
        ),
        (
            &["fwd", "--mode", "rxdrop", "--iface", "lo", "--workers", "0"],
            "--workers",
        ),
        (
            &[
                "gen",
                "--iface",
                "lo",
                "--rate",
                "1000",
                "--run-frames",
                "10",
            ],
            "--run-frames",
        ),
        (&["stats", "--offer", "/x", "--pid", "1"], "--pid"),
        (
            &["stats", "--offer", "/x", "--format", "prometheus"],
            "--format prometheus",
        ),
        (&["demo", "--duration", "0"], "--duration"),
        (&["worker", "--path", "/x", "--fifo", "0"], "1..=99"),
        (&["worker", "--path", "/x", "--cpu", "99999"], "--cpu"),
        (&["map", "--path", "/x", "--duration", "nan"], "--duration"),
    ];
    let before = xdp_on_lo();
    for (args, says) in cases {
        let o = run(args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?} should name {says}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
    }
    assert_eq!(xdp_on_lo(), before, "a refusal attached nothing");
}

#[test]
fn a_queue_the_device_lacks_is_refused_before_anything_is_attached() {
    let o = run(&["fwd", "--mode", "rxdrop", "--iface", "lo", "--queue", "7"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--queue 7") && err.contains("receive queue"),
        "{err}"
    );
    let o = run(&["fwd", "--mode", "rxdrop", "--iface", "skmemnope0"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("no such interface"), "{}", stderr(&o));
}

#[test]
fn with_json_an_error_is_one_json_object_on_stderr() {
    let o = run(&["fwd", "--json", "--mode", "rxdrop", "--iface", "skmemnope0"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    let v: serde_json::Value = serde_json::from_str(err.trim()).expect(&err);
    assert_eq!(v["type"], "error");
    assert_eq!(v["exit"], 2);
    assert!(v["error"].as_str().unwrap().contains("skmemnope0"), "{v}");
}

#[test]
fn completions_and_man_pages_come_from_the_command_line_definitions() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(s.contains("skmemctl") && s.contains("xdp-mode"), "{shell}");
    }
    let o = run(&["man"]);
    assert!(o.status.success());
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(page.starts_with(".ie") || page.contains(".TH"), "{page}");
    assert!(page.contains("fwd"), "the page lists the commands");
    let o = run(&["man", "fwd"]);
    let page = String::from_utf8_lossy(&o.stdout);
    assert!(page.contains("skmemctl\\-fwd") || page.contains("skmemctl-fwd"));
    assert!(page.contains("interval"), "{page}");
    let o = run(&["man", "nope"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn without_privilege_fwd_says_eperm_and_the_capabilities() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to drop to an unprivileged uid");
        return;
    }
    let o = as_nobody(&[
        "fwd",
        "--mode",
        "rxdrop",
        "--iface",
        "lo",
        "--duration",
        "1",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("EPERM") && err.contains("CAP_NET_ADMIN") && err.contains("CAP_BPF"),
        "{err}"
    );
}

#[test]
fn soak_with_json_refuses_an_unprivileged_user_in_json() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to drop to an unprivileged uid");
        return;
    }
    let o = as_nobody(&["soak", "--json", "--seconds", "20"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    let v: serde_json::Value = serde_json::from_str(err.trim()).expect(&err);
    assert_eq!(v["type"], "error", "{v}");
    assert!(v["error"].as_str().unwrap().contains("as root"), "{v}");
}

#[test]
fn a_kernel_error_is_said_once() {
    let sock = std::env::temp_dir().join(format!("skmem-cli-{}-nope.sock", std::process::id()));
    let o = run(&["map", "--path", sock.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
}
