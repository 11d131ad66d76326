//! Descriptors a worker hands back, whatever they say: an owner (a nexus
//! arena with a worker slot, its channel on the loopback of this process's
//! own network namespace, its offer and hub) lends received frames to a
//! worker that answers with descriptors built from the input — frames it
//! holds, others it does not, twice, past the UMEM, with lengths past the
//! buffer, broken chains, a free or a send. The hub takes each or counts
//! it bad; every frame stays in exactly one place (`Channel::account`),
//! and once the worker gives back what it holds, nothing stays lent.
//!
//! Needs root (a network namespace, an AF_XDP socket); without it the
//! target says so and stops.

#![no_main]

use std::cell::RefCell;
use std::sync::atomic::Ordering;

use libfuzzer_sys::fuzz_target;
use skmem::channel::{BindMode, Channel, ChannelParams, XdpDesc, XDP_PKT_CONTD};
use skmem::lend::OfferPolicy;
use skmem::schema::RingKind;
use skmem::workers::{Spread, WorkerChannel, WorkerFrame, FREE};
use skmem::{Arena, ArenaOffer, NexusParams, WorkerHub};
use skmem_fuzz::{index, ring};

/// The owner and its worker, kept between inputs.
struct Rig {
    worker: WorkerChannel,
    hub: WorkerHub,
    _offer: ArenaOffer,
    _arena: Arena,
}

thread_local! {
    static RIG: RefCell<Rig> = RefCell::new(rig());
}

fn rig() -> Rig {
    skmem_fuzz::private_loopback("worker");
    let np = NexusParams::new("fuzzw")
        .with_worker_slots(1)
        .with(|p| p.pool.packets = 256);
    let arena = Arena::create_nexus(&np).expect("a nexus arena with a worker slot");
    let mut cp = ChannelParams::new("lo", 0);
    cp.mode = BindMode::Copy;
    let mut ch = Channel::open(&arena, &cp).expect("a copy-mode channel on lo");
    ch.refill().expect("the fill ring primed");
    let path = std::env::temp_dir().join(format!("skmem-fuzz-worker-{}.sock", std::process::id()));
    let offer = ArenaOffer::serve(&arena, &path, OfferPolicy::root_only()).expect("the offer");
    let mut hub = WorkerHub::new(ch, &offer, Spread::RoundRobin).expect("the hub");
    let worker = WorkerChannel::connect(&path).expect("the worker joins");
    // Joined: the path is no longer needed (the listening socket stays).
    let _ = std::fs::remove_file(&path);
    while hub.workers().iter().flatten().count() == 0 {
        hub.poll().expect("the hub sees the worker");
    }
    Rig {
        worker,
        hub,
        _offer: offer,
        _arena: arena,
    }
}

/// Plays the kernel receiving `n` packets of `len` bytes: takes frames
/// offered on the fill ring and produces RX descriptors naming them.
fn receive(ch: &Channel, n: u32, len: u32) {
    let (fill, rx) = (ring(ch, RingKind::Fill), ring(ch, RingKind::Rx));
    let base = ch.mapping().addr();
    let (fill_cons, fill_prod) = (
        index(ch, RingKind::Fill, true),
        index(ch, RingKind::Fill, false),
    );
    let rx_prod = index(ch, RingKind::Rx, false);
    let mut cons = fill_cons.load(Ordering::Acquire);
    let mut prod = rx_prod.load(Ordering::Acquire);
    let offered = fill_prod.load(Ordering::Acquire).wrapping_sub(cons);
    for _ in 0..n.min(offered).min(rx.entries) {
        let at = fill.desc as usize + (cons & (fill.entries - 1)) as usize * 8;
        // SAFETY: a slot of the fill ring's descriptors, inside the span.
        let addr = unsafe { base.add(at).cast::<u64>().read_unaligned() };
        let slot = rx.desc as usize + (prod & (rx.entries - 1)) as usize * 16;
        // SAFETY: a slot of the RX ring's descriptors, inside the span;
        // nothing else produces into it (no XDP program redirects here).
        unsafe {
            base.add(slot).cast::<XdpDesc>().write_unaligned(XdpDesc {
                addr,
                len,
                options: 0,
            })
        };
        cons = cons.wrapping_add(1);
        prod = prod.wrapping_add(1);
    }
    fill_cons.store(cons, Ordering::Release);
    rx_prod.store(prod, Ordering::Release);
}

/// The worker's answer: 8 bytes a descriptor, most naming a frame it
/// holds (the first byte picks which), the rest anywhere.
fn answer(data: &[u8], held: &[WorkerFrame], umem: u64) -> Vec<XdpDesc> {
    data.chunks_exact(8)
        .map(|c| {
            let pick = held.get(c[0] as usize % held.len().max(1));
            let addr = match (c[1] % 4, pick) {
                (0 | 1, Some(f)) => f.addr(),
                (2, Some(f)) => f.addr().wrapping_add(u64::from(c[2])),
                _ => u64::from(u32::from_le_bytes([c[2], c[3], c[4], c[5]])) % (umem + 8192),
            };
            let len = match (c[6] % 4, pick) {
                (0 | 1, Some(f)) => f.len,
                (2, _) => u32::from(c[7]) * 32,
                _ => u32::from_le_bytes([c[4], c[5], c[6], c[7]]),
            };
            let options = match c[7] % 5 {
                0 => 0,
                1 | 2 => FREE,
                3 => XDP_PKT_CONTD,
                _ => FREE | XDP_PKT_CONTD,
            };
            XdpDesc { addr, len, options }
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    RIG.with(|rig| {
        let rig = &mut *rig.borrow_mut();
        receive(rig.hub.channel(), u32::from(n % 65), 60 + u32::from(n));
        rig.hub.poll().expect("the hub lends");
        let mut held = Vec::new();
        while rig
            .worker
            .rx_burst(&mut held, 64)
            .expect("the worker reads")
            > 0
        {}
        let umem = rig
            .worker
            .arena()
            .region(skmem::region::RegionId::BufDef)
            .map_or(0, |r| r.1 as u64);
        let descs = answer(rest, &held, umem);
        let mut sent = 0;
        while sent < descs.len() {
            let k = rig.worker.hand_back_raw(&descs[sent..]).expect("hand back");
            sent += k;
            rig.hub.poll().expect("the hub takes them back");
        }
        // Then honestly: what the worker holds goes back (some twice), and
        // whatever else the hub lends meanwhile.
        for _ in 0..64 {
            rig.worker.free(&mut held).expect("free");
            rig.hub.poll().expect("the hub takes them back");
            while rig
                .worker
                .rx_burst(&mut held, 64)
                .expect("the worker reads")
                > 0
            {}
            if held.is_empty() && rig.hub.lent() == 0 {
                break;
            }
        }
        assert_eq!(rig.hub.lent(), 0, "{:?}", rig.hub.counters());
        let ch = rig.hub.channel_mut();
        ch.refill().expect("refill");
        let account = ch.account();
        assert!(account.check(false).is_ok(), "{account:?}");
        assert_eq!((account.app, account.lent), (0, 0), "{account:?}");
    });
});
