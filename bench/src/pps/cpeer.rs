//! The libxdp C peer: `csrc/xdpsock_peer.c`, an xdpsock-like program on
//! Debian's libxdp (built by `build.rs`), run as a child process.
//!
//! The child inherits the calling thread's network namespace and CPU
//! affinity (the harness's program thread: namespace A, the program CPU).
//! It loads no XDP program: it creates its socket and sends the socket's
//! fd over a `socketpair(AF_UNIX, SOCK_SEQPACKET)` (SCM_RIGHTS); `register`
//! puts it into skmem's XSKMAP. Then it gets the schedule as absolute
//! CLOCK_MONOTONIC nanoseconds, samples its own counter at each boundary
//! and reports the samples and its totals back over the same socket (the
//! protocol is described at the top of the C file). The child is killed
//! and reaped on every path out of [`run`].

use std::fmt::Write as _;
use std::io::{IoSliceMut, Read as _};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::net::{
    recv, recvmsg, send, socketpair, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage,
    RecvFlags, SendFlags, SocketFlags, SocketType,
};

use super::meter::{Meter, Sample};
use super::{ProgCounters, ProgParams, ProgRun};

/// Path of the C peer's executable ("" when build.rs could not build it).
const PEER: &str = env!("SKMEM_XDPSOCK_PEER");

/// How long the child may take to create its socket (it retries a busy
/// queue for up to 3 s itself).
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long after the schedule's last boundary the report may take.
const REPORT_GRACE: Duration = Duration::from_secs(10);
/// How long the child may take to report and exit once told to stop.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// Largest control message (the C side's is 64 KiB).
const MSG_MAX: usize = 1 << 17;

/// Why the C peer cannot run here, or `None`.
pub fn skip_reason() -> Option<String> {
    if PEER.is_empty() {
        return Some(
            "libxdp C peer not built: install libxdp-dev libbpf-dev (cargo xtask setup)".to_owned(),
        );
    }
    if !Path::new(PEER).exists() {
        return Some(format!(
            "libxdp C peer {PEER} is missing: rebuild skmem-bench"
        ));
    }
    None
}

