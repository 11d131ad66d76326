//! Command-line values checked before anything is attached or created.
//!
//! Each parser here is a clap `value_parser`: a bad value is refused by
//! clap, naming the flag and the range, with exit code 2 — before the
//! command touches the machine. What can only be checked against the
//! machine (a queue against the device's queue count) is a [`Usage`]
//! error, which `main` also turns into exit 2.

use std::path::Path;

use skmem_xdp::{
    XdpFilter, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP,
};

/// A command-line value the machine refuses (exit 2, as clap's errors).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// The longest run a duration may ask for: ten years, in seconds. More is
/// a typo, and `Instant + Duration` must not overflow.
pub const MAX_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The smallest Ethernet frame without its FCS.
pub const MIN_FRAME: usize = 60;

/// The largest single-buffer frame `fwd` sends: one default buffer.
pub const MAX_FWD_FRAME: usize = 2048;

/// The most packets one arena's pool may hold (2 GiB of 2 KiB buffers):
/// the buffers are made up front.
pub const MAX_PACKETS: usize = 1 << 20;

/// A whole number in `lo..=hi`.
pub fn in_range<T>(s: &str, lo: T, hi: T, what: &str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let v: T = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number ({what}: {lo}..={hi})"))?;
    if v < lo || v > hi {
        return Err(format!("{v} is out of range ({what}: {lo}..={hi})"));
    }
    Ok(v)
}

/// An interface name as the kernel takes it (`dev_valid_name`): 1 to 15
/// bytes, not `.` or `..`, no `/`, `:` or white space — so it is also safe
/// in a `/sys/class/net/` path.
pub fn iface(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not an interface name (1-15 bytes, no '/', ':' or spaces)"
        ))
    }
}

/// Whole seconds, at most [`MAX_SECONDS`].
pub fn seconds(s: &str) -> Result<u64, String> {
    in_range(s, 0, MAX_SECONDS, "seconds")
}

/// Whole seconds, 1 to [`MAX_SECONDS`]: for a run that has no "until
/// Ctrl-C" (0 would be a run of nothing).
pub fn seconds_nonzero(s: &str) -> Result<u64, String> {
    in_range(s, 1, MAX_SECONDS, "seconds")
}

/// Seconds with a fraction: finite, at most [`MAX_SECONDS`].
pub fn seconds_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !v.is_finite() || !(0.0..=MAX_SECONDS as f64).contains(&v) {
        return Err(format!("{s} is out of range (seconds: 0..={MAX_SECONDS})"));
    }
    Ok(v)
}

/// A SCHED_FIFO priority.
pub fn fifo(s: &str) -> Result<u8, String> {
    in_range(s, 1, 99, "SCHED_FIFO priority")
}

/// Descriptors per ring operation.
pub fn batch(s: &str) -> Result<usize, String> {
    in_range(s, 1, 4096, "descriptors per ring operation")
}

/// A frame `fwd` sends, bytes on the wire without FCS.
pub fn fwd_frame(s: &str) -> Result<usize, String> {
    in_range(s, MIN_FRAME, MAX_FWD_FRAME, "frame bytes")
}

/// Frames the demo's generator keeps in flight.
pub fn window(s: &str) -> Result<u64, String> {
    in_range(s, 1, 1024, "frames in flight")
}

/// Packets in a pool.
pub fn packets(s: &str) -> Result<usize, String> {
    in_range(s, 64, MAX_PACKETS, "packets")
}

