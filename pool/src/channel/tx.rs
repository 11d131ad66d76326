//! The send side of a channel: frames for the application to fill, the
//! TX ring (and l2fwd's `reflect` straight from RX), and the completion
//! ring drained back to the fill ring, the TX-allocation slots or the
//! pool.

use crate::error::{Error, Result};
use crate::pool::{PacketIndex, PacketState};
use crate::region::RegionId;

use super::{
    Channel, RxFrame, TxFrame, TxMetadata, XdpDesc, MAX_FRAGS, TX_METADATA_SIZE, XDP_PKT_CONTD,
    XDP_TX_METADATA,
};

/// How many frames ahead [`Channel::reflect`] prefetches headers: enough
/// misses in flight to hide their latency, fewer than a core's line-fill
/// buffers (10–16 on current x86).
const PREFETCH_AHEAD: usize = 8;

impl Channel {
    /// Packets for the application to fill and send: from the TX-allocation
    /// slots (recycled completions) first, then the pool.
    pub fn alloc_tx(&mut self, out: &mut [PacketIndex]) -> usize {
        let mut n = 0;
        while n < out.len() {
            let Some(p) = self.txa.pop() else { break };
            if self
                .states
                .transition(p, PacketState::Staged, PacketState::Allocated)
            {
                out[n] = p;
                n += 1;
            }
        }
        n + self
            .worker
            .alloc_batch_as(&mut out[n..], PacketState::Allocated)
    }

    /// Queues frames for TX; returns how many were taken (the rest, if the
    /// ring is full, stay the application's). Of those taken, a frame whose
    /// data overruns its buffer is refused, counted and given back to the
    /// fill path; a frame the application does not hold is refused and
    /// counted (it is not ours to move).
    pub fn tx_burst(&mut self, frames: &[TxFrame]) -> Result<usize> {
        self.tx_burst_options(frames, 0)
    }

    /// [`tx_burst`](Self::tx_burst) for frames whose data is preceded by
    /// TX metadata ([`write_tx_metadata`](Self::write_tx_metadata)): the
    /// channel must have `tx_metadata_len`, and a frame whose offset
    /// leaves no room for the metadata in its buffer is refused, counted
    /// and given back to the fill path.
    pub fn tx_burst_with_metadata(&mut self, frames: &[TxFrame]) -> Result<usize> {
        if self.params.tx_metadata_len == 0 {
            return Err(Error::InvalidArenaParams {
                arena: self.arena.name().to_owned(),
                rule: "TX metadata needs a channel opened with tx_metadata_len",
            });
        }
        self.tx_burst_options(frames, XDP_TX_METADATA)
    }

    /// Writes `meta` in front of the data at `offset` in packet `pkt`'s
    /// buffer, where the kernel reads it for a frame sent with
    /// [`tx_burst_with_metadata`](Self::tx_burst_with_metadata). The
    /// packet must be the application's.
    pub fn write_tx_metadata(
        &mut self,
        pkt: PacketIndex,
        offset: u32,
        meta: &TxMetadata,
    ) -> Result<()> {
        let len = self.params.tx_metadata_len;
        if len < TX_METADATA_SIZE {
            return Err(Error::InvalidArenaParams {
                arena: self.arena.name().to_owned(),
                rule: "TX metadata needs tx_metadata_len of at least TX_METADATA_SIZE",
            });
        }
        if self.pool.state(pkt)? != PacketState::Allocated {
            return Err(Error::NotAllocated {
                cache: self.pool.metadata_cache().name().to_owned(),
                index: pkt,
            });
        }
        if offset < len {
            return Err(Error::RegionMisuse {
                region: RegionId::BufDef,
                rule: "TX metadata must fit in the buffer in front of the data",
            });
        }
        self.pool
            .write_buffer(pkt, (offset - len) as usize, &meta.to_bytes())
    }

