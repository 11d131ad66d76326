//! An arena lent to a mapper that is a process of its own
//! (`skmem-mapper-child`, driven line by line, no sleeps): it sees the
//! owner's packets where the schema says, cannot write what is read-only
//! to it by any route, is refused when its uid is not allowed, and its
//! death, redirect or silence follow Skywalk's rules. Root.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use skmem::arena::{Arena, NexusParams};
use skmem::lend::{ArenaOffer, OfferPolicy};
use skmem::pool::META_SIZE;

mod common;

const MAPPER: &str = env!("CARGO_BIN_EXE_skmem-mapper-child");
const WAIT: Duration = Duration::from_secs(10);

/// The tests count this process's memfds and the machine's Shmem: one at
/// a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn root() -> bool {
    common::netns_ready("lend")
}

fn path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("skmem-lend-x-{}-{tag}.sock", std::process::id()))
}

/// The scripted mapper process.
struct Mapper {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    /// What it said first: `ready PID`, `refused ...` or `error ...`.
    hello: String,
}

impl Mapper {
    fn spawn(path: &std::path::Path, uid: Option<u32>) -> Mapper {
        let mut cmd = Command::new(MAPPER);
        cmd.arg(path).stdin(Stdio::piped()).stdout(Stdio::piped());
        if let Some(uid) = uid {
            cmd.uid(uid).gid(uid);
        }
        let mut child = cmd.spawn().expect("spawn the mapper");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut hello = String::new();
        stdout.read_line(&mut hello).unwrap();
        Mapper {
            child,
            stdin,
            stdout,
            hello: hello.trim().to_owned(),
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a command; returns the words after `ok`, or panics with the
    /// `err` line.
    fn ok(&mut self, line: &str) -> Vec<String> {
        let answer = self.cmd(line);
        match answer.strip_prefix("ok") {
            Some(rest) => rest.split_whitespace().map(str::to_owned).collect(),
            None => panic!("{line}: {answer}"),
        }
    }

    fn cmd(&mut self, line: &str) -> String {
        writeln!(self.stdin, "{line}").unwrap();
        self.stdin.flush().unwrap();
        let mut answer = String::new();
        self.stdout.read_line(&mut answer).unwrap();
        answer.trim().to_owned()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        assert_eq!(unsafe { libc::kill(self.child.id() as i32, sig) }, 0);
    }

    /// Stops the mapper and returns once every thread of it is stopped
    /// (`kill` returns before the signal has reached them all).
    fn stop(&self) {
        self.signal(libc::SIGSTOP);
        let tasks = format!("/proc/{}/task", self.child.id());
        let by = std::time::Instant::now() + WAIT;
        loop {
            let stopped = std::fs::read_dir(&tasks).unwrap().flatten().all(|t| {
                let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                // The state follows the parenthesised command name.
                stat.rsplit(") ").next().is_some_and(|r| r.starts_with('T'))
            });
            if stopped {
                return;
            }
            assert!(std::time::Instant::now() < by, "the mapper did not stop");
            std::thread::yield_now();
        }
    }
}

impl Drop for Mapper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// (skmem memfds this process holds, bytes they hold).
fn held() -> (usize, u64) {
    let mut fds = 0;
    let mut bytes = 0;
    for e in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        if link.to_string_lossy().contains("memfd:skmem.") {
            fds += 1;
            bytes += std::fs::metadata(e.path()).map_or(0, |m| m.blocks() * 512);
        }
    }
    (fds, bytes)
}

fn shmem() -> u64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap();
    let line = info.lines().find(|l| l.starts_with("Shmem:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[test]
fn a_separate_mapper_sees_a_received_packet_where_the_schema_says_and_writes_umd_for_the_owner() {
    if !root() {
        return;
    }
    let _serial = serial();
    use skmem::channel::{BindMode, Channel, ChannelParams};
    use skmem_netns::{NetnsPair, PairConfig, Sender, Side, DEFAULT_UDP_PORT};
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    let spec = pair.frame_spec(Side::B, 200).unwrap();
    let p = path("packet");
    pair.in_ns(Side::A, || {
        let filter =
            skmem_xdp::XdpFilter::new().with_udp_dst_ports(DEFAULT_UDP_PORT, DEFAULT_UDP_PORT);
        let mut prog =
            skmem_xdp::XdpProgram::attach(&ifname, skmem_xdp::AttachMode::Native, Some(filter))
                .unwrap();
        let mut np = NexusParams::new("lend-packet");
        np.pool.packets = 512;
        let arena = Arena::create_nexus(&np).unwrap();
        let mut cp = ChannelParams::new(&ifname, 0);
        cp.mode = BindMode::Copy;
        let mut ch = Channel::open(&arena, &cp).unwrap();
        prog.add_socket(0, ch.fd()).unwrap();
        ch.refill().unwrap();
        let offer = ArenaOffer::serve(&arena, &p, OfferPolicy::root_only()).unwrap();
        let mut m = Mapper::spawn(&p, None);
        assert!(m.hello.starts_with("ready"), "{}", m.hello);
        assert!(offer.wait_until(WAIT, |ms, _| ms.len() == 1));
        assert_eq!(offer.mappers()[0].pid, m.pid());
        // The mapper sees the channel's rings in the schema it read.
        let info = m.ok("info");
        assert_eq!(info[1], arena.span_size().to_string());

        // One frame from B; the owner receives it and keeps it.
        let sent = spec.build(7).unwrap();
        Sender::open(&pair, Side::B)
            .unwrap()
            .send_frame(&sent)
            .unwrap();
        let mut frames = Vec::new();
        for _ in 0..100 {
            if ch.rx_burst(&mut frames, 1).unwrap() == 1 {
                break;
            }
            ch.poll(100).unwrap();
        }
        assert_eq!(frames.len(), 1, "the frame did not arrive");
        let addr = ch.frame_addr(&frames[0]) as usize;
        assert_eq!(ch.data(&frames[0]).unwrap(), &sent[..]);
        // In the mapper's span, at the UMEM address within BUF_DEF.
        let seen = m.ok(&format!("read buf_def {addr} {}", sent.len()));
        assert_eq!(seen[0], hex(&sent));
        // The mapper's write to the packet's user metadata reaches the owner.
        let pkt = frames[0].packet().get() as usize;
        m.ok(&format!(
            "write umd {} {}",
            pkt * META_SIZE,
            hex(&1234u32.to_le_bytes())
        ));
        assert_eq!(ch.pool().meta(frames[0].as_packet()).unwrap().len, 1234);
        ch.free_rx(&mut frames).unwrap();
        // Stats name both pids: the owner's own mapping (the channel's)
        // and the mapper's.
        let mut pids = arena.stats().mapped_pids;
        pids.sort();
        let mut want = vec![std::process::id() as i32, m.pid() as i32];
        want.sort();
        assert_eq!(pids, want);
        m.cmd("exit");
        assert!(offer.wait_until(WAIT, |ms, c| ms.is_empty() && c.gone == 1));
    });
}

#[test]
fn a_mapper_cannot_write_a_read_only_region_or_break_a_memfd_by_any_route() {
    if !root() {
        return;
    }
    let _serial = serial();
    let mut np = NexusParams::new("lend-seal");
    np.pool.packets = 256;
    let arena = Arena::create_nexus(&np).unwrap();
    let offer = ArenaOffer::serve(&arena, path("seal"), OfferPolicy::root_only()).unwrap();
    let mut m = Mapper::spawn(offer.path(), None);
    assert!(m.hello.starts_with("ready"), "{}", m.hello);
    let try_ = |m: &mut Mapper, region: &str, route: &str| -> i32 {
        m.ok(&format!("try {region} {route}"))[0].parse().unwrap()
    };
    for region in ["schema", "txausd", "rxfusd", "ustats", "flowadv"] {
        assert_eq!(try_(&mut m, region, "mprotect"), libc::EACCES, "{region}");
        assert_eq!(try_(&mut m, region, "mmap-write"), libc::EPERM, "{region}");
        assert_eq!(try_(&mut m, region, "pwrite"), libc::EPERM, "{region}");
        assert_eq!(try_(&mut m, region, "truncate"), libc::EPERM, "{region}");
        assert_eq!(try_(&mut m, region, "add-seal"), libc::EPERM, "{region}");
    }
    // A region the mapper may write it writes — but cannot resize or seal
    // under the owner.
    for region in ["buf_def", "umd"] {
        assert_eq!(try_(&mut m, region, "mmap-write"), 0, "{region}");
        assert_eq!(try_(&mut m, region, "truncate"), libc::EPERM, "{region}");
        assert_eq!(try_(&mut m, region, "add-seal"), libc::EPERM, "{region}");
    }
    // The owner still writes what the mapper cannot, and the mapper sees it.
    assert_eq!(m.ok("read schema 0 8")[0], hex(b"SKMEMSCH"));
}

#[test]
fn a_mapper_of_a_uid_the_owner_does_not_allow_is_refused_and_told_why() {
    if !root() {
        return;
    }
    let _serial = serial();
    let mut np = NexusParams::new("lend-uid");
    np.pool.packets = 256;
    let arena = Arena::create_nexus(&np).unwrap();
    // Someone else than the mapper is allowed, so the socket is open to all
    // and the refusal is the owner's, by the kernel's credentials.
    let policy = OfferPolicy::root_only().allow_uid(61_235);
    let offer = ArenaOffer::serve(&arena, path("uid"), policy).unwrap();
    let m = Mapper::spawn(offer.path(), Some(61_234));
    assert!(
        m.hello.starts_with("refused uid 61234"),
        "the mapper said {:?}",
        m.hello
    );
    assert!(offer.wait_until(WAIT, |_, c| c.refused == 1));
    assert!(offer.mappers().is_empty());
    assert_eq!(arena.map_count(), 0);
}

#[test]
fn sigkill_of_a_mapper_removes_its_record_runs_the_postponed_defunct_and_frees_the_memory() {
    if !root() {
        return;
    }
    let _serial = serial();
    let base = held();
    let mut np = NexusParams::new("lend-kill");
    np.pool.packets = 4096;
    let arena = Arena::create_nexus(&np).unwrap();
    // 8 MiB of written buffers.
    {
        let pool = arena.nexus().unwrap().rx_pool().unwrap().clone();
        let mut w = pool.worker().unwrap();
        let mut pkts = Vec::new();
        w.alloc_batch(&mut pkts, 4096);
        for p in &mut pkts {
            pool.buffer_mut(p).unwrap().fill(0xa5);
        }
        w.free_batch(&mut pkts).unwrap();
    }
    let offer = ArenaOffer::serve(&arena, path("kill"), OfferPolicy::root_only()).unwrap();
    let m = Mapper::spawn(offer.path(), None);
    assert!(m.hello.starts_with("ready"), "{}", m.hello);
    assert!(offer.wait_until(WAIT, |ms, _| ms.len() == 1));
    // The owner's own mapping, redirected: the mapper alone keeps the
    // arena active.
    let own = arena.map().unwrap();
    assert!(!own.redirect().unwrap());
    assert!(arena.is_active());
    let before = shmem();
    m.signal(libc::SIGKILL);
    assert!(offer.wait_until(WAIT, |ms, c| ms.is_empty() && c.gone == 1));
    // The last un-redirected mapping went: the postponed defunct ran.
    assert!(arena.is_defunct());
    assert_eq!(arena.map_count(), 1, "the owner's redirected mapping");
    let after = held();
    assert_eq!(
        after.0,
        base.0 + 1,
        "only the schema's memfd is left: {after:?}"
    );
    // The dead mapper's views went with it (the owner's redirected one
    // holds none of the buffers): the pages are gone.
    let freed = before.saturating_sub(shmem());
    assert!(freed >= 6 << 20, "{freed} bytes freed of 8 MiB");
    drop(own);
}

#[test]
fn a_redirected_mapper_reads_zeros_its_buffer_calls_fail_and_it_lives_on() {
    if !root() {
        return;
    }
    let _serial = serial();
    let mut np = NexusParams::new("lend-redir");
    np.pool.packets = 256;
    let arena = Arena::create_nexus(&np).unwrap();
    let pool = arena.nexus().unwrap().rx_pool().unwrap().clone();
    let mut w = pool.worker().unwrap();
    let mut pkt = w.alloc().unwrap();
    pool.write_buffer(&mut pkt, 0, b"visible").unwrap();
    let at = pool.buf_addr(&pkt).unwrap();
    let offer = ArenaOffer::serve(&arena, path("redir"), OfferPolicy::root_only()).unwrap();
    let mut m = Mapper::spawn(offer.path(), None);
    assert!(offer.wait_until(WAIT, |ms, _| ms.len() == 1));
    assert_eq!(m.ok(&format!("read buf_def {at} 7"))[0], hex(b"visible"));
    assert!(offer.redirect(m.pid()).unwrap(), "the only mapping");
    assert_eq!(m.ok("redirected")[0], "1");
    let refused = m.cmd(&format!("read buf_def {at} 7"));
    assert!(
        refused.starts_with(&format!("err {}", libc::ENXIO)),
        "{refused}"
    );
    assert_eq!(m.ok(&format!("peek buf_def {at} 7"))[0], hex(&[0; 7]));
    // The schema is not redirected; the process lives on.
    assert_eq!(m.ok("peek schema 0 8")[0], hex(b"SKMEMSCH"));
    assert_eq!(m.ok("info").len(), 5);
    assert!(!arena.is_active());
    w.free(pkt).unwrap();
}

#[test]
fn a_mapper_that_does_not_answer_a_redirect_is_cut_off() {
    if !root() {
        return;
    }
    let _serial = serial();
    let mut np = NexusParams::new("lend-silent");
    np.pool.packets = 256;
    let arena = Arena::create_nexus(&np).unwrap();
    let policy = OfferPolicy::root_only().redirect_timeout(Duration::from_millis(300));
    let offer = ArenaOffer::serve(&arena, path("silent"), policy).unwrap();
    let m = Mapper::spawn(offer.path(), None);
    assert!(offer.wait_until(WAIT, |ms, _| ms.len() == 1));
    // Stopped, it cannot answer.
    m.stop();
    let e = offer.redirect(m.pid()).unwrap_err();
    assert!(
        matches!(e, skmem::Error::Lend(skmem::LendError::MapperCutOff { pid, millis: 300 }) if pid == m.pid()),
        "{e}"
    );
    assert_eq!(e.errno(), libc::ETIMEDOUT);
    let c = offer.counters();
    assert_eq!((c.cut_off, c.gone), (1, 0));
    assert!(offer.mappers().is_empty());
    assert_eq!(arena.map_count(), 0);
    m.signal(libc::SIGCONT);
}

/// Reads lines from `out` until one contains `what`; panics (with what came)
/// after WAIT.
fn expect_line(out: &std::sync::mpsc::Receiver<String>, what: &str) -> String {
    let mut seen = Vec::new();
    loop {
        match out.recv_timeout(WAIT) {
            Ok(l) if l.contains(what) => return l,
            Ok(l) => seen.push(l),
            Err(_) => panic!("no line with {what:?}; got {seen:#?}"),
        }
    }
}

/// The lines a child prints, from a thread.
fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let out = BufReader::new(child.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// `skmemctl offer` and `skmemctl map` as a person runs them in two
/// terminals: the mapper prints its span and regions, the owner sees it
/// come, a typed `redirect all` reaches it, `defunct` gives the memory
/// back, Ctrl-C ends both cleanly and the socket file goes.
#[test]
fn skmemctl_offer_and_map_show_a_mapping_a_redirect_and_a_defunct() {
    if !root() {
        return;
    }
    let _serial = serial();
    let bin = env!("CARGO_BIN_EXE_skmemctl");
    let p = path("cli");
    let bad = Command::new(bin)
        .args([
            "offer",
            "--path",
            p.to_str().unwrap(),
            "--sysctl",
            "batch=0",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1), "a refused tunable is an error");
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("sysctl batch=0"), "{err}");
    let bad = Command::new(bin).args(["offer"]).output().unwrap();
    assert_eq!(
        bad.status.code(),
        Some(2),
        "a missing --path is a usage error"
    );
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut owner = Kill(
        Command::new(bin)
            .args(["offer", "--path", p.to_str().unwrap(), "--packets", "512"])
            .args(["--sysctl", "batch=32", "--sysctl", "max_mappers=1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let owner_out = lines_of(&mut owner.0);
    expect_line(&owner_out, "offering skmem.nexus.offer");
    let mut mapper = Kill(
        Command::new(bin)
            .args(["map", "--path", p.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mapper_out = lines_of(&mut mapper.0);
    expect_line(&mapper_out, "schema version 3");
    expect_line(&mapper_out, "buf_def");
    // The mapper reads the owner's tunables from the lent SYSCTLS region.
    expect_line(&mapper_out, "batch=32");
    expect_line(&mapper_out, "max_mappers=1");
    let came = expect_line(&owner_out, &format!("mapper {} ", mapper.0.id()));
    assert!(came.contains("mapped its span"), "{came}");
    // A second mapper is one more than the tunable allows.
    let second = Command::new(bin)
        .args(["map", "--path", p.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1));
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("at most 1 mappers"), "{err}");
    let mut stdin = owner.0.stdin.take().unwrap();
    writeln!(stdin, "redirect all").unwrap();
    expect_line(&mapper_out, "redirected by the owner");
    expect_line(&owner_out, "arena INACTIVE");
    writeln!(stdin, "defunct").unwrap();
    expect_line(&owner_out, "defunct: the owner let go");
    // SAFETY: kill has no memory preconditions; the pids are our children's.
    unsafe { libc::kill(mapper.0.id() as i32, libc::SIGINT) };
    assert!(mapper.0.wait().unwrap().success());
    expect_line(&owner_out, "gone");
    // SAFETY: as above.
    unsafe { libc::kill(owner.0.id() as i32, libc::SIGINT) };
    let ends = expect_line(&owner_out, "offer ends");
    assert!(
        ends.contains("1 mapped") && ends.contains("DEFUNCT"),
        "{ends}"
    );
    assert!(owner.0.wait().unwrap().success());
    assert!(!p.exists(), "the socket file outlived the offer");
}
