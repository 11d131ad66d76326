//! skmem's XDP program and its aya loader.
//!
//! The program (`ebpf/`, built for `bpfel-unknown-none` by this crate's
//! build script and embedded in it) runs on every frame an interface
//! receives: frames that match the [`XdpFilter`] are redirected to the
//! AF_XDP socket registered for their RX queue (see
//! [`XdpProgram::add_socket`]), the others, and any frame of a queue with no
//! socket, go on to the kernel stack. Per-CPU counters say what happened to
//! each frame ([`XdpProgram::counters`]).
//!
//! ```no_run
//! use skmem_xdp::{AttachMode, XdpFilter, XdpProgram};
//!
//! let filter = XdpFilter::new()
//!     .with_ethertype(skmem_xdp::ETH_P_IP)
//!     .with_udp_dst_ports(9000, 9099);
//! let prog = XdpProgram::attach("veth0", AttachMode::Auto, Some(filter))?;
//! println!("attached in {} mode", prog.mode());
//! // ... bind an AF_XDP socket to queue 0, then:
//! // prog.add_socket(0, xsk.as_fd())?;
//! println!("{:?}", prog.counters()?);
//! drop(prog); // detaches
//! # Ok::<(), skmem_xdp::XdpError>(())
//! ```

#![warn(missing_docs)]
// The unit-test build of a library sees its package's dev-dependencies,
// which the integration tests use.
#![cfg_attr(test, allow(unused_crate_dependencies))]

mod error;
pub mod gen;
pub mod observe;

use std::error::Error as StdError;
use std::fmt;
use std::os::fd::BorrowedFd;

use aya::maps::{Array, MapData, PerCpuArray, XskMap};
use aya::programs::{Xdp, XdpMode};
use aya::{include_bytes_aligned, Ebpf, EbpfLoader};
use serde::Serialize;
use tracing::{debug, info, warn};

use error::{errno, reason};

pub use error::XdpError;
pub use skmem_xdp_common::{
    XdpAction, XdpCounter, XdpFilter, ACTION_GLOBAL, COUNTERS_MAP, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6,
    FILTER_GLOBAL, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, PROGRAM_NAME, STATE_SEQUENCE,
    STATE_TAIL_ERROR, TAIL_DELTA_GLOBAL, VARIANT_STATE_MAP, XDP_COUNTER_COUNT, XDP_METADATA_LEN,
    XSKS_MAP, XSKS_MAX_ENTRIES,
};

/// The XDP object built from `ebpf/` by the build script (empty when the
/// build ran with `AYA_BUILD_SKIP=1`).
static OBJECT: &[u8] = include_bytes_aligned!(env!("SKMEM_XDP_OBJECT"));

/// Longest interface name the kernel accepts (`IFNAMSIZ` - 1).
const IFNAME_MAX: usize = 15;

/// How [`XdpProgram::attach`] attaches the program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum AttachMode {
    /// Native (driver, `XDP_FLAGS_DRV_MODE`): runs in the driver before an
    /// skb exists. Fails if the driver has no XDP support or refuses the
    /// configuration (veth: `ENOSPC` when the RX queues are fewer than the
    /// peer's TX queues).
    Native,
    /// Generic (`XDP_FLAGS_SKB_MODE`): runs in the stack on an skb; works on
    /// every device, slower.
    Generic,
    /// Native, and generic if native fails; [`XdpProgram::mode`] says which.
    Auto,
}

/// The mode the program ended up attached in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum AttachedMode {
    /// Native (driver) XDP.
    Native,
    /// Generic (skb) XDP.
    Generic,
}

impl AttachedMode {
    fn xdp_mode(self) -> XdpMode {
        match self {
            AttachedMode::Native => XdpMode::Driver,
            AttachedMode::Generic => XdpMode::Skb,
        }
    }
}

