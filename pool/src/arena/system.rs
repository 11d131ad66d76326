//! The system arena: the process-wide SYSCTLS region of tunables (Skywalk's
//! `skmem_arena_create_for_system`).
//!
//! The region is created once per process, holds one monolithic,
//! read-only-to-mappers, never-redirected object, and is retained (never
//! copied) by every system arena.

use std::sync::{Arc, OnceLock};

use super::{Arena, ArenaKind, ArenaState, KindState};
use crate::error::{Error, Result};
use crate::region::{Region, RegionFlags, RegionId, RegionParams};

/// The tunables published in SYSCTLS (little-endian `u32`s, in this order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Sysctls {
    /// Default TX ring slots.
    pub tx_slots: u32,
    /// Default RX ring slots.
    pub rx_slots: u32,
    /// Default buffer size.
    pub buf_size: u32,
    /// Large buffer size.
    pub large_buf_size: u32,
    /// Default buffers per pool.
    pub buffers: u32,
    /// Flow advisory entries.
    pub max_flows: u32,
    /// Guard pages at each end of a span.
    pub guard_pages: u32,
}

impl Default for Sysctls {
    /// Skywalk's flowswitch defaults.
    fn default() -> Self {
        Self {
            tx_slots: 256,
            rx_slots: 1024,
            buf_size: 2048,
            large_buf_size: 16 * 1024,
            buffers: 4096,
            max_flows: 512,
            guard_pages: 1,
        }
    }
}

impl Sysctls {
    /// Bytes of the encoded object.
    pub const SIZE: usize = 7 * 4;

    fn fields(&self) -> [u32; 7] {
        [
            self.tx_slots,
            self.rx_slots,
            self.buf_size,
            self.large_buf_size,
            self.buffers,
            self.max_flows,
            self.guard_pages,
        ]
    }

    /// Decodes tunables from (untrusted) bytes.
    pub fn decode(bytes: &[u8]) -> Option<Sysctls> {
        let mut f = [0u32; 7];
        for (i, v) in f.iter_mut().enumerate() {
            *v = u32::from_le_bytes(bytes.get(i * 4..i * 4 + 4)?.try_into().ok()?);
        }
        Some(Sysctls {
            tx_slots: f[0],
            rx_slots: f[1],
            buf_size: f[2],
            large_buf_size: f[3],
            buffers: f[4],
            max_flows: f[5],
            guard_pages: f[6],
        })
    }
}

/// The process-wide SYSCTLS region, created on first use.
fn sysctls_region() -> Result<Arc<Region>> {
    static REGION: OnceLock<Arc<Region>> = OnceLock::new();
    if let Some(r) = REGION.get() {
        return Ok(r.clone());
    }
    let r = Region::create(
        "system",
        &RegionParams::new(RegionId::Sysctls, Sysctls::SIZE, 1),
    )?;
    r.alloc_segment()?;
    let obj = r.obj(0)?;
    for (i, v) in Sysctls::default().fields().into_iter().enumerate() {
        obj.store_u32(i * 4, v)?;
    }
    // A racing thread may have won; use whichever was stored.
    Ok(REGION.get_or_init(|| r).clone())
}

/// What a system arena keeps: the SYSCTLS object ([`Arena::system`] hands
/// out a snapshot).
#[derive(Debug, Clone)]
pub struct SystemState {
    sysctls: Arc<Region>,
}

impl SystemState {
    /// The owner's address and size of the tunables object.
    pub fn sysctls_obj(&self) -> (*mut u8, usize) {
        (self.sysctls.base(), self.sysctls.geometry().obj_size)
    }

    /// The tunables.
    pub fn sysctls(&self) -> Sysctls {
        let mut bytes = [0u8; Sysctls::SIZE];
        match self.sysctls.obj(0).and_then(|o| o.read(0, &mut bytes)) {
            Ok(()) => Sysctls::decode(&bytes).unwrap_or_default(),
            Err(e) => {
                tracing::error!(error = %e, "SYSCTLS unreadable; answering the defaults");
                Sysctls::default()
            }
        }
    }
}

impl Arena {
    /// Creates a system arena named `skmem.system.NAME`, retaining the
    /// process-wide SYSCTLS region.
    pub fn create_system(name: &str) -> Result<Arena> {
        let r = sysctls_region()?;
        let must = RegionFlags::MMAPOK
            | RegionFlags::NOMAGAZINES
            | RegionFlags::UREADONLY
            | RegionFlags::MONOLITHIC;
        let mask = must | RegionFlags::KREADONLY | RegionFlags::SHAREOK;
        if r.flags() & mask != must || !r.flags().contains(RegionFlags::NOREDIRECT) {
            return Err(Error::InvalidRegionParams {
                region: RegionId::Sysctls,
                rule: "SYSCTLS must be MMAPOK, NOMAGAZINES, UREADONLY, MONOLITHIC, NOREDIRECT, and neither KREADONLY nor SHAREOK",
            });
        }
        let mut st = ArenaState::new(KindState::System(SystemState { sysctls: r.clone() }));
        st.set(RegionId::Sysctls, r);
        Arena::finalize(ArenaKind::System, name, st)
    }
}
