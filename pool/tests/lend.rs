//! The hand-over in one process (the mapper on a thread; the separately
//! executed mapper's tests are in `tools/tests/lend.rs`): what a mapper
//! maps is the owner's layout and bytes, its writes reach the owner, a
//! redirect and a mapper's going follow Skywalk's rules, and a fake owner
//! gets typed errors, never a panic.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::Duration;

use skmem::arena::{Arena, NexusParams};
use skmem::error::{ArenaError, LendError, RegionError};
use skmem::lend::wire::{self, Msg};
use skmem::lend::{ArenaOffer, OfferPolicy, RemoteArena};
use skmem::region::RegionId;
use skmem::Error;

/// A socket path of this test's own.
fn path(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("skmem-lend-{}-{tag}.sock", std::process::id()))
}

fn small(name: &str) -> Arena {
    let mut p = NexusParams::new(name);
    p.pool.packets = 256;
    Arena::create_nexus(&p).unwrap()
}

#[test]
fn a_mapper_maps_the_owners_layout_and_shares_its_bytes() {
    let arena = small("lend-layout");
    let offer = ArenaOffer::serve(&arena, path("layout"), OfferPolicy::root_only()).unwrap();
    let remote = RemoteArena::connect(offer.path()).unwrap();
    assert!(offer.wait_until(Duration::from_secs(5), |m, _| m.len() == 1));
    // The same layout as the owner's own mapper, found from the schema.
    let own = arena.map().unwrap();
    assert_eq!(remote.size(), own.size());
    assert_eq!(remote.schema(), &own.schema().unwrap());
    for e in &remote.schema().regions {
        let (at, len) = remote.region(e.id).unwrap();
        assert_eq!(at as usize - remote.addr() as usize, e.offset as usize);
        assert_eq!(len, e.size as usize);
    }
    // No owner-private region crossed.
    for id in [RegionId::Kmd, RegionId::TxaKsd, RegionId::RxfKsd] {
        assert!(remote.region(id).is_none(), "{id}");
    }
    // A packet the owner writes is in the mapper's span at its address;
    // the mapper's write to UMD reaches the owner.
    let pool = arena.nexus().unwrap().rx_pool().unwrap().clone();
    let mut w = pool.worker().unwrap();
    let mut pkt = w.alloc().unwrap();
    pool.write_buffer(&mut pkt, 0, b"lent bytes").unwrap();
    let mut got = [0u8; 10];
    let at = pool.buf_addr(&pkt).unwrap() as usize;
    remote.read(RegionId::BufDef, at, &mut got).unwrap();
    assert_eq!(&got, b"lent bytes");
    let umd_at = pkt.index().get() as usize * skmem::pool::META_SIZE;
    remote
        .write(RegionId::Umd, umd_at, &77u32.to_le_bytes())
        .unwrap();
    assert_eq!(pool.meta(&pkt).unwrap().len, 77);
    // A read-only region refuses the mapper's write.
    assert!(matches!(
        remote.write(RegionId::Schema, 0, &[0]),
        Err(Error::Region(RegionError::Misuse { .. }))
    ));
    w.free(pkt).unwrap();
    // The records: the owner's mapping and the mapper's.
    assert_eq!(arena.map_count(), 2);
    drop(remote);
    assert!(offer.wait_until(Duration::from_secs(5), |m, c| m.is_empty() && c.gone == 1));
    assert_eq!(arena.map_count(), 1);
}

