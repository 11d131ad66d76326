//! The memory syscalls skmem stands on: memfd, mmap, munmap, membarrier.
//!
//! Every `unsafe` block of the memory core lives here, next to the invariant
//! that makes it sound. The rest of the crate sees [`Memfd`], [`Mapping`]
//! (an RAII view of memory that unmaps on drop) and [`heavy_barrier`].

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::OnceLock;

use rustix::fs::{
    fallocate, fcntl_add_seals, fcntl_get_seals, fstat, ftruncate, memfd_create, FallocateFlags,
    MemfdFlags, SealFlags,
};
use rustix::mm::{mmap, mmap_anonymous, munmap, MapFlags, ProtFlags};

/// A system call that failed: which call, and the kernel's reason. The
/// layers above carry it in their own errors (`RegionError::Sys`,
/// `Error::Sys`), errno intact.
#[derive(Debug, thiserror::Error)]
#[error("{call}: {source}")]
pub struct SysError {
    /// The call that failed.
    pub call: &'static str,
    /// The kernel's reason.
    #[source]
    pub source: std::io::Error,
}

impl SysError {
    pub(crate) fn new(call: &'static str, e: rustix::io::Errno) -> Self {
        SysError {
            call,
            source: e.into(),
        }
    }

    /// The kernel's errno (EIO when the reason carries none).
    pub fn errno(&self) -> i32 {
        self.source.raw_os_error().unwrap_or(libc::EIO)
    }
}

/// Result of a memory syscall wrapper.
pub type Result<T, E = SysError> = std::result::Result<T, E>;

/// The index of network interface `name` in the calling thread's network
/// namespace (`SIOCGIFINDEX` on a throwaway socket, as `if_nametoindex`
/// does). The one lookup every crate of skmem uses.
#[doc(alias = "if_nametoindex")]
pub fn interface_index(name: &str) -> std::io::Result<u32> {
    if name.is_empty() || name.len() >= 16 || name.contains('\0') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{name:?} is not an interface name (1 to 15 bytes, no NUL)"),
        ));
    }
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )?;
    Ok(rustix::net::netdevice::name_to_index(&sock, name)?)
}

/// The system page size, read once.
#[doc(alias("getpagesize", "_SC_PAGESIZE"))]
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// An anonymous, sealed-size memory file: the backing store of one region.
///
/// A memfd (rather than anonymous memory) is what lets a region be mapped
/// a second time — into the same process as a mapper's span, or into
/// another process after the fd crosses a Unix socket. So that whoever
/// holds it cannot break the owner, its size is sealed as it is made
/// (`F_SEAL_SHRINK | F_SEAL_GROW`: a truncated UMEM would be a SIGBUS in
/// the owner), and a region mappers may only read is sealed against every
/// new write ([`Memfd::seal`]).
#[derive(Debug)]
pub struct Memfd {
    fd: OwnedFd,
    len: usize,
}

/// The size of the huge pages behind a [`RegionFlags::HUGETLB`] region:
/// 2 MiB, the default huge page of x86-64 and aarch64.
///
/// [`RegionFlags::HUGETLB`]: crate::region::RegionFlags::HUGETLB
pub const HUGE_PAGE_SIZE: usize = 2 << 20;

impl Memfd {
    /// Creates a memfd named `name` (visible in `/proc/PID/fd`) of `len` bytes.
    /// Pages are allocated lazily by the kernel on first touch.
    #[doc(alias("memfd_create", "ftruncate"))]
    pub fn create(name: &str, len: usize) -> Result<Self> {
        Self::create_with(name, len, false)
    }

    /// [`create`](Self::create) on 2 MiB huge pages (`MFD_HUGETLB`):
    /// `len` must be a whole number of [`HUGE_PAGE_SIZE`]. Each mapping of
    /// it reserves its huge pages when made, so a machine without enough
    /// free ones (`vm.nr_hugepages`) refuses the mapping (ENOMEM) rather
    /// than fault later.
    #[doc(alias("MFD_HUGETLB", "MFD_HUGE_2MB"))]
    pub fn create_huge(name: &str, len: usize) -> Result<Self> {
        Self::create_with(name, len, true)
    }