/// `--filter`: which frames the XDP program gives to AF_XDP (the others
/// go to the kernel stack). Comma-separated terms, all of which must hold:
/// `ipv4`, `ipv6`, `arp`, `ether:0xNNNN`, `udp`, `tcp`, `icmpv6`,
/// `proto:N`, `udp:PORT`, `udp:LO-HI`.
pub fn filter(s: &str) -> Result<XdpFilter, String> {
    let mut f = XdpFilter::new();
    let bad = |t: &str| {
        format!(
            "`{t}` is not a filter term (ipv4, ipv6, arp, ether:0xNNNN, udp, tcp, icmpv6, \
             proto:N, udp:PORT, udp:LO-HI)"
        )
    };
    let port = |p: &str, t: &str| -> Result<u16, String> {
        match p.parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("`{t}`: a port is 1..=65535")),
            Ok(v) => Ok(v),
        }
    };
    // The IP protocol a term asked for (a port range sets UDP itself).
    let mut proto = None;
    for t in s.split(',').map(str::trim) {
        match t {
            "udp" => proto = Some(IPPROTO_UDP),
            "tcp" => proto = Some(IPPROTO_TCP),
            "icmpv6" => proto = Some(IPPROTO_ICMPV6),
            _ => {
                if let Some(v) = t.strip_prefix("proto:") {
                    proto = v.parse().ok();
                }
            }
        }
        f = match t {
            "ipv4" => f.with_ethertype(ETH_P_IP),
            "ipv6" => f.with_ethertype(ETH_P_IPV6),
            "arp" => f.with_ethertype(ETH_P_ARP),
            "udp" => f.with_ip_proto(IPPROTO_UDP),
            "tcp" => f.with_ip_proto(IPPROTO_TCP),
            "icmpv6" => f.with_ip_proto(IPPROTO_ICMPV6),
            _ => {
                let (k, v) = t.split_once(':').ok_or_else(|| bad(t))?;
                match k {
                    "ether" => {
                        let hex = v.trim_start_matches("0x");
                        let e = u16::from_str_radix(hex, 16).map_err(|_| bad(t))?;
                        f.with_ethertype(e)
                    }
                    "proto" => f.with_ip_proto(v.parse().map_err(|_| bad(t))?),
                    "udp" => {
                        let (lo, hi) = match v.split_once('-') {
                            Some((lo, hi)) => (port(lo, t)?, port(hi, t)?),
                            None => (port(v, t)?, port(v, t)?),
                        };
                        if lo > hi {
                            return Err(format!("`{t}`: the range is LO-HI, LO <= HI"));
                        }
                        f.with_udp_dst_ports(lo, hi)
                    }
                    _ => return Err(bad(t)),
                }
            }
        };
    }
    if f.has_port_range() && proto.is_some_and(|p| p != IPPROTO_UDP) {
        return Err(format!(
            "`{s}`: ports are UDP destination ports (not with tcp or proto:N)"
        ));
    }
    Ok(f)
}

/// CPUs this machine has online (at least 1).
pub fn online_cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// A CPU of this machine.
pub fn cpu(s: &str) -> Result<usize, String> {
    in_range(s, 0, online_cpus() - 1, "CPU")
}

/// The interface exists in this network namespace; how many RX queues it
/// has (from sysfs, which `ip netns exec` mounts for the namespace).
pub fn iface_queues(iface: &str) -> Result<u32, Usage> {
    let dir = Path::new("/sys/class/net").join(iface);
    if !dir.exists() {
        return Err(Usage(format!(
            "--iface {iface}: no such interface in this network namespace"
        )));
    }
    let n = std::fs::read_dir(dir.join("queues"))
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count()
        })
        .unwrap_or(1);
    Ok(u32::try_from(n).unwrap_or(u32::MAX).max(1))
}

/// Every queue is one the interface has.
pub fn queues(iface: &str, queues: &[u32]) -> Result<(), Usage> {
    let n = iface_queues(iface)?;
    if let Some(q) = queues.iter().find(|&&q| q >= n) {
        return Err(Usage(format!(
            "--queue {q}: {iface} has {n} receive queue{} (0..={})",
            if n == 1 { "" } else { "s" },
            n - 1
        )));
    }
    Ok(())
}

/// About how many bytes one packet of a pool takes: its default buffer
/// (the UMEM chunk) and its metadata (owner and user copies, the state
/// column, the slot descriptors), rounded up.
fn bytes_per_packet() -> usize {
    skmem::PoolParams::default().buf_size + 512
}

