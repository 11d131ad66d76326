//! Quick start: count the packets arriving on one interface queue.
//!
//! ```console
//! # cargo run --release -p skmem --example count_packets -- veth0 0 10
//! ```
//! (root: it attaches skmem's XDP program and binds an AF_XDP socket.)

use std::time::{Duration, Instant};

use skmem::arena::{Arena, NexusParams};
use skmem::channel::{Channel, ChannelParams, RxFrame};
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

    let mut frames = vec![RxFrame::default(); 64];
    let mut packets = vec![0u32; 64];
    let (mut count, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        let n = channel.rx_burst(&mut frames)?;
        if n == 0 {
            channel.poll(100)?;
            continue;
        }
        for (p, f) in packets.iter_mut().zip(&frames[..n]) {
            *p = f.pkt;
            bytes += f.len as u64;
        }
        count += n as u64;
        channel.free_rx(&packets[..n])?; // back to the fill ring, no copy
    }
    println!("{count} packets, {bytes} bytes on {iface} queue {queue} in {seconds} s");
    println!(
        "every frame accounted: {:?}",
        channel.account().check(false)
    );
    Ok(())
}
