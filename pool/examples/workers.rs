//! Worker processes: an owner lends one interface queue's packets to
//! workers, each a process of its own that swaps the Ethernet addresses in
//! place and hands the packet back to be sent (l2fwd).
//!
//! ```console
//! # cargo run --release -p skmem --example workers -- owner veth0 0 /tmp/fwd.sock 2 30 &
//! # cargo run --release -p skmem --example workers -- worker /tmp/fwd.sock &
//! # cargo run --release -p skmem --example workers -- worker /tmp/fwd.sock &
//! ```
//! (root: the owner attaches skmem's XDP program and binds an AF_XDP
//! socket; the workers map the owner's arena from its socket.) Kill a
//! worker at any time: its packets come back to the owner, which keeps
//! forwarding through the others; start another and it takes the slot.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::time::{Duration, Instant};

use skmem::arena::{Arena, NexusParams};
use skmem::channel::{Channel, ChannelParams};
use skmem::lend::{ArenaOffer, OfferPolicy};
use skmem::workers::{Spread, WorkerChannel, WorkerHub};
use skmem_xdp::{AttachMode, XdpProgram};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage: workers owner IFACE QUEUE SOCKET SLOTS SECONDS | workers worker SOCKET";

fn owner(iface: &str, queue: u32, socket: &str, slots: usize, seconds: u64) -> Result<()> {
    // A nexus arena with a ring pair per worker slot, and its channel.
    let np = NexusParams::new(format!("{iface}q{queue}")).with_worker_slots(slots);
    let arena = Arena::create_nexus(&np)?;
    let mut channel = Channel::open(&arena, &ChannelParams::new(iface, queue))?;
    let mut xdp = XdpProgram::attach(iface, AttachMode::Auto, None)?;
    xdp.add_socket(queue, channel.fd())?;
    channel.refill()?;
    // Lent to other processes on a socket; the hub moves the packets.
    let offer = ArenaOffer::serve(&arena, socket, OfferPolicy::root_only())?;
    let mut hub = WorkerHub::new(channel, &offer, Spread::FlowHash)?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        if hub.poll()? == 0 {
            hub.wait(100)?;
        } else if hub.behind() {
            // A worker's ring is half full: its turn on the CPU.
            std::thread::yield_now();
        }
    }
    for (slot, c) in hub.counters().iter().enumerate() {
        println!(
            "slot {slot}: {} lent, {} sent, {} reclaimed from gone workers, {} bad",
            c.lent,
            c.sent,
            c.reclaimed,
            c.bad()
        );
    }
    Ok(())
}

fn worker(socket: &str) -> Result<()> {
    let mut w = WorkerChannel::connect(socket)?;
    println!("worker {} has slot {}", std::process::id(), w.slot());
    let mut frames = Vec::with_capacity(64);
    while !w.arena().owner_gone() {
        if w.rx_burst(&mut frames, 64)? == 0 {
            w.wait(100)?;
            continue;
        }
        for f in &mut frames {
            let data = w.data_mut(f)?; // the packet, in the owner's UMEM
            for i in 0..6 {
                data.swap(i, i + 6);
            }
        }
        while !frames.is_empty() {
            w.tx_burst(&mut frames)?;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["owner", iface, queue, socket, slots, seconds] => owner(
            iface,
            queue.parse()?,
            socket,
            slots.parse()?,
            seconds.parse()?,
        ),
        ["worker", socket] => worker(socket),
        _ => Err(USAGE.into()),
    }
}