impl fmt::Display for AttachedMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachedMode::Native => "native",
            AttachedMode::Generic => "generic",
        })
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AttachMode::Native => "native",
            AttachMode::Generic => "generic",
            AttachMode::Auto => "auto",
        })
    }
}

/// Counters summed over CPUs (see [`XdpCounter`] for their meaning).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
pub struct XdpCounters {
    /// Frames the program ran on.
    pub seen: u64,
    /// Frames redirected to an AF_XDP socket.
    pub redirected: u64,
    /// Frames that matched but found no socket for their queue: passed.
    pub passed: u64,
    /// Frames that did not match the filter: passed.
    pub filtered: u64,
    /// Frames aborted (`XDP_ABORTED`).
    pub aborted: u64,
    /// Frames dropped ([`XdpAction::Drop`]).
    pub dropped: u64,
    /// Frames sent back with `XDP_TX` ([`XdpAction::Tx`]).
    pub transmitted: u64,
}

/// One step that takes a resource: may fail in tests
/// ([`skmem::failpoint`]), never otherwise.
fn failpoint(step: &'static str) -> Result<(), XdpError> {
    skmem::failpoint::step(step).map_err(|_| XdpError::Injected { step })
}

/// The state of the program's variants ([`XdpProgram::variant_state`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VariantState {
    /// Frames numbered by [`XdpAction::DropHalf`] or
    /// [`XdpAction::Metadata`].
    pub sequence: u64,
    /// The errno of the last `bpf_xdp_adjust_tail` that failed
    /// ([`XdpAction::AdjustTail`]), e.g. `EINVAL` for a frame with no room
    /// to grow, or `EOPNOTSUPP`.
    pub tail_error: Option<i32>,
}

/// The interface index of `iface` in the calling thread's network
/// namespace.
pub fn ifindex(iface: &str) -> Result<u32, XdpError> {
    let invalid = || XdpError::InvalidInterfaceName {
        iface: iface.to_owned(),
    };
    if iface.is_empty() || iface.len() > IFNAME_MAX {
        return Err(invalid());
    }
    if iface.contains('\0') {
        return Err(invalid());
    }
    skmem::sys::interface_index(iface).map_err(|reason| XdpError::InterfaceNotFound {
        iface: iface.to_owned(),
        reason,
    })
}

/// skmem's XDP program, loaded and attached to one interface.
///
/// Dropping it detaches the program and frees its maps (the AF_XDP sockets
/// registered in it stay open: they belong to the caller).
pub struct XdpProgram {
    /// Owns the program and its link: the link is detached in `Drop`.
    ebpf: Ebpf,
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    /// The variants' state ([`VARIANT_STATE_MAP`]).
    state: Array<MapData, u64>,
    /// [`XdpAction::AdjustTail`]'s delta.
    tail_delta: i32,
    link: Option<aya::programs::xdp::XdpLinkId>,
    iface: String,
    ifindex: u32,
    mode: AttachedMode,
    filter: XdpFilter,
    action: XdpAction,
}

impl fmt::Debug for XdpProgram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XdpProgram")
            .field("iface", &self.iface)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("filter", &self.filter)
            .field("action", &self.action)
            .finish_non_exhaustive()
    }
}

impl XdpProgram {
    /// Loads the program with `filter` (`None`: every frame is offered to
    /// AF_XDP) set as its read-only global, and attaches it to `iface` in
    /// the calling thread's network namespace.
    ///
    /// [`AttachMode::Auto`] tries native first and falls back to generic,
    /// logging why; [`XdpProgram::mode`] reports the outcome. Errors name
    /// the interface and the mode tried and carry the kernel's reason, e.g.
    /// `ENOSPC` for a veth whose RX queues are fewer than its peer's TX
    /// queues, or `EBUSY`/`EEXIST` when another program is attached.
    pub fn attach(
        iface: &str,
        mode: AttachMode,
        filter: Option<XdpFilter>,
    ) -> Result<XdpProgram, XdpError> {
        Self::attach_with_action(iface, mode, filter, XdpAction::Redirect)
    }

