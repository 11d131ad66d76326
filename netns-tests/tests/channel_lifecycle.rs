//! A channel and its arena's lifecycle: the mapping that holds a channel's
//! rings cannot be redirected (zero pages would replace the rings under
//! the channel), so an arena with a live channel stays active and refuses
//! defunct; once the channel closes, the postponed defunct runs.

// A test, bench or example target sees every dependency of its package;
// whether the package uses them is the library's lint to say.
#![allow(unused_crate_dependencies)]

use std::time::{Duration, Instant};

use skmem::arena::Arena;
use skmem::channel::Channel;
use skmem::error::{ArenaError, ChannelError};
use skmem::region::RegionId;
use skmem::Error;
use skmem_netns::{NetnsPair, PairConfig, Side};

mod common;

/// Queues 32 frames and waits for their completions: the channel's rings
/// work.
fn sends(ch: &mut Channel) {
    common::queue_fresh_frames(ch, 32, 60);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut done = 0;
    while done < 32 && Instant::now() < deadline {
        done += ch.complete();
        if done < 32 {
            ch.kick_tx().unwrap();
            std::thread::yield_now();
        }
    }
    assert_eq!(done, 32, "the rings stopped working");
    ch.account().check(true).unwrap();
}

#[test]
fn a_channels_mapping_refuses_redirect_and_its_arena_defunct_until_it_closes() {
    skmem_netns::require_root!();
    let pair = NetnsPair::with_config(PairConfig::default().queues(1, 1)).unwrap();
    let ifname = pair.ifname(Side::A).to_owned();
    pair.in_ns(Side::A, || {
        let (arena, mut ch): (Arena, Channel) =
            common::copy_channel("lifecycle", &ifname, 256, |_| {});
        let e = ch.mapping().redirect().unwrap_err();
        assert!(
            matches!(e, Error::Arena(ArenaError::MappingHoldsChannel { .. })),
            "{e}"
        );
        assert_eq!(e.errno(), libc::EBUSY);
        assert!(!ch.mapping().is_redirected());
        sends(&mut ch);

        // Another mapper's mapping redirects; the arena stays active for
        // the channel's.
        let other = arena.map().unwrap();
        assert!(
            !other.redirect().unwrap(),
            "the channel's mapping is active"
        );
        assert!(arena.is_active());
        let e = arena.defunct().unwrap_err();
        assert!(matches!(e, Error::Arena(ArenaError::Active { .. })), "{e}");
        assert_eq!(e.errno(), libc::EBUSY);
        assert!(arena.region(RegionId::BufDef).is_some());
        sends(&mut ch);

        // Closing the channel unmaps its mapping, the last one active: the
        // postponed defunct runs and gives the pool's regions back.
        drop(ch);
        assert!(!arena.is_active());
        assert!(arena.is_defunct());
        assert!(arena.region(RegionId::BufDef).is_none());
        assert!(
            arena.region(RegionId::TxaKsd).is_none(),
            "no slot hold left"
        );
        assert!(arena.region(RegionId::Schema).is_some());
        assert!(matches!(
            Channel::open(&arena, &skmem::channel::ChannelParams::new(&ifname, 0)),
            Err(Error::Channel(ChannelError::InvalidParams { .. })
                | Error::Arena(ArenaError::NotActive { .. }))
        ));
        drop(other);
    });
}
