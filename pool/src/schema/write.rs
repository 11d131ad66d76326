//! The owner's side: a [`SchemaInfo`] written as bytes.

use super::*;

/// Bytes of a schema describing `region_count` regions and `worker_count`
/// worker slots. Saturates rather than overflowing for absurd counts.
pub fn schema_size(region_count: usize, worker_count: usize) -> usize {
    HEADER_SIZE
        .saturating_add(region_count.saturating_mul(ENTRY_SIZE))
        .saturating_add(worker_count.saturating_mul(WORKER_SIZE))
}

/// Writes the schema `info` describes at the start of `dst` and returns the
/// number of bytes written ([`schema_size`] of its region and worker
/// counts). Bytes of `dst` past that are left alone.
///
/// The writer refuses whatever a reader would refuse: after encoding it
/// parses its own output, so an owner never publishes a schema its mappers
/// reject (regions out of order or overlapping, rings outside the span…).
/// On error, the first [`schema_size`] bytes of `dst` are unspecified.
pub fn write_schema(info: &SchemaInfo, dst: &mut [u8]) -> Result<usize, SchemaError> {
    let name = info.name.as_bytes();
    if name.len() > SCHEMA_NAME_MAX {
        return Err(SchemaError::NameTooLong {
            len: name.len(),
            max: SCHEMA_NAME_MAX,
        });
    }
    if let Some(at) = name.iter().position(|&b| b == 0) {
        return Err(SchemaError::NameContainsNul { at });
    }
    let count = info.regions.len();
    if count > RegionId::COUNT {
        return Err(SchemaError::TooManyRegions {
            count: u64::try_from(count).unwrap_or(u64::MAX),
            max: RegionId::COUNT,
        });
    }
    let workers = info.workers.len();
    if workers > SCHEMA_MAX_WORKERS {
        return Err(SchemaError::TooManyWorkers {
            count: u64::try_from(workers).unwrap_or(u64::MAX),
            max: SCHEMA_MAX_WORKERS,
        });
    }
    let needed = schema_size(count, workers);
    let too_small = SchemaError::BufferTooSmall {
        len: dst.len(),
        needed,
    };
    // All fit u32: count ≤ RegionId::COUNT, workers ≤ SCHEMA_MAX_WORKERS,
    // and the largest schema's size is asserted to fit at compile time.
    let (Ok(count_u32), Ok(total_u32), Ok(workers_u32)) = (
        u32::try_from(count),
        u32::try_from(needed),
        u32::try_from(workers),
    ) else {
        return Err(too_small);
    };
    let Some(out) = dst.get_mut(..needed) else {
        return Err(too_small);
    };

    let mut name_field = [0u8; NAME_FIELD];
    if let Some(prefix) = name_field.get_mut(..name.len()) {
        prefix.copy_from_slice(name);
    }
    let mut rings = [RingEntry::ABSENT; RingKind::COUNT];
    for (entry, ring) in rings.iter_mut().zip(&info.rings) {
        if let Some(ring) = ring {
            *entry = ring.to_entry();
        }
    }
    let header = SchemaHeader {
        magic: SCHEMA_MAGIC,
        version: SCHEMA_VERSION,
        header_size: HEADER_SIZE_U32,
        entry_size: ENTRY_SIZE_U32,
        region_count: count_u32,
        total_size: total_u32,
        arena_kind: info.kind.as_u32(),
        span_size: info.span_size,
        name: name_field,
        rings,
        generation: info.generation,
        worker_count: workers_u32,
        worker_entry_size: WORKER_SIZE_U32,
    };

    if encode(&header, &info.regions, &info.workers, out).is_none() {
        return Err(too_small);
    }

    SchemaView::parse(out, info.span_size)?;
    Ok(needed)
}

/// Writes `header`, `regions` and `workers` into `out`. `out` is exactly
/// header plus entries long, so no write misses; the Option only avoids
/// indexing.
pub(super) fn encode(
    header: &SchemaHeader,
    regions: &[RegionEntryInfo],
    workers: &[WorkerRings],
    out: &mut [u8],
) -> Option<()> {
    header.write(out)?;
    let (entries, slots) = out
        .get_mut(HEADER_SIZE..)?
        .split_at_mut_checked(regions.len().checked_mul(ENTRY_SIZE)?)?;
    for (chunk, region) in entries.chunks_exact_mut(ENTRY_SIZE).zip(regions) {
        region.to_entry().write(chunk)?;
    }
    for (chunk, w) in slots.chunks_exact_mut(WORKER_SIZE).zip(workers) {
        WorkerEntry {
            to_worker: w.to_worker.to_entry(),
            from_worker: w.from_worker.to_entry(),
        }
        .write(chunk)?;
    }
    Some(())
}
