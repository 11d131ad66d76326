//! The XDP program on veth pairs in namespaces of the test's own (root).
//!
//! Each test builds two namespaces joined by a veth pair, attaches the
//! program to end `a`, sends hand-built frames from end `b` with an
//! AF_PACKET socket and checks the counters exactly. Namespaces and links
//! are removed by drop guards, also when a test fails. Without root the
//! tests print why and pass.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

mod support;

use std::os::fd::{AsFd as _, AsRawFd as _, FromRawFd as _, OwnedFd};

use skmem_xdp::{
    AttachMode, AttachedMode, XdpAction, XdpCounters, XdpError, XdpFilter, XdpProgram,
};
use support::frames::{self, Ipv4, Macs};
use support::{ip, Queues, VethPair};

fn macs(pair: &VethPair) -> Macs {
    Macs {
        dst: pair.mac_a,
        src: pair.mac_b,
    }
}

fn attach(pair: &VethPair, mode: AttachMode, filter: Option<XdpFilter>) -> XdpProgram {
    let a = pair.a.clone();
    pair.in_a(move || XdpProgram::attach(&a, mode, filter))
        .unwrap_or_else(|e| panic!("attach {mode}: {e}"))
}

/// (a) + (d): no socket registered, every frame seen and passed, in both
/// modes; nothing stays attached after drop.
#[test]
fn counts_every_frame_and_passes_without_socket() {
    if !support::can_run("counts_every_frame_and_passes_without_socket") {
        return;
    }
    for (mode, attached, flag) in [
        (AttachMode::Native, AttachedMode::Native, "xdp"),
        (AttachMode::Generic, AttachedMode::Generic, "xdpgeneric"),
    ] {
        let pair = VethPair::new();
        assert_eq!(pair.xdp_on_a(), None);
        let prog = attach(&pair, mode, None);
        assert_eq!(prog.mode(), attached);
        assert_eq!(prog.iface(), pair.a);
        assert_eq!(pair.xdp_on_a().as_deref(), Some(flag), "{mode}");
        assert_eq!(prog.counters().unwrap(), XdpCounters::default());

        const N: u32 = 300;
        let m = macs(&pair);
        let frames: Vec<_> = (0..N).map(|i| frames::udp4(m, 7000, i)).collect();
        pair.sender()
            .send_paced(&frames, 0, || prog.counters().unwrap().seen);
        let c = prog.counters().unwrap();
        assert_eq!(
            c,
            XdpCounters {
                seen: u64::from(N),
                passed: u64::from(N),
                ..XdpCounters::default()
            },
            "{mode}"
        );

        drop(prog);
        assert_eq!(pair.xdp_on_a(), None, "still attached after drop");
    }
}

/// (b): a UDP port range sends everything else to the stack, counted as
/// filtered; matching frames with no socket are passed.
#[test]
fn filter_counts_excluded_frames() {
    if !support::can_run("filter_counts_excluded_frames") {
        return;
    }
    let pair = VethPair::new();
    let m = macs(&pair);
    let filter = XdpFilter::new().with_udp_dst_ports(5000, 5999);
    let prog = attach(&pair, AttachMode::Native, Some(filter));
    assert_eq!(prog.filter(), filter);

    let mut matching = Vec::new();
    let mut excluded = Vec::new();
    for (i, port) in (4990..5010).chain(5990..6010).enumerate() {
        let frame = frames::udp4(m, port, i as u32);
        if (5000..=5999).contains(&port) {
            matching.push(frame);
        } else {
            excluded.push(frame);
        }
    }
    // IPv6 UDP in range matches (no EtherType given); out of range not.
    matching.push(frames::udp6(m, 5500, 1));
    excluded.push(frames::udp6(m, 6500, 2));
    // IPv4 options move the UDP header: still parsed.
    let opts = Ipv4 {
        options: true,
        ..Ipv4::default()
    };
    matching.push(frames::ipv4(m, opts, &frames::udp(5001, 3)));
    excluded.push(frames::ipv4(m, opts, &frames::udp(80, 4)));
    // Not UDP, fragments, non-IP and truncated frames never match.
    let tcp = Ipv4 {
        proto: 6,
        ..Ipv4::default()
    };
    excluded.push(frames::ipv4(m, tcp, &frames::tcp(5000)));
    let first_fragment = Ipv4 {
        frag: 0x2000, // MF
        ..Ipv4::default()
    };
    excluded.push(frames::ipv4(m, first_fragment, &frames::udp(5000, 5)));
    let later_fragment = Ipv4 {
        frag: 3,
        ..Ipv4::default()
    };
    excluded.push(frames::ipv4(m, later_fragment, &frames::udp(5000, 6)));
    excluded.push(frames::arp(m));
    excluded.push(frames::truncated_ipv4(m));

    // Interleave so the counts cannot come out right by accident of order.
    let mut all = Vec::new();
    let (mut mi, mut ei) = (matching.iter(), excluded.iter());
    loop {
        match (mi.next(), ei.next()) {
            (None, None) => break,
            (a, b) => all.extend(a.into_iter().chain(b).cloned()),
        }
    }
    pair.sender()
        .send_paced(&all, 0, || prog.counters().unwrap().seen);
    assert_eq!(
        prog.counters().unwrap(),
        XdpCounters {
            seen: all.len() as u64,
            passed: matching.len() as u64,
            filtered: excluded.len() as u64,
            ..XdpCounters::default()
        }
    );
    drop(prog);

    // EtherType only: IPv4 of any protocol matches, IPv6 and ARP do not.
    let filter = XdpFilter::new().with_ethertype(skmem_xdp::ETH_P_IP);
    let prog = attach(&pair, AttachMode::Native, Some(filter));
    let frames = vec![
        frames::udp4(m, 1, 0),
        frames::ipv4(m, tcp, &frames::tcp(22)),
        frames::udp6(m, 1, 1),
        frames::arp(m),
        frames::truncated_ipv4(m),
    ];
    pair.sender()
        .send_paced(&frames, 0, || prog.counters().unwrap().seen);
    assert_eq!(
        prog.counters().unwrap(),
        XdpCounters {
            seen: 5,
            passed: 3,
            filtered: 2,
            ..XdpCounters::default()
        }
    );
}

