//! The layouts of objects the schema points at that are not regions'
//! plain objects: a worker ring (in a RING object) and the nexus advisory
//! (NEXUSADV). The nexus arena sizes its regions from these; `workers`
//! reads and writes the bytes. Both sides name them here, so the layout
//! has one home.

/// A worker ring in its RING object: a producer index, a consumer index
/// and a flags word, each on its own cache line, then the descriptors.
pub mod worker_ring {
    /// Offset of the producer index.
    pub const PRODUCER: u64 = 0;
    /// Offset of the consumer index.
    pub const CONSUMER: u64 = 64;
    /// Offset of the flags word.
    pub const FLAGS: u64 = 128;
    /// Offset of the descriptors.
    pub const DESC: u64 = 256;
    /// Bytes of one descriptor (an AF_XDP `xdp_desc`: address, length,
    /// options).
    pub const DESC_SIZE: usize = 16;

    /// Bytes a ring of `entries` descriptors needs.
    pub const fn bytes(entries: u32) -> usize {
        DESC as usize + entries as usize * DESC_SIZE
    }
}

/// The nexus advisory (NEXUSADV): a header, then one state block per
/// worker slot.
pub mod nexus_advisory {
    /// Bytes of the header.
    pub const HEADER: usize = 48;
    /// Bytes of one slot's state.
    pub const SLOT: usize = 48;

    /// Bytes of the NEXUSADV object for `slots` worker slots.
    pub const fn bytes(slots: usize) -> usize {
        HEADER + SLOT * slots
    }
}
