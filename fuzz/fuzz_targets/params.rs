//! Parameters a caller may pass, whatever they are: a region's, a cache
//! over it, a packet pool's, a nexus arena's (its region table flipped and
//! resized), a NECP arena's. Each is refused with a typed error or made;
//! nothing panics, and what is made holds what was asked.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skmem::cache::{Cache, CacheParams};
use skmem::region::{Region, RegionFlags, RegionId, RegionParams};
use skmem::{Arena, NexusParams, PacketPool, PoolParams};

/// Reads the input a few bytes at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        let n = N.min(self.0.len());
        out[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        out
    }
    fn u8(&mut self) -> u8 {
        self.bytes::<1>()[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.bytes())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.bytes())
    }
    fn id(&mut self) -> RegionId {
        RegionId::ALL[self.u8() as usize % RegionId::COUNT]
    }
    /// Sizes up to 4 GiB, mostly small (so that some get made).
    fn size(&mut self) -> usize {
        let v = self.u32() as usize;
        match self.u8() % 4 {
            0 => v,
            1 => v % 65_536,
            _ => v % 4_096,
        }
    }
    fn region(&mut self) -> RegionParams {
        let mut p = RegionParams::new(self.id(), self.size(), self.size());
        p.seg_size = self.size();
        p.flags = RegionFlags::from_bits_retain(self.u32());
        p.max_frags = self.u16();
        p.align = self.size();
        p.workers = self.u16() as usize;
        p
    }
}

/// At most this many bytes are made for real per input: enough for every
/// path, little enough for a million runs.
const MAKE_AT_MOST: usize = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    match input.u8() % 4 {
        0 => region(&mut input),
        1 => pool(&mut input),
        2 => nexus(&mut input),
        _ => necp(&mut input),
    }
});

fn region(input: &mut Input<'_>) {
    let p = input.region();
    let Ok(g) = p.configure() else {
        return;
    };
    assert!(g.obj_size >= p.obj_size && g.obj_size.is_multiple_of(g.align));
    assert!(g.obj_count as usize >= p.obj_count);
    assert_eq!(g.obj_count, g.seg_count * g.objs_per_seg);
    assert_eq!(g.seg_size, g.objs_per_seg as usize * g.obj_size);
    assert!(g.seg_size.is_multiple_of(skmem::sys::page_size()));
    if g.seg_size * g.seg_count as usize > MAKE_AT_MOST {
        return;
    }
    let Ok(r) = Region::create("fuzz", &p) else {
        return;
    };
    let Ok(cache) = Cache::new(r, CacheParams::new("fuzz")) else {
        return;
    };
    // Every object can be had, none twice, and all go back.
    let mut objs = vec![0u32; g.obj_count as usize + 1];
    let n = cache.alloc_batch(&mut objs);
    assert!(
        n >= p.obj_count && n <= g.obj_count as usize,
        "{n} of {g:?}"
    );
    objs.truncate(n);
    cache
        .free_batch(&objs)
        .expect("what was handed out goes back");
    assert!(cache
        .free(objs.first().copied().unwrap_or(u32::MAX))
        .is_err());
}

fn pool(input: &mut Input<'_>) {
    let mut p = PoolParams::default();
    p.packets = input.size() % 8_192;
    p.buf_size = input.size();
    p.buffers = input.size() % 8_192;
    p.large_buf_size = input.size();
    p.large_buffers = input.size() % 64;
    p.max_frags = input.u16();
    p.owner_only = input.u8() & 1 != 0;
    p.truncated_buf = input.u8() & 1 != 0;
    p.workers = input.u8() as usize;
    let bytes =
        p.packets.saturating_mul(p.buf_size) + p.large_buffers.saturating_mul(p.large_buf_size);
    if bytes > MAKE_AT_MOST {
        return;
    }
    if let Ok(pool) = PacketPool::create("fuzz", &p) {
        assert!(pool.packet_count() as usize >= p.packets);
    }
}

fn nexus(input: &mut Input<'_>) {
    let mut np = NexusParams::new("fuzz");
    np.pool.packets = 64 + input.size() % 512;
    np.worker_slots = input.u8() as usize % 4;
    np.owner_only = input.u8() & 1 != 0;
    np.user_packet_pool = input.u8() & 1 != 0;
    // A few regions changed: flags flipped, counts and sizes replaced.
    for _ in 0..input.u8() % 4 {
        let r = np.region_mut(input.id());
        r.flags ^= RegionFlags::from_bits_retain(input.u32());
        match input.u8() % 3 {
            0 => r.obj_count = input.size() % 4_096,
            1 => r.obj_size = input.size(),
            _ => {}
        }
    }
    if let Ok(arena) = Arena::create_nexus(&np) {
        assert!(arena.is_active());
    }
}

fn necp(input: &mut Input<'_>) {
    let ustats = input.region();
    let kstats = input.region();
    if ustats.obj_size.saturating_mul(ustats.obj_count) > MAKE_AT_MOST
        || kstats.obj_size.saturating_mul(kstats.obj_count) > MAKE_AT_MOST
    {
        return;
    }
    let _ = Arena::create_necp("fuzz", &ustats, &kstats);
}