    fn create_with(name: &str, len: usize, huge: bool) -> Result<Self> {
        // Interior NULs would make the name invalid; replace rather than fail.
        let name: String = name
            .chars()
            .map(|c| if c == '\0' { '_' } else { c })
            .collect();
        let mut flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        if huge {
            flags |= MemfdFlags::HUGETLB | MemfdFlags::HUGE_2MB;
        }
        let fd =
            memfd_create(name.as_str(), flags).map_err(|e| SysError::new("memfd_create", e))?;
        ftruncate(&fd, len as u64).map_err(|e| SysError::new("ftruncate(memfd)", e))?;
        fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW)
            .map_err(|e| SysError::new("fcntl(F_ADD_SEALS, size)", e))?;
        Ok(Self { fd, len })
    }

    /// Closes the list of seals (`F_SEAL_SEAL`: nobody holding the file may
    /// add one — a mapper could otherwise seal a region the owner still
    /// maps anew), after sealing it, when `read_only`, against every new
    /// write: a `write(2)`, a new writable mapping, an `mprotect` to
    /// writable, by anyone holding it, while writable mappings made before
    /// keep writing (`F_SEAL_FUTURE_WRITE`). The owner's view exists by
    /// then, so the owner keeps writing a region its mappers can only read.
    #[doc(alias("F_ADD_SEALS", "fcntl"))]
    pub fn seal(&self, read_only: bool) -> Result<()> {
        let mut seals = SealFlags::SEAL;
        if read_only {
            seals |= SealFlags::FUTURE_WRITE;
        }
        fcntl_add_seals(&self.fd, seals).map_err(|e| SysError::new("fcntl(F_ADD_SEALS)", e))
    }

    /// The seals on the file.
    #[doc(alias("F_GET_SEALS"))]
    pub fn seals(&self) -> Result<SealFlags> {
        fcntl_get_seals(&self.fd).map_err(|e| SysError::new("fcntl(F_GET_SEALS)", e))
    }

    /// Gives the pages of `offset..offset+len` back to the system: they read
    /// as zeros until written again (`FALLOC_FL_PUNCH_HOLE`). Refused (EPERM)
    /// on a file sealed against writes.
    #[doc(alias("fallocate", "FALLOC_FL_PUNCH_HOLE"))]
    pub fn punch_hole(&self, offset: usize, len: usize) -> Result<()> {
        fallocate(
            &self.fd,
            FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
            offset as u64,
            len as u64,
        )
        .map_err(|e| SysError::new("fallocate(PUNCH_HOLE)", e))
    }

    /// Bytes of memory the file holds now (its allocated blocks).
    #[doc(alias("fstat", "st_blocks"))]
    pub fn resident(&self) -> Result<u64> {
        let st = fstat(&self.fd).map_err(|e| SysError::new("fstat(memfd)", e))?;
        Ok(st.st_blocks as u64 * 512)
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the file has no bytes (never the case for a region).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsFd for Memfd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// What a view may do with the bytes it maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Protection {
    /// `PROT_NONE`: every access faults (guards).
    None,
    /// `PROT_READ`.
    Read,
    /// `PROT_READ | PROT_WRITE`.
    ReadWrite,
}

impl Protection {
    fn flags(self) -> ProtFlags {
        match self {
            Protection::None => ProtFlags::empty(),
            Protection::Read => ProtFlags::READ,
            Protection::ReadWrite => ProtFlags::READ | ProtFlags::WRITE,
        }
    }
}

/// A mapped range of this process's address space, unmapped on drop.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    prot: Protection,
}

