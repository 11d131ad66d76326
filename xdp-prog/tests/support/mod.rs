//! Test harness: namespaces and veth pairs that always go away, code run in
//! a namespace, and hand-built Ethernet frames sent from an AF_PACKET
//! socket. (AF_XDP is skmem's own channel: there is no second one here.)
//!
//! Everything a test creates lives in two namespaces of its own, named from
//! the pid and a counter, so parallel tests and runs never share state and
//! no frame leaves the test's veth pair.

#![allow(dead_code)] // each test binary uses a different part

pub mod frames;

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// True when the tests can run (root); otherwise prints why they skip —
/// or fails, where `SKMEM_TEST_NO_SKIP` (set by `cargo xtask test`) says
/// this run may not skip.
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        let reason = "needs root (network namespaces, XDP)";
        if std::env::var_os("SKMEM_TEST_NO_SKIP").is_some() {
            panic!(
                "{test}: would skip ({reason}), but SKMEM_TEST_NO_SKIP says this run may not skip"
            );
        }
        eprintln!("skipped {test}: {reason}");
    }
    root
}

/// Runs `ip ARGS...`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) -> String {
    run("ip", args)
}

/// Runs a command, panicking with its stderr on failure.
pub fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A network namespace, deleted (with the interfaces in it) on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("skxns-{}-{}-{tag}", std::process::id(), unique());
        ip(&["netns", "add", &name]);
        Netns { name }
    }

    /// Runs `sysctl -w SETTING` inside the namespace.
    pub fn sysctl(&self, setting: &str) {
        run(
            "ip",
            &["netns", "exec", &self.name, "sysctl", "-q", "-w", setting],
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        if !matches!(&out, Ok(o) if o.status.success()) {
            eprintln!("warning: could not delete netns {}: {out:?}", self.name);
        }
    }
}

/// Queue counts of one veth end.
#[derive(Clone, Copy)]
pub struct Queues {
    pub rx: u32,
    pub tx: u32,
}

/// A veth pair: end `a` (the one XDP attaches to) in namespace `ns_a`, end
/// `b` (the sender) in `ns_b`. IPv6 is off on both ends, no addresses are
/// configured, so the kernel sends nothing on its own. Deleted on drop.
pub struct VethPair {
    pub a: String,
    pub b: String,
    pub mac_a: [u8; 6],
    pub mac_b: [u8; 6],
    // Dropped after the link (fields drop in declaration order).
    pub ns_a: Netns,
    pub ns_b: Netns,
}

impl VethPair {
    /// A pair with 4 RX and 4 TX queues on both ends.
    pub fn new() -> VethPair {
        let q = Queues { rx: 4, tx: 4 };
        VethPair::with_queues(q, q)
    }

    pub fn with_queues(qa: Queues, qb: Queues) -> VethPair {
        let ns_a = Netns::new("a");
        let ns_b = Netns::new("b");
        let n = unique();
        let pid = std::process::id() % 1_000_000;
        let a = format!("sxv{pid}{n}a");
        let b = format!("sxv{pid}{n}b");
        assert!(a.len() <= 15, "interface name {a} too long");
        let mac_a = [0x02, 0x58, 0x44, 0x50, n as u8, 0x0a];
        let mac_b = [0x02, 0x58, 0x44, 0x50, n as u8, 0x0b];
        let (qa_rx, qa_tx) = (qa.rx.to_string(), qa.tx.to_string());
        let (qb_rx, qb_tx) = (qb.rx.to_string(), qb.tx.to_string());
        let (ma, mb) = (mac_string(&mac_a), mac_string(&mac_b));
        ip(&[
            "link",
            "add",
            &a,
            "address",
            &ma,
            "numrxqueues",
            &qa_rx,
            "numtxqueues",
            &qa_tx,
            "netns",
            &ns_a.name,
            "type",
            "veth",
            "peer",
            "name",
            &b,
            "address",
            &mb,
            "numrxqueues",
            &qb_rx,
            "numtxqueues",
            &qb_tx,
            "netns",
            &ns_b.name,
        ]);
        let pair = VethPair {
            a,
            b,
            mac_a,
            mac_b,
            ns_a,
            ns_b,
        };
        // Router solicitations and the like would disturb exact counts.
        pair.ns_a
            .sysctl(&format!("net.ipv6.conf.{}.disable_ipv6=1", pair.a));
        pair.ns_b
            .sysctl(&format!("net.ipv6.conf.{}.disable_ipv6=1", pair.b));
        ip(&["-n", &pair.ns_a.name, "link", "set", &pair.a, "up"]);
        ip(&["-n", &pair.ns_b.name, "link", "set", &pair.b, "up"]);
        pair
    }

