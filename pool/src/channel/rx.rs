//! The receive side of a channel: the fill ring fed from the RX-free
//! slots (then the pool), the RX ring drained into the application, and
//! received frames given back.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use crate::error::{ChannelError, Error, Result};
use crate::pool::{Packet, PacketIndex, Tag};

use super::coalesce::{Moderator, Wait};
use super::wait::{run_fifo, AdaptiveState, Choice};
use super::Waiting;
use super::{foreign, Channel, Frame, XdpDesc, MAX_FRAGS};

impl Channel {
    /// Tops up the fill ring: first from the RX-free slots, then from the
    /// TX-allocation slots (completed frames nobody asked for), then from
    /// the pool, in batches. Returns how many frames were given to the
    /// kernel.
    pub fn refill(&mut self) -> Result<usize> {
        let mut total = 0;
        loop {
            // How many more frames the kernel may hold comes first: in a
            // steady loop it already holds all it may, and the fill ring's
            // consumer index — a line NAPI writes, from the other CPU in
            // the default layout — is then not read at all.
            let room = self.params.batch.min(self.rx_room());
            if room == 0 {
                break;
            }
            let want = (self.fill.free(room as u32) as usize).min(room);
            if want == 0 {
                break;
            }
            // Staged frames first — freed after RX, then recycled TX
            // completions — so a forwarding loop circulates frames between
            // rings and slots without touching the pool's caches.
            let mut n = 0;
            while n < want {
                let Some(p) = self.rxf.pop().or_else(|| self.txa.pop()) else {
                    break;
                };
                if self.states.transition(p, self.tag.staged, self.tag.fill) {
                    self.scratch_pkts[n] = p;
                    n += 1;
                }
            }
            if n < want {
                n += self
                    .worker
                    .alloc_as(&mut self.scratch_pkts[n..want], self.tag.fill);
            }
            if n == 0 {
                break;
            }
            for i in 0..n {
                let addr = self.addr_of(self.scratch_pkts[i]);
                let written = self.fill.write_at(i as u32, addr);
                debug_assert!(written, "free() said there was room");
            }
            self.publish_fill(n as u32);
            total += n;
            if n < want {
                break;
            }
        }
        if total > 0 {
            self.wake_fill_if_asked()?;
        }
        Ok(total)
    }

    /// Receives up to `max` frames onto `out` (refilling the fill ring
    /// first); returns how many. The frames are the application's until it
    /// gives them back ([`free_rx`](Self::free_rx)) or sends them
    /// ([`tx_burst`](Self::tx_burst), [`reflect`](Self::reflect)). `out`
    /// grows past its capacity only if `max` asks it to: keep one vector
    /// with room for a batch, and the receive path allocates nothing.
    ///
    /// ```no_run
    /// # use skmem::arena::{Arena, NexusParams};
    /// # use skmem::channel::{Channel, ChannelParams};
    /// # let arena = Arena::create_nexus(&NexusParams::new("rx-doc"))?;
    /// let mut ch = Channel::open(&arena, &ChannelParams::new("veth0", 0))?;
    /// let mut frames = Vec::with_capacity(64);
    /// ch.rx_burst(&mut frames, 64)?;
    /// for f in &frames {
    ///     let data = ch.data(f)?; // the bytes, in place in the UMEM
    ///     println!("{} bytes", data.len());
    /// }
    /// ch.free_rx(&mut frames)?; // every frame back to the fill path
    /// assert!(frames.is_empty());
    /// # Ok::<(), skmem::Error>(())
    /// ```
    pub fn rx_burst(&mut self, out: &mut Vec<Frame>, max: usize) -> Result<usize> {
        if self.params.multi_buffer && max < MAX_FRAGS {
            return Err(Error::Channel(ChannelError::InvalidParams {
                channel: self.arena.name().to_owned(),
                rule: "a multi-buffer rx_burst needs room for MAX_FRAGS frames",
            }));
        }
        self.refill()?;
        if !self.params.multi_buffer {
            return Ok(self.rx_frames(out, max));
        }
        let mut got = 0;
        let mut bytes = 0;
        while got < max {
            let want = (max - got).min(self.scratch_descs.len());
            let n = self.rx.pop_packets(&mut self.scratch_descs[..want]);
            if n == 0 {
                break;
            }
            self.took_from_rx(n as u32);
            for i in 0..n {
                if let Some(f) = self.receive(self.scratch_descs[i]) {
                    bytes += u64::from(f.len);
                    out.push(f);
                    got += 1;
                }
            }
        }
        self.counters.rx_packets.add(got as u64);
        self.counters.rx_bytes.add(bytes);
        Ok(got)
    }

