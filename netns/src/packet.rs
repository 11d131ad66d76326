//! AF_PACKET traffic generator and receiver.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::frame::{FrameSpec, ETHERTYPE_IPV4, ETH_HLEN, IPPROTO_UDP, IPV4_HLEN};
use crate::netns::{NetnsPair, Side};
use crate::sys;

/// How a [`Sender`] spaces its frames.
pub enum Pacing<'a> {
    /// As fast as `sendto` returns. On veth a burst can outrun an AF_XDP
    /// copy-mode consumer, which then loses frames silently (veth's ring
    /// to the peer is 256 frames, and copy mode drops what finds no room):
    /// use for throughput, not correctness.
    Burst,
    /// Keep at most `window` frames in flight, where in flight is
    /// `sent - received()`. `received` must count only frames of this flow
    /// that reached the consumer (e.g. an atomic the receiver bumps).
    Window {
        /// Largest number of frames sent but not yet received.
        window: u64,
        /// How many frames have been received so far.
        received: &'a mut dyn FnMut() -> u64,
    },
    /// At most this many frames per second (> 0; sent in small bursts that
    /// keep up with the schedule, sleeping in between).
    Rate(f64),
}

/// Most frames sent between two deadline checks.
const MAX_BATCH: u64 = 256;

/// What a send run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendReport {
    /// Frames handed to the kernel.
    pub sent: u64,
    /// How many frames were asked for.
    pub requested: u64,
    /// Whether the timeout stopped the run before all were sent.
    pub timed_out: bool,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl SendReport {
    /// Whether every requested frame was sent.
    pub fn complete(&self) -> bool {
        self.sent == self.requested
    }
}

/// An `AF_PACKET` raw socket that sends test frames out of one interface.
/// It is send-only: bound with protocol 0, it receives nothing.
#[derive(Debug)]
pub struct Sender {
    fd: OwnedFd,
    ifindex: u32,
}

impl Sender {
    /// Opens a sender on the veth end of `side`, inside its namespace.
    pub fn open(pair: &NetnsPair, side: Side) -> Result<Self> {
        let ifindex = pair.ifindex(side);
        pair.try_in_ns(side, || Self::open_in_current_ns(ifindex))?
    }

    /// Opens a sender on `ifindex` in the calling thread's network namespace.
    pub fn open_in_current_ns(ifindex: u32) -> Result<Self> {
        let sock_err = |op| {
            move |source| Error::Socket {
                ifindex,
                op,
                source,
            }
        };
        let fd = sys::packet_socket(0).map_err(sock_err("socket(AF_PACKET, SOCK_RAW)"))?;
        sys::bind_ll(fd.as_fd(), 0, ifindex).map_err(sock_err("bind"))?;
        // Let frames skip the qdisc layer (veth has none by default anyway).
        let _ = sys::setsockopt_int(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1);
        Ok(Self { fd, ifindex })
    }

