//! The AF_XDP socket: one thin, safe wrapper per syscall, after rustix.
//!
//! Every `unsafe` of the data path's set-up is here: mapping the kernel's
//! rings (at fixed addresses inside an arena's span) and handing the kernel
//! the UMEM's address. The invariants: the UMEM region and the span outlive
//! the socket (the [`super::Channel`] owns all three and drops the socket
//! first), and a ring is mapped only over a span range reserved for it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::Arc;

use rustix::net::xdp::{
    SocketAddrXdp, SocketAddrXdpFlags, SocketAddrXdpWithSharedUmem, XdpMmapOffsets,
    XdpOptionsFlags, XdpStatistics, XdpUmemReg, XdpUmemRegFlags,
};
use rustix::net::{AddressFamily, SocketFlags, SocketType};

use crate::error::{Error, Result};
use crate::region::Region;

/// `SOL_XDP` option: how many descriptors one copy-mode `sendto` may
/// transmit (Linux 6.17+).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;
/// `SOL_SOCKET` busy-poll options (asm-generic values).
const SO_BUSY_POLL: libc::c_int = 46;
const SO_PREFER_BUSY_POLL: libc::c_int = 69;
const SO_BUSY_POLL_BUDGET: libc::c_int = 70;

/// `XDP_UMEM_REG` flag: compute TX checksums requested through TX
/// metadata in software (copy mode).
const XDP_UMEM_TX_SW_CSUM: u32 = 1 << 1;
/// `XDP_UMEM_REG` flag: `tx_metadata_len` is meant (Linux 6.11+).
const XDP_UMEM_TX_METADATA_LEN: u32 = 1 << 2;

/// UMEM registration options beyond chunk size and headroom.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UmemOptions {
    /// Unaligned chunks: addresses are used as given, not masked to a
    /// chunk, so chunks need not be a power of two.
    pub unaligned: bool,
    /// Bytes of TX metadata (`struct xsk_tx_metadata`) in front of a TX
    /// frame's data; 0 = none.
    pub tx_metadata_len: u32,
    /// Checksums requested by TX metadata are computed in software.
    pub tx_sw_csum: bool,
}

fn sys(call: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error {
    move |e| Error::sys(call, e)
}

/// The kernel's counters for one socket (`XDP_STATISTICS`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct XskStats {
    /// Frames dropped for lack of room or invalid headroom.
    pub rx_dropped: u64,
    /// Invalid fill descriptors.
    pub rx_invalid_descs: u64,
    /// Invalid TX descriptors.
    pub tx_invalid_descs: u64,
    /// Times the RX ring was full.
    pub rx_ring_full: u64,
    /// Times the fill ring was empty when a frame arrived.
    pub rx_fill_ring_empty_descs: u64,
    /// Times the TX ring was empty when the kernel looked.
    pub tx_ring_empty_descs: u64,
}

impl From<XdpStatistics> for XskStats {
    fn from(s: XdpStatistics) -> Self {
        Self {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full.unwrap_or(0),
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs.unwrap_or(0),
            tx_ring_empty_descs: s.tx_ring_empty_descs.unwrap_or(0),
        }
    }
}

/// Which of the four rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingId {
    /// Fill: frames given to the kernel for RX.
    Fill,
    /// Completion: frames the kernel has sent.
    Completion,
    /// RX: received frames.
    Rx,
    /// TX: frames to send.
    Tx,
}

impl RingId {
    /// The mmap page offset of the ring.
    fn pgoff(self) -> u64 {
        use rustix::net::xdp as x;
        match self {
            RingId::Fill => x::XDP_UMEM_PGOFF_FILL_RING,
            RingId::Completion => x::XDP_UMEM_PGOFF_COMPLETION_RING,
            RingId::Rx => x::XDP_PGOFF_RX_RING,
            RingId::Tx => x::XDP_PGOFF_TX_RING,
        }
    }

    /// Bytes of one descriptor: an address for fill/completion, an
    /// `xdp_desc` for RX/TX.
    pub fn desc_size(self) -> usize {
        match self {
            RingId::Fill | RingId::Completion => 8,
            RingId::Rx | RingId::Tx => 16,
        }
    }
}