    fn tx_burst_options(&mut self, frames: &[TxFrame], options: u32) -> Result<usize> {
        // Metadata sits in the buffer, in front of the data.
        let min_offset = if options & XDP_TX_METADATA != 0 {
            self.params.tx_metadata_len as u64
        } else {
            0
        };
        // Written in place into the TX ring, published once.
        let room = (self.tx.free(frames.len() as u32) as usize).min(frames.len());
        let mut n = 0;
        let mut i = 0;
        while i < room {
            // The packet starting at `i`: one frame, or a chain of frames
            // with `more` set ended by one without.
            let len = frames[i..]
                .iter()
                .position(|f| !f.more)
                .map_or(frames.len() - i, |p| p + 1);
            let ended = !frames[i + len - 1].more;
            let well_formed = ended && (len == 1 || self.params.multi_buffer) && len <= MAX_FRAGS;
            if well_formed && i + len > room {
                // A whole packet goes into the ring or none of it: this one
                // waits for room (it stays the caller's).
                break;
            }
            let valid = well_formed
                && frames[i..i + len]
                    .iter()
                    .all(|f| self.sendable(f.pkt, f.offset as u64, f.len, min_offset));
            if !valid {
                // Refused whole — a chain with a bad frame must not go out
                // with a hole — and counted; the caller counts the frames as
                // taken, so those it held go back to the fill path rather
                // than strand (the others are not ours).
                for f in &frames[i..i + len] {
                    self.counters.tx_refused += 1;
                    self.give_back(f.pkt);
                }
                i += len;
                continue;
            }
            for f in &frames[i..i + len] {
                let more = if f.more { XDP_PKT_CONTD } else { 0 };
                let queued = self.queue_tx_at(n, f.pkt, f.offset as u64, f.len, options | more);
                debug_assert!(queued, "free() said there was room");
                n += 1;
            }
            i += len;
        }
        self.publish_tx(n);
        let done = i;
        if done > 0 {
            self.kick_tx_if_asked()?;
        }
        Ok(done)
    }

