//! DPDK 22.11's `dpdk-testpmd` on the `net_af_xdp` PMD as a peer: rxonly
//! (rxdrop), macswap (l2fwd) and txonly (txonly).
//!
//! testpmd loads its **own** XDP program on the interface (through libxdp),
//! so skmem's must be detached around it. It runs interactively: after its
//! first prompt the peer sends `start`, then at each boundary of the
//! schedule `show port stats 0`, and takes the answer's RX-packets (rxonly)
//! or TX-packets (macswap, txonly) as the sample, timestamped when the
//! answer arrives; then `stop` (whose forward statistics give the totals)
//! and `quit`. testpmd's stdout is line-buffered with coreutils' `stdbuf`:
//! on a pipe its printf output would otherwise sit in stdio's buffer while
//! the prompt (written directly) went out first.
//!
//! Settings: `--no-huge -m 512 --no-pci --file-prefix <unique>`, one
//! forwarding lcore (`-l main,fwd --main-lcore main`, `--nb-cores=1`), one
//! queue each way, `--burst=<batch>`, `--rxd/--txd=<ring entries>`, and the
//! vdev `net_af_xdp0,iface=IF,start_queue=0,queue_count=1,busy_budget=0`
//! (busy polling, the PMD's default, costs ~30 % on veth). Its mempool is
//! its own (16384 mbufs: the default of ~155 000 does not fit in 512 MB).
//! The child is killed and reaped on every path out of [`run`], and its
//! runtime directory `/var/run/dpdk/<prefix>` is removed.

use std::collections::BTreeMap;
use std::io::{PipeReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags};

use super::cpeer::wait_timeout;
use super::meter::{Meter, Sample};
use super::{ProgCounters, ProgParams, ProgRun};

/// testpmd's executable (Debian: package `dpdk-dev`).
const TESTPMD: &str = "dpdk-testpmd";
/// Its prompt, written after every answer.
const PROMPT: &str = "testpmd> ";
/// Start-up (EAL init, port configuration) and `quit` may take a while.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);
const QUIT_TIMEOUT: Duration = Duration::from_secs(10);
/// mbufs in testpmd's pool.
const MBUFS: u32 = 16384;
/// Transcript kept for error messages, bytes.
const TAIL: usize = 4000;

static INSTANCE: AtomicU32 = AtomicU32::new(0);

/// Where an executable named `name` is on `PATH`.
fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// Whether DPDK's `net_af_xdp` PMD is installed (a shared object
/// `librte_net_af_xdp.so*` under a library directory, where Debian's
/// `librte-net-af-xdp23` puts it).
fn af_xdp_pmd_installed() -> bool {
    fn scan(dir: &Path, depth: u32) -> bool {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return false;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if name.to_string_lossy().starts_with("librte_net_af_xdp.so") {
                return true;
            }
            if depth > 0 && e.file_type().is_ok_and(|t| t.is_dir()) && scan(&e.path(), depth - 1) {
                return true;
            }
        }
        false
    }
    ["/usr/lib", "/usr/lib64", "/usr/local/lib"]
        .iter()
        .any(|d| scan(Path::new(d), 3))
}

/// Why testpmd cannot run here (`dpdk-testpmd`, `stdbuf` or the
/// `net_af_xdp` PMD missing), or `None`.
pub fn skip_reason() -> Option<String> {
    if which(TESTPMD).is_none() {
        return Some(format!(
            "{TESTPMD} not installed: apt-get install dpdk dpdk-dev (cargo xtask setup installs them)"
        ));
    }
    if which("stdbuf").is_none() {
        return Some("stdbuf (coreutils) not found: needed to read testpmd's answers".into());
    }
    if !af_xdp_pmd_installed() {
        return Some("DPDK's net_af_xdp PMD (librte_net_af_xdp.so) not found".into());
    }
    None
}

/// testpmd's forwarding mode for a workload.
fn forward_mode(workload: &str) -> Result<&'static str> {
    Ok(match workload {
        "rxdrop" => "rxonly",
        "l2fwd" => "macswap",
        "txonly" => "txonly",
        w => bail!("testpmd has no forwarding mode for workload {w}"),
    })
}

/// What testpmd's command line takes from [`ProgParams`].
#[derive(Debug, Clone, Copy)]
struct Settings<'a> {
    ifname: &'a str,
    batch: usize,
    ring_entries: u32,
    pkt_size: usize,
    /// The harness's A-to-B frame (txonly copies its addresses).
    frame: &'a [u8],
}

