//! Two network namespaces joined by a veth pair, and running code in them.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::thread;

use crate::error::{Error, Result};
use crate::sys;
use cleanup::mark_of;
use skmem::owner::OwnerMark;

mod cleanup;

pub use cleanup::{cleanup_own_process, cleanup_stale, harness_namespaces};

/// Directory where `ip netns` keeps its namespace bind mounts.
pub const NETNS_DIR: &str = "/var/run/netns";

/// Prefix of every namespace name the harness creates.
pub const NS_PREFIX: &str = "skm";

/// Prefix of every interface name the harness creates.
pub const IF_PREFIX: &str = "skv";

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME: usize = 15;

/// One end of a [`NetnsPair`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    /// The first end (conventionally the receiver under test).
    A,
    /// The second end (conventionally the traffic generator).
    B,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    fn idx(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::A => "A",
            Side::B => "B",
        })
    }
}

/// Configuration of one end of the pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SideConfig {
    /// `numrxqueues` of this end (veth native XDP on this end needs it ≥ the
    /// peer's `tx_queues`).
    pub rx_queues: u32,
    /// `numtxqueues` of this end.
    pub tx_queues: u32,
    /// IPv4 address and prefix length to assign, if any.
    pub addr: Option<(Ipv4Addr, u8)>,
    /// MAC to set; `None` keeps the kernel's random one.
    pub mac: Option<[u8; 6]>,
}

impl Default for SideConfig {
    fn default() -> Self {
        Self {
            rx_queues: 4,
            tx_queues: 4,
            addr: None,
            mac: None,
        }
    }
}

/// Configuration of a [`NetnsPair`]. The default is what the kernel's
/// AF_XDP self-tests use: 4 RX / 4 TX queues per end, MTU 1500, no
/// addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairConfig {
    /// End A.
    pub a: SideConfig,
    /// End B.
    pub b: SideConfig,
    /// MTU of both ends.
    pub mtu: u32,
}

impl Default for PairConfig {
    fn default() -> Self {
        Self {
            a: SideConfig::default(),
            b: SideConfig::default(),
            mtu: 1500,
        }
    }
}

impl PairConfig {
    /// Sets the RX and TX queue counts of both ends.
    pub fn queues(mut self, rx: u32, tx: u32) -> Self {
        for s in [&mut self.a, &mut self.b] {
            s.rx_queues = rx;
            s.tx_queues = tx;
        }
        self
    }

    /// Sets the MTU of both ends.
    pub fn mtu(mut self, mtu: u32) -> Self {
        self.mtu = mtu;
        self
    }

    /// Assigns IPv4 addresses (with prefix length `prefix`) to both ends.
    pub fn addrs(mut self, a: Ipv4Addr, b: Ipv4Addr, prefix: u8) -> Self {
        self.a.addr = Some((a, prefix));
        self.b.addr = Some((b, prefix));
        self
    }

    /// The configuration of one end.
    pub fn side(&self, side: Side) -> &SideConfig {
        match side {
            Side::A => &self.a,
            Side::B => &self.b,
        }
    }
}

/// Serialises `ip netns add`/`del` within the process: concurrent first
/// uses of `ip netns add` race on making `/var/run/netns` a shared mount.
static NETNS_LOCK: Mutex<()> = Mutex::new(());

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Base-36 counter values fit in 4 characters.
const COUNTER_MOD: u32 = 36 * 36 * 36 * 36;

fn base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".into();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("ASCII digits")
}

/// Namespace and interface names for pair number `n` of process `pid`:
/// `skm<pid><a|b><n>` and `skv<pid><a|b><n>`, `n` in base 36. With Linux's
/// largest pid (4 194 304, 7 digits) and `n` < 36⁴ they are ≤ 15 chars.
pub fn names_for(pid: u32, n: u32) -> ([String; 2], [String; 2]) {
    let n = base36(n % COUNTER_MOD);
    let ns = [
        format!("{NS_PREFIX}{pid}a{n}"),
        format!("{NS_PREFIX}{pid}b{n}"),
    ];
    let ifs = [
        format!("{IF_PREFIX}{pid}a{n}"),
        format!("{IF_PREFIX}{pid}b{n}"),
    ];
    (ns, ifs)
}