/// (c): Auto reports the mode it got: native where the veth allows it
/// (again after a detach), generic where native fails (RX queues fewer
/// than the peer's TX queues: ENOSPC).
#[test]
fn auto_reports_the_mode() {
    if !support::can_run("auto_reports_the_mode") {
        return;
    }
    let pair = VethPair::new();
    for round in 0..2 {
        let prog = attach(&pair, AttachMode::Auto, None);
        assert_eq!(prog.mode(), AttachedMode::Native, "round {round}");
        assert_eq!(pair.xdp_on_a().as_deref(), Some("xdp"));
        if round == 0 {
            // A second program on the same interface is refused, and the
            // error says where and why.
            let a = pair.a.clone();
            let err = pair
                .in_a(move || XdpProgram::attach(&a, AttachMode::Auto, None))
                .unwrap_err();
            let text = err.to_string();
            eprintln!("second attach: {text}");
            assert!(matches!(err, XdpError::AutoAttach { .. }), "{text}");
            assert!(text.contains(&pair.a), "{text}");
            assert!(
                text.contains("native mode") && text.contains("generic mode"),
                "{text}"
            );
            assert!(err.errno().is_some(), "{text}");
            // The first one still works.
            assert_eq!(pair.xdp_on_a().as_deref(), Some("xdp"));
        }
        drop(prog);
        assert_eq!(pair.xdp_on_a(), None);
    }

    // One RX queue on `a`, four TX queues on its peer: native refused.
    let pair = VethPair::with_queues(Queues { rx: 1, tx: 1 }, Queues { rx: 4, tx: 4 });
    let a = pair.a.clone();
    let err = pair
        .in_a(move || XdpProgram::attach(&a, AttachMode::Native, None))
        .unwrap_err();
    let text = err.to_string();
    eprintln!("native on 1 RX queue: {text}");
    assert_eq!(err.errno(), Some(libc::ENOSPC), "{text}");
    assert!(
        text.contains(&pair.a) && text.contains("native mode"),
        "{text}"
    );
    let prog = attach(&pair, AttachMode::Auto, None);
    assert_eq!(prog.mode(), AttachedMode::Generic);
    assert_eq!(pair.xdp_on_a().as_deref(), Some("xdpgeneric"));
    let frames: Vec<_> = (0..20).map(|i| frames::udp4(macs(&pair), 9, i)).collect();
    pair.sender()
        .send_paced(&frames, 0, || prog.counters().unwrap().seen);
    assert_eq!(prog.counters().unwrap().passed, 20);
    prog.detach().unwrap();
    assert_eq!(pair.xdp_on_a(), None);
}