#[test]
fn a_redirected_mapper_reads_zeros_and_its_calls_fail_and_the_last_one_makes_the_arena_inactive() {
    let arena = small("lend-redirect");
    let offer = ArenaOffer::serve(&arena, path("redirect"), OfferPolicy::root_only()).unwrap();
    let remote = RemoteArena::connect(offer.path()).unwrap();
    assert!(offer.wait_until(Duration::from_secs(5), |m, _| m.len() == 1));
    let pool = arena.nexus().unwrap().rx_pool().unwrap().clone();
    let mut w = pool.worker().unwrap();
    let mut pkt = w.alloc().unwrap();
    pool.write_buffer(&mut pkt, 0, b"before").unwrap();
    let at = pool.buf_addr(&pkt).unwrap() as usize;
    let pid = offer.mappers()[0].pid;
    assert!(offer.redirect(pid).unwrap(), "the only mapping: inactive");
    assert!(remote.wait_redirected(Duration::from_secs(5)));
    assert!(!arena.is_active());
    assert!(matches!(
        remote.read(RegionId::BufDef, at, &mut [0; 6]),
        Err(Error::Lend(LendError::Redirected { .. }))
    ));
    // Its span reads zeros where the buffers were; the schema stays.
    let (bufs, _) = remote.region(RegionId::BufDef).unwrap();
    // SAFETY: the span maps BUF_DEF (now zero pages) readable while
    // `remote` lives.
    let first = unsafe { std::slice::from_raw_parts(bufs.add(at), 6) };
    assert_eq!(first, [0; 6]);
    assert_eq!(remote.current_schema().unwrap().name, arena.name());
    assert!(offer.mappers()[0].redirected);
    assert!(matches!(
        offer.redirect(pid),
        Err(Error::Arena(ArenaError::AlreadyRedirected { .. }))
    ));
    w.free(pkt).unwrap();
    drop(w);
    drop(pool);
    // The mapper goes; the arena, inactive, is the owner's to defunct.
    drop(remote);
    assert!(offer.wait_until(Duration::from_secs(5), |m, _| m.is_empty()));
    assert_eq!(arena.map_count(), 0);
    arena.defunct().unwrap();
    assert!(arena.is_defunct());
}

#[test]
fn an_inactive_arena_is_not_lent() {
    let arena = small("lend-inactive");
    let own = arena.map().unwrap();
    own.redirect().unwrap();
    let offer = ArenaOffer::serve(&arena, path("inactive"), OfferPolicy::root_only()).unwrap();
    let e = RemoteArena::connect(offer.path()).unwrap_err();
    assert!(
        matches!(&e, Error::Lend(LendError::MapperRefused { reason }) if reason.contains("not active")),
        "{e}"
    );
    assert_eq!(e.errno(), libc::EACCES);
    assert_eq!(offer.counters().refused, 1);
}

#[test]
fn a_second_owner_at_a_served_path_is_refused_and_a_stale_socket_is_replaced() {
    let arena = small("lend-path");
    let p = path("path");
    let offer = ArenaOffer::serve(&arena, &p, OfferPolicy::root_only()).unwrap();
    assert!(matches!(
        ArenaOffer::serve(&arena, &p, OfferPolicy::root_only()),
        Err(Error::Lend(LendError::Handover { .. }))
    ));
    drop(offer);
    assert!(!p.exists(), "the socket file goes with the offer");
    // A socket file nobody serves (as a killed owner leaves one).
    let stale = std::os::unix::net::UnixListener::bind(&p).unwrap();
    drop(stale);
    assert!(p.exists());
    let offer = ArenaOffer::serve(&arena, &p, OfferPolicy::root_only()).unwrap();
    drop(RemoteArena::connect(offer.path()).unwrap());
}

/// A fake owner: accepts one connection and sends it `msg` with `fds`.
fn fake_owner(tag: &str, msg: Msg, fds: Vec<std::os::fd::OwnedFd>) -> Error {
    let p = path(tag);
    let _ = std::fs::remove_file(&p);
    let listener = std::os::unix::net::UnixListener::bind(&p).unwrap();
    drop(listener);
    let _ = std::fs::remove_file(&p);
    // SOCK_SEQPACKET, as the protocol is.
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        None,
    )
    .unwrap();
    rustix::net::bind(&sock, &rustix::net::SocketAddrUnix::new(&p).unwrap()).unwrap();
    rustix::net::listen(&sock, 1).unwrap();
    let e = std::thread::scope(|s| {
        let owner = s.spawn(|| {
            let conn = rustix::net::accept(&sock).unwrap();
            let borrowed: Vec<_> = fds.iter().map(|f| f.as_fd()).collect();
            wire::send(conn.as_fd(), &msg, &borrowed).unwrap();
            // Hold the connection until the mapper has read it.
            let _ = wire::recv(conn.as_fd());
        });
        let e = RemoteArena::connect(&p).unwrap_err();
        owner.join().unwrap();
        e
    });
    let _ = std::fs::remove_file(&p);
    e
}