    /// [`XdpProgram::attach`] with another [`XdpAction`] for the frames
    /// that match the filter: [`XdpAction::Drop`] or [`XdpAction::Tx`]
    /// make the program an in-kernel ceiling (or a counting sink) rather
    /// than a redirector; sockets may still be registered but receive
    /// nothing.
    pub fn attach_with_action(
        iface: &str,
        mode: AttachMode,
        filter: Option<XdpFilter>,
        action: XdpAction,
    ) -> Result<XdpProgram, XdpError> {
        Self::load_and_attach(iface, mode, filter, action, 0)
    }

    /// [`XdpProgram::attach`] with [`XdpAction::AdjustTail`]: each
    /// matching frame's end moves by `delta` bytes (`bpf_xdp_adjust_tail`:
    /// a negative `delta` shrinks it, a positive one grows it with zeros)
    /// before it is redirected. A frame the kernel cannot adjust is
    /// dropped, counted [`XdpCounter::Aborted`], and the error kept
    /// ([`XdpProgram::variant_state`]).
    pub fn attach_adjusting_tail(
        iface: &str,
        mode: AttachMode,
        filter: Option<XdpFilter>,
        delta: i32,
    ) -> Result<XdpProgram, XdpError> {
        Self::load_and_attach(iface, mode, filter, XdpAction::AdjustTail, delta)
    }

    fn load_and_attach(
        iface: &str,
        mode: AttachMode,
        filter: Option<XdpFilter>,
        action: XdpAction,
        tail_delta: i32,
    ) -> Result<XdpProgram, XdpError> {
        failpoint("XDP program load")?;
        let ifindex = ifindex(iface)?;
        if OBJECT.is_empty() {
            return Err(XdpError::ObjectMissing);
        }
        let filter = filter.unwrap_or(XdpFilter::DISABLED);
        let mut ebpf = load_program(iface, filter, action, tail_delta)?;
        debug!(iface, ifindex, ?filter, "XDP program loaded");

        // Maps first, so that nothing is left attached if one is missing.
        let Maps {
            xsks,
            counters,
            state,
        } = take_maps(&mut ebpf, iface)?;

        failpoint("XDP attach")?;
        let program = program_mut(&mut ebpf).map_err(|r| no_program(iface, r))?;
        let (link, mode) = attach_program(program, iface, ifindex, mode)?;
        info!(iface, ifindex, %mode, ?filter, ?action, "XDP program attached");

        Ok(XdpProgram {
            ebpf,
            xsks,
            counters,
            state,
            tail_delta,
            link: Some(link),
            iface: iface.to_owned(),
            ifindex,
            mode,
            filter,
            action,
        })
    }

    /// The mode the program is attached in.
    pub fn mode(&self) -> AttachedMode {
        self.mode
    }

    /// The interface the program is attached to.
    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// The index of [`XdpProgram::iface`].
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The filter the program was loaded with ([`XdpFilter::DISABLED`] for
    /// `None`).
    pub fn filter(&self) -> XdpFilter {
        self.filter
    }

    /// The action the program applies to matching frames.
    pub fn action(&self) -> XdpAction {
        self.action
    }

    /// Registers the AF_XDP socket `xsk_fd` for RX queue `queue`: matching
    /// frames received on that queue are redirected to it. Replaces any
    /// socket registered for that queue. The socket must be bound to this
    /// interface and queue (the kernel checks it is an AF_XDP socket; a
    /// frame redirected to a socket bound elsewhere is dropped).
    pub fn add_socket(&mut self, queue: u32, xsk_fd: BorrowedFd<'_>) -> Result<(), XdpError> {
        failpoint("XSKMAP insert")?;
        self.xsks.set(queue, xsk_fd, 0).map_err(|e| XdpError::Map {
            iface: self.iface.clone(),
            map: XSKS_MAP,
            op: format!("registering the AF_XDP socket of queue {queue}"),
            reason: reason(&e),
            errno: errno(&e),
        })?;
        debug!(iface = %self.iface, queue, "AF_XDP socket registered");
        Ok(())
    }

    /// Unregisters the socket of RX queue `queue`: its frames go to the
    /// stack again (counted as passed). Not an error if none was registered.
    pub fn remove_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        self.xsks.unset(queue).map_err(|e| XdpError::Map {
            iface: self.iface.clone(),
            map: XSKS_MAP,
            op: format!("unregistering the AF_XDP socket of queue {queue}"),
            reason: reason(&e),
            errno: errno(&e),
        })?;
        debug!(iface = %self.iface, queue, "AF_XDP socket unregistered");
        Ok(())
    }

