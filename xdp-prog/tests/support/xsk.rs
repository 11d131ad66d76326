//! The smallest AF_XDP receiver that works: a UMEM of [`FRAMES`] chunks, a
//! fill ring pre-filled with all of them, an RX ring, copy mode. Enough to
//! check that frames redirected by the XDP program arrive intact; the real
//! AF_XDP channel lives elsewhere.

use std::io;
use std::os::fd::{AsFd, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// UMEM chunks, and the size of every ring.
pub const FRAMES: u32 = 64;
const CHUNK: u32 = 2048;

/// A mapping that is unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by the value; moving it to
// another thread moves that ownership (it is not shared).
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(fd: Option<BorrowedFd<'_>>, len: usize, offset: u64) -> io::Result<Mapping> {
        let (flags, raw_fd) = match fd {
            Some(fd) => (libc::MAP_SHARED | libc::MAP_POPULATE, fd.as_raw_fd()),
            None => (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1),
        };
        // SAFETY: a fresh mapping at an address the kernel picks; the
        // result is checked and owned by the returned value.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                raw_fd,
                offset as libc::off_t,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr: NonNull::new(ptr.cast()).expect("mmap returned null"),
            len,
        })
    }

    fn at<T>(&self, offset: u64) -> *mut T {
        assert!(offset as usize + std::mem::size_of::<T>() <= self.len);
        // SAFETY: in bounds, checked above.
        unsafe { self.ptr.as_ptr().add(offset as usize).cast() }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and nothing refers to it any more.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

fn setsockopt<T>(fd: &OwnedFd, opt: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a `T` of the size given.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            opt,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// An AF_XDP socket bound to one queue of one interface, in copy mode.
pub struct Xsk {
    // Rings before the socket and the UMEM: unmapped first.
    fill: Mapping,
    rx: Mapping,
    offsets: libc::xdp_mmap_offsets,
    fd: OwnedFd,
    umem: Mapping,
    rx_cached_cons: u32,
}

impl Xsk {
    /// Binds to `queue` of `ifindex` (in the calling thread's namespace).
    pub fn bind(ifindex: u32, queue: u32) -> io::Result<Xsk> {
        // SAFETY: plain socket(2) call; the result is checked.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let umem = Mapping::new(None, (FRAMES * CHUNK) as usize, 0)?;
        let reg = libc::xdp_umem_reg {
            addr: umem.ptr.as_ptr() as u64,
            len: umem.len as u64,
            chunk_size: CHUNK,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setsockopt(&fd, libc::XDP_UMEM_REG, &reg)?;
        setsockopt(&fd, libc::XDP_UMEM_FILL_RING, &FRAMES)?;
        setsockopt(&fd, libc::XDP_UMEM_COMPLETION_RING, &FRAMES)?;
        setsockopt(&fd, libc::XDP_RX_RING, &FRAMES)?;
        // SAFETY: plain data; zero is a valid value.
        let mut offsets: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of_val(&offsets) as libc::socklen_t;
        // SAFETY: `offsets` is writable for `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut offsets as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        let fill = Mapping::new(
            Some(fd.as_fd()),
            (offsets.fr.desc + u64::from(FRAMES) * 8) as usize,
            libc::XDP_UMEM_PGOFF_FILL_RING,
        )?;
        let rx = Mapping::new(
            Some(fd.as_fd()),
            (offsets.rx.desc + u64::from(FRAMES) * std::mem::size_of::<libc::xdp_desc>() as u64)
                as usize,
            libc::XDP_PGOFF_RX_RING as u64,
        )?;
        // Hand every chunk to the kernel.
        for i in 0..FRAMES {
            let slot: *mut u64 = fill.at(offsets.fr.desc + u64::from(i) * 8);
            // SAFETY: slot `i` of the fill ring's descriptor array, which
            // the kernel does not read before the producer moves.
            unsafe { slot.write(u64::from(i * CHUNK)) };
        }
        // SAFETY: the producer index is a u32 shared with the kernel.
        let producer = unsafe { AtomicU32::from_ptr(fill.at(offsets.fr.producer)) };
        producer.store(FRAMES, Ordering::Release);

        // SAFETY: plain data; zero is a valid value.
        let mut sxdp: libc::sockaddr_xdp = unsafe { std::mem::zeroed() };
        sxdp.sxdp_family = libc::AF_XDP as u16;
        sxdp.sxdp_flags = libc::XDP_COPY;
        sxdp.sxdp_ifindex = ifindex;
        sxdp.sxdp_queue_id = queue;
        // SAFETY: `sxdp` is a valid sockaddr_xdp of the length given.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sxdp as *const libc::sockaddr_xdp).cast(),
                std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Xsk {
            fill,
            rx,
            offsets,
            fd,
            umem,
            rx_cached_cons: 0,
        })
    }

    /// The socket, for [`skmem_xdp::XdpProgram::add_socket`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Takes every frame in the RX ring (chunks are not recycled: at most
    /// [`FRAMES`] frames in the socket's life).
    pub fn receive(&mut self) -> Vec<Vec<u8>> {
        // SAFETY: the ring's indices are u32s shared with the kernel.
        let producer = unsafe { AtomicU32::from_ptr(self.rx.at(self.offsets.rx.producer)) };
        // SAFETY: as above.
        let consumer = unsafe { AtomicU32::from_ptr(self.rx.at(self.offsets.rx.consumer)) };
        let end = producer.load(Ordering::Acquire);
        let mut out = Vec::new();
        while self.rx_cached_cons != end {
            let i = u64::from(self.rx_cached_cons % FRAMES);
            let desc: *const libc::xdp_desc = self
                .rx
                .at(self.offsets.rx.desc + i * std::mem::size_of::<libc::xdp_desc>() as u64);
            // SAFETY: a descriptor the kernel published (before `end`).
            let desc = unsafe { desc.read() };
            assert!(desc.addr + u64::from(desc.len) <= self.umem.len as u64);
            let data: *const u8 = self.umem.at(desc.addr);
            // SAFETY: the descriptor lies inside the UMEM (checked) and the
            // kernel wrote it before publishing the descriptor.
            out.push(unsafe { std::slice::from_raw_parts(data, desc.len as usize) }.to_vec());
            self.rx_cached_cons = self.rx_cached_cons.wrapping_add(1);
        }
        consumer.store(self.rx_cached_cons, Ordering::Release);
        out
    }
}
