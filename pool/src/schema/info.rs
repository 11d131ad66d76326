//! What a schema says, decoded: the arena's kind, its rings, regions and
//! worker slots.

use super::*;

/// What kind of arena a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum SchemaArenaKind {
    /// A nexus arena: packet pools, rings, advisories.
    Nexus = 1,
    /// A NECP arena: per-flow statistics.
    Necp = 2,
    /// The system arena: process-wide tunables.
    System = 3,
}

impl SchemaArenaKind {
    /// The value stored in the header's `arena_kind` field.
    pub const fn as_u32(self) -> u32 {
        self as u32
    }

    /// The kind stored as `v`, if `v` names one.
    pub const fn from_u32(v: u32) -> Option<Self> {
        match v {
            1 => Some(Self::Nexus),
            2 => Some(Self::Necp),
            3 => Some(Self::System),
            _ => None,
        }
    }

    /// Short lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Nexus => "nexus",
            Self::Necp => "necp",
            Self::System => "system",
        }
    }
}

impl From<SchemaArenaKind> for u32 {
    fn from(kind: SchemaArenaKind) -> u32 {
        kind.as_u32()
    }
}

impl TryFrom<u32> for SchemaArenaKind {
    type Error = SchemaError;

    fn try_from(v: u32) -> Result<Self, SchemaError> {
        Self::from_u32(v).ok_or(SchemaError::UnknownArenaKind { found: v })
    }
}

impl fmt::Display for SchemaArenaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The four AF_XDP rings, in the order of the header's `rings` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RingKind {
    /// Fill ring: free UMEM frames handed to the kernel for RX.
    Fill,
    /// Completion ring: UMEM frames the kernel has finished sending.
    Completion,
    /// RX ring: received packets.
    Rx,
    /// TX ring: packets to send.
    Tx,
}

impl RingKind {
    /// Every ring kind, in header order.
    pub const ALL: [RingKind; 4] = [Self::Fill, Self::Completion, Self::Rx, Self::Tx];

    /// Number of ring kinds.
    pub const COUNT: usize = Self::ALL.len();

    /// Position in the header's `rings` array.
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Short lower-case name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Fill => "fill",
            Self::Completion => "completion",
            Self::Rx => "rx",
            Self::Tx => "tx",
        }
    }
}

impl fmt::Display for RingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where one present ring is in the span (all offsets from the span base).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RingInfo {
    /// Ring size in descriptors: a power of two.
    pub entries: u32,
    /// Span offset of the producer index (4-aligned).
    pub producer: u64,
    /// Span offset of the consumer index (4-aligned).
    pub consumer: u64,
    /// Span offset of the descriptor array (8-aligned).
    pub desc: u64,
    /// Span offset of the flags word (4-aligned).
    pub flags: u64,
    /// Bytes of one descriptor: 8 for fill and completion (a UMEM address),
    /// 16 for RX and TX (`struct xdp_desc`).
    pub desc_size: u32,
}

impl RingInfo {
    pub(super) fn to_entry(self) -> RingEntry {
        RingEntry {
            present: 1,
            entries: self.entries,
            producer: self.producer,
            consumer: self.consumer,
            desc: self.desc,
            flags: self.flags,
            desc_size: self.desc_size,
            reserved: 0,
        }
    }
}

/// One region of the span, as the schema describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegionEntryInfo {
    /// Which region.
    pub id: RegionId,
    /// Its flags; always include MMAPOK.
    pub flags: RegionFlags,
    /// Span offset of the region.
    pub offset: u64,
    /// Bytes of the region.
    pub size: u64,
    /// Bytes of one object.
    pub obj_size: u64,
    /// Number of objects.
    pub obj_count: u32,
    /// Number of segments.
    pub seg_count: u32,
    /// Bytes of one segment.
    pub seg_size: u64,
    /// The region's uuid.
    pub uuid: [u8; 16],
}

impl RegionEntryInfo {
    /// The entry for a region of geometry `geom` placed at span offset
    /// `offset`.
    pub fn from_geometry(
        id: RegionId,
        flags: RegionFlags,
        offset: u64,
        geom: &RegionGeometry,
        uuid: [u8; 16],
    ) -> Self {
        // usize is at most 64 bits on every target skmem builds for.
        let wide = |v: usize| u64::try_from(v).unwrap_or(u64::MAX);
        Self {
            id,
            flags,
            offset,
            size: wide(geom.size()),
            obj_size: wide(geom.obj_size),
            obj_count: geom.obj_count,
            seg_count: geom.seg_count,
            seg_size: wide(geom.seg_size),
            uuid,
        }
    }

    /// One past the region's last byte, as a span offset; `None` if that
    /// overflows (which a parsed schema never does).
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.size)
    }

    pub(super) fn to_entry(self) -> RegionEntry {
        RegionEntry {
            // Indices are below RegionId::COUNT (28).
            id: self.id as u32,
            flags: self.flags.bits(),
            offset: self.offset,
            size: self.size,
            obj_size: self.obj_size,
            obj_count: self.obj_count,
            seg_count: self.seg_count,
            seg_size: self.seg_size,
            uuid: self.uuid,
        }
    }

    /// Decodes an entry whose id and flags the parser has checked. `None`
    /// only for an unknown id or unknown flag bits.
    pub(super) fn from_checked_entry(e: &RegionEntry) -> Option<Self> {
        Some(Self {
            id: usize::try_from(e.id).ok().and_then(RegionId::from_index)?,
            flags: RegionFlags::from_bits(e.flags)?,
            offset: e.offset,
            size: e.size,
            obj_size: e.obj_size,
            obj_count: e.obj_count,
            seg_count: e.seg_count,
            seg_size: e.seg_size,
            uuid: e.uuid,
        })
    }
}

/// Everything a schema says, as plain Rust: what the owner hands to
/// [`write_schema`] and what [`SchemaView::to_info`] gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaInfo {
    /// The arena's kind.
    pub kind: SchemaArenaKind,
    /// The arena's name: at most [`SCHEMA_NAME_MAX`] bytes, no NUL.
    pub name: String,
    /// Bytes of the whole span.
    pub span_size: u64,
    /// The regions present in the span, in increasing id (and offset) order.
    pub regions: Vec<RegionEntryInfo>,
    /// The rings, indexed by [`RingKind::index`]; `None` until the AF_XDP
    /// socket exists.
    pub rings: [Option<RingInfo>; RingKind::COUNT],
    /// The sequence lock's count when the schema was written (even).
    pub generation: u64,
    /// The worker slots' rings, by slot (empty for an arena without
    /// worker slots).
    pub workers: Vec<WorkerRings>,
}

/// Where one worker slot's two rings are (see [`WorkerEntry`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WorkerRings {
    /// Owner → worker: received packets (the worker's RX ring).
    pub to_worker: RingInfo,
    /// Worker → owner: packets to send or free (the worker's TX ring).
    pub from_worker: RingInfo,
}

impl SchemaInfo {
    /// The ring of kind `kind`, if present.
    pub fn ring(&self, kind: RingKind) -> Option<RingInfo> {
        self.rings.get(kind.index()).copied().flatten()
    }
}
