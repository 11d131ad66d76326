//! Ethernet/IPv4/UDP test frames carrying the kernel AF_XDP self-test
//! payload pattern, and the checks for received frames.
//!
//! Layout of a frame of `size` bytes (no FCS):
//!
//! | bytes | content |
//! |---|---|
//! | 0..14 | Ethernet: dst MAC, src MAC, EtherType 0x0800 |
//! | 14..34 | IPv4: no options, total length `size - 14`, id = packet number (low 16 bits), DF, TTL 64, UDP, valid header checksum |
//! | 34..42 | UDP: ports, length `size - 34`, checksum 0 (none) |
//! | 42..size | payload: big-endian `u32` words, word `i` of packet `n` is `(n << 16) \| i`; a trailing partial word holds the leading bytes of the word it would be |
//!
//! As in the kernel's `xskxceiver`, the packet number occupies the high 16
//! bits of each word, so it wraps every 65 536 packets: [`check_payload`]
//! returns it modulo 65 536 and [`SequenceChecker`] tracks the wrap.

use std::net::Ipv4Addr;

/// Length of the Ethernet header.
pub const ETH_HLEN: usize = 14;
/// Length of the (option-less) IPv4 header.
pub const IPV4_HLEN: usize = 20;
/// Length of the UDP header.
pub const UDP_HLEN: usize = 8;
/// Offset of the payload in a frame.
pub const PAYLOAD_OFFSET: usize = ETH_HLEN + IPV4_HLEN + UDP_HLEN;
/// Smallest frame [`FrameSpec`] builds: Ethernet's minimum without the
/// FCS (what a veth carries), room for 18 payload bytes.
pub const MIN_FRAME: usize = 60;
/// Largest frame [`FrameSpec`] builds (IPv4 total length is 16 bits).
pub const MAX_FRAME: usize = ETH_HLEN + u16::MAX as usize;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// IP protocol number of UDP.
pub const IPPROTO_UDP: u8 = 17;

/// A frame that cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The requested size is outside [`MIN_FRAME`]..=[`MAX_FRAME`].
    #[error("frame size {size} outside {MIN_FRAME}..={MAX_FRAME}")]
    BadSize {
        /// The requested size.
        size: usize,
    },
    /// The destination buffer is smaller than the frame.
    #[error("buffer of {buf} bytes too small for a {size}-byte frame")]
    BufferTooSmall {
        /// Length of the buffer.
        buf: usize,
        /// The frame size.
        size: usize,
    },
}

/// Everything that describes the frames of one flow; packet `n` of the flow
/// is [`FrameSpec::build`]`(n)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameSpec {
    /// Source MAC.
    pub src_mac: [u8; 6],
    /// Destination MAC.
    pub dst_mac: [u8; 6],
    /// Source IPv4 address.
    pub src_ip: Ipv4Addr,
    /// Destination IPv4 address.
    pub dst_ip: Ipv4Addr,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// Total frame size in bytes (Ethernet header included, FCS excluded).
    pub size: usize,
}