/// How the socket binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BindFlags {
    /// Force copy mode.
    pub copy: bool,
    /// Force zero-copy mode.
    pub zero_copy: bool,
    /// The rings' NEED_WAKEUP flag says when a syscall is needed.
    pub need_wakeup: bool,
    /// Multi-buffer packets (`XDP_USE_SG`).
    pub multi_buffer: bool,
}

/// An AF_XDP socket.
#[derive(Debug)]
pub struct XskSocket {
    fd: OwnedFd,
    /// The registered UMEM, kept alive as long as the kernel may touch it.
    umem: Option<Arc<Region>>,
}

impl XskSocket {
    /// Opens an AF_XDP socket.
    #[doc(alias("socket", "AF_XDP"))]
    pub fn new() -> Result<Self> {
        crate::failpoint::step("socket(AF_XDP)")?;
        let fd = rustix::net::socket_with(
            AddressFamily::XDP,
            SocketType::RAW,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(sys("socket(AF_XDP)"))?;
        Ok(Self { fd, umem: None })
    }

    /// Registers `region` (its owner view, a shared memfd mapping) as the
    /// UMEM (`XDP_UMEM_REG`), chunks of `chunk_size`, `headroom` bytes
    /// reserved in front of each frame, with the options of `umem`.
    #[doc(alias("XDP_UMEM_REG", "setsockopt"))]
    pub fn register_umem(
        &mut self,
        region: Arc<Region>,
        chunk_size: u32,
        headroom: u32,
        umem: UmemOptions,
    ) -> Result<()> {
        let mut flags = XdpUmemRegFlags::empty();
        if umem.unaligned {
            flags |= XdpUmemRegFlags::XDP_UMEM_UNALIGNED_CHUNK_FLAG;
        }
        if umem.tx_sw_csum {
            flags |= XdpUmemRegFlags::from_bits_retain(XDP_UMEM_TX_SW_CSUM);
        }
        if umem.tx_metadata_len > 0 {
            // Since Linux 6.11 the length counts only with this flag.
            flags |= XdpUmemRegFlags::from_bits_retain(XDP_UMEM_TX_METADATA_LEN);
        }
        crate::failpoint::step("XDP_UMEM_REG")?;
        let reg = XdpUmemReg {
            addr: region.base() as u64,
            len: region.size() as u64,
            chunk_size,
            headroom,
            flags,
            tx_metadata_len: umem.tx_metadata_len,
        };
        rustix::net::sockopt::set_xdp_umem_reg(&self.fd, reg).map_err(sys("XDP_UMEM_REG"))?;
        // The kernel pins the pages; holding the region keeps the owner's
        // view (the registered address) mapped for as long as the socket.
        region.pin();
        self.umem = Some(region);
        Ok(())
    }

    /// Sets the size (entries, a power of two) of a ring.
    #[doc(alias(
        "XDP_RX_RING",
        "XDP_TX_RING",
        "XDP_UMEM_FILL_RING",
        "XDP_UMEM_COMPLETION_RING"
    ))]
    pub fn set_ring_size(&self, ring: RingId, entries: u32) -> Result<()> {
        use rustix::net::sockopt as so;
        crate::failpoint::step("setsockopt(XDP ring size)")?;
        match ring {
            RingId::Fill => so::set_xdp_umem_fill_ring_size(&self.fd, entries),
            RingId::Completion => so::set_xdp_umem_completion_ring_size(&self.fd, entries),
            RingId::Rx => so::set_xdp_rx_ring_size(&self.fd, entries),
            RingId::Tx => so::set_xdp_tx_ring_size(&self.fd, entries),
        }
        .map_err(sys("setsockopt(XDP ring size)"))
    }

    /// Where producer, consumer, flags and descriptors sit in each ring.
    #[doc(alias("XDP_MMAP_OFFSETS", "getsockopt"))]
    pub fn mmap_offsets(&self) -> Result<XdpMmapOffsets> {
        crate::failpoint::step("XDP_MMAP_OFFSETS")?;
        rustix::net::sockopt::xdp_mmap_offsets(&self.fd).map_err(sys("XDP_MMAP_OFFSETS"))
    }

    /// Maps `ring` (`len` bytes) at `at`, replacing what was there.
    ///
    /// # Safety
    /// `at..at+len` must be a page-aligned range of this process that the
    /// caller owns and may replace (a RING object inside an arena span), and
    /// nothing may rely on its old contents.
    pub unsafe fn map_ring_at(&self, ring: RingId, at: *mut u8, len: usize) -> Result<()> {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        crate::failpoint::step("mmap(XDP ring)")?;
        // SAFETY: the caller's contract; MAP_FIXED replaces only that range.
        unsafe {
            mmap(
                at.cast(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED | MapFlags::POPULATE | MapFlags::FIXED,
                &self.fd,
                ring.pgoff(),
            )
        }
        .map_err(sys("mmap(XDP ring)"))?;
        Ok(())
    }

    /// Binds to `queue` of interface `ifindex`.
    #[doc(alias("sockaddr_xdp"))]
    pub fn bind(&self, ifindex: u32, queue: u32, flags: BindFlags) -> Result<()> {
        let mut f = SocketAddrXdpFlags::empty();
        if flags.copy {
            f |= SocketAddrXdpFlags::XDP_COPY;
        }
        if flags.zero_copy {
            f |= SocketAddrXdpFlags::XDP_ZEROCOPY;
        }
        if flags.need_wakeup {
            f |= SocketAddrXdpFlags::XDP_USE_NEED_WAKEUP;
        }
        if flags.multi_buffer {
            f |= SocketAddrXdpFlags::XDP_USE_SG;
        }
        rustix::net::bind(&self.fd, &SocketAddrXdp::new(f, ifindex, queue))
            .map_err(sys("bind(AF_XDP)"))
    }

    /// Binds to `queue` of interface `ifindex` sharing the UMEM of `owner`
    /// (`XDP_SHARED_UMEM`; the socket takes its bind options from the
    /// owner's, and brings its own fill and completion rings unless it is
    /// on the owner's queue).
    #[doc(alias("XDP_SHARED_UMEM"))]
    pub fn bind_shared(&mut self, ifindex: u32, queue: u32, owner: &XskSocket) -> Result<()> {
        let addr = SocketAddrXdpWithSharedUmem {
            addr: SocketAddrXdp::new(SocketAddrXdpFlags::XDP_SHARED_UMEM, ifindex, queue),
            shared_umem_fd: owner.fd.as_fd(),
        };
        rustix::net::bind(&self.fd, &addr).map_err(sys("bind(AF_XDP, shared UMEM)"))?;
        // The kernel shares the owner's registration: hold its region too.
        self.umem = owner.umem.clone();
        Ok(())
    }

    /// The kernel's statistics.
    #[doc(alias("XDP_STATISTICS"))]
    pub fn statistics(&self) -> Result<XskStats> {
        rustix::net::sockopt::xdp_statistics(&self.fd)
            .map(Into::into)
            .map_err(sys("XDP_STATISTICS"))
    }

    /// Is the socket in zero-copy mode?
    #[doc(alias("XDP_OPTIONS"))]
    pub fn zero_copy(&self) -> Result<bool> {
        crate::failpoint::step("XDP_OPTIONS")?;
        rustix::net::sockopt::xdp_options(&self.fd)
            .map(|o| o.contains(XdpOptionsFlags::XDP_OPTIONS_ZEROCOPY))
            .map_err(sys("XDP_OPTIONS"))
    }

    /// Asks the kernel to transmit what the TX ring holds (`sendto`). The
    /// transient answers (EAGAIN, EBUSY, ENOBUFS) mean "try later".
    #[doc(alias("sendto"))]
    pub fn kick_tx(&self) -> Result<()> {
        match rustix::net::send(&self.fd, &[], rustix::net::SendFlags::DONTWAIT) {
            Ok(_) => Ok(()),
            Err(e)
                if e == rustix::io::Errno::AGAIN
                    || e == rustix::io::Errno::BUSY
                    || e == rustix::io::Errno::NOBUFS
                    || e == rustix::io::Errno::NETDOWN =>
            {
                Ok(())
            }
            Err(e) => Err(Error::sys("sendto(AF_XDP)", e)),
        }
    }

    /// Wakes the kernel's RX side (`recvfrom`), for the fill ring's
    /// NEED_WAKEUP.
    #[doc(alias("recvfrom"))]
    pub fn kick_rx(&self) -> Result<()> {
        let mut nothing: [u8; 0] = [];
        match rustix::net::recv(&self.fd, &mut nothing[..], rustix::net::RecvFlags::DONTWAIT) {
            Ok(_) => Ok(()),
            Err(e) if e == rustix::io::Errno::AGAIN || e == rustix::io::Errno::BUSY => Ok(()),
            Err(e) => Err(Error::sys("recvfrom(AF_XDP)", e)),
        }
    }

    /// Waits up to `timeout_ms` for frames to receive; true when readable.
    #[doc(alias("poll"))]
    pub fn poll_rx(&self, timeout_ms: i32) -> Result<bool> {
        self.poll(libc::POLLIN, timeout_ms)
    }

    /// Waits up to `timeout_ms` until the TX ring has room; true when
    /// writable. In copy mode the call itself transmits what the TX ring
    /// holds.
    #[doc(alias("poll"))]
    pub fn poll_tx(&self, timeout_ms: i32) -> Result<bool> {
        self.poll(libc::POLLOUT, timeout_ms)
    }

    fn poll(&self, events: libc::c_short, timeout_ms: i32) -> Result<bool> {
        // poll(2) with a millisecond timeout, not ppoll(2) (what rustix's
        // poll makes): ppoll copies a timespec in and the time left back out
        // on every call, and a waiting data path polls tens of thousands of
        // times a second.
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events,
            revents: 0,
        };
        // SAFETY: `pfd` is one valid pollfd that lives across the call (the
        // count passed is 1); the fd is open, owned by `self`.
        let n = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if n < 0 {
            let e = rustix::io::Errno::from_io_error(&std::io::Error::last_os_error())
                .unwrap_or(rustix::io::Errno::IO);
            if e == rustix::io::Errno::INTR {
                return Ok(false);
            }
            return Err(Error::sys("poll(AF_XDP)", e));
        }
        Ok(n > 0 && pfd.revents & events != 0)
    }

    fn setsockopt_int(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: i32,
    ) -> std::io::Result<()> {
        // SAFETY: the option value is a valid `int` that outlives the call,
        // passed with its exact size; the fd is open (owned by `self`).
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                level,
                name,
                (&value as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// Sets `XDP_MAX_TX_SKB_BUDGET` (copy-mode TX descriptors per
    /// `sendto`); `Ok(false)` when the kernel lacks the option.
    #[doc(alias("XDP_MAX_TX_SKB_BUDGET"))]
    pub fn set_max_tx_budget(&self, budget: u32) -> Result<bool> {
        crate::failpoint::step("setsockopt(XDP_MAX_TX_SKB_BUDGET)")?;
        match self.setsockopt_int(libc::SOL_XDP, XDP_MAX_TX_SKB_BUDGET, budget as i32) {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(libc::ENOPROTOOPT) => Ok(false),
            Err(source) => Err(Error::Sys {
                call: "setsockopt(XDP_MAX_TX_SKB_BUDGET)",
                source,
            }),
        }
    }

    /// Turns on busy polling: `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` (µs)
    /// and `SO_BUSY_POLL_BUDGET` (packets).
    #[doc(alias("SO_BUSY_POLL", "SO_PREFER_BUSY_POLL", "SO_BUSY_POLL_BUDGET"))]
    pub fn set_busy_poll(&self, usecs: u32, budget: u32) -> Result<()> {
        crate::failpoint::step("setsockopt(busy poll)")?;
        for (name, value, call) in [
            (SO_PREFER_BUSY_POLL, 1, "setsockopt(SO_PREFER_BUSY_POLL)"),
            (SO_BUSY_POLL, usecs as i32, "setsockopt(SO_BUSY_POLL)"),
            (
                SO_BUSY_POLL_BUDGET,
                budget as i32,
                "setsockopt(SO_BUSY_POLL_BUDGET)",
            ),
        ] {
            self.setsockopt_int(libc::SOL_SOCKET, name, value)
                .map_err(|source| Error::Sys { call, source })?;
        }
        Ok(())
    }
}

impl AsFd for XskSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
