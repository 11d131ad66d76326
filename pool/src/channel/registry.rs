//! The registry of live channels: each channel's counters (shared with
//! it) and socket, so that another thread — the process's statistics
//! socket, `skmemctl stats` — reads them while the channel runs.

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::{Arc, Mutex, Weak};

use super::{ChannelCounters, LiveCounters, XskStats};
use crate::util::lock;

/// A live channel as the registry keeps it: who it is, its counters (which
/// it keeps here, shared), and its socket for `XDP_STATISTICS`.
#[derive(Debug)]
pub(crate) struct ChannelRecord {
    pub(crate) arena: String,
    pub(crate) arena_id: u64,
    pub(crate) ifname: String,
    pub(crate) queue: u32,
    pub(crate) zero_copy: bool,
    pub(crate) counters: Arc<LiveCounters>,
    /// The AF_XDP socket while it is open. The channel sets `None`, under
    /// this lock, before it closes the socket: a reader holding the lock
    /// with `Some(fd)` holds an open descriptor of that socket.
    pub(crate) fd: Mutex<Option<RawFd>>,
}

impl ChannelRecord {
    /// Forgets the socket (the channel is about to close it).
    pub(crate) fn closing(&self) {
        *lock(&self.fd) = None;
    }
}

static CHANNELS: Mutex<Vec<Weak<ChannelRecord>>> = Mutex::new(Vec::new());

/// Lists `record` among the live channels until its last `Arc` goes.
pub(crate) fn register_channel(record: ChannelRecord) -> Arc<ChannelRecord> {
    let rec = Arc::new(record);
    let mut all = lock(&CHANNELS);
    all.retain(|w| w.strong_count() > 0);
    all.push(Arc::downgrade(&rec));
    drop(all);
    #[cfg(feature = "publish")]
    crate::publish::provide(published);
    rec
}

/// The `channels` section of this process's statistics document.
#[cfg(feature = "publish")]
fn published() -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("channels".into(), serde_json::json!(channels()));
    m
}

/// A channel's statistics, read from another thread while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct ChannelStats {
    /// The nexus arena the channel is bound through.
    pub arena: String,
    /// That arena's process-unique id.
    pub arena_id: u64,
    /// Interface name.
    pub ifname: String,
    /// Queue id.
    pub queue: u32,
    /// Bound in zero-copy mode.
    pub zero_copy: bool,
    /// The channel's own counters.
    pub counters: ChannelCounters,
    /// The kernel's counters for the socket (`None` when the socket closed
    /// while being read, or the kernel refused).
    pub xdp: Option<XskStats>,
}

/// Statistics of every live channel of this process, oldest first.
pub fn channels() -> Vec<ChannelStats> {
    let live: Vec<Arc<ChannelRecord>> = lock(&CHANNELS).iter().filter_map(Weak::upgrade).collect();
    live.iter()
        .map(|r| {
            let xdp = lock(&r.fd).and_then(|fd| {
                // SAFETY: the lock is held and says the socket is open (see
                // `ChannelRecord::fd`): `fd` stays valid for this borrow.
                let fd = unsafe { BorrowedFd::borrow_raw(fd) };
                rustix::net::sockopt::xdp_statistics(fd)
                    .ok()
                    .map(XskStats::from)
            });
            ChannelStats {
                arena: r.arena.clone(),
                arena_id: r.arena_id,
                ifname: r.ifname.clone(),
                queue: r.queue,
                zero_copy: r.zero_copy,
                counters: r.counters.snapshot(),
                xdp,
            }
        })
        .collect()
}
