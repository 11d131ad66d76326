//! The mapper's side: an arena lent by an owner in another process,
//! mapped from the memfds it sent and the schema among them.

use std::collections::HashMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::wire::{self, Msg};
use crate::error::{Error, LendError, Result};
use crate::mapper::{copy_schema_at, Span};
use crate::region::RegionId;
use crate::schema::{SchemaInfo, SchemaView};
use crate::sys::{Mapping, Protection};
use crate::sysctls::Sysctls;
use crate::util::lock;

/// A worker slot as the owner gave it: the slot, the worker's eventfd, the
/// owner's.
pub(crate) type Joined = (u32, OwnedFd, OwnedFd);

/// An arena another process owns, mapped into this one: see the module
/// docs. Dropping it unmaps the span and closes the socket, which the
/// owner counts as an unmap.
#[derive(Debug)]
pub struct RemoteArena {
    inner: Arc<Inner>,
    listener: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Inner {
    sock: OwnedFd,
    span: Span,
    /// The schema as it was when the span was built.
    schema: SchemaInfo,
    arena_id: u64,
    owner_pid: u32,
    /// The owner's SYSCTLS region, mapped read-only.
    sysctls: Mapping,
    redirected: AtomicBool,
    owner_gone: AtomicBool,
    /// Notified when `redirected` or `owner_gone` changes.
    changed: (Mutex<()>, Condvar),
}

impl RemoteArena {
    /// Connects to the owner serving an arena at `path` and maps it. The
    /// owner's refusal comes back as [`LendError::MapperRefused`] with its
    /// reason; anything malformed on the way (the messages, the memfds, the
    /// schema) as [`LendError::Handover`] or [`Error::Schema`].
    pub fn connect(path: impl AsRef<Path>) -> Result<RemoteArena> {
        Ok(Self::connect_as(path.as_ref(), false)?.0)
    }