impl FrameSpec {
    /// A spec for `size`-byte frames; fails when `size` is outside
    /// [`MIN_FRAME`]..=[`MAX_FRAME`].
    pub fn new(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src_ip: Ipv4Addr,
        dst_ip: Ipv4Addr,
        src_port: u16,
        dst_port: u16,
        size: usize,
    ) -> Result<Self, FrameError> {
        let spec = Self {
            src_mac,
            dst_mac,
            src_ip,
            dst_ip,
            src_port,
            dst_port,
            size,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The same flow with another frame size.
    pub fn with_size(&self, size: usize) -> Result<Self, FrameError> {
        let spec = Self {
            size,
            ..self.clone()
        };
        spec.validate()?;
        Ok(spec)
    }

    fn validate(&self) -> Result<(), FrameError> {
        if (MIN_FRAME..=MAX_FRAME).contains(&self.size) {
            Ok(())
        } else {
            Err(FrameError::BadSize { size: self.size })
        }
    }

    /// Number of payload bytes in each frame.
    pub fn payload_len(&self) -> usize {
        self.size - PAYLOAD_OFFSET
    }

    /// Builds packet `packet_no` of the flow.
    pub fn build(&self, packet_no: u64) -> Result<Vec<u8>, FrameError> {
        self.validate()?;
        let mut v = vec![0u8; self.size];
        self.write(packet_no, &mut v)?;
        Ok(v)
    }

    /// Writes packet `packet_no` into the first [`FrameSpec::size`] bytes of
    /// `buf` and returns the frame length.
    pub fn write(&self, packet_no: u64, buf: &mut [u8]) -> Result<usize, FrameError> {
        self.validate()?;
        let size = self.size;
        if buf.len() < size {
            return Err(FrameError::BufferTooSmall {
                buf: buf.len(),
                size,
            });
        }
        let f = &mut buf[..size];
        // Ethernet.
        f[0..6].copy_from_slice(&self.dst_mac);
        f[6..12].copy_from_slice(&self.src_mac);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        // IPv4.
        let ip = &mut f[ETH_HLEN..ETH_HLEN + IPV4_HLEN];
        ip[0] = 0x45;
        ip[1] = 0;
        ip[2..4].copy_from_slice(&((size - ETH_HLEN) as u16).to_be_bytes());
        ip[4..6].copy_from_slice(&(packet_no as u16).to_be_bytes());
        ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
        ip[8] = 64;
        ip[9] = IPPROTO_UDP;
        ip[10..12].copy_from_slice(&[0, 0]);
        ip[12..16].copy_from_slice(&self.src_ip.octets());
        ip[16..20].copy_from_slice(&self.dst_ip.octets());
        let csum = ipv4_checksum(ip);
        ip[10..12].copy_from_slice(&csum.to_be_bytes());
        // UDP.
        let udp = &mut f[ETH_HLEN + IPV4_HLEN..PAYLOAD_OFFSET];
        udp[0..2].copy_from_slice(&self.src_port.to_be_bytes());
        udp[2..4].copy_from_slice(&self.dst_port.to_be_bytes());
        udp[4..6].copy_from_slice(&((size - ETH_HLEN - IPV4_HLEN) as u16).to_be_bytes());
        udp[6..8].copy_from_slice(&[0, 0]);
        write_pattern(&mut f[PAYLOAD_OFFSET..], packet_no);
        Ok(size)
    }
}

/// Word `i` of the payload of packet `packet_no`: `(n << 16) | i` with `n`
/// the packet number modulo 65 536.
pub fn pattern_word(packet_no: u64, word_index: usize) -> u32 {
    ((packet_no as u32) << 16) | (word_index as u32 & 0xffff)
}

/// Fills `payload` with the pattern of packet `packet_no`.
pub fn write_pattern(payload: &mut [u8], packet_no: u64) {
    for (i, chunk) in payload.chunks_mut(4).enumerate() {
        let w = pattern_word(packet_no, i).to_be_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// The Internet checksum (RFC 1071) of `header`, as stored in the IPv4
/// header checksum field when that field is zero in `header`. Over a header
/// with a correct checksum in place the result is 0.
pub fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for chunk in header.chunks(2) {
        let word = if chunk.len() == 2 {
            u16::from_be_bytes([chunk[0], chunk[1]])
        } else {
            u16::from_be_bytes([chunk[0], 0])
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Why a received frame is not an intact test frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// Shorter than the headers plus one payload word.
    #[error("frame of {len} bytes is too short")]
    TooShort {
        /// Frame length.
        len: usize,
    },
    /// EtherType is not IPv4.
    #[error("EtherType {ethertype:#06x} is not IPv4")]
    NotIpv4 {
        /// The EtherType found.
        ethertype: u16,
    },
    /// IPv4 version/IHL byte is not 0x45.
    #[error("IPv4 version/IHL byte {0:#04x}, expected 0x45")]
    BadIpHeader(u8),
    /// IPv4 header checksum does not verify.
    #[error("IPv4 header checksum {found:#06x} does not verify (expected {expected:#06x})")]
    BadChecksum {
        /// The checksum in the frame.
        found: u16,
        /// The checksum the header should carry.
        expected: u16,
    },
    /// IP protocol is not UDP.
    #[error("IP protocol {0} is not UDP")]
    NotUdp(u8),
    /// A length field disagrees with the frame length.
    #[error("{field} says {claimed} bytes, frame has {actual}")]
    LengthMismatch {
        /// Which length field.
        field: &'static str,
        /// What the field says.
        claimed: usize,
        /// What the frame has.
        actual: usize,
    },
    /// A payload word differs from the pattern.
    #[error("payload word {word_index} is {found:#010x}, expected {expected:#010x} (packet {packet_no})")]
    Pattern {
        /// Packet number from the first word (mod 65 536).
        packet_no: u16,
        /// Index of the first wrong word.
        word_index: usize,
        /// The word as found (a partial trailing word is zero-padded).
        found: u32,
        /// The word the pattern has there (same padding).
        expected: u32,
    },
}

/// What [`check_payload`] learnt from an intact frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameInfo {
    /// Packet number, modulo 65 536.
    pub packet_no: u16,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// UDP source port.
    pub src_port: u16,
    /// UDP destination port.
    pub dst_port: u16,
    /// IPv4 source address.
    pub src_ip: Ipv4Addr,
    /// IPv4 destination address.
    pub dst_ip: Ipv4Addr,
}

/// Checks that `frame` is an intact test frame (headers, lengths, IPv4
/// checksum, every payload word) and returns its packet number (mod 65 536)
/// and addressing. Trailing bytes beyond the IPv4 total length (Ethernet
/// padding) are rejected, since veth and AF_XDP deliver frames unpadded.
pub fn check_payload(frame: &[u8]) -> Result<FrameInfo, PayloadError> {
    if frame.len() < PAYLOAD_OFFSET + 4 {
        return Err(PayloadError::TooShort { len: frame.len() });
    }
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
    if ethertype != ETHERTYPE_IPV4 {
        return Err(PayloadError::NotIpv4 { ethertype });
    }
    let ip = &frame[ETH_HLEN..ETH_HLEN + IPV4_HLEN];
    if ip[0] != 0x45 {
        return Err(PayloadError::BadIpHeader(ip[0]));
    }
    if ipv4_checksum(ip) != 0 {
        let mut zeroed = [0u8; IPV4_HLEN];
        zeroed.copy_from_slice(ip);
        zeroed[10] = 0;
        zeroed[11] = 0;
        return Err(PayloadError::BadChecksum {
            found: u16::from_be_bytes([ip[10], ip[11]]),
            expected: ipv4_checksum(&zeroed),
        });
    }
    if ip[9] != IPPROTO_UDP {
        return Err(PayloadError::NotUdp(ip[9]));
    }
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total != frame.len() - ETH_HLEN {
        return Err(PayloadError::LengthMismatch {
            field: "IPv4 total length",
            claimed: total,
            actual: frame.len() - ETH_HLEN,
        });
    }
    let udp = &frame[ETH_HLEN + IPV4_HLEN..PAYLOAD_OFFSET];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len != frame.len() - ETH_HLEN - IPV4_HLEN {
        return Err(PayloadError::LengthMismatch {
            field: "UDP length",
            claimed: udp_len,
            actual: frame.len() - ETH_HLEN - IPV4_HLEN,
        });
    }
    let payload = &frame[PAYLOAD_OFFSET..];
    let packet_no = u16::from_be_bytes([payload[0], payload[1]]);
    for (i, chunk) in payload.chunks(4).enumerate() {
        let expected_full = pattern_word(u64::from(packet_no), i).to_be_bytes();
        let expected = &expected_full[..chunk.len()];
        if chunk != expected {
            let pad = |b: &[u8]| {
                let mut w = [0u8; 4];
                w[..b.len()].copy_from_slice(b);
                u32::from_be_bytes(w)
            };
            return Err(PayloadError::Pattern {
                packet_no,
                word_index: i,
                found: pad(chunk),
                expected: pad(expected),
            });
        }
    }
    Ok(FrameInfo {
        packet_no,
        payload_len: payload.len(),
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        src_ip: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        dst_ip: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
    })
}

/// A received frame that breaks the expected sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// The frame itself is damaged.
    #[error("packet {expected} expected: {source}")]
    Payload {
        /// The full packet number that was expected.
        expected: u64,
        /// What is wrong with the frame.
        #[source]
        source: PayloadError,
    },
    /// An intact frame arrived out of order (or one was lost).
    #[error("packet {expected} (mod 65536: {}) expected, got packet number {found} (mod 65536)", *.expected as u16)]
    OutOfOrder {
        /// The full packet number that was expected.
        expected: u64,
        /// The packet number found (mod 65 536).
        found: u16,
    },
}

/// Checks that frames arrive intact and in order 0, 1, 2, ... (across the
/// 65 536 wrap of the on-wire packet number).
#[derive(Debug, Clone, Default)]
pub struct SequenceChecker {
    next: u64,
}

impl SequenceChecker {
    /// A checker expecting packet 0 first.
    pub fn new() -> Self {
        Self::default()
    }

    /// A checker expecting packet `first` first.
    pub fn starting_at(first: u64) -> Self {
        Self { next: first }
    }

    /// Checks the next frame; returns its full packet number. On error the
    /// expectation does not advance.
    pub fn check(&mut self, frame: &[u8]) -> Result<u64, SequenceError> {
        let info = check_payload(frame).map_err(|source| SequenceError::Payload {
            expected: self.next,
            source,
        })?;
        if info.packet_no != self.next as u16 {
            return Err(SequenceError::OutOfOrder {
                expected: self.next,
                found: info.packet_no,
            });
        }
        let n = self.next;
        self.next += 1;
        Ok(n)
    }

    /// How many frames have been checked in order so far (the next expected
    /// packet number minus the first).
    pub fn next_expected(&self) -> u64 {
        self.next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size: usize) -> FrameSpec {
        FrameSpec::new(
            [0x02, 0, 0, 0, 0, 0xbb],
            [0x02, 0, 0, 0, 0, 0xaa],
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
            4000,
            5000,
            size,
        )
        .unwrap()
    }

    #[test]
    fn built_frame_has_requested_size_and_checksum_verifies() {
        for size in [64, 65, 66, 67, 100, 1514, 9014, MAX_FRAME] {
            let f = spec(size).build(7).unwrap();
            assert_eq!(f.len(), size);
            assert_eq!(ipv4_checksum(&f[14..34]), 0, "size {size}");
            let info = check_payload(&f).unwrap();
            assert_eq!(info.packet_no, 7);
            assert_eq!(info.payload_len, size - 42);
            assert_eq!((info.src_port, info.dst_port), (4000, 5000));
            assert_eq!(info.dst_ip, Ipv4Addr::new(10, 0, 0, 1));
        }
    }

    #[test]
    fn ipv4_checksum_matches_known_header() {
        // Classic example header (Wikipedia, "IPv4 header checksum").
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(ipv4_checksum(&hdr), 0xb861);
    }

    #[test]
    fn headers_are_laid_out_as_documented() {
        let f = spec(64).build(0x1234_5678).unwrap();
        assert_eq!(&f[0..6], &[0x02, 0, 0, 0, 0, 0xaa]);
        assert_eq!(&f[6..12], &[0x02, 0, 0, 0, 0, 0xbb]);
        assert_eq!(&f[12..14], &[0x08, 0x00]);
        assert_eq!(u16::from_be_bytes([f[16], f[17]]), 50); // IP total length
        assert_eq!(u16::from_be_bytes([f[18], f[19]]), 0x5678); // IP id
        assert_eq!(f[23], 17);
        assert_eq!(&f[26..30], &[10, 0, 0, 2]);
        assert_eq!(&f[30..34], &[10, 0, 0, 1]);
        assert_eq!(u16::from_be_bytes([f[34], f[35]]), 4000);
        assert_eq!(u16::from_be_bytes([f[36], f[37]]), 5000);
        assert_eq!(u16::from_be_bytes([f[38], f[39]]), 30); // UDP length
        assert_eq!(&f[40..42], &[0, 0]); // no UDP checksum
    }

    #[test]
    fn payload_words_are_packet_number_shifted_or_word_index() {
        let f = spec(64).build(3).unwrap();
        let p = &f[42..];
        assert_eq!(p.len(), 22);
        for i in 0..5 {
            let w = u32::from_be_bytes(p[i * 4..i * 4 + 4].try_into().unwrap());
            assert_eq!(w, (3 << 16) | i as u32);
        }
        // Trailing partial word: leading bytes of (3 << 16) | 5.
        assert_eq!(&p[20..22], &[0x00, 0x03]);
    }

    #[test]
    fn packet_number_wraps_at_65536() {
        let f = spec(64).build(65_536 + 9).unwrap();
        assert_eq!(check_payload(&f).unwrap().packet_no, 9);
    }

    #[test]
    fn sizes_outside_bounds_are_rejected() {
        let s = spec(64);
        assert_eq!(s.with_size(59), Err(FrameError::BadSize { size: 59 }));
        assert!(s.with_size(60).is_ok());
        assert_eq!(
            s.with_size(MAX_FRAME + 1),
            Err(FrameError::BadSize {
                size: MAX_FRAME + 1
            })
        );
        let mut small = [0u8; 63];
        assert_eq!(
            s.write(0, &mut small),
            Err(FrameError::BufferTooSmall { buf: 63, size: 64 })
        );
    }

    #[test]
    fn every_corrupted_byte_is_detected() {
        let good = spec(100).build(42).unwrap();
        // Every byte from the EtherType on is covered by some check (MACs,
        // IP id/TTL/addresses through the checksum, UDP ports are not
        // checked; the UDP checksum field is not checked).
        let unchecked = |i: usize| i < 12 || (34..38).contains(&i) || (40..42).contains(&i);
        for i in 0..good.len() {
            if unchecked(i) {
                continue;
            }
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            assert!(
                check_payload(&bad).is_err(),
                "flip at byte {i} not detected"
            );
        }
    }

    #[test]
    fn truncated_or_padded_frames_are_rejected() {
        let good = spec(100).build(1).unwrap();
        assert!(matches!(
            check_payload(&good[..99]),
            Err(PayloadError::LengthMismatch { .. })
        ));
        let mut padded = good.clone();
        padded.push(0);
        assert!(matches!(
            check_payload(&padded),
            Err(PayloadError::LengthMismatch { .. })
        ));
        assert!(matches!(
            check_payload(&good[..40]),
            Err(PayloadError::TooShort { len: 40 })
        ));
    }

    #[test]
    fn pattern_error_names_first_wrong_word() {
        let mut f = spec(100).build(5).unwrap();
        f[42 + 4 * 3 + 3] ^= 0xff;
        match check_payload(&f) {
            Err(PayloadError::Pattern {
                packet_no,
                word_index,
                expected,
                ..
            }) => {
                assert_eq!(packet_no, 5);
                assert_eq!(word_index, 3);
                assert_eq!(expected, (5 << 16) | 3);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn sequence_checker_accepts_in_order_across_wrap_and_flags_gaps() {
        let s = spec(64);
        let mut c = SequenceChecker::starting_at(65_534);
        for n in 65_534..65_540u64 {
            assert_eq!(c.check(&s.build(n).unwrap()), Ok(n));
        }
        let err = c.check(&s.build(65_541).unwrap()).unwrap_err();
        assert_eq!(
            err,
            SequenceError::OutOfOrder {
                expected: 65_540,
                found: 5
            }
        );
        assert_eq!(c.next_expected(), 65_540);
    }
}