    /// [`rx_burst`](Self::rx_burst) where every packet is one frame: the
    /// descriptors are read in place from the RX ring and released at once.
    fn rx_frames(&mut self, out: &mut Vec<Frame>, max: usize) -> usize {
        let n = self.rx.peek(max.min(u32::MAX as usize) as u32);
        let mut got = 0;
        let mut bytes = 0;
        for k in 0..n {
            let Some(d) = self.rx.read_at(k) else {
                break;
            };
            if let Some(f) = self.receive(d) {
                bytes += u64::from(f.len);
                out.push(f);
                got += 1;
            }
        }
        self.rx.release(n);
        self.took_from_rx(n);
        self.counters.rx_packets.add(got as u64);
        self.counters.rx_bytes.add(bytes);
        got
    }

    /// Receives up to `max` frames and shows each to `f` where it lies in
    /// the UMEM, then gives them all straight back to the fill ring: the
    /// whole receive path of a capture tool, a drop counter or a monitor,
    /// which look at frames and keep none. Returns how many frames `f` saw.
    ///
    /// A frame never leaves the channel, so nothing is copied and nothing
    /// needs freeing: each descriptor is read in place from the RX ring and
    /// its address written in place into the fill ring — what
    /// [`rx_burst`](Self::rx_burst) then [`free_rx`](Self::free_rx) do
    /// with the frames handed out and taken back in between. A descriptor
    /// naming a frame the kernel was not given, or data outside its
    /// buffer, is counted in `bad_descs` and not shown, as in `rx_burst`. In multi-buffer
    /// channels `f` sees each fragment, with [`Frame::more`] set on all
    /// but a packet's last.
    ///
    /// ```no_run
    /// # use skmem::arena::{Arena, NexusParams};
    /// # use skmem::channel::{Channel, ChannelParams};
    /// # let arena = Arena::create_nexus(&NexusParams::new("capture"))?;
    /// let mut ch = Channel::open(&arena, &ChannelParams::new("veth0", 0))?;
    /// // Count IPv4 frames (EtherType 0x0800); every frame goes straight back.
    /// let mut ipv4 = 0u64;
    /// loop {
    ///     let n = ch.inspect_rx(64, |_, data| {
    ///         if data.get(12..14) == Some(&[0x08, 0x00][..]) {
    ///             ipv4 += 1;
    ///         }
    ///     })?;
    ///     if n == 0 {
    ///         ch.poll(100)?;
    ///     }
    /// #   break;
    /// }
    /// # Ok::<(), skmem::Error>(())
    /// ```
    pub fn inspect_rx<F>(&mut self, max: usize, mut f: F) -> Result<usize>
    where
        F: FnMut(&Frame, &[u8]),
    {
        self.refill()?;
        // The RX ring first: a loop that finds it empty then reads only its
        // producer index, as the peers' loops do, and not the fill ring's
        // consumer index, which NAPI writes.
        let ready = self.rx.peek(max.min(self.scratch_pkts.len()) as u32);
        if ready == 0 {
            return Ok(0);
        }
        // Every frame taken goes back in the same call, so take no more
        // than the fill ring has room for (nor than `scratch_pkts` holds,
        // for the frames that could not go back, which cannot happen).
        let n = ready.min(self.fill.free(ready));
        // The loop reaches the channel's parts through locals (disjoint
        // borrows, the geometry and the buffer table copied), which the
        // compiler keeps in registers: it is a drop counter's whole
        // per-packet cost.
        let geo = self.geo;
        let (pool_id, fill_tag) = (self.pool_id, self.tag.fill);
        let bufs = self.buf_def.objects();
        let (rx, fill, states, strays) = (
            &self.rx,
            &mut self.fill,
            &self.states,
            &mut self.scratch_pkts,
        );
        let (mut shown, mut bytes, mut bad, mut back, mut stray) = (0u32, 0u64, 0u64, 0u32, 0);
        for k in 0..n {
            let Some(d) = rx.read_at(k) else {
                break;
            };
            let addr = geo.linear(d.addr);
            let Some(pkt) = geo
                .pkt_of(addr)
                .filter(|&p| states.transition(p, fill_tag, Tag::APP))
            else {
                // Not a frame the kernel held for us: not ours to show or give.
                bad += 1;
                continue;
            };
            let off = addr - geo.addr_of(pkt);
            // The frame is the application's while `f` looks at it: its
            // token lives here and is retired below.
            let frame = Frame::new(Packet::issue(pkt, pool_id), off as u32, d.len, d.options);
            let data = bufs.get(pkt.get()).and_then(|b| {
                // SAFETY: the packet just moved from the kernel to the
                // application (`transition`), so the kernel neither writes
                // nor reads its buffer until it is back on the fill ring,
                // after `f` returns; `f` gets only `&Frame`, so nothing
                // writes the bytes meanwhile.
                unsafe { b.slice(off as usize, d.len as usize) }
            });
            if let Ok(data) = data {
                f(&frame, data);
                shown += 1;
                bytes += u64::from(d.len);
            } else {
                // Data past its buffer: not shown, but the frame is ours.
                bad += 1;
            }
            let pkt = frame.retire();
            // Straight back: slot `back` is free (`back <= k < want`).
            if fill.write_at(back, geo.addr_of(pkt)) {
                states.set(pkt, fill_tag);
                back += 1;
            } else {
                strays[stray] = pkt;
                stray += 1;
            }
        }
        self.rx.release(n);
        self.took_from_rx(n);
        if back > 0 {
            self.publish_fill(back);
        }
        for i in 0..stray {
            let p = self.scratch_pkts[i];
            self.give_back(p);
        }
        self.counters.bad_descs.add(bad);
        self.counters.rx_packets.add(u64::from(shown));
        self.counters.rx_bytes.add(bytes);
        if back > 0 {
            self.wake_fill_if_asked()?;
        }
        Ok(shown as usize)
    }