/// Runs `p.workload` in the C peer: spawns it, hands its socket to
/// `register`, sends it the schedule `start` returns and turns its report
/// into a [`ProgRun`]. `stop` ends it early (the samples taken so far are
/// returned).
pub fn run(
    p: &ProgParams,
    register: &mut dyn FnMut(BorrowedFd<'_>) -> Result<()>,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    if let Some(r) = skip_reason() {
        bail!(r);
    }
    let (ctl, theirs) = socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )
    .context("socketpair(AF_UNIX, SOCK_SEQPACKET)")?;
    let mut cmd = Command::new(PEER);
    cmd.args(peer_args(p, theirs.as_raw_fd()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let child_fd = theirs.as_raw_fd();
    // SAFETY: the closure runs in the forked child before exec and only
    // calls fcntl, which is async-signal-safe. `child_fd` is open there:
    // `theirs` stays open in the parent until after the spawn, and the
    // fork copies it. Clearing FD_CLOEXEC in the child alone keeps the
    // fd from leaking into anything else this process spawns meanwhile.
    unsafe {
        cmd.pre_exec(move || {
            let flags = libc::fcntl(child_fd, libc::F_GETFD);
            if flags < 0 || libc::fcntl(child_fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut peer = Peer::spawn(&mut cmd)?;
    // Only the child holds its end now: its exit shows as EOF here.
    drop(theirs);

    let result = session(&mut peer, &ctl, register, start, stop);
    match result {
        Ok(report) => {
            let status = peer.finish(STOP_GRACE)?;
            if !status.success() {
                bail!("xdpsock_peer {status}: {}", peer.stderr());
            }
            Ok(report)
        }
        Err(e) => {
            // Say goodbye, give it a moment to leave by itself (it sends
            // its error message and exits), else kill it.
            let _ = send(&ctl, b"stop", SendFlags::NOSIGNAL);
            let _ = peer.finish(Duration::from_millis(500));
            // Its stderr, unless that only repeats the error it sent.
            let stderr = peer.stderr();
            let said = format!("{e:#}");
            let news: Vec<&str> = stderr
                .lines()
                .filter(|l| !said.contains(l.trim_start_matches("xdpsock_peer: ")))
                .collect();
            if news.is_empty() {
                Err(e)
            } else {
                Err(e.context(format!("xdpsock_peer stderr: {}", news.join("\n"))))
            }
        }
    }
}

/// The control conversation: ready + fd, schedule, report.
fn session(
    peer: &mut Peer,
    ctl: &OwnedFd,
    register: &mut dyn FnMut(BorrowedFd<'_>) -> Result<()>,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    let mut buf = vec![0u8; MSG_MAX];
    let deadline = Instant::now() + READY_TIMEOUT;
    if !wait_readable(ctl, deadline, stop)? {
        bail!("xdpsock_peer did not report ready within {READY_TIMEOUT:?} (or was stopped)");
    }
    let (text, xsk) = recv_with_fd(ctl, &mut buf)?;
    check_peer_error(&text)?;
    if !text.starts_with("ready ") {
        bail!("xdpsock_peer: expected \"ready\", got {text:?}");
    }
    let xsk = xsk.ok_or_else(|| anyhow!("xdpsock_peer's ready message carried no fd"))?;
    register(xsk.as_fd())?;
    // Our copy must go at once: while it is open the socket outlives the
    // child, keeping the queue busy and its XSKMAP entry alive.
    drop(xsk);

    let meter = start();
    let clock = ClockPair::now();
    let mut msg = String::from("schedule");
    for &b in meter.bounds() {
        let _ = write!(msg, " {}", clock.to_ns(b));
    }
    send(ctl, msg.as_bytes(), SendFlags::NOSIGNAL).context("sending the schedule")?;
    let end = *meter
        .bounds()
        .last()
        .ok_or_else(|| anyhow!("empty schedule"))?;

    // Wait for the report; pass a stop on, once.
    let mut deadline = end + REPORT_GRACE;
    let mut stopped = false;
    loop {
        if stop.load(Ordering::Relaxed) && !stopped {
            stopped = true;
            send(ctl, b"stop", SendFlags::NOSIGNAL).context("sending stop")?;
            deadline = deadline.min(Instant::now() + STOP_GRACE);
        }
        let now = Instant::now();
        if now >= deadline {
            bail!("xdpsock_peer sent no report in time");
        }
        let step = (deadline - now).min(Duration::from_millis(50));
        if wait_readable(ctl, now + step, &AtomicBool::new(false))? {
            break;
        }
        if peer.exited()? {
            // It may have sent its last words before exiting.
            if wait_readable(ctl, Instant::now(), &AtomicBool::new(false))? {
                break;
            }
            bail!("xdpsock_peer exited before reporting");
        }
    }
    let (n, _) = recv(ctl, &mut buf[..], RecvFlags::empty()).context("receiving the report")?;
    if n == 0 {
        bail!("xdpsock_peer closed the control socket without a report");
    }
    let text = String::from_utf8_lossy(&buf[..n]);
    check_peer_error(&text)?;
    let report = parse_report(&text)?;
    Ok(ProgRun {
        samples: report
            .samples
            .iter()
            .map(|&(t, value)| Sample {
                at: clock.to_instant(t),
                value,
            })
            .collect(),
        counters: report.counters,
    })
}

fn check_peer_error(text: &str) -> Result<()> {
    match text.strip_prefix("error ") {
        Some(e) => bail!("xdpsock_peer: {}", e.trim()),
        None => Ok(()),
    }
}

/// The C peer's command line.
fn peer_args(p: &ProgParams, ctl_fd: i32) -> Vec<String> {
    let workload = p.workload.name();
    let mut a: Vec<String> = [
        ("--ctl-fd", ctl_fd.to_string()),
        ("--ifname", p.ifname.clone()),
        ("--queue", "0".to_owned()),
        ("--mode", workload.to_owned()),
        ("--batch", p.batch.to_string()),
        ("--frames", p.frames.to_string()),
        ("--frame-size", p.frame_size.to_string()),
        ("--ring", p.ring_entries.to_string()),
        ("--wait", p.wait.name().to_owned()),
        ("--busy-poll-us", super::BUSY_POLL_US.to_string()),
        ("--poll-timeout-ms", super::POLL_TIMEOUT_MS.to_string()),
        ("--tx-budget", p.tx_budget.unwrap_or(0).to_string()),
    ]
    .into_iter()
    .flat_map(|(k, v)| [k.to_owned(), v])
    .collect();
    // The C side knows the workloads by these names (rxdrop, l2fwd,
    // txonly) and refuses others; only txonly needs the frame.
    if workload == "txonly" {
        a.push("--frame".to_owned());
        a.push(p.frame.iter().fold(String::new(), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        }));
    }
    a
}

/// Waits until `fd` is readable (or hung up): `true`, or `false` at
/// `deadline` or when `stop` is set.
fn wait_readable(fd: &OwnedFd, deadline: Instant, stop: &AtomicBool) -> Result<bool> {
    loop {
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        let left = deadline.saturating_duration_since(Instant::now());
        let step = left.min(Duration::from_millis(50));
        let ts = rustix::event::Timespec {
            tv_sec: step.as_secs() as _,
            tv_nsec: step.subsec_nanos() as _,
        };
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => return Ok(true),
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).context("poll on the control socket"),
        }
        if left.is_zero() || stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
    }
}

/// Receives one message and the fd it carries, if any.
fn recv_with_fd(fd: &OwnedFd, buf: &mut [u8]) -> Result<(String, Option<OwnedFd>)> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg(fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
        .context("recvmsg on the control socket")?;
    let mut got = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = m {
            for f in fds {
                // Keep the first; any other is closed as it drops.
                got.get_or_insert(f);
            }
        }
    }
    let n = msg.bytes.min(buf.len());
    if n == 0 {
        bail!("xdpsock_peer closed the control socket (it exited)");
    }
    Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), got))
}

