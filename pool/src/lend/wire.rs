//! The hand-over's messages on the Unix socket (`SOCK_SEQPACKET`: one
//! message per `sendmsg`, boundaries kept), and the memfds that travel
//! with one (`SCM_RIGHTS`).
//!
//! Every message is a header — `b"SKMEMLND"`, the protocol version, the
//! message kind, all little-endian — and the kind's fields. Both sides read
//! what the other sends as untrusted bytes: a message of the wrong length,
//! an unknown kind, a region named twice or out of order, file descriptors
//! where none belong or a list the kernel truncated are all refused with
//! [`LendError::Handover`], and any descriptor that came with a refused message
//! is closed.
//!
//! | kind | from | fields |
//! |---|---|---|
//! | 1 welcome | owner | arena id `u64`, owner pid `u32`, region count `u32`, span size `u64`, then a region id `u32` per region, in span order; the regions' memfds ride along, then one more: the owner's SYSCTLS region ([`crate::sysctls`]) |
//! | 2 refused | owner | reason length `u32`, reason (UTF-8) |
//! | 3 redirect | owner | request `u64` |
//! | 4 goodbye | owner | — |
//! | 5 joined | owner | worker slot `u32`; two eventfds ride along: the worker's (the owner writes it when the worker sleeps) and the owner's (the worker writes it when the owner sleeps) |
//! | 10 ready | mapper | the span's base address in the mapper `u64` |
//! | 11 redirected | mapper | request `u64` |
//! | 12 join | mapper | — (asks for a worker slot: [`crate::workers`]) |

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::error::{Error, LendError, Result};
use crate::region::RegionId;

/// The first eight bytes of every message.
const MAGIC: [u8; 8] = *b"SKMEMLND";
/// The protocol version this module speaks.
pub const LEND_VERSION: u32 = 2;
/// Bytes of the header: magic, version, kind.
const HEADER: usize = 16;
/// Longest message (a welcome naming every region is 32 + 4 × 28).
pub(crate) const MAX_MSG: usize = 512;
/// Longest reason a refusal carries.
const MAX_REASON: usize = 256;
/// Most memfds one message carries: one per region, and the SYSCTLS
/// region's.
pub(crate) const MAX_FDS: usize = RegionId::COUNT + 1;

/// One message of the hand-over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Msg {
    /// The owner accepts: the arena and, in span order, the region each
    /// memfd that rides along is; one more memfd follows them, the owner's
    /// SYSCTLS region.
    Welcome {
        /// The arena's id in the owner.
        arena_id: u64,
        /// The owner's pid.
        owner_pid: u32,
        /// Bytes of the span.
        span_size: u64,
        /// The regions whose memfds follow, in span order.
        regions: Vec<RegionId>,
    },
    /// The owner refuses, saying why.
    Refused {
        /// Why (UTF-8, at most 256 bytes).
        reason: String,
    },
    /// The owner asks the mapper to redirect its span.
    Redirect {
        /// The request's number, echoed by the answer.
        request: u64,
    },
    /// The owner stops lending: the mapper keeps what it mapped.
    Goodbye,
    /// The owner gives the mapper a worker slot.
    Joined {
        /// The slot: its rings are the schema's worker entry of this index.
        slot: u32,
    },
    /// The mapper has built its span.
    Ready {
        /// The span's base address in the mapper (for observation).
        span_addr: u64,
    },
    /// The mapper has redirected its span.
    Redirected {
        /// The request answered.
        request: u64,
    },
    /// The mapper asks to be a worker.
    Join,
}

fn bad(what: &str) -> Error {
    Error::Lend(LendError::Handover {
        what: what.to_owned(),
    })
}

impl Msg {
    fn kind(&self) -> u32 {
        match self {
            Msg::Welcome { .. } => 1,
            Msg::Refused { .. } => 2,
            Msg::Redirect { .. } => 3,
            Msg::Goodbye => 4,
            Msg::Joined { .. } => 5,
            Msg::Ready { .. } => 10,
            Msg::Redirected { .. } => 11,
            Msg::Join => 12,
        }
    }

