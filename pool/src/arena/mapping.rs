//! A mapping of an arena into this process: the span, what a mapper reads
//! of it (a region's bytes, the schema), and Skywalk's verbs on one
//! mapping — unmap and redirect — whose bookkeeping the arena keeps.

use super::Arena;
use crate::error::ArenaError;
use crate::error::{Error, Result};
use crate::mapper::Span;
use crate::region::RegionId;

/// A mapping of an arena into this process: one contiguous span, unmapped
/// when dropped. Holds a reference on the arena.
#[derive(Debug)]
pub struct ArenaMapping {
    pub(super) arena: Arena,
    /// `None` once unmapped.
    pub(super) span: Option<Span>,
    /// The arena's record of this mapping.
    pub(super) id: u64,
    /// A channel's rings are mapped inside: a redirect is refused.
    pub(super) holds_channel: bool,
}

impl ArenaMapping {
    /// The arena mapped.
    pub fn arena(&self) -> &Arena {
        &self.arena
    }

    /// Base address of the span (null once unmapped).
    pub fn addr(&self) -> *mut u8 {
        self.span
            .as_ref()
            .map_or(std::ptr::null_mut(), |s| s.addr())
    }

    /// Size of the span (0 once unmapped).
    pub fn size(&self) -> usize {
        self.span.as_ref().map_or(0, |s| s.size())
    }

    /// Address and size of region `id` in this span.
    pub fn region(&self, id: RegionId) -> Option<(*mut u8, usize)> {
        self.span.as_ref()?.region(id)
    }

    /// Is the span still mapped?
    pub fn is_mapped(&self) -> bool {
        self.span.is_some()
    }

    /// Unmaps the span now (Skywalk's `skmem_arena_munmap`); dropping the
    /// mapping does the same. If every other mapping was redirected, the
    /// postponed defunct happens here.
    pub fn unmap(&mut self) {
        let Some(span) = self.span.take() else {
            return;
        };
        self.arena.unmapped(self.id, span);
    }

    /// The span, while mapped.
    fn mapped(&self) -> Result<&Span> {
        self.span.as_ref().ok_or_else(|| {
            Error::Arena(ArenaError::NotMapped {
                arena: self.arena.name().to_owned(),
            })
        })
    }

    /// The span's bytes of region `id`, copied (reads of a mapping that may
    /// be redirected or written by others at any time).
    pub fn read_region(&self, id: RegionId, offset: usize, out: &mut [u8]) -> Result<()> {
        self.mapped()?.read(id, offset, out)
    }

    /// The schema this mapping shows, read as a mapper reads it: copied
    /// whole under its sequence lock, then parsed as untrusted bytes.
    pub fn schema(&self) -> Result<crate::schema::SchemaInfo> {
        let span = self.mapped()?;
        let bytes = span.copy_schema()?;
        Ok(crate::schema::SchemaView::parse(&bytes, span.size() as u64)?.to_info())
    }

    /// Was this mapping redirected?
    pub fn is_redirected(&self) -> bool {
        self.arena.is_redirected(self.id)
    }

    /// Marks this mapping as holding a channel's rings (the channel's own).
    pub(crate) fn hold_channel(&mut self) {
        self.holds_channel = true;
    }

    /// Redirects this mapping (Skywalk's `skmem_arena_mredirect`): every
    /// region without NOREDIRECT now reads as zero pages, protections kept.
    /// EALREADY the second time, ENXIO when no longer mapped. Returns true
    /// when this was the last mapping still active: the arena is now
    /// inactive and ready for [`Arena::defunct`].
    ///
    /// The mapping a channel keeps its rings in (its
    /// [`Channel::mapping`](crate::channel::Channel::mapping)) is refused
    /// with [`ArenaError::MappingHoldsChannel`] (EBUSY): zero pages would replace
    /// the rings under the channel. So an arena with a live channel stays
    /// active, and [`Arena::defunct`] answers EBUSY until the channel is
    /// closed; closing it unmaps that mapping, which runs a postponed
    /// defunct if every other mapping was redirected.
    pub fn redirect(&self) -> Result<bool> {
        self.arena
            .redirect(self.id, self.span.as_ref(), self.holds_channel)
    }
}

impl Drop for ArenaMapping {
    fn drop(&mut self) {
        // Settle the arena's books (and finish a postponed defunct, like the
        // channel unmap of Skywalk's `skmem_arena.c`); the span unmaps itself.
        self.unmap();
    }
}