/// One paired read of `Instant` and CLOCK_MONOTONIC (which `Instant` is
/// on Linux), to convert between the two.
#[derive(Debug, Clone, Copy)]
struct ClockPair {
    instant: Instant,
    ns: u64,
}

impl ClockPair {
    fn now() -> Self {
        let instant = Instant::now();
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC
        // always exists on Linux, so the call cannot fail.
        unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
        Self {
            instant,
            ns: ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
        }
    }

    fn to_ns(self, t: Instant) -> u64 {
        match t.checked_duration_since(self.instant) {
            Some(d) => self.ns + d.as_nanos() as u64,
            None => self
                .ns
                .saturating_sub(self.instant.duration_since(t).as_nanos() as u64),
        }
    }

    fn to_instant(self, ns: u64) -> Instant {
        if ns >= self.ns {
            self.instant + Duration::from_nanos(ns - self.ns)
        } else {
            let back = Duration::from_nanos(self.ns - ns);
            self.instant.checked_sub(back).unwrap_or(self.instant)
        }
    }
}

/// The C peer's report: samples `(t_ns, count)` and totals.
#[derive(Debug, Clone, Default)]
struct Report {
    samples: Vec<(u64, u64)>,
    counters: ProgCounters,
}

/// Parses the report message ("sample T N" lines, one "counters k=v ..."
/// line, "end").
fn parse_report(text: &str) -> Result<Report> {
    let mut r = Report::default();
    let (mut counters, mut end) = (false, false);
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("sample") => {
                let mut num = || -> Result<u64> {
                    words
                        .next()
                        .ok_or_else(|| anyhow!("short sample line {line:?}"))?
                        .parse()
                        .with_context(|| format!("sample line {line:?}"))
                };
                let (t, n) = (num()?, num()?);
                r.samples.push((t, n));
            }
            Some("counters") => {
                for kv in words {
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| anyhow!("counter {kv:?} in {line:?}"))?;
                    let v: u64 = v.parse().with_context(|| format!("counter {kv:?}"))?;
                    let c = &mut r.counters;
                    match k {
                        "rx_packets" => c.rx_packets = v,
                        "tx_queued" => c.tx_queued = v,
                        "tx_completed" => c.tx_completed = v,
                        "xsk_rx_dropped" => c.xsk_rx_dropped = v,
                        "xsk_rx_ring_full" => c.xsk_rx_ring_full = v,
                        "xsk_fill_ring_empty" => c.xsk_fill_ring_empty = v,
                        // Newer peers may report more: ignore.
                        _ => {}
                    }
                }
                counters = true;
            }
            Some("end") => end = true,
            _ => bail!("unexpected line in xdpsock_peer's report: {line:?}"),
        }
    }
    if !counters || !end {
        bail!("incomplete report from xdpsock_peer: {text:?}");
    }
    Ok(r)
}

/// The child process: killed and reaped when dropped, whatever happened.
struct Peer {
    child: Option<Child>,
    status: Option<ExitStatus>,
    stderr: String,
}

impl Peer {
    fn spawn(cmd: &mut Command) -> Result<Self> {
        let child = cmd
            .spawn()
            .with_context(|| format!("spawning {}", cmd.get_program().to_string_lossy()))?;
        Ok(Self {
            child: Some(child),
            status: None,
            stderr: String::new(),
        })
    }

