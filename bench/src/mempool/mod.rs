//! skmem's object cache against DPDK's mempool, shaped like DPDK 22.11's
//! `mempool_perf_autotest` (`app/test/test_mempool_perf.c`).
//!
//! Each core loops: get `n_keep` objects in bulks of `n_get_bulk`, then put
//! them back in bulks of `n_put_bulk`. The rate is objects cycled (got and
//! put back) per second, summed over cores — what DPDK prints as
//! `rate_persec` (it adds `N` = 65 536 to a core's count after each
//! `N / n_keep` iterations of `n_keep` objects, and divides by the test
//! time).
//!
//! * [`skmem`] runs that loop on skmem's cache, with magazines (DPDK's
//!   per-lcore cache) or without (the slab layer, DPDK's cache-less pool);
//! * [`dpdk`] runs Debian's `dpdk-test` as a child, reads its result lines
//!   and stops it once it has printed the cases asked for.
//!
//! The `mempool` binary runs both and prints one table.

pub mod dpdk;
pub mod skmem;

use std::fmt::{self, Write as _};

use anyhow::{anyhow, bail, Result};
use serde::Serialize;

/// Object size, as `MEMPOOL_ELT_SIZE` in DPDK's test: what one of its
/// objects (an mbuf with its data) occupies.
pub const OBJ_SIZE: usize = 2048;
/// What skmem's packet pool cycles per packet: the packet's 32-byte
/// metadata object (`skmem::pool::META_SIZE`), whose 2 KiB buffer is bound
/// to it for life, so a get or put never touches the buffer — as DPDK's
/// never touches its objects' bytes. skmem sizes its magazines by this
/// object, as Skywalk does.
pub const PACKET_OBJ_SIZE: usize = ::skmem::pool::META_SIZE;
/// DPDK's `MAX_KEEP` (22.11 keeps up to 512 objects).
pub const MAX_KEEP: usize = 512;
/// DPDK's `RTE_MEMPOOL_CACHE_MAX_SIZE`, the cache size its test uses.
pub const DPDK_CACHE_SIZE: usize = 512;
/// DPDK's `N`: objects a core cycles between two looks at the clock.
pub const N: u64 = 65_536;
/// Bulk sizes of the matrix (DPDK 22.11 also runs 8, a cache line of
/// pointers; skmem's objects are `u32` indices, so 8 has no such meaning
/// here and is left out).
pub const BULKS: [u32; 3] = [1, 4, 32];
/// Objects kept between gets and puts (DPDK 22.11's `keep_tab`).
pub const KEEPS: [u32; 3] = [32, 128, 512];
/// The default subset: equal and mixed bulks of 1, 4 and 32 with every
/// keep (DPDK also mixes 1 with 4 and 4 with 32; `*/*/*/*` runs those).
pub const DEFAULT_CASES: &str = "*/*/1x1/*,*/*/4x4/*,*/*/32x32/*,*/*/1x32/*,*/*/32x1/*";
/// skmem's magazine rounds in the comparison: two magazines per worker
/// hold 512 objects, the size of DPDK's per-lcore cache in the test (which
/// flushes only above 768). skmem's own rule gives 32-byte objects 158
/// rounds (Skywalk's largest magazine), which holds 316: then keeping 512
/// objects per core sends every cycle through the depot's lock.
pub const MATCHED_ROUNDS: usize = DPDK_CACHE_SIZE / 2;

/// DPDK's `MEMPOOL_SIZE` for `lcores` lcores: `lcores × (MAX_KEEP +
/// cache size) − 1` (2047 with `-l 0,1`).
pub fn pool_size(lcores: usize) -> usize {
    lcores * (MAX_KEEP + DPDK_CACHE_SIZE) - 1
}

/// One case of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Case {
    /// Per-core cache on (skmem: magazines; DPDK: a cache of 512).
    pub cache: bool,
    /// Cores (threads pinned to cpu0, cpu1, ...).
    pub cores: u32,
    /// Objects per get.
    pub get: u32,
    /// Objects per put.
    pub put: u32,
    /// Objects kept between gets and puts.
    pub keep: u32,
}

impl Case {
    /// Every case of the matrix, in DPDK's order within a cache setting
    /// (cache off first, as DPDK runs it).
    pub fn all() -> Vec<Case> {
        let mut v = Vec::new();
        for cache in [false, true] {
            for cores in [1, 2] {
                for get in BULKS {
                    for put in BULKS {
                        for keep in KEEPS {
                            v.push(Case {
                                cache,
                                cores,
                                get,
                                put,
                                keep,
                            });
                        }
                    }
                }
            }
        }
        v
    }
}

impl fmt::Display for Case {
    /// `on/2/4x32/128`: cache, cores, get × put bulk, keep (the syntax of
    /// `--cases`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cache = if self.cache { "on" } else { "off" };
        write!(
            f,
            "{cache}/{}/{}x{}/{}",
            self.cores, self.get, self.put, self.keep
        )
    }
}

/// One field of a case pattern: anything, or one value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field<T> {
    Any,
    Is(T),
}

impl<T: PartialEq> Field<T> {
    fn matches(&self, v: &T) -> bool {
        match self {
            Field::Any => true,
            Field::Is(x) => x == v,
        }
    }
}