    /// The counters, each summed over every possible CPU.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let read = |counter: XdpCounter| -> Result<u64, XdpError> {
            let values = self
                .counters
                .get(&counter.index(), 0)
                .map_err(|e| XdpError::Map {
                    iface: self.iface.clone(),
                    map: COUNTERS_MAP,
                    op: format!("reading counter {counter:?}"),
                    reason: reason(&e),
                    errno: errno(&e),
                })?;
            Ok(values.iter().copied().fold(0u64, u64::wrapping_add))
        };
        Ok(XdpCounters {
            seen: read(XdpCounter::Seen)?,
            redirected: read(XdpCounter::Redirected)?,
            passed: read(XdpCounter::Passed)?,
            filtered: read(XdpCounter::Filtered)?,
            aborted: read(XdpCounter::Aborted)?,
            dropped: read(XdpCounter::Dropped)?,
            transmitted: read(XdpCounter::Transmitted)?,
        })
    }

    /// The state of the program's variants: how many frames
    /// [`XdpAction::DropHalf`] or [`XdpAction::Metadata`] have numbered,
    /// and the last error of `bpf_xdp_adjust_tail`
    /// ([`XdpAction::AdjustTail`]).
    pub fn variant_state(&self) -> Result<VariantState, XdpError> {
        let read = |slot: u32| {
            self.state.get(&slot, 0).map_err(|e| XdpError::Map {
                iface: self.iface.clone(),
                map: VARIANT_STATE_MAP,
                op: format!("reading slot {slot}"),
                reason: reason(&e),
                errno: errno(&e),
            })
        };
        let err = read(STATE_TAIL_ERROR)? as u32 as i32;
        Ok(VariantState {
            sequence: read(STATE_SEQUENCE)?,
            tail_error: (err != 0).then_some(-err),
        })
    }

    /// [`XdpAction::AdjustTail`]'s delta (0 for the other actions).
    pub fn tail_delta(&self) -> i32 {
        self.tail_delta
    }

    /// Detaches the program now, reporting a failure (dropping detaches
    /// too, but can only log one).
    pub fn detach(mut self) -> Result<(), XdpError> {
        self.detach_link()
    }

    fn detach_link(&mut self) -> Result<(), XdpError> {
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        let (iface, ifindex, mode) = (self.iface.clone(), self.ifindex, self.mode);
        let program = program_mut(&mut self.ebpf).map_err(|e| XdpError::Attach {
            iface: iface.clone(),
            ifindex,
            mode,
            reason: format!("detaching: {e}"),
            errno: None,
        })?;
        program.detach(link).map_err(|e| XdpError::Attach {
            iface: iface.clone(),
            ifindex,
            mode,
            reason: format!("detaching: {}", reason(&e)),
            errno: errno(&e),
        })?;
        info!(iface, ifindex, %mode, "XDP program detached");
        Ok(())
    }
}

impl Drop for XdpProgram {
    fn drop(&mut self) {
        if let Err(err) = self.detach_link() {
            warn!(error = %err, "detaching the XDP program failed");
        }
    }
}

