//! Hand-built Ethernet frames. Addresses are documentation prefixes; no
//! address is configured on the test veths, so the stack drops whatever
//! XDP passes and nothing answers.

/// Source and destination MACs of every frame.
#[derive(Clone, Copy)]
pub struct Macs {
    pub dst: [u8; 6],
    pub src: [u8; 6],
}

const ETH_P_IP: u16 = 0x0800;
const ETH_P_IPV6: u16 = 0x86DD;
const ETH_P_ARP: u16 = 0x0806;

fn eth(m: Macs, ethertype: u16) -> Vec<u8> {
    let mut f = Vec::with_capacity(128);
    f.extend_from_slice(&m.dst);
    f.extend_from_slice(&m.src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// IPv4 options for [`Ipv4::options`]: one word of NOPs + EOL.
pub const NOP_OPTIONS: [u8; 4] = [1, 1, 1, 0];

/// Parameters of an IPv4 frame.
#[derive(Clone, Copy)]
pub struct Ipv4 {
    pub proto: u8,
    /// Flags and fragment offset field (host order).
    pub frag: u16,
    /// With one word of options (IHL 6).
    pub options: bool,
}

impl Default for Ipv4 {
    fn default() -> Self {
        Ipv4 {
            proto: 17,
            frag: 0x4000, // DF
            options: false,
        }
    }
}

/// An IPv4 frame carrying `l4` (a UDP or TCP header plus payload).
pub fn ipv4(m: Macs, p: Ipv4, l4: &[u8]) -> Vec<u8> {
    let mut f = eth(m, ETH_P_IP);
    let ihl: usize = if p.options { 6 } else { 5 };
    let total = (ihl * 4 + l4.len()) as u16;
    let mut h = vec![
        0x40 | ihl as u8,
        0,
        0,
        0,
        0,
        1,
        0,
        0,
        64,
        p.proto,
        0,
        0,
        192,
        0,
        2,
        2,
        198,
        51,
        100,
        1,
    ];
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[6..8].copy_from_slice(&p.frag.to_be_bytes());
    if p.options {
        h.extend_from_slice(&NOP_OPTIONS);
    }
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&h);
    f.extend_from_slice(l4);
    f
}

/// A UDP header to `dport` with an 18-byte payload holding `seq`.
pub fn udp(dport: u16, seq: u32) -> Vec<u8> {
    let payload = payload(seq);
    let len = (8 + payload.len()) as u16;
    let mut u = Vec::new();
    u.extend_from_slice(&40000u16.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&len.to_be_bytes());
    u.extend_from_slice(&[0, 0]); // no checksum (allowed for IPv4)
    u.extend_from_slice(&payload);
    u
}

/// A TCP SYN header to `dport`.
pub fn tcp(dport: u16) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&40000u16.to_be_bytes());
    t[2..4].copy_from_slice(&dport.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = 0x02;
    t
}

/// A recognisable payload: magic, then `seq`.
pub fn payload(seq: u32) -> Vec<u8> {
    let mut p = b"skmem-xdp-".to_vec();
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0xa5; 4]);
    p
}

/// An IPv4 UDP frame to `dport`.
pub fn udp4(m: Macs, dport: u16, seq: u32) -> Vec<u8> {
    ipv4(m, Ipv4::default(), &udp(dport, seq))
}

/// An IPv6 UDP frame to `dport`.
pub fn udp6(m: Macs, dport: u16, seq: u32) -> Vec<u8> {
    let mut f = eth(m, ETH_P_IPV6);
    let l4 = udp(dport, seq);
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    f.push(17); // next header: UDP
    f.push(64);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    f.extend_from_slice(&[0; 11]);
    f.push(2);
    f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
    f.extend_from_slice(&[0; 11]);
    f.push(1);
    f.extend_from_slice(&l4);
    f
}

/// An ARP request (who has 192.0.2.1).
pub fn arp(m: Macs) -> Vec<u8> {
    let mut f = eth(
        Macs {
            dst: [0xff; 6],
            src: m.src,
        },
        ETH_P_ARP,
    );
    f.extend_from_slice(&[0, 1, 0x08, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&m.src);
    f.extend_from_slice(&[192, 0, 2, 2]);
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&[192, 0, 2, 1]);
    f
}

/// An Ethernet header saying IPv4 followed by only 6 bytes.
pub fn truncated_ipv4(m: Macs) -> Vec<u8> {
    let mut f = eth(m, ETH_P_IP);
    f.extend_from_slice(&[0x45, 0, 0, 20, 0, 1]);
    f
}
