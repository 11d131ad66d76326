//! The owner's side: an arena offered on a Unix socket, and a thread that
//! welcomes or refuses mappers, watches them, and carries redirects.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags};
use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};

use super::slots::WorkerTable;
use super::wire::{self, Msg};
use super::OfferPolicy;
use crate::arena::Arena;
use crate::error::{ArenaError, Error, LendError, Result};
use crate::util::lock;

/// A mapper the owner lends to: its process and its mapping's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct MapperInfo {
    /// The mapper's pid (from the kernel, not from the mapper).
    pub pid: u32,
    /// Its uid.
    pub uid: u32,
    /// Where its span is, in its own address space (as it says).
    pub span_addr: u64,
    /// Has it redirected its span?
    pub redirected: bool,
}

/// What an offer has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct OfferCounters {
    /// Mappers that mapped the arena.
    pub accepted: u64,
    /// Connections refused (credentials, or the arena not mappable).
    pub refused: u64,
    /// Mappers gone: exited, killed, or closed their socket.
    pub gone: u64,
    /// Mappers cut off for not answering a redirect in time.
    pub cut_off: u64,
}

/// An arena offered to mapper processes on a Unix socket: see the module
/// docs. Dropping it stops the offer: mappers are told goodbye, their
/// records removed, the socket file deleted; what they mapped stays theirs.
#[derive(Debug)]
pub struct ArenaOffer {
    path: PathBuf,
    /// The arena's worker slots, when it has any.
    workers: Option<Arc<WorkerTable>>,
    shared: Arc<Shared>,
    wake: Arc<OwnedFd>,
    server: Option<JoinHandle<()>>,
}

/// What the server thread and the API share.
#[derive(Debug, Default)]
struct Shared {
    cmds: Mutex<VecDeque<Cmd>>,
    /// The mappers and counters as of the server's last change, with a
    /// condition variable for waiters.
    view: Mutex<(Vec<MapperInfo>, OfferCounters)>,
    changed: Condvar,
}

#[derive(Debug)]
enum Cmd {
    Redirect {
        pid: u32,
        reply: mpsc::Sender<Result<bool>>,
    },
    Stop,
}