    /// The interface index frames go out of.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends one complete Ethernet frame, retrying briefly while the kernel
    /// reports a full buffer (`ENOBUFS`/`EAGAIN`).
    pub fn send_frame(&self, frame: &[u8]) -> Result<()> {
        let proto = if frame.len() >= ETH_HLEN {
            u16::from_be_bytes([frame[12], frame[13]])
        } else {
            0
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match sys::sendto_ll(self.fd.as_fd(), frame, proto, self.ifindex) {
                Ok(_) => return Ok(()),
                Err(e)
                    if matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EAGAIN))
                        && Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(Error::Socket {
                        ifindex: self.ifindex,
                        op: "sendto",
                        source,
                    })
                }
            }
        }
    }

    /// Sends packets `0..count` of `spec`, spaced by `pacing`, stopping
    /// early when `timeout` has passed; returns how many were sent.
    pub fn send(
        &self,
        spec: &FrameSpec,
        count: u64,
        pacing: Pacing<'_>,
        timeout: Duration,
    ) -> Result<SendReport> {
        if let Pacing::Rate(fps) = pacing {
            if !(fps.is_finite() && fps > 0.0) {
                return Err(Error::InvalidArgument(format!(
                    "send rate must be a positive number of frames/s, got {fps}"
                )));
            }
        }
        if let Pacing::Window { window: 0, .. } = pacing {
            return Err(Error::InvalidArgument("pacing window of 0 frames".into()));
        }
        let start = Instant::now();
        let deadline = start + timeout;
        let mut buf = vec![0u8; spec.size];
        let mut sent = 0u64;
        let mut timed_out = false;
        let mut pacing = pacing;
        let mut idle_rounds = 0u32;
        while sent < count {
            let now = Instant::now();
            if now >= deadline {
                timed_out = true;
                break;
            }
            // How many frames may go now.
            let allowed = match &mut pacing {
                Pacing::Burst => count - sent,
                Pacing::Window { window, received } => {
                    let in_flight = sent.saturating_sub(received());
                    window.saturating_sub(in_flight)
                }
                Pacing::Rate(fps) => {
                    let due = (now - start).as_secs_f64() * *fps;
                    // At least the first frame goes at once.
                    (due as u64 + 1).saturating_sub(sent)
                }
            }
            .min(count - sent)
            // Bounded batches, so the deadline is checked between them.
            .min(MAX_BATCH);
            if allowed == 0 {
                // Spin briefly (the receiver may be about to catch up), then
                // yield the CPU: the consumer may need this core.
                idle_rounds += 1;
                if idle_rounds < 16 {
                    std::hint::spin_loop();
                } else if idle_rounds < 64 {
                    std::thread::yield_now();
                } else {
                    let nap = match &pacing {
                        Pacing::Rate(fps) => {
                            let next = (sent as f64 + 1.0) / fps;
                            let at = start + Duration::from_secs_f64(next.min(1e6));
                            at.saturating_duration_since(Instant::now())
                                .min(Duration::from_millis(10))
                        }
                        _ => Duration::from_micros(20),
                    };
                    std::thread::sleep(nap.min(deadline.saturating_duration_since(Instant::now())));
                }
                continue;
            }
            idle_rounds = 0;
            for _ in 0..allowed {
                spec.write(sent, &mut buf)?;
                self.send_frame(&buf)?;
                sent += 1;
            }
        }
        Ok(SendReport {
            sent,
            requested: count,
            timed_out,
            elapsed: start.elapsed(),
        })
    }

    /// [`Sender::send`] with [`Pacing::Window`].
    pub fn send_paced(
        &self,
        spec: &FrameSpec,
        count: u64,
        window: u64,
        mut received: impl FnMut() -> u64,
        timeout: Duration,
    ) -> Result<SendReport> {
        self.send(
            spec,
            count,
            Pacing::Window {
                window,
                received: &mut received,
            },
            timeout,
        )
    }

    /// [`Sender::send`] with [`Pacing::Burst`].
    pub fn send_burst(
        &self,
        spec: &FrameSpec,
        count: u64,
        timeout: Duration,
    ) -> Result<SendReport> {
        self.send(spec, count, Pacing::Burst, timeout)
    }

    /// [`Sender::send`] with [`Pacing::Rate`] (`fps` frames per second).
    pub fn send_rate(
        &self,
        spec: &FrameSpec,
        count: u64,
        fps: f64,
        timeout: Duration,
    ) -> Result<SendReport> {
        self.send(spec, count, Pacing::Rate(fps), timeout)
    }
}

impl AsFd for Sender {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Which frames a [`Receiver`] returns; the rest are dropped silently.
/// Frames the interface itself sends (`PACKET_OUTGOING`) are always dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxFilter {
    /// Only frames of this EtherType (also applied by the kernel: it is the
    /// socket's protocol); `None`: all.
    pub ethertype: Option<u16>,
    /// Only IPv4/UDP frames to this destination port; `None`: any.
    pub udp_dst_port: Option<u16>,
}

impl RxFilter {
    /// IPv4/UDP frames to `port`.
    pub fn udp_port(port: u16) -> Self {
        Self {
            ethertype: Some(ETHERTYPE_IPV4),
            udp_dst_port: Some(port),
        }
    }

    /// Every incoming frame.
    pub fn all() -> Self {
        Self {
            ethertype: None,
            udp_dst_port: None,
        }
    }

    /// Whether `frame` passes the filter.
    pub fn matches(&self, frame: &[u8]) -> bool {
        if frame.len() < ETH_HLEN {
            return false;
        }
        let et = u16::from_be_bytes([frame[12], frame[13]]);
        if self.ethertype.is_some_and(|want| want != et) {
            return false;
        }
        let Some(port) = self.udp_dst_port else {
            return true;
        };
        if et != ETHERTYPE_IPV4 || frame.len() < ETH_HLEN + IPV4_HLEN {
            return false;
        }
        let ip = &frame[ETH_HLEN..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        // Only first fragments carry the UDP header.
        let frag_off = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
        if ip[0] >> 4 != 4 || ihl < IPV4_HLEN || ip[9] != IPPROTO_UDP || frag_off != 0 {
            return false;
        }
        let udp = ETH_HLEN + ihl;
        frame.len() >= udp + 4 && u16::from_be_bytes([frame[udp + 2], frame[udp + 3]]) == port
    }
}

/// Default receive buffer of a [`Receiver`]: room for several thousand
/// small frames (each costs ~1 KiB of skb truesize).
pub const DEFAULT_RCVBUF: usize = 8 << 20;

/// Largest frame a [`Receiver`] returns whole.
const RECV_BUF: usize = 65_536 + 64;

/// A plain `AF_PACKET` receiver on one interface, for testing the harness
/// (and for sanity checks beside AF_XDP).
#[derive(Debug)]
pub struct Receiver {
    fd: OwnedFd,
    ifindex: u32,
    filter: RxFilter,
    buf: Vec<u8>,
}

impl Receiver {
    /// Opens a receiver on the veth end of `side`, inside its namespace.
    pub fn open(pair: &NetnsPair, side: Side, filter: RxFilter) -> Result<Self> {
        let ifindex = pair.ifindex(side);
        pair.try_in_ns(side, || Self::open_in_current_ns(ifindex, filter))?
    }