/// The program's maps, taken out of the loaded object.
struct Maps {
    xsks: XskMap<MapData>,
    counters: PerCpuArray<MapData, u64>,
    state: Array<MapData, u64>,
}

/// The embedded object loaded into the kernel for `iface`, with `filter`,
/// `action` and `tail_delta` set as its read-only globals: its maps made
/// and its program verified, not yet attached.
fn load_program(
    iface: &str,
    filter: XdpFilter,
    action: XdpAction,
    tail_delta: i32,
) -> Result<Ebpf, XdpError> {
    let load_err = |err: &(dyn StdError + 'static)| XdpError::Load {
        iface: iface.to_owned(),
        reason: reason(err),
        errno: errno(err),
    };
    let mut ebpf = EbpfLoader::new()
        .override_global(FILTER_GLOBAL, &filter, true)
        .override_global(ACTION_GLOBAL, &action.code(), true)
        .override_global(TAIL_DELTA_GLOBAL, &tail_delta, true)
        .load(OBJECT)
        .map_err(|e| load_err(&e))?;
    program_mut(&mut ebpf)
        .map_err(|r| no_program(iface, r))?
        .load()
        .map_err(|e| load_err(&e))?;
    Ok(ebpf)
}

/// The loaded object's XSKMAP, counters and variant state, or the error
/// naming the one that is missing or of the wrong kind.
fn take_maps(ebpf: &mut Ebpf, iface: &str) -> Result<Maps, XdpError> {
    let map_err = |map: &'static str, err: &(dyn StdError + 'static)| XdpError::Map {
        iface: iface.to_owned(),
        map,
        op: "opening".to_owned(),
        reason: reason(err),
        errno: errno(err),
    };
    let xsks = ebpf
        .take_map(XSKS_MAP)
        .ok_or_else(|| missing(XSKS_MAP))
        .and_then(XskMap::try_from)
        .map_err(|e| map_err(XSKS_MAP, &e))?;
    let counters = ebpf
        .take_map(COUNTERS_MAP)
        .ok_or_else(|| missing(COUNTERS_MAP))
        .and_then(PerCpuArray::try_from)
        .map_err(|e| map_err(COUNTERS_MAP, &e))?;
    let state = ebpf
        .take_map(VARIANT_STATE_MAP)
        .ok_or_else(|| missing(VARIANT_STATE_MAP))
        .and_then(Array::try_from)
        .map_err(|e| map_err(VARIANT_STATE_MAP, &e))?;
    Ok(Maps {
        xsks,
        counters,
        state,
    })
}

/// The load error for an object without skmem's program in it.
fn no_program(iface: &str, reason: String) -> XdpError {
    XdpError::Load {
        iface: iface.to_owned(),
        reason,
        errno: None,
    }
}

/// Attaches `program` to `ifindex` as `mode` asks: [`AttachMode::Auto`]
/// tries native, then generic (logging why native failed). Returns the
/// link and the mode it is attached in.
fn attach_program(
    program: &mut Xdp,
    iface: &str,
    ifindex: u32,
    mode: AttachMode,
) -> Result<(aya::programs::xdp::XdpLinkId, AttachedMode), XdpError> {
    Ok(match mode {
        AttachMode::Native => (
            attach_in(program, iface, ifindex, AttachedMode::Native)?,
            AttachedMode::Native,
        ),
        AttachMode::Generic => (
            attach_in(program, iface, ifindex, AttachedMode::Generic)?,
            AttachedMode::Generic,
        ),
        AttachMode::Auto => match attach_in(program, iface, ifindex, AttachedMode::Native) {
            Ok(link) => (link, AttachedMode::Native),
            Err(native) => {
                warn!(iface, error = %native, "native XDP attach failed; trying generic");
                match attach_in(program, iface, ifindex, AttachedMode::Generic) {
                    Ok(link) => (link, AttachedMode::Generic),
                    Err(generic) => {
                        return Err(XdpError::AutoAttach {
                            iface: iface.to_owned(),
                            native: Box::new(native),
                            generic: Box::new(generic),
                        })
                    }
                }
            }
        },
    })
}