impl ArenaOffer {
    /// Offers `arena` on a new Unix socket at `path`, to the mappers
    /// `policy` allows. A socket file left at `path` by an owner that died
    /// is removed (and logged); one an owner still serves is an error.
    pub fn serve(arena: &Arena, path: impl AsRef<Path>, policy: OfferPolicy) -> Result<ArenaOffer> {
        let path = path.as_ref().to_owned();
        let listener = listen(&path, policy.beyond_root())?;
        let wake = Arc::new(
            eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                .map_err(|e| Error::sys("eventfd", e))?,
        );
        let shared = Arc::new(Shared::default());
        let workers = WorkerTable::of(arena)?;
        let server = Server {
            arena: arena.clone(),
            workers: workers.clone(),
            listener,
            wake: wake.clone(),
            policy,
            shared: shared.clone(),
            conns: Vec::new(),
            next_request: 1,
            counters: OfferCounters::default(),
        };
        let handle = std::thread::Builder::new()
            .name("skmem-offer".into())
            .spawn(move || server.run())
            .map_err(|source| Error::Sys {
                call: "spawning the offer's thread",
                source,
            })?;
        tracing::info!(arena = arena.name(), path = %path.display(), "arena offered");
        Ok(ArenaOffer {
            path,
            workers,
            shared,
            wake,
            server: Some(handle),
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The arena's worker slots, when it was made with some (what a
    /// [`WorkerHub`](crate::workers::WorkerHub) lends through).
    pub fn worker_table(&self) -> Option<Arc<WorkerTable>> {
        self.workers.clone()
    }

    /// The mappers that have mapped the arena and are still there.
    pub fn mappers(&self) -> Vec<MapperInfo> {
        lock(&self.shared.view).0.clone()
    }

    /// What the offer has done so far.
    pub fn counters(&self) -> OfferCounters {
        lock(&self.shared.view).1
    }

    /// Waits up to `timeout` until `done` holds for the mappers and
    /// counters; whether it does.
    pub fn wait_until(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[MapperInfo], &OfferCounters) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut view = lock(&self.shared.view);
        loop {
            if done(&view.0, &view.1) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            view = self
                .shared
                .changed
                .wait_timeout(view, deadline - now)
                .map_or_else(|e| e.into_inner().0, |(g, _)| g);
        }
    }

    /// Asks mapper `pid` to redirect its span and waits for its answer:
    /// true when every mapping is now redirected (the arena went
    /// inactive). A mapper that does not answer within the policy's bound
    /// is cut off ([`LendError::MapperCutOff`]): counted as gone, its record
    /// removed as an unmap.
    pub fn redirect(&self, pid: u32) -> Result<bool> {
        let (reply, answer) = mpsc::channel();
        self.command(Cmd::Redirect { pid, reply });
        answer.recv().unwrap_or_else(|_| {
            Err(Error::Lend(LendError::Handover {
                what: "the offer's thread is gone".into(),
            }))
        })
    }

    fn command(&self, cmd: Cmd) {
        lock(&self.shared.cmds).push_back(cmd);
        // A full eventfd counter still wakes the server; nothing to do.
        let _ = rustix::io::write(&*self.wake, &1u64.to_ne_bytes());
    }
}

impl Drop for ArenaOffer {
    fn drop(&mut self) {
        self.command(Cmd::Stop);
        if let Some(h) = self.server.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A listening `SOCK_SEQPACKET` socket at `path`: owner and group only, or
/// anyone (`open`) when the policy lets others than root map (the peer's
/// credentials are checked either way).
fn listen(path: &Path, open: bool) -> Result<OwnedFd> {
    let sys = |call| move |e| Error::sys(call, e);
    let addr = SocketAddrUnix::new(path).map_err(sys("sockaddr_un"))?;
    if path.exists() {
        let probe = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(sys("socket(AF_UNIX)"))?;
        match rustix::net::connect(&probe, &addr) {
            Ok(()) => {
                return Err(Error::Lend(LendError::Handover {
                    what: format!("another owner serves {}", path.display()),
                }))
            }
            Err(_) => {
                tracing::info!(path = %path.display(), "removed a stale socket left by an owner that died");
                std::fs::remove_file(path).map_err(|source| Error::Sys {
                    call: "unlink(stale socket)",
                    source,
                })?;
            }
        }
    }
    let fd = rustix::net::socket_with(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .map_err(sys("socket(AF_UNIX)"))?;
    // Bound under a temporary name, given its mode, listening — and only
    // then renamed into place: a mapper that connects as soon as the path
    // exists is never refused (ECONNREFUSED between bind and listen), and
    // never finds the socket with the umask's mode. (A path too long for
    // the temporary name is bound in place.)
    let tmp = {
        let mut t = path.as_os_str().to_owned();
        t.push(".new");
        std::path::PathBuf::from(t)
    };
    let (bound, tmp_addr) = match SocketAddrUnix::new(&tmp) {
        Ok(a) => (tmp.as_path(), a),
        Err(_) => (path, addr),
    };
    if bound != path {
        // Left by an owner that died between bind and rename.
        let _ = std::fs::remove_file(bound);
    }
    rustix::net::bind(&fd, &tmp_addr).map_err(sys("bind(AF_UNIX)"))?;
    let mode = if open { 0o666 } else { 0o600 };
    use std::os::unix::fs::PermissionsExt;
    let placed = std::fs::set_permissions(bound, std::fs::Permissions::from_mode(mode))
        .map_err(|source| Error::Sys {
            call: "chmod(socket)",
            source,
        })
        .and_then(|()| rustix::net::listen(&fd, 16).map_err(sys("listen")))
        .and_then(|()| {
            if bound == path {
                return Ok(());
            }
            std::fs::rename(bound, path).map_err(|source| Error::Sys {
                call: "rename(socket)",
                source,
            })
        });
    if let Err(e) = placed {
        let _ = std::fs::remove_file(bound);
        return Err(e);
    }
    Ok(fd)
}

/// One mapper's connection.
#[derive(Debug)]
struct Conn {
    sock: OwnedFd,
    pidfd: OwnedFd,
    pid: u32,
    uid: u32,
    span_size: u64,
    /// Its mapping's record, once it said it mapped.
    map: Option<(u64, u64)>,
    /// Before `map`: when it must have mapped by.
    ready_by: Instant,
    redirected: bool,
    /// A redirect asked and not answered: its number, its deadline, where
    /// the answer goes.
    redirect: Option<(u64, Instant, mpsc::Sender<Result<bool>>)>,
    /// The worker slot it holds, once it joined.
    slot: Option<usize>,
    /// It asked for a slot while the only free one was still being
    /// emptied (its last worker's frames not yet back): asked again until
    /// this deadline.
    join_by: Option<Instant>,
}

/// The offer's thread.
struct Server {
    arena: Arena,
    workers: Option<Arc<WorkerTable>>,
    listener: OwnedFd,
    wake: Arc<OwnedFd>,
    policy: OfferPolicy,
    shared: Arc<Shared>,
    conns: Vec<Conn>,
    next_request: u64,
    counters: OfferCounters,
}

/// Why a connection ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The mapper went (exit, close, a broken message).
    Gone,
    /// It did not answer a redirect in time.
    CutOff,
    /// It never said it mapped.
    NotReady,
    /// The offer stops.
    Stop,
}

impl Server {
    fn run(mut self) {
        loop {
            let (listener, wake, socks) = self.poll();
            if wake && self.commands() {
                self.end_all();
                return;
            }
            if listener {
                self.accept_all();
            }
            for (i, (readable, exited)) in socks.into_iter().enumerate().rev() {
                if exited {
                    self.end(i, End::Gone);
                } else if readable {
                    self.message(i);
                }
            }
            self.deadlines();
            self.retry_joins();
        }
    }

    /// Asks again for the slots of workers that joined while their slot
    /// was being emptied (a replacement that started as the worker it
    /// replaces died).
    fn retry_joins(&mut self) {
        for i in (0..self.conns.len()).rev() {
            if self.conns[i].join_by.is_some() {
                self.join(i);
            }
        }
    }

    /// Waits for anything to do; says what is ready: the listener, the
    /// wake-up, and per connection (socket readable or hung up, process
    /// exited).
    fn poll(&self) -> (bool, bool, Vec<(bool, bool)>) {
        let mut fds = vec![
            PollFd::new(&self.listener, PollFlags::IN),
            PollFd::new(&*self.wake, PollFlags::IN),
        ];
        for c in &self.conns {
            fds.push(PollFd::new(&c.sock, PollFlags::IN));
            fds.push(PollFd::new(&c.pidfd, PollFlags::IN));
        }
        let timeout = self.next_deadline().map(|d| {
            let left = d.saturating_duration_since(Instant::now());
            rustix::fs::Timespec {
                tv_sec: left.as_secs() as i64,
                tv_nsec: left.subsec_nanos() as _,
            }
        });
        if let Err(e) = poll(&mut fds, timeout.as_ref()) {
            if e != rustix::io::Errno::INTR {
                tracing::error!(error = %e, "offer: poll failed");
            }
        }
        let ready = |f: &PollFd<'_>| !f.revents().is_empty();
        let socks = fds[2..]
            .chunks(2)
            .map(|p| (ready(&p[0]), ready(&p[1])))
            .collect();
        (ready(&fds[0]), ready(&fds[1]), socks)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter_map(|c| match (&c.map, &c.redirect) {
                (None, _) => Some(c.ready_by),
                (Some(_), Some((_, by, _))) => Some(*by),
                // A pending join is asked again soon.
                _ if c.join_by.is_some() => Some(Instant::now() + Duration::from_millis(5)),
                _ => None,
            })
            .min()
    }

    /// Runs the queued commands; true on Stop.
    fn commands(&mut self) -> bool {
        let mut buf = [0u8; 8];
        let _ = rustix::io::read(&*self.wake, &mut buf);
        loop {
            let cmd = lock(&self.shared.cmds).pop_front();
            match cmd {
                None => return false,
                Some(Cmd::Stop) => return true,
                Some(Cmd::Redirect { pid, reply }) => self.ask_redirect(pid, reply),
            }
        }
    }

    fn ask_redirect(&mut self, pid: u32, reply: mpsc::Sender<Result<bool>>) {
        let name = self.arena.name().to_owned();
        let Some(c) = self
            .conns
            .iter_mut()
            .find(|c| c.pid == pid && c.map.is_some())
        else {
            let _ = reply.send(Err(Error::Arena(ArenaError::NotMapped { arena: name })));
            return;
        };
        if c.redirected || c.redirect.is_some() {
            let _ = reply.send(Err(Error::Arena(ArenaError::AlreadyRedirected {
                arena: name,
            })));
            return;
        }
        let request = self.next_request;
        self.next_request += 1;
        // A mapper that cannot be written to is cut off at the deadline.
        let _ = wire::send_plain(&c.sock, &Msg::Redirect { request });
        c.redirect = Some((
            request,
            Instant::now() + self.policy.redirect_timeout,
            reply,
        ));
    }

    fn accept_all(&mut self) {
        loop {
            match rustix::net::accept_with(&self.listener, SocketFlags::CLOEXEC) {
                Ok(sock) => self.welcome(sock),
                Err(e) if e == rustix::io::Errno::AGAIN => return,
                Err(e) if e == rustix::io::Errno::INTR => {}
                Err(e) => {
                    tracing::warn!(error = %e, "offer: accept failed");
                    return;
                }
            }
        }
    }

    /// A new connection: the peer's credentials checked, then the memfds
    /// sent, or a refusal with its reason.
    fn welcome(&mut self, sock: OwnedFd) {
        let cred = match rustix::net::sockopt::socket_peercred(&sock) {
            Ok(c) => c,
            Err(e) => return self.refuse(&sock, 0, format!("no credentials: {e}")),
        };
        let (pid, uid, gid) = (
            cred.pid.as_raw_nonzero().get() as u32,
            cred.uid.as_raw(),
            cred.gid.as_raw(),
        );
        if let Err(reason) = self.policy.check(uid, gid) {
            return self.refuse(&sock, pid, reason);
        }
        if self.conns.len() >= self.policy.max_mappers {
            let reason = format!(
                "the owner serves at most {} mappers at once",
                self.policy.max_mappers
            );
            return self.refuse(&sock, pid, reason);
        }
        let pidfd = match crate::sys::peer_pidfd(sock.as_fd(), pid) {
            Ok(p) => p,
            Err(e) => return self.refuse(&sock, pid, format!("cannot watch pid {pid}: {e}")),
        };
        let lent = match self.arena.lend() {
            Ok(l) => l,
            Err(e) => return self.refuse(&sock, pid, e.to_string()),
        };
        let sysctls = match crate::sysctls::region() {
            Ok(r) => r,
            Err(e) => return self.refuse(&sock, pid, format!("no sysctls to lend: {e}")),
        };
        let fds: Vec<BorrowedFd<'_>> = lent
            .regions
            .iter()
            .map(|(_, r)| r)
            .chain([&sysctls])
            .filter_map(|r| r.fd())
            .collect();
        let welcome = Msg::Welcome {
            arena_id: lent.arena_id,
            owner_pid: std::process::id(),
            span_size: lent.span_size,
            regions: lent.regions.iter().map(|(id, _)| *id).collect(),
        };
        if let Err(e) = wire::send(sock.as_fd(), &welcome, &fds) {
            tracing::warn!(pid, error = %e, "offer: the welcome did not go out");
            return;
        }
        tracing::info!(pid, uid, arena = self.arena.name(), "mapper welcomed");
        self.conns.push(Conn {
            sock,
            pidfd,
            pid,
            uid,
            span_size: lent.span_size,
            map: None,
            ready_by: Instant::now() + self.policy.ready_timeout,
            redirected: false,
            redirect: None,
            slot: None,
            join_by: None,
        });
    }

    fn refuse(&mut self, sock: &OwnedFd, pid: u32, reason: String) {
        tracing::warn!(pid, arena = self.arena.name(), %reason, "mapper refused");
        // Counted before the mapper hears it: whoever it tells, or whoever
        // waited for its refusal, then sees the count.
        self.counters.refused += 1;
        self.publish();
        let _ = wire::send_plain(sock, &Msg::Refused { reason });
    }

    /// A message from connection `i` (or its end).
    fn message(&mut self, i: usize) {
        let msg = wire::recv(self.conns[i].sock.as_fd());
        let (pid, span_size) = (self.conns[i].pid, self.conns[i].span_size as usize);
        match msg {
            Ok(Some((Msg::Ready { span_addr }, _))) if self.conns[i].map.is_none() => {
                match self.arena.map_lent(pid, (span_addr as usize, span_size)) {
                    Ok(id) => {
                        self.conns[i].map = Some((id, span_addr));
                        self.counters.accepted += 1;
                        self.publish();
                    }
                    Err(e) => {
                        let c = self.conns.remove(i);
                        self.refuse(&c.sock, pid, e.to_string());
                    }
                }
            }
            Ok(Some((Msg::Redirected { request }, _)))
                if self.conns[i]
                    .redirect
                    .as_ref()
                    .is_some_and(|r| r.0 == request) =>
            {
                let c = &mut self.conns[i];
                let reply = c.redirect.take().map(|r| r.2);
                let r = match c.map {
                    Some((id, addr)) => {
                        self.arena
                            .redirected_lent(id, pid, (addr as usize, span_size))
                    }
                    None => Err(Error::Arena(ArenaError::NotMapped {
                        arena: self.arena.name().to_owned(),
                    })),
                };
                c.redirected = r.is_ok();
                // A redirected worker processes nothing more: what was lent
                // to it comes back.
                if let (Some(slot), Some(t)) = (c.slot.take(), &self.workers) {
                    t.leave(slot);
                }
                // Published before the answer: the asker sees it at once.
                self.publish();
                if let Some(reply) = reply {
                    let _ = reply.send(r);
                }
            }
            Ok(Some((Msg::Join, _)))
                if self.conns[i].map.is_some() && self.conns[i].slot.is_none() =>
            {
                self.join(i)
            }
            Ok(None) => self.end(i, End::Gone),
            Ok(Some((other, _))) => {
                tracing::warn!(pid, msg = ?other, "offer: a message out of protocol; the mapper is cut loose");
                self.end(i, End::Gone);
            }
            Err(e) => {
                tracing::warn!(pid, error = %e, "offer: a broken message; the mapper is cut loose");
                self.end(i, End::Gone);
            }
        }
    }

    /// Connection `i` asks for a worker slot: given with the eventfds, or
    /// refused (and the connection ended) when the arena has none free.
    fn join(&mut self, i: usize) {
        let pid = self.conns[i].pid;
        let slot = match &self.workers {
            None => Err("the arena has no worker slots".to_owned()),
            Some(t) if self.conns[i].redirected => {
                let _ = t;
                Err("a redirected mapper cannot be a worker".to_owned())
            }
            Some(t) => match t.join(pid) {
                Ok(Some(slot)) => Ok((t.clone(), slot)),
                Ok(None) if t.emptying() => {
                    // A slot is being emptied: ask again shortly, within
                    // the time a mapper has to map.
                    let c = &mut self.conns[i];
                    let by = *c
                        .join_by
                        .get_or_insert(Instant::now() + self.policy.ready_timeout);
                    if Instant::now() < by {
                        return;
                    }
                    Err(format!("all {} worker slots are taken", t.len()))
                }
                Ok(None) => Err(format!("all {} worker slots are taken", t.len())),
                Err(e) => Err(e.to_string()),
            },
        };
        self.conns[i].join_by = None;
        match slot {
            Ok((t, slot)) => {
                let fds = [t.wake_fd(slot), t.owner_wake_fd()];
                let joined = Msg::Joined { slot: slot as u32 };
                if let Err(e) = wire::send(self.conns[i].sock.as_fd(), &joined, &fds) {
                    tracing::warn!(pid, error = %e, "offer: the worker's slot did not go out");
                    t.leave(slot);
                    return self.end(i, End::Gone);
                }
                self.conns[i].slot = Some(slot);
                tracing::info!(pid, slot, arena = self.arena.name(), "worker joined");
            }
            Err(reason) => {
                let c = self.conns.remove(i);
                if let Some((id, addr)) = c.map {
                    let span = (addr as usize, c.span_size as usize);
                    self.arena.unmapped_lent(id, c.pid, span, true);
                }
                self.refuse(&c.sock, pid, reason);
            }
        }
    }

    fn deadlines(&mut self) {
        let now = Instant::now();
        for i in (0..self.conns.len()).rev() {
            let c = &self.conns[i];
            if c.map.is_none() && now >= c.ready_by {
                self.end(i, End::NotReady);
            } else if c.redirect.as_ref().is_some_and(|r| now >= r.1) {
                self.end(i, End::CutOff);
            }
        }
    }

    /// Ends connection `i`: its record goes as an unmap (as gone unless the
    /// offer stops), a waiting redirect is answered.
    fn end(&mut self, i: usize, why: End) {
        let c = self.conns.remove(i);
        if let (Some(slot), Some(t)) = (c.slot, &self.workers) {
            t.leave(slot);
        }
        if why == End::Stop {
            let _ = wire::send_plain(&c.sock, &Msg::Goodbye);
        }
        if let Some((id, addr)) = c.map {
            let span = (addr as usize, c.span_size as usize);
            self.arena.unmapped_lent(id, c.pid, span, why != End::Stop);
        }
        match why {
            End::Gone => self.counters.gone += 1,
            End::CutOff => self.counters.cut_off += 1,
            End::NotReady | End::Stop => {}
        }
        self.publish();
        if let Some((_, _, reply)) = c.redirect {
            let err = match why {
                End::CutOff => Error::Lend(LendError::MapperCutOff {
                    pid: c.pid,
                    millis: self.policy.redirect_timeout.as_millis() as u64,
                }),
                _ => Error::Arena(ArenaError::NotMapped {
                    arena: self.arena.name().to_owned(),
                }),
            };
            let _ = reply.send(Err(err));
        }
        tracing::info!(pid = c.pid, uid = c.uid, why = ?why, "mapper's connection ended");
    }

    fn end_all(&mut self) {
        while !self.conns.is_empty() {
            self.end(self.conns.len() - 1, End::Stop);
        }
    }

    /// Publishes the mappers and counters to the API, and wakes waiters.
    fn publish(&self) {
        let mappers = self
            .conns
            .iter()
            .filter_map(|c| {
                c.map.map(|(_, addr)| MapperInfo {
                    pid: c.pid,
                    uid: c.uid,
                    span_addr: addr,
                    redirected: c.redirected,
                })
            })
            .collect();
        *lock(&self.shared.view) = (mappers, self.counters);
        self.shared.changed.notify_all();
    }
}
