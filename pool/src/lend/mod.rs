//! Lending an arena to other processes: the owner offers it on a Unix
//! socket ([`ArenaOffer`]), a mapper in another process connects and maps
//! it ([`RemoteArena`]) — Skywalk's user tasks mapping the kernel's arena.
//!
//! # What crosses, and what cannot be broken
//!
//! A mapper connects to the owner's `SOCK_SEQPACKET` socket. The owner
//! reads its credentials from the kernel (`SO_PEERCRED`, and a pidfd of
//! it, `SO_PEERPIDFD`), refuses it with a reason unless its uid (or gid) is
//! allowed ([`OfferPolicy`]: root only by default), and otherwise sends the
//! memfds of the arena's user-mappable regions (`SCM_RIGHTS`) — never an
//! owner-private one (KMD, KBFT, the KSD slots, KSTATS). The mapper finds
//! the schema among them, copies it under its sequence lock, parses it as
//! untrusted bytes, and builds its span exactly as the owner's mapper lays
//! one out: every region at the schema's offset, guards inaccessible,
//! read-only regions read-only, each memfd checked against its region.
//!
//! Every hand-over also sends the owner's SYSCTLS region, sealed
//! read-only: [`RemoteArena::sysctls`] reads the tunables that govern the
//! arena (ring sizes, batch, waiting mode, limits; see [`crate::sysctls`]),
//! as Skywalk's tasks read the kernel's.
//!
//! The memfds protect the owner whoever holds them: their size is sealed
//! (a truncated UMEM would be a SIGBUS in the owner), a region mappers only
//! read is sealed against every new write (no `mmap(PROT_WRITE)`, no
//! `mprotect`, no `write(2)`, not even through a reopen), and no holder can
//! add a seal. See [`crate::sys::Memfd`].
//!
//! # Records, liveness, redirect, defunct
//!
//! Each mapper is a mapping record of the arena, with its pid: the arena's
//! statistics list it, its events name it. The owner watches each mapper's
//! socket and pidfd: one that exits, is killed or closes its socket has its
//! record removed exactly as an unmap — the postponed defunct included.
//!
//! No process can change another's mappings on Linux, so a redirect is
//! asked for: [`ArenaOffer::redirect`] sends the request, the mapper's
//! library overlays zero pages on its span's redirectable regions (the
//! schema stays readable, protections are kept) and answers; from then on
//! its [`RemoteArena::read`] and [`RemoteArena::write`] fail with
//! [`LendError::Redirected`](crate::error::LendError::Redirected). A mapper that does not
//! answer within the policy's bound is cut off: its socket closed, its
//! record removed as gone, counted. What the owner cannot do is take the
//! pages out of the mapper's address space: a cut-off mapper keeps reading
//! what its mapping shows until it unmaps — which is why a defunct only
//! drops the owner's own hold, and the pages go when the last mapper's view
//! does.
//!
//! ```no_run
//! use skmem::arena::{Arena, NexusParams};
//! use skmem::lend::{ArenaOffer, OfferPolicy, RemoteArena};
//! use skmem::region::RegionId;
//!
//! // The owner, in one process:
//! let arena = Arena::create_nexus(&NexusParams::new("lent"))?;
//! let offer = ArenaOffer::serve(&arena, "/run/skmem-lent.sock", OfferPolicy::root_only())?;
//!
//! // A mapper, in another:
//! let remote = RemoteArena::connect("/run/skmem-lent.sock")?;
//! let mut magic = [0u8; 8];
//! remote.read(RegionId::Schema, 0, &mut magic)?;
//! assert_eq!(&magic, b"SKMEMSCH");
//!
//! // Back in the owner: its mappers, then a redirect of one.
//! let pid = offer.mappers()[0].pid;
//! offer.redirect(pid)?;
//! # Ok::<(), skmem::Error>(())
//! ```

mod offer;
mod remote;
pub(crate) mod slots;
pub mod wire;

use std::time::Duration;

pub use offer::{ArenaOffer, MapperInfo, OfferCounters};
pub use remote::RemoteArena;
pub use slots::WorkerTable;

/// Who may map an offered arena, and how long a redirect may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferPolicy {
    /// Uids allowed beside root.
    pub uids: Vec<u32>,
    /// Gids allowed (a mapper whose primary gid is one of them).
    pub gids: Vec<u32>,
    /// How long a mapper has to answer a redirect before it is cut off.
    pub redirect_timeout: Duration,
    /// How long a mapper has, once welcomed, to say it has mapped.
    pub ready_timeout: Duration,
    /// Most mappers served at once; one more is refused.
    pub max_mappers: usize,
}

impl OfferPolicy {
    /// Root only, with the limits of the process's
    /// [sysctls](crate::sysctls) (unless tuned: 64 mappers, 1 s to answer a
    /// redirect, 5 s to map).
    pub fn root_only() -> Self {
        let t = crate::sysctls::current();
        Self {
            uids: Vec::new(),
            gids: Vec::new(),
            redirect_timeout: Duration::from_millis(t.redirect_timeout_ms.into()),
            ready_timeout: Duration::from_millis(t.ready_timeout_ms.into()),
            max_mappers: t.max_mappers as usize,
        }
    }

    /// Also allows uid `uid`.
    pub fn allow_uid(mut self, uid: u32) -> Self {
        self.uids.push(uid);
        self
    }

    /// Also allows gid `gid`.
    pub fn allow_gid(mut self, gid: u32) -> Self {
        self.gids.push(gid);
        self
    }

    /// Sets how long a mapper has to answer a redirect.
    pub fn redirect_timeout(mut self, t: Duration) -> Self {
        self.redirect_timeout = t;
        self
    }

    /// Whether a peer of `uid`/`gid` may map; otherwise why not.
    pub fn check(&self, uid: u32, gid: u32) -> Result<(), String> {
        if uid == 0 || self.uids.contains(&uid) || self.gids.contains(&gid) {
            Ok(())
        } else {
            Err(format!(
                "uid {uid} (gid {gid}) may not map this arena: the owner allows {}",
                self.describe()
            ))
        }
    }

    /// Whether anyone but root may connect (the socket's mode follows).
    pub(crate) fn beyond_root(&self) -> bool {
        !self.uids.is_empty() || !self.gids.is_empty()
    }

    fn describe(&self) -> String {
        let mut who = vec!["root".to_owned()];
        who.extend(self.uids.iter().map(|u| format!("uid {u}")));
        who.extend(self.gids.iter().map(|g| format!("gid {g}")));
        who.join(", ")
    }
}

impl Default for OfferPolicy {
    fn default() -> Self {
        Self::root_only()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_always_allowed_others_only_when_named() {
        let p = OfferPolicy::root_only();
        assert!(p.check(0, 0).is_ok());
        let why = p.check(1000, 1000).unwrap_err();
        assert!(why.contains("uid 1000") && why.contains("root"), "{why}");
        let p = p.allow_uid(1000).allow_gid(50);
        assert!(p.check(1000, 7).is_ok() && p.check(7, 50).is_ok());
        assert!(p.check(7, 7).is_err());
        assert!(p.beyond_root());
    }
}