// SAFETY: a Mapping is an address range; it hands out raw pointers only, and
// whoever dereferences them synchronises (the caches own objects exclusively
// between alloc and free). Unmapping happens once, in Drop, which needs
// `&mut self`/ownership.
unsafe impl Send for Mapping {}
// SAFETY: as above; `&Mapping` exposes no interior mutability of its own.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd` from offset 0, shared, with `prot`.
    #[doc(alias("mmap", "MAP_SHARED"))]
    pub fn shared(fd: BorrowedFd<'_>, len: usize, prot: Protection) -> Result<Self> {
        // SAFETY: a null hint without MAP_FIXED lets the kernel choose a fresh
        // range, so no existing mapping of this process is replaced.
        let ptr = unsafe {
            mmap(
                std::ptr::null_mut(),
                len,
                prot.flags(),
                MapFlags::SHARED,
                fd,
                0,
            )
        }
        .map_err(|e| SysError::new("mmap(memfd)", e))?;
        Ok(Self::from_raw(ptr, len, prot))
    }

    /// Reserves `len` bytes of inaccessible anonymous memory (guards, span
    /// reservations), labelled `[anon:skmem]` in `/proc/PID/maps` where
    /// the kernel supports anonymous VMA names.
    #[doc(alias("mmap", "PROT_NONE"))]
    pub fn inaccessible(len: usize) -> Result<Self> {
        // SAFETY: as in `shared`, the kernel picks a fresh range.
        let ptr = unsafe {
            mmap_anonymous(
                std::ptr::null_mut(),
                len,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| SysError::new("mmap(anonymous)", e))?;
        name_anonymous(ptr, len);
        Ok(Self::from_raw(ptr, len, Protection::None))
    }

    /// [`inaccessible`](Self::inaccessible) at an address that is a
    /// multiple of `align` (a power of two): a span holding a huge-page
    /// region needs its base on a huge page. Reserves `len + align`, then
    /// gives back what lies before and after the aligned range.
    #[doc(alias("mmap", "munmap"))]
    pub fn inaccessible_aligned(len: usize, align: usize) -> Result<Self> {
        if align <= page_size() {
            return Self::inaccessible(len);
        }
        let wide = Self::inaccessible(len + align)?;
        let base = wide.as_ptr() as usize;
        let start = base.next_multiple_of(align);
        let (head, tail) = (start - base, align - (start - base));
        // The wide range is given up piecewise: forget it, unmap its head
        // and tail, and own the aligned middle.
        let wide = std::mem::ManuallyDrop::new(wide);
        // SAFETY: both pieces lie inside the range just reserved, which
        // nothing else uses; what stays mapped is exactly `start..+len`.
        unsafe {
            if head > 0 {
                munmap(wide.as_ptr().cast(), head).map_err(|e| SysError::new("munmap", e))?;
            }
            if tail > 0 {
                munmap((start + len) as *mut std::ffi::c_void, tail)
                    .map_err(|e| SysError::new("munmap", e))?;
            }
        }
        Ok(Self::from_raw(
            start as *mut std::ffi::c_void,
            len,
            Protection::None,
        ))
    }

    fn from_raw(ptr: *mut std::ffi::c_void, len: usize, prot: Protection) -> Self {
        // mmap never returns null on success (MAP_FAILED is reported as Err).
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap returned null on success");
        Self { ptr, len, prot }
    }

    /// First byte of the range.
    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for an empty mapping (never created by this module).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The protection the range was mapped with.
    pub fn protection(&self) -> Protection {
        self.prot
    }

    fn check_overlay(&self, offset: usize, len: usize) -> Result<*mut std::ffi::c_void> {
        let page = page_size();
        let inside = offset.checked_add(len).is_some_and(|end| end <= self.len);
        if !inside || !offset.is_multiple_of(page) || !len.is_multiple_of(page) || len == 0 {
            return Err(SysError {
                call: "overlay",
                source: std::io::Error::from_raw_os_error(libc::EINVAL),
            });
        }
        Ok(self.ptr.as_ptr().wrapping_add(offset).cast())
    }

    /// Replaces `offset..offset+len` of this range with a shared mapping of
    /// `fd` (from its offset 0) with `prot`: how a mapper stitches a region
    /// into its span. The range must be page-aligned and inside this one.
    #[doc(alias("MAP_FIXED"))]
    pub fn overlay_shared(
        &self,
        offset: usize,
        len: usize,
        prot: Protection,
        fd: BorrowedFd<'_>,
    ) -> Result<()> {
        let at = self.check_overlay(offset, len)?;
        // SAFETY: MAP_FIXED replaces pages inside this Mapping's own range
        // (checked above), which this value owns and unmaps on drop; no Rust
        // reference into the range is handed out, only raw pointers.
        unsafe {
            mmap(
                at,
                len,
                prot.flags(),
                MapFlags::SHARED | MapFlags::FIXED,
                fd,
                0,
            )
        }
        .map_err(|e| SysError::new("mmap(MAP_FIXED, memfd)", e))?;
        Ok(())
    }

    /// Replaces `offset..offset+len` with private anonymous zero pages of
    /// `prot`: Skywalk's redirect (reads give zero, writes go nowhere
    /// shared).
    #[doc(alias("MAP_FIXED", "MAP_ANONYMOUS"))]
    pub fn overlay_zero(&self, offset: usize, len: usize, prot: Protection) -> Result<()> {
        let at = self.check_overlay(offset, len)?;
        // SAFETY: as in `overlay_shared`.
        unsafe { mmap_anonymous(at, len, prot.flags(), MapFlags::PRIVATE | MapFlags::FIXED) }
            .map_err(|e| SysError::new("mmap(MAP_FIXED, anonymous)", e))?;
        name_anonymous(at, len);
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr..ptr+len` was returned by mmap and is unmapped exactly
        // once, here. Raw pointers handed out earlier are the borrowers'
        // responsibility: every owner of a Mapping outlives its users.
        if let Err(e) = unsafe { munmap(self.ptr.as_ptr().cast(), self.len) } {
            tracing::error!(len = self.len, error = %e, "munmap failed");
        }
    }
}

/// Labels an anonymous range `skmem` in `/proc/PID/maps`, so tools (and
/// the leak tests) can tell skmem's reservations from the allocator's.
/// Best effort: kernels without CONFIG_ANON_VMA_NAME refuse, harmlessly.
fn name_anonymous(ptr: *mut std::ffi::c_void, len: usize) {
    const PR_SET_VMA: libc::c_int = 0x5356_4d41;
    const PR_SET_VMA_ANON_NAME: libc::c_ulong = 0;
    static NAME: &[u8] = b"skmem\0";
    // SAFETY: prctl only reads the NUL-terminated name and labels the range
    // [ptr, ptr+len), which this module just mapped; no memory is touched.
    let _ = unsafe {
        libc::prctl(
            PR_SET_VMA,
            PR_SET_VMA_ANON_NAME,
            ptr as libc::c_ulong,
            len as libc::c_ulong,
            NAME.as_ptr() as libc::c_ulong,
        )
    };
}

/// A pidfd of the process at the other end of Unix socket `sock`: from
/// the socket itself (`SO_PEERPIDFD`, Linux 6.5+: the process that
/// connected, with no window for its pid to be reused), else opened from
/// `pid` (`pidfd_open`). Readable once the process has exited.
#[doc(alias("SO_PEERPIDFD", "getsockopt"))]
pub fn peer_pidfd(sock: BorrowedFd<'_>, pid: u32) -> Result<OwnedFd> {
    const SO_PEERPIDFD: libc::c_int = 77;
    let mut fd: libc::c_int = -1;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes (an int) into `fd`,
    // which lives across the call; `sock` is an open socket.
    let rc = unsafe {
        libc::getsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SOL_SOCKET,
            SO_PEERPIDFD,
            (&mut fd as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc == 0 && fd >= 0 {
        // SAFETY: the kernel just made `fd` for us; nothing else owns it.
        return Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
    }
    let pid = rustix::process::Pid::from_raw(pid as i32).ok_or(SysError {
        call: "pidfd_open",
        source: std::io::Error::from_raw_os_error(libc::ESRCH),
    })?;
    rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
        .map_err(|e| SysError::new("pidfd_open", e))
}

/// Is the process-wide expedited membarrier available? Registered once.
fn membarrier_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        use rustix::thread::{membarrier, MembarrierCommand};
        match membarrier(MembarrierCommand::RegisterPrivateExpedited) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "membarrier unavailable; magazine fast path falls back to full fences");
                false
            }
        }
    })
}

/// Whether the light side of the asymmetric barrier may be a compiler fence.
///
/// Call once before any [`light_barrier`] whose heavy side matters; it
/// registers the process for expedited membarrier.
pub fn asymmetric_barrier_supported() -> bool {
    membarrier_ready()
}

/// The cheap half of an asymmetric barrier, on the per-packet path: a
/// compiler fence when membarrier works (the heavy side makes every running
/// thread execute a real fence), else a full fence.
#[inline(always)]
pub fn light_barrier(heavy_available: bool) {
    if heavy_available {
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    } else {
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// Asks the CPU to bring the cache line at `p` close, for a write soon.
/// Only a hint: it never faults, whatever `p` is, and does nothing on
/// targets without a prefetch instruction.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    // SAFETY: SSE is part of the x86-64 baseline, so the instruction
    // exists; a prefetch reads nothing and cannot fault on any address.
    #[cfg(target_arch = "x86_64")]
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// The expensive half: after it returns, every thread of this process has
/// passed a full memory barrier (`membarrier(PRIVATE_EXPEDITED)`), so stores
/// made before it are visible to all threads' later loads, and all threads'
/// stores made before their last barrier are visible to us.
#[doc(alias("membarrier"))]
pub fn heavy_barrier() {
    if membarrier_ready() {
        use rustix::thread::{membarrier, MembarrierCommand};
        if membarrier(MembarrierCommand::PrivateExpedited).is_ok() {
            return;
        }
    }
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
}
