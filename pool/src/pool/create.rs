//! Building a pool: its parameters checked, then its regions and caches
//! made in order (metadata, buffers, buflets, large buffers), each step's
//! failure releasing what the steps before it made (they are owned values,
//! so `?` drops them).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::{
    kmd, next_pool_id, umd, PacketPool, PoolParams, StateColumn, BUFLET_SIZE, MAX_BUF_SIZE,
    META_SIZE, MIN_BUF_SIZE, NIL,
};
use crate::cache::{Cache, CacheParams};
use crate::error::{Error, RegionError, Result};
use crate::region::{Region, RegionFlags, RegionId, RegionParams, MAX_FRAGS};

/// The rules on a pool's parameters, checked before anything is made.
fn check(params: &PoolParams) -> Result<()> {
    let bad = |region, rule| Err(Error::Region(RegionError::InvalidParams { region, rule }));
    if params.packets == 0 {
        return bad(RegionId::Kmd, "a pool needs at least one packet");
    }
    if !(MIN_BUF_SIZE..=MAX_BUF_SIZE).contains(&params.buf_size) {
        return bad(RegionId::BufDef, "buffer size must be 512 B to 32 KiB");
    }
    if !params.truncated_buf && !params.buf_size.is_power_of_two() {
        return bad(
            RegionId::BufDef,
            "buffer size must be a power of two unless buffers are truncated (AF_XDP aligned chunks)",
        );
    }
    if params.max_frags == 0 || params.max_frags > MAX_FRAGS {
        return bad(RegionId::Kmd, "max_frags must be in 1..=64");
    }
    let on_demand = params.max_frags > 1;
    if !on_demand && params.buffers != 0 && params.buffers != params.packets {
        return bad(
            RegionId::BufDef,
            "a single-buffer pool binds buffer i to packet i: buffers must equal packets",
        );
    }
    if on_demand && params.buffers != 0 && params.buffers < params.packets {
        return bad(
            RegionId::BufDef,
            "an on-demand pool needs at least one buffer per packet",
        );
    }
    if (params.large_buf_size == 0) != (params.large_buffers == 0) {
        return bad(
            RegionId::BufLarge,
            "large buffers need both a size and a count",
        );
    }
    if params.large_buf_size != 0 && params.large_buf_size <= params.buf_size {
        return bad(
            RegionId::BufLarge,
            "large buffers must be larger than default buffers",
        );
    }
    Ok(())
}

/// The flags of user-visible region `id`: its template (on huge pages for
/// the default buffers when the pool asks), minus what makes it visible
/// when the pool is owner-only (an owner-only pool is never seen outside
/// the owner).
fn user_flags(params: &PoolParams, id: RegionId) -> RegionFlags {
    let mut f = RegionFlags::template(id);
    if params.huge_pages && id == RegionId::BufDef {
        f |= RegionFlags::HUGETLB;
    }
    if params.owner_only {
        f - RegionFlags::MMAPOK - RegionFlags::UREADONLY
    } else {
        f
    }
}

/// A master region and, unless the pool is owner-only, its user-visible
/// mirror of equal geometry.
fn mirrored(
    name: &str,
    params: &PoolParams,
    master: RegionParams,
    mirror: RegionId,
) -> Result<(Arc<Region>, Option<Arc<Region>>)> {
    let m = Region::create(name, &master)?;
    if params.owner_only {
        return Ok((m, None));
    }
    let g = *m.geometry();
    let u = Region::create(
        name,
        &RegionParams::new(mirror, g.obj_size, g.obj_count as usize)
            .with_align(master.align)
            .with_flags(user_flags(params, mirror))
            .with_seg_size(g.seg_size),
    )?;
    Region::mirror(&m, u.clone())?;
    Ok((m, Some(u)))
}

/// Buflet tables and the buffer cache of a pool whose buffers come on
/// demand.
type OnDemand = (Arc<Region>, Option<Arc<Region>>, Arc<Cache>);

fn on_demand_buffers(name: &str, params: &PoolParams, buf_def: &Arc<Region>) -> Result<OnDemand> {
    let count = buf_def.geometry().obj_count as usize;
    let (kbft, ubft) = mirrored(
        name,
        params,
        RegionParams::new(RegionId::Kbft, BUFLET_SIZE, count),
        RegionId::Ubft,
    )?;
    let cache = Cache::new(buf_def.clone(), CacheParams::new(format!("buf.{name}")))?;
    Ok((kbft, ubft, cache))
}