/// `MemAvailable` from `/proc/meminfo`, in bytes.
fn mem_available() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: usize = text
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The memory `pools` pools of `packets` packets need, said up front and
/// refused when the machine does not have it available (rather than an
/// OOM kill half-way through creating them). Returns the estimate.
pub fn pool_memory(packets: usize, pools: usize) -> Result<usize, Usage> {
    let need = packets * pools * bytes_per_packet();
    match mem_available() {
        Some(avail) if need > avail => Err(Usage(format!(
            "--packets {packets}: {pools} pool{} of {packets} packets need about {}, \
             and {} is available",
            if pools == 1 { "" } else { "s" },
            skmem_xdp::observe::human_bytes(need as u64),
            skmem_xdp::observe::human_bytes(avail as u64)
        ))),
        _ => Ok(need),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_memory_is_estimated_and_refused_beyond_what_is_available() {
        let one = pool_memory(4096, 1).unwrap();
        assert!(one >= 4096 * 2048, "{one}");
        assert_eq!(pool_memory(4096, 2).unwrap(), 2 * one);
        // More than any machine this runs on has available.
        let err = pool_memory(MAX_PACKETS, 1 << 20).unwrap_err().0;
        assert!(
            err.starts_with("--packets 1048576:") && err.contains("available"),
            "{err}"
        );
    }

    #[test]
    fn interface_names_are_the_kernels() {
        assert!(iface("veth0").is_ok());
        assert!(iface("a").is_ok());
        assert!(iface("").is_err());
        assert!(iface("0123456789abcdef").is_err(), "16 bytes");
        assert!(iface("0123456789abcde").is_ok(), "15 bytes");
        for bad in [".", "..", "../../x", "a b", "a:b"] {
            assert!(iface(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ranges_name_themselves() {
        assert_eq!(batch("64"), Ok(64));
        let e = batch("0").unwrap_err();
        assert!(e.contains("1..=4096"), "{e}");
        assert!(batch("x").unwrap_err().contains("not a number"));
        assert!(fwd_frame("10").is_err());
        assert!(fwd_frame("100000").is_err());
        assert_eq!(fwd_frame("60"), Ok(60));
        assert!(fifo("100").is_err());
        assert!(fifo("0").is_err());
        assert_eq!(fifo("99"), Ok(99));
        assert!(packets("100000000").is_err());
    }

    #[test]
    fn filters_parse_into_the_xdp_programs_criteria() {
        let f = filter("udp:9000").unwrap();
        assert_eq!(
            (f.ip_proto, f.udp_port_lo, f.udp_port_hi),
            (IPPROTO_UDP, 9000, 9000)
        );
        let f = filter("ipv4,udp:9000-9099").unwrap();
        assert_eq!(
            (f.ethertype, f.udp_port_lo, f.udp_port_hi),
            (ETH_P_IP, 9000, 9099)
        );
        assert_eq!(filter("ether:0x88b5").unwrap().ethertype, 0x88b5);
        assert_eq!(filter("tcp").unwrap().ip_proto, IPPROTO_TCP);
        assert!(filter("").unwrap_err().contains("not a filter term"));
        for bad in [
            "udp:0",
            "udp:70000",
            "udp:9-1",
            "ssh",
            "ether:zz",
            "tcp,udp:1",
        ] {
            assert!(filter(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_cannot_overflow() {
        assert!(seconds("18446744073709551615").is_err());
        assert_eq!(seconds("10"), Ok(10));
        for bad in ["inf", "nan", "-1", "1e30"] {
            assert!(seconds_f64(bad).is_err(), "{bad}");
        }
        assert_eq!(seconds_f64("0.5"), Ok(0.5));
        // The longest accepted run still fits an Instant.
        let end =
            std::time::Instant::now().checked_add(std::time::Duration::from_secs(MAX_SECONDS));
        assert!(end.is_some());
    }

    #[test]
    fn cpus_are_the_machines() {
        let n = online_cpus();
        assert_eq!(cpu("0"), Ok(0));
        assert!(cpu(&n.to_string()).is_err());
        assert!(cpu("99999").is_err());
    }

    #[test]
    fn a_missing_interface_is_a_usage_error() {
        let e = queues("skmem-nope0", &[0]).unwrap_err();
        assert!(e.0.contains("no such interface"), "{e}");
        // Loopback has one queue, at least in sysfs terms.
        if Path::new("/sys/class/net/lo").exists() {
            let n = iface_queues("lo").unwrap();
            let e = queues("lo", &[n]).unwrap_err();
            assert!(e.0.contains("--queue"), "{e}");
        }
    }
}