    /// `ip -o link show` of end `a`.
    pub fn link_a(&self) -> String {
        ip(&["-n", &self.ns_a.name, "-o", "link", "show", "dev", &self.a])
    }

    /// The XDP flag `ip link` shows on end `a` (`xdp` for native,
    /// `xdpgeneric`, ...), or `None` when nothing is attached.
    pub fn xdp_on_a(&self) -> Option<String> {
        let link = self.link_a();
        let flag = link
            .split_whitespace()
            .find(|t| t.starts_with("xdp"))
            .map(str::to_owned);
        // With a program attached, ip also prints `prog/xdp id N`.
        assert_eq!(flag.is_some(), link.contains("prog/xdp"), "{link}");
        flag
    }

    /// Runs `f` on a thread inside namespace `a`.
    pub fn in_a<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.ns_a.name, f)
    }

    /// An AF_PACKET socket bound to end `b`.
    pub fn sender(&self) -> Sender {
        let b = self.b.clone();
        in_netns(&self.ns_b.name, move || Sender::bind(&b))
    }
}

impl Drop for VethPair {
    fn drop(&mut self) {
        // Deleting one end deletes both; the namespaces go next.
        let _ = Command::new("ip")
            .args(["-n", &self.ns_a.name, "link", "del", &self.a])
            .output();
    }
}

fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Runs `f` on a new thread that first joins network namespace `ns`
/// (`setns` with `CLONE_NEWNET` changes only the calling thread).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/var/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            let file = File::open(&path).unwrap_or_else(|e| panic!("opening {path}: {e}"));
            // SAFETY: `file` is an open namespace file; setns only changes
            // this thread's network namespace.
            let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns {path}: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// An AF_PACKET raw socket bound to one interface: sends whole Ethernet
/// frames. Created in the interface's namespace; usable from any thread.
pub struct Sender {
    fd: OwnedFd,
}

impl Sender {
    fn bind(iface: &str) -> Sender {
        // Protocol 0: the socket only sends, it receives nothing.
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(raw >= 0, "AF_PACKET socket: {}", io::Error::last_os_error());
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let ifindex = skmem_xdp::ifindex(iface).expect("sender interface");
        // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_ifindex = ifindex as i32;
        // SAFETY: `addr` is a valid sockaddr_ll and the length matches it.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0, "bind AF_PACKET: {}", io::Error::last_os_error());
        Sender { fd }
    }

    pub fn send(&self, frame: &[u8]) {
        // SAFETY: `frame` is a valid buffer of the given length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            io::Error::last_os_error()
        );
    }

    /// Sends `frames`, never more than `window` ahead of what `seen`
    /// reports (a burst can overrun the veth ring before XDP runs), then
    /// waits until `seen` reaches `base + frames.len()` and a little
    /// longer, so a stray extra frame would show.
    pub fn send_paced(&self, frames: &[Vec<u8>], base: u64, seen: impl Fn() -> u64) {
        const WINDOW: u64 = 16;
        for (i, frame) in frames.iter().enumerate() {
            let sent = i as u64;
            if sent >= WINDOW {
                wait_until(|| seen() >= base + sent + 1 - WINDOW, "XDP to catch up");
            }
            self.send(frame);
        }
        let total = base + frames.len() as u64;
        wait_until(|| seen() >= total, "XDP to see every frame");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `cond` every millisecond for up to 5 s.
pub fn wait_until(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}
