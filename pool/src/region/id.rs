//! Region identities, in Skywalk's order.

use std::fmt;

macro_rules! region_ids {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal ),* $(,)?) => {
        /// Which region of an arena this is.
        ///
        /// The order is Skywalk's and it matters: every user-mappable region
        /// comes before every owner-private one, so a region's offset in a
        /// mapper's span is the sum of the sizes of the present regions with a
        /// smaller id.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[cfg_attr(feature = "serde", derive(serde::Serialize))]
        #[repr(u8)]
        pub enum RegionId {
            $( $(#[$doc])* $variant, )*
        }

        impl RegionId {
            /// Every region id, in order.
            pub const ALL: &'static [RegionId] = &[$(RegionId::$variant),*];

            /// Short lower-case name, as used in region and cache names.
            pub const fn name(self) -> &'static str {
                match self { $(RegionId::$variant => $name,)* }
            }
        }
    };
}

region_ids! {
    /// Leading guard page(s) of a span.
    GuardHead = "guard_head",
    /// The read-only, versioned layout page a mapper reads first.
    Schema = "schema",
    /// Rings (for AF_XDP: fill, completion, RX and TX).
    Ring = "ring",
    /// Default buffers shared by RX and TX: the AF_XDP UMEM.
    BufDef = "buf_def",
    /// Large buffers shared by RX and TX.
    BufLarge = "buf_large",
    /// RX-only default buffers (split pools, owner-only arenas).
    RxBufDef = "rxbuf_def",
    /// RX-only large buffers.
    RxBufLarge = "rxbuf_large",
    /// TX-only default buffers.
    TxBufDef = "txbuf_def",
    /// TX-only large buffers.
    TxBufLarge = "txbuf_large",
    /// User-visible packet metadata (mirror of KMD).
    Umd = "umd",
    /// User-visible TX-allocation slot descriptors (mirror of TXAKSD).
    TxaUsd = "txausd",
    /// User-visible RX-free slot descriptors (mirror of RXFKSD).
    RxfUsd = "rxfusd",
    /// User-visible buflet table (mirror of KBFT).
    Ubft = "ubft",
    /// User-visible statistics (mirror of KSTATS in NECP arenas).
    UStats = "ustats",
    /// Flow advisory table.
    FlowAdv = "flowadv",
    /// Nexus advisory object.
    NexusAdv = "nexusadv",
    /// Process-wide tunables (system arena).
    Sysctls = "sysctls",
    /// Trailing guard page(s) of a span.
    GuardTail = "guard_tail",
    /// Owner-private packet metadata, RX and TX.
    Kmd = "kmd",
    /// Owner-private RX packet metadata (split pools).
    RxKmd = "rxkmd",
    /// Owner-private TX packet metadata (split pools).
    TxKmd = "txkmd",
    /// Owner-private buflet table.
    Kbft = "kbft",
    /// Owner-private RX buflet table (split pools).
    RxKbft = "rxkbft",
    /// Owner-private TX buflet table (split pools).
    TxKbft = "txkbft",
    /// Owner-private TX-allocation slot descriptors.
    TxaKsd = "txaksd",
    /// Owner-private RX-free slot descriptors.
    RxfKsd = "rxfksd",
    /// Owner-private statistics (NECP arenas).
    KStats = "kstats",
    /// Owner-private intrinsic objects.
    Intrinsic = "intrinsic",
}

impl RegionId {
    /// Number of region ids.
    pub const COUNT: usize = Self::ALL.len();

    /// Position in [`RegionId::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The id at position `i` of [`RegionId::ALL`], if any.
    pub fn from_index(i: usize) -> Option<Self> {
        Self::ALL.get(i).copied()
    }

    /// May this region ever be mapped by a mapper? True for GUARD_HEAD
    /// through GUARD_TAIL, false for every owner-private region.
    pub const fn is_user_mappable(self) -> bool {
        (self as u8) <= (RegionId::GuardTail as u8)
    }

    /// The owner-private master this region mirrors, for the five mirror
    /// pairs (UMD↔KMD, UBFT↔KBFT, TXAUSD↔TXAKSD, RXFUSD↔RXFKSD,
    /// USTATS↔KSTATS).
    pub const fn master(self) -> Option<RegionId> {
        match self {
            RegionId::Umd => Some(RegionId::Kmd),
            RegionId::Ubft => Some(RegionId::Kbft),
            RegionId::TxaUsd => Some(RegionId::TxaKsd),
            RegionId::RxfUsd => Some(RegionId::RxfKsd),
            RegionId::UStats => Some(RegionId::KStats),
            _ => None,
        }
    }

    /// The user-visible mirror of this owner-private master, if it has one.
    pub const fn mirror(self) -> Option<RegionId> {
        match self {
            RegionId::Kmd => Some(RegionId::Umd),
            RegionId::Kbft => Some(RegionId::Ubft),
            RegionId::TxaKsd => Some(RegionId::TxaUsd),
            RegionId::RxfKsd => Some(RegionId::RxfUsd),
            RegionId::KStats => Some(RegionId::UStats),
            _ => None,
        }
    }

    /// Is this one of the two guard regions?
    pub const fn is_guard(self) -> bool {
        matches!(self, RegionId::GuardHead | RegionId::GuardTail)
    }
}

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_user_mappable_id_precedes_every_owner_private_one() {
        let first_private = RegionId::ALL
            .iter()
            .position(|id| !id.is_user_mappable())
            .unwrap();
        assert_eq!(RegionId::ALL[first_private], RegionId::Kmd);
        assert!(RegionId::ALL[first_private..]
            .iter()
            .all(|id| !id.is_user_mappable()));
        assert_eq!(RegionId::COUNT, 28);
    }

    #[test]
    fn mirror_pairs_are_symmetric_and_cross_the_privacy_line() {
        for &id in RegionId::ALL {
            if let Some(m) = id.mirror() {
                assert_eq!(m.master(), Some(id));
                assert!(!id.is_user_mappable() && m.is_user_mappable());
            }
        }
        assert_eq!(
            RegionId::ALL
                .iter()
                .filter(|i| i.mirror().is_some())
                .count(),
            5
        );
    }

    #[test]
    fn index_round_trips() {
        for (i, &id) in RegionId::ALL.iter().enumerate() {
            assert_eq!(id.index(), i);
            assert_eq!(RegionId::from_index(i), Some(id));
        }
        assert_eq!(RegionId::from_index(RegionId::COUNT), None);
    }
}