    /// [`connect`](Self::connect), then, for `join`, asks for a worker
    /// slot before the mapper's thread starts listening: the slot and its
    /// two eventfds (the worker's, the owner's).
    pub(crate) fn connect_as(path: &Path, join: bool) -> Result<(RemoteArena, Option<Joined>)> {
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::sys("socket(AF_UNIX)", e))?;
        let addr = SocketAddrUnix::new(path).map_err(|e| Error::sys("sockaddr_un", e))?;
        rustix::net::connect(&sock, &addr).map_err(|e| Error::sys("connect(arena offer)", e))?;
        let Welcome {
            arena_id,
            owner_pid,
            span_size,
            regions,
            fds,
        } = welcome(sock.as_fd())?;
        let mut fds = fds;
        // `wire::recv` checked the count: one per region, then SYSCTLS.
        let sysctls = fds.pop().ok_or_else(|| {
            Error::Lend(LendError::Handover {
                what: "no memfd came for the sysctls".into(),
            })
        })?;
        let sysctls = crate::sysctls::map_lent(sysctls.as_fd())?;
        let fds: HashMap<RegionId, OwnedFd> = regions.into_iter().zip(fds).collect();
        let schema = read_schema(&fds, span_size)?;
        let span = Span::from_schema(&schema, fds)?;
        wire::send(
            sock.as_fd(),
            &Msg::Ready {
                span_addr: span.addr() as u64,
            },
            &[],
        )?;
        let worker = if join {
            Some(join_slot(sock.as_fd())?)
        } else {
            None
        };
        let inner = Arc::new(Inner {
            sock,
            span,
            schema,
            arena_id,
            owner_pid,
            sysctls,
            redirected: AtomicBool::new(false),
            owner_gone: AtomicBool::new(false),
            changed: (Mutex::new(()), Condvar::new()),
        });
        let listener = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("skmem-mapper".into())
                .spawn(move || listen(&inner))
                .map_err(|source| Error::Sys {
                    call: "spawning the mapper's thread",
                    source,
                })?
        };
        tracing::info!(arena = %inner.schema.name, owner = owner_pid, "arena mapped from its owner");
        Ok((
            RemoteArena {
                inner,
                listener: Some(listener),
            },
            worker,
        ))
    }

    /// The schema the span was built from.
    pub fn schema(&self) -> &SchemaInfo {
        &self.inner.schema
    }

    /// The schema as it is now (the owner rewrites it when a channel binds
    /// or closes), copied whole under its sequence lock.
    pub fn current_schema(&self) -> Result<SchemaInfo> {
        let bytes = self.inner.span.copy_schema()?;
        Ok(SchemaView::parse(&bytes, self.inner.span.size() as u64)?.to_info())
    }

    /// The arena's id in the owner.
    pub fn arena_id(&self) -> u64 {
        self.inner.arena_id
    }

    /// The owner's pid.
    pub fn owner_pid(&self) -> u32 {
        self.inner.owner_pid
    }

    /// The owner's tunables as they are now ([`crate::sysctls`]): what
    /// governs the arena this maps. Readable even once redirected.
    pub fn sysctls(&self) -> Result<Sysctls> {
        crate::sysctls::read_lent(&self.inner.sysctls)
    }

    /// The span's base address in this process.
    pub fn addr(&self) -> *mut u8 {
        self.inner.span.addr()
    }

    /// Bytes of the span.
    pub fn size(&self) -> usize {
        self.inner.span.size()
    }

    /// Address and size of region `id` in the span.
    pub fn region(&self, id: RegionId) -> Option<(*mut u8, usize)> {
        self.inner.span.region(id)
    }

    /// Copies bytes of region `id` from `offset` into `out`;
    /// [`LendError::Redirected`] once the owner has redirected this mapping.
    pub fn read(&self, id: RegionId, offset: usize, out: &mut [u8]) -> Result<()> {
        self.check()?;
        self.inner.span.read(id, offset, out)
    }

    /// Copies `data` into region `id` (one this mapping may write) at
    /// `offset`; [`LendError::Redirected`] once the owner has redirected it.
    pub fn write(&self, id: RegionId, offset: usize, data: &[u8]) -> Result<()> {
        self.check()?;
        self.inner.span.write(id, offset, data)
    }

    fn check(&self) -> Result<()> {
        if self.is_redirected() {
            return Err(Error::Lend(LendError::Redirected {
                arena: self.inner.schema.name.clone(),
            }));
        }
        Ok(())
    }

    /// Has the owner redirected this mapping?
    pub fn is_redirected(&self) -> bool {
        self.inner.redirected.load(Ordering::Acquire)
    }

    /// Has the owner stopped lending (or gone)?
    pub fn owner_gone(&self) -> bool {
        self.inner.owner_gone.load(Ordering::Acquire)
    }

    /// Waits up to `timeout` for the owner to redirect this mapping (or to
    /// go); whether it was redirected.
    pub fn wait_redirected(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (m, cv) = &self.inner.changed;
        let mut g = lock(m);
        while !self.is_redirected() && !self.owner_gone() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            g = cv
                .wait_timeout(g, deadline - now)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
        self.is_redirected()
    }
}

impl Drop for RemoteArena {
    fn drop(&mut self) {
        // Wakes the listener out of its receive; the owner sees the end.
        let _ = rustix::net::shutdown(&self.inner.sock, rustix::net::Shutdown::Both);
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
    }
}

/// What the owner's welcome says, with the memfds that came with it.
struct Welcome {
    arena_id: u64,
    owner_pid: u32,
    span_size: u64,
    /// The regions whose memfds came, in span order.
    regions: Vec<RegionId>,
    /// Their memfds, then one more: SYSCTLS's.
    fds: Vec<OwnedFd>,
}

