//! The flow a received packet belongs to, hashed: what keeps a flow on one
//! worker ([`Spread::FlowHash`](super::Spread::FlowHash)).
//!
//! The 5-tuple of IPv4 and IPv6 TCP and UDP (addresses, protocol, ports),
//! addresses and protocol for other IP and for fragments after the first
//! (which carry no ports), the MAC addresses for anything else; one VLAN
//! tag is looked through. The bytes are the packet's, so every read is
//! bounds-checked: a short or lying header hashes what is there.

/// FNV-1a over the flow's bytes, then mixed: cheap, and spread enough for
/// a modulo by a handful of workers.
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    // Fold the high bits down: the low ones alone are weak for small
    // moduli.
    h ^ (h >> 29) ^ (h >> 47)
}

/// The hash of the flow of the Ethernet frame `p`.
pub(crate) fn hash(p: &[u8]) -> u64 {
    let macs = p.get(..12).unwrap_or(p);
    let mut at = 12;
    let mut ethertype = match p.get(at..at + 2) {
        Some(t) => u16::from_be_bytes([t[0], t[1]]),
        None => return fnv(&[macs]),
    };
    if ethertype == 0x8100 {
        at += 4;
        ethertype = match p.get(at..at + 2) {
            Some(t) => u16::from_be_bytes([t[0], t[1]]),
            None => return fnv(&[macs]),
        };
    }
    let l3 = at + 2;
    match ethertype {
        0x0800 => ipv4(p, l3).unwrap_or_else(|| fnv(&[macs])),
        0x86dd => ipv6(p, l3).unwrap_or_else(|| fnv(&[macs])),
        _ => fnv(&[macs]),
    }
}

fn ports(p: &[u8], l4: usize, proto: u8) -> &[u8] {
    match proto {
        6 | 17 => p.get(l4..l4 + 4).unwrap_or(&[]),
        _ => &[],
    }
}

fn ipv4(p: &[u8], l3: usize) -> Option<u64> {
    let h = p.get(l3..l3 + 20)?;
    let ihl = usize::from(h[0] & 0x0f) * 4;
    let proto = h[9];
    // A fragment after the first has no ports.
    let frag_off = u16::from_be_bytes([h[6], h[7]]) & 0x1fff;
    let l4 = if frag_off == 0 && ihl >= 20 {
        ports(p, l3 + ihl, proto)
    } else {
        &[]
    };
    Some(fnv(&[&h[12..20], &[proto], l4]))
}

fn ipv6(p: &[u8], l3: usize) -> Option<u64> {
    let h = p.get(l3..l3 + 40)?;
    let next = h[6];
    Some(fnv(&[&h[8..40], &[next], ports(p, l3 + 40, next)]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + UDP frame from `src` port `sport`.
    fn udp4(src: [u8; 4], sport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8];
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[14 + 12..14 + 16].copy_from_slice(&src);
        f[14 + 16..14 + 20].copy_from_slice(&[10, 0, 0, 2]);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&9u16.to_be_bytes());
        f
    }

    #[test]
    fn a_flow_hashes_the_same_and_flows_spread() {
        let a = udp4([10, 0, 0, 1], 1000);
        let mut a2 = a.clone();
        a2.extend_from_slice(b"different payload");
        assert_eq!(hash(&a), hash(&a2), "payload is not the flow");
        assert_ne!(hash(&a), hash(&udp4([10, 0, 0, 1], 1001)));
        // 64 flows over 2 and 3 workers: none left idle, none with all.
        for n in [2u64, 3] {
            let mut per = vec![0; n as usize];
            for port in 0..64 {
                per[(hash(&udp4([10, 0, 0, 1], port)) % n) as usize] += 1;
            }
            assert!(per.iter().all(|&c| c > 64 / (n as usize * 4)), "{per:?}");
        }
    }

    #[test]
    fn short_and_odd_frames_hash_without_panicking() {
        for len in 0..60 {
            let f = udp4([1, 2, 3, 4], 5);
            let _ = hash(&f[..len.min(f.len())]);
        }
        let mut vlan = vec![0u8; 18];
        vlan[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        let _ = hash(&vlan);
        let mut v6 = vec![0u8; 14 + 40 + 4];
        v6[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
        v6[14 + 6] = 6;
        let _ = hash(&v6);
    }
}
