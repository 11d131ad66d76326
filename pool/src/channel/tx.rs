//! The send side of a channel: frames for the application to fill, the
//! TX ring (and l2fwd's `reflect` straight from RX), and the completion
//! ring drained back to the fill ring, the TX-allocation slots or the
//! pool.

use crate::error::{ChannelError, Error, RegionError, Result};
use crate::pool::{Packet, PacketIndex, Tag};
use crate::region::RegionId;

use super::{
    foreign, Channel, Frame, TxMetadata, TxRefusal, XdpDesc, MAX_FRAGS, TX_METADATA_SIZE,
    XDP_PKT_CONTD, XDP_TX_METADATA,
};

/// How many frames ahead [`Channel::reflect`] prefetches headers: enough
/// misses in flight to hide their latency, fewer than a core's line-fill
/// buffers (10–16 on current x86).
const PREFETCH_AHEAD: usize = 8;

impl Channel {
    /// Frames for the application to fill and send, up to `n` onto `out`:
    /// from the TX-allocation slots (recycled completions) first, then the
    /// pool. Each starts empty at the start of its buffer; write it with
    /// [`set_data`](Self::set_data) or [`buffer_mut`](Self::buffer_mut).
    ///
    /// ```no_run
    /// # use skmem::arena::{Arena, NexusParams};
    /// # use skmem::channel::{Channel, ChannelParams};
    /// # let arena = Arena::create_nexus(&NexusParams::new("tx-doc"))?;
    /// let mut ch = Channel::open(&arena, &ChannelParams::new("veth0", 0))?;
    /// let mut frames = Vec::with_capacity(64);
    /// ch.alloc_tx(&mut frames, 64);
    /// for f in &mut frames {
    ///     ch.set_data(f, &[0xff; 60])?; // 60 bytes at the frame's offset
    /// }
    /// ch.tx_burst(&mut frames)?; // what the TX ring had no room for stays
    /// ch.complete();
    /// # Ok::<(), skmem::Error>(())
    /// ```
    pub fn alloc_tx(&mut self, out: &mut Vec<Frame>, n: usize) -> usize {
        let mut got = 0;
        while got < n {
            let Some(p) = self.txa.pop() else { break };
            if self.states.transition(p, self.tag.staged, Tag::APP) {
                out.push(Frame::new(Packet::issue(p, self.pool_id), 0, 0, 0));
                got += 1;
            }
        }
        while got < n {
            let want = (n - got).min(self.scratch_pkts.len());
            let k = self
                .worker
                .alloc_as(&mut self.scratch_pkts[..want], Tag::APP);
            let pool_id = self.pool_id;
            out.extend(
                self.scratch_pkts[..k]
                    .iter()
                    .map(|&p| Frame::new(Packet::issue(p, pool_id), 0, 0, 0)),
            );
            got += k;
            if k < want {
                break;
            }
        }
        got
    }

    /// Queues frames for TX from the front of `frames`, whole packets at a
    /// time, and takes them out of it; returns how many frames were taken.
    /// What the ring has no room for stays in `frames`, in order.
    ///
    /// Of the frames taken, a packet that may not be sent is refused
    /// before the ring, counted in `tx_refused` (by reason:
    /// [`tx_refusals`](Self::tx_refusals)), and goes back to the fill path:
    /// empty data, data outside its buffer, options other than
    /// [`XDP_PKT_CONTD`], a chain the channel cannot send. Packets are
    /// delimited as the kernel delimits descriptors: a packet ends at its
    /// first frame without `more`, or at its first bad frame, or at its
    /// [`MAX_FRAGS`]-th frame if that one still says `more` — refused
    /// there, the next frame starting a new packet. Frames of another pool
    /// are refused with an error and stay in `frames`.
    pub fn tx_burst(&mut self, frames: &mut Vec<Frame>) -> Result<usize> {
        self.tx_burst_options(frames, 0)
    }