    /// One descriptor from the RX ring: the frame it names, moved from the
    /// fill path to the application — or `None`, counted, when it lies:
    /// when it names a frame that is not where the ring says, or data that
    /// runs past the frame's buffer (that frame goes back to the fill
    /// path, so the lie loses nothing).
    #[inline(always)]
    fn receive(&mut self, d: XdpDesc) -> Option<Frame> {
        let addr = self.linear(d.addr);
        let fill = self.tag.fill;
        let pkt = self
            .pkt_of(addr)
            .filter(|&p| self.states.transition(p, fill, Tag::APP));
        let Some(pkt) = pkt else {
            self.counters.bad_descs.add(1);
            return None;
        };
        if !self.geo.fits(pkt, addr, d.len) {
            self.counters.bad_descs.add(1);
            self.give_back(pkt);
            return None;
        }
        let off = (addr - self.addr_of(pkt)) as u32;
        Some(Frame::new(
            Packet::issue(pkt, self.pool_id),
            off,
            d.len,
            d.options,
        ))
    }

    /// `n` descriptors were taken from the RX ring: the kernel holds that
    /// many frames fewer, and the fill ring is owed them.
    #[inline(always)]
    fn took_from_rx(&mut self, n: u32) {
        self.rx_held = self.rx_held.saturating_sub(n);
        self.rx_taken = self.rx_taken.saturating_add(n);
    }

    /// Moves packet `pkt` from tag `from` straight onto the fill ring, as
    /// its `k`-th unpublished slot (see [`publish_fill`](Self::publish_fill));
    /// false, and nothing changed, when `pkt` is not tagged `from` or the
    /// slot is not free.
    #[inline(always)]
    pub(super) fn fill_direct(&mut self, pkt: PacketIndex, from: Tag, k: u32) -> bool {
        if !self.states.is(pkt, from) || !self.fill.write_at(k, self.addr_of(pkt)) {
            return false;
        }
        self.states.set(pkt, self.tag.fill);
        true
    }

    /// Publishes the first `n` fill slots written in place: the kernel
    /// holds `n` more RX frames, and the fill ring is owed `n` fewer.
    #[inline(always)]
    pub(super) fn publish_fill(&mut self, n: u32) {
        self.fill.submit(n);
        self.rx_held += n;
        self.rx_taken = self.rx_taken.saturating_sub(n);
    }

