//! Telling the library's own munmaps from the process's: see the
//! module documentation's "munmap behind the library's back".

use super::*;

/// A munmap or other event waiting for its verdict (see the module docs).
pub(super) struct Held {
    ev: ObservedEvent,
    /// Munmap not yet resolved: until then it and all later events wait.
    pending_until: Option<Instant>,
    /// The library's own munmap: dropped.
    drop: bool,
}

/// Holds munmap events until the library's `unmap` hook (or anything else
/// from the same thread, the process's exit or [`MUNMAP_HOLD`]) tells
/// whether they were the library's own; keeps every event in order.
#[derive(Default)]
pub(super) struct MunmapFilter {
    held: VecDeque<Held>,
}

impl MunmapFilter {
    pub(super) fn push(&mut self, ev: ObservedEvent, now: Instant) {
        if ev.code == EVENT_MUNMAP {
            self.held.push_back(Held {
                ev,
                pending_until: Some(now + MUNMAP_HOLD),
                drop: false,
            });
            return;
        }
        let library_unmap = ev.hook() == Some(HookEvent::ArenaUnmap) && ev.error == 0;
        for h in self.held.iter_mut() {
            if h.pending_until.is_none() || h.ev.pid != ev.pid {
                continue;
            }
            if ev.code == EVENT_EXIT {
                h.pending_until = None;
            } else if h.ev.tid == ev.tid {
                h.pending_until = None;
                if library_unmap && ev.span_addr == h.ev.span_addr {
                    h.drop = true;
                }
            }
        }
        self.held.push_back(Held {
            ev,
            pending_until: None,
            drop: false,
        });
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.held.front().and_then(|h| h.pending_until)
    }

    pub(super) fn release(&mut self, now: Instant) -> Vec<ObservedEvent> {
        let mut out = Vec::new();
        while let Some(front) = self.held.front() {
            if front.pending_until.is_some_and(|t| now < t) {
                break;
            }
            let h = self.held.pop_front().expect("front exists");
            if !h.drop {
                out.push(h.ev);
            }
        }
        out
    }
}