    /// [`tx_burst`](Self::tx_burst) for frames whose data is preceded by
    /// TX metadata ([`write_tx_metadata`](Self::write_tx_metadata)): the
    /// channel must have `tx_metadata_len`, and a frame whose offset
    /// leaves no room for the metadata in its buffer is refused, counted
    /// and given back to the fill path.
    pub fn tx_burst_with_metadata(&mut self, frames: &mut Vec<Frame>) -> Result<usize> {
        if self.params.tx_metadata_len == 0 {
            return Err(Error::Channel(ChannelError::InvalidParams {
                channel: self.arena.name().to_owned(),
                rule: "TX metadata needs a channel opened with tx_metadata_len",
            }));
        }
        self.tx_burst_options(frames, XDP_TX_METADATA)
    }

    /// Writes `meta` in front of `frame`'s data, where the kernel reads it
    /// for a frame sent with
    /// [`tx_burst_with_metadata`](Self::tx_burst_with_metadata).
    pub fn write_tx_metadata(&self, frame: &mut Frame, meta: &TxMetadata) -> Result<()> {
        let len = self.params.tx_metadata_len;
        if len < TX_METADATA_SIZE {
            return Err(Error::Channel(ChannelError::InvalidParams {
                channel: self.arena.name().to_owned(),
                rule: "TX metadata needs tx_metadata_len of at least TX_METADATA_SIZE",
            }));
        }
        let at = frame
            .offset
            .checked_sub(len)
            .ok_or(Error::Region(RegionError::Misuse {
                region: RegionId::BufDef,
                rule: "TX metadata must fit in the buffer in front of the data",
            }))? as usize;
        let bytes = meta.to_bytes();
        self.buffer_mut(frame)?[at..at + bytes.len()].copy_from_slice(&bytes);
        Ok(())
    }

    /// Queues whole packets from the front of `frames` with descriptor
    /// `options`: see [`tx_burst`](Self::tx_burst).
    fn tx_burst_options(&mut self, frames: &mut Vec<Frame>, options: u32) -> Result<usize> {
        let (done, refused) = self.queue(frames, options);
        self.take_done(frames, done, refused.is_some());
        if done > 0 {
            self.kick_tx_if_asked()?;
        }
        refused.map_or(Ok(done), Err)
    }

    /// Writes whole packets from the front of `frames` into the TX ring
    /// and publishes them; returns how many frames it went through (queued
    /// or refused), and the first frame of another pool met, if any. The
    /// frames stay in `frames` (see [`take_done`](Self::take_done)).
    fn queue(&mut self, frames: &[Frame], options: u32) -> (usize, Option<Error>) {
        // Metadata sits in the buffer, in front of the data.
        let min_offset = if options & XDP_TX_METADATA != 0 {
            self.params.tx_metadata_len as u64
        } else {
            0
        };
        let room = (self.tx.free(frames.len() as u32) as usize).min(frames.len());
        let mut refused = None;
        let mut n = 0;
        let mut i = 0;
        while i < frames.len() {
            // The packet starting at `i`, delimited as the kernel delimits
            // one: frames up to one without `more` — or up to the first
            // frame that may not be sent, or to the MAX_FRAGS-th frame if
            // it still says `more`, which ends the packet there, refused
            // (the next frame starts a new packet, as in the kernel's TX
            // path).
            let (len, refusal) = self.packet_at(&frames[i..], min_offset);
            let chain = &frames[i..i + len];
            if refusal.is_none() && n as usize + len > room {
                // A whole packet goes into the ring or none of it: this one
                // waits for room (it stays the caller's).
                break;
            }
            if let Some(f) = chain.iter().find(|f| f.pool_id() != self.pool_id) {
                refused.get_or_insert_with(|| foreign(&self.pool, f));
            }
            if let Some(why) = refusal {
                // Refused whole — a chain with a bad frame must not go out
                // with a hole — and counted, each frame with the packet's
                // reason; the frames this pool's go back to the fill path
                // (the others stay the caller's).
                for f in chain {
                    self.counters.refuse(why);
                    if f.pool_id() == self.pool_id {
                        self.give_back(f.packet());
                    }
                }
                i += len;
                continue;
            }
            for f in chain {
                let opts = options | (f.options & XDP_PKT_CONTD);
                let queued = self.queue_tx_at(n, f.packet(), f.offset as u64, f.len, opts);
                debug_assert!(queued, "free() said there was room");
                n += 1;
            }
            i += len;
        }
        self.publish_tx(n);
        (i, refused)
    }