/// Errors name what failed and carry the kernel's reason.
#[test]
fn errors_carry_the_reason() {
    if !support::can_run("errors_carry_the_reason") {
        return;
    }
    let err = skmem_xdp::ifindex("sxdp-missing0").unwrap_err();
    eprintln!("missing: {err}");
    assert!(matches!(err, XdpError::InterfaceNotFound { .. }), "{err}");
    assert_eq!(err.errno(), Some(libc::ENODEV), "{err}");
    assert!(err.to_string().contains("sxdp-missing0"), "{err}");
    for bad in ["", "name-longer-than-15", "nul\0byte"] {
        let err = XdpProgram::attach(bad, AttachMode::Auto, None).unwrap_err();
        assert!(
            matches!(err, XdpError::InvalidInterfaceName { .. }),
            "{bad:?}: {err}"
        );
    }

    let pair = VethPair::new();
    let mut prog = attach(&pair, AttachMode::Native, None);
    // Not an AF_XDP socket: the kernel refuses it.
    // SAFETY: plain socket(2) call; the result is checked.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    assert!(raw >= 0);
    // SAFETY: a new descriptor nothing else owns.
    let udp = unsafe { OwnedFd::from_raw_fd(raw) };
    let err = prog.add_socket(0, udp.as_fd()).unwrap_err();
    eprintln!("UDP socket: {err}");
    assert_eq!(err.errno(), Some(libc::EOPNOTSUPP), "{err}");
    assert!(err.to_string().contains("queue 0"), "{err}");
    // Past the map's end.
    let err = prog
        .add_socket(skmem_xdp::XSKS_MAX_ENTRIES, udp.as_fd())
        .unwrap_err();
    eprintln!("queue 64: {err}");
    assert!(err.to_string().contains("max_entries"), "{err}");
    // Removing a socket that was never added is fine.
    prog.remove_socket(3).unwrap();
    assert!(udp.as_raw_fd() >= 0);
}

/// Frames on a queue with a registered AF_XDP socket reach it intact;
/// after the socket is removed they go to the stack again.
#[test]
fn redirects_to_an_af_xdp_socket() {
    if !support::can_run("redirects_to_an_af_xdp_socket") {
        return;
    }
    // One queue each way, so every frame arrives on queue 0.
    let q = Queues { rx: 1, tx: 1 };
    let pair = VethPair::with_queues(q, q);
    let m = macs(&pair);
    let filter = XdpFilter::new().with_udp_dst_ports(4000, 4000);
    const N: u32 = 32; // fewer than the frames the fill ring holds
    let mut prog = attach(&pair, AttachMode::Native, Some(filter));
    // skmem's own channel, in copy mode, on A's queue 0: the same AF_XDP
    // layer the library runs, not a second one for the tests.
    let ifname = pair.a.clone();
    let (_arena, mut ch) = pair
        .in_a(move || {
            let arena = skmem::Arena::create_nexus(&skmem::NexusParams::new("xdp-redirect"))?;
            let mut cp = skmem::ChannelParams::new(&ifname, 0);
            cp.mode = skmem::BindMode::Copy;
            let ch = skmem::Channel::open(&arena, &cp)?;
            Ok::<_, skmem::Error>((arena, ch))
        })
        .expect("AF_XDP channel");
    // Frames on the fill ring before any arrives.
    assert!(ch.refill().unwrap() >= N as usize);
    prog.add_socket(0, ch.fd()).unwrap();

    let frames: Vec<_> = (0..N)
        .flat_map(|i| [frames::udp4(m, 4000, i), frames::arp(m)])
        .collect();
    pair.sender()
        .send_paced(&frames, 0, || prog.counters().unwrap().seen);
    assert_eq!(
        prog.counters().unwrap(),
        XdpCounters {
            seen: 2 * u64::from(N),
            redirected: u64::from(N),
            filtered: u64::from(N),
            ..XdpCounters::default()
        }
    );
    let got = receive(&mut ch, N as usize);
    assert_eq!(got.len(), N as usize);
    for (i, frame) in got.iter().enumerate() {
        assert_eq!(frame, &frames[2 * i], "frame {i}");
    }

    prog.remove_socket(0).unwrap();
    let more: Vec<_> = (0..4).map(|i| frames::udp4(m, 4000, 100 + i)).collect();
    pair.sender()
        .send_paced(&more, 2 * u64::from(N), || prog.counters().unwrap().seen);
    let c = prog.counters().unwrap();
    assert_eq!((c.redirected, c.passed), (u64::from(N), 4));
    let mut none = Vec::new();
    assert_eq!(
        ch.rx_burst(&mut none, 64).unwrap(),
        0,
        "passed, not redirected"
    );
}