    /// The message's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(64);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&LEND_VERSION.to_le_bytes());
        b.extend_from_slice(&self.kind().to_le_bytes());
        match self {
            Msg::Welcome {
                arena_id,
                owner_pid,
                span_size,
                regions,
            } => {
                b.extend_from_slice(&arena_id.to_le_bytes());
                b.extend_from_slice(&owner_pid.to_le_bytes());
                b.extend_from_slice(&(regions.len() as u32).to_le_bytes());
                b.extend_from_slice(&span_size.to_le_bytes());
                for id in regions {
                    b.extend_from_slice(&(id.index() as u32).to_le_bytes());
                }
            }
            Msg::Refused { reason } => {
                let r = &reason.as_bytes()[..floor_char(reason, MAX_REASON)];
                b.extend_from_slice(&(r.len() as u32).to_le_bytes());
                b.extend_from_slice(r);
            }
            Msg::Redirect { request } | Msg::Redirected { request } => {
                b.extend_from_slice(&request.to_le_bytes())
            }
            Msg::Goodbye | Msg::Join => {}
            Msg::Joined { slot } => b.extend_from_slice(&slot.to_le_bytes()),
            Msg::Ready { span_addr } => b.extend_from_slice(&span_addr.to_le_bytes()),
        }
        b
    }

    /// Reads a message from untrusted bytes.
    pub fn decode(b: &[u8]) -> Result<Msg> {
        let u32_at = |at: usize| -> Result<u32> {
            b.get(at..at + 4)
                .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
                .ok_or_else(|| bad("a message shorter than its fields"))
        };
        let u64_at = |at: usize| -> Result<u64> {
            b.get(at..at + 8)
                .map(|s| {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(s);
                    u64::from_le_bytes(w)
                })
                .ok_or_else(|| bad("a message shorter than its fields"))
        };
        if b.get(..8) != Some(&MAGIC[..]) {
            return Err(bad("not a hand-over message (bad magic)"));
        }
        let version = u32_at(8)?;
        if version != LEND_VERSION {
            return Err(Error::Lend(LendError::Handover {
                what: format!("protocol version {version}, this side speaks {LEND_VERSION}"),
            }));
        }
        let exact = |len: usize, msg: Msg| {
            if b.len() == len {
                Ok(msg)
            } else {
                Err(bad("a message whose length is not its kind's"))
            }
        };
        match u32_at(12)? {
            1 => {
                let count = u32_at(28)? as usize;
                if count > MAX_FDS {
                    return Err(bad("a welcome naming more regions than exist"));
                }
                let mut regions = Vec::with_capacity(count);
                for i in 0..count {
                    let id = RegionId::from_index(u32_at(40 + 4 * i)? as usize)
                        .filter(|id| id.is_user_mappable())
                        .ok_or_else(|| bad("a welcome naming a region no mapper gets"))?;
                    if regions.last().is_some_and(|&last: &RegionId| last >= id) {
                        return Err(bad("a welcome naming regions twice or out of order"));
                    }
                    regions.push(id);
                }
                exact(
                    40 + 4 * count,
                    Msg::Welcome {
                        arena_id: u64_at(16)?,
                        owner_pid: u32_at(24)?,
                        span_size: u64_at(32)?,
                        regions,
                    },
                )
            }
            2 => {
                let len = u32_at(HEADER)? as usize;
                if len > MAX_REASON || b.len() != HEADER + 4 + len {
                    return Err(bad("a refusal whose reason is not its length"));
                }
                let reason = std::str::from_utf8(&b[HEADER + 4..])
                    .map_err(|_| bad("a refusal whose reason is not UTF-8"))?;
                Ok(Msg::Refused {
                    reason: reason.to_owned(),
                })
            }
            3 => exact(
                HEADER + 8,
                Msg::Redirect {
                    request: u64_at(HEADER)?,
                },
            ),
            4 => exact(HEADER, Msg::Goodbye),
            5 => exact(
                HEADER + 4,
                Msg::Joined {
                    slot: u32_at(HEADER)?,
                },
            ),
            12 => exact(HEADER, Msg::Join),
            10 => exact(
                HEADER + 8,
                Msg::Ready {
                    span_addr: u64_at(HEADER)?,
                },
            ),
            11 => exact(
                HEADER + 8,
                Msg::Redirected {
                    request: u64_at(HEADER)?,
                },
            ),
            _ => Err(bad("a message of an unknown kind")),
        }
    }
}

/// The largest char boundary of `s` at or below `max`.
fn floor_char(s: &str, max: usize) -> usize {
    (0..=max.min(s.len()))
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0)
}