    /// Removes the first `done` frames from `frames` — the ones
    /// [`queue`](Self::queue) went through, now the kernel's or back on the
    /// fill path — keeping, when `foreign`, those of another pool.
    fn take_done(&self, frames: &mut Vec<Frame>, done: usize, foreign: bool) {
        if !foreign {
            frames.drain(..done);
            return;
        }
        let mut k = 0;
        frames.retain(|f| {
            k += 1;
            k > done || f.pool_id() != self.pool_id
        });
    }

    /// Writes packet `pkt`'s frame (`len` bytes at `offset` of its buffer)
    /// into the `k`-th free TX slot, unpublished, and marks the packet as
    /// in this channel's TX path; false (nothing done) when the slot is not
    /// free.
    #[inline(always)]
    fn queue_tx_at(
        &mut self,
        k: u32,
        pkt: PacketIndex,
        offset: u64,
        len: u32,
        options: u32,
    ) -> bool {
        let desc = XdpDesc {
            addr: self.addr_of(pkt) + offset,
            len,
            options,
        };
        if !self.tx.write_at(k, desc) {
            return false;
        }
        self.states.set(pkt, self.tag.tx);
        self.counters.tx_bytes.add(u64::from(len));
        true
    }

    /// Publishes the first `n` TX slots written with
    /// [`queue_tx_at`](Self::queue_tx_at).
    #[inline(always)]
    fn publish_tx(&mut self, n: u32) {
        self.tx.submit(n);
        self.counters.tx_packets.add(u64::from(n));
    }

    /// Makes the `sendto` TX needs — always without need_wakeup (copy mode
    /// transmits only inside a syscall), else when the ring asks.
    fn kick_tx_if_asked(&mut self) -> Result<()> {
        if !self.params.need_wakeup || self.tx.needs_wakeup() {
            self.counters.wakeups.add(1);
            self.sock.kick_tx()?;
        }
        Ok(())
    }

    /// May frame `f`'s data, `len` bytes at `offset` of its buffer, be
    /// sent? It must be a frame of this pool the application holds, and the
    /// data non-empty, inside the buffer and behind `min_offset` (the TX
    /// metadata).
    #[inline(always)]
    fn sendable(&self, f: &Frame, offset: u64, min_offset: u64) -> bool {
        offset
            .checked_add(u64::from(f.len))
            .is_some_and(|end| end <= self.geo.buf_size())
            && f.len > 0
            && offset >= min_offset
            && f.pool_id() == self.pool_id
            && self.states.is(f.packet(), Tag::APP)
    }

    /// The packet at the front of `frames`: how many frames it spans, and
    /// why it is refused, if it is. It ends at the first frame without
    /// `more`; a frame that may not be sent ends it too (refused for that
    /// frame's reason), as does the [`MAX_FRAGS`]-th frame when it still
    /// says `more` ([`TxRefusal::Chain`]); so does the last of `frames`
    /// (an unended chain, refused), and, without multi-buffer, every frame
    /// (one saying `more` is refused).
    #[inline(always)]
    fn packet_at(&self, frames: &[Frame], min_offset: u64) -> (usize, Option<TxRefusal>) {
        for (k, f) in frames.iter().enumerate() {
            if !self.sendable(f, f.offset as u64, min_offset) || f.options & !XDP_PKT_CONTD != 0 {
                let why = self
                    .refusal(f, f.offset as u64, min_offset)
                    .unwrap_or(TxRefusal::Options);
                return (k + 1, Some(why));
            }
            if !f.more() {
                return (k + 1, None);
            }
            if !self.params.multi_buffer || k + 1 == MAX_FRAGS || k + 1 == frames.len() {
                return (k + 1, Some(TxRefusal::Chain));
            }
        }
        (frames.len(), Some(TxRefusal::Chain))
    }

    /// Why frame `f` may not be sent (see [`sendable`](Self::sendable)),
    /// or `None` if it may: off the per-packet path, for the counters.
    #[cold]
    fn refusal(&self, f: &Frame, offset: u64, min_offset: u64) -> Option<TxRefusal> {
        if f.pool_id() != self.pool_id {
            Some(TxRefusal::Foreign)
        } else if !self.states.is(f.packet(), Tag::APP) {
            Some(TxRefusal::NotHeld)
        } else if f.len == 0 {
            Some(TxRefusal::Empty)
        } else if offset
            .checked_add(u64::from(f.len))
            .is_none_or(|end| end > self.geo.buf_size())
        {
            Some(TxRefusal::Overrun)
        } else if offset < min_offset {
            Some(TxRefusal::MetadataRoom)
        } else {
            None
        }
    }