    /// Opens a receiver on `ifindex` in the calling thread's namespace.
    pub fn open_in_current_ns(ifindex: u32, filter: RxFilter) -> Result<Self> {
        let sock_err = |op| {
            move |source| Error::Socket {
                ifindex,
                op,
                source,
            }
        };
        let proto = filter.ethertype.unwrap_or(libc::ETH_P_ALL as u16);
        let fd = sys::packet_socket(proto).map_err(sock_err("socket(AF_PACKET, SOCK_RAW)"))?;
        let rcvbuf = DEFAULT_RCVBUF as libc::c_int;
        // SO_RCVBUFFORCE (root) lifts the rmem_max cap; fall back to the cap.
        if sys::setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, rcvbuf).is_err()
        {
            let _ = sys::setsockopt_int(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, rcvbuf);
        }
        sys::bind_ll(fd.as_fd(), proto, ifindex).map_err(sock_err("bind"))?;
        let rx = Self {
            fd,
            ifindex,
            filter,
            buf: vec![0; RECV_BUF],
        };
        // Frames queued between socket() and bind() may come from any
        // interface: drain them.
        while rx.raw_recv_into(&mut vec![0; RECV_BUF])?.is_some() {}
        let _ = sys::packet_statistics(rx.fd.as_fd());
        Ok(rx)
    }

    /// The interface index the receiver is bound to.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The filter in force.
    pub fn filter(&self) -> RxFilter {
        self.filter
    }

    fn raw_recv_into(&self, buf: &mut [u8]) -> Result<Option<sys::LlRecv>> {
        match sys::recvfrom_ll(self.fd.as_fd(), buf) {
            Ok(r) => Ok(Some(r)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(source) => Err(Error::Socket {
                ifindex: self.ifindex,
                op: "recvfrom",
                source,
            }),
        }
    }

    /// Waits up to `timeout` for the next frame that passes the filter and
    /// returns it (borrowed until the next call), or `None` on timeout.
    /// Frames longer than the internal 64 KiB buffer are skipped.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<&[u8]>> {
        let deadline = Instant::now() + timeout;
        let mut buf = std::mem::take(&mut self.buf);
        let got = loop {
            match self.raw_recv_into(&mut buf) {
                Err(e) => {
                    self.buf = buf;
                    return Err(e);
                }
                Ok(Some(r)) => {
                    if r.pkttype == libc::PACKET_OUTGOING
                        || r.len > buf.len()
                        || !self.filter.matches(&buf[..r.len])
                    {
                        continue;
                    }
                    break Some(r.len);
                }
                Ok(None) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break None;
                    }
                    if let Err(source) = sys::poll_in(self.fd.as_fd(), left) {
                        self.buf = buf;
                        return Err(Error::Socket {
                            ifindex: self.ifindex,
                            op: "poll",
                            source,
                        });
                    }
                }
            }
        };
        self.buf = buf;
        Ok(got.map(|len| &self.buf[..len]))
    }

    /// [`Receiver::recv`] returning an owned copy.
    pub fn recv_frame(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>> {
        Ok(self.recv(timeout)?.map(<[u8]>::to_vec))
    }

    /// Kernel counters since the previous call (or since opening):
    /// `(packets, drops)`, drops being frames the socket buffer had no room
    /// for. Counts frames before this receiver's user-space filter.
    pub fn stats(&self) -> Result<(u32, u32)> {
        sys::packet_statistics(self.fd.as_fd()).map_err(|source| Error::Socket {
            ifindex: self.ifindex,
            op: "getsockopt(PACKET_STATISTICS)",
            source,
        })
    }
}

impl AsFd for Receiver {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn frame(port: u16) -> Vec<u8> {
        FrameSpec::new(
            [2, 0, 0, 0, 0, 2],
            [2, 0, 0, 0, 0, 1],
            Ipv4Addr::new(10, 0, 0, 2),
            Ipv4Addr::new(10, 0, 0, 1),
            1,
            port,
            64,
        )
        .unwrap()
        .build(0)
        .unwrap()
    }

    #[test]
    fn filter_keeps_only_matching_udp_port() {
        let f = RxFilter::udp_port(5000);
        assert!(f.matches(&frame(5000)));
        assert!(!f.matches(&frame(5001)));
        let mut arp = frame(5000);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert!(!f.matches(&arp));
        assert!(RxFilter::all().matches(&arp));
        let mut tcp = frame(5000);
        tcp[23] = 6;
        assert!(!f.matches(&tcp));
        assert!(!f.matches(&frame(5000)[..20]));
    }
}
