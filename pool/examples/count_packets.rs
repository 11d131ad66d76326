//! Quick start: count the packets arriving on one interface queue.
//!
//! ```console
//! # cargo run --release -p skmem --example count_packets -- veth0 0 10
//! ```
//! (root: it attaches skmem's XDP program and binds an AF_XDP socket.)

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::time::{Duration, Instant};

use skmem::arena::{Arena, NexusParams};
use skmem::channel::{Channel, ChannelParams};
use skmem_xdp::{AttachMode, XdpProgram};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let iface = args
        .next()
        .ok_or("usage: count_packets IFACE [QUEUE] [SECONDS]")?;
    let queue: u32 = args.next().map_or(Ok(0), |q| q.parse())?;
    let seconds: u64 = args.next().map_or(Ok(10), |s| s.parse())?;

    // The arena: a packet pool whose buffers are the UMEM, rings, slots.
    let arena = Arena::create_nexus(&NexusParams::new(format!("{iface}q{queue}")))?;
    // The AF_XDP socket on that queue, and the XDP program sending it frames.
    let mut channel = Channel::open(&arena, &ChannelParams::new(&iface, queue))?;
    let mut xdp = XdpProgram::attach(&iface, AttachMode::Auto, None)?;
    xdp.add_socket(queue, channel.fd())?;

    let mut frames = Vec::with_capacity(64);
    let (mut count, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        let n = channel.rx_burst(&mut frames, 64)?;
        if n == 0 {
            channel.poll(100)?;
            continue;
        }
        for f in &frames {
            bytes += channel.data(f)?.len() as u64; // the bytes, in place
        }
        count += n as u64;
        channel.free_rx(&mut frames)?; // back to the fill ring, no copy
    }
    println!("{count} packets, {bytes} bytes on {iface} queue {queue} in {seconds} s");
    println!(
        "every frame accounted: {:?}",
        channel.account().check(false)
    );
    Ok(())
}