    /// Returns an application-held packet to the fill path (RX-free slots,
    /// else the pool).
    pub(super) fn give_back(&mut self, pkt: PacketIndex) {
        if self.states.transition(pkt, Tag::APP, self.tag.staged) && !self.rxf.push(pkt, 0) {
            self.worker
                .free_from(std::slice::from_ref(&pkt), self.tag.staged);
        }
    }

    /// l2fwd's step: sends received frames back out of this socket with
    /// their Ethernet destination and source swapped, without copying
    /// them, emptying `frames`. Frames the TX ring has no room for go back
    /// to the fill path; frames of another pool stay in `frames`, with an
    /// error. Returns how many frames were queued.
    pub fn reflect(&mut self, frames: &mut Vec<Frame>) -> Result<usize> {
        if !self.params.multi_buffer {
            return self.reflect_frames(frames);
        }
        // The kernel's copy left each header in another CPU's cache or in
        // memory: headers are asked for PREFETCH_AHEAD frames before they
        // are swapped, so the misses overlap rather than queue one behind
        // the other (all of a batch at once would overflow the CPU's
        // miss buffers and stall).
        for f in frames.iter().take(PREFETCH_AHEAD) {
            self.prefetch_header(f);
        }
        // Does frames[i] start a packet? (Multi-buffer: a packet is a run
        // of frames with `more`, ended by one without.)
        let mut first = true;
        for i in 0..frames.len() {
            if let Some(ahead) = frames.get(i + PREFETCH_AHEAD) {
                self.prefetch_header(ahead);
            }
            let f = &mut frames[i];
            let more = f.more();
            if first {
                self.swap_macs(f);
            }
            first = !more;
        }
        let tx_before = self.counters.tx_packets.get();
        let (done, refused) = self.queue(frames, 0);
        self.take_done(frames, done, refused.is_some());
        // What the ring had no room for goes back to the fill path; frames
        // of another pool stay the caller's.
        let pool_id = self.pool_id;
        for f in frames.iter() {
            if f.pool_id() == pool_id {
                self.give_back(f.packet());
            }
        }
        frames.retain(|f| f.pool_id() != pool_id);
        if done > 0 {
            self.kick_tx_if_asked()?;
        }
        let queued = (self.counters.tx_packets.get() - tx_before) as usize;
        refused.map_or(Ok(queued), Err)
    }

    /// [`reflect`](Self::reflect) where every packet is one frame: each is
    /// checked, swapped and written to the TX ring in one pass — what
    /// `reflect` then `tx_burst` would do, without checking each twice.
    fn reflect_frames(&mut self, frames: &mut Vec<Frame>) -> Result<usize> {
        for f in frames.iter().take(PREFETCH_AHEAD) {
            self.prefetch_header(f);
        }
        // Written in place into the TX ring, published once.
        let room = self.tx.free(frames.len() as u32);
        let mut n = 0;
        let mut refused = None;
        for i in 0..frames.len() {
            if let Some(ahead) = frames.get(i + PREFETCH_AHEAD) {
                self.prefetch_header(ahead);
            }
            let f = &mut frames[i];
            if f.pool_id() != self.pool_id {
                self.counters.refuse(TxRefusal::Foreign);
                refused.get_or_insert_with(|| foreign(&self.pool, f));
                continue;
            }
            let p = f.packet();
            if n == room {
                // The TX ring is full: back to the fill path.
                self.give_back(p);
                continue;
            }
            if f.more() || f.options != 0 || !self.sendable(f, f.offset as u64, 0) {
                // A chain on a single-buffer channel, or a frame the
                // application does not hold: refused and counted (as
                // tx_burst does), held ones back to the fill path.
                let why = if f.more() {
                    TxRefusal::Chain
                } else {
                    self.refusal(f, f.offset as u64, 0)
                        .unwrap_or(TxRefusal::Options)
                };
                self.counters.refuse(why);
                self.give_back(p);
                continue;
            }
            self.swap_macs(f);
            let queued = self.queue_tx_at(n, p, f.offset as u64, f.len, 0);
            debug_assert!(queued, "free() said there was room");
            n += 1;
        }
        self.publish_tx(n);
        if refused.is_some() {
            let pool_id = self.pool_id;
            frames.retain(|f| f.pool_id() != pool_id);
        } else {
            frames.clear();
        }
        if n > 0 {
            self.kick_tx_if_asked()?;
        }
        refused.map_or(Ok(n as usize), Err)
    }