/// The XDP program in a loaded object, or why it is not there.
fn program_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, String> {
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or_else(|| format!("the object has no program named {PROGRAM_NAME}"))?
        .try_into()
        .map_err(|e| format!("{PROGRAM_NAME}: {}", reason(&e)))
}

fn missing(name: &str) -> aya::maps::MapError {
    aya::maps::MapError::InvalidName {
        name: name.to_owned(),
    }
}

fn attach_in(
    program: &mut Xdp,
    iface: &str,
    ifindex: u32,
    mode: AttachedMode,
) -> Result<aya::programs::xdp::XdpLinkId, XdpError> {
    program
        .attach_to_if_index(ifindex, mode.xdp_mode())
        .map_err(|e| {
            let errno = errno(&e);
            let mut reason = reason(&e);
            if let Some(hint) = attach_hint(errno, mode) {
                reason.push_str(" (");
                reason.push_str(hint);
                reason.push(')');
            }
            XdpError::Attach {
                iface: iface.to_owned(),
                ifindex,
                mode,
                reason,
                errno,
            }
        })
}

/// What an attach errno usually means (`bpf_link_create` has no room for
/// the kernel's own explanation, which only netlink's extack carries).
fn attach_hint(errno: Option<i32>, mode: AttachedMode) -> Option<&'static str> {
    match (errno?, mode) {
        (libc::ENOSPC, AttachedMode::Native) => {
            Some("veth: native XDP needs at least as many RX queues as the peer has TX queues")
        }
        (libc::EBUSY, _) => Some("another XDP program or link is attached in this mode"),
        (libc::EEXIST, _) => Some(
            "an XDP program is attached in the other mode; native and generic exclude each other",
        ),
        (libc::EOPNOTSUPP, AttachedMode::Native) => Some("the driver has no native XDP support"),
        (libc::ERANGE, _) => Some("the MTU is too large for XDP on this device"),
        _ => None,
    }
}

// The AF_XDP channel hands the program to its own threads.
const _: () = {
    const fn send<T: Send>() {}
    send::<XdpProgram>();
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_before_the_kernel() {
        for bad in ["", "sixteen-chars-xx", "a\0b"] {
            assert!(matches!(
                ifindex(bad),
                Err(XdpError::InvalidInterfaceName { .. })
            ));
        }
    }

    #[test]
    fn errors_render_mode_and_hint() {
        assert_eq!(AttachedMode::Native.to_string(), "native");
        assert_eq!(AttachMode::Auto.to_string(), "auto");
        assert!(attach_hint(Some(libc::ENOSPC), AttachedMode::Native)
            .unwrap()
            .contains("RX queues"));
        assert_eq!(attach_hint(Some(libc::ENOSPC), AttachedMode::Generic), None);
        assert_eq!(attach_hint(None, AttachedMode::Native), None);
        let err = XdpError::AutoAttach {
            iface: "eth9".into(),
            native: Box::new(XdpError::ObjectMissing),
            generic: Box::new(XdpError::Attach {
                iface: "eth9".into(),
                ifindex: 9,
                mode: AttachedMode::Generic,
                reason: "nope".into(),
                errno: Some(libc::EEXIST),
            }),
        };
        assert_eq!(err.errno(), Some(libc::EEXIST));
        assert!(err.to_string().contains("generic mode failed: nope"));
    }

    #[test]
    fn counters_serialize() {
        let c = XdpCounters {
            seen: 3,
            passed: 2,
            filtered: 1,
            ..XdpCounters::default()
        };
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"seen":3,"redirected":0,"passed":2,"filtered":1,"aborted":0,"dropped":0,"transmitted":0}"#
        );
    }
}