impl<'a> From<&'a ProgParams> for Settings<'a> {
    fn from(p: &'a ProgParams) -> Self {
        Self {
            ifname: &p.ifname,
            batch: p.batch,
            ring_entries: p.ring_entries,
            pkt_size: p.pkt_size,
            frame: &p.frame,
        }
    }
}

/// testpmd's command line (after `stdbuf -oL dpdk-testpmd`).
fn testpmd_args(
    p: Settings<'_>,
    cpus: (usize, usize),
    prefix: &str,
    mode: &str,
) -> Result<Vec<String>> {
    // testpmd's MAX_PKT_BURST.
    if p.batch == 0 || p.batch > 512 {
        bail!("testpmd takes bursts of 1..=512 packets, not {}", p.batch);
    }
    let (main, fwd) = cpus;
    if main == fwd {
        bail!("testpmd needs two different CPUs (main lcore {main}, forwarding lcore {fwd})");
    }
    let mut a: Vec<String> = vec![
        "-l".into(),
        format!("{main},{fwd}"),
        "--main-lcore".into(),
        main.to_string(),
        "--no-huge".into(),
        "-m".into(),
        "512".into(),
        "--no-pci".into(),
        "--file-prefix".into(),
        prefix.into(),
        "--vdev".into(),
        format!(
            "net_af_xdp0,iface={},start_queue=0,queue_count=1,busy_budget=0",
            p.ifname
        ),
        "--".into(),
        "-i".into(),
        "--nb-cores=1".into(),
        "--rxq=1".into(),
        "--txq=1".into(),
        format!("--burst={}", p.batch),
        format!("--rxd={}", p.ring_entries),
        format!("--txd={}", p.ring_entries),
        format!("--total-num-mbufs={MBUFS}"),
        format!("--forward-mode={mode}"),
    ];
    if mode == "txonly" {
        // testpmd builds its own frame; give it the harness frame's
        // addresses and ports so that B's sink (the skmem XDP program,
        // UDP port filter) counts it like any other A-to-B frame.
        let f = p.frame;
        if f.len() < 42 || f[12..14] != [0x08, 0x00] || f[23] != 17 {
            bail!(
                "txonly: the harness frame is not IPv4/UDP ({} bytes)",
                f.len()
            );
        }
        let mac = f[0..6]
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        let ip = |o: usize| format!("{}.{}.{}.{}", f[o], f[o + 1], f[o + 2], f[o + 3]);
        let port = |o: usize| u16::from_be_bytes([f[o], f[o + 1]]);
        a.push(format!("--eth-peer=0,{mac}"));
        a.push(format!("--tx-ip={},{}", ip(26), ip(30)));
        a.push(format!("--tx-udp={},{}", port(34), port(36)));
        a.push(format!("--txpkts={}", p.pkt_size));
    }
    Ok(a)
}

/// Runs `p.workload` in testpmd (main lcore on `cpus.0`, forwarding lcore
/// on `cpus.1`) on the schedule `start` returns. `stop` ends it early (the
/// samples taken so far are returned).
pub fn run(
    p: &ProgParams,
    cpus: (usize, usize),
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    if let Some(r) = skip_reason() {
        bail!(r);
    }
    let workload = p.workload.name();
    let mode = forward_mode(workload)?;
    let prefix = format!(
        "skmem-pps-{}-{}",
        std::process::id(),
        INSTANCE.fetch_add(1, Ordering::Relaxed)
    );
    let args = testpmd_args(p.into(), cpus, &prefix, mode)?;
    let mut tp = Testpmd::spawn(&args, &prefix, &p.ifname)?;
    let r = session(&mut tp, mode, start, stop);
    match r {
        Ok(run) => {
            tp.quit()?;
            Ok(run)
        }
        Err(e) => Err(e.context(format!("testpmd output, last lines:\n{}", tp.tail()))),
    }
}

