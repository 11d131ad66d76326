//! Descriptors coming back from the kernel's rings, whatever they say: a
//! real channel (copy mode, on the loopback of a network namespace of this
//! process's own, where no traffic comes) reads RX and completion entries
//! this target writes into its rings — out of range, unaligned, oversize,
//! duplicated, broken chains, naming frames the kernel does not hold.
//! Each is taken or counted as bad, never shown twice; afterwards every
//! frame of the UMEM is in exactly one place (`Channel::account`).
//!
//! Needs root (a network namespace, an AF_XDP socket); without it the
//! target says so and stops.

#![no_main]

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use libfuzzer_sys::fuzz_target;
use skmem::channel::{BindMode, Channel, ChannelParams, XdpDesc};
use skmem::schema::RingKind;
use skmem::{Arena, NexusParams};
use skmem_fuzz::{index, ring};

/// What the target keeps between inputs.
struct Rig {
    ch: Channel,
    _arena: Arena,
    /// RX entries written so far, and those the channel took (shown or
    /// counted bad): it never takes more than were written.
    forged: u64,
    taken: u64,
}

thread_local! {
    static RIG: RefCell<Option<Rig>> = RefCell::new(Some(rig()));
}

/// A channel on the loopback of a network namespace of this thread's own.
fn rig() -> Rig {
    skmem_fuzz::private_loopback("descriptors");
    let arena = Arena::create_nexus(&NexusParams::new("fuzz").with(|p| p.pool.packets = 256))
        .expect("a small nexus arena");
    let mut cp = ChannelParams::new("lo", 0);
    cp.mode = BindMode::Copy;
    let mut ch = Channel::open(&arena, &cp).expect("a copy-mode channel on lo");
    ch.refill().expect("the fill ring primed");
    Rig {
        ch,
        _arena: arena,
        forged: 0,
        taken: 0,
    }
}

/// The kernel takes every frame offered on the fill ring (as it would
/// before receiving into them).
fn take_fill(ch: &Channel) {
    let produced = index(ch, RingKind::Fill, false).load(Ordering::Acquire);
    index(ch, RingKind::Fill, true).store(produced, Ordering::Release);
}

/// Writes `descs` (RX) or `addrs` (completion) into ring `kind` as its
/// producer (the kernel's side) and publishes them; returns how many.
fn forge(ch: &Channel, kind: RingKind, descs: &[XdpDesc], addrs: &[u64]) -> usize {
    let ring = ring(ch, kind);
    let base = ch.mapping().addr();
    let producer = index(ch, kind, false);
    let mut prod = producer.load(Ordering::Acquire);
    let n = if kind == RingKind::Rx {
        descs.len()
    } else {
        addrs.len()
    }
    .min(ring.entries as usize);
    for i in 0..n {
        let slot = (prod & (ring.entries - 1)) as usize;
        let at = ring.desc as usize + slot * ring.desc_size as usize;
        // SAFETY: the slot is inside the ring's descriptors (masked by its
        // size), which the schema places inside the span; nothing else
        // produces into this ring (no traffic, no TX).
        unsafe {
            match kind {
                RingKind::Rx => base.add(at).cast::<XdpDesc>().write_unaligned(descs[i]),
                _ => base.add(at).cast::<u64>().write_unaligned(addrs[i]),
            }
        }
        prod = prod.wrapping_add(1);
    }
    producer.store(prod, Ordering::Release);
    n
}

/// The input as descriptors: 16 bytes each, the address mostly near a
/// real frame (the first byte picks a frame, the next a shift) so that
/// valid, off-by-some and duplicated entries all come.
fn descriptors(data: &[u8], buf_size: u64) -> (Vec<XdpDesc>, Vec<u64>) {
    let mut descs = Vec::new();
    let mut addrs = Vec::new();
    for c in data.chunks_exact(16) {
        let word = |i: usize| u32::from_le_bytes([c[i], c[i + 1], c[i + 2], c[i + 3]]);
        let addr = if c[0] & 0x80 == 0 {
            u64::from(c[1]) * buf_size + u64::from(c[2]) * 16 + u64::from(c[3] & 1) * 256
        } else {
            u64::from(word(0)) << 8 | u64::from(c[4])
        };
        let len = match c[5] % 4 {
            0 => u32::from(c[6]) * 8,
            1 => word(6),
            _ => 64 + u32::from(c[7]),
        };
        descs.push(XdpDesc {
            addr,
            len,
            options: word(12) & 0x3,
        });
        addrs.push(addr);
    }
    (descs, addrs)
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    RIG.with(|rig| {
        let mut rig = rig.borrow_mut();
        let Some(rig) = rig.as_mut() else { return };
        let buf_size = rig.ch.pool().buf_size() as u64;
        let (descs, addrs) = descriptors(rest, buf_size);
        let ch = &mut rig.ch;
        let bad_before = ch.counters().bad_descs;
        if which & 1 == 0 {
            take_fill(ch);
            rig.forged += forge(ch, RingKind::Rx, &descs, &addrs) as u64;
            let mut rx = Vec::with_capacity(64);
            let mut shown = 0;
            loop {
                let n = ch.rx_burst(&mut rx, 64).expect("rx_burst");
                if n == 0 {
                    break;
                }
                shown += n;
                for f in &rx {
                    assert!(ch.data(f).is_ok(), "a shown frame's data is in its buffer");
                }
                // What came back goes to the fill ring again.
                ch.free(&mut rx).expect("shown frames are ours to free");
            }
            rig.taken += shown as u64 + (ch.counters().bad_descs - bad_before);
            assert!(
                rig.taken <= rig.forged,
                "{} taken of {} written",
                rig.taken,
                rig.forged
            );
        } else {
            let n = forge(ch, RingKind::Completion, &descs, &addrs);
            ch.complete();
            // Nothing was sent: no completion names a frame in flight.
            let bad = ch.counters().bad_descs - bad_before;
            assert_eq!(bad as usize, n, "every completion refused");
        }
        ch.refill().expect("refill");
        let account = ch.account();
        assert!(account.check(false).is_ok(), "{account:?}");
        assert_eq!(account.app, 0, "{account:?}");
    });
});