/// The bytes of up to `n` frames received on `ch`, waiting at most 5 s.
fn receive(ch: &mut skmem::Channel, n: usize) -> Vec<Vec<u8>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let mut got = Vec::new();
    let mut frames = Vec::with_capacity(64);
    while got.len() < n && std::time::Instant::now() < deadline {
        if ch.rx_burst(&mut frames, 64).unwrap() == 0 {
            ch.poll(10).unwrap();
            continue;
        }
        for f in &frames {
            got.push(ch.data(f).unwrap().to_vec());
        }
        ch.free_rx(&mut frames).unwrap();
    }
    got
}

/// The program is frags-aware: native XDP attaches to a veth with a jumbo
/// MTU, and a frame larger than a page is seen and filtered on its first
/// buffer.
#[test]
fn jumbo_frames_with_frags() {
    if !support::can_run("jumbo_frames_with_frags") {
        return;
    }
    let pair = VethPair::new();
    ip(&["-n", &pair.ns_a.name, "link", "set", &pair.a, "mtu", "9000"]);
    ip(&["-n", &pair.ns_b.name, "link", "set", &pair.b, "mtu", "9000"]);
    let filter = XdpFilter::new().with_udp_dst_ports(6000, 6000);
    let prog = attach(&pair, AttachMode::Native, Some(filter));
    assert_eq!(prog.mode(), AttachedMode::Native);
    let m = macs(&pair);
    let big = |port: u16| {
        let mut l4 = frames::udp(port, 0);
        l4.resize(8000, 0x5a);
        let len = l4.len() as u16;
        l4[4..6].copy_from_slice(&len.to_be_bytes());
        frames::ipv4(m, Ipv4::default(), &l4)
    };
    let frames = vec![big(6000), big(6001), big(6000)];
    pair.sender()
        .send_paced(&frames, 0, || prog.counters().unwrap().seen);
    assert_eq!(
        prog.counters().unwrap(),
        XdpCounters {
            seen: 3,
            passed: 2,
            filtered: 1,
            ..XdpCounters::default()
        }
    );
}

/// The ceiling actions: `Drop` on end `a` drops and counts every matching
/// frame; `Tx` on `a` sends each one back with its MACs swapped, and a
/// `Drop` program on `b` (which `XDP_TX` from a veth needs to deliver)
/// counts them all; non-matching frames still go to the stack.
#[test]
fn drop_and_tx_actions_count_every_matching_frame() {
    if !support::can_run("drop_and_tx_actions_count_every_matching_frame") {
        return;
    }
    const N: u32 = 200;
    let filter = XdpFilter::new().with_udp_dst_ports(7000, 7000);
    for action in [XdpAction::Drop, XdpAction::Tx] {
        let pair = VethPair::new();
        let m = macs(&pair);
        let a = pair.a.clone();
        let prog = pair
            .in_a(move || {
                XdpProgram::attach_with_action(&a, AttachMode::Native, Some(filter), action)
            })
            .unwrap_or_else(|e| panic!("attach {action:?}: {e}"));
        assert_eq!(prog.action(), action);
        let b = pair.b.clone();
        let sink = support::in_netns(&pair.ns_b.name, move || {
            XdpProgram::attach_with_action(&b, AttachMode::Native, None, XdpAction::Drop)
        })
        .unwrap_or_else(|e| panic!("attach the sink on b: {e}"));
        let mut frames: Vec<_> = (0..N).map(|i| frames::udp4(m, 7000, i)).collect();
        frames.push(frames::udp4(m, 7001, N));
        pair.sender()
            .send_paced(&frames, 0, || prog.counters().unwrap().seen);
        let mut want = XdpCounters {
            seen: u64::from(N) + 1,
            filtered: 1,
            ..XdpCounters::default()
        };
        match action {
            XdpAction::Drop => want.dropped = u64::from(N),
            _ => want.transmitted = u64::from(N),
        }
        assert_eq!(prog.counters().unwrap(), want, "{action:?}");
        if action == XdpAction::Tx {
            support::wait_until(
                || sink.counters().unwrap().dropped >= u64::from(N),
                "the reflected frames reaching b's XDP",
            );
        }
        let back = sink.counters().unwrap();
        let expect_back = if action == XdpAction::Tx {
            u64::from(N)
        } else {
            0
        };
        assert_eq!(back.dropped, expect_back, "{action:?}: {back:?}");
    }
}