fn session(
    tp: &mut Testpmd,
    mode: &str,
    start: &mut dyn FnMut() -> Meter,
    stop: &AtomicBool,
) -> Result<ProgRun> {
    tp.read_to_prompt(START_TIMEOUT, stop)
        .context("testpmd start-up")?;
    let out = tp.command("start")?.0;
    if !out.contains("packet forwarding") {
        bail!("testpmd did not start forwarding: {out:?}");
    }
    let counter = |s: &BTreeMap<String, u64>| -> Result<u64> {
        let key = if mode == "rxonly" {
            "RX-packets"
        } else {
            "TX-packets"
        };
        s.get(key)
            .copied()
            .ok_or_else(|| anyhow!("no {key} in testpmd's port statistics"))
    };

    let meter = start();
    let mut samples = Vec::with_capacity(meter.bounds().len());
    let mut last = BTreeMap::new();
    for &b in meter.bounds() {
        if !sleep_until(b, stop) {
            break;
        }
        let (out, at) = tp.command("show port stats 0")?;
        last = parse_port_stats(&out)?;
        samples.push(Sample {
            at,
            value: counter(&last)?,
        });
    }
    let out = tp.command("stop")?.0;
    let fwd = parse_forward_stats(&out)?;
    let get = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    Ok(ProgRun {
        samples,
        counters: ProgCounters {
            rx_packets: get(&fwd, "RX-packets"),
            // Offered to the PMD's TX burst; accepted; refused (a full TX
            // ring: testpmd drops those).
            tx_queued: get(&fwd, "TX-total"),
            tx_completed: get(&fwd, "TX-packets"),
            tx_unsent: get(&fwd, "TX-dropped"),
            // The PMD's imissed is the socket's XDP_STATISTICS rx_dropped;
            // it reports no ring-full or fill-empty counts.
            xsk_rx_dropped: get(&last, "RX-missed"),
            xsk_rx_ring_full: 0,
            xsk_fill_ring_empty: 0,
        },
    })
}

/// Sleeps until `until` in short steps; `false` if `stop` was set.
fn sleep_until(until: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(20)));
    }
}

/// `key: number` pairs of a block of testpmd output ("RX-packets: 5000
/// RX-missed: 0 ..."); later keys overwrite earlier ones.
fn parse_pairs(text: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    let mut words = text.split_ascii_whitespace().peekable();
    while let Some(w) = words.next() {
        if let Some(k) = w.strip_suffix(':') {
            if let Some(v) = words.peek().and_then(|v| v.parse::<u64>().ok()) {
                m.insert(k.to_owned(), v);
                words.next();
            }
        }
    }
    m
}

/// The counters of `show port stats 0`'s answer (RX-packets, RX-missed,
/// TX-packets, ...; the throughput lines are left out).
fn parse_port_stats(text: &str) -> Result<BTreeMap<String, u64>> {
    let start = text
        .find("NIC statistics for port")
        .ok_or_else(|| anyhow!("not a port statistics answer: {text:?}"))?;
    let block = &text[start..];
    let block = block.split("Throughput").next().unwrap_or(block);
    let m = parse_pairs(block);
    if !m.contains_key("RX-packets") || !m.contains_key("TX-packets") {
        bail!("port statistics without RX-/TX-packets: {text:?}");
    }
    Ok(m)
}

/// The port's forward statistics in `stop`'s answer (RX-packets,
/// RX-dropped, TX-packets, TX-dropped, TX-total, ...).
fn parse_forward_stats(text: &str) -> Result<BTreeMap<String, u64>> {
    let start = text
        .find("Forward statistics for port")
        .ok_or_else(|| anyhow!("no forward statistics in testpmd's stop answer: {text:?}"))?;
    let block = &text[start..];
    let block = block.split("Accumulated").next().unwrap_or(block);
    let m = parse_pairs(block);
    if !m.contains_key("RX-packets") || !m.contains_key("TX-packets") {
        bail!("forward statistics without RX-/TX-packets: {text:?}");
    }
    Ok(m)
}

/// The testpmd child: SIGTERM, then SIGKILL, and reaped when dropped;
/// its runtime directory is removed.
struct Testpmd {
    child: Child,
    stdin: Option<ChildStdin>,
    out: PipeReader,
    /// Output not yet consumed by an answer.
    pending: String,
    /// The last bytes of output, for error messages.
    transcript: String,
    prefix: String,
    ifname: String,
    exited: bool,
}

impl Testpmd {
    fn spawn(args: &[String], prefix: &str, ifname: &str) -> Result<Self> {
        // stdout and stderr into one pipe: EAL and libbpf talk on stderr,
        // and their messages belong in the transcript.
        let (out, writer) = std::io::pipe().context("pipe for testpmd's output")?;
        let mut cmd = Command::new("stdbuf");
        cmd.arg("-oL")
            .arg(TESTPMD)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(writer.try_clone().context("pipe")?)
            .stderr(writer);
        let mut child = cmd.spawn().context("spawning stdbuf -oL dpdk-testpmd")?;
        // `cmd` holds the pipe's write ends: drop them, so that the read end
        // sees EOF when testpmd exits.
        drop(cmd);
        let stdin = child.stdin.take();
        Ok(Self {
            child,
            stdin,
            out,
            pending: String::new(),
            transcript: String::new(),
            prefix: prefix.to_owned(),
            ifname: ifname.to_owned(),
            exited: false,
        })
    }