/// Sends `msg` on `sock` with `fds` riding along.
pub fn send(sock: BorrowedFd<'_>, msg: &Msg, fds: &[BorrowedFd<'_>]) -> Result<()> {
    let bytes = msg.encode();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(bad("more memfds than one message carries"));
    }
    let sent = rustix::net::sendmsg(
        sock,
        &[IoSlice::new(&bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .map_err(|e| Error::sys("sendmsg(hand-over)", e))?;
    if sent != bytes.len() {
        return Err(bad("a message sent in part"));
    }
    Ok(())
}

/// Receives one message from `sock`, with the memfds that came with it;
/// `None` when the peer has closed its end.
pub fn recv(sock: BorrowedFd<'_>) -> Result<Option<(Msg, Vec<OwnedFd>)>> {
    let mut buf = [0u8; MAX_MSG];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let r = rustix::net::recvmsg(
        sock,
        &mut [IoSliceMut::new(&mut buf)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| Error::sys("recvmsg(hand-over)", e))?;
    // Whatever came, the descriptors are ours now (closed if refused).
    let mut fds = Vec::new();
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = m {
            fds.extend(rights);
        }
    }
    if r.bytes == 0 && fds.is_empty() {
        return Ok(None);
    }
    if r.flags.contains(ReturnFlags::CTRUNC) {
        return Err(bad("the memfd list was cut short in transit"));
    }
    if r.flags.contains(ReturnFlags::TRUNC) || r.bytes > MAX_MSG {
        return Err(bad("a message longer than any the protocol has"));
    }
    let msg = Msg::decode(&buf[..r.bytes])?;
    let expected = match &msg {
        Msg::Welcome { regions, .. } => regions.len() + 1,
        Msg::Joined { .. } => 2,
        _ => 0,
    };
    if fds.len() != expected {
        return Err(Error::Lend(LendError::Handover {
            what: format!(
                "{} memfd(s) came with a message that names {expected}",
                fds.len()
            ),
        }));
    }
    Ok(Some((msg, fds)))
}

/// Sends `msg` with no memfd (for a peer that may be gone: an error is
/// left to the caller to ignore).
pub fn send_plain(sock: &impl AsFd, msg: &Msg) -> Result<()> {
    send(sock.as_fd(), msg, &[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_round_trips() {
        for m in [
            Msg::Welcome {
                arena_id: 7,
                owner_pid: 42,
                span_size: 1 << 20,
                regions: vec![RegionId::Schema, RegionId::BufDef, RegionId::Umd],
            },
            Msg::Refused {
                reason: "uid 1000 is not allowed".into(),
            },
            Msg::Redirect { request: 3 },
            Msg::Goodbye,
            Msg::Ready { span_addr: 0x7f00 },
            Msg::Redirected { request: 3 },
            Msg::Joined { slot: 2 },
            Msg::Join,
        ] {
            assert_eq!(Msg::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn damaged_messages_are_refused_with_a_reason() {
        let w = Msg::Welcome {
            arena_id: 1,
            owner_pid: 1,
            span_size: 4096,
            regions: vec![RegionId::Schema, RegionId::BufDef],
        }
        .encode();
        let mut cases: Vec<Vec<u8>> = vec![
            vec![],
            w[..10].to_vec(),
            w[..w.len() - 1].to_vec(),
            [w.clone(), vec![0]].concat(),
        ];
        let mut bad_magic = w.clone();
        bad_magic[0] ^= 1;
        cases.push(bad_magic);
        let mut version = w.clone();
        version[8] = 9;
        cases.push(version);
        let mut kind = w.clone();
        kind[12] = 99;
        cases.push(kind);
        let mut private = w.clone();
        private[44..48].copy_from_slice(&(RegionId::Kmd.index() as u32).to_le_bytes());
        cases.push(private);
        let mut twice = w.clone();
        twice[44..48].copy_from_slice(&(RegionId::Schema.index() as u32).to_le_bytes());
        cases.push(twice);
        let mut count = w.clone();
        count[28..32].copy_from_slice(&1000u32.to_le_bytes());
        cases.push(count);
        let mut reason = Msg::Refused {
            reason: "é".into()
        }
        .encode();
        let n = reason.len();
        reason[n - 1] = 0xff;
        cases.push(reason);
        for c in cases {
            assert!(
                matches!(
                    Msg::decode(&c),
                    Err(Error::Lend(LendError::Handover { .. }))
                ),
                "{c:?}"
            );
        }
    }

    #[test]
    fn a_long_reason_is_cut_at_a_character() {
        let m = Msg::Refused {
            reason: "é".repeat(200),
        };
        let Msg::Refused { reason } = Msg::decode(&m.encode()).unwrap() else {
            panic!()
        };
        assert_eq!(reason, "é".repeat(128));
    }
}
