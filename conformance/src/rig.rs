//! The test rig: a fresh veth pair between two network namespaces (as the
//! kernel's `test_xsk.sh` makes it: IPv6 off, MTU 1500 unless the case
//! needs more), skmem's XDP program on the receiving end, and channels
//! opened inside either namespace.
//!
//! The kernel sends from end B's socket to end A's. Everything is made on
//! a thread inside the end's namespace and handed back: an AF_XDP socket
//! and an XDP link keep their namespace, so the case then drives both
//! ends from its own threads.

use std::sync::atomic::{AtomicU32, Ordering};

use skmem::arena::{Arena, NexusParams};
use skmem::channel::{BindMode, Channel, ChannelParams};
use skmem_netns::{FrameSpec, NetnsPair, PairConfig, Side};
use skmem_xdp::{AttachedMode, XdpAction, XdpProgram};

use crate::{Mode, Step, Verdict};

/// One end's socket: its arena (whose pool is the UMEM) and channel.
pub struct Socket {
    /// The channel, dropped before the arena.
    pub ch: Channel,
    /// The nexus arena the channel is bound to.
    pub arena: Arena,
}

/// How to make one end's socket.
#[derive(Debug, Clone)]
pub struct SocketSpec {
    /// Packets of the pool: the UMEM's frames (the kernel's default is
    /// 1024 frames of 4 KiB, less what the rings keep in flight; skmem's
    /// pool also keeps per-CPU magazines, so it gets more).
    pub packets: usize,
    /// Buffer (UMEM frame) size; 0 keeps the pool's default (2 KiB).
    pub buf_size: usize,
    /// The queue to bind.
    pub queue: u32,
    /// Channels the pool will serve (a worker slot each): 2 for a pool
    /// another socket shares.
    pub workers: usize,
    /// Buffers of exactly `buf_size`, not rounded to a power of two (for
    /// unaligned chunks).
    pub truncated: bool,
    /// Buffers on 2 MiB huge pages (the case reserves them).
    pub huge_pages: bool,
}

impl Default for SocketSpec {
    fn default() -> Self {
        Self {
            packets: 4096,
            buf_size: 4096,
            queue: 0,
            workers: 0,
            truncated: false,
            huge_pages: false,
        }
    }
}

/// A veth pair for one case in one mode.
pub struct Rig {
    /// The pair: B sends, A receives.
    pub pair: NetnsPair,
    /// The mode the case runs in.
    pub mode: Mode,
}

/// Arena names are unique in a process: a counter tells apart the many
/// rigs a run makes.
static ARENAS: AtomicU32 = AtomicU32::new(0);

/// A fresh arena name for a socket on `side`.
fn arena_name(side: Side) -> String {
    format!("conf-{}-{}", side, ARENAS.fetch_add(1, Ordering::Relaxed))
}

impl Rig {
    /// A pair with one queue per end (every frame lands on queue 0, which
    /// the sockets bind) and `mtu`.
    pub fn new(mode: Mode, mtu: u32) -> Result<Rig, Verdict> {
        Self::with_queues(mode, mtu, 1)
    }

    /// A pair with `queues` RX and TX queues per end.
    pub fn with_queues(mode: Mode, mtu: u32, queues: u32) -> Result<Rig, Verdict> {
        let pair = NetnsPair::with_config(PairConfig::default().queues(queues, queues).mtu(mtu))
            .step("making the veth pair")?;
        Ok(Rig { pair, mode })
    }

    /// The interface name of `side`.
    pub fn ifname(&self, side: Side) -> String {
        self.pair.ifname(side).to_owned()
    }

    /// The flow from B to A in frames of `size` bytes, numbered as the
    /// kernel numbers its payload words.
    pub fn spec(&self, size: usize) -> Result<FrameSpec, Verdict> {
        let spec = self.pair.frame_spec(Side::B, 64).step("the flow")?;
        Ok(FrameSpec { size, ..spec })
    }

    /// Attaches skmem's XDP program to `side` in the rig's mode, offering
    /// every frame to the AF_XDP socket of its queue with `action`.
    pub fn attach(&self, side: Side, action: XdpAction) -> Result<XdpProgram, Verdict> {
        self.attach_on(side, &self.ifname(side), action)
    }

    /// Attaches skmem's XDP program to `side` moving each frame's end by
    /// `delta` bytes before redirecting it ([`XdpAction::AdjustTail`]).
    pub fn attach_adjusting_tail(&self, side: Side, delta: i32) -> Result<XdpProgram, Verdict> {
        let ifname = self.ifname(side);
        let mode = self.mode;
        let prog = self
            .pair
            .in_ns(side, || {
                XdpProgram::attach_adjusting_tail(&ifname, mode.attach(), None, delta)
            })
            .step("attaching the XDP program")?;
        self.check_mode(&prog)?;
        Ok(prog)
    }

    /// Fails unless `prog` is attached in the rig's mode.
    fn check_mode(&self, prog: &XdpProgram) -> Result<(), Verdict> {
        let want = match self.mode {
            Mode::Skb => AttachedMode::Generic,
            Mode::Drv | Mode::BusyPoll => AttachedMode::Native,
        };
        if prog.mode() != want {
            return Err(Verdict::Failed(format!(
                "XDP program attached in {} mode, not {want}",
                prog.mode()
            )));
        }
        Ok(())
    }