    /// Whether the child has exited (it is reaped if so).
    fn exited(&mut self) -> Result<bool> {
        if self.status.is_some() {
            return Ok(true);
        }
        let Some(c) = self.child.as_mut() else {
            return Ok(true);
        };
        match c.try_wait().context("waiting for xdpsock_peer")? {
            Some(s) => {
                self.reaped(s);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Waits up to `timeout` for the child to exit, then kills it; reaps
    /// it either way and returns how it ended.
    fn finish(&mut self, timeout: Duration) -> Result<ExitStatus> {
        if let Some(s) = self.status {
            return Ok(s);
        }
        let Some(c) = self.child.as_mut() else {
            bail!("xdpsock_peer was never started");
        };
        let s = match wait_timeout(c, timeout)? {
            Some(s) => s,
            None => {
                let _ = c.kill();
                c.wait().context("reaping xdpsock_peer")?
            }
        };
        self.reaped(s);
        Ok(s)
    }

    fn reaped(&mut self, s: ExitStatus) {
        self.status = Some(s);
        if let Some(mut c) = self.child.take() {
            if let Some(mut e) = c.stderr.take() {
                // The child is gone: this reads what is buffered, then EOF.
                let _ = e.read_to_string(&mut self.stderr);
            }
        }
    }

    /// What the child wrote to stderr (once it has exited).
    fn stderr(&self) -> String {
        self.stderr.trim().to_owned()
    }
}

/// Waits up to `timeout` for `child` to exit and reaps it; `None` if it
/// has not exited by then.
pub(crate) fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    let pid = rustix::process::Pid::from_child(child);
    // A pidfd turns the wait into a poll; without one (kernels before
    // 5.3), look every 10 ms.
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok();
    loop {
        if let Some(s) = child.try_wait().context("waiting for a child")? {
            return Ok(Some(s));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match &pidfd {
            Some(fd) => {
                let ts = rustix::event::Timespec {
                    tv_sec: left.as_secs() as _,
                    tv_nsec: left.subsec_nanos() as _,
                };
                let mut fds = [PollFd::new(fd, PollFlags::IN)];
                match poll(&mut fds, Some(&ts)) {
                    Ok(_) | Err(rustix::io::Errno::INTR) => {}
                    Err(e) => return Err(e).context("poll on a child's pidfd"),
                }
            }
            None => std::thread::sleep(left.min(Duration::from_millis(10))),
        }
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report as the C peer sent it (l2fwd in bench/tests/peers.rs:
    /// 2048 frames returned, warm-up + 2 repetitions).
    const REPORT: &str = "sample 9944977747979 2048\n\
        sample 9946478772763 2048\n\
        sample 9947979941558 2048\n\
        counters rx_packets=2048 tx_queued=2048 tx_completed=2048 xsk_rx_dropped=0 \
        xsk_rx_ring_full=0 xsk_fill_ring_empty=0\n\
        end\n";

    #[test]
    fn parses_a_report() {
        let r = parse_report(REPORT).unwrap();
        assert_eq!(
            r.samples,
            vec![
                (9944977747979, 2048),
                (9946478772763, 2048),
                (9947979941558, 2048)
            ]
        );
        let c = r.counters;
        assert_eq!(
            (c.rx_packets, c.tx_queued, c.tx_completed),
            (2048, 2048, 2048)
        );
        assert_eq!(
            (c.xsk_rx_dropped, c.xsk_rx_ring_full, c.xsk_fill_ring_empty),
            (0, 0, 0)
        );
        assert_eq!(c.tx_unsent, 0);
    }

    #[test]
    fn refuses_truncated_or_odd_reports() {
        assert!(parse_report("sample 1 2\n").is_err());
        assert!(parse_report("sample 1\ncounters rx_packets=1\nend\n").is_err());
        assert!(parse_report("bogus\nend\n").is_err());
        assert!(check_peer_error("error xsk_socket__create: Device or resource busy").is_err());
    }

    #[test]
    fn clock_pair_round_trips() {
        let c = ClockPair::now();
        let later = c.instant + Duration::from_millis(1500);
        assert_eq!(c.to_ns(later), c.ns + 1_500_000_000);
        assert_eq!(c.to_instant(c.to_ns(later)), later);
        let earlier = c.instant - Duration::from_millis(3);
        assert_eq!(c.to_instant(c.to_ns(earlier)), earlier);
    }
}