    fn tail(&self) -> &str {
        self.transcript.trim()
    }

    /// Reads until the output ends with the prompt; returns what came
    /// before it and when the prompt arrived.
    fn read_to_prompt(
        &mut self,
        timeout: Duration,
        stop: &AtomicBool,
    ) -> Result<(String, Instant)> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 8192];
        loop {
            if let Some(end) = self.pending.rfind(PROMPT) {
                if self.pending[end..].trim_end() == PROMPT.trim_end() {
                    let at = Instant::now();
                    let answer = self.pending[..end].to_owned();
                    self.pending.clear();
                    return Ok((answer, at));
                }
            }
            let now = Instant::now();
            if now >= deadline {
                bail!("no testpmd prompt within {timeout:?}");
            }
            if stop.load(Ordering::Relaxed) {
                bail!("stopped while waiting for testpmd");
            }
            let step = (deadline - now).min(Duration::from_millis(50));
            let ts = rustix::event::Timespec {
                tv_sec: step.as_secs() as _,
                tv_nsec: step.subsec_nanos() as _,
            };
            let mut fds = [PollFd::new(&self.out, PollFlags::IN)];
            match poll(&mut fds, Some(&ts)) {
                Ok(0) | Err(rustix::io::Errno::INTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(e).context("poll on testpmd's output"),
            }
            let n = self
                .out
                .read(&mut chunk)
                .context("reading testpmd's output")?;
            if n == 0 {
                bail!("testpmd exited");
            }
            let s = String::from_utf8_lossy(&chunk[..n]);
            self.pending.push_str(&s);
            self.transcript.push_str(&s);
            if self.transcript.len() > 2 * TAIL {
                let mut cut = self.transcript.len() - TAIL;
                while !self.transcript.is_char_boundary(cut) {
                    cut += 1;
                }
                self.transcript.drain(..cut);
            }
        }
    }

    /// Sends one command line and returns its answer (the command's echo
    /// included) and when the answer was complete.
    fn command(&mut self, line: &str) -> Result<(String, Instant)> {
        let stdin = self
            .stdin
            .as_mut()
            .ok_or_else(|| anyhow!("testpmd's stdin is closed"))?;
        stdin
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|()| stdin.flush())
            .with_context(|| format!("sending {line:?} to testpmd"))?;
        // Bounded by the timeout alone: the answers to `stop` are needed
        // even when the run is being stopped.
        self.read_to_prompt(COMMAND_TIMEOUT, &AtomicBool::new(false))
            .with_context(|| format!("testpmd command {line:?}"))
    }

    /// `quit`, then waits for the exit (bounded); a non-zero status is an
    /// error.
    fn quit(&mut self) -> Result<()> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.write_all(b"quit\n");
            // Dropping stdin closes it: EOF ends the prompt loop as well.
        }
        let status = wait_timeout(&mut self.child, QUIT_TIMEOUT)?;
        self.exited = true;
        match status {
            Some(s) if s.success() => Ok(()),
            Some(s) => bail!("testpmd quit with {s}:\n{}", self.tail()),
            None => {
                self.kill();
                bail!("testpmd did not quit within {QUIT_TIMEOUT:?}")
            }
        }
    }

    /// SIGTERM (testpmd closes its port, which detaches its XDP program),
    /// then SIGKILL if it lingers; reaps it.
    fn kill(&mut self) {
        if self.exited {
            return;
        }
        let pid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        let gone = matches!(
            wait_timeout(&mut self.child, Duration::from_secs(5)),
            Ok(Some(_))
        );
        if !gone {
            let _ = self.child.kill();
            let _ = self.child.wait();
            // A killed testpmd leaves its XDP program attached: take it
            // off (this thread is in the interface's namespace, and so is
            // a child of it).
            let _ = Command::new("ip")
                .args(["link", "set", "dev", &self.ifname, "xdp", "off"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        self.exited = true;
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        self.kill();
        // Runtime files (sockets, config; no hugepage files with --no-huge).
        let dir = Path::new("/var/run/dpdk").join(&self.prefix);
        if dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&dir) {
                eprintln!("testpmd: removing {}: {e}", dir.display());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `show port stats 0` as testpmd 22.11 answered it (rxonly, net_af_xdp
    /// on a veth, 5000 frames received), echo and all.
    const PORT_STATS: &str = "show port stats 0\r\n\n  \
        ######################## NIC statistics for port 0  ########################\n  \
        RX-packets: 5000       RX-missed: 0          RX-bytes:  320000\n  \
        RX-errors: 0\n  \
        RX-nombuf:  0         \n  \
        TX-packets: 0          TX-errors: 0          TX-bytes:  0\n\n  \
        Throughput (since last show)\n  \
        Rx-pps:            0          Rx-bps:            0\n  \
        Tx-pps:            0          Tx-bps:            0\n  \
        ############################################################################\n";

    /// `stop`'s answer in the same run.
    const STOP: &str = "stop\r\nTelling cores to stop...\nWaiting for lcores to finish...\n\n  \
        ---------------------- Forward statistics for port 0  ----------------------\n  \
        RX-packets: 5000           RX-dropped: 0             RX-total: 5000\n  \
        TX-packets: 0              TX-dropped: 0             TX-total: 0\n  \
        ----------------------------------------------------------------------------\n\n  \
        +++++++++++++++ Accumulated forward statistics for all ports+++++++++++++++\n  \
        RX-packets: 5000           RX-dropped: 0             RX-total: 5000\n  \
        TX-packets: 0              TX-dropped: 0             TX-total: 0\n  \
        ++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++++\n\nDone.\n";

    #[test]
    fn parses_port_stats() {
        let m = parse_port_stats(PORT_STATS).unwrap();
        assert_eq!(m["RX-packets"], 5000);
        assert_eq!(m["RX-missed"], 0);
        assert_eq!(m["RX-bytes"], 320000);
        assert_eq!(m["RX-nombuf"], 0);
        assert_eq!(m["TX-packets"], 0);
        // The throughput lines are not counters.
        assert!(!m.contains_key("Rx-pps"));
        assert!(parse_port_stats("show port stats 0\r\nInvalid port 0\n").is_err());
    }

    #[test]
    fn parses_forward_stats() {
        let m = parse_forward_stats(STOP).unwrap();
        assert_eq!(m["RX-packets"], 5000);
        assert_eq!(m["RX-total"], 5000);
        assert_eq!(m["TX-dropped"], 0);
        assert!(parse_forward_stats("stop\r\nPacket forwarding not started\n").is_err());
    }

    #[test]
    fn txonly_takes_the_harness_flow() {
        let spec = skmem_netns::FrameSpec::new(
            [0x02, 0, 0, 0, 0, 0x0a],
            [0x02, 0, 0, 0, 0, 0x0b],
            std::net::Ipv4Addr::new(10, 11, 0, 1),
            std::net::Ipv4Addr::new(10, 11, 0, 2),
            4792,
            4791,
            64,
        )
        .unwrap();
        let frame = spec.build(0).unwrap();
        let p = Settings {
            ifname: "veth0",
            batch: 64,
            ring_entries: 1024,
            pkt_size: 64,
            frame: &frame,
        };
        let a = testpmd_args(p, (0, 1), "pfx", "txonly").unwrap();
        for want in [
            "--eth-peer=0,02:00:00:00:00:0B",
            "--tx-ip=10.11.0.1,10.11.0.2",
            "--tx-udp=4792,4791",
            "--txpkts=64",
            "--forward-mode=txonly",
            "--burst=64",
            "net_af_xdp0,iface=veth0,start_queue=0,queue_count=1,busy_budget=0",
        ] {
            assert!(a.iter().any(|x| x == want), "{want} not in {a:?}");
        }
        let a = testpmd_args(p, (0, 1), "pfx", "rxonly").unwrap();
        assert!(!a.iter().any(|x| x.starts_with("--tx-udp")), "{a:?}");
        assert!(testpmd_args(p, (1, 1), "pfx", "rxonly").is_err());
        let big = Settings { batch: 1024, ..p };
        assert!(testpmd_args(big, (0, 1), "pfx", "rxonly").is_err());
    }

    #[test]
    fn forward_modes() {
        assert_eq!(forward_mode("rxdrop").unwrap(), "rxonly");
        assert_eq!(forward_mode("l2fwd").unwrap(), "macswap");
        assert_eq!(forward_mode("txonly").unwrap(), "txonly");
        assert!(forward_mode("bogus").is_err());
    }
}