/// Waits for the owner's welcome (or its refusal).
fn welcome(sock: BorrowedFd<'_>) -> Result<Welcome> {
    match wire::recv(sock)? {
        Some((
            Msg::Welcome {
                arena_id,
                owner_pid,
                span_size,
                regions,
            },
            fds,
        )) => Ok(Welcome {
            arena_id,
            owner_pid,
            span_size,
            regions,
            fds,
        }),
        Some((Msg::Refused { reason }, _)) => Err(Error::Lend(LendError::MapperRefused { reason })),
        Some((other, _)) => Err(Error::Lend(LendError::Handover {
            what: format!("expected a welcome, got {other:?}"),
        })),
        None => Err(Error::Lend(LendError::Handover {
            what: "the owner closed the connection before welcoming".into(),
        })),
    }
}

/// Asks the owner for a worker slot: the slot and its two eventfds (the
/// worker's, the owner's).
fn join_slot(sock: BorrowedFd<'_>) -> Result<Joined> {
    wire::send(sock, &Msg::Join, &[])?;
    match wire::recv(sock)? {
        Some((Msg::Joined { slot }, fds)) => {
            let mut fds = fds.into_iter();
            match (fds.next(), fds.next()) {
                (Some(mine), Some(owner)) => Ok((slot, mine, owner)),
                _ => Err(Error::Lend(LendError::Handover {
                    what: "a worker slot came without its eventfds".into(),
                })),
            }
        }
        Some((Msg::Refused { reason }, _)) => Err(Error::Lend(LendError::MapperRefused { reason })),
        Some((other, _)) => Err(Error::Lend(LendError::Handover {
            what: format!("expected a worker slot, got {other:?}"),
        })),
        None => Err(Error::Lend(LendError::Handover {
            what: "the owner closed the connection before giving a worker slot".into(),
        })),
    }
}

/// The schema among the lent memfds, copied under its sequence lock and
/// parsed as untrusted bytes for a span of `span_size`.
fn read_schema(fds: &HashMap<RegionId, OwnedFd>, span_size: u64) -> Result<SchemaInfo> {
    let fd = fds.get(&RegionId::Schema).ok_or_else(|| {
        Error::Lend(LendError::Handover {
            what: "no memfd came for the schema".into(),
        })
    })?;
    let size = rustix::fs::fstat(fd)
        .map_err(|e| Error::sys("fstat(schema memfd)", e))?
        .st_size as usize;
    if size == 0 || size > 1 << 20 {
        return Err(Error::Lend(LendError::Handover {
            what: format!("a schema memfd of {size} bytes"),
        }));
    }
    let view = Mapping::shared(fd.as_fd(), size, Protection::Read)?;
    // SAFETY: `view` maps `size` readable bytes and lives across the call.
    let bytes = unsafe { copy_schema_at(view.as_ptr(), size) }?;
    Ok(SchemaView::parse(&bytes, span_size)?.to_info())
}

/// The mapper's thread: carries out the owner's redirect requests until
/// the owner says goodbye or the connection ends.
fn listen(inner: &Inner) {
    loop {
        let msg = wire::recv(inner.sock.as_fd());
        match msg {
            Ok(Some((Msg::Redirect { request }, _))) => {
                if let Err(e) = inner.span.redirect() {
                    // Not acknowledged: the owner cuts this mapper off.
                    tracing::error!(error = %e, "redirect failed");
                    continue;
                }
                inner.redirected.store(true, Ordering::Release);
                notify(inner);
                if let Err(e) = wire::send(inner.sock.as_fd(), &Msg::Redirected { request }, &[]) {
                    tracing::warn!(error = %e, "the redirect's answer did not go out");
                }
                tracing::info!(arena = %inner.schema.name, "mapping redirected by its owner");
            }
            Ok(Some((Msg::Goodbye, _))) | Ok(None) => break,
            Ok(Some((other, _))) => {
                tracing::warn!(msg = ?other, "a message out of protocol from the owner");
                break;
            }
            Err(e) => {
                tracing::warn!(error = %e, "a broken message from the owner");
                break;
            }
        }
    }
    inner.owner_gone.store(true, Ordering::Release);
    notify(inner);
}

fn notify(inner: &Inner) {
    let (m, cv) = &inner.changed;
    let _g = lock(m);
    cv.notify_all();
}
