//! A traffic generator that transmits from XDP, the way xdp-trafficgen
//! does: the `skmem_gen` program (object `skmem-gen`, which returns
//! `XDP_TX`) is run with `BPF_PROG_TEST_RUN` in live-frames mode
//! (`BPF_F_TEST_XDP_LIVE_FRAMES`) on a prepared frame, `repeat` times. The
//! kernel turns each `XDP_TX` into a redirect to the context's
//! `ingress_ifindex`, so every run sends the frame out of that interface
//! without a socket, an skb or a copy from user space.
//!
//! The interface's driver must be able to take redirected frames
//! (`ndo_xdp_xmit`); a veth can when its peer has an XDP program attached
//! (or GRO on). Frames the driver cannot take (ring full) are dropped by
//! the kernel and not reported: [`Generator::run`] returns how many frames
//! the program ran on, which is what was offered to the interface.
//!
//! ```no_run
//! use skmem_xdp::gen::Generator;
//!
//! let frame = vec![0u8; 60]; // a whole Ethernet frame
//! let gen = Generator::new("veth0", &frame)?;
//! let sent = gen.run(1_000_000, 64)?;
//! # Ok::<(), skmem_xdp::gen::GenError>(())
//! ```

use std::os::fd::OwnedFd;
use std::time::Duration;

use aya::programs::{TestRun as _, TestRunAttrs, TestRunOptions, Xdp, XdpMode};
use aya::{include_bytes_aligned, Ebpf};
use tracing::{debug, warn};

use crate::{errno, ifindex, reason, XdpError};

/// The generator object built from `ebpf/src/gen.rs` (empty when the build
/// ran with `AYA_BUILD_SKIP=1`).
static OBJECT: &[u8] = include_bytes_aligned!(env!("SKMEM_GEN_OBJECT"));

/// The generator program's name in the embedded object.
pub const GEN_PROGRAM: &str = "skmem_gen";

/// Shortest frame the kernel accepts (an Ethernet header: shorter input is
/// `EINVAL`).
pub const MIN_FRAME: usize = 14;
/// Longest frame live-frames mode takes: one page less the kernel's
/// headroom and `skb_shared_info` tailroom (longer input is `E2BIG`). A
/// conservative bound; the kernel has the last word.
pub const MAX_FRAME: usize = 3_000;
/// Largest batch the kernel accepts (`TEST_XDP_MAX_BATCH`; more is `E2BIG`).
pub const MAX_BATCH: u32 = 256;

/// What went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    /// The interface name is invalid or names no interface in the calling
    /// thread's namespace.
    #[error(transparent)]
    Interface(#[from] XdpError),
    /// The frame is shorter than [`MIN_FRAME`] or longer than [`MAX_FRAME`].
    #[error("a generator frame must be {MIN_FRAME}..={MAX_FRAME} bytes, not {len}")]
    FrameSize {
        /// The length given.
        len: usize,
    },
    /// The batch is 0 or larger than [`MAX_BATCH`].
    #[error("a generator batch must be 1..={MAX_BATCH}, not {batch}")]
    BatchSize {
        /// The batch given.
        batch: u32,
    },
    /// This build embeds no generator object (`AYA_BUILD_SKIP` was set).
    #[error("skmem-xdp was built without its eBPF programs (AYA_BUILD_SKIP was set)")]
    ObjectMissing,
    /// Loading the program failed.
    #[error("loading the generator program failed: {reason}")]
    Load {
        /// The kernel's reason (with the verifier log, if any).
        reason: String,
        /// The errno of the failing call, if one failed.
        errno: Option<i32>,
    },
    /// `BPF_PROG_TEST_RUN` failed (`EINTR` when a signal arrived mid-run:
    /// how many frames went out before is unknown).
    #[error("running the generator on `{iface}` failed: {reason}")]
    Run {
        /// The interface.
        iface: String,
        /// The kernel's reason.
        reason: String,
        /// The errno of the failing call.
        errno: Option<i32>,
    },
}