    /// Hints the CPU to fetch the first bytes of frame `f`.
    #[inline(always)]
    fn prefetch_header(&self, f: &Frame) {
        if let Ok(b) = self.buf_def.obj(f.packet().get()) {
            crate::sys::prefetch(b.addr(f.offset as usize));
        }
    }

    /// Swaps the Ethernet destination and source of frame `f`, if it is
    /// one of this pool's the application holds and has a header.
    fn swap_macs(&self, f: &mut Frame) {
        if f.len < 12 {
            return;
        }
        if let Ok(d) = self.data_mut(f) {
            let (dst, src) = d[..12].split_at_mut(6);
            dst.swap_with_slice(src);
        }
    }

    /// Drains the completion ring. Sent frames go straight back onto the
    /// fill ring in place of frames RX took (a forwarding loop's frames
    /// then circulate between rings without touching a slot — xdpsock's
    /// `complete_tx_l2fwd`), then to the TX-allocation slots (for
    /// [`alloc_tx`](Self::alloc_tx)), then the RX-free slots (for the fill
    /// ring later), the rest to the pool.
    /// Returns how many completed. An entry naming no frame, or a frame
    /// that was not sent, is counted in `bad_descs`, not here.
    pub fn complete(&mut self) -> usize {
        let mut total = 0;
        let bad_before = self.counters.bad_descs.get();
        loop {
            // Read in place; at most a batch, the room the slot path below
            // has in `scratch_pkts`.
            let n = self.comp.peek(self.scratch_pkts.len() as u32);
            if n == 0 {
                break;
            }
            let mut room = (self.fill.free(n) as usize)
                .min(self.rx_room())
                .min(self.rx_taken as usize);
            let mut to_fill = 0;
            let mut rest = 0;
            for k in 0..n {
                let Some(p) = self
                    .comp
                    .read_at(k)
                    .and_then(|a| self.pkt_of(self.linear(a)))
                else {
                    self.counters.bad_descs.add(1);
                    continue;
                };
                if room > 0 && self.fill_direct(p, self.tag.tx, to_fill) {
                    to_fill += 1;
                    room -= 1;
                    continue;
                }
                if !self.states.transition(p, self.tag.tx, self.tag.staged) {
                    self.counters.bad_descs.add(1);
                    continue;
                }
                if !self.txa.push(p, 0) && !self.rxf.push(p, 0) {
                    self.scratch_pkts[rest] = p;
                    rest += 1;
                }
            }
            self.comp.release(n);
            if to_fill > 0 {
                self.publish_fill(to_fill);
                if let Err(e) = self.wake_fill_if_asked() {
                    tracing::warn!(error = %e, "RX wakeup failed");
                }
            }
            if rest > 0 {
                self.worker
                    .free_from(&self.scratch_pkts[..rest], self.tag.staged);
            }
            total += n as usize;
        }
        // Forged entries are not completions.
        total -= (self.counters.bad_descs.get() - bad_before) as usize;
        self.counters.tx_completed.add(total as u64);
        // Copy mode transmits only inside a syscall: frames still in the TX
        // ring need another kick, or they would wait for the next burst.
        if self.tx.outstanding() > 0 {
            if let Err(e) = self.kick_tx_if_asked() {
                tracing::warn!(error = %e, "TX kick failed");
            }
        }
        total
    }

    /// Waits up to `timeout_ms` until the TX ring has room (in copy mode
    /// the wait itself transmits what the ring holds); true when it has.
    pub fn poll_tx(&mut self, timeout_ms: i32) -> Result<bool> {
        self.sock.poll_tx(timeout_ms)
    }

    /// Kicks the kernel to transmit (when TX made no progress, say).
    pub fn kick_tx(&mut self) -> Result<()> {
        self.counters.wakeups.add(1);
        self.sock.kick_tx()
    }
}