    /// [`attach`](Self::attach) to interface `ifname` of `side`.
    pub fn attach_on(
        &self,
        side: Side,
        ifname: &str,
        action: XdpAction,
    ) -> Result<XdpProgram, Verdict> {
        let mode = self.mode;
        let prog = self
            .pair
            .in_ns(side, || {
                XdpProgram::attach_with_action(ifname, mode.attach(), None, action)
            })
            .step("attaching the XDP program")?;
        self.check_mode(&prog)?;
        Ok(prog)
    }

    /// Opens a copy-mode channel on `side` over a fresh nexus arena of
    /// `spec`; `tweak` adjusts the parameters after the mode's (busy
    /// polling on the receiving end A in [`Mode::BusyPoll`]).
    pub fn socket(
        &self,
        side: Side,
        spec: &SocketSpec,
        tweak: impl FnOnce(&mut ChannelParams) + Send,
    ) -> Result<Socket, Verdict> {
        self.socket_on(side, &self.ifname(side), spec, tweak)
    }

    /// [`socket`](Self::socket) on interface `ifname` of `side`.
    pub fn socket_on(
        &self,
        side: Side,
        ifname: &str,
        spec: &SocketSpec,
        tweak: impl FnOnce(&mut ChannelParams) + Send,
    ) -> Result<Socket, Verdict> {
        let name = arena_name(side);
        let mut cp = ChannelParams::new(ifname, spec.queue);
        cp.mode = BindMode::Copy;
        cp.need_wakeup = true;
        cp.batch = 64;
        cp.busy_poll = (self.mode.busy_poll() && side == Side::A).then_some((20, 64));
        tweak(&mut cp);
        // RING objects large enough for the rings the case asks for.
        let mut np =
            NexusParams::new(&name).with_ring_entries(cp.ring_entries.max(cp.umem_ring_entries));
        np.pool.packets = spec.packets;
        np.pool.workers = spec.workers;
        np.pool.truncated_buf = spec.truncated;
        np.truncated_buf = spec.truncated;
        np.pool.huge_pages = spec.huge_pages;
        if spec.buf_size != 0 {
            np.pool.buf_size = spec.buf_size;
        }
        self.pair
            .in_ns(side, || {
                let arena = Arena::create_nexus(&np)?;
                let ch = Channel::open(&arena, &cp)?;
                Ok::<_, skmem::Error>(Socket { ch, arena })
            })
            .step(&format!("opening the channel on {side} ({ifname})"))
    }

    /// A second veth pair between the rig's namespaces, with the names
    /// of the first and an `x`: (A's end, B's end), up, IPv6 off, MTU 1500.
    /// It goes with the namespaces.
    pub fn second_veth(&self) -> Result<(String, String), Verdict> {
        let (a, b) = (
            format!("{}x", self.ifname(Side::A)),
            format!("{}x", self.ifname(Side::B)),
        );
        let ns_b = self.pair.ns_name(Side::B).to_owned();
        let ip = |side: Side, args: &[&str]| {
            self.pair
                .exec_ok(side, "ip", args)
                .map(|_| ())
                .step(&format!("ip {}", args.join(" ")))
        };
        ip(
            Side::A,
            &[
                "link", "add", &a, "type", "veth", "peer", "name", &b, "netns", &ns_b,
            ],
        )?;
        for (side, ifname) in [(Side::A, &a), (Side::B, &b)] {
            // Before it is up: no router solicitation reaches the socket.
            let knob = format!("/proc/sys/net/ipv6/conf/{ifname}/disable_ipv6");
            self.pair
                .exec_ok(
                    side,
                    "sh",
                    ["-c", &format!("[ ! -e {knob} ] || echo 1 > {knob}")],
                )
                .step("turning IPv6 off")?;
            ip(side, &["link", "set", ifname, "up"])?;
        }
        Ok((a, b))
    }

    /// Opens a second channel over `first`'s pool, sharing its UMEM
    /// (`XDP_SHARED_UMEM`), bound to `queue` of interface `ifname` of
    /// `side`; returns both. (`first` visits the namespace's thread: a
    /// channel is not `Sync`.)
    pub fn shared_socket(
        &self,
        side: Side,
        ifname: &str,
        first: Socket,
        queue: u32,
        tweak: impl FnOnce(&mut ChannelParams) + Send,
    ) -> Result<(Socket, Socket), Verdict> {
        let name = arena_name(side);
        let mut cp = first.ch.params().clone();
        cp.ifname = ifname.to_owned();
        cp.queue = queue;
        tweak(&mut cp);
        let (first, second) = self.pair.in_ns(side, move || {
            let open = || {
                let mut np = NexusParams::new(&name);
                np.rx_pool = Some(first.ch.pool().clone());
                let arena = Arena::create_nexus(&np)?;
                let ch = Channel::open_shared(&arena, &cp, &first.ch)?;
                Ok::<_, skmem::Error>(Socket { ch, arena })
            };
            let second = open();
            (first, second)
        });
        let second = second.step(&format!("opening a shared channel on {side} ({ifname})"))?;
        Ok((first, second))
    }
}