impl GenError {
    /// The kernel's errno behind the error, if a system call failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            GenError::Interface(err) => err.errno(),
            GenError::Load { errno, .. } | GenError::Run { errno, .. } => *errno,
            GenError::FrameSize { .. } | GenError::BatchSize { .. } | GenError::ObjectMissing => {
                None
            }
        }
    }
}

/// The context of a live-frames run: the kernel's `struct xdp_md` (six
/// `u32`s: `data`, `data_end`, `data_meta`, `ingress_ifindex`,
/// `rx_queue_index`, `egress_ifindex`). `data` and `data_meta` must be 0 and
/// `data_end` the frame's length; `egress_ifindex` must be 0.
fn xdp_md(frame_len: u32, ifindex: u32) -> [u8; 24] {
    let fields = [0, frame_len, 0, ifindex, 0, 0u32];
    let mut out = [0u8; 24];
    for (chunk, field) in out.chunks_exact_mut(4).zip(fields) {
        chunk.copy_from_slice(&field.to_ne_bytes());
    }
    out
}

/// A loaded generator for one interface and one frame.
pub struct Generator {
    // Field order: the program (and its anchor link) goes before the
    // anchor namespace.
    ebpf: Ebpf,
    /// The private network namespace whose loopback anchors the program
    /// in the kernel's XDP dispatcher (see [`anchor`]); `None` if that
    /// failed (runs then pay the dispatcher update each).
    _anchor_ns: Option<OwnedFd>,
    iface: String,
    ifindex: u32,
    frame: Vec<u8>,
    ctx: [u8; 24],
}

impl Generator {
    /// Loads the generator to send `frame` (a whole Ethernet frame, without
    /// FCS) out of `iface`, which is looked up in the calling thread's
    /// network namespace. Needs root (`CAP_BPF`, `CAP_NET_ADMIN`).
    ///
    /// The program is also attached, in generic mode, to the loopback of
    /// a private network namespace that lives as long as the generator, so
    /// that runs do not rebuild the kernel's XDP dispatcher (see
    /// [`Generator::anchored`]).
    pub fn new(iface: &str, frame: &[u8]) -> Result<Generator, GenError> {
        let ifindex = ifindex(iface)?;
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            return Err(GenError::FrameSize { len: frame.len() });
        }
        if OBJECT.is_empty() {
            return Err(GenError::ObjectMissing);
        }
        let load_err = |err: &(dyn std::error::Error + 'static)| GenError::Load {
            reason: reason(err),
            errno: errno(err),
        };
        let mut ebpf = Ebpf::load(OBJECT).map_err(|e| load_err(&e))?;
        let program: &mut Xdp = ebpf
            .program_mut(GEN_PROGRAM)
            .ok_or_else(|| GenError::Load {
                reason: format!("the object has no program named {GEN_PROGRAM}"),
                errno: None,
            })?
            .try_into()
            .map_err(|e| load_err(&e))?;
        program.load().map_err(|e| load_err(&e))?;
        let anchor_ns = match anchor(program) {
            Ok(fd) => Some(fd),
            Err(e) => {
                warn!(error = %e, "generator not anchored: each run pays an XDP dispatcher update (~25 ms)");
                None
            }
        };
        debug!(
            iface,
            ifindex,
            len = frame.len(),
            anchored = anchor_ns.is_some(),
            "generator loaded"
        );
        let len = frame.len() as u32; // at most MAX_FRAME
        Ok(Generator {
            ebpf,
            _anchor_ns: anchor_ns,
            iface: iface.to_owned(),
            ifindex,
            frame: frame.to_vec(),
            ctx: xdp_md(len, ifindex),
        })
    }

    /// The interface the frames go out of.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Is the program anchored in the kernel's XDP dispatcher (see
    /// [`Generator::new`])? Without the anchor every run costs a
    /// dispatcher update (tens of ms).
    pub fn anchored(&self) -> bool {
        self._anchor_ns.is_some()
    }

    /// The index of [`Generator::iface`].
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// Sends the frame `repeat` times, `batch` frames (1..=[`MAX_BATCH`])
    /// per kernel batch (each batch is flushed to the driver, and the
    /// receiving NAPI may run, between batches). Returns how many frames
    /// were offered to the interface (`repeat`; 0 sends nothing). Blocks
    /// until done; the kernel yields the CPU between batches when needed.
    pub fn run(&self, repeat: u32, batch: u32) -> Result<u64, GenError> {
        self.run_timed(repeat, batch).map(|(sent, _)| sent)
    }

    /// [`Generator::run`], also returning the kernel's measure of the mean
    /// time per frame.
    pub fn run_timed(&self, repeat: u32, batch: u32) -> Result<(u64, Duration), GenError> {
        if batch == 0 || batch > MAX_BATCH {
            return Err(GenError::BatchSize { batch });
        }
        if repeat == 0 {
            return Ok((0, Duration::ZERO));
        }
        let run_err = |err: &(dyn std::error::Error + 'static)| GenError::Run {
            iface: self.iface.clone(),
            reason: reason(err),
            errno: errno(err),
        };
        let program: &Xdp = self
            .ebpf
            .program(GEN_PROGRAM)
            .ok_or_else(|| GenError::Run {
                iface: self.iface.clone(),
                reason: format!("no program named {GEN_PROGRAM}"),
                errno: None,
            })?
            .try_into()
            .map_err(|e| run_err(&e))?;
        let opts = TestRunOptions {
            data_in: Some(&self.frame),
            ctx_in: Some(&self.ctx),
            repeat,
            attrs: TestRunAttrs::new().xdp_live_frames(batch),
            ..TestRunOptions::new()
        };
        let result = program.test_run(opts).map_err(|e| run_err(&e))?;
        Ok((u64::from(repeat), result.duration))
    }
}