fn field<T: std::str::FromStr>(s: &str, what: &str) -> Result<Field<T>> {
    if s == "*" {
        return Ok(Field::Any);
    }
    s.parse()
        .map(Field::Is)
        .map_err(|_| anyhow!("`{s}` is not a valid {what}"))
}

/// A pattern over cases: `cache/cores/GETxPUT/keep`, each part a value or
/// `*` (`on/*/1x1/32`, `*/2/*/*`; a bulk may also be `4x*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    cache: Field<bool>,
    cores: Field<u32>,
    get: Field<u32>,
    put: Field<u32>,
    keep: Field<u32>,
}

impl Pattern {
    /// Parses one pattern.
    pub fn parse(s: &str) -> Result<Pattern> {
        let parts: Vec<&str> = s.trim().split('/').collect();
        let [cache, cores, bulk, keep] = parts[..] else {
            bail!("case pattern `{s}`: want cache/cores/GETxPUT/keep, e.g. on/1/4x4/32");
        };
        let cache = match cache {
            "*" => Field::Any,
            "on" => Field::Is(true),
            "off" => Field::Is(false),
            _ => bail!("case pattern `{s}`: cache is on, off or *"),
        };
        let (get, put) = match bulk {
            "*" => (Field::Any, Field::Any),
            b => {
                let (g, p) = b
                    .split_once('x')
                    .ok_or_else(|| anyhow!("case pattern `{s}`: bulk is GETxPUT or *"))?;
                (field(g, "get bulk")?, field(p, "put bulk")?)
            }
        };
        Ok(Pattern {
            cache,
            cores: field(cores, "core count")?,
            get,
            put,
            keep: field(keep, "keep count")?,
        })
    }

    /// Does `c` match?
    pub fn matches(&self, c: &Case) -> bool {
        self.cache.matches(&c.cache)
            && self.cores.matches(&c.cores)
            && self.get.matches(&c.get)
            && self.put.matches(&c.put)
            && self.keep.matches(&c.keep)
    }
}

/// The cases of the matrix that match any of the comma-separated patterns
/// in `spec`, in matrix order.
pub fn select(spec: &str) -> Result<Vec<Case>> {
    let patterns = spec
        .split(',')
        .filter(|p| !p.trim().is_empty())
        .map(Pattern::parse)
        .collect::<Result<Vec<_>>>()?;
    let cases: Vec<Case> = Case::all()
        .into_iter()
        .filter(|c| patterns.iter().any(|p| p.matches(c)))
        .collect();
    if cases.is_empty() {
        bail!("no case of the matrix matches `{spec}`");
    }
    Ok(cases)
}

/// One row of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The case.
    pub case: Case,
    /// `Case`'s display form.
    pub name: String,
    /// skmem, objects per second summed over cores.
    pub skmem: Option<f64>,
    /// DPDK (`constant_n=0`, bulk sizes known only at run time, as
    /// skmem's), objects per second.
    pub dpdk: Option<f64>,
    /// DPDK's replay with compile-time bulk sizes (`constant_n=1`), when it
    /// ran (only for get bulk = put bulk).
    pub dpdk_constant: Option<f64>,
    /// skmem ÷ DPDK.
    pub ratio: Option<f64>,
}

/// Joins the two sides' figures case by case.
pub fn rows(cases: &[Case], skmem: &[skmem::Measured], dpdk: &[dpdk::Line]) -> Vec<Row> {
    cases
        .iter()
        .map(|&case| {
            let s = skmem.iter().find(|m| m.case == case).map(|m| m.rate);
            let pick = |constant: bool| {
                dpdk.iter()
                    .find(|l| l.case() == Some(case) && l.constant == constant)
                    .map(|l| l.rate)
            };
            let d = pick(false);
            Row {
                case,
                name: case.to_string(),
                skmem: s,
                dpdk: d,
                dpdk_constant: pick(true),
                ratio: s.zip(d).map(|(s, d)| s / d),
            }
        })
        .collect()
}

/// Renders the rows as a Markdown table (M objects/s).
pub fn table(rows: &[Row]) -> String {
    let m = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{:.0}", v / 1e6));
    let mut out = String::new();
    out.push_str(
        "| cache | cores | get/put bulk | n_keep | skmem M/s | DPDK M/s | skmem ÷ DPDK |\n",
    );
    out.push_str("|---|---|---|---|---|---|---|\n");
    for r in rows {
        let c = r.case;
        let ratio = r.ratio.map_or("–".to_owned(), |x| format!("{x:.2}×"));
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| {} | {} | {}/{} | {} | {} | {} | {ratio} |",
            if c.cache { "on" } else { "off" },
            c.cores,
            c.get,
            c.put,
            c.keep,
            m(r.skmem),
            m(r.dpdk),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_select_cases() {
        assert_eq!(Case::all().len(), 2 * 2 * 9 * 3);
        let c = select("on/1/1x1/32").unwrap();
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].to_string(), "on/1/1x1/32");
        assert_eq!(select("off/*/*/*").unwrap().len(), 2 * 9 * 3);
        assert_eq!(select("*/2/4x*/128").unwrap().len(), 2 * 3);
        assert_eq!(select(DEFAULT_CASES).unwrap().len(), 2 * 2 * 5 * 3);
        assert!(select("on/1/3x3/32").is_err());
        assert!(select("maybe/1/1x1/32").is_err());
        assert!(select("on/1/1/32").is_err());
    }
}