    /// Makes the `recvfrom` the fill ring asks for (NEED_WAKEUP), if it does.
    pub(super) fn wake_fill_if_asked(&mut self) -> Result<()> {
        if self.params.need_wakeup && self.fill.needs_wakeup() {
            self.counters.wakeups.add(1);
            self.sock.kick_rx()?;
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (negative: no limit) for something to
    /// receive, refilling the fill ring first; true when something is.
    ///
    /// With [`ChannelParams::coalesce`](super::ChannelParams::coalesce) set
    /// and traffic fast enough, it sleeps instead for about as long as a
    /// batch takes to arrive (bounded by the timeout too), so the thread
    /// wakes once a batch rather than at every NAPI flush; otherwise it
    /// waits in `poll(2)`. The first sleep sets the calling thread's timer
    /// slack to 1 µs (`PR_SET_TIMERSLACK`), without which each sleep would
    /// overrun by up to 50 µs.
    pub fn poll(&mut self, timeout_ms: i32) -> Result<bool> {
        self.refill()?;
        match self.moderator {
            // Coalescing sleeps only with nothing waiting to be sent: in
            // copy mode the TX ring is drained by this thread's syscalls —
            // poll(2) among them — so a sleep would hold those frames back.
            Some(m) if self.tx.outstanding() == 0 => self.coalesced_wait(m, timeout_ms),
            _ => {
                self.counters.polls.add(1);
                self.sock.poll_rx(timeout_ms)
            }
        }
    }

    /// Waits for something to receive, as
    /// [`ChannelParams::waiting`](super::ChannelParams::waiting) says —
    /// call it when [`rx_burst`](Self::rx_burst) found nothing. By default
    /// it adapts ([`Waiting::Adaptive`]): it returns at once (a spin: no
    /// syscall, or a busy-poll if configured) while frames arrived within
    /// the spin window (from [`Adaptive::spin_us`](super::Adaptive::spin_us), widened while dense
    /// bursts come close together), sleeps in `poll(2)` up to
    /// `timeout_ms` (negative: no limit) once they stop or whenever the
    /// queue's NAPI thread shares this thread's CPU (coalescing there if
    /// [`ChannelParams::coalesce`](super::ChannelParams::coalesce) is
    /// set). True when something is there to receive.
    ///
    /// Call it from the thread that receives: the NAPI check compares
    /// the calling thread's CPU affinity with the NAPI thread's.
    pub fn wait(&mut self, timeout_ms: i32) -> Result<bool> {
        match self.params.waiting {
            Waiting::Spin => self.spin_once(),
            Waiting::Poll => self.poll(timeout_ms),
            Waiting::Adaptive(cfg) => {
                let now = Instant::now();
                let mut st = self
                    .adaptive
                    .take()
                    .unwrap_or_else(|| AdaptiveState::new(cfg, &self.params.ifname));
                let shares = st.napi.shares(now);
                let choice = st.decide(
                    now,
                    self.counters.rx_packets.get(),
                    self.params.batch,
                    shares,
                );
                if shares && !st.fifo_tried {
                    st.fifo_tried = true;
                    if let Some(p) = st.cfg.fifo {
                        match run_fifo(p) {
                            Ok(()) => tracing::info!(
                                channel = %self.params.ifname,
                                priority = p,
                                "the receiving thread shares its CPU with NAPI: now SCHED_FIFO"
                            ),
                            Err(e) => tracing::warn!(
                                channel = %self.params.ifname,
                                error = %e,
                                "SCHED_FIFO refused; waiting at the thread's own scheduling"
                            ),
                        }
                    }
                }
                self.adaptive = Some(st);
                match choice {
                    Choice::Spin => self.spin_once(),
                    // `poll(2)`, coalescing if the parameters ask for it.
                    Choice::Sleep => {
                        let readable = self.poll(timeout_ms)?;
                        if readable {
                            if let Some(st) = self.adaptive.as_mut() {
                                st.woke(Instant::now());
                            }
                        }
                        Ok(readable)
                    }
                }
            }
        }
    }

    /// The widest the adaptive wait's spin window has been, since the
    /// first [`wait`](Self::wait) (`None` before it, and when the channel
    /// does not wait adaptively): [`Adaptive::spin_us`](super::Adaptive::spin_us) unless dense
    /// bursts widened it (see [`Waiting::Adaptive`]).
    pub fn spin_window(&self) -> Option<Duration> {
        self.adaptive.as_ref().map(AdaptiveState::widest)
    }

    /// One turn of a spinning wait: refill (or busy-poll, if configured)
    /// and look at the RX ring.
    fn spin_once(&mut self) -> Result<bool> {
        if self.params.busy_poll.is_some() {
            self.busy_poll()?;
        } else {
            self.refill()?;
        }
        Ok(self.rx.pending() > 0)
    }

    /// [`poll`](Self::poll) with receive coalescing: sleep or poll as the
    /// moderator `m` says, then tell it what the wait brought.
    fn coalesced_wait(&mut self, mut m: Moderator, timeout_ms: i32) -> Result<bool> {
        if self.rx.pending() > 0 {
            return Ok(true);
        }
        let held = self.rx_held;
        let sleep = match m.next(Instant::now(), self.counters.rx_packets.get(), held) {
            Wait::Sleep(d) => match u64::try_from(timeout_ms) {
                Ok(ms) => d.min(Duration::from_millis(ms)),
                Err(_) => d,
            },
            Wait::Poll => Duration::ZERO,
        };
        let readable = if sleep.is_zero() {
            self.counters.polls.add(1);
            let readable = self.sock.poll_rx(timeout_ms);
            m.polled(Instant::now(), self.counters.rx_packets.get());
            readable
        } else {
            let slept = self.coalesced_sleep(sleep);
            let arrived = self.rx.pending();
            m.slept(slept, arrived, held);
            Ok(arrived > 0)
        };
        self.moderator = Some(m);
        readable
    }

    /// One sleep of receive coalescing; returns how long it lasted.
    fn coalesced_sleep(&mut self, d: Duration) -> Duration {
        if !self.timer_slack_set {
            self.timer_slack_set = true;
            if let Err(e) = rustix::thread::set_current_timer_slack(NonZeroU64::new(1000)) {
                tracing::debug!(error = %e, "PR_SET_TIMERSLACK refused; coalescing sleeps may overrun");
            }
        }
        self.counters.coalesced_sleeps.add(1);
        let t0 = Instant::now();
        std::thread::sleep(d);
        t0.elapsed()
    }

    /// Busy-polls: refills the fill ring, then makes one non-blocking
    /// `recvfrom`, in which the kernel runs the queue's NAPI instance in
    /// this thread for up to the busy-poll time, `budget` frames at a time
    /// ([`ChannelParams::busy_poll`](super::ChannelParams::busy_poll)). Call it when
    /// [`rx_burst`](Self::rx_burst) found nothing, as xdpsock's busy-poll
    /// mode does. Without busy polling configured it is a plain RX wakeup.
    ///
    /// Setting the socket options alone busy-polls nothing: the kernel
    /// polls only inside a syscall on the socket.
    pub fn busy_poll(&mut self) -> Result<()> {
        self.refill()?;
        self.counters.busy_polls.add(1);
        self.sock.kick_rx()
    }

    /// Gives received frames back, emptying `frames`: straight onto the
    /// fill ring while it has room (one state change and no slot write per
    /// frame — rxdrop's whole round trip is then two state changes), the
    /// rest onto the RX-free slots (from which [`refill`](Self::refill)
    /// feeds the fill ring later), the rest to the pool. Frames of another
    /// pool stay in `frames`, counted, and the first refusal is returned.
    pub fn free_rx(&mut self, frames: &mut Vec<Frame>) -> Result<()> {
        let mut refused = None;
        let mut rest = 0;
        let mut to_fill = 0;
        let mut room = (self.fill.free(frames.len() as u32) as usize)
            .min(self.rx_room())
            .min(frames.len());
        frames.retain(|f| {
            if f.pool_id() != self.pool_id {
                refused.get_or_insert_with(|| foreign(&self.pool, f));
                return true;
            }
            let p = f.packet();
            if room > 0 && self.fill_direct(p, Tag::APP, to_fill) {
                to_fill += 1;
                room -= 1;
                return false;
            }
            if !self.states.transition(p, Tag::APP, self.tag.staged) {
                // A token of this pool whose packet is not the
                // application's cannot exist; refuse it rather than move it.
                refused.get_or_insert_with(|| foreign(&self.pool, f));
                return false;
            }
            if !self.rxf.push(p, 0) {
                self.scratch_pkts[rest] = p;
                rest += 1;
                if rest == self.scratch_pkts.len() {
                    self.worker
                        .free_from(&self.scratch_pkts[..rest], self.tag.staged);
                    rest = 0;
                }
            }
            false
        });
        if to_fill > 0 {
            self.publish_fill(to_fill);
            self.wake_fill_if_asked()?;
        }
        if rest > 0 {
            self.worker
                .free_from(&self.scratch_pkts[..rest], self.tag.staged);
        }
        refused.map_or(Ok(()), Err)
    }
}
