//! DPDK's `mempool_perf_autotest` loop on skmem's cache.

use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure, Context, Result};
use serde::Serialize;
use skmem::cache::{Burst, Cache, CacheParams, CacheWorker};
use skmem::region::{Region, RegionFlags, RegionId, RegionParams};

use super::{Case, MAX_KEEP, N};

/// How the loop uses the cache, for reports.
pub const API: &str = "one CacheWorker::burst() around each get/put cycle of n_keep objects \
(as a ring poll holds one burst); inside it Burst::alloc/free for bulk 1, \
Burst::alloc_batch/free_batch for larger bulks";

/// Settings for skmem's side.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Measured time per case.
    pub seconds: f64,
    /// Objects the pool is asked for (DPDK's `MEMPOOL_SIZE`).
    pub pool_objects: usize,
    /// Rounds per magazine; `None` is skmem's default for `obj_size`.
    pub magazine_rounds: Option<usize>,
    /// Bytes per cache object: [`super::PACKET_OBJ_SIZE`] (the packet
    /// pool's metadata, what a packet allocation cycles) or
    /// [`super::OBJ_SIZE`] (a cache of 2 KiB objects, like DPDK's).
    pub obj_size: usize,
    /// CPU of each core, in order (`cpus[i]` runs core `i`).
    pub cpus: Vec<usize>,
}

/// One case's result.
#[derive(Debug, Clone, Serialize)]
pub struct Measured {
    /// The case.
    pub case: Case,
    /// Objects cycled per second, summed over cores.
    pub rate: f64,
    /// Each core's rate.
    pub per_core: Vec<f64>,
    /// Objects the region actually holds (skmem rounds up to whole
    /// segments and reserves room for the workers' magazines).
    pub region_objects: u32,
    /// Rounds per magazine (0 without magazines).
    pub magazine_rounds: usize,
}

/// Gets `objs.len()` objects in bulks of `bulk`.
#[inline(always)]
fn get(b: &mut Burst<'_>, objs: &mut [u32], bulk: usize) -> Result<()> {
    if bulk == 1 {
        for o in objs.iter_mut() {
            *o = b.alloc().ok_or_else(|| anyhow!("pool exhausted"))?;
        }
    } else {
        for chunk in objs.chunks_exact_mut(bulk) {
            ensure!(b.alloc_batch(chunk) == bulk, "pool exhausted");
        }
    }
    Ok(())
}

/// Puts `objs` back in bulks of `bulk`.
#[inline(always)]
fn put(b: &mut Burst<'_>, objs: &[u32], bulk: usize) -> Result<()> {
    if bulk == 1 {
        for &o in objs {
            b.free(o).context("free")?;
        }
    } else {
        for chunk in objs.chunks_exact(bulk) {
            b.free_batch(chunk).context("free")?;
        }
    }
    Ok(())
}

/// DPDK's `test_loop`: `N / keep` rounds of get-`keep`-then-put-`keep`.
fn test_loop(w: &mut CacheWorker, table: &mut [u32], case: &Case) -> Result<()> {
    let (g, p) = (case.get as usize, case.put as usize);
    for _ in 0..N / case.keep as u64 {
        let mut b = w.burst();
        get(&mut b, table, g)?;
        put(&mut b, std::hint::black_box(&*table), p)?;
    }
    Ok(())
}

/// One core: warm up, wait for the others, then loop until `seconds` have
/// passed, looking at the clock every `N` objects as DPDK does. Returns
/// objects cycled per second.
fn core(cache: &Arc<Cache>, cpu: usize, case: Case, seconds: f64, start: &Barrier) -> Result<f64> {
    let mut table = vec![0u32; case.keep as usize];
    let setup = (|| {
        crate::pps::sys::pin_current_thread(cpu)?; // as DPDK pins each lcore
        let mut w = cache.worker().context("claiming a cache worker")?;
        // Warm-up: fills the worker's magazines and faults in the pages,
        // which DPDK's test also has done by the time it measures (its pool
        // is populated, and earlier cases ran on it).
        test_loop(&mut w, &mut table, &case)?;
        Ok::<_, anyhow::Error>(w)
    })();
    // Every thread reaches the barrier, failed or not, so that one
    // failure cannot leave the others waiting forever.
    start.wait();
    let mut w = setup?;
    let limit = Duration::from_secs_f64(seconds);
    let t0 = Instant::now();
    let mut count = 0u64;
    loop {
        test_loop(&mut w, &mut table, &case)?;
        count += N;
        let dt = t0.elapsed();
        if dt >= limit {
            return Ok(count as f64 / dt.as_secs_f64());
        }
    }
}

/// Runs one case on a fresh cache.
pub fn run_case(case: Case, s: &Settings) -> Result<Measured> {
    ensure!(
        case.keep as usize <= MAX_KEEP
            && case.keep.is_multiple_of(case.get)
            && case.keep.is_multiple_of(case.put),
        "{case}: bulks must divide n_keep ≤ {MAX_KEEP}"
    );
    let cores = case.cores as usize;
    ensure!(
        s.cpus.len() >= cores,
        "{case}: needs {cores} CPUs, have {:?}",
        s.cpus
    );
    let mut flags = RegionFlags::template(RegionId::Kmd);
    if !case.cache {
        flags |= RegionFlags::NOMAGAZINES;
    }
    let params = RegionParams::new(RegionId::Kmd, s.obj_size, s.pool_objects)
        .with_flags(flags)
        .with_workers(cores);
    let region = Region::create("bench.mempool", &params).context("creating the region")?;
    let region_objects = region.geometry().obj_count;
    let mut cp = CacheParams::new("bench.mempool");
    cp.magazine_rounds = s.magazine_rounds;
    let cache = Cache::new(region, cp).context("creating the cache")?;
    let magazine_rounds = if cache.has_magazines() {
        cache.magazine_rounds()
    } else {
        0
    };
    let start = Arc::new(Barrier::new(cores));
    let per_core = std::thread::scope(|scope| {
        let handles: Vec<_> = s.cpus[..cores]
            .iter()
            .map(|&cpu| {
                let (cache, start) = (&cache, &start);
                scope.spawn(move || core(cache, cpu, case, s.seconds, start))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .map_err(|_| anyhow!("{case}: a benchmark thread panicked"))?
            })
            .collect::<Result<Vec<f64>>>()
    })
    .with_context(|| format!("case {case}"))?;
    Ok(Measured {
        case,
        rate: per_core.iter().sum(),
        per_core,
        region_objects,
        magazine_rounds,
    })
}