/// The pid embedded in a harness-made name (`skm1234a0` → 1234), if `name`
/// has the harness's shape.
pub fn pid_of_name(name: &str) -> Option<u32> {
    let rest = name
        .strip_prefix(NS_PREFIX)
        .or_else(|| name.strip_prefix(IF_PREFIX))?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let (pid, tail) = rest.split_at(digits);
    let mut tail = tail.chars();
    if !matches!(tail.next(), Some('a' | 'b')) {
        return None;
    }
    let counter: String = tail.collect();
    if counter.is_empty()
        || !counter
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        return None;
    }
    pid.parse().ok()
}

fn cmd_line(program: &str, args: &[&OsStr]) -> String {
    let mut s = program.to_string();
    for a in args {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `program args`, failing with its stderr unless it exits 0.
fn run(program: &str, args: &[&str], ns: Option<&str>) -> Result<Output> {
    let os: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
    run_os(program, &os, ns)
}

fn run_os(program: &str, args: &[&OsStr], ns: Option<&str>) -> Result<Output> {
    let out = Command::new(program)
        .args(args)
        .output()
        .map_err(|source| Error::Spawn {
            cmd: cmd_line(program, args),
            source,
        })?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::Command {
            cmd: cmd_line(program, args),
            ns: ns.map(str::to_owned),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

fn ns_path(ns: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(ns)
}

/// Deletes namespace `ns` with `ip netns del`.
fn delete_ns(ns: &str) -> Result<()> {
    let _g = NETNS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    run("ip", &["netns", "del", ns], Some(ns)).map(drop)
}

/// One step of making a pair: may fail in tests ([`skmem::failpoint`]),
/// never otherwise.
fn failpoint(step: &'static str) -> Result<()> {
    skmem::failpoint::step(step).map_err(|_| Error::Injected { step })
}

/// Writes a warning to the log and stderr without ever panicking.
fn warn(msg: &str) {
    tracing::warn!("{msg}");
    let _ = writeln!(io::stderr(), "skmem-netns: {msg}");
}

/// Two fresh network namespaces joined by a veth pair, one end in each.
///
/// Both ends are up, IPv6 is disabled on both (no neighbour discovery or
/// MLD traffic), and the optional IPv4 addresses are assigned. Dropping the
/// pair deletes the veth and both namespaces, also while unwinding from a
/// panic; failures there are logged, never raised.
///
/// Sockets opened inside a namespace (with [`NetnsPair::in_ns`]) keep that
/// namespace alive after the drop, but the veth is deleted explicitly, so
/// such sockets see their interface vanish rather than keep it.
#[derive(Debug)]
pub struct NetnsPair {
    ns: [String; 2],
    ifname: [String; 2],
    ifindex: [u32; 2],
    mac: [[u8; 6]; 2],
    config: PairConfig,
    ns_created: [bool; 2],
    /// One owner mark per namespace, taken before it is created and
    /// released after it is deleted: how the next run knows, across PID
    /// namespaces, that this process is gone.
    marks: Vec<OwnerMark>,
}

impl NetnsPair {
    /// A pair with the default configuration ([`PairConfig::default`]).
    pub fn new() -> Result<Self> {
        Self::with_config(PairConfig::default())
    }

    /// A pair configured by `config`. On failure, whatever was already
    /// created is removed again.
    pub fn with_config(config: PairConfig) -> Result<Self> {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let (ns, ifname) = names_for(std::process::id(), n);
        let mut pair = NetnsPair {
            ns,
            ifname,
            ifindex: [0; 2],
            mac: [[0; 6]; 2],
            config,
            ns_created: [false; 2],
            marks: Vec::new(),
        };
        // On error `pair` is dropped here, which removes what was created.
        pair.setup()?;
        Ok(pair)
    }

    fn setup(&mut self) -> Result<()> {
        {
            let _g = NETNS_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            for side in [Side::A, Side::B] {
                let ns = &self.ns[side.idx()];
                if ns_path(ns).exists() {
                    // Our pid and a counter value this process has not used
                    // before: left by an earlier process with the same pid.
                    warn(&format!("removing leftover namespace {ns}"));
                    run("ip", &["netns", "del", ns], Some(ns))?;
                }
                match OwnerMark::take(&mark_of(ns)) {
                    Ok(m) => self.marks.push(m),
                    Err(e) => warn(&format!("no owner mark for namespace {ns}: {e}")),
                }
                failpoint("netns add")?;
                run("ip", &["netns", "add", ns], Some(ns))?;
                self.ns_created[side.idx()] = true;
            }
        }
        let c = self.config.clone();
        let mtu = c.mtu.to_string();
        let [ns_a, ns_b] = &self.ns;
        let [if_a, if_b] = &self.ifname;
        let qa = (c.a.rx_queues.to_string(), c.a.tx_queues.to_string());
        let qb = (c.b.rx_queues.to_string(), c.b.tx_queues.to_string());
        let mac_a = c.a.mac.map(format_mac);
        let mac_b = c.b.mac.map(format_mac);
        // Created in A with its peer straight in B: nothing ever appears in
        // the root namespace.
        let mut args: Vec<&str> = vec!["-n", ns_a, "link", "add", if_a, "mtu", &mtu];
        if let Some(m) = &mac_a {
            args.extend(["address", m]);
        }
        args.extend([
            "numrxqueues",
            &qa.0,
            "numtxqueues",
            &qa.1,
            "type",
            "veth",
            "peer",
            "name",
            if_b,
            "netns",
            ns_b,
            "mtu",
            &mtu,
        ]);
        if let Some(m) = &mac_b {
            args.extend(["address", m]);
        }
        args.extend(["numrxqueues", &qb.0, "numtxqueues", &qb.1]);
        failpoint("veth add")?;
        run("ip", &args, Some(ns_a))?;

        for side in [Side::A, Side::B] {
            let ns = self.ns[side.idx()].clone();
            let ifname = self.ifname[side.idx()].clone();
            // Inside the namespace: disable IPv6 before the link comes up
            // (so it never sends ND/MLD), and read the ifindex there.
            let ifindex = self.try_in_ns(side, || -> Result<u32> {
                disable_ipv6(&ns, &ifname)?;
                sys::if_nametoindex(&ifname).map_err(|source| Error::Interface {
                    ifname: ifname.clone(),
                    ns: ns.clone(),
                    op: "if_nametoindex",
                    source,
                })
            })??;
            self.ifindex[side.idx()] = ifindex;
            if let Some((ip, prefix)) = c.side(side).addr {
                let cidr = format!("{ip}/{prefix}");
                run(
                    "ip",
                    &["-n", &ns, "addr", "add", &cidr, "dev", &ifname],
                    Some(&ns),
                )?;
            }
            failpoint("link up")?;
            run(
                "ip",
                &["-n", &ns, "link", "set", "dev", &ifname, "up"],
                Some(&ns),
            )?;
            self.mac[side.idx()] = read_mac(&ns, &ifname)?;
        }
        Ok(())
    }

    /// Name of the namespace of `side` (its file is `/var/run/netns/NAME`).
    pub fn ns_name(&self, side: Side) -> &str {
        &self.ns[side.idx()]
    }

    /// Path of the namespace file of `side`.
    pub fn ns_path(&self, side: Side) -> PathBuf {
        ns_path(self.ns_name(side))
    }

    /// Name of the veth end in the namespace of `side`.
    pub fn ifname(&self, side: Side) -> &str {
        &self.ifname[side.idx()]
    }

    /// Interface index of the veth end of `side`, as seen inside its
    /// namespace (read there at creation).
    pub fn ifindex(&self, side: Side) -> u32 {
        self.ifindex[side.idx()]
    }

    /// MAC of the veth end of `side` (read at creation).
    pub fn mac(&self, side: Side) -> [u8; 6] {
        self.mac[side.idx()]
    }

    /// IPv4 address of `side`, if one was configured.
    pub fn ipv4(&self, side: Side) -> Option<Ipv4Addr> {
        self.config.side(side).addr.map(|(ip, _)| ip)
    }

    /// The configuration the pair was created with.
    pub fn config(&self) -> &PairConfig {
        &self.config
    }

    fn open_ns(&self, side: Side) -> Result<File> {
        let path = self.ns_path(side);
        File::open(&path).map_err(|source| Error::Namespace {
            ns: self.ns_name(side).to_owned(),
            op: "open namespace file",
            source,
        })
    }

    /// Runs `f` on a new thread that has joined the network namespace of
    /// `side`, and returns its result; a panic in `f` is propagated.
    /// Sockets `f` opens stay in that namespace and may be returned and used
    /// from any thread. The thread keeps the process's mount namespace, so
    /// `/sys` shows the *root* namespace's devices (use ioctl/netlink or
    /// [`NetnsPair::exec`] instead) while bpffs stays reachable. Errors
    /// entering the namespace are returned.
    pub fn try_in_ns<T: Send>(&self, side: Side, f: impl FnOnce() -> T + Send) -> Result<T> {
        let file = self.open_ns(side)?;
        let ns = self.ns_name(side);
        let joined = thread::scope(|s| {
            let h = thread::Builder::new()
                .name(format!("in-{ns}"))
                .spawn_scoped(s, move || {
                    sys::setns_net(&file)?;
                    drop(file);
                    Ok::<T, io::Error>(f())
                })
                .map_err(|source| Error::Thread {
                    ns: ns.to_owned(),
                    source,
                })?;
            match h.join() {
                Ok(r) => Ok::<_, Error>(r),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        })?;
        joined.map_err(|source| Error::Namespace {
            ns: ns.to_owned(),
            op: "setns(CLONE_NEWNET)",
            source,
        })
    }

    /// [`NetnsPair::try_in_ns`] that panics if the namespace cannot be
    /// entered.
    pub fn in_ns<T: Send>(&self, side: Side, f: impl FnOnce() -> T + Send) -> T {
        match self.try_in_ns(side, f) {
            Ok(t) => t,
            Err(e) => panic!("in_ns({side}): {e}"),
        }
    }

    /// Spawns a detached-able thread in the namespace of `side` running `f`
    /// (for receivers that run alongside a sender). The thread must be joined
    /// before the pair is dropped if `f` uses the interface.
    pub fn spawn_in_ns<T: Send + 'static>(
        &self,
        side: Side,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<thread::JoinHandle<T>> {
        let file = self.open_ns(side)?;
        let ns = self.ns_name(side).to_owned();
        let (tx, rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let h = thread::Builder::new()
            .name(format!("in-{ns}"))
            .spawn(move || {
                let entered = sys::setns_net(&file);
                drop(file);
                let ok = entered.is_ok();
                let _ = tx.send(entered);
                if !ok {
                    // The spawner reports the error; never run `f` outside.
                    panic!("setns failed");
                }
                f()
            })
            .map_err(|source| Error::Thread {
                ns: ns.clone(),
                source,
            })?;
        match rx.recv() {
            Ok(Ok(())) => Ok(h),
            Ok(Err(source)) => {
                let _ = h.join();
                Err(Error::Namespace {
                    ns,
                    op: "setns(CLONE_NEWNET)",
                    source,
                })
            }
            Err(_) => {
                let _ = h.join();
                Err(Error::Namespace {
                    ns,
                    op: "setns(CLONE_NEWNET)",
                    source: io::Error::other("namespace thread died"),
                })
            }
        }
    }

    /// Runs `cmd args` in the namespace of `side` with `ip netns exec`
    /// (which also remounts `/sys` for that namespace) and returns its
    /// output whatever its exit status; fails only if `ip` cannot be run.
    pub fn exec<I, S>(&self, side: Side, cmd: &str, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let all = self.exec_argv(side, cmd, &args);
        Command::new("ip")
            .args(&all)
            .output()
            .map_err(|source| Error::Spawn {
                cmd: cmd_line("ip", &all),
                source,
            })
    }

    /// `netns exec NS cmd args...`: the arguments of `ip` for [`Self::exec`].
    fn exec_argv<'a, S: AsRef<OsStr>>(
        &'a self,
        side: Side,
        cmd: &'a str,
        args: &'a [S],
    ) -> Vec<&'a OsStr> {
        let mut all: Vec<&OsStr> = vec![
            OsStr::new("netns"),
            OsStr::new("exec"),
            OsStr::new(self.ns_name(side)),
            OsStr::new(cmd),
        ];
        all.extend(args.iter().map(AsRef::as_ref));
        all
    }

    /// [`NetnsPair::exec`] that fails (with the command's stderr) unless the
    /// command exits 0.
    pub fn exec_ok<I, S>(&self, side: Side, cmd: &str, args: I) -> Result<Output>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let all = self.exec_argv(side, cmd, &args);
        run_os("ip", &all, Some(self.ns_name(side)))
    }

    /// `ethtool -S` counters of the veth end of `side` (e.g.
    /// `rx_queue_0_xdp_packets`, `peer_ifindex`).
    pub fn ethtool_stats(&self, side: Side) -> Result<BTreeMap<String, u64>> {
        let out = self.exec_ok(side, "ethtool", ["-S", self.ifname(side)])?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut map = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(':') {
                if let Ok(v) = v.trim().parse::<u64>() {
                    map.insert(k.trim().to_owned(), v);
                }
            }
        }
        Ok(map)
    }

    fn teardown(&mut self) -> Vec<Error> {
        let mut errors = Vec::new();
        if self.ns_created == [true, true] {
            // Deleting the veth explicitly (synchronously, under RTNL) makes
            // it vanish now, even if a socket still pins a namespace.
            let ns = &self.ns[0];
            if let Err(e) = run(
                "ip",
                &["-n", ns, "link", "del", "dev", &self.ifname[0]],
                Some(ns),
            ) {
                let missing = matches!(&e, Error::Command { stderr, .. }
                    if stderr.contains("Cannot find device"));
                if !missing {
                    errors.push(e);
                }
            }
        }
        for side in [Side::A, Side::B] {
            if self.ns_created[side.idx()] {
                match delete_ns(&self.ns[side.idx()]) {
                    Ok(()) => self.ns_created[side.idx()] = false,
                    Err(e) => errors.push(e),
                }
            }
        }
        errors
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for e in self.teardown() {
            warn(&format!("tearing down netns pair: {e}"));
        }
    }
}

/// Formats a MAC as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in &mut mac {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Called on a thread inside the namespace: /proc/sys/net is per network
/// namespace of the calling thread.
fn disable_ipv6(ns: &str, ifname: &str) -> Result<()> {
    let path = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
    match std::fs::write(&path, "1") {
        Ok(()) => Ok(()),
        // No IPv6 in this kernel at all: nothing to disable.
        Err(e)
            if e.kind() == io::ErrorKind::NotFound && !Path::new("/proc/sys/net/ipv6").exists() =>
        {
            Ok(())
        }
        Err(source) => Err(Error::Interface {
            ifname: ifname.to_owned(),
            ns: ns.to_owned(),
            op: "write net.ipv6.conf.IF.disable_ipv6=1",
            source,
        }),
    }
}

fn read_mac(ns: &str, ifname: &str) -> Result<[u8; 6]> {
    let args = ["-n", ns, "-o", "link", "show", "dev", ifname];
    let out = run("ip", &args, Some(ns))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_once("link/ether ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .and_then(parse_mac)
        .ok_or_else(|| Error::Parse {
            cmd: format!("ip {}", args.join(" ")),
            what: "link/ether MAC",
            output: text.trim().to_owned(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_ifnamsiz_for_largest_pid_and_counter() {
        let (ns, ifs) = names_for(4_194_304, COUNTER_MOD - 1);
        for n in ns.iter().chain(ifs.iter()) {
            assert!(n.len() <= MAX_IFNAME, "{n} is {} chars", n.len());
        }
        assert_eq!(ns[0], "skm4194304azzzz");
    }

    #[test]
    fn names_round_trip_their_pid() {
        let (ns, ifs) = names_for(1234, 77);
        assert_eq!(ns, ["skm1234a25", "skm1234b25"]);
        assert_eq!(ifs, ["skv1234a25", "skv1234b25"]);
        for n in ns.iter().chain(ifs.iter()) {
            assert_eq!(pid_of_name(n), Some(1234));
        }
    }

    #[test]
    fn foreign_names_are_not_taken_for_harness_names() {
        for n in [
            "skm", "skmfoo", "skm12", "skm12c3", "skm12a", "skm12a-1", "xyz12a0", "skm12aX",
        ] {
            assert_eq!(pid_of_name(n), None, "{n}");
        }
    }

    #[test]
    fn mac_formats_and_parses() {
        let m = [0x02, 0xab, 0, 0x10, 0xff, 0x7];
        assert_eq!(format_mac(m), "02:ab:00:10:ff:07");
        assert_eq!(parse_mac("02:ab:00:10:ff:07"), Some(m));
        assert_eq!(parse_mac("02:ab:00:10:ff"), None);
        assert_eq!(parse_mac("02:ab:00:10:ff:07:01"), None);
        assert_eq!(parse_mac("02:ab:00:10:ff:g7"), None);
    }
}