    /// Writes packet `pkt`'s frame (`len` bytes at `offset` of its buffer)
    /// into the `k`-th free TX slot, unpublished, and marks the packet as
    /// the kernel's; false (nothing done) when the slot is not free.
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
        if !self.tx.write_desc_at(k, desc) {
            return false;
        }
        self.states.set(pkt, PacketState::Tx);
        self.counters.tx_bytes += u64::from(len);
        true
    }

    /// Publishes the first `n` TX slots written with
    /// [`queue_tx_at`](Self::queue_tx_at).
    #[inline(always)]
    fn publish_tx(&mut self, n: u32) {
        self.tx.submit(n);
        self.counters.tx_packets += u64::from(n);
    }

    /// Makes the `sendto` TX needs — always without need_wakeup (copy mode
    /// transmits only inside a syscall), else when the ring asks.
    fn kick_tx_if_asked(&mut self) -> Result<()> {
        if !self.params.need_wakeup || self.tx.needs_wakeup() {
            self.counters.wakeups += 1;
            self.sock.kick_tx()?;
        }
        Ok(())
    }

    /// May the application send `len` bytes at `offset` of packet `pkt`'s
    /// buffer? It must hold the packet, and the data must be non-empty,
    /// inside the buffer and behind `min_offset` (the TX metadata).
    #[inline(always)]
    fn sendable(&self, pkt: PacketIndex, offset: u64, len: u32, min_offset: u64) -> bool {
        offset
            .checked_add(u64::from(len))
            .is_some_and(|end| end <= self.geo.buf_size())
            && len > 0
            && offset >= min_offset
            && self.states.is(pkt, PacketState::Allocated)
    }

    /// Returns an application-held frame to the fill path (RX-free slots,
    /// else the pool).
    pub(super) fn give_back(&mut self, pkt: PacketIndex) {
        if self
            .states
            .transition(pkt, PacketState::Allocated, PacketState::Staged)
            && !self.rxf.push(pkt, 0)
        {
            self.worker
                .free_batch_from(std::slice::from_ref(&pkt), PacketState::Staged);
        }
    }

    /// l2fwd's step: sends received frames back out of this socket with
    /// their Ethernet destination and source swapped, without copying
    /// them. Frames the TX ring has no room for go back to the fill path.
    /// Returns how many were queued.
    pub fn reflect(&mut self, frames: &[RxFrame]) -> Result<usize> {
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
        let mut queued = 0;
        let mut i = 0;
        // Does frames[i] start a packet? (Multi-buffer: a packet is a run
        // of frames with `more`, ended by one without.)
        let mut first = true;
        while i < frames.len() {
            let mut tx = std::mem::take(&mut self.scratch_tx);
            let mut n = 0;
            // A batch at a time, never cutting a packet (the scratch has
            // room for a batch plus a whole packet).
            while i < frames.len() && (n < self.params.batch || !first) && n < tx.len() {
                if let Some(ahead) = frames.get(i + PREFETCH_AHEAD) {
                    self.prefetch_header(ahead);
                }
                let f = &frames[i];
                let off = f.addr.wrapping_sub(self.pool.buf_addr_of(f.pkt));
                if first && f.len >= 12 {
                    self.swap_macs(f.pkt, off, f.len);
                }
                // An offset that does not fit is refused by tx_burst, with
                // the rest of its packet.
                tx[n] = TxFrame {
                    pkt: f.pkt,
                    offset: u32::try_from(off).unwrap_or(u32::MAX),
                    len: f.len,
                    more: f.more(),
                };
                first = !f.more();
                n += 1;
                i += 1;
            }
            let sent = self.tx_burst(&tx[..n]);
            let q = *sent.as_ref().unwrap_or(&0);
            for t in &tx[q..n] {
                self.give_back(t.pkt);
            }
            self.scratch_tx = tx;
            queued += sent?;
            // A packet longer than MAX_FRAGS was cut (and refused whole by
            // tx_burst): its remaining frames go back too.
            while !first && i < frames.len() {
                self.counters.tx_refused += 1;
                self.give_back(frames[i].pkt);
                first = !frames[i].more();
                i += 1;
            }
        }
        Ok(queued)
    }

    /// [`reflect`](Self::reflect) where every packet is one frame: each is
    /// checked, swapped and written to the TX ring in one pass — what
    /// `reflect` then `tx_burst` would do, without building the frames in
    /// between or checking each twice.
    fn reflect_frames(&mut self, frames: &[RxFrame]) -> Result<usize> {
        for f in frames.iter().take(PREFETCH_AHEAD) {
            self.prefetch_header(f);
        }
        // Written in place into the TX ring, published once.
        let room = (self.tx.free(frames.len() as u32) as usize).min(frames.len());
        let mut n = 0;
        for i in 0..room {
            if let Some(ahead) = frames.get(i + PREFETCH_AHEAD) {
                self.prefetch_header(ahead);
            }
            let f = &frames[i];
            let off = f.addr.wrapping_sub(self.pool.buf_addr_of(f.pkt));
            if f.more() || !self.sendable(f.pkt, off, f.len, 0) {
                // A chain on a single-buffer channel, or a frame the
                // application does not hold: refused and counted (as
                // tx_burst does), held ones back to the fill path.
                self.counters.tx_refused += 1;
                self.give_back(f.pkt);
                continue;
            }
            self.swap_macs(f.pkt, off, f.len);
            let queued = self.queue_tx_at(n, f.pkt, off, f.len, 0);
            debug_assert!(queued, "free() said there was room");
            n += 1;
        }
        self.publish_tx(n);
        let done = room;
        // The TX ring is full: the rest go back to the fill path.
        for f in &frames[done..] {
            self.give_back(f.pkt);
        }
        if done > 0 {
            self.kick_tx_if_asked()?;
        }
        Ok(done)
    }

    /// Hints the CPU to fetch the first bytes of received frame `f`.
    #[inline(always)]
    fn prefetch_header(&self, f: &RxFrame) {
        let off = f.addr.wrapping_sub(self.pool.buf_addr_of(f.pkt));
        if let Ok((base, _)) = self.pool.buffer_ptr(f.pkt) {
            crate::sys::prefetch(base.wrapping_add(off as usize));
        }
    }

    /// Swaps the Ethernet destination and source of the frame at `off` in
    /// packet `pkt`'s buffer, if the application holds it and the header
    /// lies inside the buffer.
    fn swap_macs(&mut self, pkt: PacketIndex, off: u64, len: u32) {
        if !self.states.is(pkt, PacketState::Allocated) {
            return;
        }
        let Ok((base, size)) = self.pool.buffer_ptr(pkt) else {
            return;
        };
        if len < 12
            || off
                .checked_add(u64::from(len))
                .is_none_or(|end| end > size as u64)
        {
            return;
        }
        // SAFETY: the packet is the application's (received, not yet sent
        // or freed: the kernel does not touch its buffer), and
        // `off + len <= size` with `len >= 12`, so its first 12 bytes lie
        // inside its buffer.
        let hdr = unsafe { std::slice::from_raw_parts_mut(base.add(off as usize), 12) };
        let (dst, src) = hdr.split_at_mut(6);
        dst.swap_with_slice(src);
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
        let bad_before = self.counters.bad_descs;
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
                    .addr_at(k)
                    .and_then(|a| self.pkt_of(self.linear(a)))
                else {
                    self.counters.bad_descs += 1;
                    continue;
                };
                if room > 0 && self.fill_direct(p, PacketState::Tx, to_fill) {
                    to_fill += 1;
                    room -= 1;
                    continue;
                }
                if !self
                    .states
                    .transition(p, PacketState::Tx, PacketState::Staged)
                {
                    self.counters.bad_descs += 1;
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
                    .free_batch_from(&self.scratch_pkts[..rest], PacketState::Staged);
            }
            total += n as usize;
        }
        // Forged entries are not completions.
        total -= (self.counters.bad_descs - bad_before) as usize;
        self.counters.tx_completed += total as u64;
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
        self.counters.wakeups += 1;
        self.sock.kick_tx()
    }
}