/// Anchors `program` in the kernel's XDP dispatcher for the generator's
/// life, and returns the namespace that holds the anchor.
///
/// Every `BPF_PROG_RUN` of an XDP program with `repeat > 1` adds the
/// program to the kernel's XDP dispatcher before the run and removes it
/// after; when that changes the dispatcher's set of programs, the kernel
/// rebuilds its image and waits for an RCU grace period — ~20–30 ms per
/// call here, which capped the generator at a third of its rate. A program
/// that is attached somewhere stays in the dispatcher, and then a run only
/// bumps a reference count. So: attach it, in generic mode, to the
/// loopback of a private network namespace made for the purpose, where no
/// frame ever arrives. A thread enters the new namespace (`unshare` is per
/// thread), attaches, and keeps only a descriptor of the namespace; when
/// the generator drops, the link detaches and the namespace (and its
/// loopback) vanish with the descriptor — also if the process dies.
fn anchor(program: &mut Xdp) -> Result<OwnedFd, String> {
    std::thread::scope(|s| {
        s.spawn(move || -> Result<OwnedFd, String> {
            // SAFETY: unshare has no memory-safety preconditions; it moves
            // only this thread into a new network namespace, and this
            // thread ends right after.
            if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
                return Err(format!(
                    "unshare(CLONE_NEWNET): {}",
                    std::io::Error::last_os_error()
                ));
            }
            let ns = std::fs::File::open("/proc/thread-self/ns/net")
                .map_err(|e| format!("opening the anchor namespace: {e}"))?;
            program
                .attach("lo", XdpMode::Skb)
                .map_err(|e| format!("attaching to the anchor loopback: {e}"))?;
            Ok(OwnedFd::from(ns))
        })
        .join()
        .map_err(|_| "the anchor thread panicked".to_owned())?
    })
}

// The pps harness runs the generator on a thread of its own.
const _: () = {
    const fn send<T: Send>() {}
    send::<Generator>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_layout() {
        let ctx = xdp_md(60, 7);
        let field = |i: usize| u32::from_ne_bytes(ctx[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!((0..6).map(field).collect::<Vec<_>>(), [0, 60, 0, 7, 0, 0]);
    }

    #[test]
    fn bad_arguments_are_refused_before_the_kernel() {
        assert!(matches!(
            Generator::new("", &[0; 60]),
            Err(GenError::Interface(_))
        ));
        assert_eq!(GenError::BatchSize { batch: 0 }.errno(), None);
    }
}
