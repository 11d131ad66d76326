//! Region flags: Skywalk's region creation flags and mode bits.

use super::RegionId;

bitflags::bitflags! {
    /// How a region may be used. Names and order follow Skywalk's mode bits.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    #[cfg_attr(feature = "serde", derive(serde::Serialize))]
    pub struct RegionFlags: u32 {
        /// Stays mapped as it is when a mapping is redirected (schema, guards).
        const NOREDIRECT  = 1 << 0;
        /// May be mapped by mappers (appears in the span).
        const MMAPOK      = 1 << 1;
        /// Read-only to the owner.
        const KREADONLY   = 1 << 2;
        /// Read-only to mappers.
        const UREADONLY   = 1 << 3;
        /// Survives a purge (never returned to the backing store early).
        const PERSISTENT  = 1 << 4;
        /// Exactly one segment holding every object.
        const MONOLITHIC  = 1 << 5;
        /// Its cache has no magazine layer: allocations go to the slabs.
        const NOMAGAZINES = 1 << 6;
        /// May back more than one arena or socket (buffers: XDP_SHARED_UMEM).
        const SHAREOK     = 1 << 9;
        /// Inaccessible pages (`PROT_NONE`) around a span.
        const GUARD       = 1 << 12;
        /// Holds only data, never pointers (buffers).
        const PUREDATA    = 1 << 13;
        /// The user-visible mirror of an owner-private master; set by
        /// [`Region::mirror`](super::Region::mirror), never by a creator.
        const MIRRORED    = 1 << 18;
        /// Backed by 2 MiB huge pages (skmem's, not Skywalk's): the
        /// region is a whole number of them, and sits on a huge page in
        /// every span. For buffers whose physical pages must be
        /// contiguous, as AF_XDP's unaligned chunks in zero-copy mode need.
        const HUGETLB     = 1 << 20;
    }
}

impl RegionFlags {
    /// Skywalk's template flags for a region id: what an arena uses unless
    /// told otherwise.
    pub const fn template(id: RegionId) -> RegionFlags {
        use RegionId::*;
        let bits = match id {
            GuardHead | GuardTail => {
                Self::MMAPOK.bits() | Self::GUARD.bits() | Self::NOREDIRECT.bits()
            }
            Schema => {
                Self::MMAPOK.bits()
                    | Self::UREADONLY.bits()
                    | Self::NOREDIRECT.bits()
                    | Self::MONOLITHIC.bits()
            }
            Ring => Self::MMAPOK.bits(),
            BufDef | BufLarge | RxBufDef | RxBufLarge | TxBufDef | TxBufLarge => {
                Self::MMAPOK.bits() | Self::SHAREOK.bits() | Self::PUREDATA.bits()
            }
            Umd | Ubft => Self::MMAPOK.bits(),
            TxaUsd | RxfUsd => Self::MMAPOK.bits() | Self::UREADONLY.bits(),
            // Counters the owner publishes: mappers read them.
            UStats => Self::MMAPOK.bits() | Self::UREADONLY.bits() | Self::MONOLITHIC.bits(),
            FlowAdv | NexusAdv => {
                Self::MMAPOK.bits() | Self::UREADONLY.bits() | Self::MONOLITHIC.bits()
            }
            Sysctls => {
                Self::MMAPOK.bits()
                    | Self::UREADONLY.bits()
                    | Self::MONOLITHIC.bits()
                    | Self::NOREDIRECT.bits()
            }
            // Only the packet-metadata caches use magazines (below).
            Kmd | RxKmd | TxKmd => 0,
            Kbft | RxKbft | TxKbft | TxaKsd | RxfKsd | KStats | Intrinsic => 0,
        };
        let magazines = matches!(id, Kmd | RxKmd | TxKmd);
        let bits = if magazines {
            bits
        } else {
            bits | Self::NOMAGAZINES.bits()
        };
        RegionFlags::from_bits_truncate(bits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_keep_owner_private_regions_unmappable() {
        for &id in RegionId::ALL {
            let f = RegionFlags::template(id);
            assert_eq!(
                f.contains(RegionFlags::MMAPOK),
                id.is_user_mappable(),
                "{id}"
            );
            assert!(!f.contains(RegionFlags::MIRRORED));
        }
    }

    #[test]
    fn only_metadata_templates_use_magazines() {
        let with: Vec<_> = RegionId::ALL
            .iter()
            .filter(|&&id| !RegionFlags::template(id).contains(RegionFlags::NOMAGAZINES))
            .copied()
            .collect();
        assert_eq!(with, [RegionId::Kmd, RegionId::RxKmd, RegionId::TxKmd]);
    }
}