#[test]
fn a_fake_owners_malformed_schema_or_short_fd_list_is_a_typed_error() {
    let arena = small("lend-fake");
    let regions: Vec<RegionId> = arena
        .region_ids()
        .into_iter()
        .filter(|id| {
            id.is_user_mappable() && *id != RegionId::GuardHead && *id != RegionId::GuardTail
        })
        .collect();
    let memfd = |len: usize| {
        let fd = rustix::fs::memfd_create("fake", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, len as u64).unwrap();
        fd
    };
    let welcome = |regions: Vec<RegionId>| Msg::Welcome {
        arena_id: 1,
        owner_pid: 1,
        span_size: arena.span_size() as u64,
        regions,
    };
    // Garbage where the schema should be: a schema error, not a panic.
    // (Each welcome's memfds end with the SYSCTLS one.)
    let sysctls = || {
        let fd = memfd(0);
        let lent = skmem::sysctls::Sysctls::default().to_bytes();
        rustix::io::write(&fd, &lent).unwrap();
        fd
    };
    let fds = regions
        .iter()
        .map(|_| memfd(4096))
        .chain([sysctls()])
        .collect();
    let e = fake_owner("garbage", welcome(regions.clone()), fds);
    assert!(matches!(e, Error::Schema(_)), "{e}");
    // Garbage where the sysctls should be.
    let fds = regions
        .iter()
        .map(|_| memfd(4096))
        .chain([memfd(4096)])
        .collect();
    let e = fake_owner("sysctls", welcome(regions.clone()), fds);
    assert!(
        matches!(&e, Error::Lend(LendError::Handover { what }) if what.contains("sysctls")),
        "{e}"
    );
    // Fewer memfds than the welcome names.
    let fds = regions
        .iter()
        .skip(1)
        .map(|_| memfd(4096))
        .chain([sysctls()])
        .collect();
    let e = fake_owner("short", welcome(regions.clone()), fds);
    assert!(matches!(e, Error::Lend(LendError::Handover { .. })), "{e}");
    // The real schema's bytes, but memfds of the wrong sizes.
    let own = arena.map().unwrap();
    let (schema_at, schema_len) = own.region(RegionId::Schema).unwrap();
    let schema = memfd(schema_len);
    // SAFETY: `schema_at..+schema_len` is the SCHEMA region of `own`'s
    // span, readable while `own` lives.
    let bytes = unsafe { std::slice::from_raw_parts(schema_at, schema_len) };
    rustix::io::write(&schema, bytes).unwrap();
    let mut fds = vec![schema];
    fds.extend(regions.iter().skip(1).map(|_| memfd(4096)));
    fds.push(sysctls());
    let e = fake_owner("sizes", welcome(regions.clone()), fds);
    assert!(
        matches!(&e, Error::Lend(LendError::Handover { what }) if what.contains("bytes")),
        "{e}"
    );
    // A refusal carries the owner's reason.
    let e = fake_owner(
        "refused",
        Msg::Refused {
            reason: "not you".into(),
        },
        vec![],
    );
    assert!(
        matches!(&e, Error::Lend(LendError::MapperRefused { reason }) if reason == "not you"),
        "{e}"
    );
    // Something other than a welcome.
    let e = fake_owner("other", Msg::Goodbye, vec![]);
    assert!(matches!(e, Error::Lend(LendError::Handover { .. })), "{e}");
}

/// A mapper that connects the moment the socket file appears is never
/// refused: the file appears only once the offer listens (bound under a
/// temporary name, then renamed), and with its mode already set.
#[test]
fn the_socket_appears_only_once_it_listens() {
    use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
    use std::os::unix::fs::PermissionsExt as _;
    let arena = small("lend-appear");
    for round in 0..200 {
        let p = path(&format!("appear{round}"));
        let watcher = {
            let p = p.clone();
            std::thread::spawn(move || {
                // Spin until the file exists, then connect at once.
                let by = std::time::Instant::now() + Duration::from_secs(10);
                while !p.exists() {
                    assert!(std::time::Instant::now() < by, "no socket");
                    std::hint::spin_loop();
                }
                let mode = std::fs::metadata(&p).map(|m| m.permissions().mode() & 0o777);
                let fd = rustix::net::socket_with(
                    AddressFamily::UNIX,
                    SocketType::SEQPACKET,
                    SocketFlags::CLOEXEC,
                    None,
                )
                .unwrap();
                (
                    rustix::net::connect(&fd, &SocketAddrUnix::new(&p).unwrap()),
                    mode,
                )
            })
        };
        let offer = ArenaOffer::serve(&arena, &p, OfferPolicy::root_only()).unwrap();
        let (connected, mode) = watcher.join().unwrap();
        assert_eq!(connected, Ok(()), "round {round}: refused");
        assert_eq!(mode.ok(), Some(0o600), "round {round}: the mode");
        drop(offer);
        assert!(!p.exists());
    }
}