fn large_buffers(name: &str, params: &PoolParams) -> Result<Option<(Arc<Region>, Arc<Cache>)>> {
    if params.large_buffers == 0 {
        return Ok(None);
    }
    let r = Region::create(
        name,
        &RegionParams::new(
            RegionId::BufLarge,
            params.large_buf_size,
            params.large_buffers,
        )
        .with_flags(user_flags(params, RegionId::BufLarge)),
    )?;
    let c = Cache::new(r.clone(), CacheParams::new(format!("buf_large.{name}")))?;
    Ok(Some((r, c)))
}

/// The metadata constructor: a fresh packet's KMD object is zeroed and, in
/// a single-buffer pool, bound to buffer *i* (`fixed_buf` bytes each); its
/// user-visible mirror is reset.
fn kmd_constructor(
    umd: Option<Arc<Region>>,
    fixed_buf: Option<u64>,
) -> impl Fn(u32, &mut [u8]) + Send + Sync + 'static {
    move |idx: u32, bytes: &mut [u8]| {
        bytes.fill(0);
        let head = if fixed_buf.is_some() { idx } else { NIL };
        bytes[kmd::BUFLET_HEAD..kmd::BUFLET_HEAD + 4].copy_from_slice(&head.to_le_bytes());
        // The mirror has the master's geometry, so object `idx` exists.
        if let Some(Ok(o)) = umd.as_ref().map(|u| u.obj(idx)) {
            let addr = fixed_buf.map_or(0, |b| idx as u64 * b);
            if o.fill(0)
                .and_then(|()| o.store_u64(umd::BUF_ADDR, addr))
                .is_err()
            {
                tracing::error!(packet = idx, "UMD object refused its reset");
            }
        }
    }
}

impl PacketPool {
    /// Creates a pool called `name` (regions are named `NAME.ID`).
    pub fn create(name: &str, params: &PoolParams) -> Result<Arc<PacketPool>> {
        check(params)?;
        let id = next_pool_id()?;
        let on_demand = params.max_frags > 1;
        let (kmd, umd) = mirrored(
            name,
            params,
            RegionParams::new(RegionId::Kmd, META_SIZE, params.packets)
                .with_align(META_SIZE)
                .with_max_frags(params.max_frags)
                .with_workers(params.workers),
            RegionId::Umd,
        )?;
        let kg = *kmd.geometry();
        let buffers = if on_demand {
            params.buffers.max(params.packets)
        } else {
            // Every metadata object, the magazine reserve included, owns one.
            kg.obj_count as usize
        };
        let buf_def = Region::create(
            name,
            &RegionParams::new(RegionId::BufDef, params.buf_size, buffers)
                .with_flags(user_flags(params, RegionId::BufDef)),
        )?;
        if !on_demand && buf_def.geometry().obj_count != kg.obj_count {
            return Err(Error::Region(RegionError::InvalidParams {
                region: RegionId::BufDef,
                rule: "buffer and metadata counts round differently: choose a packet count that fills whole buffer segments",
            }));
        }
        let buf_size = buf_def.geometry().obj_size;
        let (kbft, ubft, buf_cache) = if on_demand {
            let (k, u, c) = on_demand_buffers(name, params, &buf_def)?;
            (Some(k), u, Some(c))
        } else {
            // Buffer i belongs to packet i for life, and the kernel pins the
            // whole UMEM when it is registered: every segment is in use.
            for _ in 0..buf_def.geometry().seg_count {
                buf_def.alloc_segment()?;
            }
            (None, None, None)
        };
        let (buf_large, large_cache) = large_buffers(name, params)?.unzip();
        let fixed_buf = (!on_demand).then_some(buf_size as u64);
        let kmd_cache = Cache::new(
            kmd.clone(),
            CacheParams::new(format!("kmd.{name}"))
                .with_constructor(kmd_constructor(umd.clone(), fixed_buf)),
        )?;
        tracing::debug!(
            pool = name,
            packets = kg.obj_count,
            buf_size,
            on_demand,
            "packet pool created"
        );
        Ok(Arc::new(PacketPool {
            id,
            name: name.to_owned(),
            params: params.clone(),
            kmd,
            umd,
            kmd_cache,
            buf_def,
            buf_cache,
            buf_large,
            large_cache,
            kbft,
            ubft,
            buf_size,
            refused_frees: AtomicU64::new(0),
            states: StateColumn::new(kg.obj_count),
        }))
    }
}
